/* cf.h - the state shared by the counterfactual modules (src/counterfactual/); not part of the
 * public API. method.c holds the interface and calls the others: gradient.c (IGD, FGD, LGD),
 * reco.c (decoding codes: Reco, and LNN's last step) and lnn.c (the nearest-candidate search),
 * which never call back into method.c; all of them use distance.c's image distances. */
#ifndef CFX_COUNTERFACTUAL_CF_H
#define CFX_COUNTERFACTUAL_CF_H

#include "base/base.h"
#include "competency/parce.h"
#include "counterfactual/distance.h"

struct cfx_cf {
    cfx_competency *c;
    cfx_cf_method method;
    cfx_cf_options o; /* with the defaults filled in */
    double threshold, gamma;
    int64_t batch; /* images per batch at most */
    int64_t img;   /* floats per image */
    cfx_competency_shape sh;
    /* Per batch, from the competency's own graph: rho(X) and encode(X) (batch entries,
     * batch x latent_dim); f(X) (batch x feature_dim) for FGD. */
    float *rho0, *latent, *features;
    /* Reco and LNN: the codes to decode (batch x latent_dim) and rho of their decoding. */
    float *codes, *rho1;
    /* D(X, X') of the records (and IGD's distance term: dterm), batch values of dist_out. */
    cfx_distance *dist;
    double *dist_out;
    cfx__distance_term dterm;
    /* IGD, FGD, LGD: one graph for the batch. var is the optimised input (pixels or a code, per
     * floats per image), ref the constant it is compared with (X, f(X) or z), term the
     * per-image distance or similarity, objective the per-image loss that backward starts
     * from. */
    cfx_graph *g;
    cfx__parce_net n;
    int var, ref, term, objective;
    int64_t per;
    cfx_optim *opt;
    /* Per image: still updated; failed (a non-finite rho or gradient); put back to its state
     * before the last update (prev, batch x per floats, holds that state). */
    bool *active, *failed, *restored;
    float *prev;
    /* Per-image stopping packs the images still optimised to the front of the graph's batch:
     * slot[j] is the image (of the batch) at row j. */
    int64_t *slot;
    /* LNN: the candidates above the threshold (copied, interleaved in groups of 8: lnn.c), their
     * rows in the calibration set, their norms (for the cosine), and the search's per-image
     * results. */
    float *cand;
    int64_t *cand_row, ncand;
    double *cand_norm;
    int64_t *best;
    double *best_d;
};

/* gradient.c: builds cf->g for cf->batch images; runs the optimisation of m images x (m x img
 * floats, with rho0, latent and features of them filled in), writing X' into out and
 * rho_after, steps, vector_term, failure and seconds (the share of the iterations that updated
 * the image; the caller adds the rest) into rec. */
cfx_status cfx__cf_gradient_build(cfx_cf *cf);
cfx_status cfx__cf_gradient_run(cfx_cf *cf, const float *x, int64_t m, float *out,
                                cfx_cf_record *rec);
/* reco.c: decodes m codes (m x latent_dim) into out and sets rec's rho_after. Reco decodes
 * cf->latent (an image x whose code is not finite fails and keeps x). */
cfx_status cfx__cf_decode(cfx_cf *cf, const float *codes, int64_t m, float *out,
                          cfx_cf_record *rec);
cfx_status cfx__cf_reco_run(cfx_cf *cf, const float *x, int64_t m, float *out, cfx_cf_record *rec);
/* lnn.c: keeps the candidates with rho > threshold; finds and decodes each image's nearest
 * (x: the batch's images, kept as they are for an image without a finite distance). */
cfx_status cfx__cf_lnn_init(cfx_cf *cf, const cfx_tensor *latents, const cfx_tensor *scores);
cfx_status cfx__cf_lnn_run(cfx_cf *cf, const float *x, int64_t m, float *out, cfx_cf_record *rec);

#endif
