/*
 * sink-kafka-drive.c: drives sink_kafka_ops (forwarder/sink_kafka.c) with
 * synthetic events, without a spool, for tests/integration/040-kafka-sink.sh.
 * It holds its events in memory and plays the drain loop's part: send in
 * seq order, poll, resend after the last delivered seq on SINK_REWIND.
 *
 *   sink-kafka-drive -b BROKERS [-t TOPIC] [-f raw|avro|confluent]
 *       [-k idempotency|none|json:FIELD] [-i CONFLUENT_ID] [-S FIRST_SEQ]
 *       [-P NAME=VALUE]... [-A STREAM=FILE.avsc]...
 *
 * Event SEQ gets received_ms 1700000000000 + SEQ, content type
 * application/json, address 127.0.0.1 and the id ab x 8 followed by SEQ
 * as 8 big-endian bytes.  Commands, one a line on stdin:
 *
 *   ev STREAM IKEY BODY	adds an event (IKEY "-": none; BODY is the rest
 *				of the line; both with \\, \t, \n, \xHH
 *				escapes, other escapes kept as they are)
 *   gen N STREAM NKEYS		adds N events, body {"i":I,"k":"kJ"} with the
 *				idempotency key kJ, J = I mod NKEYS (0: none)
 *   big STREAM SIZE		adds an event of SIZE bytes of 'x'
 *   send			sends what is not sent, until SINK_FULL
 *   poll MS			one poll()
 *   drain MS			sends and polls until everything is delivered
 *				or MS have passed ("timeout")
 *   flush MS			flush()
 *   quit
 *
 * Answers: "dead SEQ REASON" as dead() reports, "full", "down REASON",
 * "rewind REASON", "fatal REASON", "timeout", then "delivered D" and "end".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "sink.h"
#include "spool.h"

#define EV_RECEIVED0	1700000000000ull
#define MAXPROPS	32
#define MAXSTREAMS	8

struct dev {
	char		*stream, *ikey, *body;
	size_t		 len;
};

struct drive {
	const struct sink_ops	*ops;
	void			*sink;
	struct dev		*evs;
	size_t			 n, cap;
	uint64_t		 first;		/* seq of evs[0] */
	uint64_t		 sent, delivered;
	char			 err[SINK_ERRMAX];
};

static void
usage(void)
{
	fprintf(stderr, "usage: sink-kafka-drive -b BROKERS [-t TOPIC] "
	    "[-f FORMAT] [-k KEY] [-i ID] [-S SEQ]\n"
	    "           [-P NAME=VALUE]... [-A STREAM=FILE.avsc]...\n");
	exit(64);
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *
xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "sink-kafka-drive: out of memory\n");
		exit(1);
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	return strcpy(xmalloc(strlen(s) + 1), s);
}

/* Undoes \\, \t, \n, \xHH in place; returns the length. */
static size_t
unescape(char *s)
{
	char	*o = s, *start = s, hex[3] = { 0 };

	for (; *s; s++) {
		if (*s != '\\' || s[1] == '\0') {
			*o++ = *s;
			continue;
		}
		switch (*++s) {
		case 't':
			*o++ = '\t';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'x':
			if (s[1] == '\0' || s[2] == '\0')
				break;
			hex[0] = s[1];
			hex[1] = s[2];
			*o++ = (char)strtoul(hex, NULL, 16);
			s += 2;
			break;
		case '\\':
			*o++ = '\\';
			break;
		default:	/* kept: JSON's own escapes pass through */
			*o++ = '\\';
			*o++ = *s;
		}
	}
	return (size_t)(o - start);
}

static void
add(struct drive *d, const char *stream, const char *ikey, char *body,
    size_t len)
{
	struct dev	*e;

	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 256;
		if ((d->evs = realloc(d->evs, d->cap * sizeof(*d->evs))) ==
		    NULL) {
			fprintf(stderr, "sink-kafka-drive: out of memory\n");
			exit(1);
		}
	}
	e = &d->evs[d->n++];
	e->stream = xstrdup(stream);
	e->ikey = ikey ? xstrdup(ikey) : NULL;
	e->body = body;
	e->len = len;
}

static void
dead(uint64_t seq, const char *reason, void *arg)
{
	(void)arg;
	printf("dead %" PRIu64 " %s\n", seq, reason);
}

/* Fills EV as the spool would for evs[I]. */
static void
event(struct drive *d, size_t i, struct spool_event *ev)
{
	struct dev	*e = &d->evs[i];
	int		 b;

	memset(ev, 0, sizeof(*ev));
	ev->seq = d->first + i;
	ev->received_ms = EV_RECEIVED0 + ev->seq;
	ev->stream = e->stream;
	ev->stream_len = strlen(e->stream);
	ev->ctype = "application/json";
	ev->ctype_len = strlen(ev->ctype);
	ev->addr = "127.0.0.1";
	ev->addr_len = strlen(ev->addr);
	ev->ikey = e->ikey;
	ev->ikey_len = e->ikey ? strlen(e->ikey) : 0;
	ev->body = e->body;
	ev->body_len = e->len;
	memset(ev->id, 0xab, 8);
	for (b = 0; b < 8; b++)
		ev->id[8 + b] = (unsigned char)(ev->seq >> (56 - 8 * b));
}

/* Sends what is not sent yet; returns the last rc of send(). */
static int
send_all(struct drive *d, int verbose)
{
	struct spool_event	 ev;
	int			 rc = SINK_OK;

	while (d->sent < d->first + d->n - 1) {
		event(d, (size_t)(d->sent + 1 - d->first), &ev);
		if ((rc = d->ops->send(d->sink, &ev, d->err)) != SINK_OK)
			break;
		d->sent = ev.seq;
	}
	if (rc == SINK_FULL && verbose)
		printf("full\n");
	else if (rc == SINK_DOWN || rc == SINK_FATAL)
		printf("%s %s\n", rc == SINK_DOWN ? "down" : "fatal", d->err);
	return rc;
}

/* Prints what poll() or flush() said; returns it. */
static int
said(struct drive *d, int rc)
{
	switch (rc) {
	case SINK_OK:
		break;
	case SINK_DOWN:
		printf("down %s\n", d->err);
		break;
	case SINK_REWIND:
		printf("rewind %s\n", d->err);
		d->sent = d->delivered;
		break;
	default:
		printf("fatal %s\n", d->err);
	}
	return rc;
}

/* The drain loop in small: send, poll, until all is delivered. */
static void
drain(struct drive *d, int ms)
{
	uint64_t	 end = mono_ms() + (uint64_t)ms;
	int		 rc, was = SINK_OK;

	while (d->delivered < d->first + d->n - 1) {
		if (mono_ms() >= end) {
			printf("timeout\n");
			return;
		}
		if (was != SINK_DOWN && send_all(d, 0) == SINK_FATAL)
			return;
		rc = d->ops->poll(d->sink, was == SINK_DOWN ? 200 : 20,
		    &d->delivered, dead, d, d->err);
		if (rc != was || rc == SINK_REWIND)
			said(d, rc);
		if (rc == SINK_FATAL)
			return;
		was = rc;
	}
}

static void
gen(struct drive *d, long n, const char *stream, long nkeys)
{
	char	 key[32], *body;
	long	 i;

	for (i = 0; i < n; i++) {
		body = xmalloc(64);
		snprintf(key, sizeof(key), "k%ld", nkeys > 0 ? i % nkeys : 0);
		snprintf(body, 64, "{\"i\":%ld,\"k\":\"%s\"}", i, key);
		add(d, stream, nkeys > 0 ? key : NULL, body, strlen(body));
	}
}

/* Runs one command line; returns 1 on quit. */
static int
command(struct drive *d, char *line)
{
	char	*cmd, *a, *b, *rest, *body;
	size_t	 len;

	line[strcspn(line, "\n")] = '\0';
	cmd = strtok_r(line, " ", &rest);
	if (cmd == NULL)
		return 0;
	if (strcmp(cmd, "quit") == 0)
		return 1;
	a = strtok_r(NULL, " ", &rest);
	if (strcmp(cmd, "ev") == 0 && a && (b = strtok_r(NULL, " ", &rest))) {
		body = xstrdup(rest ? rest : "");
		len = unescape(body);
		b[unescape(b)] = '\0';
		add(d, a, strcmp(b, "-") == 0 ? NULL : b, body, len);
	} else if (strcmp(cmd, "gen") == 0 && a &&
	    (b = strtok_r(NULL, " ", &rest)) && rest)
		gen(d, strtol(a, NULL, 10), b, strtol(rest, NULL, 10));
	else if (strcmp(cmd, "big") == 0 && a && rest) {
		len = strtoul(rest, NULL, 10);
		body = xmalloc(len);
		memset(body, 'x', len);
		add(d, a, NULL, body, len);
	} else if (strcmp(cmd, "send") == 0)
		send_all(d, 1);
	else if (strcmp(cmd, "poll") == 0 && a)
		said(d, d->ops->poll(d->sink, (int)strtol(a, NULL, 10),
		    &d->delivered, dead, d, d->err));
	else if (strcmp(cmd, "drain") == 0 && a)
		drain(d, (int)strtol(a, NULL, 10));
	else if (strcmp(cmd, "flush") == 0 && a)
		said(d, d->ops->flush(d->sink, (int)strtol(a, NULL, 10),
		    &d->delivered, dead, d, d->err));
	else
		printf("error bad command %s\n", cmd);
	printf("delivered %" PRIu64 "\nend\n", d->delivered);
	fflush(stdout);
	return 0;
}

static void
set_key(struct conf_sink *sc, const char *k)
{
	if (strcmp(k, "idempotency") == 0)
		sc->key = CONF_KEY_IDEMPOTENCY;
	else if (strcmp(k, "none") == 0)
		sc->key = CONF_KEY_NONE;
	else if (strncmp(k, "json:", 5) == 0) {
		sc->key = CONF_KEY_JSON;
		sc->key_field = xstrdup(k + 5);
	} else
		usage();
}

static void
set_format(struct conf_sink *sc, const char *f)
{
	if (strcmp(f, "raw") == 0)
		sc->format = CONF_FMT_RAW;
	else if (strcmp(f, "avro") == 0)
		sc->format = CONF_FMT_AVRO;
	else if (strcmp(f, "confluent") == 0)
		sc->format = CONF_FMT_CONFLUENT;
	else
		usage();
}

int
main(int argc, char **argv)
{
	static struct conf_prop	 props[MAXPROPS];
	static struct conf_stream streams[MAXSTREAMS];
	struct conf		 cf = { .path = "sink-kafka-drive",
				    .streams = streams };
	struct conf_sink	 sc = { .name = "drive", .confluent_id = -1 };
	struct drive		 d = { .ops = &sink_kafka_ops, .first = 1 };
	char			*line = NULL, *eq;
	size_t			 sz = 0;
	int			 ch;

	log_init("sink-kafka-drive", LOG_LVL_WARN);
	sc.type = CONF_SINK_KAFKA;
	sc.props = props;
	while ((ch = getopt(argc, argv, "b:t:f:k:i:S:P:A:")) != -1) {
		switch (ch) {
		case 'b': sc.brokers = optarg; break;
		case 't': sc.topic = optarg; break;
		case 'f': set_format(&sc, optarg); break;
		case 'k': set_key(&sc, optarg); break;
		case 'i': sc.confluent_id = strtol(optarg, NULL, 10); break;
		case 'S': d.first = strtoull(optarg, NULL, 10); break;
		case 'P':
			if (sc.nprops == MAXPROPS ||
			    (eq = strchr(optarg, '=')) == NULL)
				usage();
			*eq = '\0';
			props[sc.nprops].name = optarg;
			props[sc.nprops].value = eq + 1;
			props[sc.nprops].line = (int)sc.nprops + 1;
			sc.nprops++;
			break;
		case 'A':
			if (cf.nstreams == MAXSTREAMS ||
			    (eq = strchr(optarg, '=')) == NULL ||
			    (size_t)(eq - optarg) > CONF_NAME_MAX)
				usage();
			*eq = '\0';
			strcpy(streams[cf.nstreams].name, optarg);
			streams[cf.nstreams++].schema = eq + 1;
			break;
		default:
			usage();
		}
	}
	if (sc.brokers == NULL || optind != argc || d.first == 0)
		usage();
	if ((d.sink = d.ops->open(&cf, &sc, d.err)) == NULL) {
		printf("open failed: %s\n", d.err);
		return 1;
	}
	d.sent = d.delivered = d.first - 1;
	if (d.ops->recover(d.sink, d.first - 1, d.err) != SINK_OK) {
		printf("recover failed: %s\n", d.err);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (getline(&line, &sz, stdin) != -1)
		if (command(&d, line))
			break;
	d.ops->close(d.sink);
	while (d.n > 0) {
		d.n--;
		free(d.evs[d.n].stream);
		free(d.evs[d.n].ikey);
		free(d.evs[d.n].body);
	}
	free(d.evs);
	free(sc.key_field);
	free(line);
	return 0;
}
