/* test_linear.c - Gemm, Linear and MatMul: gradient checks over every transpose and broadcast
 * path, values and gradients against PyTorch, and shape errors. */
#include "gradcheck.h"
#include "base/base.h"
#include "engine/blas.h"
#include "ops_oracle.h"

#include <dlfcn.h>
#include <stdlib.h>

/* Adds an input that requires a gradient (ndim 0 shapes are not used here). */
static int grad_input(cfx_graph *g, const char *name, int ndim, const int64_t *shape) {
    int id = cfx_graph_input(g, name, ndim, shape);
    cfx_graph_requires_grad(g, id, 1);
    return id;
}

/* Fills every input of a compiled graph with uniform values in [-1, 1]. */
static void fill_inputs(cfx_graph *g, uint64_t seed) {
    cfx_rng r;
    cfx_rng_init(&r, seed);
    for (int v = 0; v < cfx_graph_num_values(g); v++)
        if (cfx_graph_value_kind(g, v) == CFX_VALUE_INPUT ||
            cfx_graph_value_kind(g, v) == CFX_VALUE_PARAM)
            cfx_tensor_fill_uniform(cfx_graph_tensor(g, v), &r, -1.0f, 1.0f);
}

/* A (3,4) or (4,3), B (4,5) or (5,4), C of shape cshape (cnd 0: none) -> (3,5). */
static cfx_graph *gemm_graph(int ta, int tb, int cnd, const int64_t *cshape, float alpha,
                             float beta, int *out, int *ins, int *nin) {
    cfx_graph *g = cfx_graph_new();
    int64_t m = 3, k = 4, n = 5;
    ins[0] = grad_input(g, "a", 2, ta ? (int64_t[]){k, m} : (int64_t[]){m, k});
    ins[1] = grad_input(g, "b", 2, tb ? (int64_t[]){n, k} : (int64_t[]){k, n});
    ins[2] = cnd ? grad_input(g, "c", cnd, cshape) : -1;
    *nin = cnd ? 3 : 2;
    *out =
        cfx_op_gemm(g, ins[0], ins[1], ins[2],
                    &(cfx_gemm_attr){.trans_a = ta, .trans_b = tb, .alpha = alpha, .beta = beta});
    CHECK(*out >= 0);
    CHECK_OK(cfx_graph_compile(g));
    fill_inputs(g, 3 + (uint64_t)(ta * 2 + tb));
    return g;
}

CFX_TEST(linear, gemm_gradients_all_transposes_and_broadcasts) {
    struct {
        int nd;
        int64_t shape[2];
    } cs[] = {{0, {0}}, {2, {3, 5}}, {1, {5}}, {2, {3, 1}}, {2, {1, 1}}, {1, {1}}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
                int out, ins[3], nin;
                cfx_graph *g =
                    gemm_graph(ta, tb, cs[c].nd, cs[c].shape, 0.5f, -2.0f, &out, ins, &nin);
                if (CHECK_GRADS(g, out, NULL))
                    printf("  (gemm trans_a %d trans_b %d C case %zu)\n", ta, tb, c);
                cfx_graph_free(g);
            }
}

/* a (nda) x b (ndb) with both gradients. */
static cfx_graph *matmul_graph(int nda, const int64_t *sa, int ndb, const int64_t *sb, int *out,
                               int *ins) {
    cfx_graph *g = cfx_graph_new();
    ins[0] = grad_input(g, "a", nda, sa);
    ins[1] = grad_input(g, "b", ndb, sb);
    *out = cfx_op_matmul(g, ins[0], ins[1]);
    CHECK(*out >= 0);
    CHECK_OK(cfx_graph_compile(g));
    fill_inputs(g, 21);
    return g;
}

CFX_TEST(linear, matmul_gradients_with_batch_broadcast_and_vectors) {
    struct {
        int nda, ndb;
        int64_t sa[4], sb[4];
        int ndy;
        int64_t sy[4];
    } cases[] = {
        {2, 2, {3, 4}, {4, 5}, 2, {3, 5}},       {4, 3, {2, 1, 3, 4}, {3, 4, 5}, 4, {2, 3, 3, 5}},
        {3, 2, {2, 3, 4}, {4, 2}, 3, {2, 3, 2}}, {1, 3, {4}, {2, 4, 5}, 2, {2, 5}},
        {3, 1, {2, 3, 4}, {4}, 2, {2, 3}},       {1, 1, {4}, {4}, 0, {0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int out, ins[2];
        cfx_graph *g =
            matmul_graph(cases[c].nda, cases[c].sa, cases[c].ndb, cases[c].sb, &out, ins);
        const cfx_tensor *t = cfx_graph_tensor(g, out);
        CHECK_INT_EQ(t->ndim, cases[c].ndy);
        for (int d = 0; d < t->ndim; d++) CHECK_INT_EQ(t->shape[d], cases[c].sy[d]);
        if (CHECK_GRADS(g, out, NULL)) printf("  (matmul case %zu)\n", c);
        cfx_graph_free(g);
    }
}

/* Gemm (three transpose/C cases), Linear (with and without bias) and broadcast MatMul in one
 * PyTorch run. */
CFX_TEST(linear, values_and_gradients_match_torch) {
    oracle o = {0};
    int out, ins[3], nin;
    cfx_graph *g = gemm_graph(1, 0, 1, (int64_t[]){5}, 0.5f, 2.0f, &out, ins, &nin);
    ORACLE_ADD(&o, "gemm", "1 0 0.5 2", g, out, ins, nin, NULL);
    cfx_graph_free(g);
    g = gemm_graph(0, 1, 2, (int64_t[]){3, 1}, 1.5f, 0.25f, &out, ins, &nin);
    ORACLE_ADD(&o, "gemm", "0 1 1.5 0.25", g, out, ins, nin, NULL);
    cfx_graph_free(g);
    g = gemm_graph(1, 1, 0, NULL, 0, 0, &out, ins, &nin); /* zero alpha/beta read as 1 */
    ORACLE_ADD(&o, "gemm", "1 1 1 1", g, out, ins, nin, NULL);
    cfx_graph_free(g);
    for (int bias = 0; bias < 2; bias++) {
        g = cfx_graph_new();
        int x = grad_input(g, "x", 2, (int64_t[]){4, 6});
        int w = cfx_graph_param(g, "w", 2, (int64_t[]){3, 6});
        int b = bias ? cfx_graph_param(g, "b", 1, (int64_t[]){3}) : -1;
        int y = cfx_op_linear(g, x, w, b);
        CHECK_OK(cfx_graph_compile(g));
        fill_inputs(g, 9);
        ORACLE_ADD(&o, "linear", bias ? "bias" : "", g, y, ((int[]){x, w, b}), 3, NULL);
        cfx_graph_free(g);
    }
    g = matmul_graph(4, (int64_t[]){2, 1, 3, 4}, 3, (int64_t[]){3, 4, 5}, &out, ins);
    ORACLE_ADD(&o, "matmul", "", g, out, ins, 2, NULL);
    cfx_graph_free(g);
    g = matmul_graph(1, (int64_t[]){4}, 3, (int64_t[]){2, 4, 5}, &out, ins);
    ORACLE_ADD(&o, "matmul", "vector", g, out, ins, 2, NULL);
    cfx_graph_free(g);
    ORACLE_RUN(&o);
}

CFX_TEST(linear, shape_errors) {
    struct {
        int nda, ndb;
        int64_t sa[3], sb[3];
        const char *msg;
    } bad[] = {
        {2, 2, {3, 4}, {5, 6}, "do not multiply"},
        {3, 3, {2, 3, 4}, {3, 4, 5}, "do not broadcast"},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        cfx_graph *g = cfx_graph_new();
        int a = cfx_graph_input(g, "a", bad[c].nda, bad[c].sa);
        int b = cfx_graph_input(g, "b", bad[c].ndb, bad[c].sb);
        CHECK(cfx_op_matmul(g, a, b) < 0);
        CHECK_MSG(strstr(cfx_last_error(), bad[c].msg), "message: %s", cfx_last_error());
        CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
        cfx_graph_free(g);
    }
    cfx_graph *g = cfx_graph_new();
    int a = cfx_graph_input(g, "a", 2, (int64_t[]){3, 4});
    int b = cfx_graph_input(g, "b", 2, (int64_t[]){4, 5});
    int c = cfx_graph_input(g, "c", 2, (int64_t[]){2, 5});
    int v = cfx_graph_input(g, "v", 1, (int64_t[]){4});
    CHECK(cfx_op_gemm(g, a, b, -1, &(cfx_gemm_attr){.trans_a = 1}) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "(3, 4)^T"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    a = cfx_graph_input(g, "a", 2, (int64_t[]){3, 4});
    b = cfx_graph_input(g, "b", 2, (int64_t[]){4, 5});
    c = cfx_graph_input(g, "c", 2, (int64_t[]){2, 5});
    CHECK(cfx_op_gemm(g, a, b, c, NULL) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "does not broadcast"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    a = cfx_graph_input(g, "a", 2, (int64_t[]){3, 4});
    v = cfx_graph_input(g, "v", 1, (int64_t[]){4});
    CHECK(cfx_op_gemm(g, a, v, -1, NULL) < 0);
    cfx_graph_free(g);
    g = cfx_graph_new();
    a = cfx_graph_input(g, "x", 2, (int64_t[]){3, 4});
    b = cfx_graph_input(g, "w", 2, (int64_t[]){5, 3});
    CHECK(cfx_op_linear(g, a, b, -1) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "(N,in)"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    a = cfx_graph_input(g, "x", 2, (int64_t[]){3, 4});
    b = cfx_graph_input(g, "w", 2, (int64_t[]){5, 4});
    c = cfx_graph_input(g, "b", 1, (int64_t[]){4});
    CHECK(cfx_op_linear(g, a, b, c) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "bias"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
}

/* One GEMM against the reference loop on the given threads: odd leading dimensions, alpha 1 or
 * 2, beta 0 (over a NaN-filled C), 1 or 0.5 by ab, a sentinel beyond column n of each row that
 * must stay. flipped: through cfx__blas_sgemm_nt (A B^T only), with a fused ReLU when relu. */
static void sgemm_case(cfx_rng *r, int ta, int tb, int64_t m, int64_t n, int64_t k, int ab,
                       int threads, bool flipped, bool relu, bool plan) {
    cfx_set_threads(threads);
    int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
    float alpha = ab == 2 ? 2.0f : 1.0f, beta = ab == 0 ? 0.0f : (ab == 1 ? 1.0f : 0.5f);
    size_t na = (size_t)((ta ? k : m) * lda), nb = (size_t)((tb ? n : k) * ldb),
           nc = (size_t)(m * ldc), nw = flipped ? cfx__blas_nt_work(m, n, k) : 0;
    CHECK(!flipped || nw > 0);
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    float *c = malloc(nc * sizeof *c), *want = malloc(nc * sizeof *want);
    float *work = malloc((nw ? nw : 1) * sizeof *work);
    for (size_t i = 0; i < na; i++) a[i] = (float)cfx_rng_normal(r);
    for (size_t i = 0; i < nb; i++) b[i] = (float)cfx_rng_normal(r);
    for (size_t i = 0; i < nc; i++)
        c[i] = want[i] = (int64_t)i % ldc >= n ? 7.0f : beta == 0 ? NAN : (float)cfx_rng_normal(r);
    if (plan) { /* run twice, the second time on a copy of C: the same bits */
        float *c2 = malloc(nc * sizeof *c2);
        memcpy(c2, c, nc * sizeof *c2);
        cfx__gemm_plan *p = cfx__gemm_plan_new(ta, tb, m, n, k, lda, ldb, ldc, beta == 1);
        CHECK(p != NULL);
        cfx__gemm_plan_run(p, a, b, c);
        cfx__gemm_plan_run(p, a, b, c2);
        cfx__gemm_plan_free(p);
        CHECK(memcmp(c, c2, nc * sizeof *c) == 0);
        free(c2);
    } else if (flipped)
        cfx__blas_sgemm_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, work, relu);
    else
        cfx_blas_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    cfx_blas_sgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc);
    if (relu)
        for (size_t i = 0; i < nc; i++)
            if ((int64_t)i % ldc < n && !(want[i] > 0)) want[i] = 0;
    if (!CHECK_ARRAY_NEAR(c, want, nc, 1e-5, 1e-4 * sqrt((double)k)))
        printf("  (m %lld n %lld k %lld, trans %d%d, alpha %g beta %g, %d threads%s%s)\n",
               (long long)m, (long long)n, (long long)k, ta, tb, (double)alpha, (double)beta,
               threads, flipped ? ", flipped" : "", relu ? ", relu" : "");
    free(a), free(b), free(c), free(want), free(work);
    cfx_set_threads(1);
}

/* cfx_blas_sgemm against the reference loop on shapes that take each of its paths (thin products
 * on the plain loops, a batch-1 row against big weights, ordinary ones on oneDNN), every
 * transpose, odd leading dimensions, and alpha / beta including beta 0 over a NaN-filled C. */
CFX_TEST(linear, sgemm_paths_match_reference) {
    static const int64_t shapes[][3] = {{64, 9, 256},  {64, 256, 9},  {9, 256, 64}, {1, 512, 1024},
                                        {3, 100, 37},  {1, 1, 1},     {5, 17, 33},  {40, 50, 60},
                                        {300, 9, 300}, {48, 200, 300}};
    enum { NS = sizeof shapes / sizeof shapes[0] };
    cfx_rng r;
    cfx_rng_init(&r, 11);
    /* One pass more: the last shape on 2 threads, the column split of src/blas.c. */
    for (size_t s = 0; s <= NS; s++)
        for (int t = 0; t < 4; t++)
            for (int ab = 0; ab < 3; ab++) {
                const int64_t *sh = shapes[s < NS ? s : NS - 1];
                sgemm_case(&r, t & 1, t >> 1, sh[0], sh[1], sh[2], ab, s < NS ? 1 : 2, false, false,
                           false);
            }
}

/* On more than one thread a GEMM with B transposed (Linear's forward) is split by hand into one
 * column block per thread (src/blas.c); it must give what one thread gives, for a width that
 * does not split evenly into 16-column blocks, with a bias (beta 1) and without (beta 0). */
CFX_TEST(linear, forward_on_two_threads_matches_one) {
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        cfx_graph *g = cfx_graph_new();
        int x = cfx_graph_input(g, "x", 2, (int64_t[]){37, 300});
        int w = cfx_graph_param(g, "w", 2, (int64_t[]){200, 300});
        int b = with_bias ? cfx_graph_param(g, "b", 1, (int64_t[]){200}) : -1;
        int y = cfx_op_linear(g, x, w, b);
        CHECK_OK(cfx_graph_compile(g));
        gradcheck_fill(g, x, 5, 1.0f);
        CHECK_OK(cfx_graph_forward(g));
        const cfx_tensor *yt = cfx_graph_tensor(g, y);
        float *one = malloc((size_t)yt->numel * sizeof *one);
        memcpy(one, yt->data, (size_t)yt->numel * sizeof *one);
        cfx_set_threads(2);
        CHECK_OK(cfx_graph_forward(g));
        cfx_set_threads(1);
        CHECK_ARRAY_NEAR(yt->data, one, (size_t)yt->numel, 1e-5, 1e-5);
        free(one);
        cfx_graph_free(g);
    }
}

/* A B^T computed as (B A^T)^T through a work buffer (src/blas.c, Linear's and Gemm's forward):
 * against the reference loop with odd sizes (transposes of 8x8 blocks with ragged edges), on 1
 * and 2 threads, with and without a fused ReLU, and with a transpose large enough to be split
 * among the threads. */
CFX_TEST(linear, sgemm_nt_flipped_matches_reference) {
    static const int64_t shapes[][3] = {
        {17, 17, 17}, {37, 45, 300}, {64, 72, 1024}, {1100, 20, 1000}};
    cfx_rng r;
    cfx_rng_init(&r, 12);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int threads = 1; threads <= 2; threads++)
            for (int ab = 0; ab < 6; ab++)
                sgemm_case(&r, 0, 1, shapes[s][0], shapes[s][1], shapes[s][2], ab % 3, threads,
                           true, ab >= 3, false);
}

/* Fixed-shape products (cfx__gemm_plan, the trainer's head): against the reference loop for
 * every transpose, odd leading dimensions, C overwritten (over NaN) or added to, thin shapes
 * (which fall back to cfx_blas_sgemm) and the head's own; then two threads at once, each with
 * its own plan, as the head runs them. */
CFX_TEST(linear, gemm_plans_match_reference) {
    static const int64_t shapes[][3] = {{256, 64, 1024}, {64, 512, 128}, {40, 50, 60},
                                        {5, 64, 256},    {64, 9, 256},   {1, 1, 1}};
    cfx_rng r;
    cfx_rng_init(&r, 13);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int ab = 0; ab < 2; ab++)
                sgemm_case(&r, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], ab, 1,
                           false, false, true);
    const int64_t m = 96, n = 64, k = 300;
    float *a = malloc(2 * m * k * sizeof *a), *b = malloc(k * n * sizeof *b);
    float *c = malloc(2 * m * n * sizeof *c), *want = malloc(2 * m * n * sizeof *want);
    for (int64_t i = 0; i < 2 * m * k; i++) a[i] = (float)cfx_rng_normal(&r);
    for (int64_t i = 0; i < k * n; i++) b[i] = (float)cfx_rng_normal(&r);
    cfx_blas_sgemm_ref(0, 0, 2 * m, n, k, 1.0f, a, k, b, n, 0.0f, want, n);
#pragma omp parallel num_threads(2)
    {
        omp_set_num_threads(1);
        const int q = omp_get_thread_num();
        cfx__gemm_plan *p = cfx__gemm_plan_new(0, 0, m, n, k, k, n, n, false);
        if (p) cfx__gemm_plan_run(p, a + q * m * k, b, c + q * m * n);
        cfx__gemm_plan_free(p);
    }
    CHECK_ARRAY_NEAR(c, want, (size_t)(2 * m * n), 1e-5, 1e-4 * sqrt((double)k));
    free(a), free(b), free(c), free(want);
}

/* The double-precision wrappers of src/engine/blas.c (the metrics' covariances and FID's square
 * root) against their definitions: dgemm, dsyrk and dtrmm against plain loops, with odd leading
 * dimensions and NaN where a routine must not read or write; Cholesky by U^T U = A; the
 * eigendecomposition by A v = w v, orthonormal v, ascending w, and the same w without vectors. */
CFX_TEST(linear, double_products_and_lapack_match_their_definitions) {
    cfx_rng r;
    cfx_rng_init(&r, 5);
    enum { M = 13, N = 9, K = 17, L = 20 };
    double a[K * L], b[K * L], c[M * L], want[M * L];
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
            for (int i = 0; i < K * L; i++) a[i] = cfx_rng_normal(&r), b[i] = cfx_rng_normal(&r);
            for (int i = 0; i < M * ldc; i++) c[i] = want[i] = i % ldc < N ? 1.0 : 7.0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int p = 0; p < K; p++)
                        s += (ta ? a[p * lda + i] : a[i * lda + p]) *
                             (tb ? b[j * ldb + p] : b[p * ldb + j]);
                    want[i * ldc + j] = 2 * s + 0.5;
                }
            cfx__blas_dgemm(ta, tb, M, N, K, 2.0, a, lda, b, ldb, 0.5, c, ldc);
            double worst = 0;
            for (int i = 0; i < M * ldc; i++) worst = fmax(worst, fabs(c[i] - want[i]));
            CHECK_MSG(worst < 1e-12, "dgemm trans %d%d: worst error %g", ta, tb, worst);
        }
    /* dsyrk: C = A^T A / 3 + C (A 17 x 9) in the upper triangle of a 9 x 9 of ones, the lower
     * one left; first C = B B^T / 3 + C (B 9 x 17, row stride 20). */
    double s[N * N], u[N * N], t[N * N], tw[N * N];
    for (int trans = 0; trans < 2; trans++) {
        for (int i = 0; i < N * N; i++) s[i] = i % N >= i / N ? 1.0 : NAN;
        if (trans)
            cfx__blas_dsyrk(1, N, K, 1.0 / 3, a, N, 1.0, s, N);
        else
            cfx__blas_dsyrk(0, N, K, 1.0 / 3, b, K + 3, 1.0, s, N);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                double e = 1;
                for (int p = 0; p < K; p++)
                    e += trans ? a[p * N + i] * a[p * N + j] / 3
                               : b[i * (K + 3) + p] * b[j * (K + 3) + p] / 3;
                if (j >= i)
                    CHECK_NEAR(s[i * N + j], e, 1e-12);
                else
                    CHECK(isnan(s[i * N + j]));
            }
    }
    /* Make s symmetric positive definite (A^T A / 3 + 1); Cholesky gives U with U^T U = s. */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++) s[i * N + j] = s[j * N + i];
    memcpy(u, s, sizeof u);
    CHECK_OK(cfx__lapack_cholesky_upper(N, u));
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            CHECK(j >= i || u[i * N + j] == s[i * N + j]); /* the lower triangle is left */
            double e = 0;
            for (int p = 0; p <= CFX_MIN(i, j); p++) e += u[p * N + i] * u[p * N + j];
            CHECK_NEAR(e, s[i * N + j], 1e-10);
        }
    /* dtrmm with U's upper triangle (the lower one is NaN, so a read would show). */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++) u[i * N + j] = NAN;
    for (int right = 0; right < 2; right++)
        for (int trans = 0; trans < 2; trans++) {
            for (int i = 0; i < N * N; i++) t[i] = cfx_rng_normal(&r);
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++) {
                    double e = 0;
                    for (int p = 0; p < N; p++) {
                        int ui = right ? p : i, uj = right ? j : p; /* op(U)[ui][uj] */
                        if (trans) ui ^= uj, uj ^= ui, ui ^= uj;
                        double uv = uj >= ui ? u[ui * N + uj] : 0;
                        e += right ? t[i * N + p] * uv : uv * t[p * N + j];
                    }
                    tw[i * N + j] = e;
                }
            cfx__blas_dtrmm_upper(right, trans, N, N, u, N, t, N);
            for (int i = 0; i < N * N; i++) CHECK_NEAR(t[i], tw[i], 1e-11);
        }
    /* Not positive definite: refused. */
    double np[4] = {1, 2, 2, 1};
    CHECK_ERR(cfx__lapack_cholesky_upper(2, np), CFX_ENUMERIC);
    /* Eigen: s v_j = w_j v_j with v_j row j. */
    double v[N * N], w[N], w2[N];
    memcpy(v, s, sizeof v);
    CHECK_OK(cfx__lapack_eigh(N, v, w, true));
    for (int j = 0; j < N; j++) {
        CHECK(j == 0 || w[j] >= w[j - 1]);
        for (int i = 0; i < N; i++) {
            double sv = 0, dot = 0;
            for (int p = 0; p < N; p++) sv += s[i * N + p] * v[j * N + p];
            CHECK_NEAR(sv, w[j] * v[j * N + i], 1e-10);
            for (int p = 0; p < N; p++) dot += v[i * N + p] * v[j * N + p];
            CHECK_NEAR(dot, i == j, 1e-12);
        }
    }
    memcpy(v, s, sizeof v);
    CHECK_OK(cfx__lapack_eigh(N, v, w2, false));
    for (int j = 0; j < N; j++) CHECK_NEAR(w2[j], w[j], 1e-12 * fabs(w[N - 1]));
}

/* OpenBLAS and LAPACKE are opened when first used (src/engine/blas.c), not at process start:
 * `cfx --version` loads neither (the loader's own account, LD_DEBUG=libs), and after
 * cfx__blas_open both are in this process. */
CFX_TEST(linear, openblas_and_lapacke_load_on_first_use_not_at_start) {
    if (!cfx_test_cli_or_skip()) return;
    static char out[32768];
    int rc = cfx_test_cli_startup_libs(out, sizeof out);
    CHECK_MSG(rc == 0 && strstr(out, "find library=libc.so.6"), "exit %d: %.300s", rc, out);
    CHECK_MSG(!strstr(out, "libopenblas") && !strstr(out, "liblapacke"),
              "cfx --version loaded OpenBLAS or LAPACKE: %.2000s", out);
    CHECK_OK(cfx__blas_open());
    const char *libs[] = {"libopenblas.so.0", "liblapacke.so.3"};
    for (int i = 0; i < 2; i++) {
        void *h = dlopen(libs[i], RTLD_NOW | RTLD_NOLOAD);
        CHECK_MSG(h != NULL, "%s is not loaded after cfx__blas_open", libs[i]);
        if (h) dlclose(h);
    }
}
