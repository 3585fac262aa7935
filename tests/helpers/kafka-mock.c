/*
 * kafka-mock.c: the test Kafka.  librdkafka's mock cluster, which speaks
 * the real Kafka protocol on loopback, run as a standalone broker that the
 * forwarder and Python's kafka client connect to.
 *
 *   kafka-mock [-b BROKERS] [-p PARTITIONS] [-t TOPIC]...
 *
 * The first line on stdout is the bootstrap address ("127.0.0.1:P,...").
 * Then it reads one command a line on stdin and answers each with "ok" or
 * "error REASON" on stdout:
 *
 *   down BROKERID		the broker drops its connections and refuses
 *				new ones (-1: every broker)
 *   up BROKERID		it accepts them again
 *   rtt BROKERID MS		delays the broker's answers
 *   produce-errors N ERRCODE	the next N Produce requests fail with the
 *				Kafka error ERRCODE (6 NOT_LEADER_FOR_PARTITION,
 *				7 REQUEST_TIMED_OUT, 19 NOT_ENOUGH_REPLICAS:
 *				the idempotent producer retries those)
 *   topic NAME [PARTITIONS]	creates a topic (default: -p)
 *   topic-error NAME ERRCODE	metadata requests for NAME fail (0 clears)
 *   leader NAME PARTITION BROKERID
 *   quit
 *
 * It exits on quit, end of input or SIGTERM/SIGINT.  -t creates topics at
 * start with -p partitions (default 1).  Topics a client names without
 * creating them are auto-created with the mock's own default of 4
 * partitions, which librdkafka 2.0 does not let us change.  The mock keeps
 * only about the last 5 MB of each partition: consume while producing or
 * keep test volumes small.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_MAXERRS	10000
#define PRODUCE_API	0	/* ApiKey of ProduceRequest */

struct mock {
	rd_kafka_t		*rk;
	rd_kafka_mock_cluster_t	*mc;
	int			 partitions;
};

static volatile sig_atomic_t gotsig;

static void
onsig(int sig)
{
	gotsig = sig;
}

static void
usage(void)
{
	fprintf(stderr, "usage: kafka-mock [-b BROKERS] [-p PARTITIONS] "
	    "[-t TOPIC]...\n");
	exit(64);
}

/* Parses a decimal in [MIN, MAX]; 0 on success. */
static int
num(const char *s, long min, long max, long *out)
{
	char	*end;
	long	 v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
reply(rd_kafka_resp_err_t err)
{
	if (err)
		return printf("error %s\n", rd_kafka_err2str(err));
	return printf("ok\n");
}

static int
cmd_produce_errors(struct mock *m, char **argv, int argc)
{
	rd_kafka_resp_err_t	*errs;
	long			 n, code, i;

	if (argc != 3 || num(argv[1], 1, MOCK_MAXERRS, &n) ||
	    num(argv[2], -200, 1000, &code))
		return printf("error usage: produce-errors N ERRCODE\n");
	if ((errs = calloc((size_t)n, sizeof(*errs))) == NULL)
		return printf("error out of memory\n");
	for (i = 0; i < n; i++)
		errs[i] = (rd_kafka_resp_err_t)code;
	rd_kafka_mock_push_request_errors_array(m->mc, PRODUCE_API,
	    (size_t)n, errs);
	free(errs);
	return reply(0);
}

static int
cmd_topic(struct mock *m, char **argv, int argc)
{
	long	 parts = m->partitions;

	if (argc < 2 || argc > 3 || (argc == 3 &&
	    num(argv[2], 1, 10000, &parts)))
		return printf("error usage: topic NAME [PARTITIONS]\n");
	return reply(rd_kafka_mock_topic_create(m->mc, argv[1], (int)parts,
	    1));
}

/* Runs one command line split into ARGV; returns < 0 when stdout fails. */
static int
command(struct mock *m, char **argv, int argc)
{
	long	 a, b;

	if (strcmp(argv[0], "down") == 0 && argc == 2 &&
	    num(argv[1], -1, 1000, &a) == 0)
		return reply(rd_kafka_mock_broker_set_down(m->mc, (int32_t)a));
	if (strcmp(argv[0], "up") == 0 && argc == 2 &&
	    num(argv[1], -1, 1000, &a) == 0)
		return reply(rd_kafka_mock_broker_set_up(m->mc, (int32_t)a));
	if (strcmp(argv[0], "rtt") == 0 && argc == 3 &&
	    num(argv[1], -1, 1000, &a) == 0 && num(argv[2], 0, 600000, &b) == 0)
		return reply(rd_kafka_mock_broker_set_rtt(m->mc, (int32_t)a,
		    (int)b));
	if (strcmp(argv[0], "produce-errors") == 0)
		return cmd_produce_errors(m, argv, argc);
	if (strcmp(argv[0], "topic") == 0)
		return cmd_topic(m, argv, argc);
	if (strcmp(argv[0], "topic-error") == 0 && argc == 3 &&
	    num(argv[2], -200, 1000, &a) == 0) {
		rd_kafka_mock_topic_set_error(m->mc, argv[1],
		    (rd_kafka_resp_err_t)a);
		return reply(0);
	}
	if (strcmp(argv[0], "leader") == 0 && argc == 4 &&
	    num(argv[2], 0, 10000, &a) == 0 && num(argv[3], -1, 1000, &b) == 0)
		return reply(rd_kafka_mock_partition_set_leader(m->mc, argv[1],
		    (int32_t)a, (int32_t)b));
	return printf("error unknown command or bad arguments: %s\n", argv[0]);
}

/* Reads and runs commands until quit, end of input or a signal. */
static void
serve(struct mock *m)
{
	char	 line[1024], *argv[8], *p;
	int	 argc;

	while (!gotsig && fgets(line, sizeof(line), stdin) != NULL) {
		argc = 0;
		for (p = strtok(line, " \t\r\n"); p != NULL && argc < 8;
		    p = strtok(NULL, " \t\r\n"))
			argv[argc++] = p;
		if (argc == 0)
			continue;
		if (strcmp(argv[0], "quit") == 0) {
			printf("ok\n");
			break;
		}
		if (command(m, argv, argc) < 0 || fflush(stdout) == EOF)
			break;
	}
	fflush(stdout);
}

static rd_kafka_t *
dummy_handle(void)
{
	rd_kafka_conf_t	*conf = rd_kafka_conf_new();
	rd_kafka_t	*rk;
	char		 err[512];

	/* The handle only hosts the cluster: keep it quiet. */
	if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) !=
	    RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kafka-mock: %s\n", err);
		exit(1);
	}
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "kafka-mock: %s\n", err);
		exit(1);
	}
	return rk;
}

int
main(int argc, char **argv)
{
	struct mock		 m = { .partitions = 1 };
	struct sigaction	 sa;
	long			 brokers = 3, v;
	char			*topics[64];
	int			 ch, ntopics = 0, i;

	while ((ch = getopt(argc, argv, "b:p:t:")) != -1) {
		switch (ch) {
		case 'b':
			if (num(optarg, 1, 100, &brokers))
				usage();
			break;
		case 'p':
			if (num(optarg, 1, 10000, &v))
				usage();
			m.partitions = (int)v;
			break;
		case 't':
			if (ntopics == 64)
				usage();
			topics[ntopics++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	/* No SA_RESTART: a signal interrupts the read on stdin. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = onsig;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	m.rk = dummy_handle();
	if ((m.mc = rd_kafka_mock_cluster_new(m.rk, (int)brokers)) == NULL) {
		fprintf(stderr, "kafka-mock: cannot create the mock cluster\n");
		return 1;
	}
	for (i = 0; i < ntopics; i++) {
		if (rd_kafka_mock_topic_create(m.mc, topics[i], m.partitions,
		    1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "kafka-mock: cannot create %s\n",
			    topics[i]);
			return 1;
		}
	}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(m.mc));
	fflush(stdout);

	serve(&m);

	rd_kafka_mock_cluster_destroy(m.mc);
	rd_kafka_destroy(m.rk);
	return 0;
}
