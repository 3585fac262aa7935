/*
 * http.c: the HTTP face of ferry-agent, on libmicrohttpd.
 *
 *   POST /v1/events/{stream}   intake (see intake.h for bodies)
 *   OPTIONS /v1/events/...     CORS preflight
 *   GET  /ping                 liveness: 503 once shutdown has begun
 *   GET  /ready                readiness: 503 starting, full, shutting down
 *   GET  /metrics              Prometheus text
 *
 * A POST goes through three calls of the access handler: headers (route,
 * auth, limits known up front), body chunks (collected up to max_body), and
 * the final call, which decodes the body, hands the events to the writer
 * and suspends the connection.  The writer resumes it after the commit, and
 * the handler is called once more to send the answer.  No handler thread
 * ever waits for the disk, so one slow commit delays no other connection's
 * reads.  What the path and headers mean (route, stream name, CORS,
 * X-Forwarded-For, Content-Length) is decided in httpreq.c, pure functions
 * of the strings libmicrohttpd parsed, so that they can be fuzzed.
 *
 * Every refusal is answered with JSON {"error": "..."} that says what is
 * wrong and what to do, and with the status a client can act on: 400 bad
 * body, 401/403 auth, 404 unknown path or stream, 405 + Allow, 413 too
 * large, 415 type, 431 headers, 503 + Retry-After (full, storage error,
 * shutting down).  Except while a body arrives, when libmicrohttpd can
 * send no answer: a body past idle_timeout or far past max_body has its
 * connection closed instead, and the log says why.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "agent.h"
#include "daemon.h"
#include "avroenc.h"
#include "httpreq.h"
#include "intake.h"
#include "log.h"

#define RETRY_FULL	"5"
#define RETRY_BUSY	"1"
#define BACKOFF_SECS	"10"
#define REAP_EVERY_US	250000		/* the header deadline, looked at */
#define DISCARD_MAX	(8u << 20)	/* body past max_body read and dropped */

enum phase { PH_BODY, PH_QUEUED };

struct hreq {
	struct intake_req	 ir;		/* for the writer */
	struct agent		*a;
	enum phase		 phase;
	unsigned		 status;	/* error found while reading */
	int			 cut;		/* connection shut down */
	size_t			 discarded;	/* body bytes dropped */
	uint64_t		 start_us;	/* monotonic, headers complete */
	char			 msg[512];
	char			 stream[SPOOL_STREAM_MAX + 1];
	size_t			 stream_len;
	char			 addr[SPOOL_ADDR_MAX + 1];
	const struct conf_stream *sconf;
	unsigned char		*body;
	size_t			 len, cap;
	struct intake_batch	 batch;
};

static void
cors_headers(struct agent *a, struct MHD_Connection *c,
    struct MHD_Response *resp)
{
	const char *origin;

	origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	if (!httpreq_origin_ok(a->conf->agent.cors_origins, origin))
		return;
	MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
	MHD_add_response_header(resp, "Vary", "Origin");
	MHD_add_response_header(resp, "Access-Control-Expose-Headers",
	    "Backoff, Retry-After");
}

/* Queues a response with BODY (copied) and the usual headers. */
static enum MHD_Result
answer(struct agent *a, struct MHD_Connection *c, unsigned status,
    const char *ctype, const char *body, size_t len, const char *hname,
    const char *hval)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	if (ctype)
		MHD_add_response_header(resp, "Content-Type", ctype);
	if (hname)
		MHD_add_response_header(resp, hname, hval);
	cors_headers(a, c, resp);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		metrics_status(&a->m, status);
	return ret;
}

static enum MHD_Result
answer_error(struct agent *a, struct MHD_Connection *c, unsigned status,
    const char *msg, const char *hname, const char *hval)
{
	json_t *o = json_pack("{s:s}", "error", msg);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	enum MHD_Result ret;

	ret = answer(a, c, status, "application/json", s ? s : "{}",
	    s ? strlen(s) : 2, hname, hval);
	free(s);
	json_decref(o);
	return ret;
}

static enum MHD_Result
answer_text(struct agent *a, struct MHD_Connection *c, unsigned status,
    const char *text)
{
	return answer(a, c, status, "text/plain; charset=utf-8", text,
	    strlen(text), NULL, NULL);
}

static int
spool_is_full(struct agent *a)
{
	if (!atomic_load(&a->full))
		return 0;
	/* Re-check: a trim by the forwarder may have made room. */
	if (spool_used_bytes(a->spool) + AGENT_FULL_SLACK <
	    spool_max_bytes(a->spool)) {
		atomic_store(&a->full, 0);
		return 0;
	}
	return 1;
}

static enum MHD_Result
handle_get(struct agent *a, struct MHD_Connection *c, enum httpreq_route r)
{
	int state = atomic_load(&a->state);

	if (r == HTTPREQ_PING)
		return state >= AGENT_DRAINING ?
		    answer_text(a, c, 503, "shutting down\n") :
		    answer_text(a, c, 200, "pong\n");
	if (r == HTTPREQ_READY) {
		if (state == AGENT_STARTING)
			return answer_text(a, c, 503, "starting\n");
		if (state >= AGENT_DRAINING)
			return answer_text(a, c, 503, "shutting down\n");
		if (spool_is_full(a))
			return answer_text(a, c, 503, "spool full\n");
		return answer_text(a, c, 200, "ready\n");
	}
	if (r == HTTPREQ_METRICS) {
		size_t len;
		char *text = metrics_render(a, &len);
		enum MHD_Result ret;

		if (text == NULL)
			return answer_error(a, c, 500, "out of memory", NULL,
			    NULL);
		ret = answer(a, c, 200, "text/plain; version=0.0.4", text,
		    len, NULL, NULL);
		free(text);
		return ret;
	}
	return answer_error(a, c, 404, "no such path (try POST "
	    "/v1/events/STREAM, GET /ping, /ready, /metrics)", NULL, NULL);
}

static enum MHD_Result
handle_preflight(struct agent *a, struct MHD_Connection *c)
{
	const char *origin;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	if (!httpreq_origin_ok(a->conf->agent.cors_origins, origin))
		return answer_error(a, c, 403, "origin not allowed (see "
		    "[agent] cors_origins)", NULL, NULL);
	resp = MHD_create_response_from_buffer(0, NULL,
	    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	cors_headers(a, c, resp);
	MHD_add_response_header(resp, "Access-Control-Allow-Methods",
	    "POST, OPTIONS");
	MHD_add_response_header(resp, "Access-Control-Allow-Headers",
	    "Content-Type, Content-Encoding, Authorization, Idempotency-Key");
	MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
	ret = MHD_queue_response(c, 204, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		metrics_status(&a->m, 204);
	return ret;
}

static enum MHD_Result
header_size(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	size_t *sum = cls;

	(void)kind;
	*sum += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

/*
 * What the framing check and the client address need of the headers: the
 * Content-Length lines, and the LAST X-Forwarded-For line (a proxy such as
 * haproxy adds its own after the client's).
 */
struct hdrscan {
	unsigned	 ncl;
	int		 cl_differ, ikey_differ;
	const char	*cl, *xff, *ikey;
};

static enum MHD_Result
header_scan(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct hdrscan *hs = cls;

	(void)kind;
	if (value == NULL)
		return MHD_YES;
	if (strcasecmp(key, "Content-Length") == 0) {
		if (hs->ncl++ == 0)
			hs->cl = value;
		else if (strcmp(value, hs->cl) != 0)
			hs->cl_differ = 1;
	} else if (strcasecmp(key, "X-Forwarded-For") == 0)
		hs->xff = value;
	else if (strcasecmp(key, "Idempotency-Key") == 0) {
		if (hs->ikey == NULL)
			hs->ikey = value;
		else if (strcmp(value, hs->ikey) != 0)
			hs->ikey_differ = 1;
	}
	return MHD_YES;
}

/* The client's address: the peer, or X-Forwarded-For from a trusted one. */
static void
remote_addr(struct agent *a, struct MHD_Connection *c, const char *xff,
    char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	buf[0] = '\0';
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (getnameinfo(sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), buf,
	    (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
		buf[0] = '\0';
	httpreq_client_addr(a->conf->agent.trusted_proxies, xff, buf, len);
}

/* The first call of a POST: everything known before the body. */
static enum MHD_Result
post_begin(struct agent *a, struct MHD_Connection *c, const char *url,
    void **con_cls)
{
	const char *stream, *authz, *msg;
	size_t slen, hsize = 0;
	const struct conf_stream *sc;
	struct hdrscan hs = { 0, 0, 0, NULL, NULL, NULL };
	struct hreq *h;
	unsigned status;

	if (!httpreq_stream(url, &stream, &slen))
		return answer_error(a, c, 400, "invalid stream name: use 1 to "
		    "64 of A-Z a-z 0-9 . _ -, not . or ..", NULL, NULL);
	sc = conf_stream_find(a->conf, stream, slen);
	if (sc == NULL && a->conf->agent.strict_streams)
		return answer_error(a, c, 404, "unknown stream (no "
		    "[stream.NAME] section for it)", NULL, NULL);
	if (atomic_load(&a->state) >= AGENT_STOPPING)
		return answer_error(a, c, 503, "shutting down; retry on "
		    "another node", "Retry-After", RETRY_BUSY);
	MHD_get_connection_values(c, MHD_HEADER_KIND, header_size, &hsize);
	if (hsize > a->conf->agent.max_header)
		return answer_error(a, c, 431, "request headers larger than "
		    "max_header", NULL, NULL);
	if (a->tokens) {
		enum auth_result ar;

		authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    "Authorization");
		pthread_rwlock_rdlock(&a->tlock);
		ar = tokens_check(a->tokens, authz, stream, slen);
		pthread_rwlock_unlock(&a->tlock);
		if (ar == AUTH_MISSING || ar == AUTH_BAD)
			return answer_error(a, c, 401, ar == AUTH_MISSING ?
			    "missing bearer token (Authorization: Bearer "
			    "TOKEN)" : "unknown bearer token",
			    "WWW-Authenticate", "Bearer realm=\"ferry\"");
		if (ar == AUTH_FORBIDDEN) {
			char m[128];

			snprintf(m, sizeof(m), "this token may not write to "
			    "stream %.*s", (int)slen, stream);
			return answer_error(a, c, 403, m, NULL, NULL);
		}
	}
	MHD_get_connection_values(c, MHD_HEADER_KIND, header_scan, &hs);
	if ((status = httpreq_framing(hs.ncl, hs.cl_differ,
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "Transfer-Encoding"), &msg)) != 0)
		return answer_error(a, c, status, msg, "Connection", "close");
	/* Which would be the key?  Not ours to guess: a retry must match. */
	if (hs.ikey_differ)
		return answer_error(a, c, 400, "Idempotency-Key given twice with "
		    "different values; send one", NULL, NULL);
	if (httpreq_too_long(hs.cl, a->conf->agent.max_body))
		return answer_error(a, c, 413, "body larger than max_body; "
		    "split it into smaller requests", NULL, NULL);
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return MHD_NO;
	h->a = a;
	h->sconf = sc;
	atomic_fetch_add(&a->requests, 1);
	memcpy(h->stream, stream, slen);
	h->stream_len = slen;
	h->start_us = clock_mono_us();
	remote_addr(a, c, hs.xff, h->addr, sizeof(h->addr));
	*con_cls = h;
	return MHD_YES;
}

static int
body_append(struct hreq *h, const char *data, size_t len, size_t max)
{
	if (h->len + len > max)
		return -1;
	if (h->len + len > h->cap) {
		size_t cap = h->cap ? h->cap : 4096;
		unsigned char *p;

		while (cap < h->len + len)
			cap *= 2;
		if (cap > max)
			cap = max;
		if ((p = realloc(h->body, cap)) == NULL)
			return -1;
		h->body = p;
		h->cap = cap;
	}
	memcpy(h->body + h->len, data, len);
	h->len += len;
	return 0;
}

/* intake's per-event check for a stream with an Avro schema. */
static int
schema_check(void *arg, const char *json, size_t len, char *msg,
    size_t msglen)
{
	struct hreq *h = arg;

	return avroenc_check_json(h->a->avro, h->stream, h->stream_len, json,
	    len, msg, msglen) == AVROENC_OK ? 0 : -1;
}

/* The last call of a POST before the commit: decode and queue. */
static enum MHD_Result
post_submit(struct agent *a, struct MHD_Connection *c, struct hreq *h)
{
	struct intake_limits lim;
	uint64_t now = clock_wall_ms();
	unsigned status;
	char err[512];

	lim.max_body = a->conf->agent.max_body;
	lim.max_events = a->conf->agent.max_events;
	lim.json_key = a->conf->dedup.json_key;
	lim.allow_opaque = h->sconf ? h->sconf->allow_opaque : 0;
	lim.check = h->sconf && h->sconf->schema ? schema_check : NULL;
	lim.check_arg = h;
	status = (unsigned)intake_decode(&lim,
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "Content-Encoding"),
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "Idempotency-Key"), h->body ? (void *)h->body : (void *)"",
	    h->len, &h->batch, err, sizeof(err));
	if (status != 0)
		return answer_error(a, c, status, err, NULL, NULL);
	for (size_t i = 0; i < h->batch.n; i++) {
		struct spool_event *e = &h->batch.evs[i];

		e->stream = h->stream;
		e->stream_len = h->stream_len;
		e->addr = h->addr;
		e->addr_len = strlen(h->addr);
		e->received_ms = now;
		spool_fingerprint(a->spool, e);
	}
	h->ir.conn = c;
	h->ir.evs = h->batch.evs;
	h->ir.n = h->batch.n;
	h->ir.bytes = h->batch.bytes;
	if ((h->ir.dup = calloc(h->batch.n, sizeof(int))) == NULL)
		return MHD_NO;
	h->phase = PH_QUEUED;
	MHD_suspend_connection(c);
	writer_submit(a, &h->ir);
	return MHD_YES;
}

/* After the writer resumed us: the outcome of the commit. */
static enum MHD_Result
post_answer(struct agent *a, struct MHD_Connection *c, struct hreq *h)
{
	char body[128];

	switch (h->ir.rc) {
	case SPOOL_OK:
		atomic_fetch_add(&a->m.events, h->ir.accepted);
		atomic_fetch_add(&a->m.duplicates, h->ir.duplicates);
		atomic_fetch_add(&a->m.bytes, h->ir.bytes);
		snprintf(body, sizeof(body), "{\"accepted\":%zu,"
		    "\"duplicates\":%zu}", h->ir.accepted, h->ir.duplicates);
		return answer(a, c, 200, "application/json", body,
		    strlen(body), atomic_load(&a->backoff) ? "Backoff" : NULL,
		    BACKOFF_SECS);
	case SPOOL_FULL:
		atomic_fetch_add(&a->m.rejected_full, h->ir.n);
		return answer_error(a, c, 503, "spool full: nothing of this "
		    "request was stored; retry later", "Retry-After",
		    RETRY_FULL);
	case SPOOL_EINVAL:
		return answer_error(a, c, 400, h->ir.err, NULL, NULL);
	default:
		return answer_error(a, c, 503, "storage error: nothing of "
		    "this request was stored; retry", "Retry-After",
		    RETRY_BUSY);
	}
}

/*
 * The deadline on request headers.  libmicrohttpd's connection timeout
 * restarts with every byte received, so a client sending its headers a
 * byte a second (slowloris) would hold its connection for ever, and
 * max_conns of them would shut everyone else out.  Each connection is
 * noted here; one that has not begun a request within idle_timeout of its
 * start or of its last answer is shut down by the reaper thread (the
 * shutdown makes libmicrohttpd see the end and close it as usual).  A
 * request under way (headers complete: body, writer, answer) is not.
 */
struct hconn {
	struct hconn	*next, *prev;	/* under conns_lock */
	int		 fd;
	/* atomic: marked on every request, no lock on that path */
	_Atomic int	 busy;		/* in a request */
	_Atomic uint64_t since_us;	/* monotonic: start or last answer */
};

/* Marks C's connection as in a request (BUSY) or between requests. */
static void
conn_mark(struct MHD_Connection *c, int busy)
{
	const union MHD_ConnectionInfo *ci;
	struct hconn *hc;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci == NULL || (hc = ci->socket_context) == NULL)
		return;
	atomic_store(&hc->since_us, clock_mono_us());
	atomic_store(&hc->busy, busy);
}

static void
conn_notify(void *cls, struct MHD_Connection *c, void **sctx,
    enum MHD_ConnectionNotificationCode what)
{
	struct agent *a = cls;
	const union MHD_ConnectionInfo *ci;
	struct hconn *hc;

	if (what == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((hc = calloc(1, sizeof(*hc))) == NULL)
			return;		/* only libmicrohttpd's timeout then */
		ci = MHD_get_connection_info(c,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		hc->fd = ci != NULL ? ci->connect_fd : -1;
		hc->since_us = clock_mono_us();
		pthread_mutex_lock(&a->conns_lock);
		if ((hc->next = a->conns) != NULL)
			a->conns->prev = hc;
		a->conns = hc;
		pthread_mutex_unlock(&a->conns_lock);
		*sctx = hc;
		return;
	}
	/* Closed: called before libmicrohttpd closes the socket. */
	if ((hc = *sctx) == NULL)
		return;
	pthread_mutex_lock(&a->conns_lock);
	if (hc->prev != NULL)
		hc->prev->next = hc->next;
	else
		a->conns = hc->next;
	if (hc->next != NULL)
		hc->next->prev = hc->prev;
	pthread_mutex_unlock(&a->conns_lock);
	free(hc);
	*sctx = NULL;
}

static void *
reaper_main(void *arg)
{
	struct agent *a = arg;
	uint64_t now, limit = a->conf->agent.idle_timeout_ms * 1000;

	while (!atomic_load(&a->rstop)) {
		usleep(REAP_EVERY_US);
		pthread_mutex_lock(&a->conns_lock);
		now = clock_mono_us();
		for (struct hconn *hc = a->conns; hc != NULL; hc = hc->next) {
			/* A mark newer than NOW is not past any limit. */
			uint64_t since = atomic_load(&hc->since_us);

			if (!atomic_load(&hc->busy) && hc->fd != -1 &&
			    now > since && now - since > limit)
				shutdown(hc->fd, SHUT_RDWR);
		}
		pthread_mutex_unlock(&a->conns_lock);
	}
	return NULL;
}

/* Shuts C's socket down: libmicrohttpd sees the end and closes it. */
static void
conn_shutdown(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL)
		shutdown(ci->connect_fd, SHUT_RDWR);
}

/* Every request but a POST of events: /ping, /metrics, preflights, 405s. */
static enum MHD_Result
handle_other(struct agent *a, struct MHD_Connection *c, enum httpreq_route r)
{
	switch (r) {
	case HTTPREQ_PREFLIGHT:
		return handle_preflight(a, c);
	case HTTPREQ_EVENTS_405:
		return answer_error(a, c, 405, "use POST", "Allow",
		    "POST, OPTIONS");
	case HTTPREQ_GET_405:
		return answer_error(a, c, 405, "use GET", "Allow", "GET, HEAD");
	default:
		return handle_get(a, c, r);
	}
}

/*
 * The *con_cls of a request that is not a POST of events.  Without a body
 * it is answered on the call after the headers, once libmicrohttpd has the
 * whole request: an answer queued on the first call makes it close the
 * connection, so probes, scrapes and a browser's preflight would each cost
 * a new one.  With a body (a GET should have none) it is answered at once,
 * the body not read and the connection closed.
 */
static char other_request;

static int
has_body(struct MHD_Connection *c)
{
	const char *cl;

	if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "Transfer-Encoding") != NULL)
		return 1;
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	return cl != NULL && strspn(cl, "0") != strlen(cl);
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct agent *a = cls;
	struct hreq *h;

	(void)version;
	if (*con_cls == NULL) {
		conn_mark(c, 1);	/* headers complete: a request */
		if (httpreq_route(method, url) == HTTPREQ_POST_EVENTS)
			return post_begin(a, c, url, con_cls);
		if (has_body(c))
			return handle_other(a, c, httpreq_route(method, url));
		*con_cls = &other_request;
		return MHD_YES;
	}
	if (*con_cls == &other_request)
		return handle_other(a, c, httpreq_route(method, url));
	h = *con_cls;
	if (*upload_size != 0) {
		/*
		 * libmicrohttpd queues an answer only before the body or after
		 * all of it, never while it arrives.  So a body over max_body is
		 * read to its end and dropped, and then answered 413, up to
		 * DISCARD_MAX more bytes; and a body still arriving after that
		 * or after idle_timeout (each piece inside it, so
		 * libmicrohttpd's own timeout never fires: a trickle, or a body
		 * without end) cannot be answered at all: the connection is
		 * shut down, nothing stored, and the log says why.
		 */
		if (!h->cut && (clock_mono_us() - h->start_us >
		    a->conf->agent.idle_timeout_ms * 1000 ||
		    h->discarded > DISCARD_MAX)) {
			h->cut = 1;
			log_info("%s: POST /v1/events/%s: %s; connection "
			    "closed, nothing stored", h->addr, h->stream,
			    h->discarded > DISCARD_MAX ? "body goes on far past "
			    "max_body" : "body not received within "
			    "idle_timeout");
			conn_shutdown(c);
		}
		if (!h->cut && h->status == 0 && body_append(h, upload,
		    *upload_size, a->conf->agent.max_body) != 0) {
			h->status = 413;
			snprintf(h->msg, sizeof(h->msg), "body larger than "
			    "max_body (%llu bytes); split it into smaller "
			    "requests",
			    (unsigned long long)a->conf->agent.max_body);
		}
		if (h->status)
			h->discarded += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (h->cut)
		return MHD_YES;
	if (h->status)
		return answer_error(a, c, h->status, h->msg, NULL, NULL);
	if (h->phase == PH_QUEUED)
		return post_answer(a, c, h);
	return post_submit(a, c, h);
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct hreq *h;

	(void)toe;
	(void)cls;
	conn_mark(c, 0);	/* answered: the next one's clock starts */
	if (*con_cls == NULL || *con_cls == &other_request) {
		*con_cls = NULL;
		return;
	}
	h = *con_cls;
	atomic_fetch_sub(&h->a->requests, 1);
	intake_batch_free(&h->batch);
	free(h->ir.dup);
	free(h->body);
	free(h);
	*con_cls = NULL;
}

/*
 * URLs are taken as sent, not percent-decoded: no stream name needs an
 * escape, and decoding would let "%2e%2e" become ".." or "a%00b" become
 * "a".  A '%' is then simply an invalid character of the name.
 */
static size_t
no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_debug("http: %s", buf);
}

/* Parses "host:port" or "[v6]:port" into SS. */
static int
parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6,
    char *err, size_t errlen)
{
	char host[256];
	const char *port;
	struct addrinfo hints, *res;
	size_t hl;
	int rc;

	if (listen[0] == '[') {
		const char *end = strchr(listen, ']');
		if (end == NULL || end[1] != ':')
			goto bad;
		hl = (size_t)(end - listen - 1);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, listen + 1, hl);
		port = end + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (colon == NULL)
			goto bad;
		hl = (size_t)(colon - listen);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, listen, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(hl ? host : NULL, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "listen %s: %s", listen,
		    gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	return 0;
bad:
	snprintf(err, errlen, "listen %s: expected host:port", listen);
	return -1;
}

int
http_start(struct agent *a, char *err, size_t errlen)
{
	const struct conf *cf = a->conf;
	struct sockaddr_storage ss;
	unsigned flags, threads = (unsigned)cf->agent.threads;
	int v6;

	if (parse_listen(cf->agent.listen, &ss, &v6, err, errlen) != 0)
		return -1;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	if (pthread_mutex_init(&a->conns_lock, NULL) != 0) {
		snprintf(err, errlen, "cannot make a mutex");
		return -1;
	}
	a->conns = NULL;
	a->reaping = 0;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (v6)
		flags |= MHD_USE_IPv6;
	a->httpd = MHD_start_daemon(flags, 0, NULL, NULL, handle, a,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, threads,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)cf->agent.max_conns,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)cf->agent.max_conns_per_ip,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)((cf->agent.idle_timeout_ms + 999) / 1000),
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)cf->agent.max_header + (32u << 10),
	    MHD_OPTION_NOTIFY_COMPLETED, completed, a,
	    MHD_OPTION_NOTIFY_CONNECTION, conn_notify, a,
	    MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, a,
	    MHD_OPTION_END);
	if (a->httpd == NULL) {
		snprintf(err, errlen, "listen %s: cannot start the HTTP "
		    "server (address in use or not available?)",
		    cf->agent.listen);
		pthread_mutex_destroy(&a->conns_lock);
		return -1;
	}
	atomic_store(&a->rstop, 0);
	if (pthread_create(&a->reaper, NULL, reaper_main, a) != 0) {
		snprintf(err, errlen, "cannot start a thread");
		http_stop(a);
		return -1;
	}
	a->reaping = 1;
	return 0;
}

void
http_quiesce(struct agent *a)
{
	MHD_socket s = MHD_quiesce_daemon(a->httpd);

	if (s != MHD_INVALID_SOCKET)
		close(s);
}

void
http_stop(struct agent *a)
{
	if (a->reaping) {
		atomic_store(&a->rstop, 1);
		pthread_join(a->reaper, NULL);
		a->reaping = 0;
	}
	MHD_stop_daemon(a->httpd);	/* closes what is left: conn_notify */
	a->httpd = NULL;
	pthread_mutex_destroy(&a->conns_lock);
}
