/*
 * record.c: encodes and decodes event records (layout in record.h).
 *
 * Decoding trusts nothing: every length is checked against the record's
 * size before it is used, so a damaged record is reported, never read past.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "spool_impl.h"

void
spool_seterr(char *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err, SPOOL_ERRMAX, fmt, ap);
	va_end(ap);
}

void
record_put64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

uint64_t
record_get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
put16(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void
put32(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static size_t
get16(const unsigned char *p)
{
	return (size_t)p[0] << 8 | p[1];
}

static size_t
get32(const unsigned char *p)
{
	return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 |
	    p[3];
}

int
spool_stream_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > SPOOL_STREAM_MAX)
		return 0;
	/* Names become file and topic names: no "." or "..". */
	if (len <= 2 && strncmp(s, "..", len) == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		    s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

int
record_check_event(const struct spool_event *ev, char *err)
{
	if (!spool_stream_name_ok(ev->stream, ev->stream_len)) {
		ERR("stream name must be 1 to %d of A-Z a-z 0-9 . _ -, and "
		    "not . or ..", SPOOL_STREAM_MAX);
		return SPOOL_EINVAL;
	}
	if (ev->ctype_len > SPOOL_CTYPE_MAX) {
		ERR("content type longer than %d bytes", SPOOL_CTYPE_MAX);
		return SPOOL_EINVAL;
	}
	if (ev->ikey_len > SPOOL_IKEY_MAX) {
		ERR("idempotency key longer than %d bytes", SPOOL_IKEY_MAX);
		return SPOOL_EINVAL;
	}
	if (ev->addr_len > SPOOL_ADDR_MAX) {
		ERR("remote address longer than %d bytes", SPOOL_ADDR_MAX);
		return SPOOL_EINVAL;
	}
	if (ev->body_len > SPOOL_BODY_MAX) {
		ERR("event body larger than %u bytes", SPOOL_BODY_MAX);
		return SPOOL_EINVAL;
	}
	return SPOOL_OK;
}

size_t
record_size(const struct spool_event *ev, int encrypted)
{
	size_t n = RECORD_HDR + ev->stream_len + ev->ctype_len +
	    ev->ikey_len + ev->addr_len + ev->body_len;

	return encrypted ? n + RECORD_ENC_OVERHEAD : n;
}

static unsigned char *
put_bytes(unsigned char *p, const void *src, size_t len)
{
	if (len)
		memcpy(p, src, len);
	return p + len;
}

/* Writes the plaintext layout from byte 2 on (id .. body) at P. */
static void
encode_plain(const struct spool_event *ev, unsigned char *p)
{
	memcpy(p, ev->id, SPOOL_IDLEN);
	record_put64(p + 16, ev->received_ms);
	put16(p + 24, ev->stream_len);
	put16(p + 26, ev->ctype_len);
	put16(p + 28, ev->ikey_len);
	put16(p + 30, ev->addr_len);
	put32(p + 32, ev->body_len);
	p += RECORD_HDR - 2;
	p = put_bytes(p, ev->stream, ev->stream_len);
	p = put_bytes(p, ev->ctype, ev->ctype_len);
	p = put_bytes(p, ev->ikey, ev->ikey_len);
	p = put_bytes(p, ev->addr, ev->addr_len);
	put_bytes(p, ev->body, ev->body_len);
}

static void
make_ad(unsigned char ad[10], uint64_t seq, const unsigned char *hdr)
{
	record_put64(ad, seq);
	ad[8] = hdr[0];
	ad[9] = hdr[1];
}

size_t
record_encode(const struct spool_event *ev, const unsigned char *key,
    unsigned char *buf)
{
	size_t plain = record_size(ev, 0) - 2;
	unsigned char ad[10];
	unsigned long long clen;

	buf[0] = RECORD_VERSION;
	buf[1] = key ? RECORD_F_ENCRYPTED : 0;
	if (key == NULL) {
		encode_plain(ev, buf + 2);
		return plain + 2;
	}
	/*
	 * Encrypt in place: the plaintext is laid out where the ciphertext
	 * goes (libsodium allows c == m), after the nonce.
	 */
	randombytes_buf(buf + 2, RECORD_NONCE);
	encode_plain(ev, buf + 2 + RECORD_NONCE);
	make_ad(ad, ev->seq, buf);
	crypto_aead_xchacha20poly1305_ietf_encrypt(buf + 2 + RECORD_NONCE,
	    &clen, buf + 2 + RECORD_NONCE, plain, ad, sizeof(ad), NULL,
	    buf + 2, key);
	return 2 + RECORD_NONCE + (size_t)clen;
}

static int
decode_plain(const unsigned char *p, size_t len, struct spool_event *ev,
    char *err)
{
	size_t need;

	if (len < RECORD_HDR - 2) {
		ERR("record truncated: %zu bytes, header needs %d", len + 2,
		    RECORD_HDR);
		return SPOOL_CORRUPT;
	}
	memcpy(ev->id, p, SPOOL_IDLEN);
	ev->received_ms = record_get64(p + 16);
	ev->stream_len = get16(p + 24);
	ev->ctype_len = get16(p + 26);
	ev->ikey_len = get16(p + 28);
	ev->addr_len = get16(p + 30);
	ev->body_len = get32(p + 32);
	need = RECORD_HDR - 2 + ev->stream_len + ev->ctype_len +
	    ev->ikey_len + ev->addr_len + ev->body_len;
	if (need != len) {
		ERR("record lengths add up to %zu bytes, record has %zu",
		    need + 2, len + 2);
		return SPOOL_CORRUPT;
	}
	p += RECORD_HDR - 2;
	ev->stream = (const char *)p;
	p += ev->stream_len;
	ev->ctype = (const char *)p;
	p += ev->ctype_len;
	ev->ikey = (const char *)p;
	p += ev->ikey_len;
	ev->addr = (const char *)p;
	p += ev->addr_len;
	ev->body = p;
	if (record_check_event(ev, err) != SPOOL_OK)
		return SPOOL_CORRUPT;
	return SPOOL_OK;
}

int
record_decode(const void *rec, size_t len, uint64_t seq,
    const unsigned char *key, struct spool_event *ev,
    unsigned char **scratch, size_t *scratch_cap, char *err)
{
	const unsigned char *r = rec;
	unsigned char ad[10];
	unsigned long long mlen;
	size_t clen;

	ev->seq = seq;
	if (len < 2) {
		ERR("record truncated: %zu bytes", len);
		return SPOOL_CORRUPT;
	}
	if (r[0] != RECORD_VERSION) {
		ERR("record version %u unknown (this ferry reads %d)", r[0],
		    RECORD_VERSION);
		return SPOOL_CORRUPT;
	}
	if (r[1] & ~RECORD_F_ENCRYPTED) {
		ERR("record flags 0x%02x unknown", r[1]);
		return SPOOL_CORRUPT;
	}
	if (!(r[1] & RECORD_F_ENCRYPTED))
		return decode_plain(r + 2, len - 2, ev, err);
	if (key == NULL) {
		ERR("record is encrypted and no key is configured");
		return SPOOL_EKEY;
	}
	if (len < 2 + RECORD_ENC_OVERHEAD) {
		ERR("encrypted record truncated: %zu bytes", len);
		return SPOOL_CORRUPT;
	}
	clen = len - 2 - RECORD_NONCE;
	if (*scratch_cap < clen) {
		unsigned char *n = realloc(*scratch, clen);
		if (n == NULL) {
			ERR("out of memory decrypting %zu bytes", clen);
			return SPOOL_ERR;
		}
		*scratch = n;
		*scratch_cap = clen;
	}
	make_ad(ad, seq, r);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(*scratch, &mlen, NULL,
	    r + 2 + RECORD_NONCE, clen, ad, sizeof(ad), r + 2, key) != 0) {
		ERR("record fails authentication (damaged, moved, or "
		    "another key)");
		return SPOOL_CORRUPT;
	}
	return decode_plain(*scratch, (size_t)mlen, ev, err);
}
