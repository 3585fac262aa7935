/*
 * daemon.h: what ferry's programs share at run time besides configuration
 * and logging: clocks, and telling systemd how a daemon is doing.
 */
#ifndef FERRY_DAEMON_H
#define FERRY_DAEMON_H

#include <stdint.h>

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

#endif
