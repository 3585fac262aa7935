/*
 * test_intake.c: unit tests of the intake decoder (agent/intake.c), with
 * cmocka.  Gzip bodies, including a bomb, are built here with zlib.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>
#include <jansson.h>
#include <zlib.h>

#include "intake.h"

#define MIB	(1024 * 1024)

struct fx {
	struct intake_limits	lim;
	struct intake_batch	b;
	char			err[256];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->lim.max_body = MIB;
	f->lim.max_events = 1000;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	intake_batch_free(&f->b);
	free(f);
	return 0;
}

/* Decodes S (a C string) into f->b; frees the previous batch first. */
static int
dec(struct fx *f, const char *ct, const char *ce, const char *ik,
    const void *body, size_t len)
{
	intake_batch_free(&f->b);
	f->err[0] = '\0';
	return intake_decode(&f->lim, ct, ce, ik, body, len, &f->b, f->err,
	    sizeof(f->err));
}

static int
decs(struct fx *f, const char *ct, const char *ik, const char *s)
{
	return dec(f, ct, NULL, ik, s, strlen(s));
}

static void
assert_empty(const struct intake_batch *b)
{
	assert_int_equal(b->n, 0);
	assert_null(b->evs);
	assert_null(b->keys);
	assert_null(b->plain);
	assert_int_equal(b->bytes, 0);
}

static void
assert_mem(const void *p, size_t len, const char *s)
{
	assert_int_equal(len, strlen(s));
	assert_memory_equal(p, s, len);
}

static void
assert_ikey(const struct spool_event *ev, const char *s)
{
	if (s == NULL) {
		assert_null(ev->ikey);
		assert_int_equal(ev->ikey_len, 0);
		return;
	}
	assert_non_null(ev->ikey);
	assert_mem(ev->ikey, ev->ikey_len, s);
}

static void
assert_err(struct fx *f, int rc, int want, const char *needle)
{
	if (rc != want || strstr(f->err, needle) == NULL)
		fail_msg("got %d \"%s\", want %d with \"%s\"", rc, f->err,
		    want, needle);
	assert_empty(&f->b);
}

/* One gzip member of IN; caller frees. */
static unsigned char *
gz(const void *in, size_t len, size_t *outlen)
{
	z_stream	 zs;
	unsigned char	*out;
	size_t		 cap;

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 31, 8,
	    Z_DEFAULT_STRATEGY), Z_OK);
	cap = deflateBound(&zs, len);
	assert_non_null(out = malloc(cap));
	zs.next_in = (unsigned char *)in;
	zs.avail_in = len;
	zs.next_out = out;
	zs.avail_out = cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static size_t
deflate_some(z_stream *zs, const void *in, size_t len, int flush,
    unsigned char *out, size_t cap)
{
	zs->next_in = (unsigned char *)in;
	zs->avail_in = len;
	zs->next_out = out;
	zs->avail_out = cap;
	assert_true(deflate(zs, flush) >= Z_OK);
	assert_int_equal(zs->avail_in, 0);
	return cap - zs->avail_out;
}

/*
 * A valid gzip file of MIBS MiB of zeros without ever holding them: a
 * full flush makes a 1 MiB segment self-contained, so it can be repeated;
 * the trailer's CRC comes from crc32_combine().
 */
static unsigned char *
zero_gzip(size_t mibs, size_t *outlen)
{
	unsigned char	*zero, *out, a[8192], bseg[8192], c[64];
	size_t		 na, nb, nc, i, o;
	z_stream	 zs;
	uLong		 crc1, crc;

	assert_non_null(zero = calloc(1, MIB));
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 31, 9,
	    Z_DEFAULT_STRATEGY), Z_OK);
	na = deflate_some(&zs, zero, MIB, Z_FULL_FLUSH, a, sizeof(a));
	nb = deflate_some(&zs, zero, MIB, Z_FULL_FLUSH, bseg, sizeof(bseg));
	nc = deflate_some(&zs, NULL, 0, Z_FINISH, c, sizeof(c));
	deflateEnd(&zs);
	crc1 = crc = crc32(0, zero, MIB);
	for (i = 1; i < mibs; i++)
		crc = crc32_combine(crc, crc1, MIB);
	free(zero);
	assert_non_null(out = malloc(na + nb * (mibs - 1) + nc));
	memcpy(out, a, na);
	for (o = na, i = 1; i < mibs; i++, o += nb)
		memcpy(out + o, bseg, nb);
	memcpy(out + o, c, nc - 8);
	o += nc - 8;
	for (i = 0; i < 4; i++)
		out[o++] = (unsigned char)(crc >> (8 * i));
	for (i = 0; i < 4; i++)
		out[o++] = (unsigned char)((mibs * MIB) >> (8 * i));
	*outlen = o;
	return out;
}

/* An NDJSON body of N lines {"i":k,"pad":"xx.."}, LEN bytes in all. */
static char *
ndjson_body(size_t n, size_t len)
{
	char	*s, *p;
	size_t	 i, w, pre;

	assert_non_null(s = malloc(len + 1));
	for (p = s, i = 0; i < n; i++) {
		w = i == n - 1 ? len - (size_t)(p - s) : len / n;
		pre = (size_t)sprintf(p, "{\"i\":%zu,\"pad\":\"", i);
		assert_true(w >= pre + 3);
		memset(p + pre, 'x', w - pre - 3);
		memcpy(p + w - 3, "\"}\n", 3);
		p += w;
	}
	*p = '\0';
	assert_int_equal((size_t)(p - s), len);
	return s;
}

/* Must run first: ru_maxrss is a high-water mark. */
static void
gzip_bomb(void **state)
{
	struct fx	*f = *state;
	struct rusage	 ru0, ru1;
	unsigned char	*z;
	size_t		 zlen;
	int		 rc;

	z = zero_gzip(100, &zlen);
	assert_true(zlen < 200 * 1024);
	f->lim.allow_opaque = 1;
	getrusage(RUSAGE_SELF, &ru0);
	rc = dec(f, "application/octet-stream", "gzip", NULL, z, zlen);
	getrusage(RUSAGE_SELF, &ru1);
	assert_err(f, rc, 413, "decompressed body over the limit of 1048576");
	if (ru1.ru_maxrss - ru0.ru_maxrss > 32 * 1024)
		fail_msg("max RSS grew by %ld KiB",
		    ru1.ru_maxrss - ru0.ru_maxrss);
	free(z);
}

static void
json_single(void **state)
{
	struct fx	*f = *state;
	const char	*s = "{\"a\": [1, 2, {\"b\": null}]}\n";

	assert_int_equal(decs(f, "application/json", NULL, s), 0);
	assert_int_equal(f->b.n, 1);
	assert_ptr_equal(f->b.evs[0].body, s);
	assert_int_equal(f->b.evs[0].body_len, strlen(s));
	assert_int_equal(f->b.bytes, strlen(s));
	assert_mem(f->b.evs[0].ctype, f->b.evs[0].ctype_len,
	    "application/json");
	assert_ptr_not_equal(f->b.evs[0].ctype, "application/json");
	assert_ikey(&f->b.evs[0], NULL);
	assert_null(f->b.evs[0].stream);
	assert_null(f->b.evs[0].addr);
}

static void
json_kinds(void **state)
{
	struct fx	*f = *state;
	const char	*v[] = { "{}", "[]", "\"s\"", "42", "-1.5e3", "true",
	    "false", "null", " \t{\"a\":\"\\u00e9\\\"[\"}\r\n" };
	size_t		 i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (decs(f, "application/json", NULL, v[i]) != 0)
			fail_msg("%s: %s", v[i], f->err);
		assert_int_equal(f->b.n, 1);
		assert_mem(f->b.evs[0].body, f->b.evs[0].body_len, v[i]);
	}
}

static void
ctype_params_case(void **state)
{
	struct fx	*f = *state;
	const char	*ct[] = { "Application/JSON; charset=UTF-8",
	    "  application/json  ;x=y", "APPLICATION/JSON" };
	size_t		 i;

	for (i = 0; i < 3; i++) {
		assert_int_equal(decs(f, ct[i], NULL, "{}"), 0);
		assert_mem(f->b.evs[0].ctype, f->b.evs[0].ctype_len,
		    "application/json");
	}
	assert_int_equal(decs(f, "Application/X-NDJSON;charset=utf-8", NULL,
	    "1\n2\n"), 0);
	assert_int_equal(f->b.n, 2);
	assert_mem(f->b.evs[1].ctype, f->b.evs[1].ctype_len,
	    "application/x-ndjson");
	/* application/json is one value: two lines are invalid. */
	assert_err(f, decs(f, "application/json", NULL, "1\n2\n"), 400,
	    "line 2: invalid JSON: end of file expected");
}

static void
json_invalid(void **state)
{
	struct fx *f = *state;

	assert_err(f, decs(f, "application/json", NULL, "{\"a\":}"), 400,
	    "line 1: invalid JSON: ");
	assert_true(strstr(f->err, "(column 6)") != NULL);
	assert_err(f, decs(f, "application/json", NULL, "{\n\"a\": x}"), 400,
	    "line 2: invalid JSON: invalid token near 'x' (column 6)");
	assert_err(f, decs(f, "application/json", NULL, "  "), 400,
	    "line 1: invalid JSON");
	assert_err(f, dec(f, "application/json", NULL, NULL, "\"a\0\"", 4),
	    400, "invalid JSON");
}

static void
ndjson_lines(void **state)
{
	struct fx	*f = *state;
	const char	*s = "{\"a\":1}\n[2]\n\"three\"";

	assert_int_equal(decs(f, "application/x-ndjson", NULL, s), 0);
	assert_int_equal(f->b.n, 3);
	assert_mem(f->b.evs[0].body, f->b.evs[0].body_len, "{\"a\":1}");
	assert_ptr_equal(f->b.evs[0].body, s);
	assert_mem(f->b.evs[1].body, f->b.evs[1].body_len, "[2]");
	assert_mem(f->b.evs[2].body, f->b.evs[2].body_len, "\"three\"");
	assert_int_equal(f->b.bytes, 7 + 3 + 7);
	assert_ikey(&f->b.evs[2], NULL);
}

static void
ndjson_bad_line(void **state)
{
	struct fx *f = *state;

	assert_err(f, decs(f, "application/x-ndjson", NULL,
	    "{}\n{}\nx\n{}\n"), 400,
	    "line 3: invalid JSON: invalid token near 'x' (column 1)");
	assert_err(f, decs(f, "application/x-ndjson", NULL,
	    "{}\n\n{\"a\":1,}\n"), 400, "line 3: invalid JSON: ");
	/* Two values on one line are one bad line. */
	assert_err(f, decs(f, "application/x-ndjson", NULL, "{}\n{} {}\n"),
	    400, "line 2: invalid JSON: end of file expected");
}

static void
ndjson_blank_crlf(void **state)
{
	struct fx *f = *state;

	assert_int_equal(decs(f, "application/x-ndjson", "k",
	    "\n{}\r\n\r\n \t\n[1]\r\n\n"), 0);
	assert_int_equal(f->b.n, 2);
	assert_mem(f->b.evs[0].body, f->b.evs[0].body_len, "{}");
	assert_mem(f->b.evs[1].body, f->b.evs[1].body_len, "[1]");
	assert_ikey(&f->b.evs[0], "k#2");
	assert_ikey(&f->b.evs[1], "k#5");
	assert_int_equal(decs(f, "application/x-ndjson", NULL, "1\r\n2"), 0);
	assert_int_equal(f->b.n, 2);
	assert_mem(f->b.evs[1].body, f->b.evs[1].body_len, "2");
	assert_err(f, decs(f, "application/x-ndjson", NULL, "\n \r\n\n"),
	    400, "no events");
}

static void
empty_body(void **state)
{
	struct fx *f = *state;

	f->lim.allow_opaque = 1;
	assert_err(f, decs(f, "application/json", NULL, ""), 400,
	    "empty body");
	assert_err(f, decs(f, "application/x-ndjson", NULL, ""), 400,
	    "empty body");
	assert_err(f, decs(f, "text/plain", NULL, ""), 400, "empty body");
	assert_err(f, dec(f, "text/plain", "gzip", NULL, NULL, 0), 400,
	    "empty body");
}

static void
max_events(void **state)
{
	struct fx	*f = *state;
	char		*s = ndjson_body(1000, 40000);

	assert_int_equal(decs(f, "application/x-ndjson", NULL, s), 0);
	assert_int_equal(f->b.n, 1000);
	f->lim.max_events = 999;
	assert_err(f, decs(f, "application/x-ndjson", NULL, s), 413,
	    "more than 999 events");
	f->lim.max_events = 1;
	assert_int_equal(decs(f, "application/json", NULL, "1"), 0);
	assert_err(f, decs(f, "application/x-ndjson", NULL, "1\n2"), 413,
	    "more than 1 events");
	free(s);
}

static void
max_body_plain(void **state)
{
	struct fx	*f = *state;
	char		*s = ndjson_body(100, 30000);

	f->lim.max_body = 30000;
	assert_int_equal(decs(f, "application/x-ndjson", NULL, s), 0);
	assert_int_equal(f->b.n, 100);
	assert_int_equal(f->b.bytes, 30000 - 100);
	f->lim.max_body = 29999;
	assert_err(f, decs(f, "application/x-ndjson", NULL, s), 413,
	    "body over the limit of 29999 bytes");
	f->lim.allow_opaque = 1;
	assert_err(f, decs(f, "text/plain", NULL, s), 413, "over the limit");
	f->lim.max_body = 30000;
	assert_int_equal(decs(f, "text/plain", NULL, s), 0);
	assert_int_equal(f->b.evs[0].body_len, 30000);
	free(s);
}

static void
max_body_gzip(void **state)
{
	struct fx	*f = *state;
	char		*s = ndjson_body(100, 30000);
	unsigned char	*z;
	size_t		 zlen;

	z = gz(s, 30000, &zlen);
	assert_true(zlen < 29999);
	f->lim.max_body = 30000;
	assert_int_equal(dec(f, "application/x-ndjson", "gzip", "k", z, zlen),
	    0);
	assert_int_equal(f->b.n, 100);
	assert_non_null(f->b.plain);
	assert_ptr_equal(f->b.evs[0].body, f->b.plain);
	assert_int_equal(f->b.evs[99].body_len, 299);
	assert_memory_equal(f->b.evs[99].body, "{\"i\":99,\"pad\":\"xx", 17);
	assert_ikey(&f->b.evs[99], "k#100");
	f->lim.max_body = 29999;
	assert_err(f, dec(f, "application/x-ndjson", "gzip", NULL, z, zlen),
	    413, "decompressed body over the limit of 29999 bytes");
	/* The compressed size is a body size too. */
	f->lim.max_body = zlen - 1;
	assert_err(f, dec(f, "application/x-ndjson", "gzip", NULL, z, zlen),
	    413, "body over the limit");
	free(z);
	free(s);
}

static void
gzip_exact_zeros(void **state)
{
	struct fx	*f = *state;
	unsigned char	*z;
	const unsigned char *p;
	size_t		 zlen;

	z = zero_gzip(3, &zlen);
	f->lim.allow_opaque = 1;
	f->lim.max_body = 3 * MIB;
	assert_int_equal(dec(f, "application/octet-stream", "x-gzip", NULL, z,
	    zlen), 0);
	assert_int_equal(f->b.n, 1);
	assert_int_equal(f->b.evs[0].body_len, 3 * MIB);
	p = f->b.evs[0].body;
	assert_int_equal(p[0] | p[MIB] | p[3 * MIB - 1], 0);
	f->lim.max_body = 3 * MIB - 1;
	assert_err(f, dec(f, "application/octet-stream", "gzip", NULL, z,
	    zlen), 413, "decompressed body over the limit");
	free(z);
}

static void
gzip_members_and_case(void **state)
{
	struct fx	*f = *state;
	unsigned char	*z1, *z2, *z;
	size_t		 n1, n2;

	z1 = gz("{\"a\":1}\n", 8, &n1);
	z2 = gz("{\"a\":2}\n", 8, &n2);
	assert_non_null(z = malloc(n1 + n2));
	memcpy(z, z1, n1);
	memcpy(z + n1, z2, n2);
	assert_int_equal(dec(f, "application/x-ndjson", " GZip ", NULL, z,
	    n1 + n2), 0);
	assert_int_equal(f->b.n, 2);
	assert_mem(f->b.evs[1].body, f->b.evs[1].body_len, "{\"a\":2}");
	assert_int_equal(dec(f, "application/x-ndjson", "identity", NULL,
	    "{}", 2), 0);
	assert_null(f->b.plain);
	free(z);
	free(z1);
	free(z2);
}

static void
gzip_corrupt(void **state)
{
	struct fx	*f = *state;
	unsigned char	*z;
	size_t		 zlen;

	z = gz("{\"a\":\"hello hello hello\"}", 25, &zlen);
	assert_err(f, dec(f, "application/json", "gzip", NULL, z, zlen - 5),
	    400, "gzip: unexpected end of data");
	z[zlen - 6] ^= 0xff;	/* CRC */
	assert_err(f, dec(f, "application/json", "gzip", NULL, z, zlen), 400,
	    "gzip: ");
	z[zlen - 6] ^= 0xff;
	z[zlen - 8] ^= 0xff;
	assert_err(f, dec(f, "application/json", "gzip", NULL, z, zlen), 400,
	    "gzip: ");
	assert_err(f, dec(f, "application/json", "gzip", NULL, "{}", 2), 400,
	    "gzip: ");
	z[zlen - 8] ^= 0xff;
	z[zlen - 1] = 0x55;	/* trailing garbage after a good member */
	assert_err(f, dec(f, "application/json", "gzip", NULL, z, zlen), 400,
	    "gzip: ");
	free(z);
}

static void
encoding_unknown(void **state)
{
	struct fx *f = *state;

	assert_err(f, dec(f, "application/json", "br", NULL, "{}", 2), 415,
	    "content encoding br not accepted");
	assert_err(f, dec(f, "application/json", "gzip, deflate", NULL, "{}",
	    2), 415, "content encoding gzip, deflate not accepted");
}

static void
json_key(void **state)
{
	struct fx	*f = *state;
	const char	*s =
	    "{\"id\":\"abc\",\"x\":1}\n"
	    "{\"id\":12345678901}\n"
	    "{\"id\":-7}\n"
	    "{\"id\":1.5}\n"
	    "{\"x\":\"no id\"}\n"
	    "[\"id\",\"array\"]\n"
	    "{\"id\":true}\n"
	    "{\"id\":null}\n"
	    "{\"id\":{\"a\":1}}\n"
	    "{\"id\":\"\"}\n"
	    "\"id\"\n";
	size_t		 i;

	f->lim.json_key = "id";
	assert_int_equal(decs(f, "application/x-ndjson", NULL, s), 0);
	assert_int_equal(f->b.n, 11);
	assert_ikey(&f->b.evs[0], "abc");
	assert_ikey(&f->b.evs[1], "12345678901");
	assert_ikey(&f->b.evs[2], "-7");
	assert_ikey(&f->b.evs[3], "1.5");
	for (i = 4; i < 11; i++)
		assert_ikey(&f->b.evs[i], NULL);
	/* With a header key, events without the field fall back to it. */
	assert_int_equal(decs(f, "application/x-ndjson", "H", s), 0);
	assert_ikey(&f->b.evs[0], "abc");
	assert_ikey(&f->b.evs[4], "H#5");
	assert_ikey(&f->b.evs[5], "H#6");
	assert_ikey(&f->b.evs[10], "H#11");
	/* A single event: the field first, then the header. */
	assert_int_equal(decs(f, "application/json", "H", "{\"id\":\"j\"}"),
	    0);
	assert_ikey(&f->b.evs[0], "j");
	assert_int_equal(decs(f, "application/json", NULL, "{\"id\":\"j\"}"),
	    0);
	assert_ikey(&f->b.evs[0], "j");
	assert_int_equal(decs(f, "application/json", "H", "{\"x\":1}"), 0);
	assert_ikey(&f->b.evs[0], "H");
}

/* Cases the fast validator leaves to jansson give jansson's answer. */
static void
json_key_edges(void **state)
{
	struct fx	*f = *state;
	const char	*s =
	    "{\"id\":\"a\\\"b\\u00e9\"}\n"
	    "{\"i\\u0064\":\"esc-name\"}\n"
	    "{\"id\":9223372036854775807}\n"
	    "{\"id\":1e2}\n"
	    "{\"id\":\"first\",\"x\":{\"id\":\"inner\"},\"id\":\"last\"}\n"
	    "{\"id\":-0}\n"
	    "{\"s\":\"\\ud83d\\ude00 \xf0\x9f\x98\x80\",\"id\":7}\n";

	f->lim.json_key = "id";
	assert_int_equal(decs(f, "application/x-ndjson", NULL, s), 0);
	assert_int_equal(f->b.n, 7);
	assert_ikey(&f->b.evs[0], "a\"b\xc3\xa9");
	assert_ikey(&f->b.evs[1], "esc-name");
	assert_ikey(&f->b.evs[2], "9223372036854775807");
	assert_ikey(&f->b.evs[3], "100.0");
	assert_ikey(&f->b.evs[4], "last");
	assert_ikey(&f->b.evs[5], "0");
	assert_ikey(&f->b.evs[6], "7");
	assert_err(f, decs(f, "application/x-ndjson", NULL,
	    "{}\n{\"id\":9223372036854775808}\n"), 400,
	    "line 2: number out of range (column 25): integers must fit in "
	    "64 bits and reals in a double; send larger numbers as strings");
	assert_err(f, decs(f, "application/x-ndjson", NULL,
	    "[1e999]\n"), 400, "line 1: number out of range (column 6)");
	assert_err(f, decs(f, "application/x-ndjson", NULL,
	    "{}\n\"\\ud800\"\n"), 400, "line 2: invalid JSON: invalid Unicode");
	/* "\u0000" is valid JSON, also in a key: its bytes are the key. */
	assert_int_equal(decs(f, "application/json", NULL, "\"a\\u0000\""),
	    0);
	assert_int_equal(decs(f, "application/x-ndjson", NULL,
	    "{\"id\":\"a\\u0000b\"}\n"), 0);
	assert_int_equal(f->b.evs[0].ikey_len, 3);
	assert_memory_equal(f->b.evs[0].ikey, "a\0b", 3);
}

static void
header_key(void **state)
{
	struct fx *f = *state;

	assert_int_equal(decs(f, "application/json", "req-1", "[1]"), 0);
	assert_ikey(&f->b.evs[0], "req-1");
	assert_int_equal(decs(f, "application/x-ndjson", "req-1",
	    "1\n2\n"), 0);
	assert_ikey(&f->b.evs[0], "req-1#1");
	assert_ikey(&f->b.evs[1], "req-1#2");
	assert_int_equal(decs(f, "application/json", "", "[1]"), 0);
	assert_ikey(&f->b.evs[0], NULL);
	/* whitespace after a header value is not part of it */
	assert_int_equal(decs(f, "application/json", "req-1 \t ", "[1]"), 0);
	assert_ikey(&f->b.evs[0], "req-1");
	assert_int_equal(decs(f, "application/json", "  ", "[1]"), 0);
	assert_ikey(&f->b.evs[0], NULL);
}

/* Keys stay right while the arena and the event array grow. */
static void
keys_arena_growth(void **state)
{
	struct fx	*f = *state;
	char		*s = ndjson_body(1000, 40000), want[64];
	size_t		 i;

	f->lim.json_key = "i";
	assert_int_equal(decs(f, "application/x-ndjson", NULL, s), 0);
	for (i = 0; i < 1000; i++) {
		snprintf(want, sizeof(want), "%zu", i);
		assert_ikey(&f->b.evs[i], want);
	}
	f->lim.json_key = NULL;
	assert_int_equal(decs(f, "application/x-ndjson", "key", s), 0);
	for (i = 0; i < 1000; i++) {
		snprintf(want, sizeof(want), "key#%zu", i + 1);
		assert_ikey(&f->b.evs[i], want);
		assert_mem(f->b.evs[i].ctype, f->b.evs[i].ctype_len,
		    "application/x-ndjson");
	}
	free(s);
}

static void
key_too_long(void **state)
{
	struct fx	*f = *state;
	char		 k[SPOOL_IKEY_MAX + 2], body[SPOOL_IKEY_MAX + 64];
	size_t		 i;

	memset(k, 'k', sizeof(k));
	k[SPOOL_IKEY_MAX] = '\0';
	assert_int_equal(decs(f, "application/json", k, "1"), 0);
	assert_int_equal(f->b.evs[0].ikey_len, SPOOL_IKEY_MAX);
	/* A batch's header: room kept for "#LINE" whatever the line. */
	k[INTAKE_BATCH_IKEY_MAX] = '\0';
	strcpy(body, "1\n1\n1\n1\n1\n1\n1\n1\n1\n1\n");
	assert_int_equal(decs(f, "application/x-ndjson", k, body), 0);
	assert_int_equal(f->b.evs[9].ikey_len, INTAKE_BATCH_IKEY_MAX + 3);
	k[INTAKE_BATCH_IKEY_MAX] = 'k';
	k[INTAKE_BATCH_IKEY_MAX + 1] = '\0';
	assert_err(f, decs(f, "application/x-ndjson", k, body), 400,
	    "Idempotency-Key longer than 1016 bytes: on an NDJSON batch");
	k[INTAKE_BATCH_IKEY_MAX + 1] = 'k';
	k[SPOOL_IKEY_MAX] = 'k';
	k[SPOOL_IKEY_MAX + 1] = '\0';
	assert_err(f, decs(f, "application/json", k, "1"), 400,
	    "idempotency key longer than 1024 bytes");
	f->lim.json_key = "id";
	for (i = 0; i < 2; i++) {
		snprintf(body, sizeof(body), "{}\n{\"id\":\"%.*s\"}\n",
		    SPOOL_IKEY_MAX + (int)i, k);
		if (i == 0) {
			assert_int_equal(decs(f, "application/x-ndjson", NULL,
			    body), 0);
			assert_int_equal(f->b.evs[1].ikey_len, SPOOL_IKEY_MAX);
		} else
			assert_err(f, decs(f, "application/x-ndjson", NULL,
			    body), 400, "line 2: idempotency key longer");
	}
}

static char *
nested(size_t depth, const char *open, const char *close)
{
	size_t	 i, ol = strlen(open), cl = strlen(close);
	char	*s, *p;

	assert_non_null(s = malloc(depth * (ol + cl) + 16));
	p = s;
	for (i = 0; i < depth; i++, p += ol)
		memcpy(p, open, ol);
	*p++ = '1';
	for (i = 0; i < depth; i++, p += cl)
		memcpy(p, close, cl);
	*p = '\0';
	return s;
}

static void
depth(void **state)
{
	struct fx	*f = *state;
	char		*s64 = nested(64, "[", "]"), *s65 = nested(65, "{\"a\":",
	    "}"), *s1000 = nested(1000, "[", "]"), *nd;

	assert_int_equal(decs(f, "application/json", NULL, s64), 0);
	assert_err(f, decs(f, "application/json", NULL, s65), 400,
	    "line 1: JSON nested deeper than 64 levels");
	assert_err(f, decs(f, "application/json", NULL, s1000), 400,
	    "nested deeper");
	assert_non_null(nd = malloc(strlen(s65) + 16));
	sprintf(nd, "1\n\n%s\n2\n", s65);
	assert_err(f, decs(f, "application/x-ndjson", NULL, nd), 400,
	    "line 3: JSON nested deeper than 64 levels");
	sprintf(nd, "\n\n\n[\n%s]", s65);
	assert_err(f, decs(f, "application/json", NULL, nd), 400,
	    "line 5: JSON nested deeper than 64 levels");
	/* Brackets in strings are not nesting. */
	free(nd);
	assert_non_null(nd = malloc(300));
	memset(nd, '[', 300);
	nd[0] = '"';
	nd[1] = '\\';
	nd[2] = '"';
	nd[298] = '"';
	nd[299] = '\0';
	assert_int_equal(decs(f, "application/json", NULL, nd), 0);
	free(nd);
	free(s64);
	free(s65);
	free(s1000);
}

static void
invalid_utf8(void **state)
{
	struct fx *f = *state;

	assert_err(f, decs(f, "application/json", NULL,
	    "{\"a\":\"\xc3\x28\"}"), 400, "line 1: invalid JSON: ");
	assert_err(f, decs(f, "application/x-ndjson", NULL,
	    "\"ok \xc3\xa9\"\n\"\xed\xa0\x80\"\n"), 400, "line 2: invalid JSON");
	assert_err(f, decs(f, "application/x-ndjson", NULL,
	    "\"\xff\"\n"), 400, "line 1: invalid JSON");
	/* The message quotes the bytes, made printable. */
	for (const char *p = f->err; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
}

static void
opaque(void **state)
{
	struct fx	*f = *state;
	const char	*s = "hello, not JSON \xff";

	assert_err(f, decs(f, "text/plain; charset=utf-8", NULL, s), 415,
	    "content type text/plain not accepted for this stream (send "
	    "application/json or application/x-ndjson)");
	assert_err(f, decs(f, NULL, NULL, "{}"), 415, "missing Content-Type");
	assert_err(f, decs(f, " ; x=y", NULL, "{}"), 415,
	    "missing Content-Type");
	f->lim.allow_opaque = 1;
	f->lim.json_key = "id";
	assert_int_equal(decs(f, "Text/Plain; charset=utf-8", "op", s), 0);
	assert_int_equal(f->b.n, 1);
	assert_ptr_equal(f->b.evs[0].body, s);
	assert_int_equal(f->b.evs[0].body_len, strlen(s));
	assert_mem(f->b.evs[0].ctype, f->b.evs[0].ctype_len, "text/plain");
	assert_ikey(&f->b.evs[0], "op");
	assert_err(f, decs(f, NULL, NULL, "{}"), 415, "missing Content-Type");
	assert_err(f, decs(f, "text/\x01\xff", NULL, ""), 400, "empty body");
}

static void
err_quoting(void **state)
{
	struct fx	*f = *state;
	char		 ct[400];
	const char	*p;

	memset(ct, 'a', sizeof(ct));
	ct[5] = '\n';
	ct[6] = (char)0xc3;
	ct[sizeof(ct) - 1] = '\0';
	assert_err(f, decs(f, ct, NULL, "{}"), 415, "content type aaaaa??a");
	for (p = f->err; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	f->lim.allow_opaque = 1;
	assert_err(f, decs(f, ct, NULL, "{}"), 415, "content type longer");
	/* A NULL or tiny error buffer is fine. */
	intake_batch_free(&f->b);
	assert_int_equal(intake_decode(&f->lim, NULL, NULL, NULL, "{}", 2,
	    &f->b, NULL, 0), 415);
	assert_int_equal(intake_decode(&f->lim, NULL, NULL, NULL, "{}", 2,
	    &f->b, f->err, 4), 415);
	assert_string_equal(f->err, "mis");
	intake_batch_free(&f->b);
	intake_batch_free(&f->b);
	intake_batch_free(NULL);
}

static int
ref_depth(json_t *v)
{
	const char	*k;
	json_t		*c;
	size_t		 i;
	int		 d, max = 0;

	if (json_is_array(v))
		json_array_foreach(v, i, c)
			if ((d = ref_depth(c)) > max)
				max = d;
	if (json_is_object(v))
		json_object_foreach(v, k, c)
			if ((d = ref_depth(c)) > max)
				max = d;
	return json_is_array(v) || json_is_object(v) ? max + 1 : 0;
}

/* What jansson alone says of S: accepted (depth <= 64) and its key. */
static int
ref_decode(const unsigned char *s, size_t n, char *key, size_t *klen)
{
	json_t	*v, *f;
	int	 ok;

	*klen = 0;
	if ((v = json_loadb((const char *)s, n, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, NULL)) == NULL)
		return 0;
	ok = ref_depth(v) <= 64;
	f = json_is_object(v) ? json_object_get(v, "id") : NULL;
	if (json_is_string(f)) {
		*klen = json_string_length(f);
		memcpy(key, json_string_value(f), *klen);
	} else if (json_is_integer(f))
		*klen = (size_t)sprintf(key, "%lld",
		    (long long)json_integer_value(f));
	else if (json_is_real(f))
		*klen = json_dumpb(f, key, 64, JSON_ENCODE_ANY);
	json_decref(v);
	return ok;
}

static uint64_t
xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/*
 * The fast validator must agree with jansson on every input: mutate a
 * corpus of tricky texts and compare verdicts and keys.
 */
static void
jansson_agreement(void **state)
{
	static const char *seed[] = {
	    "{\"id\":\"abc\",\"n\":[1,2.5,-3e2,{\"x\":null}],\"t\":true}",
	    "{\"id\":12345,\"s\":\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\"}",
	    "{\"id\":-0.1,\"z\":\"\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac\"}",
	    "{\"a\":{\"id\":\"in\"},\"id\":\"out\",\"id\":\"last\"}",
	    "[{\"id\":1}, \"\\u0041\", 1E+2, -0, 0.5e-7]",
	    "{\"id\":9223372036854775807,\"b\":-9223372036854775808}",
	    "{\"i\\u0064\":\"escaped key\",\"id\\u0000\":1}",
	    "{\"id\":\"a\\\"b\\u0000\"}",
	    "[1e308, 1e309, -1.7976931348623157e308, 123456789012345678]",
	    "\r\n\t {\"id\" : [ ] , \"x\" : { } }\t ",
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	    "]]]",
	    "{\"id\":\"\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\x7f\"}",
	    "{\"id\":1.5,\"x\":\"\\ud800\\udc00\\udbff\\udfff\"}",
	    "\"\\/\\b\\f\\r\"", "true", "false", "null", "0", "-12.5E03",
	};
	static const unsigned char alpha[] = "\"\\u0dD8Ce+-.[]{},: \t\nxtfn"
	    "\x00\x01\x1f\x7f\x80\xbf\xc0\xc2\xc3\xa9\xe0\xed\xa0\xf0\xf4"
	    "\x90\x8f\xff";
	struct fx	*f = *state;
	unsigned char	 buf[512];
	char		 key[1100];
	size_t		 n, klen, i, j, pos;
	uint64_t	 x = 88172645463325252ull;
	int		 ok, rc;

	f->lim.json_key = "id";
	for (i = 0; i < 60000; i++) {
		n = strlen(seed[i % (sizeof(seed) / sizeof(seed[0]))]);
		memcpy(buf, seed[i % (sizeof(seed) / sizeof(seed[0]))], n);
		for (j = xorshift(&x) % 4; j > 0 && n > 0; j--) {
			pos = xorshift(&x) % n;
			switch (xorshift(&x) % 3) {
			case 0:
				buf[pos] = alpha[xorshift(&x) %
				    (sizeof(alpha) - 1)];
				break;
			case 1:
				memmove(buf + pos + 1, buf + pos, n - pos);
				buf[pos] = alpha[xorshift(&x) %
				    (sizeof(alpha) - 1)];
				n++;
				break;
			default:
				memmove(buf + pos, buf + pos + 1, n - pos - 1);
				n--;
			}
		}
		ok = ref_decode(buf, n, key, &klen);
		rc = dec(f, "application/json", NULL, NULL, buf, n);
		if (n == 0)
			continue;
		if ((rc == 0) != ok)
			fail_msg("#%zu \"%.*s\": intake %d (%s), jansson %d",
			    i, (int)n, buf, rc, f->err, ok);
		if (ok && (f->b.evs[0].ikey_len != klen || (klen > 0 &&
		    memcmp(f->b.evs[0].ikey, key, klen) != 0)))
			fail_msg("#%zu \"%.*s\": key \"%.*s\", jansson \"%.*s\"",
			    i, (int)n, buf, (int)f->b.evs[0].ikey_len,
			    f->b.evs[0].ikey, (int)klen, key);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(gzip_bomb, setup, teardown),
		cmocka_unit_test_setup_teardown(json_single, setup, teardown),
		cmocka_unit_test_setup_teardown(json_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(ctype_params_case, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(json_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(ndjson_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(ndjson_bad_line, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(ndjson_blank_crlf, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(empty_body, setup, teardown),
		cmocka_unit_test_setup_teardown(max_events, setup, teardown),
		cmocka_unit_test_setup_teardown(max_body_plain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(max_body_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(gzip_exact_zeros, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(gzip_members_and_case, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(gzip_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(encoding_unknown, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(json_key, setup, teardown),
		cmocka_unit_test_setup_teardown(json_key_edges, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(header_key, setup, teardown),
		cmocka_unit_test_setup_teardown(keys_arena_growth, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(key_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(depth, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_utf8, setup, teardown),
		cmocka_unit_test_setup_teardown(opaque, setup, teardown),
		cmocka_unit_test_setup_teardown(err_quoting, setup, teardown),
		cmocka_unit_test_setup_teardown(jansson_agreement, setup,
		    teardown),
	};

	return cmocka_run_group_tests_name("intake", tests, NULL, NULL);
}
