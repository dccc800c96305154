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

/* C (m x n) = alpha A B^T + beta C through cfx_blas_sgemm, computed as (B A^T)^T when that is
 * faster (src/blas.c): work holds cfx__blas_nt_work(m, n, k) floats then (NULL: the plain call).
 * relu: C = max(0, C) after (a fused ReLU, cfx__op_args.relu). */
size_t cfx__blas_nt_work(int64_t m, int64_t n, int64_t k);
void cfx__blas_sgemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                        const float *b, int64_t ldb, float beta, float *c, int64_t ldc, float *work,
                        bool relu);
/* A product of one shape run many times, on the calling thread alone (src/blas.c): C (m x n)
 * = op(A) op(B), + C when accumulate; row-major operands with row strides lda, ldb, ldc, as in
 * cfx_blas_sgemm. A plan must not run on two threads at once. new returns NULL only when out of
 * memory. */
typedef struct cfx__gemm_plan cfx__gemm_plan;
cfx__gemm_plan *cfx__gemm_plan_new(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                                   int64_t lda, int64_t ldb, int64_t ldc, bool accumulate);
void cfx__gemm_plan_run(const cfx__gemm_plan *p, const float *a, const float *b, float *c);
void cfx__gemm_plan_free(cfx__gemm_plan *p);
/* C = max(0, C) for an m x n matrix with row stride ldc (NaN becomes 0, as in the ReLU op). */
void cfx__relu_rows(float *c, int64_t m, int64_t n, int64_t ldc);

/* cfx_optim_step's halves, for a gradient that is the sum of two (cfx_trainer's lanes):
 * check_grad fails with CFX_ENUMERIC, naming the first element, when an element of g is NaN or
 * beyond +-bound (FLT_MAX, or FLT_MAX / lanes so that the lanes' sum stays finite); step2 takes
 * the step on g0 + g1 (g1 may be NULL) in one pass. */
cfx_status cfx__optim_check_grad(const float *g, size_t n, float bound);
cfx_status cfx__optim_step2(cfx_optim *o, float *x, const float *g0, const float *g1);
/* The same in pieces, for threads that each own part of the parameters: check_range checks
 * g[first, end) (naming the element by its index in g); one tick per step, then apply on
 * disjoint ranges [lo, hi) of x, g0 and g1, from any thread, each on one thread. */
cfx_status cfx__optim_check_range(const float *g, size_t first, size_t end, float bound);
/* Whether every element of g[0, n) lies within [-bound, bound] (NaN does not), on the calling
 * thread: check_range's test without its error. */
bool cfx__optim_within(const float *g, int64_t n, float bound);
void cfx__optim_tick(cfx_optim *o);
void cfx__optim_apply(cfx_optim *o, float *x, const float *g0, const float *g1, int64_t lo,
                      int64_t hi);
/* dst (cols x rows, row stride ldd) = src^T for src (rows x cols, row stride lds), on the
 * calling thread. */
void cfx__transpose(int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst,
                    int64_t ldd);

/* A temporary file (dir false) or folder of files (dir true) being written, for the handler of
 * cfx_clean_up_on_signals to remove: its slot, or -1 when the table is full. Untracked once it
 * is renamed into place or removed. */
int cfx__tmp_track(const char *path, bool dir);
void cfx__tmp_untrack(int slot);

#define CFX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CFX_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
