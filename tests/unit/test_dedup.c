/*
 * test_dedup.c: the in-memory fingerprint index of the spool (spool/dedup.c)
 * against a plain array as the reference, with keys chosen to collide, so
 * that probing, growth (incremental: two tables at once) and backward-shift
 * deletion around the table's end are all exercised.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "spool_impl.h"

#define N	20000

struct ref {
	uint64_t	fp, t;
	int		live;
};

/* Walks every entry for FP; *seen tells whether WANT_T was among them. */
static size_t
count_fp(const struct dindex *d, uint64_t fp, uint64_t want_t, int *seen)
{
	size_t iter = 0, n = 0;
	uint64_t t;

	*seen = 0;
	while ((t = dindex_next(d, fp, &iter)) != 0) {
		n++;
		if (t == want_t)
			*seen = 1;
	}
	return n;
}

/* Deletes every live entry of the N of R: the (new) table ends empty. */
static void
del_all(struct dindex *d, const struct ref *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].live)
			assert_int_equal(dindex_del(d, r[i].fp, r[i].t), 1);
	assert_int_equal(d->n, 0);
	for (size_t i = 0; i < d->cap; i++)
		assert_int_equal(d->e[i].t, 0);
}

/*
 * Deletes one of the first N reference entries, chosen at random, if it
 * is live: found once, then no more.  Returns how many it deleted.
 */
static size_t
del_random(struct dindex *d, struct ref *r, size_t n)
{
	size_t j = (size_t)rand() % n;

	if (!r[j].live)
		return 0;
	assert_int_equal(dindex_del(d, r[j].fp, r[j].t), 1);
	assert_int_equal(dindex_del(d, r[j].fp, r[j].t), 0);
	r[j].live = 0;
	return 1;
}

static void
t_against_reference(void **state)
{
	struct dindex d = { 0 };
	struct ref *r = calloc(N, sizeof(*r));
	size_t live = 0;

	(void)state;
	srand(7);
	for (size_t i = 0; i < N; i++) {
		/* few distinct low bits: long probe runs, wrap-arounds */
		r[i].fp = ((uint64_t)rand() << 20) | (uint64_t)(rand() % 64);
		if (i % 5 == 4)
			r[i].fp = r[i - 1].fp;	/* same prefix, other time */
		r[i].t = 1000 + i;
		assert_int_equal(dindex_put(&d, r[i].fp, r[i].t), 0);
		r[i].live = 1;
		live++;
		/* delete a random live entry now and then */
		if (rand() % 3 == 0)
			live -= del_random(&d, r, i + 1);
	}
	assert_int_equal(d.n, live);
	for (size_t i = 0; i < N; i++) {
		int seen;

		count_fp(&d, r[i].fp, r[i].t, &seen);
		assert_int_equal(seen, r[i].live);
	}
	del_all(&d, r, N);
	dindex_free(&d);
	free(r);
}

/* Live reference entries with FP. */
static size_t
ref_count(const struct ref *r, size_t n, uint64_t fp)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += r[i].live && r[i].fp == fp;
	return c;
}

/*
 * Growth moves the old table across a few slots a put, never all at once:
 * while both tables exist every live entry is found exactly once (a copy
 * left behind in the old table is not a second candidate), deletes reach
 * entries on either side, and a growth never finds more than a step's
 * worth of the previous one still to move.
 */
static void
t_growth_is_incremental(void **state)
{
	enum { M = 12000 };
	struct dindex d = { 0 };
	struct ref *r = calloc(M, sizeof(*r));
	size_t growths = 0, checked_during = 0, live = 0;

	(void)state;
	srand(11);
	for (size_t i = 0; i < M; i++) {
		size_t cap = d.cap, left = d.old ? d.ocap - d.moved : 0;
		int seen;

		r[i].fp = ((uint64_t)rand() << 16) | (uint64_t)(rand() % 32);
		if (i % 7 == 6)
			r[i].fp = r[i - 2].fp;
		r[i].t = 5000 + i;
		assert_int_equal(dindex_put(&d, r[i].fp, r[i].t), 0);
		r[i].live = 1;
		live++;
		if (d.cap != cap) {
			growths++;
			/* the previous growth was all but done */
			assert_true(left <= DINDEX_MOVE_STEP);
			if (cap > 0) {
				/* this one has only just started */
				assert_non_null(d.old);
				assert_int_equal(d.ocap, cap);
				assert_true(d.moved <= DINDEX_MOVE_STEP);
			}
		}
		if (i % 3 == 1)
			live -= del_random(&d, r, i + 1);
		assert_int_equal(d.n, live);
		/* the whole reference, now and then while both tables exist */
		if (d.old != NULL && i % 97 == 0) {
			checked_during++;
			for (size_t j = 0; j <= i; j++) {
				size_t c = count_fp(&d, r[j].fp, r[j].t,
				    &seen);

				assert_int_equal(seen, r[j].live);
				assert_int_equal(c, ref_count(r, i + 1,
				    r[j].fp));
			}
		}
	}
	assert_true(growths >= 4);
	assert_true(checked_during >= 10);
	del_all(&d, r, M);
	for (size_t i = d.moved; d.old != NULL && i < d.ocap; i++)
		assert_true(d.old[i].t == 0 || d.old[i].t == DINDEX_TOMB);
	dindex_free(&d);
	free(r);
}

/* A time equal to the tombstone's mark is stored, found and deleted. */
static void
t_time_of_tombstone(void **state)
{
	struct dindex d = { 0 };
	size_t iter = 0;

	(void)state;
	assert_int_equal(dindex_put(&d, 9, DINDEX_TOMB), 0);
	assert_int_equal(dindex_next(&d, 9, &iter), DINDEX_TOMB - 1);
	assert_int_equal(dindex_del(&d, 9, DINDEX_TOMB), 1);
	assert_int_equal(d.n, 0);
	dindex_free(&d);
}

static void
t_empty_and_zero_time(void **state)
{
	struct dindex d = { 0 };
	size_t iter = 0;

	(void)state;
	assert_int_equal(dindex_next(&d, 42, &iter), 0);
	assert_int_equal(dindex_del(&d, 42, 5), 0);
	/* time 0 would mark an empty slot: it is stored as 1 */
	assert_int_equal(dindex_put(&d, 42, 0), 0);
	assert_int_equal(dindex_next(&d, 42, &iter), 1);
	assert_int_equal(dindex_del(&d, 42, 0), 1);
	assert_int_equal(d.n, 0);
	dindex_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_against_reference),
		cmocka_unit_test(t_empty_and_zero_time),
		cmocka_unit_test(t_growth_is_incremental),
		cmocka_unit_test(t_time_of_tombstone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
