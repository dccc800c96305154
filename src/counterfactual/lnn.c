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
 * fails on its own: it keeps X, and the batch goes on.
 *
 * The candidates are stored in groups of LANES, interleaved element by element (element k of
 * the group's candidates is LANES consecutive floats), so that one vector holds element k of
 * LANES candidates: the loop over the elements then runs LANES sums at once, each in its own
 * candidate's element order (the same double sums as one candidate at a time, so the same
 * choice and term). It scores PAIRS (image, group) pairs at once, which hides the additions'
 * latency: PAIRS images against one group (each group read once per PAIRS images) or, for the
 * images left over (a batch of 1), one image against PAIRS groups. The scalar loop it
 * replaced summed one candidate at a time, bound by the latency of each addition: LNN among
 * 9,164 candidates at batch 50 spent about 3.4 of its 4.5 ms per image there. */
#include "counterfactual/cf.h"

#include <math.h>
#include <stdio.h>

/* The norms' clamp of the cosine, as cfx_op_cosine_similarity's default. */
static const double cos_eps = 1e-8;

/* Candidates per interleaved group (8 doubles: one AVX-512 vector), and (image, group) pairs
 * scored together. */
enum { LANES = 8, PAIRS = 4 };

/* Candidate j's element k in the interleaved layout. */
static inline float cand_at(const float *cand, int64_t d, int64_t j, int64_t k) {
    return cand[(j / LANES) * LANES * d + k * LANES + j % LANES];
}

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
    const int64_t groups = (cf->ncand + LANES - 1) / LANES;
    /* Interleaved in groups of LANES; the last group's missing candidates are zeros, never
     * chosen. */
    cf->cand = cfx_calloc((size_t)(groups * LANES * d), sizeof *cf->cand);
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
        float *g = cf->cand + (k / LANES) * LANES * d + k % LANES;
        for (int64_t j = 0; j < d; j++) g[j * LANES] = row[j];
        cf->cand_row[k++] = i;
    }
    if (cf->o.vector == CFX_CF_VECTOR_COS) {
        cf->cand_norm = cfx_malloc((size_t)cf->ncand * sizeof *cf->cand_norm);
        if (!cf->cand_norm) return CFX_ENOMEM;
        for (int64_t j = 0; j < cf->ncand; j++) {
            double ss = 0;
            for (int64_t e = 0; e < d; e++) {
                double v = cand_at(cf->cand, d, j, e);
                ss += v * v;
            }
            cf->cand_norm[j] = fmax(sqrt(ss), cos_eps);
        }
    }
    return CFX_OK;
}

/* The scores of PAIRS (image, group) pairs at once: image q[t] (d floats) against the group
 * of LANES interleaved candidates g[t] (d x LANES floats). out[t][l] is the sum over k in
 * element order of |q_k - c_k|, (q_k - c_k)^2, or q_k c_k (the cosine's dot product) for
 * candidate l of g[t]. The pairs are PAIRS independent chains of additions. */
typedef double v8d __attribute__((vector_size(LANES * sizeof(double))));
typedef float v8f __attribute__((vector_size(LANES * sizeof(float))));
typedef int64_t v8l __attribute__((vector_size(LANES * sizeof(int64_t))));

/* Element k of group g as doubles (through a pointer: a vector argument or result would
 * depend on the clone's ISA). */
static inline void lanes_at(v8d *out, const float *g, int64_t k) {
    v8f f;
    memcpy(&f, g + k * LANES, sizeof f);
    *out = __builtin_convertvector(f, v8d);
}

/* The loop over the elements of the PAIRS pairs, with acc(s, a, c) adding one term. */
#define PAIR_LOOP(acc)                                                                             \
    for (int64_t k = 0; k < d; k++) {                                                              \
        v8d c0, c1, c2, c3;                                                                        \
        lanes_at(&c0, g0, k), lanes_at(&c1, g1, k), lanes_at(&c2, g2, k), lanes_at(&c3, g3, k);    \
        acc(s0, (double)q0[k], c0), acc(s1, (double)q1[k], c1);                                    \
        acc(s2, (double)q2[k], c2), acc(s3, (double)q3[k], c3);                                    \
    }
#define ACC_L1(s, a, c)                                                                            \
    ((s) += (v8d)((v8l)((a) - (c)) & INT64_MAX)) /* |a - c|: the sign bit cleared */
#define ACC_L2(s, a, c)  ((s) += ((a) - (c)) * ((a) - (c)))
#define ACC_DOT(s, a, c) ((s) += (a) * (c))

CFX_CLONES static void pair_scores(cfx_cf_vector kind, const float *const q[PAIRS],
                                   const float *const g[PAIRS], int64_t d,
                                   double out[PAIRS][LANES]) {
    v8d s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    const float *restrict q0 = q[0], *restrict q1 = q[1], *restrict q2 = q[2], *restrict q3 = q[3];
    const float *restrict g0 = g[0], *restrict g1 = g[1], *restrict g2 = g[2], *restrict g3 = g[3];
    switch (kind) {
        case CFX_CF_VECTOR_L2:
            PAIR_LOOP(ACC_L2);
            break;
        case CFX_CF_VECTOR_COS:
            PAIR_LOOP(ACC_DOT);
            break;
        default:
            PAIR_LOOP(ACC_L1);
            break;
    }
    memcpy(out[0], &s0, sizeof s0), memcpy(out[1], &s1, sizeof s1);
    memcpy(out[2], &s2, sizeof s2), memcpy(out[3], &s3, sizeof s3);
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

/* Query q's norm for the cosine (1 for the others). */
static double query_norm(cfx_cf_vector kind, const float *q, int64_t d) {
    if (kind != CFX_CF_VECTOR_COS) return 1;
    double ss = 0;
    for (int64_t k = 0; k < d; k++) ss += (double)q[k] * q[k];
    return fmax(sqrt(ss), cos_eps);
}

/* Takes candidates j0.. (n of them, scores s) for image i where strictly lower. */
static void take(cfx_cf_vector kind, const double *s, int64_t n, int64_t j0, double qn,
                 const double *cand_norm, int64_t *best, double *best_d) {
    for (int64_t l = 0; l < n; l++) {
        double v = kind == CFX_CF_VECTOR_COS ? -s[l] / (qn * cand_norm[j0 + l]) : s[l];
        if (v < *best_d) *best_d = v, *best = j0 + l;
    }
}

/* Images [lo, hi) of the batch q (d floats each): the nearest of the ncand candidates (cand
 * interleaved), a block of candidates at a time (rounded up to whole groups). PAIRS images at
 * a time against each group of the block; the images left over (fewer than PAIRS), one at a
 * time against PAIRS groups. Either way every image meets the candidates in ascending order. */
static void nearest(cfx_cf_vector kind, const float *restrict q, const float *restrict cand,
                    const double *restrict cand_norm, int64_t ncand, int64_t d, int64_t block,
                    int64_t *restrict best, double *restrict best_d, int64_t lo, int64_t hi) {
    const int64_t groups = (ncand + LANES - 1) / LANES;
    const int64_t gblock = CFX_MAX((block + LANES - 1) / LANES, 1);
    const int64_t whole = lo + (hi - lo) / PAIRS * PAIRS;
    double sc[PAIRS][LANES];
    const float *qs[PAIRS], *gs[PAIRS];
    for (int64_t i = lo; i < hi; i++) best[i] = -1, best_d[i] = INFINITY;
    for (int64_t b0 = 0; b0 < groups; b0 += gblock) {
        int64_t b1 = CFX_MIN(b0 + gblock, groups);
        for (int64_t i0 = lo; i0 < whole; i0 += PAIRS) {
            double qn[PAIRS];
            for (int t = 0; t < PAIRS; t++)
                qs[t] = q + (i0 + t) * d, qn[t] = query_norm(kind, qs[t], d);
            for (int64_t gi = b0; gi < b1; gi++) {
                for (int t = 0; t < PAIRS; t++) gs[t] = cand + gi * LANES * d;
                pair_scores(kind, qs, gs, d, sc);
                int64_t j0 = gi * LANES, nl = CFX_MIN((int64_t)LANES, ncand - j0);
                for (int t = 0; t < PAIRS; t++)
                    take(kind, sc[t], nl, j0, qn[t], cand_norm, best + i0 + t, best_d + i0 + t);
            }
        }
        for (int64_t i = whole; i < hi; i++) {
            double qn = query_norm(kind, q + i * d, d);
            for (int t = 0; t < PAIRS; t++) qs[t] = q + i * d;
            for (int64_t gi = b0; gi < b1; gi += PAIRS) {
                /* Past the block's end the pairs repeat its last group; their scores are unused. */
                for (int t = 0; t < PAIRS; t++) gs[t] = cand + CFX_MIN(gi + t, b1 - 1) * LANES * d;
                pair_scores(kind, qs, gs, d, sc);
                for (int t = 0; t < PAIRS && gi + t < b1; t++) {
                    int64_t j0 = (gi + t) * LANES, nl = CFX_MIN((int64_t)LANES, ncand - j0);
                    take(kind, sc[t], nl, j0, qn, cand_norm, best + i, best_d + i);
                }
            }
        }
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
        for (int64_t k = 0; k < d; k++) cf->codes[i * d + k] = cand_at(cf->cand, d, j, k);
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
