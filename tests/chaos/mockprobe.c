/*
 * mockprobe.c: a bare librdkafka producer with the settings of ferry's
 * Kafka sink (idempotent, acks=all, lz4, murmur2_random, linger.ms 5,
 * message.timeout.ms 0), and no ferry code at all.  mockprobe.py runs it
 * against the test Kafka to show what the mock cluster itself loses.
 *
 *   mockprobe BOOTSTRAP TOPIC COUNT RATE INFLIGHT OUT
 *
 * Produces COUNT messages at RATE a second, the value {"id":"I",...}, the
 * key "k-I", with max.in.flight.requests.per.connection = INFLIGHT, and
 * writes one line "I ERR" per delivery report to OUT (ERR 0: delivered).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static FILE *out;

static void
dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	fprintf(out, "%ld %d\n", (long)(intptr_t)m->_private, m->err);
}

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	const char *props[][2] = {
		{ "enable.idempotence", "true" }, { "acks", "all" },
		{ "compression.codec", "lz4" },
		{ "partitioner", "murmur2_random" }, { "linger.ms", "5" },
		{ "message.timeout.ms", "0" },
		{ "queue.buffering.max.messages", "10000" },
		{ "client.id", "mockprobe" },
	};
	rd_kafka_conf_t *c;
	rd_kafka_t *rk;
	rd_kafka_resp_err_t err;
	char e[512], key[32], val[1024];
	long n, rate, i;
	double t0, due;
	int kl, vl;

	if (argc != 7) {
		fprintf(stderr, "usage: mockprobe BOOTSTRAP TOPIC COUNT RATE "
		    "INFLIGHT OUT\n");
		return 64;
	}
	n = atol(argv[3]);
	rate = atol(argv[4]);
	if ((out = fopen(argv[6], "w")) == NULL) {
		perror(argv[6]);
		return 1;
	}
	c = rd_kafka_conf_new();
	for (size_t j = 0; j < sizeof(props) / sizeof(props[0]); j++)
		rd_kafka_conf_set(c, props[j][0], props[j][1], e, sizeof(e));
	if (rd_kafka_conf_set(c, "bootstrap.servers", argv[1], e, sizeof(e)) ||
	    rd_kafka_conf_set(c, "max.in.flight.requests.per.connection",
	    argv[5], e, sizeof(e))) {
		fprintf(stderr, "mockprobe: %s\n", e);
		return 1;
	}
	rd_kafka_conf_set_dr_msg_cb(c, dr);
	if ((rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e))) == NULL) {
		fprintf(stderr, "mockprobe: %s\n", e);
		return 1;
	}
	t0 = now();
	for (i = 0; i < n; i++) {
		kl = snprintf(key, sizeof(key), "k-%ld", i);
		vl = snprintf(val, sizeof(val), "{\"id\":\"%ld\",\"pad\":\"%0*d\"}",
		    i, (int)(i % 900) + 10, 0);
		while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_VALUE(val, (size_t)vl),
		    RD_KAFKA_V_KEY(key, (size_t)kl),
		    RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END)) ==
		    RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 50);
		if (err) {
			fprintf(stderr, "mockprobe: %s\n", rd_kafka_err2str(err));
			return 1;
		}
		rd_kafka_poll(rk, 0);
		due = t0 + (double)(i + 1) / (double)rate;
		if (due > now())
			usleep((useconds_t)((due - now()) * 1e6));
	}
	rd_kafka_flush(rk, 120000);
	fprintf(stderr, "mockprobe: %d messages not delivered after the "
	    "flush\n", rd_kafka_outq_len(rk));
	fclose(out);
	rd_kafka_destroy(rk);
	return 0;
}
