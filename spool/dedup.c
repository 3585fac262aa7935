/*
 * dedup.c: the in-memory index of recent fingerprints, private to the
 * spool library.
 *
 * Why in memory: fingerprints are random, so a B-tree keyed by them has
 * every insert land on a different leaf page, and each commit rewrites a
 * page per event (measured: 25-40 KB written per 300-byte event).  The
 * durable record of dedup is instead the "dedup" database keyed by
 * (first_seen_ms, fingerprint), which only ever grows at its end and
 * shrinks at its start, and is written in the same transaction as the
 * events.  This index mirrors it for lookups: it is rebuilt from it when a
 * process first writes, and only the writer (one process, held by a lock
 * file) changes it, in step with its transactions.
 *
 * The table holds the first 8 bytes of each fingerprint and the time it
 * was first seen, 16 bytes an entry side by side (one cache miss a probe),
 * with open addressing and linear probing (fingerprints are already
 * uniformly random: no hashing needed).  A prefix match is only a
 * candidate: the caller confirms it with the full fingerprint in the
 * durable database.  Deletion shifts entries back, so there are no
 * tombstones to accumulate.
 *
 * Growth is incremental.  Doubling the table and moving every entry at
 * once stalled the writer, and every request waiting on it, for 54 ms at
 * 1.5 million entries and 232 ms at 5.9 million (more on a machine whose
 * fresh memory is slow to touch).  Instead the full table becomes the old
 * one, a table twice its size the current one, and each put moves the
 * entries of the next DINDEX_MOVE_STEP slots of the old table across, in
 * slot order, so the old table is empty long before the new one fills.  While
 * both exist, puts go to the new table and lookups and deletes look in
 * both.  Entries never move within the old table: slots below d->moved
 * have been copied (their stale copies are skipped), and a delete there
 * leaves a tombstone, which keeps probe runs intact and is not copied.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool_impl.h"

#define DINDEX_MIN	1024

static size_t
home(size_t cap, uint64_t fp)
{
	return (size_t)fp & (cap - 1);
}

/* T as stored: 0 marks an empty slot, DINDEX_TOMB a deleted one. */
static uint64_t
stored_time(uint64_t t)
{
	return t == 0 ? 1 : t == DINDEX_TOMB ? DINDEX_TOMB - 1 : t;
}

/* Stores FP, T in a table with room; counts nothing. */
static void
put_slot(struct dentry *e, size_t cap, uint64_t fp, uint64_t t)
{
	size_t i = home(cap, fp);

	while (e[i].t != 0)
		i = (i + 1) & (cap - 1);
	e[i].fp = fp;
	e[i].t = t;
}

void
dindex_free(struct dindex *d)
{
	free(d->e);
	free(d->old);
	memset(d, 0, sizeof(*d));
}

/* Moves the entries of up to N more slots of the old table across. */
static void
move_some(struct dindex *d, size_t n)
{
	for (; n > 0 && d->moved < d->ocap; n--, d->moved++) {
		const struct dentry *o = &d->old[d->moved];

		if (o->t != 0 && o->t != DINDEX_TOMB)
			put_slot(d->e, d->cap, o->fp, o->t);
	}
	if (d->old != NULL && d->moved == d->ocap) {
		free(d->old);
		d->old = NULL;
		d->ocap = d->moved = 0;
	}
}

/* The current table becomes the old one, to be moved a step at a time. */
static int
dindex_grow(struct dindex *d)
{
	size_t cap = d->cap ? d->cap * 2 : DINDEX_MIN;
	struct dentry *e;

	move_some(d, SIZE_MAX);		/* an earlier growth, if any, ends */
	if ((e = calloc(cap, sizeof(*e))) == NULL)
		return -1;
	if (d->n > 0) {
		d->old = d->e;
		d->ocap = d->cap;
		d->moved = 0;
	} else
		free(d->e);
	d->e = e;
	d->cap = cap;
	return 0;
}

int
dindex_put(struct dindex *d, uint64_t fp, uint64_t t)
{
	move_some(d, DINDEX_MOVE_STEP);
	if ((d->n + 1) * 10 > d->cap * 7 && dindex_grow(d) != 0)
		return -1;
	put_slot(d->e, d->cap, fp, stored_time(t));
	d->n++;
	return 0;
}

/*
 * Starts loading the slot where a lookup of FP begins.  The table is far
 * larger than the caches, so each lookup is a cache miss: prefetching the
 * slots of a request's events before looking them up one by one lets the
 * misses overlap (dindex_next showed as a tenth of the writer's time).
 */
void
dindex_prefetch(const struct dindex *d, uint64_t fp)
{
	if (d->cap > 0)
		__builtin_prefetch(&d->e[home(d->cap, fp)]);
	if (d->old != NULL)
		__builtin_prefetch(&d->old[home(d->ocap, fp)]);
}

/*
 * *iter is 0 to start; up to d->cap, one past the slot of the current
 * table last returned; above it, d->cap + 1 + the next slot of the old
 * table to look at (only while there is one: D does not change between
 * the calls of one walk).
 */
uint64_t
dindex_next(const struct dindex *d, uint64_t fp, size_t *iter)
{
	size_t i;

	if (d->cap == 0)
		return 0;
	if (*iter <= d->cap) {
		i = *iter == 0 ? home(d->cap, fp) : *iter & (d->cap - 1);
		for (; d->e[i].t != 0; i = (i + 1) & (d->cap - 1))
			if (d->e[i].fp == fp) {
				*iter = i + 1;
				return d->e[i].t;
			}
		if (d->old == NULL)
			return 0;
		*iter = d->cap + 1 + home(d->ocap, fp);
	}
	for (i = *iter - d->cap - 1; d->old[i].t != 0;
	    i = (i + 1) & (d->ocap - 1))
		if (d->old[i].fp == fp && d->old[i].t != DINDEX_TOMB &&
		    i >= d->moved) {
			*iter = d->cap + 1 + ((i + 1) & (d->ocap - 1));
			return d->old[i].t;
		}
	return 0;
}

static void
del_slot(struct dentry *e, size_t cap, size_t i)
{
	size_t j = i, mask = cap - 1;

	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (e[j].t == 0)
			break;
		k = home(cap, e[j].fp);
		/* Entry j may stay if its home lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		e[i] = e[j];
		i = j;
	}
	e[i].t = 0;
	e[i].fp = 0;
}

int
dindex_del(struct dindex *d, uint64_t fp, uint64_t t)
{
	size_t i;

	if (d->cap == 0)
		return 0;
	t = stored_time(t);
	for (i = home(d->cap, fp); d->e[i].t != 0; i = (i + 1) & (d->cap - 1))
		if (d->e[i].fp == fp && d->e[i].t == t) {
			del_slot(d->e, d->cap, i);
			d->n--;
			return 1;
		}
	if (d->old == NULL)
		return 0;
	for (i = home(d->ocap, fp); d->old[i].t != 0;
	    i = (i + 1) & (d->ocap - 1))
		if (d->old[i].fp == fp && d->old[i].t == t && i >= d->moved) {
			d->old[i].t = DINDEX_TOMB;
			d->n--;
			return 1;
		}
	return 0;
}
