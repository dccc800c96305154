/* strmap.h - a map from strings to int32 values (src/base/strmap.c); not part of the public API.
 *
 * Open addressing with linear probing over FNV-1a hashes, at most half full. Keys are
 * borrowed: the caller keeps each key's bytes alive (and unchanged) while the map holds it,
 * typically in a pool or an array of its own copies. Lookups take a length, so a key can be
 * looked up in place inside a longer text. */
#ifndef CFX_BASE_STRMAP_H
#define CFX_BASE_STRMAP_H

#include "base/base.h"

typedef struct cfx__strmap {
    const char **keys; /* (cap) borrowed keys, NULL for an empty slot */
    int32_t *vals;     /* (cap) */
    size_t cap, n;     /* cap is 0 or a power of two */
} cfx__strmap;

/* FNV-1a over len bytes: fast and well mixed for short keys. */
uint64_t cfx__strmap_hash(const char *s, size_t len);
/* Room for n keys without growing. A zeroed struct is an empty map; reserve is optional. */
cfx_status cfx__strmap_reserve(cfx__strmap *m, size_t n);
/* The value of the len bytes at s (not necessarily NUL-terminated), or -1 when absent. */
int32_t cfx__strmap_get(const cfx__strmap *m, const char *s, size_t len);
/* Sets key's value, adding key when absent (growing the table; CFX_ENOMEM on failure). */
cfx_status cfx__strmap_put(cfx__strmap *m, const char *key, int32_t val);
/* Frees the table (not the keys) and leaves an empty map. */
void cfx__strmap_deinit(cfx__strmap *m);

#endif
