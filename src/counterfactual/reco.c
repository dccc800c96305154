/* reco.c - decoding codes into counterfactual images: Reco (the competency paper's
 * reconstruction baseline, X' = decode(encode(X))) and the last step of LNN. Decoding goes
 * through the competency's latent graph, which also scores the decoded image. */
#include "counterfactual/cf.h"

cfx_status cfx__cf_decode(cfx_cf *cf, const float *codes, int64_t m, float *out,
                          cfx_cf_record *rec) {
    cfx_tensor view = {.data = (float *)codes, .ndim = 2, .numel = m * cf->sh.latent_dim};
    view.shape[0] = m, view.shape[1] = cf->sh.latent_dim;
    cfx_competency_scores sc = {.rho = cf->rho1};
    CFX_TRY(cfx_competency_score_latent(cf->c, &view, &sc, NULL, out));
    for (int64_t i = 0; i < m; i++) rec[i].rho_after = cf->rho1[i];
    return CFX_OK;
}

cfx_status cfx__cf_reco_run(cfx_cf *cf, int64_t m, float *out, cfx_cf_record *rec) {
    return cfx__cf_decode(cf, cf->latent, m, out, rec);
}
