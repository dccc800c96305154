/* measured.c - the measured explainer: which of the six causes of low competency (the
 * competency paper, section 4) most likely lowered competency on an image, how sure it is, and
 * one sentence with the measured numbers. No language model is involved.
 *
 * What a cause does to an image's statistics depends on the data (brightening a black
 * Fashion-MNIST background changes nothing; brightening a photograph lifts every pixel), so
 * the explainer learns it from the bundle's own calibration images instead of fixing
 * thresholds: it applies every image operation of src/data/corrupt.c at every factor of its
 * grid to a seeded sample of competent calibration images and keeps the results that fall
 * below the competency threshold, which is how `cfx competency examples` makes examples (from
 * the test split, which the explainer never sees). Calibration images that have low
 * competency as they are, and competent ones, are the samples of "spatial": their statistics
 * are those of ordinary images, so what is unfamiliar is their content, and the competency map
 * says where. An image is then described by its statistics (src/explain/stats.c) on a log
 * scale where a ratio matters (brightness, contrast, saturation, noise), and with a
 * counterfactual also by their difference to the counterfactual's: a log ratio, which is what
 * comparing with the counterfactual measures. The samples' counterfactual is their
 * reconstruction decode(encode(X)), the counterfactual every method starts from. The cause is
 * the vote of the k nearest samples after standardizing each feature, each sample's vote
 * weighted by one over the size of its cause, so that a cause with many samples does not win
 * by number alone. */
#include "explain/explain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { NF0 = CFX_STAT_COUNT, NF1 = 2 * CFX_STAT_COUNT, MAX_GRID = 8 };
/* The counterfactuals the explainer learns to compare with: reconstructions (Reco; IGD, FGD and
 * LGD start from the image or its code and stay near it), and LNN's decoded neighbours, which
 * are other images. */
enum { LEARN_RECO, LEARN_LNN, LEARN_COUNT };

struct cfx_explainer {
    int c, h, w, k;
    double threshold;
    int64_t n, cap;
    uint8_t *cause; /* n causes */
    /* n x NF0 features without a counterfactual, and n x NF1 with each learned kind of
     * counterfactual, standardized once learning ends. */
    float *f0, *f1[LEARN_COUNT];
    double mean0[NF0], sd0[NF0], mean1[LEARN_COUNT][NF1], sd1[LEARN_COUNT][NF1];
    bool learned[LEARN_COUNT];
    int64_t count[CFX_CAUSE_COUNT];
    double median[CFX_STAT_COUNT]; /* over the competent calibration sample */
};

/* Statistics on the scale the explainer compares them: logs where a factor multiplies them. */
static double scaled(int s, double v) {
    switch (s) {
        case CFX_STAT_BLACK:
        case CFX_STAT_WHITE:
        case CFX_STAT_SHADOWS:
        case CFX_STAT_HIGHLIGHTS:
        case CFX_STAT_BLOCKINESS:
            return v;
        default:
            return log(v + 0.01);
    }
}

/* The features of an image with statistics x and, when ref is not NULL, its counterfactual's. */
static void features(const double *x, const double *ref, float *out) {
    for (int s = 0; s < CFX_STAT_COUNT; s++) {
        out[s] = (float)scaled(s, x[s]);
        if (ref) out[NF0 + s] = (float)(scaled(s, x[s]) - scaled(s, ref[s]));
    }
}

void cfx_explainer_free(cfx_explainer *e) {
    if (!e) return;
    cfx_free(e->cause), cfx_free(e->f0);
    for (int l = 0; l < LEARN_COUNT; l++) cfx_free(e->f1[l]);
    cfx_free(e);
}

int64_t cfx_explainer_samples(const cfx_explainer *e, cfx_cause cause) {
    return e && cause >= 0 && cause < CFX_CAUSE_COUNT ? e->count[cause] : 0;
}

/* Adds one sample: an image and its learned counterfactuals (entries may be NULL). */
static cfx_status add(cfx_explainer *e, cfx_cause cause, const float *x,
                      const float *const cf[LEARN_COUNT]) {
    if (e->n == e->cap) {
        int64_t cap = e->cap ? 2 * e->cap : 1024;
        uint8_t *c = cfx_realloc(e->cause, (size_t)cap);
        if (!c) return CFX_ENOMEM;
        e->cause = c;
        float *f0 = cfx_realloc(e->f0, (size_t)cap * NF0 * sizeof *f0);
        if (!f0) return CFX_ENOMEM;
        e->f0 = f0;
        for (int l = 0; l < LEARN_COUNT; l++) {
            float *f1 = cfx_realloc(e->f1[l], (size_t)cap * NF1 * sizeof *f1);
            if (!f1) return CFX_ENOMEM;
            e->f1[l] = f1;
        }
        e->cap = cap;
    }
    double sx[CFX_STAT_COUNT], sr[CFX_STAT_COUNT];
    CFX_TRY(cfx_image_stats(x, e->c, e->h, e->w, sx));
    features(sx, NULL, e->f0 + e->n * NF0);
    for (int l = 0; l < LEARN_COUNT; l++) {
        if (!cf[l]) continue;
        CFX_TRY(cfx_image_stats(cf[l], e->c, e->h, e->w, sr));
        features(sx, sr, e->f1[l] + e->n * NF1);
    }
    e->cause[e->n++] = (uint8_t)cause;
    e->count[cause]++;
    return CFX_OK;
}

/* The learned counterfactuals of the first m images of batch into out[l] (m x C x H x W each;
 * methods[l] NULL: none) and their rho. */
static cfx_status counterfactuals(cfx_cf *const methods[LEARN_COUNT], const cfx_tensor *batch,
                                  int64_t m, cfx_cf_record *rec, float *rho,
                                  float *const out[LEARN_COUNT]) {
    cfx_tensor view = *batch;
    view.shape[0] = m, view.numel = m * (batch->numel / batch->shape[0]);
    for (int l = 0; l < LEARN_COUNT; l++) {
        if (!methods[l]) continue;
        cfx_tensor o = view;
        o.data = out[l];
        CFX_TRY(cfx_cf_run(methods[l], &view, &o, rec));
        if (l == LEARN_RECO)
            for (int64_t i = 0; i < m; i++) rho[i] = rec[i].rho_before;
    }
    return CFX_OK;
}

static void standardize(float *f, int64_t n, int d, double *mean, double *sd) {
    for (int j = 0; j < d; j++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < n; i++) s += f[i * d + j];
        mean[j] = s / (double)n;
        for (int64_t i = 0; i < n; i++) q += (f[i * d + j] - mean[j]) * (f[i * d + j] - mean[j]);
        sd[j] = fmax(sqrt(q / (double)n), 1e-6);
        for (int64_t i = 0; i < n; i++) f[i * d + j] = (float)((f[i * d + j] - mean[j]) / sd[j]);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

cfx_explainer *cfx_explainer_new(cfx_competency *c, const cfx_dataset *calib,
                                 const float *calib_rho, const cfx_explainer_options *o) {
    cfx_explainer_options d = o ? *o : (cfx_explainer_options){0};
    const cfx_parce *p = c ? cfx_competency_parce(c) : NULL;
    if (!p || !calib || !calib->images || !calib_rho) {
        cfx_set_error(CFX_EINVAL, "explainer: needs a calibrated competency, its calibration "
                                  "images and their rho");
        return NULL;
    }
    cfx_competency_shape sh;
    cfx_competency_shape_of(c, &sh);
    const cfx_tensor *im = calib->images;
    if (im->ndim != 4 || im->shape[1] != sh.c || im->shape[2] != sh.h || im->shape[3] != sh.w) {
        cfx_set_error(CFX_ESHAPE,
                      "explainer: the calibration images are not the competency's %dx%dx%d "
                      "images",
                      sh.c, sh.h, sh.w);
        return NULL;
    }
    cfx_explainer *e = cfx_calloc(1, sizeof *e);
    if (!e) return NULL;
    e->c = sh.c, e->h = sh.h, e->w = sh.w, e->threshold = p->threshold;
    e->k = d.k > 0 ? d.k : 15;
    int64_t S = d.sources > 0 ? d.sources : 300, per = (int64_t)sh.c * sh.h * sh.w;
    int64_t n = calib->n, ncomp = 0, nlow = 0;
    int64_t *comp = cfx_malloc((size_t)n * sizeof *comp),
            *low = cfx_malloc((size_t)n * sizeof *low);
    cfx_tensor *batch = cfx_tensor_new(4, (int64_t[]){S, sh.c, sh.h, sh.w});
    float *rho = cfx_malloc((size_t)S * sizeof *rho), *out[LEARN_COUNT] = {NULL};
    cfx_cf_record *rec = cfx_malloc((size_t)S * sizeof *rec);
    double *stat = cfx_malloc((size_t)S * CFX_STAT_COUNT * sizeof *stat);
    cfx_cf *methods[LEARN_COUNT] = {NULL};
    cfx_status s = comp && low && batch && rho && rec && stat ? CFX_OK : CFX_ENOMEM;
    for (int l = 0; s == CFX_OK && l < LEARN_COUNT; l++) {
        if (l == LEARN_LNN && !(d.calib_latents && d.calib_scores)) continue;
        out[l] = cfx_malloc((size_t)(S * per) * sizeof(float));
        methods[l] = cfx_cf_new(c, l == LEARN_LNN ? CFX_CF_LNN : CFX_CF_RECO, NULL, S,
                                d.calib_latents, d.calib_scores);
        s = out[l] && methods[l] ? CFX_OK : cfx_error_context(CFX_ENOMEM, "counterfactuals");
        e->learned[l] = true;
    }
    for (int64_t i = 0; s == CFX_OK && i < n; i++) {
        if (!isfinite(calib_rho[i])) {
            s = cfx_set_error(CFX_EINVAL,
                              "explainer: the rho of calibration image %lld is not "
                              "a number",
                              (long long)i);
        } else if (calib_rho[i] >= p->threshold)
            comp[ncomp++] = i;
        else
            low[nlow++] = i;
    }
    if (s == CFX_OK && ncomp < 2)
        s = cfx_set_error(CFX_EINVAL,
                          "explainer: %lld of the calibration images are competent (rho >= "
                          "%.3g); at least 2 are needed to learn the causes",
                          (long long)ncomp, p->threshold);
    cfx_rng r;
    cfx_rng_init(&r, d.seed);
    if (s == CFX_OK) {
        cfx_rng_shuffle(&r, comp, ncomp);
        cfx_rng_shuffle(&r, low, nlow);
    }
    int64_t ns = CFX_MIN(S, ncomp);
    /* Spatial: the low-competency calibration images, then the competent sample as it is. */
    for (int pass = 0; s == CFX_OK && pass < 2; pass++) {
        const int64_t *idx = pass ? comp : low;
        int64_t m = CFX_MIN(S, pass ? ncomp : nlow);
        if (m == 0) continue;
        for (int64_t i = 0; i < m; i++)
            memcpy(batch->data + i * per, im->data + idx[i] * per, (size_t)per * sizeof(float));
        s = counterfactuals(methods, batch, m, rec, rho, out);
        for (int64_t i = 0; s == CFX_OK && i < m; i++) {
            const float *cf[LEARN_COUNT];
            for (int l = 0; l < LEARN_COUNT; l++) cf[l] = out[l] ? out[l] + i * per : NULL;
            s = add(e, CFX_CAUSE_SPATIAL, batch->data + i * per, cf);
        }
        for (int64_t i = 0; s == CFX_OK && pass == 1 && i < m; i++)
            s = cfx_image_stats(batch->data + i * per, sh.c, sh.h, sh.w, stat + i * CFX_STAT_COUNT);
    }
    /* The calibration medians, the reference of an image without a counterfactual. */
    for (int st = 0; s == CFX_OK && st < CFX_STAT_COUNT; st++) {
        double *col = (double *)out[LEARN_RECO]; /* free here: ns doubles fit in S * per floats */
        for (int64_t i = 0; i < ns; i++) col[i] = stat[i * CFX_STAT_COUNT + st];
        qsort(col, (size_t)ns, sizeof *col, cmp_double);
        e->median[st] = ns % 2 ? col[ns / 2] : 0.5 * (col[ns / 2 - 1] + col[ns / 2]);
    }
    int done = 0, total = CFX_CAUSE_PIXELATION - CFX_CAUSE_BRIGHTNESS + (sh.c == 3);
    for (int cause = CFX_CAUSE_BRIGHTNESS; s == CFX_OK && cause <= CFX_CAUSE_PIXELATION; cause++) {
        if (cause == CFX_CAUSE_SATURATION && sh.c != 3) continue;
        double grid[MAX_GRID];
        int ng = cfx_cause_grid_fit((cfx_cause)cause, sh.h, sh.w, grid);
        for (int g = 0; s == CFX_OK && g < ng; g++) {
            for (int64_t i = 0; s == CFX_OK && i < ns; i++) {
                cfx_tensor one = *im, dst = *batch;
                one.data = im->data + comp[i] * per, one.shape[0] = 1, one.numel = per;
                dst.data = batch->data + i * per, dst.shape[0] = 1, dst.numel = per;
                cfx_rng noise;
                cfx_rng_split(
                    &r, ((uint64_t)cause * MAX_GRID + (uint64_t)g) * (uint64_t)S + (uint64_t)i,
                    &noise);
                s = cfx_corrupt((cfx_cause)cause, grid[g], &one, &dst, &noise);
            }
            if (s == CFX_OK) s = counterfactuals(methods, batch, ns, rec, rho, out);
            for (int64_t i = 0; s == CFX_OK && i < ns; i++) {
                if (!(rho[i] < p->threshold)) continue;
                const float *cf[LEARN_COUNT];
                for (int l = 0; l < LEARN_COUNT; l++) cf[l] = out[l] ? out[l] + i * per : NULL;
                s = add(e, (cfx_cause)cause, batch->data + i * per, cf);
            }
        }
        if (s == CFX_OK && e->count[cause] == 0)
            s = cfx_set_error(CFX_EINVAL,
                              "explainer: no factor of %s took a competent calibration image "
                              "below the threshold, so there is nothing to learn it from",
                              cfx_cause_name((cfx_cause)cause));
        cfx_progress_report(&d.progress, "learn the causes", ++done, total, NULL);
    }
    if (s == CFX_OK) {
        standardize(e->f0, e->n, NF0, e->mean0, e->sd0);
        for (int l = 0; l < LEARN_COUNT; l++)
            if (e->learned[l]) standardize(e->f1[l], e->n, NF1, e->mean1[l], e->sd1[l]);
    }
    for (int l = 0; l < LEARN_COUNT; l++) cfx_cf_free(methods[l]), cfx_free(out[l]);
    cfx_free(comp), cfx_free(low), cfx_free(rho), cfx_free(rec), cfx_free(stat);
    cfx_tensor_free(batch);
    if (s != CFX_OK) {
        cfx_error_context(s, "learn the causes of low competency");
        cfx_explainer_free(e);
        return NULL;
    }
    return e;
}

/* "3.1x darker" and the like: how many times b is a (>= 1), from a ratio of positive values. */
static double times(double a, double b) {
    a = fmax(a, 1e-4), b = fmax(b, 1e-4);
    return a > b ? a / b : b / a;
}

/* The statistic that shows a cause. */
static int shown_by(cfx_cause c) {
    switch (c) {
        case CFX_CAUSE_BRIGHTNESS:
            return CFX_STAT_BRIGHTNESS;
        case CFX_CAUSE_CONTRAST:
            return CFX_STAT_CONTRAST;
        case CFX_CAUSE_SATURATION:
            return CFX_STAT_SATURATION;
        case CFX_CAUSE_NOISE:
            return CFX_STAT_NOISE_MEDIAN;
        default:
            return CFX_STAT_BLOCKINESS;
    }
}

/* The sentence compares the image with its counterfactual, or with the calibration images when
 * there is none or when they differ more on the cause's statistic (a brightened image's
 * reconstruction is bright too, so the calibration images show the change). */
static void sentence(const cfx_explanation *x, const double *calib, int region_known,
                     double rho_before, double rho_after, char *out, size_t cap) {
    const double *v = x->stats, *ref = x->reference;
    const char *than =
        x->with_counterfactual ? "its counterfactual" : "the images the model was calibrated on";
    int st = shown_by(x->cause);
    double by_cf = st == CFX_STAT_BLOCKINESS ? fabs(v[st] - ref[st]) : times(v[st], ref[st]),
           by_calib = st == CFX_STAT_BLOCKINESS ? fabs(v[st] - calib[st]) : times(v[st], calib[st]);
    if (x->with_counterfactual && by_calib > by_cf)
        ref = calib, than = "the images the model was calibrated on";
    char what[320];
    const char *repair = "changing it";
    switch (x->cause) {
        case CFX_CAUSE_BRIGHTNESS: {
            bool dark = v[CFX_STAT_BRIGHTNESS] < ref[CFX_STAT_BRIGHTNESS];
            snprintf(what, sizeof what,
                     "The image is %.1fx %s than %s (mean brightness %.2f "
                     "against %.2f)",
                     times(v[CFX_STAT_BRIGHTNESS], ref[CFX_STAT_BRIGHTNESS]),
                     dark ? "darker" : "brighter", than, v[CFX_STAT_BRIGHTNESS],
                     ref[CFX_STAT_BRIGHTNESS]);
            repair = dark ? "brightening it" : "darkening it";
            break;
        }
        case CFX_CAUSE_CONTRAST: {
            bool less = v[CFX_STAT_CONTRAST] < ref[CFX_STAT_CONTRAST];
            snprintf(what, sizeof what,
                     "The image has %.1fx %s contrast than %s (luminance "
                     "deviation %.2f against %.2f)",
                     times(v[CFX_STAT_CONTRAST], ref[CFX_STAT_CONTRAST]), less ? "less" : "more",
                     than, v[CFX_STAT_CONTRAST], ref[CFX_STAT_CONTRAST]);
            repair = less ? "raising its contrast" : "lowering its contrast";
            break;
        }
        case CFX_CAUSE_SATURATION: {
            bool less = v[CFX_STAT_SATURATION] < ref[CFX_STAT_SATURATION];
            snprintf(what, sizeof what,
                     "The image's colours are %.1fx %s saturated than %s's "
                     "(colour spread %.2f against %.2f)",
                     times(v[CFX_STAT_SATURATION], ref[CFX_STAT_SATURATION]),
                     less ? "less" : "more",
                     ref == calib || !x->with_counterfactual ? "the calibration images"
                                                             : "its counterfactual",
                     v[CFX_STAT_SATURATION], ref[CFX_STAT_SATURATION]);
            repair = less ? "restoring its colours" : "toning its colours down";
            break;
        }
        case CFX_CAUSE_NOISE:
            snprintf(what, sizeof what,
                     "The image is noisy: the typical difference of a pixel "
                     "from its neighbours is %.1fx that of %s (%.3f against %.3f)",
                     times(v[CFX_STAT_NOISE_MEDIAN], ref[CFX_STAT_NOISE_MEDIAN]), than,
                     v[CFX_STAT_NOISE_MEDIAN], ref[CFX_STAT_NOISE_MEDIAN]);
            repair = "removing the noise";
            break;
        case CFX_CAUSE_PIXELATION:
            snprintf(what, sizeof what,
                     "The image is pixelated: %.0f%% of its neighbouring "
                     "rows and columns are identical, against %.0f%% in %s",
                     100 * v[CFX_STAT_BLOCKINESS], 100 * ref[CFX_STAT_BLOCKINESS], than);
            repair = "smoothing the blocks";
            break;
        default:
            snprintf(what, sizeof what,
                     "The image's brightness, contrast, colour, noise and "
                     "sharpness are those of ordinary images, so competency is lost to "
                     "unfamiliar content in region (%d, %d, %d, %d)%s",
                     x->region[0], x->region[1], x->region[2], x->region[3],
                     region_known ? "" : " (no competency map was given)");
            repair = "replacing that content";
    }
    if (x->with_counterfactual)
        snprintf(out, cap, "%s; %s, as the counterfactual does, %s competency from %.2f to %.2f.",
                 what, repair, rho_after > rho_before ? "raised" : "changed", rho_before,
                 rho_after);
    else
        snprintf(out, cap, "%s; competency is %.2f.", what, rho_before);
}

cfx_status cfx_explain_image(const cfx_explainer *e, const float *image, const float *cf,
                             int cf_method, const float *map, double rho_before, double rho_after,
                             cfx_explanation *out) {
    if (!e || !image || !out) return cfx_set_error(CFX_EINVAL, "explain: no explainer or image");
    memset(out, 0, sizeof *out);
    CFX_TRY(cfx_image_stats(image, e->c, e->h, e->w, out->stats));
    out->with_counterfactual = cf != NULL;
    if (cf) {
        cfx_status s = cfx_image_stats(cf, e->c, e->h, e->w, out->reference);
        if (s != CFX_OK) return cfx_error_context(s, "the counterfactual");
    } else
        memcpy(out->reference, e->median, sizeof out->reference);
    int d = cf ? NF1 : NF0,
        l = cf_method == CFX_CF_LNN && e->learned[LEARN_LNN] ? LEARN_LNN : LEARN_RECO;
    const double *mean = cf ? e->mean1[l] : e->mean0, *sd = cf ? e->sd1[l] : e->sd0;
    const float *f = cf ? e->f1[l] : e->f0;
    float q[NF1];
    features(out->stats, cf ? out->reference : NULL, q);
    for (int j = 0; j < d; j++) q[j] = (float)((q[j] - mean[j]) / sd[j]);
    /* The k nearest samples, kept sorted by distance (ties to the earlier sample). */
    enum { KMAX = 64 };
    int k = (int)CFX_MIN((int64_t)CFX_MIN(e->k, KMAX), e->n);
    double best[KMAX];
    int64_t who[KMAX];
    int have = 0;
    for (int64_t i = 0; i < e->n; i++) {
        double dist = 0;
        for (int j = 0; j < d; j++) {
            double t = (double)f[i * d + j] - q[j];
            dist += t * t;
        }
        if (have == k && dist >= best[k - 1]) continue;
        int at = have < k ? have++ : k - 1;
        while (at > 0 && best[at - 1] > dist) best[at] = best[at - 1], who[at] = who[at - 1], at--;
        best[at] = dist, who[at] = i;
    }
    double total = 0;
    for (int i = 0; i < have; i++) {
        double wt = 1.0 / (double)e->count[e->cause[who[i]]];
        out->share[e->cause[who[i]]] += wt, total += wt;
    }
    out->cause = CFX_CAUSE_SPATIAL;
    for (int c = 0; c < CFX_CAUSE_COUNT; c++) {
        out->share[c] = total > 0 ? out->share[c] / total : 0;
        if (out->share[c] > out->share[out->cause]) out->cause = (cfx_cause)c;
    }
    out->confidence = out->share[out->cause];
    if (map)
        cfx_competency_map_region(map, e->h, e->w, out->region);
    else
        out->region[2] = e->w, out->region[3] = e->h;
    sentence(out, e->median, map != NULL, rho_before, rho_after, out->sentence,
             sizeof out->sentence);
    return CFX_OK;
}
