/*
 * test_sink_avro.c: unit tests of the avro-files sink (forwarder/
 * sink_avro.c), driving sink_avro_ops directly with synthetic events.
 *
 * Every published file is read back with tools that share no code with
 * ours: Debian's python3-avro (DataFileReader, Apache's implementation;
 * python3-snappy for the snappy case) for the records, codec and header
 * schema, and avro-bin's avrocat (avro-c) for the record count.  Write
 * failures are injected with RLIMIT_FSIZE (EFBIG past a size, root or
 * not).  Each codec is run with and without compressor threads, over
 * enough events for many blocks to be in flight at once.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "avroenc.h"
#include "conf.h"
#include "sink.h"
#include "spool.h"

#define PYTHON	"/usr/bin/python3"
#define AVROCAT	"/usr/bin/avrocat"

static char	tmpdir[256];

/* Prints [{"file", "codec", "schema", "records"}] for each file given. */
static const char read_py[] =
"import avro.datafile, avro.io, json, sys, datetime\n"
"def conv(x):\n"
"    if isinstance(x, bytes):\n"
"        return 'b:' + x.hex()\n"
"    if isinstance(x, datetime.datetime):\n"
"        e = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)\n"
"        return (x - e) // datetime.timedelta(milliseconds=1)\n"
"    raise TypeError(repr(x))\n"
"out = []\n"
"for p in sys.argv[1:]:\n"
"    with open(p, 'rb') as f:\n"
"        r = avro.datafile.DataFileReader(f, avro.io.DatumReader())\n"
"        out.append({'file': p.rsplit('/', 1)[1],\n"
"            'codec': r.get_meta('avro.codec').decode(),\n"
"            'schema': json.loads(r.get_meta('avro.schema').decode()),\n"
"            'records': list(r)})\n"
"print(json.dumps(out, default=conv))\n";

struct t {
	char			 dir[PATH_MAX];
	struct conf		 conf;
	struct conf_stream	 streams[2];
	struct conf_sink	 cs;
	void			*sink;
	uint64_t		 delivered;
	uint64_t		 dead[16];
	char			 reason[16][SINK_ERRMAX];
	size_t			 ndead;
	char			 err[SINK_ERRMAX];
};

static void
on_dead(uint64_t seq, const char *reason, void *arg)
{
	struct t	*t = arg;

	assert_true(t->ndead < 16);
	snprintf(t->reason[t->ndead], SINK_ERRMAX, "%s", reason);
	t->dead[t->ndead++] = seq;
}

/* A fresh directory and sink configuration; open with sink_open(). */
static struct t *
mk(const char *codec, uint64_t roll_size, uint64_t roll_ms,
    uint64_t roll_count)
{
	static int	 n;
	struct t	*t;

	assert_non_null(t = calloc(1, sizeof(*t)));
	snprintf(t->dir, sizeof(t->dir), "%s/%d", tmpdir, ++n);
	assert_true(asprintf(&t->conf.path, "%s/ferry.conf", tmpdir) > 0);
	t->conf.streams = t->streams;
	t->cs.type = CONF_SINK_AVRO_FILES;
	snprintf(t->cs.name, sizeof(t->cs.name), "archive");
	t->cs.dir = t->dir;
	t->cs.codec = (char *)codec;
	t->cs.roll_size = roll_size;
	t->cs.roll_interval_ms = roll_ms;
	t->cs.roll_count = roll_count;
	t->cs.deflate_level = 1;	/* the defaults of conf.c */
	t->cs.compress_threads = -1;
	return t;
}

static void
sink_open(struct t *t, uint64_t cursor)
{
	t->sink = sink_avro_ops.open(&t->conf, &t->cs, t->err);
	if (t->sink == NULL)
		fail_msg("open: %s", t->err);
	assert_int_equal(sink_avro_ops.recover(t->sink, cursor, t->err),
	    SINK_OK);
	t->delivered = cursor;
}

static void
sink_close(struct t *t)
{
	sink_avro_ops.close(t->sink);
	t->sink = NULL;
}

static void
done(struct t *t)
{
	if (t->sink != NULL)
		sink_close(t);
	free(t->conf.path);
	free(t);
}

static int
send(struct t *t, uint64_t seq, const char *stream, const char *body)
{
	struct spool_event	ev;
	char			copy[256];

	/* Event memory is valid only during the call: prove we copy. */
	snprintf(copy, sizeof(copy), "%s", stream);
	memset(&ev, 0, sizeof(ev));
	ev.seq = seq;
	ev.received_ms = 1700000000000ULL + seq;
	ev.stream = copy;
	ev.stream_len = strlen(copy);
	ev.ctype = "text/plain";
	ev.ctype_len = 10;
	ev.addr = seq % 2 ? "192.0.2.7" : "";
	ev.addr_len = strlen(ev.addr);
	ev.body = body;
	ev.body_len = strlen(body);
	memset(ev.id, (int)seq, sizeof(ev.id));
	return sink_avro_ops.send(t->sink, &ev, t->err);
}

static void
send_ok(struct t *t, uint64_t seq, const char *stream, const char *body)
{
	int	rc = send(t, seq, stream, body);

	if (rc != SINK_OK)
		fail_msg("send %llu: %d %s", (unsigned long long)seq, rc,
		    t->err);
}

static uint64_t
poll_ok(struct t *t, int timeout_ms)
{
	int	rc = sink_avro_ops.poll(t->sink, timeout_ms, &t->delivered,
		    on_dead, t, t->err);

	if (rc != SINK_OK)
		fail_msg("poll: %d %s", rc, t->err);
	return t->delivered;
}

static uint64_t
flush_ok(struct t *t)
{
	int	rc = sink_avro_ops.flush(t->sink, 1000, &t->delivered, on_dead,
		    t, t->err);

	if (rc != SINK_OK)
		fail_msg("flush: %d %s", rc, t->err);
	return t->delivered;
}

/* The names in T's directory, sorted, joined by spaces. */
static char *
ls(struct t *t)
{
	struct dirent	**de;
	char		 *out = NULL;
	size_t		  len = 0;
	FILE		 *f;
	int		  n;

	assert_true((n = scandir(t->dir, &de, NULL, alphasort)) >= 2);
	assert_non_null(f = open_memstream(&out, &len));
	for (int i = 0; i < n; i++) {
		if (strcmp(de[i]->d_name, ".") != 0 &&
		    strcmp(de[i]->d_name, "..") != 0)
			fprintf(f, "%s%s", ftell(f) > 0 ? " " : "",
			    de[i]->d_name);
		free(de[i]);
	}
	free(de);
	assert_int_equal(fclose(f), 0);
	return out;
}

static void
assert_ls(struct t *t, const char *want)
{
	char	*got = ls(t);

	if (strcmp(got, want) != 0)
		fail_msg("directory holds '%s'\nexpected '%s'", got, want);
	free(got);
}

static char *
run(const char *cmd)
{
	char	*out = NULL;
	size_t	 cap = 0;
	FILE	*p;

	assert_non_null(p = popen(cmd, "r"));
	if (getdelim(&out, &cap, '\0', p) == -1) {
		free(out);
		out = strdup("");
	}
	if (pclose(p) != 0)
		fail_msg("%s failed: %s", cmd, out);
	return out;
}

/* Every published file of T, read by python3-avro; checks avrocat agrees. */
static json_t *
read_all(struct t *t)
{
	char		*names = ls(t), *cmd, *out, *py, *tok, *save;
	FILE		*f;
	size_t		 len = 0, i;
	json_t		*j, *file;
	json_error_t	 jerr;

	assert_true(asprintf(&py, "%s/read.py", tmpdir) > 0);
	assert_non_null(f = fopen(py, "w"));
	fputs(read_py, f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(f = open_memstream(&cmd, &len));
	fprintf(f, PYTHON " %s", py);
	for (tok = strtok_r(names, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save))
		if (tok[0] != '.')
			fprintf(f, " %s/%s", t->dir, tok);
	assert_int_equal(fclose(f), 0);
	out = run(cmd);
	if ((j = json_loads(out, 0, &jerr)) == NULL)
		fail_msg("python said %s", out);
	free(out);
	free(cmd);
	free(py);
	free(names);
	json_array_foreach(j, i, file) {
		size_t	 n = 0;
		char	*o, *p;

		assert_true(asprintf(&cmd, AVROCAT " %s/%s", t->dir,
		    json_string_value(json_object_get(file, "file"))) > 0);
		o = run(cmd);
		for (p = o; *p != '\0'; p++)
			n += *p == '\n';
		assert_int_equal(n, json_array_size(json_object_get(file,
		    "records")));
		free(o);
		free(cmd);
	}
	return j;
}

/* "1 2 3" from the seq fields of the records of FILE. */
static void
assert_seqs(json_t *file, const char *want)
{
	char	 got[1024] = "";
	size_t	 i, n = 0;
	json_t	*r;

	json_array_foreach(json_object_get(file, "records"), i, r)
		n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%lld",
		    i ? " " : "", json_integer_value(json_object_get(r, "seq")));
	if (strcmp(got, want) != 0)
		fail_msg("%s: seqs '%s', expected '%s'",
		    json_string_value(json_object_get(file, "file")), got, want);
}

static void
assert_schema_has(json_t *file, const char *want)
{
	char	*s = json_dumps(json_object_get(file, "schema"), JSON_COMPACT);

	if (s == NULL || strstr(s, want) == NULL)
		fail_msg("header schema %s lacks %s", s, want);
	free(s);
}

static void
assert_record(json_t *got, const char *want)
{
	json_t	*w = json_loads(want, 0, NULL);

	assert_non_null(w);
	assert_true(json_equal(got, w));
	json_decref(w);
}

static void
rm(struct t *t, const char *name)
{
	char	path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	assert_int_equal(unlink(path), 0);
}

#define P20	"0000000000000000000"

static void
test_roll_count_names(void **state)
{
	struct t	*t = mk("null", 1 << 20, 3600000, 3);
	json_t		*j, *r;

	(void)state;
	sink_open(t, 0);
	for (uint64_t seq = 1; seq <= 7; seq++)
		send_ok(t, seq, "web", "hello");
	assert_ls(t, ".web." P20 "7.avro.tmp web." P20 "1-" P20 "3.avro "
	    "web." P20 "4-" P20 "6.avro");
	assert_int_equal(poll_ok(t, 0), 6);
	assert_int_equal(flush_ok(t), 7);
	assert_ls(t, "web." P20 "1-" P20 "3.avro web." P20 "4-" P20 "6.avro "
	    "web." P20 "7-" P20 "7.avro");
	j = read_all(t);
	assert_int_equal(json_array_size(j), 3);
	assert_seqs(json_array_get(j, 0), "1 2 3");
	assert_seqs(json_array_get(j, 1), "4 5 6");
	assert_seqs(json_array_get(j, 2), "7");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(j, 0), "codec")), "null");
	/* The envelope, field by field; the header keeps the logicalType. */
	r = json_array_get(json_object_get(json_array_get(j, 0), "records"), 0);
	assert_string_equal(json_string_value(json_object_get(r, "id")),
	    "01010101010101010101010101010101");
	assert_int_equal(json_integer_value(json_object_get(r,
	    "received_at")), 1700000000001LL);
	assert_string_equal(json_string_value(json_object_get(r, "stream")),
	    "web");
	assert_string_equal(json_string_value(json_object_get(r,
	    "content_type")), "text/plain");
	assert_string_equal(json_string_value(json_object_get(r,
	    "remote_addr")), "192.0.2.7");
	assert_string_equal(json_string_value(json_object_get(r, "body")),
	    "b:68656c6c6f");
	r = json_array_get(json_object_get(json_array_get(j, 0), "records"), 1);
	assert_true(json_is_null(json_object_get(r, "remote_addr")));
	assert_schema_has(json_array_get(j, 0),
	    "\"logicalType\":\"timestamp-millis\"");
	json_decref(j);
	done(t);
}

static void
roll_size_case(const char *codec)
{
	struct t	*t = mk(codec, 4096, 3600000, 0);
	char		 body[301];
	json_t		*j, *file;
	struct stat	 sb;
	char		 path[PATH_MAX + 64], want[1024];
	size_t		 i, n = 0;
	uint64_t	 next = 1;

	memset(body, 'x', 300);
	body[300] = '\0';
	sink_open(t, 0);
	for (uint64_t seq = 1; seq <= 60; seq++) {
		/* Vary the bytes so that deflate has something to do. */
		body[seq % 300] = (char)('a' + seq % 26);
		send_ok(t, seq, "s", body);
	}
	assert_int_equal(flush_ok(t), 60);
	j = read_all(t);
	assert_true(json_array_size(j) >= 2);
	json_array_foreach(j, i, file) {
		size_t	k = json_array_size(json_object_get(file, "records"));

		snprintf(path, sizeof(path), "%s/%s", t->dir,
		    json_string_value(json_object_get(file, "file")));
		assert_int_equal(stat(path, &sb), 0);
		assert_true(sb.st_size <= 4096);
		/* Null codec: full files, each within a record of the limit. */
		if (strcmp(codec, "null") == 0 && i + 1 < json_array_size(j))
			assert_true(sb.st_size > 4096 - 400);
		assert_string_equal(json_string_value(json_object_get(file,
		    "codec")), codec);
		n = 0;
		for (uint64_t s = next; s < next + k; s++)
			n += (size_t)snprintf(want + n, sizeof(want) - n,
			    "%s%llu", s > next ? " " : "",
			    (unsigned long long)s);
		assert_seqs(file, want);
		next += k;
	}
	assert_int_equal(next, 61);
	json_decref(j);
	done(t);
}

static void
test_roll_size_null(void **state)
{
	(void)state;
	roll_size_case("null");
}

static void
test_roll_size_deflate(void **state)
{
	(void)state;
	roll_size_case("deflate");
}

static void
test_roll_size_snappy(void **state)
{
	(void)state;
	roll_size_case("snappy");
}

/*
 * The body of event SEQ, LEN bytes: words and numbers, which deflate
 * shrinks about 3x as it does real events, or with NOISE random letters.
 */
static void
body_of(uint64_t seq, char *buf, size_t len, int noise)
{
	static const char *const words[] = { "click ", "view ", "/cart ",
	    "shoe ", "lamp ", "/products/", "\"user\": ", "\"id\": " };
	uint64_t	x = seq;
	size_t		n = 0;
	int		w;

	while (n < len) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		if (noise) {
			buf[n++] = (char)('a' + (x >> 33) % 26);
			continue;
		}
		w = snprintf(buf + n, len + 1 - n, "%s%u ",
		    words[(x >> 33) % 8], (unsigned)(x >> 40) % 1000);
		n += (size_t)w;
	}
	buf[len] = '\0';
}

static const char *
stream_of(uint64_t seq)
{
	return seq % 7 < 4 ? "a" : "b";
}

static void
hex_of(const unsigned char *p, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* Checks the records of FILE, of stream a or b, against their events. */
static void
check_file(json_t *file, unsigned char *seen, uint64_t nev)
{
	const char	*name;
	json_t		*recs = json_object_get(file, "records"), *r;
	char		 body[600], want[2 + 1200 + 1];
	unsigned char	 id[16];
	uint64_t	 first, last, seq, prev = 0;
	size_t		 k;

	name = json_string_value(json_object_get(file, "file"));
	assert_int_equal(sscanf(name + 2, "%20" SCNu64 "-%20" SCNu64, &first,
	    &last), 2);
	json_array_foreach(recs, k, r) {
		seq = (uint64_t)json_integer_value(json_object_get(r, "seq"));
		if (seq < 1 || seq > nev || seen[seq] || seq <= prev)
			fail_msg("%s: seq %llu out of place", name,
			    (unsigned long long)seq);
		seen[seq] = 1;
		prev = seq;
		assert_string_equal(json_string_value(json_object_get(r,
		    "stream")), stream_of(seq));
		assert_int_equal(name[0], stream_of(seq)[0]);
		memset(id, (int)seq, sizeof(id));
		hex_of(id, sizeof(id), want);
		assert_string_equal(json_string_value(json_object_get(r, "id")),
		    want);
		body_of(seq, body, 200 + seq % 300, 0);
		memcpy(want, "b:", 2);
		hex_of((unsigned char *)body, strlen(body), want + 2);
		assert_string_equal(json_string_value(json_object_get(r,
		    "body")), want);
	}
	/* The name tells the range the file holds. */
	assert_true(json_array_size(recs) > 0);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
	    recs, 0), "seq")), first);
	assert_int_equal(prev, last);
}

#define NEV	4000

/*
 * NEV events of two streams, in runs, through CODEC at LEVEL with THREADS
 * compressor threads, each file rolled at 1500 events (several blocks):
 * every record read back must be its event, every event in exactly one
 * file.  Returns the size of the files, headers left out.
 */
static uint64_t
codec_case(const char *codec, int level, int threads)
{
	struct t	*t = mk(codec, 1 << 30, 3600000, 1500);
	char		 body[600], path[PATH_MAX + 64];
	unsigned char	*seen;
	json_t		*j, *file;
	struct stat	 sb;
	uint64_t	 seq, bytes = 0;
	size_t		 i;

	t->cs.deflate_level = (uint64_t)level;
	t->cs.compress_threads = threads;
	sink_open(t, 0);
	for (seq = 1; seq <= NEV; seq++) {
		body_of(seq, body, 200 + seq % 300, 0);
		send_ok(t, seq, stream_of(seq), body);
		if (seq % 500 == 0)	/* blocks are in flight: poll writes */
			poll_ok(t, 0);
	}
	assert_int_equal(flush_ok(t), NEV);
	j = read_all(t);
	assert_int_equal(json_array_size(j), 4);
	assert_non_null(seen = calloc(NEV + 1, 1));
	json_array_foreach(j, i, file) {
		assert_string_equal(json_string_value(json_object_get(file,
		    "codec")), codec);
		check_file(file, seen, NEV);
		snprintf(path, sizeof(path), "%s/%s", t->dir,
		    json_string_value(json_object_get(file, "file")));
		assert_int_equal(stat(path, &sb), 0);
		bytes += (uint64_t)sb.st_size;
	}
	for (seq = 1; seq <= NEV; seq++)
		if (!seen[seq])
			fail_msg("seq %llu is in no file",
			    (unsigned long long)seq);
	free(seen);
	json_decref(j);
	done(t);
	return bytes;
}

static void
test_codec_null(void **state)
{
	(void)state;
	codec_case("null", 1, -1);
}

static void
test_codec_deflate(void **state)
{
	uint64_t	one, pool, nine;

	(void)state;
	one = codec_case("deflate", 1, 0);
	pool = codec_case("deflate", 1, 3);
	nine = codec_case("deflate", 9, 2);
	/* The same blocks deflated by the pool: the same bytes. */
	assert_int_equal(pool, one);
	/* deflate_level is applied: 9 compresses better than 1. */
	if (nine >= one)
		fail_msg("level 9: %llu bytes, level 1: %llu",
		    (unsigned long long)nine, (unsigned long long)one);
}

static void
test_codec_snappy(void **state)
{
	(void)state;
	codec_case("snappy", 1, -1);
}

/*
 * Blocks in flight count against roll_size: no file past it, and none
 * rolled early for them either.  At level 9 the drain outruns the
 * threads: blocks wait in the queue.
 */
static void
test_roll_size_pool(void **state)
{
	struct t	*t = mk("deflate", 256 * 1024, 3600000, 0);
	char		 body[501], path[PATH_MAX + 64];
	json_t		*j, *file, *r;
	struct stat	 sb;
	uint64_t	 seq, next = 1;
	size_t		 i, k;

	(void)state;
	t->cs.deflate_level = 9;
	t->cs.compress_threads = 2;
	sink_open(t, 0);
	for (seq = 1; seq <= 8000; seq++) {
		body_of(seq, body, 200 + seq % 300, 0);
		send_ok(t, seq, "s", body);
	}
	assert_int_equal(flush_ok(t), 8000);
	j = read_all(t);
	assert_true(json_array_size(j) >= 3);
	json_array_foreach(j, i, file) {
		snprintf(path, sizeof(path), "%s/%s", t->dir,
		    json_string_value(json_object_get(file, "file")));
		assert_int_equal(stat(path, &sb), 0);
		/* Full but for the last block, whose raw size it kept free. */
		if (sb.st_size > 256 * 1024 || (i + 1 < json_array_size(j) &&
		    sb.st_size < 192 * 1024))
			fail_msg("%s: %lld bytes", path,
			    (long long)sb.st_size);
		json_array_foreach(json_object_get(file, "records"), k, r)
			assert_int_equal(json_integer_value(json_object_get(r,
			    "seq")), next++);
	}
	assert_int_equal(next, 8001);
	json_decref(j);
	done(t);
}

static void
test_lzma_refused(void **state)
{
	struct t	*t = mk("lzma", 1 << 20, 1000, 0);
	char		 err[SINK_ERRMAX];

	(void)state;
	assert_null(sink_avro_ops.open(&t->conf, &t->cs, err));
	assert_non_null(strstr(err, "codec lzma"));
	t->cs.codec = "zstd";
	assert_null(sink_avro_ops.open(&t->conf, &t->cs, err));
	assert_non_null(strstr(err, "codec zstd: use null, deflate or snappy"));
	done(t);
}

static uint64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
test_roll_time(void **state)
{
	struct t	*t = mk("deflate", 1 << 20, 150, 0);
	struct timespec	 ts = { 0, 200 * 1000000 };
	uint64_t	 t0;
	json_t		*j;

	(void)state;
	sink_open(t, 0);
	send_ok(t, 1, "s", "a");
	send_ok(t, 2, "s", "b");
	assert_int_equal(poll_ok(t, 0), 0);
	assert_ls(t, ".s." P20 "1.avro.tmp");
	nanosleep(&ts, NULL);
	assert_int_equal(poll_ok(t, 0), 2);
	assert_ls(t, "s." P20 "1-" P20 "2.avro");
	/* An idle poll waits, but no longer than the next file is due. */
	send_ok(t, 3, "s", "c");
	t0 = now_ms();
	assert_int_equal(poll_ok(t, 5000), 3);
	assert_true(now_ms() - t0 >= 140 && now_ms() - t0 < 2000);
	t0 = now_ms();
	assert_int_equal(poll_ok(t, 50), 3);
	assert_true(now_ms() - t0 >= 45);
	j = read_all(t);
	assert_seqs(json_array_get(j, 0), "1 2");
	assert_seqs(json_array_get(j, 1), "3");
	json_decref(j);
	done(t);
}

static void
test_watermark_two_streams(void **state)
{
	struct t	*t = mk("null", 1 << 20, 3600000, 2);
	json_t		*j;

	(void)state;
	sink_open(t, 0);
	send_ok(t, 1, "a", "1");
	assert_int_equal(poll_ok(t, 0), 0);
	send_ok(t, 2, "b", "2");
	send_ok(t, 3, "a", "3");	/* a.1-3 published; b open from 2 */
	assert_int_equal(poll_ok(t, 0), 1);
	send_ok(t, 4, "b", "4");	/* b.2-4 published; none open */
	assert_int_equal(poll_ok(t, 0), 4);
	send_ok(t, 5, "b", "5");
	send_ok(t, 6, "a", "6");
	send_ok(t, 7, "a", "7");	/* a.6-7 published; b open from 5 */
	assert_int_equal(poll_ok(t, 0), 4);
	assert_int_equal(flush_ok(t), 7);
	j = read_all(t);
	assert_int_equal(json_array_size(j), 4);
	assert_seqs(json_array_get(j, 0), "1 3");
	assert_seqs(json_array_get(j, 1), "6 7");
	assert_seqs(json_array_get(j, 2), "2 4");
	assert_seqs(json_array_get(j, 3), "5");
	json_decref(j);
	done(t);
}

static void
touch(struct t *t, const char *name)
{
	char	path[PATH_MAX + 64];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs("garbage", f);
	assert_int_equal(fclose(f), 0);
}

static void
test_recover(void **state)
{
	struct t	*t = mk("deflate", 1 << 20, 3600000, 2);
	json_t		*j;

	(void)state;
	sink_open(t, 0);
	for (uint64_t seq = 1; seq <= 5; seq++)
		send_ok(t, seq, seq == 3 ? "b" : "a", "x");
	/* a.1-2, a.4-5 published; b holds 3 in progress: the cursor is 2. */
	assert_int_equal(poll_ok(t, 0), 2);
	/* A crash: what close() leaves, plus an in-progress file. */
	sink_close(t);
	touch(t, ".a." P20 "6.avro.tmp");
	touch(t, ".other.avro.tmp");
	touch(t, "notes.txt");
	touch(t, "a.1-2.avro");		/* not ours: no 20 digits */
	sink_open(t, 2);
	assert_ls(t, "a." P20 "1-" P20 "2.avro a." P20 "4-" P20 "5.avro "
	    "a.1-2.avro notes.txt");
	/* The loop resends from the cursor: 4 and 5 are skipped. */
	for (uint64_t seq = 3; seq <= 8; seq++)
		send_ok(t, seq, seq == 3 ? "b" : "a", "x");
	assert_int_equal(flush_ok(t), 8);
	assert_ls(t, "a." P20 "1-" P20 "2.avro a." P20 "4-" P20 "5.avro "
	    "a." P20 "6-" P20 "7.avro a." P20 "8-" P20 "8.avro "
	    "a.1-2.avro b." P20 "3-" P20 "3.avro notes.txt");
	/* Restarting from any cursor skips everything published. */
	sink_close(t);
	sink_open(t, 0);
	for (uint64_t seq = 1; seq <= 8; seq++)
		send_ok(t, seq, seq == 3 ? "b" : "a", "x");
	assert_int_equal(flush_ok(t), 8);
	assert_ls(t, "a." P20 "1-" P20 "2.avro a." P20 "4-" P20 "5.avro "
	    "a." P20 "6-" P20 "7.avro a." P20 "8-" P20 "8.avro "
	    "a.1-2.avro b." P20 "3-" P20 "3.avro notes.txt");
	/* a.1-2.avro is not an Avro file: read the others. */
	rm(t, "a.1-2.avro");
	rm(t, "notes.txt");
	j = read_all(t);
	assert_seqs(json_array_get(j, 0), "1 2");
	assert_seqs(json_array_get(j, 1), "4 5");
	assert_seqs(json_array_get(j, 2), "6 7");
	assert_seqs(json_array_get(j, 3), "8");
	assert_seqs(json_array_get(j, 4), "3");
	json_decref(j);
	done(t);
}

static const char click_avsc[] =
"{\"type\": \"record\", \"name\": \"Click\", \"namespace\": \"shop\",\n"
" \"fields\": [\n"
"  {\"name\": \"user\", \"type\": {\"type\": \"record\", \"name\": \"U\","
"    \"fields\": [{\"name\": \"age\", \"type\": \"int\"}]}},\n"
"  {\"name\": \"at\", \"type\": {\"type\": \"long\","
"    \"logicalType\": \"timestamp-millis\"}},\n"
"  {\"name\": \"ref\", \"type\": [\"null\", \"string\"], \"default\": null}\n"
"]}\n";

static void
test_schema_stream_and_dead(void **state)
{
	struct t	*t = mk("deflate", 1 << 20, 3600000, 0);
	char		 path[PATH_MAX + 16];
	json_t		*j, *recs;
	FILE		*f;

	(void)state;
	snprintf(path, sizeof(path), "%s/click.avsc", tmpdir);
	assert_non_null(f = fopen(path, "w"));
	fputs(click_avsc, f);
	assert_int_equal(fclose(f), 0);
	snprintf(t->streams[0].name, sizeof(t->streams[0].name), "click");
	t->streams[0].schema = path;
	t->conf.nstreams = 1;
	sink_open(t, 0);
	send_ok(t, 1, "click", "{\"user\": {\"age\": 7}, \"at\": 5}");
	send_ok(t, 2, "click", "{\"user\": {\"age\": \"x\"}, \"at\": 5}");
	send_ok(t, 3, "click", "{\"user\": {\"age\": 9}, \"at\": 6, "
	    "\"ref\": \"r\"}");
	send_ok(t, 4, "..", "bad name");
	assert_int_equal(flush_ok(t), 4);
	assert_int_equal(t->ndead, 2);
	assert_int_equal(t->dead[0], 2);
	assert_string_equal(t->reason[0],
	    "field user.age: expected int, got string");
	assert_int_equal(t->dead[1], 4);
	assert_ls(t, "click." P20 "1-" P20 "3.avro");
	j = read_all(t);
	recs = json_object_get(json_array_get(j, 0), "records");
	assert_int_equal(json_array_size(recs), 2);
	assert_record(json_array_get(recs, 0),
	    "{\"user\": {\"age\": 7}, \"at\": 5, \"ref\": null}");
	assert_record(json_array_get(recs, 1),
	    "{\"user\": {\"age\": 9}, \"at\": 6, \"ref\": \"r\"}");
	/* The header holds the .avsc as configured. */
	assert_schema_has(json_array_get(j, 0),
	    "\"logicalType\":\"timestamp-millis\"");
	assert_schema_has(json_array_get(j, 0), "\"default\":null");
	json_decref(j);
	done(t);
}

static void
test_big_events(void **state)
{
	struct t	*t = mk("deflate", 1 << 24, 3600000, 0);
	char		*big;
	json_t		*j, *file;
	size_t		 i, n = 0;

	(void)state;
	assert_non_null(big = malloc(300 * 1024 + 1));
	memset(big, 'y', 300 * 1024);
	big[300 * 1024] = '\0';
	sink_open(t, 0);
	send_ok(t, 1, "s", "small");
	send_ok(t, 2, "s", big);	/* larger than the block: a new file */
	send_ok(t, 3, "s", "small");
	big[1000] = '\0';
	for (uint64_t seq = 4; seq <= 200; seq++)
		send_ok(t, seq, "s", big);	/* several blocks */
	assert_int_equal(flush_ok(t), 200);
	j = read_all(t);
	json_array_foreach(j, i, file)
		n += json_array_size(json_object_get(file, "records"));
	assert_int_equal(n, 200);
	assert_seqs(json_array_get(j, 0), "1");
	assert_int_equal(strlen(json_string_value(json_object_get(
	    json_array_get(json_object_get(json_array_get(j, 1), "records"),
	    0), "body"))), 2 + 2 * 300 * 1024);
	json_decref(j);
	free(big);
	done(t);
}

static void
set_fsize(rlim_t lim)
{
	struct rlimit	rl;

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = lim;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/*
 * A write fails past RLIMIT_FSIZE: the file is discarded, the sink asks a
 * rewind, and the events resent from the cursor make whole files.  With
 * THREADS compressor threads the failure surfaces when the block is
 * written, some events later, while others are in flight.
 */
static void
write_error_case(const char *codec, int threads)
{
	struct t	*t = mk(codec, 1 << 24, 3600000, 0);
	char		 body[2001], want[4096];
	json_t		*j;
	uint64_t	 seq, failed = 0;
	size_t		 n = 0;
	int		 rc;

	t->cs.compress_threads = threads;
	sink_open(t, 0);
	send_ok(t, 1, "a", "first");
	send_ok(t, 2, "a", "second");
	assert_int_equal(flush_ok(t), 2);	/* a.1-2 published */
	send_ok(t, 3, "b", "other");		/* b stays open, intact */
	set_fsize(150 * 1024);
	for (seq = 4; seq < 400 && failed == 0; seq++) {
		body_of(seq, body, 2000, 1);	/* deflate cannot crush it */
		if ((rc = send(t, seq, "a", body)) != SINK_OK) {
			assert_int_equal(rc, SINK_DOWN);
			failed = seq;
		}
	}
	set_fsize(RLIM_INFINITY);
	assert_true(failed > 0);
	assert_non_null(strstr(t->err, "/.a." P20 "4.avro.tmp: write: "));
	/* Refused until poll() has asked for the rewind. */
	assert_int_equal(send(t, failed, "a", body), SINK_FULL);
	assert_int_equal(sink_avro_ops.poll(t->sink, 0, &t->delivered, on_dead,
	    t, t->err), SINK_REWIND);
	assert_int_equal(t->delivered, 2);
	assert_ls(t, ".b." P20 "3.avro.tmp a." P20 "1-" P20 "2.avro");
	/* The loop resends from its cursor, 2. */
	for (seq = 3; seq <= failed; seq++) {
		body_of(seq, body, 2000, 1);
		send_ok(t, seq, seq == 3 ? "b" : "a", body);
	}
	assert_int_equal(flush_ok(t), failed);
	j = read_all(t);
	assert_int_equal(json_array_size(j), 3);
	assert_seqs(json_array_get(j, 0), "1 2");
	for (seq = 4; seq <= failed; seq++)
		n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%llu",
		    seq > 4 ? " " : "", (unsigned long long)seq);
	assert_seqs(json_array_get(j, 1), want);
	assert_seqs(json_array_get(j, 2), "3");
	/* b kept its file: "other", not the resent body. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    json_object_get(json_array_get(j, 2), "records"), 0), "body")),
	    "b:6f74686572");
	json_decref(j);
	done(t);
}

static void
test_write_error_rewind(void **state)
{
	(void)state;
	write_error_case("null", 0);
}

static void
test_write_error_rewind_pool(void **state)
{
	(void)state;
	write_error_case("deflate", 2);
}

static void
test_bad_dir(void **state)
{
	struct t	*t = mk("null", 1 << 20, 1000, 0);
	char		 err[SINK_ERRMAX];

	(void)state;
	snprintf(t->dir, sizeof(t->dir), "%s/no/such/dir", tmpdir);
	assert_null(sink_avro_ops.open(&t->conf, &t->cs, err));
	assert_non_null(strstr(err, "/no/such/dir: No such file or directory"));
	done(t);
}

static int
setup(void **state)
{
	(void)state;
	signal(SIGXFSZ, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sink_avro.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char	cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roll_count_names),
		cmocka_unit_test(test_roll_size_null),
		cmocka_unit_test(test_roll_size_deflate),
		cmocka_unit_test(test_roll_size_snappy),
		cmocka_unit_test(test_codec_null),
		cmocka_unit_test(test_codec_deflate),
		cmocka_unit_test(test_codec_snappy),
		cmocka_unit_test(test_roll_size_pool),
		cmocka_unit_test(test_lzma_refused),
		cmocka_unit_test(test_roll_time),
		cmocka_unit_test(test_watermark_two_streams),
		cmocka_unit_test(test_recover),
		cmocka_unit_test(test_schema_stream_and_dead),
		cmocka_unit_test(test_big_events),
		cmocka_unit_test(test_write_error_rewind),
		cmocka_unit_test(test_write_error_rewind_pool),
		cmocka_unit_test(test_bad_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
