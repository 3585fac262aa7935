/*
 * sink_avro.c: the avro-files sink: Avro object container files, one per
 * stream and roll, published by an atomic rename with their range of
 * sequence numbers in the name.
 *
 * Files.  A stream has at most one open file, DIR/.STREAM.FIRST.avro.tmp,
 * to which its events are appended in seq order.  The file is rolled
 * (published) when the next event would take it past roll_size, when it
 * holds roll_count events, or when its first event is roll_interval old:
 * blocks written, fsync, rename to DIR/STREAM.FIRST-LAST.avro (20-digit
 * zero-padded seqs), fsync of DIR.  Only then may the stream's next file
 * be created.  The header carries the schema text as configured (avro-c's
 * own rendering drops logicalType, doc and default).
 *
 * Blocks.  An event, encoded by avroenc_value(), goes into the file's
 * current block, which is sealed before an event would overflow it (64
 * KiB; an event larger than that rolls the file and starts one whose
 * blocks fit it).  With codec null or deflate we write the blocks
 * (avroblk.c), and the events into them through one avro-c memory writer
 * (avroenc_binary() would allocate one an event: 10% of the drain's CPU
 * with codec null), except envelopes, which avroenc_envelope() writes
 * into the block itself.  A sealed block is deflated, at deflate_level, by a
 * pool of compress_threads threads (with fewer than 2, at once, here);
 * the blocks of all files are written, by the drain thread only, in the
 * order they were sealed, so a file's blocks land in order; at most 2 x
 * compress_threads wait.  A block not yet written counts against
 * roll_size at the most it can take, and near roll_size the file's blocks
 * are waited for.  With snappy avro-c's file writer writes the blocks: its
 * header is rewritten with our schema text, keeping its sync marker,
 * before any block, and each block is flushed by us before it would
 * overflow avro-c's buffer, so that the size of the file is known (fstat)
 * after each one.
 *
 * Exactly once.
 * 1. A stream's published files hold, without overlap, a prefix of its
 *    events in the spool: they are created one after the other, each
 *    published before the next exists, and the spool never changes an
 *    event or its seq.  So every event of stream S with seq <= the
 *    highest LAST among S's published names is in a published file.
 * 2. A name appears only once its file is complete and fsynced; rename is
 *    atomic.  After a crash a file is whole under its final name or lies
 *    under its hidden in-progress name.
 * 3. poll() reports delivered = (lowest FIRST of the open files, and of
 *    renamed files whose directory fsync failed) - 1, or with none the
 *    highest seq sent: the cursor never passes an event that is not in a
 *    durable published file (or refused for good and reported dead()).
 * 4. recover() deletes every in-progress file (their events are after the
 *    cursor, by 3, so they are sent again) and notes each stream's highest
 *    LAST; send() skips an event at or below it (by 1 it is published, so
 *    writing it would duplicate it) and writes every other one (so nothing
 *    after the cursor is missing).  Neither a gap nor a duplicate.
 * The same skip, against the last seq of the open file, makes a REWIND
 * harmless for the streams whose files are intact.
 *
 * Errors.  A failed write, flush, fsync or compression (out of memory)
 * leaves a file whose content is unknown: it is discarded (deleted, its
 * blocks still in the pool dropped), send() refuses with SINK_FULL until
 * poll() has returned SINK_REWIND, and the loop resends from its cursor,
 * which is below the discarded file's first event by 3.  The failure of a
 * block may come to light while another stream's event is sent: that send
 * fails too, untaken.  A failure to create a file loses nothing (the
 * event is not taken): SINK_DOWN.  An event that does not fit its
 * stream's schema is reported through dead() at the next poll(), before
 * delivered passes it.
 * Operators: moving the cursor back replays nothing into files that
 * already hold those events; move those files out of DIR first.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <avro.h>

#include "avroblk.h"
#include "avroenc.h"
#include "conf.h"
#include "daemon.h"
#include "sink.h"
#include "spool.h"

#define SEQ_DIGITS	20
#define TMP_SUFFIX	".avro.tmp"
#define NAME_MAX_LEN	(SPOOL_STREAM_MAX + 2 * SEQ_DIGITS + 16)
#define NONE		UINT64_MAX

_Static_assert(AVROENC_ERRMAX <= SINK_ERRMAX, "error buffers");

struct file {
	avro_file_writer_t	 w;		/* snappy: avro-c's writer */
	FILE			*fp;		/* snappy: avro-c writes here */
	int			 fd;
	char			 tmp[NAME_MAX_LEN];	/* in dir */
	unsigned char		 sync[AVROBLK_SYNC];
	struct avroblk		*cur;		/* null, deflate: the block
						   being filled */
	size_t			 block_cap;
	size_t			 pending;	/* bytes in the current block */
	uint64_t		 disk;		/* bytes written to the file */
	uint64_t		 queued;	/* the most the sealed blocks
						   not yet written can take */
	uint64_t		 ticket;	/* of its last sealed block */
	uint64_t		 first, last, count;
	uint64_t		 born_ms;	/* monotonic, first event */
};

struct stream {
	char		 name[SPOOL_STREAM_MAX + 1];
	size_t		 len;
	int		 envelope;	/* no schema: avroenc_envelope() */
	uint64_t	 published;	/* highest LAST published */
	struct file	*f;		/* the open file, or NULL */
};

struct dead {
	uint64_t	 seq;
	char		*reason;
};

struct sink_avro {
	char			*dir;
	int			 dirfd;
	char			*codec;
	struct avroblk_queue	*q;	/* null, deflate; NULL for snappy */
	uint64_t		 roll_size, roll_ms, roll_count;
	struct avroenc		*ae;
	avro_writer_t		 wr;	/* null, deflate: into a block */
	struct stream		*st;
	size_t			 nst;
	uint64_t		 sent;	/* highest seq taken or skipped */
	uint64_t		 delivered;	/* as last reported */
	uint64_t		 unsynced;	/* lowest FIRST renamed while
						   the dir is not fsynced, or
						   NONE */
	int			 rewind;	/* a file was discarded */
	struct dead		*dead;
	size_t			 ndead;
};

static int
sys_err(struct sink_avro *s, const char *name, const char *what, char *err)
{
	snprintf(err, SINK_ERRMAX, "avro: %s/%s: %s: %s", s->dir, name, what,
	    strerror(errno));
	return SINK_DOWN;
}

static int
add_dead(struct sink_avro *s, uint64_t seq, const char *reason, char *err)
{
	struct dead	*d;

	if ((d = reallocarray(s->dead, s->ndead + 1, sizeof(*d))) == NULL)
		goto nomem;
	s->dead = d;
	if ((d[s->ndead].reason = strdup(reason)) == NULL)
		goto nomem;
	d[s->ndead++].seq = seq;
	return SINK_OK;
nomem:
	snprintf(err, SINK_ERRMAX, "avro: out of memory");
	return SINK_DOWN;
}

static void
report_dead(struct sink_avro *s, sink_dead_fn dead, void *arg)
{
	for (size_t i = 0; i < s->ndead; i++) {
		dead(s->dead[i].seq, s->dead[i].reason, arg);
		free(s->dead[i].reason);
	}
	s->ndead = 0;
}

static struct stream *
stream_get(struct sink_avro *s, const char *name, size_t len)
{
	struct stream	*st;

	for (size_t i = 0; i < s->nst; i++)
		if (s->st[i].len == len &&
		    memcmp(s->st[i].name, name, len) == 0)
			return &s->st[i];
	if ((st = reallocarray(s->st, s->nst + 1, sizeof(*st))) == NULL)
		return NULL;
	s->st = st;
	st = &s->st[s->nst++];
	memset(st, 0, sizeof(*st));
	memcpy(st->name, name, len);
	st->len = len;
	st->envelope = avroenc_is_envelope(s->ae, name, len);
	return st;
}

static int
write_all(int fd, const unsigned char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The most LEN bytes of objects can take in the file as a block. */
static uint64_t
block_bound(struct sink_avro *s, size_t len)
{
	if (s->q != NULL)
		return avroblk_bound(s->q, len);
	/* Snappy: its MaxCompressedLength, the CRC32, count, size, sync. */
	return 32 + len + len / 6 + 4 + 20 + AVROBLK_SYNC;
}

/*
 * Writes F's header: the schema TEXT and F's sync marker.  It truncates
 * first, for with snappy avro-c wrote a header of its own (and F->fp
 * flushed it).  The fd is O_APPEND: after the truncation every write
 * lands at the end.
 */
static int
write_header(struct sink_avro *s, struct file *f, const char *text,
    size_t tlen)
{
	unsigned char	*h;
	size_t		 len;
	int		 rc = -1;

	if ((h = avroblk_header(s->codec, text, tlen, f->sync, &len)) == NULL)
		return -1;
	if (ftruncate(f->fd, 0) == 0 && write_all(f->fd, h, len) == 0) {
		f->disk = len;
		rc = 0;
	}
	free(h);
	return rc;
}

/* Snappy: F takes the sync marker of avro-c's header, its last 16 bytes. */
static int
avroc_sync(struct file *f)
{
	unsigned char	magic[4];
	struct stat	sb;

	errno = 0;
	if (fstat(f->fd, &sb) == -1 || sb.st_size < 4 + AVROBLK_SYNC ||
	    pread(f->fd, magic, 4, 0) != 4 || memcmp(magic, "Obj\1", 4) != 0 ||
	    pread(f->fd, f->sync, AVROBLK_SYNC, sb.st_size - AVROBLK_SYNC) !=
	    AVROBLK_SYNC) {
		if (errno == 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

/* Closes F's descriptor (and avro-c's writer); -1 with errno on failure. */
static int
file_close(struct file *f)
{
	int	rc = 0;

	if (f->w != NULL) {
		avro_file_writer_close(f->w);
		f->w = NULL;
	}
	if (f->fp != NULL)
		rc = fclose(f->fp);
	else if (f->fd != -1)
		rc = close(f->fd);
	f->fp = NULL;
	f->fd = -1;
	return rc;
}

static void
file_free(struct sink_avro *s, struct file *f)
{
	if (f->cur != NULL)
		avroblk_put(s->q, f->cur);
	free(f);
}

/*
 * Closes F without publishing it: what it holds goes to /dev/null, and
 * its blocks still in the pool are dropped once done.
 */
static void
file_drop(struct sink_avro *s, struct file *f)
{
	int	nfd;

	if (f->w != NULL) {
		/* avro-c's close flushes, and leaks if that fails. */
		if ((nfd = open("/dev/null", O_WRONLY | O_CLOEXEC)) != -1) {
			dup2(nfd, f->fd);
			close(nfd);
		}
		clearerr(f->fp);
	}
	if (s->q != NULL)
		avroblk_drop(s->q, f);
	file_close(f);
	unlinkat(s->dirfd, f->tmp, 0);
	file_free(s, f);
}

/* Discards ST's open file after an I/O error; poll() will ask a rewind. */
static void
discard(struct sink_avro *s, struct stream *st)
{
	file_drop(s, st->f);
	st->f = NULL;
	s->rewind = 1;
	s->sent = s->delivered;
}

/* Appends B, from the queue, to its file; discards the file on failure. */
static int
block_write(struct sink_avro *s, struct avroblk *b, char *err)
{
	struct file		*f = b->owner;
	const unsigned char	*p;
	size_t			 len, i;
	int			 rc;

	if ((errno = avroblk_frame(s->q, b, f->sync, &p, &len)) != 0)
		rc = sys_err(s, f->tmp, "deflate", err);
	else if (write_all(f->fd, p, len) == -1)
		rc = sys_err(s, f->tmp, "write", err);
	else {
		f->disk += len;
		f->queued -= block_bound(s, b->len);
		return SINK_OK;
	}
	for (i = 0; i < s->nst; i++)	/* F is the open file of one */
		if (s->st[i].f == f)
			discard(s, &s->st[i]);
	return rc;
}

/*
 * Writes the compressed blocks at the head of the queue, in the order
 * they were sealed, waiting for those up to ticket UPTO.  A failing
 * block's file is discarded and the others' blocks still written: returns
 * SINK_OK or the first failure, which may be another stream's.
 */
static int
reap(struct sink_avro *s, uint64_t upto, char *err)
{
	struct avroblk	*b;
	char		 other[SINK_ERRMAX];
	int		 rc = SINK_OK;

	if (s->q == NULL)
		return SINK_OK;
	while ((b = avroblk_next(s->q, upto)) != NULL) {
		if (b->owner != NULL && block_write(s, b, rc == SINK_OK ? err :
		    other) != SINK_OK)
			rc = SINK_DOWN;
		avroblk_put(s->q, b);
	}
	return rc;
}

/* Snappy: avro-c's writer on F, whose sync marker F keeps. */
static int
avroc_open(struct sink_avro *s, struct stream *st, struct file *f,
    char *err)
{
	if ((f->fp = fdopen(f->fd, "a")) == NULL)
		return sys_err(s, f->tmp, "fdopen", err);
	if (avro_file_writer_create_with_codec_fp(f->fp, f->tmp, 0,
	    avroenc_schema(s->ae, st->name, st->len), &f->w, s->codec,
	    f->block_cap) != 0) {
		f->w = NULL;
		snprintf(err, SINK_ERRMAX, "avro: %s/%s: %s", s->dir, f->tmp,
		    avro_strerror());
		return SINK_DOWN;
	}
	if (fflush(f->fp) != 0 || avroc_sync(f) == -1)
		return sys_err(s, f->tmp, "writing the header", err);
	return SINK_OK;
}

static int
file_open(struct sink_avro *s, struct stream *st, uint64_t first,
    size_t block, char *err)
{
	struct file	*f;
	const char	*text;
	size_t		 tlen;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		snprintf(err, SINK_ERRMAX, "avro: out of memory");
		return SINK_DOWN;
	}
	f->fd = -1;
	snprintf(f->tmp, sizeof(f->tmp), ".%s.%0*" PRIu64 TMP_SUFFIX,
	    st->name, SEQ_DIGITS, first);
	f->first = f->last = first;
	f->block_cap = block;
	text = avroenc_schema_text(s->ae, st->name, st->len, &tlen);
	if ((f->fd = openat(s->dirfd, f->tmp, O_RDWR | O_CREAT | O_TRUNC |
	    O_APPEND | O_CLOEXEC, 0640)) == -1) {
		sys_err(s, f->tmp, "create", err);
		goto fail;
	}
	if (s->q == NULL) {
		if (avroc_open(s, st, f, err) != SINK_OK)
			goto fail;
	} else if ((f->cur = avroblk_get(s->q, block)) == NULL) {
		snprintf(err, SINK_ERRMAX, "avro: out of memory");
		goto fail;
	} else
		arc4random_buf(f->sync, sizeof(f->sync));
	if (write_header(s, f, text, tlen) == -1) {
		sys_err(s, f->tmp, "writing the header", err);
		goto fail;
	}
	st->f = f;
	return SINK_OK;
fail:
	file_drop(s, f);
	return SINK_DOWN;
}

/* Snappy: has avro-c write its block, then learns the size of the file. */
static int
avroc_flush(struct sink_avro *s, struct stream *st, char *err)
{
	struct file	*f = st->f;
	struct stat	 sb;
	int		 rc;

	errno = 0;
	if (avro_file_writer_flush(f->w) != 0 || ferror(f->fp) ||
	    fflush(f->fp) != 0) {
		if (errno == 0)
			errno = EIO;
		rc = sys_err(s, f->tmp, "write", err);
	} else if (fstat(f->fd, &sb) == -1)
		rc = sys_err(s, f->tmp, "fstat", err);
	else {
		f->disk = (uint64_t)sb.st_size;
		f->pending = 0;
		return SINK_OK;
	}
	discard(s, st);
	return rc;
}

/*
 * Ends ST's current block: sealed, to be compressed and written in turn
 * (with snappy, written now).  A failure discards the file that failed,
 * ST's or, writing the blocks that are done, another stream's.
 */
static int
file_seal(struct sink_avro *s, struct stream *st, char *err)
{
	struct file	*f = st->f;
	struct avroblk	*b = f->cur;

	if (s->q == NULL)
		return avroc_flush(s, st, err);
	if (b->count == 0)
		return SINK_OK;
	if ((f->cur = avroblk_get(s->q, f->block_cap)) == NULL) {
		f->cur = b;	/* nothing lost: the event is not taken */
		snprintf(err, SINK_ERRMAX, "avro: out of memory");
		return SINK_DOWN;
	}
	f->queued += block_bound(s, b->len);
	f->pending = 0;
	f->ticket = avroblk_seal(s->q, b, f);
	return reap(s, 0, err);
}

/*
 * Publishes ST's open file: its blocks written, fsync, rename, fsync of
 * the directory.  A failure before the rename discards the file; after
 * it, the file stands and only the directory fsync is retried, by poll().
 */
static int
publish(struct sink_avro *s, struct stream *st, char *err)
{
	struct file	*f = st->f;
	char		 name[NAME_MAX_LEN];
	int		 rc;

	if ((rc = file_seal(s, st, err)) != SINK_OK ||
	    (rc = reap(s, f->ticket, err)) != SINK_OK)
		return rc;
	if (fsync(f->fd) == -1) {
		rc = sys_err(s, f->tmp, "fsync", err);
		goto discard;
	}
	if (file_close(f) != 0) {
		rc = sys_err(s, f->tmp, "close", err);
		goto discard;
	}
	snprintf(name, sizeof(name), "%s.%0*" PRIu64 "-%0*" PRIu64 ".avro",
	    st->name, SEQ_DIGITS, f->first, SEQ_DIGITS, f->last);
	if (renameat(s->dirfd, f->tmp, s->dirfd, name) == -1) {
		rc = sys_err(s, name, "rename", err);
		goto discard;
	}
	st->published = f->last;
	st->f = NULL;
	rc = SINK_OK;
	if (fsync(s->dirfd) == -1) {
		if (f->first < s->unsynced)
			s->unsynced = f->first;
		rc = sys_err(s, ".", "fsync", err);
	}
	file_free(s, f);
	return rc;
discard:
	discard(s, st);
	return rc;
}

static void avro_close(void *);

static void *
avro_open(const struct conf *c, const struct conf_sink *cs, char *err)
{
	struct sink_avro	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, SINK_ERRMAX, "avro: out of memory");
		return NULL;
	}
	s->dirfd = -1;
	s->unsynced = NONE;
	if ((s->dir = strdup(cs->dir)) == NULL ||
	    (s->codec = strdup(cs->codec != NULL ? cs->codec : "deflate")) ==
	    NULL || (s->wr = avro_writer_memory("", 0)) == NULL) {
		snprintf(err, SINK_ERRMAX, "avro: out of memory");
		goto fail;
	}
	if (strcmp(s->codec, "lzma") == 0) {
		/* avro-c's "lzma" is not the spec's "xz": Java, Python refuse. */
		snprintf(err, SINK_ERRMAX, "avro: codec lzma: avro-c's lzma "
		    "files are readable only by avro-c; use deflate or snappy");
		goto fail;
	}
	if (strcmp(s->codec, "null") != 0 && strcmp(s->codec, "deflate") != 0
	    && strcmp(s->codec, "snappy") != 0) {
		snprintf(err, SINK_ERRMAX, "avro: codec %s: use null, deflate "
		    "or snappy", s->codec);
		goto fail;
	}
	if (strcmp(s->codec, "snappy") != 0 && (s->q = avroblk_queue_new(
	    strcmp(s->codec, "deflate") == 0, (int)cs->deflate_level,
	    (long)cs->compress_threads, err)) == NULL)
		goto fail;
	s->roll_size = cs->roll_size;
	s->roll_ms = cs->roll_interval_ms;
	s->roll_count = cs->roll_count;
	if ((s->ae = avroenc_new(c, err)) == NULL)
		goto fail;
	if (mkdir(s->dir, 0750) == -1 && errno != EEXIST) {
		snprintf(err, SINK_ERRMAX, "avro: %s: %s", s->dir,
		    strerror(errno));
		goto fail;
	}
	if ((s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1) {
		snprintf(err, SINK_ERRMAX, "avro: %s: %s", s->dir,
		    strerror(errno));
		goto fail;
	}
	return s;
fail:
	avro_close(s);
	return NULL;
}

/* NAME is STREAM.FIRST-LAST.avro: *st gets STREAM's length, *last LAST. */
static int
published_name(const char *name, size_t *stlen, uint64_t *last)
{
	size_t	len = strlen(name), tail = 1 + SEQ_DIGITS * 2 + 1 + 5;

	if (len <= tail || strcmp(name + len - 5, ".avro") != 0 ||
	    name[len - tail] != '.' || name[len - 5 - SEQ_DIGITS - 1] != '-')
		return 0;
	for (size_t i = len - tail + 1; i < len - 5; i++)
		if (i != len - 5 - SEQ_DIGITS - 1 &&
		    (name[i] < '0' || name[i] > '9'))
			return 0;
	*stlen = len - tail;
	*last = strtoull(name + len - 5 - SEQ_DIGITS, NULL, 10);
	return spool_stream_name_ok(name, *stlen);
}

static int
avro_recover(void *sink, uint64_t cursor, char *err)
{
	struct sink_avro	*s = sink;
	struct stream		*st;
	struct dirent		*de;
	DIR			*d;
	size_t			 len, stlen;
	uint64_t		 last;
	int			 fd;

	if ((fd = dup(s->dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return sys_err(s, ".", "opendir", err);
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' && len > strlen(TMP_SUFFIX) &&
		    strcmp(de->d_name + len - strlen(TMP_SUFFIX), TMP_SUFFIX)
		    == 0) {
			if (unlinkat(s->dirfd, de->d_name, 0) == -1) {
				sys_err(s, de->d_name, "unlink", err);
				closedir(d);
				return SINK_DOWN;
			}
		} else if (published_name(de->d_name, &stlen, &last)) {
			if ((st = stream_get(s, de->d_name, stlen)) == NULL) {
				closedir(d);
				snprintf(err, SINK_ERRMAX, "avro: no memory");
				return SINK_DOWN;
			}
			if (last > st->published)
				st->published = last;
		}
	}
	if (errno != 0) {
		sys_err(s, ".", "readdir", err);
		closedir(d);
		return SINK_DOWN;
	}
	closedir(d);
	if (fsync(s->dirfd) == -1)
		return sys_err(s, ".", "fsync", err);
	s->sent = s->delivered = cursor;
	return SINK_OK;
}

/* The size F would reach if it took an event of SIZE bytes. */
static uint64_t
size_with(struct sink_avro *s, const struct file *f, size_t size)
{
	if (f->pending + size <= f->block_cap)
		return f->disk + f->queued + block_bound(s, f->pending + size);
	/* The current block is sealed first: SIZE starts the next one. */
	return f->disk + f->queued + block_bound(s, f->pending) +
	    block_bound(s, size);
}

/* Whether F must be published before it takes an event of SIZE. */
static int
roll_due(struct sink_avro *s, const struct file *f, size_t size,
    uint64_t now)
{
	if (f->count == 0)
		return 0;
	return (s->roll_count > 0 && f->count >= s->roll_count) ||
	    size > f->block_cap || size_with(s, f, size) > s->roll_size ||
	    now - f->born_ms >= s->roll_ms;
}

/*
 * Appends the event, SIZE bytes in Avro binary, to ST's open file (creating
 * it first): V when not NULL, else EV as an envelope encoded by ferry
 * (blocks only, see avro_send).
 */
static int
append(struct sink_avro *s, struct stream *st, const struct spool_event *ev,
    avro_value_t *v, size_t size, char *err)
{
	uint64_t	 seq = ev->seq;
	uint64_t	 now = clock_mono_ms();
	struct file	*f;
	struct avroblk	*b;
	int		 rc;

	/* Near roll_size, learn what the blocks in flight take on disk. */
	if (st->f != NULL && st->f->queued > 0 &&
	    size_with(s, st->f, size) > s->roll_size &&
	    (rc = reap(s, st->f->ticket, err)) != SINK_OK)
		return rc;
	if (st->f != NULL && roll_due(s, st->f, size, now) &&
	    (rc = publish(s, st, err)) != SINK_OK)
		return rc;
	if (st->f == NULL && (rc = file_open(s, st, seq, size > AVROBLK_MIN ?
	    size : AVROBLK_MIN, err)) != SINK_OK)
		return rc;
	if (st->f->pending + size > st->f->block_cap &&
	    (rc = file_seal(s, st, err)) != SINK_OK)
		return rc;
	f = st->f;
	if ((b = f->cur) != NULL && v == NULL) {
		avroenc_envelope(ev, b->data + b->len);
		b->len += size;
		b->count++;
	} else if (b != NULL) {
		/* One writer, aimed at the block: no copy, no allocation. */
		avro_writer_memory_set_dest(s->wr, (char *)b->data + b->len,
		    (int64_t)size);
		if (avro_value_write(s->wr, v) != 0) {
			snprintf(err, SINK_ERRMAX, "avro: %s", avro_strerror());
			return SINK_DOWN;	/* not taken, block intact */
		}
		b->len += size;
		b->count++;
	} else if (avro_file_writer_append_value(f->w, v) != 0) {
		snprintf(err, SINK_ERRMAX, "avro: %s/%s: %s", s->dir, f->tmp,
		    avro_strerror());
		discard(s, st);
		return SINK_DOWN;
	}
	if (f->count++ == 0)
		f->born_ms = now;
	f->last = seq;
	f->pending += size;
	if (s->roll_count > 0 && f->count >= s->roll_count)
		return publish(s, st, err);
	return SINK_OK;
}

static int
avro_send(void *sink, const struct spool_event *ev, char *err)
{
	struct sink_avro	*s = sink;
	struct stream		*st;
	avro_value_t		 v;
	char			 msg[AVROENC_ERRMAX];
	size_t			 size;
	int			 rc;

	if (s->rewind) {
		snprintf(err, SINK_ERRMAX, "avro: rewinding after a discarded "
		    "file");
		return SINK_FULL;
	}
	if (!spool_stream_name_ok(ev->stream, ev->stream_len)) {
		if ((rc = add_dead(s, ev->seq, "stream name unfit for a file "
		    "name", err)) == SINK_OK)
			s->sent = ev->seq;
		return rc;
	}
	if ((st = stream_get(s, ev->stream, ev->stream_len)) == NULL) {
		snprintf(err, SINK_ERRMAX, "avro: out of memory");
		return SINK_DOWN;
	}
	if (ev->seq <= (st->f != NULL ? st->f->last : st->published)) {
		s->sent = ev->seq;	/* already in a file */
		return SINK_OK;
	}
	/* Envelopes into blocks are ferry's to encode (avroenc_envelope). */
	if (s->q != NULL && st->envelope) {
		if ((rc = append(s, st, ev, NULL, avroenc_envelope_size(ev),
		    err)) != SINK_OK)
			return rc;
		s->sent = ev->seq;
		return SINK_OK;
	}
	switch (avroenc_value(s->ae, ev, &v, msg)) {
	case AVROENC_OK:
		break;
	case AVROENC_EINVAL:
		if ((rc = add_dead(s, ev->seq, msg, err)) == SINK_OK)
			s->sent = ev->seq;
		return rc;
	default:
		snprintf(err, SINK_ERRMAX, "%s", msg);
		return SINK_DOWN;
	}
	if (avro_value_sizeof(&v, &size) != 0) {
		snprintf(err, SINK_ERRMAX, "avro: %s", avro_strerror());
		return SINK_DOWN;
	}
	if ((rc = append(s, st, ev, &v, size, err)) != SINK_OK)
		return rc;
	s->sent = ev->seq;
	return SINK_OK;
}

/* Sets *delivered per the contract in sink.h (never lower than before). */
static void
watermark(struct sink_avro *s, uint64_t *delivered)
{
	uint64_t	low = s->unsynced, d;

	for (size_t i = 0; i < s->nst; i++)
		if (s->st[i].f != NULL && s->st[i].f->first < low)
			low = s->st[i].f->first;
	d = low != NONE ? low - 1 : s->sent;
	if (d > s->delivered)
		s->delivered = d;
	*delivered = s->delivered;
}

/* Retries the directory fsync a failed one left owing. */
static int
dir_sync(struct sink_avro *s, char *err)
{
	if (s->unsynced == NONE)
		return SINK_OK;
	if (fsync(s->dirfd) == -1)
		return sys_err(s, ".", "fsync", err);
	s->unsynced = NONE;
	return SINK_OK;
}

/* Publishes the files due by age at NOW (all of them when ALL). */
static int
publish_due(struct sink_avro *s, uint64_t now, int all, char *err)
{
	int	rc = SINK_OK, r;

	for (size_t i = 0; i < s->nst; i++)
		if (s->st[i].f != NULL && (all ||
		    now - s->st[i].f->born_ms >= s->roll_ms) &&
		    (r = publish(s, &s->st[i], err)) != SINK_OK)
			rc = r;
	return rc;
}

/* Sleeps up to TIMEOUT_MS, waking when the oldest open file is due. */
static void
wait_due(struct sink_avro *s, int timeout_ms)
{
	uint64_t	 now = clock_mono_ms(), due;
	uint64_t	 until = now + (uint64_t)timeout_ms;
	struct timespec	 ts;

	for (size_t i = 0; i < s->nst; i++)
		if (s->st[i].f != NULL &&
		    (due = s->st[i].f->born_ms + s->roll_ms) < until)
			until = due > now ? due : now;
	if (until <= now)
		return;
	ts.tv_sec = (time_t)((until - now) / 1000);
	ts.tv_nsec = (long)((until - now) % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
avro_poll(void *sink, int timeout_ms, uint64_t *delivered, sink_dead_fn dead,
    void *arg, char *err)
{
	struct sink_avro	*s = sink;
	int			 rc;

	report_dead(s, dead, arg);
	if (s->rewind) {
		s->rewind = 0;
		watermark(s, delivered);
		snprintf(err, SINK_ERRMAX, "avro: an in-progress file was "
		    "discarded after an error");
		return SINK_REWIND;
	}
	if (timeout_ms > 0)
		wait_due(s, timeout_ms);
	/* Blocks compressed meanwhile are written (a failure: rewind next). */
	if ((rc = reap(s, 0, err)) == SINK_OK &&
	    (rc = dir_sync(s, err)) == SINK_OK)
		rc = publish_due(s, clock_mono_ms(), 0, err);
	watermark(s, delivered);
	return rc;
}

static int
avro_flush(void *sink, int timeout_ms, uint64_t *delivered, sink_dead_fn dead,
    void *arg, char *err)
{
	struct sink_avro	*s = sink;
	int			 rc;

	(void)timeout_ms;	/* nothing here waits on a peer */
	report_dead(s, dead, arg);
	rc = publish_due(s, clock_mono_ms(), 1, err);
	if (rc == SINK_OK)
		rc = dir_sync(s, err);
	watermark(s, delivered);
	return rc;
}

static void
avro_close(void *sink)
{
	struct sink_avro	*s = sink;

	for (size_t i = 0; i < s->nst; i++)
		if (s->st[i].f != NULL)
			file_drop(s, s->st[i].f);
	avroblk_queue_free(s->q);
	for (size_t i = 0; i < s->ndead; i++)
		free(s->dead[i].reason);
	free(s->dead);
	free(s->st);
	if (s->dirfd != -1)
		close(s->dirfd);
	avroenc_free(s->ae);
	if (s->wr != NULL)
		avro_writer_free(s->wr);
	free(s->codec);
	free(s->dir);
	free(s);
}

const struct sink_ops sink_avro_ops = {
	.type = "avro-files",
	.open = avro_open,
	.recover = avro_recover,
	.send = avro_send,
	.poll = avro_poll,
	.flush = avro_flush,
	.close = avro_close,
};
