/*
 * httpreq.c: what ferry-agent reads in a request line and its headers (see
 * httpreq.h).  Split from http.c so that the agent and the fuzz target
 * (tests/fuzz/fuzz_http.c) run the same code on the same strings.
 *
 * Invariants: every function reads only its NUL-terminated arguments and
 * writes only the buffer it is given, within its length.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpreq.h"
#include "spool.h"

enum httpreq_route
httpreq_route(const char *method, const char *url)
{
	if (strncmp(url, HTTPREQ_EVENTS_PREFIX,
	    strlen(HTTPREQ_EVENTS_PREFIX)) == 0) {
		if (strcmp(method, "POST") == 0)
			return HTTPREQ_POST_EVENTS;
		if (strcmp(method, "OPTIONS") == 0)
			return HTTPREQ_PREFLIGHT;
		return HTTPREQ_EVENTS_405;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	    (strcmp(url, "/ping") == 0 || strcmp(url, "/ready") == 0 ||
	    strcmp(url, "/metrics") == 0))
		return HTTPREQ_GET_405;
	if (strcmp(url, "/ping") == 0)
		return HTTPREQ_PING;
	if (strcmp(url, "/ready") == 0)
		return HTTPREQ_READY;
	if (strcmp(url, "/metrics") == 0)
		return HTTPREQ_METRICS;
	return HTTPREQ_NOT_FOUND;
}

int
httpreq_stream(const char *url, const char **stream, size_t *len)
{
	*stream = url + strlen(HTTPREQ_EVENTS_PREFIX);
	*len = strlen(*stream);
	return spool_stream_name_ok(*stream, *len);
}

int
httpreq_in_list(const char *list, const char *word)
{
	size_t n = strlen(word);

	if (list == NULL)
		return 0;
	for (const char *p = list; *p; ) {
		size_t l;

		p += strspn(p, " \t,");
		l = strcspn(p, " \t,");
		if (l == n && strncmp(p, word, n) == 0)
			return 1;
		p += l;
	}
	return 0;
}

int
httpreq_origin_ok(const char *list, const char *origin)
{
	if (origin == NULL || list == NULL)
		return 0;
	return httpreq_in_list(list, "*") || httpreq_in_list(list, origin);
}

void
httpreq_client_addr(const char *trusted, const char *xff, char *buf,
    size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *last;
	size_t n;

	if (!httpreq_in_list(trusted, buf) || xff == NULL)
		return;
	/* The proxy appends the address it saw: take the last entry. */
	last = strrchr(xff, ',');
	last = last ? last + 1 : xff;
	last += strspn(last, " \t");
	n = strcspn(last, " \t");
	if (n == 0 || n >= len || n >= sizeof(addr))
		return;
	/* Only an address: anything else would be stored as the client's. */
	memcpy(addr, last, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, bin) != 1 &&
	    inet_pton(AF_INET6, addr, bin) != 1)
		return;
	memcpy(buf, addr, n + 1);
}

int
httpreq_framing(unsigned ncl, int cl_differ, const char *te,
    const char **msg)
{
	if (cl_differ) {
		*msg = "Content-Length headers that differ";
		return 400;
	}
	if (te == NULL)
		return 0;
	if (strcasecmp(te, "chunked") != 0) {
		*msg = "unsupported Transfer-Encoding (only chunked; use "
		    "Content-Encoding: gzip to compress)";
		return 501;
	}
	if (ncl > 0) {
		*msg = "both Content-Length and Transfer-Encoding";
		return 400;
	}
	return 0;
}

int
httpreq_too_long(const char *cl, uint64_t max)
{
	return cl != NULL && strtoull(cl, NULL, 10) > max;
}
