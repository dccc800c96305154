/* dataset_write.c - the writers behind `cfx data`: Fashion-MNIST, generated signs and image
 * folders as dataset folders (the format is described in dataset.c).
 *
 * A folder is written whole or not at all: everything goes into "<out>.tmp.<pid>", which is
 * renamed to <out> only after the manifest is written. An existing non-empty <out> is refused
 * unless the caller forces it, and then it is replaced only once the new folder is complete. */
#include "data/dataset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <sys/stat.h>

static const char *split_names[] = {"train", "calib", "test", "ood"};

/* ---------------------------------------------------------------- output folder --- */

/* A dataset being written: the temporary folder and the manifest under construction. */
typedef struct {
    const cfx_data_options *o;
    cfx_dir dir; /* the temporary folder, renamed into place by writer_finish */
    cJSON *manifest, *splits;
    int c, h, w;
} writer;

static cfx_status writer_begin(writer *wr, const cfx_data_options *o, const char *name) {
    memset(wr, 0, sizeof *wr);
    wr->o = o;
    if (!o) return cfx_set_error(CFX_EINVAL, "no output folder given");
    CFX_TRY(cfx_dir_create(&wr->dir, o->out, o->force));
    wr->manifest = cJSON_CreateObject();
    wr->splits = cJSON_CreateObject();
    if (!wr->manifest || !wr->splits) {
        cJSON_Delete(wr->manifest);
        cJSON_Delete(wr->splits);
        cfx_dir_abort(&wr->dir);
        return cfx_set_error(CFX_ENOMEM, "out of memory");
    }
    cJSON_AddStringToObject(wr->manifest, "format", "cfx-dataset");
    cJSON_AddNumberToObject(wr->manifest, "version", 1);
    cJSON_AddStringToObject(wr->manifest, "name", name);
    cJSON_AddNumberToObject(wr->manifest, "seed", (double)o->seed);
    return CFX_OK;
}

static void writer_abort(writer *wr) {
    cJSON_Delete(wr->manifest);
    cJSON_Delete(wr->splits);
    wr->manifest = wr->splits = NULL;
    cfx_dir_abort(&wr->dir);
}

/* Records the classes: all_names[0..n_all) by original id, holdout flags per original id. */
static void writer_classes(writer *wr, const char *const *all_names, int n_all, const int *held) {
    cJSON *all = cJSON_AddArrayToObject(wr->manifest, "all_classes");
    cJSON *names = cJSON_AddArrayToObject(wr->manifest, "classes");
    cJSON *ids = cJSON_AddArrayToObject(wr->manifest, "class_ids");
    cJSON *hold = cJSON_AddArrayToObject(wr->manifest, "holdout");
    for (int i = 0; i < n_all; i++) {
        cJSON_AddItemToArray(all, cJSON_CreateString(all_names[i]));
        if (held[i]) {
            cJSON_AddItemToArray(hold, cJSON_CreateNumber(i));
        } else {
            cJSON_AddItemToArray(names, cJSON_CreateString(all_names[i]));
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(i));
        }
    }
}

/* Writes one split's two files and its manifest entry. images is uint8 (n,c,h,w). */
static cfx_status writer_split(writer *wr, const char *split, const uint8_t *images,
                               const uint8_t *labels, int64_t n, const char *labels_are,
                               const char *note) {
    char path[4200], file_i[64], file_l[64];
    snprintf(file_i, sizeof file_i, "%s_images.npy", split);
    snprintf(file_l, sizeof file_l, "%s_labels.npy", split);
    cfx_progress_report(&wr->o->progress, "write", 0, 0, split);
    /* NumPy cannot hold an empty dimension here (cfx shapes are >= 1), so an empty split has
     * a manifest entry with count 0 and no files. */
    if (n > 0) {
        snprintf(path, sizeof path, "%s/%s", wr->dir.tmp, file_i);
        CFX_TRY(cfx_npy_write_u8(path, images, 4, (int64_t[]){n, wr->c, wr->h, wr->w}));
        snprintf(path, sizeof path, "%s/%s", wr->dir.tmp, file_l);
        CFX_TRY(cfx_npy_write_u8(path, labels, 1, (int64_t[]){n}));
    }
    cJSON *e = cJSON_AddObjectToObject(wr->splits, split);
    cJSON_AddNumberToObject(e, "count", (double)n);
    cJSON_AddStringToObject(e, "images", n > 0 ? file_i : "");
    cJSON_AddStringToObject(e, "labels", n > 0 ? file_l : "");
    cJSON_AddStringToObject(e, "labels_are", labels_are);
    if (note) cJSON_AddStringToObject(e, "from", note);
    return CFX_OK;
}

/* Writes the manifest last and moves the folder into place. */
static cfx_status writer_finish(writer *wr) {
    cJSON *shape = cJSON_AddArrayToObject(wr->manifest, "image_shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(wr->c));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(wr->h));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(wr->w));
    cJSON_AddItemToObject(wr->manifest, "splits", wr->splits);
    wr->splits = NULL;
    char *text = cJSON_Print(wr->manifest);
    if (!text) return cfx_set_error(CFX_ENOMEM, "out of memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", wr->dir.tmp);
    cfx_file af;
    cfx_status s = cfx_file_create(&af, path);
    if (s == CFX_OK) {
        fputs(text, af.f);
        fputc('\n', af.f);
        s = cfx_file_commit(&af);
    }
    cJSON_free(text);
    if (s != CFX_OK) return s;
    CFX_TRY(cfx_dir_commit(&wr->dir));
    cJSON_Delete(wr->manifest);
    wr->manifest = NULL;
    return CFX_OK;
}

/* --------------------------------------------------------------- Fashion-MNIST --- */

static const char *const fmnist_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                             "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                             "Bag",         "Ankle boot"};

/* Reads one images/labels pair and checks that they agree. */
static cfx_status read_idx_pair(const char *source, const char *prefix, uint8_t **images,
                                uint8_t **labels, int64_t *n) {
    char pi[4200], pl[4200];
    snprintf(pi, sizeof pi, "%s/%s-images-idx3-ubyte.gz", source, prefix);
    snprintf(pl, sizeof pl, "%s/%s-labels-idx1-ubyte.gz", source, prefix);
    int ndim;
    int64_t shape[CFX_MAX_DIMS];
    *images = *labels = NULL;
    CFX_TRY(cfx_idx_read_u8(pi, images, &ndim, shape));
    if (ndim != 3 || shape[1] != 28 || shape[2] != 28) {
        cfx_free(*images);
        *images = NULL;
        return cfx_set_error(CFX_ESHAPE, "'%s': expected 28x28 images (N,28,28)", pi);
    }
    *n = shape[0];
    cfx_status s = cfx_idx_read_u8(pl, labels, &ndim, shape);
    if (s == CFX_OK && (ndim != 1 || shape[0] != *n))
        s = cfx_set_error(CFX_ESHAPE, "'%s': expected %lld labels to match '%s'", pl, (long long)*n,
                          pi);
    for (int64_t i = 0; s == CFX_OK && i < *n; i++)
        if ((*labels)[i] > 9)
            s = cfx_set_error(CFX_EFORMAT, "'%s': label %d at index %lld is not 0..9", pl,
                              (*labels)[i], (long long)i);
    if (s != CFX_OK) {
        cfx_free(*images);
        cfx_free(*labels);
        *images = *labels = NULL;
    }
    return s;
}

/* Gathers rows idx[0..n) of src (row bytes each) with labels mapped through map. */
static void gather(const uint8_t *src_img, const uint8_t *src_lab, const int64_t *idx, int64_t n,
                   size_t row, const int *map, uint8_t *img, uint8_t *lab) {
    for (int64_t i = 0; i < n; i++) {
        memcpy(img + (size_t)i * row, src_img + (size_t)idx[i] * row, row);
        lab[i] = (uint8_t)(map ? map[src_lab[idx[i]]] : src_lab[idx[i]]);
    }
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

cfx_status cfx_data_prepare_fashion_mnist(const cfx_data_options *o, const char *source,
                                          int holdout, double calib_frac) {
    if (!source) source = "/usr/share/datasets/fashion-mnist";
    if (calib_frac == 0) calib_frac = 0.1;
    if (!(calib_frac > 0 && calib_frac < 1))
        return cfx_set_error(CFX_EINVAL, "calibration fraction %g is not in (0, 1)", calib_frac);
    if (holdout < -1 || holdout > 9)
        return cfx_set_error(CFX_EINVAL, "held-out class %d is not 0..9 (or -1 for none)", holdout);
    uint8_t *tr_img = NULL, *tr_lab = NULL, *te_img = NULL, *te_lab = NULL, *buf = NULL,
            *lab = NULL;
    int64_t *idx = NULL, ntr = 0, nte = 0;
    writer wr = {0};
    cfx_progress_report(o ? &o->progress : NULL, "read", 0, 0, source);
    cfx_status s = read_idx_pair(source, "train", &tr_img, &tr_lab, &ntr);
    if (s == CFX_OK) s = read_idx_pair(source, "t10k", &te_img, &te_lab, &nte);
    if (s == CFX_OK) s = writer_begin(&wr, o, "fashion-mnist");
    if (s != CFX_OK) goto done;
    wr.c = 1, wr.h = 28, wr.w = 28;
    int held[10] = {0}, map[10];
    if (holdout >= 0) held[holdout] = 1;
    for (int k = 0, j = 0; k < 10; k++) map[k] = held[k] ? -1 : j++;
    writer_classes(&wr, fmnist_names, 10, held);
    cJSON_AddStringToObject(wr.manifest, "source", source);
    cJSON_AddNumberToObject(wr.manifest, "calib_frac", calib_frac);
    const size_t row = 28 * 28;
    int64_t nmax = CFX_MAX(ntr, nte);
    idx = cfx_malloc((size_t)nmax * 2 * sizeof *idx);
    buf = cfx_malloc((size_t)nmax * row);
    lab = cfx_malloc((size_t)nmax);
    if (!idx || !buf || !lab) {
        s = CFX_ENOMEM;
        goto done;
    }
    /* Calibration: a seeded calib_frac of each class of the official training set (stratified,
     * so every class has its share for the per-class statistics of PaRCE); the rest trains. */
    cfx_rng rng;
    cfx_rng_init(&rng, o->seed);
    int64_t *cal = idx, *rest = idx + nmax, ncal = 0, nrest = 0;
    for (int k = 0; k < 10; k++) {
        if (held[k]) continue;
        int64_t *cls = rest + nrest, ncls = 0;
        for (int64_t i = 0; i < ntr; i++)
            if (tr_lab[i] == k) cls[ncls++] = i;
        cfx_rng_shuffle(&rng, cls, ncls);
        int64_t take = (int64_t)llround(calib_frac * (double)ncls);
        memcpy(cal + ncal, cls, (size_t)take * sizeof *cls);
        ncal += take;
        memmove(cls, cls + take, (size_t)(ncls - take) * sizeof *cls);
        nrest += ncls - take;
    }
    /* Keep the official order inside each split. */
    qsort(cal, (size_t)ncal, sizeof *cal, cmp_i64);
    qsort(rest, (size_t)nrest, sizeof *rest, cmp_i64);
    gather(tr_img, tr_lab, rest, nrest, row, map, buf, lab);
    s = writer_split(&wr, "train", buf, lab, nrest, "index", "official train set minus calib");
    if (s != CFX_OK) goto done;
    gather(tr_img, tr_lab, cal, ncal, row, map, buf, lab);
    s = writer_split(&wr, "calib", buf, lab, ncal, "index",
                     "seeded stratified fraction of the official train set");
    if (s != CFX_OK) goto done;
    int64_t nt = 0, no = 0, *ood = idx + nmax;
    for (int64_t i = 0; i < nte; i++) {
        if (held[te_lab[i]])
            ood[no++] = i;
        else
            idx[nt++] = i;
    }
    gather(te_img, te_lab, idx, nt, row, map, buf, lab);
    s = writer_split(&wr, "test", buf, lab, nt, "index", "official test set minus holdout");
    if (s != CFX_OK) goto done;
    gather(te_img, te_lab, ood, no, row, NULL, buf, lab);
    s = writer_split(&wr, "ood", buf, lab, no, "original",
                     "held-out class images of the official test set");
    if (s == CFX_OK) s = writer_finish(&wr);
done:
    if (s != CFX_OK) writer_abort(&wr);
    cfx_free(tr_img);
    cfx_free(tr_lab);
    cfx_free(te_img);
    cfx_free(te_lab);
    cfx_free(buf);
    cfx_free(lab);
    cfx_free(idx);
    return s;
}

/* ------------------------------------------------------------------------ signs --- */

/* Labels for n images cycling through k classes, in a seeded random order. */
static void balanced_labels(cfx_rng *r, int64_t n, int k, uint8_t *lab, int64_t *tmp) {
    for (int64_t i = 0; i < n; i++) tmp[i] = i % k;
    cfx_rng_shuffle(r, tmp, n);
    for (int64_t i = 0; i < n; i++) lab[i] = (uint8_t)tmp[i];
}

cfx_status cfx_data_prepare_signs(const cfx_data_options *o, const cfx_signs_options *o_signs,
                                  const cfx_signs_counts *counts) {
    cfx_signs_options so = o_signs ? *o_signs : (cfx_signs_options){0};
    if (so.size == 0) so.size = 32;
    if (so.size < 8 || so.size > 1024)
        return cfx_set_error(CFX_EINVAL, "sign image size %d is not 8..1024", so.size);
    cfx_signs_counts c = counts ? *counts : (cfx_signs_counts){0};
    if (!counts) c = (cfx_signs_counts){10000, 200, 200, 500, 20};
    if (c.holdout == 0) c.holdout = 20;
    if (c.train < 0 || c.calib < 0 || c.test < 0 || c.ood < 0)
        return cfx_set_error(CFX_EINVAL, "negative image count");
    int held[CFX_SIGNS_NUM_SPEEDS] = {0}, ids[CFX_SIGNS_NUM_SPEEDS], nk = 0, hid = -1;
    char names[CFX_SIGNS_NUM_SPEEDS][8];
    const char *name_ptr[CFX_SIGNS_NUM_SPEEDS];
    for (int k = 0; k < CFX_SIGNS_NUM_SPEEDS; k++) {
        snprintf(names[k], sizeof names[k], "%d", cfx_signs_speeds[k]);
        name_ptr[k] = names[k];
        if (cfx_signs_speeds[k] == c.holdout)
            held[k] = 1, hid = k;
        else
            ids[nk++] = k;
    }
    if (c.holdout != -1 && hid < 0)
        return cfx_set_error(CFX_EINVAL, "held-out speed %d is not one of the signs", c.holdout);
    if (hid < 0) c.ood = 0;
    writer wr;
    CFX_TRY(writer_begin(&wr, o, "signs"));
    wr.c = 3, wr.h = so.size, wr.w = so.size;
    writer_classes(&wr, name_ptr, CFX_SIGNS_NUM_SPEEDS, held);
    cJSON_AddStringToObject(wr.manifest, "source", "generated by cfx_signs_generate");
    cJSON_AddNumberToObject(wr.manifest, "supersample", so.supersample ? so.supersample : 4);
    const int64_t per[4] = {(int64_t)c.train * nk, (int64_t)c.calib * nk, (int64_t)c.test * nk,
                            c.ood};
    int64_t nmax = CFX_MAX(CFX_MAX(per[0], per[1]), CFX_MAX(per[2], per[3]));
    size_t isz = (size_t)3 * (size_t)so.size * (size_t)so.size;
    uint8_t *img = cfx_malloc(CFX_MAX((size_t)nmax, 1) * isz);
    uint8_t *lab = cfx_malloc(CFX_MAX((size_t)nmax, 1));
    int64_t *tmp = cfx_malloc(CFX_MAX((size_t)nmax, 1) * sizeof *tmp);
    int *speeds = cfx_malloc(CFX_MAX((size_t)nmax, 1) * sizeof *speeds);
    cfx_status s = img && lab && tmp && speeds ? CFX_OK : CFX_ENOMEM;
    cfx_rng base;
    cfx_rng_init(&base, o->seed);
    static const char *notes[4] = {"generated", "generated, never used for training", "generated",
                                   "generated images of the held-out speed"};
    for (int sp = 0; sp < 4 && s == CFX_OK; sp++) {
        /* Each split has its own streams: one for the label order, one for the images. */
        cfx_rng r_lab, r_img;
        cfx_rng_split(&base, 2 * (uint64_t)sp, &r_lab);
        cfx_rng_split(&base, 2 * (uint64_t)sp + 1, &r_img);
        int64_t n = per[sp];
        if (sp < 3) {
            balanced_labels(&r_lab, n, nk, lab, tmp);
            for (int64_t i = 0; i < n; i++) speeds[i] = cfx_signs_speeds[ids[lab[i]]];
        } else {
            for (int64_t i = 0; i < n; i++) lab[i] = (uint8_t)hid, speeds[i] = c.holdout;
        }
        s = cfx_signs_generate(&so, &r_img, speeds, n, img, &o->progress);
        if (s == CFX_OK)
            s = writer_split(&wr, split_names[sp], img, lab, n, sp < 3 ? "index" : "original",
                             notes[sp]);
    }
    if (s == CFX_OK) s = writer_finish(&wr);
    if (s != CFX_OK) writer_abort(&wr);
    cfx_free(img);
    cfx_free(lab);
    cfx_free(tmp);
    cfx_free(speeds);
    return s;
}

/* ---------------------------------------------------------------- image folders --- */

cfx_status cfx_data_prepare_folder(const cfx_data_options *o, const char *src, int c, int h, int w,
                                   const char *holdout, double calib_frac, double test_frac) {
    if (calib_frac == 0) calib_frac = 0.1;
    if (test_frac == 0) test_frac = 0.2;
    if (!(calib_frac > 0 && test_frac > 0 && calib_frac + test_frac < 1))
        return cfx_set_error(CFX_EINVAL,
                             "calibration and test fractions %g and %g must be positive and sum "
                             "to less than 1",
                             calib_frac, test_frac);
    cfx_progress_report(o ? &o->progress : NULL, "read", 0, 0, src);
    cfx_dataset *d;
    CFX_TRY(cfx__imagefolder_load(src, c, h, w, &d));
    int k = d->num_classes;
    if (k > 255) {
        cfx_dataset_free(d);
        return cfx_set_error(CFX_EUNSUPPORTED, "'%s': %d classes (at most 255)", src, k);
    }
    /* Mark the held-out classes named in the comma-separated list. */
    int *held = cfx_calloc((size_t)k, sizeof *held), *map = cfx_calloc((size_t)k, sizeof *map);
    cfx_status s = held && map ? CFX_OK : CFX_ENOMEM;
    for (const char *p = holdout; s == CFX_OK && p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int found = 0;
        for (int j = 0; j < k; j++)
            if (strlen(d->class_names[j]) == len && strncmp(d->class_names[j], p, len) == 0)
                held[j] = found = 1;
        if (!found)
            s = cfx_set_error(CFX_ENOTFOUND, "'%s' has no class folder '%.*s' to hold out", src,
                              (int)len, p);
        p = e ? e + 1 : p + len;
    }
    int nk = 0;
    for (int j = 0; s == CFX_OK && j < k; j++) map[j] = held[j] ? -1 : nk++;
    if (s == CFX_OK && nk == 0) s = cfx_set_error(CFX_EINVAL, "'%s': every class is held out", src);
    writer wr = {0};
    if (s == CFX_OK) s = writer_begin(&wr, o, "folder");
    const int64_t n = d->n, C = d->images->shape[1], H = d->images->shape[2],
                  W = d->images->shape[3];
    size_t row = (size_t)(C * H * W);
    uint8_t *u8 = NULL, *buf = NULL, *lab = NULL;
    int64_t *idx = NULL;
    if (s == CFX_OK) {
        wr.c = (int)C, wr.h = (int)H, wr.w = (int)W;
        writer_classes(&wr, (const char *const *)d->class_names, k, held);
        cJSON_AddStringToObject(wr.manifest, "source", src);
        u8 = cfx_malloc((size_t)n * row);
        buf = cfx_malloc((size_t)n * row);
        lab = cfx_malloc((size_t)n);
        idx = cfx_malloc((size_t)n * 4 * sizeof *idx);
        if (!u8 || !buf || !lab || !idx) s = CFX_ENOMEM;
    }
    if (s == CFX_OK) {
        for (size_t i = 0; i < (size_t)n * row; i++)
            u8[i] = (uint8_t)lrintf(d->images->data[i] * 255.0f);
        uint8_t *orig = cfx_malloc((size_t)n);
        if (!orig) s = CFX_ENOMEM;
        for (int64_t i = 0; orig && i < n; i++) orig[i] = (uint8_t)d->labels[i];
        /* Per class: a seeded shuffle, then test, calibration and training shares. */
        int64_t *part[4] = {idx, idx + n, idx + 2 * n, idx + 3 * n}, cnt[4] = {0};
        cfx_rng rng;
        cfx_rng_init(&rng, o->seed);
        for (int j = 0; s == CFX_OK && j < k; j++) {
            int64_t *cls = idx + 3 * n + cnt[3], m = 0;
            for (int64_t i = 0; i < n; i++)
                if (d->labels[i] == j) cls[m++] = i;
            if (held[j]) {
                cnt[3] += m;
                continue;
            }
            cfx_rng_shuffle(&rng, cls, m);
            int64_t nt = (int64_t)llround(test_frac * (double)m);
            int64_t nc = (int64_t)llround(calib_frac * (double)m);
            for (int64_t i = 0; i < m; i++) {
                int sp = i < nt ? 2 : i < nt + nc ? 1 : 0;
                part[sp][cnt[sp]++] = cls[i];
            }
        }
        static const char *labels_are[4] = {"index", "index", "index", "original"};
        for (int sp = 0; s == CFX_OK && sp < 4; sp++) {
            qsort(part[sp], (size_t)cnt[sp], sizeof(int64_t), cmp_i64);
            gather(u8, orig, part[sp], cnt[sp], row, sp < 3 ? map : NULL, buf, lab);
            s = writer_split(&wr, split_names[sp], buf, lab, cnt[sp], labels_are[sp],
                             sp == 3 ? "held-out class folders" : "seeded stratified split");
        }
        cfx_free(orig);
    }
    if (s == CFX_OK) s = writer_finish(&wr);
    if (s != CFX_OK && wr.manifest) writer_abort(&wr);
    cfx_free(u8);
    cfx_free(buf);
    cfx_free(lab);
    cfx_free(idx);
    cfx_free(held);
    cfx_free(map);
    cfx_dataset_free(d);
    return s;
}

/* ----------------------------------------------------------------------- scenes --- */

/* A mask (0/1 bytes over n pixels) as run lengths, outside first. */
static cJSON *mask_runs(const uint8_t *m, size_t n) {
    cJSON *a = cJSON_CreateArray();
    uint8_t cur = 0;
    size_t run = 0;
    for (size_t i = 0; a && i < n; i++) {
        if (m[i] != cur) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber((double)run));
            cur = m[i], run = 0;
        }
        run++;
    }
    if (a) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)run));
    return a;
}

/* Writes text to dir/name atomically. */
static cfx_status write_text(const char *dir, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cfx_file af;
    CFX_TRY(cfx_file_create(&af, path));
    fputs(text, af.f);
    return cfx_file_commit(&af);
}

cfx_status cfx_data_prepare_scenes(const cfx_data_options *o, const cfx_scenes_options *o_sc) {
    cfx_scenes_options so = o_sc ? *o_sc : (cfx_scenes_options){0};
    if (!so.size) so.size = 96;
    if (!so.count) so.count = 2000;
    if (!so.source) so.source = "/usr/share/datasets/fashion-mnist";
    if (so.size < 32 || so.size > 1024)
        return cfx_set_error(CFX_EINVAL, "scene size %d is not 32..1024", so.size);
    if (so.count < 10 || so.count > 1000000)
        return cfx_set_error(CFX_EINVAL, "scene count %d is not 10..1000000", so.count);
    const int S = so.size;
    const size_t P = (size_t)S * (size_t)S;
    /* 70% train, 10% calib, 20% test. */
    const int64_t per[3] = {so.count - so.count / 10 - so.count / 5, so.count / 10, so.count / 5};
    uint8_t *it[2] = {NULL, NULL}, *il[2] = {NULL, NULL}, *img = NULL, *lab = NULL, *mask = NULL;
    int64_t ni[2] = {0, 0}, *by = NULL, *tmp = NULL;
    cJSON *cj = NULL;
    writer wr = {0};
    cfx_progress_report(o ? &o->progress : NULL, "read", 0, 0, so.source);
    cfx_status s = read_idx_pair(so.source, "train", &it[0], &il[0], &ni[0]);
    if (s == CFX_OK) s = read_idx_pair(so.source, "t10k", &it[1], &il[1], &ni[1]);
    if (s != CFX_OK) {
        cfx_error_context(s, "scenes: the Fashion-MNIST items (Debian package "
                             "dataset-fashion-mnist)");
        goto done;
    }
    if ((s = writer_begin(&wr, o, "scenes")) != CFX_OK) goto done;
    wr.c = 3, wr.h = S, wr.w = S;
    int held[CFX_SCENES_NUM_CLASSES] = {0};
    writer_classes(&wr, cfx_scenes_classes, CFX_SCENES_NUM_CLASSES, held);
    cJSON_AddStringToObject(wr.manifest, "source", so.source);
    cJSON_AddStringToObject(wr.manifest, "rule", cfx_scenes_rule_text);
    int64_t nmax = CFX_MAX(per[0], CFX_MAX(ni[0], ni[1]));
    img = cfx_malloc((size_t)nmax * 3 * P);
    lab = cfx_malloc((size_t)nmax);
    mask = cfx_malloc((size_t)CFX_SCENES_MAX_ITEMS * P);
    by = cfx_malloc((size_t)(ni[0] + ni[1]) * sizeof *by);
    tmp = cfx_malloc((size_t)nmax * sizeof *tmp);
    cj = cJSON_CreateObject();
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/images", wr.dir.tmp);
    if (!img || !lab || !mask || !by || !tmp || !cj) {
        s = cfx_set_error(CFX_ENOMEM, "out of memory");
        goto done;
    }
    if (mkdir(dir, 0777) != 0) {
        s = cfx_set_error(CFX_EIO, "scenes: cannot create '%s': %s", dir, strerror(errno));
        goto done;
    }
    cJSON_AddStringToObject(
        cj, "description",
        "Scenes of Fashion-MNIST items written by `cfx data scenes`: per image its items as "
        "WordNet 3.0 synsets (objects), their boxes [x0, y0, x1, y1] (x1, y1 exclusive) and masks "
        "(run lengths over the image in row-major order, alternating outside and inside, "
        "starting outside), its class by the rule under labels.rule, and min_edits, the least "
        "number of edits that changes the class.");
    cJSON_AddStringToObject(cj, "rule", cfx_scenes_rule_text);
    cJSON *jimages = cJSON_AddArrayToObject(cj, "images");
    cfx_rng base;
    cfx_rng_init(&base, o->seed);
    int64_t id = 0;
    for (int sp = 0; sp < 3 && s == CFX_OK; sp++) {
        /* The items of this split's source set, by class. */
        int src = sp == 2;
        const int64_t *byk[10];
        int64_t nby[10] = {0}, at = 0;
        for (int k = 0; k < 10; k++) {
            byk[k] = by + at;
            for (int64_t i = 0; i < ni[src]; i++)
                if (il[src][i] == k) by[at + nby[k]++] = i;
            at += nby[k];
        }
        cfx_rng r_lab, r_img;
        cfx_rng_split(&base, 2 * (uint64_t)sp, &r_lab);
        cfx_rng_split(&base, 2 * (uint64_t)sp + 1, &r_img);
        balanced_labels(&r_lab, per[sp], CFX_SCENES_NUM_CLASSES, lab, tmp);
        for (int64_t i = 0; i < per[sp] && s == CFX_OK; i++, id++) {
            cfx_rng r;
            cfx_rng_split(&r_img, (uint64_t)i, &r);
            cfx__scene sc = {.mask = mask};
            uint8_t *im = img + (size_t)i * 3 * P;
            s = cfx__scenes_draw(S, &r, lab[i], it[src], byk, nby, im, &sc);
            char file[64], path[4300];
            snprintf(file, sizeof file, "images/%lld.png", (long long)id);
            snprintf(path, sizeof path, "%s/%s", wr.dir.tmp, file);
            if (s == CFX_OK) s = cfx_image_write_png_u8(path, im, 3, S, S);
            if (s != CFX_OK) break;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(jimages, e);
            cJSON_AddNumberToObject(e, "id", (double)id);
            cJSON_AddStringToObject(e, "file", file);
            cJSON_AddStringToObject(e, "split", split_names[sp]);
            cJSON *sz = cJSON_AddArrayToObject(e, "size");
            cJSON_AddItemToArray(sz, cJSON_CreateNumber(S));
            cJSON_AddItemToArray(sz, cJSON_CreateNumber(S));
            cJSON *objs = cJSON_AddArrayToObject(e, "objects");
            cJSON *boxes = cJSON_AddArrayToObject(e, "boxes");
            cJSON *masks = cJSON_AddArrayToObject(e, "masks");
            for (int k = 0; k < sc.n; k++) {
                cJSON_AddItemToArray(objs, cJSON_CreateString(cfx_scenes_synsets[sc.item[k]]));
                cJSON_AddItemToArray(boxes, cJSON_CreateIntArray(sc.box[k], 4));
                cJSON_AddItemToArray(masks, mask_runs(mask + (size_t)k * P, P));
            }
            cJSON *labels = cJSON_AddObjectToObject(e, "labels");
            cJSON_AddStringToObject(labels, "rule", cfx_scenes_classes[lab[i]]);
            cJSON_AddNumberToObject(e, "min_edits", cfx_scenes_min_edits(sc.set));
            if ((i + 1) % 64 == 0 || i + 1 == per[sp])
                cfx_progress_report(&o->progress, split_names[sp], i + 1, per[sp], NULL);
        }
        if (s == CFX_OK)
            s = writer_split(&wr, split_names[sp], img, lab, per[sp], "index",
                             "generated scenes (cfx data scenes)");
    }
    if (s == CFX_OK) s = writer_split(&wr, "ood", img, lab, 0, "original", "none");
    if (s == CFX_OK) {
        char *text = cJSON_PrintUnformatted(cj);
        s = text ? write_text(wr.dir.tmp, "concepts.json", text) : CFX_ENOMEM;
        cJSON_free(text);
    }
    if (s == CFX_OK) s = write_text(wr.dir.tmp, "rule.txt", cfx_scenes_rule_text);
    if (s == CFX_OK) s = writer_finish(&wr);
done:
    if (s != CFX_OK && wr.manifest) writer_abort(&wr);
    cJSON_Delete(cj);
    for (int k = 0; k < 2; k++) cfx_free(it[k]), cfx_free(il[k]);
    cfx_free(img);
    cfx_free(lab);
    cfx_free(mask);
    cfx_free(by);
    cfx_free(tmp);
    return s;
}
