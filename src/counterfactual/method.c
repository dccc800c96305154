/* method.c - the counterfactual methods behind one interface (the competency paper's IGD, FGD,
 * Reco, LGD and LNN): options and their reference defaults, the batches, the per-image records
 * and their timing. The methods themselves are in gradient.c, reco.c and lnn.c.
 *
 * Every batch starts with one pass of the competency's own graph over the images, which gives
 * rho(X), encode(X) and f(X); each method then produces X' and rho(X'), and the records get
 * the image distance D(X, X') from a cfx_distance (distance.c: in double precision for L2 and
 * L1, through its graph for LPIPS and SSIM, the same graph-building as IGD's term). An image
 * whose rho or gradient stops being finite is recorded as a failure; the run goes on. */
#include "counterfactual/cf.h"

#include <math.h>
#include <stdio.h>
#include <strings.h>

static const char *const method_names[CFX_CF_COUNT] = {"igd", "fgd", "reco", "lgd", "lnn"};
static const char *const distance_names[CFX_CF_DISTANCE_COUNT] = {"lpips", "l2", "l1", "ssim"};
static const char *const vector_names[CFX_CF_VECTOR_COUNT] = {"default", "cos", "l1", "l2"};

const char *cfx_cf_method_name(cfx_cf_method m) {
    return m >= 0 && m < CFX_CF_COUNT ? method_names[m] : "?";
}

cfx_status cfx_cf_method_parse(const char *name, cfx_cf_method *out) {
    for (int m = 0; name && m < CFX_CF_COUNT; m++)
        if (!strcasecmp(name, method_names[m])) {
            *out = (cfx_cf_method)m;
            return CFX_OK;
        }
    return cfx_set_error(CFX_EINVAL,
                         "unknown counterfactual method '%s' (igd, fgd, reco, lgd, lnn)",
                         name ? name : "");
}

const char *cfx_cf_distance_name(cfx_cf_distance d) {
    return d >= 0 && d < CFX_CF_DISTANCE_COUNT ? distance_names[d] : "?";
}

cfx_status cfx_cf_distance_parse(const char *name, cfx_cf_distance *out) {
    for (int d = 0; name && d < CFX_CF_DISTANCE_COUNT; d++)
        if (!strcasecmp(name, distance_names[d])) {
            *out = (cfx_cf_distance)d;
            return CFX_OK;
        }
    return cfx_set_error(CFX_EINVAL, "unknown image distance '%s' (lpips, l2, l1, ssim)",
                         name ? name : "");
}

const char *cfx_cf_vector_name(cfx_cf_vector v) {
    return v >= 0 && v < CFX_CF_VECTOR_COUNT ? vector_names[v] : "?";
}

cfx_status cfx_cf_vector_parse(const char *name, cfx_cf_vector *out) {
    for (int v = 0; name && v < CFX_CF_VECTOR_COUNT; v++)
        if (!strcasecmp(name, vector_names[v])) {
            *out = (cfx_cf_vector)v;
            return CFX_OK;
        }
    return cfx_set_error(CFX_EINVAL, "unknown vector distance '%s' (default, cos, l1, l2)",
                         name ? name : "");
}

/* Fills in the defaults and checks the rest. */
static cfx_status resolve(cfx_cf *cf, const cfx_cf_options *in) {
    cfx_cf_options o = in ? *in : (cfx_cf_options){0};
    const cfx_parce *p = cfx_competency_parce(cf->c);
    if (!p)
        return cfx_set_error(CFX_EINVAL, "the competency has no calibration (fit one, or open a "
                                         "bundle)");
    cf->gamma = o.gamma == 0 ? 0.1 : o.gamma < 0 ? 0 : o.gamma;
    cf->threshold = o.threshold != 0 ? o.threshold : p->threshold > 0 ? p->threshold : 0.9;
    if (o.max_iter == 0) o.max_iter = 100;
    if (o.lnn_block == 0) o.lnn_block = 256;
    if (!isfinite(cf->gamma) || !(cf->threshold > 0 && cf->threshold <= 1) || o.max_iter < 0 ||
        o.lnn_block < 1 || (unsigned)o.distance >= CFX_CF_DISTANCE_COUNT ||
        (unsigned)o.vector >= CFX_CF_VECTOR_COUNT ||
        (o.stop != CFX_CF_STOP_PER_IMAGE && o.stop != CFX_CF_STOP_PER_BATCH))
        return cfx_set_error(CFX_EINVAL,
                             "counterfactual options: need a finite gamma, a threshold in (0, "
                             "1], max_iter >= 0, lnn_block >= 1, a known distance, vector "
                             "distance and stop rule");
    if (o.distance != CFX_CF_DISTANCE_LPIPS) o.lpips_model = NULL; /* not used */
    cf->o = o;
    return CFX_OK;
}

cfx_cf *cfx_cf_new(cfx_competency *c, cfx_cf_method m, const cfx_cf_options *o, int64_t batch,
                   const cfx_tensor *calib_latents, const cfx_tensor *calib_scores) {
    if (!c || m < 0 || m >= CFX_CF_COUNT) {
        cfx_set_error(CFX_EINVAL, "counterfactual: no competency or an unknown method");
        return NULL;
    }
    cfx_cf *cf = cfx_calloc(1, sizeof *cf);
    if (!cf) return NULL;
    cf->c = c;
    cf->method = m;
    cf->batch = batch > 0 ? batch : 1;
    cfx_competency_shape_of(c, &cf->sh);
    cf->img = (int64_t)cf->sh.c * cf->sh.h * cf->sh.w;
    cfx_status s = resolve(cf, o);
    if (s == CFX_OK) {
        size_t b = (size_t)cf->batch;
        cf->rho0 = cfx_malloc(b * sizeof(float));
        cf->rho1 = cfx_malloc(b * sizeof(float));
        cf->latent = cfx_malloc(b * (size_t)cf->sh.latent_dim * sizeof(float));
        cf->codes = cfx_malloc(b * (size_t)cf->sh.latent_dim * sizeof(float));
        cf->features = cfx_malloc(b * (size_t)cf->sh.feature_dim * sizeof(float));
        cf->dist_out = cfx_malloc(b * sizeof(double));
        if (!cf->rho0 || !cf->rho1 || !cf->latent || !cf->codes || !cf->features || !cf->dist_out)
            s = CFX_ENOMEM;
    }
    if (s == CFX_OK) {
        cf->dist = cfx_distance_new(c, cf->o.distance, cf->o.lpips_model, cf->batch);
        if (!cf->dist) s = CFX_EINVAL;
    }
    if (s == CFX_OK && (m == CFX_CF_IGD || m == CFX_CF_FGD || m == CFX_CF_LGD))
        s = cfx__cf_gradient_build(cf);
    if (s == CFX_OK && m == CFX_CF_LNN) s = cfx__cf_lnn_init(cf, calib_latents, calib_scores);
    if (s != CFX_OK) {
        cfx_error_context(s, "counterfactual %s", cfx_cf_method_name(m));
        cfx_cf_free(cf);
        return NULL;
    }
    return cf;
}

void cfx_cf_free(cfx_cf *cf) {
    if (!cf) return;
    cfx_graph_free(cf->g);
    cfx_optim_free(cf->opt);
    cfx_free(cf->active), cfx_free(cf->failed), cfx_free(cf->restored), cfx_free(cf->prev);
    cfx_free(cf->slot);
    cfx_free(cf->rho0), cfx_free(cf->rho1);
    cfx_free(cf->latent), cfx_free(cf->codes), cfx_free(cf->features);
    cfx_distance_free(cf->dist);
    cfx_free(cf->dist_out);
    cfx__distance_term_deinit(&cf->dterm);
    cfx_free(cf->cand), cfx_free(cf->cand_row), cfx_free(cf->cand_norm);
    cfx_free(cf->best), cfx_free(cf->best_d);
    cfx_free(cf);
}

double cfx_cf_threshold(const cfx_cf *cf) {
    return cf->threshold;
}

const char *cfx_cf_distance_label(const cfx_cf *cf) {
    return cf ? cfx_distance_label(cf->dist) : "?";
}

/* One batch of m images: x (m x img) -> out, records rec. */
static cfx_status run_batch(cfx_cf *cf, const float *x, int64_t m, float *out, cfx_cf_record *rec) {
    double t0 = cfx_now();
    cfx_tensor view = {.data = (float *)x, .ndim = 4, .numel = m * cf->img};
    view.shape[0] = m, view.shape[1] = cf->sh.c, view.shape[2] = cf->sh.h, view.shape[3] = cf->sh.w;
    cfx_competency_scores sc = {.rho = cf->rho0, .latent = cf->latent};
    if (cf->method == CFX_CF_FGD) sc.features = cf->features;
    CFX_TRY(cfx_competency_score(cf->c, &view, &sc, NULL));
    for (int64_t i = 0; i < m; i++)
        rec[i] = (cfx_cf_record){
            .method = cf->method, .rho_before = cf->rho0[i], .vector_term = NAN, .neighbour = -1};
    switch (cf->method) {
        case CFX_CF_RECO:
            CFX_TRY(cfx__cf_reco_run(cf, x, m, out, rec));
            break;
        case CFX_CF_LNN:
            CFX_TRY(cfx__cf_lnn_run(cf, x, m, out, rec));
            break;
        default:
            CFX_TRY(cfx__cf_gradient_run(cf, x, m, out, rec));
            break;
    }
    /* What the method did not attribute to an image (the batch's set-up, the last forward) is
     * shared equally, so the records add up to the batch's wall time. The records' distances
     * are measurements, not part of the method: they come after. */
    double own = 0;
    for (int64_t i = 0; i < m; i++) own += rec[i].seconds;
    double rest = fmax(cfx_now() - t0 - own, 0) / (double)m;
    for (int64_t i = 0; i < m; i++) {
        rec[i].seconds += rest;
        if (!rec[i].failure[0] && !isfinite(rec[i].rho_after))
            snprintf(rec[i].failure, sizeof rec[i].failure, "non-finite rho");
        rec[i].success = !rec[i].failure[0] && rec[i].rho_after >= cf->threshold;
        /* A failed image that has no finite X' (a decoding of a non-finite code) keeps X. */
        cfx_tensor xi = {.data = out + i * cf->img, .ndim = 1, .numel = cf->img};
        if (rec[i].failure[0] && cfx_tensor_find_nonfinite(&xi) >= 0) {
            memcpy(xi.data, x + i * cf->img, (size_t)cf->img * sizeof(float));
            rec[i].rho_after = rec[i].rho_before;
        }
    }
    cfx_tensor after = view;
    after.data = out;
    CFX_TRY(cfx_distance_run(cf->dist, &view, &after, cf->dist_out));
    for (int64_t i = 0; i < m; i++) rec[i].distance = cf->dist_out[i];
    return CFX_OK;
}

cfx_status cfx_cf_run(cfx_cf *cf, const cfx_tensor *images, cfx_tensor *out,
                      cfx_cf_record *records) {
    const char *name = cfx_cf_method_name(cf->method);
    const cfx_competency_shape *sh = &cf->sh;
    if (!images || images->ndim != 4 || images->shape[0] < 1 || images->shape[1] != sh->c ||
        images->shape[2] != sh->h || images->shape[3] != sh->w) {
        char buf[64] = "none";
        if (images) cfx_tensor_shape_str(images->ndim, images->shape, buf, sizeof buf);
        return cfx_set_error(CFX_ESHAPE,
                             "counterfactual %s: images %s do not fit the models, which take "
                             "(N, %d, %d, %d)",
                             name, buf, sh->c, sh->h, sh->w);
    }
    if (!out || !cfx_tensor_same_shape(out, images) || !records)
        return cfx_set_error(CFX_EINVAL,
                             "counterfactual %s: the output must have the images' shape and "
                             "there must be one record per image",
                             name);
    const int64_t n = images->shape[0];
    for (int64_t first = 0; first < n; first += cf->batch) {
        int64_t m = CFX_MIN(cf->batch, n - first);
        cfx_status s = run_batch(cf, images->data + first * cf->img, m, out->data + first * cf->img,
                                 records + first);
        if (s != CFX_OK)
            return cfx_error_context(s, "counterfactual %s: images %lld..%lld", name,
                                     (long long)first, (long long)(first + m - 1));
    }
    return CFX_OK;
}
