/* alloc.c - the one allocation hook (stb-style), so tests can count leaks and inject failures. */
#include "base/base.h"

#include <stdlib.h>

static void *default_realloc(void *ptr, size_t size, void *ctx) {
    (void)ctx;
    return realloc(ptr, size ? size : 1);
}

static void default_free(void *ptr, void *ctx) {
    (void)ctx;
    free(ptr);
}

static cfx_allocator hook = {default_realloc, default_free, NULL};

void cfx_set_allocator(const cfx_allocator *a) {
    if (a)
        hook = *a;
    else
        hook = (cfx_allocator){default_realloc, default_free, NULL};
}

void *cfx_realloc(void *ptr, size_t size) {
    void *p = hook.realloc_fn(ptr, size, hook.ctx);
    if (!p) cfx_set_error(CFX_ENOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *cfx_malloc(size_t size) {
    return cfx_realloc(NULL, size);
}

void *cfx_calloc(size_t count, size_t size) {
    size_t n;
    if (!cfx__mul_size(count, size, &n)) {
        cfx_set_error(CFX_ENOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = cfx_malloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void cfx_free(void *ptr) {
    if (ptr) hook.free_fn(ptr, hook.ctx);
}

char *cfx_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = cfx_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Over-allocates by 64 bytes plus a pointer and keeps the raw pointer just below the
 * aligned one, so any realloc-style hook can serve aligned blocks. */
void *cfx_aligned_alloc(size_t size) {
    if (size > SIZE_MAX - 64 - sizeof(void *)) {
        cfx_set_error(CFX_ENOMEM, "aligned allocation of %zu bytes overflows", size);
        return NULL;
    }
    unsigned char *raw = cfx_malloc(size + 64 + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    return (void *)a;
}

void cfx_aligned_free(void *ptr) {
    if (ptr) cfx_free(((void **)ptr)[-1]);
}
