/*
 * avroblk.h: Avro object container files for the avro-files sink
 * (sink_avro.c): their header, and their blocks with codec null or
 * deflate, framed as the spec has them, compressed by a pool of threads,
 * handed back in sealing order.
 *
 * The sink fills a block with serialized objects, seals it, and later
 * takes it back from avroblk_next() once compressed, in the order blocks
 * were sealed in the queue (across all of its files), to write it.  With
 * deflate (raw RFC 1951, no zlib header or checksum) a pool of threads
 * compresses sealed blocks; without threads avroblk_seal() does.  At most
 * 2 x threads sealed blocks wait in the queue: memory is bounded.
 *
 * Threads: every function is for one thread, the sink's drain thread.
 * The pool's threads touch only the blocks sealed, until they are done.
 */
#ifndef FERRY_AVROBLK_H
#define FERRY_AVROBLK_H

#include <stddef.h>
#include <stdint.h>

#define AVROBLK_SYNC	16	/* bytes of a sync marker */
#define AVROBLK_MIN	(64 * 1024)	/* objects' bytes of a block */

/*
 * A block.  The sink appends objects at data + len (up to cap) and counts
 * them; avroblk.c owns the rest.
 */
struct avroblk {
	unsigned char	*data;		/* room for cap bytes of objects */
	size_t		 cap;
	size_t		 len;		/* bytes of objects in data */
	uint64_t	 count;		/* objects */
	void		*owner;		/* avroblk_seal()'s; NULL: dropped */
	uint64_t	 ticket;	/* order of sealing in the queue */

	struct avroblk	*next;		/* in the queue, or spare */
	struct avroblk	*job;		/* in the pool's jobs */
	unsigned char	*raw, *out;	/* data - head room; deflated */
	size_t		 outcap, outlen;
	int		 done;		/* compressed, under the pool's lock */
	int		 error;		/* errno of a failed compression */
};

struct avroblk_queue;

/*
 * A queue for blocks of the codec DEFLATE (else null) at LEVEL, with
 * THREADS compressor threads: a negative number means the online CPUs,
 * at most 8; 0 or 1, none.  NULL with a message in ERR (SINK_ERRMAX).
 */
struct avroblk_queue	*avroblk_queue_new(int deflate, int level,
			    long threads, char *err);

/* Joins the threads and frees every block, sealed or spare. */
void		 avroblk_queue_free(struct avroblk_queue *);

/*
 * The most bytes LEN bytes of objects take in a file once compressed and
 * framed (count, size, data, sync marker).
 */
uint64_t	 avroblk_bound(struct avroblk_queue *, size_t len);

/* An empty block with room for CAP bytes, or NULL: out of memory. */
struct avroblk	*avroblk_get(struct avroblk_queue *, size_t cap);

/* Gives back a block that is not sealed, or came from avroblk_next(). */
void		 avroblk_put(struct avroblk_queue *, struct avroblk *);

/*
 * Seals B, of OWNER (not NULL), at the tail of the queue and has it
 * compressed.  Returns its ticket: tickets grow with every seal.
 */
uint64_t	 avroblk_seal(struct avroblk_queue *, struct avroblk *,
		    void *owner);

/*
 * The block at the head of the queue, taken out of it, once compressed:
 * waits for it when its ticket is at most UPTO or more than 2 x threads
 * blocks are sealed; else NULL when it is not done yet or the queue is
 * empty.  Its owner is NULL when it was dropped: just avroblk_put() it.
 */
struct avroblk	*avroblk_next(struct avroblk_queue *, uint64_t upto);

/* Drops the sealed blocks of OWNER: avroblk_next() gives them ownerless. */
void		 avroblk_drop(struct avroblk_queue *, void *owner);

/*
 * The header of a file of CODEC ("null", "deflate" or "snappy") whose
 * schema is the text SCHEMA (SLEN bytes), with SYNC: *len bytes in a
 * buffer the caller frees, or NULL when out of memory.
 */
unsigned char	*avroblk_header(const char *codec, const char *schema,
		    size_t slen, const unsigned char sync[AVROBLK_SYNC],
		    size_t *len);

/*
 * Frames B, from avroblk_next(), in place with SYNC: *p and *len get the
 * bytes to append to the file.  Returns 0, or the errno of its failed
 * compression (ENOMEM; EIO for a zlib error).
 */
int		 avroblk_frame(struct avroblk_queue *, struct avroblk *b,
		    const unsigned char sync[AVROBLK_SYNC],
		    const unsigned char **p, size_t *len);

#endif
