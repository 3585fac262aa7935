/*
 * spool.h: the spool, ferry's durable queue of events in one LMDB
 * environment.  This library is the only code that knows the on-disk
 * format; ferry-agent, ferry-forwarder and ferry-spool go through it.
 *
 * Contract shared by every function here:
 *  - Functions return SPOOL_OK (0) or a negative enum spool_rc; on error a
 *    message naming the object ("spool /var/lib/ferry: ...") is written to
 *    ERR, a caller's buffer of SPOOL_ERRMAX bytes (ERR may be NULL).
 *  - The library never logs and never exits.
 *  - A struct spool may be used from several threads at once.  A write
 *    transaction (struct spool_wtxn) belongs to the thread that began it,
 *    and one thread at a time may have one: the dedup index it updates is
 *    not locked.  Only one process appends events to a spool (the first
 *    spool_wbegin() takes writer.lock; others get SPOOL_LOCKED); cursor,
 *    trim and dead-letter writes may come from any process, serialised by
 *    LMDB.
 *  - Sequence numbers start at 1, are strictly increasing and are never
 *    reused, not even after the spool drains empty and is reopened.
 *  - Times are milliseconds since the Unix epoch, passed in by the caller.
 */
#ifndef FERRY_SPOOL_H
#define FERRY_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_FORMAT		1	/* on-disk format this library writes */
#define SPOOL_ERRMAX		512
#define SPOOL_IDLEN		16	/* event id: the dedup fingerprint */
#define SPOOL_KEYLEN		32	/* encryption key */
#define SPOOL_STREAM_MAX	64
#define SPOOL_CTYPE_MAX		255
#define SPOOL_IKEY_MAX		1024	/* idempotency key */
#define SPOOL_ADDR_MAX		64
#define SPOOL_BODY_MAX		(64u << 20)
#define SPOOL_SINK_MAX		64
#define SPOOL_DEFAULT_MAX	(1ull << 30)

enum spool_rc {
	SPOOL_OK	=  0,
	SPOOL_ERR	= -1,	/* I/O or LMDB error, see message */
	SPOOL_FULL	= -2,	/* max_size reached: refuse, retry later */
	SPOOL_NOTFOUND	= -3,	/* no such spool, event, cursor, ... */
	SPOOL_EFORMAT	= -4,	/* not a ferry spool, or another format */
	SPOOL_EKEY	= -5,	/* wrong, missing or unexpected key */
	SPOOL_CORRUPT	= -6,	/* a record fails to parse or decrypt */
	SPOOL_EINVAL	= -7,	/* bad argument, e.g. stream name too long */
	SPOOL_EPERM	= -8,	/* permission denied on the directory */
	SPOOL_LOCKED	= -9,	/* another process appends to this spool */
};

struct spool;
struct spool_wtxn;

struct spool_options {
	const char		*dir;		/* the environment directory */
	uint64_t		 max_size;	/* bytes events may use; 0: the
						   one the writer recorded */
	uint64_t		 dedup_window_ms;
	const unsigned char	*key;		/* SPOOL_KEYLEN bytes or NULL */
	int			 create;	/* create dir and spool if absent */
};

/*
 * One event.  For spool_wadd() the caller fills everything but seq and id
 * (and may leave ctype, ikey, addr NULL); for reads the library fills
 * everything, pointing into memory valid only during the callback.
 */
struct spool_event {
	uint64_t	 seq;
	uint64_t	 received_ms;
	const char	*stream;
	size_t		 stream_len;
	const char	*ctype;
	size_t		 ctype_len;
	const char	*ikey;		/* idempotency key */
	size_t		 ikey_len;
	const char	*addr;		/* remote address */
	size_t		 addr_len;
	const void	*body;
	size_t		 body_len;
	unsigned char	 id[SPOOL_IDLEN];
};

struct spool_stat {
	uint64_t	events;
	uint64_t	first_seq;	/* 0 when empty */
	uint64_t	last_seq;	/* 0 when empty */
	uint64_t	next_seq;
	uint64_t	oldest_ms;	/* received_ms of first_seq, 0 if empty */
	uint64_t	used_bytes;	/* pages in use, free pages excluded */
	uint64_t	max_bytes;	/* the configured max_size */
	uint64_t	file_bytes;	/* high-water mark of the data file */
	uint64_t	file_size;	/* of data.mdb: with the reserve */
	uint64_t	dedup_entries;
	uint64_t	deadletters;
	unsigned	readers;	/* reader slots in use */
	unsigned	max_readers;
	unsigned	format;
	int		encrypted;
	char		spool_id[2 * 16 + 1];	/* hex */
};

/* Returns a static description of RC. */
const char	*spool_strerror(int rc);

/*
 * Opens the spool in opt->dir.  A missing spool is created only with
 * opt->create; a spool of another format, a damaged file or a wrong key is
 * reported and left untouched.  Stale reader slots of dead processes are
 * cleared.  max_size may differ from the last open: shrinking below the data
 * present refuses appends (SPOOL_FULL) until enough is trimmed.
 */
int	spool_open(struct spool **spp, const struct spool_options *opt,
	    char *err);
void	spool_close(struct spool *);
const char *spool_dir(const struct spool *);

/*
 * The dedup fingerprint of EV (BLAKE2b of the stream's length, the stream,
 * and the idempotency key, or the body when there is no key; keyed with
 * the spool key when the spool is encrypted), written to ev->id.
 * spool_wadd() calls it; callers
 * may call it earlier, outside the writer, and set *ev->id themselves.
 */
void	spool_fingerprint(const struct spool *, struct spool_event *ev);

/*
 * Write transactions.  spool_wbegin() starts one (the first in a process
 * takes writer.lock, SPOOL_LOCKED if another process holds it, and loads the
 * dedup index: memory grows with the events seen in one dedup window, about
 * 23 bytes each); each spool_wadd() adds a
 * group of N events all or nothing (a nested transaction), so a commit may
 * carry many requests and still refuse one that does not fit.  For each
 * event, dup[i] is set to 1 when it is a duplicate within the dedup window
 * (of a committed event or of an earlier one in this transaction; ev->seq is
 * then the original's seq) and to 0 when it was appended (ev->seq is its
 * new seq).  When ids_set is nonzero the ids are taken as already computed.
 * Returns SPOOL_FULL (nothing of this group kept, the transaction still
 * usable), SPOOL_EINVAL, or SPOOL_ERR (abort the transaction).
 * spool_wcommit() commits with fsync; after it returns SPOOL_OK every event
 * added survives a crash.  On error the transaction is gone.
 */
int	spool_wbegin(struct spool *, struct spool_wtxn **, char *err);
int	spool_wadd(struct spool_wtxn *, struct spool_event *evs, size_t n,
	    int ids_set, uint64_t now_ms, int *dup, char *err);
int	spool_wcommit(struct spool_wtxn *, char *err);
void	spool_wabort(struct spool_wtxn *);

/* Removes up to MAX expired dedup entries, oldest first. */
int	spool_dedup_expire(struct spool_wtxn *, uint64_t now_ms, size_t max,
	    size_t *removed, char *err);

/* spool_wbegin, spool_wadd, spool_wcommit in one call. */
int	spool_append(struct spool *, struct spool_event *evs, size_t n,
	    uint64_t now_ms, int *dup, char *err);

/*
 * Calls CB for up to MAX events with seq > AFTER, in seq order, in one short
 * read transaction.  CB returns 0 to go on, nonzero to stop.  Returns the
 * number of events passed to CB, or a negative spool_rc.  A record that
 * fails to decode stops the read with SPOOL_CORRUPT naming its seq.
 */
typedef int (*spool_event_cb)(const struct spool_event *, void *arg);
long	spool_read(struct spool *, uint64_t after, size_t max,
	    spool_event_cb cb, void *arg, char *err);

/* Like spool_read for one SEQ; SPOOL_NOTFOUND if it is not held. */
int	spool_get(struct spool *, uint64_t seq, spool_event_cb cb, void *arg,
	    char *err);

/*
 * Sink cursors: the last seq a sink has delivered (0: nothing yet).
 * spool_cursor_get() returns SPOOL_NOTFOUND for an unknown sink.
 * spool_cursor_set() creates or moves the cursor (back to replay, forward
 * to skip); SEQ may not exceed the last seq ever assigned.
 * spool_cursor_init() creates it at 0 only if absent.
 */
int	spool_cursor_get(struct spool *, const char *sink, uint64_t *seq,
	    uint64_t *updated_ms, char *err);
int	spool_cursor_set(struct spool *, const char *sink, uint64_t seq,
	    uint64_t now_ms, char *err);
int	spool_cursor_init(struct spool *, const char *sink, uint64_t now_ms,
	    char *err);
int	spool_cursor_delete(struct spool *, const char *sink, char *err);

/*
 * The forwarder of a spool: one process at a time.  spool_forwarder_lock()
 * takes forwarder.lock (released when the spool is closed or the process
 * ends, kill -9 too), or returns SPOOL_LOCKED while another process holds
 * it.  ferry-spool takes it too while it moves a cursor, so that no
 * forwarder writes its own position over the change.
 */
int	spool_forwarder_lock(struct spool *, char *err);
typedef int (*spool_cursor_cb)(const char *sink, uint64_t seq,
	    uint64_t updated_ms, void *arg);
int	spool_cursor_each(struct spool *, spool_cursor_cb, void *arg,
	    char *err);

/*
 * Deletes up to MAX events that every one of SINKS (NSINKS names) has
 * delivered (seq at or below the lowest of their cursors; nothing while one
 * of them has no cursor) and that were received at least RETAIN_MS before
 * NOW_MS, oldest first, in one write transaction.  Cursors of other sinks
 * hold nothing back; SINKS NULL means every cursor in the spool (nothing
 * when there is none).  *removed gets the count.
 */
int	spool_trim(struct spool *, const char *const *sinks, size_t nsinks,
	    uint64_t now_ms, uint64_t retain_ms, size_t max, size_t *removed,
	    char *err);

/*
 * Dead letters: events a sink refused for good, kept with the reason.
 * spool_dead_add() copies event SEQ as stored (again: replaces the row).  spool_dead_each() calls CB
 * for each (SINK NULL: all sinks).  spool_dead_drop() removes one.
 */
struct spool_dead {
	const char	*sink;
	uint64_t	 seq;
	uint64_t	 dead_ms;
	const char	*reason;
	int		 retry;		/* marked for another delivery */
};
typedef int (*spool_dead_cb)(const struct spool_dead *,
	    const struct spool_event *, void *arg);
int	spool_dead_add(struct spool *, const char *sink, uint64_t seq,
	    const char *reason, uint64_t now_ms, char *err);
long	spool_dead_each(struct spool *, const char *sink, spool_dead_cb cb,
	    void *arg, char *err);
int	spool_dead_drop(struct spool *, const char *sink, uint64_t seq,
	    char *err);
/*
 * Sets the retry mark of dead letter SEQ of SINK (SEQ 0: all of SINK's),
 * and, with REASON not NULL, replaces its reason and time.  The forwarder
 * resends marked dead letters (sinks that can take an old event again) and
 * drops each one delivered.  *count gets the number changed.
 */
int	spool_dead_mark(struct spool *, const char *sink, uint64_t seq,
	    int retry, const char *reason, uint64_t now_ms, size_t *count,
	    char *err);

/* Counters and sizes, from one read transaction. */
int	spool_stat(struct spool *, struct spool_stat *, char *err);

/*
 * Bytes in use, cheap enough for every commit: the data file's high-water
 * mark, minus free pages once that mark is near max_size.
 */
uint64_t spool_used_bytes(struct spool *);
uint64_t spool_max_bytes(const struct spool *);
/*
 * The in-memory dedup index (spool/dedup.c): the fingerprints it holds and
 * the bytes of its tables (two while it grows).  Both 0 until this process
 * first writes, which builds it.  The writing thread only, between its
 * transactions.
 */
void	spool_dedup_memory(const struct spool *, uint64_t *entries,
	    uint64_t *bytes);
/*
 * Once less than WANT/2 bytes of data.mdb are left past the last page in
 * use, writes zeros after its end until WANT bytes are (never past
 * max_size), so that the commits that follow write into blocks the file
 * has (see spool.c).  Any thread; waits for LMDB's writer lock, so not
 * while this thread has a write transaction.  Sets *ADDED to the bytes
 * written.  SPOOL_FULL: the disk is full (nothing is lost; commits extend
 * the file themselves).
 */
int	spool_reserve(struct spool *, uint64_t want, uint64_t *added,
	    char *err);

/*
 * Walks every record and index and checks that they parse, decrypt and
 * agree.  PROBLEM is called once per problem with a one-line description.
 * Returns the number of problems (0: clean) or a negative spool_rc.
 */
typedef void (*spool_problem_cb)(const char *what, void *arg);
long	spool_check(struct spool *, spool_problem_cb problem, void *arg,
	    char *err);

/* A consistent hot copy into DIR (created if absent, must hold no spool). */
int	spool_backup(struct spool *, const char *dir, char *err);

/*
 * Reader slots: spool_readers() calls CB with one line per slot ("pid
 * thread txnid"), and clears slots of dead processes first when CLEAR;
 * *cleared gets their number.
 */
int	spool_readers(struct spool *, int clear, void (*cb)(const char *,
	    void *), void *arg, int *cleared, char *err);

/*
 * Is S (LEN bytes) a valid stream name: 1 to SPOOL_STREAM_MAX of
 * A-Z a-z 0-9 . _ -, and not "." or ".." (names become file names).
 */
int	spool_stream_name_ok(const char *s, size_t len);

/* Hex of an event id into BUF (2 * SPOOL_IDLEN + 1 bytes). */
void	spool_id_hex(const unsigned char *id, char *buf);

#endif
