/* tensor.c - dense float32 tensors: shape checks, allocation, fills. */
#include "base/base.h"

#include <math.h>
#include <stdio.h>

cfx_status cfx_tensor_check_shape(int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > CFX_MAX_DIMS)
        return cfx_set_error(CFX_ESHAPE, "a tensor has 0 to %d dimensions, not %d", CFX_MAX_DIMS,
                             ndim);
    if (ndim > 0 && !shape) return cfx_set_error(CFX_EINVAL, "shape is NULL");
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1) {
            char buf[128];
            cfx_tensor_shape_str(ndim, shape, buf, sizeof buf);
            return cfx_set_error(CFX_ESHAPE, "dimension %d of shape %s is %lld; it must be >= 1", i,
                                 buf, (long long)shape[i]);
        }
    int64_t n = 1;
    for (int i = 0; i < ndim && n > 0; i++)
        n = shape[i] > ((int64_t)1 << 40) / n ? -1 : n * shape[i];
    /* Keep byte counts representable: at most 2^40 elements. No one dimension is to blame. */
    if (n < 0) {
        char buf[160];
        cfx_tensor_shape_str(ndim, shape, buf, sizeof buf);
        return cfx_set_error(CFX_ESHAPE, "a tensor of shape %s would have more than 2^40 elements",
                             buf);
    }
    if (numel) *numel = n;
    return CFX_OK;
}

cfx_tensor *cfx_tensor_new(int ndim, const int64_t *shape) {
    int64_t n;
    if (cfx_tensor_check_shape(ndim, shape, &n) != CFX_OK) return NULL;
    cfx_tensor *t = cfx_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->data = cfx_aligned_alloc((size_t)n * sizeof(float));
    if (!t->data) {
        cfx_free(t);
        return NULL;
    }
    memset(t->data, 0, (size_t)n * sizeof(float));
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = n;
    return t;
}

void cfx_tensor_free(cfx_tensor *t) {
    if (!t) return;
    cfx_aligned_free(t->data);
    cfx_free(t);
}

int cfx_tensor_same_shape(const cfx_tensor *a, const cfx_tensor *b) {
    if (!a || !b || a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

void cfx_tensor_shape_str(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, ")");
}

void cfx_tensor_fill(cfx_tensor *t, float v) {
    if (!t) return;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = v;
}

void cfx_tensor_fill_uniform(cfx_tensor *t, cfx_rng *r, float lo, float hi) {
    if (!t || !r) return;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * (float)cfx_rng_uniform(r);
}

void cfx_tensor_fill_normal(cfx_tensor *t, cfx_rng *r, float mean, float std) {
    if (!t || !r) return;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = mean + std * (float)cfx_rng_normal(r);
}

cfx_status cfx_tensor_copy(cfx_tensor *dst, const cfx_tensor *src) {
    if (!dst || !src) return cfx_set_error(CFX_EINVAL, "tensor copy: NULL tensor");
    if (dst->numel != src->numel) {
        char a[128], b[128];
        cfx_tensor_shape_str(src->ndim, src->shape, a, sizeof a);
        cfx_tensor_shape_str(dst->ndim, dst->shape, b, sizeof b);
        return cfx_set_error(CFX_ESHAPE, "tensor copy: %s does not fit %s", a, b);
    }
    memcpy(dst->data, src->data, (size_t)src->numel * sizeof(float));
    return CFX_OK;
}

int64_t cfx_tensor_find_nonfinite(const cfx_tensor *t) {
    if (!t) return -1;
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(t->data[i])) return i;
    return -1;
}
