/* fuzz_wordnet.c - libFuzzer target for WordNet's binary cache (src/concepts/wordnet.c), the
 * file cfx_wordnet_load maps and uses in place: the input is a cache file. The key (bytes 8-15)
 * and the checksum (the last 8 bytes) are first set to what the reader expects, so that
 * mutations reach the checks of the tables behind them; a cache that is accepted is then used:
 * lookups, names, parents, concept paths and distances. Seeds: the cache of a small WordNet
 * (fuzz/tiny_wordnet.py). */
#include "fuzz.h"

#include "concepts/concepts.h"

#define KEY 0x5eed5eedull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    uint8_t *b = malloc(size + 1);
    if (!b) abort();
    memcpy(b, data, size);
    uint64_t key = KEY;
    if (size >= 16) memcpy(b + 8, &key, sizeof key);
    if (size >= 16 && (size - 8) % 32 == 0) {
        uint64_t sum = cfx__wordnet_cache_checksum(b, size - 8);
        memcpy(b + size - 8, &sum, sizeof sum);
    }
    const char *path = fuzz_write(0, "wordnet.bin", b, size);
    free(b);
    cfx_wordnet *wn = cfx__wordnet_cache_open(path, KEY);
    if (!wn) return 0;
    int32_t n = cfx_wordnet_count(wn), s, p[64];
    int32_t *dist = malloc((size_t)n * sizeof *dist + 1);
    if (!dist) abort();
    static const char *const words[] = {"dog",    "dogs",        "chair",
                                        "entity", "person.n.01", "zzz.n.01"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (cfx_wordnet_lookup(wn, words[k], &s) == CFX_OK) {
            (void)cfx_wordnet_concept_path(wn, s, p, 64);
            (void)cfx_wordnet_distances(wn, s, dist);
        }
    for (int32_t i = 0; i < n && i < 64; i++) {
        const int32_t *par;
        if (!cfx_wordnet_name(wn, i)) abort();
        (void)cfx_wordnet_depth(wn, i);
        (void)cfx_wordnet_parents(wn, i, &par);
        (void)cfx_wordnet_concept_path(wn, i, p, 64);
    }
    free(dist);
    cfx_wordnet_free(wn);
    return 0;
}
