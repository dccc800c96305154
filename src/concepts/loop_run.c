/* loop_run.c - a run folder of the V-CECE loop (edit_loop.c) read back, and the realism metrics
 * of its counterfactual examples as V-CECE reports them (after Jeanneret et al., ACE): FID and
 * CMMD between the source images and the final images of the loops that flipped, and S3, the
 * cosine similarity of each source image's features and its counterfactual's (on SimSiam in
 * the paper).
 *
 * The two sets compared by FID and CMMD are the sources and their counterfactuals, not the
 * target class's real images: the paper follows ACE, whose FID measures how far the edited
 * images drift from the real images they came from; a scenes run has one source per loop, so
 * the two sets are paired and of one size. Every number is computed by src/metrics (features,
 * fid, cmmd, cosine) on networks labelled as cfx_evaluate labels them: the user's, else the
 * classifier's own feature tensor, "classifier". */
#include "concepts/concepts.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static char *dup_or_null(const cJSON *j) {
    return cJSON_IsString(j) ? cfx_strdup(j->valuestring) : NULL;
}

static void record_deinit(cfx_loop_record *r) {
    for (int k = 0; k < r->nsteps; k++) {
        cfx_loop_step *s = &r->step[k];
        cfx_free(s->action), cfx_free(s->from), cfx_free(s->to);
        cfx_free(s->label), cfx_free(s->image);
    }
    cfx_free(r->step);
    cfx_free(r->source_label), cfx_free(r->target_label);
    cfx_free(r->stop_reason), cfx_free(r->error);
}

void cfx_loop_run_free(cfx_loop_run *r) {
    if (!r) return;
    for (int32_t i = 0; i < r->n; i++) record_deinit(&r->rec[i]);
    cfx_free(r->rec);
    cfx_free(r->dir), cfx_free(r->name), cfx_free(r->mode);
    cfx_free(r);
}

/* One line of results.jsonl into rec; CFX_EFORMAT (message by the caller) when it is not a
 * record of the loop. */
static cfx_status parse_record(const cJSON *j, cfx_loop_record *rec) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "query"),
                *steps = cJSON_GetObjectItemCaseSensitive(j, "steps"),
                *stop = cJSON_GetObjectItemCaseSensitive(j, "stop_reason"),
                *tg = cJSON_GetObjectItemCaseSensitive(j, "target"),
                *mn = cJSON_GetObjectItemCaseSensitive(j, "min_edits"),
                *labels = cJSON_GetObjectItemCaseSensitive(j, "labels"),
                *edits = cJSON_GetObjectItemCaseSensitive(j, "edits"),
                *images = cJSON_GetObjectItemCaseSensitive(j, "images");
    if (!cJSON_IsNumber(q) || !cJSON_IsNumber(steps) || !cJSON_IsString(stop) ||
        steps->valuedouble < 0 || steps->valuedouble > 1e6)
        return CFX_EFORMAT;
    rec->query = (int64_t)q->valuedouble;
    rec->target = cJSON_IsNumber(tg) ? (int64_t)tg->valuedouble : -1;
    rec->steps = (int)steps->valuedouble;
    rec->flipped = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "flipped"));
    rec->agrees = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "agrees"));
    rec->min_edits = cJSON_IsNumber(mn) ? (int)mn->valuedouble : -1;
    const cJSON *v, *st;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(j, "votes")) {
        if (cJSON_IsNumber(st = cJSON_GetObjectItemCaseSensitive(v, "stability")))
            rec->stability += st->valuedouble, rec->nstability++;
    }
    if (!(rec->stop_reason = cfx_strdup(stop->valuestring))) return CFX_ENOMEM;
    rec->error = dup_or_null(cJSON_GetObjectItemCaseSensitive(j, "error"));
    rec->source_label = dup_or_null(cJSON_GetObjectItemCaseSensitive(j, "source_label"));
    rec->target_label = dup_or_null(cJSON_GetObjectItemCaseSensitive(j, "target_label"));
    /* Steps: the original and one per edit; a record that stopped with an error may hold
     * fewer labels or images than steps + 1. */
    if (!(rec->step = cfx_calloc((size_t)rec->steps + 1, sizeof *rec->step))) return CFX_ENOMEM;
    rec->nsteps = rec->steps + 1;
    for (int k = 0; k < rec->nsteps; k++) {
        cfx_loop_step *s = &rec->step[k];
        s->label = dup_or_null(cJSON_GetArrayItem(labels, k));
        s->image = dup_or_null(cJSON_GetArrayItem(images, k));
        if (k == 0) continue;
        const cJSON *e = cJSON_GetArrayItem(edits, k - 1);
        if (!cJSON_IsObject(e)) return CFX_EFORMAT; /* a step without its edit */
        s->action = dup_or_null(cJSON_GetObjectItemCaseSensitive(e, "action"));
        s->from = dup_or_null(cJSON_GetObjectItemCaseSensitive(e, "from"));
        s->to = dup_or_null(cJSON_GetObjectItemCaseSensitive(e, "to"));
        if (!s->action) return CFX_EFORMAT;
    }
    return CFX_OK;
}

cfx_loop_run *cfx_loop_run_open(const char *dir) {
    char path[4200], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    if (cfx_file_read_all(path, &text, &len) != CFX_OK) {
        cfx_error_context(CFX_EIO, "run '%s' (a folder written by cfx concepts edit)", dir);
        return NULL;
    }
    cfx_loop_run *r = cfx_calloc(1, sizeof *r);
    cfx_status st = r ? CFX_OK : CFX_ENOMEM;
    int32_t cap = 0, lineno = 0;
    for (char *p = text, *nl; st == CFX_OK && p < text + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl) break; /* a torn last line: the run was killed while writing it */
        lineno++;
        if (r->n == cap) {
            cap = cap ? 2 * cap : 64;
            cfx_loop_record *g = cfx_realloc(r->rec, (size_t)cap * sizeof *g);
            if (!g) {
                st = CFX_ENOMEM;
                break;
            }
            r->rec = g;
        }
        cfx_loop_record *rec = &r->rec[r->n++];
        memset(rec, 0, sizeof *rec);
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        st = j ? parse_record(j, rec) : CFX_EFORMAT;
        const char *mode = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "mode"));
        if (st == CFX_OK && !mode) st = CFX_EFORMAT;
        if (st == CFX_OK && !r->mode && !(r->mode = cfx_strdup(mode))) st = CFX_ENOMEM;
        cJSON_Delete(j);
        if (st == CFX_EFORMAT)
            cfx_set_error(CFX_EFORMAT,
                          "'%s': line %d is not a record of cfx concepts edit (query, mode, "
                          "steps, stop_reason, and an edit per step)",
                          path, (int)lineno);
    }
    cfx_free(text);
    if (st == CFX_OK) {
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/') n--;
        const char *b = dir + n;
        while (b > dir && b[-1] != '/') b--;
        r->dir = cfx_strdup(dir);
        r->name = cfx_malloc((size_t)(dir + n - b) + 1);
        if (r->name) memcpy(r->name, b, (size_t)(dir + n - b)), r->name[dir + n - b] = 0;
        if (!r->mode) r->mode = cfx_strdup("-"); /* an empty run */
        if (!r->dir || !r->name || !r->mode) st = CFX_ENOMEM;
    }
    if (st != CFX_OK) {
        if (st == CFX_ENOMEM) cfx_set_error(CFX_ENOMEM, "out of memory");
        cfx_loop_run_free(r);
        return NULL;
    }
    return r;
}

/* ------------------------------------------------------------------ metrics --- */

/* The source and final images of the flipped loops: two (n, c, h, w) tensors. */
static cfx_status read_pairs(const cfx_loop_run *r, cfx_tensor **src, cfx_tensor **dst) {
    *src = *dst = NULL;
    int64_t n = 0, per = 0;
    for (int32_t i = 0; i < r->n; i++) n += r->rec[i].flipped;
    if (n == 0) return CFX_OK;
    cfx_status st = CFX_OK;
    int64_t k = 0;
    for (int32_t i = 0; i < r->n && st == CFX_OK; i++) {
        const cfx_loop_record *rec = &r->rec[i];
        if (!rec->flipped) continue;
        for (int side = 0; side < 2 && st == CFX_OK; side++) {
            const char *rel = rec->step[side ? rec->nsteps - 1 : 0].image;
            if (!rel) {
                st = cfx_set_error(CFX_EFORMAT, "run '%s', image %lld: no step image recorded",
                                   r->dir, (long long)rec->query);
                break;
            }
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", r->dir, rel);
            cfx_tensor *im = cfx_image_read(path, 3);
            if (!im) {
                st = cfx_error_context(CFX_EIO, "run '%s'", r->dir);
                break;
            }
            if (!*src) {
                int64_t shape[4] = {n, 3, im->shape[1], im->shape[2]};
                per = im->numel;
                *src = cfx_tensor_new(4, shape), *dst = cfx_tensor_new(4, shape);
                if (!*src || !*dst) st = CFX_ENOMEM;
            } else if (im->numel != per || im->shape[1] != (*src)->shape[2]) {
                st = cfx_set_error(CFX_ESHAPE,
                                   "run '%s': '%s' is %lldx%lld, the first image %lldx%lld; FID, "
                                   "CMMD and S3 need images of one size",
                                   r->dir, rel, (long long)im->shape[1], (long long)im->shape[2],
                                   (long long)(*src)->shape[2], (long long)(*src)->shape[3]);
            }
            if (st == CFX_OK)
                memcpy((side ? *dst : *src)->data + k * per, im->data, (size_t)per * sizeof(float));
            cfx_tensor_free(im);
        }
        k++;
    }
    if (st != CFX_OK) {
        cfx_tensor_free(*src), cfx_tensor_free(*dst);
        *src = *dst = NULL;
    }
    return st;
}

/* The features of both sets on one network (user's or the classifier's, labelled). *fa, *fb
 * stay NULL when the metric has no network. */
static cfx_status features_pair(const cfx_loop_metrics_options *o, const char *model,
                                const char *tensor, const char *metric, const cfx_tensor *a,
                                const cfx_tensor *b, cfx_tensor **fa, cfx_tensor **fb, char *label,
                                size_t label_size) {
    *fa = *fb = NULL;
    label[0] = 0;
    cfx_features_spec spec = {.c = 3,
                              .h = (int)a->shape[2],
                              .w = (int)a->shape[3],
                              .batch = o->batch > 0 ? o->batch : 32};
    if (model) {
        spec.model = model, spec.tensor = tensor;
    } else if (o->classifier) {
        spec.model = o->classifier;
        spec.tensor = o->classifier_features ? o->classifier_features : "features";
        spec.label = "classifier";
    } else {
        return CFX_OK;
    }
    cfx_features *f = cfx_features_new(&spec);
    if (!f) return cfx_error_context(CFX_EINVAL, "%s", metric);
    const int64_t n = a->shape[0], d = cfx_features_dim(f);
    *fa = cfx_tensor_new(2, (int64_t[]){n, d});
    *fb = cfx_tensor_new(2, (int64_t[]){n, d});
    cfx_status st = *fa && *fb ? CFX_OK : CFX_ENOMEM;
    if (st == CFX_OK) st = cfx_features_run(f, a, *fa);
    if (st == CFX_OK) st = cfx_features_run(f, b, *fb);
    snprintf(label, label_size, "%s", cfx_features_label(f));
    cfx_features_free(f);
    if (st != CFX_OK) {
        cfx_tensor_free(*fa), cfx_tensor_free(*fb);
        *fa = *fb = NULL;
        return cfx_error_context(st, "%s", metric);
    }
    return CFX_OK;
}

cfx_status cfx_loop_run_metrics(const cfx_loop_run *r, const cfx_loop_metrics_options *o,
                                cfx_loop_metrics *out) {
    *out = (cfx_loop_metrics){.fid = NAN, .cmmd = NAN, .s3 = {0, NAN, NAN}};
    cfx_loop_metrics_options none = {0};
    if (!o) o = &none;
    cfx_tensor *src = NULL, *dst = NULL, *fa = NULL, *fb = NULL;
    cfx_status st = read_pairs(r, &src, &dst);
    if (st != CFX_OK || !src) return st;
    out->pairs = src->shape[0];
    /* FID and CMMD need two rows a set; S3 is over the pairs. */
    st = features_pair(o, o->fid_model, o->fid_features, "FID", src, dst, &fa, &fb, out->fid_label,
                       sizeof out->fid_label);
    if (st == CFX_OK && fa && out->pairs >= 2) st = cfx_fid(fa, fb, &out->fid);
    cfx_tensor_free(fa), cfx_tensor_free(fb);
    if (st == CFX_OK)
        st = features_pair(o, o->cmmd_model, o->cmmd_features, "CMMD", src, dst, &fa, &fb,
                           out->cmmd_label, sizeof out->cmmd_label);
    if (st == CFX_OK && fa && out->pairs >= 2) st = cfx_cmmd(fa, fb, NULL, &out->cmmd);
    cfx_tensor_free(fa), cfx_tensor_free(fb);
    if (st == CFX_OK)
        st = features_pair(o, o->s3_model, o->s3_features, "S3", src, dst, &fa, &fb, out->s3_label,
                           sizeof out->s3_label);
    if (st == CFX_OK && fa) st = cfx_cosine_stats(fa, fb, NULL, NULL, &out->s3);
    cfx_tensor_free(fa), cfx_tensor_free(fb);
    cfx_tensor_free(src), cfx_tensor_free(dst);
    if (st != CFX_OK) return cfx_error_context(st, "metrics of run '%s'", r->dir);
    return CFX_OK;
}
