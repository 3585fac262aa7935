/*
 * fuzz_agent.c: libFuzzer target for ferry-agent as a client meets it:
 * each input is the raw bytes of one TCP connection (one request, or
 * several pipelined), sent to the agent's own HTTP server on loopback.
 * Everything between the socket and the spool is the real code, started
 * the way agent/main.c starts it: libmicrohttpd with http.c's handlers
 * (routing, CORS, X-Forwarded-For, limits, the body state machine,
 * suspend and resume), the intake decoder, a stream's Avro schema check,
 * the group-commit writer and the spool, on tmpfs (/dev/shm) so that a
 * commit costs no disk flush.  What MHD itself parses (request line,
 * header folding, chunked bodies, the query string, which it cuts off the
 * path) reaches our handlers as it would in production.
 *
 * fuzz_http covers the same request functions with far more executions a
 * second; this one finds what only the whole path shows: a request that
 * never finishes, a suspended connection never resumed, a leak or a race
 * across the handler and writer threads.
 *
 * Oracles besides the sanitizers: each answer is HTTP/1.x with a status
 * the agent or MHD gives, never 500; once the client has gone (it sends
 * everything, shuts down its side, reads the answers, then resets the
 * connection), every request finishes: none is left with the writer or
 * open in the handlers, as a connection suspended and never resumed would
 * be.  When the spool nears full, the agent is stopped and started on an
 * empty spool, as an operator would.  Tokens are not configured here
 * (fuzz_http and fuzz_tokens cover them): every input reaches the body.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "avroenc.h"
#include "daemon.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * How long the client waits: for a first answer (a request still missing
 * bytes gets none: libmicrohttpd waits for them until idle_timeout), then
 * for more after each answer (libmicrohttpd notices a client that shut
 * down its side only at idle_timeout after answering an error, so waiting
 * for the close would cost seconds an input).  Then it resets the
 * connection, and everything must be over within HANG_MS.
 */
#define FIRST_MS	100
#define QUIET_MS	15
#define HANG_MS		5000

static const char schema[] =
"{\"type\": \"record\", \"name\": \"Ev\", \"fields\": [\n"
"  {\"name\": \"id\", \"type\": \"long\"},\n"
"  {\"name\": \"who\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
"  {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": "
"\"string\"}, \"default\": []}]}\n";

#define SHM	"/dev/shm"
#define PREFIX	"ferry-fuzz-agent-"

static struct agent a;
static char dir[64];
static char spooldir[sizeof(dir) + 16];
static int port, up;

static void
write_file(const char *name, const char *text)
{
	char path[sizeof(dir) + 32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL || fputs(text, f) == EOF ||
	    fclose(f) != 0)
		abort();
}

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* A loopback port nobody listens on now. */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int s = socket(AF_INET, SOCK_STREAM, 0), p;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s == -1 || bind(s, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(s, (struct sockaddr *)&sin, &len) != 0)
		abort();
	p = ntohs(sin.sin_port);
	close(s);
	return p;
}

/* What runs that crashed left in /dev/shm: their pid is gone. */
static void
remove_stale(void)
{
	char path[sizeof(dir)];
	struct dirent *de;
	DIR *d;
	long pid;

	if ((d = opendir(SHM)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, PREFIX, strlen(PREFIX)) != 0)
			continue;
		pid = strtol(de->d_name + strlen(PREFIX), NULL, 10);
		if (pid <= 0 || (kill((pid_t)pid, 0) == -1 && errno == ESRCH)) {
			snprintf(path, sizeof(path), SHM "/%s", de->d_name);
			nftw(path, rm_one, 8, FTW_DEPTH | FTW_PHYS);
		}
	}
	closedir(d);
}

static void
setup(void)
{
	char text[2048], path[sizeof(dir) + 32];

	remove_stale();
	snprintf(dir, sizeof(dir), SHM "/" PREFIX "%ld", (long)getpid());
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		abort();
	snprintf(spooldir, sizeof(spooldir), "%s/spool", dir);
	port = free_port();
	write_file("ev.avsc", schema);
	snprintf(text, sizeof(text),
	    "[agent]\n"
	    "listen = 127.0.0.1:%d\n"
	    "threads = 2\n"
	    "shutdown_delay = 0\n"
	    "idle_timeout = 2s\n"
	    "max_body = 16KiB\n"
	    "max_events = 100\n"
	    "max_header = 2KiB\n"
	    "cors_origins = https://ok.example http://app.example:8080\n"
	    "trusted_proxies = 127.0.0.1\n"
	    "log_level = error\n"
	    "[spool]\n"
	    "dir = %s\n"
	    "max_size = 64MiB\n"
	    "[dedup]\n"
	    "json_key = id\n"
	    "[stream.ev]\n"
	    "schema = ev.avsc\n"
	    "[stream.logs]\n"
	    "allow_opaque = yes\n", port, spooldir);
	write_file("ferry.conf", text);
	snprintf(path, sizeof(path), "%s/ferry.conf", dir);
	log_init("fuzz_agent", LOG_LVL_ERROR);
	if ((a.conf = conf_load(path, NULL)) == NULL)
		abort();
	pthread_mutex_init(&a.qlock, NULL);
	pthread_cond_init(&a.qcond, NULL);
	pthread_rwlock_init(&a.tlock, NULL);
	if ((a.avro = avroenc_new(a.conf, text)) == NULL) {
		fprintf(stderr, "fuzz_agent: %s\n", text);
		abort();
	}
}

/* agent/main.c's start-up, steps 5 to 7, on an empty spool. */
static void
agent_up(void)
{
	struct spool_options so;
	struct spool_wtxn *w;
	char err[SPOOL_ERRMAX];

	nftw(spooldir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	memset(&so, 0, sizeof(so));
	so.dir = a.conf->spool.dir;
	so.max_size = a.conf->spool.max_size;
	so.dedup_window_ms = a.conf->dedup.window_ms;
	so.create = 1;
	if (spool_open(&a.spool, &so, err) != SPOOL_OK ||
	    spool_wbegin(a.spool, &w, err) != SPOOL_OK) {
		fprintf(stderr, "fuzz_agent: %s\n", err);
		abort();
	}
	spool_wabort(w);
	atomic_store(&a.full, 0);
	atomic_store(&a.backoff, 0);
	if (writer_start(&a) != 0)
		abort();
	atomic_store(&a.state, AGENT_STARTING);
	if (http_start(&a, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_agent: %s\n", err);
		abort();
	}
	atomic_store(&a.state, AGENT_SERVING);
	up = 1;
}

/* And its shutdown: HTTP, writer, spool. */
static void
agent_down(void)
{
	atomic_store(&a.state, AGENT_STOPPING);
	http_stop(&a);
	writer_stop(&a);
	spool_close(a.spool);
	a.spool = NULL;
	up = 0;
}

static void
teardown(void)
{
	if (up)
		agent_down();
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * Connects S to SIN.  libFuzzer's SIGALRM (its -timeout watch) may
 * interrupt connect(), which then goes on without us: wait for it.
 */
static void
connect_to(int s, const struct sockaddr_in *sin)
{
	struct pollfd p = { .fd = s, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0;

	if (connect(s, (const struct sockaddr *)sin, sizeof(*sin)) == 0)
		return;
	if (errno == EINTR) {
		while (poll(&p, 1, HANG_MS) == -1 && errno == EINTR)
			;
		if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
		    err == 0)
			return;
		errno = err;
	}
	perror("fuzz_agent: connect");
	abort();
}

/* Waits up to MS for S to be readable; 0 on timeout. */
static int
wait_in(int s, int ms)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	int n;

	while ((n = poll(&p, 1, ms)) == -1 && errno == EINTR)
		;
	return n > 0;
}

/*
 * Once the client is gone, every request must finish: none still with
 * the writer, none still open in the handlers (a connection suspended and
 * never resumed would stay there).
 */
static void
check_finished(void)
{
	uint64_t t0 = clock_mono_ms();

	while (atomic_load(&a.inflight) != 0 || atomic_load(&a.requests) != 0) {
		if (clock_mono_ms() - t0 > HANG_MS) {
			fprintf(stderr, "fuzz_agent: %ld requests with the "
			    "writer, %ld open, %d ms after the client left\n",
			    atomic_load(&a.inflight),
			    atomic_load(&a.requests), HANG_MS);
			abort();
		}
		usleep(200);
	}
}

/* The status codes of every "HTTP/1.x NNN" in the answers must be ours. */
static void
check_answers(const char *buf, size_t len)
{
	static const char ok[] = " 100 200 204 400 401 403 404 405 408 411 "
	    "413 414 415 417 431 501 503 505 ";
	char code[6];

	if (len > 0 && (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0)) {
		fprintf(stderr, "fuzz_agent: not an HTTP answer: %.*s\n",
		    (int)(len < 64 ? len : 64), buf);
		abort();
	}
	for (const char *p = buf; p != NULL && p + 12 <= buf + len;
	    p = memmem(p + 1, (size_t)(buf + len - p - 1), "HTTP/1.", 7)) {
		if (p != buf && p[-1] != '\n')
			continue;	/* inside a body */
		snprintf(code, sizeof(code), " %.3s ", p + 9);
		if (strstr(ok, code) == NULL) {
			fprintf(stderr, "fuzz_agent: status%s: %.*s\n", code,
			    (int)(buf + len - p < 200 ? buf + len - p : 200), p);
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *ans;
	static const size_t cap = 1 << 20;
	struct linger lg = { 1, 0 };
	struct sockaddr_in sin;
	size_t off = 0, len = 0;
	ssize_t n;
	int s, one = 1, wrapped = 0;

	if (ans == NULL) {
		setup();
		atexit(teardown);
		if ((ans = malloc(cap)) == NULL)
			abort();
	}
	if (!up)
		agent_up();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		abort();
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	connect_to(s, &sin);
	/* Send it all, unless the agent answered and closed first. */
	while (off < size && ((n = send(s, data + off, size - off,
	    MSG_NOSIGNAL)) > 0 || (n == -1 && errno == EINTR)))
		off += n > 0 ? (size_t)n : 0;
	shutdown(s, SHUT_WR);
	for (;;) {
		if (!wait_in(s, len == 0 && !wrapped ? FIRST_MS : QUIET_MS))
			break;
		if ((n = recv(s, ans + len, cap - len, 0)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0)
			break;		/* closed, or reset after the answer */
		len += (size_t)n;
		if (len == cap) {
			len = 0;	/* keep reading, judge nothing */
			wrapped = 1;
		}
	}
	setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(s);
	if (!wrapped)
		check_answers(ans, len);
	check_finished();
	/* Room for the next inputs: a fresh spool before this one fills. */
	if (atomic_load(&a.full) || spool_used_bytes(a.spool) >
	    spool_max_bytes(a.spool) / 4 * 3)
		agent_down();
	return 0;
}
