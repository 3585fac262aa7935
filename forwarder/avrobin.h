/*
 * avrobin.h: Avro's binary encoding of the primitives ferry writes itself
 * (avroblk.c: container headers and block framing; avroenc.c: the
 * envelope).  A long is a zigzag varint; bytes and strings are that of
 * their length, then the bytes.
 */
#ifndef FERRY_AVROBIN_H
#define FERRY_AVROBIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Bytes of the varint of N. */
static inline size_t
avrobin_long_size(int64_t n)
{
	uint64_t	z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
	size_t		len = 1;

	while (z > 0x7f) {
		z >>= 7;
		len++;
	}
	return len;
}

/* Writes the varint of N at P; returns the end. */
static inline unsigned char *
avrobin_put_long(unsigned char *p, int64_t n)
{
	uint64_t	z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);

	while (z > 0x7f) {
		*p++ = (unsigned char)(z & 0x7f) | 0x80;
		z >>= 7;
	}
	*p++ = (unsigned char)z;
	return p;
}

/* Writes LEN bytes from B, length first, at P; returns the end. */
static inline unsigned char *
avrobin_put_bytes(unsigned char *p, const void *b, size_t len)
{
	p = avrobin_put_long(p, (int64_t)len);
	if (len > 0)
		memcpy(p, b, len);
	return p + len;
}

#endif
