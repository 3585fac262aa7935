/*
 * sink.h: what the forwarder's drain loop (forwarder.c) asks of a sink.
 * One file per sink type implements it (sink_kafka.c, sink_avro.c); the
 * table sink_types[] picks one by the [sink.NAME] type.
 *
 * Delivery contract.  The drain loop reads the spool in seq order from the
 * sink's cursor and calls send() for each event, in order.  The sink tells
 * the loop, through poll(), the highest seq D such that EVERY event with
 * seq <= D that was sent is delivered for good (acknowledged by Kafka with
 * acks=all, or in a published, fsynced Avro file) or was refused for good
 * and reported through the dead() callback.  The loop then moves the
 * cursor to D.  After a crash the loop resends from the cursor, so a sink
 * sees every event at least once; the Avro sink uses recover() to skip what
 * its published files already hold, which makes it exactly once.
 *
 * Threads: each sink instance is driven by one thread of the forwarder
 * (its drain loop); its functions are never called concurrently.
 */
#ifndef FERRY_SINK_H
#define FERRY_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "spool.h"

#define SINK_ERRMAX	512

enum sink_rc {
	SINK_OK		=  0,
	SINK_FULL	= -1,	/* send: cannot take more now; poll, retry */
	SINK_DOWN	= -2,	/* destination unreachable: back off */
	SINK_REWIND	= -3,	/* poll: resend everything after the cursor
				   (e.g. a fresh Kafka producer) */
	SINK_FATAL	= -4,	/* unusable (bad configuration): stop */
};

/* Reports an event refused for good; the loop writes a dead letter. */
typedef void (*sink_dead_fn)(uint64_t seq, const char *reason, void *arg);

struct sink_ops {
	const char	*type;		/* the [sink.NAME] type = value */
	/*
	 * Nonzero if send() takes an event with a seq below those already
	 * sent (a dead letter marked for retry), delivered like any other;
	 * it must not move *delivered below what it was.
	 */
	int		 redeliver;

	/* Creates the sink; NULL with a message in ERR on failure. */
	void		*(*open)(const struct conf *, const struct conf_sink *,
			    char *err);

	/*
	 * Called once after open() with the cursor read from the spool.
	 * The sink may note what it already holds beyond it (Avro: the
	 * published files) and skip those events when they are sent again.
	 */
	int		 (*recover)(void *sink, uint64_t cursor, char *err);

	/*
	 * Takes EV (its memory is valid only during the call: copy what is
	 * kept).  Returns SINK_OK, SINK_FULL (EV not taken), SINK_DOWN or
	 * SINK_FATAL with a message in ERR.
	 */
	int		 (*send)(void *sink, const struct spool_event *ev,
			    char *err);

	/*
	 * Makes progress for up to TIMEOUT_MS (flushes due files, serves
	 * delivery reports), reports refusals through DEAD, and sets
	 * *delivered as in the contract above (never lower than before).
	 * Returns SINK_OK, SINK_DOWN (with ERR), SINK_REWIND or SINK_FATAL.
	 */
	int		 (*poll)(void *sink, int timeout_ms, uint64_t *delivered,
			    sink_dead_fn dead, void *arg, char *err);

	/*
	 * Shutting down: delivers or publishes what it can within
	 * TIMEOUT_MS, then sets *delivered like poll().
	 */
	int		 (*flush)(void *sink, int timeout_ms, uint64_t *delivered,
			    sink_dead_fn dead, void *arg, char *err);

	void		 (*close)(void *sink);
};

extern const struct sink_ops sink_kafka_ops;
/* --check-config of a Kafka sink: its producer made and dropped, offline. */
int	sink_kafka_check(const struct conf *, const struct conf_sink *,
	    char *err);
extern const struct sink_ops sink_avro_ops;

#endif
