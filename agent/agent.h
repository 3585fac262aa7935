/*
 * agent.h: the state of ferry-agent, one struct passed to every part
 * (main.c lifecycle, http.c handlers, writer.c group commit, auth.c tokens,
 * metrics.c counters).
 *
 * Threads: the main thread owns the lifecycle and reads signals; the
 * libmicrohttpd pool threads run the handlers; one writer thread owns every
 * spool write transaction.  Shared mutable state is either atomic or behind
 * the lock named beside it.
 */
#ifndef FERRY_AGENT_H
#define FERRY_AGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "conf.h"
#include "spool.h"

struct MHD_Connection;
struct MHD_Daemon;

/* The lifecycle; transitions happen in main.c only. */
enum agent_state {
	AGENT_STARTING,		/* /ready 503 */
	AGENT_SERVING,
	AGENT_DRAINING,		/* shutdown_delay: /ping 503, intake goes on */
	AGENT_STOPPING,		/* intake refused, waiting for requests */
};

/*
 * One POST on its way to the spool.  The handler fills it and hands it to
 * the writer (writer_submit) with its connection suspended; the writer sets
 * the outcome and resumes the connection.
 */
struct intake_req {
	struct intake_req	*next;		/* writer queue link */
	struct MHD_Connection	*conn;
	struct spool_event	*evs;
	size_t			 n;
	size_t			 bytes;
	int			*dup;
	/* outcome, set by the writer */
	int			 rc;		/* spool_rc */
	char			 err[SPOOL_ERRMAX];
	size_t			 accepted, duplicates;
};

#define METRIC_LAT_BUCKETS	12
#define METRIC_BATCH_BUCKETS	11
#define METRIC_STATUS_MAX	600

struct metrics {
	_Atomic uint64_t	status[METRIC_STATUS_MAX];
	_Atomic uint64_t	events;
	_Atomic uint64_t	duplicates;
	_Atomic uint64_t	bytes;
	_Atomic uint64_t	rejected_full;
	_Atomic uint64_t	commit_lat[METRIC_LAT_BUCKETS];
	_Atomic uint64_t	commit_lat_sum_us;
	_Atomic uint64_t	commits;
	_Atomic uint64_t	batch[METRIC_BATCH_BUCKETS];
	_Atomic uint64_t	batch_sum;
	_Atomic uint64_t	dedup_entries;	/* at load, then each commit */
	_Atomic uint64_t	dedup_bytes;
};

struct tokens;
struct avroenc;
struct hconn;

struct agent {
	struct conf		*conf;
	struct spool		*spool;
	struct avroenc		*avro;		/* stream schemas, or NULL */
	struct MHD_Daemon	*httpd;
	_Atomic int		 state;		/* enum agent_state */
	_Atomic int		 full;		/* last append hit SPOOL_FULL */
	_Atomic int		 backoff;	/* above the high watermark */
	_Atomic long		 inflight;	/* requests with the writer */
	_Atomic long		 requests;	/* POSTs begun, not yet done */

	/* writer queue: lock protects head, tail, stop */
	pthread_mutex_t		 qlock;
	pthread_cond_t		 qcond;
	struct intake_req	*qhead, *qtail;
	int			 wstop;
	pthread_t		 writer;
	/* the reserver (writer.c): waits on rcond under qlock */
	pthread_cond_t		 rcond;
	pthread_t		 reserver;
	int			 reserving;	/* the reserver thread runs */

	/* connections, for the deadline on request headers (http.c) */
	pthread_mutex_t		 conns_lock;	/* protects conns */
	struct hconn		*conns;
	pthread_t		 reaper;
	int			 reaping;	/* the reaper thread runs */
	_Atomic int		 rstop;		/* it is to stop */

	/* tokens: swapped whole on SIGHUP under tlock */
	pthread_rwlock_t	 tlock;
	struct tokens		*tokens;

	struct metrics		 m;
};

/* Free bytes below which the spool counts as full for /ready. */
#define AGENT_FULL_SLACK	(64u << 10)

/* writer.c */
int	writer_start(struct agent *);
/* Sets a->backoff from the spool's bytes in use; returns them. */
uint64_t writer_note_space(struct agent *);
void	writer_submit(struct agent *, struct intake_req *);
void	writer_stop(struct agent *);

/* http.c */
int	http_start(struct agent *, char *err, size_t errlen);
void	http_quiesce(struct agent *);
void	http_stop(struct agent *);

/* auth.c */
enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_BAD, AUTH_FORBIDDEN };
struct tokens	*tokens_load(const char *path, char *err, size_t errlen);
void		 tokens_free(struct tokens *);
size_t		 tokens_count(const struct tokens *);
enum auth_result tokens_check(const struct tokens *, const char *authz,
		    const char *stream, size_t stream_len);

/* metrics.c */
void	metrics_commit(struct metrics *, uint64_t usec, size_t events);
/* The dedup index's size: once loaded, then from the writer each commit. */
void	metrics_dedup(struct metrics *, const struct spool *);
void	metrics_status(struct metrics *, unsigned code);
char	*metrics_render(struct agent *, size_t *len);

#endif
