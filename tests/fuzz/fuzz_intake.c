/*
 * fuzz_intake.c: libFuzzer target for the intake decoder (agent/intake.c),
 * everything a client controls in a POST body.  The first byte picks the
 * content type, the encoding and whether json_key is set; the rest is the
 * body.  Any crash, leak or sanitizer report is a bug; so is a success that
 * breaks the batch's own invariants (checked below).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ctypes[] = { "application/json",
	    "application/x-ndjson", "text/plain", NULL };
	struct intake_limits lim;
	struct intake_batch b;
	char err[512];
	size_t total = 0;
	int rc;

	if (size < 1)
		return 0;
	memset(&lim, 0, sizeof(lim));
	lim.max_body = 64 << 10;
	lim.max_events = 100;
	lim.json_key = (data[0] & 0x10) ? "id" : NULL;
	lim.allow_opaque = (data[0] & 0x20) != 0;
	memset(&b, 0, sizeof(b));
	rc = intake_decode(&lim, ctypes[data[0] & 3],
	    (data[0] & 0x40) ? "gzip" : NULL,
	    (data[0] & 0x80) ? "key-1" : NULL, data + 1, size - 1, &b, err,
	    sizeof(err));
	if (rc == 0) {
		if (b.n == 0 || b.n > lim.max_events)
			abort();
		for (size_t i = 0; i < b.n; i++) {
			total += b.evs[i].body_len;
			if (b.evs[i].ikey_len > SPOOL_IKEY_MAX)
				abort();
		}
		if (total != b.bytes || total > lim.max_body)
			abort();
	} else if (b.n != 0 || err[0] == '\0')
		abort();
	intake_batch_free(&b);
	return 0;
}
