/*
 * daemon.c: clocks and the systemd notification protocol (see daemon.h).
 * The protocol is one datagram to the socket named by NOTIFY_SOCKET, a
 * path or, starting with '@', an abstract name; no libsystemd needed.
 */
#include <getopt.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

static uint64_t
clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
clock_wall_ms(void)
{
	return clock_us(CLOCK_REALTIME) / 1000;
}

uint64_t
clock_mono_ms(void)
{
	return clock_us(CLOCK_MONOTONIC) / 1000;
}

uint64_t
clock_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

void
daemon_notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';		/* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sun, len) ==
	    -1)
		log_warn("sd_notify %s", path);
	close(fd);
}

static void
usage(FILE *fp, const char *prog, const char *what)
{
	fprintf(fp, "usage: %s [-c FILE] [--check-config] [--version] "
	    "[--help]\n"
	    "  -c, --config FILE   configuration (default %s)\n"
	    "      --check-config  validate the configuration and exit\n"
	    "      --version       print the version and exit\n"
	    "%s\n", prog, CONF_DEFAULT_PATH, what);
}

struct conf *
daemon_start(int argc, char **argv, const char *prog, const char *what,
    int (*check_files)(const struct conf *), int *status)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = CONF_DEFAULT_PATH;
	struct conf *cf;
	int ch, check = 0;

	*status = 0;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'n': check = 1; break;
		case 'V': printf("%s %s\n", prog, FERRY_VERSION); return NULL;
		case 'h': usage(stdout, prog, what); return NULL;
		default:
			usage(stderr, prog, what);
			*status = EX_USAGE;
			return NULL;
		}
	}
	if (optind != argc) {
		usage(stderr, prog, what);
		*status = EX_USAGE;
		return NULL;
	}
	log_init(prog, LOG_LVL_INFO);
	if ((cf = conf_load(path, NULL)) == NULL) {
		*status = EX_CONFIG;
		return NULL;
	}
	if (check) {
		if (check_files != NULL && check_files(cf) != 0)
			*status = EX_CONFIG;
		else
			printf("configuration OK\n");
		conf_free(cf);
		return NULL;
	}
	log_setlevel((enum log_level)cf->agent.log_level);
	return cf;
}

void
daemon_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}
