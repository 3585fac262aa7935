/*
 * spool_read.c: the delivery side of the spool: reading events in sequence
 * order, sink cursors, trimming, dead letters.
 *
 * Reads run in short read transactions; callbacks run inside them and must
 * not block.  Cursor moves, trims and dead-letter changes are each one small
 * write transaction, so they never hold the writer lock for long and the
 * agent's group commit is delayed at most by one of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spool_impl.h"

/* Decrypts into a buffer that lives as long as one read call. */
struct scratch {
	unsigned char	*buf;
	size_t		 cap;
};

long
spool_read(struct spool *sp, uint64_t after, size_t max, spool_event_cb cb,
    void *arg, char *err)
{
	struct scratch s = { NULL, 0 };
	struct spool_event ev;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char kb[8];
	long n = 0;
	int rc, r = SPOOL_OK;

	if (max == 0 || after == UINT64_MAX)
		return 0;
	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a read", err);
	if ((rc = mdb_cursor_open(txn, sp->events, &c)) != 0) {
		mdb_txn_abort(txn);
		return spool_lmdb_fail(sp, rc, "reading events", err);
	}
	record_put64(kb, after + 1);
	k = spool_mval(kb, 8);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 &&
	    (size_t)n < max; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t seq;

		if (k.mv_size != 8) {
			ERR("spool %s: damaged: event key of %zu bytes",
			    sp->dir, k.mv_size);
			r = SPOOL_CORRUPT;
			break;
		}
		seq = record_get64(k.mv_data);
		r = record_decode(v.mv_data, v.mv_size, seq, sp->encrypted ?
		    sp->key : NULL, &ev, &s.buf, &s.cap, err);
		if (r != SPOOL_OK) {
			char why[SPOOL_ERRMAX];

			snprintf(why, sizeof(why), "%s", err ? err : "");
			ERR("spool %s: event %llu: %s", sp->dir,
			    (unsigned long long)seq, why);
			break;
		}
		n++;
		if (cb(&ev, arg) != 0)
			break;
	}
	if (r == SPOOL_OK && rc != 0 && rc != MDB_NOTFOUND)
		r = spool_lmdb_fail(sp, rc, "reading events", err);
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	free(s.buf);
	return r == SPOOL_OK ? n : r;
}

struct get_one {
	uint64_t	 seq;
	int		 found;
	spool_event_cb	 cb;
	void		*arg;
};

static int
get_one_cb(const struct spool_event *ev, void *arg)
{
	struct get_one *g = arg;

	if (ev->seq == g->seq) {
		g->found = 1;
		g->cb(ev, g->arg);
	}
	return 1;
}

int
spool_get(struct spool *sp, uint64_t seq, spool_event_cb cb, void *arg,
    char *err)
{
	struct get_one g = { seq, 0, cb, arg };
	long n;

	if (seq == 0) {
		ERR("spool %s: no event 0 (sequence numbers start at 1)",
		    sp->dir);
		return SPOOL_NOTFOUND;
	}
	if ((n = spool_read(sp, seq - 1, 1, get_one_cb, &g, err)) < 0)
		return (int)n;
	if (!g.found) {
		ERR("spool %s: no event %llu", sp->dir,
		    (unsigned long long)seq);
		return SPOOL_NOTFOUND;
	}
	return SPOOL_OK;
}

/*
 * Cursors.
 */

static int
sink_name_ok(const struct spool *sp, const char *sink, char *err)
{
	size_t len = sink ? strlen(sink) : 0;

	if (len == 0 || len > SPOOL_SINK_MAX) {
		ERR("spool %s: sink name must be 1 to %d bytes", sp->dir,
		    SPOOL_SINK_MAX);
		return 0;
	}
	return 1;
}

int
spool_cursor_get(struct spool *sp, const char *sink, uint64_t *seq,
    uint64_t *updated_ms, char *err)
{
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (!sink_name_ok(sp, sink, err))
		return SPOOL_EINVAL;
	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a read", err);
	k = spool_mval(sink, strlen(sink));
	rc = mdb_get(txn, sp->cursors, &k, &v);
	if (rc == 0 && v.mv_size == CURSOR_VAL) {
		*seq = record_get64(v.mv_data);
		if (updated_ms)
			*updated_ms = record_get64((unsigned char *)v.mv_data +
			    8);
	}
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND) {
		ERR("spool %s: no cursor for sink %s", sp->dir, sink);
		return SPOOL_NOTFOUND;
	}
	if (rc == 0 && v.mv_size != CURSOR_VAL) {
		ERR("spool %s: damaged cursor for sink %s", sp->dir, sink);
		return SPOOL_CORRUPT;
	}
	return rc ? spool_lmdb_fail(sp, rc, "reading a cursor", err) :
	    SPOOL_OK;
}

static int
cursor_write(struct spool *sp, const char *sink, uint64_t seq, uint64_t now,
    int only_if_absent, char *err)
{
	MDB_txn *txn;
	MDB_val k, v;
	unsigned char val[CURSOR_VAL];
	uint64_t next;
	int rc;

	if (!sink_name_ok(sp, sink, err))
		return SPOOL_EINVAL;
	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a write", err);
	if ((rc = spool_meta_get64(sp, txn, "next_seq", &next)) != 0)
		goto fail;
	if (seq >= next) {
		mdb_txn_abort(txn);
		ERR("spool %s: cursor %s: seq %llu is past the last event "
		    "(%llu)", sp->dir, sink, (unsigned long long)seq,
		    (unsigned long long)(next - 1));
		return SPOOL_EINVAL;
	}
	record_put64(val, seq);
	record_put64(val + 8, now);
	k = spool_mval(sink, strlen(sink));
	v = spool_mval(val, sizeof(val));
	rc = mdb_put(txn, sp->cursors, &k, &v,
	    only_if_absent ? MDB_NOOVERWRITE : 0);
	if (rc == MDB_KEYEXIST) {
		mdb_txn_abort(txn);
		return SPOOL_OK;
	}
	if (rc != 0)
		goto fail;
	if ((rc = mdb_txn_commit(txn)) != 0)
		return spool_lmdb_fail(sp, rc, "committing a cursor", err);
	return SPOOL_OK;
fail:
	mdb_txn_abort(txn);
	return spool_lmdb_fail(sp, rc, "writing a cursor", err);
}

int
spool_cursor_set(struct spool *sp, const char *sink, uint64_t seq,
    uint64_t now_ms, char *err)
{
	return cursor_write(sp, sink, seq, now_ms, 0, err);
}

int
spool_cursor_init(struct spool *sp, const char *sink, uint64_t now_ms,
    char *err)
{
	return cursor_write(sp, sink, 0, now_ms, 1, err);
}

int
spool_cursor_delete(struct spool *sp, const char *sink, char *err)
{
	MDB_txn *txn;
	MDB_val k;
	int rc;

	if (!sink_name_ok(sp, sink, err))
		return SPOOL_EINVAL;
	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a write", err);
	k = spool_mval(sink, strlen(sink));
	if ((rc = mdb_del(txn, sp->cursors, &k, NULL)) != 0) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND) {
			ERR("spool %s: no cursor for sink %s", sp->dir, sink);
			return SPOOL_NOTFOUND;
		}
		return spool_lmdb_fail(sp, rc, "deleting a cursor", err);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return spool_lmdb_fail(sp, rc, "committing", err);
	return SPOOL_OK;
}

int
spool_cursor_each(struct spool *sp, spool_cursor_cb cb, void *arg, char *err)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	char name[SPOOL_SINK_MAX + 1];
	int rc;

	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a read", err);
	if ((rc = mdb_cursor_open(txn, sp->cursors, &c)) != 0) {
		mdb_txn_abort(txn);
		return spool_lmdb_fail(sp, rc, "reading cursors", err);
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size > SPOOL_SINK_MAX || v.mv_size != CURSOR_VAL)
			continue;	/* spool_check reports it */
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		if (cb(name, record_get64(v.mv_data),
		    record_get64((unsigned char *)v.mv_data + 8), arg) != 0)
			break;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return (rc == 0 || rc == MDB_NOTFOUND) ? SPOOL_OK :
	    spool_lmdb_fail(sp, rc, "reading cursors", err);
}

/*
 * Trimming.
 */

/* Is the sink named K one of SINKS (N names)?  Every sink without SINKS. */
static int
sink_listed(const MDB_val *k, const char *const *sinks, size_t n)
{
	if (sinks == NULL)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (strlen(sinks[i]) == k->mv_size &&
		    memcmp(sinks[i], k->mv_data, k->mv_size) == 0)
			return 1;
	return 0;
}

/*
 * The lowest cursor of SINKS (N names; all cursors when NULL), read inside
 * TXN so a concurrent move is respected.  A listed sink without a cursor
 * counts as 0: it has nothing yet.
 */
static int
min_cursor(struct spool *sp, MDB_txn *txn, const char *const *sinks,
    size_t n, uint64_t *min, int *any)
{
	MDB_cursor *c;
	MDB_val k, v;
	size_t found = 0;
	int rc;

	*any = 0;
	*min = UINT64_MAX;
	if ((rc = mdb_cursor_open(txn, sp->cursors, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t s;

		if (v.mv_size != CURSOR_VAL || !sink_listed(&k, sinks, n))
			continue;
		s = record_get64(v.mv_data);
		found++;
		if (s < *min)
			*min = s;
	}
	mdb_cursor_close(c);
	*any = found > 0;
	if (sinks != NULL && found < n)
		*min = 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
spool_trim(struct spool *sp, const char *const *sinks, size_t nsinks,
    uint64_t now_ms, uint64_t retain_ms, size_t max, size_t *removed,
    char *err)
{
	struct scratch s = { NULL, 0 };
	struct spool_event ev;
	MDB_txn *txn;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	uint64_t upto;
	size_t n = 0;
	int rc, any;

	*removed = 0;
	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a trim", err);
	if ((rc = min_cursor(sp, txn, sinks, nsinks, &upto, &any)) != 0 ||
	    !any)
		goto done;
	if ((rc = mdb_cursor_open(txn, sp->events, &c)) != 0)
		goto done;
	while (n < max && (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size != 8 || record_get64(k.mv_data) > upto)
			break;
		if (retain_ms > 0) {
			/* Undecodable records are check's to report. */
			if (record_decode(v.mv_data, v.mv_size,
			    record_get64(k.mv_data), sp->encrypted ? sp->key :
			    NULL, &ev, &s.buf, &s.cap, NULL) == SPOOL_OK &&
			    ev.received_ms + retain_ms > now_ms)
				break;
		}
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		n++;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
done:
	if (c)
		mdb_cursor_close(c);
	free(s.buf);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return spool_lmdb_fail(sp, rc, "trimming", err);
	}
	if (n == 0) {
		mdb_txn_abort(txn);
		return SPOOL_OK;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return spool_lmdb_fail(sp, rc, "committing a trim", err);
	*removed = n;
	return SPOOL_OK;
}

/*
 * Dead letters.
 */

static size_t
dead_key(unsigned char *buf, const char *sink, uint64_t seq)
{
	size_t len = strlen(sink);

	memcpy(buf, sink, len);
	buf[len] = '\0';
	record_put64(buf + len + 1, seq);
	return len + 9;
}

/*
 * A dead-letter row: u64 dead_ms, u16 reason length with bit 15 the retry
 * mark (ferry-spool dead retry), the reason, the record as stored.
 */
#define DEAD_RETRY	0x8000u
#define DEAD_REASON_MAX	1024

static void
dead_head(unsigned char *p, uint64_t when, const char *reason, size_t rlen,
    int retry)
{
	unsigned u = (unsigned)rlen | (retry ? DEAD_RETRY : 0);

	record_put64(p, when);
	p[8] = (unsigned char)(u >> 8);
	p[9] = (unsigned char)u;
	memcpy(p + 10, reason, rlen);
}

int
spool_dead_add(struct spool *sp, const char *sink, uint64_t seq,
    const char *reason, uint64_t now_ms, char *err)
{
	unsigned char kb[SPOOL_SINK_MAX + 9], sb[8];
	MDB_txn *txn;
	MDB_val k, v, ev;
	size_t rlen = strlen(reason);
	unsigned char *p;
	int rc;

	if (!sink_name_ok(sp, sink, err))
		return SPOOL_EINVAL;
	if (rlen > DEAD_REASON_MAX)
		rlen = DEAD_REASON_MAX;
	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a write", err);
	record_put64(sb, seq);
	k = spool_mval(sb, 8);
	if ((rc = mdb_get(txn, sp->events, &k, &ev)) != 0) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND) {
			ERR("spool %s: no event %llu to dead-letter", sp->dir,
			    (unsigned long long)seq);
			return SPOOL_NOTFOUND;
		}
		return spool_lmdb_fail(sp, rc, "reading an event", err);
	}
	k = spool_mval(kb, dead_key(kb, sink, seq));
	v = spool_mval(NULL, 10 + rlen + ev.mv_size);
	if ((rc = mdb_put(txn, sp->dead, &k, &v, MDB_RESERVE)) != 0) {
		mdb_txn_abort(txn);
		return spool_lmdb_fail(sp, rc, "writing a dead letter", err);
	}
	p = v.mv_data;
	dead_head(p, now_ms, reason, rlen, 0);
	memcpy(p + 10 + rlen, ev.mv_data, ev.mv_size);
	if ((rc = mdb_txn_commit(txn)) != 0)
		return spool_lmdb_fail(sp, rc, "committing a dead letter", err);
	return SPOOL_OK;
}

/* Splits a dead-letter row; returns 0 if it is well-formed. */
static int
dead_parse(const MDB_val *k, const MDB_val *v, char *sink, uint64_t *seq,
    uint64_t *when, int *retry, char *reason, const unsigned char **rec,
    size_t *reclen)
{
	const unsigned char *kp = k->mv_data, *vp = v->mv_data;
	size_t slen, rlen;

	if (k->mv_size < 10 || k->mv_size > SPOOL_SINK_MAX + 9 ||
	    kp[k->mv_size - 9] != '\0' || v->mv_size < 10)
		return -1;
	slen = k->mv_size - 9;
	memcpy(sink, kp, slen);
	sink[slen] = '\0';
	*seq = record_get64(kp + slen + 1);
	*when = record_get64(vp);
	rlen = ((size_t)vp[8] << 8 | vp[9]) & ~(size_t)DEAD_RETRY;
	*retry = (vp[8] << 8 & DEAD_RETRY) != 0;
	if (rlen > DEAD_REASON_MAX || 10 + rlen > v->mv_size)
		return -1;
	memcpy(reason, vp + 10, rlen);
	reason[rlen] = '\0';
	*rec = vp + 10 + rlen;
	*reclen = v->mv_size - 10 - rlen;
	return 0;
}

long
spool_dead_each(struct spool *sp, const char *sink, spool_dead_cb cb,
    void *arg, char *err)
{
	struct scratch s = { NULL, 0 };
	struct spool_dead d;
	struct spool_event ev;
	char name[SPOOL_SINK_MAX + 1], reason[1025], why[SPOOL_ERRMAX];
	const unsigned char *rec;
	size_t reclen;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	long n = 0;
	int rc, r = SPOOL_OK;

	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a read", err);
	if ((rc = mdb_cursor_open(txn, sp->dead, &c)) != 0) {
		mdb_txn_abort(txn);
		return spool_lmdb_fail(sp, rc, "reading dead letters", err);
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (dead_parse(&k, &v, name, &d.seq, &d.dead_ms, &d.retry,
		    reason, &rec, &reclen) != 0) {
			ERR("spool %s: damaged dead letter", sp->dir);
			r = SPOOL_CORRUPT;
			break;
		}
		if (sink && strcmp(sink, name) != 0)
			continue;
		if ((r = record_decode(rec, reclen, d.seq, sp->encrypted ?
		    sp->key : NULL, &ev, &s.buf, &s.cap, why)) != SPOOL_OK) {
			ERR("spool %s: dead letter %s/%llu: %s", sp->dir, name,
			    (unsigned long long)d.seq, why);
			break;
		}
		d.sink = name;
		d.reason = reason;
		n++;
		if (cb(&d, &ev, arg) != 0)
			break;
	}
	if (r == SPOOL_OK && rc != 0 && rc != MDB_NOTFOUND)
		r = spool_lmdb_fail(sp, rc, "reading dead letters", err);
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	free(s.buf);
	return r == SPOOL_OK ? n : r;
}

int
spool_dead_drop(struct spool *sp, const char *sink, uint64_t seq, char *err)
{
	unsigned char kb[SPOOL_SINK_MAX + 9];
	MDB_txn *txn;
	MDB_val k;
	int rc;

	if (!sink_name_ok(sp, sink, err))
		return SPOOL_EINVAL;
	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a write", err);
	k = spool_mval(kb, dead_key(kb, sink, seq));
	if ((rc = mdb_del(txn, sp->dead, &k, NULL)) != 0) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND) {
			ERR("spool %s: no dead letter %llu for sink %s",
			    sp->dir, (unsigned long long)seq, sink);
			return SPOOL_NOTFOUND;
		}
		return spool_lmdb_fail(sp, rc, "dropping a dead letter", err);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return spool_lmdb_fail(sp, rc, "committing", err);
	return SPOOL_OK;
}

int
spool_dead_mark(struct spool *sp, const char *sink, uint64_t seq, int retry,
    const char *reason, uint64_t now_ms, size_t *count, char *err)
{
	unsigned char kb[SPOOL_SINK_MAX + 9], *nv = NULL;
	char name[SPOOL_SINK_MAX + 1], old[DEAD_REASON_MAX + 1];
	const unsigned char *rec;
	size_t reclen, rlen, n = 0;
	uint64_t when, s;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, was;

	*count = 0;
	if (!sink_name_ok(sp, sink, err))
		return SPOOL_EINVAL;
	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a write", err);
	if ((rc = mdb_cursor_open(txn, sp->dead, &c)) != 0) {
		mdb_txn_abort(txn);
		return spool_lmdb_fail(sp, rc, "marking dead letters", err);
	}
	/* This sink's rows sort together, from (SINK, NUL, seq 0 or SEQ). */
	k = spool_mval(kb, dead_key(kb, sink, seq));
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (dead_parse(&k, &v, name, &s, &when, &was, old, &rec,
		    &reclen) != 0 || strcmp(name, sink) != 0 ||
		    (seq != 0 && s != seq))
			break;
		if (reason) {
			rlen = strlen(reason);
			if (rlen > DEAD_REASON_MAX)
				rlen = DEAD_REASON_MAX;
			when = now_ms;
		} else {
			reason = old;
			rlen = strlen(old);
		}
		if ((nv = realloc(nv, 10 + rlen + reclen)) == NULL) {
			rc = ENOMEM;
			break;
		}
		dead_head(nv, when, reason, rlen, retry);
		memcpy(nv + 10 + rlen, rec, reclen);
		if (reason == old)
			reason = NULL;
		v = spool_mval(nv, 10 + rlen + reclen);
		if ((rc = mdb_cursor_put(c, &k, &v, MDB_CURRENT)) != 0)
			break;
		n++;
	}
	free(nv);
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return spool_lmdb_fail(sp, rc, "marking dead letters", err);
	}
	if (n == 0) {
		mdb_txn_abort(txn);
		if (seq != 0) {
			ERR("spool %s: no dead letter %llu for sink %s",
			    sp->dir, (unsigned long long)seq, sink);
			return SPOOL_NOTFOUND;
		}
		return SPOOL_OK;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return spool_lmdb_fail(sp, rc, "committing", err);
	*count = n;
	return SPOOL_OK;
}
