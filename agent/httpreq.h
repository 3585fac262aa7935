/*
 * httpreq.h: the parts of an HTTP request that ferry-agent interprets
 * itself, as pure functions of strings: the route (method and path), the
 * stream name in the path, CORS origins, the client address behind a
 * trusted proxy, and Content-Length against max_body.  http.c calls them
 * with what libmicrohttpd parsed; tests/fuzz/fuzz_http.c calls them with
 * anything at all.  The body and its Content-Type, Content-Encoding and
 * Idempotency-Key are intake.h's; the Authorization header is auth.c's.
 *
 * No I/O, no globals, no libmicrohttpd types: safe from any thread.
 */
#ifndef FERRY_HTTPREQ_H
#define FERRY_HTTPREQ_H

#include <stddef.h>
#include <stdint.h>

#define HTTPREQ_EVENTS_PREFIX	"/v1/events/"

enum httpreq_route {
	HTTPREQ_POST_EVENTS,	/* POST /v1/events/...: intake */
	HTTPREQ_PREFLIGHT,	/* OPTIONS /v1/events/...: CORS */
	HTTPREQ_EVENTS_405,	/* /v1/events/... another method: 405 */
	HTTPREQ_GET_405,	/* /ping, /ready, /metrics not GET or HEAD */
	HTTPREQ_PING,		/* GET or HEAD /ping */
	HTTPREQ_READY,
	HTTPREQ_METRICS,
	HTTPREQ_NOT_FOUND	/* any other path, any method: 404 */
};

/*
 * What to do with METHOD on URL (the path as sent, without the query,
 * not percent-decoded).  Both NUL-terminated, never NULL.
 */
enum httpreq_route httpreq_route(const char *method, const char *url);

/*
 * The stream named by URL, which starts with HTTPREQ_EVENTS_PREFIX: sets
 * *STREAM (pointing into URL) and *LEN to what follows the prefix and
 * returns 1 when it is a valid stream name (spool_stream_name_ok), else 0.
 */
int	httpreq_stream(const char *url, const char **stream, size_t *len);

/*
 * Is WORD one of the words of LIST, separated by blanks or commas?  A NULL
 * LIST holds nothing.
 */
int	httpreq_in_list(const char *list, const char *word);

/*
 * May a page from ORIGIN (the Origin header, or NULL) read our answers?
 * LIST is [agent] cors_origins: NULL (nobody), "*" or a list of origins.
 */
int	httpreq_origin_ok(const char *list, const char *origin);

/*
 * The client address.  BUF (LEN bytes) holds the peer's numeric address on
 * entry (or ""); when the peer is in TRUSTED ([agent] trusted_proxies) and
 * XFF (X-Forwarded-For, or NULL: its last header line) has a last entry
 * that is an IPv4 or IPv6 address, that entry replaces it.  BUF stays
 * NUL-terminated.
 */
void	httpreq_client_addr(const char *trusted, const char *xff, char *buf,
	    size_t len);

/*
 * Is the body's framing one we take?  NCL Content-Length headers (CL_DIFFER
 * set when their values differ) and TE, the Transfer-Encoding header or
 * NULL.  Returns 0, or the status to refuse with (400: ambiguous framing,
 * RFC 9112 6.1 and 6.3; 501: a coding other than chunked) and *MSG.
 */
int	httpreq_framing(unsigned ncl, int cl_differ, const char *te,
	    const char **msg);

/*
 * Does a Content-Length value CL (or NULL) announce more than MAX bytes?
 * Read as strtoull() reads it; a body without one is limited as it comes.
 */
int	httpreq_too_long(const char *cl, uint64_t max);

#endif
