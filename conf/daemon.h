/*
 * daemon.h: what ferry's programs share at run time besides configuration
 * and logging: clocks, and telling systemd how a daemon is doing.
 */
#ifndef FERRY_DAEMON_H
#define FERRY_DAEMON_H

#include <signal.h>
#include <stdint.h>

#include "conf.h"

/* Wall-clock milliseconds since the epoch: for times stored or shown. */
uint64_t	clock_wall_ms(void);
/* Monotonic milliseconds: for intervals, timeouts and deadlines. */
uint64_t	clock_mono_ms(void);
/* Monotonic microseconds: for latencies. */
uint64_t	clock_mono_us(void);

/*
 * Sends MSG ("READY=1", "STOPPING=1") to systemd's NOTIFY_SOCKET when it
 * is set (Type=notify), and does nothing otherwise.
 */
void		daemon_notify(const char *msg);

/*
 * The start of a daemon's main(): parses -c FILE, --check-config,
 * --version and --help (PROG names the program, WHAT is the line of --help
 * that says what it does), starts logging, loads the configuration and
 * takes its log level.  Returns the configuration, or NULL with *status the
 * exit status: 0 after --version, --help or a good --check-config, 64 for
 * a usage error, 78 for a bad configuration.  --check-config also runs
 * CHECK (may be NULL): the program's loading of what the configuration
 * names (key, tokens and schema files, librdkafka's settings), which logs
 * what is wrong and returns nonzero.
 */
struct conf	*daemon_start(int argc, char **argv, const char *prog,
		    const char *what, int (*check)(const struct conf *),
		    int *status);

/*
 * Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread
 * it starts afterwards, so that one loop reads them with sigtimedwait(SET);
 * ignores SIGPIPE.
 */
void		daemon_signals(sigset_t *set);

#endif
