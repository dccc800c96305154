/* blas.c - the one place GEMM is called, and a reference loop the tests compare to.
 *
 * The choice: oneDNN's dnnl_sgemm (JIT kernels for the CPU at hand, AVX-512 here; threads from
 * the same OpenMP pool as every other kernel). OpenBLAS (Debian 0.3.21, pthreads build) is the
 * alternative, picked with CFX_GEMM=openblas for comparisons. Measured on this 2-core machine
 * (bench/engine.sh, reference classifier, batch 64 training step): OpenBLAS used its Haswell
 * (AVX2) kernels, about 20% slower at 1 thread, and its own busy-waiting thread pool beside
 * OpenMP's made 2 threads several times slower than 1. */
#include "internal.h"

#include <cblas.h>
#include <dnnl.h>
#include <stdlib.h>

static int use_openblas = -1;

static bool openblas_chosen(void) {
    if (use_openblas < 0) {
        const char *e = getenv("CFX_GEMM");
        use_openblas = e && strcmp(e, "openblas") == 0;
    }
    return use_openblas;
}

void cfx_blas_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc) {
    CFX_ASSERT(m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX);
    if (m == 0 || n == 0) return;
    if (openblas_chosen()) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda,
                    b, (int)ldb, beta, c, (int)ldc);
        return;
    }
    /* dnnl_sgemm is row-major, like the rest of cfx. It fails only on bad arguments, which
     * the callers have already excluded. */
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda,
                                  b, ldb, beta, c, ldc);
    CFX_ASSERT(st == dnnl_success);
}

void cfx_blas_sgemm_ref(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++) {
                float av = trans_a ? a[p * lda + i] : a[i * lda + p];
                float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                acc += (double)av * bv;
            }
            /* beta == 0 overwrites, so NaN in an uninitialised C does not leak through. */
            c[i * ldc + j] = (float)(alpha * acc + (beta == 0 ? 0 : beta * c[i * ldc + j]));
        }
}
