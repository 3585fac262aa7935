/*
 * main.c: ferry-forwarder, which ships the spool to every configured sink.
 *
 * Start-up, in order: options; configuration; the spool (created if the
 * agent has not yet); each sink opened and recovered (a bad sink is a
 * configuration error, exit 78, before anything is sent); one drain thread
 * per sink (drain.c); READY=1 to systemd.  The main thread then only reads
 * signals, trims the spool once a second (events every sink has, older
 * than [spool] retain) and logs each sink's throughput.
 *
 * SIGTERM or SIGINT: the drain threads stop reading, flush what is in
 * flight for at most shutdown_timeout, record their cursors; exit 0.
 * Nothing is lost by stopping at any moment, kill -9 included: the spool
 * keeps every event until a sink's cursor has passed it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <sodium.h>

#include "avroenc.h"
#include "daemon.h"
#include "forwarder.h"
#include "log.h"

#define TRIM_MAX	20000	/* events deleted per trim transaction */
#define REPORT_SECS	30

/*
 * Deletes what every configured sink has, in bounded transactions.  The
 * cursor of a sink no longer configured holds nothing back: the spool would
 * fill for a sink that never drains it.
 */
static void
trim(struct fwd *f)
{
	char err[SPOOL_ERRMAX];
	size_t removed;

	if (f->sinks == NULL)
		return;		/* not started: no sink known */
	do {
		if (spool_trim(f->spool, f->sinks, f->conf->nsinks,
		    clock_wall_ms(), f->conf->spool.retain_ms, TRIM_MAX,
		    &removed, err) != SPOOL_OK) {
			log_warnx("trim: %s", err);
			return;
		}
	} while (removed == TRIM_MAX && !atomic_load(&f->stop));
}

static int
open_spool(struct fwd *f)
{
	struct spool_options so;
	unsigned char key[SPOOL_KEYLEN];
	char err[SPOOL_ERRMAX];

	memset(&so, 0, sizeof(so));
	so.dir = f->conf->spool.dir;
	so.max_size = f->conf->spool.max_size;
	so.dedup_window_ms = f->conf->dedup.window_ms;
	so.create = 1;
	if (f->conf->spool.encryption_key_file) {
		if (conf_read_key(f->conf->spool.encryption_key_file, key, err,
		    sizeof(err)) != 0) {
			log_errx("%s", err);
			return EX_CONFIG;
		}
		so.key = key;
	}
	if (spool_open(&f->spool, &so, err) != SPOOL_OK) {
		log_warnx("%s", err);
		return 1;
	}
	/* Two forwarders would send everything twice and fight over cursors. */
	if (spool_forwarder_lock(f->spool, err) != SPOOL_OK) {
		log_errx("%s", err);
		return 1;
	}
	return 0;
}

/*
 * --check-config: the key file, the stream schemas, and each Kafka sink's
 * producer made and dropped (librdkafka checks its settings together only
 * there: acks=1 with the idempotent producer, say).
 */
static int
check_files(const struct conf *cf)
{
	unsigned char key[SPOOL_KEYLEN];
	char err[SINK_ERRMAX > AVROENC_ERRMAX ? SINK_ERRMAX : AVROENC_ERRMAX];
	struct avroenc *enc;
	int rc = 0;

	if (cf->spool.encryption_key_file && conf_read_key(
	    cf->spool.encryption_key_file, key, err, sizeof(err)) != 0) {
		log_errx("%s", err);
		rc = -1;
	}
	sodium_memzero(key, sizeof(key));
	for (size_t i = 0; i < cf->nstreams; i++)
		if (cf->streams[i].schema) {	/* loads every schema */
			if ((enc = avroenc_new(cf, err)) == NULL) {
				log_errx("%s", err);
				rc = -1;
			}
			avroenc_free(enc);
			break;
		}
	for (size_t i = 0; i < cf->nsinks; i++)
		if (cf->sinks[i].type == CONF_SINK_KAFKA &&
		    sink_kafka_check(cf, &cf->sinks[i], err) != 0) {
			log_errx("sink %s: %s", cf->sinks[i].name, err);
			rc = -1;
		}
	return rc;
}

/* Says which cursors in the spool belong to no configured sink. */
static int
stale_cursor(const char *sink, uint64_t seq, uint64_t updated_ms, void *arg)
{
	struct fwd *f = arg;

	(void)updated_ms;
	if (conf_sink_find(f->conf, sink) != NULL)
		return 0;
	log_warnx("the spool holds a cursor of sink %s (at seq %llu), which "
	    "is not in %s: ignored, it holds no event back; remove it with "
	    "ferry-spool cursor %s --delete", sink, (unsigned long long)seq,
	    f->conf->path, sink);
	return 0;
}

static void
serve(struct fwd *f, const sigset_t *set)
{
	struct timespec tick = { 1, 0 };
	uint64_t last_report = clock_mono_ms();
	int sig;

	while (!atomic_load(&f->stop)) {
		sig = sigtimedwait(set, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("shutdown: %s; flushing in-flight deliveries "
			    "for up to %llums", strsignal(sig),
			    (unsigned long long)
			    f->conf->agent.shutdown_timeout_ms);
			daemon_notify("STOPPING=1");
			atomic_store(&f->stop, 1);
			break;
		}
		trim(f);
		if (clock_mono_ms() - last_report >= REPORT_SECS * 1000) {
			for (size_t i = 0; i < f->ndrains; i++)
				drain_report(&f->drains[i], REPORT_SECS);
			last_report = clock_mono_ms();
		}
	}
}

int
main(int argc, char **argv)
{
	struct fwd f;
	char err[1024];
	sigset_t set;
	int rc = 0;

	/* 1. Options, 2. configuration. */
	memset(&f, 0, sizeof(f));
	if ((f.conf = daemon_start(argc, argv, "ferry-forwarder", "Drains the "
	    "spool to every [sink.NAME] of the configuration.", check_files,
	    &rc)) == NULL)
		return rc;

	/* 3. Signals, blocked before any thread starts. */
	daemon_signals(&set);

	/* 4. The spool, 5. the sinks. */
	if ((rc = open_spool(&f)) != 0)
		goto out;
	if ((f.drains = calloc(f.conf->nsinks + 1, sizeof(*f.drains))) ==
	    NULL || (f.sinks = calloc(f.conf->nsinks + 1,
	    sizeof(*f.sinks))) == NULL)
		fatal("calloc");
	for (size_t i = 0; i < f.conf->nsinks; i++)
		f.sinks[i] = f.conf->sinks[i].name;
	for (size_t i = 0; i < f.conf->nsinks; i++, f.ndrains++)
		if (drain_open(&f, &f.drains[i], &f.conf->sinks[i], err,
		    sizeof(err)) != 0) {
			log_errx("%s", err);
			rc = EX_CONFIG;
			goto out;
		}
	if (f.ndrains == 0)
		log_warnx("no [sink.NAME] configured: events stay in the "
		    "spool until one is");
	if (spool_cursor_each(f.spool, stale_cursor, &f, err) != SPOOL_OK)
		log_warnx("%s", err);

	/* 6. One drain thread per sink. */
	for (size_t i = 0; i < f.ndrains; i++)
		if (drain_start(&f.drains[i]) != 0)
			fatalx("cannot start a drain thread");
	log_info("forwarding spool %s to %zu sinks", f.conf->spool.dir,
	    f.ndrains);
	daemon_notify("READY=1");

	/* 7. Until SIGTERM. */
	serve(&f, &set);
out:
	atomic_store(&f.stop, 1);
	for (size_t i = 0; i < f.ndrains; i++)
		drain_join(&f.drains[i]);
	if (f.spool)
		trim(&f);
	free(f.drains);
	free(f.sinks);
	spool_close(f.spool);
	if (rc == 0)
		log_info("stopped");
	conf_free(f.conf);
	return rc;
}
