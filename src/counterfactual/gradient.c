/* gradient.c - the counterfactual methods that descend a gradient: IGD and FGD over the pixels
 * of X', LGD over a latent code z' (the competency paper, section on counterfactuals).
 *
 * One graph per batch size, built once: the optimised input var, the competency networks and
 * rho on it (for LGD, on decode(var)), a constant input ref and a per-image term:
 *   IGD  term = D(X, X')              objective = -rho + gamma term
 *   FGD  term = cos(f(X), f(X'))      objective = -rho - gamma term
 *   LGD  term = cos(z, z')            objective = -rho - gamma term
 * D is distance.c's (cfx__distance_add, the same graph-building as the records' distances;
 * the built-in LPIPS reads the feature maps of the classifier that rho already runs on X', and
 * takes X's as inputs filled once per batch). FGD's and LGD's vector term may be an l1 or l2
 * distance instead of the cosine, which is then added like D. The objective is one value per
 * image. Backward from it with no seed is the gradient of the batch's sum, and since the
 * images never meet in the networks (inference mode: batch norm uses its running statistics)
 * each image's rows of that gradient are the gradient of its own objective.
 *
 * The loop: forward; an image whose rho reached the threshold stops (per-image rule) or, under
 * the per-batch rule, all stop together once every rho has; after max_iter updates all stop;
 * otherwise backward and one Adam update. One cfx_optim spans the batch tensor. Its step count
 * advances once per iteration and the update is applied to the active images' ranges only.
 * Because an image, once stopped, is never updated again, every active image has been updated
 * at every iteration so far: its step count is the optimiser's and its moments are its own, so
 * it follows exactly plain Adam on its own pixels. Under the per-batch rule every image is
 * active at every update, which is plain Adam over the whole batch tensor.
 *
 * Failures are per image. An image whose gradient is not finite stops where it is; one whose
 * rho is not finite goes back to its state before the last update (kept in prev: one copy of
 * the image's floats per update, next to the update's own passes over them) and stops there.
 * Either way it is recorded as failed and the others go on; the per-batch rule then waits for
 * the images that have not failed. */
#include "counterfactual/cf.h"
#include "learn/optim.h"

#include <float.h>
#include <math.h>
#include <stdio.h>

/* FGD's and LGD's vector term between ref and v (N, D...): a similarity or a distance. */
static int vector_term(const cfx_cf *cf, cfx_graph *g, int ref, int v) {
    switch (cf->o.vector) {
        case CFX_CF_VECTOR_L1:
            return cfx_op_loss(g, v, ref, CFX_LOSS_L1, CFX_REDUCTION_NONE);
        case CFX_CF_VECTOR_L2:
            return cfx_op_loss(g, v, ref, CFX_LOSS_L2, CFX_REDUCTION_NONE);
        default:
            return cfx_op_cosine_similarity(g, ref, v, 1, 0);
    }
}

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
        cf->term = vector_term(cf, g, cfx_op_flatten(g, cf->ref, 1), cfx_op_flatten(g, cf->var, 1));
        cf->per = sh->latent_dim;
    } else {
        image = cf->var = cfx_graph_input(g, "counterfactual", 4, img);
        CFX_TRY(cfx__competency_build(cf->c, g, image, n));
        n->x = image, n->code = -1;
        if (cf->method == CFX_CF_IGD) {
            cf->ref = cfx_graph_input(g, "original", 4, img);
            CFX_TRY(cfx__distance_add(cf->dist, g, cf->ref, image, "classifier/", &cf->dterm));
            cf->term = cf->dterm.term;
        } else {
            cf->ref =
                cfx_graph_input(g, "original_features", 2, (int64_t[]){cf->batch, sh->feature_dim});
            cf->term = vector_term(cf, g, cf->ref, cfx_op_flatten(g, n->features, 1));
        }
        cf->per = cf->img;
    }
    /* A distance is added, a similarity subtracted. */
    bool distance = cf->method == CFX_CF_IGD || cf->o.vector == CFX_CF_VECTOR_L1 ||
                    cf->o.vector == CFX_CF_VECTOR_L2;
    double sign = distance ? 1 : -1;
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
    size_t b = (size_t)cf->batch;
    cf->opt = cfx_optim_adam(b * (size_t)cf->per, &cf->o.adam);
    cf->active = cfx_calloc(b, sizeof *cf->active);
    cf->failed = cfx_calloc(b, sizeof *cf->failed);
    cf->restored = cfx_calloc(b, sizeof *cf->restored);
    cf->prev = cfx_malloc(b * (size_t)cf->per * sizeof *cf->prev);
    cf->slot = cfx_malloc(b * sizeof *cf->slot);
    if (!cf->opt || !cf->active || !cf->failed || !cf->restored || !cf->prev || !cf->slot)
        return CFX_ENOMEM;
    return CFX_OK;
}

/* Keeps floats [lo, hi) of x in [0, 1]. */
static void clip01(float *x, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) x[i] = fminf(fmaxf(x[i], 0.0f), 1.0f);
}

/* Stops active image i as failed, with the reason. */
static void fail(cfx_cf *cf, int64_t i, int64_t *active, cfx_cf_record *rec, const char *what,
                 int iteration) {
    cf->active[i] = false, cf->failed[i] = true, (*active)--;
    snprintf(rec[i].failure, sizeof rec[i].failure, "non-finite %s at iteration %d", what,
             iteration);
}

/* The values of the graph that hold one row per image (the optimised input, the constant it is
 * compared with, the distance's reference feature maps), for compaction. */
static int per_image_values(const cfx_cf *cf, int *ids) {
    int n = 0;
    ids[n++] = cf->var, ids[n++] = cf->ref;
    for (int k = 0; k < cf->dterm.nref && n < 64; k++) ids[n++] = cf->dterm.ref[k];
    return n;
}

/* Per-image stopping on a batch of *cur images of which only some are still optimised: the
 * stopped ones leave their X' in out (the last forward computed it, and they have not moved
 * since), the active ones move to the front, their rows of every per-image value and of Adam's
 * moments with them, and the graph is cut to their number. An image's arithmetic does not
 * change, only the batch it is computed in. */
static cfx_status compact(cfx_cf *cf, int64_t *cur, int64_t active, float *out) {
    cfx_graph *g = cf->g;
    const int64_t n = *cur, per = cf->per, img = cf->img;
    const float *x = cfx_graph_tensor(g, cf->method == CFX_CF_LGD ? cf->n.x : cf->var)->data;
    for (int64_t j = 0; j < n; j++)
        if (!cf->active[cf->slot[j]])
            memcpy(out + cf->slot[j] * img, x + j * img, (size_t)img * sizeof *out);
    int ids[64];
    const int nv = per_image_values(cf, ids);
    float *keep[64] = {0};
    int64_t row[64];
    cfx_status s = CFX_OK;
    for (int v = 0; v < nv && s == CFX_OK; v++) {
        const cfx_tensor *t = cfx_graph_tensor(g, ids[v]);
        row[v] = t->numel / n;
        if (!(keep[v] = cfx_malloc((size_t)(active * row[v]) * sizeof(float)))) s = CFX_ENOMEM;
        for (int64_t j = 0, k = 0; s == CFX_OK && j < n; j++)
            if (cf->active[cf->slot[j]])
                memcpy(keep[v] + (k++) * row[v], t->data + j * row[v],
                       (size_t)row[v] * sizeof(float));
    }
    if (s == CFX_OK) {
        for (int64_t j = 0, k = 0; j < n; j++) {
            if (!cf->active[cf->slot[j]]) continue;
            if (k != j) cfx__optim_move(cf->opt, k * per, j * per, per);
            cf->slot[k++] = cf->slot[j];
        }
        s = cfx_graph_set_batch(g, active);
        if (s == CFX_OK) s = cfx_graph_replan(g);
    }
    for (int v = 0; v < nv && s == CFX_OK; v++)
        memcpy(cfx_graph_tensor(g, ids[v])->data, keep[v],
               (size_t)(active * row[v]) * sizeof(float));
    for (int v = 0; v < nv; v++) cfx_free(keep[v]);
    if (s == CFX_OK) *cur = active;
    return s;
}

/* The iterations on the m images already loaded into the graph (see the file's comment); X'
 * into out (m x img floats). */
static cfx_status optimise(cfx_cf *cf, int64_t m, cfx_cf_record *rec, float *out) {
    cfx_graph *g = cf->g;
    const int64_t per = cf->per;
    const size_t bytes = (size_t)per * sizeof(float);
    const bool per_batch = cf->o.stop == CFX_CF_STOP_PER_BATCH;
    const bool clip = cf->o.clip && cf->method != CFX_CF_LGD;
    const bool vector = cf->method != CFX_CF_IGD;
    int64_t active = m, cur = m; /* images still optimised; images in the graph */
    bool restored = false;
    for (int64_t i = 0; i < m; i++) {
        cf->active[i] = true, cf->failed[i] = cf->restored[i] = false;
        cf->slot[i] = i;
    }
    cfx_optim_reset(cf->opt);
    double t = cfx_now();
    for (int it = 0;; it++) {
        CFX_TRY(cfx_graph_forward(g));
        float *var = cfx_graph_tensor(g, cf->var)->data;
        const float *rho = cfx_graph_tensor(g, cf->n.rho)->data;
        const float *term = cfx_graph_tensor(g, cf->term)->data;
        /* A non-finite rho: back to the state before the last update, whose rho was finite. */
        for (int64_t j = 0; j < cur; j++) {
            int64_t i = cf->slot[j];
            if (!cf->active[i] || isfinite(rho[j])) continue;
            fail(cf, i, &active, rec, "rho", it + 1);
            rec[i].steps = it > 0 ? it - 1 : 0;
            rec[i].rho_after = rho[j];
            if (vector) rec[i].vector_term = term[j];
            if (it > 0) {
                memcpy(var + j * per, cf->prev + j * per, bytes);
                cf->restored[i] = restored = true;
            }
        }
        bool all = true;
        for (int64_t j = 0; j < cur; j++)
            all = all && (cf->failed[cf->slot[j]] || rho[j] >= cf->threshold);
        for (int64_t j = 0; j < cur; j++) {
            int64_t i = cf->slot[j];
            if (!cf->active[i]) continue;
            bool passed = per_batch ? all : rho[j] >= cf->threshold;
            if (!passed && it < cf->o.max_iter) continue;
            cf->active[i] = false, active--;
            rec[i].steps = it;
            rec[i].rho_after = rho[j];
            if (vector) rec[i].vector_term = term[j];
        }
        if (active == 0) break;
        /* Once half the batch has stopped, the rest runs in a batch of its own size. (A restored
         * image's X' needs another forward, so a batch with one is left as it is.) */
        if (!per_batch && !restored && cur >= 4 && active <= cur / 2) {
            CFX_TRY(compact(cf, &cur, active, out));
            CFX_TRY(cfx_graph_forward(g));
            var = cfx_graph_tensor(g, cf->var)->data;
        }
        CFX_TRY(cfx_graph_backward(g, cf->objective, NULL));
        const float *grad = cfx_graph_grad(g, cf->var);
        if (!grad) return cfx_set_error(CFX_EINTERNAL, "no gradient for the optimised input");
        rho = cfx_graph_tensor(g, cf->n.rho)->data;
        term = cfx_graph_tensor(g, cf->term)->data;
        /* A non-finite gradient: the image stays where it is. */
        for (int64_t j = 0; j < cur; j++) {
            int64_t i = cf->slot[j];
            if (!cf->active[i] || cfx__optim_within(grad + j * per, per, FLT_MAX)) continue;
            fail(cf, i, &active, rec, "gradient", it + 1);
            rec[i].steps = it;
            rec[i].rho_after = rho[j];
            if (vector) rec[i].vector_term = term[j];
        }
        if (active == 0) break;
        cfx__optim_tick(cf->opt);
        for (int64_t j = 0; j < cur; j++) {
            if (!cf->active[cf->slot[j]]) continue;
            memcpy(cf->prev + j * per, var + j * per, bytes);
            cfx__optim_apply(cf->opt, var, grad, NULL, j * per, (j + 1) * per);
            if (clip) clip01(var, j * per, (j + 1) * per);
        }
        /* The iteration's time goes to the images it updated. */
        double now = cfx_now();
        for (int64_t j = 0; j < cur; j++)
            if (cf->active[cf->slot[j]]) rec[cf->slot[j]].seconds += (now - t) / (double)active;
        t = now;
    }
    if (restored) {
        /* One more forward for the restored images' rho, term and (LGD) decoding. */
        CFX_TRY(cfx_graph_forward(g));
        const float *rho = cfx_graph_tensor(g, cf->n.rho)->data;
        const float *term = cfx_graph_tensor(g, cf->term)->data;
        for (int64_t j = 0; j < cur; j++) {
            int64_t i = cf->slot[j];
            if (!cf->restored[i]) continue;
            rec[i].rho_after = rho[j];
            if (vector) rec[i].vector_term = term[j];
        }
    }
    /* The images still in the graph: the last forward saw their final state. */
    const float *x = cfx_graph_tensor(g, cf->method == CFX_CF_LGD ? cf->n.x : cf->var)->data;
    for (int64_t j = 0; j < cur; j++)
        memcpy(out + cf->slot[j] * cf->img, x + j * cf->img, (size_t)cf->img * sizeof(float));
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
            CFX_TRY(cfx__distance_reference(cf->dist, g, &cf->dterm, x, m));
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
    return optimise(cf, m, rec, out);
}
