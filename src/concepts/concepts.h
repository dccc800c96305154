/* concepts.h - what the modules of src/concepts/ share (V-CECE); not part of the public API.
 *
 * wordnet and hungarian depend on base only. Above them the concepts modules stack up, each
 * using only the ones before it (the layer check forbids cycles inside a folder):
 *   intern      interned strings: concept names, words, labels
 * (the rest is still in concepts.c). */
#ifndef CFX_CONCEPTS_CONCEPTS_H
#define CFX_CONCEPTS_CONCEPTS_H

#include "base/base.h"
#include "base/strmap.h"

/* ------------------------------------------------------------------ intern.c --- */

/* Interned strings: an array of owned copies, in insertion order, and the shared string map
 * from each copy to its index (the map borrows the copies as its keys). A zeroed struct is
 * empty. */
typedef struct cfx__intern {
    char **str;      /* (n) owned copies, in insertion order */
    int32_t n, cap;  /* cap: capacity of str */
    cfx__strmap map; /* str[i] -> i */
} cfx__intern;

/* The index of s, or -1 when absent. */
int32_t cfx__intern_find(const cfx__intern *t, const char *s);
/* The index of s, adding a copy when new; -1 when out of memory. */
int32_t cfx__intern_add(cfx__intern *t, const char *s);
/* Frees the copies and the map. */
void cfx__intern_deinit(cfx__intern *t);

#endif
