/*
 * prng.h - a small, fast, caller-seeded pseudo-random generator for the pure modules (lb,
 * retry backoff). xoshiro256** (Blackman and Vigna) seeded through splitmix64, written from
 * the published algorithm description.
 *
 * Not cryptographic: it only spreads load. Ownership and threads: a struct prng is plain
 * state owned by whoever embeds it, normally one per worker; no locks, no global state, so
 * two workers never share one. The same seed gives the same sequence, which the unit
 * tests rely on.
 */
#ifndef RINGMESH_PRNG_H
#define RINGMESH_PRNG_H

#include <stdint.h>

struct prng {
    uint64_t s[4]; /* never all zero (prng_seed guarantees it) */
};

static inline uint64_t prng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* One splitmix64 step: advances *x and returns a well-mixed value. Also a good 64-bit
 * finalizer for hashing. */
static inline uint64_t prng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Seeds r from any 64-bit value (0 included). */
static inline void prng_seed(struct prng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = prng_splitmix64(&seed);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

/* The next 64 uniformly distributed bits. */
static inline uint64_t prng_next(struct prng *r)
{
    uint64_t *s = r->s;
    uint64_t out = prng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = prng_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n); 0 when n is 0. Unbiased: Lemire's multiply-and-reject. */
static inline uint64_t prng_below(struct prng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    unsigned __int128 m = (unsigned __int128)prng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t floor = -n % n; /* 2^64 mod n */
        while (lo < floor) {
            m = (unsigned __int128)prng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

#endif
