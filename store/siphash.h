/* siphash.h: SipHash-2-4, a keyed 64-bit hash of a stream of octets, for
   telling whether two runs of octets are the same without keeping them
   (maildrop.c: a marked message at QUIT). */
#ifndef MYSMTP_SIPHASH_H
#define MYSMTP_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct siphash {
	uint64_t v[4];
	uint64_t tail;		/* octets not yet a whole word, little-endian */
	uint64_t length;	/* octets added in all */
};

void siphash_start(struct siphash *h, const uint64_t key[2]);
void siphash_add(struct siphash *h, const void *buf, size_t n);
uint64_t siphash_end(struct siphash *h);

#endif
