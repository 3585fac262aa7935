/*
 * intake.h: turns one HTTP request body into spool events, before anything
 * touches the spool: decompression, content types, NDJSON splitting, JSON
 * validation and the idempotency key of each event.
 *
 * Pure functions of their input, no I/O and no globals, so that every part
 * can be unit-tested and fuzzed.  Safe to call from any thread.
 */
#ifndef FERRY_INTAKE_H
#define FERRY_INTAKE_H

#include <stddef.h>

#include "spool.h"

/*
 * Longest Idempotency-Key of an NDJSON batch: each line's key is it with
 * "#LINE" appended (max_events is at most 100000: 7 bytes), and a key has
 * at most SPOOL_IKEY_MAX bytes.
 */
#define INTAKE_BATCH_IKEY_MAX	(SPOOL_IKEY_MAX - 8)

struct intake_limits {
	size_t		 max_body;	/* bytes, after decompression too */
	size_t		 max_events;	/* per request */
	const char	*json_key;	/* [dedup] json_key, or NULL */
	int		 allow_opaque;	/* other content types as one event */
	/*
	 * Optional: a further check of each JSON event (the stream's Avro
	 * schema).  Returns 0 to accept, else nonzero with a message for
	 * the client in MSG; the answer is then a 400 naming the line.
	 * Called before the event is otherwise validated: invalid JSON is
	 * the check's to refuse too.
	 */
	int		(*check)(void *arg, const char *json, size_t len,
			    char *msg, size_t msglen);
	void		*check_arg;
};

/*
 * The events of one request.  evs[i].body, .ikey and .ctype point into
 * memory the batch owns or into the BODY passed to intake_decode(), which
 * must outlive the batch; stream, addr, received_ms are left for the caller.
 */
struct intake_batch {
	struct spool_event	*evs;
	size_t			 n;
	size_t			 bytes;		/* sum of body lengths */
	/* owned storage */
	unsigned char		*plain;		/* decompressed body, or NULL */
	char			*keys;		/* idempotency keys */
	size_t			 keys_len, keys_cap;
	size_t			 evs_cap;
};

/*
 * Decodes BODY of LEN bytes sent with Content-Type CTYPE (may be NULL;
 * parameters such as "; charset=utf-8" are ignored), Content-Encoding CENC
 * (NULL, "identity" or "gzip") and Idempotency-Key IKEY (may be NULL).
 *
 *  application/json      one event; the body must be one JSON value.
 *  application/x-ndjson  one event per non-empty line, each a JSON value.
 *  anything else         one opaque event if lim->allow_opaque, else 415.
 *
 * The idempotency key of an event is, in order: the value of the field
 * lim->json_key when the event is a JSON object holding it (a string as is,
 * a number as jansson writes it); for a single event, IKEY; for an NDJSON
 * line, IKEY followed by "#" and the line number (IKEY at most
 * INTAKE_BATCH_IKEY_MAX bytes); else none (the spool then hashes the body).
 *
 * Returns 0 with OUT filled (free it with intake_batch_free), or an HTTP
 * status with a message for a person in ERR (ERRLEN bytes) and OUT empty:
 * 400 (invalid JSON, naming the line and column; empty body; bad gzip),
 * 413 (body or decompressed body over max_body; more than max_events),
 * 415 (content type or encoding not accepted).
 */
int	intake_decode(const struct intake_limits *lim, const char *ctype,
	    const char *cenc, const char *ikey, const void *body, size_t len,
	    struct intake_batch *out, char *err, size_t errlen);
void	intake_batch_free(struct intake_batch *);

#endif
