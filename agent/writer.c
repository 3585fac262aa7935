/*
 * writer.c: the group-commit writer, the one thread that writes the spool.
 *
 * Handlers queue requests (writer_submit) and suspend their connections.
 * The writer takes everything queued, adds each request as one all-or-
 * nothing group to ONE write transaction, commits it (fsync), and only then
 * sets each request's outcome and resumes its connection.  While a commit
 * syncs, new requests pile up in the queue and go into the next commit: the
 * batch grows with the load, so one fsync covers many requests.
 *
 * Invariants:
 *  - A request is answered 2xx only after the commit holding its events
 *    returned SPOOL_OK.  If the commit fails, every request in it fails.
 *  - Every submitted request is resumed exactly once, also on shutdown:
 *    writer_stop() drains the queue before the thread exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "agent.h"
#include "daemon.h"
#include "log.h"

#define EXPIRE_PER_COMMIT	512	/* dedup rows expired per commit */
#define RESERVE_TICK_MS		100	/* the reserver looks this often */
#define RESERVE_RETRY_S		5	/* and after a failure, this often */

uint64_t
writer_note_space(struct agent *a)
{
	uint64_t used = spool_used_bytes(a->spool);

	atomic_store(&a->backoff, used * 100 >
	    spool_max_bytes(a->spool) * a->conf->spool.high_watermark);
	return used;
}

void
writer_submit(struct agent *a, struct intake_req *r)
{
	r->next = NULL;
	atomic_fetch_add(&a->inflight, 1);
	pthread_mutex_lock(&a->qlock);
	if (a->qtail)
		a->qtail->next = r;
	else
		a->qhead = r;
	a->qtail = r;
	pthread_cond_signal(&a->qcond);
	pthread_mutex_unlock(&a->qlock);
}

static void
finish(struct agent *a, struct intake_req *r)
{
	struct MHD_Connection *conn = r->conn;

	MHD_resume_connection(conn);
	atomic_fetch_sub(&a->inflight, 1);
}

/* Sets every request of LIST to RC with message ERR. */
static void
fail_all(struct intake_req *list, int rc, const char *err)
{
	for (struct intake_req *r = list; r; r = r->next)
		if (r->rc == SPOOL_OK) {
			r->rc = rc;
			snprintf(r->err, sizeof(r->err), "%s", err);
		}
}

/* Writes one batch of requests in one transaction. */
static void
commit_batch(struct agent *a, struct intake_req *list)
{
	struct spool_wtxn *w;
	char err[SPOOL_ERRMAX];
	uint64_t now = clock_wall_ms(), t0 = clock_mono_us();
	size_t events = 0, expired;
	uint64_t used;
	int rc, full = 0;

	if ((rc = spool_wbegin(a->spool, &w, err)) != SPOOL_OK) {
		log_warnx("%s", err);
		fail_all(list, rc, err);
		return;
	}
	for (struct intake_req *r = list; r; r = r->next) {
		r->rc = spool_wadd(w, r->evs, r->n, 1, now, r->dup, r->err);
		if (r->rc == SPOOL_FULL)
			full = 1;
		if (r->rc == SPOOL_ERR) {
			/* The transaction is unusable: nothing commits. */
			log_warnx("%s", r->err);
			spool_wabort(w);
			fail_all(list, SPOOL_ERR, r->err);
			return;
		}
		if (r->rc != SPOOL_OK)
			continue;
		r->duplicates = 0;
		for (size_t i = 0; i < r->n; i++)
			r->duplicates += (size_t)r->dup[i];
		r->accepted = r->n - r->duplicates;
		events += r->accepted;
	}
	/*
	 * Expiry keeps pace with intake: twice the rows this commit added,
	 * plus a floor that drains a backlog.  Also when nothing was
	 * accepted: on a full spool, expired rows are space to win back.
	 */
	if (spool_dedup_expire(w, now, EXPIRE_PER_COMMIT + 2 * events,
	    &expired, err) != SPOOL_OK)
		log_warnx("%s", err);
	if ((rc = spool_wcommit(w, err)) != SPOOL_OK) {
		log_warnx("%s", err);
		fail_all(list, rc, err);
		return;
	}
	if (events > 0)
		metrics_commit(&a->m, clock_mono_us() - t0, events);
	metrics_dedup(&a->m, a->spool);
	/*
	 * Once per commit, not per answer: are clients to slow down, is the
	 * spool full?  Full by the same rule as at start and as /ready's
	 * re-check: a commit of duplicates only, or of a few small events
	 * that still fitted, leaves a full spool full.
	 */
	used = writer_note_space(a);
	atomic_store(&a->full, full ||
	    used + AGENT_FULL_SLACK >= spool_max_bytes(a->spool));
}

static void *
writer_main(void *arg)
{
	struct agent *a = arg;
	struct intake_req *list, *next;

	for (;;) {
		pthread_mutex_lock(&a->qlock);
		while (a->qhead == NULL && !a->wstop)
			pthread_cond_wait(&a->qcond, &a->qlock);
		list = a->qhead;
		a->qhead = a->qtail = NULL;
		if (list == NULL && a->wstop) {
			pthread_mutex_unlock(&a->qlock);
			return NULL;
		}
		pthread_mutex_unlock(&a->qlock);

		commit_batch(a, list);
		for (; list; list = next) {
			next = list->next;	/* r may be freed once resumed */
			finish(a, list);
		}
	}
}

/*
 * The reserver keeps [spool] reserve bytes of data.mdb written ahead of the
 * pages in use (spool_reserve), so that the writer's commits do not extend
 * the file while the spool grows.  It waits for LMDB's writer lock like any
 * writer and holds it for 1 MiB of zeros at a time.  A failure (a full
 * disk) costs nothing but the speed-up: the commits extend the file
 * themselves, and their own errors are what the clients see.
 */
static void *
reserver_main(void *arg)
{
	struct agent *a = arg;
	char err[SPOOL_ERRMAX];
	uint64_t added;
	int failing = 0;

	pthread_mutex_lock(&a->qlock);
	while (!a->wstop) {
		struct timespec ts;
		int rc;

		pthread_mutex_unlock(&a->qlock);
		rc = spool_reserve(a->spool, a->conf->spool.reserve, &added,
		    err);
		if (rc != SPOOL_OK && !failing)
			log_warnx("%s; retrying every %d s", err,
			    RESERVE_RETRY_S);
		else if (rc == SPOOL_OK && failing)
			log_info("spool: reserving space works again");
		else if (added > 0)
			log_debug("spool: reserved %llu bytes ahead",
			    (unsigned long long)added);
		failing = rc != SPOOL_OK;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (failing)
			ts.tv_sec += RESERVE_RETRY_S;
		else if ((ts.tv_nsec += RESERVE_TICK_MS * 1000000L) >=
		    1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&a->qlock);
		if (!a->wstop)
			pthread_cond_timedwait(&a->rcond, &a->qlock, &ts);
	}
	pthread_mutex_unlock(&a->qlock);
	return NULL;
}

int
writer_start(struct agent *a)
{
	pthread_condattr_t ca;
	int ok;

	a->qhead = a->qtail = NULL;
	a->wstop = 0;
	a->reserving = 0;
	if (pthread_create(&a->writer, NULL, writer_main, a) != 0)
		return -1;
	if (a->conf->spool.reserve == 0)
		return 0;
	/* The reserver's timed waits: on the monotonic clock. */
	if (pthread_condattr_init(&ca) != 0) {
		writer_stop(a);
		return -1;
	}
	ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(&a->rcond, &ca) == 0;
	pthread_condattr_destroy(&ca);
	if (ok && pthread_create(&a->reserver, NULL, reserver_main, a) != 0) {
		pthread_cond_destroy(&a->rcond);
		ok = 0;
	}
	if (!ok) {
		writer_stop(a);
		return -1;
	}
	a->reserving = 1;
	return 0;
}

void
writer_stop(struct agent *a)
{
	pthread_mutex_lock(&a->qlock);
	a->wstop = 1;
	pthread_cond_signal(&a->qcond);
	if (a->reserving)
		pthread_cond_signal(&a->rcond);
	pthread_mutex_unlock(&a->qlock);
	pthread_join(a->writer, NULL);
	if (a->reserving) {
		pthread_join(a->reserver, NULL);
		pthread_cond_destroy(&a->rcond);
		a->reserving = 0;
	}
}
