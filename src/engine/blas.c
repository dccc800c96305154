/* blas.c - the one place GEMM is called, and a reference loop the tests compare to; also the
 * double-precision products and the LAPACK routines the metrics need (at the end).
 *
 * The choice: oneDNN's dnnl_sgemm (JIT kernels for the CPU at hand, AVX-512 here; threads from
 * the same OpenMP pool as every other kernel). OpenBLAS (Debian 0.3.21, pthreads build) is the
 * alternative, picked with CFX_GEMM=openblas for comparisons. Measured on this 2-core machine
 * (bench/engine.sh, reference classifier, batch 64 training step): OpenBLAS used its Haswell
 * (AVX2) kernels, about 20% slower at 1 thread, and its own busy-waiting thread pool beside
 * OpenMP's made 2 threads several times slower than 1. */
#include "base/base.h"
#include "engine/blas.h"
#include "engine/dnnl.h"

#include <cblas.h>
#include <dlfcn.h>
#include <dnnl.h>
#include <lapacke.h>
#include <pthread.h>
#include <stdlib.h>

/* ------------------------------------------------------ OpenBLAS and LAPACKE, on demand --- */

/* OpenBLAS and LAPACKE are opened with dlopen when first needed, not linked: linked, they (with
 * LAPACK, libgfortran and libquadmath) were relocated at the start of every cfx process, 14k
 * symbol relocations in OpenBLAS alone, 11 M instructions and about 5 ms before main, and
 * OpenBLAS's constructor started its thread pool; yet only the metrics' double precision and
 * CFX_GEMM=openblas call them. The runtime libraries of Debian's libopenblas-dev and
 * liblapacke-dev, which the build compiles against: */
#define OPENBLAS_SONAME  "libopenblas.so.0"
#define OPENBLAS_PACKAGE "libopenblas0"
#define LAPACKE_SONAME   "liblapacke.so.3"
#define LAPACKE_PACKAGE  "liblapacke"

void openblas_set_num_threads(int num_threads);

static struct {
    __typeof__(cblas_sgemm) *sgemm;
    __typeof__(cblas_dgemm) *dgemm;
    __typeof__(cblas_dsyrk) *dsyrk;
    __typeof__(cblas_ssyrk) *ssyrk;
    __typeof__(cblas_dtrmm) *dtrmm;
    __typeof__(openblas_set_num_threads) *set_num_threads;
    __typeof__(LAPACKE_dpotrf_work) *dpotrf;
    __typeof__(LAPACKE_dsyevd_work) *dsyevd;
    __typeof__(LAPACKE_dsyevd_2stage_work) *dsyevd_2stage;
    int threads; /* what set_num_threads was last given */
} ob;
static pthread_once_t ob_once = PTHREAD_ONCE_INIT;
static cfx_status ob_status;
static char ob_error[600];

/* dlsym gives a void *; it is copied, not cast, into the function pointer, as ISO C wants. */
static bool resolve(void *lib, const char *soname, const char *package, const char *name,
                    void *fn) {
    void *f = dlsym(lib, name);
    if (!f) {
        cfx_set_error(CFX_ENOTFOUND, "%s has no %s; install Debian's %s", soname, name, package);
        return false;
    }
    memcpy(fn, &f, sizeof f);
    return true;
}

static cfx_status open_library(const char *soname, const char *package, void **lib) {
    *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!*lib)
        return cfx_set_error(CFX_ENOTFOUND, "cannot load %s (%s); install Debian's %s: %s %s",
                             soname, dlerror(), package, "apt-get install", package);
    return CFX_OK;
}

/* Both libraries stay loaded for the life of the process. */
static void ob_load(void) {
    void *b, *l;
    ob_status = open_library(OPENBLAS_SONAME, OPENBLAS_PACKAGE, &b);
    if (ob_status == CFX_OK) ob_status = open_library(LAPACKE_SONAME, LAPACKE_PACKAGE, &l);
#define B(field, name) resolve(b, OPENBLAS_SONAME, OPENBLAS_PACKAGE, name, &ob.field)
#define L(field, name) resolve(l, LAPACKE_SONAME, LAPACKE_PACKAGE, name, &ob.field)
    if (ob_status == CFX_OK &&
        !(B(sgemm, "cblas_sgemm") && B(dgemm, "cblas_dgemm") && B(dsyrk, "cblas_dsyrk") &&
          B(ssyrk, "cblas_ssyrk") && B(dtrmm, "cblas_dtrmm") &&
          B(set_num_threads, "openblas_set_num_threads") && L(dpotrf, "LAPACKE_dpotrf_work") &&
          L(dsyevd, "LAPACKE_dsyevd_work") && L(dsyevd_2stage, "LAPACKE_dsyevd_2stage_work")))
        ob_status = CFX_ENOTFOUND;
#undef B
#undef L
    if (ob_status != CFX_OK) snprintf(ob_error, sizeof ob_error, "%s", cfx_last_error());
}

/* OpenBLAS's own thread pool is sized as cfx_set_threads says, so that a CFX_GEMM=openblas
 * comparison is fair and the metrics use the threads they were given. */
static void ob_sync_threads(void) {
    int n = cfx_get_threads();
    if (ob.threads != n) ob.threads = n, ob.set_num_threads(n);
}

cfx_status cfx__blas_open(void) {
    pthread_once(&ob_once, ob_load);
    if (ob_status != CFX_OK) return cfx_set_error(ob_status, "%s", ob_error);
    ob_sync_threads();
    return CFX_OK;
}

/* The table, for the calls that cannot fail: their callers opened it first. */
static void ob_ready(void) {
    bool opened_by_cfx__blas_open = cfx__blas_open() == CFX_OK;
    CFX_ASSERT(opened_by_cfx__blas_open);
}

static int use_openblas = -1;

static bool openblas_chosen(void) {
    if (use_openblas < 0) {
        const char *e = getenv("CFX_GEMM");
        use_openblas = e && strcmp(e, "openblas") == 0;
        if (use_openblas && cfx__blas_open() != CFX_OK) {
            cfx_log(CFX_LOG_WARN, "CFX_GEMM=openblas: %s; oneDNN's GEMM is used", cfx_last_error());
            use_openblas = 0;
        }
    }
    return use_openblas;
}

/* x . y in 16 partial sums, added up in order: the sums sgemm_nt_rows makes four at a time. */
static inline float dot16(const float *restrict x, const float *restrict y, int64_t k) {
    float acc[16] = {0};
    int64_t p = 0;
    for (; p + 16 <= k; p += 16)
        for (int l = 0; l < 16; l++) acc[l] += x[p + l] * y[p + l];
    for (int l = 0; p < k; p++, l++) acc[l] += x[p] * y[p];
    float sum = 0;
    for (int l = 0; l < 16; l++) sum += acc[l];
    return sum;
}

/* C = alpha A B^T + beta C, one row of A at a time: dot products of that row with 4 rows of
 * B at once, each in 16 partial sums. A fixed order of additions, so every clone gives the
 * same bits. Used for thin products (a batch-1 fully connected layer is this with one row). */
CFX_CLONES static void sgemm_nt_rows(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                                     int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                                     int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        const float *restrict x = a + i * lda;
        float *restrict crow = c + i * ldc;
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const float *restrict y0 = b + j * ldb, *restrict y1 = y0 + ldb,
                                  *restrict y2 = y1 + ldb, *restrict y3 = y2 + ldb;
            float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
            int64_t p = 0;
            for (; p + 16 <= k; p += 16)
                for (int l = 0; l < 16; l++) {
                    float xv = x[p + l];
                    a0[l] += xv * y0[p + l];
                    a1[l] += xv * y1[p + l];
                    a2[l] += xv * y2[p + l];
                    a3[l] += xv * y3[p + l];
                }
            for (int l = 0; p < k; p++, l++) {
                a0[l] += x[p] * y0[p];
                a1[l] += x[p] * y1[p];
                a2[l] += x[p] * y2[p];
                a3[l] += x[p] * y3[p];
            }
            float sum[4] = {0, 0, 0, 0};
            for (int l = 0; l < 16; l++)
                sum[0] += a0[l], sum[1] += a1[l], sum[2] += a2[l], sum[3] += a3[l];
            for (int r = 0; r < 4; r++)
                /* beta == 0 overwrites, so NaN in an uninitialised C does not leak through. */
                crow[j + r] = alpha * sum[r] + (beta == 0 ? 0.0f : beta * crow[j + r]);
        }
        /* The last columns: the same sums, one row of B at a time. */
        for (; j < n; j++) {
            float sum = dot16(x, b + j * ldb, k);
            crow[j] = alpha * sum + (beta == 0 ? 0.0f : beta * crow[j]);
        }
    }
}

/* C = alpha op(A) B + beta C, one row of C at a time: rows of B scaled and added into it. */
CFX_CLONES static void sgemm_xn_rows(int trans_a, int64_t m, int64_t n, int64_t k, float alpha,
                                     const float *a, int64_t lda, const float *b, int64_t ldb,
                                     float beta, float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        float *restrict crow = c + i * ldc;
        if (beta == 0)
            for (int64_t j = 0; j < n; j++) crow[j] = 0;
        else if (beta != 1)
            for (int64_t j = 0; j < n; j++) crow[j] *= beta;
        for (int64_t p = 0; p < k; p++) {
            float s = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
            const float *restrict brow = b + p * ldb;
            for (int64_t j = 0; j < n; j++) crow[j] += s * brow[j];
        }
    }
}

void cfx_blas_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc) {
    CFX_ASSERT(m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX);
    if (m == 0 || n == 0) return;
    if (openblas_chosen()) {
        ob_ready();
        ob.sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                 trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
                 (int)ldb, beta, c, (int)ldc);
        return;
    }
    /* Thin products run on the plain loops above. dnnl_sgemm's time for them depended on
     * what it had run before: it seems to keep few of the JIT kernels it makes for such
     * shapes, and in a training step (oneDNN's convolutions call its GEMM with other small
     * shapes in between) or a batch-1 step it regenerated them, e.g. 100 us for a 64x9x256
     * product that takes 9 us here, 32 us for a 1x512x512 one that takes 12. Narrow products
     * (at most 16 columns of B^T) always: in `cfx eval` a 256x9x256 one took 1.4 ms there and
     * 24 us here (alone, oneDNN's 14 us beats this loop's 34). */
    bool thin = CFX_MIN(m, CFX_MIN(n, k)) <= 16 && (double)m * n * k <= (1 << 18);
    if (!trans_a && trans_b && (thin || m <= 4 || n <= 16)) {
        sgemm_nt_rows(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (!trans_b && thin) {
        sgemm_xn_rows(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* On several threads oneDNN splits A B^T with few rows poorly: the classifier's 64x512x1024
     * product took 662 us at 2 threads against 582 at 1. Split by hand into one column block
     * per thread, each a one-thread dnnl_sgemm (oneDNN runs single-threaded inside a parallel
     * region): 282 us. A^T B (a weight gradient) gains a little too (512x1024x64: 225-255 ->
     * 197 us); A B scales well on its own. The blocks depend only on the thread count, so
     * results do too. */
    int nt = omp_get_max_threads();
    if (nt > 1 && trans_a != trans_b && !omp_in_parallel() && n >= 32 * (int64_t)nt &&
        (double)m * n * k >= (1 << 21)) {
#pragma omp parallel num_threads(nt)
        {
            int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t lo = n * t / T / 16 * 16, hi = t == T - 1 ? n : n * (t + 1) / T / 16 * 16;
            dnnl_status_t st =
                dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, hi - lo, k, alpha, a, lda,
                           b + (trans_b ? lo * ldb : lo), ldb, beta, c + lo, ldc);
            CFX_ASSERT(st == dnnl_success);
        }
        return;
    }
    /* dnnl_sgemm is row-major, like the rest of cfx. It fails only on bad arguments, which
     * the callers have already excluded. */
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda,
                                  b, ldb, beta, c, ldc);
    CFX_ASSERT(st == dnnl_success);
}

/* ------------------------------------------------------- products of a fixed shape --- */

/* A product run many times with the same shape, on one thread (the trainer's head: each thread
 * runs its own). dnnl_sgemm decides how to block and pack on every call, and in a training step
 * that cost showed: the head's first product (256x64x1024, A B) took 275-290 us there against
 * 150-180 alone. A oneDNN matmul primitive decides once, and its brgemm kernels are a little
 * faster as well: 180 us in the step. Thin products keep cfx_blas_sgemm's loops. */
struct cfx__gemm_plan {
    int trans_a, trans_b;
    int64_t m, n, k, lda, ldb, ldc;
    bool accumulate;
    dnnl_primitive_t prim; /* NULL: cfx_blas_sgemm runs the product */
    dnnl_memory_t a, b, c, scratch;
    dnnl_stream_t stream;
    void *scratch_buf;
};

/* The primitive, built for one thread (oneDNN fixes its thread count when one is created). */
static bool plan_build(cfx__gemm_plan *p) {
    dnnl_engine_t engine = cfx__dnnl_engine();
    if (!engine) return false;
    dnnl_memory_desc_t am, bm, cm;
    dnnl_dims_t ad = {p->m, p->k}, bd = {p->k, p->n}, cd = {p->m, p->n};
    dnnl_dims_t as = {p->trans_a ? 1 : p->lda, p->trans_a ? p->lda : 1};
    dnnl_dims_t bs = {p->trans_b ? 1 : p->ldb, p->trans_b ? p->ldb : 1}, cs = {p->ldc, 1};
    if (dnnl_memory_desc_init_by_strides(&am, 2, ad, dnnl_f32, as) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&bm, 2, bd, dnnl_f32, bs) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&cm, 2, cd, dnnl_f32, cs) != dnnl_success)
        return false;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &am, &bm, NULL, &cm) != dnnl_success) return false;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok =
        dnnl_primitive_attr_create(&attr) == dnnl_success &&
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && p->accumulate)
        ok = dnnl_post_ops_create(&ops) == dnnl_success &&
             dnnl_post_ops_append_sum(ops, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    ok = ok && dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success &&
         dnnl_primitive_create(&p->prim, pd) == dnnl_success;
    omp_set_num_threads(threads);
    const dnnl_memory_desc_t *sm =
        ok ? dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) : NULL;
    size_t bytes = sm ? dnnl_memory_desc_get_size(sm) : 0;
    ok = ok && (!bytes || (p->scratch_buf = cfx_aligned_alloc(bytes)) != NULL);
    ok = ok &&
         (!bytes || dnnl_memory_create(&p->scratch, sm, engine, p->scratch_buf) == dnnl_success);
    ok = ok && dnnl_memory_create(&p->a, &am, engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->b, &bm, engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->c, &cm, engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_stream_create(&p->stream, engine, dnnl_stream_default_flags) == dnnl_success;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return ok;
}

static void plan_release(cfx__gemm_plan *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->a) dnnl_memory_destroy(p->a);
    if (p->b) dnnl_memory_destroy(p->b);
    if (p->c) dnnl_memory_destroy(p->c);
    if (p->scratch) dnnl_memory_destroy(p->scratch);
    if (p->stream) dnnl_stream_destroy(p->stream);
    cfx_aligned_free(p->scratch_buf);
    p->prim = NULL, p->a = p->b = p->c = p->scratch = NULL, p->stream = NULL;
    p->scratch_buf = NULL;
}

cfx__gemm_plan *cfx__gemm_plan_new(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                                   int64_t lda, int64_t ldb, int64_t ldc, bool accumulate) {
    cfx__gemm_plan *p = cfx_calloc(1, sizeof *p);
    if (!p) return NULL;
    *p = (cfx__gemm_plan){trans_a, trans_b, m, n, k, lda, ldb, ldc, accumulate};
    bool thin = CFX_MIN(m, CFX_MIN(n, k)) <= 16;
    if (!thin && !openblas_chosen() && !plan_build(p)) plan_release(p); /* cfx_blas_sgemm */
    return p;
}

void cfx__gemm_plan_run(const cfx__gemm_plan *p, const float *a, const float *b, float *c) {
    if (!p->prim) {
        cfx_blas_sgemm(p->trans_a, p->trans_b, p->m, p->n, p->k, 1.0f, a, p->lda, b, p->ldb,
                       p->accumulate ? 1.0f : 0.0f, c, p->ldc);
        return;
    }
    dnnl_memory_set_data_handle(p->a, (void *)a);
    dnnl_memory_set_data_handle(p->b, (void *)b);
    dnnl_memory_set_data_handle(p->c, c);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->a},
                               {DNNL_ARG_WEIGHTS, p->b},
                               {DNNL_ARG_DST, p->c},
                               {DNNL_ARG_SCRATCHPAD, p->scratch}};
    /* Fails only on bad arguments, which the plan excluded when it was built. */
    dnnl_status_t st = dnnl_primitive_execute(p->prim, p->stream, p->scratch ? 4 : 3, args);
    CFX_ASSERT(st == dnnl_success);
}

void cfx__gemm_plan_free(cfx__gemm_plan *p) {
    if (!p) return;
    plan_release(p);
    cfx_free(p);
}

/* ------------------------------------------------- A B^T as (B A^T)^T, and transposes --- */

/* dst (cols x rows) = src^T, or dst += src^T when add, then max(0, .) when relu: an 8x8 block at
 * a time in AVX registers. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TRANSPOSE_AVX 1
__attribute__((target("avx"))) static void transpose8_avx(const float *src, int64_t lds, float *dst,
                                                          int64_t ldd, bool add, bool relu) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* a_i0 a_j0 a_i1 a_j1 | 4 5 */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* a_i2 a_j2 a_i3 a_j3 | 6 7 */
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);     /* column 0 | 4 of four rows */
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE); /* column 1 | 5 */
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        __m256 lo = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20); /* column j */
        __m256 hi = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31); /* column j + 4 */
        float *d0 = dst + j * ldd, *d1 = dst + (j + 4) * ldd;
        if (add) {
            lo = _mm256_add_ps(lo, _mm256_loadu_ps(d0));
            hi = _mm256_add_ps(hi, _mm256_loadu_ps(d1));
        }
        if (relu) { /* max(0, NaN) is 0 as in the ReLU op (x > 0 ? x : 0) */
            lo = _mm256_max_ps(lo, _mm256_setzero_ps());
            hi = _mm256_max_ps(hi, _mm256_setzero_ps());
        }
        _mm256_storeu_ps(d0, lo);
        _mm256_storeu_ps(d1, hi);
    }
}
#endif

/* Rows [r0, r1) of src (rows x cols) transposed into columns [r0, r1) of dst. */
static inline float relu_if(float x, bool relu) {
    return relu && !(x > 0) ? 0.0f : x;
}

static void transpose_rows(int64_t r0, int64_t r1, int64_t cols, const float *src, int64_t lds,
                           float *dst, int64_t ldd, bool add, bool relu) {
    int64_t i = r0;
#ifdef TRANSPOSE_AVX
    if (__builtin_cpu_supports("avx"))
        for (; i + 8 <= r1; i += 8) {
            int64_t j = 0;
            for (; j + 8 <= cols; j += 8)
                transpose8_avx(src + i * lds + j, lds, dst + j * ldd + i, ldd, add, relu);
            for (; j < cols; j++)
                for (int64_t q = i; q < i + 8; q++)
                    dst[j * ldd + q] =
                        relu_if(src[q * lds + j] + (add ? dst[j * ldd + q] : 0.0f), relu);
        }
#endif
    for (; i < r1; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * ldd + i] = relu_if(src[i * lds + j] + (add ? dst[j * ldd + i] : 0.0f), relu);
}

void cfx__transpose(int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst,
                    int64_t ldd) {
    transpose_rows(0, rows, cols, src, lds, dst, ldd, false, false);
}

/* dst = src^T (or += when add; then max(0, .) when relu), src rows x cols; rows split among
 * threads in blocks of 8. */
static void transpose(int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst,
                      int64_t ldd, bool add, bool relu) {
    int64_t blocks = (rows + 7) / 8;
    CFX_PARALLEL_RANGE(
        blocks, rows * cols >= (1 << 20),
        transpose_rows(lo * 8, CFX_MIN(hi * 8, rows), cols, src, lds, dst, ldd, add, relu));
}

/* dnnl_sgemm runs A B^T (B^T read across rows of B) 10-20% slower than the same product with
 * both operands in order, and 45% slower when B's rows are a multiple of 4 KiB apart (cache
 * aliasing): 64x512x1024, as in the classifier's first fully connected layer, took 450-470 us
 * against 300-330 for (B A^T)^T on one thread. So products that are not thin are flipped:
 * A^T into the work buffer, T = B A^T there too, then C = T^T (+ C). */
static bool nt_flips(int64_t m, int64_t n, int64_t k) {
    return !openblas_chosen() && CFX_MIN(m, CFX_MIN(n, k)) > 16;
}

size_t cfx__blas_nt_work(int64_t m, int64_t n, int64_t k) {
    return nt_flips(m, n, k) ? (size_t)(m * k + m * n) : 0;
}

CFX_CLONES static void relu_rows(float *c, int64_t n, int64_t ldc, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++)
        for (int64_t j = 0; j < n; j++) c[i * ldc + j] = c[i * ldc + j] > 0 ? c[i * ldc + j] : 0.0f;
}

void cfx__relu_rows(float *c, int64_t m, int64_t n, int64_t ldc) {
    CFX_PARALLEL_RANGE(m, m * n >= (1 << 16), relu_rows(c, n, ldc, lo, hi));
}

void cfx__blas_sgemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                        const float *b, int64_t ldb, float beta, float *c, int64_t ldc, float *work,
                        bool relu) {
    if (!work || !nt_flips(m, n, k)) {
        cfx_blas_sgemm(0, 1, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        if (relu) cfx__relu_rows(c, m, n, ldc);
        return;
    }
    float *at = work, *t = work + m * k; /* A^T (k x m), T (n x m) */
    transpose(m, k, a, lda, at, m, false, false);
    cfx_blas_sgemm(0, 0, n, m, k, alpha, b, ldb, at, m, 0.0f, t, m);
    if (beta != 0 && beta != 1)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] *= beta;
    transpose(n, m, t, m, c, ldc, beta != 0, relu);
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

/* ------------------------------------------------- double precision, for the metrics --- */

/* The feature statistics of src/metrics/ (covariances, Gram matrices, FID's matrix square
 * root) run in double. oneDNN has no double GEMM, so these go to OpenBLAS (its threads sized
 * by cfx_set_threads) and to the LAPACK that Debian's OpenBLAS provides, through LAPACKE. The
 * LAPACK calls use the _work variants with workspace from cfx_malloc, so every allocation
 * still goes through the one hook, and column-major storage: for the symmetric matrices they
 * take, a row-major upper triangle is the column-major lower one, and no copy is made. */

void cfx__blas_dgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                     const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                     double *c, int64_t ldc) {
    CFX_ASSERT(m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX && lda <= INT32_MAX &&
               ldb <= INT32_MAX && ldc <= INT32_MAX);
    if (m == 0 || n == 0) return;
    ob_ready();
    ob.dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
             trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
             (int)ldb, beta, c, (int)ldc);
}

void cfx__blas_dsyrk(int trans, int64_t n, int64_t k, double alpha, const double *a, int64_t lda,
                     double beta, double *c, int64_t ldc) {
    CFX_ASSERT(n <= INT32_MAX && k <= INT32_MAX && lda <= INT32_MAX && ldc <= INT32_MAX);
    if (n == 0) return;
    ob_ready();
    ob.dsyrk(CblasRowMajor, CblasUpper, trans ? CblasTrans : CblasNoTrans, (int)n, (int)k, alpha, a,
             (int)lda, beta, c, (int)ldc);
}

void cfx__blas_ssyrk(int64_t n, int64_t k, const float *a, int64_t lda, float *c, int64_t ldc) {
    CFX_ASSERT(n <= INT32_MAX && k <= INT32_MAX && lda <= INT32_MAX && ldc <= INT32_MAX);
    if (n == 0) return;
    ob_ready();
    ob.ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)n, (int)k, 1.0f, a, (int)lda, 0.0f, c,
             (int)ldc);
}

void cfx__blas_dtrmm_upper(bool right, bool trans, int64_t m, int64_t n, const double *u,
                           int64_t ldu, double *b, int64_t ldb) {
    CFX_ASSERT(m <= INT32_MAX && n <= INT32_MAX && ldu <= INT32_MAX && ldb <= INT32_MAX);
    if (m == 0 || n == 0) return;
    ob_ready();
    ob.dtrmm(CblasRowMajor, right ? CblasRight : CblasLeft, CblasUpper,
             trans ? CblasTrans : CblasNoTrans, CblasNonUnit, (int)m, (int)n, 1.0, u, (int)ldu, b,
             (int)ldb);
}

cfx_status cfx__lapack_cholesky_upper(int64_t n, double *a) {
    CFX_ASSERT(n >= 1 && n <= INT32_MAX);
    CFX_TRY(cfx__blas_open());
    /* Column-major lower L with A = L L^T is, read row-major, the upper U = L^T. */
    lapack_int info = ob.dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)n, a, (lapack_int)n);
    if (info > 0)
        return cfx_set_error(CFX_ENUMERIC, "the matrix is not positive definite (leading minor %d)",
                             (int)info);
    if (info < 0) return cfx_set_error(CFX_EINTERNAL, "dpotrf: argument %d is bad", (int)-info);
    return CFX_OK;
}

/* Eigenvalues only go through the two-stage reduction (dsyevd_2stage: to a band by blocked
 * level-3 products, then to tridiagonal), which LAPACK offers for eigenvalues only: 2048 x 2048
 * in 0.87 s against dsyevd's 1.19 s, one thread, the same values to 3e-15. */
typedef lapack_int (*eigh_fn)(int matrix_layout, char jobz, char uplo, lapack_int n, double *a,
                              lapack_int lda, double *w, double *work, lapack_int lwork,
                              lapack_int *iwork, lapack_int liwork);

cfx_status cfx__lapack_eigh(int64_t n, double *a, double *w, bool vectors) {
    CFX_ASSERT(n >= 1 && n <= INT32_MAX);
    CFX_TRY(cfx__blas_open());
    char jobz = vectors ? 'V' : 'N';
    eigh_fn fn = vectors ? ob.dsyevd : ob.dsyevd_2stage;
    lapack_int ni = (lapack_int)n, liwork = -1, lwork_i = 0;
    double lwork_d = 0;
    /* A workspace query first: dsyevd reports the sizes it wants. */
    lapack_int info = fn(LAPACK_COL_MAJOR, jobz, 'L', ni, a, ni, w, &lwork_d, -1, &lwork_i, -1);
    if (info != 0) return cfx_set_error(CFX_EINTERNAL, "dsyevd workspace query: info %d", info);
    lapack_int lwork = (lapack_int)lwork_d;
    liwork = lwork_i;
    double *work = cfx_malloc((size_t)CFX_MAX(lwork, 1) * sizeof *work);
    lapack_int *iwork = cfx_malloc((size_t)CFX_MAX(liwork, 1) * sizeof *iwork);
    if (!work || !iwork) {
        cfx_free(work), cfx_free(iwork);
        return CFX_ENOMEM;
    }
    info = fn(LAPACK_COL_MAJOR, jobz, 'L', ni, a, ni, w, work, lwork, iwork, liwork);
    cfx_free(work), cfx_free(iwork);
    if (info > 0)
        return cfx_set_error(CFX_ENUMERIC,
                             "the symmetric eigendecomposition did not converge (dsyevd info %d)",
                             (int)info);
    if (info < 0) return cfx_set_error(CFX_EINTERNAL, "dsyevd: argument %d is bad", (int)-info);
    return CFX_OK;
}
