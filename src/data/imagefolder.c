/* imagefolder.c - datasets stored as one sub-folder of PNG/JPEG images per class (the layout of
 * torchvision's ImageFolder). Classes are the sub-folders in name order; images within a class
 * are taken in name order, so the same folder always loads in the same order. */
#include "data/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>

static int strlist_push(cfx__strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = cfx_realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v, l->cap = cap;
    }
    if (!(l->v[l->n] = cfx_strdup(s))) return -1;
    l->n++;
    return 0;
}

void cfx__strlist_free(cfx__strlist *l) {
    for (int i = 0; i < l->n; i++) cfx_free(l->v[i]);
    cfx_free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
                   strcasecmp(dot, ".jpeg") == 0);
}

cfx_status cfx__list_images(const char *dir, int want_dirs, cfx__strlist *out) {
    DIR *d = opendir(dir);
    if (!d) return cfx_set_error(CFX_EIO, "cannot open folder '%s': %s", dir, strerror(errno));
    int start = out->n; /* sort only what this folder adds */
    struct dirent *e;
    char path[8704];
    cfx_status s = CFX_OK;
    while (s == CFX_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        int ok = want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode) && is_image_name(e->d_name);
        if (ok && strlist_push(out, e->d_name) != 0) s = CFX_ENOMEM;
    }
    closedir(d);
    if (s == CFX_OK && out->n - start > 1)
        qsort(out->v + start, (size_t)(out->n - start), sizeof *out->v, cmp_str);
    return s;
}

cfx_dataset *cfx_imagefolder_load(const char *dir, int c, int h, int w) {
    cfx_dataset *d;
    return cfx__imagefolder_load(dir, c, h, w, &d) == CFX_OK ? d : NULL;
}

cfx_status cfx__imagefolder_load(const char *dir, int c, int h, int w, cfx_dataset **out) {
    *out = NULL;
    if (!dir) return cfx_set_error(CFX_EINVAL, "image folder: path is NULL");
    if (c != 0 && c != 1 && c != 3)
        return cfx_set_error(CFX_EINVAL, "image folder '%s': channels must be 0, 1 or 3", dir);
    cfx__strlist classes = {0}, files = {0};
    int *first = NULL; /* per class, the index of its first file in files */
    cfx_dataset *d = NULL;
    cfx_tensor *img = NULL;
    char path[8400];
    const int asked = h > 0 && w > 0;
    cfx_status s = cfx__list_images(dir, 1, &classes);
    if (s == CFX_OK && classes.n == 0)
        s = cfx_set_error(CFX_ENOTFOUND,
                          "image folder '%s' has no class folders (expected one sub-folder of "
                          "PNG/JPEG images per class)",
                          dir);
    if (s == CFX_OK && !(first = cfx_malloc(((size_t)classes.n + 1) * sizeof *first)))
        s = CFX_ENOMEM;
    for (int k = 0; s == CFX_OK && k < classes.n; k++) {
        first[k] = files.n;
        snprintf(path, sizeof path, "%s/%s", dir, classes.v[k]);
        s = cfx__list_images(path, 0, &files);
        if (s == CFX_OK && files.n == first[k])
            s = cfx_set_error(CFX_ENOTFOUND, "class folder '%s' has no PNG or JPEG images", path);
    }
    if (s != CFX_OK) goto done;
    first[classes.n] = files.n;
    for (int k = 0, i = 0; k < classes.n; k++) {
        for (; i < first[k + 1]; i++) {
            snprintf(path, sizeof path, "%s/%s/%s", dir, classes.v[k], files.v[i]);
            if (!(img = cfx_image_read(path, c))) {
                s = strstr(cfx_last_error(), "cannot open") ? CFX_EIO : CFX_EFORMAT;
                goto done;
            }
            if (!d) {
                /* The first image fixes whatever the caller left open. */
                if (!c) c = (int)img->shape[0];
                if (!h) h = (int)img->shape[1];
                if (!w) w = (int)img->shape[2];
                if (!(d = cfx__dataset_alloc(files.n, c, h, w, classes.n))) goto fail;
                d->num_classes = 0; /* names are filled below; free only those */
            }
            if (img->shape[1] != h || img->shape[2] != w) {
                s = cfx_set_error(CFX_ESHAPE, "'%s' is %lldx%lld pixels, expected %dx%d (as %s)",
                                  path, (long long)img->shape[2], (long long)img->shape[1], w, h,
                                  asked ? "asked" : "the first image");
                goto done;
            }
            memcpy(d->images->data + (size_t)i * (size_t)(c * h * w), img->data,
                   (size_t)(c * h * w) * sizeof(float));
            d->labels[i] = d->orig_labels[i] = k;
            cfx_tensor_free(img);
            img = NULL;
        }
    }
    for (int k = 0; k < classes.n; k++) {
        d->class_names[k] = classes.v[k];
        classes.v[k] = NULL;
        d->class_ids[k] = k;
        d->num_classes = k + 1;
    }
    const char *base = strrchr(dir, '/');
    d->name = cfx_strdup(base && base[1] ? base + 1 : dir);
    if (!d->name) goto fail;
    goto done;
fail:
    if (s == CFX_OK) s = CFX_ENOMEM;
done:
    cfx_tensor_free(img);
    cfx__strlist_free(&classes);
    cfx__strlist_free(&files);
    cfx_free(first);
    if (s != CFX_OK) {
        cfx_dataset_free(d);
        d = NULL;
    }
    *out = d;
    return s;
}
