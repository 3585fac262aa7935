/*
 * fuzz_http.c: libFuzzer target for what ferry-agent reads in a request
 * besides the body's JSON: the route (method, path), the stream name in
 * the path, CORS origins, X-Forwarded-For behind trusted proxies, the
 * Authorization header against a tokens file, the body's framing
 * (Content-Length lines, Transfer-Encoding), Content-Length against
 * max_body, and the Content-Type (with parameters), Content-Encoding and
 * Idempotency-Key headers through the intake decoder.  It runs the code
 * http.c runs, in the order post_begin() and post_submit() run it:
 * agent/httpreq.c, agent/auth.c, agent/intake.c.
 *
 * Input:
 *   byte 0   configuration: bits 0-1 cors_origins, bits 2-3
 *            trusted_proxies (each one of four lists below), bit 4 a
 *            tokens file, bit 5 allow_opaque, bit 6 json_key = id,
 *            bit 7 a small max_body (1 KiB)
 *   byte 1   which of the eight headers are present (bit i: header i)
 *   then '\n'-separated: METHOD, PATH, PEER ADDRESS, then the headers
 *   Content-Type, Content-Encoding, Content-Length, Idempotency-Key,
 *   X-Forwarded-For, Authorization, Origin, Transfer-Encoding; the rest
 *   is the body.  A '\r' in the Content-Length field separates header
 *   lines: "5\r5" is a request with two Content-Length lines.
 *
 * Besides sanitizer reports, the oracles are what each function promises:
 * a stream accepted has a valid name, an origin is let through only when
 * the list names it or "*", a forwarded address is one token that fits,
 * the tokens verdict matches one computed here from the known tokens,
 * framing is refused exactly when RFC 9112 says it is ambiguous or not
 * chunked, and a decoded batch keeps its own invariants.
 */
#include <sys/mman.h>

#include <arpa/inet.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "agent.h"
#include "httpreq.h"
#include "intake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { H_CTYPE, H_CENC, H_CLEN, H_IKEY, H_XFF, H_AUTHZ, H_ORIGIN, H_TE,
	NHDR };
#define NFIELDS	(3 + NHDR)

static const char *const cors_lists[] = { NULL, "*",
    "https://ok.example https://app.example",
    "https://a.example,http://b.example:8080" };
static const char *const proxy_lists[] = { NULL, "127.0.0.1",
    "10.0.0.1 ::1  127.0.0.1", "::ffff:10.1.2.3" };

/* Known tokens: ALPHA may write anywhere, BRAVO to b1 and b2 only. */
#define ALPHA	"alpha-token-1"
#define BRAVO	"bravo-token-2"
static struct tokens *tokens;

static void
hash_hex(const char *tok, char hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)tok, strlen(tok));
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

static struct tokens *
load_tokens(void)
{
	char a[65], b[65], path[64], err[512], text[512];
	struct tokens *tk;
	int fd, n;

	hash_hex(ALPHA, a);
	hash_hex(BRAVO, b);
	n = snprintf(text, sizeof(text), "# fuzz tokens\n%s  alpha\n"
	    "%s\tbravo  b1,b2\n", a, b);
	if ((fd = memfd_create("tokens", 0)) == -1 ||
	    write(fd, text, (size_t)n) != n)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((tk = tokens_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		abort();
	}
	close(fd);
	return tk;
}

/* The verdict tokens_check() must give, computed the plain way. */
static enum auth_result
expected_auth(const char *authz, const char *stream, size_t slen)
{
	size_t	n;

	if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
		return AUTH_MISSING;
	authz += 7;
	while (*authz == ' ' || *authz == '\t')	/* around the token: */
		authz++;
	n = strlen(authz);
	while (n > 0 && (authz[n - 1] == ' ' || authz[n - 1] == '\t'))
		n--;				/* not part of it */
	if (n == 0)
		return AUTH_MISSING;
	if (n == strlen(ALPHA) && memcmp(authz, ALPHA, n) == 0)
		return AUTH_OK;
	if (n != strlen(BRAVO) || memcmp(authz, BRAVO, n) != 0)
		return AUTH_BAD;
	if (slen == 2 && (memcmp(stream, "b1", 2) == 0 ||
	    memcmp(stream, "b2", 2) == 0))
		return AUTH_OK;
	return AUTH_FORBIDDEN;
}

/* Is WORD (LEN bytes) a word of LIST?  The plain way, for the oracle. */
static int
listed(const char *list, const char *word, size_t len)
{
	char *copy, *w, *save;
	int found = 0;

	if (list == NULL)
		return 0;
	if ((copy = strdup(list)) == NULL)
		abort();
	for (w = strtok_r(copy, " \t,", &save); w != NULL && !found;
	    w = strtok_r(NULL, " \t,", &save))
		found = strlen(w) == len && memcmp(w, word, len) == 0;
	free(copy);
	return found;
}

static void
check_route(const char *method, const char *url)
{
	enum httpreq_route r = httpreq_route(method, url);
	int events = strncmp(url, HTTPREQ_EVENTS_PREFIX, 11) == 0;

	if (events != (r == HTTPREQ_POST_EVENTS || r == HTTPREQ_PREFLIGHT ||
	    r == HTTPREQ_EVENTS_405))
		abort();
	if (r == HTTPREQ_POST_EVENTS && strcmp(method, "POST") != 0)
		abort();
	if ((r == HTTPREQ_PING && strcmp(url, "/ping") != 0) ||
	    (r == HTTPREQ_READY && strcmp(url, "/ready") != 0) ||
	    (r == HTTPREQ_METRICS && strcmp(url, "/metrics") != 0))
		abort();
}

static void
check_stream(const char *stream, size_t slen)
{
	if (slen < 1 || slen > SPOOL_STREAM_MAX || strlen(stream) != slen ||
	    strspn(stream, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") != slen || strcmp(stream, ".") == 0 ||
	    strcmp(stream, "..") == 0)
		abort();
}

static void
check_addr(const char *trusted, const char *xff, const char *peer)
{
	char buf[SPOOL_ADDR_MAX + 1], was[SPOOL_ADDR_MAX + 1];
	unsigned char bin[16];
	size_t n;

	/* remote_addr(): getnameinfo() fills BUF with the peer. */
	snprintf(was, sizeof(was), "%s", peer);
	memcpy(buf, was, sizeof(buf));
	httpreq_client_addr(trusted, xff, buf, sizeof(buf));
	n = strnlen(buf, sizeof(buf));
	if (n == sizeof(buf))
		abort();
	if (strcmp(buf, was) == 0)
		return;		/* unchanged */
	/* Replaced: only behind a listed proxy, by one blank-free entry. */
	if (xff == NULL || !listed(trusted, was, strlen(was)) || n == 0 ||
	    strpbrk(buf, " \t,") != NULL || strstr(xff, buf) == NULL)
		abort();
	/* ... and that entry is an address, nothing else. */
	if (inet_pton(AF_INET, buf, bin) != 1 &&
	    inet_pton(AF_INET6, buf, bin) != 1)
		abort();
}

/*
 * header_scan() and httpreq_framing(): CL holds the Content-Length lines
 * separated by '\r' and is cut to the first, as MHD's lookup gives it.
 * Returns whether the request goes on.
 */
static int
check_framing(char *cl, const char *te)
{
	const char *msg = NULL, *first = cl;
	unsigned ncl = 0;
	int differ = 0, rc;
	char *line;

	while ((line = strsep(&cl, "\r")) != NULL)
		if (ncl++ > 0 && strcmp(line, first) != 0)
			differ = 1;
	rc = httpreq_framing(ncl, differ, te, &msg);
	if (differ || (te != NULL && (strcasecmp(te, "chunked") != 0 ||
	    ncl > 0))) {
		if ((rc != 400 && rc != 501) || msg == NULL || *msg == '\0' ||
		    (rc == 501) != (!differ && strcasecmp(te, "chunked") != 0))
			abort();
		return 0;
	}
	if (rc != 0)
		abort();
	return 1;
}

static void
check_body(const struct intake_limits *lim, const char *const *hv,
    const uint8_t *body, size_t len)
{
	struct intake_batch b;
	char err[512];
	size_t total = 0;
	int rc;

	memset(&b, 0, sizeof(b));
	err[0] = '\0';
	rc = intake_decode(lim, hv[H_CTYPE], hv[H_CENC], hv[H_IKEY], body, len,
	    &b, err, sizeof(err));
	if (rc == 0) {
		if (b.n == 0 || b.n > lim->max_events)
			abort();
		for (size_t i = 0; i < b.n; i++) {
			total += b.evs[i].body_len;
			if (b.evs[i].ikey_len > SPOOL_IKEY_MAX ||
			    b.evs[i].ctype_len > SPOOL_CTYPE_MAX ||
			    (b.evs[i].ikey_len > 0 && b.evs[i].ikey == NULL))
				abort();
		}
		if (total != b.bytes || total > lim->max_body)
			abort();
	} else if ((rc != 400 && rc != 413 && rc != 415 && rc != 500) ||
	    b.n != 0 || err[0] == '\0')
		abort();
	intake_batch_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *field[NFIELDS] = { NULL };
	const char *hv[NHDR], *cors, *trusted, *stream;
	const uint8_t *p, *end = data + size, *nl;
	struct intake_limits lim;
	enum auth_result ar;
	size_t slen, i;

	if (tokens == NULL)
		tokens = load_tokens();
	if (size < 2)
		return 0;
	p = data + 2;
	for (i = 0; i < NFIELDS; i++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if ((field[i] = strndup((const char *)p, (size_t)(nl - p))) ==
		    NULL)
			abort();
		p = nl < end ? nl + 1 : end;
	}
	for (i = 0; i < NHDR; i++)
		hv[i] = (data[1] >> i) & 1 ? field[3 + i] : NULL;
	cors = cors_lists[data[0] & 3];
	trusted = proxy_lists[(data[0] >> 2) & 3];

	/* handle(): the route, for every request. */
	check_route(field[0], field[1]);
	if (httpreq_route(field[0], field[1]) == HTTPREQ_PREFLIGHT &&
	    httpreq_origin_ok(cors, hv[H_ORIGIN]) &&
	    !listed(cors, "*", 1) && !listed(cors, hv[H_ORIGIN],
	    strlen(hv[H_ORIGIN])))
		abort();
	if (httpreq_route(field[0], field[1]) != HTTPREQ_POST_EVENTS)
		goto done;

	/* post_begin() */
	if (!httpreq_stream(field[1], &stream, &slen))
		goto done;
	check_stream(stream, slen);
	if (data[0] & 0x10) {
		ar = tokens_check(tokens, hv[H_AUTHZ], stream, slen);
		if (ar != expected_auth(hv[H_AUTHZ], stream, slen))
			abort();
		if (ar != AUTH_OK)
			goto done;
	}
	memset(&lim, 0, sizeof(lim));
	lim.max_body = (data[0] & 0x80) ? 1024 : 64 << 10;
	lim.max_events = 50;
	lim.json_key = (data[0] & 0x40) ? "id" : NULL;
	lim.allow_opaque = (data[0] & 0x20) != 0;
	if (!check_framing(hv[H_CLEN], hv[H_TE]))
		goto done;
	if (httpreq_too_long(hv[H_CLEN], lim.max_body))
		goto done;
	check_addr(trusted, hv[H_XFF], field[2]);

	/* handle(): the body, as much as max_body lets in; post_submit() */
	if ((size_t)(end - p) <= lim.max_body)
		check_body(&lim, hv, p, (size_t)(end - p));
done:
	/* cors_headers(), on every answer */
	if (httpreq_origin_ok(cors, hv[H_ORIGIN]) && (cors == NULL ||
	    hv[H_ORIGIN] == NULL))
		abort();
	for (i = 0; i < NFIELDS; i++)
		free(field[i]);
	return 0;
}
