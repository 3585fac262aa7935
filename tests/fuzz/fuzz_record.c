/*
 * fuzz_record.c: libFuzzer target for the spool's record decoder
 * (spool/record.c): what a damaged data.mdb can hand it.  The first byte
 * says whether a key is configured; the rest is the record.  A record that
 * decodes must have every field inside the input (ASan checks the reads)
 * and must encode back to the same bytes when it is plaintext.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[SPOOL_KEYLEN] = { 7 };
	struct spool_event ev;
	unsigned char *scratch = NULL, *back;
	size_t cap = 0, n;
	char err[SPOOL_ERRMAX];
	int rc;

	if (size < 1)
		return 0;
	rc = record_decode(data + 1, size - 1, 42, (data[0] & 1) ? key : NULL,
	    &ev, &scratch, &cap, err);
	/* data[1] is the record's version byte, data[2] its flags. */
	if (rc == SPOOL_OK && !(data[2] & RECORD_F_ENCRYPTED)) {
		n = record_size(&ev, 0);
		if (n != size - 1 || (back = malloc(n)) == NULL)
			abort();
		record_encode(&ev, NULL, back);
		if (memcmp(back, data + 1, n) != 0)
			abort();
		free(back);
	}
	free(scratch);
	return 0;
}
