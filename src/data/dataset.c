/* dataset.c - dataset folders, read side: cfx_dataset_load, and the dataset object.
 *
 * A dataset folder holds manifest.json and, per split, <split>_images.npy (uint8 (N,C,H,W)) and
 * <split>_labels.npy (uint8 (N)). The manifest names the classes (index -> name), the original
 * ids of the trained classes, the held-out ids, the image shape, the seed, and each split's files
 * and count. Labels of train/calib/test index the trained classes; ood labels are original ids.
 * The writers behind `cfx data` are in dataset_write.c. */
#include "data/dataset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

cfx_dataset *cfx__dataset_alloc(int64_t n, int c, int h, int w, int num_classes) {
    cfx_dataset *d = cfx_calloc(1, sizeof *d);
    if (!d) return NULL;
    d->n = n;
    d->num_classes = num_classes;
    d->images = cfx_tensor_new(4, (int64_t[]){n, c, h, w});
    d->labels = cfx_calloc((size_t)n, sizeof *d->labels);
    d->orig_labels = cfx_calloc((size_t)n, sizeof *d->orig_labels);
    d->class_names = cfx_calloc((size_t)CFX_MAX(num_classes, 1), sizeof *d->class_names);
    d->class_ids = cfx_calloc((size_t)CFX_MAX(num_classes, 1), sizeof *d->class_ids);
    if (!d->images || !d->labels || !d->orig_labels || !d->class_names || !d->class_ids) {
        cfx_dataset_free(d);
        return NULL;
    }
    return d;
}

void cfx_dataset_free(cfx_dataset *d) {
    if (!d) return;
    cfx_tensor_free(d->images);
    cfx_free(d->labels);
    cfx_free(d->orig_labels);
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++) cfx_free(d->class_names[i]);
    cfx_free(d->class_names);
    cfx_free(d->class_ids);
    cfx_free(d->name);
    cfx_free(d->split);
    cfx_free(d);
}

/* ------------------------------------------------------------------------- load --- */

static cfx_status json_int(const cJSON *v, const char *path, const char *what, long long lo,
                           long long hi, long long *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return cfx_set_error(CFX_EFORMAT, "'%s': %s is missing or not a whole number in %lld..%lld",
                             path, what, lo, hi);
    *out = (long long)v->valuedouble;
    return CFX_OK;
}

cfx_dataset *cfx_dataset_load(const char *dir, const char *split) {
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    char *text = NULL;
    if (cfx_file_read_all(path, &text, NULL) != CFX_OK) {
        cfx_error_context(CFX_EIO, "load dataset '%s' (a folder written by `cfx data`)", dir);
        return NULL;
    }
    cJSON *m = cJSON_Parse(text);
    cfx_free(text);
    cfx_dataset *d = NULL;
    cfx_tensor *img = NULL, *lab = NULL;
    cfx_status s = CFX_OK;
    if (!m) {
        cfx_set_error(CFX_EFORMAT, "'%s' is not valid JSON", path);
        return NULL;
    }
    const cJSON *shape = cJSON_GetObjectItem(m, "image_shape");
    const cJSON *classes = cJSON_GetObjectItem(m, "classes");
    const cJSON *ids = cJSON_GetObjectItem(m, "class_ids");
    const cJSON *sp = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "splits"), split ? split : "");
    long long chw[3] = {0}, count = 0;
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 3 || !cJSON_IsArray(classes) ||
        !cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != cJSON_GetArraySize(classes) ||
        cJSON_GetArraySize(classes) < 1) {
        s = cfx_set_error(CFX_EFORMAT, "'%s' lacks image_shape, classes or class_ids", path);
        goto done;
    }
    if (!sp) {
        s = cfx_set_error(CFX_ENOTFOUND, "'%s' has no split '%s' (train, calib, test, ood)", path,
                          split ? split : "(null)");
        goto done;
    }
    for (int i = 0; i < 3 && s == CFX_OK; i++)
        s = json_int(cJSON_GetArrayItem(shape, i), path, "image_shape", 1, 1 << 16, &chw[i]);
    if (s == CFX_OK)
        s = json_int(cJSON_GetObjectItem(sp, "count"), path, "count", 0, INT64_MAX / 2, &count);
    if (s != CFX_OK) goto done;
    if (count == 0) {
        s = cfx_set_error(CFX_ENOTFOUND, "'%s': split '%s' is empty", path, split);
        goto done;
    }
    int k = cJSON_GetArraySize(classes);
    const cJSON *fi = cJSON_GetObjectItem(sp, "images"), *fl = cJSON_GetObjectItem(sp, "labels");
    const cJSON *la = cJSON_GetObjectItem(sp, "labels_are");
    int original = cJSON_IsString(la) && strcmp(la->valuestring, "original") == 0;
    if (!cJSON_IsString(fi) || !cJSON_IsString(fl) || strchr(fi->valuestring, '/') ||
        strchr(fl->valuestring, '/')) {
        s = cfx_set_error(CFX_EFORMAT, "'%s': split '%s' names no plain image and label files",
                          path, split);
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s", dir, fi->valuestring);
    if (!(img = cfx_npy_read(path))) goto fail;
    if (img->ndim != 4 || img->shape[0] != count || img->shape[1] != chw[0] ||
        img->shape[2] != chw[1] || img->shape[3] != chw[2]) {
        s = cfx_set_error(CFX_ESHAPE, "'%s' does not hold %lld images of shape (%lld,%lld,%lld)",
                          path, count, chw[0], chw[1], chw[2]);
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s", dir, fl->valuestring);
    if (!(lab = cfx_npy_read(path))) goto fail;
    if (lab->numel != count) {
        s = cfx_set_error(CFX_ESHAPE, "'%s' holds %lld labels, expected %lld", path,
                          (long long)lab->numel, count);
        goto done;
    }
    if (!(d = cfx_calloc(1, sizeof *d))) goto fail;
    d->n = count;
    d->num_classes = k;
    d->labels = cfx_malloc((size_t)count * sizeof *d->labels);
    d->orig_labels = cfx_malloc((size_t)count * sizeof *d->orig_labels);
    d->class_names = cfx_calloc((size_t)k, sizeof *d->class_names);
    d->class_ids = cfx_calloc((size_t)k, sizeof *d->class_ids);
    const cJSON *name = cJSON_GetObjectItem(m, "name");
    d->name = cfx_strdup(cJSON_IsString(name) ? name->valuestring : "");
    d->split = cfx_strdup(split);
    if (!d->labels || !d->orig_labels || !d->class_names || !d->class_ids || !d->name || !d->split)
        goto fail;
    for (int i = 0; i < k; i++) {
        const cJSON *cn = cJSON_GetArrayItem(classes, i);
        long long id = 0;
        if (!cJSON_IsString(cn)) {
            s = cfx_set_error(CFX_EFORMAT, "'%s/manifest.json': class %d has no name", dir, i);
            goto done;
        }
        if ((s = json_int(cJSON_GetArrayItem(ids, i), dir, "class_ids", 0, 1 << 30, &id)))
            goto done;
        if (!(d->class_names[i] = cfx_strdup(cn->valuestring))) goto fail;
        d->class_ids[i] = (int32_t)id;
    }
    for (int64_t i = 0; i < count; i++) {
        /* A label that is no whole number in 0..2^30 matches no class (-1); converting -2e33
         * to int was undefined (found by fuzzing). */
        float v = lab->data[i];
        int32_t l = v >= 0 && v <= (float)(1 << 30) && v == floorf(v) ? (int32_t)v : -1, idx = -1;
        if (original) {
            for (int j = 0; j < k; j++)
                if (d->class_ids[j] == l) idx = j;
        } else if (l >= 0 && l < k && (float)l == v) {
            idx = l;
        } else {
            s = cfx_set_error(CFX_EFORMAT, "'%s': label %g at index %lld is not 0..%d", path,
                              (double)v, (long long)i, k - 1);
            goto done;
        }
        d->labels[i] = idx;
        d->orig_labels[i] = original ? l : d->class_ids[idx];
    }
    /* Stored as bytes 0..255 (a float array is read too, so its values are checked: 1e30 would
     * train to a loss of 1e29); cfx images are floats in [0,1]. */
    snprintf(path, sizeof path, "%s/%s", dir, fi->valuestring);
    for (int64_t i = 0; i < img->numel; i++) {
        float v = img->data[i];
        if (!(v >= 0 && v <= 255 && v == floorf(v))) {
            s = cfx_set_error(CFX_EFORMAT,
                              "'%s': element %lld (image %lld) is %g; dataset images are bytes "
                              "0..255 (uint8), as `cfx data` writes them",
                              path, (long long)i, (long long)(i / (img->numel / count)), (double)v);
            goto done;
        }
        img->data[i] = v / 255.0f;
    }
    d->images = img;
    img = NULL;
    goto done;
fail:
    if (s == CFX_OK) s = CFX_EIO;
done:
    cJSON_Delete(m);
    cfx_tensor_free(img);
    cfx_tensor_free(lab);
    if (s != CFX_OK) {
        cfx_dataset_free(d);
        d = NULL;
    }
    return d;
}
