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

#include <microhttpd.h>

#include "agent.h"
#include "daemon.h"
#include "log.h"

#define EXPIRE_PER_COMMIT	512	/* dedup rows expired per commit */

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
	atomic_store(&a->full, full);
	if (events > 0)
		metrics_commit(&a->m, clock_mono_us() - t0, events);
	/* Once per commit, not per answer: are clients to slow down? */
	writer_note_space(a);
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

int
writer_start(struct agent *a)
{
	a->qhead = a->qtail = NULL;
	a->wstop = 0;
	return pthread_create(&a->writer, NULL, writer_main, a);
}

void
writer_stop(struct agent *a)
{
	pthread_mutex_lock(&a->qlock);
	a->wstop = 1;
	pthread_cond_signal(&a->qcond);
	pthread_mutex_unlock(&a->qlock);
	pthread_join(a->writer, NULL);
}
