/*
 * fuzz_avro.c: libFuzzer target for forwarder/avroenc.c, the mapping of a
 * JSON event onto a stream's Avro schema (checked at intake, encoded by
 * the sinks), and the loading of a stream's .avsc.
 *
 * Byte 0 picks the mode:
 *   bit 7 clear  the rest is an event; bits 0-1 pick its stream: "click"
 *                (a record of every supported type: nested records,
 *                nullable unions both ways round, arrays, maps, enums,
 *                fixed, bytes, long, float, double, logical types,
 *                defaults), "node" (recursive, arrays of records, maps of
 *                arrays), or "raw" (no schema: the envelope; byte 0 bits
 *                2-6 say how much of the body is its content type).
 *   bit 7 set    the rest is a schema, then optionally a NUL and an
 *                event for it: the schema is loaded as a stream's .avsc.
 *
 * Oracles besides the sanitizers: avroenc_check_json() (the check-only
 * walk, thread-safe at intake) and avroenc_binary() (the encoding walk)
 * must agree on every event; an encoded event must decode, with avro-c's
 * reader and the same schema, to a value equal to the one encoded; a
 * schema that loads must encode an event it accepts.
 */
#include <sys/mman.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avro.h>
#include <sanitizer/lsan_interface.h>

#include "avroenc.h"
#include "conf.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_options(void);

/*
 * avro-c's generic values keep pointers at unaligned addresses: without
 * this, LeakSanitizer takes what a live scratch value holds for leaks.
 */
const char *
__lsan_default_options(void)
{
	return "use_unaligned=1";
}

static const char click_avsc[] =
"{\"type\": \"record\", \"name\": \"Click\", \"namespace\": \"ferry.fuzz\",\n"
" \"fields\": [\n"
"  {\"name\": \"id\", \"type\": \"long\"},\n"
"  {\"name\": \"user\", \"type\": {\"type\": \"record\", \"name\": \"User\",\n"
"   \"fields\": [\n"
"    {\"name\": \"name\", \"type\": \"string\"},\n"
"    {\"name\": \"age\", \"type\": [\"null\", \"int\"], \"default\": null},\n"
"    {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": "
"\"string\"}, \"default\": []}]}},\n"
"  {\"name\": \"referrer\", \"type\": [\"User\", \"null\"], \"default\": "
"{\"name\": \"nobody\"}},\n"
"  {\"name\": \"score\", \"type\": \"double\", \"default\": 0.5},\n"
"  {\"name\": \"ratio\", \"type\": \"float\", \"default\": 1},\n"
"  {\"name\": \"ok\", \"type\": \"boolean\", \"default\": true},\n"
"  {\"name\": \"kind\", \"type\": {\"type\": \"enum\", \"name\": \"Kind\",\n"
"   \"symbols\": [\"VIEW\", \"CLICK\", \"BUY\"]}, \"default\": \"VIEW\"},\n"
"  {\"name\": \"hash\", \"type\": {\"type\": \"fixed\", \"name\": \"Tag4\", "
"\"size\": 4},\n   \"default\": \"abcd\"},\n"
"  {\"name\": \"prev\", \"type\": [\"null\", \"Tag4\"], \"default\": null},\n"
"  {\"name\": \"blob\", \"type\": \"bytes\", \"default\": \"\"},\n"
"  {\"name\": \"attrs\", \"type\": {\"type\": \"map\", \"values\": "
"[\"null\", \"long\"]},\n   \"default\": {}},\n"
"  {\"name\": \"at\", \"type\": {\"type\": \"long\", \"logicalType\": "
"\"timestamp-millis\"},\n   \"default\": 0},\n"
"  {\"name\": \"day\", \"type\": {\"type\": \"int\", \"logicalType\": "
"\"date\"}, \"default\": 0},\n"
"  {\"name\": \"amount\", \"type\": {\"type\": \"bytes\", \"logicalType\": "
"\"decimal\",\n   \"precision\": 9, \"scale\": 2}, \"default\": \"\"},\n"
"  {\"name\": \"uuid\", \"type\": {\"type\": \"string\", \"logicalType\": "
"\"uuid\"},\n   \"default\": \"00000000-0000-0000-0000-000000000000\"},\n"
"  {\"name\": \"nothing\", \"type\": \"null\", \"default\": null},\n"
"  {\"name\": \"small\", \"type\": \"int\", \"default\": -2147483648}\n"
" ]}\n";

static const char node_avsc[] =
"{\"type\": \"record\", \"name\": \"Node\", \"fields\": [\n"
"  {\"name\": \"v\", \"type\": \"int\"},\n"
"  {\"name\": \"next\", \"type\": [\"null\", \"Node\"], \"default\": null},\n"
"  {\"name\": \"kids\", \"type\": {\"type\": \"array\", \"items\": \"Node\"},"
"\n   \"default\": []},\n"
"  {\"name\": \"index\", \"type\": {\"type\": \"map\", \"values\": {\n"
"   \"type\": \"array\", \"items\": [\"null\", \"double\"]}}, "
"\"default\": {}},\n"
"  {\"name\": \"label\", \"type\": [\"null\", \"string\"]}\n"
" ]}\n";

static struct avroenc *fixed;	/* click, node and raw */
static int schema_fd = -1;	/* the schema-mode .avsc */
static char schema_path[64];
static unsigned char *buf;
#define BUFCAP	(1u << 20)

static int
memfd_with(const char *text, size_t len)
{
	int fd = memfd_create("avsc", 0);

	if (fd == -1 || ftruncate(fd, 0) == -1 ||
	    pwrite(fd, text, len, 0) != (ssize_t)len)
		abort();
	return fd;
}

static struct conf *
mkconf(size_t n, const char *const *names, const char *const *paths)
{
	struct conf *c = calloc(1, sizeof(*c));

	if (c == NULL || (c->streams = calloc(n, sizeof(*c->streams))) ==
	    NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		snprintf(c->streams[i].name, sizeof(c->streams[i].name), "%s",
		    names[i]);
		c->streams[i].schema = (char *)(uintptr_t)paths[i];
	}
	c->nstreams = n;
	return c;
}

static void
fini(void)
{
	avroenc_free(fixed);
	free(buf);
}

static void
init(void)
{
	static const char *const names[] = { "click", "node" };
	char p1[64], p2[64], err[AVROENC_ERRMAX];
	const char *paths[] = { p1, p2 };
	struct conf *c;
	int f1, f2;

	f1 = memfd_with(click_avsc, strlen(click_avsc));
	f2 = memfd_with(node_avsc, strlen(node_avsc));
	snprintf(p1, sizeof(p1), "/proc/self/fd/%d", f1);
	snprintf(p2, sizeof(p2), "/proc/self/fd/%d", f2);
	c = mkconf(2, names, paths);
	if ((fixed = avroenc_new(c, err)) == NULL) {
		fprintf(stderr, "fuzz_avro: %s\n", err);
		abort();
	}
	free(c->streams);
	free(c);
	close(f1);
	close(f2);
	atexit(fini);
	schema_fd = memfd_with("", 0);
	snprintf(schema_path, sizeof(schema_path), "/proc/self/fd/%d",
	    schema_fd);
	if ((buf = malloc(BUFCAP)) == NULL)
		abort();
}

/* Reads LEN bytes of BUF back with SCHEMA; must equal V. */
static void
roundtrip(avro_schema_t schema, avro_value_t *v, size_t len)
{
	avro_value_iface_t *iface;
	avro_reader_t rd;
	avro_value_t back;

	if ((iface = avro_generic_class_from_schema(schema)) == NULL ||
	    avro_generic_value_new(iface, &back) != 0 ||
	    (rd = avro_reader_memory((const char *)buf, (int64_t)len)) ==
	    NULL)
		abort();
	if (avro_value_read(rd, &back) != 0) {
		/*
		 * avro-c's reader cannot read a fixed of size 0 (it asks its
		 * allocator for 0 bytes and takes the NULL for a failure);
		 * its writer, and Apache's Java and Python readers, can.
		 */
		if (strstr(avro_strerror(), "Cannot allocate new fixed") ==
		    NULL) {
			fprintf(stderr, "fuzz_avro: read back: %s\n",
			    avro_strerror());
			abort();
		}
	} else if (!avro_value_equal(v, &back)) {
		fprintf(stderr, "fuzz_avro: round trip: %s\n",
		    avro_strerror());
		abort();
	}
	avro_reader_free(rd);
	avro_value_decref(&back);
	avro_value_iface_decref(iface);
}

/* Checks, encodes and decodes one event of STREAM. */
static void
event(struct avroenc *ae, const char *stream, const char *ctype,
    size_t ctype_len, const uint8_t *body, size_t len, int has_schema)
{
	char err[AVROENC_ERRMAX], err2[AVROENC_ERRMAX];
	struct spool_event ev;
	avro_value_t v;
	size_t n = 0;
	int crc, brc;

	memset(&ev, 0, sizeof(ev));
	ev.seq = 42;
	ev.received_ms = 1700000000000;
	ev.stream = stream;
	ev.stream_len = strlen(stream);
	ev.ctype = ctype;
	ev.ctype_len = ctype_len;
	ev.addr = "192.0.2.7";
	ev.addr_len = len & 1 ? 0 : 9;
	ev.body = body;
	ev.body_len = len;
	memset(ev.id, 0xa5, sizeof(ev.id));
	err[0] = err2[0] = '\0';
	crc = avroenc_check_json(ae, stream, ev.stream_len, (const char *)body,
	    len, err, sizeof(err));
	brc = avroenc_binary(ae, &ev, buf, BUFCAP, &n, err2);
	if (brc == AVROENC_ESPACE)
		return;		/* an event over 1 MiB of Avro: fine */
	if (crc != brc || (crc != AVROENC_OK && err[0] == '\0') ||
	    (crc == AVROENC_EINVAL && strcmp(err, err2) != 0) ||
	    (!has_schema && crc != AVROENC_OK)) {
		fprintf(stderr, "fuzz_avro: check %d '%s', binary %d '%s'\n",
		    crc, err, brc, err2);
		abort();
	}
	if (brc != AVROENC_OK)
		return;
	if (avroenc_value(ae, &ev, &v, err) != AVROENC_OK)
		abort();
	roundtrip(avroenc_schema(ae, stream, ev.stream_len), &v, n);
}

static void
schema_mode(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "s" };
	const char *paths[] = { schema_path };
	const uint8_t *nul = memchr(data, '\0', size);
	size_t slen = nul ? (size_t)(nul - data) : size;
	char err[AVROENC_ERRMAX];
	struct avroenc *ae;
	avro_schema_t s;
	struct conf *c;
	int refused;

	if (ftruncate(schema_fd, 0) == -1 ||
	    pwrite(schema_fd, data, slen, 0) != (ssize_t)slen)
		abort();
	/*
	 * avro-c 1.11 leaks what it built of some schemas it refuses (a
	 * named type defined twice, for one): not ours to report, and the
	 * loader then refuses the file and the program exits.  So a schema
	 * avro-c refuses is loaded with leak detection off.
	 */
	__lsan_disable();
	refused = avro_schema_from_json_length((const char *)data, slen, &s);
	if (!refused)
		avro_schema_decref(s);
	__lsan_enable();
	c = mkconf(1, names, paths);
	err[0] = '\0';
	if (refused)
		__lsan_disable();
	ae = avroenc_new(c, err);
	if (refused) {
		__lsan_enable();
		if (ae != NULL)
			abort();	/* loaded what avro-c refuses */
	}
	free(c->streams);
	free(c);
	if (ae == NULL) {
		if (err[0] == '\0')
			abort();
		return;
	}
	if (avroenc_schema(ae, "s", 1) == NULL ||
	    avroenc_schema_text(ae, "s", 1, NULL) == NULL)
		abort();
	if (nul != NULL)
		event(ae, "s", "application/json", 16, nul + 1,
		    size - slen - 1, 1);
	avroenc_free(ae);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const streams[] = { "click", "node", "raw",
	    "click" };
	size_t clen;

	if (fixed == NULL)
		init();
	if (size < 1)
		return 0;
	if (data[0] & 0x80) {
		schema_mode(data + 1, size - 1);
		return 0;
	}
	if ((data[0] & 3) == 2) {
		/* The envelope: anything goes, a prefix as content type. */
		clen = (size_t)(data[0] >> 2) * 9;
		if (clen > size - 1)
			clen = size - 1;
		event(fixed, "raw", (const char *)data + 1, clen, data + 1,
		    size - 1, 0);
		return 0;
	}
	event(fixed, streams[data[0] & 3], "application/json", 16, data + 1,
	    size - 1, 1);
	return 0;
}
