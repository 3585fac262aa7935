/*
 * spool-crash: the writer half of the spool crash test
 * (tests/integration/020-spool-crash.sh).
 *
 *   spool-crash -d DIR -l LOG -r ROUND
 *
 * Appends batches of 1 to 50 events to the spool in DIR, forever, until it
 * is killed.  Keys are "ROUND-BATCH-I", unique, except that some batches
 * repeat a key of the batch before (which must come back as a duplicate).
 * Only after spool_append() has returned does it append one line per event,
 * "KEY SEQ DUP", to LOG with a single write(2): a line in LOG is a promise
 * the spool must keep after any kill.  A kill can cut that write short
 * (between two pages of it): each run starts with a newline, so that a
 * torn line stands alone instead of gluing itself to the next run's first
 * line ("15-" + "16-0-0 39446 0" read as key "15-16-0-0").
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"

#define BATCH_MAX	50

int
main(int argc, char **argv)
{
	struct spool_options opt = { .max_size = 256ull << 20,
	    .dedup_window_ms = 3600 * 1000, .create = 1 };
	struct spool_event ev[BATCH_MAX];
	char keys[BATCH_MAX][48], body[BATCH_MAX][96], err[SPOOL_ERRMAX];
	char line[BATCH_MAX * 80];
	const char *log = NULL, *round = "0";
	struct spool *sp;
	int dup[BATCH_MAX], fd, c, r;
	unsigned long batch = 0;

	while ((c = getopt(argc, argv, "d:l:r:")) != -1) {
		switch (c) {
		case 'd': opt.dir = optarg; break;
		case 'l': log = optarg; break;
		case 'r': round = optarg; break;
		default:
			fprintf(stderr, "usage: spool-crash -d DIR -l LOG "
			    "-r ROUND\n");
			return 64;
		}
	}
	if (opt.dir == NULL || log == NULL) {
		fprintf(stderr, "usage: spool-crash -d DIR -l LOG -r ROUND\n");
		return 64;
	}
	if ((fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644)) == -1 ||
	    write(fd, "\n", 1) != 1) {
		perror(log);
		return 1;
	}
	if ((r = spool_open(&sp, &opt, err)) != SPOOL_OK) {
		fprintf(stderr, "spool-crash: %s\n", err);
		return 1;
	}
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	for (;; batch++) {
		size_t n = 1 + (size_t)rand() % BATCH_MAX, len = 0;
		int repeat = batch > 0 && rand() % 4 == 0;

		for (size_t i = 0; i < n; i++) {
			if (repeat && i == 0)
				snprintf(keys[i], sizeof(keys[i]), "%s-%lu-0",
				    round, batch - 1);
			else
				snprintf(keys[i], sizeof(keys[i]),
				    "%s-%lu-%zu", round, batch, i);
			snprintf(body[i], sizeof(body[i]),
			    "{\"key\":\"%s\",\"pad\":\"%0*d\"}", keys[i],
			    rand() % 40, 0);
			memset(&ev[i], 0, sizeof(ev[i]));
			ev[i].stream = "crash";
			ev[i].stream_len = 5;
			ev[i].ikey = keys[i];
			ev[i].ikey_len = strlen(keys[i]);
			ev[i].body = body[i];
			ev[i].body_len = strlen(body[i]);
			ev[i].received_ms = (uint64_t)time(NULL) * 1000;
		}
		r = spool_append(sp, ev, n, ev[0].received_ms, dup, err);
		if (r != SPOOL_OK) {
			fprintf(stderr, "spool-crash: %s\n", err);
			return 1;
		}
		for (size_t i = 0; i < n; i++)
			len += (size_t)snprintf(line + len, sizeof(line) - len,
			    "%s %llu %d\n", keys[i],
			    (unsigned long long)ev[i].seq, dup[i]);
		if (write(fd, line, len) != (ssize_t)len) {
			perror(log);
			return 1;
		}
	}
}
