/*
 * conf.h: ferry's configuration, one INI file read by ferry-agent,
 * ferry-forwarder and ferry-spool.
 *
 * conf_load() parses the file with inih; a table of typed directives gives
 * each key its type, bounds and default.  It reports every error as
 * "FILE:LINE: [section] key: message" (all of them, not just the first), then
 * runs the cross-field checks, and only then fails.  The result is read-only;
 * a reload loads a new struct conf and swaps it in only when it is valid.
 *
 * Sizes take the suffixes B, KiB, MiB, GiB, TiB (and K/M/G/T, KB/MB/GB/TB as
 * powers of 1024); durations take ms, s, m, h, d (a bare number is seconds).
 */
#ifndef FERRY_CONF_H
#define FERRY_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CONF_DEFAULT_PATH	"/etc/ferry/ferry.conf"
#define CONF_NAME_MAX		64	/* stream and sink names */

enum conf_sink_type { CONF_SINK_KAFKA, CONF_SINK_AVRO_FILES };
enum conf_kafka_format { CONF_FMT_RAW, CONF_FMT_AVRO, CONF_FMT_CONFLUENT };
enum conf_kafka_key { CONF_KEY_IDEMPOTENCY, CONF_KEY_NONE, CONF_KEY_JSON };

struct conf_prop {			/* kafka.NAME = VALUE, passed through */
	char	*name;			/* NAME, without "kafka." */
	char	*value;
	int	 line;
};

struct conf_sink {
	char			 name[CONF_NAME_MAX + 1];
	enum conf_sink_type	 type;
	int			 line;		/* of the section header */
	/* type = kafka */
	char			*brokers;
	char			*topic;		/* template, "{stream}" expands */
	enum conf_kafka_format	 format;
	enum conf_kafka_key	 key;
	char			*key_field;	/* key = json:FIELD */
	int64_t			 confluent_id;	/* -1 when unset */
	struct conf_prop	*props;
	size_t			 nprops;
	/* type = avro-files */
	char			*dir;
	uint64_t		 roll_size;	/* bytes */
	uint64_t		 roll_interval_ms;
	uint64_t		 roll_count;	/* events per file, 0 = no limit */
	char			*codec;		/* null, deflate, snappy */
	uint64_t		 deflate_level;	/* 1..9 */
	int64_t			 compress_threads; /* -1: online CPUs, up
						      to 8; 0, 1: none */
};

struct conf_stream {
	char	 name[CONF_NAME_MAX + 1];
	int	 line;
	int	 allow_opaque;		/* accept non-JSON content types */
	char	*schema;		/* .avsc path or NULL */
};

struct conf {
	char		*path;

	struct {
		char		*listen;		/* "127.0.0.1:8290" */
		uint64_t	 shutdown_delay_ms;
		uint64_t	 shutdown_timeout_ms;
		uint64_t	 max_body;		/* bytes, decompressed too */
		uint64_t	 max_events;		/* per request */
		uint64_t	 max_header;		/* bytes */
		uint64_t	 max_conns_per_ip;
		uint64_t	 max_conns;
		uint64_t	 idle_timeout_ms;
		uint64_t	 threads;		/* 0 = number of cores */
		char		*tokens_file;		/* NULL = no auth */
		char		*cors_origins;		/* space-separated, or "*" */
		char		*trusted_proxies;	/* space-separated addrs */
		int		 log_level;		/* enum log_level */
		int		 strict_streams;	/* only [stream.X] accepted */
	} agent;

	struct {
		char		*dir;
		uint64_t	 max_size;		/* bytes */
		uint64_t	 high_watermark;	/* percent, Backoff above */
		uint64_t	 reserve;		/* bytes written ahead */
		uint64_t	 retain_ms;
		char		*encryption_key_file;	/* NULL = plaintext */
	} spool;

	struct {
		uint64_t	 window_ms;
		char		*json_key;		/* NULL = none */
	} dedup;

	struct conf_stream	*streams;
	size_t			 nstreams;
	struct conf_sink	*sinks;
	size_t			 nsinks;
};

/*
 * Loads and validates PATH.  On success returns a new struct conf that the
 * caller frees with conf_free().  On failure returns NULL after writing each
 * error as one line "PATH:LINE: message" to ERRF (stderr if NULL).
 */
struct conf	*conf_load(const char *path, void *errf);
void		 conf_free(struct conf *);

/* The [stream.NAME] section for NAME, or NULL. */
const struct conf_stream *conf_stream_find(const struct conf *,
		    const char *name, size_t len);
/* The [sink.NAME] section for NAME, or NULL (also when C is NULL). */
const struct conf_sink *conf_sink_find(const struct conf *c,
		    const char *name);

/*
 * Parses a size ("64MiB", "512KiB", "1048576") or a duration ("500ms", "20s",
 * "24h", "7d"; a bare number is seconds).  Return 0 and set *out, or -1 with
 * a short reason in *why for a bad value or an overflow.
 */
int	conf_parse_size(const char *s, uint64_t *out, const char **why);
int	conf_parse_duration(const char *s, uint64_t *out_ms, const char **why);

/*
 * Reads the 32-byte spool key from PATH: 64 hex characters (whitespace around
 * them allowed) or exactly 32 raw bytes.  Returns 0, or -1 with a message
 * naming the file in ERR (size ERRLEN).
 */
int	conf_read_key(const char *path, unsigned char key[32], char *err,
	    size_t errlen);

#endif
