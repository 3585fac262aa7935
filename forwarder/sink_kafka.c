/*
 * sink_kafka.c: the Kafka sink, a librdkafka producer (sink.h).
 *
 * Delivery semantics.
 *  - The producer is idempotent with acks=all, so librdkafka itself retries
 *    every transient failure (leader moves, timeouts, broker restarts)
 *    without duplicating or reordering within a partition.
 *  - message.timeout.ms is 0 (infinite): during an outage of any length a
 *    sent event waits in the producer until a broker takes it; it never
 *    expires into the void.  The spool is where events wait: at most
 *    queue.buffering.max.messages events (our in-flight bound, default
 *    10000) and queue.buffering.max.kbytes are in the producer at once;
 *    beyond that send() says SINK_FULL and the rest stays in the spool.
 *    (librdkafka's own 100000 drained the mock cluster at most 7% faster,
 *    within the noise, for up to ten times the memory.)
 *  - Every sent event takes a slot of a ring in send order, so in seq
 *    order.  A delivery report marks its slot done.  The loop is told as
 *    delivered the seq of the last slot of the done prefix of the ring:
 *    every sent event at or below it was acknowledged by Kafka (acks=all)
 *    or refused for good and reported through dead().
 *  - Refused for good (too large, unknown topic, not authorised, not
 *    fitting its stream's Avro schema, ...): the slot is done, and dead()
 *    gets the reason when the done prefix reaches it, so a refusal never
 *    stalls the stream.  An error that only a retry can cure, which librdkafka
 *    reports when someone sets a finite message.timeout.ms, and a fatal
 *    producer error (idempotence broken): the producer is purged and
 *    replaced, the ring forgotten, and poll() says SINK_REWIND so the loop
 *    resends everything after the cursor.  At least once, never lost.
 *  - Outage: librdkafka's "all brokers down" puts the sink down until a
 *    delivery succeeds; poll() says SINK_DOWN while events have waited
 *    DOWN_GRACE_MS for it, and also while the oldest event in flight has
 *    waited longer than socket.timeout.ms (a partition without a leader):
 *    the loop stops reading and backs off, the operator hears why.  It
 *    never spins: poll() blocks in rd_kafka_poll().
 *
 * Threads.  Delivery reports and errors are served by rd_kafka_poll() and
 * rd_kafka_flush() in the drain thread, the only caller of this file: no
 * locking.  (A poller thread of its own was tried: librdkafka frees each
 * delivered message and its headers where the report is served, and
 * freeing in another thread than the one that allocated made glibc's
 * malloc contend for its arena lock: 200,000 events drained in 0.733 s,
 * against 0.506 s polling here, where they are produced, as kcat does.)
 * A report from a replaced producer is ignored (its rk differs).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "avroenc.h"
#include "daemon.h"
#include "log.h"
#include "sink.h"

#define INFLIGHT_MAX	1000000	/* ring slots at most, whatever is set */
#define DOWN_GRACE_MS	1000	/* waiting before "down" is reported */

enum slot_state { SLOT_SENT, SLOT_DONE, SLOT_DEAD };

struct slot {
	uint64_t	 seq;
	uint64_t	 sent_ms;	/* monotonic */
	char		*reason;	/* SLOT_DEAD: why, malloc'ed */
	int		 state;		/* enum slot_state */
};

struct buf {
	char		*p;
	size_t		 len, cap;
};

/*
 * A topic handle of the producer, kept for as long as the producer lives.
 * rd_kafka_topic_new() asks for the topic's metadata at once; producing by
 * name alone leaves the events waiting for librdkafka's next periodic scan,
 * up to a second later (librdkafka issue #3202).  It also spares each event
 * the lookup of its topic by name.
 */
struct topic {
	char		*name;
	rd_kafka_topic_t *rkt;
};

struct kafka {
	const struct conf_sink	*sc;
	rd_kafka_conf_t		*tmpl;		/* copied for each producer */
	rd_kafka_t		*rk;
	struct avroenc		*enc;		/* formats avro, confluent */
	struct slot		*ring;
	size_t			 cap, tail, count;
	uint64_t		 delivered;	/* never lower */
	uint64_t		 now_ms;	/* monotonic, at the last poll */
	uint64_t		 stall_ms;	/* socket.timeout.ms */
	int			 down;		/* no delivery since all down */
	int			 fatal;		/* rd_kafka_fatal_error() set */
	int			 rewind;	/* a slot needs a resend */
	unsigned		 news;		/* reports and errors served */
	char			 why[256];	/* last error from librdkafka */
	char			 rwhy[256];	/* the failed delivery of rewind */
	struct topic		*topics;	/* of rk */
	size_t			 ntopics, last;	/* last: the one used last */
	struct buf		 topic, key, val;
};

/* What ferry sets before the kafka.* properties of the configuration. */
static const char *const defaults[][2] = {
	{ "enable.idempotence",			"true" },
	{ "acks",				"all" },
	{ "compression.codec",			"lz4" },
	{ "partitioner",			"murmur2_random" },
	{ "linger.ms",				"5" },
	{ "message.timeout.ms",			"0" },
	{ "queue.buffering.max.messages",	"10000" },
	{ "queue.buffering.max.kbytes",		"65536" },
	{ "client.id",				"ferry" },
};

static int
buf_room(struct buf *b, size_t n)
{
	char	*p;

	if (n <= b->cap)
		return 0;
	if ((p = realloc(b->p, n)) == NULL)
		return -1;
	b->p = p;
	b->cap = n;
	return 0;
}

/* Errors that a resend may cure; anything else refuses the event. */
static int
err_transient(rd_kafka_resp_err_t e)
{
	switch (e) {
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
	case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
	case RD_KAFKA_RESP_ERR__DESTROY:
	case RD_KAFKA_RESP_ERR__RETRY:
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
	case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
	case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
	case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
	case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
	case RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID:
	case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
	case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
		return 1;
	default:
		return 0;
	}
}

static void
slot_dead(struct slot *sl, const char *reason)
{
	sl->reason = strdup(reason);
	sl->state = SLOT_DEAD;
}

/* why[], or DEF when it is empty. */
static const char *
why_or(const struct kafka *k, const char *def)
{
	return k->why[0] ? k->why : def;
}

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka	*k = opaque;
	struct slot	*sl;
	size_t		 i = (size_t)(uintptr_t)m->_private;

	if (rk != k->rk || i >= k->cap || k->ring[i].state != SLOT_SENT)
		return;		/* a replaced producer's report */
	sl = &k->ring[i];
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		sl->state = SLOT_DONE;
		k->down = 0;
	} else if (m->err == RD_KAFKA_RESP_ERR__FATAL)
		k->fatal = 1;
	else if (err_transient(m->err)) {
		/* The first failure is why; later errors do not overwrite it. */
		if (!k->rewind)
			snprintf(k->rwhy, sizeof(k->rwhy), "seq %" PRIu64 ": %s",
			    sl->seq, rd_kafka_err2str(m->err));
		k->rewind = 1;
	} else
		slot_dead(sl, rd_kafka_err2str(m->err));
	k->news++;
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka	*k = opaque;

	if (rk != k->rk)
		return;
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		k->fatal = 1;
		k->news++;
	} else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		k->down = 1;
	else
		snprintf(k->why, sizeof(k->why), "%s", reason);
}

/* librdkafka's own lines, from its threads: log.c writes each at once. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	const char	*name = rd_kafka_name(rk);

	if (level <= LOG_WARNING)
		log_warnx("kafka %s: %s: %s", name, fac, buf);
	else if (level <= LOG_INFO)
		log_info("kafka %s: %s: %s", name, fac, buf);
	else
		log_debug("kafka %s: %s: %s", name, fac, buf);
}

/* The producer configuration: defaults, then the kafka.* properties. */
static int
kafka_conf(struct kafka *k, const struct conf *cf, char *err)
{
	const struct conf_sink	*sc = k->sc;
	char			 e[256], v[32];
	size_t			 i, n = sizeof(v);

	k->tmpl = rd_kafka_conf_new();
	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (rd_kafka_conf_set(k->tmpl, defaults[i][0], defaults[i][1],
		    e, sizeof(e)) != RD_KAFKA_CONF_OK) {
			snprintf(err, SINK_ERRMAX, "%s: %s", defaults[i][0], e);
			return -1;
		}
	if (rd_kafka_conf_set(k->tmpl, "bootstrap.servers", sc->brokers, e,
	    sizeof(e)) != RD_KAFKA_CONF_OK) {
		snprintf(err, SINK_ERRMAX, "brokers: %s", e);
		return -1;
	}
	for (i = 0; i < sc->nprops; i++)
		if (rd_kafka_conf_set(k->tmpl, sc->props[i].name,
		    sc->props[i].value, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
			snprintf(err, SINK_ERRMAX, "%s:%d: kafka.%s: %s",
			    cf->path ? cf->path : "", sc->props[i].line,
			    sc->props[i].name, e);
			return -1;
		}
	if (rd_kafka_conf_get(k->tmpl, "queue.buffering.max.messages", v,
	    &n) != RD_KAFKA_CONF_OK || (k->cap = strtoul(v, NULL, 10)) == 0)
		k->cap = 10000;
	if (k->cap > INFLIGHT_MAX)
		k->cap = INFLIGHT_MAX;
	n = sizeof(v);
	if (rd_kafka_conf_get(k->tmpl, "socket.timeout.ms", v, &n) !=
	    RD_KAFKA_CONF_OK || (k->stall_ms = strtoull(v, NULL, 10)) <
	    DOWN_GRACE_MS)
		k->stall_ms = DOWN_GRACE_MS;
	rd_kafka_conf_set_opaque(k->tmpl, k);
	rd_kafka_conf_set_dr_msg_cb(k->tmpl, dr_cb);
	rd_kafka_conf_set_error_cb(k->tmpl, error_cb);
	rd_kafka_conf_set_log_cb(k->tmpl, log_cb);
	return 0;
}

static int
producer_new(struct kafka *k, char *err)
{
	rd_kafka_conf_t	*c = rd_kafka_conf_dup(k->tmpl);
	char		 e[400];

	if ((k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e))) ==
	    NULL) {
		rd_kafka_conf_destroy(c);
		snprintf(err, SINK_ERRMAX, "librdkafka: %s", e);
		return -1;
	}
	return 0;
}

/* Drops the producer with what it holds; its reports are ignored. */
static void
producer_drop(struct kafka *k)
{
	rd_kafka_t	*rk = k->rk;
	size_t		 i;

	if (rk == NULL)
		return;
	k->rk = NULL;
	rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(rk, 0);	/* serves (and ignores) the purged reports */
	for (i = 0; i < k->ntopics; i++) {
		rd_kafka_topic_destroy(k->topics[i].rkt);
		free(k->topics[i].name);
	}
	k->ntopics = k->last = 0;
	rd_kafka_destroy(rk);
	for (i = 0; i < k->count; i++)
		free(k->ring[(k->tail + i) % k->cap].reason);
	k->tail = k->count = 0;
	k->fatal = k->rewind = k->down = 0;
}

static void	kafka_close(void *);

static void *
kafka_open(const struct conf *cf, const struct conf_sink *sc, char *err)
{
	struct kafka	*k;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(err, SINK_ERRMAX, "out of memory");
		return NULL;
	}
	k->sc = sc;
	if (kafka_conf(k, cf, err) != 0)
		goto fail;
	if ((k->ring = calloc(k->cap, sizeof(*k->ring))) == NULL) {
		snprintf(err, SINK_ERRMAX, "out of memory");
		goto fail;
	}
	if (sc->format != CONF_FMT_RAW &&
	    ((k->enc = avroenc_new(cf, err)) == NULL ||
	    buf_room(&k->val, 4096) != 0)) {
		if (k->enc != NULL)
			snprintf(err, SINK_ERRMAX, "out of memory");
		goto fail;
	}
	if (producer_new(k, err) != 0)
		goto fail;
	return k;
fail:
	kafka_close(k);
	return NULL;
}

static int
kafka_recover(void *arg, uint64_t cursor, char *err)
{
	struct kafka	*k = arg;

	(void)err;
	k->now_ms = clock_mono_ms();
	if (cursor > k->delivered)
		k->delivered = cursor;
	return SINK_OK;
}

/* The topic name of EV: the template with each {stream} replaced. */
static const char *
topic_name(struct kafka *k, const struct spool_event *ev)
{
	const char	*t = k->sc->topic ? k->sc->topic : "{stream}", *p;
	struct buf	*b = &k->topic;
	size_t		 n;

	b->len = 0;
	for (;;) {
		p = strstr(t, "{stream}");
		n = p ? (size_t)(p - t) : strlen(t);
		if (buf_room(b, b->len + n + (p ? ev->stream_len : 0) + 1) != 0)
			return NULL;
		memcpy(b->p + b->len, t, n);
		b->len += n;
		if (p == NULL)
			break;
		memcpy(b->p + b->len, ev->stream, ev->stream_len);
		b->len += ev->stream_len;
		t = p + strlen("{stream}");
	}
	b->p[b->len] = '\0';
	return b->p;
}

/*
 * The topic handle of EV's topic in *RKT, made on first use.  Streams are
 * few, so a list searched from the one used last will do.  Returns 0, 1
 * when librdkafka refuses the topic (reason in ERR), -1 out of memory.
 */
static int
topic_of(struct kafka *k, const struct spool_event *ev,
    rd_kafka_topic_t **rkt, char *err)
{
	struct topic	*t;
	const char	*name;
	size_t		 i;

	if ((name = topic_name(k, ev)) == NULL)
		return -1;
	for (i = 0; i < k->ntopics; i++) {
		t = &k->topics[(k->last + i) % k->ntopics];
		if (strcmp(t->name, name) == 0) {
			k->last = (k->last + i) % k->ntopics;
			*rkt = t->rkt;
			return 0;
		}
	}
	if ((t = realloc(k->topics, (k->ntopics + 1) * sizeof(*t))) == NULL)
		return -1;
	k->topics = t;
	t = &k->topics[k->ntopics];
	if ((t->name = strdup(name)) == NULL)
		return -1;
	if ((t->rkt = rd_kafka_topic_new(k->rk, name, NULL)) == NULL) {
		snprintf(err, SINK_ERRMAX, "topic %s: %s", name,
		    rd_kafka_err2str(rd_kafka_last_error()));
		free(t->name);
		return 1;
	}
	k->last = k->ntopics++;
	*rkt = t->rkt;
	return 0;
}

/*
 * The key of EV as configured: a string field as is, an integer as %lld,
 * a real as jansson writes it (as the agent's dedup key), else none.
 */
static void
key_of(struct kafka *k, const struct spool_event *ev, const void **key,
    size_t *len)
{
	json_t		*doc, *v;
	const char	*s = NULL;
	char		 num[64];
	size_t		 n = 0;

	*key = NULL;
	*len = 0;
	if (k->sc->key == CONF_KEY_IDEMPOTENCY) {
		if (ev->ikey_len > 0) {
			*key = ev->ikey;
			*len = ev->ikey_len;
		}
		return;
	}
	if (k->sc->key != CONF_KEY_JSON || k->sc->key_field == NULL ||
	    (doc = json_loadb(ev->body, ev->body_len, JSON_ALLOW_NUL,
	    NULL)) == NULL)
		return;
	v = json_object_get(doc, k->sc->key_field);
	if (json_is_string(v)) {
		s = json_string_value(v);
		n = json_string_length(v);
	} else if (json_is_integer(v)) {
		s = num;
		n = (size_t)snprintf(num, sizeof(num), "%lld",
		    (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		s = num;
		if ((n = json_dumpb(v, num, sizeof(num), JSON_ENCODE_ANY)) >=
		    sizeof(num))
			n = 0;
	}
	if (n > 0 && buf_room(&k->key, n) == 0) {
		memcpy(k->key.p, s, n);
		*key = k->key.p;
		*len = n;
	}
	json_decref(doc);
}

/*
 * The value of EV: the body, or its Avro binary after a 5-byte Confluent
 * header when framed.  Returns 0, 1 when EV cannot be encoded (reason in
 * ERR: a dead letter rather than a sink stuck on one event) or -1 when out
 * of memory.
 */
static int
value_of(struct kafka *k, const struct spool_event *ev, const void **val,
    size_t *len, char *err)
{
	size_t		 off, n = 0;
	uint32_t	 id;
	int		 rc;

	if (k->sc->format == CONF_FMT_RAW) {
		*val = ev->body_len > 0 ? ev->body : "";
		*len = ev->body_len;
		return 0;
	}
	off = k->sc->format == CONF_FMT_CONFLUENT ? 5 : 0;
	for (;;) {
		rc = avroenc_binary(k->enc, ev, k->val.p + off,
		    k->val.cap > off ? k->val.cap - off : 0, &n, err);
		if (rc != AVROENC_ESPACE)
			break;
		if (buf_room(&k->val, off + n) != 0)
			return -1;
	}
	if (rc != AVROENC_OK)
		return 1;
	if (off > 0) {
		id = (uint32_t)k->sc->confluent_id;
		k->val.p[0] = 0;
		k->val.p[1] = (char)(id >> 24);
		k->val.p[2] = (char)(id >> 16);
		k->val.p[3] = (char)(id >> 8);
		k->val.p[4] = (char)id;
	}
	*val = k->val.p;
	*len = off + n;
	return 0;
}

/* Decimal text of V into BUF (at least 21 bytes); returns its length. */
static size_t
u64_text(uint64_t v, char *buf)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return n;
}

static rd_kafka_headers_t *
headers_of(const struct spool_event *ev)
{
	rd_kafka_headers_t	*h = rd_kafka_headers_new(4);
	char			 hex[2 * SPOOL_IDLEN + 1], num[24];
	size_t			 n;

	/* On the drain's hot path: no printf here (it showed in perf). */
	spool_id_hex(ev->id, hex);
	rd_kafka_header_add(h, "ferry-id", -1, hex, 2 * SPOOL_IDLEN);
	rd_kafka_header_add(h, "ferry-stream", -1, ev->stream,
	    (ssize_t)ev->stream_len);
	n = u64_text(ev->received_ms, num);
	rd_kafka_header_add(h, "ferry-received-ms", -1, num, (ssize_t)n);
	n = u64_text(ev->seq, num);
	rd_kafka_header_add(h, "ferry-seq", -1, num, (ssize_t)n);
	return h;
}

/* After a failed producer_new(): the sink is unusable. */
static int
no_producer(char *err)
{
	snprintf(err, SINK_ERRMAX, "no producer (creating one failed)");
	return SINK_FATAL;
}

/*
 * Takes the next slot for SEQ, before its event is produced (its report
 * may come at once); the caller checked there is room.  The time is that
 * of the last poll(): a clock read per event showed in the profile.
 */
static struct slot *
slot_push(struct kafka *k, uint64_t seq)
{
	struct slot	*sl = &k->ring[(k->tail + k->count) % k->cap];

	sl->seq = seq;
	sl->sent_ms = k->now_ms;
	sl->reason = NULL;
	sl->state = SLOT_SENT;
	k->count++;
	return sl;
}

static int
kafka_send(void *arg, const struct spool_event *ev, char *err)
{
	struct kafka		*k = arg;
	rd_kafka_headers_t	*h;
	rd_kafka_resp_err_t	 e;
	rd_kafka_topic_t	*rkt;
	struct slot		*sl;
	const void		*key, *val;
	size_t			 klen, vlen, idx;
	int			 rc;

	if (k->rk == NULL)
		return no_producer(err);
	if (k->fatal || k->rewind || k->count == k->cap)
		return SINK_FULL;	/* poll() first */
	if ((rc = topic_of(k, ev, &rkt, err)) == 0)
		rc = value_of(k, ev, &val, &vlen, err);
	if (rc < 0) {
		snprintf(err, SINK_ERRMAX, "out of memory");
		return SINK_FULL;
	}
	if (rc > 0) {
		slot_dead(slot_push(k, ev->seq), err);
		return SINK_OK;
	}
	key_of(k, ev, &key, &klen);
	h = headers_of(ev);
	sl = slot_push(k, ev->seq);
	idx = (size_t)(sl - k->ring);		/* the slot, for dr_cb() */
	e = rd_kafka_producev(k->rk, RD_KAFKA_V_RKT(rkt),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_VALUE((void *)(uintptr_t)val, vlen),
	    RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_HEADERS(h),
	    RD_KAFKA_V_TIMESTAMP((int64_t)ev->received_ms),
	    RD_KAFKA_V_OPAQUE((void *)idx), RD_KAFKA_V_END);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
		return SINK_OK;
	rd_kafka_headers_destroy(h);
	if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL ||
	    e == RD_KAFKA_RESP_ERR__FATAL) {
		k->count--;	/* not produced: the slot is free again */
		if (e == RD_KAFKA_RESP_ERR__FATAL)
			k->fatal = 1;
		return SINK_FULL;
	}
	slot_dead(sl, rd_kafka_err2str(e));
	return SINK_OK;
}

/* Moves past the done prefix of the ring, reporting the dead. */
static void
advance(struct kafka *k, uint64_t *delivered, sink_dead_fn dead, void *arg)
{
	struct slot	*sl;
	int		 st;

	while (k->count > 0) {
		sl = &k->ring[k->tail];
		st = sl->state;
		if (st == SLOT_SENT)
			break;
		if (st == SLOT_DEAD) {
			dead(sl->seq, sl->reason ? sl->reason :
			    "refused (out of memory for the reason)", arg);
			free(sl->reason);
			sl->reason = NULL;
		}
		if (sl->seq > k->delivered)
			k->delivered = sl->seq;
		k->tail = (k->tail + 1) % k->cap;
		k->count--;
	}
	if (*delivered < k->delivered)
		*delivered = k->delivered;
}

/*
 * Down: events have waited DOWN_GRACE_MS since all brokers went down, or
 * the oldest one has waited longer than a request may take (a partition
 * without a leader, say): the loop says so once and backs off.
 */
static int
is_down(struct kafka *k, char *err)
{
	uint64_t	 waited;

	if (k->count == 0)
		return 0;
	waited = clock_mono_ms() - k->ring[k->tail].sent_ms;
	if (k->down && waited >= DOWN_GRACE_MS) {
		snprintf(err, SINK_ERRMAX, "all brokers down (%s); %zu events "
		    "in flight", why_or(k, "no answer"), k->count);
		return 1;
	}
	if (waited >= k->stall_ms) {
		snprintf(err, SINK_ERRMAX, "event %" PRIu64 " not acknowledged "
		    "after %" PRIu64 " s (%s); %zu events in flight",
		    k->ring[k->tail].seq, waited / 1000,
		    why_or(k, "no error reported"), k->count);
		return 1;
	}
	return 0;
}

static int
kafka_poll(void *arg, int timeout_ms, uint64_t *delivered, sink_dead_fn dead,
    void *darg, char *err)
{
	struct kafka	*k = arg;
	char		 why[400] = "";
	uint64_t	 now, end = clock_mono_ms() + (uint64_t)timeout_ms;
	unsigned	 news = k->news;

	if (k->rk == NULL)
		return no_producer(err);
	/* Other events (a failed reconnect) end rd_kafka_poll() early. */
	do {
		now = clock_mono_ms();
		rd_kafka_poll(k->rk, now < end ? (int)(end - now) : 0);
	} while (k->news == news && clock_mono_ms() < end);
	k->now_ms = clock_mono_ms();
	advance(k, delivered, dead, darg);
	if (k->fatal || k->rewind) {
		if (k->fatal) {
			if (rd_kafka_fatal_error(k->rk, why, sizeof(why)) ==
			    RD_KAFKA_RESP_ERR_NO_ERROR)
				snprintf(why, sizeof(why), "%s", k->why);
			snprintf(err, SINK_ERRMAX, "fatal producer error: %s; "
			    "new producer", why);
		} else
			snprintf(err, SINK_ERRMAX, "delivery failed (%s); new "
			    "producer", k->rwhy);
		producer_drop(k);
		if (producer_new(k, err) != 0)
			return SINK_FATAL;
		return SINK_REWIND;
	}
	return is_down(k, err) ? SINK_DOWN : SINK_OK;
}

static int
kafka_flush(void *arg, int timeout_ms, uint64_t *delivered, sink_dead_fn dead,
    void *darg, char *err)
{
	struct kafka	*k = arg;

	if (k->rk == NULL)
		return no_producer(err);
	rd_kafka_flush(k->rk, timeout_ms);
	k->now_ms = clock_mono_ms();
	advance(k, delivered, dead, darg);
	if (k->count == 0)
		return SINK_OK;
	snprintf(err, SINK_ERRMAX, "%zu events not confirmed within %d ms%s%s; "
	    "they stay in the spool", k->count, timeout_ms,
	    k->down ? ": all brokers down: " : "", k->down ? k->why : "");
	return SINK_DOWN;
}

static void
kafka_close(void *arg)
{
	struct kafka	*k = arg;

	if (k == NULL)
		return;
	producer_drop(k);
	if (k->tmpl)
		rd_kafka_conf_destroy(k->tmpl);
	if (k->enc)
		avroenc_free(k->enc);
	free(k->ring);
	free(k->topics);
	free(k->topic.p);
	free(k->key.p);
	free(k->val.p);
	free(k);
}

/*
 * --check-config: the producer made as a start would and dropped, but with
 * no broker to connect to, so that a check neither reaches the cluster nor
 * waits on its DNS: librdkafka checks some settings only together, here.
 */
int
sink_kafka_check(const struct conf *cf, const struct conf_sink *sc,
    char *err)
{
	struct kafka	 k;
	rd_kafka_conf_t	*c;
	rd_kafka_t	*rk;
	char		 e[400];
	int		 rc = -1;

	memset(&k, 0, sizeof(k));
	k.sc = sc;
	if (kafka_conf(&k, cf, err) != 0)
		goto done;
	c = rd_kafka_conf_dup(k.tmpl);
	if (rd_kafka_conf_set(c, "bootstrap.servers", "", e, sizeof(e)) !=
	    RD_KAFKA_CONF_OK || rd_kafka_conf_set(c, "log_level", "0", e,
	    sizeof(e)) != RD_KAFKA_CONF_OK ||
	    (rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e))) == NULL) {
		rd_kafka_conf_destroy(c);
		snprintf(err, SINK_ERRMAX, "librdkafka: %s", e);
		goto done;
	}
	rd_kafka_destroy(rk);
	rc = 0;
done:
	if (k.tmpl)
		rd_kafka_conf_destroy(k.tmpl);
	return rc;
}

const struct sink_ops sink_kafka_ops = {
	.type = "kafka",
	.redeliver = 1,		/* the ring never lowers delivered */
	.open = kafka_open,
	.recover = kafka_recover,
	.send = kafka_send,
	.poll = kafka_poll,
	.flush = kafka_flush,
	.close = kafka_close,
};
