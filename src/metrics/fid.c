/* fid.c - the Frechet Inception Distance (Heusel et al., "GANs trained by a two time-scale
 * update rule converge to a local Nash equilibrium", 2017) between two feature sets, as
 * pytorch-fid computes it, in double precision:
 *   FID = |mu_A - mu_B|^2 + tr(S_A) + tr(S_B) - 2 tr((S_A S_B)^(1/2))
 * mu: the column means; S: the unbiased covariances (divisor n - 1, numpy.cov's default).
 *
 * The covariance: the rows, centred and converted to double a block at a time (at most 64 MB),
 * go through a symmetric rank-k update (dsyrk, half the work of a general product), so no
 * double copy of the whole set is made.
 *
 * The trace of the matrix square root. pytorch-fid takes scipy.linalg.sqrtm(S_A S_B), a Schur
 * decomposition of a non-symmetric matrix, and its trace; that trace is the sum of the square
 * roots of the eigenvalues of S_A S_B, which are real and non-negative because S_A S_B is
 * similar to the symmetric positive semi-definite S_A^(1/2) S_B S_A^(1/2). So cfx computes
 * those eigenvalues from a symmetric matrix similar to S_A S_B, with LAPACK's symmetric
 * eigensolver (dsyevd, eigenvalues only), clamps tiny negative ones (rounding) to 0 and sums
 * their square roots: the same number, from a symmetric, backward-stable computation.
 *   - When S_A is positive definite (more images than features, none of them constant), its
 *     Cholesky factor S_A = U^T U (dpotrf) gives M = U S_B U^T: S_A S_B = U^T (U S_B U^T) U^-T.
 *     Two triangular products (dtrmm) form M.
 *   - Otherwise, the eigendecomposition S_A = V diag(l) V^T (dsyevd with vectors, l clamped
 *     at 0) gives S_A^(1/2) = V diag(l^(1/2)) V^T, and S_A^(1/2) S_B S_A^(1/2) = V M V^T with
 *     M = diag(l^(1/2)) V^T S_B V diag(l^(1/2)): M has its eigenvalues, and two general
 *     products (dgemm) form it.
 * Both routes are exact in exact arithmetic. The first is what makes FID fast: the
 * eigendecomposition with vectors of a 2048 x 2048 matrix takes about three times as long as
 * one without, and Cholesky is cheap (bench/metrics.sh times both routes). */
#include "engine/blas.h"
#include "metrics/metrics.h"

#include <math.h>

void cfx_fid_stats_deinit(cfx_fid_stats *s) {
    if (!s) return;
    cfx_free(s->mean);
    cfx_free(s->cov);
    s->mean = s->cov = NULL;
}

/* Copies the upper triangle of a (d x d) into its lower one. */
static void symmetrize(double *a, int64_t d) {
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i + 1; j < d; j++) a[j * d + i] = a[i * d + j];
}

static double *new_matrix(int64_t d) {
    size_t bytes;
    if (!cfx__mul_size((size_t)d * (size_t)d, sizeof(double), &bytes)) {
        cfx_set_error(CFX_ENOMEM, "a %lld x %lld matrix does not fit in memory", (long long)d,
                      (long long)d);
        return NULL;
    }
    return cfx_malloc(bytes);
}

cfx_status cfx_fid_stats_init(cfx_fid_stats *s, const cfx_tensor *features) {
    *s = (cfx_fid_stats){0};
    CFX_TRY(cfx__metrics_check(features, 2, "FID", "feature set"));
    CFX_TRY(cfx__blas_open());
    const int64_t n = features->shape[0], d = features->shape[1];
    /* Rows per block: at most 2^23 doubles (64 MB), at least 256 rows. */
    const int64_t block = CFX_MIN(n, CFX_MAX(256, ((int64_t)1 << 23) / d));
    s->n = n, s->d = d;
    s->mean = cfx_calloc((size_t)d, sizeof *s->mean);
    s->cov = new_matrix(d);
    double *t = cfx_malloc((size_t)(block * d) * sizeof *t);
    if (!s->mean || !s->cov || !t) {
        cfx_free(t);
        cfx_fid_stats_deinit(s);
        return CFX_ENOMEM;
    }
    const float *x = features->data;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) s->mean[j] += x[i * d + j];
    for (int64_t j = 0; j < d; j++) s->mean[j] /= (double)n;
    /* S = sum over blocks of T^T T / (n - 1), T the block's centred rows. */
    for (int64_t r0 = 0; r0 < n; r0 += block) {
        int64_t m = CFX_MIN(block, n - r0);
        cfx__metrics_rows_double(x, d, NULL, r0, m, s->mean, t);
        cfx__blas_dsyrk(1, d, m, 1.0 / (double)(n - 1), t, d, r0 == 0 ? 0.0 : 1.0, s->cov, d);
    }
    cfx_free(t);
    symmetrize(s->cov, d);
    return CFX_OK;
}

/* Sum of sqrt(max(w_i, 0)): the trace of the square root of a matrix with eigenvalues w. */
static double sum_sqrt(const double *w, int64_t d) {
    double t = 0;
    for (int64_t i = 0; i < d; i++) t += sqrt(fmax(w[i], 0.0));
    return t;
}

/* M = U S_B U^T from the Cholesky factor U (upper triangle of u) into m; false when S_A is
 * not positive definite (then m and u are garbage). */
static bool cholesky_route(const double *sa, const double *sb, int64_t d, double *u, double *m) {
    memcpy(u, sa, (size_t)(d * d) * sizeof *u);
    if (cfx__lapack_cholesky_upper(d, u) != CFX_OK) return false;
    memcpy(m, sb, (size_t)(d * d) * sizeof *m);
    cfx__blas_dtrmm_upper(false, false, d, d, u, d, m, d); /* U S_B */
    cfx__blas_dtrmm_upper(true, true, d, d, u, d, m, d);   /* (U S_B) U^T */
    return true;
}

/* M = diag(l^(1/2)) V^T S_B V diag(l^(1/2)) into m, from S_A = V diag(l) V^T (v: the
 * eigenvectors as rows, so V^T S_B V = v S_B v^T). */
static cfx_status eigen_route(const double *sa, const double *sb, int64_t d, double *v, double *m,
                              double *w) {
    memcpy(v, sa, (size_t)(d * d) * sizeof *v);
    CFX_TRY(cfx__lapack_eigh(d, v, w, true));
    double *t = new_matrix(d);
    if (!t) return CFX_ENOMEM;
    cfx__blas_dgemm(0, 0, d, d, d, 1.0, v, d, sb, d, 0.0, t, d); /* v S_B */
    cfx__blas_dgemm(0, 1, d, d, d, 1.0, t, d, v, d, 0.0, m, d);  /* (v S_B) v^T */
    cfx_free(t);
    for (int64_t i = 0; i < d; i++) w[i] = sqrt(fmax(w[i], 0.0));
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++) m[i * d + j] *= w[i] * w[j];
    return CFX_OK;
}

cfx_status cfx__fid_trace_sqrt(const double *sa, const double *sb, int64_t d, int route,
                               double *out) {
    double *a = new_matrix(d), *m = new_matrix(d), *w = cfx_malloc((size_t)d * sizeof *w);
    cfx_status s = a && m && w ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK && (route != 0 || !cholesky_route(sa, sb, d, a, m)))
        s = eigen_route(sa, sb, d, a, m, w);
    if (s == CFX_OK) s = cfx__lapack_eigh(d, m, w, false);
    if (s == CFX_OK) *out = sum_sqrt(w, d);
    cfx_free(a), cfx_free(m), cfx_free(w);
    return s == CFX_OK ? s : cfx_error_context(s, "FID: the square root of S_A S_B");
}

cfx_status cfx_fid_from_stats(const cfx_fid_stats *a, const cfx_fid_stats *b, double *fid) {
    if (!a || !b || !a->mean || !a->cov || !b->mean || !b->cov)
        return cfx_set_error(CFX_EINVAL, "FID: statistics not computed (cfx_fid_stats_init)");
    if (a->d != b->d)
        return cfx_set_error(CFX_ESHAPE,
                             "FID: the feature sets have %lld and %lld features per image; both "
                             "must come from the same network and tensor",
                             (long long)a->d, (long long)b->d);
    const int64_t d = a->d;
    double diff2 = 0, tr = 0, tr_sqrt = 0;
    for (int64_t j = 0; j < d; j++) {
        double e = a->mean[j] - b->mean[j];
        diff2 += e * e;
        tr += a->cov[j * d + j] + b->cov[j * d + j];
    }
    CFX_TRY(cfx__fid_trace_sqrt(a->cov, b->cov, d, 0, &tr_sqrt));
    *fid = diff2 + tr - 2 * tr_sqrt;
    return CFX_OK;
}

cfx_status cfx_fid(const cfx_tensor *a, const cfx_tensor *b, double *fid) {
    CFX_TRY(cfx__metrics_check_pair(a, b, 2, "FID"));
    cfx_fid_stats sa, sb;
    CFX_TRY(cfx_fid_stats_init(&sa, a));
    cfx_status s = cfx_fid_stats_init(&sb, b);
    if (s == CFX_OK) s = cfx_fid_from_stats(&sa, &sb, fid);
    cfx_fid_stats_deinit(&sa);
    cfx_fid_stats_deinit(&sb);
    return s;
}
