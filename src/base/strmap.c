/* strmap.c - the one string map of libcfx: WordNet's lemmas and exceptions, the concept
 * vocabulary and ONNX's tensor names all look strings up through it. Open addressing, linear
 * probing, grown by doubling at half load so that a probe sequence stays short. */
#include "base/strmap.h"

uint64_t cfx__strmap_hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The slot of the len bytes at s: where it is, or the empty slot where it would go. */
static size_t probe(const cfx__strmap *m, const char *s, size_t len) {
    size_t mask = m->cap - 1;
    size_t i = cfx__strmap_hash(s, len) & mask;
    for (;; i = (i + 1) & mask) {
        const char *k = m->keys[i];
        if (!k || (strncmp(k, s, len) == 0 && k[len] == '\0')) return i;
    }
}

static cfx_status rehash(cfx__strmap *m, size_t cap) {
    cfx__strmap t = {cfx_calloc(cap, sizeof *t.keys), cfx_calloc(cap, sizeof *t.vals), cap, m->n};
    if (!t.keys || !t.vals) {
        cfx_free((void *)t.keys);
        cfx_free(t.vals);
        return cfx_set_error(CFX_ENOMEM, "string map: out of memory for %zu slots", cap);
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = probe(&t, m->keys[i], strlen(m->keys[i]));
        t.keys[j] = m->keys[i];
        t.vals[j] = m->vals[i];
    }
    cfx__strmap_deinit(m);
    *m = t;
    return CFX_OK;
}

cfx_status cfx__strmap_reserve(cfx__strmap *m, size_t n) {
    size_t cap = m->cap ? m->cap : 16;
    while (cap < 2 * n) cap *= 2;
    return cap == m->cap ? CFX_OK : rehash(m, cap);
}

int32_t cfx__strmap_get(const cfx__strmap *m, const char *s, size_t len) {
    if (!m->cap) return -1;
    size_t i = probe(m, s, len);
    return m->keys[i] ? m->vals[i] : -1;
}

cfx_status cfx__strmap_put(cfx__strmap *m, const char *key, int32_t val) {
    size_t len = strlen(key);
    if (m->cap) {
        size_t i = probe(m, key, len);
        if (m->keys[i]) {
            m->vals[i] = val;
            return CFX_OK;
        }
    }
    CFX_TRY(cfx__strmap_reserve(m, m->n + 1));
    size_t i = probe(m, key, len);
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return CFX_OK;
}

void cfx__strmap_deinit(cfx__strmap *m) {
    cfx_free((void *)m->keys);
    cfx_free(m->vals);
    m->keys = NULL, m->vals = NULL, m->cap = 0, m->n = 0;
}
