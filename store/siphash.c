/* siphash.c: SipHash-2-4 (Aumasson and Bernstein, 2012), streamed. */
#include "store/siphash.h"

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static void round_of(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl(v[1], 13) ^ v[0];
	v[0] = rotl(v[0], 32);
	v[2] += v[3];
	v[3] = rotl(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = rotl(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = rotl(v[1], 17) ^ v[2];
	v[2] = rotl(v[2], 32);
}

static void word(struct siphash *h, uint64_t m)
{
	h->v[3] ^= m;
	round_of(h->v);
	round_of(h->v);
	h->v[0] ^= m;
}

void siphash_start(struct siphash *h, const uint64_t key[2])
{
	h->v[0] = key[0] ^ 0x736f6d6570736575ULL;
	h->v[1] = key[1] ^ 0x646f72616e646f6dULL;
	h->v[2] = key[0] ^ 0x6c7967656e657261ULL;
	h->v[3] = key[1] ^ 0x7465646279746573ULL;
	h->tail = 0;
	h->length = 0;
}

void siphash_add(struct siphash *h, const void *buf, size_t n)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < n; i++) {
		h->tail |= (uint64_t)p[i] << (8 * (h->length % 8));
		if (++h->length % 8 == 0) {
			word(h, h->tail);
			h->tail = 0;
		}
	}
}

uint64_t siphash_end(struct siphash *h)
{
	word(h, h->tail | h->length << 56);
	h->v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		round_of(h->v);
	return h->v[0] ^ h->v[1] ^ h->v[2] ^ h->v[3];
}
