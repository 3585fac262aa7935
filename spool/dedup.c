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
 * was first seen, 16 bytes an entry side by side (one cache miss a probe), with open addressing and linear
 * probing (fingerprints are already uniformly random: no hashing needed).
 * A prefix match is only a candidate: the caller confirms it with the full
 * fingerprint in the durable database.  Deletion shifts entries back, so
 * there are no tombstones to accumulate.
 */
#include <stdlib.h>
#include <string.h>

#include "spool_impl.h"

#define DINDEX_MIN	1024

static size_t
home(const struct dindex *d, uint64_t fp)
{
	return (size_t)fp & (d->cap - 1);
}

static int
dindex_alloc(struct dindex *d, size_t cap)
{
	if ((d->e = calloc(cap, sizeof(*d->e))) == NULL)
		return -1;
	d->cap = cap;
	d->n = 0;
	return 0;
}

void
dindex_free(struct dindex *d)
{
	free(d->e);
	memset(d, 0, sizeof(*d));
}

static void
put_slot(struct dindex *d, uint64_t fp, uint64_t t)
{
	size_t i = home(d, fp);

	while (d->e[i].t != 0)
		i = (i + 1) & (d->cap - 1);
	d->e[i].fp = fp;
	d->e[i].t = t;
	d->n++;
}

static int
dindex_grow(struct dindex *d)
{
	struct dindex old = *d;

	if (dindex_alloc(d, old.cap ? old.cap * 2 : DINDEX_MIN) != 0) {
		*d = old;
		return -1;
	}
	for (size_t i = 0; i < old.cap; i++)
		if (old.e[i].t != 0)
			put_slot(d, old.e[i].fp, old.e[i].t);
	free(old.e);
	return 0;
}

int
dindex_put(struct dindex *d, uint64_t fp, uint64_t t)
{
	if ((d->n + 1) * 10 > d->cap * 7 && dindex_grow(d) != 0)
		return -1;
	put_slot(d, fp, t ? t : 1);	/* 0 marks an empty slot */
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
		__builtin_prefetch(&d->e[home(d, fp)]);
}

uint64_t
dindex_next(const struct dindex *d, uint64_t fp, size_t *iter)
{
	size_t i;

	if (d->cap == 0)
		return 0;
	/* *iter is 0 to start, else one past the slot last returned. */
	i = *iter == 0 ? home(d, fp) : *iter & (d->cap - 1);
	for (; d->e[i].t != 0; i = (i + 1) & (d->cap - 1))
		if (d->e[i].fp == fp) {
			*iter = i + 1;
			return d->e[i].t;
		}
	return 0;
}

static void
del_slot(struct dindex *d, size_t i)
{
	size_t j = i, mask = d->cap - 1;

	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (d->e[j].t == 0)
			break;
		k = home(d, d->e[j].fp);
		/* Entry j may stay if its home lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		d->e[i] = d->e[j];
		i = j;
	}
	d->e[i].t = 0;
	d->e[i].fp = 0;
	d->n--;
}

int
dindex_del(struct dindex *d, uint64_t fp, uint64_t t)
{
	if (d->cap == 0)
		return 0;
	if (t == 0)
		t = 1;
	for (size_t i = home(d, fp); d->e[i].t != 0;
	    i = (i + 1) & (d->cap - 1))
		if (d->e[i].fp == fp && d->e[i].t == t) {
			del_slot(d, i);
			return 1;
		}
	return 0;
}
