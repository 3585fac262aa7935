/*
 * main.c: ferry-agent's start-up, lifecycle and shutdown.
 *
 * Start-up, in order: options; configuration; logging; tokens; the spool
 * (created if absent); the writer thread; the HTTP server; READY=1 to
 * systemd.  Shutdown runs it in reverse.
 *
 * The lifecycle is a state machine driven from one place, the signal loop
 * below (signals are blocked in every thread and read with sigtimedwait
 * here, so no work happens in signal context):
 *
 *   STARTING --ready--> SERVING --TERM/INT--> DRAINING --delay over, or a
 *   second TERM/INT--> STOPPING --no request in flight, or timeout--> exit
 *
 * DRAINING answers /ping and /ready with 503 for shutdown_delay while
 * events are still taken, so a load balancer moves traffic away first.
 * STOPPING closes the listening socket and refuses new POSTs; requests with
 * the writer get shutdown_timeout to be committed and answered.  Nothing
 * acknowledged can be lost at any point: a 2xx is only sent after its
 * commit.  SIGHUP reloads tokens and log level.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "agent.h"
#include "avroenc.h"
#include "daemon.h"
#include "log.h"

static int
load_key(const struct conf *cf, unsigned char *key, int *have)
{
	char err[512];

	*have = 0;
	if (cf->spool.encryption_key_file == NULL)
		return 0;
	if (conf_read_key(cf->spool.encryption_key_file, key, err,
	    sizeof(err)) != 0) {
		log_errx("%s", err);
		return -1;
	}
	*have = 1;
	return 0;
}

/* The stream schemas' encoder, NULL in *ENC when no stream has one. */
static int
load_schemas(const struct conf *cf, struct avroenc **enc)
{
	char err[AVROENC_ERRMAX];

	*enc = NULL;
	for (size_t i = 0; i < cf->nstreams; i++)
		if (cf->streams[i].schema) {
			if ((*enc = avroenc_new(cf, err)) == NULL) {
				log_errx("%s", err);
				return -1;
			}
			break;
		}
	return 0;
}

/* --check-config: loads the files the configuration names, as a start. */
static int
check_files(const struct conf *cf)
{
	unsigned char key[SPOOL_KEYLEN];
	struct avroenc *enc;
	struct tokens *tk;
	char err[512];
	int have, rc = 0;

	/* Each is tried, so that every error is listed at once. */
	if (cf->agent.tokens_file) {
		if ((tk = tokens_load(cf->agent.tokens_file, err,
		    sizeof(err))) == NULL) {
			log_errx("%s", err);
			rc = -1;
		}
		tokens_free(tk);
	}
	if (load_schemas(cf, &enc) != 0)
		rc = -1;
	avroenc_free(enc);
	if (load_key(cf, key, &have) != 0)
		rc = -1;
	sodium_memzero(key, sizeof(key));
	return rc;
}

/* SIGHUP: a new configuration, of which tokens and log level apply now. */
static void
reload(struct agent *a)
{
	struct conf *cf;
	struct tokens *tk = NULL, *old;
	char err[512];

	if ((cf = conf_load(a->conf->path, NULL)) == NULL) {
		log_warnx("reload: %s has errors; keeping the running "
		    "configuration", a->conf->path);
		return;
	}
	if (cf->agent.tokens_file && (tk = tokens_load(cf->agent.tokens_file,
	    err, sizeof(err))) == NULL) {
		log_warnx("reload: %s; keeping the old tokens", err);
		conf_free(cf);
		return;
	}
	pthread_rwlock_wrlock(&a->tlock);
	old = a->tokens;
	a->tokens = tk;
	pthread_rwlock_unlock(&a->tlock);
	tokens_free(old);
	log_setlevel((enum log_level)cf->agent.log_level);
	if (tk)
		log_info("reloaded %s: %zu tokens from %s, log level %s",
		    cf->path, tokens_count(tk), cf->agent.tokens_file,
		    log_levelname((enum log_level)cf->agent.log_level));
	else
		log_info("reloaded %s: no tokens_file (auth off), log level %s",
		    cf->path,
		    log_levelname((enum log_level)cf->agent.log_level));
	if (tk && tokens_count(tk) == 0)
		log_warnx("%s holds no token: every POST gets 401",
		    cf->agent.tokens_file);
	/* Other settings need a restart; the running struct stays. */
	conf_free(cf);
}

/* The lifecycle loop; returns when the agent may exit. */
static void
run(struct agent *a, const sigset_t *set)
{
	const struct conf *cf = a->conf;
	uint64_t deadline = 0;
	struct timespec tick = { 0, 50 * 1000000 };
	int sig;

	for (;;) {
		int state = atomic_load(&a->state);
		uint64_t now = clock_mono_ms();

		if (state == AGENT_DRAINING && now >= deadline) {
			log_info("shutdown: intake stopped; waiting up to "
			    "%llums for %ld requests", (unsigned long long)
			    cf->agent.shutdown_timeout_ms,
			    atomic_load(&a->requests));
			atomic_store(&a->state, AGENT_STOPPING);
			http_quiesce(a);
			deadline = now + cf->agent.shutdown_timeout_ms;
			continue;
		}
		/* Requests underway, still uploading or with the writer. */
		if (state == AGENT_STOPPING &&
		    (atomic_load(&a->requests) == 0 || now >= deadline))
			return;
		sig = sigtimedwait(set, NULL, &tick);
		if (sig == -1)
			continue;
		if (sig == SIGHUP) {
			reload(a);
			continue;
		}
		if (state == AGENT_SERVING) {
			log_info("shutdown: %s; /ping answers 503 for %llums "
			    "while intake goes on", strsignal(sig),
			    (unsigned long long)cf->agent.shutdown_delay_ms);
			daemon_notify("STOPPING=1");
			atomic_store(&a->state, AGENT_DRAINING);
			deadline = now + cf->agent.shutdown_delay_ms;
		} else if (state == AGENT_DRAINING) {
			log_info("shutdown: second %s, skipping the delay",
			    strsignal(sig));
			deadline = now;
		}
	}
}

int
main(int argc, char **argv)
{
	struct agent a;
	struct spool_options so;
	unsigned char key[SPOOL_KEYLEN];
	char err[SPOOL_ERRMAX];
	sigset_t set;
	int have_key, rc;

	/* 1. Options, 2. configuration. */
	memset(&a, 0, sizeof(a));
	if ((a.conf = daemon_start(argc, argv, "ferry-agent", "Receives "
	    "events over HTTP and commits them to the spool; see ferry.conf "
	    "for every setting.", check_files, &rc)) == NULL)
		return rc;

	/*
	 * 3. Signals: blocked here, before any thread starts, so every
	 * thread inherits the mask and only run() receives them.
	 */
	daemon_signals(&set);

	/* 4. Tokens. */
	pthread_mutex_init(&a.qlock, NULL);
	pthread_cond_init(&a.qcond, NULL);
	pthread_rwlock_init(&a.tlock, NULL);
	if (a.conf->agent.tokens_file && (a.tokens = tokens_load(
	    a.conf->agent.tokens_file, err, sizeof(err))) == NULL) {
		log_errx("%s", err);
		conf_free(a.conf);
		return EX_CONFIG;
	}
	if (a.tokens && tokens_count(a.tokens) == 0)
		log_warnx("%s holds no token: every POST gets 401",
		    a.conf->agent.tokens_file);

	/* Stream schemas, to check JSON events at intake. */
	if (load_schemas(a.conf, &a.avro) != 0) {
		tokens_free(a.tokens);
		conf_free(a.conf);
		return EX_CONFIG;
	}

	/* 5. The spool. */
	if (load_key(a.conf, key, &have_key) != 0) {
		avroenc_free(a.avro);
		tokens_free(a.tokens);
		conf_free(a.conf);
		return EX_CONFIG;
	}
	memset(&so, 0, sizeof(so));
	so.dir = a.conf->spool.dir;
	so.max_size = a.conf->spool.max_size;
	so.dedup_window_ms = a.conf->dedup.window_ms;
	so.key = have_key ? key : NULL;
	so.create = 1;
	if ((rc = spool_open(&a.spool, &so, err)) != SPOOL_OK)
		fatalx("%s", err);
	/* Become the spool's writer now: lock, and load the dedup index. */
	{
		struct spool_wtxn *w;
		uint64_t t0 = clock_mono_ms();

		if ((rc = spool_wbegin(a.spool, &w, err)) != SPOOL_OK)
			fatalx("%s", err);
		spool_wabort(w);
		metrics_dedup(&a.m, a.spool);
		log_info("dedup index: %llu events of the window loaded in "
		    "%llu ms (%llu MiB)",
		    (unsigned long long)atomic_load(&a.m.dedup_entries),
		    (unsigned long long)(clock_mono_ms() - t0),
		    (unsigned long long)(atomic_load(&a.m.dedup_bytes) >> 20));
	}

	/* 6. The writer, 7. the HTTP server. */
	if (writer_start(&a) != 0)
		fatalx("cannot start the writer thread");
	atomic_store(&a.state, AGENT_STARTING);
	if (http_start(&a, err, sizeof(err)) != 0)
		fatalx("%s", err);
	/* A spool already full at start is not ready. */
	atomic_store(&a.full, writer_note_space(&a) + AGENT_FULL_SLACK >=
	    spool_max_bytes(a.spool));
	atomic_store(&a.state, AGENT_SERVING);
	log_info("serving on %s, spool %s (%llu MiB max)%s",
	    a.conf->agent.listen, a.conf->spool.dir,
	    (unsigned long long)(a.conf->spool.max_size >> 20),
	    a.tokens ? ", bearer tokens required" : "");
	daemon_notify("READY=1");

	/* 8. Serve until shut down. */
	run(&a, &set);

	/* Reverse order: HTTP, writer, spool. */
	if (atomic_load(&a.inflight) != 0) {
		/*
		 * The writer is stuck (a hung disk): its requests were never
		 * acknowledged, so leaving without them loses nothing.
		 */
		log_warnx("shutdown: %ld requests still with the writer "
		    "after shutdown_timeout; exiting without answering them",
		    atomic_load(&a.inflight));
		_exit(0);
	}
	http_stop(&a);
	writer_stop(&a);
	spool_close(a.spool);
	tokens_free(a.tokens);
	avroenc_free(a.avro);
	log_info("stopped");
	conf_free(a.conf);
	return 0;
}
