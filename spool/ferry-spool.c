/*
 * ferry-spool.c: the operator's tool for a ferry spool, read like LMDB's
 * mdb_stat.c, with its subcommands in a table like smtpd's smtpctl.c.
 *
 *   ferry-spool [-c FILE] [-d DIR] [-k KEYFILE] [--json] COMMAND [ARGS]
 *
 * Invariants:
 *  - The tool never creates a spool (opt.create = 0).  Only the commands
 *    the table marks as writing change it (cursor --set and --delete, dead
 *    drop), each through the library, one call per change.
 *  - Reads are short: ls and tail page through the spool with spool_read()
 *    in chunks of at most PAGE events or about PAGE_BYTES of output, one
 *    read transaction each.  What a callback prints goes to memory and
 *    reaches stdout only after the transaction ends, so neither a big
 *    spool nor a stalled pipe keeps a reader pinning pages that
 *    ferry-agent wants back.
 *  - With -d and no -c no configuration is read: stat then shows the
 *    library's default max_size as the limit, and -k gives the key.
 *  - A command parses its arguments before anything is opened: a usage
 *    error exits 64 without touching the configuration or the spool.
 *  - Exit status: 0 ok, 1 runtime failure or damage found, 64 usage, 78 bad
 *    configuration (sysexits.h).  An error is one line on stderr naming its
 *    object; the library's messages are printed as they are.
 *  - Human output escapes control bytes of stored strings, which come from
 *    the network; --json is one object (stat, check, backup) or one object
 *    per line (ls, tail, cursor, dead).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "conf.h"
#include "spool.h"

#define PROG		"ferry-spool"
#define PAGE		256	/* events per read transaction, at most */
#define PAGE_BYTES	(1 << 20)	/* output per read transaction, about */
#define POLL_MS		200	/* tail -f */
#define TIMEMAX		32	/* "2024-05-01T10:00:00.000Z" */

struct tool {
	const char	*confpath;	/* -c, or NULL */
	const char	*dir;		/* -d, overrides the config */
	const char	*keyfile;	/* -k, overrides the config */
	int		 json;
	FILE		*out;		/* stdout, or memory: see out_begin() */
	char		*obuf;
	size_t		 olen;
	struct conf	*conf;
	struct spool	*sp;
	unsigned char	 key[SPOOL_KEYLEN];
	char		 err[SPOOL_ERRMAX];
};

struct cmd {
	const char	*name;
	int		(*fn)(struct tool *, int, char **);
	int		 writes;	/* may change the spool */
	const char	*usage;
	const char	*help;
};

/* Filters and position of a walk through the events (ls, tail). */
struct walk {
	struct tool	*t;
	const char	*stream;	/* only this stream, or NULL */
	uint64_t	 after;		/* last seq seen */
	uint64_t	 to;		/* stop past this seq */
	uint64_t	 limit;		/* stop after this many, 0: no limit */
	uint64_t	 shown;
	int		 done;		/* a filter says stop */
	int		 full;		/* this chunk has output enough */
};

static int	cmd_stat(struct tool *, int, char **);
static int	cmd_ls(struct tool *, int, char **);
static int	cmd_cat(struct tool *, int, char **);
static int	cmd_tail(struct tool *, int, char **);
static int	cmd_check(struct tool *, int, char **);
static int	cmd_backup(struct tool *, int, char **);
static int	cmd_cursor(struct tool *, int, char **);
static int	cmd_dead(struct tool *, int, char **);

static const struct cmd cmds[] = {
	{ "stat", cmd_stat, 0, "stat [-r[r]]",
	    "counters, sizes, sink cursors and lag; -r readers, -rr clears "
	    "stale ones" },
	{ "ls", cmd_ls, 0,
	    "ls [--stream NAME] [--from SEQ] [--to SEQ] [--limit N]",
	    "one line per event" },
	{ "cat", cmd_cat, 0, "cat SEQ...", "the bodies, exactly as sent" },
	{ "tail", cmd_tail, 0, "tail [-f] [-n N]",
	    "the last N events (10); -f waits for more" },
	{ "check", cmd_check, 0, "check",
	    "checks every record and index; exit 1 on damage" },
	{ "backup", cmd_backup, 0, "backup DIR", "a consistent hot copy" },
	{ "cursor", cmd_cursor, 1, "cursor [SINK] [--set SEQ | --delete]",
	    "lists, shows, moves or deletes sink cursors" },
	{ "dead", cmd_dead, 1,
	    "dead [ls] [--sink SINK] | dead drop|retry SINK SEQ|--all",
	    "lists, drops, or marks for another delivery, dead letters" },
};
#define NCMDS	(sizeof(cmds) / sizeof(cmds[0]))

static volatile sig_atomic_t gotsig;

static void
usage(FILE *f)
{
	size_t	i;

	fprintf(f,
	    "usage: " PROG " [-c FILE] [-d DIR] [-k KEYFILE] [--json] "
	    "COMMAND [ARGS]\n"
	    "       " PROG " [-c FILE] --check-config\n"
	    "       " PROG " --version | --help\n\n"
	    "commands (* may change the spool):\n");
	for (i = 0; i < NCMDS; i++)
		fprintf(f, " %c %s\n       %s\n", cmds[i].writes ? '*' : ' ',
		    cmds[i].usage, cmds[i].help);
	fprintf(f, "\noptions:\n"
	    "  -c FILE         configuration (default " CONF_DEFAULT_PATH ")\n"
	    "  -d DIR          spool directory, overrides [spool] dir; "
	    "with -d and no -c\n"
	    "                  no configuration is read\n"
	    "  -k KEYFILE      encryption key, overrides [spool] "
	    "encryption_key_file\n"
	    "  --json          machine-readable output\n"
	    "  --check-config  validate the configuration and exit\n\n"
	    "exit status: 0 ok, 1 failure or damage found, 64 usage, "
	    "78 bad configuration\n");
}

static const struct cmd *
cmd_find(const char *name)
{
	size_t	i;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static int
cmd_usage(const char *name)
{
	fprintf(stderr, "usage: " PROG " %s\n", cmd_find(name)->usage);
	return EX_USAGE;
}

/*
 * Parses S, the argument WHAT of command CMD, as a decimal u64 with
 * nothing around it.  Returns 0, or -1 after saying what is wrong.
 */
static int
num_arg(const char *cmd, const char *what, const char *s, uint64_t *out)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	if (*s >= '0' && *s <= '9' && (v = strtoull(s, &end, 10), errno == 0) &&
	    *end == '\0') {
		*out = v;
		return 0;
	}
	fprintf(stderr, PROG " %s: %s: not a number: %s\n", cmd, what, s);
	return -1;
}

static uint64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ISO-8601 UTC with milliseconds into BUF of TIMEMAX bytes. */
static const char *
fmt_time(uint64_t ms, char *buf)
{
	struct tm	tm;
	time_t		sec = (time_t)(ms / 1000);
	size_t		n;

	if (gmtime_r(&sec, &tm) == NULL ||
	    (n = strftime(buf, TIMEMAX, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, TIMEMAX, "@%" PRIu64, ms);
		return buf;
	}
	snprintf(buf + n, TIMEMAX - n, ".%03uZ", (unsigned)(ms % 1000));
	return buf;
}

static const char *
fmt_age(uint64_t ms, char *buf, size_t len)
{
	uint64_t	s = ms / 1000;

	if (s < 60)
		snprintf(buf, len, "%" PRIu64 ".%03us", s,
		    (unsigned)(ms % 1000));
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60,
		    s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
		    s / 60 % 60);
	return buf;
}

static const char *
fmt_size(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double	v = (double)n;
	size_t	i = 0;

	while (v >= 1024 && i + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[i]);
	return buf;
}

/* Writes P, escaping control bytes and backslashes; "-" when empty. */
static void
put_safe(FILE *f, const char *p, size_t len)
{
	size_t		i;
	unsigned char	c;

	if (p == NULL || len == 0) {
		putc('-', f);
		return;
	}
	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f || c == '\\')
			fprintf(f, "\\x%02x", c);
		else
			putc(c, f);
	}
}

#define J(v)	((json_int_t)(v))

/*
 * Sets NAME to the bytes P as a JSON string when they are valid UTF-8,
 * else NAME_base64 to their base64; NAME is null when P is absent.
 */
static void
jbytes(json_t *o, const char *name, const void *p, size_t len, int opt)
{
	json_t	*s;
	char	 b64name[64], *b64;
	size_t	 sz;

	if (opt && (p == NULL || len == 0)) {
		json_object_set_new(o, name, json_null());
		return;
	}
	if (p == NULL)
		p = "";
	if ((s = json_stringn(p, len)) != NULL) {
		json_object_set_new(o, name, s);
		return;
	}
	sz = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	if ((b64 = malloc(sz)) == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		exit(1);
	}
	sodium_bin2base64(b64, sz, p, len, sodium_base64_VARIANT_ORIGINAL);
	snprintf(b64name, sizeof(b64name), "%s_base64", name);
	json_object_set_new(o, b64name, json_string(b64));
	free(b64);
}

/* Prints O on one line (NDJSON) or indented, and frees it. */
static void
jprint(FILE *f, json_t *o, int oneline)
{
	json_dumpf(o, f, oneline ? JSON_COMPACT : JSON_INDENT(2));
	putc('\n', f);
	json_decref(o);
}

static json_t *
event_json(const struct spool_event *ev)
{
	json_t	*o;
	char	 hex[2 * SPOOL_IDLEN + 1], tbuf[TIMEMAX];

	spool_id_hex(ev->id, hex);
	o = json_pack("{s:I, s:I, s:s}", "seq", J(ev->seq), "received_ms",
	    J(ev->received_ms), "received", fmt_time(ev->received_ms, tbuf));
	jbytes(o, "stream", ev->stream, ev->stream_len, 0);
	jbytes(o, "content_type", ev->ctype, ev->ctype_len, 1);
	json_object_set_new(o, "id", json_string(hex));
	jbytes(o, "key", ev->ikey, ev->ikey_len, 1);
	jbytes(o, "remote_addr", ev->addr, ev->addr_len, 1);
	json_object_set_new(o, "body_len", json_integer(J(ev->body_len)));
	jbytes(o, "body", ev->body, ev->body_len, 0);
	return o;
}

/* seq, received, stream, content type, body length, id, key. */
static void
print_event(const struct tool *t, const struct spool_event *ev)
{
	char	hex[2 * SPOOL_IDLEN + 1], tbuf[TIMEMAX];

	if (t->json) {
		jprint(t->out, event_json(ev), 1);
		return;
	}
	spool_id_hex(ev->id, hex);
	fprintf(t->out, "%" PRIu64 " %s ", ev->seq, fmt_time(ev->received_ms,
	    tbuf));
	put_safe(t->out, ev->stream, ev->stream_len);
	putc(' ', t->out);
	put_safe(t->out, ev->ctype, ev->ctype_len);
	fprintf(t->out, " %zu %s ", ev->body_len, hex);
	put_safe(t->out, ev->ikey, ev->ikey_len);
	putc('\n', t->out);
}

/* Loads the configuration unless -d was given without -c. */
static int
tool_conf(struct tool *t)
{
	if (t->conf != NULL || (t->dir != NULL && t->confpath == NULL))
		return 0;
	t->conf = conf_load(t->confpath ? t->confpath : CONF_DEFAULT_PATH,
	    stderr);
	return t->conf == NULL ? EX_CONFIG : 0;
}

static int
tool_open(struct tool *t)
{
	struct spool_options	 opt;
	const char		*keyfile = t->keyfile;
	int			 rc;

	if ((rc = tool_conf(t)) != 0)
		return rc;
	memset(&opt, 0, sizeof(opt));
	opt.dir = t->dir;
	if (t->conf != NULL) {
		if (opt.dir == NULL)
			opt.dir = t->conf->spool.dir;
		opt.max_size = t->conf->spool.max_size;
		opt.dedup_window_ms = t->conf->dedup.window_ms;
		if (keyfile == NULL)
			keyfile = t->conf->spool.encryption_key_file;
	}
	if (opt.dir == NULL || *opt.dir == '\0') {
		fprintf(stderr, PROG ": %s: no [spool] dir, and no -d\n",
		    t->conf->path);
		return EX_CONFIG;
	}
	if (keyfile != NULL) {
		if (conf_read_key(keyfile, t->key, t->err,
		    sizeof(t->err)) == -1) {
			fprintf(stderr, PROG ": %s\n", t->err);
			return EX_CONFIG;
		}
		opt.key = t->key;
	}
	opt.create = 0;
	if ((rc = spool_open(&t->sp, &opt, t->err)) != SPOOL_OK) {
		fprintf(stderr, PROG ": %s\n", t->err);
		return 1;
	}
	return 0;
}

/*
 * Output made in a library callback goes to memory and is written once the
 * read transaction has ended, so a slow reader of our stdout never holds a
 * transaction open (it would pin pages that ferry-agent wants back).
 */
static int
out_begin(struct tool *t)
{
	if ((t->out = open_memstream(&t->obuf, &t->olen)) != NULL)
		return 0;
	snprintf(t->err, sizeof(t->err), "memory: %s", strerror(errno));
	t->out = stdout;
	return -1;
}

static void
out_end(struct tool *t)
{
	fclose(t->out);
	fwrite(t->obuf, 1, t->olen, stdout);
	free(t->obuf);
	t->obuf = NULL;
	t->out = stdout;
}

static int
fail(struct tool *t)
{
	fflush(stdout);
	fprintf(stderr, PROG ": %s\n", t->err);
	return 1;
}

/*
 * Command options: each command gives its own table; --json is accepted
 * after the command as well as before it.
 */
#define OPT_JSON	{ "json", no_argument, NULL, 'J' }
#define OPT_END		{ NULL, 0, NULL, 0 }

static int
getopt_cmd(struct tool *t, int argc, char **argv, const char *opts,
    const struct option *lopts)
{
	int	ch;

	while ((ch = getopt_long(argc, argv, opts, lopts, NULL)) == 'J')
		t->json = 1;
	return ch;
}

struct statctx {
	struct tool	*t;
	json_t		*obj;		/* stat --json: sink name -> object */
	uint64_t	 last;		/* last seq held, for the lag */
};

/* The counters stat shows, in order: text label, JSON key, field. */
#define F(label, field)	{ label, #field, offsetof(struct spool_stat, field) }
static const struct {
	const char	*label, *key;
	size_t		 off;
} stat_fields[] = {
	F("events", events), F("first seq", first_seq),
	F("last seq", last_seq), F("next seq", next_seq),
	F("dedup entries", dedup_entries), F("dead letters", deadletters),
	F("used bytes", used_bytes), F("max bytes", max_bytes),
	F("extent", file_bytes), F("file size", file_size),
	F(NULL, oldest_ms),					/* JSON only */
};
#undef F
#define NSTAT	(sizeof(stat_fields) / sizeof(stat_fields[0]))

#define STALL_MS	60000	/* a sink idle this long with a lag */

/*
 * How long SINK's cursor may stand while events wait before stat calls it
 * stalled: STALL_MS, and for an Avro file sink (its cursor moves when a
 * file is published) roll_interval on top, when the configuration is known.
 */
static uint64_t
stall_ms(const struct conf *cf, const char *sink)
{
	const struct conf_sink *sc = conf_sink_find(cf, sink);

	return sc != NULL && sc->type == CONF_SINK_AVRO_FILES ?
	    STALL_MS + sc->roll_interval_ms : STALL_MS;
}

static uint64_t
lag(uint64_t last, uint64_t cursor)
{
	return last > cursor ? last - cursor : 0;
}

/* A sink's cursor: into c->obj, as NDJSON, or as a line. */
static int
sink_cb(const char *sink, uint64_t seq, uint64_t updated_ms, void *arg)
{
	struct statctx	*c = arg;
	char		 tbuf[TIMEMAX], abuf[32];
	json_t		*o;
	uint64_t	 idle = lag(now_ms(), updated_ms);
	/* Events wait and the cursor has not moved: is the forwarder up? */
	int		 stalled = lag(c->last, seq) > 0 &&
			    idle >= stall_ms(c->t->conf, sink);

	if (c->t->json) {
		o = json_pack("{s:I, s:I, s:I, s:I, s:b}", "cursor", J(seq),
		    "lag", J(lag(c->last, seq)), "updated_ms", J(updated_ms),
		    "idle_ms", J(idle), "stalled", stalled);
		if (c->obj != NULL)
			json_object_set_new(c->obj, sink, o);
		else {
			json_object_set_new(o, "sink", json_string(sink));
			jprint(c->t->out, o, 1);
		}
		return 0;
	}
	fprintf(c->t->out, "sink %s: cursor %" PRIu64 ", lag %" PRIu64
	    ", updated %s%s%s%s\n", sink, seq, lag(c->last, seq),
	    fmt_time(updated_ms, tbuf), stalled ? "  STALLED: no progress "
	    "for " : "", stalled ? fmt_age(idle, abuf, sizeof(abuf)) : "",
	    stalled ? " while events wait (is ferry-forwarder running?)" :
	    "");
	return 0;
}

/* Every sink's cursor through sink_cb(); -1 on error. */
static int
cursors(struct tool *t, struct statctx *c)
{
	int	rc;

	if (out_begin(t) == -1)
		return -1;
	rc = spool_cursor_each(t->sp, sink_cb, c, t->err);
	out_end(t);
	return rc < 0 ? -1 : 0;
}

static void
reader_cb(const char *line, void *arg)
{
	json_t	*arr = arg;
	size_t	 n = strcspn(line, "\n");

	if (arr != NULL)
		json_array_append_new(arr, json_stringn(line, n));
	else
		printf("  %.*s\n", (int)n, line);
}

static void
stat_text(const struct spool_stat *st, const char *dir)
{
	char	a[32], b[32], tbuf[TIMEMAX];
	size_t	i;

	printf("spool:          %s\nspool id:       %s\nformat:         %u\n"
	    "encrypted:      %s\n", dir, st->spool_id, st->format,
	    st->encrypted ? "yes" : "no");
	for (i = 0; i < NSTAT; i++)
		if (stat_fields[i].label != NULL)
			printf("%s:%*s%" PRIu64 "\n", stat_fields[i].label,
			    (int)(15 - strlen(stat_fields[i].label)), "",
			    *(const uint64_t *)(const void *)((const char *)st +
			    stat_fields[i].off));
	if (st->events > 0)
		printf("oldest event:   %s (age %s)\n", fmt_time(st->oldest_ms,
		    tbuf), fmt_age(lag(now_ms(), st->oldest_ms), a, sizeof(a)));
	printf("used:           %s of %s (%.1f%%)\n", fmt_size(st->used_bytes,
	    a, sizeof(a)), fmt_size(st->max_bytes, b, sizeof(b)),
	    st->max_bytes ? 100.0 * (double)st->used_bytes /
	    (double)st->max_bytes : 0);
	printf("readers:        %u of %u\n", st->readers, st->max_readers);
}

static json_t *
stat_json(const struct spool_stat *st, const char *dir)
{
	json_t	*o;
	size_t	 i;

	o = json_pack("{s:s, s:s, s:I, s:b, s:I, s:I}", "spool", dir,
	    "spool_id", st->spool_id, "format", J(st->format), "encrypted",
	    st->encrypted, "readers", J(st->readers), "max_readers",
	    J(st->max_readers));
	for (i = 0; i < NSTAT; i++)
		json_object_set_new(o, stat_fields[i].key, json_integer(J(
		    *(const uint64_t *)(const void *)((const char *)st +
		    stat_fields[i].off))));
	json_object_set_new(o, "oldest_age_ms", st->events == 0 ?
	    json_null() : json_integer(J(lag(now_ms(), st->oldest_ms))));
	return o;
}

/* stat -r lists reader slots, -rr clears stale ones first. */
static int
stat_readers(struct tool *t, int rflag, json_t *o)
{
	json_t	*arr = o ? json_array() : NULL;
	int	 cleared = 0;

	if (o == NULL)
		printf("reader table:\n");
	if (spool_readers(t->sp, rflag > 1, reader_cb, arr, &cleared,
	    t->err) != SPOOL_OK) {
		json_decref(arr);
		return fail(t);
	}
	if (o != NULL) {
		json_object_set_new(o, "reader_table", arr);
		if (rflag > 1)
			json_object_set_new(o, "stale_readers_cleared",
			    json_integer(cleared));
	} else if (rflag > 1)
		printf("%d stale readers cleared.\n", cleared);
	return 0;
}

static int
cmd_stat(struct tool *t, int argc, char **argv)
{
	static const struct option lopts[] = { OPT_JSON, OPT_END };
	struct spool_stat	 st;
	struct statctx		 c = { t, NULL, 0 };
	json_t			*o = NULL;
	int			 ch, rc, rflag = 0;

	while ((ch = getopt_cmd(t, argc, argv, "r", lopts)) == 'r')
		rflag++;
	if (ch != -1 || optind != argc)
		return cmd_usage("stat");
	if ((rc = tool_open(t)) != 0)
		return rc;
	if (spool_stat(t->sp, &st, t->err) != SPOOL_OK)
		return fail(t);
	c.last = st.last_seq;
	if (t->json) {
		o = stat_json(&st, spool_dir(t->sp));
		c.obj = json_object();
		json_object_set_new(o, "sinks", c.obj);
	} else
		stat_text(&st, spool_dir(t->sp));
	if (cursors(t, &c) == -1)
		rc = fail(t);
	else if (rflag)
		rc = stat_readers(t, rflag, o);
	if (o != NULL && rc == 0)
		jprint(stdout, o, 0);
	else
		json_decref(o);
	return rc;
}

static int
walk_cb(const struct spool_event *ev, void *arg)
{
	struct walk	*w = arg;

	if (ev->seq > w->to) {
		w->done = 1;
		return 1;
	}
	w->after = ev->seq;
	if (w->stream != NULL && (ev->stream_len != strlen(w->stream) ||
	    memcmp(ev->stream, w->stream, ev->stream_len) != 0))
		return 0;
	print_event(w->t, ev);
	if (w->limit != 0 && ++w->shown >= w->limit) {
		w->done = 1;
		return 1;
	}
	return (w->full = ftello(w->t->out) >= PAGE_BYTES);
}

/* Prints the events after w->after until the filters stop or none is left. */
static int
walk(struct walk *w)
{
	long	n;

	do {
		w->full = 0;
		if (out_begin(w->t) == -1)
			return fail(w->t);
		n = spool_read(w->t->sp, w->after, PAGE, walk_cb, w, w->t->err);
		out_end(w->t);
		if (n < 0)
			return fail(w->t);
	} while (!w->done && (n == PAGE || w->full));
	return 0;
}

static int
cmd_ls(struct tool *t, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "stream", required_argument, NULL, 's' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "limit", required_argument, NULL, 'n' },
		OPT_JSON, OPT_END
	};
	struct walk	w = { t, NULL, 0, UINT64_MAX, 0, 0, 0, 0 };
	uint64_t	from = 0;
	int		ch, rc;

	while ((ch = getopt_cmd(t, argc, argv, "", lopts)) != -1) {
		if (ch == 's')
			w.stream = optarg;
		else if ((ch == 'f' && num_arg("ls", "--from", optarg,
		    &from) == -1) || (ch == 't' && num_arg("ls", "--to",
		    optarg, &w.to) == -1) || (ch == 'n' && (num_arg("ls",
		    "--limit", optarg, &w.limit) == -1 || w.limit == 0)) ||
		    ch == '?')
			return cmd_usage("ls");
	}
	w.after = from > 0 ? from - 1 : 0;
	if (optind != argc)
		return cmd_usage("ls");
	if ((rc = tool_open(t)) != 0)
		return rc;
	return walk(&w);
}

static int
cat_cb(const struct spool_event *ev, void *arg)
{
	struct tool	*t = arg;

	if (ev->body_len > 0)
		fwrite(ev->body, 1, ev->body_len, t->out);
	return 0;
}

static int
cmd_cat(struct tool *t, int argc, char **argv)
{
	static const struct option lopts[] = { OPT_JSON, OPT_END };
	uint64_t	seq;
	int		i, ch, rc, status = 0;

	if ((ch = getopt_cmd(t, argc, argv, "", lopts)) != -1 ||
	    optind == argc)
		return cmd_usage("cat");
	for (i = optind; i < argc; i++)
		if (num_arg("cat", "SEQ", argv[i], &seq) == -1)
			return EX_USAGE;
	if ((rc = tool_open(t)) != 0)
		return rc;
	for (i = optind; i < argc; i++) {
		seq = strtoull(argv[i], NULL, 10);
		if (out_begin(t) == -1)
			return fail(t);
		rc = spool_get(t->sp, seq, cat_cb, t, t->err);
		out_end(t);
		if (rc != SPOOL_OK)
			status = fail(t);
	}
	return status;
}

static void
on_signal(int sig)
{
	gotsig = sig;
}

/*
 * Sets w->after so that the walk shows the last N events.  Seqs held are
 * dense: a commit takes consecutive numbers and trim removes the oldest.
 */
static int
tail_start(struct tool *t, struct walk *w, uint64_t n)
{
	struct spool_stat	st;

	if (spool_stat(t->sp, &st, t->err) != SPOOL_OK)
		return fail(t);
	w->after = st.last_seq > n ? st.last_seq - n : 0;
	if (st.first_seq > 0 && w->after < st.first_seq - 1)
		w->after = st.first_seq - 1;
	return 0;
}

static int
cmd_tail(struct tool *t, int argc, char **argv)
{
	static const struct option lopts[] = { OPT_JSON, OPT_END };
	struct sigaction	 sa;
	struct timespec		 ts = { 0, POLL_MS * 1000000L };
	struct walk		 w;
	uint64_t		 n = 10;
	int			 ch, rc, follow = 0;

	while ((ch = getopt_cmd(t, argc, argv, "fn:", lopts)) != -1) {
		if (ch == 'f')
			follow = 1;
		else if (ch != 'n')
			return cmd_usage("tail");
		else if (num_arg("tail", "-n", optarg, &n) == -1)
			return EX_USAGE;
	}
	if (optind != argc)
		return cmd_usage("tail");
	if ((rc = tool_open(t)) != 0)
		return rc;
	if (follow) {		/* SIGINT, SIGTERM: stop between polls */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	memset(&w, 0, sizeof(w));
	w.t = t;
	w.to = UINT64_MAX;
	if ((rc = tail_start(t, &w, n)) != 0 || (rc = walk(&w)) != 0)
		return rc;
	while (follow && !gotsig) {
		fflush(stdout);
		nanosleep(&ts, NULL);
		if (!gotsig && (rc = walk(&w)) != 0)
			return rc;
	}
	return 0;
}

/* A problem check found: into the JSON array, or a line. */
static void
problem_cb(const char *what, void *arg)
{
	struct statctx	*c = arg;

	if (c->obj != NULL)
		json_array_append_new(c->obj, json_string(what));
	else
		fprintf(c->t->out, "%s\n", what);
}

static int	check_walk(struct tool *, int, char **);

/*
 * LMDB trusts its file: a damaged page can make it abort or fault.  So the
 * walk runs in a child, and a child killed by a signal is reported as what
 * it is, damage, instead of the tool dying with it.
 */
static int
cmd_check(struct tool *t, int argc, char **argv)
{
	pid_t	pid;
	int	status;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "ferry-spool: check: fork: %s\n",
		    strerror(errno));
		return 1;
	}
	if (pid == 0) {
		int rc = check_walk(t, argc, argv);

		fflush(stdout);
		fflush(stderr);
		_exit(rc);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return 1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	fprintf(stderr, "ferry-spool: check: LMDB stopped with signal %d "
	    "while walking the spool: a page of data.mdb is damaged; restore "
	    "it from a backup (ferry-spool backup)\n", WTERMSIG(status));
	printf("check: damaged (LMDB aborted walking the spool)\n");
	return 1;
}

static int
check_walk(struct tool *t, int argc, char **argv)
{
	static const struct option lopts[] = { OPT_JSON, OPT_END };
	struct spool_stat	 st;
	struct statctx		 c = { t, NULL, 0 };
	long			 n;
	int			 rc;

	if (getopt_cmd(t, argc, argv, "", lopts) != -1 || optind != argc)
		return cmd_usage("check");
	if ((rc = tool_open(t)) != 0)
		return rc;
	if (spool_stat(t->sp, &st, t->err) != SPOOL_OK)
		return fail(t);
	if (t->json)
		c.obj = json_array();
	else if (out_begin(t) == -1)
		return fail(t);
	n = spool_check(t->sp, problem_cb, &c, t->err);
	if (!t->json)
		out_end(t);
	if (n < 0) {
		json_decref(c.obj);
		return fail(t);
	}
	if (t->json)
		jprint(stdout, json_pack("{s:s, s:I, s:o}", "spool",
		    spool_dir(t->sp), "events", J(st.events), "problems",
		    c.obj), 0);
	else
		printf("check: %" PRIu64 " events, %ld problems\n", st.events,
		    n);
	return n == 0 ? 0 : 1;
}

static int
cmd_backup(struct tool *t, int argc, char **argv)
{
	static const struct option lopts[] = { OPT_JSON, OPT_END };
	int	rc;

	if (getopt_cmd(t, argc, argv, "", lopts) != -1 || optind + 1 != argc)
		return cmd_usage("backup");
	if ((rc = tool_open(t)) != 0)
		return rc;
	if (spool_backup(t->sp, argv[optind], t->err) != SPOOL_OK)
		return fail(t);
	if (t->json)
		jprint(stdout, json_pack("{s:s, s:s}", "spool",
		    spool_dir(t->sp), "backup", argv[optind]), 0);
	else
		printf("backup of %s written to %s\n", spool_dir(t->sp),
		    argv[optind]);
	return 0;
}

/* Moves SINK's cursor to SEQ, or deletes it when DEL; prints old -> new. */
static int
cursor_write(struct tool *t, const char *sink, uint64_t seq, int del)
{
	uint64_t	old, upd;
	char		was[24];
	size_t		i;
	int		rc;

	/*
	 * A running forwarder writes its own position over the change: its
	 * lock, held until the tool exits, keeps one from running meanwhile.
	 */
	if ((rc = spool_forwarder_lock(t->sp, t->err)) == SPOOL_LOCKED) {
		fprintf(stderr, PROG ": %s: ferry-forwarder is running on this "
		    "spool and would write over the cursor: stop it first "
		    "(systemctl stop ferry-forwarder), then move the cursor\n",
		    spool_dir(t->sp));
		return 1;
	}
	if (rc != SPOOL_OK)
		return fail(t);
	/* The forwarder ignores cursors of sinks it has not configured. */
	if (!del && t->conf != NULL && conf_sink_find(t->conf, sink) == NULL) {
		fprintf(stderr, PROG ": %s has no [sink.%s]: ferry-forwarder "
		    "would ignore its cursor (the sinks:", t->conf->path, sink);
		for (i = 0; i < t->conf->nsinks; i++)
			fprintf(stderr, " %s", t->conf->sinks[i].name);
		fprintf(stderr, "%s)\n", t->conf->nsinks ? "" : " none");
		return 1;
	}
	rc = spool_cursor_get(t->sp, sink, &old, &upd, t->err);
	if (rc != SPOOL_OK && rc != SPOOL_NOTFOUND)
		return fail(t);
	if (rc == SPOOL_OK)
		snprintf(was, sizeof(was), "%" PRIu64, old);
	else
		snprintf(was, sizeof(was), "none");
	if (del)
		rc = spool_cursor_delete(t->sp, sink, t->err);
	else
		rc = spool_cursor_set(t->sp, sink, seq, now_ms(), t->err);
	if (rc != SPOOL_OK)
		return fail(t);
	if (del)
		printf("cursor %s: %s -> deleted\n", sink, was);
	else
		printf("cursor %s: %s -> %" PRIu64 "\n", sink, was, seq);
	return 0;
}

static int
cmd_cursor(struct tool *t, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "set", required_argument, NULL, 's' },
		{ "delete", no_argument, NULL, 'D' },
		OPT_JSON, OPT_END
	};
	struct spool_stat	 st;
	struct statctx		 c = { t, NULL, 0 };
	const char		*sink = NULL;
	uint64_t		 seq = 0, upd;
	int			 ch, rc, set = 0, del = 0;

	while ((ch = getopt_cmd(t, argc, argv, "", lopts)) != -1) {
		if (ch == 'D')
			del = 1;
		else if (ch != 's')
			return cmd_usage("cursor");
		else if (set++, num_arg("cursor", "--set", optarg, &seq) == -1)
			return EX_USAGE;
	}
	if (optind < argc)
		sink = argv[optind++];
	if (optind != argc || (set && del) || ((set || del) && sink == NULL))
		return cmd_usage("cursor");
	if ((rc = tool_open(t)) != 0)
		return rc;
	if (set || del)
		return cursor_write(t, sink, seq, del);
	if (spool_stat(t->sp, &st, t->err) != SPOOL_OK)
		return fail(t);
	c.last = st.last_seq;
	if (sink == NULL)
		return cursors(t, &c) == -1 ? fail(t) : 0;
	if (spool_cursor_get(t->sp, sink, &seq, &upd, t->err) != SPOOL_OK)
		return fail(t);
	return sink_cb(sink, seq, upd, &c);
}

/* seq, sink, time, stream, body length, reason. */
static void
dead_print(const struct tool *t, const struct spool_dead *d,
    const struct spool_event *ev)
{
	char	 tbuf[TIMEMAX];
	json_t	*o;

	fmt_time(d->dead_ms, tbuf);
	if (t->json) {
		o = json_pack("{s:I, s:s, s:I, s:s, s:b}", "seq", J(d->seq),
		    "sink", d->sink, "dead_ms", J(d->dead_ms), "dead", tbuf,
		    "retry", d->retry);
		jbytes(o, "reason", d->reason, strlen(d->reason), 0);
		if (ev != NULL) {
			jbytes(o, "stream", ev->stream, ev->stream_len, 0);
			json_object_set_new(o, "body_len",
			    json_integer(J(ev->body_len)));
		}
		jprint(t->out, o, 1);
		return;
	}
	fprintf(t->out, "%" PRIu64 " %s %s%s ", d->seq, d->sink, tbuf,
	    d->retry ? " retry" : "");
	if (ev != NULL) {
		put_safe(t->out, ev->stream, ev->stream_len);
		fprintf(t->out, " %zu ", ev->body_len);
	} else
		fprintf(t->out, "- - ");
	put_safe(t->out, d->reason, strlen(d->reason));
	putc('\n', t->out);
}

static int
dead_cb(const struct spool_dead *d, const struct spool_event *ev, void *arg)
{
	dead_print(arg, d, ev);
	return 0;
}

static int
dead_first_cb(const struct spool_dead *d, const struct spool_event *ev,
    void *arg)
{
	(void)ev;
	*(uint64_t *)arg = d->seq;
	return 1;
}

/* Drops SINK's dead letter SEQ, or with ALL each of them, oldest first. */
static int
dead_drop(struct tool *t, const char *sink, uint64_t seq, int all)
{
	uint64_t	n;

	if (!all) {
		if (spool_dead_drop(t->sp, sink, seq, t->err) != SPOOL_OK)
			return fail(t);
		printf("dropped dead letter %" PRIu64 " of sink %s\n", seq,
		    sink);
		return 0;
	}
	for (n = 0;; n++) {
		seq = 0;	/* seqs start at 1 */
		if (spool_dead_each(t->sp, sink, dead_first_cb, &seq,
		    t->err) < 0)
			return fail(t);
		if (seq == 0)
			break;
		if (spool_dead_drop(t->sp, sink, seq, t->err) != SPOOL_OK)
			return fail(t);
	}
	printf("dropped %" PRIu64 " dead letters of sink %s\n", n, sink);
	return 0;
}

/* Marks one (SEQ) or all (0) of SINK's dead letters for another try. */
static int
dead_retry(struct tool *t, const char *sink, uint64_t seq)
{
	const struct conf_sink	*sc;
	size_t			 n;

	/* An Avro file sink's dead letters are events it can never write. */
	if ((sc = conf_sink_find(t->conf, sink)) != NULL &&
	    sc->type == CONF_SINK_AVRO_FILES) {
		fprintf(stderr, PROG ": sink %s writes Avro files, which never "
		    "resend a dead letter (it did not fit the stream's schema): "
		    "drop it, or fix the schema and replay\n", sink);
		return 1;
	}
	if (spool_dead_mark(t->sp, sink, seq, 1, NULL, now_ms(), &n,
	    t->err) != SPOOL_OK)
		return fail(t);
	printf("marked %zu dead letters of sink %s for retry: ferry-forwarder "
	    "resends them (Kafka sinks) and drops each one delivered\n", n,
	    sink);
	return 0;
}

static int
cmd_dead(struct tool *t, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "sink", required_argument, NULL, 's' },
		{ "all", no_argument, NULL, 'a' },
		OPT_JSON, OPT_END
	};
	const char	*sink = NULL, *verb = "ls";
	uint64_t	 seq = 0;
	int		 ch, rc, all = 0;

	while ((ch = getopt_cmd(t, argc, argv, "", lopts)) != -1) {
		if (ch == 's')
			sink = optarg;
		else if (ch == 'a')
			all = 1;
		else
			return cmd_usage("dead");
	}
	if (optind < argc)
		verb = argv[optind++];
	if (strcmp(verb, "ls") == 0) {
		if (optind != argc || all)
			return cmd_usage("dead");
	} else if (strcmp(verb, "drop") == 0 || strcmp(verb, "retry") == 0) {
		if (sink != NULL || optind == argc)
			return cmd_usage("dead");
		sink = argv[optind++];
		if (optind + !all != argc)
			return cmd_usage("dead");
		if (!all && num_arg("dead", "SEQ", argv[optind],
		    &seq) == -1)
			return EX_USAGE;
	} else
		return cmd_usage("dead");
	if ((rc = tool_open(t)) != 0)
		return rc;
	if (strcmp(verb, "drop") == 0)
		return dead_drop(t, sink, seq, all);
	if (strcmp(verb, "retry") == 0)
		return dead_retry(t, sink, seq);
	if (out_begin(t) == -1)
		return fail(t);
	rc = spool_dead_each(t->sp, sink, dead_cb, t, t->err) < 0;
	out_end(t);
	return rc ? fail(t) : 0;
}

/* --check-config: the configuration and the key file it names. */
static int
check_config(struct tool *t)
{
	int	rc;

	t->dir = NULL;
	if ((rc = tool_conf(t)) != 0)
		return rc;
	if (t->conf->spool.encryption_key_file != NULL &&
	    conf_read_key(t->conf->spool.encryption_key_file, t->key, t->err,
	    sizeof(t->err)) == -1) {
		fprintf(stderr, PROG ": %s\n", t->err);
		return EX_CONFIG;
	}
	printf("configuration OK\n");
	return 0;
}

/*
 * LMDB trusts its file and aborts or faults on a damaged page.  For the
 * operator that is a finding, not a crash: say so and exit 1.  Only
 * async-signal-safe calls here.
 */
static void
damaged(int sig)
{
	static const char msg[] = PROG ": LMDB stopped on a damaged page of "
	    "the spool; see ferry-spool check, restore from a backup\n";

	(void)sig;
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

int
main(int argc, char *argv[])
{
	static const struct option lopts[] = {
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		OPT_JSON, OPT_END
	};
	const struct cmd	*c;
	struct tool		 t;
	char			 name[64];
	int			 ch, rc, checkconf = 0;

	signal(SIGABRT, damaged);
	signal(SIGSEGV, damaged);
	signal(SIGBUS, damaged);
	memset(&t, 0, sizeof(t));
	t.out = stdout;
	argv[0] = PROG;
	while ((ch = getopt_long(argc, argv, "+c:d:hk:", lopts, NULL)) != -1) {
		switch (ch) {
		case 'c': t.confpath = optarg; break;
		case 'd': t.dir = optarg; break;
		case 'k': t.keyfile = optarg; break;
		case 'J': t.json = 1; break;
		case 'C': checkconf = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf(PROG " " FERRY_VERSION "\n"); return 0;
		default: usage(stderr); return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;

	/* 1. What to do. */
	if (checkconf) {
		if (argc != 0) {
			usage(stderr);
			return EX_USAGE;
		}
		rc = check_config(&t);
		goto cleanup;
	}
	if (argc == 0) {
		usage(stderr);
		return EX_USAGE;
	}
	if ((c = cmd_find(argv[0])) == NULL) {
		fprintf(stderr, PROG ": unknown command: %s\n", argv[0]);
		usage(stderr);
		return EX_USAGE;
	}

	/* 2. The command: its arguments, then the spool, then the work. */
	if (sodium_init() == -1) {
		fprintf(stderr, PROG ": libsodium failed to initialise\n");
		return 1;
	}
	snprintf(name, sizeof(name), PROG " %s", c->name);
	argv[0] = name;
	optind = 0;
	rc = c->fn(&t, argc, argv);

	/* 3. Output that did not reach its file is a failure too. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
		if (rc == 0)
			rc = 1;
	}
cleanup:
	if (t.sp != NULL)
		spool_close(t.sp);
	if (t.conf != NULL)
		conf_free(t.conf);
	sodium_memzero(t.key, sizeof(t.key));
	return rc;
}
