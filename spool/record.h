/*
 * record.h: the event record codec, private to the spool library.
 *
 * Record format 1, all integers big-endian:
 *
 *   0  u8   version (1)
 *   1  u8   flags: bit 0 = encrypted
 *   plaintext (flags bit 0 clear), from byte 2:
 *   2  16   id (the dedup fingerprint)
 *  18  u64  received_ms
 *  26  u16  stream_len, u16 ctype_len, u16 ikey_len, u16 addr_len
 *  34  u32  body_len
 *  38  stream, ctype, ikey, addr, body
 *   encrypted (flags bit 0 set), from byte 2:
 *   2  24   nonce
 *  26  ...  XChaCha20-Poly1305 of plaintext bytes 2.. (16-byte tag last),
 *           with the record's seq (u64 BE) and bytes 0..1 as associated
 *           data, so a record moved to another seq fails to decrypt.
 */
#ifndef FERRY_RECORD_H
#define FERRY_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

#define RECORD_VERSION		1
#define RECORD_F_ENCRYPTED	0x01
#define RECORD_HDR		38	/* plaintext header size */
#define RECORD_NONCE		24
#define RECORD_TAG		16
#define RECORD_ENC_OVERHEAD	(RECORD_NONCE + RECORD_TAG)

/* Bytes record_encode() writes for EV (with KEY set: encrypted). */
size_t	record_size(const struct spool_event *ev, int encrypted);

/*
 * Encodes EV (seq set) into BUF of at least record_size() bytes, encrypted
 * when KEY is not NULL.  Returns the size written.
 */
size_t	record_encode(const struct spool_event *ev, const unsigned char *key,
	    unsigned char *buf);

/*
 * Decodes REC of LEN bytes stored under SEQ into EV, whose pointers then
 * refer to REC or, for an encrypted record, to *SCRATCH (grown with realloc
 * as needed; the caller frees it).  Returns SPOOL_OK, SPOOL_CORRUPT with a
 * reason in ERR (truncated, bad lengths, unknown version, failed
 * authentication), or SPOOL_EKEY for an encrypted record without a key.
 */
int	record_decode(const void *rec, size_t len, uint64_t seq,
	    const unsigned char *key, struct spool_event *ev,
	    unsigned char **scratch, size_t *scratch_cap, char *err);

/* Validates the field lengths and the stream name of EV. */
int	record_check_event(const struct spool_event *ev, char *err);

void	record_put64(unsigned char *p, uint64_t v);
uint64_t record_get64(const unsigned char *p);

#endif
