/*
 * conf.c: loads and validates ferry.conf.
 *
 * inih splits "key = value" lines, trims them and strips comments; a static
 * table of typed directives (redis config.c's static_configs[]) then gives
 * each key its meaning: the section it belongs to, its type, its bounds and
 * its default as text.  Defaults go through the same parsers as the file's
 * values, so a default can never disagree with the documented syntax.
 *
 * inih 55 as Debian builds it passes no line number to the handler, keeps
 * section names in a 50-byte buffer and never reports a section that has no
 * keys; all three would be wrong here ([stream.NAME] takes 64-character names
 * and an empty [stream.NAME] means something).  So we feed inih through our
 * own reader (ini_parse_stream), which counts lines, takes section headers
 * itself, strips leading blanks (inih would read an indented line as the
 * continuation of the previous value) and rejects lines inih would refuse,
 * with a message, so that every error is reported and not only the first.
 * The handler therefore ignores inih's section argument and uses ours.
 *
 * Invariants:
 * - Every error is one line "PATH:LINE: [section] key: message" and bumps
 *   p->nerrors; conf_load() returns NULL iff nerrors > 0, after the
 *   cross-field checks have run, so an operator sees everything at once.
 * - A struct conf is complete as soon as it exists: every field holds its
 *   default, so conf_free() may be called on it at any point.
 * - Stream and sink sections are found by index, never by pointer, since the
 *   arrays move when they grow.
 * - Nothing here is global: conf_load() may run in any thread (a reload).
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avro.h>
#include <ini.h>
#include <librdkafka/rdkafka.h>

#include "conf.h"
#include "log.h"

/*
 * avro-c exports these but keeps their header private.  We pass a zeroed
 * buffer as the codec: avro_codec() fills it on success and leaves it alone
 * on failure, and a zeroed codec is the "null" codec, which owns nothing.
 */
struct avro_codec_t_;
int	avro_codec(struct avro_codec_t_ *, const char *);
int	avro_codec_reset(struct avro_codec_t_ *);

#define KiB	(UINT64_C(1) << 10)
#define MiB	(UINT64_C(1) << 20)
#define GiB	(UINT64_C(1) << 30)
#define TiB	(UINT64_C(1) << 40)
#define SEC	INT64_C(1000)
#define MIN	(60 * SEC)
#define HOUR	(60 * MIN)
#define DAY	(24 * HOUR)

#define MSGLEN	256

enum skind { S_AGENT, S_SPOOL, S_DEDUP, S_STREAM, S_SINK, S_NKINDS };
static const char *const skind_names[] = {
	"agent", "spool", "dedup", "stream", "sink"
};

enum dtype {
	T_STR,		/* char *; empty means unset when there is no default */
	T_SIZE,		/* uint64_t bytes */
	T_DURATION,	/* uint64_t milliseconds */
	T_INT,		/* uint64_t or int64_t, decimal */
	T_PERCENT,	/* uint64_t, "80" or "80%" */
	T_BOOL,		/* int */
	T_ENUM,		/* int, index into names */
	T_LEVEL,	/* int, enum log_level */
	T_SINKKEY	/* struct conf_sink key + key_field */
};

#define SINK_K	(1u << CONF_SINK_KAFKA)
#define SINK_A	(1u << CONF_SINK_AVRO_FILES)

struct directive {
	enum skind	  sect;
	const char	 *key;
	enum dtype	  type;
	int64_t		  min, max;	/* numbers, in the type's unit */
	const char	 *def;		/* as text; NULL = none. May lie
					   outside min..max to mean unset. */
	size_t		  off;		/* into struct conf, conf_stream or
					   conf_sink, according to sect */
	unsigned	  sinks;	/* sink types the key applies to */
	const char *const *names;	/* T_ENUM */
	const char	*(*check)(const char *, char *, size_t); /* T_STR */
};

static const char *check_listen(const char *, char *, size_t);
static const char *check_proxies(const char *, char *, size_t);
static const char *check_origins(const char *, char *, size_t);
static const char *check_topic(const char *, char *, size_t);
static const char *check_codec(const char *, char *, size_t);

static const char *const sink_types[] = { "kafka", "avro-files", NULL };
static const char *const formats[] = { "raw", "avro", "confluent", NULL };

#define G(s, f)		offsetof(struct conf, s.f)
#define ST(f)		offsetof(struct conf_stream, f)
#define SK(f)		offsetof(struct conf_sink, f)
#define NUM(t, lo, hi)	.type = t, .min = (lo), .max = (hi)
#define STR(chk)	.type = T_STR, .check = chk

static const struct directive directives[] = {
	{ S_AGENT, "listen", STR(check_listen), .def = "127.0.0.1:8290",
	    .off = G(agent, listen) },
	{ S_AGENT, "shutdown_delay", NUM(T_DURATION, 0, 10 * MIN),
	    .def = "5s", .off = G(agent, shutdown_delay_ms) },
	{ S_AGENT, "shutdown_timeout", NUM(T_DURATION, 0, 10 * MIN),
	    .def = "10s", .off = G(agent, shutdown_timeout_ms) },
	{ S_AGENT, "max_body", NUM(T_SIZE, KiB, 64 * MiB),
	    .def = "1MiB", .off = G(agent, max_body) },
	{ S_AGENT, "max_events", NUM(T_INT, 1, 100000),
	    .def = "1000", .off = G(agent, max_events) },
	{ S_AGENT, "max_header", NUM(T_SIZE, KiB, MiB),
	    .def = "8KiB", .off = G(agent, max_header) },
	{ S_AGENT, "max_conns", NUM(T_INT, 1, 100000),
	    .def = "1024", .off = G(agent, max_conns) },
	{ S_AGENT, "max_conns_per_ip", NUM(T_INT, 1, 100000),
	    .def = "64", .off = G(agent, max_conns_per_ip) },
	{ S_AGENT, "idle_timeout", NUM(T_DURATION, SEC, HOUR),
	    .def = "30s", .off = G(agent, idle_timeout_ms) },
	{ S_AGENT, "threads", NUM(T_INT, 0, 64),
	    .def = "0", .off = G(agent, threads) },
	{ S_AGENT, "tokens_file", STR(NULL), .off = G(agent, tokens_file) },
	{ S_AGENT, "cors_origins", STR(check_origins),
	    .off = G(agent, cors_origins) },
	{ S_AGENT, "trusted_proxies", STR(check_proxies),
	    .off = G(agent, trusted_proxies) },
	{ S_AGENT, "log_level", .type = T_LEVEL, .def = "info",
	    .off = G(agent, log_level) },
	{ S_AGENT, "strict_streams", .type = T_BOOL, .def = "no",
	    .off = G(agent, strict_streams) },

	{ S_SPOOL, "dir", STR(NULL), .def = "/var/lib/ferry/spool",
	    .off = G(spool, dir) },
	{ S_SPOOL, "max_size", NUM(T_SIZE, MiB, 16 * TiB),
	    .def = "1GiB", .off = G(spool, max_size) },
	{ S_SPOOL, "high_watermark", NUM(T_PERCENT, 1, 100),
	    .def = "80", .off = G(spool, high_watermark) },
	{ S_SPOOL, "reserve", NUM(T_SIZE, 0, 16 * TiB),
	    .def = "64MiB", .off = G(spool, reserve) },
	{ S_SPOOL, "retain", NUM(T_DURATION, 0, 365 * DAY),
	    .def = "0", .off = G(spool, retain_ms) },
	{ S_SPOOL, "encryption_key_file", STR(NULL),
	    .off = G(spool, encryption_key_file) },

	{ S_DEDUP, "window", NUM(T_DURATION, 0, 30 * DAY),
	    .def = "1h", .off = G(dedup, window_ms) },
	{ S_DEDUP, "json_key", STR(NULL), .off = G(dedup, json_key) },

	{ S_STREAM, "allow_opaque", .type = T_BOOL, .def = "no",
	    .off = ST(allow_opaque) },
	{ S_STREAM, "schema", STR(NULL), .off = ST(schema) },

	{ S_SINK, "type", .type = T_ENUM, .names = sink_types,
	    .off = SK(type), .sinks = SINK_K | SINK_A },
	{ S_SINK, "brokers", STR(NULL), .off = SK(brokers), .sinks = SINK_K },
	{ S_SINK, "topic", STR(check_topic), .def = "{stream}",
	    .off = SK(topic), .sinks = SINK_K },
	{ S_SINK, "format", .type = T_ENUM, .names = formats, .def = "raw",
	    .off = SK(format), .sinks = SINK_K },
	{ S_SINK, "key", .type = T_SINKKEY, .def = "idempotency",
	    .sinks = SINK_K },
	{ S_SINK, "confluent_id", NUM(T_INT, 0, INT32_MAX), .def = "-1",
	    .off = SK(confluent_id), .sinks = SINK_K },
	{ S_SINK, "dir", STR(NULL), .off = SK(dir), .sinks = SINK_A },
	{ S_SINK, "roll_size", NUM(T_SIZE, KiB, 16 * GiB), .def = "64MiB",
	    .off = SK(roll_size), .sinks = SINK_A },
	{ S_SINK, "roll_interval", NUM(T_DURATION, SEC, 7 * DAY),
	    .def = "5m", .off = SK(roll_interval_ms), .sinks = SINK_A },
	{ S_SINK, "roll_count", NUM(T_INT, 0, 1000000000), .def = "0",
	    .off = SK(roll_count), .sinks = SINK_A },
	{ S_SINK, "codec", STR(check_codec), .def = "deflate",
	    .off = SK(codec), .sinks = SINK_A },
	{ S_SINK, "deflate_level", NUM(T_INT, 1, 9), .def = "1",
	    .off = SK(deflate_level), .sinks = SINK_A },
	{ S_SINK, "compress_threads", NUM(T_INT, 0, 64), .def = "-1",
	    .off = SK(compress_threads), .sinks = SINK_A },
};
#define NDIRECTIVES	(sizeof(directives) / sizeof(directives[0]))

/* T_ENUM and T_BOOL store through an int *. */
_Static_assert(sizeof(enum conf_sink_type) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_kafka_format) == sizeof(int), "enum size");

/* One occurrence of a section header in the file. */
struct psect {
	struct psect	*next;
	enum skind	 kind;
	size_t		 idx;			/* into streams or sinks */
	int		 line;
	int		 badtype;		/* sink type given but invalid */
	char		 name[16 + CONF_NAME_MAX];	/* "sink.NAME" */
	int		 seen[NDIRECTIVES];	/* line each key was set on */
	rd_kafka_conf_t	*rk;			/* validates kafka.* */
};

struct parser {
	struct conf	*conf;
	const char	*path;
	FILE		*in;
	FILE		*errf;
	int		 lineno;
	char		*buf;			/* getline() */
	size_t		 bufsz;
	struct psect	*sects;			/* in file order */
	struct psect	**tail;
	struct psect	*global[S_STREAM];	/* agent, spool, dedup */
	struct psect	*cur;			/* NULL: keys are ignored */
	int		 insection;		/* a header has been seen */
	int		 nerrors;
};

static void perr(struct parser *, int, const char *, const char *,
	    const char *, ...) __attribute__((format(printf, 5, 6)));

/*
 * "PATH:LINE: [SECT] KEY: message", leaving out what is NULL.  Values are
 * written as the file has them, so the operator can grep for them.
 */
static void
perr(struct parser *p, int line, const char *sect, const char *key,
    const char *fmt, ...)
{
	va_list	ap;

	fprintf(p->errf, "%s:%d: ", p->path, line);
	if (sect != NULL)
		fprintf(p->errf, key != NULL ? "[%s] " : "[%s]: ", sect);
	if (key != NULL)
		fprintf(p->errf, "%s: ", key);
	va_start(ap, fmt);
	vfprintf(p->errf, fmt, ap);
	va_end(ap);
	fputc('\n', p->errf);
	p->nerrors++;
}

static void *
psect_obj(struct parser *p, enum skind kind, size_t idx)
{
	switch (kind) {
	case S_STREAM:
		return &p->conf->streams[idx];
	case S_SINK:
		return &p->conf->sinks[idx];
	default:
		return p->conf;
	}
}

/* --- Units --- */

struct unit {
	const char	*name;
	uint64_t	 mult;
};

static const struct unit size_units[] = {
	{ "", 1 }, { "B", 1 },
	{ "KiB", KiB }, { "K", KiB }, { "KB", KiB },	/* the first of a */
	{ "MiB", MiB }, { "M", MiB }, { "MB", MiB },	/* size is the one */
	{ "GiB", GiB }, { "G", GiB }, { "GB", GiB },	/* messages use */
	{ "TiB", TiB }, { "T", TiB }, { "TB", TiB },
	{ NULL, 0 }
};

static const struct unit duration_units[] = {
	{ "", SEC }, { "ms", 1 }, { "s", SEC }, { "m", MIN }, { "h", HOUR },
	{ "d", DAY }, { NULL, 0 }
};

/*
 * A whole number, optional blanks, then one of UNITS (case-insensitive).
 * strtoull() alone would take "-1" as 2^64-1 and " 5" as 5: we insist on
 * a leading digit.
 */
static int
parse_unit(const char *s, const struct unit *units, uint64_t *out,
    const char **why)
{
	unsigned long long	 n;
	char			*end;
	size_t			 i;

	if (s == NULL || *s == '\0')
		return *why = "empty", -1;
	if (*s == '-')
		return *why = "negative", -1;
	if (!isdigit((unsigned char)*s))
		return *why = "not a number", -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return *why = "too large", -1;
	if (*end == '.' || *end == ',')
		return *why = "not a whole number", -1;
	end += strspn(end, " \t");
	for (i = 0; units[i].name != NULL; i++)
		if (strcasecmp(end, units[i].name) == 0)
			break;
	if (units[i].name == NULL)
		return *why = "unknown unit", -1;
	if (n > UINT64_MAX / units[i].mult)
		return *why = "too large", -1;
	*out = n * units[i].mult;
	return 0;
}

int
conf_parse_size(const char *s, uint64_t *out, const char **why)
{
	return parse_unit(s, size_units, out, why);
}

int
conf_parse_duration(const char *s, uint64_t *out_ms, const char **why)
{
	return parse_unit(s, duration_units, out_ms, why);
}

/* The largest unit that divides V exactly, for messages: 64MiB, 10m. */
static const char *
fmt_unit(uint64_t v, const struct unit *units, char *buf, size_t len)
{
	const struct unit	*best = NULL;
	size_t			 i;

	for (i = 0; units[i].name != NULL; i++)
		if (units[i].name[0] != '\0' && v % units[i].mult == 0 &&
		    (best == NULL || units[i].mult > best->mult))
			best = &units[i];
	if (v == 0 || best == NULL)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "%llu%s",
		    (unsigned long long)(v / best->mult), best->name);
	return buf;
}

static const char *
fmt_value(enum dtype type, int64_t v, char *buf, size_t len)
{
	if (type == T_SIZE)
		return fmt_unit((uint64_t)v, size_units, buf, len);
	if (type == T_DURATION)
		return fmt_unit((uint64_t)v, duration_units, buf, len);
	snprintf(buf, len, "%lld", (long long)v);
	return buf;
}

/* --- Value parsers: NULL, or a message about V in MSG --- */

static const char *
parse_number(const struct directive *d, const char *v, int64_t *out,
    char *msg, size_t len)
{
	uint64_t	 u = 0;
	long long	 n;
	const char	*why;
	char		*end;

	switch (d->type) {
	case T_SIZE:
		if (conf_parse_size(v, &u, &why) == -1 || u > INT64_MAX) {
			snprintf(msg, len, "'%s' is not a size (%s; use e.g. "
			    "64MiB)", v, u > INT64_MAX ? "too large" : why);
			return msg;
		}
		*out = (int64_t)u;
		return NULL;
	case T_DURATION:
		if (conf_parse_duration(v, &u, &why) == -1 || u > INT64_MAX) {
			snprintf(msg, len, "'%s' is not a duration (%s; use "
			    "e.g. 500ms, 30s, 5m, 1h or 7d)", v,
			    u > INT64_MAX ? "too large" : why);
			return msg;
		}
		*out = (int64_t)u;
		return NULL;
	default:
		errno = 0;
		n = strtoll(v, &end, 10);
		if (d->type == T_PERCENT && *end == '%')
			end++;
		if (end == v || *end != '\0' || isspace((unsigned char)*v) ||
		    errno == ERANGE) {
			snprintf(msg, len, d->type == T_PERCENT ?
			    "'%s' is not a percentage (use e.g. 80%%)" :
			    "'%s' is not a whole number", v);
			return msg;
		}
		*out = n;
		return NULL;
	}
}

static const char *
parse_bool(const char *v, int *out, char *msg, size_t len)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t	i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = 1, NULL;
		if (strcasecmp(v, no[i]) == 0)
			return *out = 0, NULL;
	}
	snprintf(msg, len, "'%s' is not a boolean (use yes or no)", v);
	return msg;
}

static const char *
parse_enum(const struct directive *d, const char *v, int *out, char *msg,
    size_t len)
{
	size_t	i, n;

	for (i = 0; d->names[i] != NULL; i++)
		if (strcmp(v, d->names[i]) == 0)
			return *out = (int)i, NULL;
	n = (size_t)snprintf(msg, len, "'%s' is not one of", v);
	for (i = 0; d->names[i] != NULL && n < len; i++)
		n += (size_t)snprintf(msg + n, len - n, "%s %s",
		    i == 0 ? "" : ",", d->names[i]);
	return msg;
}

/* key = idempotency | none | json:FIELD */
static const char *
parse_sinkkey(struct conf_sink *sk, const char *v, char *msg, size_t len)
{
	char	*field = NULL;

	if (strcmp(v, "idempotency") == 0)
		sk->key = CONF_KEY_IDEMPOTENCY;
	else if (strcmp(v, "none") == 0)
		sk->key = CONF_KEY_NONE;
	else if (strncmp(v, "json:", 5) == 0) {
		if (v[5] == '\0') {
			snprintf(msg, len, "'%s' needs a field name "
			    "(e.g. json:user_id)", v);
			return msg;
		}
		if ((field = strdup(v + 5)) == NULL)
			return "out of memory";
		sk->key = CONF_KEY_JSON;
	} else {
		snprintf(msg, len, "'%s' is not a key (use idempotency, none "
		    "or json:FIELD)", v);
		return msg;
	}
	free(sk->key_field);
	sk->key_field = field;
	return NULL;
}

static const char *
parse_str(const struct directive *d, char **field, const char *v,
    char *msg, size_t len)
{
	const char	*why;
	char		*s = NULL;

	if (*v == '\0' && d->def != NULL)
		return "must not be empty";
	if (*v != '\0' && d->check != NULL &&
	    (why = d->check(v, msg, len)) != NULL)
		return why;
	if (*v != '\0' && (s = strdup(v)) == NULL)
		return "out of memory";
	free(*field);
	*field = s;
	return NULL;
}

/* Parses V for D into OBJ (struct conf, conf_stream or conf_sink). */
static const char *
set_value(const struct directive *d, void *obj, const char *v, int isdef,
    char *msg, size_t len)
{
	char		*field = (char *)obj + d->off;
	char		 lo[32], hi[32];
	const char	*why;
	int64_t		 n;
	int		 lvl;

	switch (d->type) {
	case T_STR:
		return parse_str(d, (char **)field, v, msg, len);
	case T_BOOL:
		return parse_bool(v, (int *)field, msg, len);
	case T_ENUM:
		return parse_enum(d, v, (int *)field, msg, len);
	case T_SINKKEY:
		return parse_sinkkey(obj, v, msg, len);
	case T_LEVEL:
		if ((lvl = log_parselevel(v)) == -1) {
			snprintf(msg, len, "'%s' is not a log level (use "
			    "error, warn, info or debug)", v);
			return msg;
		}
		*(int *)field = lvl;
		return NULL;
	default:
		if ((why = parse_number(d, v, &n, msg, len)) != NULL)
			return why;
		if (!isdef && (n < d->min || n > d->max)) {
			snprintf(msg, len, "'%s' is out of range (%s..%s)", v,
			    fmt_value(d->type, d->min, lo, sizeof(lo)),
			    fmt_value(d->type, d->max, hi, sizeof(hi)));
			return msg;
		}
		/* int64_t confluent_id, compress_threads share it. */
		*(uint64_t *)field = (uint64_t)n;
		return NULL;
	}
}

/* --- Checks of string values --- */

static int
port_ok(const char *s)
{
	char		*end;
	unsigned long	 n;

	if (!isdigit((unsigned char)*s))
		return 0;
	errno = 0;
	n = strtoul(s, &end, 10);
	return *end == '\0' && errno == 0 && n >= 1 && n <= 65535;
}

/* host:port or [v6]:port */
static const char *
check_listen(const char *v, char *msg, size_t len)
{
	char		 a6[INET6_ADDRSTRLEN];
	struct in6_addr	 in6;
	const char	*end, *port;
	size_t		 hlen;

	if (*v == '[') {
		end = strchr(v, ']');
		hlen = end == NULL ? 0 : (size_t)(end - v - 1);
		if (end == NULL || end[1] != ':' || hlen >= sizeof(a6))
			goto bad;
		memcpy(a6, v + 1, hlen);
		a6[hlen] = '\0';
		if (inet_pton(AF_INET6, a6, &in6) != 1)
			goto bad;
		port = end + 2;
	} else {
		if ((end = strrchr(v, ':')) == NULL || end == v)
			goto bad;
		hlen = (size_t)(end - v);
		if (memchr(v, ':', hlen) != NULL) {
			snprintf(msg, len, "'%s': put an IPv6 address in "
			    "brackets (e.g. [::1]:8290)", v);
			return msg;
		}
		if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
		    "UVWXYZ0123456789.-") != hlen)
			goto bad;
		port = end + 1;
	}
	if (port_ok(port))
		return NULL;
	snprintf(msg, len, "'%s': port must be 1..65535", v);
	return msg;
bad:
	snprintf(msg, len, "'%s' is not host:port (use e.g. 127.0.0.1:8290 "
	    "or [::1]:8290)", v);
	return msg;
}

/* Space-separated IPv4 or IPv6 addresses, as conf.h promises the agent. */
static const char *
check_proxies(const char *v, char *msg, size_t len)
{
	char		 a[INET6_ADDRSTRLEN];
	unsigned char	 bin[sizeof(struct in6_addr)];
	size_t		 n;

	for (v += strspn(v, " \t"); *v != '\0'; v += strspn(v, " \t")) {
		n = strcspn(v, " \t");
		if (n >= sizeof(a))
			n = sizeof(a) - 1;
		memcpy(a, v, n);
		a[n] = '\0';
		if (inet_pton(AF_INET, a, bin) != 1 &&
		    inet_pton(AF_INET6, a, bin) != 1) {
			snprintf(msg, len, "'%s' is not an IP address "
			    "(list addresses separated by spaces)", a);
			return msg;
		}
		v += strcspn(v, " \t");
	}
	return NULL;
}

/* "*", or space-separated origins: scheme://host[:port], no path. */
static const char *
check_origins(const char *v, char *msg, size_t len)
{
	const char	*host;
	size_t		 n;

	if (strcmp(v, "*") == 0)
		return NULL;
	for (v += strspn(v, " \t"); *v != '\0'; v += strspn(v, " \t")) {
		n = strcspn(v, " \t");
		host = strncmp(v, "https://", 8) == 0 ? v + 8 :
		    strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
		if (host == NULL || host == v + n ||
		    memchr(host, '/', (size_t)(v + n - host)) != NULL) {
			snprintf(msg, len, "'%.*s' is not an origin (use * or "
			    "e.g. https://example.com, separated by spaces)",
			    (int)n, v);
			return msg;
		}
		v += n;
	}
	return NULL;
}

static int
name_ok(const char *s, size_t n)
{
	return n >= 1 && n <= CONF_NAME_MAX && strspn(s, "abcdefghijklmnop"
	    "qrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") >= n;
}

/* Legal Kafka topic characters, and {stream}, which expands to a name. */
static const char *
check_topic(const char *v, char *msg, size_t len)
{
	const char	*s = v;

	while (*s != '\0') {
		if (strncmp(s, "{stream}", 8) == 0)
			s += 8;
		else if (name_ok(s, 1))
			s++;
		else {
			snprintf(msg, len, "'%s' is not a topic template (use "
			    "A-Z a-z 0-9 . _ - and {stream})", v);
			return msg;
		}
	}
	return NULL;
}

static const char *
check_codec(const char *v, char *msg, size_t len)
{
	/*
	 * Not lzma: avro-c writes a codec of its own by that name, which
	 * Apache's Java and Python readers cannot read.
	 */
	static const char *const ours[] = { "null", "deflate", "snappy" };
	union { max_align_t align; unsigned char b[512]; } codec;
	struct avro_codec_t_	*c = (struct avro_codec_t_ *)&codec;
	size_t			 i;

	for (i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		if (strcmp(v, ours[i]) == 0)
			break;
	if (i == sizeof(ours) / sizeof(ours[0])) {
		snprintf(msg, len, "'%s' is not a codec (use null, deflate "
		    "or snappy)", v);
		return msg;
	}
	memset(&codec, 0, sizeof(codec));
	if (avro_codec(c, v) != 0) {
		snprintf(msg, len, "'%s' is not supported by this build of "
		    "avro-c", v);
		return msg;
	}
	avro_codec_reset(c);
	return NULL;
}

/* --- Sections --- */

static const struct directive *
find_directive(enum skind kind, const char *key)
{
	size_t	i;

	for (i = 0; i < NDIRECTIVES; i++)
		if (directives[i].sect == kind &&
		    strcmp(directives[i].key, key) == 0)
			return &directives[i];
	return NULL;
}

/* Gives OBJ the defaults of every KIND directive. */
static int
set_defaults(struct parser *p, enum skind kind, void *obj)
{
	char		 msg[MSGLEN];
	const char	*why;
	size_t		 i;

	for (i = 0; i < NDIRECTIVES; i++) {
		if (directives[i].sect != kind || directives[i].def == NULL)
			continue;
		why = set_value(&directives[i], obj, directives[i].def, 1,
		    msg, sizeof(msg));
		if (why != NULL) {
			/* Only malloc can fail on a default. */
			perr(p, p->lineno, NULL, directives[i].key, "%s", why);
			return -1;
		}
	}
	return 0;
}

/* Adds a stream or sink named NAME (checked), or returns -1. */
static int
add_named(struct parser *p, enum skind kind, const char *name, size_t *idx)
{
	struct conf	*c = p->conf;
	void		*a;
	size_t		 n = kind == S_STREAM ? c->nstreams : c->nsinks;
	size_t		 sz = kind == S_STREAM ? sizeof(struct conf_stream) :
			    sizeof(struct conf_sink);

	a = realloc(kind == S_STREAM ? (void *)c->streams : (void *)c->sinks,
	    (n + 1) * sz);
	if (a == NULL) {
		perr(p, p->lineno, NULL, NULL, "out of memory");
		return -1;
	}
	memset((char *)a + n * sz, 0, sz);
	if (kind == S_STREAM) {
		c->streams = a;
		strcpy(c->streams[n].name, name);
		c->streams[n].line = p->lineno;
		c->nstreams++;
	} else {
		c->sinks = a;
		strcpy(c->sinks[n].name, name);
		c->sinks[n].line = p->lineno;
		c->nsinks++;
	}
	*idx = n;
	return set_defaults(p, kind, psect_obj(p, kind, n));
}

/* The psect of an earlier [KIND.NAME] or [KIND], or NULL. */
static struct psect *
find_psect(struct parser *p, enum skind kind, const char *name)
{
	struct psect	*s;

	for (s = p->sects; s != NULL; s = s->next)
		if (s->kind == kind && strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* Makes SECT (the text between the brackets) the current section. */
static void
section_open(struct parser *p, const char *sect)
{
	struct psect	*s, *old;
	const char	*name = NULL;
	enum skind	 kind;
	size_t		 idx = 0;

	for (kind = 0; kind < S_NKINDS; kind++) {
		size_t	n = strlen(skind_names[kind]);

		if (kind < S_STREAM && strcmp(sect, skind_names[kind]) == 0)
			break;
		if (kind >= S_STREAM && strncmp(sect, skind_names[kind], n)
		    == 0 && sect[n] == '.') {
			name = sect + n + 1;
			break;
		}
	}
	if (kind == S_NKINDS) {
		perr(p, p->lineno, sect, NULL, "unknown section (use agent, "
		    "spool, dedup, stream.NAME or sink.NAME)");
		return;
	}
	if (name != NULL && !name_ok(name, strlen(name))) {
		perr(p, p->lineno, sect, NULL, "'%s' is not a %s name (use 1 "
		    "to %d of A-Z a-z 0-9 . _ -)", name, skind_names[kind],
		    CONF_NAME_MAX);
		return;
	}
	if ((old = find_psect(p, kind, sect)) != NULL) {
		perr(p, p->lineno, sect, NULL, "section given twice (first "
		    "at line %d)", old->line);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		perr(p, p->lineno, sect, NULL, "out of memory");
		return;
	}
	s->kind = kind;
	s->line = p->lineno;
	snprintf(s->name, sizeof(s->name), "%s", sect);
	*p->tail = s;
	p->tail = &s->next;
	if (name != NULL && add_named(p, kind, name, &idx) == -1)
		return;
	s->idx = idx;
	if (kind < S_STREAM)
		p->global[kind] = s;
	p->cur = s;
}

/* A "[...]" line: LINE starts at the '['. */
static void
section_line(struct parser *p, char *line)
{
	char	*end, *rest, *sect;

	p->cur = NULL;
	p->insection = 1;
	if ((end = strchr(line, ']')) == NULL) {
		perr(p, p->lineno, NULL, NULL, "'%s': section header without "
		    "']'", line);
		return;
	}
	*end = '\0';
	rest = end + 1 + strspn(end + 1, " \t");
	sect = line + 1 + strspn(line + 1, " \t");
	for (end = sect + strlen(sect); end > sect && isblank(end[-1]); end--)
		end[-1] = '\0';
	if (*rest != '\0' && *rest != ';' && *rest != '#')
		perr(p, p->lineno, sect, NULL, "unexpected '%s' after ']'",
		    rest);
	section_open(p, sect);
}

/* --- inih's reader and handler ------------------------------------------ */

/* inih's find_chars_or_comment(): '=' or ':' before any " ;" comment? */
static int
has_separator(const char *s)
{
	int	was_space = 0;

	for (; *s != '\0'; s++) {
		if (*s == '=' || *s == ':')
			return 1;
		if (was_space && *s == ';')
			return 0;
		was_space = isspace((unsigned char)*s);
	}
	return 0;
}

/*
 * ini_reader: one line per call, so p->lineno is the line that the handler
 * is called for.  Lines that are not for inih become empty lines.
 */
static char *
reader(char *str, int num, void *stream)
{
	struct parser	*p = stream;
	ssize_t		 n;
	char		*s;

	if ((n = getline(&p->buf, &p->bufsz, p->in)) == -1) {
		if (ferror(p->in))
			perr(p, p->lineno + 1, NULL, NULL, "%s",
			    strerror(errno));
		return NULL;
	}
	p->lineno++;
	s = p->buf;
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	if (p->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	s += strspn(s, " \t");
	strcpy(str, "\n");
	if (*s == '[')
		section_line(p, s);
	else if (*s == '\0' || *s == '#' || *s == ';')
		;
	else if (!has_separator(s))
		perr(p, p->lineno, p->cur ? p->cur->name : NULL, NULL,
		    "'%s' is not a 'key = value' line", s);
	else if (strlen(s) + 3 > (size_t)num)
		perr(p, p->lineno, p->cur ? p->cur->name : NULL, NULL,
		    "line longer than %d characters", num - 3);
	else
		snprintf(str, (size_t)num, "%s\n", s);
	return str;
}

/* kafka.PROPERTY = VALUE: librdkafka says whether it would take it. */
static void
set_prop(struct parser *p, struct psect *s, const char *key, const char *v)
{
	struct conf_sink	*sk = psect_obj(p, S_SINK, s->idx);
	struct conf_prop	*a;
	const char		*prop = key + strlen("kafka.");
	char			 err[512];
	size_t			 i;

	if (*prop == '\0') {
		perr(p, p->lineno, s->name, key, "missing property name");
		return;
	}
	for (i = 0; i < sk->nprops; i++)
		if (strcmp(sk->props[i].name, prop) == 0) {
			perr(p, p->lineno, s->name, key, "given twice (first "
			    "at line %d)", sk->props[i].line);
			return;
		}
	if (s->rk == NULL && (s->rk = rd_kafka_conf_new()) == NULL) {
		perr(p, p->lineno, s->name, key, "out of memory");
		return;
	}
	if (rd_kafka_conf_set(s->rk, prop, v, err, sizeof(err)) !=
	    RD_KAFKA_CONF_OK) {
		/* Some of librdkafka's messages end in a newline. */
		err[strcspn(err, "\n")] = '\0';
		perr(p, p->lineno, s->name, key, "librdkafka: %s", err);
		return;
	}
	if ((a = realloc(sk->props, (sk->nprops + 1) * sizeof(*a))) == NULL) {
		perr(p, p->lineno, s->name, key, "out of memory");
		return;
	}
	sk->props = a;
	a = &sk->props[sk->nprops];
	a->line = p->lineno;
	a->name = strdup(prop);
	a->value = strdup(v);
	sk->nprops++;
	if (a->name == NULL || a->value == NULL)
		perr(p, p->lineno, s->name, key, "out of memory");
}

static int
handler(void *user, const char *section, const char *key, const char *v)
{
	struct parser		*p = user;
	struct psect		*s = p->cur;
	const struct directive	*d;
	const char		*why;
	char			 msg[MSGLEN];
	size_t			 i;

	(void)section;		/* ours is in p->cur, see the top */
	if (!p->insection) {
		perr(p, p->lineno, NULL, key, "outside any section (put it "
		    "under [agent], [spool], ...)");
		return 1;
	}
	if (s == NULL)		/* under a bad header, already reported */
		return 1;
	if (*key == '\0') {
		perr(p, p->lineno, s->name, NULL, "missing key before '='");
		return 1;
	}
	if (s->kind == S_SINK && strncmp(key, "kafka.", 6) == 0) {
		set_prop(p, s, key, v);
		return 1;
	}
	if ((d = find_directive(s->kind, key)) == NULL) {
		perr(p, p->lineno, s->name, key, "unknown key");
		return 1;
	}
	i = (size_t)(d - directives);
	if (s->seen[i] != 0) {
		perr(p, p->lineno, s->name, key, "given twice (first at line "
		    "%d)", s->seen[i]);
		return 1;
	}
	s->seen[i] = p->lineno;
	why = set_value(d, psect_obj(p, s->kind, s->idx), v, 0, msg,
	    sizeof(msg));
	if (why != NULL) {
		perr(p, p->lineno, s->name, key, "%s", why);
		if (s->kind == S_SINK && strcmp(key, "type") == 0)
			s->badtype = 1;
	}
	return 1;
}

/* --- Cross-field checks --- */

static int
seen(const struct psect *s, const char *key)
{
	const struct directive	*d = find_directive(s->kind, key);

	assert(d != NULL);
	return s->seen[d - directives];
}

static void
check_sink(struct parser *p, struct psect *s)
{
	struct conf_sink	*sk = psect_obj(p, S_SINK, s->idx);
	const char		*tname;
	char			 key[INI_MAX_LINE];
	size_t			 i;

	if (s->badtype)
		return;
	if (!seen(s, "type")) {
		perr(p, s->line, s->name, "type", "missing (set type = kafka "
		    "or type = avro-files)");
		return;
	}
	tname = sink_types[sk->type];
	if (sk->type == CONF_SINK_KAFKA && sk->brokers == NULL)
		perr(p, s->line, s->name, "brokers", "missing; type = %s "
		    "needs brokers", tname);
	if (sk->type == CONF_SINK_KAFKA && sk->format == CONF_FMT_CONFLUENT &&
	    sk->confluent_id < 0)
		perr(p, s->line, s->name, "confluent_id", "missing; format = "
		    "confluent needs confluent_id");
	if (sk->type == CONF_SINK_AVRO_FILES && sk->dir == NULL)
		perr(p, s->line, s->name, "dir", "missing; type = %s needs "
		    "dir", tname);
	for (i = 0; i < NDIRECTIVES; i++)
		if (directives[i].sect == S_SINK && s->seen[i] &&
		    !(directives[i].sinks & (1u << sk->type)))
			perr(p, s->seen[i], s->name, directives[i].key,
			    "applies only to type = %s",
			    directives[i].sinks & SINK_K ? "kafka" :
			    "avro-files");
	for (i = 0; sk->type != CONF_SINK_KAFKA && i < sk->nprops; i++) {
		snprintf(key, sizeof(key), "kafka.%s", sk->props[i].name);
		perr(p, sk->props[i].line, s->name, key, "applies only to "
		    "type = kafka");
	}
}

/*
 * Are directories A and B one: the same inode when both exist, else the
 * same path once trailing slashes are dropped ("out" and "out/").
 */
static int
same_dir(const char *a, const char *b)
{
	struct stat	sa, sb;
	size_t		la = strlen(a), lb = strlen(b);

	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && memcmp(a, b, la) == 0;
}

/*
 * Two Avro sinks in one directory would publish files of the same names
 * (the names carry the sequence range), each clobbering the other's.
 */
static void
check_avro_dirs(struct parser *p)
{
	struct conf	*c = p->conf;
	size_t		 i, j;

	for (i = 0; i < c->nsinks; i++) {
		if (c->sinks[i].type != CONF_SINK_AVRO_FILES ||
		    c->sinks[i].dir == NULL)
			continue;
		for (j = 0; j < i; j++)
			if (c->sinks[j].type == CONF_SINK_AVRO_FILES &&
			    c->sinks[j].dir != NULL &&
			    same_dir(c->sinks[i].dir, c->sinks[j].dir))
				perr(p, c->sinks[i].line, NULL, NULL,
				    "[sink.%s] dir: '%s' is also the dir of "
				    "[sink.%s]", c->sinks[i].name,
				    c->sinks[i].dir, c->sinks[j].name);
	}
}

static void
check_all(struct parser *p)
{
	struct psect	*s;

	for (s = p->sects; s != NULL; s = s->next)
		if (s->kind == S_SINK)
			check_sink(p, s);
	check_avro_dirs(p);
	for (size_t i = 0; i < p->conf->nstreams; i++)
		if (p->conf->streams[i].schema != NULL &&
		    p->conf->streams[i].allow_opaque)
			perr(p, p->conf->streams[i].line, NULL, NULL,
			    "[stream.%s] allow_opaque: yes, but the stream has "
			    "a schema, which opaque events would skip: choose "
			    "one", p->conf->streams[i].name);
	s = p->global[S_AGENT];
	if (p->conf->agent.strict_streams && p->conf->nstreams == 0)
		perr(p, s != NULL ? seen(s, "strict_streams") : 0, "agent",
		    "strict_streams",
		    "yes, but there is no [stream.NAME] section, so every "
		    "event would be refused");
}

/* --- Loading --- */

static void
parser_free(struct parser *p)
{
	struct psect	*s, *next;

	for (s = p->sects; s != NULL; s = next) {
		next = s->next;
		if (s->rk != NULL)
			rd_kafka_conf_destroy(s->rk);
		free(s);
	}
	free(p->buf);
	if (p->in != NULL)
		fclose(p->in);
}

struct conf *
conf_load(const char *path, void *errf)
{
	struct parser	 p;
	int		 rc;

	memset(&p, 0, sizeof(p));
	p.path = path;
	p.tail = &p.sects;
	p.errf = errf != NULL ? errf : stderr;
	if ((p.conf = calloc(1, sizeof(*p.conf))) == NULL ||
	    (p.conf->path = strdup(path)) == NULL) {
		perr(&p, 0, NULL, NULL, "out of memory");
		goto done;
	}
	if (set_defaults(&p, S_AGENT, p.conf) == -1 ||
	    set_defaults(&p, S_SPOOL, p.conf) == -1 ||
	    set_defaults(&p, S_DEDUP, p.conf) == -1)
		goto done;
	if ((p.in = fopen(path, "re")) == NULL) {
		fprintf(p.errf, "%s: %s\n", path, strerror(errno));
		p.nerrors++;
		goto done;
	}
	rc = ini_parse_stream(reader, &p, handler, &p);
	if (rc != 0 && p.nerrors == 0)	/* the reader should prevent it */
		perr(&p, rc, NULL, NULL, "%s", rc < 0 ? "out of memory" :
		    "syntax error");
	check_all(&p);
done:
	parser_free(&p);
	if (p.nerrors > 0) {
		conf_free(p.conf);
		return NULL;
	}
	return p.conf;
}

static void
sink_free(struct conf_sink *sk)
{
	size_t	i;

	free(sk->brokers);
	free(sk->topic);
	free(sk->key_field);
	for (i = 0; i < sk->nprops; i++) {
		free(sk->props[i].name);
		free(sk->props[i].value);
	}
	free(sk->props);
	free(sk->dir);
	free(sk->codec);
}

void
conf_free(struct conf *c)
{
	size_t	i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nstreams; i++)
		free(c->streams[i].schema);
	free(c->streams);
	for (i = 0; i < c->nsinks; i++)
		sink_free(&c->sinks[i]);
	free(c->sinks);
	free(c->agent.listen);
	free(c->agent.tokens_file);
	free(c->agent.cors_origins);
	free(c->agent.trusted_proxies);
	free(c->spool.dir);
	free(c->spool.encryption_key_file);
	free(c->dedup.json_key);
	free(c->path);
	free(c);
}

const struct conf_stream *
conf_stream_find(const struct conf *c, const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < c->nstreams; i++)
		if (strlen(c->streams[i].name) == len &&
		    memcmp(c->streams[i].name, name, len) == 0)
			return &c->streams[i];
	return NULL;
}

const struct conf_sink *
conf_sink_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; c != NULL && i < c->nsinks; i++)
		if (strcmp(c->sinks[i].name, name) == 0)
			return &c->sinks[i];
	return NULL;
}

/* --- The spool key --- */

static int
unhex(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* 64 hex digits, blanks around them allowed; 0 or -1. */
static int
decode_hex(const unsigned char *b, size_t n, unsigned char key[32])
{
	size_t	i;
	int	hi, lo;

	while (n > 0 && isspace(b[n - 1]))
		n--;
	while (n > 0 && isspace(*b))
		b++, n--;
	if (n != 64)
		return -1;
	for (i = 0; i < 32; i++) {
		if ((hi = unhex(b[2 * i])) == -1 ||
		    (lo = unhex(b[2 * i + 1])) == -1)
			return -1;
		key[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int
conf_read_key(const char *path, unsigned char key[32], char *err,
    size_t errlen)
{
	unsigned char	 buf[256];	/* more than any valid key file */
	size_t		 n = 0;
	ssize_t		 r;
	int		 fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (n < sizeof(buf) &&
	    (r = read(fd, buf + n, sizeof(buf) - n)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		n += (size_t)r;
	}
	if (n == 32) {
		memcpy(key, buf, 32);
		rc = 0;
	} else if (n < sizeof(buf) && decode_hex(buf, n, key) == 0)
		rc = 0;
	else
		snprintf(err, errlen, "%s: not a key: expected 64 hex "
		    "characters or exactly 32 bytes, found %s%zu bytes", path,
		    n == sizeof(buf) ? "at least " : "", n);
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}
