/*
 * test_spool.c: unit tests of the spool library (spool/), with cmocka.
 * Each test works in a fresh temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <sodium.h>

#include "spool.h"

#define MIN	60000ull
#define T0	1700000000000ull

struct fx {
	char		 dir[64];
	char		 err[SPOOL_ERRMAX];
	struct spool	*sp;
	struct spool_options opt;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/ferry-spool-test.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->opt.dir = f->dir;
	f->opt.max_size = 64ull << 20;
	f->opt.dedup_window_ms = 10 * MIN;
	f->opt.create = 1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	spool_close(f->sp);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
fx_open(struct fx *f)
{
	spool_close(f->sp);
	f->sp = NULL;
	int rc = spool_open(&f->sp, &f->opt, f->err);
	if (rc != SPOOL_OK)
		fail_msg("spool_open: %s", f->err);
}

static struct spool_event
ev_make(const char *stream, const char *key, const char *body)
{
	struct spool_event e;

	memset(&e, 0, sizeof(e));
	e.stream = stream;
	e.stream_len = strlen(stream);
	e.ctype = "application/json";
	e.ctype_len = 16;
	e.ikey = key;
	e.ikey_len = key ? strlen(key) : 0;
	e.addr = "127.0.0.1";
	e.addr_len = 9;
	e.body = body;
	e.body_len = strlen(body);
	e.received_ms = T0;
	return e;
}

/* Appends one event; returns its seq, negative on error, dup in *dup. */
static long long
put1(struct fx *f, const char *stream, const char *key, const char *body,
    uint64_t now, int *dupp)
{
	struct spool_event e = ev_make(stream, key, body);
	int dup = -1, rc;

	e.received_ms = now;
	rc = spool_append(f->sp, &e, 1, now, &dup, f->err);
	if (rc != SPOOL_OK)
		return rc;
	if (dupp)
		*dupp = dup;
	return (long long)e.seq;
}

struct got {
	uint64_t	seq[64];
	char		body[64][64];
	char		key[64][64];
	uint64_t	rms[64];
	size_t		n;
};

static int
got_cb(const struct spool_event *e, void *arg)
{
	struct got *g = arg;

	if (g->n >= 64)
		return 1;
	g->seq[g->n] = e->seq;
	g->rms[g->n] = e->received_ms;
	snprintf(g->body[g->n], 64, "%.*s", (int)e->body_len,
	    (const char *)e->body);
	snprintf(g->key[g->n], 64, "%.*s", (int)e->ikey_len, e->ikey);
	g->n++;
	return 0;
}

static size_t
read_all(struct fx *f, struct got *g)
{
	memset(g, 0, sizeof(*g));
	long n = spool_read(f->sp, 0, 64, got_cb, g, f->err);
	assert_true(n >= 0);
	return (size_t)n;
}

static void
t_create_reopen(void **state)
{
	struct fx *f = *state;
	struct spool_stat st;
	char id[33];

	fx_open(f);
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	assert_int_equal(st.events, 0);
	assert_int_equal(st.next_seq, 1);
	assert_int_equal(st.format, SPOOL_FORMAT);
	assert_int_equal(strlen(st.spool_id), 32);
	strcpy(id, st.spool_id);
	fx_open(f);
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	assert_string_equal(st.spool_id, id);
}

static void
t_roundtrip(void **state)
{
	struct fx *f = *state;
	struct spool_event e[3] = {
		ev_make("web", "k1", "{\"a\":1}"),
		ev_make("web", NULL, "{\"a\":2}"),
		ev_make("app.x-1_y", "k3", ""),
	};
	int dup[3];
	struct got g;

	fx_open(f);
	assert_int_equal(spool_append(f->sp, e, 3, T0, dup, f->err), SPOOL_OK);
	assert_int_equal(e[0].seq, 1);
	assert_int_equal(e[1].seq, 2);
	assert_int_equal(e[2].seq, 3);
	assert_int_equal(dup[0] + dup[1] + dup[2], 0);
	assert_int_equal(read_all(f, &g), 3);
	assert_string_equal(g.body[0], "{\"a\":1}");
	assert_string_equal(g.key[0], "k1");
	assert_string_equal(g.key[1], "");
	assert_string_equal(g.body[2], "");
	assert_int_equal(g.rms[1], T0);
	/* after = 2 starts at 3 */
	memset(&g, 0, sizeof(g));
	assert_int_equal(spool_read(f->sp, 2, 10, got_cb, &g, f->err), 1);
	assert_int_equal(g.seq[0], 3);
	assert_int_equal(spool_get(f->sp, 4, got_cb, &g, f->err),
	    SPOOL_NOTFOUND);
}

static void
t_seq_never_reused(void **state)
{
	struct fx *f = *state;
	size_t removed;

	fx_open(f);
	assert_int_equal(put1(f, "s", "a", "1", T0, NULL), 1);
	assert_int_equal(put1(f, "s", "b", "2", T0, NULL), 2);
	assert_int_equal(spool_cursor_set(f->sp, "sink", 2, T0, f->err),
	    SPOOL_OK);
	assert_int_equal(spool_trim(f->sp, NULL, 0, T0, 0, 100, &removed, f->err),
	    SPOOL_OK);
	assert_int_equal(removed, 2);
	fx_open(f);	/* drained empty, reopened */
	assert_int_equal(put1(f, "s", "c", "3", T0, NULL), 3);
}

static void
t_dedup(void **state)
{
	struct fx *f = *state;
	struct spool_event e[3] = {
		ev_make("s", "same", "x"), ev_make("s", "other", "y"),
		ev_make("s", "same", "z"),
	};
	int dup[3], d;

	fx_open(f);
	/* repeated inside one batch: the second is a duplicate of the first */
	assert_int_equal(spool_append(f->sp, e, 3, T0, dup, f->err), SPOOL_OK);
	assert_int_equal(dup[0], 0);
	assert_int_equal(dup[1], 0);
	assert_int_equal(dup[2], 1);
	assert_int_equal(e[2].seq, e[0].seq);
	/* seen in a committed batch */
	assert_int_equal(put1(f, "s", "same", "w", T0 + 1, &d), 1);
	assert_int_equal(d, 1);
	/* same key, other stream: not a duplicate */
	assert_int_equal(put1(f, "t", "same", "w", T0 + 1, &d), 3);
	assert_int_equal(d, 0);
	/* no key: the body decides */
	assert_int_equal(put1(f, "s", NULL, "body", T0, &d), 4);
	assert_int_equal(put1(f, "s", NULL, "body", T0, &d), 4);
	assert_int_equal(d, 1);
	/* seen before a reopen */
	fx_open(f);
	assert_int_equal(put1(f, "s", "other", "q", T0 + 2, &d), 2);
	assert_int_equal(d, 1);
	/* past its window: stored anew, and then a duplicate of the new one */
	assert_int_equal(put1(f, "s", "same", "late", T0 + 10 * MIN, &d), 5);
	assert_int_equal(d, 0);
	assert_int_equal(put1(f, "s", "same", "late", T0 + 10 * MIN + 1, &d),
	    5);
	assert_int_equal(d, 1);
}

/* No stream, key or body runs into another in the fingerprint. */
static void
t_fingerprint_framing(void **state)
{
	struct fx *f = *state;
	struct spool_event a = ev_make("a", "kfoo", "{}");
	struct spool_event ak = ev_make("ak", "foo", "{}");
	struct spool_event akey = ev_make("a", "b{\"x\":1}", "{}");
	struct spool_event abody = ev_make("ak", NULL, "{\"x\":1}");
	int d;

	fx_open(f);
	spool_fingerprint(f->sp, &a);
	spool_fingerprint(f->sp, &ak);
	assert_memory_not_equal(a.id, ak.id, SPOOL_IDLEN);
	spool_fingerprint(f->sp, &akey);
	spool_fingerprint(f->sp, &abody);
	assert_memory_not_equal(akey.id, abody.id, SPOOL_IDLEN);
	/* and through the spool: each stored, none a duplicate */
	assert_int_equal(put1(f, "a", "kfoo", "1", T0, &d), 1);
	assert_int_equal(put1(f, "ak", "foo", "2", T0, &d), 2);
	assert_int_equal(d, 0);
	assert_int_equal(put1(f, "a", "b{\"x\":1}", "3", T0, &d), 3);
	assert_int_equal(put1(f, "ak", NULL, "{\"x\":1}", T0, &d), 4);
	assert_int_equal(d, 0);
}

static void
t_dedup_expire(void **state)
{
	struct fx *f = *state;
	struct spool_wtxn *w;
	struct spool_stat st;
	size_t removed;
	int d;

	fx_open(f);
	put1(f, "s", "a", "1", T0, NULL);
	put1(f, "s", "b", "2", T0 + 5 * MIN, NULL);
	/* a re-sent "a" after its window replaces a's entry */
	assert_int_equal(put1(f, "s", "a", "1", T0 + 11 * MIN, &d), 3);
	assert_int_equal(spool_wbegin(f->sp, &w, f->err), SPOOL_OK);
	assert_int_equal(spool_dedup_expire(w, T0 + 12 * MIN, 100, &removed,
	    f->err), SPOOL_OK);
	assert_int_equal(removed, 1);	/* the first "a" row only */
	assert_int_equal(spool_wcommit(w, f->err), SPOOL_OK);
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	assert_int_equal(st.dedup_entries, 2);	/* b, and the new a */
	assert_int_equal(put1(f, "s", "a", "1", T0 + 12 * MIN, &d), 3);
	assert_int_equal(d, 1);
	assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
}

static void
t_group_all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct spool_wtxn *w;
	struct spool_event a = ev_make("s", "a", "1");
	struct spool_event bad[2] = { ev_make("s", "b", "2"),
	    ev_make("bad/name", "c", "3") };
	struct spool_event c = ev_make("s", "c", "4");
	int dup[2];
	struct got g;

	fx_open(f);
	assert_int_equal(spool_wbegin(f->sp, &w, f->err), SPOOL_OK);
	assert_int_equal(spool_wadd(w, &a, 1, 0, T0, dup, f->err), SPOOL_OK);
	assert_int_equal(spool_wadd(w, bad, 2, 0, T0, dup, f->err),
	    SPOOL_EINVAL);
	assert_non_null(strstr(f->err, "stream name"));
	assert_int_equal(spool_wadd(w, &c, 1, 0, T0, dup, f->err), SPOOL_OK);
	assert_int_equal(spool_wcommit(w, f->err), SPOOL_OK);
	assert_int_equal(read_all(f, &g), 2);
	assert_int_equal(g.seq[0], 1);
	assert_int_equal(g.seq[1], 2);	/* no gap left by the refused group */
	assert_string_equal(g.key[1], "c");
}

static void
t_abort_keeps_nothing(void **state)
{
	struct fx *f = *state;
	struct spool_wtxn *w;
	struct spool_event a = ev_make("s", "a", "1");
	int dup;
	struct got g;

	fx_open(f);
	assert_int_equal(spool_wbegin(f->sp, &w, f->err), SPOOL_OK);
	assert_int_equal(spool_wadd(w, &a, 1, 0, T0, &dup, f->err), SPOOL_OK);
	spool_wabort(w);
	assert_int_equal(read_all(f, &g), 0);
	assert_int_equal(put1(f, "s", "a", "1", T0, &dup), 1);
	assert_int_equal(dup, 0);
}

static void
t_full_and_recover(void **state)
{
	struct fx *f = *state;
	char body[1000];
	long long seq, last = 0;
	int full = 0, d;
	size_t removed;
	struct spool_stat st;

	f->opt.max_size = 1 << 20;
	fx_open(f);
	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	for (int i = 0; i < 5000; i++) {
		char key[32];

		snprintf(key, sizeof(key), "k%d", i);
		seq = put1(f, "s", key, body, T0, &d);
		if (seq == SPOOL_FULL) {
			full = 1;
			break;
		}
		assert_true(seq > 0);
		last = seq;
	}
	assert_true(full);
	assert_non_null(strstr(f->err, "full"));
	assert_true(last > 100);
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	assert_int_equal(st.events, (uint64_t)last);
	assert_true(st.used_bytes <= st.max_bytes);
	assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
	/* a full spool can still be drained, then takes events again */
	assert_int_equal(spool_cursor_set(f->sp, "k", (uint64_t)last, T0,
	    f->err), SPOOL_OK);
	assert_int_equal(spool_trim(f->sp, NULL, 0, T0, 0, 1000000, &removed, f->err),
	    SPOOL_OK);
	assert_int_equal(removed, (size_t)last);
	assert_int_equal(put1(f, "s", "after", body, T0, &d), last + 1);
}

static void
t_shrink_max_size(void **state)
{
	struct fx *f = *state;
	char body[2000];
	int d;

	fx_open(f);
	memset(body, 'y', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	for (int i = 0; i < 1500; i++) {
		char key[32];

		snprintf(key, sizeof(key), "k%d", i);
		assert_true(put1(f, "s", key, body, T0, &d) > 0);
	}
	f->opt.max_size = 1 << 20;	/* below the data present */
	fx_open(f);
	assert_int_equal(put1(f, "s", "more", body, T0, &d), SPOOL_FULL);
	assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
	f->opt.max_size = 64 << 20;
	fx_open(f);
	assert_int_equal(put1(f, "s", "more", body, T0, &d), 1501);
}

static void
t_encryption(void **state)
{
	struct fx *f = *state;
	unsigned char key[SPOOL_KEYLEN], other[SPOOL_KEYLEN];
	char path[128], *buf;
	FILE *fp;
	size_t n;
	struct got g;
	struct spool *sp2;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(other, sizeof(other));
	f->opt.key = key;
	fx_open(f);
	assert_int_equal(put1(f, "s", "SECRETKEY", "TOPSECRETBODY", T0, NULL),
	    1);
	assert_int_equal(read_all(f, &g), 1);
	assert_string_equal(g.body[0], "TOPSECRETBODY");
	assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
	spool_close(f->sp);
	f->sp = NULL;
	/* nothing of the event in clear on disk */
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	assert_non_null(fp = fopen(path, "rb"));
	buf = malloc(8 << 20);
	n = fread(buf, 1, 8 << 20, fp);
	fclose(fp);
	assert_null(memmem(buf, n, "TOPSECRET", 9));
	assert_null(memmem(buf, n, "SECRETKEY", 9));
	free(buf);
	f->opt.key = other;
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_EKEY);
	assert_non_null(strstr(f->err, "wrong encryption key"));
	f->opt.key = NULL;
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_EKEY);
	assert_non_null(strstr(f->err, "no key is configured"));
	f->opt.key = key;
	fx_open(f);
}

static void
t_key_on_plain_spool(void **state)
{
	struct fx *f = *state;
	unsigned char key[SPOOL_KEYLEN] = { 1 };
	struct spool *sp2;

	fx_open(f);
	f->opt.key = key;
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_EKEY);
	assert_non_null(strstr(f->err, "not encrypted"));
}

static int
cursor_count(const char *sink, uint64_t seq, uint64_t ms, void *arg)
{
	(void)sink; (void)seq; (void)ms;
	(*(int *)arg)++;
	return 0;
}

static void
t_cursors_trim_retain(void **state)
{
	struct fx *f = *state;
	uint64_t seq, ms;
	size_t removed;
	int n = 0;

	fx_open(f);
	for (int i = 0; i < 10; i++) {
		char key[8];
		snprintf(key, sizeof(key), "%d", i);
		put1(f, "s", key, key, T0 + (uint64_t)i * MIN, NULL);
	}
	assert_int_equal(spool_cursor_get(f->sp, "a", &seq, &ms, f->err),
	    SPOOL_NOTFOUND);
	assert_int_equal(spool_cursor_init(f->sp, "a", T0, f->err), SPOOL_OK);
	assert_int_equal(spool_cursor_init(f->sp, "b", T0, f->err), SPOOL_OK);
	assert_int_equal(spool_cursor_set(f->sp, "a", 8, T0 + 5, f->err),
	    SPOOL_OK);
	assert_int_equal(spool_cursor_init(f->sp, "a", T0, f->err), SPOOL_OK);
	assert_int_equal(spool_cursor_get(f->sp, "a", &seq, &ms, f->err),
	    SPOOL_OK);
	assert_int_equal(seq, 8);	/* init leaves an existing cursor */
	assert_int_equal(ms, T0 + 5);
	assert_int_equal(spool_cursor_set(f->sp, "a", 11, T0, f->err),
	    SPOOL_EINVAL);
	assert_int_equal(spool_cursor_each(f->sp, cursor_count, &n, f->err),
	    SPOOL_OK);
	assert_int_equal(n, 2);
	/* b is at 0: nothing may go */
	assert_int_equal(spool_trim(f->sp, NULL, 0, T0 + 100 * MIN, 0, 100,
	    &removed, f->err), SPOOL_OK);
	assert_int_equal(removed, 0);
	assert_int_equal(spool_cursor_set(f->sp, "b", 10, T0, f->err),
	    SPOOL_OK);
	/* retain 5 min at T0+9min: seqs 1..5 (received T0..T0+4min) go */
	assert_int_equal(spool_trim(f->sp, NULL, 0, T0 + 9 * MIN, 5 * MIN, 100,
	    &removed, f->err), SPOOL_OK);
	assert_int_equal(removed, 5);
	/* the lowest cursor (a at 8) bounds the rest: 6, 7, 8 */
	assert_int_equal(spool_trim(f->sp, NULL, 0, T0 + 100 * MIN, 0, 100,
	    &removed, f->err), SPOOL_OK);
	assert_int_equal(removed, 3);
	assert_int_equal(spool_cursor_delete(f->sp, "a", f->err), SPOOL_OK);
	assert_int_equal(spool_cursor_delete(f->sp, "a", f->err),
	    SPOOL_NOTFOUND);
	assert_int_equal(spool_trim(f->sp, NULL, 0, T0 + 100 * MIN, 0, 1,
	    &removed, f->err), SPOOL_OK);
	assert_int_equal(removed, 1);	/* bounded by max */
}

/* Only the listed sinks' cursors hold events back. */
static void
t_trim_listed_sinks(void **state)
{
	struct fx *f = *state;
	const char *live[] = { "live" }, *two[] = { "live", "new" };
	size_t removed;

	fx_open(f);
	for (int i = 0; i < 10; i++) {
		char key[8];
		snprintf(key, sizeof(key), "%d", i);
		put1(f, "s", key, key, T0, NULL);
	}
	assert_int_equal(spool_cursor_set(f->sp, "gone", 2, T0, f->err),
	    SPOOL_OK);
	assert_int_equal(spool_cursor_set(f->sp, "live", 9, T0, f->err),
	    SPOOL_OK);
	/* "new" is listed and has no cursor yet: nothing goes */
	assert_int_equal(spool_trim(f->sp, two, 2, T0, 0, 100, &removed,
	    f->err), SPOOL_OK);
	assert_int_equal(removed, 0);
	/* all cursors: "gone" at 2 bounds it */
	assert_int_equal(spool_trim(f->sp, NULL, 0, T0, 0, 100, &removed,
	    f->err), SPOOL_OK);
	assert_int_equal(removed, 2);
	/* only "live": up to 9, whatever "gone" says */
	assert_int_equal(spool_trim(f->sp, live, 1, T0, 0, 100, &removed,
	    f->err), SPOOL_OK);
	assert_int_equal(removed, 7);
}

static int
dead_cb(const struct spool_dead *d, const struct spool_event *e, void *arg)
{
	char *out = arg;

	snprintf(out, 128, "%s %llu %s %.*s", d->sink,
	    (unsigned long long)d->seq, d->reason, (int)e->body_len,
	    (const char *)e->body);
	return 0;
}

static void
t_dead_letters(void **state)
{
	struct fx *f = *state;
	struct spool_stat st;
	char out[128] = "";

	fx_open(f);
	put1(f, "s", "a", "poison", T0, NULL);
	assert_int_equal(spool_dead_add(f->sp, "kafka", 1, "too large", T0,
	    f->err), SPOOL_OK);
	assert_int_equal(spool_dead_add(f->sp, "kafka", 7, "x", T0, f->err),
	    SPOOL_NOTFOUND);
	assert_int_equal(spool_dead_each(f->sp, NULL, dead_cb, out, f->err),
	    1);
	assert_string_equal(out, "kafka 1 too large poison");
	assert_int_equal(spool_dead_each(f->sp, "other", dead_cb, out, f->err),
	    0);
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	assert_int_equal(st.deadletters, 1);
	assert_int_equal(spool_dead_drop(f->sp, "kafka", 1, f->err), SPOOL_OK);
	assert_int_equal(spool_dead_drop(f->sp, "kafka", 1, f->err),
	    SPOOL_NOTFOUND);
}

static void
sha_file(const char *path, unsigned char out[32])
{
	FILE *fp = fopen(path, "rb");
	crypto_hash_sha256_state st;
	unsigned char buf[65536];
	size_t n;

	assert_non_null(fp);
	crypto_hash_sha256_init(&st);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		crypto_hash_sha256_update(&st, buf, n);
	fclose(fp);
	crypto_hash_sha256_final(&st, out);
}

/* Rewrites meta "format" with LMDB directly, as a future ferry would. */
static void
set_format(const char *dir, unsigned v)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	unsigned char b[4] = { 0, 0, 0, (unsigned char)v };
	MDB_val k = { 6, "format" }, d = { 4, b };

	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Deletes meta "fingerprint" with LMDB directly: a spool made before it. */
static void
drop_fingerprint_meta(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 11, "fingerprint" };

	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void
assert_id(const struct spool_event *e, const char *hex)
{
	char got[2 * SPOOL_IDLEN + 1];

	sodium_bin2hex(got, sizeof(got), e->id, SPOOL_IDLEN);
	assert_string_equal(got, hex);
}

/*
 * Known answers, BLAKE2b-128 as Python's hashlib computes it: a new spool
 * hashes 0x01 "s" "k" "k" (the stream's length, the stream, the key tag,
 * the key); a spool made before the framing (no meta "fingerprint") keeps
 * hashing "s" "k" "k", across restarts, so that the ids and dedup rows it
 * holds still match: its retries are found and check passes.
 */
static void
t_fingerprint_known(void **state)
{
	struct fx *f = *state;
	struct spool_event e = ev_make("s", "k", "{}");
	int d;

	fx_open(f);
	spool_fingerprint(f->sp, &e);
	assert_id(&e, "28e09dc7966e779585f6ca04961e49ef");
	spool_close(f->sp);
	f->sp = NULL;
	drop_fingerprint_meta(f->dir);
	for (int i = 0; i < 2; i++) {
		fx_open(f);	/* reopened: still the old way */
		spool_fingerprint(f->sp, &e);
		assert_id(&e, "9fbe9cd8cfb6e93a24ae027b028e540d");
		assert_int_equal(put1(f, "s", "k", "{}", T0 + (uint64_t)i,
		    &d), 1);
		assert_int_equal(d, i);	/* stored once, then a duplicate */
		assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
	}
}

static void
t_future_format_untouched(void **state)
{
	struct fx *f = *state;
	unsigned char h1[32], h2[32];
	char path[128];
	struct spool *sp2;

	fx_open(f);
	put1(f, "s", "a", "1", T0, NULL);
	spool_close(f->sp);
	f->sp = NULL;
	set_format(f->dir, 2);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	sha_file(path, h1);
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_EFORMAT);
	assert_non_null(strstr(f->err, "format 2"));
	sha_file(path, h2);
	assert_memory_equal(h1, h2, 32);
}

static void
t_not_a_spool(void **state)
{
	struct fx *f = *state;
	MDB_env *env;
	MDB_txn *txn;
	MDB_val k = { 3, "key" }, d = { 5, "value" };
	struct spool *sp2;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_put(txn, 1, &k, &d, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_EFORMAT);
	assert_non_null(strstr(f->err, "not a ferry spool"));
}

static void
t_garbage_file_untouched(void **state)
{
	struct fx *f = *state;
	char path[128], junk[100000];
	unsigned char h1[32], h2[32];
	struct spool *sp2;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	memset(junk, 'j', sizeof(junk));
	assert_non_null(fp = fopen(path, "wb"));
	fwrite(junk, 1, sizeof(junk), fp);
	fclose(fp);
	sha_file(path, h1);
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_EFORMAT);
	assert_non_null(strstr(f->err, "left untouched"));
	sha_file(path, h2);
	assert_memory_equal(h1, h2, 32);
}

static void
t_missing_dir(void **state)
{
	struct fx *f = *state;
	char dir[128];
	struct spool *sp2;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/nope", f->dir);
	f->opt.dir = dir;
	f->opt.create = 0;
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_NOTFOUND);
	assert_int_equal(stat(dir, &st), -1);
	f->opt.create = 1;
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_OK);
	spool_close(sp2);
	/* a directory with no spool in it, without create */
	f->opt.create = 0;
	snprintf(dir, sizeof(dir), "%s", f->dir);
	f->opt.dir = f->dir;
	assert_int_equal(spool_open(&sp2, &f->opt, f->err), SPOOL_NOTFOUND);
	assert_non_null(strstr(f->err, "no spool here"));
}

static void
t_stale_reader_cleared(void **state)
{
	struct fx *f = *state;
	struct spool_stat st;
	int cleared, status;
	pid_t pid;

	fx_open(f);
	put1(f, "s", "a", "1", T0, NULL);
	spool_close(f->sp);
	f->sp = NULL;
	pid = fork();
	if (pid == 0) {
		/* hold a reader slot, then die without releasing it */
		MDB_env *env;
		MDB_txn *txn;
		mdb_env_create(&env);
		mdb_env_set_maxdbs(env, 8);
		mdb_env_set_mapsize(env, 128 << 20);
		if (mdb_env_open(env, f->dir, MDB_NOTLS, 0640) != 0 ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
			_exit(2);
		kill(getpid(), SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	fx_open(f);	/* clears stale slots */
	assert_int_equal(spool_readers(f->sp, 1, NULL, NULL, &cleared,
	    f->err), SPOOL_OK);
	assert_int_equal(cleared, 0);	/* already cleared by open */
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	assert_int_equal(st.events, 1);
}

static void
t_bad_events(void **state)
{
	struct fx *f = *state;
	char big[SPOOL_IKEY_MAX + 2];
	struct spool_event e;
	int dup;

	fx_open(f);
	e = ev_make("", "k", "b");
	assert_int_equal(spool_append(f->sp, &e, 1, T0, &dup, f->err),
	    SPOOL_EINVAL);
	e = ev_make("a/b", "k", "b");
	assert_int_equal(spool_append(f->sp, &e, 1, T0, &dup, f->err),
	    SPOOL_EINVAL);
	e = ev_make("0123456789012345678901234567890123456789012345678901234"
	    "5678901234", "k", "b");	/* 65 characters */
	assert_int_equal(spool_append(f->sp, &e, 1, T0, &dup, f->err),
	    SPOOL_EINVAL);
	e.stream_len = 64;		/* exactly at the limit */
	assert_int_equal(spool_append(f->sp, &e, 1, T0, &dup, f->err),
	    SPOOL_OK);
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	e = ev_make("s", big, "b");
	assert_int_equal(spool_append(f->sp, &e, 1, T0, &dup, f->err),
	    SPOOL_EINVAL);
	assert_non_null(strstr(f->err, "idempotency key"));
	e.ikey_len = SPOOL_IKEY_MAX;
	assert_int_equal(spool_append(f->sp, &e, 1, T0, &dup, f->err),
	    SPOOL_OK);
}

static void
t_backup(void **state)
{
	struct fx *f = *state;
	char bdir[128];
	struct spool_stat st;
	struct spool *sp2;
	struct spool_options o;

	fx_open(f);
	put1(f, "s", "a", "1", T0, NULL);
	put1(f, "s", "b", "2", T0, NULL);
	snprintf(bdir, sizeof(bdir), "%s/backup", f->dir);
	assert_int_equal(spool_backup(f->sp, bdir, f->err), SPOOL_OK);
	assert_int_equal(spool_backup(f->sp, bdir, f->err), SPOOL_EINVAL);
	o = f->opt;
	o.dir = bdir;
	o.create = 0;
	assert_int_equal(spool_open(&sp2, &o, f->err), SPOOL_OK);
	assert_int_equal(spool_stat(sp2, &st, f->err), SPOOL_OK);
	assert_int_equal(st.events, 2);
	assert_int_equal(st.next_seq, 3);
	spool_close(sp2);
}

static uint64_t
data_size(struct fx *f)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* spool_reserve: zeros after the last page, at and past its bounds. */
static void
t_reserve(void **state)
{
	struct fx *f = *state;
	struct spool_stat st;
	struct spool_event e[100];
	char keys[100][16];
	uint64_t added, used, end, size;
	int dup[100];

	fx_open(f);
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	end = st.file_bytes;
	used = spool_used_bytes(f->sp);
	/* nothing asked, nothing written */
	assert_int_equal(spool_reserve(f->sp, 0, &added, f->err), SPOOL_OK);
	assert_int_equal(added, 0);
	assert_true(data_size(f) <= end);
	/* 8 MiB past the last page, exactly */
	assert_int_equal(spool_reserve(f->sp, 8u << 20, &added, f->err),
	    SPOOL_OK);
	assert_int_equal(data_size(f), end + (8u << 20));
	assert_true(added > 0 && added <= (8u << 20));
	assert_int_equal(spool_used_bytes(f->sp), used);
	/* more than half of it is left: no refill yet */
	assert_int_equal(spool_reserve(f->sp, 8u << 20, &added, f->err),
	    SPOOL_OK);
	assert_int_equal(added, 0);
	/* appends land in the reserved blocks; the file keeps its size */
	for (int i = 0; i < 100; i++) {
		snprintf(keys[i], sizeof(keys[i]), "r%d", i);
		e[i] = ev_make("web", keys[i], "{\"reserved\":true}");
	}
	size = data_size(f);
	assert_int_equal(spool_append(f->sp, e, 100, T0, dup, f->err),
	    SPOOL_OK);
	assert_int_equal(data_size(f), size);
	assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
	/* never past max_size (64 MiB here), however much is asked */
	assert_int_equal(spool_reserve(f->sp, 1ull << 40, &added, f->err),
	    SPOOL_OK);
	assert_int_equal(data_size(f), f->opt.max_size);
	assert_int_equal(spool_reserve(f->sp, 1ull << 40, &added, f->err),
	    SPOOL_OK);
	assert_int_equal(added, 0);
	/* the zeros are no spool damage: reopened, all there */
	fx_open(f);
	assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	assert_int_equal(st.events, 100);
	assert_int_equal(st.next_seq, 101);
	assert_int_equal(data_size(f), f->opt.max_size);
}

struct appender {
	struct fx	*f;
	int		 rc;
	_Atomic int	 done;
};

/* Commits of ~160 KiB, more than the reserve asked below: they outrun it. */
static void *
append_many(void *arg)
{
	static char body[8001];
	struct appender *ap = arg;
	struct spool_event e[20];
	char keys[20][32], err[SPOOL_ERRMAX];
	int dup[20];

	memset(body, 'x', sizeof(body) - 1);
	for (int b = 0; b < 200 && ap->rc == SPOOL_OK; b++) {
		for (int i = 0; i < 20; i++) {
			snprintf(keys[i], sizeof(keys[i]), "c%d-%d", b, i);
			e[i] = ev_make("web", keys[i], body);
		}
		ap->rc = spool_append(ap->f->sp, e, 20, T0, dup, err);
	}
	atomic_store(&ap->done, 1);
	return NULL;
}

static int
count_x_bodies(const struct spool_event *e, void *arg)
{
	size_t *n = arg;

	if (e->body_len == 8000 && memchr(e->body, 0, e->body_len) == NULL &&
	    ((const char *)e->body)[0] == 'x' &&
	    ((const char *)e->body)[7999] == 'x')
		(*n)++;
	return 0;
}

/*
 * Reserving while another thread appends (the agent's reserver and
 * writer): no page of a commit is overwritten by zeros.
 */
static void
t_reserve_concurrent(void **state)
{
	struct fx *f = *state;
	struct appender ap = { .f = f, .rc = SPOOL_OK };
	struct spool_stat st;
	uint64_t added, total = 0;
	size_t intact;
	pthread_t t;
	int rounds = 0;

	fx_open(f);
	assert_int_equal(pthread_create(&t, NULL, append_many, &ap), 0);
	while (!atomic_load(&ap.done)) {
		assert_int_equal(spool_reserve(f->sp, 64u << 10, &added,
		    f->err), SPOOL_OK);
		total += added;
		rounds++;
	}
	pthread_join(t, NULL);
	assert_int_equal(ap.rc, SPOOL_OK);
	assert_true(total > (64u << 10));	/* refilled as it grew */
	assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
	assert_int_equal(spool_stat(f->sp, &st, f->err), SPOOL_OK);
	assert_int_equal(st.events, 200 * 20);
	intact = 0;
	assert_int_equal(spool_read(f->sp, 0, 200 * 20, count_x_bodies, &intact,
	    f->err), 200 * 20);
	assert_int_equal(intact, 200 * 20);
	fx_open(f);
	assert_int_equal(spool_check(f->sp, NULL, NULL, f->err), 0);
	print_message("# %d reserve calls, %llu bytes reserved\n", rounds,
	    (unsigned long long)total);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(t_create_reopen), T(t_roundtrip), T(t_seq_never_reused),
		T(t_dedup),
		T(t_fingerprint_framing), T(t_fingerprint_known), T(t_dedup_expire), T(t_group_all_or_nothing),
		T(t_abort_keeps_nothing), T(t_full_and_recover),
		T(t_shrink_max_size), T(t_encryption), T(t_key_on_plain_spool),
		T(t_cursors_trim_retain),
		T(t_trim_listed_sinks), T(t_dead_letters),
		T(t_future_format_untouched), T(t_not_a_spool),
		T(t_garbage_file_untouched), T(t_missing_dir),
		T(t_stale_reader_cleared), T(t_bad_events), T(t_backup),
		T(t_reserve), T(t_reserve_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
