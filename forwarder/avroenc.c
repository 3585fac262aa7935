/*
 * avroenc.c: events as Avro values (see avroenc.h for the mapping).
 *
 * One struct avsc per schema: the envelope, and one per [stream.NAME] with
 * a schema.  Each holds the schema twice: as avro-c parsed it (to build
 * values and write binary) and as jansson parsed the same text, because
 * avro-c keeps neither defaults nor logicalType.  recs[] maps each record
 * definition of the avro-c schema to its "fields" array in the JSON, found
 * by walking both trees together at load time; defaults are read from
 * there.  A name reference in a schema is an avro-c link to the one
 * definition, so each record appears in recs[] once.
 *
 * put() walks a schema and a JSON value together.  With a NULL value it
 * only checks, touching nothing but the (immutable) schemas: that is what
 * makes avroenc_check_json() safe from many threads.  With a value it
 * fills the scratch value of the schema, reset first, so a failed event
 * leaves nothing behind for the next one.
 *
 * Invariants: every schema is a record whose unions are null + one type,
 * checked at load; every default fits its field, checked at load; the
 * scratch value of a schema is only read between its filling and the next
 * call on this avroenc.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "avroenc.h"
#include "avrobin.h"
#include "conf.h"
#include "spool.h"

#define AVSC_MAX	(1024 * 1024)	/* larger .avsc files are refused */
#define HEADER_MAX	(64 * 1024)	/* avro-c's file writer limit */

const char avroenc_envelope_avsc[] =
"{\n"
"  \"type\": \"record\",\n"
"  \"name\": \"Event\",\n"
"  \"namespace\": \"ferry\",\n"
"  \"doc\": \"An event of a stream without a schema, as received.\",\n"
"  \"fields\": [\n"
"    {\"name\": \"id\", \"type\": \"string\",\n"
"     \"doc\": \"Hex of the 16-byte event id (dedup fingerprint).\"},\n"
"    {\"name\": \"seq\", \"type\": \"long\",\n"
"     \"doc\": \"Sequence number in the edge host's spool.\"},\n"
"    {\"name\": \"received_at\",\n"
"     \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"},\n"
"     \"doc\": \"When the agent received the event.\"},\n"
"    {\"name\": \"stream\", \"type\": \"string\"},\n"
"    {\"name\": \"content_type\", \"type\": \"string\"},\n"
"    {\"name\": \"remote_addr\", \"type\": [\"null\", \"string\"],\n"
"     \"default\": null,\n"
"     \"doc\": \"Address of the client, null when unknown.\"},\n"
"    {\"name\": \"body\", \"type\": \"bytes\",\n"
"     \"doc\": \"The body as received.\"}\n"
"  ]\n"
"}\n";

/* The envelope's fields, in schema order. */
enum { ENV_ID, ENV_SEQ, ENV_RECEIVED_AT, ENV_STREAM, ENV_CTYPE, ENV_ADDR,
	ENV_BODY, ENV_NFIELDS };

struct recdef {
	avro_schema_t	 rec;
	json_t		*fields;	/* borrowed from avsc.json */
};

struct avsc {
	char			*stream;	/* NULL: the envelope */
	size_t			 stream_len;
	char			*path;		/* the .avsc, or "envelope" */
	char			*text;		/* as read, NUL-terminated */
	size_t			 text_len;
	json_t			*json;
	avro_schema_t		 schema;
	struct recdef		*recs;
	size_t			 nrecs;
	avro_value_iface_t	*iface;		/* NULL until first used */
	avro_value_t		 value;
};

struct avroenc {
	struct avsc	 env;
	struct avsc	*sch;
	size_t		 nsch;
	avro_writer_t	 wr;	/* avroenc_binary()'s, aimed anew each call */
};

/* A walk of a schema and a JSON value; PATH names the current field. */
struct walk {
	const struct avsc	*a;
	char			*err;
	size_t			 errlen;
	size_t			 plen;
	char			 path[256];
};

static int	put(struct walk *, avro_schema_t, json_t *, avro_value_t *);

static avro_schema_t
resolve(avro_schema_t s)
{
	while (is_avro_link(s))
		s = avro_schema_link_target(s);
	return s;
}

static const char *
jtype(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:	return "object";
	case JSON_ARRAY:	return "array";
	case JSON_STRING:	return "string";
	case JSON_INTEGER:	return "integer";
	case JSON_REAL:		return "number";
	case JSON_TRUE:
	case JSON_FALSE:	return "boolean";
	case JSON_NULL:		return "null";
	}
	return "?";
}

/* "int", "record ferry.Click", "array of string", ... into BUF. */
static const char *
stype(avro_schema_t s, char *buf, size_t len)
{
	const char	*ns;

	s = resolve(s);
	switch (avro_typeof(s)) {
	case AVRO_RECORD:
	case AVRO_ENUM:
	case AVRO_FIXED:
		ns = avro_schema_namespace(s);
		snprintf(buf, len, "%s %s%s%s", avro_typeof(s) == AVRO_RECORD ?
		    "record" : avro_typeof(s) == AVRO_ENUM ? "enum" : "fixed",
		    ns != NULL && *ns != '\0' ? ns : "",
		    ns != NULL && *ns != '\0' ? "." : "", avro_schema_name(s));
		return buf;
	case AVRO_ARRAY:	return "array";
	case AVRO_MAP:		return "object (map)";
	case AVRO_UNION:	return "union";
	case AVRO_STRING:	return "string";
	case AVRO_BYTES:	return "bytes";
	case AVRO_INT32:	return "int";
	case AVRO_INT64:	return "long";
	case AVRO_FLOAT:	return "float";
	case AVRO_DOUBLE:	return "double";
	case AVRO_BOOLEAN:	return "boolean";
	case AVRO_NULL:		return "null";
	default:		return "?";
	}
}

static void __attribute__((format(printf, 2, 3)))
fail(struct walk *w, const char *fmt, ...)
{
	char	msg[AVROENC_ERRMAX];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->plen == 0)
		snprintf(w->err, w->errlen, "event: %s", msg);
	else
		snprintf(w->err, w->errlen, "field %s: %s", w->path, msg);
}

static int
mismatch(struct walk *w, avro_schema_t s, const json_t *j)
{
	char	buf[256];

	fail(w, "expected %s, got %s", stype(s, buf, sizeof(buf)), jtype(j));
	return AVROENC_EINVAL;
}

static int
avro_failed(struct walk *w, const char *what)
{
	fail(w, "%s: %s", what, avro_strerror());
	return AVROENC_ERR;
}

/* Appends ".NAME" (or NAME at the start, or "[N]" with FMT) to the path. */
static size_t
push(struct walk *w, const char *fmt, ...)
{
	size_t	old = w->plen;
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(w->path + old, sizeof(w->path) - old, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(w->path) - old)
		w->plen = sizeof(w->path) - 1;
	else
		w->plen = old + (size_t)n;
	return old;
}

static void
pop(struct walk *w, size_t old)
{
	w->plen = old;
	w->path[old] = '\0';
}

static json_t *
field_default(const struct avsc *a, avro_schema_t rec, size_t i)
{
	for (size_t k = 0; k < a->nrecs; k++)
		if (a->recs[k].rec == rec)
			return json_object_get(json_array_get(a->recs[k].fields,
			    i), "default");
	return NULL;
}

static int
put_record(struct walk *w, avro_schema_t s, json_t *j, avro_value_t *v)
{
	size_t		 n = avro_schema_record_size(s), old;
	avro_value_t	 fv;
	json_t		*fj;
	const char	*name;
	int		 rc;

	if (!json_is_object(j))
		return mismatch(w, s, j);
	for (size_t i = 0; i < n; i++) {
		name = avro_schema_record_field_name(s, (int)i);
		old = push(w, w->plen == 0 ? "%s" : ".%s", name);
		if ((fj = json_object_get(j, name)) == NULL &&
		    (fj = field_default(w->a, s, i)) == NULL) {
			fail(w, "missing, and the schema gives no default");
			return AVROENC_EINVAL;
		}
		if (v != NULL && avro_value_get_by_index(v, i, &fv, NULL) != 0)
			return avro_failed(w, "record field");
		rc = put(w, avro_schema_record_field_get_by_index(s, (int)i),
		    fj, v != NULL ? &fv : NULL);
		if (rc != AVROENC_OK)
			return rc;
		pop(w, old);
	}
	return AVROENC_OK;
}

static int
put_array(struct walk *w, avro_schema_t s, json_t *j, avro_value_t *v)
{
	avro_schema_t	 items = avro_schema_array_items(s);
	avro_value_t	 ev;
	size_t		 i, old;
	json_t		*ej;
	int		 rc;

	if (!json_is_array(j))
		return mismatch(w, s, j);
	json_array_foreach(j, i, ej) {
		old = push(w, "[%zu]", i);
		if (v != NULL && avro_value_append(v, &ev, NULL) != 0)
			return avro_failed(w, "array");
		if ((rc = put(w, items, ej, v != NULL ? &ev : NULL)) !=
		    AVROENC_OK)
			return rc;
		pop(w, old);
	}
	return AVROENC_OK;
}

static int
put_map(struct walk *w, avro_schema_t s, json_t *j, avro_value_t *v)
{
	avro_schema_t	 values = avro_schema_map_values(s);
	avro_value_t	 ev;
	const char	*key;
	size_t		 old;
	json_t		*ej;
	int		 rc;

	if (!json_is_object(j))
		return mismatch(w, s, j);
	json_object_foreach(j, key, ej) {
		old = push(w, w->plen == 0 ? "%s" : ".%s", key);
		if (v != NULL && avro_value_add(v, key, &ev, NULL, NULL) != 0)
			return avro_failed(w, "map");
		if ((rc = put(w, values, ej, v != NULL ? &ev : NULL)) !=
		    AVROENC_OK)
			return rc;
		pop(w, old);
	}
	return AVROENC_OK;
}

/* A union of null and one other type (checked at load). */
static int
put_union(struct walk *w, avro_schema_t s, json_t *j, avro_value_t *v)
{
	int		 nul = avro_typeof(avro_schema_union_branch(s, 0)) ==
			    AVRO_NULL ? 0 : 1;
	int		 b = json_is_null(j) ? nul : 1 - nul;
	avro_value_t	 bv;

	if (v != NULL && avro_value_set_branch(v, b, &bv) != 0)
		return avro_failed(w, "union");
	return put(w, avro_schema_union_branch(s, b), j,
	    v != NULL ? &bv : NULL);
}

static int
put_enum(struct walk *w, avro_schema_t s, json_t *j, avro_value_t *v)
{
	char	buf[256];
	int	sym;

	if (!json_is_string(j))
		return mismatch(w, s, j);
	/* A symbol has no NUL: "A\u0000B" is not symbol A. */
	if (strlen(json_string_value(j)) != json_string_length(j) ||
	    (sym = avro_schema_enum_get_by_name(s, json_string_value(j))) <
	    0) {
		fail(w, "'%.64s' is not a symbol of %s", json_string_value(j),
		    stype(s, buf, sizeof(buf)));
		return AVROENC_EINVAL;
	}
	if (v != NULL && avro_value_set_enum(v, sym) != 0)
		return avro_failed(w, "enum");
	return AVROENC_OK;
}

/* The scalar types: one JSON value, one avro-c setter. */
static int
put_scalar(struct walk *w, avro_schema_t s, json_t *j, avro_value_t *v)
{
	const char	*str = json_string_value(j);
	size_t		 len = json_string_length(j);
	json_int_t	 n = json_integer_value(j);
	int		 rc = 0;

	switch (avro_typeof(s)) {
	case AVRO_NULL:
		if (!json_is_null(j))
			return mismatch(w, s, j);
		rc = v != NULL ? avro_value_set_null(v) : 0;
		break;
	case AVRO_BOOLEAN:
		if (!json_is_boolean(j))
			return mismatch(w, s, j);
		rc = v != NULL ? avro_value_set_boolean(v, json_is_true(j)) : 0;
		break;
	case AVRO_INT32:
		if (!json_is_integer(j))
			return mismatch(w, s, j);
		if (n < INT32_MIN || n > INT32_MAX) {
			fail(w, "%" JSON_INTEGER_FORMAT " is out of range for "
			    "int", n);
			return AVROENC_EINVAL;
		}
		rc = v != NULL ? avro_value_set_int(v, (int32_t)n) : 0;
		break;
	case AVRO_INT64:
		if (!json_is_integer(j))
			return mismatch(w, s, j);
		rc = v != NULL ? avro_value_set_long(v, (int64_t)n) : 0;
		break;
	case AVRO_FLOAT:
		if (!json_is_number(j))
			return mismatch(w, s, j);
		rc = v != NULL ? avro_value_set_float(v,
		    (float)json_number_value(j)) : 0;
		break;
	case AVRO_DOUBLE:
		if (!json_is_number(j))
			return mismatch(w, s, j);
		rc = v != NULL ? avro_value_set_double(v,
		    json_number_value(j)) : 0;
		break;
	case AVRO_STRING:
		if (str == NULL)
			return mismatch(w, s, j);
		/* avro-c counts the NUL, which jansson guarantees. */
		rc = v != NULL ? avro_value_set_string_len(v, str, len + 1) : 0;
		break;
	case AVRO_BYTES:
		if (str == NULL)
			return mismatch(w, s, j);
		rc = v != NULL ? avro_value_set_bytes(v, (void *)str, len) : 0;
		break;
	case AVRO_FIXED:
		if (str == NULL)
			return mismatch(w, s, j);
		if ((int64_t)len != avro_schema_fixed_size(s)) {
			fail(w, "expected %" PRId64 " bytes, got %zu",
			    avro_schema_fixed_size(s), len);
			return AVROENC_EINVAL;
		}
		rc = v != NULL ? avro_value_set_fixed(v, (void *)str, len) : 0;
		break;
	default:
		fail(w, "unsupported Avro type");
		return AVROENC_EINVAL;
	}
	return rc == 0 ? AVROENC_OK : avro_failed(w, "value");
}

static int
put(struct walk *w, avro_schema_t s, json_t *j, avro_value_t *v)
{
	s = resolve(s);
	switch (avro_typeof(s)) {
	case AVRO_RECORD:	return put_record(w, s, j, v);
	case AVRO_ARRAY:	return put_array(w, s, j, v);
	case AVRO_MAP:		return put_map(w, s, j, v);
	case AVRO_UNION:	return put_union(w, s, j, v);
	case AVRO_ENUM:		return put_enum(w, s, j, v);
	default:		return put_scalar(w, s, j, v);
	}
}

/*
 * Loading.  A schema is checked once: supported types only, every
 * default fitting its field.
 */

static int
add_rec(struct avsc *a, avro_schema_t rec, json_t *fields)
{
	struct recdef	*r;

	if ((r = reallocarray(a->recs, a->nrecs + 1, sizeof(*r))) == NULL)
		return -1;
	a->recs = r;
	r[a->nrecs].rec = rec;
	r[a->nrecs++].fields = fields;
	return 0;
}

/* Walks the avro-c schema S and its JSON J together, recording records. */
static int
collect(struct avsc *a, avro_schema_t s, json_t *j)
{
	json_t	*fields;
	size_t	 i, n;

	if (is_avro_link(s))
		return 0;	/* a reference: defined elsewhere */
	switch (avro_typeof(s)) {
	case AVRO_RECORD:
		fields = json_object_get(j, "fields");
		n = avro_schema_record_size(s);
		if (!json_is_array(fields) || json_array_size(fields) != n)
			return 0;
		if (add_rec(a, s, fields) == -1)
			return -1;
		for (i = 0; i < n; i++)
			if (collect(a, avro_schema_record_field_get_by_index(s,
			    (int)i), json_object_get(json_array_get(fields, i),
			    "type")) == -1)
				return -1;
		return 0;
	case AVRO_ARRAY:
		return collect(a, avro_schema_array_items(s),
		    json_object_get(j, "items"));
	case AVRO_MAP:
		return collect(a, avro_schema_map_values(s),
		    json_object_get(j, "values"));
	case AVRO_UNION:
		n = avro_schema_union_size(s);
		for (i = 0; i < n; i++)
			if (collect(a, avro_schema_union_branch(s, (int)i),
			    json_array_get(j, i)) == -1)
				return -1;
		return 0;
	default:
		return 0;
	}
}

/* Refuses unions other than null + one type, fields type by type. */
static int
check_types(struct walk *w, avro_schema_t s)
{
	avro_schema_t	 b0, b1;
	size_t		 old, n;
	int		 rc = 0;

	if (is_avro_link(s))
		return 0;	/* to a record checked where defined */
	switch (avro_typeof(s)) {
	case AVRO_RECORD:
		n = avro_schema_record_size(s);
		for (size_t i = 0; i < n && rc == 0; i++) {
			old = push(w, w->plen == 0 ? "%s" : ".%s",
			    avro_schema_record_field_name(s, (int)i));
			rc = check_types(w,
			    avro_schema_record_field_get_by_index(s, (int)i));
			pop(w, old);
		}
		return rc;
	case AVRO_ARRAY:
		return check_types(w, avro_schema_array_items(s));
	case AVRO_MAP:
		return check_types(w, avro_schema_map_values(s));
	case AVRO_UNION:
		if (avro_schema_union_size(s) != 2 ||
		    (b0 = avro_schema_union_branch(s, 0),
		    b1 = avro_schema_union_branch(s, 1),
		    (avro_typeof(b0) == AVRO_NULL) ==
		    (avro_typeof(b1) == AVRO_NULL))) {
			fail(w, "only unions of null and one other type are "
			    "supported");
			return -1;
		}
		return check_types(w, avro_typeof(b0) == AVRO_NULL ? b1 : b0);
	default:
		return 0;
	}
}

static int
check_defaults(struct avsc *a, char *err)
{
	struct walk	 w;
	json_t		*f, *def;
	size_t		 i;

	for (size_t k = 0; k < a->nrecs; k++) {
		json_array_foreach(a->recs[k].fields, i, f) {
			if ((def = json_object_get(f, "default")) == NULL)
				continue;
			memset(&w, 0, sizeof(w));
			w.a = a;
			w.err = err;
			w.errlen = AVROENC_ERRMAX;
			push(&w, "%s.%s", avro_schema_name(a->recs[k].rec),
			    json_string_value(json_object_get(f, "name")));
			if (put(&w, avro_schema_record_field_get_by_index(
			    a->recs[k].rec, (int)i), def, NULL) != AVROENC_OK) {
				memmove(err + 11, err, AVROENC_ERRMAX - 11);
				memcpy(err, "default of ", 11);
				err[AVROENC_ERRMAX - 1] = '\0';
				return -1;
			}
		}
	}
	return 0;
}

/* Parses A->text twice (avro-c, jansson) and checks it; ERR names the file. */
static int
avsc_parse(struct avsc *a, char *err)
{
	char		 msg[AVROENC_ERRMAX];
	struct walk	 w;
	json_error_t	 jerr;

	a->json = json_loadb(a->text, a->text_len, JSON_DECODE_ANY, &jerr);
	if (a->json == NULL) {
		snprintf(err, AVROENC_ERRMAX, "%s:%d:%d: %s", a->path,
		    jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (avro_schema_from_json_length(a->text, a->text_len, &a->schema)) {
		a->schema = NULL;
		snprintf(err, AVROENC_ERRMAX, "%s: not an Avro schema: %s",
		    a->path, avro_strerror());
		return -1;
	}
	if (avro_typeof(a->schema) != AVRO_RECORD) {
		snprintf(err, AVROENC_ERRMAX, "%s: the schema must be a record",
		    a->path);
		return -1;
	}
	if (a->text_len >= HEADER_MAX) {
		snprintf(err, AVROENC_ERRMAX, "%s: larger than %d bytes",
		    a->path, HEADER_MAX - 1);
		return -1;
	}
	if (collect(a, a->schema, a->json) == -1) {
		snprintf(err, AVROENC_ERRMAX, "%s: out of memory", a->path);
		return -1;
	}
	memset(&w, 0, sizeof(w));
	w.a = a;
	w.err = msg;
	w.errlen = sizeof(msg);
	if (check_types(&w, a->schema) == -1 || check_defaults(a, msg)) {
		snprintf(err, AVROENC_ERRMAX, "%.100s: %.400s", a->path, msg);
		return -1;
	}
	return 0;
}

/* Reads PATH into A->text. */
static int
avsc_read(struct avsc *a, char *err)
{
	FILE	*f;
	size_t	 n;

	if ((f = fopen(a->path, "re")) == NULL) {
		snprintf(err, AVROENC_ERRMAX, "%s: %s", a->path,
		    strerror(errno));
		return -1;
	}
	if ((a->text = malloc(AVSC_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, AVROENC_ERRMAX, "%s: out of memory", a->path);
		return -1;
	}
	n = fread(a->text, 1, AVSC_MAX + 1, f);
	if (ferror(f) || n > AVSC_MAX) {
		snprintf(err, AVROENC_ERRMAX, "%s: %s", a->path, ferror(f) ?
		    strerror(errno) : "larger than 1 MiB");
		fclose(f);
		return -1;
	}
	fclose(f);
	a->text[n] = '\0';
	a->text_len = n;
	return 0;
}

static void
avsc_free(struct avsc *a)
{
	if (a->iface != NULL) {
		avro_value_decref(&a->value);
		avro_value_iface_decref(a->iface);
	}
	if (a->schema != NULL)
		avro_schema_decref(a->schema);
	json_decref(a->json);
	free(a->recs);
	free(a->text);
	free(a->path);
	free(a->stream);
}

/* A relative schema path is taken from the directory of the config file. */
static char *
avsc_path(const struct conf *c, const char *p)
{
	const char	*slash;
	char		*s;

	if (p[0] == '/' || c->path == NULL ||
	    (slash = strrchr(c->path, '/')) == NULL)
		return strdup(p);
	if (asprintf(&s, "%.*s/%s", (int)(slash - c->path), c->path, p) == -1)
		return NULL;
	return s;
}

static int
load_stream(struct avsc *a, const struct conf *c,
    const struct conf_stream *cs, char *err)
{
	if ((a->stream = strdup(cs->name)) == NULL ||
	    (a->path = avsc_path(c, cs->schema)) == NULL) {
		snprintf(err, AVROENC_ERRMAX, "%s: out of memory", cs->schema);
		return -1;
	}
	a->stream_len = strlen(a->stream);
	if (avsc_read(a, err) == -1 || avsc_parse(a, err) == -1)
		return -1;
	return 0;
}

struct avroenc *
avroenc_new(const struct conf *c, char *err)
{
	struct avroenc	*ae;

	if ((ae = calloc(1, sizeof(*ae))) == NULL ||
	    (ae->sch = calloc(c->nstreams + 1, sizeof(*ae->sch))) == NULL ||
	    (ae->env.path = strdup("envelope")) == NULL ||
	    (ae->env.text = strdup(avroenc_envelope_avsc)) == NULL) {
		snprintf(err, AVROENC_ERRMAX, "avro: out of memory");
		avroenc_free(ae);
		return NULL;
	}
	ae->env.text_len = strlen(ae->env.text);
	if (avsc_parse(&ae->env, err) == -1) {
		avroenc_free(ae);
		return NULL;
	}
	for (size_t i = 0; i < c->nstreams; i++) {
		if (c->streams[i].schema == NULL)
			continue;
		if (load_stream(&ae->sch[ae->nsch++], c, &c->streams[i],
		    err) == -1) {
			avroenc_free(ae);
			return NULL;
		}
	}
	return ae;
}

void
avroenc_free(struct avroenc *ae)
{
	if (ae == NULL)
		return;
	for (size_t i = 0; i < ae->nsch; i++)
		avsc_free(&ae->sch[i]);
	avsc_free(&ae->env);
	if (ae->wr != NULL)
		avro_writer_free(ae->wr);
	free(ae->sch);
	free(ae);
}

static const struct avsc *
avsc_find(const struct avroenc *ae, const char *stream, size_t len)
{
	for (size_t i = 0; i < ae->nsch; i++)
		if (ae->sch[i].stream_len == len &&
		    memcmp(ae->sch[i].stream, stream, len) == 0)
			return &ae->sch[i];
	return &ae->env;
}

avro_schema_t
avroenc_schema(struct avroenc *ae, const char *stream, size_t len)
{
	return avsc_find(ae, stream, len)->schema;
}

const char *
avroenc_schema_text(struct avroenc *ae, const char *stream, size_t len,
    size_t *lenp)
{
	const struct avsc	*a = avsc_find(ae, stream, len);

	if (lenp != NULL)
		*lenp = a->text_len;
	return a->text;
}

/* The scratch value of A, created on first use and reset for each event. */
static int
scratch(struct avsc *a, char *err)
{
	if (a->iface == NULL) {
		if ((a->iface = avro_generic_class_from_schema(a->schema)) ==
		    NULL)
			goto fail;
		if (avro_generic_value_new(a->iface, &a->value) != 0) {
			avro_value_iface_decref(a->iface);
			a->iface = NULL;
			goto fail;
		}
	}
	if (avro_value_reset(&a->value) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, AVROENC_ERRMAX, "avro: %s: %s", a->path,
	    avro_strerror());
	return -1;
}

/* Sets string value F from LEN bytes that need not end in a NUL. */
static int
set_str(avro_value_t *f, const char *s, size_t len)
{
	char	buf[SPOOL_CTYPE_MAX + 1];

	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	if (len > 0)
		memcpy(buf, s, len);
	buf[len] = '\0';
	return avro_value_set_string_len(f, buf, len + 1);
}

static int
fill_envelope(avro_value_t *v, const struct spool_event *ev)
{
	char		 hex[2 * SPOOL_IDLEN + 1];
	avro_value_t	 f[ENV_NFIELDS], b;

	for (size_t i = 0; i < ENV_NFIELDS; i++)
		if (avro_value_get_by_index(v, i, &f[i], NULL) != 0)
			return -1;
	spool_id_hex(ev->id, hex);
	if (set_str(&f[ENV_ID], hex, strlen(hex)) != 0 ||
	    avro_value_set_long(&f[ENV_SEQ], (int64_t)ev->seq) != 0 ||
	    avro_value_set_long(&f[ENV_RECEIVED_AT],
	    (int64_t)ev->received_ms) != 0 ||
	    set_str(&f[ENV_STREAM], ev->stream, ev->stream_len) != 0 ||
	    set_str(&f[ENV_CTYPE], ev->ctype, ev->ctype_len) != 0)
		return -1;
	if (ev->addr_len == 0) {
		if (avro_value_set_branch(&f[ENV_ADDR], 0, &b) != 0 ||
		    avro_value_set_null(&b) != 0)
			return -1;
	} else if (avro_value_set_branch(&f[ENV_ADDR], 1, &b) != 0 ||
	    set_str(&b, ev->addr, ev->addr_len) != 0)
		return -1;
	return avro_value_set_bytes(&f[ENV_BODY], (void *)(uintptr_t)ev->body,
	    ev->body_len);
}

/* Parses and walks JSON against A; fills V unless NULL. */
static int
encode_json(const struct avsc *a, const char *json, size_t jlen,
    avro_value_t *v, char *err, size_t errlen)
{
	struct walk	 w;
	json_error_t	 jerr;
	json_t		*j;
	int		 rc;

	if ((j = json_loadb(json, jlen, JSON_DECODE_ANY | JSON_ALLOW_NUL,
	    &jerr)) == NULL) {
		snprintf(err, errlen, "invalid JSON at line %d, column %d: %s",
		    jerr.line, jerr.column, jerr.text);
		return json_error_code(&jerr) == json_error_out_of_memory ?
		    AVROENC_ERR : AVROENC_EINVAL;
	}
	memset(&w, 0, sizeof(w));
	w.a = a;
	w.err = err;
	w.errlen = errlen;
	rc = put(&w, a->schema, j, v);
	json_decref(j);
	return rc;
}

int
avroenc_value(struct avroenc *ae, const struct spool_event *ev,
    avro_value_t *out, char *err)
{
	struct avsc	*a = (struct avsc *)avsc_find(ae, ev->stream,
			    ev->stream_len);
	int		 rc;

	if (scratch(a, err) == -1)
		return AVROENC_ERR;
	if (a == &ae->env) {
		if (fill_envelope(&a->value, ev) != 0) {
			snprintf(err, AVROENC_ERRMAX, "avro: envelope: %s",
			    avro_strerror());
			return AVROENC_ERR;
		}
	} else if ((rc = encode_json(a, ev->body, ev->body_len, &a->value,
	    err, AVROENC_ERRMAX)) != AVROENC_OK)
		return rc;
	*out = a->value;
	return AVROENC_OK;
}

/*
 * The envelope written by hand.  Its schema is fixed, so its binary form
 * is too: strings and bytes are a zigzag varint length then the bytes,
 * longs zigzag varints, the union its branch index (0 null, 1 string)
 * then the branch.  Filling an avro-c value and walking it twice (size,
 * write) for each event was a third of the Avro file drain's CPU with
 * codec null (200,000 events: 0.20 s of CPU, 0.13 s without).
 * test_avroenc compares this with avro-c's encoding byte for byte.
 *
 * A string field is cut to SPOOL_CTYPE_MAX bytes, as set_str() cuts it
 * for avro-c: events from HTTP cannot have longer ones, the fuzzer's can,
 * and both encodings must agree on them.
 */
static size_t
str_len(size_t len)
{
	return len > SPOOL_CTYPE_MAX ? SPOOL_CTYPE_MAX : len;
}

int
avroenc_is_envelope(const struct avroenc *ae, const char *stream,
    size_t len)
{
	return avsc_find(ae, stream, len) == &ae->env;
}

size_t
avroenc_envelope_size(const struct spool_event *ev)
{
	size_t	n = avrobin_long_size(2 * SPOOL_IDLEN) + 2 * SPOOL_IDLEN, len;

	n += avrobin_long_size((int64_t)ev->seq);
	n += avrobin_long_size((int64_t)ev->received_ms);
	len = str_len(ev->stream_len);
	n += avrobin_long_size((int64_t)len) + len;
	len = str_len(ev->ctype_len);
	n += avrobin_long_size((int64_t)len) + len;
	n += 1;					/* the union's branch */
	if (ev->addr_len > 0) {
		len = str_len(ev->addr_len);
		n += avrobin_long_size((int64_t)len) + len;
	}
	return n + avrobin_long_size((int64_t)ev->body_len) + ev->body_len;
}

void
avroenc_envelope(const struct spool_event *ev, void *buf)
{
	char		 hex[2 * SPOOL_IDLEN + 1];
	unsigned char	*p = buf;

	spool_id_hex(ev->id, hex);
	p = avrobin_put_bytes(p, hex, 2 * SPOOL_IDLEN);
	p = avrobin_put_long(p, (int64_t)ev->seq);
	p = avrobin_put_long(p, (int64_t)ev->received_ms);
	p = avrobin_put_bytes(p, ev->stream, str_len(ev->stream_len));
	p = avrobin_put_bytes(p, ev->ctype, str_len(ev->ctype_len));
	if (ev->addr_len == 0)
		*p++ = 0;			/* branch 0: null */
	else {
		*p++ = 2;			/* branch 1: string */
		p = avrobin_put_bytes(p, ev->addr, str_len(ev->addr_len));
	}
	avrobin_put_bytes(p, ev->body, ev->body_len);
}

int
avroenc_binary(struct avroenc *ae, const struct spool_event *ev, void *buf,
    size_t cap, size_t *len, char *err)
{
	avro_value_t	 v;
	size_t		 size;
	int		 rc;

	if (avroenc_is_envelope(ae, ev->stream, ev->stream_len)) {
		*len = avroenc_envelope_size(ev);
		if (*len > cap)
			return AVROENC_ESPACE;
		avroenc_envelope(ev, buf);
		return AVROENC_OK;
	}
	if ((rc = avroenc_value(ae, ev, &v, err)) != AVROENC_OK)
		return rc;
	if (avro_value_sizeof(&v, &size) != 0) {
		snprintf(err, AVROENC_ERRMAX, "avro: %s", avro_strerror());
		return AVROENC_ERR;
	}
	*len = size;
	if (size > cap)
		return AVROENC_ESPACE;
	/* One writer for every call: no allocation per event. */
	if (ae->wr == NULL)
		ae->wr = avro_writer_memory(buf, (int64_t)cap);
	else
		avro_writer_memory_set_dest(ae->wr, buf, (int64_t)cap);
	if (ae->wr == NULL) {
		snprintf(err, AVROENC_ERRMAX, "avro: out of memory");
		return AVROENC_ERR;
	}
	if (avro_value_write(ae->wr, &v) != 0) {
		snprintf(err, AVROENC_ERRMAX, "avro: %s", avro_strerror());
		return AVROENC_ERR;
	}
	return AVROENC_OK;
}

int
avroenc_check_json(const struct avroenc *ae, const char *stream, size_t len,
    const char *json, size_t jlen, char *err, size_t errlen)
{
	const struct avsc	*a = avsc_find(ae, stream, len);

	if (a == &ae->env)
		return AVROENC_OK;
	return encode_json(a, json, jlen, NULL, err, errlen);
}
