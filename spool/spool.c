/*
 * spool.c: the spool on LMDB (API in spool.h, record layout in record.h).
 *
 * One LMDB environment in a directory, opened by several processes at once;
 * LMDB serialises writers across them.  Named databases, integers big-endian
 * so that LMDB's byte order is numeric order:
 *
 *   meta      "format"    u32   on-disk format (SPOOL_FORMAT)
 *             "spool_id"  16    random, set at creation
 *             "next_seq"  u64   the next sequence number to assign
 *             "created"   u64   creation time, ms
 *             "key_check" 24+n  present iff encrypted: a known text sealed
 *                               with the key, to tell a wrong key at open
 *             "max_size"  u64   the writer's limit, for readers without a
 *                               configuration (ferry-spool -d)
 *   events    u64 seq -> event record (record.h)
 *   dedup     u64 first_seen_ms, 16-byte fingerprint -> u64 seq
 *             (time first: rows are added at the end and expired from the
 *             start; lookups go through the in-memory index of dedup.c)
 *   cursors   sink name -> u64 last delivered seq, u64 updated_ms
 *   dead      sink name, NUL, u64 seq -> u64 dead_ms, u16 reason length,
 *             reason, the event record exactly as it was stored
 *
 * Transactions and durability: every write is one LMDB write transaction,
 * committed with LMDB's default sync (fdatasync of the data file, then of
 * the meta page), so a committed transaction survives kill -9 and power
 * loss, and a crash at any moment leaves the last committed state: LMDB is
 * copy-on-write and never overwrites live pages.  next_seq lives in meta and
 * is written in the same transaction as the events it numbered, so sequence
 * numbers are never reused, even after every event is trimmed.
 *
 * Readers use short transactions (a long reader pins pages and makes the
 * file grow); bulk walks (read, check) re-open a transaction every chunk.
 *
 * Capacity: the map is max_size plus headroom.  Appends are refused with
 * SPOOL_FULL once the pages in use (data file high-water mark minus free
 * pages) plus the estimated size of the new events would pass max_size; the
 * headroom keeps room for the copy-on-write pages that trimming and cursor
 * updates need, so a full spool can always be drained.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "record.h"
#include "spool.h"

#include "spool_impl.h"

struct spool_wtxn {
	struct spool	*sp;
	MDB_txn		*txn;
	uint64_t	 next_seq;
	uint64_t	 first_next_seq;
	uint64_t	 used;		/* bytes in use when the txn began */
	uint64_t	 added;		/* estimated bytes added since */
	struct undo {			/* index entries this txn added */
		uint64_t	 fp, t;
	}		*undo;
	size_t		 nundo, undocap;
};

static const char *const rc_names[] = {
	"ok", "error", "spool full", "not found", "unknown spool format",
	"bad key", "damaged record", "invalid argument", "permission denied",
	"spool locked by another writer",
};

const char *
spool_strerror(int rc)
{
	if (rc > 0 || -rc >= (int)(sizeof(rc_names) / sizeof(rc_names[0])))
		return "unknown error";
	return rc_names[-rc];
}

uint64_t
spool_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *
spool_dir(const struct spool *sp)
{
	return sp->dir;
}

uint64_t
spool_max_bytes(const struct spool *sp)
{
	return sp->max_size;
}

void
spool_dedup_memory(const struct spool *sp, uint64_t *entries,
    uint64_t *bytes)
{
	const struct dindex *d = &sp->dindex;

	*entries = d->n;
	*bytes = (uint64_t)(d->cap + d->ocap) * sizeof(struct dentry);
}

void
spool_id_hex(const unsigned char *id, char *buf)
{
	sodium_bin2hex(buf, 2 * SPOOL_IDLEN + 1, id, SPOOL_IDLEN);
}

/* Maps an LMDB error to a spool_rc and a message naming the spool. */
int
spool_lmdb_fail(const struct spool *sp, int rc, const char *what, char *err)
{
	if (rc == MDB_MAP_FULL) {
		ERR("spool %s: full (%s)", sp->dir, what);
		return SPOOL_FULL;
	}
	if (rc == MDB_MAP_RESIZED) {
		ERR("spool %s: %s: the map was grown by another process "
		    "(different spool.max_size?); restart this one", sp->dir,
		    what);
		return SPOOL_ERR;
	}
	ERR("spool %s: %s: %s", sp->dir, what, mdb_strerror(rc));
	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND)
		return SPOOL_CORRUPT;
	if (rc == EACCES || rc == EPERM)
		return SPOOL_EPERM;
	return SPOOL_ERR;
}

MDB_val
spool_mval(const void *p, size_t n)
{
	MDB_val v = { n, (void *)(uintptr_t)p };
	return v;
}

int
spool_meta_get64(struct spool *sp, MDB_txn *txn, const char *name, uint64_t *out)
{
	MDB_val k = spool_mval(name, strlen(name)), v;
	int rc;

	if ((rc = mdb_get(txn, sp->meta, &k, &v)) != 0)
		return rc;
	if (v.mv_size != 8)
		return MDB_CORRUPTED;
	*out = record_get64(v.mv_data);
	return 0;
}

static int
meta_put(struct spool *sp, MDB_txn *txn, const char *name, const void *p,
    size_t n)
{
	MDB_val k = spool_mval(name, strlen(name)), v = spool_mval(p, n);

	return mdb_put(txn, sp->meta, &k, &v, 0);
}

static int
meta_put64(struct spool *sp, MDB_txn *txn, const char *name, uint64_t x)
{
	unsigned char b[8];

	record_put64(b, x);
	return meta_put(sp, txn, name, b, 8);
}

/*
 * Opening.
 */

static int
open_dbis(struct spool *sp, MDB_txn *txn, unsigned flags)
{
	struct { const char *name; MDB_dbi *dbi; } t[] = {
		{ "events", &sp->events }, { "dedup", &sp->dedup },
		{ "cursors", &sp->cursors },
		{ "dead", &sp->dead },
	};
	int rc;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if ((rc = mdb_dbi_open(txn, t[i].name, flags, t[i].dbi)) != 0)
			return rc;
	return 0;
}

static int
key_check_make(struct spool *sp, MDB_txn *txn)
{
	unsigned char box[RECORD_NONCE + sizeof(KEY_CHECK_TEXT) + RECORD_TAG];
	unsigned long long clen;

	randombytes_buf(box, RECORD_NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(box + RECORD_NONCE, &clen,
	    (const unsigned char *)KEY_CHECK_TEXT, sizeof(KEY_CHECK_TEXT),
	    NULL, 0, NULL, box, sp->key);
	return meta_put(sp, txn, "key_check", box, sizeof(box));
}

/* Creates the databases and meta of a new spool; TXN is a write txn. */
static int
spool_init(struct spool *sp, MDB_txn *txn, char *err)
{
	int rc;

	randombytes_buf(sp->spool_id, sizeof(sp->spool_id));
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &sp->meta)) != 0 ||
	    (rc = open_dbis(sp, txn, MDB_CREATE)) != 0 ||
	    (rc = meta_put(sp, txn, "format", (unsigned char[]){ 0, 0, 0,
	    SPOOL_FORMAT }, 4)) != 0 ||
	    (rc = meta_put(sp, txn, "spool_id", sp->spool_id, 16)) != 0 ||
	    (rc = meta_put64(sp, txn, "next_seq", 1)) != 0 ||
	    (rc = meta_put64(sp, txn, "created", spool_now_ms())) != 0 ||
	    (rc = meta_put64(sp, txn, "fingerprint", FP_FRAMED)) != 0 ||
	    (sp->encrypted && (rc = key_check_make(sp, txn)) != 0))
		return spool_lmdb_fail(sp, rc, "creating the spool", err);
	sp->fp_framed = 1;
	return SPOOL_OK;
}

/* Checks format, spool id and key of an existing spool. */
static int
spool_verify(struct spool *sp, MDB_txn *txn, char *err)
{
	MDB_val k, v;
	const unsigned char *f;
	unsigned format;
	unsigned char plain[sizeof(KEY_CHECK_TEXT)];
	uint64_t fpv;
	int rc;

	k = spool_mval("format", 6);
	if (mdb_get(txn, sp->meta, &k, &v) != 0 || v.mv_size != 4) {
		ERR("spool %s: damaged: no format version in meta", sp->dir);
		return SPOOL_EFORMAT;
	}
	f = v.mv_data;
	format = (unsigned)f[0] << 24 | (unsigned)f[1] << 16 |
	    (unsigned)f[2] << 8 | f[3];
	if (format != SPOOL_FORMAT) {
		ERR("spool %s: format %u, this ferry reads format %d only%s",
		    sp->dir, format, SPOOL_FORMAT, format > SPOOL_FORMAT ?
		    " (written by a newer ferry?)" : "");
		return SPOOL_EFORMAT;
	}
	k = spool_mval("spool_id", 8);
	if (mdb_get(txn, sp->meta, &k, &v) != 0 || v.mv_size != 16) {
		ERR("spool %s: damaged: no spool id in meta", sp->dir);
		return SPOOL_EFORMAT;
	}
	memcpy(sp->spool_id, v.mv_data, 16);
	/* Spools made before the framing keep the fingerprints they hold. */
	sp->fp_framed = spool_meta_get64(sp, txn, "fingerprint", &fpv) == 0 &&
	    fpv == FP_FRAMED;
	if ((rc = open_dbis(sp, txn, 0)) != 0) {
		ERR("spool %s: damaged: a database is missing (%s)", sp->dir,
		    mdb_strerror(rc));
		return SPOOL_EFORMAT;
	}
	k = spool_mval("key_check", 9);
	rc = mdb_get(txn, sp->meta, &k, &v);
	if (rc == MDB_NOTFOUND && sp->encrypted) {
		ERR("spool %s: not encrypted, but a key is configured "
		    "(remove spool.encryption_key_file, or start a new spool)",
		    sp->dir);
		return SPOOL_EKEY;
	}
	if (rc == 0 && !sp->encrypted) {
		ERR("spool %s: encrypted, and no key is configured "
		    "(set spool.encryption_key_file)", sp->dir);
		return SPOOL_EKEY;
	}
	if (rc == 0 && (v.mv_size != sizeof(plain) + RECORD_ENC_OVERHEAD ||
	    crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL,
	    (unsigned char *)v.mv_data + RECORD_NONCE, v.mv_size -
	    RECORD_NONCE, NULL, 0, v.mv_data, sp->key) != 0)) {
		ERR("spool %s: wrong encryption key (the key file does not "
		    "match the key this spool was created with)", sp->dir);
		return SPOOL_EKEY;
	}
	return SPOOL_OK;
}

/* Opens or creates the spool's databases, then verifies them. */
static int
spool_attach(struct spool *sp, int create, char *err)
{
	MDB_txn *txn;
	MDB_val k, v;
	MDB_cursor *c;
	int rc, r;

	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a read", err);
	rc = mdb_dbi_open(txn, "meta", 0, &sp->meta);
	if (rc == 0) {
		if ((r = spool_verify(sp, txn, err)) != SPOOL_OK) {
			mdb_txn_abort(txn);
			return r;
		}
		/* Committing a read txn makes its dbi handles shared. */
		if ((rc = mdb_txn_commit(txn)) != 0)
			return spool_lmdb_fail(sp, rc, "opening databases", err);
		return SPOOL_OK;
	}
	if (rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return spool_lmdb_fail(sp, rc, "opening meta", err);
	}
	/* No meta.  Only a brand-new, empty environment may become a spool. */
	r = mdb_cursor_open(txn, 1 /* MAIN_DBI */, &c);
	if (r == 0) {
		r = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	if (r != MDB_NOTFOUND) {
		ERR("spool %s: not a ferry spool (an LMDB file without ferry's "
		    "meta); left untouched", sp->dir);
		return SPOOL_EFORMAT;
	}
	if (!create) {
		ERR("spool %s: no spool here (ferry-agent creates it)",
		    sp->dir);
		return SPOOL_NOTFOUND;
	}
	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning creation", err);
	/*
	 * Another process (the agent and the forwarder starting together)
	 * may have created it since our read: then it is not ours to
	 * initialise, or next_seq would start again at 1.
	 */
	if (mdb_dbi_open(txn, "meta", 0, &sp->meta) == 0) {
		r = spool_verify(sp, txn, err);
		if (r == SPOOL_OK && (rc = mdb_txn_commit(txn)) != 0)
			return spool_lmdb_fail(sp, rc, "opening", err);
		if (r != SPOOL_OK)
			mdb_txn_abort(txn);
		return r;
	}
	if ((r = spool_init(sp, txn, err)) != SPOOL_OK) {
		mdb_txn_abort(txn);
		return r;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return spool_lmdb_fail(sp, rc, "committing creation", err);
	return SPOOL_OK;
}

/*
 * Looks at an existing data.mdb before LMDB does, because mdb_env_open()
 * writes: it would initialise an empty file and create lock.mdb beside a
 * file that is not LMDB's.  An empty file (a creation cut short) may be
 * initialised only when creating; anything else must carry LMDB's magic.
 */
static int
data_file_ok(const struct spool *sp, const char *path, off_t size,
    int create, char *err)
{
	unsigned char hdr[20];
	uint32_t magic;
	FILE *fp;
	size_t n;

	if (size == 0) {
		if (create)
			return SPOOL_OK;
		ERR("spool %s: data.mdb is empty: no spool here (ferry-agent "
		    "creates it)", sp->dir);
		return SPOOL_NOTFOUND;
	}
	if ((fp = fopen(path, "rb")) == NULL) {
		ERR("spool %s: data.mdb: %s", sp->dir, strerror(errno));
		return errno == EACCES ? SPOOL_EPERM : SPOOL_ERR;
	}
	n = fread(hdr, 1, sizeof(hdr), fp);
	fclose(fp);
	/* The first meta page: a 16-byte page header, then mm_magic. */
	if (n == sizeof(hdr))
		memcpy(&magic, hdr + 16, sizeof(magic));
	if (n != sizeof(hdr) || magic != 0xBEEFC0DE) {
		ERR("spool %s: data.mdb is not an LMDB file (damaged, or "
		    "something else); left untouched", sp->dir);
		return SPOOL_EFORMAT;
	}
	return SPOOL_OK;
}

/* Checks the directory; creates it when asked.  Never touches files. */
static int
spool_dir_ready(const struct spool *sp, int create, char *err)
{
	struct stat st;
	char path[PATH_MAX + 16];

	if (stat(sp->dir, &st) == -1) {
		if (errno == EACCES) {
			ERR("spool %s: %s", sp->dir, strerror(errno));
			return SPOOL_EPERM;
		}
		if (errno != ENOENT || !create) {
			ERR("spool %s: %s", sp->dir, errno == ENOENT ?
			    "no such directory (ferry-agent creates it)" :
			    strerror(errno));
			return errno == ENOENT ? SPOOL_NOTFOUND : SPOOL_ERR;
		}
		if (mkdir(sp->dir, 0750) == -1) {
			ERR("spool %s: cannot create: %s", sp->dir,
			    strerror(errno));
			return errno == EACCES ? SPOOL_EPERM : SPOOL_ERR;
		}
		return SPOOL_OK;
	}
	if (!S_ISDIR(st.st_mode)) {
		ERR("spool %s: not a directory", sp->dir);
		return SPOOL_EINVAL;
	}
	if (access(sp->dir, R_OK | W_OK | X_OK) == -1) {
		ERR("spool %s: %s", sp->dir, strerror(errno));
		return SPOOL_EPERM;
	}
	snprintf(path, sizeof(path), "%s/data.mdb", sp->dir);
	if (stat(path, &st) == -1) {
		if (create)
			return SPOOL_OK;
		ERR("spool %s: no spool here (ferry-agent creates it)",
		    sp->dir);
		return SPOOL_NOTFOUND;
	}
	if (access(path, R_OK | W_OK) == -1) {
		ERR("spool %s: data.mdb: %s", sp->dir, strerror(errno));
		return SPOOL_EPERM;
	}
	return data_file_ok(sp, path, st.st_size, create, err);
}

/* Map size: max_size (or the data file, if larger) plus headroom. */
static uint64_t
map_size_for(const struct spool *sp)
{
	struct stat st;
	char path[PATH_MAX + 16];
	uint64_t base = sp->max_size, head;

	snprintf(path, sizeof(path), "%s/data.mdb", sp->dir);
	if (stat(path, &st) == 0 && (uint64_t)st.st_size > base)
		base = (uint64_t)st.st_size;
	head = base / 8;
	if (head < (4u << 20))
		head = 4u << 20;
	if (head > (1ull << 30))
		head = 1ull << 30;
	return (base + head + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
}

/*
 * Without a configured max_size (ferry-spool -d DIR), take the one the
 * writer recorded, and a map as large as the writer's, so that reading
 * along while it grows the file works.
 */
static int
adopt_max_size(struct spool *sp, char *err)
{
	MDB_txn *txn;
	uint64_t recorded = 0, map;
	int rc;

	if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a read", err);
	if (spool_meta_get64(sp, txn, "max_size", &recorded) != 0)
		recorded = 0;
	mdb_txn_abort(txn);
	sp->max_size = recorded ? recorded : SPOOL_DEFAULT_MAX;
	map = map_size_for(sp);
	if (map > sp->map_size) {
		if ((rc = mdb_env_set_mapsize(sp->env, map)) != 0)
			return spool_lmdb_fail(sp, rc, "growing the map", err);
		sp->map_size = map;
	}
	return SPOOL_OK;
}

/*
 * LMDB creates lock.mdb when it is missing (a restored spool, /tmp cleaned),
 * and take_lock() the lock files, owned by whoever opens the spool.  Root
 * running ferry-spool would leave files the agent and the forwarder,
 * running as their own user, cannot open: as root, the file NAME is given
 * to data.mdb's owner.  Never through a symlink (the directory is
 * writable by that user), and never by opening the file: closing any
 * descriptor of lock.mdb drops this process's fcntl locks on it, which
 * LMDB holds to tell other processes the environment is in use (without
 * them the next opener re-initialises the lock table under our feet).
 */
static void
own_like_data(const struct spool *sp, const char *name)
{
	char		path[PATH_MAX + 16];
	struct stat	data, st;

	if (geteuid() != 0)
		return;
	snprintf(path, sizeof(path), "%s/data.mdb", sp->dir);
	if (stat(path, &data) != 0)
		return;
	snprintf(path, sizeof(path), "%s/%s", sp->dir, name);
	/* Failing that, the services' own open says what is wrong. */
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_uid != data.st_uid || st.st_gid != data.st_gid))
		(void)!fchownat(AT_FDCWD, path, data.st_uid, data.st_gid,
		    AT_SYMLINK_NOFOLLOW);
}

int
spool_open(struct spool **spp, const struct spool_options *opt, char *err)
{
	struct spool *sp;
	int rc, r, dead;

	*spp = NULL;
	if (sodium_init() < 0) {
		ERR("libsodium failed to initialise");
		return SPOOL_ERR;
	}
	if (opt->dir == NULL || *opt->dir == '\0' ||
	    strlen(opt->dir) >= PATH_MAX) {
		ERR("spool: no directory given");
		return SPOOL_EINVAL;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL) {
		ERR("spool: out of memory");
		return SPOOL_ERR;
	}
	strcpy(sp->dir, opt->dir);
	sp->max_size = opt->max_size;	/* 0: as the writer recorded it */
	sp->window_ms = opt->dedup_window_ms;
	sp->psize = (unsigned)sysconf(_SC_PAGESIZE);
	sp->lockfd = -1;
	sp->fwdfd = -1;
	if (opt->key) {
		sp->encrypted = 1;
		memcpy(sp->key, opt->key, SPOOL_KEYLEN);
		crypto_generichash(sp->fpkey, sizeof(sp->fpkey),
		    (const unsigned char *)"ferry dedup fingerprint", 23,
		    sp->key, SPOOL_KEYLEN);
	}
	if ((r = spool_dir_ready(sp, opt->create, err)) != SPOOL_OK)
		goto fail;
	sp->map_size = map_size_for(sp);
	if ((rc = mdb_env_create(&sp->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(sp->env, 8)) != 0 ||
	    (rc = mdb_env_set_mapsize(sp->env, sp->map_size)) != 0) {
		r = spool_lmdb_fail(sp, rc, "creating the environment", err);
		goto fail;
	}
	if ((rc = mdb_env_open(sp->env, sp->dir, MDB_NOTLS, 0640)) != 0) {
		if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
			ERR("spool %s: data.mdb is not a readable LMDB file "
			    "(%s); left untouched", sp->dir, mdb_strerror(rc));
			r = SPOOL_EFORMAT;
		} else
			r = spool_lmdb_fail(sp, rc, "opening", err);
		goto fail;
	}
	own_like_data(sp, "lock.mdb");
	/* Reader slots of killed processes would pin pages forever. */
	mdb_reader_check(sp->env, &dead);
	if ((r = spool_attach(sp, opt->create, err)) != SPOOL_OK)
		goto fail;
	if (sp->max_size == 0 && (r = adopt_max_size(sp, err)) != SPOOL_OK)
		goto fail;
	*spp = sp;
	return SPOOL_OK;
fail:
	if (sp->env)
		mdb_env_close(sp->env);
	sodium_memzero(sp, sizeof(*sp));
	free(sp);
	return r;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	mdb_env_close(sp->env);
	dindex_free(&sp->dindex);
	if (sp->lockfd != -1)
		close(sp->lockfd);	/* releases writer.lock */
	if (sp->fwdfd != -1)
		close(sp->fwdfd);	/* releases forwarder.lock */
	sodium_memzero(sp, sizeof(*sp));
	free(sp);
}

/*
 * Sizes.
 */

/* Pages on LMDB's free list, walked in a short read transaction. */
static uint64_t
free_pages(struct spool *sp)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t n = 0;
	int rc;

	if (mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	if (mdb_cursor_open(txn, 0 /* FREE_DBI */, &c) == 0) {
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
			n += *(size_t *)v.mv_data;	/* IDL: count first */
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	return n;
}

uint64_t
spool_used_bytes(struct spool *sp)
{
	MDB_envinfo info;
	uint64_t hwm, fp;

	mdb_env_info(sp->env, &info);
	hwm = ((uint64_t)info.me_last_pgno + 1) * sp->psize;
	/* Below half the limit the free list cannot matter: skip the walk. */
	if (hwm < sp->max_size / 2)
		return hwm;
	fp = free_pages(sp) * sp->psize;
	return fp < hwm ? hwm - fp : 0;
}

/*
 * Reservation: written zeros after the data file's last page.
 *
 * While the spool grows, every commit otherwise extends data.mdb, and its
 * fdatasync must then also push the file's new size and blocks through the
 * filesystem's journal.  Commits that write into blocks the file already
 * has flush only their pages.  fallocate() does not do it (ext4 marks
 * such blocks unwritten and converts them, in the journal, on first write):
 * the zeros are written.
 *
 * Each piece is written under LMDB's writer lock (a write transaction,
 * aborted unchanged), so no writer in any process is placing a new page
 * past the old end meanwhile; each piece is written out to disk after the
 * lock is released.
 */
#define RESERVE_PIECE	(1u << 20)	/* bytes written per lock hold */

/* The end of the pages in use in *END; returns data.mdb's size, or 0. */
static uint64_t
reserve_state(struct spool *sp, int fd, uint64_t *end)
{
	MDB_envinfo info;
	struct stat st;

	mdb_env_info(sp->env, &info);
	*end = ((uint64_t)info.me_last_pgno + 1) * sp->psize;
	return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int
spool_reserve(struct spool *sp, uint64_t want, uint64_t *added, char *err)
{
	static const unsigned char zeros[64u << 10];
	struct iovec iov[RESERVE_PIECE / sizeof(zeros)];
	uint64_t end, size;
	int fd, rc;

	*added = 0;
	if ((rc = mdb_env_get_fd(sp->env, &fd)) != 0)
		return spool_lmdb_fail(sp, rc, "reserving", err);
	/* Refill only once half of it is used, not after every commit. */
	size = reserve_state(sp, fd, &end);
	if (size >= end + want / 2 || size >= sp->max_size)
		return SPOOL_OK;
	for (size_t i = 0; i < sizeof(iov) / sizeof(iov[0]); i++) {
		iov[i].iov_base = (void *)zeros;
		iov[i].iov_len = sizeof(zeros);
	}
	for (;;) {
		MDB_txn *txn;
		uint64_t goal, len;
		size_t niov;
		ssize_t n;
		int e;

		if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
			return spool_lmdb_fail(sp, rc, "reserving", err);
		size = reserve_state(sp, fd, &end);
		goal = end + want < sp->max_size ? end + want : sp->max_size;
		if (size == 0 || size >= goal) {
			mdb_txn_abort(txn);
			return SPOOL_OK;
		}
		len = goal - size < RESERVE_PIECE ? goal - size : RESERVE_PIECE;
		niov = (len + sizeof(zeros) - 1) / sizeof(zeros);
		iov[niov - 1].iov_len = len - (niov - 1) * sizeof(zeros);
		n = pwritev(fd, iov, (int)niov, (off_t)size);
		e = errno;
		iov[niov - 1].iov_len = sizeof(zeros);
		mdb_txn_abort(txn);
		errno = e;
		/*
		 * Write the piece out now, a piece at a time: left for the
		 * next commit's fdatasync, all of it would be that commit's
		 * to wait for.  The blocks' journal entry goes with the next
		 * commit; the zeros need no durability of their own.  Then
		 * drop the zeros from the page cache: it holds them in large
		 * folios, and a 4 KiB page LMDB writes into one would dirty,
		 * and have written back, all of it (measured: 10 times the
		 * bytes written per event).  Pages LMDB has written since are
		 * dirty or under writeback, and are not dropped.
		 */
		if (n == -1 || sync_file_range(fd, (off_t)size, n,
		    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
		    SYNC_FILE_RANGE_WAIT_AFTER) == -1) {
			ERR("spool %s: reserving space in data.mdb: %s",
			    sp->dir, strerror(errno));
			return errno == ENOSPC ? SPOOL_FULL : SPOOL_ERR;
		}
		(void)posix_fadvise(fd, (off_t)size, n, POSIX_FADV_DONTNEED);
		*added += (uint64_t)n;
	}
}

/* Estimated bytes an appended event takes, indexes included. */
static uint64_t
event_cost(const struct spool *sp, const struct spool_event *ev)
{
	uint64_t rec = record_size(ev, sp->encrypted) + 8 + 8;

	if (rec > sp->psize / 2)	/* an overflow page run of its own */
		rec = (rec + 16 + sp->psize - 1) / sp->psize * sp->psize;
	/* the dedup row: appended at the end of its tree, pages stay full */
	return rec + DEDUP_KEY + DEDUP_VAL + 16;
}

/*
 * Writing.
 */

_Static_assert(SPOOL_STREAM_MAX < 256, "a stream's length takes one byte");

void
spool_fingerprint(const struct spool *sp, struct spool_event *ev)
{
	crypto_generichash_state st;
	unsigned char len, tag;

	crypto_generichash_init(&st, sp->encrypted ? sp->fpkey : NULL,
	    sp->encrypted ? sizeof(sp->fpkey) : 0, SPOOL_IDLEN);
	/*
	 * The stream's length first (a name is at most SPOOL_STREAM_MAX < 256
	 * bytes), so that no stream, key or body can run into another:
	 * without it, stream "a" with key "kfoo" hashed the bytes of stream
	 * "ak" with key "foo", and one of the two was dropped as a duplicate.
	 * Spools made before keep hashing without it (meta "fingerprint"
	 * absent), so that their events keep their ids and a retry across
	 * the upgrade is still found.  The tag keeps "stream + key" apart
	 * from "stream + body".
	 */
	len = (unsigned char)ev->stream_len;
	if (sp->fp_framed)
		crypto_generichash_update(&st, &len, 1);
	crypto_generichash_update(&st, (const unsigned char *)ev->stream,
	    ev->stream_len);
	tag = ev->ikey_len ? 'k' : 'b';
	crypto_generichash_update(&st, &tag, 1);
	if (ev->ikey_len)
		crypto_generichash_update(&st, (const unsigned char *)ev->ikey,
		    ev->ikey_len);
	else
		crypto_generichash_update(&st, ev->body, ev->body_len);
	crypto_generichash_final(&st, ev->id, SPOOL_IDLEN);
}

/* The first 8 bytes of a fingerprint, as the in-memory index keys it. */
static uint64_t
fp_prefix(const unsigned char *id)
{
	uint64_t x;

	memcpy(&x, id, sizeof(x));
	return x;
}

/* Notes max_size in meta for readers that have no configuration. */
static int
record_max_size(struct spool *sp)
{
	MDB_txn *txn;
	uint64_t cur = 0;
	int rc;

	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return rc;
	if (spool_meta_get64(sp, txn, "max_size", &cur) == 0 &&
	    cur == sp->max_size) {
		mdb_txn_abort(txn);
		return 0;
	}
	if ((rc = meta_put64(sp, txn, "max_size", sp->max_size)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

/*
 * Takes the lock file NAME of the spool into *FD, held until the process
 * ends (the kernel releases it, kill -9 too); SPOOL_LOCKED with BUSY as
 * the message while another process holds it.
 */
static int
take_lock(struct spool *sp, const char *name, int *fd, const char *busy,
    char *err)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/%s", sp->dir, name);
	if ((*fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0640)) == -1) {
		ERR("spool %s: %s: %s", sp->dir, name, strerror(errno));
		return errno == EACCES ? SPOOL_EPERM : SPOOL_ERR;
	}
	own_like_data(sp, name);
	if (flock(*fd, LOCK_EX | LOCK_NB) == -1) {
		ERR("spool %s: %s (%s is held)", sp->dir, busy, name);
		close(*fd);
		*fd = -1;
		return SPOOL_LOCKED;
	}
	return SPOOL_OK;
}

int
spool_forwarder_lock(struct spool *sp, char *err)
{
	return take_lock(sp, "forwarder.lock", &sp->fwdfd, "another "
	    "ferry-forwarder drains this spool: one per spool", err);
}

/*
 * Becomes this spool's one writer process: takes writer.lock (released by
 * the kernel when the process dies, so kill -9 leaves nothing stale), then
 * loads the dedup index from the durable table in short read transactions.
 */
static int
writer_prepare(struct spool *sp, char *err)
{
	unsigned char last[DEDUP_KEY];
	int started = 0, rc;

	if ((rc = take_lock(sp, "writer.lock", &sp->lockfd, "another process "
	    "is appending to this spool: one ferry-agent per spool", err)) !=
	    SPOOL_OK)
		return rc;
	if ((rc = record_max_size(sp)) != 0)
		goto fail;
	for (;;) {
		MDB_txn *txn;
		MDB_cursor *c;
		MDB_val k, v;
		size_t n = 0;

		if ((rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, &txn)) != 0)
			break;
		if ((rc = mdb_cursor_open(txn, sp->dedup, &c)) != 0) {
			mdb_txn_abort(txn);
			break;
		}
		k = spool_mval(last, sizeof(last));
		rc = mdb_cursor_get(c, &k, &v, started ? MDB_SET_RANGE :
		    MDB_FIRST);
		if (rc == 0 && started && k.mv_size == sizeof(last) &&
		    memcmp(k.mv_data, last, sizeof(last)) == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		for (; rc == 0 && n < WALK_CHUNK; n++) {
			const unsigned char *kp = k.mv_data;

			/* A damaged row is spool_check's to report. */
			if (k.mv_size == DEDUP_KEY && dindex_put(&sp->dindex,
			    fp_prefix(kp + 8), record_get64(kp)) != 0) {
				rc = ENOMEM;
				break;
			}
			if (k.mv_size == DEDUP_KEY) {
				memcpy(last, kp, sizeof(last));
				started = 1;
			}
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(c);
		mdb_txn_abort(txn);
		if (rc != 0)
			break;
	}
	if (rc == MDB_NOTFOUND)
		return SPOOL_OK;
fail:
	dindex_free(&sp->dindex);
	flock(sp->lockfd, LOCK_UN);
	close(sp->lockfd);
	sp->lockfd = -1;
	return spool_lmdb_fail(sp, rc, "loading the dedup index", err);
}

int
spool_wbegin(struct spool *sp, struct spool_wtxn **wp, char *err)
{
	struct spool_wtxn *w;
	int rc;

	*wp = NULL;
	if (sp->lockfd == -1 && (rc = writer_prepare(sp, err)) != SPOOL_OK)
		return rc;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		ERR("spool %s: out of memory", sp->dir);
		return SPOOL_ERR;
	}
	w->sp = sp;
	w->used = spool_used_bytes(sp);
	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &w->txn)) != 0) {
		free(w);
		return spool_lmdb_fail(sp, rc, "beginning a write", err);
	}
	if ((rc = spool_meta_get64(sp, w->txn, "next_seq", &w->next_seq)) != 0) {
		mdb_txn_abort(w->txn);
		free(w);
		ERR("spool %s: damaged: next_seq unreadable (%s)", sp->dir,
		    mdb_strerror(rc));
		return SPOOL_CORRUPT;
	}
	w->first_next_seq = w->next_seq;
	*wp = w;
	return SPOOL_OK;
}

/* Remembers an index entry added in this txn, to take back on abort. */
static int
undo_push(struct spool_wtxn *w, uint64_t fp, uint64_t t)
{
	if (w->nundo == w->undocap) {
		size_t cap = w->undocap ? w->undocap * 2 : 64;
		struct undo *u = realloc(w->undo, cap * sizeof(*u));

		if (u == NULL)
			return ENOMEM;
		w->undo = u;
		w->undocap = cap;
	}
	w->undo[w->nundo].fp = fp;
	w->undo[w->nundo].t = t;
	w->nundo++;
	return 0;
}

/* Takes back the index entries added since entry FROM. */
static void
undo_to(struct spool_wtxn *w, size_t from)
{
	while (w->nundo > from) {
		w->nundo--;
		dindex_del(&w->sp->dindex, w->undo[w->nundo].fp,
		    w->undo[w->nundo].t);
	}
}

/*
 * Looks EV up among the fingerprints seen within the window: each prefix
 * match in the index is confirmed, and its seq read, from the durable row.
 * Returns 0 with *found set, or an LMDB error.
 */
static int
dedup_lookup(struct spool *sp, MDB_txn *txn, const struct spool_event *ev,
    uint64_t now, int *found, uint64_t *seq)
{
	unsigned char key[DEDUP_KEY];
	uint64_t fp = fp_prefix(ev->id), t;
	size_t iter = 0;
	MDB_val k, v;
	int rc;

	*found = 0;
	while ((t = dindex_next(&sp->dindex, fp, &iter)) != 0) {
		if (t + sp->window_ms <= now)
			continue;	/* seen, but long enough ago */
		record_put64(key, t);
		memcpy(key + 8, ev->id, SPOOL_IDLEN);
		k = spool_mval(key, sizeof(key));
		rc = mdb_get(txn, sp->dedup, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;	/* another fingerprint, same prefix */
		if (rc != 0)
			return rc;
		if (v.mv_size == DEDUP_VAL)
			*seq = record_get64(v.mv_data);
		*found = 1;
		return 0;
	}
	return 0;
}

#define WADD_FULL	(-30000)	/* wadd_one: max_size reached */

/*
 * Appends or deduplicates EV inside TXN; *dup tells which.  A duplicate
 * takes no room, so only an append is held to max_size: *NEED counts
 * what this group appended so far.
 */
static int
wadd_one(struct spool_wtxn *w, MDB_txn *txn, struct spool_event *ev,
    uint64_t now, int *dup, uint64_t *need)
{
	struct spool *sp = w->sp;
	MDB_val k, v;
	unsigned char seqb[8], dkey[DEDUP_KEY];
	uint64_t seq = 0;
	size_t size;
	int rc, found;

	*dup = 0;
	if (now == 0)
		now = 1;	/* 0 marks an empty slot of the index */
	if (sp->window_ms > 0) {
		if ((rc = dedup_lookup(sp, txn, ev, now, &found, &seq)) != 0)
			return rc;
		if (found) {
			ev->seq = seq;
			*dup = 1;
			return 0;
		}
	}
	if (w->used + w->added + *need + event_cost(sp, ev) > sp->max_size)
		return WADD_FULL;
	*need += event_cost(sp, ev);
	ev->seq = w->next_seq++;
	record_put64(seqb, ev->seq);
	k = spool_mval(seqb, 8);
	size = record_size(ev, sp->encrypted);
	v = spool_mval(NULL, size);
	/* APPEND: seq only grows, and an existing key is an error. */
	if ((rc = mdb_put(txn, sp->events, &k, &v,
	    MDB_APPEND | MDB_RESERVE)) != 0)
		return rc;
	record_encode(ev, sp->encrypted ? sp->key : NULL, v.mv_data);
	if (sp->window_ms == 0)
		return 0;
	record_put64(dkey, now);
	memcpy(dkey + 8, ev->id, SPOOL_IDLEN);
	k = spool_mval(dkey, sizeof(dkey));
	v = spool_mval(seqb, sizeof(seqb));
	if ((rc = mdb_put(txn, sp->dedup, &k, &v, 0)) != 0)
		return rc;
	if ((rc = undo_push(w, fp_prefix(ev->id), now)) != 0)
		return rc;
	if (dindex_put(&sp->dindex, fp_prefix(ev->id), now) != 0) {
		w->nundo--;
		return ENOMEM;
	}
	return 0;
}

int
spool_wadd(struct spool_wtxn *w, struct spool_event *evs, size_t n,
    int ids_set, uint64_t now_ms, int *dup, char *err)
{
	struct spool *sp = w->sp;
	MDB_txn *child;
	uint64_t need = 0, saved = w->next_seq;
	size_t undo_mark = w->nundo;
	int rc, r;

	for (size_t i = 0; i < n; i++) {
		if ((r = record_check_event(&evs[i], err)) != SPOOL_OK)
			return r;
		if (!ids_set)
			spool_fingerprint(sp, &evs[i]);
		if (sp->window_ms > 0)
			dindex_prefetch(&sp->dindex, fp_prefix(evs[i].id));
	}
	/* A nested transaction makes this group all or nothing. */
	if ((rc = mdb_txn_begin(sp->env, w->txn, 0, &child)) != 0)
		return spool_lmdb_fail(sp, rc, "beginning a nested write", err);
	for (size_t i = 0; i < n; i++)
		if ((rc = wadd_one(w, child, &evs[i], now_ms, &dup[i],
		    &need)) != 0)
			goto fail;
	if ((rc = mdb_txn_commit(child)) != 0) {
		undo_to(w, undo_mark);
		w->next_seq = saved;
		return spool_lmdb_fail(sp, rc, "appending", err);
	}
	w->added += need;
	return SPOOL_OK;
fail:
	mdb_txn_abort(child);
	undo_to(w, undo_mark);
	w->next_seq = saved;
	if (rc == WADD_FULL) {
		ERR("spool %s: full: %llu of max_size %llu bytes in use",
		    sp->dir, (unsigned long long)(w->used + w->added),
		    (unsigned long long)sp->max_size);
		return SPOOL_FULL;
	}
	return spool_lmdb_fail(sp, rc, "appending", err);
}

static void
wtxn_free(struct spool_wtxn *w)
{
	free(w->undo);
	free(w);
}

int
spool_wcommit(struct spool_wtxn *w, char *err)
{
	struct spool *sp = w->sp;
	int rc = 0;

	if (w->next_seq != w->first_next_seq)
		rc = meta_put64(sp, w->txn, "next_seq", w->next_seq);
	if (rc == 0)
		rc = mdb_txn_commit(w->txn);
	else
		mdb_txn_abort(w->txn);
	if (rc != 0)
		undo_to(w, 0);	/* the index must not outlive its rows */
	wtxn_free(w);
	return rc ? spool_lmdb_fail(sp, rc, "committing", err) : SPOOL_OK;
}

void
spool_wabort(struct spool_wtxn *w)
{
	if (w == NULL)
		return;
	mdb_txn_abort(w->txn);
	undo_to(w, 0);
	wtxn_free(w);
}

int
spool_dedup_expire(struct spool_wtxn *w, uint64_t now_ms, size_t max,
    size_t *removed, char *err)
{
	struct spool *sp = w->sp;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t t;
	size_t n = 0;
	int rc;

	*removed = 0;
	if (sp->window_ms == 0)
		return SPOOL_OK;
	if ((rc = mdb_cursor_open(w->txn, sp->dedup, &c)) != 0)
		return spool_lmdb_fail(sp, rc, "expiring dedup entries", err);
	while (n < max && (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size != DEDUP_KEY)
			break;
		t = record_get64(k.mv_data);
		if (t + sp->window_ms > now_ms)
			break;
		/*
		 * The index entry goes now, even if this txn aborts: the
		 * row is expired, so it could never match again anyway.
		 */
		dindex_del(&sp->dindex, fp_prefix((unsigned char *)k.mv_data +
		    8), t);
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		n++;
	}
	mdb_cursor_close(c);
	*removed = n;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return spool_lmdb_fail(sp, rc, "expiring dedup entries", err);
	return SPOOL_OK;
}

int
spool_append(struct spool *sp, struct spool_event *evs, size_t n,
    uint64_t now_ms, int *dup, char *err)
{
	struct spool_wtxn *w;
	int r;

	if ((r = spool_wbegin(sp, &w, err)) != SPOOL_OK)
		return r;
	if ((r = spool_wadd(w, evs, n, 0, now_ms, dup, err)) != SPOOL_OK) {
		spool_wabort(w);
		return r;
	}
	return spool_wcommit(w, err);
}
