/* base.h - helpers shared by libcfx's modules; not part of the public API. */
#ifndef CFX_BASE_H
#define CFX_BASE_H

#include "cfx.h"

#include <omp.h>
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

/* Runs `call` over [0, n) as one contiguous slice [lo, hi) per OpenMP thread (int64_t lo and
 * hi are in scope inside `call`), so a result never depends on scheduling. When `parallel` is
 * false or one thread is set, `call` runs once on the calling thread with lo = 0, hi = n and no
 * OpenMP region is entered: libgomp ends even a one-thread region (an `if` clause that is false)
 * with a futex system call, about 2 us each here, which was a third of a batch-1 step of a small
 * CNN. Keep `call` a plain function with restrict pointers: inside an OpenMP-outlined loop GCC
 * reads the pointers through the shared-data struct, cannot rule out that a store clobbers
 * them, and leaves the loop scalar. */
#define CFX_PARALLEL_RANGE(n, parallel, call)                                                      \
    do {                                                                                           \
        int64_t n_ = (n);                                                                          \
        if ((parallel) && omp_get_max_threads() > 1) {                                             \
            _Pragma("omp parallel") {                                                              \
                int64_t t_ = omp_get_thread_num(), T_ = omp_get_num_threads();                     \
                int64_t lo = n_ * t_ / T_, hi = n_ * (t_ + 1) / T_;                                \
                call;                                                                              \
            }                                                                                      \
        } else {                                                                                   \
            int64_t lo = 0, hi = n_;                                                               \
            call;                                                                                  \
        }                                                                                          \
    } while (0)

/* A hot loop built for each x86 vector ISA and dispatched at load time by the CPU (GCC
 * target_clones, an ifunc). We build without -march so that binaries run on any x86-64; plain
 * -O3 is SSE2 only. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CFX_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CFX_CLONES
#endif

/* A loop with no branch worth a fuzzer's attention (a checksum over whole files): left out of
 * libFuzzer's coverage and comparison tracing, which otherwise traces every byte's loop test. */
#if defined(__clang__)
#define CFX_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define CFX_NO_COVERAGE
#endif

/* A temporary file (dir false) or folder of files (dir true) being written, for the handler of
 * cfx_clean_up_on_signals to remove: its slot, or -1 when the table is full. Untracked once it
 * is renamed into place or removed. */
int cfx__tmp_track(const char *path, bool dir);
void cfx__tmp_untrack(int slot);

#define CFX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CFX_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
