/*
 * spool_impl.h: what the spool library's files share and nobody else sees:
 * the struct behind the opaque handle and small LMDB helpers.  The key
 * layout is documented at the top of spool.c.
 */
#ifndef FERRY_SPOOL_IMPL_H
#define FERRY_SPOOL_IMPL_H

#include <limits.h>
#include <stdio.h>

#include <lmdb.h>
#include <sodium.h>

#include "record.h"
#include "spool.h"

/* Writes a message into a caller's SPOOL_ERRMAX buffer, truncating. */
void	spool_seterr(char *err, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
#define ERR(...)	spool_seterr(err, __VA_ARGS__)

#define KEY_CHECK_TEXT	"ferry spool key check"
#define WALK_CHUNK	4096		/* entries per read transaction */
#define DEDUP_KEY	(8 + SPOOL_IDLEN)	/* first_seen_ms, fingerprint */
#define DEDUP_VAL	8			/* seq */
#define CURSOR_VAL	16
#define FP_FRAMED	2	/* meta "fingerprint": the stream's length hashed */

/* dedup.c: fingerprint prefix -> first_seen_ms, see its header. */
#define DINDEX_MOVE_STEP	8		/* old slots moved per put */
#define DINDEX_TOMB		UINT64_MAX	/* deleted, in the old table */
struct dindex {
	struct dentry {
		uint64_t	 fp;
		uint64_t	 t;	/* 0: empty slot */
	}		*e;
	size_t		 cap;		/* a power of two, or 0 */
	size_t		 n;		/* entries, in both tables */
	struct dentry	*old;		/* growing: the table before, or NULL */
	size_t		 ocap;
	size_t		 moved;		/* old slots below it copied across */
};
int		dindex_put(struct dindex *, uint64_t fp, uint64_t t);
void		dindex_prefetch(const struct dindex *, uint64_t fp);
uint64_t	dindex_next(const struct dindex *, uint64_t fp, size_t *iter);
int		dindex_del(struct dindex *, uint64_t fp, uint64_t t);
void		dindex_free(struct dindex *);

struct spool {
	MDB_env		*env;
	MDB_dbi		 meta, events, dedup, cursors, dead;
	char		 dir[PATH_MAX];
	uint64_t	 max_size;
	uint64_t	 map_size;
	uint64_t	 window_ms;
	unsigned	 psize;
	int		 encrypted;
	int		 fp_framed;	/* fingerprint: stream length first */
	unsigned char	 key[SPOOL_KEYLEN];
	unsigned char	 fpkey[crypto_generichash_KEYBYTES];
	unsigned char	 spool_id[16];
	/* writer side, set up by the first spool_wbegin() of a process */
	int		 lockfd;	/* writer.lock, -1 until taken */
	int		 fwdfd;		/* forwarder.lock, -1 until taken */
	struct dindex	 dindex;
};

int	spool_lmdb_fail(const struct spool *, int rc, const char *what,
	    char *err);
MDB_val	spool_mval(const void *p, size_t n);
int	spool_meta_get64(struct spool *, MDB_txn *, const char *name,
	    uint64_t *out);
uint64_t spool_now_ms(void);

#endif
