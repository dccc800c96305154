/* reco.c - decoding codes into counterfactual images: Reco (the competency paper's
 * reconstruction baseline, X' = decode(encode(X))) and the last step of LNN. Decoding goes
 * through the competency's latent graph, which also scores the decoded image. */
#include "counterfactual/cf.h"

#include <stdio.h>

cfx_status cfx__cf_decode(cfx_cf *cf, const float *codes, int64_t m, float *out,
                          cfx_cf_record *rec) {
    cfx_tensor view = {.data = (float *)codes, .ndim = 2, .numel = m * cf->sh.latent_dim};
    view.shape[0] = m, view.shape[1] = cf->sh.latent_dim;
    cfx_competency_scores sc = {.rho = cf->rho1};
    CFX_TRY(cfx_competency_score_latent(cf->c, &view, &sc, NULL, out));
    for (int64_t i = 0; i < m; i++) rec[i].rho_after = cf->rho1[i];
    return CFX_OK;
}

cfx_status cfx__cf_reco_run(cfx_cf *cf, const float *x, int64_t m, float *out, cfx_cf_record *rec) {
    /* A non-finite code cannot be decoded (the latent graph refuses it): its image fails on
     * its own and keeps X; the others are decoded as usual (the failed row as zeros). */
    const int64_t d = cf->sh.latent_dim;
    bool any = false;
    memcpy(cf->codes, cf->latent, (size_t)(m * d) * sizeof(float));
    for (int64_t i = 0; i < m; i++) {
        cfx_tensor row = {.data = cf->codes + i * d, .ndim = 1, .numel = d};
        if (cfx_tensor_find_nonfinite(&row) < 0) continue;
        memset(row.data, 0, (size_t)d * sizeof(float));
        snprintf(rec[i].failure, sizeof rec[i].failure, "non-finite latent code");
        any = true;
    }
    CFX_TRY(cfx__cf_decode(cf, any ? cf->codes : cf->latent, m, out, rec));
    for (int64_t i = 0; any && i < m; i++) {
        if (!rec[i].failure[0]) continue;
        memcpy(out + i * cf->img, x + i * cf->img, (size_t)cf->img * sizeof(float));
        rec[i].rho_after = rec[i].rho_before;
    }
    return CFX_OK;
}
