/* internal.h - helpers shared by libcfx's modules; not part of the public API. */
#ifndef CFX_INTERNAL_H
#define CFX_INTERNAL_H

#include "cfx.h"

#include <stdbool.h>
#include <string.h>

/* Broken internal invariants only; never for user input. Stays on in release builds. */
#define CFX_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) cfx__assert_fail(#cond, __FILE__, __LINE__);                                  \
    } while (0)

_Noreturn void cfx__assert_fail(const char *cond, const char *file, int line);

/* Returns the status of a fallible call when it fails. */
#define CFX_TRY(expr)                                                                              \
    do {                                                                                           \
        cfx_status cfx__s = (expr);                                                                \
        if (cfx__s != CFX_OK) return cfx__s;                                                       \
    } while (0)

/* Multiplies sizes, failing on overflow: returns false and leaves *out untouched. */
static inline bool cfx__mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

#define CFX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CFX_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
