/* blas.c - the one place GEMM is called (OpenBLAS's cblas_sgemm), and a reference loop. */
#include "internal.h"

#include <cblas.h>

void cfx_blas_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc) {
    CFX_ASSERT(m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX);
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
                (int)ldb, beta, c, (int)ldc);
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
