/*
 * intake.c: the intake decoder.  Turns one HTTP request body into spool
 * events (contract in intake.h): Content-Encoding, Content-Type, NDJSON
 * splitting, JSON validation and idempotency keys.
 *
 * It runs for every request on the HTTP threads, so it is built to be cheap:
 * one pass over the body; a scanner that proves most JSON valid and finds
 * the json_key value without building a tree, with jansson as the judge of
 * whatever the scanner is not sure of (see "The fast validator"); and per
 * request at most three allocations that grow geometrically: the
 * decompressed body, the event array and one arena holding the media type
 * and every key.
 *
 * Invariants:
 *  - Limits hold on what we hold in memory: a gzip body is inflated into a
 *    buffer never larger than max_body + 1 bytes, and inflating stops as
 *    soon as that byte is written, so a small bomb costs at most max_body.
 *  - A batch is all or nothing: on any error OUT is freed and zeroed.
 *  - The arena holds the media type at offset 0, then the keys of the
 *    events in event order with no gaps.  While decoding, evs[i].ikey is
 *    NULL (the arena may still move) and only ikey_len is set; fixup()
 *    turns lengths into pointers once the arena is final.  An empty key is
 *    no key, as for the spool's fingerprint.
 *  - An event is valid JSON exactly when jansson (json_loadb with
 *    JSON_DECODE_ANY | JSON_ALLOW_NUL: "\u0000" is valid JSON) accepts it
 *    and it nests at most INTAKE_MAX_DEPTH deep; the scanner only saves
 *    the work, never changes the verdict.  Numbers are held to what
 *    jansson holds (integers of 64 bits, reals of a double), a limit RFC
 *    8259 allows; the message then says so.
 *  - Error messages may quote the client's bytes; they are made printable
 *    ASCII before they leave.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <zlib.h>

#include "intake.h"

#define INTAKE_MAX_DEPTH	64
#define QUOTE_MAX		64	/* client text quoted in errors */

enum kind {
	KIND_JSON,
	KIND_NDJSON,
	KIND_OPAQUE,
};

struct dec {
	const struct intake_limits	*lim;
	struct intake_batch		*out;
	const char			*ikey;	/* header key, or NULL */
	size_t				 ikey_len;
	char				*err;
	size_t				 errlen;
};

static int	fail(struct dec *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static int
fail(struct dec *d, int status, const char *fmt, ...)
{
	va_list	 ap;
	char	*p;

	if (d->err == NULL || d->errlen == 0)
		return status;
	va_start(ap, fmt);
	vsnprintf(d->err, d->errlen, fmt, ap);
	va_end(ap);
	for (p = d->err; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	return status;
}

/* Is the token S of N bytes LIT, ignoring ASCII case? */
static int
token_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* The media type of a Content-Type value: no parameters, no spaces. */
static void
media_type(const char *ctype, const char **mt, size_t *len)
{
	const char	*s = ctype, *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strcspn(s, ";");
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*mt = s;
	*len = (size_t)(e - s);
}

static int
content_kind(struct dec *d, const char *ctype, enum kind *kind,
    const char **mt, size_t *mtlen)
{
	static const char hint[] =
	    "(send application/json or application/x-ndjson)";

	*kind = KIND_OPAQUE;
	*mt = NULL;
	*mtlen = 0;
	if (ctype != NULL)
		media_type(ctype, mt, mtlen);
	if (ctype == NULL || *mtlen == 0)
		return fail(d, 415, "missing Content-Type %s", hint);
	if (token_is(*mt, *mtlen, "application/json"))
		*kind = KIND_JSON;
	else if (token_is(*mt, *mtlen, "application/x-ndjson"))
		*kind = KIND_NDJSON;
	else if (!d->lim->allow_opaque)
		return fail(d, 415, "content type %.*s not accepted for this "
		    "stream %s", (int)(*mtlen > QUOTE_MAX ? QUOTE_MAX : *mtlen),
		    *mt, hint);
	else if (*mtlen > SPOOL_CTYPE_MAX)
		return fail(d, 415, "content type longer than %d bytes",
		    SPOOL_CTYPE_MAX);
	else
		*kind = KIND_OPAQUE;
	return 0;
}

/* Sets *gz for gzip; 415 for anything but gzip and identity. */
static int
content_encoding(struct dec *d, const char *cenc, int *gz)
{
	const char	*s, *e;

	*gz = 0;
	if (cenc == NULL)
		return 0;
	for (s = cenc; *s == ' ' || *s == '\t'; s++)
		;
	for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t'); e--)
		;
	if (e == s || token_is(s, (size_t)(e - s), "identity"))
		return 0;
	if (token_is(s, (size_t)(e - s), "gzip") ||
	    token_is(s, (size_t)(e - s), "x-gzip")) {
		*gz = 1;
		return 0;
	}
	return fail(d, 415, "content encoding %.*s not accepted (send gzip "
	    "or identity)", (int)(e - s > QUOTE_MAX ? QUOTE_MAX : e - s), s);
}

/*
 * Returns BUF regrown to hold at least NEED elements of ELEM bytes, the
 * capacity doubling from *CAP (capped at MAX), or NULL with BUF untouched.
 */
static void *
grow(void *buf, size_t *cap, size_t need, size_t max, size_t elem)
{
	size_t	 n = *cap ? *cap : 16;
	void	*nb;

	while (n < need)
		n = n > max / 2 ? max : n * 2;
	if (n < need || n > SIZE_MAX / elem)
		return NULL;
	if ((nb = realloc(buf, n * elem)) == NULL)
		return NULL;
	*cap = n;
	return nb;
}

/* Inflates the gzip body IN into out->plain; *plen gets its length. */
static int
gunzip(struct dec *d, const unsigned char *in, size_t len, size_t *plen)
{
	struct intake_batch	*b = d->out;
	z_stream		 zs;
	unsigned char		*p;
	size_t			 stop, cap, have = 0, left = len;
	int			 zrc, rc = 0;

	/* Room for one byte past the limit: writing it means "too big". */
	stop = d->lim->max_body == SIZE_MAX ? SIZE_MAX : d->lim->max_body + 1;
	cap = len > stop / 4 ? stop : len * 4;
	if (cap < 16384)
		cap = stop < 16384 ? stop : 16384;
	if ((b->plain = malloc(cap)) == NULL)
		return fail(d, 500, "out of memory");
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return fail(d, 500, "out of memory");
	for (;;) {
		if (have == cap) {
			if ((p = grow(b->plain, &cap, cap + 1, stop, 1)) ==
			    NULL) {
				rc = fail(d, 500, "out of memory");
				break;
			}
			b->plain = p;
		}
		if (zs.avail_in == 0 && left > 0) {
			zs.next_in = (unsigned char *)in + (len - left);
			zs.avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
			left -= zs.avail_in;
		}
		zs.next_out = b->plain + have;
		zs.avail_out = cap - have > UINT_MAX ? UINT_MAX :
		    (uInt)(cap - have);
		zrc = inflate(&zs, Z_NO_FLUSH);
		have = (size_t)(zs.next_out - b->plain);
		if (have > d->lim->max_body) {
			rc = fail(d, 413, "decompressed body over the limit "
			    "of %zu bytes", d->lim->max_body);
			break;
		}
		if (zrc == Z_STREAM_END) {
			if (zs.avail_in == 0 && left == 0)
				break;
			/* Concatenated members are one gzip file. */
			if (inflateReset(&zs) != Z_OK) {
				rc = fail(d, 500, "gzip: inflateReset failed");
				break;
			}
		} else if (zrc == Z_BUF_ERROR && zs.avail_in == 0 && left == 0) {
			rc = fail(d, 400, "gzip: unexpected end of data");
			break;
		} else if (zrc == Z_MEM_ERROR) {
			rc = fail(d, 500, "out of memory");
			break;
		} else if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
			rc = fail(d, 400, "gzip: %s",
			    zs.msg ? zs.msg : "invalid data");
			break;
		}
	}
	inflateEnd(&zs);
	*plen = have;
	return rc;
}

/* Appends A and B to the arena. */
static int
arena_put(struct dec *d, const char *a, size_t alen, const char *bb,
    size_t blen)
{
	struct intake_batch	*b = d->out;
	size_t			 need = b->keys_len + alen + blen;
	char			*p;

	if (need > b->keys_cap) {
		p = grow(b->keys, &b->keys_cap, need < 256 ? 256 : need,
		    SIZE_MAX, 1);
		if (p == NULL)
			return fail(d, 500, "out of memory");
		b->keys = p;
	}
	memcpy(b->keys + b->keys_len, a, alen);
	if (blen)
		memcpy(b->keys + b->keys_len + alen, bb, blen);
	b->keys_len += alen + blen;
	return 0;
}

/* A new event for BODY; 413 past max_events. */
static int
ev_push(struct dec *d, const void *body, size_t len, struct spool_event **evp)
{
	struct intake_batch	*b = d->out;
	struct spool_event	*ev;

	if (b->n >= d->lim->max_events)
		return fail(d, 413, "more than %zu events in one request",
		    d->lim->max_events);
	if (b->n == b->evs_cap) {
		ev = grow(b->evs, &b->evs_cap, b->n + 1, d->lim->max_events,
		    sizeof(*ev));
		if (ev == NULL)
			return fail(d, 500, "out of memory");
		b->evs = ev;
	}
	ev = &b->evs[b->n++];
	memset(ev, 0, sizeof(*ev));
	ev->body = body;
	ev->body_len = len;
	b->bytes += len;
	*evp = ev;
	return 0;
}

/*
 * The key given by V, the value of the json_key field: a string as is, an
 * integer as %lld, a real as jansson writes it, other types none.  *K is
 * set to point into V or BUF; returns the length.
 */
static size_t
key_of(json_t *v, const char **k, char *buf, size_t size)
{
	size_t	n;

	if (json_is_string(v)) {
		*k = json_string_value(v);
		return json_string_length(v);
	}
	*k = buf;
	if (json_is_integer(v))
		return (size_t)snprintf(buf, size, "%lld",
		    (long long)json_integer_value(v));
	if (json_is_real(v) &&
	    (n = json_dumpb(v, buf, size, JSON_ENCODE_ANY)) < size)
		return n;
	return 0;
}

/*
 * Sets the key of EV from K of KLEN bytes (its json_key field; KLEN 0 when
 * it has none) and the Idempotency-Key header: K first, so that an event
 * keeps its key whether it comes alone or in a batch (a failed batch
 * retried one event at a time finds its duplicates).  Else the header,
 * with "#LINE" appended for an NDJSON line (LINE > 0) so that every line
 * has a key of its own.  Else none.
 */
static int
ev_key(struct dec *d, struct spool_event *ev, const char *k, size_t klen,
    size_t line)
{
	const char	*sfx = NULL;
	char		 lbuf[32];
	size_t		 slen = 0;

	if (d->ikey_len > 0 && klen == 0) {
		k = d->ikey;
		klen = d->ikey_len;
		if (line > 0 && klen > INTAKE_BATCH_IKEY_MAX)
			return fail(d, 400, "Idempotency-Key longer than %d "
			    "bytes: on an NDJSON batch \"#LINE\" is appended "
			    "to it for each line's key, of at most %d bytes",
			    INTAKE_BATCH_IKEY_MAX, SPOOL_IKEY_MAX);
		if (line > 0) {
			sfx = lbuf;
			slen = (size_t)snprintf(lbuf, sizeof(lbuf), "#%zu",
			    line);
		}
	}
	if (klen + slen > SPOOL_IKEY_MAX) {
		if (line > 0)
			return fail(d, 400, "line %zu: idempotency key longer "
			    "than %d bytes", line, SPOOL_IKEY_MAX);
		return fail(d, 400, "idempotency key longer than %d bytes",
		    SPOOL_IKEY_MAX);
	}
	ev->ikey_len = klen + slen;
	return klen ? arena_put(d, k, klen, sfx, slen) : 0;
}

/*
 * The fast validator.  jansson alone costs ~6 us for a 300-byte event,
 * more than the whole budget per event, so one pass here proves most
 * events valid and finds the json_key value without building a tree.  It
 * accepts only what jansson accepts (strict UTF-8, escapes other than
 * \u0000 and lone surrogates, numbers too short to overflow, depth <=
 * INTAKE_MAX_DEPTH, a json_key spelled without escapes); on anything else
 * it gives up and jansson judges, so the verdict and the error message
 * are always jansson's.
 */
struct scan {
	const unsigned char	*p, *end;
	const char		*key;		/* json_key or NULL */
	size_t			 keylen;
	int			 esc;		/* last string had escapes */
	const unsigned char	*kv, *kvend;	/* key's value, top level */
	int			 kvesc;
};

#define IS_DIGIT(c)	((c) >= '0' && (c) <= '9')

static void
sc_ws(struct scan *sc)
{
	while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' ||
	    *sc->p == '\n' || *sc->p == '\r'))
		sc->p++;
}

/* The length of the UTF-8 character at P (RFC 3629), 0 if invalid. */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	size_t	n = (size_t)(end - p), len;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len || (p[1] & 0xc0) != 0x80 ||
	    (len > 2 && (p[2] & 0xc0) != 0x80) ||
	    (len > 3 && (p[3] & 0xc0) != 0x80))
		return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) ||	/* overlong */
	    (p[0] == 0xed && p[1] > 0x9f) ||	/* surrogate */
	    (p[0] == 0xf0 && p[1] < 0x90) ||	/* overlong */
	    (p[0] == 0xf4 && p[1] > 0x8f))	/* above U+10FFFF */
		return 0;
	return len;
}

/* The \uXXXX escape at P: its code unit, or -1. */
static long
sc_uesc(const unsigned char *p, const unsigned char *end)
{
	long	v = 0;
	int	i, c;

	if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
		return -1;
	for (i = 2; i < 6; i++) {
		c = p[i] | 0x20;
		if (IS_DIGIT(p[i]))
			v = v << 4 | (p[i] - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (c - 'a' + 10);
		else
			return -1;
	}
	return v;
}

static int
sc_string(struct scan *sc)
{
	const unsigned char	*p = sc->p + 1, *end = sc->end;
	long			 u;
	size_t			 l;

	sc->esc = 0;
	for (;;) {
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' &&
		    *p != '\\')
			p++;
		if (p == end || *p < 0x20)
			return -1;
		if (*p == '"')
			break;
		if (*p == '\\') {
			sc->esc = 1;
			if (end - p >= 2 && p[1] != 'u' && p[1] != '\0' &&
			    strchr("\"\\/bfnrt", p[1]) != NULL) {
				p += 2;
				continue;
			}
			if ((u = sc_uesc(p, end)) <= 0 ||
			    (u >= 0xdc00 && u <= 0xdfff))
				return -1;
			p += 6;
			if (u >= 0xd800 && u <= 0xdbff) {
				u = sc_uesc(p, end);
				if (u < 0xdc00 || u > 0xdfff)
					return -1;
				p += 6;
			}
		} else if ((l = utf8_len(p, end)) > 0)
			p += l;
		else
			return -1;
	}
	sc->p = p + 1;
	return 0;
}

/* A number; long ones, which might overflow, are left to jansson. */
static int
sc_number(struct scan *sc)
{
	const unsigned char	*p = sc->p, *end = sc->end, *d, *e;
	int			 real = 0;

	if (*p == '-')
		p++;
	d = p;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && IS_DIGIT(*p))
			p++;
	else
		return -1;
	if (p < end && *p == '.') {
		real = 1;
		if (++p == end || !IS_DIGIT(*p))
			return -1;
		while (p < end && IS_DIGIT(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = 1;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		for (e = p; p < end && IS_DIGIT(*p); p++)
			;
		if (p == e || p - e > 2)
			return -1;
	}
	if (p - d > (real ? 40 : 18))
		return -1;
	sc->p = p;
	return 0;
}

static int	sc_value(struct scan *, int);

/* Ends a member or element: 0 at CLOSE, 1 after a comma, -1 otherwise. */
static int
sc_next(struct scan *sc, int close)
{
	sc_ws(sc);
	if (sc->p == sc->end)
		return -1;
	if (*sc->p == close) {
		sc->p++;
		return 0;
	}
	if (*sc->p++ != ',')
		return -1;
	sc_ws(sc);
	return 1;
}

static int
sc_array(struct scan *sc, int depth)
{
	int	rc;

	sc->p++;
	sc_ws(sc);
	if (sc->p < sc->end && *sc->p == ']') {
		sc->p++;
		return 0;
	}
	do {
		if (sc_value(sc, depth) != 0)
			return -1;
	} while ((rc = sc_next(sc, ']')) == 1);
	return rc;
}

static int
sc_object(struct scan *sc, int depth)
{
	const unsigned char	*k, *v;
	int			 rc, want;

	sc->p++;
	sc_ws(sc);
	if (sc->p < sc->end && *sc->p == '}') {
		sc->p++;
		return 0;
	}
	do {
		if (sc->p == sc->end || *sc->p != '"')
			return -1;
		k = sc->p;
		if (sc_string(sc) != 0)
			return -1;
		want = depth == 1 && sc->key != NULL;
		if (want && sc->esc)
			return -1;	/* might spell json_key */
		want = want && (size_t)(sc->p - k - 2) == sc->keylen &&
		    memcmp(k + 1, sc->key, sc->keylen) == 0;
		sc_ws(sc);
		if (sc->p == sc->end || *sc->p++ != ':')
			return -1;
		sc_ws(sc);
		v = sc->p;
		if (sc_value(sc, depth) != 0)
			return -1;
		if (want) {	/* the last one wins, as in jansson */
			sc->kv = v;
			sc->kvend = sc->p;
			sc->kvesc = *v == '"' && sc->esc;
		}
	} while ((rc = sc_next(sc, '}')) == 1);
	return rc;
}

/* A value inside DEPTH containers. */
static int
sc_value(struct scan *sc, int depth)
{
	static const char	*lit[] = { "false", "null", "true" };
	const char		*l;

	if (sc->p == sc->end)
		return -1;
	switch (*sc->p) {
	case '{':
	case '[':
		if (depth >= INTAKE_MAX_DEPTH)
			return -1;
		return *sc->p == '{' ? sc_object(sc, depth + 1) :
		    sc_array(sc, depth + 1);
	case '"':
		return sc_string(sc);
	case 'f':
	case 'n':
	case 't':
		l = lit[*sc->p == 'f' ? 0 : *sc->p == 'n' ? 1 : 2];
		if ((size_t)(sc->end - sc->p) < strlen(l) ||
		    memcmp(sc->p, l, strlen(l)) != 0)
			return -1;
		sc->p += strlen(l);
		return 0;
	default:
		return sc_number(sc);
	}
}

/* A whole text: one value between optional whitespace. */
static int
sc_text(struct scan *sc)
{
	sc_ws(sc);
	if (sc_value(sc, 0) != 0)
		return -1;
	sc_ws(sc);
	return sc->p == sc->end ? 0 : -1;
}

/* The key from the json_key value the scan found. */
static int
fast_key(struct dec *d, struct spool_event *ev, const struct scan *sc,
    size_t line)
{
	const char	*v = (const char *)sc->kv, *k = NULL;
	size_t		 n = (size_t)(sc->kvend - sc->kv), klen = 0;
	char		 buf[64];
	json_t		*f = NULL;
	int		 rc;

	if (v == NULL || *v == '{' || *v == '[' || *v == 't' || *v == 'f' ||
	    *v == 'n')
		;
	else if (*v == '"' && !sc->kvesc) {
		k = v + 1;
		klen = n - 2;
	} else if (*v != '"' && memchr(v, '.', n) == NULL &&
	    memchr(v, 'e', n) == NULL && memchr(v, 'E', n) == NULL) {
		memcpy(buf, v, n);	/* at most 19 bytes: sc_number() */
		buf[n] = '\0';
		k = buf;
		klen = (size_t)snprintf(buf, sizeof(buf), "%lld",
		    strtoll(buf, NULL, 10));
	} else if ((f = json_loadb(v, n, JSON_DECODE_ANY | JSON_ALLOW_NUL,
	    NULL)) == NULL)
		return fail(d, 500, "out of memory");
	else
		klen = key_of(f, &k, buf, sizeof(buf));
	rc = ev_key(d, ev, k, klen, line);
	json_decref(f);
	return rc;
}

/*
 * Returns 0 when the JSON text S of N bytes nests at most INTAKE_MAX_DEPTH
 * deep, else 1 + the offset of the bracket that goes one deeper.  Brackets
 * inside strings do not count; invalid JSON is left to jansson.
 */
static size_t
too_deep(const unsigned char *s, size_t n)
{
	size_t	i;
	int	depth = 0;

	if (n <= INTAKE_MAX_DEPTH)
		return 0;
	for (i = 0; i < n; i++) {
		switch (s[i]) {
		case '"':
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			break;
		case '[':
		case '{':
			if (++depth > INTAKE_MAX_DEPTH)
				return i + 1;
			break;
		case ']':
		case '}':
			depth--;
			break;
		}
	}
	return 0;
}

/* The stream's own check (its Avro schema), naming the line. */
static int
schema_check(struct dec *d, const unsigned char *s, size_t n, size_t line)
{
	char msg[512];

	if (d->lim->check(d->lim->check_arg, (const char *)s, n, msg,
	    sizeof(msg)) == 0)
		return 0;
	if (line > 0)
		return fail(d, 400, "line %zu: %s", line, msg);
	return fail(d, 400, "%s", msg);
}

/*
 * Validates S of N bytes (line LINE of NDJSON, or 0 for a whole
 * application/json body) as one JSON value and adds it as an event.
 */
static int
json_event(struct dec *d, const unsigned char *s, size_t n, size_t line)
{
	struct spool_event	*ev;
	struct scan		 sc;
	const char		*k = NULL;
	char			 buf[64];
	json_error_t		 jerr;
	json_t			*v, *f;
	size_t			 at, l, klen = 0;
	int			 rc;

	if ((rc = ev_push(d, s, n, &ev)) != 0)
		return rc;
	if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		return fail(d, 400, "line %zu: starts with a UTF-8 byte order "
		    "mark (EF BB BF): send JSON without one", line ? line : 1);
	if (d->lim->check && (rc = schema_check(d, s, n, line)) != 0)
		return rc;
	memset(&sc, 0, sizeof(sc));
	sc.p = s;
	sc.end = s + n;
	sc.key = d->lim->json_key;
	sc.keylen = sc.key ? strlen(sc.key) : 0;
	if (sc_text(&sc) == 0)
		return fast_key(d, ev, &sc, line);

	if ((at = too_deep(s, n)) != 0) {
		for (l = 1; line == 0 && --at > 0; )
			l += s[at - 1] == '\n';
		return fail(d, 400, "line %zu: JSON nested deeper than %d "
		    "levels", line ? line : l, INTAKE_MAX_DEPTH);
	}
	if ((v = json_loadb((const char *)s, n, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, &jerr)) == NULL) {
		if (json_error_code(&jerr) == json_error_numeric_overflow)
			return fail(d, 400, "line %zu: number out of range "
			    "(column %d): integers must fit in 64 bits and "
			    "reals in a double; send larger numbers as strings",
			    line ? line : (size_t)jerr.line, jerr.column);
		return fail(d, 400, "line %zu: invalid JSON: %s (column %d)",
		    line ? line : (size_t)jerr.line, jerr.text, jerr.column);
	}
	if (sc.key != NULL && json_is_object(v) &&
	    (f = json_object_get(v, sc.key)) != NULL)
		klen = key_of(f, &k, buf, sizeof(buf));
	rc = ev_key(d, ev, k, klen, line);
	json_decref(v);
	return rc;
}

static int
blank(const unsigned char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	return n == 0;
}

/* One event per non-blank line; lines end in "\n" or "\r\n" or at EOF. */
static int
ndjson(struct dec *d, const unsigned char *s, size_t n)
{
	struct intake_batch	*b = d->out;
	const unsigned char	*p = s, *end = s + n, *nl, *e;
	size_t			 line, est;
	int			 rc;

	/* Presize for lines of ~128 bytes; ev_push() grows from there. */
	est = n / 128 + 1;
	if (est > d->lim->max_events)
		est = d->lim->max_events;
	if (est > 16 && est <= 4096)
		b->evs = grow(NULL, &b->evs_cap, est, est, sizeof(*b->evs));
	for (line = 1; p < end; line++) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		e = nl;
		if (e > p && e[-1] == '\r')
			e--;
		if (!blank(p, (size_t)(e - p)) &&
		    (rc = json_event(d, p, (size_t)(e - p), line)) != 0)
			return rc;
		p = nl + 1;
	}
	if (b->n == 0)
		return fail(d, 400, "no events: every line is blank");
	return 0;
}

/* Points ctype and ikey of every event into the final arena. */
static void
fixup(struct intake_batch *b, size_t ctype_len)
{
	const char	*p = b->keys + ctype_len;
	size_t		 i;

	for (i = 0; i < b->n; i++) {
		b->evs[i].ctype = b->keys;
		b->evs[i].ctype_len = ctype_len;
		if (b->evs[i].ikey_len > 0) {
			b->evs[i].ikey = p;
			p += b->evs[i].ikey_len;
		}
	}
}

static int
decode(struct dec *d, const char *ctype, const char *cenc,
    const unsigned char *body, size_t len)
{
	struct spool_event	*ev;
	const char		*mt;
	size_t			 mtlen, i;
	enum kind		 kind;
	int			 gz, rc;

	if ((rc = content_kind(d, ctype, &kind, &mt, &mtlen)) != 0 ||
	    (rc = content_encoding(d, cenc, &gz)) != 0)
		return rc;
	if (len > d->lim->max_body)
		return fail(d, 413, "body over the limit of %zu bytes",
		    d->lim->max_body);
	if (gz && len > 0) {
		if ((rc = gunzip(d, body, len, &len)) != 0)
			return rc;
		body = d->out->plain;
	}
	if (len == 0)
		return fail(d, 400, "empty body");
	if ((rc = arena_put(d, mt, mtlen, NULL, 0)) != 0)
		return rc;
	for (i = 0; i < mtlen; i++)
		if (d->out->keys[i] >= 'A' && d->out->keys[i] <= 'Z')
			d->out->keys[i] += 'a' - 'A';
	switch (kind) {
	case KIND_JSON:
		rc = json_event(d, body, len, 0);
		break;
	case KIND_NDJSON:
		rc = ndjson(d, body, len);
		break;
	case KIND_OPAQUE:
		if ((rc = ev_push(d, body, len, &ev)) == 0)
			rc = ev_key(d, ev, NULL, 0, 0);
		break;
	}
	if (rc == 0)
		fixup(d->out, mtlen);
	return rc;
}

int
intake_decode(const struct intake_limits *lim, const char *ctype,
    const char *cenc, const char *ikey, const void *body, size_t len,
    struct intake_batch *out, char *err, size_t errlen)
{
	struct dec	d;
	int		rc;

	memset(out, 0, sizeof(*out));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	d.lim = lim;
	d.out = out;
	d.ikey = ikey;
	d.ikey_len = ikey ? strlen(ikey) : 0;
	/* Whitespace around a header value is not part of it (RFC 9110). */
	while (d.ikey_len > 0 && (ikey[d.ikey_len - 1] == ' ' ||
	    ikey[d.ikey_len - 1] == '\t'))
		d.ikey_len--;
	d.err = err;
	d.errlen = errlen;
	if ((rc = decode(&d, ctype, cenc, body, len)) != 0)
		intake_batch_free(out);
	return rc;
}

void
intake_batch_free(struct intake_batch *b)
{
	if (b == NULL)
		return;
	free(b->evs);
	free(b->plain);
	free(b->keys);
	memset(b, 0, sizeof(*b));
}
