/* file.c - atomic file output (write a temporary, rename it into place) and whole-file reads. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

cfx_status cfx_file_create(cfx_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (!path || !*path) return cfx_set_error(CFX_EINVAL, "output path is empty");
    size_t n = strlen(path) + 32;
    af->path = cfx_strdup(path);
    af->tmp = cfx_malloc(n);
    if (!af->path || !af->tmp) {
        cfx_free(af->path);
        cfx_free(af->tmp);
        return CFX_ENOMEM;
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        cfx_status s = cfx_set_error(CFX_EIO, "cannot write '%s': %s", path, strerror(errno));
        cfx_free(af->path);
        cfx_free(af->tmp);
        af->path = af->tmp = NULL;
        return s;
    }
    return CFX_OK;
}

static void release(cfx_file *af) {
    cfx_free(af->path);
    cfx_free(af->tmp);
    af->path = af->tmp = NULL;
    af->f = NULL;
}

cfx_status cfx_file_commit(cfx_file *af) {
    if (!af->f) return cfx_set_error(CFX_EINVAL, "commit: file is not open");
    int bad = ferror(af->f);
    int err = bad ? EIO : 0;
    if (fclose(af->f) != 0 && !bad) bad = 1, err = errno;
    af->f = NULL;
    if (!bad && rename(af->tmp, af->path) != 0) bad = 1, err = errno;
    if (bad) {
        cfx_status s = cfx_set_error(CFX_EIO, "cannot write '%s': %s", af->path, strerror(err));
        remove(af->tmp);
        release(af);
        return s;
    }
    release(af);
    return CFX_OK;
}

void cfx_file_abort(cfx_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp) remove(af->tmp);
    release(af);
}

cfx_status cfx_file_read_all(const char *path, char **data, size_t *size) {
    if (!path || !data) return cfx_set_error(CFX_EINVAL, "read file: NULL path or output");
    *data = NULL;
    if (size) *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cfx_set_error(CFX_EIO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = cfx_malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *nb = cfx_realloc(buf, cap * 2);
        if (!nb) cfx_free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return CFX_ENOMEM;
    if (bad) {
        cfx_free(buf);
        return cfx_set_error(CFX_EIO, "cannot read '%s'", path);
    }
    buf[n] = '\0';
    *data = buf;
    if (size) *size = n;
    return CFX_OK;
}
