/*
 * log.h: the one logging module of ferry's programs (not of the spool
 * library, which returns errors and never logs).
 *
 * Lines go to stderr, for journald: "<level>: message".  log_warn() and
 * fatal() append ": strerror(errno)".  fatal*() exit with status 1.
 * Thread-safe: each line is written with one write(2).
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the program name shown on each line and the level. */
void log_init(const char *progname, enum log_level level);
void log_setlevel(enum log_level level);
enum log_level log_getlevel(void);
const char *log_levelname(enum log_level level);
/* Parses "error", "warn", "info", "debug"; returns -1 for anything else. */
int log_parselevel(const char *s);

/* An error that stops the program, which then exits with its own status. */
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
