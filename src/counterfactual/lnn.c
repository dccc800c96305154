/* lnn.c - LNN, the latent nearest neighbour (the competency paper): among the calibration
 * images whose competency is above the threshold, the one whose latent code is nearest to
 * encode(X) in L1; the counterfactual is the decoding of that code. The vector option changes
 * "nearest": l2 (Euclidean), or cos (the largest cosine similarity); l1 chooses as the default
 * does and reports the mean |z - z'| instead of the sum.
 *
 * The search is exact and blocked: a block of candidates (256 by default, 256 x latent_dim
 * floats, which stays in cache) is compared with every image of the batch before the next
 * block is read, and each image keeps only its best row and score so far. Memory is the
 * same for any number of candidates and no distance matrix is formed. Scores are summed in
 * double in element order (a sum of |d|, a sum of d^2, or minus the cosine, with the
 * candidates' norms computed once); a candidate replaces the best only when strictly lower,
 * so ties go to the lower calibration row. An image with no finite score (a non-finite code)
 * fails on its own: it keeps X, and the batch goes on. */
#include "counterfactual/cf.h"

#include <math.h>
#include <stdio.h>

/* The norms' clamp of the cosine, as cfx_op_cosine_similarity's default. */
static const double cos_eps = 1e-8;

cfx_status cfx__cf_lnn_init(cfx_cf *cf, const cfx_tensor *latents, const cfx_tensor *scores) {
    const int64_t d = cf->sh.latent_dim;
    if (!latents || !scores)
        return cfx_set_error(CFX_EINVAL, "LNN needs the calibration latents and their rho "
                                         "(calib_latents.npy and calib_scores.npy of a bundle)");
    int64_t n = latents->ndim >= 2 ? latents->shape[0] : 0;
    if (latents->ndim < 2 || latents->numel != n * d || scores->numel != n) {
        char a[64], b[64];
        cfx_tensor_shape_str(latents->ndim, latents->shape, a, sizeof a);
        cfx_tensor_shape_str(scores->ndim, scores->shape, b, sizeof b);
        return cfx_set_error(CFX_ESHAPE,
                             "LNN: the calibration latents %s and scores %s are not (N, %lld) "
                             "and (N)",
                             a, b, (long long)d);
    }
    double top = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (scores->data[i] > cf->threshold) cf->ncand++;
        if (scores->data[i] > top) top = scores->data[i];
    }
    if (cf->ncand == 0)
        return cfx_set_error(CFX_ENOTFOUND,
                             "LNN: none of the %lld calibration latents has rho above the "
                             "threshold %g (the highest is %g); lower the threshold or "
                             "calibrate on more images",
                             (long long)n, cf->threshold, n ? top : NAN);
    cf->cand = cfx_malloc((size_t)(cf->ncand * d) * sizeof *cf->cand);
    cf->cand_row = cfx_malloc((size_t)cf->ncand * sizeof *cf->cand_row);
    cf->best = cfx_malloc((size_t)cf->batch * sizeof *cf->best);
    cf->best_d = cfx_malloc((size_t)cf->batch * sizeof *cf->best_d);
    if (!cf->cand || !cf->cand_row || !cf->best || !cf->best_d) return CFX_ENOMEM;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!(scores->data[i] > cf->threshold)) continue;
        const float *row = latents->data + i * d;
        for (int64_t j = 0; j < d; j++)
            if (!isfinite(row[j]))
                return cfx_set_error(CFX_ENUMERIC,
                                     "LNN: calibration latent %lld holds a non-finite value",
                                     (long long)i);
        memcpy(cf->cand + k * d, row, (size_t)d * sizeof *row);
        cf->cand_row[k++] = i;
    }
    if (cf->o.vector == CFX_CF_VECTOR_COS) {
        cf->cand_norm = cfx_malloc((size_t)cf->ncand * sizeof *cf->cand_norm);
        if (!cf->cand_norm) return CFX_ENOMEM;
        for (int64_t j = 0; j < cf->ncand; j++) {
            double ss = 0;
            for (int64_t e = 0; e < d; e++) ss += (double)cf->cand[j * d + e] * cf->cand[j * d + e];
            cf->cand_norm[j] = fmax(sqrt(ss), cos_eps);
        }
    }
    return CFX_OK;
}

/* The score of candidate c for query q (lower is nearer): sum |q - c|, sum (q - c)^2, or
 * -cos(q, c) with the norms clamped at eps as cfx_op_cosine_similarity (qn, cn). */
static inline double score(cfx_cf_vector kind, const float *restrict q, const float *restrict c,
                           int64_t d, double qn, double cn) {
    double s = 0;
    switch (kind) {
        case CFX_CF_VECTOR_L2:
            for (int64_t k = 0; k < d; k++) {
                double e = (double)q[k] - (double)c[k];
                s += e * e;
            }
            return s;
        case CFX_CF_VECTOR_COS:
            for (int64_t k = 0; k < d; k++) s += (double)q[k] * (double)c[k];
            return -s / (qn * cn);
        default:
            for (int64_t k = 0; k < d; k++) s += fabs((double)q[k] - (double)c[k]);
            return s;
    }
}

/* Images [lo, hi) of the batch q (d floats each): the nearest of the ncand candidates. */
static void nearest(cfx_cf_vector kind, const float *restrict q, const float *restrict cand,
                    const double *restrict cand_norm, int64_t ncand, int64_t d, int64_t block,
                    int64_t *restrict best, double *restrict best_d, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) best[i] = -1, best_d[i] = INFINITY;
    for (int64_t b0 = 0; b0 < ncand; b0 += block) {
        int64_t b1 = CFX_MIN(b0 + block, ncand);
        for (int64_t i = lo; i < hi; i++) {
            const float *qi = q + i * d;
            double qn = 1;
            if (kind == CFX_CF_VECTOR_COS) {
                double ss = 0;
                for (int64_t k = 0; k < d; k++) ss += (double)qi[k] * qi[k];
                qn = fmax(sqrt(ss), cos_eps);
            }
            for (int64_t j = b0; j < b1; j++) {
                double s = score(kind, qi, cand + j * d, d, qn, cand_norm ? cand_norm[j] : 1);
                if (s < best_d[i]) best_d[i] = s, best[i] = j;
            }
        }
    }
}

/* The record's term from a score: the sum itself (default), the mean, the Euclidean distance,
 * or the cosine. */
static double reported(cfx_cf_vector kind, double s, int64_t d) {
    switch (kind) {
        case CFX_CF_VECTOR_L1:
            return s / (double)d;
        case CFX_CF_VECTOR_L2:
            return sqrt(s);
        case CFX_CF_VECTOR_COS:
            return -s;
        default:
            return s;
    }
}

cfx_status cfx__cf_lnn_run(cfx_cf *cf, const float *x, int64_t m, float *out, cfx_cf_record *rec) {
    const int64_t d = cf->sh.latent_dim;
    const cfx_cf_vector kind = cf->o.vector;
    CFX_PARALLEL_RANGE(m, m > 1,
                       nearest(kind, cf->latent, cf->cand, cf->cand_norm, cf->ncand, d,
                               cf->o.lnn_block, cf->best, cf->best_d, lo, hi));
    for (int64_t i = 0; i < m; i++) {
        /* Without a finite score the image is decoded from the first candidate, then put
         * back. */
        int64_t j = cf->best[i] >= 0 ? cf->best[i] : 0;
        memcpy(cf->codes + i * d, cf->cand + j * d, (size_t)d * sizeof(float));
        if (cf->best[i] < 0) continue;
        rec[i].neighbour = cf->cand_row[j];
        rec[i].vector_term = reported(kind, cf->best_d[i], d);
    }
    CFX_TRY(cfx__cf_decode(cf, cf->codes, m, out, rec));
    for (int64_t i = 0; i < m; i++) {
        if (cf->best[i] >= 0) continue;
        snprintf(rec[i].failure, sizeof rec[i].failure,
                 "no finite distance to any candidate (a non-finite latent code)");
        memcpy(out + i * cf->img, x + i * cf->img, (size_t)cf->img * sizeof(float));
        rec[i].rho_after = rec[i].rho_before;
    }
    return CFX_OK;
}
