/* bundle.c - the competency bundle: one folder that holds everything needed to score images
 * and search counterfactuals later, written whole or not at all (cfx_dir):
 *
 *   classifier.onnx, encoder.onnx, decoder.onnx   copies of the models (an autoencoder given as
 *                                                 one file is split at its latent tensor)
 *   parce.json        the calibration: per-class mu and sigma, z, loss scale, threshold,
 *                     calibration accuracy and mean rho
 *   bundle.json       image shape, classes, feature tensor, latent size, how the classifier's
 *                     output is read, the dataset it was fitted on, the cfx version
 *   calib_latents.npy (N, latent) codes of the calibration images (LNN searches them)
 *   calib_scores.npy  (N) their rho
 *
 * A bundle's fingerprint is FNV-1a over the files' names and bytes, so a run folder can refuse
 * to continue with another bundle. */
#include "base/base.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const bundle_files[] = {"classifier.onnx", "encoder.onnx", "decoder.onnx",
                                           "parce.json",      "bundle.json",  "calib_latents.npy",
                                           "calib_scores.npy"};
enum { NFILES = sizeof bundle_files / sizeof bundle_files[0] };

static cfx_status copy_file(const char *from, const char *to) {
    char *data = NULL;
    size_t size = 0;
    CFX_TRY(cfx_file_read_all(from, &data, &size));
    cfx_file f;
    cfx_status s = cfx_file_create(&f, to);
    if (s == CFX_OK) {
        if (size && fwrite(data, 1, size, f.f) != size) {
            cfx_file_abort(&f);
            s = cfx_set_error(CFX_EIO, "cannot write '%s'", to);
        } else {
            s = cfx_file_commit(&f);
        }
    }
    cfx_free(data);
    return s;
}

static cfx_status write_json(const char *path, cJSON *j) {
    char *text = j ? cJSON_Print(j) : NULL;
    if (!text) return cfx_set_error(CFX_ENOMEM, "out of memory writing '%s'", path);
    cfx_file f;
    cfx_status s = cfx_file_create(&f, path);
    if (s == CFX_OK) {
        fputs(text, f.f);
        fputc('\n', f.f);
        s = cfx_file_commit(&f);
    }
    cJSON_free(text);
    return s;
}

static cJSON *double_array(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

cfx_status cfx_bundle_write(const cfx_bundle_spec *sp) {
    if (!sp || !sp->models || !sp->competency || !cfx_competency_parce(sp->competency))
        return cfx_set_error(CFX_EINVAL, "bundle: nothing fitted to write");
    const cfx_competency_models *m = sp->models;
    const cfx_parce *p = cfx_competency_parce(sp->competency);
    cfx_competency_shape sh;
    cfx_competency_shape_of(sp->competency, &sh);
    cfx_dir dir;
    CFX_TRY(cfx_dir_create(&dir, sp->out, sp->force));
    size_t plen = strlen(dir.tmp) + 32;
    char *path = cfx_malloc(plen);
    cfx_status s = path ? CFX_OK : CFX_ENOMEM;
#define AT(name) (snprintf(path, plen, "%s/%s", dir.tmp, name), path)
    if (s == CFX_OK) s = copy_file(m->classifier, AT("classifier.onnx"));
    if (s == CFX_OK && m->autoencoder) {
        char *enc = cfx_strdup(AT("encoder.onnx")), *dec = cfx_strdup(AT("decoder.onnx"));
        s = enc && dec ? cfx_onnx_split(m->autoencoder, m->latent, enc, dec) : CFX_ENOMEM;
        cfx_free(enc), cfx_free(dec);
    } else if (s == CFX_OK) {
        s = copy_file(m->encoder, AT("encoder.onnx"));
        if (s == CFX_OK) s = copy_file(m->decoder, AT("decoder.onnx"));
    }
    if (s == CFX_OK) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToObject(j, "mu", double_array(p->mu, p->num_classes));
        cJSON_AddItemToObject(j, "sigma", double_array(p->sigma, p->num_classes));
        cJSON_AddNumberToObject(j, "z", p->z);
        cJSON_AddNumberToObject(j, "loss_scale", p->loss_scale);
        cJSON_AddNumberToObject(j, "threshold", p->threshold);
        cJSON_AddNumberToObject(j, "accuracy", p->accuracy);
        cJSON_AddNumberToObject(j, "mean_rho", p->mean_rho);
        cJSON_AddNumberToObject(j, "n_calib", (double)p->n_calib);
        s = write_json(AT("parce.json"), j);
        cJSON_Delete(j);
    }
    if (s == CFX_OK) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "format", "cfx-competency-bundle");
        cJSON_AddNumberToObject(j, "version", 1);
        cJSON_AddStringToObject(j, "cfx", CFX_VERSION);
        cJSON *shape = cJSON_AddArrayToObject(j, "image_shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(sh.c));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(sh.h));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(sh.w));
        cJSON_AddNumberToObject(j, "num_classes", sh.num_classes);
        cJSON *classes = cJSON_AddArrayToObject(j, "classes");
        for (int k = 0; k < sh.num_classes; k++) {
            char fallback[32];
            snprintf(fallback, sizeof fallback, "%d", k);
            const char *name =
                sp->class_names && sp->class_names[k] ? sp->class_names[k] : fallback;
            cJSON_AddItemToArray(classes, cJSON_CreateString(name));
        }
        cJSON_AddStringToObject(j, "features", sh.features);
        cJSON_AddNumberToObject(j, "feature_dim", sh.feature_dim);
        cJSON_AddNumberToObject(j, "latent_dim", sh.latent_dim);
        cJSON_AddStringToObject(j, "classifier_output", sh.probs_output ? "probs" : "logits");
        cJSON_AddStringToObject(j, "dataset", sp->dataset ? sp->dataset : "");
        s = write_json(AT("bundle.json"), j);
        cJSON_Delete(j);
    }
    if (s == CFX_OK && sp->latents) {
        cfx_tensor t = {.data = (float *)sp->latents, .ndim = 2, .numel = sp->n * sh.latent_dim};
        t.shape[0] = sp->n, t.shape[1] = sh.latent_dim;
        s = cfx_npy_write(AT("calib_latents.npy"), &t);
    }
    if (s == CFX_OK && sp->scores) {
        cfx_tensor t = {.data = (float *)sp->scores, .ndim = 1, .numel = sp->n};
        t.shape[0] = sp->n;
        s = cfx_npy_write(AT("calib_scores.npy"), &t);
    }
#undef AT
    cfx_free(path);
    if (s == CFX_OK) s = cfx_dir_commit(&dir);
    if (s != CFX_OK) {
        cfx_dir_abort(&dir);
        return cfx_error_context(s, "write bundle '%s'", sp->out);
    }
    return CFX_OK;
}

/* ---------------------------------------------------------------------- loading --- */

static cJSON *read_json(const char *dir, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = NULL;
    if (cfx_file_read_all(path, &text, NULL) != CFX_OK) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        long line = 1;
        for (const char *q = text; end && q < end; q++) line += *q == '\n';
        cfx_set_error(CFX_EFORMAT, "'%s' is not valid JSON (line %ld)", path, line);
    }
    cfx_free(text);
    return j;
}

static bool number(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return false;
    *out = v->valuedouble;
    return true;
}

static bool doubles(const cJSON *o, const char *key, int n, double *out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return false;
    int i = 0;
    for (const cJSON *v = a->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return false;
        out[i] = v->valuedouble;
    }
    return true;
}

void cfx_bundle_free(cfx_bundle *b) {
    if (!b) return;
    cfx_competency_free(b->competency);
    for (int k = 0; b->class_names && k < b->num_classes; k++) cfx_free(b->class_names[k]);
    cfx_free(b->class_names);
    cfx_free(b->dir);
    cfx_free(b);
}

cfx_bundle *cfx_bundle_load(const char *dir, int64_t batch) {
    cfx_bundle *b = cfx_calloc(1, sizeof *b);
    if (!b) return NULL;
    cJSON *bj = NULL, *pj = NULL;
    double *mu = NULL, *sigma = NULL;
    char path[3][4200];
    cfx_status s = (b->dir = cfx_strdup(dir)) ? CFX_OK : CFX_ENOMEM;
    /* The fingerprint, and a clear message for a file that is missing. */
    uint64_t h = CFX_FNV1A_INIT;
    for (int f = 0; s == CFX_OK && f < NFILES; f++) {
        char p[4200], *data = NULL;
        size_t size = 0;
        snprintf(p, sizeof p, "%s/%s", dir, bundle_files[f]);
        s = cfx_file_read_all(p, &data, &size);
        if (s != CFX_OK) break;
        h = cfx_fnv1a(h, bundle_files[f], strlen(bundle_files[f]) + 1);
        h = cfx_fnv1a(h, data, size);
        cfx_free(data);
    }
    snprintf(b->fingerprint, sizeof b->fingerprint, "%016llx", (unsigned long long)h);
    if (s == CFX_OK && !(bj = read_json(dir, "bundle.json"))) s = CFX_EFORMAT;
    if (s == CFX_OK && !(pj = read_json(dir, "parce.json"))) s = CFX_EFORMAT;
    double nc = 0, ver = 0;
    const cJSON *fmt = bj ? cJSON_GetObjectItemCaseSensitive(bj, "format") : NULL;
    const cJSON *classes = bj ? cJSON_GetObjectItemCaseSensitive(bj, "classes") : NULL;
    const cJSON *features = bj ? cJSON_GetObjectItemCaseSensitive(bj, "features") : NULL;
    const cJSON *output = bj ? cJSON_GetObjectItemCaseSensitive(bj, "classifier_output") : NULL;
    if (s == CFX_OK &&
        (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "cfx-competency-bundle") != 0 ||
         !number(bj, "version", &ver) || ver != 1 || !number(bj, "num_classes", &nc) || nc < 2 ||
         nc > 100000 || nc != floor(nc) || !cJSON_IsArray(classes) ||
         cJSON_GetArraySize(classes) != (int)nc || !cJSON_IsString(features) ||
         !cJSON_IsString(output)))
        s = cfx_set_error(CFX_EFORMAT,
                          "'%s/bundle.json' is not a version 1 competency bundle description "
                          "(format, version, num_classes, classes, features, classifier_output)",
                          dir);
    if (s == CFX_OK) {
        b->num_classes = (int)nc;
        b->class_names = cfx_calloc((size_t)b->num_classes, sizeof *b->class_names);
        mu = cfx_malloc((size_t)b->num_classes * sizeof *mu);
        sigma = cfx_malloc((size_t)b->num_classes * sizeof *sigma);
        if (!b->class_names || !mu || !sigma) s = CFX_ENOMEM;
        int k = 0;
        for (const cJSON *v = classes->child; s == CFX_OK && v; v = v->next, k++)
            if (!(b->class_names[k] = cfx_strdup(cJSON_IsString(v) ? v->valuestring : "?")))
                s = CFX_ENOMEM;
    }
    cfx_parce p = {.num_classes = b->num_classes, .mu = mu, .sigma = sigma};
    double n_calib = 0;
    if (s == CFX_OK &&
        (!doubles(pj, "mu", p.num_classes, mu) || !doubles(pj, "sigma", p.num_classes, sigma) ||
         !number(pj, "z", &p.z) || !number(pj, "loss_scale", &p.loss_scale) ||
         !number(pj, "threshold", &p.threshold) || !number(pj, "accuracy", &p.accuracy) ||
         !number(pj, "mean_rho", &p.mean_rho) || !number(pj, "n_calib", &n_calib)))
        s = cfx_set_error(CFX_EFORMAT,
                          "'%s/parce.json' lacks a field or holds one that is not a number "
                          "(mu and sigma with %d entries, z, loss_scale, threshold, accuracy, "
                          "mean_rho, n_calib)",
                          dir, p.num_classes);
    /* (found by fuzzing: an n_calib of 8.9e114 was converted unchecked) */
    if (s == CFX_OK && !(n_calib >= 0 && n_calib <= 9.0e15 && n_calib == floor(n_calib)))
        s = cfx_set_error(CFX_EFORMAT,
                          "'%s/parce.json': n_calib is %g, not a count of calibration images", dir,
                          n_calib);
    p.n_calib = s == CFX_OK ? (int64_t)n_calib : 0;
    if (s == CFX_OK) {
        for (int f = 0; f < 3; f++)
            snprintf(path[f], sizeof path[f], "%s/%s", dir, bundle_files[f]);
        cfx_competency_models m = {.classifier = path[0],
                                   .encoder = path[1],
                                   .decoder = path[2],
                                   .features = features->valuestring,
                                   .output = strcmp(output->valuestring, "probs") == 0
                                                 ? CFX_OUTPUT_PROBS
                                                 : CFX_OUTPUT_LOGITS};
        b->competency = cfx_competency_new(&m, batch);
        if (!b->competency) s = CFX_EFORMAT;
    }
    if (s == CFX_OK) s = cfx_competency_set_parce(b->competency, &p);
    cfx_free(mu), cfx_free(sigma);
    cJSON_Delete(bj), cJSON_Delete(pj);
    if (s != CFX_OK) {
        cfx_error_context(s, "load bundle '%s' (a folder written by `cfx competency fit`)", dir);
        cfx_bundle_free(b);
        return NULL;
    }
    return b;
}

cfx_status cfx_bundle_calibration(const cfx_bundle *b, cfx_tensor **latents, cfx_tensor **scores) {
    char path[4200];
    cfx_competency_shape sh;
    cfx_competency_shape_of(b->competency, &sh);
    *latents = *scores = NULL;
    snprintf(path, sizeof path, "%s/calib_latents.npy", b->dir);
    *latents = cfx_npy_read(path);
    snprintf(path, sizeof path, "%s/calib_scores.npy", b->dir);
    if (*latents) *scores = cfx_npy_read(path);
    if (!*latents || !*scores || (*latents)->ndim != 2 || (*latents)->shape[1] != sh.latent_dim ||
        (*scores)->ndim != 1 || (*scores)->shape[0] != (*latents)->shape[0]) {
        cfx_tensor_free(*latents), cfx_tensor_free(*scores);
        *latents = *scores = NULL;
        return cfx_set_error(CFX_EFORMAT,
                             "bundle '%s': calib_latents.npy must be (N, %d) and calib_scores.npy "
                             "(N)",
                             b->dir, sh.latent_dim);
    }
    return CFX_OK;
}
