/* npy.c - NumPy .npy read and write (format versions 1.0, 2.0, 3.0; C order, little endian).
 *
 * The header is a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces so that the data starts on a 64-byte boundary. Only the three keys are read;
 * anything cfx cannot represent (Fortran order, big endian, object arrays) is refused by name. */
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

typedef enum { NPY_F4, NPY_F8, NPY_U1, NPY_I4, NPY_I8 } npy_type;

static const struct {
    const char *descr;
    npy_type type;
    size_t size;
} npy_types[] = {{"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8}, {"|u1", NPY_U1, 1},
                 {"<u1", NPY_U1, 1}, {"<i4", NPY_I4, 4}, {"<i8", NPY_I8, 8}};

/* Finds the value that follows 'key': in the header dict. */
static const char *dict_value(const char *h, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == ':') p++;
    return p;
}

static cfx_status parse_header(const char *path, const char *h, npy_type *type, size_t *isize,
                               int *ndim, int64_t *shape) {
    const char *d = dict_value(h, "descr");
    if (!d || *d != '\'') return cfx_set_error(CFX_EFORMAT, "'%s': .npy header has no descr", path);
    size_t k;
    for (k = 0; k < sizeof npy_types / sizeof npy_types[0]; k++)
        if (strncmp(d + 1, npy_types[k].descr, 3) == 0 && d[4] == '\'') break;
    if (k == sizeof npy_types / sizeof npy_types[0]) {
        int len = (int)strcspn(d + 1, "'"); /* the type as written, without what follows */
        return cfx_set_error(CFX_EUNSUPPORTED,
                             "'%s': array type '%.*s' is not supported (use float32, float64, "
                             "uint8, int32 or int64, little endian)",
                             path, len < 16 ? len : 16, d + 1);
    }
    *type = npy_types[k].type;
    *isize = npy_types[k].size;
    const char *f = dict_value(h, "fortran_order");
    if (!f) return cfx_set_error(CFX_EFORMAT, "'%s': .npy header has no fortran_order", path);
    if (strncmp(f, "False", 5) != 0)
        return cfx_set_error(CFX_EUNSUPPORTED,
                             "'%s': Fortran-ordered arrays are not supported (save with "
                             "np.ascontiguousarray)",
                             path);
    const char *s = dict_value(h, "shape");
    if (!s || *s != '(') return cfx_set_error(CFX_EFORMAT, "'%s': .npy header has no shape", path);
    s++;
    *ndim = 0;
    while (*s && *s != ')') {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 1)
            return cfx_set_error(CFX_EFORMAT, "'%s': bad or empty dimension in the .npy shape",
                                 path);
        if (*ndim == CFX_MAX_DIMS)
            return cfx_set_error(CFX_EUNSUPPORTED, "'%s': more than %d dimensions", path,
                                 CFX_MAX_DIMS);
        shape[(*ndim)++] = v;
        s = end;
    }
    if (*s != ')') return cfx_set_error(CFX_EFORMAT, "'%s': unterminated .npy shape", path);
    return CFX_OK;
}

static float convert(const unsigned char *p, npy_type t) {
    switch (t) {
        case NPY_F4: {
            float v;
            memcpy(&v, p, 4);
            return v;
        }
        case NPY_F8: {
            double v;
            memcpy(&v, p, 8);
            return (float)v;
        }
        case NPY_U1:
            return (float)p[0];
        case NPY_I4: {
            int32_t v;
            memcpy(&v, p, 4);
            return (float)v;
        }
        case NPY_I8: {
            int64_t v;
            memcpy(&v, p, 8);
            return (float)v;
        }
    }
    return 0;
}

cfx_tensor *cfx_npy_read(const char *path) {
    if (!path) {
        cfx_set_error(CFX_EINVAL, "npy read: path is NULL");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        cfx_set_error(CFX_EIO, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    cfx_tensor *t = NULL;
    char *header = NULL;
    unsigned char pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        cfx_set_error(CFX_EFORMAT, "'%s' is not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            cfx_set_error(CFX_EFORMAT, "'%s': truncated .npy header", path);
            goto done;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        cfx_set_error(CFX_EUNSUPPORTED, "'%s': .npy format version %d is not supported", path,
                      pre[6]);
        goto done;
    }
    if (hlen > (1 << 20)) {
        cfx_set_error(CFX_EFORMAT, "'%s': .npy header is %zu bytes long", path, hlen);
        goto done;
    }
    if (!(header = cfx_malloc(hlen + 1))) goto done;
    if (fread(header, 1, hlen, f) != hlen) {
        cfx_set_error(CFX_EFORMAT, "'%s': truncated .npy header", path);
        goto done;
    }
    header[hlen] = '\0';
    npy_type type = NPY_F4;
    size_t isize = 4;
    int ndim = 0;
    int64_t shape[CFX_MAX_DIMS];
    if (parse_header(path, header, &type, &isize, &ndim, shape) != CFX_OK) goto done;
    /* The shape, then its size against the file's, before allocating: a 160-byte file claimed
     * 13 GB (found by fuzzing). */
    int64_t numel;
    if (cfx_tensor_check_shape(ndim, shape, &numel) != CFX_OK) {
        cfx_error_context(CFX_EFORMAT, "'%s'", path);
        goto done;
    }
    double bytes = (double)isize * (double)numel;
    struct stat st;
    long data_at = ftell(f);
    if (data_at >= 0 && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
        bytes > (double)st.st_size - (double)data_at) {
        cfx_set_error(CFX_EFORMAT,
                      "'%s': truncated .npy data (the header gives %.0f bytes of values, the file "
                      "holds %lld after the header)",
                      path, bytes, (long long)st.st_size - data_at);
        goto done;
    }
    if (!(t = cfx_tensor_new(ndim, shape))) {
        cfx_error_context(CFX_EFORMAT, "'%s'", path);
        goto done;
    }
    /* Read in chunks and convert, so a float64 file does not need a second full buffer. */
    unsigned char buf[1 << 15];
    size_t per = sizeof buf / isize;
    for (int64_t i = 0; i < t->numel;) {
        size_t want = (size_t)CFX_MIN((int64_t)per, t->numel - i);
        if (fread(buf, isize, want, f) != want) {
            cfx_set_error(CFX_EFORMAT, "'%s': truncated .npy data (expected %lld values)", path,
                          (long long)t->numel);
            cfx_tensor_free(t);
            t = NULL;
            goto done;
        }
        if (type == NPY_F4)
            memcpy(t->data + i, buf, want * 4);
        else
            for (size_t k = 0; k < want; k++)
                t->data[i + (int64_t)k] = convert(buf + k * isize, type);
        i += (int64_t)want;
    }
    /* The one finiteness check of array inputs: ReLU maps NaN to 0 (as oneDNN's post-op does),
     * so a NaN image would otherwise flow through a model and be scored as a picture. */
    int64_t bad = cfx_tensor_find_nonfinite(t);
    if (bad >= 0) {
        char at[160];
        size_t n = 0;
        int64_t rest = bad, stride = t->numel;
        for (int d = 0; d < t->ndim && n < sizeof at; d++) {
            stride /= t->shape[d];
            n += (size_t)snprintf(at + n, sizeof at - n, "%s%lld", d ? ", " : "",
                                  (long long)(rest / stride));
            rest %= stride;
        }
        cfx_set_error(CFX_ENUMERIC,
                      "'%s': element %lld [%s] is a non-finite value (%g); every cfx input "
                      "must be finite",
                      path, (long long)bad, at, (double)t->data[bad]);
        cfx_tensor_free(t);
        t = NULL;
    }
done:
    cfx_free(header);
    fclose(f);
    return t;
}

/* The header of an array of type descr: magic, version 1.0, length and the dict, padded with
 * spaces and a newline so that the data starts at a multiple of 64. */
static cfx_status npy_header(const char *descr, int ndim, const int64_t *shape, unsigned char *buf,
                             size_t cap, size_t *len) {
    int64_t numel;
    CFX_TRY(cfx_tensor_check_shape(ndim, shape, &numel));
    char dict[512];
    int n =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[i],
                      i + 1 < ndim ? " " : "");
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t total = ((size_t)10 + (size_t)n + 1 + 63) / 64 * 64;
    if (total > cap) return cfx_set_error(CFX_EINVAL, "npy header: %zu bytes do not fit", total);
    size_t hlen = total - 10;
    const unsigned char pre[10] = {0x93,
                                   'N',
                                   'U',
                                   'M',
                                   'P',
                                   'Y',
                                   1,
                                   0,
                                   (unsigned char)(hlen & 0xff),
                                   (unsigned char)(hlen >> 8)};
    memcpy(buf, pre, 10);
    memset(buf + 10, ' ', hlen);
    memcpy(buf + 10, dict, (size_t)n);
    buf[total - 1] = '\n';
    *len = total;
    return CFX_OK;
}

cfx_status cfx_npy_header_f32(int ndim, const int64_t *shape, unsigned char *buf, size_t cap,
                              size_t *len) {
    return npy_header("<f4", ndim, shape, buf, cap, len);
}

static cfx_status write_npy(const char *path, const char *descr, const void *data, size_t isize,
                            int ndim, const int64_t *shape) {
    unsigned char header[640];
    size_t hlen;
    CFX_TRY(npy_header(descr, ndim, shape, header, sizeof header, &hlen));
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    cfx_file af;
    CFX_TRY(cfx_file_create(&af, path));
    fwrite(header, 1, hlen, af.f);
    fwrite(data, isize, (size_t)numel, af.f);
    return cfx_file_commit(&af);
}

cfx_status cfx_npy_write(const char *path, const cfx_tensor *t) {
    if (!t) return cfx_set_error(CFX_EINVAL, "npy write: tensor is NULL");
    return write_npy(path, "<f4", t->data, 4, t->ndim, t->shape);
}

cfx_status cfx_npy_write_u8(const char *path, const uint8_t *data, int ndim, const int64_t *shape) {
    return write_npy(path, "|u1", data, 1, ndim, shape);
}
