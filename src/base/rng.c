/* rng.c - seeded random numbers: xoshiro256** (Blackman and Vigna) seeded by splitmix64.
 * Every random choice in cfx goes through a cfx_rng so that a seed reproduces a run. */
#include "base/base.h"

#include <math.h>

__extension__ typedef unsigned __int128 u128;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void cfx_rng_init(cfx_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t cfx_rng_u64(cfx_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cfx_rng_uniform(cfx_rng *r) {
    return (double)(cfx_rng_u64(r) >> 11) * 0x1.0p-53;
}

/* Lemire's multiply-and-reject: unbiased without a division in the common case. */
uint64_t cfx_rng_below(cfx_rng *r, uint64_t n) {
    CFX_ASSERT(n > 0);
    u128 m = (u128)cfx_rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = -n % n;
        while (lo < t) {
            m = (u128)cfx_rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* Box-Muller without a cached spare, so the stream position does not hide state. */
double cfx_rng_normal(cfx_rng *r) {
    double u1 = 1.0 - cfx_rng_uniform(r); /* (0, 1]: log stays finite */
    double u2 = cfx_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void cfx_rng_shuffle(cfx_rng *r, int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)cfx_rng_below(r, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void cfx_rng_split(const cfx_rng *r, uint64_t i, cfx_rng *out) {
    uint64_t x = r->s[0] ^ rotl(r->s[1], 13) ^ rotl(r->s[2], 29) ^ rotl(r->s[3], 43);
    x ^= splitmix64(&i);
    cfx_rng_init(out, x);
}
