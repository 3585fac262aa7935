/*
 * spool_admin.c: what the operator's tool needs beyond reading: counters,
 * the integrity check, hot backup and reader slots.
 *
 * The check walks each database in chunks of WALK_CHUNK entries, one short
 * read transaction per chunk, so it can run beside a busy agent without
 * pinning pages; it reports what it finds and changes nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_impl.h"

static uint64_t
db_entries(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_stat st;

	return mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
}

int
spool_stat(struct spool *sp, struct spool_stat *st, char *err)
{
	struct spool_event ev;
	unsigned char *scratch = NULL;
	size_t cap = 0;
	MDB_envinfo info;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	struct stat sb;
	int fd, rc;

	memset(st, 0, sizeof(*st));
	st->used_bytes = spool_used_bytes(sp);
	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a read", err);
	st->events = db_entries(txn, sp->events);
	st->dedup_entries = db_entries(txn, sp->dedup);
	st->deadletters = db_entries(txn, sp->dead);
	spool_meta_get64(sp, txn, "next_seq", &st->next_seq);
	if ((rc = mdb_cursor_open(txn, sp->events, &c)) == 0) {
		if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 &&
		    k.mv_size == 8) {
			st->first_seq = record_get64(k.mv_data);
			if (record_decode(v.mv_data, v.mv_size, st->first_seq,
			    sp->encrypted ? sp->key : NULL, &ev, &scratch,
			    &cap, NULL) == SPOOL_OK)
				st->oldest_ms = ev.received_ms;
		}
		if (mdb_cursor_get(c, &k, &v, MDB_LAST) == 0 &&
		    k.mv_size == 8)
			st->last_seq = record_get64(k.mv_data);
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	free(scratch);
	mdb_env_info(sp->env, &info);
	st->file_bytes = ((uint64_t)info.me_last_pgno + 1) * sp->psize;
	if (mdb_env_get_fd(sp->env, &fd) == 0 && fstat(fd, &sb) == 0)
		st->file_size = (uint64_t)sb.st_size;
	st->max_bytes = sp->max_size;
	st->readers = info.me_numreaders;
	st->max_readers = info.me_maxreaders;
	st->format = SPOOL_FORMAT;
	st->encrypted = sp->encrypted;
	sodium_bin2hex(st->spool_id, sizeof(st->spool_id), sp->spool_id, 16);
	return rc ? spool_lmdb_fail(sp, rc, "reading events", err) : SPOOL_OK;
}

/*
 * The check.
 */

struct check {
	struct spool	*sp;
	spool_problem_cb problem;
	void		*arg;
	long		 problems;
	uint64_t	 next_seq;
	uint64_t	 last_seq;
	unsigned char	*scratch;
	size_t		 cap;
	char		 last[512];	/* the last problem reported */
	unsigned long	 repeats;	/* times it came again since */
};

static void
report(struct check *ck, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Says how often the last problem repeated, if it did. */
static void
report_flush(struct check *ck)
{
	char msg[600];

	if (ck->repeats > 0 && ck->problem) {
		snprintf(msg, sizeof(msg), "(the problem above %lu more "
		    "times)", ck->repeats);
		ck->problem(msg, ck->arg);
	}
	ck->repeats = 0;
}

/* Reports a problem; the same one again is counted, not printed again. */
static void
report(struct check *ck, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ck->problems++;
	if (strcmp(msg, ck->last) == 0) {
		ck->repeats++;
		return;
	}
	report_flush(ck);
	snprintf(ck->last, sizeof(ck->last), "%s", msg);
	if (ck->problem)
		ck->problem(msg, ck->arg);
}

/* LMDB's default order: bytes, then length. */
static int
key_cmp(const MDB_val *k, const unsigned char *b, size_t blen)
{
	size_t n = k->mv_size < blen ? k->mv_size : blen;
	int c = memcmp(k->mv_data, b, n);

	if (c != 0)
		return c;
	return k->mv_size < blen ? -1 : k->mv_size > blen;
}

typedef void (*walk_fn)(struct check *, MDB_txn *, const MDB_val *,
    const MDB_val *);

/*
 * Calls FN for every entry of DBI, WALK_CHUNK entries per read transaction,
 * resuming after the last key seen.  Returns 0 or an LMDB error.
 */
static int
walk(struct check *ck, MDB_dbi dbi, walk_fn fn)
{
	unsigned char last[512];
	size_t lastlen = 0;
	int started = 0, rc;

	for (;;) {
		MDB_txn *txn;
		MDB_cursor *c;
		MDB_val k, v;
		size_t n = 0;

		if ((rc = mdb_txn_begin(ck->sp->env, NULL, MDB_RDONLY,
		    &txn)) != 0)
			return rc;
		if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0) {
			mdb_txn_abort(txn);
			return rc;
		}
		if (!started)
			rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		else if (lastlen == 0) {
			/* A damaged empty key sorts first: step past it. */
			rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
			if (rc == 0 && k.mv_size == 0)
				rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		} else {
			k = spool_mval(last, lastlen);
			rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
			if (rc == 0 && k.mv_size == lastlen &&
			    memcmp(k.mv_data, last, lastlen) == 0)
				rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		for (; rc == 0 && n < WALK_CHUNK; n++) {
			/*
			 * Keys must rise; a damaged branch page can send the
			 * cursor back, and the walk would never end.
			 */
			if (started && key_cmp(&k, last, lastlen) <= 0) {
				rc = MDB_CORRUPTED;
				break;
			}
			fn(ck, txn, &k, &v);
			lastlen = k.mv_size < sizeof(last) ? k.mv_size :
			    sizeof(last);
			memcpy(last, k.mv_data, lastlen);
			started = 1;
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(c);
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc != 0)
			return rc;
	}
}

static void
check_event(struct check *ck, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v)
{
	struct spool_event ev;
	unsigned char id[SPOOL_IDLEN];
	char why[SPOOL_ERRMAX];
	uint64_t seq;

	(void)txn;
	if (k->mv_size != 8) {
		report(ck, "events: key of %zu bytes, not 8", k->mv_size);
		return;
	}
	seq = record_get64(k->mv_data);
	if (seq == 0 || seq >= ck->next_seq)
		report(ck, "event %llu: at or past next_seq %llu (a sequence "
		    "number could be reused)", (unsigned long long)seq,
		    (unsigned long long)ck->next_seq);
	ck->last_seq = seq;
	if (record_decode(v->mv_data, v->mv_size, seq, ck->sp->encrypted ?
	    ck->sp->key : NULL, &ev, &ck->scratch, &ck->cap, why) !=
	    SPOOL_OK) {
		report(ck, "event %llu: %s", (unsigned long long)seq, why);
		return;
	}
	memcpy(id, ev.id, SPOOL_IDLEN);
	spool_fingerprint(ck->sp, &ev);
	if (memcmp(id, ev.id, SPOOL_IDLEN) != 0)
		report(ck, "event %llu: id does not match its stream and key "
		    "or body (record damaged)", (unsigned long long)seq);
}

static void
check_dedup(struct check *ck, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v)
{
	struct spool_event ev;
	unsigned char sb[8];
	MDB_val ek, ed;
	uint64_t seq;

	if (k->mv_size != DEDUP_KEY || v->mv_size != DEDUP_VAL) {
		report(ck, "dedup: row of %zu/%zu bytes, not %d/%d",
		    k->mv_size, v->mv_size, DEDUP_KEY, DEDUP_VAL);
		return;
	}
	seq = record_get64(v->mv_data);
	if (seq == 0 || seq >= ck->next_seq) {
		report(ck, "dedup: row names seq %llu, past next_seq %llu",
		    (unsigned long long)seq, (unsigned long long)ck->next_seq);
		return;
	}
	record_put64(sb, seq);
	ek = spool_mval(sb, 8);
	if (mdb_get(txn, ck->sp->events, &ek, &ed) != 0)
		return;		/* trimmed: the row outlives its event */
	if (record_decode(ed.mv_data, ed.mv_size, seq, ck->sp->encrypted ?
	    ck->sp->key : NULL, &ev, &ck->scratch, &ck->cap, NULL) ==
	    SPOOL_OK && memcmp(ev.id, (unsigned char *)k->mv_data + 8,
	    SPOOL_IDLEN) != 0)
		report(ck, "dedup: row for seq %llu does not match that "
		    "event's id", (unsigned long long)seq);
}

static void
check_cursor(struct check *ck, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v)
{
	uint64_t seq;

	(void)txn;
	if (k->mv_size == 0 || k->mv_size > SPOOL_SINK_MAX ||
	    v->mv_size != CURSOR_VAL) {
		report(ck, "cursors: entry of %zu/%zu bytes", k->mv_size,
		    v->mv_size);
		return;
	}
	seq = record_get64(v->mv_data);
	if (seq >= ck->next_seq)
		report(ck, "cursor %.*s: seq %llu past next_seq %llu",
		    (int)k->mv_size, (const char *)k->mv_data,
		    (unsigned long long)seq, (unsigned long long)ck->next_seq);
}

static int
dead_ok(const struct spool_dead *d, const struct spool_event *ev, void *a)
{
	(void)d;
	(void)ev;
	(void)a;
	return 0;
}

long
spool_check(struct spool *sp, spool_problem_cb problem, void *arg, char *err)
{
	struct check ck = { .sp = sp, .problem = problem, .arg = arg };
	char why[SPOOL_ERRMAX];
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a read", err);
	rc = spool_meta_get64(sp, txn, "next_seq", &ck.next_seq);
	mdb_txn_abort(txn);
	if (rc != 0) {
		report(&ck, "meta: next_seq unreadable: %s", mdb_strerror(rc));
		ck.next_seq = UINT64_MAX;
	}
	if ((rc = walk(&ck, sp->events, check_event)) != 0 ||
	    (rc = walk(&ck, sp->dedup, check_dedup)) != 0 ||
	    (rc = walk(&ck, sp->cursors, check_cursor)) != 0)
		report(&ck, "lmdb: %s (walk stopped here)", mdb_strerror(rc));
	else if (spool_dead_each(sp, NULL, dead_ok, NULL, why) < 0)
		report(&ck, "%s", why);
	report_flush(&ck);
	free(ck.scratch);
	return ck.problems;
}

int
spool_backup(struct spool *sp, const char *dir, char *err)
{
	char path[PATH_MAX + 16];
	int rc;

	if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
		ERR("backup %s: %s", dir, strerror(errno));
		return errno == EACCES ? SPOOL_EPERM : SPOOL_ERR;
	}
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (access(path, F_OK) == 0) {
		ERR("backup %s: already holds a spool (data.mdb); choose an "
		    "empty directory", dir);
		return SPOOL_EINVAL;
	}
	/* LMDB's copy runs in one read txn: consistent while writers run. */
	if ((rc = mdb_env_copy2(sp->env, dir, MDB_CP_COMPACT)) != 0) {
		ERR("backup %s: %s", dir, mdb_strerror(rc));
		return rc == EACCES ? SPOOL_EPERM : SPOOL_ERR;
	}
	/* LMDB creates it by the umask (0644): as private as the spool. */
	if (chmod(path, 0640) == -1) {
		ERR("backup %s: %s", path, strerror(errno));
		return SPOOL_ERR;
	}
	return SPOOL_OK;
}

struct readers_ctx {
	void	(*cb)(const char *, void *);
	void	*arg;
};

static int
reader_line(const char *msg, void *ctx)
{
	struct readers_ctx *r = ctx;
	char line[256];
	size_t n = strlen(msg);

	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, msg, n);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		n--;
	line[n] = '\0';
	r->cb(line, r->arg);
	return 0;
}

int
spool_readers(struct spool *sp, int clear, void (*cb)(const char *, void *),
    void *arg, int *cleared, char *err)
{
	struct readers_ctx r = { cb, arg };
	int dead = 0, rc;

	if (clear && (rc = mdb_reader_check(sp->env, &dead)) != 0)
		return spool_lmdb_fail(sp, rc, "clearing stale readers", err);
	if (cleared)
		*cleared = dead;
	if (cb && (rc = mdb_reader_list(sp->env, reader_line, &r)) < 0)
		return spool_lmdb_fail(sp, rc, "listing readers", err);
	return SPOOL_OK;
}
