/* kid.c - the Kernel Inception Distance (Binkowski et al., "Demystifying MMD GANs", 2018) as
 * torch-fidelity computes it (metric_kid.py, after the paper's code): the unbiased estimate of
 * the squared maximum mean discrepancy with the polynomial kernel k(x, y) = (x.y / d + 1)^3,
 *   MMD^2 = (sum_{i != j} k(a_i, a_j) + sum_{i != j} k(b_i, b_j)) / (m (m - 1))
 *           - 2 sum_{i, j} k(a_i, b_j) / m^2,
 * on many pairs of random subsets of m rows, then the mean and the population deviation
 * (numpy.std) of the estimates.
 *
 * The subsets are drawn first, all of them, from one seeded stream, so that they depend on the
 * seed alone; cfx_kid_subsets gives them to a caller who wants to reproduce them. The three
 * Gram matrices of a subset pair (m x m each, m = 50 by default) are blocks of one: that of
 * the 2m rows stacked, converted to double, from one symmetric rank-k update (dsyrk), which
 * does two thirds of the work of three products. */
#include "engine/blas.h"
#include "metrics/metrics.h"

#include <math.h>

/* The defaults filled in and checked against the set sizes. */
static cfx_status resolve(int64_t n1, int64_t n2, const cfx_kid_options *o, int *subsets,
                          int64_t *m) {
    if (n1 < 2 || n2 < 2)
        return cfx_set_error(CFX_EINVAL,
                             "KID: the feature sets have %lld and %lld images; each needs at "
                             "least 2",
                             (long long)n1, (long long)n2);
    *subsets = o && o->subsets ? o->subsets : 100;
    *m = o && o->subset_size ? o->subset_size : CFX_MIN(50, CFX_MIN(n1, n2));
    if (*subsets < 1)
        return cfx_set_error(CFX_EINVAL, "KID: %d subsets; give at least 1", *subsets);
    if (*m < 2 || *m > CFX_MIN(n1, n2))
        return cfx_set_error(CFX_EINVAL,
                             "KID: subsets of %lld images cannot be drawn from sets of %lld and "
                             "%lld without replacement; the subset size must be 2 to %lld",
                             (long long)*m, (long long)n1, (long long)n2,
                             (long long)CFX_MIN(n1, n2));
    return CFX_OK;
}

/* m indices of 0..n-1 without replacement into out: a partial Fisher-Yates shuffle of the
 * identity p (n entries of scratch). */
static void draw(cfx_rng *r, int64_t n, int64_t m, int64_t *p, int64_t *out) {
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t j = 0; j < m; j++) {
        int64_t k = j + (int64_t)cfx_rng_below(r, (uint64_t)(n - j));
        int64_t t = p[j];
        p[j] = p[k], p[k] = t;
        out[j] = p[j];
    }
}

cfx_status cfx_kid_subsets(int64_t n1, int64_t n2, const cfx_kid_options *o, int64_t *idx_a,
                           int64_t *idx_b) {
    int subsets;
    int64_t m;
    CFX_TRY(resolve(n1, n2, o, &subsets, &m));
    int64_t *p = cfx_malloc((size_t)CFX_MAX(n1, n2) * sizeof *p);
    if (!p) return CFX_ENOMEM;
    cfx_rng r;
    cfx_rng_init(&r, o ? o->seed : 0);
    for (int s = 0; s < subsets; s++) {
        draw(&r, n1, m, p, idx_a + (int64_t)s * m);
        draw(&r, n2, m, p, idx_b + (int64_t)s * m);
    }
    cfx_free(p);
    return CFX_OK;
}

/* The kernel sums of one subset pair from the upper triangle of the Gram matrix g (2m x 2m) of
 * its rows stacked, A's m over B's: x.y -> (x.y / d + 1)^3, summed over the pairs of A (i != j),
 * of B (i != j), and over A x B, which is the block above the diagonal. */
static void kernel_sums(const double *g, int64_t m, int64_t d, double *kaa, double *kbb,
                        double *kab) {
    const int64_t ld = 2 * m;
    double s[3] = {0, 0, 0};
    for (int64_t i = 0; i < ld; i++)
        for (int64_t j = i + 1; j < ld; j++) {
            double k = g[i * ld + j] / (double)d + 1.0;
            /* Pairs within a set are each counted twice (i, j and j, i) in the sums. */
            s[i < m ? (j < m ? 0 : 2) : 1] += (i < m) == (j < m) ? 2 * k * k * k : k * k * k;
        }
    *kaa = s[0], *kbb = s[1], *kab = s[2];
}

cfx_status cfx_kid(const cfx_tensor *a, const cfx_tensor *b, const cfx_kid_options *o,
                   cfx_kid_result *out) {
    CFX_TRY(cfx__metrics_check_pair(a, b, 1, "KID"));
    CFX_TRY(cfx__blas_open());
    const int64_t n1 = a->shape[0], n2 = b->shape[0], d = a->shape[1];
    int subsets;
    int64_t m;
    CFX_TRY(resolve(n1, n2, o, &subsets, &m));
    int64_t *ia = cfx_malloc((size_t)(subsets * m) * sizeof *ia);
    int64_t *ib = cfx_malloc((size_t)(subsets * m) * sizeof *ib);
    double *z = cfx_malloc((size_t)(2 * m * d) * sizeof *z);
    double *g = cfx_malloc((size_t)(4 * m * m) * sizeof *g);
    double *mmd = cfx_malloc((size_t)subsets * sizeof *mmd);
    cfx_status s = ia && ib && z && g && mmd ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK) s = cfx_kid_subsets(n1, n2, o, ia, ib);
    for (int k = 0; s == CFX_OK && k < subsets; k++) {
        /* z: the subset of A over the subset of B (2m x d), and its Gram matrix in one SYRK. */
        cfx__metrics_rows_double(a->data, d, ia + (int64_t)k * m, 0, m, NULL, z);
        cfx__metrics_rows_double(b->data, d, ib + (int64_t)k * m, 0, m, NULL, z + m * d);
        cfx__blas_dsyrk(0, 2 * m, d, 1.0, z, d, 0.0, g, 2 * m);
        double kaa, kbb, kab;
        kernel_sums(g, m, d, &kaa, &kbb, &kab);
        mmd[k] = (kaa + kbb) / (double)(m * (m - 1)) - 2 * kab / (double)(m * m);
    }
    if (s == CFX_OK) {
        double mean = 0, var = 0;
        for (int k = 0; k < subsets; k++) mean += mmd[k];
        mean /= subsets;
        for (int k = 0; k < subsets; k++) var += (mmd[k] - mean) * (mmd[k] - mean);
        *out = (cfx_kid_result){
            .mean = mean, .std = sqrt(var / subsets), .subsets = subsets, .subset_size = m};
    }
    cfx_free(ia), cfx_free(ib), cfx_free(z), cfx_free(g), cfx_free(mmd);
    return s;
}
