/* evaluate.c - the metrics of a counterfactual run (the competency paper's validity,
 * similarity and realism), per method and per method and cause: success rate and mean rho
 * after; the cosine similarity of the classifier's features and of the latent codes of each
 * image and its counterfactual, over the successful ones; FID and KID of the counterfactuals
 * against reference images (the calibration split) on the FID network's features, and CMMD on
 * the CMMD network's; steps and seconds per image. The networks are the user's when given,
 * else the classifier's own feature tensor, and the labels say which. With a share (cfx evaluate
 * under mpirun) each process runs the networks on its whole batches of every image set and the
 * share's all-gather completes the rows; the metrics are then computed on each process. */
#include "metrics/metrics.h"

#include <math.h>
#include <string.h>

void cfx_evaluation_free(cfx_evaluation *e) {
    if (!e) return;
    cfx_free(e->rows);
    *e = (cfx_evaluation){0};
}

/* The rows of t selected by sel (n entries; NULL: all) as a new (count, d) tensor. */
static cfx_tensor *rows_of(const cfx_tensor *t, const uint8_t *sel, int64_t count) {
    const int64_t n = t->shape[0], d = t->numel / n;
    cfx_tensor *out = cfx_tensor_new(2, (int64_t[]){count > 0 ? count : 1, d});
    if (!out) return NULL;
    out->shape[0] = count, out->numel = count * d;
    for (int64_t i = 0, j = 0; i < n; i++)
        if (!sel || sel[i])
            memcpy(out->data + (j++) * d, t->data + i * d, (size_t)d * sizeof(float));
    return out;
}

/* This process's part of n images: all of them, or the share's block (whole batches). */
static void part_of(const cfx_evaluate_share *sh, int64_t n, int64_t batch, int64_t *lo,
                    int64_t *hi) {
    *lo = 0, *hi = n;
    if (sh->part) sh->part(sh->ctx, n, batch, lo, hi);
}

/* Rows [lo, hi) of images as a view (no copy). */
static cfx_tensor rows_view(const cfx_tensor *images, int64_t lo, int64_t hi) {
    const int64_t img = images->numel / images->shape[0];
    cfx_tensor v = *images;
    v.data = images->data + lo * img;
    v.shape[0] = hi - lo;
    v.numel = (hi - lo) * img;
    return v;
}

static cfx_status share_fill(const cfx_evaluate_share *sh, void *rows, int64_t n, size_t row_bytes,
                             int64_t batch) {
    return sh->fill ? sh->fill(sh->ctx, rows, n, row_bytes, batch) : CFX_OK;
}

/* Features of images through f into a new (n, dim) tensor: this process's rows, then the
 * others' from the share. */
static cfx_status features_of(cfx_features *f, const cfx_tensor *images,
                              const cfx_evaluate_share *sh, int64_t batch, cfx_tensor **out) {
    const int64_t n = images->shape[0], dim = cfx_features_dim(f);
    cfx_tensor *t = cfx_tensor_new(2, (int64_t[]){n, dim});
    if (!t) return CFX_ENOMEM;
    int64_t lo, hi;
    part_of(sh, n, batch, &lo, &hi);
    cfx_status s = CFX_OK;
    if (hi > lo) {
        cfx_tensor x = rows_view(images, lo, hi), y = rows_view(t, lo, hi);
        s = cfx_features_run(f, &x, &y);
    }
    if (s == CFX_OK) s = share_fill(sh, t->data, n, (size_t)dim * sizeof(float), batch);
    if (s != CFX_OK) {
        cfx_tensor_free(t);
        return s;
    }
    *out = t;
    return CFX_OK;
}

static cfx_status latents_of(cfx_competency *c, const cfx_tensor *images, int64_t dim,
                             const cfx_evaluate_share *sh, int64_t batch, cfx_tensor **out) {
    const int64_t n = images->shape[0];
    cfx_tensor *t = cfx_tensor_new(2, (int64_t[]){n, dim});
    if (!t) return CFX_ENOMEM;
    int64_t lo, hi;
    part_of(sh, n, batch, &lo, &hi);
    cfx_status s = CFX_OK;
    if (hi > lo) {
        cfx_tensor x = rows_view(images, lo, hi);
        s = cfx_competency_score(c, &x, &(cfx_competency_scores){.latent = t->data + lo * dim},
                                 NULL);
    }
    if (s == CFX_OK) s = share_fill(sh, t->data, n, (size_t)dim * sizeof(float), batch);
    if (s != CFX_OK) {
        cfx_tensor_free(t);
        return s;
    }
    *out = t;
    return CFX_OK;
}

/* LPIPS(X, X') of every image into out (n doubles), shared the same way. */
static cfx_status lpips_of(cfx_distance *d, const cfx_tensor *x, const cfx_tensor *y,
                           const cfx_evaluate_share *sh, int64_t batch, double *out) {
    const int64_t n = x->shape[0];
    int64_t lo, hi;
    part_of(sh, n, batch, &lo, &hi);
    if (hi > lo) {
        cfx_tensor a = rows_view(x, lo, hi), b = rows_view(y, lo, hi);
        cfx_status s = cfx_distance_run(d, &a, &b, out + lo);
        if (s != CFX_OK) return s;
    }
    return share_fill(sh, out, n, sizeof(double), batch);
}

/* Per method: the features of its counterfactuals on each network, and their latents. */
typedef struct {
    cfx_tensor *fid, *cmmd, *cls, *lat;
    double *lpips; /* LPIPS(X, X') of every image */
} method_features;

static void method_features_free(method_features *m) {
    cfx_tensor_free(m->fid), cfx_tensor_free(m->cmmd), cfx_tensor_free(m->cls);
    cfx_tensor_free(m->lat);
    cfx_free(m->lpips);
    *m = (method_features){0};
}

typedef struct {
    cfx_features *cls, *fid, *cmmd; /* fid and cmmd may be cls */
    cfx_fid_stats ref_stats;
    cfx_tensor *ref_fid, *ref_cmmd;
    cfx_tensor *orig_cls, *orig_lat;
    double ref_cmmd_self; /* CMMD's mean kernel over the reference set, computed once */
    uint64_t seed;
} nets;

/* One row: the images of method k with cause (NULL: all). */
static cfx_status evaluate_row(const cfx_run *r, const nets *nt, const method_features *mf, int k,
                               const char *cause, cfx_eval_row *row) {
    const int64_t n = r->n;
    uint8_t *sel = cfx_calloc((size_t)n, 1), *ok = cfx_calloc((size_t)n, 1);
    if (!sel || !ok) {
        cfx_free(sel), cfx_free(ok);
        return CFX_ENOMEM;
    }
    *row = (cfx_eval_row){.method = k, .cause = cause};
    cfx_run_tally t = cfx_run_tally_of(r, k, cause);
    row->images = t.n, row->success = t.success;
    row->rho_after = t.rho_after, row->steps = t.steps, row->seconds = t.seconds;
    for (int64_t i = 0; i < n; i++) {
        const cfx_run_result *e = &r->results[k * n + i];
        sel[i] = e->present && (!cause || (r->cause && !strcmp(r->cause[i], cause)));
        ok[i] = sel[i] && e->success;
    }
    cfx_status s = cfx_cosine_stats(nt->orig_cls, mf->cls, ok, NULL, &row->feature_similarity);
    /* LPIPS over the successful ones too: how far a valid counterfactual moved. */
    double sum = 0, sq = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++)
        if (ok[i]) sum += mf->lpips[i], sq += mf->lpips[i] * mf->lpips[i], cnt++;
    row->lpips.count = cnt;
    row->lpips.mean = cnt ? sum / (double)cnt : NAN;
    row->lpips.std =
        cnt ? sqrt(fmax(sq / (double)cnt - row->lpips.mean * row->lpips.mean, 0)) : NAN;
    if (s == CFX_OK) s = cfx_cosine_stats(nt->orig_lat, mf->lat, ok, NULL, &row->latent_similarity);
    row->fid = row->kid_mean = row->kid_std = row->cmmd = NAN;
    /* The distribution metrics over the method's counterfactuals of this group, successful or
     * not (they measure realism); a group of fewer than 2 images has none. */
    if (s == CFX_OK && t.n >= 2) {
        cfx_tensor *a = rows_of(mf->fid, sel, t.n), *b = rows_of(mf->cmmd, sel, t.n);
        if (!a || !b) s = CFX_ENOMEM;
        cfx_fid_stats st = {0};
        if (s == CFX_OK) s = cfx_fid_stats_init(&st, a);
        if (s == CFX_OK) s = cfx_fid_from_stats(&st, &nt->ref_stats, &row->fid);
        cfx_fid_stats_deinit(&st);
        cfx_kid_result kid = {0};
        if (s == CFX_OK) s = cfx_kid(a, nt->ref_fid, &(cfx_kid_options){.seed = nt->seed}, &kid);
        row->kid_mean = kid.mean, row->kid_std = kid.std;
        if (s == CFX_OK)
            s = cfx_cmmd(b, nt->ref_cmmd, &(cfx_cmmd_options){.b_self = nt->ref_cmmd_self},
                         &row->cmmd);
        cfx_tensor_free(a), cfx_tensor_free(b);
    }
    cfx_free(sel), cfx_free(ok);
    return s;
}

cfx_status cfx_evaluate(const cfx_run *r, cfx_competency *c, const cfx_evaluate_options *o,
                        cfx_evaluation *out) {
    *out = (cfx_evaluation){0};
    if (!r || !c || !o || !o->reference)
        return cfx_set_error(CFX_EINVAL, "evaluate: need a run, its competency and reference "
                                         "images");
    cfx_competency_shape shape;
    cfx_competency_shape_of(c, &shape);
    const cfx_tensor *ref = o->reference;
    if (shape.c != r->c || shape.h != r->h || shape.w != r->w || ref->ndim != 4 ||
        ref->shape[1] != r->c || ref->shape[2] != r->h || ref->shape[3] != r->w ||
        ref->shape[0] < 2)
        return cfx_set_error(CFX_ESHAPE,
                             "evaluate: the run's images (%d, %d, %d), the bundle's and the "
                             "reference images (at least 2) must have one shape",
                             r->c, r->h, r->w);
    nets nt = {.seed = o->seed};
    method_features mf[CFX_RUN_METHODS] = {{0}};
    cfx_distance *lpips = NULL;
    const char *cause[64];
    int ncause = cfx_run_causes(r, cause, 64);
    int nrows = 0;
    for (int k = 0; k < CFX_RUN_METHODS; k++) nrows += r->has[k] ? 1 + ncause : 0;
    out->rows = cfx_calloc((size_t)nrows, sizeof *out->rows);
    cfx_status s = out->rows ? CFX_OK : CFX_ENOMEM;
    int64_t batch = o->batch > 0 ? o->batch : 64;
    if (s == CFX_OK && !(nt.cls = cfx_features_new(&(cfx_features_spec){.competency = c})))
        s = CFX_EINVAL;
    nt.fid = nt.cmmd = nt.cls;
    if (s == CFX_OK && o->fid_model &&
        !(nt.fid = cfx_features_new(&(cfx_features_spec){.model = o->fid_model,
                                                         .tensor = o->fid_features,
                                                         .c = r->c,
                                                         .h = r->h,
                                                         .w = r->w,
                                                         .batch = batch})))
        s = CFX_EINVAL;
    if (s == CFX_OK && o->cmmd_model &&
        !(nt.cmmd = cfx_features_new(&(cfx_features_spec){.model = o->cmmd_model,
                                                          .tensor = o->cmmd_features,
                                                          .c = r->c,
                                                          .h = r->h,
                                                          .w = r->w,
                                                          .batch = batch})))
        s = CFX_EINVAL;
    /* The reference set, and the originals. */
    const cfx_evaluate_share *sh = &o->share;
    if (s == CFX_OK) s = features_of(nt.fid, ref, sh, batch, &nt.ref_fid);
    if (s == CFX_OK)
        s = nt.cmmd == nt.fid ? CFX_OK : features_of(nt.cmmd, ref, sh, batch, &nt.ref_cmmd);
    if (s == CFX_OK && !nt.ref_cmmd) nt.ref_cmmd = nt.ref_fid;
    if (s == CFX_OK) s = cfx_fid_stats_init(&nt.ref_stats, nt.ref_fid);
    if (s == CFX_OK) s = cfx_cmmd_self(nt.ref_cmmd, NULL, &nt.ref_cmmd_self);
    if (s == CFX_OK && !(lpips = cfx_distance_new(c, CFX_CF_DISTANCE_LPIPS, o->lpips_model, batch)))
        s = CFX_EINVAL;
    if (s == CFX_OK) s = features_of(nt.cls, r->images, sh, batch, &nt.orig_cls);
    if (s == CFX_OK) s = latents_of(c, r->images, shape.latent_dim, sh, batch, &nt.orig_lat);
    cfx_progress_report(&o->progress, "metrics", 0, nrows, NULL);
    int row = 0;
    for (int k = 0; s == CFX_OK && k < CFX_RUN_METHODS; k++) {
        if (!r->has[k]) continue;
        const cfx_tensor *x = r->counterfactuals[k];
        s = features_of(nt.cls, x, sh, batch, &mf[k].cls);
        if (s == CFX_OK && !(mf[k].lpips = cfx_malloc((size_t)r->n * sizeof(double))))
            s = CFX_ENOMEM;
        if (s == CFX_OK) s = lpips_of(lpips, r->images, x, sh, batch, mf[k].lpips);
        if (s == CFX_OK) s = latents_of(c, x, shape.latent_dim, sh, batch, &mf[k].lat);
        if (s == CFX_OK && nt.fid != nt.cls) s = features_of(nt.fid, x, sh, batch, &mf[k].fid);
        if (s == CFX_OK && nt.cmmd != nt.cls && nt.cmmd != nt.fid)
            s = features_of(nt.cmmd, x, sh, batch, &mf[k].cmmd);
        /* Borrowed views, not freed twice: method_features_free skips them below. */
        const cfx_tensor *fid = mf[k].fid ? mf[k].fid : mf[k].cls;
        const cfx_tensor *cm = mf[k].cmmd ? mf[k].cmmd : nt.cmmd == nt.fid ? fid : mf[k].cls;
        method_features view = {.fid = (cfx_tensor *)fid,
                                .cmmd = (cfx_tensor *)cm,
                                .cls = mf[k].cls,
                                .lat = mf[k].lat,
                                .lpips = mf[k].lpips};
        for (int q = -1; s == CFX_OK && q < ncause; q++) {
            s = evaluate_row(r, &nt, &view, k, q < 0 ? NULL : cause[q], &out->rows[row++]);
            cfx_progress_report(&o->progress, "metrics", row, nrows, NULL);
        }
        method_features_free(&mf[k]);
    }
    out->nrows = row;
    out->reference_images = ref->shape[0];
    snprintf(out->fid_label, sizeof out->fid_label, "%s", nt.fid ? cfx_features_label(nt.fid) : "");
    snprintf(out->lpips_label, sizeof out->lpips_label, "%s",
             lpips ? cfx_distance_label(lpips) : "");
    snprintf(out->cmmd_label, sizeof out->cmmd_label, "%s",
             nt.cmmd ? cfx_features_label(nt.cmmd) : "");
    cfx_distance_free(lpips);
    cfx_fid_stats_deinit(&nt.ref_stats);
    if (nt.ref_cmmd != nt.ref_fid) cfx_tensor_free(nt.ref_cmmd);
    cfx_tensor_free(nt.ref_fid), cfx_tensor_free(nt.orig_cls), cfx_tensor_free(nt.orig_lat);
    if (nt.fid != nt.cls) cfx_features_free(nt.fid);
    if (nt.cmmd != nt.cls) cfx_features_free(nt.cmmd);
    cfx_features_free(nt.cls);
    for (int k = 0; k < CFX_RUN_METHODS; k++) method_features_free(&mf[k]);
    if (s != CFX_OK) {
        cfx_evaluation_free(out);
        return cfx_error_context(s, "evaluate '%s'", r->dir);
    }
    return CFX_OK;
}
