/*
 * forwarder.h: the state of ferry-forwarder (main.c) and its drain loops
 * (drain.c), one thread per configured sink.
 */
#ifndef FERRY_FORWARDER_H
#define FERRY_FORWARDER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "conf.h"
#include "sink.h"
#include "spool.h"

struct fwd;

#define RETRY_BATCH	64	/* dead letters resent per round */

/* One sink and the thread that drains the spool into it. */
struct drain {
	struct fwd		*f;
	const struct conf_sink	*sc;
	const struct sink_ops	*ops;
	void			*sink;
	pthread_t		 thread;
	int			 started;
	uint64_t		 cursor;	/* as committed in the spool */
	uint64_t		 sent;		/* highest seq handed over */
	uint64_t		 delivered;	/* from the sink's poll() */
	uint64_t		 cursor_ms;	/* when the cursor was written */
	int			 backlog;	/* the last read was a full batch */
	int			 blocked;	/* send() said FULL or DOWN */
	int			 down;		/* outage logged, not its end */
	uint64_t		 backoff_ms;
	int			 failed;	/* SINK_FATAL: thread ended */
	/* dead letters marked for retry, being resent (drain.c) */
	int			 retrying;
	uint64_t		 retry_ms;	/* last look for marks */
	uint64_t		 rseq[RETRY_BATCH];
	size_t			 nrseq;
	struct redead {
		uint64_t	 seq;
		char		 reason[256];
	}			 redead[RETRY_BATCH];
	size_t			 nredead;
	/* for the main thread's throughput line */
	_Atomic uint64_t	 n_events, n_bytes, n_dead, cursor_pub;
	char			 err[SINK_ERRMAX];
};

struct fwd {
	struct conf		*conf;
	struct spool		*spool;
	struct drain		*drains;
	size_t			 ndrains;
	const char		**sinks;	/* names of the configured sinks */
	_Atomic int		 stop;
};

/* drain.c */
const struct sink_ops *drain_ops_for(const struct conf_sink *);
int	drain_open(struct fwd *, struct drain *, const struct conf_sink *,
	    char *err, size_t errlen);
int	drain_start(struct drain *);
void	drain_join(struct drain *);
void	drain_report(struct drain *, uint64_t secs);

#endif
