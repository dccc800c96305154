/* gradient.c - the counterfactual methods that descend a gradient: IGD and FGD over the pixels
 * of X', LGD over a latent code z' (the competency paper, section on counterfactuals).
 *
 * One graph per batch size, built once: the optimised input var, the competency networks and
 * rho on it (for LGD, on decode(var)), a constant input ref and a per-image term:
 *   IGD  term = D(X, X')              objective = -rho + gamma term
 *   FGD  term = cos(f(X), f(X'))      objective = -rho - gamma term
 *   LGD  term = cos(z, z')            objective = -rho - gamma term
 * The objective is one value per image. Backward from it with no seed is the gradient of the
 * batch's sum, and since the images never meet in the networks (inference mode: batch norm uses
 * its running statistics) each image's rows of that gradient are the gradient of its own
 * objective.
 *
 * The loop: forward; an image whose rho reached the threshold stops (per-image rule) or, under
 * the per-batch rule, all stop together once every rho has; after max_iter updates all stop;
 * otherwise backward and one Adam update. One cfx_optim spans the batch tensor. Its step count
 * advances once per iteration and the update is applied to the active images' ranges only.
 * Because an image, once stopped, is never updated again, every active image has been updated
 * at every iteration so far: its step count is the optimiser's and its moments are its own, so
 * it follows exactly plain Adam on its own pixels. Under the per-batch rule every image is
 * active at every update, which is plain Adam over the whole batch tensor. */
#include "counterfactual/cf.h"
#include "learn/optim.h"

#include <float.h>
#include <math.h>

cfx_status cfx__cf_gradient_build(cfx_cf *cf) {
    cfx_graph *g = cfx_graph_new();
    if (!g) return CFX_ENOMEM;
    cf->g = g;
    const cfx_competency_shape *sh = &cf->sh;
    const int64_t img[4] = {cf->batch, sh->c, sh->h, sh->w};
    cfx__parce_net *n = &cf->n;
    int image = -1;
    if (cf->method == CFX_CF_LGD) {
        int nd = 0;
        int64_t shape[CFX_MAX_DIMS];
        cfx__competency_latent_shape(cf->c, &nd, shape);
        shape[0] = cf->batch;
        cf->var = cfx_graph_input(g, "code", nd, shape);
        cf->ref = cfx_graph_input(g, "original_code", nd, shape);
        CFX_TRY(cfx__competency_decoder(cf->c, g, cf->var, "generator/", &image));
        CFX_TRY(cfx__competency_build(cf->c, g, image, n));
        n->x = image, n->code = cf->var;
        cf->term = cfx_op_cosine_similarity(g, cfx_op_flatten(g, cf->ref, 1),
                                            cfx_op_flatten(g, cf->var, 1), 1, 0);
        cf->per = sh->latent_dim;
    } else {
        image = cf->var = cfx_graph_input(g, "counterfactual", 4, img);
        CFX_TRY(cfx__competency_build(cf->c, g, image, n));
        n->x = image, n->code = -1;
        if (cf->method == CFX_CF_IGD) {
            cf->ref = cfx_graph_input(g, "original", 4, img);
            cfx_loss_kind kind = cf->o.distance == CFX_CF_DISTANCE_L1 ? CFX_LOSS_L1 : CFX_LOSS_L2;
            cf->term = cfx_op_loss(g, image, cf->ref, kind, CFX_REDUCTION_NONE);
        } else {
            cf->ref =
                cfx_graph_input(g, "original_features", 2, (int64_t[]){cf->batch, sh->feature_dim});
            cf->term =
                cfx_op_cosine_similarity(g, cf->ref, cfx_op_flatten(g, n->features, 1), 1, 0);
        }
        cf->per = cf->img;
    }
    /* A distance is added, a similarity subtracted. */
    double sign = cf->method == CFX_CF_IGD ? 1 : -1;
    cf->objective = cfx_op_neg(g, n->rho);
    if (cf->gamma > 0)
        cf->objective =
            cfx_op_add(g, cf->objective, cfx_op_affine(g, cf->term, (float)(sign * cf->gamma), 0));
    if (cf->objective < 0 || cfx_graph_set_output(g, cf->term, "term") != CFX_OK ||
        cfx_graph_set_output(g, cf->objective, "objective") != CFX_OK ||
        (image != cf->var && cfx_graph_set_output(g, image, "decoded") != CFX_OK))
        return cfx_error_context(CFX_EINVAL, "build the optimisation graph");
    CFX_TRY(cfx_graph_requires_grad(g, cf->var, 1));
    CFX_TRY(cfx_graph_compile(g));
    cfx__competency_write_constants(cf->c, g, n);
    cf->opt = cfx_optim_adam((size_t)(cf->batch * cf->per), &cf->o.adam);
    cf->active = cfx_calloc((size_t)cf->batch, sizeof *cf->active);
    if (!cf->opt || !cf->active) return CFX_ENOMEM;
    return CFX_OK;
}

/* Keeps floats [lo, hi) of x in [0, 1]. */
static void clip01(float *x, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) x[i] = fminf(fmaxf(x[i], 0.0f), 1.0f);
}

/* The iterations on the m images already loaded into the graph (see the file's comment). */
static cfx_status optimise(cfx_cf *cf, int64_t m, cfx_cf_record *rec) {
    cfx_graph *g = cf->g;
    float *var = cfx_graph_tensor(g, cf->var)->data;
    const int64_t per = cf->per;
    const bool per_batch = cf->o.stop == CFX_CF_STOP_PER_BATCH;
    const bool clip = cf->o.clip && cf->method != CFX_CF_LGD;
    int64_t active = m;
    for (int64_t i = 0; i < m; i++) cf->active[i] = true;
    cfx_optim_reset(cf->opt);
    double t = cfx_now();
    for (int it = 0;; it++) {
        CFX_TRY(cfx_graph_forward(g));
        const float *rho = cfx_graph_tensor(g, cf->n.rho)->data;
        const float *term = cfx_graph_tensor(g, cf->term)->data;
        bool all = true;
        for (int64_t i = 0; i < m; i++) all = all && rho[i] >= cf->threshold;
        for (int64_t i = 0; i < m; i++) {
            if (!cf->active[i]) continue;
            bool passed = per_batch ? all : rho[i] >= cf->threshold;
            if (!passed && it < cf->o.max_iter) continue;
            cf->active[i] = false, active--;
            rec[i].steps = it;
            rec[i].rho_after = rho[i];
            if (cf->method != CFX_CF_IGD) rec[i].vector_term = term[i];
        }
        if (active == 0) break;
        CFX_TRY(cfx_graph_backward(g, cf->objective, NULL));
        const float *grad = cfx_graph_grad(g, cf->var);
        if (!grad) return cfx_set_error(CFX_EINTERNAL, "no gradient for the optimised input");
        for (int64_t i = 0; i < m; i++)
            if (cf->active[i] && cfx__optim_check_range(grad, (size_t)(i * per),
                                                        (size_t)((i + 1) * per), FLT_MAX) != CFX_OK)
                return cfx_error_context(CFX_ENUMERIC, "image %lld of the batch, iteration %d",
                                         (long long)i, it + 1);
        cfx__optim_tick(cf->opt);
        for (int64_t i = 0; i < m; i++) {
            if (!cf->active[i]) continue;
            cfx__optim_apply(cf->opt, var, grad, NULL, i * per, (i + 1) * per);
            if (clip) clip01(var, i * per, (i + 1) * per);
        }
        /* The iteration's time goes to the images it updated. */
        double now = cfx_now();
        for (int64_t i = 0; i < m; i++)
            if (cf->active[i]) rec[i].seconds += (now - t) / (double)active;
        t = now;
    }
    return CFX_OK;
}

cfx_status cfx__cf_gradient_run(cfx_cf *cf, const float *x, int64_t m, float *out,
                                cfx_cf_record *rec) {
    cfx_graph *g = cf->g;
    if (cfx_graph_tensor(g, cf->var)->shape[0] != m) CFX_TRY(cfx_graph_set_batch(g, m));
    CFX_TRY(cfx_graph_replan(g));
    float *var = cfx_graph_tensor(g, cf->var)->data, *ref = cfx_graph_tensor(g, cf->ref)->data;
    size_t img = (size_t)(m * cf->img) * sizeof(float);
    switch (cf->method) {
        case CFX_CF_IGD:
            memcpy(var, x, img), memcpy(ref, x, img);
            break;
        case CFX_CF_FGD:
            memcpy(var, x, img);
            memcpy(ref, cf->features, (size_t)(m * cf->sh.feature_dim) * sizeof(float));
            break;
        default: /* LGD starts from z' = z = encode(X) */
            memcpy(var, cf->latent, (size_t)(m * cf->per) * sizeof(float));
            memcpy(ref, cf->latent, (size_t)(m * cf->per) * sizeof(float));
            break;
    }
    CFX_TRY(optimise(cf, m, rec));
    /* The last forward saw every image's final state (a stopped image's stays put). */
    int image = cf->method == CFX_CF_LGD ? cf->n.x : cf->var;
    memcpy(out, cfx_graph_tensor(g, image)->data, img);
    return CFX_OK;
}
