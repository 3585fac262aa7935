/*
 * fuzz_tokens.c: libFuzzer target for the Bearer tokens file and the
 * Authorization check (agent/auth.c).
 *
 * Input: a tokens file, then optionally a NUL, an Authorization header
 * value, a NUL and a stream name.  So that the fuzzer can write entries
 * that match a token, a line whose first word is "=TOKEN" gets, in place
 * of that word, the SHA-256 hex of TOKEN before the file is loaded (from
 * a memfd, by its /proc/self/fd path, as the agent loads its file).
 *
 * The oracle is a second reading of the same file, written the plain way
 * from the format auth.c documents: tokens_load() must succeed exactly
 * when every line is a comment, blank, or "SHA256HEX NAME [STREAMS]", and
 * tokens_check() must give the verdict that reading gives.
 */
#include <sys/mman.h>

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(e)	do { if (!(e)) { fprintf(stderr, "fuzz_tokens: %s:%d: " \
	"%s\n", __FILE__, __LINE__, #e); abort(); } } while (0)
#define MAXENT	256

struct entry {
	unsigned char	 hash[crypto_hash_sha256_BYTES];
	char		*streams;	/* NULL: all */
};

static int fd = -1;
static char path[64];

/*
 * The file as written to disk: "=TOKEN" words replaced by their hash.  IN
 * holds no NUL in its LEN bytes and has one after them.
 */
static char *
expand(const char *in, size_t len, size_t *outlen)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char *out = malloc(len * 64 + 1), *o = out;
	const char *p = in, *end = in + len, *nl, *w;
	size_t n;

	CHECK(out != NULL);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl ? nl + 1 : end;
		w = p + strspn(p, " \t");
		if (w < nl && *w == '=') {
			memcpy(o, p, (size_t)(w - p));
			o += w - p;
			n = strcspn(w + 1, " \t\r\n#");
			if (w + 1 + n > nl)
				n = (size_t)(nl - w - 1);
			crypto_hash_sha256(h, (const unsigned char *)w + 1, n);
			sodium_bin2hex(o, 65, h, sizeof(h));
			o += 64;
			p = w + 1 + n;
		}
		memcpy(o, p, (size_t)(nl - p));
		o += nl - p;
		p = nl;
	}
	*o = '\0';
	*outlen = (size_t)(o - out);
	return out;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The plain reading: the entries, or -1 where tokens_load() must fail. */
static int
oracle_load(char *text, struct entry *e, size_t *n)
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	char *line, *save, *next, *w[4];
	size_t k;

	*n = 0;
	for (line = text; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		line[strcspn(line, "#")] = '\0';
		line[strcspn(line, "\r")] = '\0';
		w[0] = strtok_r(line, " \t", &save);
		for (k = 1; k < 4; k++)
			w[k] = strtok_r(NULL, " \t", &save);
		if (w[0] == NULL)
			continue;
		if (w[1] == NULL || w[3] != NULL || strlen(w[0]) != 64)
			return -1;
		for (k = 0; k < 32; k++) {
			int hi = hexval((unsigned char)w[0][2 * k]);
			int lo = hexval((unsigned char)w[0][2 * k + 1]);

			if (hi < 0 || lo < 0)
				return -1;
			hash[k] = (unsigned char)(hi << 4 | lo);
		}
		if (*n == MAXENT)
			continue;	/* too many to check: only parsed */
		memcpy(e[*n].hash, hash, sizeof(hash));
		e[(*n)++].streams = w[2] != NULL && strcmp(w[2], "*") != 0 ?
		    w[2] : NULL;
	}
	return 0;
}

static enum auth_result
oracle_check(const struct entry *e, size_t n, const char *authz,
    const char *stream)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	const char *p;
	size_t i, l, slen = strlen(stream);

	if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
		return AUTH_MISSING;
	/* The token: spaces and tabs around it are not part of it. */
	for (authz += 7; *authz == ' ' || *authz == '\t'; authz++)
		;
	l = strlen(authz);
	while (l > 0 && strchr(" \t", authz[l - 1]) != NULL)
		l--;
	if (l == 0)
		return AUTH_MISSING;
	crypto_hash_sha256(h, (const unsigned char *)authz, l);
	for (i = 0; i < n && memcmp(h, e[i].hash, sizeof(h)) != 0; i++)
		;
	if (i == n)
		return AUTH_BAD;
	if (e[i].streams == NULL)
		return AUTH_OK;
	for (p = e[i].streams; ; p += l + 1) {
		l = strcspn(p, ",");
		if (l == slen && memcmp(p, stream, l) == 0)
			return AUTH_OK;
		if (p[l] == '\0')
			return AUTH_FORBIDDEN;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct entry ents[MAXENT];
	const uint8_t *nul = memchr(data, '\0', size);
	size_t flen = nul ? (size_t)(nul - data) : size, tlen, n;
	char *text, *copy, *authz = NULL, *stream = NULL, err[512];
	struct tokens *tk;
	int want;

	if (fd == -1) {
		if ((fd = memfd_create("tokens", 0)) == -1)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	CHECK((copy = strndup((const char *)data, flen)) != NULL);
	text = expand(copy, flen, &tlen);
	free(copy);
	if (ftruncate(fd, 0) == -1 ||
	    (tlen > 0 && pwrite(fd, text, tlen, 0) != (ssize_t)tlen))
		abort();
	if (nul != NULL) {
		const uint8_t *a = nul + 1, *end = data + size, *nul2;

		nul2 = memchr(a, '\0', (size_t)(end - a));
		authz = strndup((const char *)a, (size_t)((nul2 ? nul2 : end) -
		    a));
		stream = strndup(nul2 ? (const char *)nul2 + 1 : "", nul2 ?
		    (size_t)(end - nul2 - 1) : 0);
		CHECK(authz != NULL && stream != NULL);
		/* http.c checks the name first: never an empty one. */
		if (*stream == '\0') {
			free(stream);
			stream = NULL;
		}
	}
	err[0] = '\0';
	tk = tokens_load(path, err, sizeof(err));
	CHECK((copy = strdup(text)) != NULL);
	want = oracle_load(copy, ents, &n);
	CHECK((tk != NULL) == (want == 0));
	CHECK(tk != NULL || strncmp(err, path, strlen(path)) == 0 ||
	    strncmp(err, "tokens file ", 12) == 0);
	if (tk != NULL && n < MAXENT) {
		/* Without a header part: no header, and the header "Bearer ". */
		CHECK(tokens_check(tk, authz, stream ? stream : "s",
		    stream ? strlen(stream) : 1) == oracle_check(ents, n, authz,
		    stream ? stream : "s"));
		CHECK(tokens_check(tk, "Bearer ", "s", 1) == AUTH_MISSING);
	}
	tokens_free(tk);
	free(copy);
	free(text);
	free(authz);
	free(stream);
	return 0;
}
