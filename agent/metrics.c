/*
 * metrics.c: the agent's counters and their Prometheus text rendering.
 *
 * Counters are atomics bumped on the request path and by the writer;
 * rendering reads them without locks (each value is exact, the set is a
 * near-instant snapshot).  Spool figures and per-sink lag come from one
 * spool_stat() and the cursors, read in short transactions at scrape time.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "daemon.h"

/* Upper bounds of the commit latency buckets, microseconds. */
static const uint64_t lat_le_us[METRIC_LAT_BUCKETS - 1] = {
	250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000,
	1000000,
};
/* Upper bounds of the events-per-commit buckets. */
static const uint64_t batch_le[METRIC_BATCH_BUCKETS - 1] = {
	1, 2, 5, 10, 20, 50, 100, 200, 500, 1000,
};

void
metrics_commit(struct metrics *m, uint64_t usec, size_t events)
{
	size_t i;

	for (i = 0; i < METRIC_LAT_BUCKETS - 1 && usec > lat_le_us[i]; i++)
		;
	atomic_fetch_add(&m->commit_lat[i], 1);
	atomic_fetch_add(&m->commit_lat_sum_us, usec);
	atomic_fetch_add(&m->commits, 1);
	for (i = 0; i < METRIC_BATCH_BUCKETS - 1 && events > batch_le[i]; i++)
		;
	atomic_fetch_add(&m->batch[i], 1);
	atomic_fetch_add(&m->batch_sum, events);
}

void
metrics_dedup(struct metrics *m, const struct spool *sp)
{
	uint64_t entries, bytes;

	spool_dedup_memory(sp, &entries, &bytes);
	atomic_store(&m->dedup_entries, entries);
	atomic_store(&m->dedup_bytes, bytes);
}

void
metrics_status(struct metrics *m, unsigned code)
{
	if (code < METRIC_STATUS_MAX)
		atomic_fetch_add(&m->status[code], 1);
}

struct buf {
	char	*p;
	size_t	 len, cap;
	int	 oom;
};

static void
bprintf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (b->oom)
			return;
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		char *np = realloc(b->p, b->cap * 2);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap *= 2;
	}
}

static void
render_histograms(struct buf *b, struct metrics *m)
{
	uint64_t cum = 0;

	bprintf(b, "# HELP ferry_commit_seconds Spool commit latency "
	    "(write transaction with fsync).\n"
	    "# TYPE ferry_commit_seconds histogram\n");
	for (size_t i = 0; i < METRIC_LAT_BUCKETS; i++) {
		cum += atomic_load(&m->commit_lat[i]);
		if (i < METRIC_LAT_BUCKETS - 1)
			bprintf(b, "ferry_commit_seconds_bucket{le=\"%g\"} "
			    "%llu\n", (double)lat_le_us[i] / 1e6,
			    (unsigned long long)cum);
		else
			bprintf(b, "ferry_commit_seconds_bucket{le=\"+Inf\"} "
			    "%llu\n", (unsigned long long)cum);
	}
	bprintf(b, "ferry_commit_seconds_sum %.6f\n"
	    "ferry_commit_seconds_count %llu\n",
	    (double)atomic_load(&m->commit_lat_sum_us) / 1e6,
	    (unsigned long long)atomic_load(&m->commits));
	cum = 0;
	bprintf(b, "# HELP ferry_commit_events Events appended per commit.\n"
	    "# TYPE ferry_commit_events histogram\n");
	for (size_t i = 0; i < METRIC_BATCH_BUCKETS; i++) {
		cum += atomic_load(&m->batch[i]);
		if (i < METRIC_BATCH_BUCKETS - 1)
			bprintf(b, "ferry_commit_events_bucket{le=\"%llu\"} "
			    "%llu\n", (unsigned long long)batch_le[i],
			    (unsigned long long)cum);
		else
			bprintf(b, "ferry_commit_events_bucket{le=\"+Inf\"} "
			    "%llu\n", (unsigned long long)cum);
	}
	bprintf(b, "ferry_commit_events_sum %llu\n"
	    "ferry_commit_events_count %llu\n",
	    (unsigned long long)atomic_load(&m->batch_sum),
	    (unsigned long long)atomic_load(&m->commits));
}

struct sink_ctx {
	struct buf	*b;
	uint64_t	 last_seq;
	uint64_t	 now;
	int		 pass;
};

static int
sink_line(const char *sink, uint64_t seq, uint64_t updated, void *arg)
{
	struct sink_ctx *s = arg;

	if (s->pass == 0)
		bprintf(s->b, "ferry_sink_lag_events{sink=\"%s\"} %llu\n",
		    sink, (unsigned long long)(s->last_seq > seq ?
		    s->last_seq - seq : 0));
	else if (s->pass == 1)
		bprintf(s->b, "ferry_sink_cursor{sink=\"%s\"} %llu\n", sink,
		    (unsigned long long)seq);
	else
		bprintf(s->b, "ferry_sink_cursor_age_seconds{sink=\"%s\"} "
		    "%.3f\n", sink, s->now > updated ?
		    (double)(s->now - updated) / 1000 : 0.0);
	return 0;
}

static void
render_spool(struct buf *b, struct agent *a)
{
	static const char *const help[3] = {
		"# HELP ferry_sink_lag_events Events in the spool a sink has "
		"not delivered.\n# TYPE ferry_sink_lag_events gauge\n",
		"# HELP ferry_sink_cursor Last sequence number a sink "
		"delivered.\n# TYPE ferry_sink_cursor gauge\n",
		"# HELP ferry_sink_cursor_age_seconds Time since a sink's "
		"cursor last moved or was last caught up.\n"
		"# TYPE ferry_sink_cursor_age_seconds gauge\n",
	};
	struct spool_stat st;
	struct sink_ctx s = { b, 0, clock_wall_ms(), 0 };

	if (spool_stat(a->spool, &st, NULL) != SPOOL_OK)
		return;
	bprintf(b, "# HELP ferry_spool_used_bytes Bytes of the spool in "
	    "use.\n# TYPE ferry_spool_used_bytes gauge\n"
	    "ferry_spool_used_bytes %llu\n"
	    "# HELP ferry_spool_limit_bytes The spool's max_size.\n"
	    "# TYPE ferry_spool_limit_bytes gauge\n"
	    "ferry_spool_limit_bytes %llu\n"
	    "# HELP ferry_spool_events Events held in the spool.\n"
	    "# TYPE ferry_spool_events gauge\nferry_spool_events %llu\n"
	    "# HELP ferry_spool_last_seq Last sequence number assigned.\n"
	    "# TYPE ferry_spool_last_seq gauge\nferry_spool_last_seq %llu\n",
	    (unsigned long long)st.used_bytes,
	    (unsigned long long)st.max_bytes,
	    (unsigned long long)st.events,
	    (unsigned long long)(st.next_seq - 1));
	s.last_seq = st.next_seq - 1;
	for (s.pass = 0; s.pass < 3; s.pass++) {
		bprintf(b, "%s", help[s.pass]);
		spool_cursor_each(a->spool, sink_line, &s, NULL);
	}
}

char *
metrics_render(struct agent *a, size_t *len)
{
	struct metrics *m = &a->m;
	struct buf b = { malloc(8192), 0, 8192, 0 };

	if (b.p == NULL)
		return NULL;
	bprintf(&b, "# HELP ferry_http_requests_total HTTP requests "
	    "answered, by status code.\n"
	    "# TYPE ferry_http_requests_total counter\n");
	for (unsigned c = 100; c < METRIC_STATUS_MAX; c++) {
		uint64_t n = atomic_load(&m->status[c]);
		if (n)
			bprintf(&b, "ferry_http_requests_total{code=\"%u\"} "
			    "%llu\n", c, (unsigned long long)n);
	}
	bprintf(&b, "# HELP ferry_events_accepted_total Events committed "
	    "to the spool.\n# TYPE ferry_events_accepted_total counter\n"
	    "ferry_events_accepted_total %llu\n"
	    "# HELP ferry_events_duplicate_total Events answered as "
	    "duplicates, not stored again.\n"
	    "# TYPE ferry_events_duplicate_total counter\n"
	    "ferry_events_duplicate_total %llu\n"
	    "# HELP ferry_events_rejected_full_total Events refused with 503 "
	    "because the spool was full.\n"
	    "# TYPE ferry_events_rejected_full_total counter\n"
	    "ferry_events_rejected_full_total %llu\n"
	    "# HELP ferry_event_bytes_total Body bytes of accepted "
	    "requests.\n# TYPE ferry_event_bytes_total counter\n"
	    "ferry_event_bytes_total %llu\n"
	    "# HELP ferry_dedup_entries Events the in-memory dedup index "
	    "remembers (within [dedup] window).\n"
	    "# TYPE ferry_dedup_entries gauge\nferry_dedup_entries %llu\n"
	    "# HELP ferry_dedup_index_bytes Memory of the dedup index's "
	    "tables.\n"
	    "# TYPE ferry_dedup_index_bytes gauge\n"
	    "ferry_dedup_index_bytes %llu\n",
	    (unsigned long long)atomic_load(&m->events),
	    (unsigned long long)atomic_load(&m->duplicates),
	    (unsigned long long)atomic_load(&m->rejected_full),
	    (unsigned long long)atomic_load(&m->bytes),
	    (unsigned long long)atomic_load(&m->dedup_entries),
	    (unsigned long long)atomic_load(&m->dedup_bytes));
	render_histograms(&b, m);
	render_spool(&b, a);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
