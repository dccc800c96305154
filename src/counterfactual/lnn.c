/* lnn.c - LNN, the latent nearest neighbour (the competency paper): among the calibration
 * images whose competency is above the threshold, the one whose latent code is nearest to
 * encode(X) in L1; the counterfactual is the decoding of that code.
 *
 * The search is exact and blocked: a block of candidates (256 by default, 256 x latent_dim
 * floats, which stays in cache) is compared with every image of the batch before the next
 * block is read, and each image keeps only its best row and distance so far. Memory is the
 * same for any number of candidates and no distance matrix is formed. Distances are summed in
 * double in element order; a candidate replaces the best only when strictly nearer, so ties go
 * to the lower calibration row. */
#include "counterfactual/cf.h"

#include <math.h>

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
    return CFX_OK;
}

/* Images [lo, hi) of the batch q (d floats each): the nearest of the ncand candidates. */
static void nearest(const float *restrict q, const float *restrict cand, int64_t ncand, int64_t d,
                    int64_t block, int64_t *restrict best, double *restrict best_d, int64_t lo,
                    int64_t hi) {
    for (int64_t i = lo; i < hi; i++) best[i] = -1, best_d[i] = INFINITY;
    for (int64_t b0 = 0; b0 < ncand; b0 += block) {
        int64_t b1 = CFX_MIN(b0 + block, ncand);
        for (int64_t i = lo; i < hi; i++) {
            const float *qi = q + i * d;
            for (int64_t j = b0; j < b1; j++) {
                const float *cj = cand + j * d;
                double s = 0;
                for (int64_t k = 0; k < d; k++) s += fabs((double)qi[k] - (double)cj[k]);
                if (s < best_d[i]) best_d[i] = s, best[i] = j;
            }
        }
    }
}

cfx_status cfx__cf_lnn_run(cfx_cf *cf, int64_t m, float *out, cfx_cf_record *rec) {
    const int64_t d = cf->sh.latent_dim;
    CFX_PARALLEL_RANGE(
        m, m > 1,
        nearest(cf->latent, cf->cand, cf->ncand, d, cf->o.lnn_block, cf->best, cf->best_d, lo, hi));
    for (int64_t i = 0; i < m; i++) {
        if (cf->best[i] < 0)
            return cfx_set_error(CFX_ENUMERIC,
                                 "LNN: image %lld of the batch has no finite distance to any "
                                 "candidate (a non-finite latent code?)",
                                 (long long)i);
        memcpy(cf->codes + i * d, cf->cand + cf->best[i] * d, (size_t)d * sizeof(float));
        rec[i].neighbour = cf->cand_row[cf->best[i]];
        rec[i].vector_term = cf->best_d[i];
    }
    return cfx__cf_decode(cf, cf->codes, m, out, rec);
}
