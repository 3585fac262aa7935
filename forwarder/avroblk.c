/*
 * avroblk.c: Avro object container files (avroblk.h): the header, the
 * blocks, their deflate and the pool of threads that runs it.
 *
 * Every buffer of a block, its objects (raw) and their deflated form
 * (out), keeps HEAD_ROOM bytes before the data and a sync marker's room
 * after it: the block is framed in place and written with one write().
 *
 * The queue is a list in sealing order, the drain thread's alone.  The
 * pool's jobs are another list, under its mutex: a thread takes the first
 * job, deflates it unlocked (it is the block's only user then), and sets
 * its done flag under the mutex, which hands the block back to the drain
 * thread.  The drain thread takes blocks only from the head of the queue,
 * so the order of writing is the order of sealing, whatever the order the
 * threads finish in.  A block dropped (its file discarded) is compressed
 * all the same and then only recycled: no thread is ever interrupted.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "avroblk.h"
#include "avrobin.h"
#include "sink.h"

#define HEAD_ROOM	20	/* count and size: two varints */
#define OVERHEAD	(HEAD_ROOM + AVROBLK_SYNC)
#define THREADS_MAX	8	/* by default */

struct worker {
	struct avroblk_queue	*q;
	pthread_t		 tid;
	z_stream		 z;
};

struct avroblk_queue {
	int		 deflate;
	z_stream	 z;		/* the drain thread's */
	struct avroblk	*head, **tail;	/* sealed, in order */
	size_t		 n, max;	/* sealed; most that wait */
	uint64_t	 tickets;
	struct avroblk	*spare;		/* of AVROBLK_MIN, for reuse */
	size_t		 nspare;

	/* The pool: jobs, stop and every block's done flag under mu. */
	pthread_mutex_t	 mu;
	pthread_cond_t	 work;		/* a job was queued, or stop */
	pthread_cond_t	 done;		/* a job was done */
	struct avroblk	*jobs, **jtail;
	int		 stop;
	struct worker	*w;
	size_t		 nw;		/* threads running */
};

static int
deflate_init(z_stream *z, int level)
{
	memset(z, 0, sizeof(*z));
	/* Raw deflate (negative window bits): no zlib header, no Adler-32. */
	return deflateInit2(z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY)
	    == Z_OK ? 0 : -1;
}

/* Deflates B's objects into B->out with Z; returns 0 or an errno. */
static int
block_deflate(z_stream *z, struct avroblk *b)
{
	size_t		 need = deflateBound(z, b->len);
	unsigned char	*p;

	if (b->outcap < need) {
		if ((p = realloc(b->out, HEAD_ROOM + need + AVROBLK_SYNC)) ==
		    NULL)
			return ENOMEM;
		b->out = p;
		b->outcap = need;
	}
	if (deflateReset(z) != Z_OK)
		return EIO;
	z->next_in = b->data;
	z->avail_in = (uInt)b->len;
	z->next_out = b->out + HEAD_ROOM;
	z->avail_out = (uInt)b->outcap;
	/* With room for the bound, one call ends the stream. */
	if (deflate(z, Z_FINISH) != Z_STREAM_END)
		return EIO;
	b->outlen = b->outcap - z->avail_out;
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker		*w = arg;
	struct avroblk_queue	*q = w->q;
	struct avroblk		*b;
	int			 error;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->jobs == NULL && !q->stop)
			pthread_cond_wait(&q->work, &q->mu);
		if (q->stop)
			break;
		b = q->jobs;
		if ((q->jobs = b->job) == NULL)
			q->jtail = &q->jobs;
		pthread_mutex_unlock(&q->mu);
		error = block_deflate(&w->z, b);
		pthread_mutex_lock(&q->mu);
		b->error = error;
		b->done = 1;
		pthread_cond_signal(&q->done);	/* one waiter: the drain */
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/*
 * Starts N threads deflating at LEVEL; 0, or -1 with a message in ERR.
 * They block every signal: the daemon reads its own in one place.
 */
static int
pool_start(struct avroblk_queue *q, size_t n, int level, char *err)
{
	sigset_t	all, old;
	int		rc;

	if ((q->w = calloc(n, sizeof(*q->w))) == NULL) {
		snprintf(err, SINK_ERRMAX, "avro: out of memory");
		return -1;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; q->nw < n; q->nw++) {
		q->w[q->nw].q = q;
		if (deflate_init(&q->w[q->nw].z, level) == -1) {
			snprintf(err, SINK_ERRMAX, "avro: deflate: out of "
			    "memory");
			break;
		}
		if ((rc = pthread_create(&q->w[q->nw].tid, NULL, worker_main,
		    &q->w[q->nw])) != 0) {
			deflateEnd(&q->w[q->nw].z);
			snprintf(err, SINK_ERRMAX, "avro: compressor thread: "
			    "%s", strerror(rc));
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return q->nw == n ? 0 : -1;
}

struct avroblk_queue *
avroblk_queue_new(int deflate, int level, long threads, char *err)
{
	struct avroblk_queue	*q;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, SINK_ERRMAX, "avro: out of memory");
		return NULL;
	}
	q->deflate = deflate;
	q->tail = &q->head;
	q->jtail = &q->jobs;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->done, NULL);
	if (!deflate)
		return q;
	if (deflate_init(&q->z, level) == -1) {
		snprintf(err, SINK_ERRMAX, "avro: deflate at level %d: %s",
		    level, q->z.msg != NULL ? q->z.msg : "cannot start");
		goto fail;
	}
	if (threads < 0) {
		threads = sysconf(_SC_NPROCESSORS_ONLN);
		threads = threads < 1 ? 1 : threads > THREADS_MAX ?
		    THREADS_MAX : threads;
	}
	if (threads > 1) {
		q->max = 2 * (size_t)threads;
		if (pool_start(q, (size_t)threads, level, err) == -1)
			goto fail;
	}
	return q;
fail:
	avroblk_queue_free(q);
	return NULL;
}

/* Frees the list of blocks B, linked by next. */
static void
blocks_free(struct avroblk *b)
{
	struct avroblk	*next;

	for (; b != NULL; b = next) {
		next = b->next;
		free(b->out);
		free(b->raw);
		free(b);
	}
}

void
avroblk_queue_free(struct avroblk_queue *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->mu);
	for (size_t i = 0; i < q->nw; i++)
		pthread_join(q->w[i].tid, NULL);
	for (size_t i = 0; i < q->nw; i++)
		deflateEnd(&q->w[i].z);
	deflateEnd(&q->z);	/* harmless on a stream never started */
	blocks_free(q->head);	/* the threads are gone: ours */
	blocks_free(q->spare);
	pthread_cond_destroy(&q->done);
	pthread_cond_destroy(&q->work);
	pthread_mutex_destroy(&q->mu);
	free(q->w);
	free(q);
}

uint64_t
avroblk_bound(struct avroblk_queue *q, size_t len)
{
	return (q->deflate ? deflateBound(&q->z, len) : len) + OVERHEAD;
}

struct avroblk *
avroblk_get(struct avroblk_queue *q, size_t cap)
{
	struct avroblk	*b;

	if (cap == AVROBLK_MIN && (b = q->spare) != NULL) {
		q->spare = b->next;
		q->nspare--;
	} else {
		if ((b = calloc(1, sizeof(*b))) == NULL)
			return NULL;
		if ((b->raw = malloc(HEAD_ROOM + cap + AVROBLK_SYNC)) ==
		    NULL) {
			free(b);
			return NULL;
		}
		b->data = b->raw + HEAD_ROOM;
		b->cap = cap;
	}
	b->len = b->outlen = 0;
	b->count = b->ticket = 0;
	b->owner = NULL;
	b->next = b->job = NULL;
	b->done = b->error = 0;
	return b;
}

void
avroblk_put(struct avroblk_queue *q, struct avroblk *b)
{
	if (b == NULL)
		return;
	/* Keep a few of the common size: as many as may be in flight. */
	if (b->cap == AVROBLK_MIN && q->nspare <= q->max) {
		b->next = q->spare;
		q->spare = b;
		q->nspare++;
		return;
	}
	b->next = NULL;
	blocks_free(b);
}

uint64_t
avroblk_seal(struct avroblk_queue *q, struct avroblk *b, void *owner)
{
	b->owner = owner;
	b->ticket = ++q->tickets;
	*q->tail = b;
	q->tail = &b->next;
	q->n++;
	if (q->nw == 0) {
		if (q->deflate)
			b->error = block_deflate(&q->z, b);
		b->done = 1;
		return b->ticket;
	}
	pthread_mutex_lock(&q->mu);
	*q->jtail = b;
	q->jtail = &b->job;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->mu);
	return b->ticket;
}

/* Whether B is compressed, waiting until it is when WAIT. */
static int
block_done(struct avroblk_queue *q, struct avroblk *b, int wait)
{
	int	done;

	if (q->nw == 0)
		return b->done;
	pthread_mutex_lock(&q->mu);
	while (wait && !b->done)
		pthread_cond_wait(&q->done, &q->mu);
	done = b->done;
	pthread_mutex_unlock(&q->mu);
	return done;
}

struct avroblk *
avroblk_next(struct avroblk_queue *q, uint64_t upto)
{
	struct avroblk	*b = q->head;

	if (b == NULL || !block_done(q, b, b->ticket <= upto || q->n > q->max))
		return NULL;
	if ((q->head = b->next) == NULL)
		q->tail = &q->head;
	q->n--;
	b->next = NULL;
	return b;
}

void
avroblk_drop(struct avroblk_queue *q, void *owner)
{
	for (struct avroblk *b = q->head; b != NULL; b = b->next)
		if (b->owner == owner)
			b->owner = NULL;
}

unsigned char *
avroblk_header(const char *codec, const char *schema, size_t slen,
    const unsigned char sync[AVROBLK_SYNC], size_t *len)
{
	unsigned char	*h, *p;

	if ((h = malloc(slen + strlen(codec) + 128)) == NULL)
		return NULL;
	memcpy(h, "Obj\1", 4);
	p = avrobin_put_long(h + 4, 2);	/* a map block of two entries */
	p = avrobin_put_bytes(p, "avro.codec", 10);
	p = avrobin_put_bytes(p, codec, strlen(codec));
	p = avrobin_put_bytes(p, "avro.schema", 11);
	p = avrobin_put_bytes(p, schema, slen);
	p = avrobin_put_long(p, 0);
	memcpy(p, sync, AVROBLK_SYNC);
	*len = (size_t)(p + AVROBLK_SYNC - h);
	return h;
}

int
avroblk_frame(struct avroblk_queue *q, struct avroblk *b,
    const unsigned char sync[AVROBLK_SYNC], const unsigned char **p,
    size_t *len)
{
	unsigned char	 head[HEAD_ROOM], *data, *end;
	size_t		 n;

	if (b->error != 0)
		return b->error;
	data = q->deflate ? b->out + HEAD_ROOM : b->data;
	n = q->deflate ? b->outlen : b->len;
	end = avrobin_put_long(avrobin_put_long(head, (int64_t)b->count),
	    (int64_t)n);
	data -= end - head;
	memcpy(data, head, (size_t)(end - head));
	memcpy(data + (end - head) + n, sync, AVROBLK_SYNC);
	*p = data;
	*len = (size_t)(end - head) + n + AVROBLK_SYNC;
	return 0;
}
