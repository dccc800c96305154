/* inputs.c - images named on a command line, as one batch: PNG or JPEG files, folders of them
 * (their image files in name order, not recursive), and NumPy arrays (N,C,H,W) of floats in
 * [0,1], in the order given. Each image is converted to the models' channel count and must
 * have their height and width; a file that does not fit is named with what it holds. */
#include "data/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct {
    float *data;
    int64_t n, cap, per; /* images held, room, floats per image */
    cfx__strlist names;
} batch;

static cfx_status grow(batch *b, int64_t more) {
    if (b->n + more <= b->cap) return CFX_OK;
    int64_t cap = CFX_MAX(b->cap * 2, b->n + more);
    size_t bytes;
    if (!cfx__mul_size((size_t)cap, (size_t)b->per * sizeof(float), &bytes))
        return cfx_set_error(CFX_ENOMEM, "too many images");
    float *d = cfx_realloc(b->data, bytes);
    if (!d) return CFX_ENOMEM;
    b->data = d, b->cap = cap;
    return CFX_OK;
}

static cfx_status name(batch *b, const char *fmt, const char *file, int64_t row) {
    char buf[4200];
    snprintf(buf, sizeof buf, fmt, file, (long long)row);
    if (b->names.n == b->names.cap) {
        int cap = b->names.cap ? 2 * b->names.cap : 16;
        char **v = cfx_realloc(b->names.v, (size_t)cap * sizeof *v);
        if (!v) return CFX_ENOMEM;
        b->names.v = v, b->names.cap = cap;
    }
    if (!(b->names.v[b->names.n] = cfx_strdup(buf))) return CFX_ENOMEM;
    b->names.n++;
    return CFX_OK;
}

static cfx_status add_image(batch *b, const char *path, int c, int h, int w) {
    cfx_tensor *t = cfx_image_read(path, c);
    if (!t) return CFX_EFORMAT;
    cfx_status s = CFX_OK;
    if (t->shape[1] != h || t->shape[2] != w)
        s = cfx_set_error(CFX_ESHAPE, "'%s' is %lldx%lld pixels; the models take %dx%d", path,
                          (long long)t->shape[2], (long long)t->shape[1], w, h);
    if (s == CFX_OK) s = grow(b, 1);
    if (s == CFX_OK) {
        memcpy(b->data + b->n * b->per, t->data, (size_t)b->per * sizeof(float));
        s = name(b, "%s", path, 0);
        if (s == CFX_OK) b->n++;
    }
    cfx_tensor_free(t);
    return s;
}

static cfx_status add_npy(batch *b, const char *path, int c, int h, int w) {
    cfx_tensor *t = cfx_npy_read(path);
    if (!t) return CFX_EFORMAT;
    cfx_status s = CFX_OK;
    if (t->ndim != 4 || t->shape[1] != c || t->shape[2] != h || t->shape[3] != w) {
        char shape[64];
        cfx_tensor_shape_str(t->ndim, t->shape, shape, sizeof shape);
        s = cfx_set_error(CFX_ESHAPE, "'%s' holds an array %s; the models take (N, %d, %d, %d)",
                          path, shape, c, h, w);
    }
    if (s == CFX_OK) s = grow(b, t->shape[0]);
    for (int64_t i = 0; s == CFX_OK && i < t->shape[0]; i++) {
        memcpy(b->data + (b->n + i) * b->per, t->data + i * b->per, (size_t)b->per * sizeof(float));
        s = name(b, "%s[%lld]", path, i);
    }
    if (s == CFX_OK) b->n += t->shape[0];
    cfx_tensor_free(t);
    return s;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

cfx_status cfx_images_load(const char *const *inputs, int n_inputs, int c, int h, int w,
                           cfx_tensor **images, char ***names) {
    *images = NULL;
    if (names) *names = NULL;
    if (c != 1 && c != 3) return cfx_set_error(CFX_EINVAL, "images must have 1 or 3 channels");
    batch b = {.per = (int64_t)c * h * w};
    cfx_status s = n_inputs > 0 ? CFX_OK : cfx_set_error(CFX_EINVAL, "no images given");
    for (int k = 0; s == CFX_OK && k < n_inputs; k++) {
        const char *in = inputs[k];
        struct stat st;
        if (stat(in, &st) != 0) {
            s = cfx_set_error(CFX_EIO, "cannot open '%s': no such file or folder", in);
        } else if (S_ISDIR(st.st_mode)) {
            cfx__strlist files = {0};
            s = cfx__list_images(in, 0, &files);
            if (s == CFX_OK && files.n == 0)
                s = cfx_set_error(CFX_EINVAL, "folder '%s' holds no PNG or JPEG files", in);
            for (int i = 0; s == CFX_OK && i < files.n; i++) {
                char path[8704];
                snprintf(path, sizeof path, "%s/%s", in, files.v[i]);
                s = add_image(&b, path, c, h, w);
            }
            cfx__strlist_free(&files);
        } else if (ends_with(in, ".npy")) {
            s = add_npy(&b, in, c, h, w);
        } else {
            s = add_image(&b, in, c, h, w);
        }
    }
    if (s == CFX_OK && b.n == 0) s = cfx_set_error(CFX_EINVAL, "no images given");
    if (s == CFX_OK) {
        *images = cfx_tensor_new(4, (int64_t[]){b.n, c, h, w});
        if (!*images) s = CFX_ENOMEM;
    }
    if (s == CFX_OK) memcpy((*images)->data, b.data, (size_t)(b.n * b.per) * sizeof(float));
    cfx_free(b.data);
    if (s == CFX_OK && names) {
        *names = b.names.v; /* n names; the caller frees them with cfx_images_names_free */
        b.names.v = NULL, b.names.n = 0;
    }
    cfx__strlist_free(&b.names);
    return s;
}

void cfx_images_names_free(char **names, int64_t n) {
    for (int64_t i = 0; names && i < n; i++) cfx_free(names[i]);
    cfx_free(names);
}
