/*
 * lmdb-ceiling.c: the disk ceiling for the spool, measured with raw LMDB.
 *
 *   lmdb-ceiling DIR N SECONDS [VALUE_BYTES]
 *
 * Creates a fresh LMDB environment in DIR (which must exist and be empty of
 * data.mdb) and, for SECONDS, appends VALUE_BYTES-byte values (default 300)
 * under sequential 8-byte big-endian keys with MDB_APPEND, N values per
 * write transaction, with LMDB's default durability: every commit is
 * fsynced.  This is what the agent's group-commit writer does at best, minus
 * HTTP, dedup and the event record; the benchmark compares the agent to it.
 *
 * Prints one line:
 *   lmdb-ceiling n=N commits=C values=V secs=S commits_per_s=X values_per_s=Y
 *       write_bytes_per_value=W
 * W is what the kernel counted as written to storage (/proc/self/io) per
 * value: the write amplification of the B-tree, 0 where it is not known.
 * Exit status: 0 ok, 1 LMDB failure, 64 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lmdb.h>

#define MAPSIZE	((size_t)32 << 30)	/* sparse; ~2 GB is written at most */

#define E(expr) do {							\
	int rc_ = (expr);						\
	if (rc_ != MDB_SUCCESS) {					\
		fprintf(stderr, "lmdb-ceiling: %s: %s: %s\n", dir,	\
		    #expr, mdb_strerror(rc_));				\
		goto fail;						\
	}								\
} while (0)

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* write_bytes of /proc/self/io, or 0 where it cannot be read. */
static unsigned long long
write_bytes(void)
{
	FILE			*fp;
	char			 line[128];
	unsigned long long	 v = 0;

	if ((fp = fopen("/proc/self/io", "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "write_bytes: %llu", &v) == 1)
			break;
	fclose(fp);
	return v;
}

static int
parse(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char	*end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && *out >= lo &&
	    *out <= hi ? 0 : -1;
}

int
main(int argc, char **argv)
{
	MDB_env		*env = NULL;
	MDB_txn		*txn = NULL;
	MDB_dbi		 dbi;
	MDB_val		 k, v;
	unsigned char	 key[8], *val;
	unsigned long	 n, secs, vlen = 300;
	uint64_t	 seq = 0, commits = 0;
	unsigned long long wb0;
	double		 t0, el;
	const char	*dir;

	if ((argc != 4 && argc != 5) || parse(argv[2], 1, 1000000, &n) ||
	    parse(argv[3], 1, 3600, &secs) ||
	    (argc == 5 && parse(argv[4], 1, 1 << 20, &vlen))) {
		fprintf(stderr, "usage: lmdb-ceiling DIR N SECONDS "
		    "[VALUE_BYTES]\n");
		return 64;
	}
	dir = argv[1];
	if ((val = malloc(vlen)) == NULL) {
		perror("lmdb-ceiling: malloc");
		return 1;
	}
	memset(val, 'x', vlen);

	E(mdb_env_create(&env));
	E(mdb_env_set_mapsize(env, MAPSIZE));
	E(mdb_env_open(env, dir, 0, 0644));	/* default: fsync per commit */
	E(mdb_txn_begin(env, NULL, 0, &txn));
	E(mdb_dbi_open(txn, NULL, 0, &dbi));
	E(mdb_txn_commit(txn));
	txn = NULL;

	wb0 = write_bytes();
	t0 = now_s();
	do {
		E(mdb_txn_begin(env, NULL, 0, &txn));
		for (unsigned long i = 0; i < n; i++) {
			seq++;
			for (int b = 0; b < 8; b++)
				key[b] = (unsigned char)(seq >> (56 - 8 * b));
			k.mv_size = sizeof(key);
			k.mv_data = key;
			v.mv_size = vlen;
			v.mv_data = val;
			E(mdb_put(txn, dbi, &k, &v, MDB_APPEND));
		}
		E(mdb_txn_commit(txn));
		txn = NULL;
		commits++;
	} while ((el = now_s() - t0) < (double)secs);

	printf("lmdb-ceiling n=%lu commits=%llu values=%llu secs=%.3f "
	    "commits_per_s=%.0f values_per_s=%.0f write_bytes_per_value=%.0f\n",
	    n, (unsigned long long)commits, (unsigned long long)seq, el,
	    (double)commits / el, (double)seq / el,
	    (double)(write_bytes() - wb0) / (double)seq);
	mdb_env_close(env);
	free(val);
	return 0;

fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	free(val);
	return 1;
}
