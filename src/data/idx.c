/* idx.c - IDX files, the format of MNIST and Fashion-MNIST (LeCun et al.), read through zlib.
 *
 * An IDX file is a 4-byte magic (two zero bytes, an element type, the number of dimensions),
 * the dimensions as big-endian 32-bit integers, then the elements in C order, big endian.
 * gzread reads gzip-compressed and plain files alike, so "x.gz" and "x" both work. A file
 * that ends early (a truncated download) is refused: zlib reports a missing gzip trailer, and
 * a short element count is checked here as well. */
#include "base/base.h"

#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

typedef struct {
    int code;
    size_t size;
    const char *name;
} idx_type;

static const idx_type idx_types[] = {{0x08, 1, "ubyte"}, {0x09, 1, "byte"},  {0x0B, 2, "short"},
                                     {0x0C, 4, "int"},   {0x0D, 4, "float"}, {0x0E, 8, "double"}};

/* zlib's message, without the "<path>: " it puts in front. */
static const char *zmsg(gzFile g, const char *path, int *zerr) {
    const char *msg = gzerror(g, zerr);
    size_t n = strlen(path);
    if (msg && strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg && *msg ? msg : "read error";
}

/* Reads exactly n bytes or fails with a message that says why (truncation or zlib's error). */
static cfx_status read_exact(gzFile g, const char *path, void *buf, size_t n, const char *what) {
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(g, p, chunk);
        if (got <= 0) {
            int zerr = 0;
            const char *msg = zmsg(g, path, &zerr);
            if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
                return cfx_set_error(CFX_EFORMAT, "'%s': corrupt or truncated IDX file (%s: %s)",
                                     path, what, msg);
            return cfx_set_error(CFX_EFORMAT, "'%s': truncated IDX file (file ends in the %s)",
                                 path, what);
        }
        p += got;
        n -= (size_t)got;
    }
    return CFX_OK;
}

/* Opens the file and parses the header; on success *g is open. */
static cfx_status read_header(const char *path, gzFile *g, const idx_type **type, int *ndim,
                              int64_t *shape, int64_t *numel) {
    errno = 0;
    *g = gzopen(path, "rb");
    if (!*g)
        return cfx_set_error(CFX_EIO, "cannot open '%s': %s", path,
                             errno ? strerror(errno) : "out of memory");
    unsigned char magic[4];
    cfx_status s = read_exact(*g, path, magic, 4, "header");
    if (s != CFX_OK) goto fail;
    *type = NULL;
    for (size_t k = 0; k < sizeof idx_types / sizeof idx_types[0]; k++)
        if (idx_types[k].code == magic[2]) *type = &idx_types[k];
    if (magic[0] != 0 || magic[1] != 0 || !*type || magic[3] < 1) {
        s = cfx_set_error(CFX_EFORMAT,
                          "'%s' is not an IDX file (magic %02x %02x %02x %02x; expected 00 00, "
                          "a type 08-0e, a dimension count)",
                          path, magic[0], magic[1], magic[2], magic[3]);
        goto fail;
    }
    if (magic[3] > CFX_MAX_DIMS) {
        s = cfx_set_error(CFX_EUNSUPPORTED, "'%s': %d dimensions (at most %d)", path, magic[3],
                          CFX_MAX_DIMS);
        goto fail;
    }
    *ndim = magic[3];
    for (int i = 0; i < *ndim; i++) {
        unsigned char d[4];
        if ((s = read_exact(*g, path, d, 4, "header")) != CFX_OK) goto fail;
        shape[i] = (int64_t)d[0] << 24 | (int64_t)d[1] << 16 | (int64_t)d[2] << 8 | d[3];
    }
    if ((s = cfx_tensor_check_shape(*ndim, shape, numel)) != CFX_OK) {
        cfx_error_context(s, "'%s'", path);
        goto fail;
    }
    /* The header's size is checked against the file's before anything is allocated: a 40-byte
     * file must not claim gigabytes. Deflate expands at most 1032:1, so a compressed file of
     * S bytes holds at most 1032 S. */
    struct stat st;
    double bytes = (double)*numel * (double)(*type)->size;
    double most = stat(path, &st) == 0 ? (double)st.st_size * (gzdirect(*g) ? 1 : 1032) : bytes;
    if (bytes > most) {
        s = cfx_set_error(CFX_EFORMAT,
                          "'%s': the header gives %lld elements of %zu bytes, more than the "
                          "file can hold (%lld bytes%s); the file is truncated or corrupt",
                          path, (long long)*numel, (*type)->size, (long long)st.st_size,
                          gzdirect(*g) ? "" : " compressed");
        goto fail;
    }
    return CFX_OK;
fail:
    gzclose(*g);
    *g = NULL;
    return s;
}

/* After the last element the stream must end cleanly; a gzip file whose trailer is cut off
 * only shows its damage here. Extra bytes after the data are refused as well. */
static cfx_status check_end(gzFile g, const char *path) {
    unsigned char extra;
    int got = gzread(g, &extra, 1);
    int zerr = 0;
    const char *msg = zmsg(g, path, &zerr);
    if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
        return cfx_set_error(CFX_EFORMAT, "'%s': corrupt or truncated IDX file (%s)", path, msg);
    if (got > 0) return cfx_set_error(CFX_EFORMAT, "'%s': extra bytes after the IDX data", path);
    return CFX_OK;
}

cfx_status cfx_idx_read_u8(const char *path, uint8_t **data, int *ndim, int64_t *shape) {
    *data = NULL;
    gzFile g;
    const idx_type *type;
    int64_t numel;
    CFX_TRY(read_header(path, &g, &type, ndim, shape, &numel));
    cfx_status s = CFX_OK;
    uint8_t *buf = NULL;
    if (type->code != 0x08) {
        s = cfx_set_error(CFX_EUNSUPPORTED, "'%s': IDX elements are %s, expected ubyte", path,
                          type->name);
    } else if (!(buf = cfx_malloc((size_t)numel))) {
        s = CFX_ENOMEM;
    } else if ((s = read_exact(g, path, buf, (size_t)numel, "data")) == CFX_OK) {
        s = check_end(g, path);
    }
    gzclose(g);
    if (s != CFX_OK) {
        cfx_free(buf);
        return s;
    }
    *data = buf;
    return CFX_OK;
}

/* One big-endian element of the given type as a float. */
static float convert(const unsigned char *p, int code) {
    uint64_t u = 0;
    switch (code) {
        case 0x08:
            return (float)p[0];
        case 0x09:
            return (float)(int8_t)p[0];
        case 0x0B:
            return (float)(int16_t)(uint16_t)(p[0] << 8 | p[1]);
        case 0x0C:
            return (float)(int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                                    (uint32_t)p[2] << 8 | p[3]);
        case 0x0D: {
            uint32_t w = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
            float f;
            memcpy(&f, &w, 4);
            return f;
        }
        case 0x0E: {
            for (int i = 0; i < 8; i++) u = u << 8 | p[i];
            double d;
            memcpy(&d, &u, 8);
            return (float)d;
        }
    }
    return 0;
}

cfx_tensor *cfx_idx_read(const char *path) {
    gzFile g;
    const idx_type *type;
    int ndim;
    int64_t shape[CFX_MAX_DIMS], numel;
    if (read_header(path, &g, &type, &ndim, shape, &numel) != CFX_OK) return NULL;
    cfx_tensor *t = cfx_tensor_new(ndim, shape);
    cfx_status s = t ? CFX_OK : CFX_ENOMEM;
    /* Read in chunks and convert in place into the float array. */
    unsigned char buf[1 << 15];
    size_t per = sizeof buf / type->size;
    for (int64_t i = 0; s == CFX_OK && i < numel;) {
        size_t want = (size_t)CFX_MIN((int64_t)per, numel - i);
        s = read_exact(g, path, buf, want * type->size, "data");
        for (size_t k = 0; s == CFX_OK && k < want; k++)
            t->data[i + (int64_t)k] = convert(buf + k * type->size, type->code);
        i += (int64_t)want;
    }
    if (s == CFX_OK) s = check_end(g, path);
    gzclose(g);
    if (s != CFX_OK) {
        cfx_tensor_free(t);
        return NULL;
    }
    return t;
}
