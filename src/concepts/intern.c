/* intern.c - interned strings for the concepts layer: the vocabulary's concept names and words
 * and a dataset's labels each become a dense index, in the order they were first seen.
 *
 * An array of owned copies gives index -> string; the shared string map of base (cfx__strmap)
 * gives string -> index, borrowing the copies as its keys, so each string is stored once. */
#include "concepts/concepts.h"

int32_t cfx__intern_find(const cfx__intern *t, const char *s) {
    return cfx__strmap_get(&t->map, s, strlen(s));
}

int32_t cfx__intern_add(cfx__intern *t, const char *s) {
    int32_t k = cfx__intern_find(t, s);
    if (k >= 0) return k;
    if (t->n == t->cap) {
        int32_t cap = t->cap ? 2 * t->cap : 64;
        char **str = cfx_realloc(t->str, (size_t)cap * sizeof *str);
        if (!str) return -1;
        t->str = str;
        t->cap = cap;
    }
    char *copy = cfx_strdup(s);
    if (!copy) return -1;
    if (cfx__strmap_put(&t->map, copy, t->n) != CFX_OK) {
        cfx_free(copy);
        return -1;
    }
    t->str[t->n] = copy;
    return t->n++;
}

void cfx__intern_deinit(cfx__intern *t) {
    for (int32_t i = 0; i < t->n; i++) cfx_free(t->str[i]);
    cfx_free(t->str);
    cfx__strmap_deinit(&t->map);
}
