/*
 * fuzz_conf.c: libFuzzer target for the configuration loader
 * (conf/conf.c: our line reader feeding inih, the table of typed
 * directives, the cross-field checks) and the spool key reader.  The input
 * is a whole ferry.conf, so any configuration file is a seed; conf_load()
 * reads it from a memfd by its /proc/self/fd path, as it would read
 * /etc/ferry/ferry.conf.  The same bytes are also read as a spool key file
 * (conf_read_key) and their first line as a size and a duration.
 *
 * Oracles besides the sanitizers: conf_load() fails iff it reported
 * something, and every report is one line naming the file; a loaded
 * configuration holds every bound of the directive table and the
 * cross-field rules; conf_read_key() accepts exactly 32 raw bytes or 64
 * hex digits with blanks around them.
 */
#include <sys/mman.h>

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KiB	(UINT64_C(1) << 10)
#define MiB	(UINT64_C(1) << 20)
#define CHECK(e)	do { if (!(e)) { fprintf(stderr, "fuzz_conf: %s:%d: " \
	"%s\n", __FILE__, __LINE__, #e); abort(); } } while (0)

static int fd = -1;
static char path[64];

static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= CONF_NAME_MAX && strspn(s, "abcdefghijklmnop"
	    "qrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* What conf.h and the directive table promise of a loaded conf. */
static void
check_conf(const struct conf *c)
{
	CHECK(c->path != NULL && strcmp(c->path, path) == 0);
	CHECK(c->agent.listen != NULL && c->spool.dir != NULL);
	CHECK(c->agent.max_body >= KiB && c->agent.max_body <= 64 * MiB);
	CHECK(c->agent.max_events >= 1 && c->agent.max_events <= 100000);
	CHECK(c->agent.max_header >= KiB && c->agent.max_header <= MiB);
	CHECK(c->agent.idle_timeout_ms >= 1000);
	CHECK(c->agent.threads <= 64);
	CHECK(c->spool.max_size >= MiB);
	CHECK(c->spool.high_watermark >= 1 && c->spool.high_watermark <= 100);
	CHECK(!c->agent.strict_streams || c->nstreams > 0);
	for (size_t i = 0; i < c->nstreams; i++) {
		CHECK(name_ok(c->streams[i].name));
		CHECK(conf_stream_find(c, c->streams[i].name,
		    strlen(c->streams[i].name)) == &c->streams[i]);
		CHECK(c->streams[i].schema == NULL || *c->streams[i].schema);
	}
	for (size_t i = 0; i < c->nsinks; i++) {
		const struct conf_sink *sk = &c->sinks[i];

		CHECK(name_ok(sk->name));
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(sk->name, c->sinks[j].name) != 0);
		if (sk->type == CONF_SINK_KAFKA) {
			CHECK(sk->brokers != NULL && sk->topic != NULL);
			CHECK(sk->format != CONF_FMT_CONFLUENT ||
			    sk->confluent_id >= 0);
			CHECK((sk->key == CONF_KEY_JSON) ==
			    (sk->key_field != NULL && *sk->key_field));
		} else {
			CHECK(sk->type == CONF_SINK_AVRO_FILES);
			CHECK(sk->dir != NULL && sk->codec != NULL);
			CHECK(sk->nprops == 0);
			CHECK(sk->roll_size >= KiB);
		}
		for (size_t j = 0; j < sk->nprops; j++)
			CHECK(sk->props[j].name[0] != '\0' &&
			    sk->props[j].value != NULL);
	}
}

/* The reports: at least one, each a line that starts with the path. */
static void
check_errors(const char *out, size_t len)
{
	size_t plen = strlen(path);

	CHECK(len > 0 && out[len - 1] == '\n');
	for (const char *p = out; p < out + len; p = strchr(p, '\n') + 1)
		CHECK(strncmp(p, path, plen) == 0 && p[plen] == ':');
}

static int
unhex(int c)
{
	return isdigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* conf_read_key()'s verdict, the plain way. */
static int
key_ok(const uint8_t *d, size_t n)
{
	if (n == 32)
		return 1;
	if (n >= 256)
		return 0;
	while (n > 0 && isspace(d[n - 1]))
		n--;
	while (n > 0 && isspace(*d))
		d++, n--;
	if (n != 64)
		return 0;
	for (size_t i = 0; i < 64; i++)
		if (!unhex(d[i]))
			return 0;
	return 1;
}

static void
check_units(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const char *why;
	uint64_t v;
	char *line;

	line = strndup((const char *)data, nl ? (size_t)(nl - data) : size);
	CHECK(line != NULL);
	why = NULL;
	if (conf_parse_size(line, &v, &why) == -1)
		CHECK(why != NULL && *why);
	why = NULL;
	if (conf_parse_duration(line, &v, &why) == -1)
		CHECK(why != NULL && *why);
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char key[32];
	char err[512], *out = NULL;
	size_t outlen = 0;
	struct conf *c;
	FILE *errf;

	if (fd == -1) {
		if ((fd = memfd_create("ferry.conf", 0)) == -1)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) == -1 ||
	    (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	if ((errf = open_memstream(&out, &outlen)) == NULL)
		abort();
	c = conf_load(path, errf);
	fclose(errf);
	if (c != NULL) {
		CHECK(outlen == 0);
		check_conf(c);
		conf_free(c);
	} else
		check_errors(out, outlen);
	free(out);

	CHECK((conf_read_key(path, key, err, sizeof(err)) == 0) ==
	    key_ok(data, size));
	if (size > 0 && memchr(data, '\0', size) == NULL)
		check_units(data, size);
	return 0;
}
