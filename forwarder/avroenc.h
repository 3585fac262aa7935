/*
 * avroenc.h: the Avro data of a spooled event, for the Avro file sink and
 * the Kafka sink's avro and confluent formats (avro-c, <avro.h>).
 *
 * A stream without a schema is wrapped in the envelope record ferry.Event
 * (conf/envelope.avsc): id (hex of the 16-byte id), seq, received_at
 * (timestamp-millis), stream, content_type, remote_addr (null when empty)
 * and body (bytes).  A stream whose [stream.NAME] section names
 * "schema = FILE.avsc" has JSON events, encoded as that record: null,
 * boolean, int, long, float, double, string, bytes (a JSON string, its
 * UTF-8 bytes), fixed (idem, exactly its size), enum (a symbol), array,
 * map, nested and recursive records, and unions of null and one other type
 * (JSON null, or the value itself).  A field missing from the JSON takes
 * the schema's default; JSON members the schema does not name are ignored.
 * A mismatch is reported naming the field path:
 * "field user.age: expected int, got string".
 *
 * Threads: avroenc_check_json() only reads the avroenc and may run in any
 * number of threads at once.  Every other call uses per-schema scratch
 * values: one thread at a time per avroenc (one avroenc per sink thread).
 */
#ifndef FERRY_AVROENC_H
#define FERRY_AVROENC_H

#include <stddef.h>

#include <avro.h>

#include "conf.h"
#include "spool.h"

#define AVROENC_ERRMAX	512	/* room an ERR argument must have */

enum avroenc_rc {
	AVROENC_OK	=  0,
	AVROENC_EINVAL	= -1,	/* the event does not fit its schema: for
				   good (a dead letter, a 400 at intake) */
	AVROENC_ESPACE	= -2,	/* avroenc_binary: CAP too small; *len is
				   the size needed */
	AVROENC_ERR	= -3,	/* out of memory or an avro-c failure */
};

struct avroenc;

/*
 * Loads the schema of every [stream.NAME] with "schema = FILE" (a relative
 * FILE is taken from the directory of the config file): each must be a
 * readable .avsc whose top level is a record of supported types, and
 * every default must fit its field.  Returns NULL with a message naming
 * the file (and the field) in ERR (AVROENC_ERRMAX bytes) on failure.
 * Free with avroenc_free().
 */
struct avroenc	*avroenc_new(const struct conf *, char *err);
void		 avroenc_free(struct avroenc *);

/*
 * The schema of STREAM (LEN bytes, not NUL-terminated): its .avsc, or the
 * envelope when it has none.  Borrowed: valid until avroenc_free(); take
 * avro_schema_incref() to keep it longer.  Never NULL.
 */
avro_schema_t	 avroenc_schema(struct avroenc *, const char *stream,
		    size_t len);

/*
 * The schema text written into Avro file headers and registries: the .avsc
 * file as read, or the envelope text (avro-c's own avro_schema_to_json()
 * drops logicalType, doc and default).  NUL-terminated, borrowed like
 * avroenc_schema().  *lenp, when not NULL, gets its length.
 */
const char	*avroenc_schema_text(struct avroenc *, const char *stream,
		    size_t len, size_t *lenp);

/* The envelope schema text (conf/envelope.avsc), for tests and tools. */
extern const char avroenc_envelope_avsc[];

/*
 * Fills *OUT with EV as a value of its stream's schema.  *OUT is borrowed:
 * a scratch value owned by the avroenc, valid until the next call on it for
 * the same schema or avroenc_free(); do not decref it.  Returns AVROENC_OK,
 * AVROENC_EINVAL (body not JSON, or not fitting the schema) or AVROENC_ERR,
 * with a message in ERR (AVROENC_ERRMAX bytes).
 */
int		 avroenc_value(struct avroenc *, const struct spool_event *ev,
		    avro_value_t *out, char *err);

/*
 * Events of a stream without a schema are envelopes, which ferry encodes
 * itself, without an avro-c value (avroenc.c): avroenc_is_envelope() says
 * whether STREAM's are; avroenc_envelope() writes EV's, which takes
 * exactly avroenc_envelope_size(EV) bytes, into BUF.
 */
int		 avroenc_is_envelope(const struct avroenc *, const char *stream,
		    size_t len);
size_t		 avroenc_envelope_size(const struct spool_event *ev);
void		 avroenc_envelope(const struct spool_event *ev, void *buf);

/*
 * Writes EV as one Avro binary datum (no framing) into BUF (CAP bytes)
 * and sets *LEN to its size.  When CAP is too small, writes nothing,
 * sets *LEN to the size needed and returns AVROENC_ESPACE.  Otherwise
 * returns as avroenc_value().
 */
int		 avroenc_binary(struct avroenc *, const struct spool_event *ev,
		    void *buf, size_t cap, size_t *len, char *err);

/*
 * Checks that JSON (JLEN bytes) is an event that STREAM's schema accepts.
 * Returns AVROENC_OK (also for a stream without a schema: anything goes
 * into the envelope), or AVROENC_EINVAL with a message for the client in
 * ERR (ERRLEN bytes), or AVROENC_ERR when out of memory.  Thread-safe.
 */
int		 avroenc_check_json(const struct avroenc *, const char *stream,
		    size_t len, const char *json, size_t jlen, char *err,
		    size_t errlen);

#endif
