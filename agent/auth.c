/*
 * auth.c: Bearer tokens for the intake.
 *
 * The tokens file holds hashes, never tokens: one line per token,
 *
 *   SHA256HEX  NAME  [STREAMS]
 *
 * where SHA256HEX is the SHA-256 of the token (`printf %s "$TOKEN" |
 * sha256sum`), NAME labels it in logs, and STREAMS is a comma-separated
 * list of streams the token may write, or "*" (the default) for all.
 * '#' starts a comment.  A presented token is hashed and compared with
 * every entry in constant time (sodium_memcmp, no early exit), so the time
 * taken says nothing about which bytes matched.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent.h"

struct token {
	unsigned char	 hash[crypto_hash_sha256_BYTES];
	char		 name[64];
	char		*streams;	/* NULL = all */
};

struct tokens {
	struct token	*t;
	size_t		 n;
};

size_t
tokens_count(const struct tokens *tk)
{
	return tk != NULL ? tk->n : 0;
}

void
tokens_free(struct tokens *tk)
{
	if (tk == NULL)
		return;
	for (size_t i = 0; i < tk->n; i++)
		free(tk->t[i].streams);
	free(tk->t);
	free(tk);
}

static int
token_parse(struct token *t, char *line, const char *path, int lineno,
    char *err, size_t errlen)
{
	char *hex, *name, *streams, *extra, *save;
	size_t bin;

	hex = strtok_r(line, " \t", &save);
	name = strtok_r(NULL, " \t", &save);
	streams = strtok_r(NULL, " \t", &save);
	extra = strtok_r(NULL, " \t", &save);
	if (name == NULL || extra != NULL) {
		snprintf(err, errlen, "%s:%d: expected SHA256HEX NAME "
		    "[STREAMS]", path, lineno);
		return -1;
	}
	if (strlen(hex) != 64 || sodium_hex2bin(t->hash, sizeof(t->hash),
	    hex, 64, NULL, &bin, NULL) != 0 || bin != sizeof(t->hash)) {
		snprintf(err, errlen, "%s:%d: '%.20s' is not a SHA-256 in hex "
		    "(64 characters; the file holds hashes, not tokens)",
		    path, lineno, hex);
		return -1;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->streams = NULL;
	if (streams && strcmp(streams, "*") != 0 &&
	    (t->streams = strdup(streams)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	return 0;
}

struct tokens *
tokens_load(const char *path, char *err, size_t errlen)
{
	struct tokens *tk;
	FILE *fp;
	char *line = NULL, *p;
	size_t cap = 0, alloc = 0;
	int lineno = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "tokens file %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	if ((tk = calloc(1, sizeof(*tk))) == NULL)
		goto oom;
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		p = line + strspn(line, " \t");
		if (*p == '\0')
			continue;
		if (tk->n == alloc) {
			struct token *nt;

			alloc = alloc ? alloc * 2 : 8;
			if ((nt = realloc(tk->t, alloc * sizeof(*nt))) == NULL)
				goto oom;
			tk->t = nt;
		}
		if (token_parse(&tk->t[tk->n], p, path, lineno, err,
		    errlen) != 0)
			goto fail;
		tk->n++;
	}
	free(line);
	fclose(fp);
	return tk;
oom:
	snprintf(err, errlen, "tokens file %s: out of memory", path);
fail:
	free(line);
	fclose(fp);
	tokens_free(tk);
	return NULL;
}

static int
stream_allowed(const char *list, const char *stream, size_t len)
{
	for (const char *p = list; *p; ) {
		size_t l = strcspn(p, ",");

		if (l == len && memcmp(p, stream, len) == 0)
			return 1;
		p += l;
		if (*p == ',')
			p++;
	}
	return 0;
}

enum auth_result
tokens_check(const struct tokens *tk, const char *authz, const char *stream,
    size_t stream_len)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	const struct token *match = NULL;
	size_t n;

	if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
		return AUTH_MISSING;
	authz += 7;
	authz += strspn(authz, " \t");
	/* Whitespace around a header value is not part of it (RFC 9110). */
	for (n = strlen(authz); n > 0 && (authz[n - 1] == ' ' ||
	    authz[n - 1] == '\t'); n--)
		;
	if (n == 0)
		return AUTH_MISSING;
	crypto_hash_sha256(h, (const unsigned char *)authz, n);
	for (size_t i = 0; i < tk->n; i++)
		if (sodium_memcmp(h, tk->t[i].hash, sizeof(h)) == 0 &&
		    match == NULL)
			match = &tk->t[i];
	if (match == NULL)
		return AUTH_BAD;
	if (match->streams && !stream_allowed(match->streams, stream,
	    stream_len))
		return AUTH_FORBIDDEN;
	return AUTH_OK;
}
