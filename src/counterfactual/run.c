/* run.c - reading a run folder that `cfx counterfactual` wrote (cli/cmd_counterfactual.c
 * describes the files): run.json, images.npy, results.jsonl and counterfactuals_<method>.npy,
 * into one object that the metrics, the explanations and the report share. Every part is
 * checked against run.json (the image count and shape, the methods), so a folder that was
 * edited or cut short is refused naming the file. */
#include "base/base.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const char *cfx_run_method_name(int k) {
    return k == CFX_RUN_BEST ? "best" : cfx_cf_method_name((cfx_cf_method)k);
}

void cfx_run_free(cfx_run *r) {
    if (!r) return;
    cfx_tensor_free(r->images);
    for (int k = 0; k < CFX_RUN_METHODS; k++) cfx_tensor_free(r->counterfactuals[k]);
    for (int64_t i = 0; i < r->n; i++) {
        if (r->cause) cfx_free(r->cause[i]);
        if (r->source) cfx_free(r->source[i]);
    }
    cfx_free(r->cause), cfx_free(r->source), cfx_free(r->results);
    cfx_free(r->dir), cfx_free(r->bundle), cfx_free(r->run_json);
    cfx_free(r);
}

static cfx_status fail(const char *dir, const char *file, const char *what) {
    return cfx_set_error(CFX_EFORMAT, "run folder '%s': %s: %s", dir, file, what);
}

static char *dup_str(const cJSON *j) {
    return cJSON_IsString(j) ? cfx_strdup(j->valuestring) : NULL;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

static cfx_status read_run_json(cfx_run *r) {
    char path[4200];
    size_t size;
    snprintf(path, sizeof path, "%s/run.json", r->dir);
    CFX_TRY(cfx_file_read_all(path, &r->run_json, &size));
    cJSON *j = cJSON_Parse(r->run_json);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format"),
                *shape = cJSON_GetObjectItemCaseSensitive(j, "image_shape"),
                *methods = cJSON_GetObjectItemCaseSensitive(j, "methods"),
                *status = cJSON_GetObjectItemCaseSensitive(j, "status"),
                *fp = cJSON_GetObjectItemCaseSensitive(j, "bundle_fingerprint"),
                *set = cJSON_GetObjectItemCaseSensitive(j, "settings");
    cfx_status s = CFX_OK;
    double n = num(j, "images");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "cfx-counterfactual-run") ||
        cJSON_GetArraySize(shape) != 3 || !cJSON_IsArray(methods) || !(n >= 1 && n < 1e12) ||
        !cJSON_IsString(fp) || !cJSON_IsObject(set))
        s = fail(r->dir, "run.json", "not a run written by cfx counterfactual");
    for (int d = 0; s == CFX_OK && d < 3; d++) {
        double v = cJSON_GetArrayItem(shape, d)->valuedouble;
        if (!(v >= 1 && v <= 65536))
            s = fail(r->dir, "run.json", "a bad image_shape");
        else
            (&r->c)[d] = (int)v; /* only in range: 1e111 was converted (UB, found by fuzzing) */
    }
    for (const cJSON *m = methods ? methods->child : NULL; s == CFX_OK && m; m = m->next) {
        int k = 0;
        while (k < CFX_RUN_METHODS &&
               (!cJSON_IsString(m) || strcmp(m->valuestring, cfx_run_method_name(k))))
            k++;
        if (k == CFX_RUN_METHODS)
            s = fail(r->dir, "run.json", "an unknown method");
        else
            r->has[k] = 1;
    }
    if (s == CFX_OK) {
        r->n = (int64_t)n;
        r->complete = cJSON_IsString(status) && !strcmp(status->valuestring, "complete");
        r->bundle = dup_str(cJSON_GetObjectItemCaseSensitive(j, "bundle"));
        snprintf(r->bundle_fingerprint, sizeof r->bundle_fingerprint, "%s", fp->valuestring);
        r->threshold = num(set, "threshold");
        const cJSON *dist = cJSON_GetObjectItemCaseSensitive(set, "distance_label");
        if (!cJSON_IsString(dist)) dist = cJSON_GetObjectItemCaseSensitive(set, "distance");
        snprintf(r->distance, sizeof r->distance, "%s",
                 cJSON_IsString(dist) ? dist->valuestring : "?");
        if (!(r->threshold > 0 && r->threshold <= 1))
            s = fail(r->dir, "run.json", "no threshold in (0, 1]");
    }
    cJSON_Delete(j);
    return s;
}

static cfx_status read_array(cfx_run *r, const char *file, cfx_tensor **out) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", r->dir, file);
    cfx_tensor *t = cfx_npy_read(path);
    if (!t) return CFX_EFORMAT;
    if (t->ndim != 4 || t->shape[0] != r->n || t->shape[1] != r->c || t->shape[2] != r->h ||
        t->shape[3] != r->w) {
        cfx_tensor_free(t);
        char what[160];
        snprintf(what, sizeof what, "not the (%lld, %d, %d, %d) images run.json gives",
                 (long long)r->n, r->c, r->h, r->w);
        return fail(r->dir, file, what);
    }
    *out = t;
    return CFX_OK;
}

static cfx_status read_results(cfx_run *r) {
    char path[4200], *text = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/results.jsonl", r->dir);
    CFX_TRY(cfx_file_read_all(path, &text, &size));
    cfx_status s = CFX_OK;
    int64_t line = 0;
    for (char *p = text, *nl; s == CFX_OK && p < text + size; p = nl + 1, line++) {
        nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) nl = text + size;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method");
        double idx = num(j, "index"), steps = num(j, "steps");
        int k = 0;
        while (k < CFX_RUN_METHODS &&
               (!cJSON_IsString(m) || strcmp(m->valuestring, cfx_run_method_name(k))))
            k++;
        /* steps becomes an int: anything but a count (NaN, 1e300) is not a result of cfx's. */
        if (!j || k == CFX_RUN_METHODS || !r->has[k] || !(idx >= 0 && idx < (double)r->n) ||
            idx != floor(idx) || !(steps >= 0 && steps <= INT_MAX)) {
            char what[96];
            snprintf(what, sizeof what, "line %lld is not a result of this run",
                     (long long)line + 1);
            s = fail(r->dir, "results.jsonl", what);
        } else {
            int64_t i = (int64_t)idx;
            cfx_run_result *e = &r->results[k * r->n + i];
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "winner"),
                        *f = cJSON_GetObjectItemCaseSensitive(j, "failure");
            *e = (cfx_run_result){.present = 1,
                                  .rho_before = num(j, "rho_before"),
                                  .rho_after = num(j, "rho_after"),
                                  .success =
                                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "success")),
                                  .steps = (int)steps,
                                  .seconds = num(j, "seconds"),
                                  .distance = num(j, "distance"),
                                  .vector_term = num(j, "vector_term"),
                                  .winner = -1};
            for (int q = 0; cJSON_IsString(w) && q < CFX_CF_COUNT; q++)
                if (!strcmp(w->valuestring, cfx_run_method_name(q))) e->winner = q;
            if (cJSON_IsString(f)) snprintf(e->failure, sizeof e->failure, "%s", f->valuestring);
            const cJSON *cause = cJSON_GetObjectItemCaseSensitive(j, "cause"),
                        *src = cJSON_GetObjectItemCaseSensitive(j, "source");
            if (cJSON_IsString(cause) && !r->cause[i]) r->cause[i] = dup_str(cause);
            if (cJSON_IsString(src) && !r->source[i]) r->source[i] = dup_str(src);
        }
        cJSON_Delete(j);
    }
    cfx_free(text);
    return s;
}

cfx_run *cfx_run_open(const char *dir) {
    cfx_run *r = cfx_calloc(1, sizeof *r);
    if (!r) return NULL;
    cfx_status s = (r->dir = cfx_strdup(dir)) ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK) s = read_run_json(r);
    if (s == CFX_OK) {
        r->results = cfx_calloc((size_t)(CFX_RUN_METHODS * r->n), sizeof *r->results);
        r->cause = cfx_calloc((size_t)r->n, sizeof *r->cause);
        r->source = cfx_calloc((size_t)r->n, sizeof *r->source);
        if (!r->results || !r->cause || !r->source) s = CFX_ENOMEM;
    }
    if (s == CFX_OK) s = read_results(r);
    /* A complete run has a line for every image and method. */
    int64_t missing = 0, want = 0;
    for (int k = 0; s == CFX_OK && r->complete && k < CFX_RUN_METHODS; k++)
        for (int64_t i = 0; r->has[k] && i < r->n; i++)
            want++, missing += !r->results[k * r->n + i].present;
    if (missing) {
        char what[160];
        snprintf(what, sizeof what,
                 "holds %lld of the %lld results of a run that run.json says is complete",
                 (long long)(want - missing), (long long)want);
        s = fail(r->dir, "results.jsonl", what);
    }
    if (s == CFX_OK) s = read_array(r, "images.npy", &r->images);
    for (int k = 0; s == CFX_OK && k < CFX_RUN_METHODS; k++) {
        if (!r->has[k]) continue;
        char file[64];
        snprintf(file, sizeof file, "counterfactuals_%s.npy", cfx_run_method_name(k));
        s = read_array(r, file, &r->counterfactuals[k]);
    }
    /* Causes are all known or not at all. */
    int64_t known = 0;
    for (int64_t i = 0; s == CFX_OK && i < r->n; i++) known += r->cause[i] != NULL;
    if (s == CFX_OK && known == 0) {
        cfx_free(r->cause);
        r->cause = NULL;
    }
    for (int64_t i = 0; s == CFX_OK && r->cause && i < r->n; i++)
        if (!r->cause[i] && !(r->cause[i] = cfx_strdup("unknown"))) s = CFX_ENOMEM;
    if (s != CFX_OK) {
        cfx_error_context(s, "open run '%s'", dir);
        cfx_run_free(r);
        return NULL;
    }
    return r;
}

int cfx_run_causes(const cfx_run *r, const char **out, int cap) {
    int n = 0;
    for (int64_t i = 0; r->cause && i < r->n; i++) {
        int k = 0;
        while (k < n && strcmp(out[k], r->cause[i])) k++;
        if (k == n && n < cap) out[n++] = r->cause[i];
    }
    return n;
}

cfx_run_tally cfx_run_tally_of(const cfx_run *r, int method, const char *cause) {
    cfx_run_tally t = {0};
    int64_t before = 0, after = 0; /* rho is null for an image whose rho was not finite */
    for (int64_t i = 0; method >= 0 && method < CFX_RUN_METHODS && i < r->n; i++) {
        const cfx_run_result *e = &r->results[method * r->n + i];
        if (!e->present || (cause && (!r->cause || strcmp(r->cause[i], cause)))) continue;
        t.n++, t.success += e->success != 0;
        if (isfinite(e->rho_before)) t.rho_before += e->rho_before, before++;
        if (isfinite(e->rho_after)) t.rho_after += e->rho_after, after++;
        t.steps += e->steps, t.seconds += e->seconds;
    }
    if (t.n) {
        double n = (double)t.n;
        t.rho_before = before ? t.rho_before / (double)before : NAN;
        t.rho_after = after ? t.rho_after / (double)after : NAN;
        t.steps /= n, t.seconds /= n;
    }
    return t;
}
