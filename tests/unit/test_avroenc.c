/*
 * test_avroenc.c: unit tests of forwarder/avroenc.c (avroenc.h).
 *
 * Encodings are checked with Debian's python3-avro (Apache's own
 * implementation, sharing no code with avro-c): each binary datum is
 * written to a file and decoded there with the schema text, and the
 * decoded value, as JSON (bytes as "b:HEX", timestamps as milliseconds),
 * is compared with the expected JSON.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "avroenc.h"
#include "conf.h"
#include "spool.h"

#define PYTHON	"/usr/bin/python3"

static char	tmpdir[PATH_MAX];
static int	nfiles;

static const char decode_py[] =
"import avro.schema, avro.io, io, json, sys, datetime\n"
"s = avro.schema.parse(open(sys.argv[1]).read())\n"
"b = open(sys.argv[2], 'rb').read()\n"
"f = io.BytesIO(b)\n"
"v = avro.io.DatumReader(s).read(avro.io.BinaryDecoder(f))\n"
"assert f.tell() == len(b), 'trailing bytes'\n"
"def conv(x):\n"
"    if isinstance(x, bytes):\n"
"        return 'b:' + x.hex()\n"
"    if isinstance(x, datetime.datetime):\n"
"        e = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)\n"
"        return (x - e) // datetime.timedelta(milliseconds=1)\n"
"    raise TypeError(repr(x))\n"
"print(json.dumps(v, default=conv))\n";

static char *
write_file(const char *name, const void *data, size_t len)
{
	char	*path;
	FILE	*f;

	if (name != NULL)
		assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
	else
		assert_true(asprintf(&path, "%s/%d.tmp", tmpdir, ++nfiles) > 0);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* A conf with one stream per (NAME, SCHEMA-PATH) pair, NULL-terminated. */
static struct conf *
mkconf(const char *name, ...)
{
	struct conf	*c;
	va_list		 ap;

	assert_non_null(c = calloc(1, sizeof(*c)));
	assert_true(asprintf(&c->path, "%s/ferry.conf", tmpdir) > 0);
	assert_non_null(c->streams = calloc(8, sizeof(*c->streams)));
	va_start(ap, name);
	for (; name != NULL; name = va_arg(ap, const char *)) {
		const char *schema = va_arg(ap, const char *);

		snprintf(c->streams[c->nstreams].name, CONF_NAME_MAX + 1, "%s",
		    name);
		c->streams[c->nstreams++].schema = schema != NULL ?
		    strdup(schema) : NULL;
	}
	va_end(ap);
	return c;
}

static void
freeconf(struct conf *c)
{
	for (size_t i = 0; i < c->nstreams; i++)
		free(c->streams[i].schema);
	free(c->streams);
	free(c->path);
	free(c);
}

/* An avroenc for stream "s" with schema TEXT (written to a file). */
static struct avroenc *
load_schema(const char *text, struct conf **cp)
{
	struct avroenc	*ae;
	char		 err[AVROENC_ERRMAX];
	char		*path = write_file(NULL, text, strlen(text));

	*cp = mkconf("s", path, NULL);
	free(path);
	ae = avroenc_new(*cp, err);
	if (ae == NULL)
		fail_msg("avroenc_new: %s", err);
	return ae;
}

static struct spool_event
mkevent(const char *stream, const char *body)
{
	struct spool_event	ev;

	memset(&ev, 0, sizeof(ev));
	ev.seq = 7;
	ev.received_ms = 1700000000123ULL;
	ev.stream = stream;
	ev.stream_len = strlen(stream);
	ev.ctype = "application/json";
	ev.ctype_len = strlen(ev.ctype);
	ev.body = body;
	ev.body_len = strlen(body);
	for (int i = 0; i < SPOOL_IDLEN; i++)
		ev.id[i] = (unsigned char)(0xa0 + i);
	return ev;
}

/* Decodes BIN with python3-avro and SCHEMA; returns its JSON (caller frees). */
static char *
pydecode(const char *schema, const void *bin, size_t len)
{
	char	*sp, *bp, *pp, *cmd, *out = NULL;
	size_t	 cap = 0, n;
	FILE	*p;

	sp = write_file(NULL, schema, strlen(schema));
	bp = write_file(NULL, bin, len);
	pp = write_file("decode.py", decode_py, strlen(decode_py));
	assert_true(asprintf(&cmd, PYTHON " %s %s %s", pp, sp, bp) > 0);
	assert_non_null(p = popen(cmd, "r"));
	n = getdelim(&out, &cap, '\0', p);
	assert_int_equal(pclose(p), 0);
	assert_true(n > 0);
	free(cmd);
	free(sp);
	free(bp);
	free(pp);
	return out;
}

static void
assert_json_eq(const char *got, const char *want)
{
	json_t	*g = json_loads(got, 0, NULL), *w = json_loads(want, 0, NULL);

	assert_non_null(g);
	assert_non_null(w);
	if (!json_equal(g, w))
		fail_msg("decoded %s\nexpected %s", got, want);
	json_decref(g);
	json_decref(w);
}

/* Encodes BODY on stream "s" of AE, decodes it, compares with WANT. */
static void
roundtrip(struct avroenc *ae, const char *body, const char *want)
{
	struct spool_event	 ev = mkevent("s", body);
	char			 err[AVROENC_ERRMAX], buf[4096];
	char			*got;
	size_t			 len;
	int			 rc;

	rc = avroenc_binary(ae, &ev, buf, sizeof(buf), &len, err);
	if (rc != AVROENC_OK)
		fail_msg("avroenc_binary: %d %s", rc, err);
	got = pydecode(avroenc_schema_text(ae, "s", 1, NULL), buf, len);
	assert_json_eq(got, want);
	free(got);
}

/* BODY must be refused, both ways, with exactly the message WANT. */
static void
refused(struct avroenc *ae, const char *body, const char *want)
{
	struct spool_event	ev = mkevent("s", body);
	char			err[AVROENC_ERRMAX] = "", err2[200] = "";
	avro_value_t		v;

	assert_int_equal(avroenc_value(ae, &ev, &v, err), AVROENC_EINVAL);
	assert_string_equal(err, want);
	assert_int_equal(avroenc_check_json(ae, "s", 1, body, strlen(body),
	    err2, sizeof(err2)), AVROENC_EINVAL);
	assert_string_equal(err2, want);
}

static void
test_envelope_file_agrees(void **state)
{
	const char	*dir = getenv("FERRY_TESTS_DIR");
	char		 path[PATH_MAX];
	json_t		*file, *code;
	json_error_t	 jerr;

	(void)state;
	snprintf(path, sizeof(path), "%s%s", dir != NULL ? dir : "tests",
	    "/../conf/envelope.avsc");
	file = json_load_file(path, 0, &jerr);
	if (file == NULL)
		fail_msg("%s: %s", path, jerr.text);
	assert_non_null(code = json_loads(avroenc_envelope_avsc, 0, NULL));
	assert_true(json_equal(file, code));
	json_decref(file);
	json_decref(code);
}

static const char envelope_want[] =
    "{\"id\": \"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\", \"seq\": 7,"
    " \"received_at\": 1700000000123, \"stream\": \"web\","
    " \"content_type\": \"application/octet-stream\","
    " \"remote_addr\": %s, \"body\": \"b:00ff41\"}";

static void
envelope_case(const char *addr, const char *addr_json)
{
	struct conf		*c = mkconf("web", NULL, NULL);
	struct avroenc		*ae;
	struct spool_event	 ev = mkevent("web", "");
	char			 err[AVROENC_ERRMAX], buf[512], want[512];
	char			*got;
	size_t			 len;

	assert_non_null(ae = avroenc_new(c, err));
	ev.ctype = "application/octet-stream";
	ev.ctype_len = strlen(ev.ctype);
	ev.body = "\x00\xff\x41";
	ev.body_len = 3;
	ev.addr = addr;
	ev.addr_len = strlen(addr);
	assert_int_equal(avroenc_binary(ae, &ev, buf, sizeof(buf), &len, err),
	    AVROENC_OK);
	assert_int_equal(avro_typeof(avroenc_schema(ae, "web", 3)),
	    AVRO_RECORD);
	assert_string_equal(avroenc_schema_text(ae, "web", 3, NULL),
	    avroenc_envelope_avsc);
	got = pydecode(avroenc_envelope_avsc, buf, len);
	snprintf(want, sizeof(want), envelope_want, addr_json);
	assert_json_eq(got, want);
	/* No schema: anything goes into the envelope. */
	assert_int_equal(avroenc_check_json(ae, "web", 3, "nope", 4, err,
	    sizeof(err)), AVROENC_OK);
	free(got);
	avroenc_free(ae);
	freeconf(c);
}

static void
test_envelope(void **state)
{
	(void)state;
	envelope_case("192.0.2.1", "\"192.0.2.1\"");
	envelope_case("", "null");
}

static const char all_types_avsc[] =
"{\"type\": \"record\", \"name\": \"All\", \"namespace\": \"t\", \"fields\": [\n"
" {\"name\": \"n\", \"type\": \"null\"},\n"
" {\"name\": \"b\", \"type\": \"boolean\"},\n"
" {\"name\": \"i\", \"type\": \"int\"},\n"
" {\"name\": \"l\", \"type\": \"long\"},\n"
" {\"name\": \"f\", \"type\": \"float\"},\n"
" {\"name\": \"d\", \"type\": \"double\"},\n"
" {\"name\": \"s\", \"type\": \"string\"},\n"
" {\"name\": \"by\", \"type\": \"bytes\"},\n"
" {\"name\": \"fx\", \"type\": {\"type\": \"fixed\", \"name\": \"F4\","
"   \"size\": 4}},\n"
" {\"name\": \"e\", \"type\": {\"type\": \"enum\", \"name\": \"Color\","
"   \"symbols\": [\"RED\", \"GREEN\"]}},\n"
" {\"name\": \"a\", \"type\": {\"type\": \"array\", \"items\": \"int\"}},\n"
" {\"name\": \"m\", \"type\": {\"type\": \"map\", \"values\": \"string\"}},\n"
" {\"name\": \"user\", \"type\": {\"type\": \"record\", \"name\": \"User\","
"   \"fields\": [{\"name\": \"age\", \"type\": \"int\"},"
"    {\"name\": \"tags\", \"type\": {\"type\": \"array\","
"     \"items\": \"string\"}}]}},\n"
" {\"name\": \"u1\", \"type\": [\"null\", \"string\"]},\n"
" {\"name\": \"u2\", \"type\": [\"long\", \"null\"]},\n"
" {\"name\": \"u3\", \"type\": [\"null\", \"User\"]},\n"
" {\"name\": \"ts\", \"type\": {\"type\": \"long\","
"   \"logicalType\": \"timestamp-millis\"}}\n"
"]}\n";

static void
test_all_types(void **state)
{
	struct conf	*c;
	struct avroenc	*ae = load_schema(all_types_avsc, &c);
	const char	*ev1 = "{\"n\": null, \"b\": true, \"i\": -2147483648,"
	    " \"l\": 9007199254740993, \"f\": 1.5, \"d\": 2, \"s\": \"h\\u00e9\","
	    " \"by\": \"AB\", \"fx\": \"wxyz\", \"e\": \"GREEN\","
	    " \"a\": [1, 2, 3], \"m\": {\"k\": \"v\", \"k2\": \"\"},"
	    " \"user\": {\"age\": 30, \"tags\": [\"x\"], \"extra\": 1},"
	    " \"u1\": null, \"u2\": 5, \"u3\": {\"age\": 1, \"tags\": []},"
	    " \"ts\": 1700000000123, \"ignored\": [1]}";
	const char	*want1 = "{\"n\": null, \"b\": true, \"i\": -2147483648,"
	    " \"l\": 9007199254740993, \"f\": 1.5, \"d\": 2.0, \"s\": \"h\\u00e9\","
	    " \"by\": \"b:4142\", \"fx\": \"b:7778797a\", \"e\": \"GREEN\","
	    " \"a\": [1, 2, 3], \"m\": {\"k\": \"v\", \"k2\": \"\"},"
	    " \"user\": {\"age\": 30, \"tags\": [\"x\"]},"
	    " \"u1\": null, \"u2\": 5, \"u3\": {\"age\": 1, \"tags\": []},"
	    " \"ts\": 1700000000123}";
	/* The scratch value is reused: nothing of event 1 may remain. */
	const char	*ev2 = "{\"n\": null, \"b\": false, \"i\": 0, \"l\": -1,"
	    " \"f\": 0, \"d\": -0.25, \"s\": \"\", \"by\": \"\", \"fx\": \"1234\","
	    " \"e\": \"RED\", \"a\": [], \"m\": {}, \"user\": {\"age\": 2,"
	    " \"tags\": []}, \"u1\": \"x\", \"u2\": null, \"u3\": null, \"ts\": 0}";
	const char	*want2 = "{\"n\": null, \"b\": false, \"i\": 0, \"l\": -1,"
	    " \"f\": 0.0, \"d\": -0.25, \"s\": \"\", \"by\": \"b:\","
	    " \"fx\": \"b:31323334\", \"e\": \"RED\", \"a\": [], \"m\": {},"
	    " \"user\": {\"age\": 2, \"tags\": []}, \"u1\": \"x\", \"u2\": null,"
	    " \"u3\": null, \"ts\": 0}";

	(void)state;
	roundtrip(ae, ev1, want1);
	roundtrip(ae, ev2, want2);
	assert_int_equal(avroenc_check_json(ae, "s", 1, ev1, strlen(ev1),
	    NULL, 0), AVROENC_OK);
	/* The text written into file headers keeps the logicalType. */
	assert_string_equal(avroenc_schema_text(ae, "s", 1, NULL),
	    all_types_avsc);
	avroenc_free(ae);
	freeconf(c);
}

static const char defaults_avsc[] =
"{\"type\": \"record\", \"name\": \"D\", \"fields\": [\n"
" {\"name\": \"id\", \"type\": \"string\"},\n"
" {\"name\": \"i\", \"type\": \"int\", \"default\": 42},\n"
" {\"name\": \"s\", \"type\": \"string\", \"default\": \"dflt\"},\n"
" {\"name\": \"u\", \"type\": [\"null\", \"int\"], \"default\": null},\n"
" {\"name\": \"e\", \"type\": {\"type\": \"enum\", \"name\": \"E\","
"   \"symbols\": [\"A\", \"B\"]}, \"default\": \"B\"},\n"
" {\"name\": \"a\", \"type\": {\"type\": \"array\", \"items\": \"long\"},"
"   \"default\": [1, 2]},\n"
" {\"name\": \"r\", \"type\": {\"type\": \"record\", \"name\": \"R\","
"   \"fields\": [{\"name\": \"x\", \"type\": \"double\", \"default\": 0.5},"
"    {\"name\": \"y\", \"type\": \"boolean\"}]},"
"   \"default\": {\"y\": true}},\n"
" {\"name\": \"b\", \"type\": \"bytes\", \"default\": \"\\u0001\"}\n"
"]}\n";

static void
test_defaults(void **state)
{
	struct conf	*c;
	struct avroenc	*ae = load_schema(defaults_avsc, &c);

	(void)state;
	roundtrip(ae, "{\"id\": \"x\"}", "{\"id\": \"x\", \"i\": 42,"
	    " \"s\": \"dflt\", \"u\": null, \"e\": \"B\", \"a\": [1, 2],"
	    " \"r\": {\"x\": 0.5, \"y\": true}, \"b\": \"b:01\"}");
	roundtrip(ae, "{\"id\": \"y\", \"i\": 1, \"u\": 3, \"r\": {\"y\": false}}",
	    "{\"id\": \"y\", \"i\": 1, \"s\": \"dflt\", \"u\": 3, \"e\": \"B\","
	    " \"a\": [1, 2], \"r\": {\"x\": 0.5, \"y\": false}, \"b\": \"b:01\"}");
	refused(ae, "{}", "field id: missing, and the schema gives no default");
	refused(ae, "{\"id\": \"x\", \"r\": {}}",
	    "field r.y: missing, and the schema gives no default");
	avroenc_free(ae);
	freeconf(c);
}

static const char user_avsc[] =
"{\"type\": \"record\", \"name\": \"Ev\", \"fields\": [\n"
" {\"name\": \"user\", \"type\": {\"type\": \"record\", \"name\": \"U\","
"   \"fields\": [{\"name\": \"age\", \"type\": \"int\"}]}},\n"
" {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": \"string\"},"
"   \"default\": []},\n"
" {\"name\": \"attrs\", \"type\": {\"type\": \"map\", \"values\": \"long\"},"
"   \"default\": {}},\n"
" {\"name\": \"color\", \"type\": [\"null\", {\"type\": \"enum\","
"   \"name\": \"C\", \"symbols\": [\"RED\"]}], \"default\": null},\n"
" {\"name\": \"when\", \"type\": \"long\", \"default\": 0},\n"
" {\"name\": \"fx\", \"type\": [\"null\", {\"type\": \"fixed\","
"   \"name\": \"F2\", \"size\": 2}], \"default\": null}\n"
"]}\n";

static void
test_mismatch(void **state)
{
	struct conf	*c;
	struct avroenc	*ae = load_schema(user_avsc, &c);

	(void)state;
	refused(ae, "{\"user\": {\"age\": \"x\"}}",
	    "field user.age: expected int, got string");
	refused(ae, "{\"user\": {\"age\": 1.5}}",
	    "field user.age: expected int, got number");
	refused(ae, "{\"user\": {\"age\": 2147483648}}",
	    "field user.age: 2147483648 is out of range for int");
	refused(ae, "{\"user\": null}",
	    "field user: expected record U, got null");
	refused(ae, "{\"user\": {\"age\": 1}, \"tags\": [\"a\", 2]}",
	    "field tags[1]: expected string, got integer");
	refused(ae, "{\"user\": {\"age\": 1}, \"attrs\": {\"k\": true}}",
	    "field attrs.k: expected long, got boolean");
	refused(ae, "{\"user\": {\"age\": 1}, \"color\": \"BLUE\"}",
	    "field color: 'BLUE' is not a symbol of enum C");
	/* "\u0000" is valid JSON, but no symbol holds a NUL. */
	refused(ae, "{\"user\": {\"age\": 1}, \"color\": \"RED\\u0000x\"}",
	    "field color: 'RED' is not a symbol of enum C");
	refused(ae, "{\"user\": {\"age\": 1}, \"color\": 3}",
	    "field color: expected enum C, got integer");
	refused(ae, "{\"user\": {\"age\": 1}, \"when\": \"now\"}",
	    "field when: expected long, got string");
	refused(ae, "{\"user\": {\"age\": 1}, \"fx\": \"abc\"}",
	    "field fx: expected 2 bytes, got 3");
	refused(ae, "[1]", "event: expected record Ev, got array");
	refused(ae, "{\"user\": ", "invalid JSON at line 1, column 9: "
	    "unexpected token near end of file");
	refused(ae, "3", "event: expected record Ev, got integer");
	assert_int_equal(avroenc_check_json(ae, "s", 1, "{\"user\": "
	    "{\"age\": 1}}", 20, NULL, 0), AVROENC_OK);
	avroenc_free(ae);
	freeconf(c);
}

static const char list_avsc[] =
"{\"type\": \"record\", \"name\": \"Node\", \"fields\": [\n"
" {\"name\": \"v\", \"type\": \"int\"},\n"
" {\"name\": \"next\", \"type\": [\"null\", \"Node\"], \"default\": null}\n"
"]}\n";

static void
test_recursive(void **state)
{
	struct conf	*c;
	struct avroenc	*ae = load_schema(list_avsc, &c);

	(void)state;
	roundtrip(ae, "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {\"v\": 3}}}",
	    "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {\"v\": 3,"
	    " \"next\": null}}}");
	refused(ae, "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {\"v\": \"3\"}}}",
	    "field next.next.v: expected int, got string");
	avroenc_free(ae);
	freeconf(c);
}

static void
test_binary_space(void **state)
{
	struct conf		*c;
	struct avroenc		*ae = load_schema(list_avsc, &c);
	struct spool_event	 ev = mkevent("s", "{\"v\": 300}");
	char			 err[AVROENC_ERRMAX];
	unsigned char		 buf[8];
	size_t			 len = 0;

	(void)state;
	/* 300 is zigzag 600: 2 bytes; the null branch 1 byte. */
	assert_int_equal(avroenc_binary(ae, &ev, buf, 2, &len, err),
	    AVROENC_ESPACE);
	assert_int_equal(len, 3);
	assert_int_equal(avroenc_binary(ae, &ev, buf, 3, &len, err),
	    AVROENC_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "\xd8\x04\x00", 3);
	avroenc_free(ae);
	freeconf(c);
}

/* A schema that must be refused with a message starting with its path. */
static void
bad_schema(const char *text, const char *want)
{
	char		 err[AVROENC_ERRMAX], msg[AVROENC_ERRMAX];
	char		*path = write_file(NULL, text, strlen(text));
	struct conf	*c = mkconf("s", path, NULL);

	assert_null(avroenc_new(c, err));
	snprintf(msg, sizeof(msg), "%s%s", path, want);
	if (strncmp(err, msg, strlen(msg)) != 0)
		fail_msg("got '%s', want '%s...'", err, msg);
	free(path);
	freeconf(c);
}

static void
test_bad_avsc(void **state)
{
	char		 err[AVROENC_ERRMAX], want[PATH_MAX + 64];
	struct conf	*c = mkconf("s", "/nonexistent/x.avsc", NULL);

	(void)state;
	assert_null(avroenc_new(c, err));
	assert_string_equal(err, "/nonexistent/x.avsc: No such file or "
	    "directory");
	freeconf(c);
	/* Relative: from the directory of the config file. */
	c = mkconf("s", "missing.avsc", NULL);
	assert_null(avroenc_new(c, err));
	snprintf(want, sizeof(want), "%s/missing.avsc: No such file or "
	    "directory", tmpdir);
	assert_string_equal(err, want);
	freeconf(c);

	bad_schema("{\"type\": \"record\",", ":1:18: string or '}' expected");
	bad_schema("{\"type\": \"record\", \"name\": \"R\", \"fields\": "
	    "[{\"name\": \"a\", \"type\": \"nosuch\"}]}", ": not an Avro schema");
	bad_schema("\"string\"", ": the schema must be a record");
	bad_schema("{\"type\": \"record\", \"name\": \"R\", \"fields\": "
	    "[{\"name\": \"a\", \"type\": [\"int\", \"string\"]}]}",
	    ": field a: only unions of null and one other type are supported");
	bad_schema("{\"type\": \"record\", \"name\": \"R\", \"fields\": "
	    "[{\"name\": \"a\", \"type\": \"int\", \"default\": \"x\"}]}",
	    ": default of field R.a: expected int, got string");
	bad_schema("{\"type\": \"record\", \"name\": \"R\", \"fields\": "
	    "[{\"name\": \"a\", \"type\": {\"type\": \"record\", \"name\": \"Q\","
	    " \"fields\": [{\"name\": \"b\", \"type\": [\"null\", \"int\"],"
	    " \"default\": \"x\"}]}}]}",
	    ": default of field Q.b: expected int, got string");
}

struct checker {
	struct avroenc	*ae;
	int		 bad;
};

static void *
check_many(void *arg)
{
	struct checker	*ck = arg;
	const char	*ok = "{\"user\": {\"age\": 5}, \"tags\": [\"a\", \"b\"]}";
	const char	*no = "{\"user\": {\"age\": 5}, \"tags\": [\"a\", 1]}";
	char		 err[128];

	for (int i = 0; i < 2000; i++) {
		if (avroenc_check_json(ck->ae, "s", 1, ok, strlen(ok), err,
		    sizeof(err)) != AVROENC_OK ||
		    avroenc_check_json(ck->ae, "s", 1, no, strlen(no), err,
		    sizeof(err)) != AVROENC_EINVAL ||
		    strcmp(err, "field tags[1]: expected string, got integer"))
			ck->bad++;
	}
	return NULL;
}

static void
test_check_threads(void **state)
{
	struct conf	*c;
	struct checker	 ck[4];
	pthread_t	 t[4];

	(void)state;
	ck[0].ae = load_schema(user_avsc, &c);
	for (int i = 0; i < 4; i++) {
		ck[i].ae = ck[0].ae;
		ck[i].bad = 0;
		assert_int_equal(pthread_create(&t[i], NULL, check_many,
		    &ck[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(ck[i].bad, 0);
	}
	avroenc_free(ck[0].ae);
	freeconf(c);
}

static int
rm_tree(void)
{
	char	cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_avroenc.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rm_tree() == 0 ? 0 : -1;
}

/*
 * avroenc_envelope() (ferry's own encoding) against avro-c's encoding of
 * the same envelope value, byte for byte, across varint boundaries of
 * every length and number, with and without remote_addr.
 */
static void
test_envelope_direct(void **state)
{
	static const size_t blens[] = { 0, 1, 63, 64, 65, 8191, 8192, 70000 };
	static const uint64_t seqs[] = { 1, 63, 64, 8191, 8192, 1ULL << 31,
	    (1ULL << 62) + 5 };
	struct conf	*c = mkconf("web", NULL, NULL);
	struct avroenc	*ae;
	avro_writer_t	 wr;
	avro_value_t	 v;
	char		 err[AVROENC_ERRMAX], *body, *want, *got;
	size_t		 cases = 0;

	(void)state;
	assert_non_null(ae = avroenc_new(c, err));
	assert_true(avroenc_is_envelope(ae, "web", 3));
	assert_non_null(body = malloc(70000));
	assert_non_null(want = malloc(80000));
	assert_non_null(got = malloc(80000));
	for (size_t i = 0; i < 70000; i++)
		body[i] = (char)(i * 7);
	for (size_t bi = 0; bi < sizeof(blens) / sizeof(blens[0]); bi++)
	for (size_t si = 0; si < sizeof(seqs) / sizeof(seqs[0]); si++)
	for (int addr = 0; addr < 2; addr++) {
		struct spool_event ev = mkevent("web", "");
		size_t n, len;

		ev.body = body;
		ev.body_len = blens[bi];
		ev.seq = seqs[si];
		ev.received_ms = seqs[si] * 1000 + 123;
		ev.addr = addr ? "2001:db8::17" : NULL;
		ev.addr_len = addr ? strlen(ev.addr) : 0;
		if (si == 1) {
			ev.ctype = "";
			ev.ctype_len = 0;
		}
		if (si == 2) {		/* the fuzzer's: NULs, as avro-c */
			ev.ctype = "\0\1\2abc";
			ev.ctype_len = 6;
		}
		if (si == 3) {
			ev.ctype = "text/plain\0; x=1";
			ev.ctype_len = 17;
		}
		assert_int_equal(avroenc_value(ae, &ev, &v, err), AVROENC_OK);
		assert_int_equal(avro_value_sizeof(&v, &n), 0);
		assert_non_null(wr = avro_writer_memory(want, 80000));
		assert_int_equal(avro_value_write(wr, &v), 0);
		avro_writer_free(wr);
		assert_int_equal(avroenc_envelope_size(&ev), n);
		memset(got, 0x55, 80000);
		avroenc_envelope(&ev, got);
		assert_memory_equal(got, want, n);
		assert_int_equal((unsigned char)got[n], 0x55);	/* no more */
		/* avroenc_binary takes the same path, and says when short */
		assert_int_equal(avroenc_binary(ae, &ev, got, 80000, &len,
		    err), AVROENC_OK);
		assert_int_equal(len, n);
		assert_memory_equal(got, want, n);
		assert_int_equal(avroenc_binary(ae, &ev, got, n - 1, &len,
		    err), AVROENC_ESPACE);
		assert_int_equal(len, n);
		cases++;
	}
	assert_int_equal(cases, 8 * 7 * 2);
	free(body);
	free(want);
	free(got);
	avroenc_free(ae);
	freeconf(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_file_agrees),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_envelope_direct),
		cmocka_unit_test(test_all_types),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_mismatch),
		cmocka_unit_test(test_recursive),
		cmocka_unit_test(test_binary_space),
		cmocka_unit_test(test_bad_avsc),
		cmocka_unit_test(test_check_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
