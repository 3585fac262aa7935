/*
 * test_dedup.c: the in-memory fingerprint index of the spool (spool/dedup.c)
 * against a plain array as the reference, with keys chosen to collide, so
 * that probing, growth and backward-shift deletion around the table's end
 * are all exercised.
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
		if (rand() % 3 == 0) {
			size_t j = (size_t)rand() % (i + 1);
			if (r[j].live) {
				assert_int_equal(dindex_del(&d, r[j].fp,
				    r[j].t), 1);
				assert_int_equal(dindex_del(&d, r[j].fp,
				    r[j].t), 0);
				r[j].live = 0;
				live--;
			}
		}
	}
	assert_int_equal(d.n, live);
	for (size_t i = 0; i < N; i++) {
		int seen;

		count_fp(&d, r[i].fp, r[i].t, &seen);
		assert_int_equal(seen, r[i].live);
	}
	/* delete everything: the table ends empty */
	for (size_t i = 0; i < N; i++)
		if (r[i].live)
			assert_int_equal(dindex_del(&d, r[i].fp, r[i].t), 1);
	assert_int_equal(d.n, 0);
	for (size_t i = 0; i < d.cap; i++)
		assert_int_equal(d.e[i].t, 0);
	dindex_free(&d);
	free(r);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
