/*
 * test_conf.c: unit tests of conf/ (conf.h).
 *
 * Each test writes its configuration to a file under one mkdtemp()
 * directory, loads it with conf_load() and captures the error stream with
 * open_memstream(), so assertions are on the exact lines an operator would
 * read: "PATH:LINE: [section] key: message".
 */
#include <sys/stat.h>

#include <ctype.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "log.h"

static char	tmpdir[PATH_MAX];
static int	nfiles;

static char *
write_file(const void *data, size_t len)
{
	char	*path;
	FILE	*f;

	assert_true(asprintf(&path, "%s/%d.conf", tmpdir, ++nfiles) > 0);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Loads TEXT; *ERRS gets everything written to errf (caller frees). */
static struct conf *
load(const char *text, char **errs)
{
	struct conf	*c;
	char		*path = write_file(text, strlen(text));
	size_t		 len;
	FILE		*f;

	assert_non_null(f = open_memstream(errs, &len));
	c = conf_load(path, f);
	assert_int_equal(fclose(f), 0);
	free(path);
	return c;
}

/* TEXT must load without a word on errf. */
static struct conf *
load_ok(const char *text)
{
	struct conf	*c;
	char		*errs;

	c = load(text, &errs);
	if (c == NULL || *errs != '\0')
		print_error("unexpected errors:\n%s", errs);
	assert_non_null(c);
	assert_string_equal(errs, "");
	free(errs);
	return c;
}

/* TEXT must fail, and its errors contain each of the NULL-ended WANT. */
static char *
load_fail(const char *text, ...)
{
	const char	*want;
	char		*errs;
	va_list		 ap;

	assert_null(load(text, &errs));
	va_start(ap, text);
	while ((want = va_arg(ap, const char *)) != NULL) {
		if (strstr(errs, want) == NULL)
			print_error("missing \"%s\" in:\n%s", want, errs);
		assert_non_null(strstr(errs, want));
	}
	va_end(ap);
	return errs;
}

#define FAIL(text, ...)	free(load_fail(text, __VA_ARGS__, (char *)NULL))

static int
nlines(const char *s)
{
	int	n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* --- Units --- */

static void
size_is(const char *s, uint64_t want)
{
	const char	*why = NULL;
	uint64_t	 v = 0;

	if (conf_parse_size(s, &v, &why) != 0)
		print_error("'%s': %s\n", s, why);
	assert_int_equal(conf_parse_size(s, &v, &why), 0);
	assert_int_equal(v, want);
}

static void
size_bad(const char *s, const char *why_want)
{
	const char	*why = NULL;
	uint64_t	 v = 7;

	assert_int_equal(conf_parse_size(s, &v, &why), -1);
	assert_string_equal(why, why_want);
	assert_int_equal(v, 7);
}

static void
test_sizes(void **state)
{
	(void)state;
	size_is("0", 0);
	size_is("1", 1);
	size_is("512B", 512);
	size_is("1K", 1024);
	size_is("1KB", 1024);
	size_is("1KiB", 1024);
	size_is("1kib", 1024);
	size_is("64MiB", 64ULL << 20);
	size_is("64 MiB", 64ULL << 20);
	size_is("2M", 2ULL << 20);
	size_is("3GB", 3ULL << 30);
	size_is("3GiB", 3ULL << 30);
	size_is("16TiB", 16ULL << 40);
	size_is("4T", 4ULL << 40);
	size_is("18446744073709551615", UINT64_MAX);
	size_bad("", "empty");
	size_bad(NULL, "empty");
	size_bad("-1", "negative");
	size_bad("-1MiB", "negative");
	size_bad("MiB", "not a number");
	size_bad(" 5", "not a number");
	size_bad("garbage", "not a number");
	size_bad("64XB", "unknown unit");
	size_bad("64MiBs", "unknown unit");
	size_bad("1.5GiB", "not a whole number");
	size_bad("18446744073709551616", "too large");
	size_bad("16777216TiB", "too large");
	size_bad("99999999999999999999999B", "too large");
}

static void
duration_is(const char *s, uint64_t want)
{
	const char	*why = NULL;
	uint64_t	 v = 0;

	assert_int_equal(conf_parse_duration(s, &v, &why), 0);
	assert_int_equal(v, want);
}

static void
duration_bad(const char *s, const char *why_want)
{
	const char	*why = NULL;
	uint64_t	 v = 7;

	assert_int_equal(conf_parse_duration(s, &v, &why), -1);
	assert_string_equal(why, why_want);
	assert_int_equal(v, 7);
}

static void
test_durations(void **state)
{
	(void)state;
	duration_is("0", 0);
	duration_is("30", 30000);
	duration_is("500ms", 500);
	duration_is("20s", 20000);
	duration_is("5m", 300000);
	duration_is("24h", 86400000);
	duration_is("7d", 604800000);
	duration_is("7 d", 604800000);
	duration_is("0ms", 0);
	duration_bad("", "empty");
	duration_bad(NULL, "empty");
	duration_bad("-5s", "negative");
	duration_bad("s", "not a number");
	duration_bad("soon", "not a number");
	duration_bad("5x", "unknown unit");
	duration_bad("5 years", "unknown unit");
	duration_bad("1.5s", "not a whole number");
	/* bare seconds times 1000 overflows */
	duration_bad("18446744073709551615", "too large");
	duration_bad("213503982334601d", "too large");
}

/* --- Loading --- */

static void
assert_defaults(const struct conf *c)
{
	assert_string_equal(c->agent.listen, "127.0.0.1:8290");
	assert_int_equal(c->agent.shutdown_delay_ms, 5000);
	assert_int_equal(c->agent.shutdown_timeout_ms, 10000);
	assert_int_equal(c->agent.max_body, 1 << 20);
	assert_int_equal(c->agent.max_events, 1000);
	assert_int_equal(c->agent.max_header, 8192);
	assert_int_equal(c->agent.max_conns, 1024);
	assert_int_equal(c->agent.max_conns_per_ip, 64);
	assert_int_equal(c->agent.idle_timeout_ms, 30000);
	assert_int_equal(c->agent.threads, 0);
	assert_null(c->agent.tokens_file);
	assert_null(c->agent.cors_origins);
	assert_null(c->agent.trusted_proxies);
	assert_int_equal(c->agent.log_level, LOG_LVL_INFO);
	assert_int_equal(c->agent.strict_streams, 0);
	assert_string_equal(c->spool.dir, "/var/lib/ferry/spool");
	assert_int_equal(c->spool.max_size, 1ULL << 30);
	assert_int_equal(c->spool.high_watermark, 80);
	assert_int_equal(c->spool.retain_ms, 0);
	assert_int_equal(c->spool.reserve, 64ULL << 20);
	assert_null(c->spool.encryption_key_file);
	assert_int_equal(c->dedup.window_ms, 3600000);
	assert_null(c->dedup.json_key);
	assert_int_equal(c->nstreams, 0);
	assert_int_equal(c->nsinks, 0);
}

static void
test_defaults(void **state)
{
	struct conf	*c;

	(void)state;
	c = load_ok("");
	assert_defaults(c);
	assert_non_null(strstr(c->path, tmpdir));
	conf_free(c);
	c = load_ok("# only comments\n; and blanks\n\n[agent]\n[spool]\n"
	    "[dedup]\n");
	assert_defaults(c);
	conf_free(c);
}

static void
test_reference_conf(void **state)
{
	const char	*dir = getenv("FERRY_TESTS_DIR");
	struct conf	*c;
	char		*path, *errs;
	size_t		 len;
	FILE		*f;

	(void)state;
	if (dir == NULL)
		dir = "tests";
	assert_true(asprintf(&path, "%s/../conf/ferry.conf", dir) > 0);
	assert_non_null(f = open_memstream(&errs, &len));
	c = conf_load(path, f);
	fclose(f);
	if (c == NULL)
		print_error("%s", errs);
	assert_non_null(c);
	assert_string_equal(errs, "");
	/* The reference documents the defaults: it must be them. */
	assert_defaults(c);
	conf_free(c);
	free(errs);
	free(path);
}

static void
test_values(void **state)
{
	struct conf	*c;

	(void)state;
	c = load_ok(
	    "[agent]\n"
	    "listen = [::1]:9000\n"
	    "shutdown_delay = 0\n"
	    "shutdown_timeout = 1500ms\n"
	    "max_body = 4MiB\n"
	    "max_events = 5\n"
	    "max_header = 16K\n"
	    "max_conns = 10\n"
	    "max_conns_per_ip = 2\n"
	    "idle_timeout = 1h\n"
	    "threads = 8\n"
	    "tokens_file = /etc/ferry/tokens\n"
	    "cors_origins = https://a.example http://b.example:8080\n"
	    "trusted_proxies = 10.0.0.1 ::1\n"
	    "log_level = debug\n"
	    "strict_streams = on\n"
	    "[spool]\n"
	    "dir = /tmp/spool\n"
	    "max_size = 16TiB\n"
	    "high_watermark = 90%\n"
	    "retain = 2d\n"
	    "reserve = 128MiB\n"
	    "encryption_key_file = /etc/ferry/key\n"
	    "[dedup]\n"
	    "window = 0\n"
	    "json_key = id\n"
	    "[stream.clicks]\n"
	    "schema = /s/clicks.avsc\n"
	    "[stream.empty]\n"
	    "allow_opaque = TRUE\n");
	assert_string_equal(c->agent.listen, "[::1]:9000");
	assert_int_equal(c->agent.shutdown_delay_ms, 0);
	assert_int_equal(c->agent.shutdown_timeout_ms, 1500);
	assert_int_equal(c->agent.max_body, 4 << 20);
	assert_int_equal(c->agent.max_events, 5);
	assert_int_equal(c->agent.max_header, 16384);
	assert_int_equal(c->agent.max_conns, 10);
	assert_int_equal(c->agent.max_conns_per_ip, 2);
	assert_int_equal(c->agent.idle_timeout_ms, 3600000);
	assert_int_equal(c->agent.threads, 8);
	assert_string_equal(c->agent.tokens_file, "/etc/ferry/tokens");
	assert_string_equal(c->agent.cors_origins,
	    "https://a.example http://b.example:8080");
	assert_string_equal(c->agent.trusted_proxies, "10.0.0.1 ::1");
	assert_int_equal(c->agent.log_level, LOG_LVL_DEBUG);
	assert_int_equal(c->agent.strict_streams, 1);
	assert_string_equal(c->spool.dir, "/tmp/spool");
	assert_int_equal(c->spool.max_size, 16ULL << 40);
	assert_int_equal(c->spool.high_watermark, 90);
	assert_int_equal(c->spool.retain_ms, 2 * 86400000ULL);
	assert_int_equal(c->spool.reserve, 128ULL << 20);
	assert_string_equal(c->spool.encryption_key_file, "/etc/ferry/key");
	assert_int_equal(c->dedup.window_ms, 0);
	assert_string_equal(c->dedup.json_key, "id");
	assert_int_equal(c->nstreams, 2);
	assert_string_equal(c->streams[0].name, "clicks");
	assert_int_equal(c->streams[0].line, 27);
	assert_int_equal(c->streams[0].allow_opaque, 0);
	assert_string_equal(c->streams[0].schema, "/s/clicks.avsc");
	assert_string_equal(c->streams[1].name, "empty");
	assert_int_equal(c->streams[1].allow_opaque, 1);
	assert_null(c->streams[1].schema);
	conf_free(c);
}

static void
test_bools(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "Yes" };
	static const char *const no[] = { "no", "false", "off", "0", "OFF" };
	struct conf	*c;
	char		 text[128];
	size_t		 i;

	(void)state;
	for (i = 0; i < 5; i++) {
		snprintf(text, sizeof(text), "[stream.s]\nallow_opaque = %s\n",
		    yes[i]);
		c = load_ok(text);
		assert_int_equal(c->streams[0].allow_opaque, 1);
		conf_free(c);
		snprintf(text, sizeof(text), "[stream.s]\nallow_opaque = %s\n",
		    no[i]);
		c = load_ok(text);
		assert_int_equal(c->streams[0].allow_opaque, 0);
		conf_free(c);
	}
	FAIL("[stream.s]\nallow_opaque = maybe\n", ":2: [stream.s] "
	    "allow_opaque: 'maybe' is not a boolean (use yes or no)");
	FAIL("[stream.s]\nallow_opaque =\n", "'' is not a boolean");
}

static void
test_bounds(void **state)
{
	struct conf	*c;

	(void)state;
	c = load_ok("[agent]\nmax_body = 1KiB\nthreads = 64\n"
	    "idle_timeout = 1s\n[spool]\nhigh_watermark = 1\n"
	    "max_size = 1MiB\nreserve = 0\n");
	assert_int_equal(c->agent.max_body, 1024);
	assert_int_equal(c->spool.reserve, 0);
	assert_int_equal(c->agent.threads, 64);
	assert_int_equal(c->agent.idle_timeout_ms, 1000);
	assert_int_equal(c->spool.high_watermark, 1);
	conf_free(c);
	c = load_ok("[agent]\nmax_body = 64MiB\nidle_timeout = 60m\n"
	    "shutdown_delay = 10m\n[spool]\nhigh_watermark = 100%\n"
	    "reserve = 16TiB\n[dedup]\nwindow = 30d\n");
	assert_int_equal(c->agent.max_body, 64 << 20);
	assert_int_equal(c->spool.reserve, 16ULL << 40);
	assert_int_equal(c->agent.shutdown_delay_ms, 600000);
	assert_int_equal(c->dedup.window_ms, 30 * 86400000ULL);
	conf_free(c);
	FAIL("[agent]\nmax_body = 1023\n",
	    ":2: [agent] max_body: '1023' is out of range (1KiB..64MiB)\n");
	FAIL("[agent]\nmax_body = 67108865\n",
	    "max_body: '67108865' is out of range (1KiB..64MiB)");
	FAIL("[agent]\nthreads = 65\n",
	    "threads: '65' is out of range (0..64)");
	FAIL("[agent]\nthreads = -1\n",
	    "threads: '-1' is out of range (0..64)");
	FAIL("[agent]\nidle_timeout = 999ms\n",
	    "idle_timeout: '999ms' is out of range (1s..1h)");
	FAIL("[agent]\nshutdown_delay = 601s\n",
	    "shutdown_delay: '601s' is out of range (0..10m)");
	FAIL("[agent]\nmax_events = 0\n",
	    "max_events: '0' is out of range (1..100000)");
	FAIL("[spool]\nhigh_watermark = 0\n",
	    "high_watermark: '0' is out of range (1..100)");
	FAIL("[spool]\nhigh_watermark = 101%\n",
	    "high_watermark: '101%' is out of range (1..100)");
	FAIL("[spool]\nhigh_watermark = 80 percent\n",
	    "high_watermark: '80 percent' is not a percentage (use e.g. 80%)");
	FAIL("[spool]\nmax_size = 17TiB\n",
	    "max_size: '17TiB' is out of range (1MiB..16TiB)");
	FAIL("[spool]\nreserve = 17TiB\n",
	    "reserve: '17TiB' is out of range (0..16TiB)");
	FAIL("[spool]\nreserve = -1\n",
	    "[spool] reserve: '-1'");
	FAIL("[dedup]\nwindow = 31d\n",
	    "window: '31d' is out of range (0..30d)");
	FAIL("[agent]\nmax_events = 12abc\n",
	    "max_events: '12abc' is not a whole number");
	FAIL("[agent]\nmax_events = 99999999999999999999\n",
	    "max_events: '99999999999999999999' is not a whole number");
}

static void
test_bad_values(void **state)
{
	(void)state;
	FAIL("[spool]\nmax_size = 64XB\n", ":2: [spool] max_size: '64XB' is "
	    "not a size (unknown unit; use e.g. 64MiB)\n");
	FAIL("[spool]\nmax_size = -1GiB\n", "'-1GiB' is not a size "
	    "(negative;");
	FAIL("[spool]\nmax_size =\n", "max_size: '' is not a size (empty;");
	FAIL("[spool]\nmax_size = 99999999TiB\n", "(too large;");
	FAIL("[spool]\nretain = forever\n", "[spool] retain: 'forever' is "
	    "not a duration (not a number; use e.g. 500ms, 30s, 5m, 1h or 7d)");
	FAIL("[agent]\nlog_level = verbose\n", "[agent] log_level: 'verbose' "
	    "is not a log level (use error, warn, info or debug)");
	FAIL("[spool]\ndir =\n", "[spool] dir: must not be empty");
}

static void
test_listen(void **state)
{
	static const char *const good[] = { "0.0.0.0:80", "localhost:8290",
	    "[::]:1", "[::1]:65535", "host-1.example.com:8290" };
	static const char *const bad[] = { "localhost", ":8290", "[::1]8290",
	    "[zz]:80", "a b:80", "[::1:80" };
	struct conf	*c;
	char		 text[128];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[agent]\nlisten = %s\n", good[i]);
		c = load_ok(text);
		assert_string_equal(c->agent.listen, good[i]);
		conf_free(c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[agent]\nlisten = %s\n", bad[i]);
		FAIL(text, "[agent] listen: '", "is not host:port (use e.g. "
		    "127.0.0.1:8290 or [::1]:8290)");
	}
	FAIL("[agent]\nlisten = 1.2.3.4:0\n",
	    "listen: '1.2.3.4:0': port must be 1..65535");
	FAIL("[agent]\nlisten = 1.2.3.4:65536\n", "port must be 1..65535");
	FAIL("[agent]\nlisten = [::1]:\n", "port must be 1..65535");
	FAIL("[agent]\nlisten = host:http\n", "port must be 1..65535");
	FAIL("[agent]\nlisten = ::1:80\n", "put an IPv6 address in brackets");
	FAIL("[agent]\nlisten =\n", "[agent] listen: must not be empty");
	FAIL("[agent]\ntrusted_proxies = 10.0.0.1, 10.0.0.2\n",
	    "trusted_proxies: '10.0.0.1,' is not an IP address");
	FAIL("[agent]\ntrusted_proxies = proxy.local\n",
	    "'proxy.local' is not an IP address");
	FAIL("[agent]\ncors_origins = example.com\n",
	    "cors_origins: 'example.com' is not an origin");
	FAIL("[agent]\ncors_origins = https://a.example https://b/x\n",
	    "'https://b/x' is not an origin");
	c = load_ok("[agent]\ncors_origins = *\ntrusted_proxies =\n");
	assert_string_equal(c->agent.cors_origins, "*");
	assert_null(c->agent.trusted_proxies);
	conf_free(c);
}

static void
test_unknown(void **state)
{
	char	*errs;

	(void)state;
	errs = load_fail("[agent]\nlisten = 127.0.0.1:1\nlissen = x\n"
	    "[agnet]\nlisten = y\nfoo = z\n[stream.s]\nbrokers = b\n",
	    ":3: [agent] lissen: unknown key\n",
	    ":4: [agnet]: unknown section (use agent, spool, dedup, "
	    "stream.NAME or sink.NAME)\n",
	    ":8: [stream.s] brokers: unknown key\n", (char *)NULL);
	/* Each error names the file, and keys under [agnet] say nothing. */
	assert_int_equal(nlines(errs), 3);
	assert_memory_equal(errs, tmpdir, strlen(tmpdir));
	free(errs);
	FAIL("listen = x\n[agent]\n",
	    ":1: listen: outside any section (put it under [agent], [spool]");
	FAIL("[Agent]\n", "[Agent]: unknown section");
	FAIL("[agent]\nListen = 1.2.3.4:5\n", "[agent] Listen: unknown key");
	FAIL("[sink.s]\ntype = kafka\nbrokers = b\nbatch = 5\n",
	    ":4: [sink.s] batch: unknown key");
}

static void
test_duplicates(void **state)
{
	char	*errs;

	(void)state;
	FAIL("[agent]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n",
	    ":3: [agent] listen: given twice (first at line 2)\n");
	/* The second section is refused, and its keys are not read. */
	errs = load_fail("[spool]\nretain = 1s\n\n[spool]\nretain = 2s\n",
	    ":4: [spool]: section given twice (first at line 1)\n",
	    (char *)NULL);
	assert_int_equal(nlines(errs), 1);
	free(errs);
	FAIL("[stream.a]\n[stream.b]\n[stream.a]\n",
	    ":3: [stream.a]: section given twice (first at line 1)");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nkafka.linger.ms = 1\n"
	    "kafka.linger.ms = 2\n",
	    ":5: [sink.k] kafka.linger.ms: given twice (first at line 4)");
	FAIL("[sink.k]\ntype = kafka\ntype = kafka\nbrokers = b\n",
	    ":3: [sink.k] type: given twice (first at line 2)");
}

static void
test_syntax(void **state)
{
	struct conf	*c;
	char		*errs, *path, line[400];
	static const char bom[] = "\xEF\xBB\xBF[agent]\nthreads = 3\n";

	(void)state;
	c = load_ok("  [ agent ]   ; comment\n\tthreads = 2 ; two\n"
	    "    log_level=warn\n# x = y\n   ; x = y\n");
	assert_int_equal(c->agent.threads, 2);
	assert_int_equal(c->agent.log_level, LOG_LVL_WARN);
	conf_free(c);
	/* an indented line is a key, never a continuation of the last value */
	c = load_ok("[agent]\ncors_origins = https://a.example\n"
	    "  log_level = error\n");
	assert_string_equal(c->agent.cors_origins, "https://a.example");
	assert_int_equal(c->agent.log_level, LOG_LVL_ERROR);
	conf_free(c);
	path = write_file(bom, sizeof(bom) - 1);
	assert_non_null(c = conf_load(path, NULL));
	assert_int_equal(c->agent.threads, 3);
	conf_free(c);
	free(path);
	errs = load_fail("[agent\nthreads = 2\n[agent]\njunk\n= 5\n"
	    "threads = 1 2\n[spool] x\n",
	    ":1: '[agent': section header without ']'\n",
	    ":4: [agent]: 'junk' is not a 'key = value' line\n",
	    ":5: [agent]: missing key before '='\n",
	    ":6: [agent] threads: '1 2' is not a whole number\n",
	    ":7: [spool]: unexpected 'x' after ']'\n", (char *)NULL);
	assert_int_equal(nlines(errs), 5);
	free(errs);
	memset(line, 'a', sizeof(line));
	memcpy(line, "[agent]\ntokens_file = /", 23);
	strcpy(line + sizeof(line) - 16, "\nthreads = 99\n");
	FAIL(line, ":2: [agent]: line longer than 197 characters",
	    ":3: [agent] threads: '99' is out of range");
}

static void
test_names(void **state)
{
	struct conf	*c;
	char		 name[70], text[200];

	(void)state;
	memset(name, 'n', sizeof(name));
	name[64] = '\0';
	snprintf(text, sizeof(text), "[stream.%s]\n[sink.a-b_c.9]\ntype = "
	    "avro-files\ndir = /x\n[stream.x-Y_1.z]\n", name);
	c = load_ok(text);
	assert_int_equal(c->nstreams, 2);
	assert_string_equal(c->streams[0].name, name);
	assert_string_equal(c->sinks[0].name, "a-b_c.9");
	assert_ptr_equal(conf_stream_find(c, name, 64), &c->streams[0]);
	assert_ptr_equal(conf_stream_find(c, "x-Y_1.zzz", 7), &c->streams[1]);
	assert_null(conf_stream_find(c, "x-Y_1.", 6));
	assert_null(conf_stream_find(c, "x-Y_1.zz", 8));
	assert_null(conf_stream_find(c, "a-b_c.9", 7));
	conf_free(c);
	name[64] = 'n';
	name[65] = '\0';
	snprintf(text, sizeof(text), "[stream.%s]\n", name);
	FAIL(text, "is not a stream name (use 1 to 64 of A-Z a-z 0-9 . _ -)");
	FAIL("[stream.]\n", ":1: [stream.]: '' is not a stream name");
	FAIL("[stream.a b]\n", "[stream.a b]: 'a b' is not a stream name");
	FAIL("[sink.x/y]\ntype = kafka\n",
	    ":1: [sink.x/y]: 'x/y' is not a sink name");
	FAIL("[stream]\n", "[stream]: unknown section");
	FAIL("[streams.a]\n", "[streams.a]: unknown section");
}

static void
test_sinks(void **state)
{
	struct conf		*c;
	const struct conf_sink	*k, *a;

	(void)state;
	c = load_ok("[sink.central]\ntype = kafka\nbrokers = k1:9092,k2:9092\n"
	    "kafka.linger.ms = 20\nkafka.compression.type = zstd\n"
	    "[sink.plain]\ntype = kafka\nbrokers = k\n"
	    "topic = ev.{stream}.v1\nformat = confluent\nconfluent_id = 7\n"
	    "key = json:user.id\n"
	    "[sink.files]\ntype = avro-files\ndir = /var/avro\n"
	    "roll_size = 1KiB\nroll_interval = 7d\nroll_count = 100\n"
	    "codec = null\n");
	assert_int_equal(c->nsinks, 3);
	k = &c->sinks[0];
	assert_string_equal(k->name, "central");
	assert_int_equal(k->type, CONF_SINK_KAFKA);
	assert_int_equal(k->line, 1);
	assert_string_equal(k->brokers, "k1:9092,k2:9092");
	assert_string_equal(k->topic, "{stream}");
	assert_int_equal(k->format, CONF_FMT_RAW);
	assert_int_equal(k->key, CONF_KEY_IDEMPOTENCY);
	assert_null(k->key_field);
	assert_int_equal(k->confluent_id, -1);
	assert_int_equal(k->nprops, 2);
	assert_string_equal(k->props[0].name, "linger.ms");
	assert_string_equal(k->props[0].value, "20");
	assert_int_equal(k->props[0].line, 4);
	assert_string_equal(k->props[1].name, "compression.type");
	assert_string_equal(k->props[1].value, "zstd");
	k = &c->sinks[1];
	assert_string_equal(k->topic, "ev.{stream}.v1");
	assert_int_equal(k->format, CONF_FMT_CONFLUENT);
	assert_int_equal(k->confluent_id, 7);
	assert_int_equal(k->key, CONF_KEY_JSON);
	assert_string_equal(k->key_field, "user.id");
	assert_int_equal(k->nprops, 0);
	a = &c->sinks[2];
	assert_int_equal(a->type, CONF_SINK_AVRO_FILES);
	assert_string_equal(a->dir, "/var/avro");
	assert_int_equal(a->roll_size, 1024);
	assert_int_equal(a->roll_interval_ms, 7 * 86400000ULL);
	assert_int_equal(a->roll_count, 100);
	assert_string_equal(a->codec, "null");
	conf_free(c);
	c = load_ok("[sink.f]\ntype = avro-files\ndir = /a\n[sink.k]\n"
	    "brokers = b\ntype = kafka\nkey = none\nformat = avro\n");
	assert_int_equal(c->sinks[0].roll_size, 64 << 20);
	assert_int_equal(c->sinks[0].roll_interval_ms, 300000);
	assert_int_equal(c->sinks[0].roll_count, 0);
	assert_string_equal(c->sinks[0].codec, "deflate");
	assert_int_equal(c->sinks[0].deflate_level, 1);
	assert_int_equal(c->sinks[0].compress_threads, -1);
	assert_int_equal(c->sinks[1].key, CONF_KEY_NONE);
	assert_int_equal(c->sinks[1].format, CONF_FMT_AVRO);
	conf_free(c);
}

static void
test_sink_values(void **state)
{
	static const char *const codecs[] = { "null", "deflate", "snappy" };
	struct conf	*c;
	char		 text[128];
	size_t		 i;

	(void)state;
	for (i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "[sink.a]\ntype = avro-files\n"
		    "dir = /a\ncodec = %s\n", codecs[i]);
		c = load_ok(text);
		assert_string_equal(c->sinks[0].codec, codecs[i]);
		conf_free(c);
	}
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\ncodec = zip\n",
	    ":4: [sink.a] codec: 'zip' is not a codec (use null, deflate "
	    "or snappy)");
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\ncodec = lzma\n",
	    ":4: [sink.a] codec: 'lzma' is not a codec (use null, deflate "
	    "or snappy)");
	FAIL("[sink.a]\ntype = s3\n",
	    ":2: [sink.a] type: 's3' is not one of kafka, avro-files\n");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nformat = json\n",
	    ":4: [sink.k] format: 'json' is not one of raw, avro, confluent");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nkey = json:\n",
	    ":4: [sink.k] key: 'json:' needs a field name");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nkey = random\n",
	    "key: 'random' is not a key (use idempotency, none or "
	    "json:FIELD)");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\ntopic = a/{stream}\n",
	    "topic: 'a/{stream}' is not a topic template");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\ntopic = {name}\n",
	    "topic: '{name}' is not a topic template");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nconfluent_id = "
	    "2147483648\n", "confluent_id: '2147483648' is out of range "
	    "(0..2147483647)");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nconfluent_id = -1\n",
	    "confluent_id: '-1' is out of range (0..2147483647)");
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\nroll_size = 17GiB\n",
	    "roll_size: '17GiB' is out of range (1KiB..16GiB)");
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\nroll_interval = 8d\n",
	    "roll_interval: '8d' is out of range (1s..7d)");
	c = load_ok("[sink.k]\ntype = kafka\nbrokers = b\nformat = confluent"
	    "\nconfluent_id = 2147483647\n");
	assert_int_equal(c->sinks[0].confluent_id, 2147483647);
	conf_free(c);
	c = load_ok("[sink.a]\ntype = avro-files\ndir = /a\n"
	    "deflate_level = 1\ncompress_threads = 0\n"
	    "[sink.b]\ntype = avro-files\ndir = /b\n"
	    "deflate_level = 9\ncompress_threads = 64\n");
	assert_int_equal(c->sinks[0].deflate_level, 1);
	assert_int_equal(c->sinks[0].compress_threads, 0);
	assert_int_equal(c->sinks[1].deflate_level, 9);
	assert_int_equal(c->sinks[1].compress_threads, 64);
	conf_free(c);
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\ndeflate_level = 0\n",
	    ":4: [sink.a] deflate_level: '0' is out of range (1..9)\n");
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\ndeflate_level = 10\n",
	    ":4: [sink.a] deflate_level: '10' is out of range (1..9)\n");
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\ndeflate_level = x\n",
	    ":4: [sink.a] deflate_level: 'x' is not a whole number\n");
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\n"
	    "compress_threads = 65\n",
	    ":4: [sink.a] compress_threads: '65' is out of range (0..64)\n");
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\n"
	    "compress_threads = -1\n",
	    ":4: [sink.a] compress_threads: '-1' is out of range (0..64)\n");
	FAIL("[sink.a]\ntype = avro-files\ndir = /a\n"
	    "compress_threads = x\n",
	    ":4: [sink.a] compress_threads: 'x' is not a whole number\n");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\ndeflate_level = 9\n"
	    "compress_threads = 2\n",
	    ":4: [sink.k] deflate_level: applies only to type = avro-files\n",
	    ":5: [sink.k] compress_threads: applies only to type = "
	    "avro-files\n");
}

static void
test_cross_field(void **state)
{
	char	*errs;

	(void)state;
	FAIL("[sink.k]\ntype = kafka\n",
	    ":1: [sink.k] brokers: missing; type = kafka needs brokers\n");
	FAIL("[sink.k]\nbrokers =\ntype = kafka\n",
	    ":1: [sink.k] brokers: missing; type = kafka needs brokers\n");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nformat = confluent\n",
	    ":1: [sink.k] confluent_id: missing; format = confluent needs "
	    "confluent_id\n");
	FAIL("\n[sink.a]\ntype = avro-files\n",
	    ":2: [sink.a] dir: missing; type = avro-files needs dir\n");
	FAIL("[sink.x]\nbrokers = b\n",
	    ":1: [sink.x] type: missing (set type = kafka or type = "
	    "avro-files)\n");
	/* a bad type is reported once, not again as missing */
	errs = load_fail("[sink.x]\ntype = kafak\nbrokers = b\n",
	    "'kafak' is not one of", (char *)NULL);
	assert_int_equal(nlines(errs), 1);
	free(errs);
	errs = load_fail("[sink.k]\ntype = kafka\nbrokers = b\ndir = /d\n"
	    "codec = null\n[sink.a]\nbrokers = b\ntype = avro-files\n"
	    "dir = /e\nkafka.linger.ms = 5\nformat = raw\n",
	    ":4: [sink.k] dir: applies only to type = avro-files\n",
	    ":5: [sink.k] codec: applies only to type = avro-files\n",
	    ":7: [sink.a] brokers: applies only to type = kafka\n",
	    ":11: [sink.a] format: applies only to type = kafka\n",
	    ":10: [sink.a] kafka.linger.ms: applies only to type = kafka\n",
	    (char *)NULL);
	assert_int_equal(nlines(errs), 5);
	free(errs);
	FAIL("[sink.a]\ntype = avro-files\ndir = /d\n[sink.b]\n"
	    "type = avro-files\ndir = /d\n",
	    ":4: [sink.b] dir: '/d' is also the dir of [sink.a]\n");
	/* spelled otherwise: a trailing slash; the same inode */
	FAIL("[sink.a]\ntype = avro-files\ndir = /nonexistent/d\n[sink.b]\n"
	    "type = avro-files\ndir = /nonexistent/d//\n",
	    ":4: [sink.b] dir: '/nonexistent/d//' is also the dir of "
	    "[sink.a]\n");
	FAIL("[sink.a]\ntype = avro-files\ndir = /tmp\n[sink.b]\n"
	    "type = avro-files\ndir = /tmp/../tmp/.\n",
	    ":4: [sink.b] dir: '/tmp/../tmp/.' is also the dir of [sink.a]\n");
	FAIL("[stream.s]\nschema = s.avsc\nallow_opaque = yes\n",
	    ":1: [stream.s] allow_opaque: yes, but the stream has a schema, "
	    "which opaque events would skip: choose one\n");
	FAIL("[agent]\nstrict_streams = yes\n",
	    ":2: [agent] strict_streams: yes, but there is no [stream.NAME] "
	    "section");
	conf_free(load_ok("[agent]\nstrict_streams = yes\n[stream.s]\n"));
}

static void
test_kafka_props(void **state)
{
	(void)state;
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nkafka.bogus.prop = 1\n",
	    ":4: [sink.k] kafka.bogus.prop: librdkafka: No such "
	    "configuration property: \"bogus.prop\"\n");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\n\nkafka.acks = maybe\n",
	    ":5: [sink.k] kafka.acks: librdkafka: Invalid value");
	FAIL("[sink.k]\ntype = kafka\nbrokers = b\nkafka. = 1\n",
	    ":4: [sink.k] kafka.: missing property name");
	FAIL("[stream.s]\nkafka.linger.ms = 1\n",
	    ":2: [stream.s] kafka.linger.ms: unknown key");
}

/* Every error is found in one pass, then the cross-field ones. */
static void
test_all_errors(void **state)
{
	char	*errs;

	(void)state;
	errs = load_fail("[agent]\nmax_body = 1\nthreads = x\n[bogus]\n"
	    "[spool]\nmax_size = 1XB\n[sink.k]\ntype = kafka\n"
	    "kafka.nope = 1\n",
	    ":2: [agent] max_body:", ":3: [agent] threads:", ":4: [bogus]:",
	    ":6: [spool] max_size:", ":9: [sink.k] kafka.nope:",
	    ":7: [sink.k] brokers: missing", (char *)NULL);
	assert_int_equal(nlines(errs), 6);
	/* cross-field errors come last */
	assert_true(strstr(errs, ":9:") < strstr(errs, ":7:"));
	free(errs);
}

static void
test_missing_file(void **state)
{
	char	*path, *errs;
	size_t	 len;
	FILE	*f;

	(void)state;
	assert_true(asprintf(&path, "%s/nonexistent.conf", tmpdir) > 0);
	assert_non_null(f = open_memstream(&errs, &len));
	assert_null(conf_load(path, f));
	fclose(f);
	assert_non_null(strstr(errs, path));
	assert_non_null(strstr(errs, "No such file or directory"));
	free(errs);
	free(path);
}

/* --- Keys --- */

static void
read_key(const void *data, size_t len, int want, const char *errwant)
{
	unsigned char	 key[32];
	char		 err[256] = "", *path = write_file(data, len);
	int		 rc;

	rc = conf_read_key(path, key, err, sizeof(err));
	if (rc != want)
		print_error("%s\n", err);
	assert_int_equal(rc, want);
	if (want == 0) {
		unsigned char	expect[32];
		size_t		i;

		for (i = 0; i < 32; i++)
			expect[i] = (unsigned char)(i * 7 + 1);
		assert_memory_equal(key, expect, 32);
	} else {
		assert_non_null(strstr(err, path));
		assert_non_null(strstr(err, errwant));
	}
	free(path);
}

static void
test_read_key(void **state)
{
	unsigned char	 raw[32];
	char		 hex[80], bad[100], big[300], err[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < 32; i++) {
		raw[i] = (unsigned char)(i * 7 + 1);
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	}
	read_key(raw, 32, 0, NULL);
	read_key(hex, 64, 0, NULL);
	snprintf(bad, sizeof(bad), "  %s\n\n", hex);
	read_key(bad, strlen(bad), 0, NULL);
	for (i = 0; i < 64; i++)
		bad[i] = (char)toupper((unsigned char)hex[i]);
	read_key(bad, 64, 0, NULL);
	read_key(raw, 31, -1, "found 31 bytes");
	memcpy(bad, raw, 32);
	bad[32] = '\n';
	read_key(bad, 33, -1, "expected 64 hex characters or exactly 32 "
	    "bytes, found 33 bytes");
	read_key(hex, 63, -1, "found 63 bytes");
	memcpy(bad, hex, 64);
	bad[10] = 'g';
	read_key(bad, 64, -1, "not a key");
	memcpy(bad, hex, 64);
	bad[64] = 'a';
	bad[65] = 'b';
	read_key(bad, 66, -1, "found 66 bytes");
	memset(big, 'a', sizeof(big));
	read_key(big, sizeof(big), -1, "found at least 256 bytes");
	read_key("", 0, -1, "found 0 bytes");
	assert_int_equal(conf_read_key("/nonexistent/ferry.key", raw, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/ferry.key: No such file or "
	    "directory");
}

/* --- Setup --- */

static int
rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	const char	*base = getenv("TMPDIR");

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_conf.XXXXXX",
	    base != NULL ? base : "/tmp");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm, 8, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_reference_conf),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_bools),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sinks),
		cmocka_unit_test(test_sink_values),
		cmocka_unit_test(test_cross_field),
		cmocka_unit_test(test_kafka_props),
		cmocka_unit_test(test_all_errors),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_read_key),
	};

	return cmocka_run_group_tests_name("conf", tests, setup, teardown);
}
