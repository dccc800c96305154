/* blas.h - the GEMM layer's private calls (src/engine/blas.c), for the ops and the trainer;
 * not part of the public API (cfx_blas_sgemm is public). */
#ifndef CFX_ENGINE_BLAS_H
#define CFX_ENGINE_BLAS_H

#include "base/base.h"

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

/* dst (cols x rows, row stride ldd) = src^T for src (rows x cols, row stride lds), on the
 * calling thread. */
void cfx__transpose(int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst,
                    int64_t ldd);

/* Opens OpenBLAS and LAPACKE (dlopen, once; later calls only size OpenBLAS's threads as
 * cfx_get_threads says): CFX_OK, or CFX_ENOTFOUND with a message naming the library and the
 * Debian package to install. The calls below that return void need it to have succeeded (a
 * broken invariant otherwise); the ones that return a status call it themselves. */
cfx_status cfx__blas_open(void);

/* Double precision (OpenBLAS and LAPACK; the end of src/engine/blas.c), row-major like the rest.
 * C (m x n) = alpha op(A) op(B) + beta C. */
void cfx__blas_dgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                     const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                     double *c, int64_t ldc);
/* The upper triangle of C (n x n) = alpha A^T A + beta C for A (k x n) when trans, alpha A A^T
 * + beta C for A (n x k) otherwise; the strictly lower triangle is left as it was. */
void cfx__blas_dsyrk(int trans, int64_t n, int64_t k, double alpha, const double *a, int64_t lda,
                     double beta, double *c, int64_t ldc);
/* Single precision: the upper triangle of C (n x n) = A^T A for A (k x n). */
void cfx__blas_ssyrk(int64_t n, int64_t k, const float *a, int64_t lda, float *c, int64_t ldc);
/* B (m x n) = op(U) B (right false) or B op(U) (right true), U upper triangular (its strictly
 * lower triangle is not read), op(U) = U^T when trans. */
void cfx__blas_dtrmm_upper(bool right, bool trans, int64_t m, int64_t n, const double *u,
                           int64_t ldu, double *b, int64_t ldb);
/* A (n x n, symmetric; its upper triangle is read) = U^T U: U overwrites the upper triangle
 * (the strictly lower one is left as it was). CFX_ENUMERIC when A is not positive definite. */
cfx_status cfx__lapack_cholesky_upper(int64_t n, double *a);
/* The eigenvalues of the symmetric A (n x n; its upper triangle is read) in ascending order
 * into w (n), by LAPACK's divide and conquer (dsyevd; two-stage without vectors). vectors: row j of
 * a becomes the unit eigenvector of w[j]; otherwise a is destroyed. */
cfx_status cfx__lapack_eigh(int64_t n, double *a, double *w, bool vectors);

#endif
