/* distance.c - the image distances D(X, X') of the counterfactual methods and of their records
 * (DESIGN.md, "Counterfactual methods" and "Metrics"): L2 and L1 over the pixels, 1 - SSIM,
 * and LPIPS, through a user's network or, without one, the LPIPS formula on the classifier's
 * own convolution feature maps. cfx.h ("distance") states each one's definition.
 *
 * One function, cfx__distance_add, puts D on two image values of a graph. cfx_distance_run
 * runs it in the object's own graph (the records' distances, and the metrics); IGD's
 * optimisation graph (gradient.c) adds it on its optimised image and differentiates through it.
 * L2 and L1 there are the loss op; the records' L2 and L1 are summed here in double instead.
 *
 * SSIM follows pytorch_msssim 1.0 (ssim() with data_range 1, win_size 11, win_sigma 1.5):
 * local statistics E[.] from a blur by one depthwise convolution per side, each a 1-D
 * Gaussian of 11 taps with no padding, skipped along a side shorter than the window
 * (pytorch_msssim warns and skips it too); then
 *   sigma_x^2 = E[X^2] - mu_x^2, sigma_y^2 = E[Y^2] - mu_y^2, sigma_xy = E[XY] - mu_x mu_y,
 *   SSIM map = l cs = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) * (2 sigma_xy + C2) /
 *              (sigma_x^2 + sigma_y^2 + C2),  C1 = 0.01^2, C2 = 0.03^2,
 * averaged over channels and positions. D = 1 - SSIM is formed without 1 - l cs (add_ssim
 * says how). The window is computed as pytorch_msssim's _fspecial_gauss_1d, in double and
 * rounded once.
 *
 * The built-in LPIPS. The layers are found once, in the classifier file (find_layers): each
 * Conv's output, moved past a BatchNormalization that is its only reader, then past an
 * activation that is its only reader. Per layer l, with unit-normalised channel vectors
 * (cfx_op_normalize, LPIPS's normalize_tensor with eps 1e-10):
 *   d_l = mean over positions of sum over channels of (n(f_l(X)) - n(f_l(X')))^2,  D = sum d_l.
 * The reference's side n(f_l(X)) does not change while IGD optimises X', so a separate graph
 * (the classifier cut at those layers, normalised: d->fg) computes it once per batch and the
 * distance's graph takes it as inputs. On X' the maps are either imported (the object's own
 * graph: the same import and ops as fg, so that D(X, X) is exactly 0) or, in IGD's graph,
 * those of the classifier that the competency already runs on X' (found by name), so that
 * LPIPS adds no second pass of the classifier per iteration.
 *
 * A user's LPIPS model is checked against its ONNX summary first (two inputs, one output,
 * channels), imported with its two inputs bound to the mapped images, and its output must
 * hold one value per image. */
#include "counterfactual/distance.h"
#include "competency/parce.h"

#include <math.h>
#include <stdio.h>

/* The window of pytorch_msssim: 11 taps, sigma 1.5. */
enum { SSIM_WIN = 11 };
static const double ssim_sigma = 1.5, ssim_c1 = 0.01 * 0.01, ssim_c2 = 0.03 * 0.03;
static const float lpips_eps = 1e-10f;
/* The smallest side given to a user's LPIPS model whose input size is dynamic. */
enum { LPIPS_MIN_SIDE = 32 };

struct cfx_distance {
    cfx_competency *c;
    cfx_cf_distance kind;
    char *model; /* the user's LPIPS file, or NULL */
    int64_t batch;
    cfx_competency_shape sh;
    /* Built-in LPIPS: the classifier's feature maps (their names in its file), and fg: the
     * classifier cut at them, normalised, on the reference images (input fg_in). */
    char **layers;
    int nlayers;
    cfx_graph *fg;
    int fg_in, *fg_out;
    /* A user's model: the channels and size its images are given at. */
    int mc, mh, mw;
    /* cfx_distance_run's graph (LPIPS and SSIM): inputs x, y and the term. */
    cfx_graph *g;
    int gx, gy;
    cfx__distance_term t;
};

/* The L2 or L1 distance of one image pair of n floats, in double. */
static double pixel_distance(cfx_cf_distance kind, const float *x, const float *y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - (double)x[i];
        s += kind == CFX_CF_DISTANCE_L1 ? fabs(d) : d * d;
    }
    return kind == CFX_CF_DISTANCE_L1 ? s / (double)n : sqrt(s);
}

void cfx__distance_term_deinit(cfx__distance_term *t) {
    if (!t) return;
    cfx_free(t->ref);
    t->ref = NULL;
    t->nref = 0;
}

/* ------------------------------------------------------------- built-in LPIPS --- */

/* The one node that reads value v, and reads it once; -1 otherwise. */
static int sole_reader(const cfx_graph *g, int v) {
    int who = -1;
    for (int id = v + 1; id < cfx_graph_num_values(g); id++) {
        if (cfx_graph_value_kind(g, id) != CFX_VALUE_NODE) continue;
        for (int k = 0; k < 8; k++) {
            if (cfx_graph_value_input(g, id, k) != v) continue;
            if (who >= 0) return -1;
            who = id;
        }
    }
    return who;
}

static bool op_is(const cfx_graph *g, int id, const char *const *names) {
    const char *op = id >= 0 ? cfx_graph_value_op(g, id) : NULL;
    for (int i = 0; op && names[i]; i++)
        if (!strcmp(op, names[i])) return true;
    return false;
}

/* The feature maps of the classifier file: see the file's comment. */
static cfx_status find_layers(cfx_distance *d, const char *path) {
    static const char *const bn[] = {"BatchNormalization", NULL};
    static const char *const act[] = {"Relu", "LeakyRelu", "Tanh", "Sigmoid", "Clip", NULL};
    cfx_graph *g = cfx_onnx_load(path, &(cfx_onnx_options){.batch = 1, .frozen = 1});
    if (!g) return cfx_error_context(CFX_EFORMAT, "built-in LPIPS: load classifier '%s'", path);
    cfx_status s = CFX_OK;
    int n = cfx_graph_num_values(g);
    d->layers = cfx_calloc((size_t)n, sizeof *d->layers);
    if (!d->layers) s = CFX_ENOMEM;
    for (int id = 0; s == CFX_OK && id < n; id++) {
        const char *op = cfx_graph_value_op(g, id);
        if (!op || strcmp(op, "Conv")) continue;
        int v = id, r = sole_reader(g, v);
        if (op_is(g, r, bn)) v = r, r = sole_reader(g, v);
        if (op_is(g, r, act)) v = r;
        const char *name = cfx_graph_value_name(g, v);
        if (!name)
            s = cfx_set_error(CFX_EINTERNAL,
                              "built-in LPIPS: classifier '%s': value %d has no name", path, v);
        else if (!(d->layers[d->nlayers++] = cfx_strdup(name)))
            s = CFX_ENOMEM;
    }
    cfx_graph_free(g);
    if (s == CFX_OK && d->nlayers == 0)
        s = cfx_set_error(CFX_EUNSUPPORTED,
                          "the built-in LPIPS compares the classifier's convolution feature "
                          "maps, and classifier '%s' has no Conv node; give an LPIPS model "
                          "(--lpips-model) or another distance",
                          path);
    return s;
}

/* Imports the classifier cut at d's layers into g on image value x (prefix), and normalises
 * each map: out[l] gets n(f_l(x)). */
static cfx_status import_layers(cfx_distance *d, cfx_graph *g, int x, const char *prefix,
                                int *out) {
    const char *path = cfx__competency_classifier(d->c);
    cfx_onnx_options o = {.frozen = 1,
                          .extra_outputs = (const char *const *)d->layers,
                          .n_extra_outputs = d->nlayers,
                          .outputs_only = 1,
                          .prefix = prefix};
    int nout = 0;
    if (cfx_onnx_import(g, path, &o, &x, 1, out, d->nlayers, &nout) != CFX_OK)
        return cfx_error_context(CFX_EFORMAT, "built-in LPIPS");
    if (nout != d->nlayers)
        return cfx_set_error(CFX_EINTERNAL, "built-in LPIPS: %d of %d feature maps imported", nout,
                             d->nlayers);
    for (int l = 0; l < d->nlayers; l++) out[l] = cfx_op_normalize(g, out[l], 1, lpips_eps);
    return CFX_OK;
}

/* The reference side's graph: x -> the classifier's layers, normalised, as outputs. */
static cfx_status build_reference(cfx_distance *d) {
    const cfx_competency_shape *sh = &d->sh;
    d->fg = cfx_graph_new();
    d->fg_out = cfx_calloc((size_t)d->nlayers, sizeof *d->fg_out);
    if (!d->fg || !d->fg_out) return CFX_ENOMEM;
    d->fg_in = cfx_graph_input(d->fg, "image", 4, (int64_t[]){d->batch, sh->c, sh->h, sh->w});
    CFX_TRY(import_layers(d, d->fg, d->fg_in, "reference/", d->fg_out));
    for (int l = 0; l < d->nlayers; l++) {
        char name[32];
        snprintf(name, sizeof name, "normalised_%d", l);
        if (d->fg_out[l] < 0 || cfx_graph_set_output(d->fg, d->fg_out[l], name) != CFX_OK)
            return cfx_error_context(CFX_EINVAL, "built-in LPIPS: normalise the feature maps");
    }
    if (cfx_graph_compile(d->fg) != CFX_OK)
        return cfx_error_context(CFX_EINVAL, "built-in LPIPS: the classifier's feature maps");
    return CFX_OK;
}

/* sum_l mean over positions of sum over channels of (ref_l - n(f_l(y)))^2, (N). */
static int lpips_formula(cfx_graph *g, int ref, int ny) {
    int diff = cfx_op_sub(g, ref, ny);
    int per_pos = cfx_op_reduce(g, cfx_op_mul(g, diff, diff), CFX_REDUCE_SUM, (int[]){1}, 1, 0);
    return cfx_op_reduce(g, per_pos, CFX_REDUCE_MEAN, (int[]){1, 2}, 2, 0);
}

static cfx_status add_builtin_lpips(cfx_distance *d, cfx_graph *g, int y, const char *prefix,
                                    cfx__distance_term *t) {
    int *ny = cfx_calloc((size_t)d->nlayers, sizeof *ny);
    t->ref = cfx_calloc((size_t)d->nlayers, sizeof *t->ref);
    if (!ny || !t->ref) {
        cfx_free(ny);
        return CFX_ENOMEM;
    }
    t->nref = d->nlayers;
    cfx_status s = CFX_OK;
    if (!prefix) {
        s = import_layers(d, g, y, "distance/classifier/", ny);
    } else {
        for (int l = 0; s == CFX_OK && l < d->nlayers; l++) {
            char name[1100];
            snprintf(name, sizeof name, "%s%s", prefix, d->layers[l]);
            int v = cfx_graph_find(g, name);
            if (v < 0)
                s = cfx_set_error(CFX_EINTERNAL, "built-in LPIPS: no value '%s' in the graph",
                                  name);
            ny[l] = cfx_op_normalize(g, v, 1, lpips_eps);
        }
    }
    int total = -1;
    for (int l = 0; s == CFX_OK && l < d->nlayers; l++) {
        const cfx_tensor *f = ny[l] >= 0 ? cfx_graph_tensor(g, ny[l]) : NULL;
        if (!f || f->ndim != 4) {
            s = cfx_set_error(CFX_EINTERNAL, "built-in LPIPS: feature map '%s' is not (N,C,H,W)",
                              d->layers[l]);
            break;
        }
        char name[48];
        snprintf(name, sizeof name, "distance/reference_%d", l);
        t->ref[l] = cfx_graph_input(g, name, 4, f->shape);
        int dl = lpips_formula(g, t->ref[l], ny[l]);
        total = total < 0 ? dl : cfx_op_add(g, total, dl);
    }
    cfx_free(ny);
    t->term = total;
    return s;
}

cfx_status cfx__distance_reference(cfx_distance *d, cfx_graph *g, const cfx__distance_term *t,
                                   const float *x, int64_t m) {
    if (t->nref == 0) return CFX_OK;
    const cfx_competency_shape *sh = &d->sh;
    const int64_t img = (int64_t)sh->c * sh->h * sh->w;
    for (int l = 0; l < t->nref; l++)
        if (cfx_graph_tensor(g, t->ref[l])->shape[0] != m)
            return cfx_set_error(CFX_EINTERNAL, "built-in LPIPS: the graph's batch is not %lld",
                                 (long long)m);
    /* fg runs in batches of at most d->batch; each map's rows go to their place in g. */
    for (int64_t first = 0; first < m; first += d->batch) {
        int64_t k = CFX_MIN(d->batch, m - first);
        if (cfx_graph_tensor(d->fg, d->fg_in)->shape[0] != k)
            CFX_TRY(cfx_graph_set_batch(d->fg, k));
        CFX_TRY(cfx_graph_replan(d->fg));
        memcpy(cfx_graph_tensor(d->fg, d->fg_in)->data, x + first * img,
               (size_t)(k * img) * sizeof(float));
        CFX_TRY(cfx_graph_forward(d->fg));
        for (int l = 0; l < t->nref; l++) {
            const cfx_tensor *src = cfx_graph_tensor(d->fg, d->fg_out[l]);
            cfx_tensor *dst = cfx_graph_tensor(g, t->ref[l]);
            int64_t per = src->numel / k;
            if (dst->numel != m * per)
                return cfx_set_error(CFX_EINTERNAL,
                                     "built-in LPIPS: the reference's map %d "
                                     "does not have the graph's shape",
                                     l);
            memcpy(dst->data + first * per, src->data, (size_t)src->numel * sizeof(float));
        }
    }
    return CFX_OK;
}

/* ----------------------------------------------------------------------- SSIM --- */

/* Blurs v (N,K,H,W) along axis 2 (vertical) or 3 with the window, one group per channel. */
static int blur(cfx_graph *g, int v, int k, int axis) {
    double w[SSIM_WIN], sum = 0;
    for (int i = 0; i < SSIM_WIN; i++) {
        double c = i - SSIM_WIN / 2;
        w[i] = exp(-(c * c) / (2 * ssim_sigma * ssim_sigma));
        sum += w[i];
    }
    float taps[6 * 3 * SSIM_WIN]; /* six maps of images of 1 or 3 channels */
    CFX_ASSERT(k <= 6 * 3);
    for (int c = 0; c < k; c++)
        for (int i = 0; i < SSIM_WIN; i++) taps[c * SSIM_WIN + i] = (float)(w[i] / sum);
    int64_t shape[4] = {k, 1, axis == 2 ? SSIM_WIN : 1, axis == 2 ? 1 : SSIM_WIN};
    int wv = cfx_graph_const(g, NULL, 4, shape, taps);
    return cfx_op_conv2d(g, v, wv, -1, &(cfx_conv2d_attr){.groups = k});
}

/* 1 - SSIM per image (N). With Dxy = Y - X, and B the blur:
 *   1 - l  = B(Dxy)^2 / (mu_x^2 + mu_y^2 + C1)
 *   1 - cs = (B(Dxy^2) - B(Dxy)^2) / (sigma_x^2 + sigma_y^2 + C2)
 *   1 - SSIM map = (1 - l) + l (1 - cs)
 * which is 1 - l cs exactly (2 sigma_xy = sigma_x^2 + sigma_y^2 - Var(Dxy)) without forming
 * l cs near 1: pytorch_msssim's float32 1 - l cs of two images 1e-2 apart keeps 3 or 4 digits,
 * this keeps 6, and its gradient at X' = X is exactly 0. */
static int add_ssim(cfx_graph *g, int x, int y, const cfx_competency_shape *sh) {
    const int c = sh->c;
    int dxy = cfx_op_sub(g, y, x);
    if (sh->h < SSIM_WIN && sh->w < SSIM_WIN) {
        /* Nothing is blurred: every sigma is 0, cs is 1, and 1 - SSIM is 1 - l per pixel.
         * (Building cs anyway would add terms that cancel exactly in value but not in the
         * gradient's rounding.) */
        int not_l =
            cfx_op_div(g, cfx_op_mul(g, dxy, dxy),
                       cfx_op_affine(g, cfx_op_add(g, cfx_op_mul(g, x, x), cfx_op_mul(g, y, y)), 1,
                                     (float)ssim_c1));
        return cfx_op_reduce(g, not_l, CFX_REDUCE_MEAN, (int[]){1, 2, 3}, 3, 0);
    }
    int stack[6] = {x, y, cfx_op_mul(g, x, x), cfx_op_mul(g, y, y), dxy, cfx_op_mul(g, dxy, dxy)};
    int e = cfx_op_concat(g, stack, 6, 1); /* (N, 6C, H, W) */
    if (sh->h >= SSIM_WIN) e = blur(g, e, 6 * c, 2);
    if (sh->w >= SSIM_WIN) e = blur(g, e, 6 * c, 3);
    int part[6];
    for (int k = 0; k < 6; k++)
        part[k] = cfx_op_slice(g, e, 1, (int[]){1}, (int64_t[]){(int64_t)k * c},
                               (int64_t[]){(int64_t)(k + 1) * c}, NULL);
    int mu_x = part[0], mu_y = part[1], mu_d = part[4];
    int mu_xx = cfx_op_mul(g, mu_x, mu_x), mu_yy = cfx_op_mul(g, mu_y, mu_y);
    int mu_dd = cfx_op_mul(g, mu_d, mu_d);
    int var_sum = cfx_op_add(g, cfx_op_sub(g, part[2], mu_xx), cfx_op_sub(g, part[3], mu_yy));
    int var_d = cfx_op_sub(g, part[5], mu_dd);
    int not_l =
        cfx_op_div(g, mu_dd, cfx_op_affine(g, cfx_op_add(g, mu_xx, mu_yy), 1, (float)ssim_c1));
    int not_cs = cfx_op_div(g, var_d, cfx_op_affine(g, var_sum, 1, (float)ssim_c2));
    int map = cfx_op_add(g, not_l, cfx_op_mul(g, cfx_op_affine(g, not_l, -1, 1), not_cs));
    return cfx_op_reduce(g, map, CFX_REDUCE_MEAN, (int[]){1, 2, 3}, 3, 0);
}

/* ----------------------------------------------------------------- LPIPS model --- */

/* Checks the model's summary against the images; sets d->mc, mh, mw. */
static cfx_status check_model(cfx_distance *d, const char *path) {
    static const char *want = "an LPIPS model takes two image batches (N,3,H,W) in [-1, 1] "
                              "and gives one distance per image pair (the LPIPS module "
                              "exported with two inputs)";
    cfx_onnx_info *info = cfx_onnx_info_load(path);
    if (!info) return cfx_error_context(CFX_EFORMAT, "LPIPS model");
    cfx_status s = CFX_OK;
    const cfx_competency_shape *sh = &d->sh;
    if (info->n_inputs != 2 || info->n_outputs != 1) {
        s = cfx_set_error(CFX_ESHAPE, "LPIPS model '%s' has %d input%s and %d output%s; %s", path,
                          info->n_inputs, info->n_inputs == 1 ? "" : "s", info->n_outputs,
                          info->n_outputs == 1 ? "" : "s", want);
        goto done;
    }
    for (int k = 0; k < 2 && s == CFX_OK; k++) {
        const cfx_onnx_tensor_info *in = &info->inputs[k];
        char buf[64];
        cfx_tensor_shape_str(in->ndim, in->shape, buf, sizeof buf);
        int ch = in->ndim == 4 ? (int)in->shape[1] : 0;
        if (in->ndim != 4 || ch < 1)
            s = cfx_set_error(CFX_ESHAPE,
                              "LPIPS model '%s': its input '%s' %s is not an image "
                              "batch (N,C,H,W) with a fixed C; %s",
                              path, in->name ? in->name : "?", buf, want);
        else if (ch != sh->c && !(ch == 3 && sh->c == 1))
            s = cfx_set_error(CFX_ESHAPE,
                              "LPIPS model '%s': its input '%s' %s takes %d channel%s but the "
                              "images have %d (grey images are repeated to 3 channels, "
                              "nothing else is converted)",
                              path, in->name ? in->name : "?", buf, ch, ch == 1 ? "" : "s", sh->c);
        else if (k == 0)
            d->mc = ch, d->mh = (int)in->shape[2], d->mw = (int)in->shape[3];
        else if (ch != d->mc || in->shape[2] != d->mh || in->shape[3] != d->mw)
            s = cfx_set_error(CFX_ESHAPE, "LPIPS model '%s': its two inputs differ in shape; %s",
                              path, want);
    }
    const cfx_onnx_tensor_info *o = &info->outputs[0];
    for (int k = 1; s == CFX_OK && k < o->ndim; k++)
        if (o->shape[k] > 1) {
            char buf[64];
            cfx_tensor_shape_str(o->ndim, o->shape, buf, sizeof buf);
            s = cfx_set_error(CFX_ESHAPE,
                              "LPIPS model '%s': its output '%s' %s is not one value per "
                              "image; %s",
                              path, o->name ? o->name : "?", buf, want);
        }
    /* A fixed side is what the model takes; a dynamic one at least LPIPS_MIN_SIDE. */
    if (d->mh < 1) d->mh = CFX_MAX(sh->h, LPIPS_MIN_SIDE);
    if (d->mw < 1) d->mw = CFX_MAX(sh->w, LPIPS_MIN_SIDE);
done:
    cfx_onnx_info_free(info);
    return s;
}

/* An image batch v (N,C,H,W) in [0, 1] as the model takes it. */
static int model_input(const cfx_distance *d, cfx_graph *g, int v) {
    v = cfx_op_affine(g, v, 2, -1);
    if (d->mc == 3 && d->sh.c == 1) v = cfx_op_concat(g, (int[]){v, v, v}, 3, 1);
    if (d->mh != d->sh.h || d->mw != d->sh.w)
        v = cfx_op_resize(g, v,
                          &(cfx_resize_attr){.mode = CFX_RESIZE_BILINEAR,
                                             .coord = CFX_COORD_HALF_PIXEL,
                                             .out_h = d->mh,
                                             .out_w = d->mw});
    return v;
}

static cfx_status add_model(cfx_distance *d, cfx_graph *g, int x, int y, cfx__distance_term *t) {
    int bind[2] = {model_input(d, g, x), model_input(d, g, y)}, out = -1, n = 0;
    if (bind[0] < 0 || bind[1] < 0)
        return cfx_error_context(CFX_EINVAL, "LPIPS model '%s': map the images", d->model);
    cfx_onnx_options o = {.frozen = 1, .prefix = "distance/lpips/"};
    if (cfx_onnx_import(g, d->model, &o, bind, 2, &out, 1, &n) != CFX_OK)
        return cfx_error_context(CFX_EFORMAT, "LPIPS model");
    const cfx_tensor *ot = cfx_graph_tensor(g, out);
    int64_t batch = cfx_graph_tensor(g, x)->shape[0];
    if (ot->ndim < 1 || ot->shape[0] != batch || ot->numel != batch) {
        char buf[64];
        cfx_tensor_shape_str(ot->ndim, ot->shape, buf, sizeof buf);
        return cfx_set_error(CFX_ESHAPE,
                             "LPIPS model '%s': its output %s for a batch of %lld image pairs "
                             "is not one value per pair",
                             d->model, buf, (long long)batch);
    }
    t->term = cfx_op_reshape(g, out, 1, (int64_t[]){-1});
    return CFX_OK;
}

/* ------------------------------------------------------------------- the term --- */

cfx_status cfx__distance_add(cfx_distance *d, cfx_graph *g, int x, int y,
                             const char *features_prefix, cfx__distance_term *t) {
    *t = (cfx__distance_term){.term = -1};
    cfx_status s = CFX_OK;
    switch (d->kind) {
        case CFX_CF_DISTANCE_L2:
        case CFX_CF_DISTANCE_L1:
            t->term =
                cfx_op_loss(g, y, x, d->kind == CFX_CF_DISTANCE_L1 ? CFX_LOSS_L1 : CFX_LOSS_L2,
                            CFX_REDUCTION_NONE);
            break;
        case CFX_CF_DISTANCE_SSIM:
            t->term = add_ssim(g, x, y, &d->sh);
            break;
        default:
            s = d->model ? add_model(d, g, x, y, t)
                         : add_builtin_lpips(d, g, y, features_prefix, t);
            break;
    }
    if (s == CFX_OK && (t->term < 0 || cfx_graph_set_name(g, t->term, "distance") != CFX_OK))
        s = cfx_error_context(CFX_EINVAL, "build the %s distance", cfx_distance_label(d));
    return s;
}

/* ------------------------------------------------------------------ the object --- */

static cfx_status build_run_graph(cfx_distance *d) {
    const cfx_competency_shape *sh = &d->sh;
    const int64_t shape[4] = {d->batch, sh->c, sh->h, sh->w};
    d->g = cfx_graph_new();
    if (!d->g) return CFX_ENOMEM;
    d->gx = cfx_graph_input(d->g, "x", 4, shape);
    d->gy = cfx_graph_input(d->g, "y", 4, shape);
    CFX_TRY(cfx__distance_add(d, d->g, d->gx, d->gy, NULL, &d->t));
    CFX_TRY(cfx_graph_set_output(d->g, d->t.term, NULL));
    CFX_TRY(cfx_graph_enable_param_grads(d->g, 0));
    return cfx_graph_compile(d->g);
}

cfx_distance *cfx_distance_new(cfx_competency *c, cfx_cf_distance kind, const char *lpips_model,
                               int64_t batch) {
    if (!c || (unsigned)kind >= CFX_CF_DISTANCE_COUNT) {
        cfx_set_error(CFX_EINVAL, "distance: no competency or an unknown distance");
        return NULL;
    }
    cfx_distance *d = cfx_calloc(1, sizeof *d);
    if (!d) return NULL;
    d->c = c;
    d->kind = kind;
    d->batch = batch > 0 ? batch : 1;
    cfx_competency_shape_of(c, &d->sh);
    cfx_status s = CFX_OK;
    if (kind == CFX_CF_DISTANCE_LPIPS && lpips_model) {
        d->model = cfx_strdup(lpips_model);
        s = d->model ? check_model(d, lpips_model) : CFX_ENOMEM;
    } else if (kind == CFX_CF_DISTANCE_LPIPS) {
        s = find_layers(d, cfx__competency_classifier(c));
        if (s == CFX_OK) s = build_reference(d);
    }
    if (s == CFX_OK && (kind == CFX_CF_DISTANCE_LPIPS || kind == CFX_CF_DISTANCE_SSIM))
        s = build_run_graph(d);
    if (s != CFX_OK) {
        cfx_error_context(s, "distance %s", cfx_distance_label(d));
        cfx_distance_free(d);
        return NULL;
    }
    return d;
}

void cfx_distance_free(cfx_distance *d) {
    if (!d) return;
    for (int l = 0; d->layers && l < d->nlayers; l++) cfx_free(d->layers[l]);
    cfx_free(d->layers);
    cfx_graph_free(d->fg);
    cfx_free(d->fg_out);
    cfx_graph_free(d->g);
    cfx__distance_term_deinit(&d->t);
    cfx_free(d->model);
    cfx_free(d);
}

const char *cfx_distance_label(const cfx_distance *d) {
    if (!d) return "?";
    switch (d->kind) {
        case CFX_CF_DISTANCE_LPIPS:
            return d->model ? "LPIPS" : "LPIPS[classifier]";
        case CFX_CF_DISTANCE_L2:
            return "L2";
        case CFX_CF_DISTANCE_L1:
            return "L1";
        default:
            return "1-SSIM";
    }
}

cfx_status cfx_distance_run(cfx_distance *d, const cfx_tensor *x, const cfx_tensor *y,
                            double *out) {
    if (!d) return cfx_set_error(CFX_EINVAL, "distance: no distance object");
    const cfx_competency_shape *sh = &d->sh;
    if (!x || !y || !out || x->ndim != 4 || !cfx_tensor_same_shape(x, y) || x->shape[0] < 1 ||
        x->shape[1] != sh->c || x->shape[2] != sh->h || x->shape[3] != sh->w) {
        char a[64] = "none", b[64] = "none";
        if (x) cfx_tensor_shape_str(x->ndim, x->shape, a, sizeof a);
        if (y) cfx_tensor_shape_str(y->ndim, y->shape, b, sizeof b);
        return cfx_set_error(CFX_ESHAPE,
                             "distance %s: images %s and %s are not two batches of (N, %d, %d, "
                             "%d) with a value for each pair",
                             cfx_distance_label(d), a, b, sh->c, sh->h, sh->w);
    }
    const int64_t n = x->shape[0], img = (int64_t)sh->c * sh->h * sh->w;
    if (!d->g) {
        for (int64_t i = 0; i < n; i++)
            out[i] = pixel_distance(d->kind, x->data + i * img, y->data + i * img, img);
        return CFX_OK;
    }
    for (int64_t first = 0; first < n; first += d->batch) {
        int64_t m = CFX_MIN(d->batch, n - first);
        if (cfx_graph_tensor(d->g, d->gx)->shape[0] != m) CFX_TRY(cfx_graph_set_batch(d->g, m));
        CFX_TRY(cfx_graph_replan(d->g));
        size_t bytes = (size_t)(m * img) * sizeof(float);
        memcpy(cfx_graph_tensor(d->g, d->gx)->data, x->data + first * img, bytes);
        memcpy(cfx_graph_tensor(d->g, d->gy)->data, y->data + first * img, bytes);
        CFX_TRY(cfx__distance_reference(d, d->g, &d->t, x->data + first * img, m));
        CFX_TRY(cfx_graph_forward(d->g));
        const float *t = cfx_graph_tensor(d->g, d->t.term)->data;
        for (int64_t i = 0; i < m; i++) out[first + i] = t[i];
    }
    return CFX_OK;
}
