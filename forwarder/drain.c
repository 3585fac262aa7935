/*
 * drain.c: the drain loop, one thread per sink: read the spool after the
 * sink's position in seq order, hand events to the sink, and move the
 * sink's cursor in the spool as the sink confirms delivery.
 *
 * Delivery semantics (see sink.h for the sink's half):
 *  - The cursor only moves to what the sink reported delivered (or dead-
 *    lettered), never to what was merely sent.  A crash anywhere therefore
 *    resends from the cursor: at least once, and exactly once for sinks
 *    that recognise what they already hold (the Avro file sink).
 *  - A refused event becomes a dead letter in the spool before the cursor
 *    passes it, so it is never dropped silently and never stalls the rest.
 *  - Reads are short transactions of at most READ_BATCH events; nothing of
 *    the backlog is held in memory beyond what the sink has in flight, so a
 *    restart with a large backlog costs no memory.
 *  - While the sink is down the loop backs off (100 ms doubling to 5 s),
 *    logs the outage once and its end once, and never spins.
 *  - Cursor writes are fsynced transactions: at most one per
 *    CURSOR_EVERY_MS per sink, so they cost the agent's writer little;
 *    and one at once when a backlog is drained (everything sent is
 *    delivered and the last read came back short), so that an idle
 *    sink's cursor says so without waiting for the next turn.  While the
 *    sink is caught up, its cursor's time is refreshed every
 *    TOUCH_EVERY_MS: the cursor's age is then the time since it last
 *    moved or had nothing waiting, and events that arrive after an idle
 *    hour do not find a cursor that looks an hour stuck.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "forwarder.h"
#include "log.h"

#define READ_BATCH	512
#define POLL_IDLE_MS	100
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000
#define CURSOR_EVERY_MS	100
#define TOUCH_EVERY_MS	5000	/* a caught-up cursor's time, refreshed */
#define RETRY_EVERY_MS	1000	/* looks for dead letters marked for retry */
#define RETRY_FLUSH_MS	10000

static const struct sink_ops *const sink_types[] = {
	&sink_kafka_ops,
	&sink_avro_ops,
};

const struct sink_ops *
drain_ops_for(const struct conf_sink *sc)
{
	const char *type = sc->type == CONF_SINK_KAFKA ? "kafka" :
	    "avro-files";

	for (size_t i = 0; i < sizeof(sink_types) / sizeof(sink_types[0]); i++)
		if (strcmp(sink_types[i]->type, type) == 0)
			return sink_types[i];
	return NULL;
}

int
drain_open(struct fwd *f, struct drain *d, const struct conf_sink *sc,
    char *err, size_t errlen)
{
	char serr[SPOOL_ERRMAX];
	int rc;

	memset(d, 0, sizeof(*d));
	d->f = f;
	d->sc = sc;
	if ((d->ops = drain_ops_for(sc)) == NULL) {
		snprintf(err, errlen, "sink %s: no such sink type", sc->name);
		return -1;
	}
	if ((d->sink = d->ops->open(f->conf, sc, d->err)) == NULL) {
		snprintf(err, errlen, "sink %s: %s", sc->name, d->err);
		return -1;
	}
	if (spool_cursor_init(f->spool, sc->name, clock_wall_ms(), serr) !=
	    SPOOL_OK || spool_cursor_get(f->spool, sc->name, &d->cursor, NULL,
	    serr) != SPOOL_OK) {
		snprintf(err, errlen, "sink %s: %s", sc->name, serr);
		goto fail;
	}
	if ((rc = d->ops->recover(d->sink, d->cursor, d->err)) != SINK_OK) {
		snprintf(err, errlen, "sink %s: recovering: %s", sc->name,
		    d->err);
		goto fail;
	}
	d->sent = d->delivered = d->cursor;
	d->backoff_ms = BACKOFF_MIN_MS;
	return 0;
fail:
	d->ops->close(d->sink);
	d->sink = NULL;
	return -1;
}

/* A refusal for good: keep it as a dead letter before the cursor moves. */
static void
dead(uint64_t seq, const char *reason, void *arg)
{
	struct drain *d = arg;
	char err[SPOOL_ERRMAX];

	if (d->retrying) {	/* a resent dead letter, refused again */
		for (size_t i = 0; i < d->nrseq; i++)
			if (d->rseq[i] == seq && d->nredead < RETRY_BATCH) {
				d->redead[d->nredead].seq = seq;
				snprintf(d->redead[d->nredead].reason,
				    sizeof(d->redead[0].reason), "%s", reason);
				d->nredead++;
				return;
			}
	}

	atomic_fetch_add(&d->n_dead, 1);
	log_warnx("sink %s: event %llu refused for good, kept as a dead "
	    "letter: %s", d->sc->name, (unsigned long long)seq, reason);
	if (spool_dead_add(d->f->spool, d->sc->name, seq, reason,
	    clock_wall_ms(), err) != SPOOL_OK)
		log_warnx("sink %s: %s", d->sc->name, err);
}

static int
send_one(const struct spool_event *ev, void *arg)
{
	struct drain *d = arg;
	int rc;

	rc = d->ops->send(d->sink, ev, d->err);
	if (rc == SINK_OK) {
		d->sent = ev->seq;
		atomic_fetch_add(&d->n_events, 1);
		atomic_fetch_add(&d->n_bytes, ev->body_len);
		return 0;
	}
	d->blocked = rc;
	return 1;
}

static void
outage(struct drain *d, int is_down)
{
	if (is_down && !d->down)
		log_warnx("sink %s: down: %s; retrying with backoff, events "
		    "wait in the spool", d->sc->name, d->err);
	else if (!is_down && d->down)
		log_info("sink %s: up again, resuming from seq %llu",
		    d->sc->name, (unsigned long long)d->sent);
	d->down = is_down;
	if (is_down) {
		d->backoff_ms *= 2;
		if (d->backoff_ms > BACKOFF_MAX_MS)
			d->backoff_ms = BACKOFF_MAX_MS;
	} else
		d->backoff_ms = BACKOFF_MIN_MS;
}

/* Moves the cursor to what the sink delivered; FORCE skips the pacing. */
static void
cursor_advance(struct drain *d, int force)
{
	char err[SPOOL_ERRMAX];
	uint64_t now = clock_mono_ms();

	if (d->delivered <= d->cursor)
		return;
	if (!force && now - d->cursor_ms < CURSOR_EVERY_MS)
		return;
	if (spool_cursor_set(d->f->spool, d->sc->name, d->delivered,
	    clock_wall_ms(), err) != SPOOL_OK) {
		log_warnx("sink %s: %s", d->sc->name, err);
		return;
	}
	d->cursor = d->delivered;
	atomic_store(&d->cursor_pub, d->cursor);
	d->cursor_ms = now;
}

/* Caught up: the cursor stands, and its time says it is current. */
static void
cursor_touch(struct drain *d)
{
	char err[SPOOL_ERRMAX];
	uint64_t now = clock_mono_ms();

	if (now - d->cursor_ms < TOUCH_EVERY_MS)
		return;
	if (spool_cursor_set(d->f->spool, d->sc->name, d->cursor,
	    clock_wall_ms(), err) != SPOOL_OK) {
		log_warnx("sink %s: %s", d->sc->name, err);
		return;
	}
	d->cursor_ms = now;
}

static int
retry_one(const struct spool_dead *dl, const struct spool_event *ev,
    void *arg)
{
	struct drain *d = arg;

	if (!dl->retry)
		return 0;
	if (d->ops->send(d->sink, ev, d->err) != SINK_OK)
		return 1;
	d->rseq[d->nrseq++] = ev->seq;
	return d->nrseq == RETRY_BATCH;
}

/*
 * Dead letters marked for retry (ferry-spool dead retry): resent while
 * nothing else is in flight, then flushed; each delivered one is dropped,
 * each refused again keeps its row with the new reason and no mark.
 */
static void
retry_dead(struct drain *d)
{
	char err[SPOOL_ERRMAX];
	uint64_t delivered = d->delivered, now = clock_mono_ms();
	size_t i, j, n;
	int rc;

	if (!d->ops->redeliver || d->sent != d->delivered || d->down ||
	    now - d->retry_ms < RETRY_EVERY_MS)
		return;
	d->retry_ms = now;
	d->nrseq = d->nredead = 0;
	if (spool_dead_each(d->f->spool, d->sc->name, retry_one, d, err) < 0)
		log_warnx("sink %s: %s", d->sc->name, err);
	if (d->nrseq == 0)
		return;
	d->retrying = 1;
	rc = d->ops->flush(d->sink, RETRY_FLUSH_MS, &delivered, dead, d,
	    d->err);
	d->retrying = 0;
	if (rc != SINK_OK) {
		/* Not confirmed: keep the marks, resend later (at least once). */
		log_warnx("sink %s: resending dead letters: %s", d->sc->name,
		    d->err);
		return;
	}
	for (i = 0; i < d->nrseq; i++) {
		for (j = 0; j < d->nredead && d->redead[j].seq != d->rseq[i];
		    j++)
			;
		if (j < d->nredead)
			spool_dead_mark(d->f->spool, d->sc->name, d->rseq[i], 0,
			    d->redead[j].reason, clock_wall_ms(), &n, err);
		else if (spool_dead_drop(d->f->spool, d->sc->name, d->rseq[i],
		    err) != SPOOL_OK)
			log_warnx("sink %s: %s", d->sc->name, err);
	}
	log_info("sink %s: resent %zu dead letters: %zu delivered, %zu "
	    "refused again", d->sc->name, d->nrseq, d->nrseq - d->nredead,
	    d->nredead);
}

/* One turn: read and send what fits, then let the sink make progress. */
static int
drain_turn(struct drain *d)
{
	char err[SPOOL_ERRMAX];
	long n = 0;
	int rc, timeout, drained;

	/* While down, this read is the probe that tells when it is up. */
	retry_dead(d);
	d->blocked = 0;
	n = spool_read(d->f->spool, d->sent, READ_BATCH, send_one, d, err);
	if (n < 0) {
		log_warnx("sink %s: reading the spool: %s", d->sc->name, err);
		n = 0;
	}
	if (d->blocked == SINK_FATAL)
		return -1;
	if (d->blocked == SINK_DOWN || d->down)
		timeout = (int)d->backoff_ms;
	else
		timeout = (n == 0 || d->blocked) ? POLL_IDLE_MS : 0;
	rc = d->ops->poll(d->sink, timeout, &d->delivered, dead, d, d->err);
	switch (rc) {
	case SINK_OK:
		outage(d, d->blocked == SINK_DOWN);
		break;
	case SINK_DOWN:
		outage(d, 1);
		break;
	case SINK_REWIND:
		if (d->blocked == SINK_DOWN)
			outage(d, 1);	/* logged once, backs off */
		else
			log_warnx("sink %s: %s; resending from seq %llu",
			    d->sc->name, d->err,
			    (unsigned long long)d->cursor + 1);
		cursor_advance(d, 1);
		d->sent = d->delivered = d->cursor;
		break;
	default:
		return -1;
	}
	if (n == READ_BATCH)
		d->backlog = 1;
	drained = d->backlog && n < READ_BATCH && !d->blocked &&
	    d->delivered == d->sent;
	if (drained)
		d->backlog = 0;
	cursor_advance(d, drained);
	if (n == 0 && !d->blocked && !d->down && d->delivered == d->sent &&
	    d->cursor == d->delivered)
		cursor_touch(d);
	return 0;
}

static void *
drain_main(void *arg)
{
	struct drain *d = arg;

	while (!atomic_load(&d->f->stop))
		if (drain_turn(d) != 0) {
			log_warnx("sink %s: stopped: %s", d->sc->name, d->err);
			d->failed = 1;
			break;
		}
	/* Stop reading; deliver what is in flight within the bound. */
	if (d->ops->flush(d->sink, (int)d->f->conf->agent.shutdown_timeout_ms,
	    &d->delivered, dead, d, d->err) != SINK_OK)
		log_warnx("sink %s: flushing: %s", d->sc->name, d->err);
	cursor_advance(d, 1);
	return NULL;
}

int
drain_start(struct drain *d)
{
	if (pthread_create(&d->thread, NULL, drain_main, d) != 0)
		return -1;
	d->started = 1;
	return 0;
}

void
drain_join(struct drain *d)
{
	if (d->started)
		pthread_join(d->thread, NULL);
	d->started = 0;
	if (d->sink)
		d->ops->close(d->sink);
	d->sink = NULL;
}

/* The periodic throughput line, from the main thread: events handed to the
 * sink (the cursor says what it delivered). */
void
drain_report(struct drain *d, uint64_t secs)
{
	uint64_t ev = atomic_exchange(&d->n_events, 0);
	uint64_t by = atomic_exchange(&d->n_bytes, 0);
	uint64_t dd = atomic_exchange(&d->n_dead, 0);

	if (ev == 0 && dd == 0)
		return;
	log_info("sink %s: %llu events sent (%.0f/s, %.1f MB/s), %llu dead, "
	    "cursor %llu", d->sc->name, (unsigned long long)ev,
	    (double)ev / (double)(secs ? secs : 1),
	    (double)by / 1e6 / (double)(secs ? secs : 1),
	    (unsigned long long)dd,
	    (unsigned long long)atomic_load(&d->cursor_pub));
}
