/*
 * spool-put.c: a test helper that fills a spool without ferry-agent.
 *
 *   spool-put -d DIR [-k KEYFILE] [-s STREAM] [-c CTYPE] [-a ADDR]
 *       [-m MAX_SIZE] [-w WINDOW_MS] [-t NOW_MS] [-i IKEY] [-b N]
 *       [-D SINK:SEQ:REASON]...
 *
 * Reads one body per line from stdin (the newline is not part of it, any
 * other byte is, NUL included) and appends them all in ONE spool_append()
 * call, or in batches of N with -b.  Prints "seq dup" for each event.
 * -D adds a dead letter for event SEQ instead (stdin is not read).
 * Creates the spool if needed.  Exit 2 with the library's message on
 * failure ("full" for SPOOL_FULL), 64 for a usage error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "spool.h"

struct put {
	struct spool		*sp;
	struct spool_event	*evs;
	char			**lines;
	size_t			 n, cap;
	size_t			 batch;
	uint64_t		 now;
	const char		*stream, *ctype, *addr, *ikey;
	char			 err[SPOOL_ERRMAX];
};

static void
usage(void)
{
	fprintf(stderr, "usage: spool-put -d DIR [-k KEYFILE] [-s STREAM] "
	    "[-c CTYPE] [-a ADDR] [-m MAX_SIZE]\n"
	    "           [-w WINDOW_MS] [-t NOW_MS] [-i IKEY] [-b N] "
	    "[-D SINK:SEQ:REASON]... [-C SINK:SEQ] < bodies\n");
	exit(64);
}

static int
fail(struct put *p, int rc)
{
	if (rc == SPOOL_FULL)
		fprintf(stderr, "spool-put: full: %s\n", p->err);
	else
		fprintf(stderr, "spool-put: %s\n", p->err);
	return 2;
}

static uint64_t
num(const char *s)
{
	char			*end;
	unsigned long long	 v = strtoull(s, &end, 10);

	if (*s == '\0' || *end != '\0')
		usage();
	return v;
}

static void
read_lines(struct put *p)
{
	char	*line = NULL;
	size_t	 sz = 0;
	ssize_t	 len;

	while ((len = getline(&line, &sz, stdin)) != -1) {
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (p->n == p->cap) {
			p->cap = p->cap ? 2 * p->cap : 64;
			p->evs = realloc(p->evs, p->cap * sizeof(*p->evs));
			p->lines = realloc(p->lines, p->cap * sizeof(char *));
			if (p->evs == NULL || p->lines == NULL)
				exit(2);
		}
		memset(&p->evs[p->n], 0, sizeof(p->evs[p->n]));
		p->lines[p->n] = line;
		p->evs[p->n].body = line;
		p->evs[p->n].body_len = (size_t)len;
		p->n++;
		line = NULL;
		sz = 0;
	}
	free(line);
}

static int
put_all(struct put *p)
{
	struct spool_event	*ev;
	size_t			 i, j, k;
	int			*dup, rc;

	if ((dup = calloc(p->n ? p->n : 1, sizeof(int))) == NULL)
		return 2;
	for (i = 0; i < p->n; i++) {
		ev = &p->evs[i];
		ev->received_ms = p->now;
		ev->stream = p->stream;
		ev->stream_len = strlen(p->stream);
		ev->ctype = p->ctype;
		ev->ctype_len = p->ctype ? strlen(p->ctype) : 0;
		ev->addr = p->addr;
		ev->addr_len = p->addr ? strlen(p->addr) : 0;
		ev->ikey = p->ikey;
		ev->ikey_len = p->ikey ? strlen(p->ikey) : 0;
	}
	for (i = 0; i < p->n; i += k) {
		k = p->batch && p->n - i > p->batch ? p->batch : p->n - i;
		if ((rc = spool_append(p->sp, p->evs + i, k, p->now, dup + i,
		    p->err)) != SPOOL_OK) {
			free(dup);
			return fail(p, rc);
		}
		for (j = i; j < i + k; j++)
			printf("%" PRIu64 " %d\n", p->evs[j].seq, dup[j]);
	}
	free(dup);
	return 0;
}

static int
dead_add(struct put *p, char *spec)
{
	char	*seq, *reason;
	int	 rc;

	if ((seq = strchr(spec, ':')) == NULL ||
	    (reason = strchr(seq + 1, ':')) == NULL)
		usage();
	*seq++ = '\0';
	*reason++ = '\0';
	if ((rc = spool_dead_add(p->sp, spec, num(seq), reason, p->now,
	    p->err)) != SPOOL_OK)
		return fail(p, rc);
	return 0;
}

int
main(int argc, char *argv[])
{
	struct spool_options	 opt;
	struct put		 p;
	struct timespec		 ts;
	unsigned char		 key[SPOOL_KEYLEN];
	char			*dead[16], *cursor = NULL;
	const char		*why;
	size_t			 i, ndead = 0;
	int			 ch, rc = 0;

	memset(&opt, 0, sizeof(opt));
	memset(&p, 0, sizeof(p));
	opt.max_size = 64u << 20;
	opt.dedup_window_ms = 24 * 3600 * 1000;
	opt.create = 1;
	p.stream = "test";
	p.ctype = "application/json";
	clock_gettime(CLOCK_REALTIME, &ts);
	p.now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	while ((ch = getopt(argc, argv, "a:b:C:c:D:d:i:k:m:s:t:w:")) != -1) {
		switch (ch) {
		case 'a': p.addr = optarg; break;
		case 'b': p.batch = num(optarg); break;
		case 'c': p.ctype = *optarg ? optarg : NULL; break;
		case 'D':
			if (ndead == sizeof(dead) / sizeof(dead[0]))
				usage();
			dead[ndead++] = optarg;
			break;
		case 'C':
			cursor = optarg;
			break;
		case 'd': opt.dir = optarg; break;
		case 'i': p.ikey = optarg; break;
		case 'k':
			if (conf_read_key(optarg, key, p.err,
			    sizeof(p.err)) == -1) {
				fprintf(stderr, "spool-put: %s\n", p.err);
				return 2;
			}
			opt.key = key;
			break;
		case 'm':
			if (conf_parse_size(optarg, &opt.max_size, &why) == -1)
				usage();
			break;
		case 's': p.stream = optarg; break;
		case 't': p.now = num(optarg); break;
		case 'w': opt.dedup_window_ms = num(optarg); break;
		default: usage();
		}
	}
	if (opt.dir == NULL || optind != argc)
		usage();
	if ((rc = spool_open(&p.sp, &opt, p.err)) != SPOOL_OK)
		return fail(&p, rc);
	if (cursor != NULL) {
		/* -C SINK:SEQ: a cursor as of -t NOW_MS (to age it). */
		char *colon = strchr(cursor, ':');

		if (colon == NULL)
			usage();
		*colon = '\0';
		if ((rc = spool_cursor_set(p.sp, cursor, num(colon + 1), p.now,
		    p.err)) != SPOOL_OK)
			rc = fail(&p, rc);
	} else if (ndead > 0) {
		for (i = 0, rc = 0; i < ndead && rc == 0; i++)
			rc = dead_add(&p, dead[i]);
	} else {
		read_lines(&p);
		rc = put_all(&p);
	}
	spool_close(p.sp);
	for (i = 0; i < p.n; i++)
		free(p.lines[i]);
	free(p.lines);
	free(p.evs);
	return rc;
}
