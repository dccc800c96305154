/* image.c - image files (stb_image in, stb_image_write out) and image grids.
 *
 * stb's decoders and PNG encoder are compiled here, static to this file, with their allocations
 * routed through cfx_malloc so that the tests' counting allocator sees them. Files are read
 * whole into memory first, so every failure names the file and says what stb found wrong. */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>

/* stb's allocation hooks. STBI_REALLOC_SIZED lets stb pass the old size, which cfx ignores. */
#define STBI_MALLOC(sz)      cfx_malloc(sz)
#define STBI_REALLOC(p, sz)  cfx_realloc(p, sz)
#define STBI_FREE(p)         cfx_free(p)
#define STBIW_MALLOC(sz)     cfx_malloc(sz)
#define STBIW_REALLOC(p, sz) cfx_realloc(p, sz)
#define STBIW_FREE(p)        cfx_free(p)
#define STBI_ASSERT(x)       CFX_ASSERT(x)
#define STBIW_ASSERT(x)      CFX_ASSERT(x)
#define STB_IMAGE_STATIC
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_NO_STDIO
/* cfx reads PNG and JPEG only: stb's other decoders (BMP, GIF, PSD, TGA, HDR, ...) would be
 * more code reading untrusted bytes for formats cfx does not promise. */
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_WRITE_NO_STDIO
#define STBI_FAILURE_USERMSG
#include "base/quiet_begin.h" /* until the pop below */
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop
/* stb declares static functions that this file never calls; GCC reports them at the end. */
#pragma GCC diagnostic ignored "-Wunused-function"

/* The reason stb gives for a failure, as a message can use it. stb tries its decoders in turn
 * and keeps the last reason set, so a JPEG that its decoder gives up on without one reported
 * the PNG test's "Not a PNG": for a file that starts like a JPEG, only a JPEG reason is kept. */
static const char *stb_reason(bool jpeg) {
    const char *r = stbi_failure_reason();
    if (!r) r = "unknown";
    if (jpeg && !strstr(r, "JPEG") && !strstr(r, "jpeg"))
        r = "corrupt JPEG data, or a JPEG kind stb_image does not read (it reads baseline and "
            "progressive 8-bit JPEG)";
    return r;
}

/* Checks of a JPEG's segments before stb_image decodes it, each for a fault of Debian's
 * stb_image 2.27 found by fuzzing (fuzz/fuzz_image.c). The walk follows the segments as stb
 * does, through the entropy-coded data (where a marker is 0xFF and a byte other than 0x00); stb
 * reads zeros past the end of the file, and so does the walk. Valid files pass every check.
 *   - A Huffman table (DHT) whose 16 code counts add up to more than 256: stb writes past its
 *     257-entry array.
 *   - A scan that uses a Huffman or quantization table no earlier segment defined: stb decodes
 *     with its tables' uninitialised memory (valgrind), and on some of it shifts a 32-bit value
 *     by 32 (UBSan, in stbi__grow_buffer_unsafe), or indexes its arrays at -16777464 and fails
 *     its own assertion (stbi__jpeg_huff_decode). A baseline scan uses its AC table whatever
 *     spectral end it states: stb decodes all 64 coefficients.
 *   - A frame too large for the file: every 8x8 block of every component takes at least one
 *     bit of coded data, so a 1 KB file that declares 4101 x 8455 pixels is cut short; stb
 *     would decode it, zeros for the missing data, into 104 MB of pixels. */
static const char *jpeg_check(const unsigned char *b, size_t n, size_t p) {
#define JB(i) ((size_t)(i) < n ? b[(i)] : 0u)
    bool dc[4] = {0}, ac[4] = {0}, quant[4] = {0}, progressive = false;
    int ncomp = 0, cid[4] = {0}, ctq[4] = {0};
    while (p + 1 < n) {
        unsigned m = b[p + 1];
        if (b[p] != 0xFF || m == 0xFF) { /* entropy-coded data, or a fill byte */
            p++;
            continue;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD9)) { /* segments without length */
            p += 2;
            continue;
        }
        size_t len = JB(p + 2) << 8 | JB(p + 3), q = p + 4;
        long left = (long)len - 2;
        if (m == 0xC4) /* DHT: a class/id byte, 16 counts and the symbols, per table */
            for (; left > 0;) {
                unsigned tc = JB(q) >> 4, th = JB(q) & 15;
                int codes = 0;
                for (size_t i = q + 1; i < q + 17; i++) codes += JB(i);
                if (codes > 256) return "corrupt: a Huffman table of more than 256 codes";
                if (th < 4) (tc ? ac : dc)[th] = true;
                q += 17 + (size_t)codes;
                left -= 17 + codes;
            }
        else if (m == 0xDB) /* DQT: a precision/id byte and 64 entries of 1 or 2 bytes */
            for (; left > 0;) {
                unsigned pq = JB(q) >> 4, tq = JB(q) & 15;
                if (tq < 4) quant[tq] = true;
                q += pq ? 129 : 65;
                left -= pq ? 129 : 65;
            }
        else if (m >= 0xC0 && m <= 0xC2) { /* SOF: baseline, extended, progressive */
            progressive = m == 0xC2;
            size_t h = JB(q + 1) << 8 | JB(q + 2), w = JB(q + 3) << 8 | JB(q + 4);
            ncomp = (int)JB(q + 5) < 4 ? (int)JB(q + 5) : 4;
            unsigned hmax = 1, vmax = 1;
            for (int k = 0; k < ncomp; k++) {
                unsigned hv = JB(q + 7 + 3 * k);
                if (hv >> 4 > hmax) hmax = hv >> 4;
                if ((hv & 15) > vmax) vmax = hv & 15;
            }
            double blocks = 0;
            for (int k = 0; k < ncomp; k++) {
                cid[k] = (int)JB(q + 6 + 3 * k);
                ctq[k] = (int)JB(q + 8 + 3 * k);
                unsigned hv = JB(q + 7 + 3 * k);
                double cw = ceil((double)w * (hv >> 4) / hmax),
                       ch = ceil((double)h * (hv & 15) / vmax);
                blocks += ceil(cw / 8) * ceil(ch / 8);
            }
            if (blocks / 8 > (double)n)
                return "truncated: the frame has more pixels than the file holds data for";
        } else if (m == 0xDA) { /* SOS: the scan's components and their tables */
            int ns = (int)JB(q);
            unsigned ss = JB(q + 1 + 2 * (size_t)ns), se = JB(q + 2 + 2 * (size_t)ns);
            for (int k = 0; k < ns; k++) {
                int c = (int)JB(q + 1 + 2 * (size_t)k);
                unsigned td = JB(q + 2 + 2 * (size_t)k) >> 4, ta = JB(q + 2 + 2 * (size_t)k) & 15;
                for (int i = 0; i < ncomp; i++)
                    if (cid[i] == c && ctq[i] < 4 && !quant[ctq[i]])
                        return "corrupt: a scan uses a quantization table that is not defined";
                bool uses_dc = !progressive || ss == 0, uses_ac = !progressive || se > 0;
                if ((uses_dc && td < 4 && !dc[td]) || (uses_ac && ta < 4 && !ac[ta]))
                    return "corrupt: a scan uses a Huffman table that is not defined";
            }
        }
        p += 2 + len;
    }
    return NULL;
#undef JB
}

/* stb_image grows its buffer for a PNG's image data to each IDAT chunk's stated length before
 * it finds the bytes missing: 129 bytes asked for 2 GiB (found by fuzzing). Every chunk up to
 * IEND must fit in the file, as in any valid PNG. */
static bool png_chunks_fit(const unsigned char *b, size_t n) {
    for (size_t p = 8; p + 8 <= n;) {
        size_t len = (size_t)b[p] << 24 | (size_t)b[p + 1] << 16 | (size_t)b[p + 2] << 8 | b[p + 3];
        if (len > n - p - 8) return false;
        if (memcmp(b + p + 4, "IEND", 4) == 0) return true;
        p += 12 + len; /* length, type, data, CRC */
    }
    return true; /* a file cut between chunks: stb says what is missing */
}

/* The most pixels an image may have: Pillow's MAX_IMAGE_PIXELS (a quarter GiB of 24-bit pixels),
 * or the environment's CFX_MAX_IMAGE_PIXELS. A file of a few bytes can declare 65535 x 65535
 * pixels; this keeps such a file from taking gigabytes of memory and minutes of decoding. */
static int64_t max_pixels(void) {
    const char *e = getenv("CFX_MAX_IMAGE_PIXELS");
    char *end;
    long long v = e ? strtoll(e, &end, 10) : 0;
    return e && *e && !*end && v > 0 ? (int64_t)v : 89478485;
}

/* stb_image adds a chunk's offset to its image-data buffer before it has one when the first IDAT
 * chunk is empty (UBSan: zero offset to a null pointer; found by fuzzing, also with the file cut
 * inside that chunk's CRC). Empty IDAT chunks carry no data, so a copy of the file without them
 * decodes to the same pixels: returns that copy (cfx_free) with its size, or NULL when the file
 * has none (or out of memory, with the error set). A chunk is seen from its 8-byte header on. */
static bool empty_idat_at(const unsigned char *b, size_t p) {
    return !b[p] && !b[p + 1] && !b[p + 2] && !b[p + 3] && memcmp(b + p + 4, "IDAT", 4) == 0;
}

static unsigned char *png_without_empty_idat(const unsigned char *b, size_t n, size_t *out_n) {
    bool any = false;
    for (size_t p = 8; p + 8 <= n && !any;) {
        size_t len = (size_t)b[p] << 24 | (size_t)b[p + 1] << 16 | (size_t)b[p + 2] << 8 | b[p + 3];
        any = empty_idat_at(b, p);
        if (n - p < 12 || len > n - p - 12) break;
        p += 12 + len;
    }
    if (!any) return NULL;
    unsigned char *c = cfx_malloc(n);
    if (!c) return NULL;
    memcpy(c, b, 8);
    size_t o = 8, p = 8;
    while (p + 8 <= n) {
        size_t len = (size_t)b[p] << 24 | (size_t)b[p + 1] << 16 | (size_t)b[p + 2] << 8 | b[p + 3];
        if (empty_idat_at(b, p)) { /* dropped, with as much of its CRC as there is */
            p += n - p < 12 ? n - p : 12;
            continue;
        }
        if (n - p < 12 || len > n - p - 12) break;
        memcpy(c + o, b + p, 12 + len);
        o += 12 + len;
        p += 12 + len;
    }
    memcpy(c + o, b + p, n - p); /* what is left of a cut file, as it was */
    *out_n = o + (n - p);
    return c;
}

static cfx_tensor *decode_bytes(const unsigned char *bytes, size_t size, int channels,
                                const char *what);

/* Decodes size bytes of a PNG or JPEG; what ("read 'x.png'", "decode the editor's image")
 * begins every message. */
static cfx_tensor *decode(const unsigned char *bytes, size_t size, int channels, const char *what) {
    size_t n2 = 0;
    unsigned char *copy = size >= 8 && memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0
                              ? png_without_empty_idat(bytes, size, &n2)
                              : NULL;
    cfx_tensor *t = decode_bytes(copy ? copy : bytes, copy ? n2 : size, channels, what);
    cfx_free(copy);
    return t;
}

static cfx_tensor *decode_bytes(const unsigned char *bytes, size_t size, int channels,
                                const char *what) {
    if (channels != 0 && channels != 1 && channels != 3) {
        cfx_set_error(CFX_EINVAL, "%s: channels must be 0, 1 or 3, not %d", what, channels);
        return NULL;
    }
    if (size > INT32_MAX) {
        cfx_set_error(CFX_EUNSUPPORTED, "%s: the image is larger than 2 GiB", what);
        return NULL;
    }
    int w, h, comp;
    /* A JPEG as stb finds one: its start-of-image marker, 0xFF 0xD8, after any 0xFF fill. */
    size_t soi = 0;
    while (soi < size && bytes[soi] == 0xff) soi++;
    bool jpeg = soi > 0 && soi < size && bytes[soi] == 0xd8;
    if (size >= 8 && memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0 && !png_chunks_fit(bytes, size)) {
        cfx_set_error(CFX_EFORMAT,
                      "%s: truncated or corrupt PNG (a chunk is longer than the rest of "
                      "the file)",
                      what);
        return NULL;
    }
    const char *bad = jpeg ? jpeg_check(bytes, size, soi + 1) : NULL;
    if (bad) {
        cfx_set_error(CFX_EFORMAT, "%s: cannot decode the JPEG (%s)", what, bad);
        return NULL;
    }
    if (!stbi_info_from_memory(bytes, (int)size, &w, &h, &comp)) {
        cfx_set_error(CFX_EFORMAT, "%s: %s (stb: %s)", what,
                      jpeg ? "cannot decode the JPEG" : "not a PNG or JPEG image",
                      stb_reason(jpeg));
        return NULL;
    }
    int64_t limit = max_pixels();
    if ((int64_t)w * h > limit) {
        cfx_set_error(CFX_EUNSUPPORTED,
                      "%s: %d x %d pixels is more than cfx's limit of %lld pixels "
                      "(set CFX_MAX_IMAGE_PIXELS to raise it)",
                      what, w, h, (long long)limit);
        return NULL;
    }
    int want = channels ? channels : (comp <= 2 ? 1 : 3);
    stbi_uc *px = stbi_load_from_memory(bytes, (int)size, &w, &h, &comp, want);
    if (!px) {
        cfx_set_error(CFX_EFORMAT, "%s: cannot decode the %s (stb: %s)", what,
                      jpeg ? "JPEG" : "image", stb_reason(jpeg));
        return NULL;
    }
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){want, h, w});
    if (t) {
        /* Interleaved HWC bytes -> planar CHW floats in [0,1]. */
        int64_t plane = (int64_t)h * w;
        for (int64_t p = 0; p < plane; p++)
            for (int c = 0; c < want; c++) t->data[c * plane + p] = px[p * want + c] / 255.0f;
    } else {
        cfx_error_context(CFX_ENOMEM, "%s", what);
    }
    stbi_image_free(px);
    return t;
}

cfx_tensor *cfx_image_read(const char *path, int channels) {
    char what[4200];
    snprintf(what, sizeof what, "read '%s'", path);
    if (channels != 0 && channels != 1 && channels != 3) return decode(NULL, 0, channels, what);
    char *buf;
    size_t size;
    if (cfx_file_read_all(path, &buf, &size) != CFX_OK) return NULL;
    cfx_tensor *t = decode((const unsigned char *)buf, size, channels, what);
    cfx_free(buf);
    return t;
}

cfx_tensor *cfx_image_decode(const void *bytes, size_t size, int channels, const char *name) {
    char what[600];
    snprintf(what, sizeof what, "decode %s", name ? name : "an image");
    if (!bytes) size = 0;
    return decode(bytes ? bytes : "", size, channels, what);
}

/* stb_image_write hands the encoded PNG to this callback in pieces. */
static void write_to_file(void *ctx, void *data, int size) {
    fwrite(data, 1, (size_t)size, ((cfx_file *)ctx)->f);
}

cfx_status cfx_image_write_png_u8(const char *path, const uint8_t *chw, int c, int h, int w) {
    if (c != 1 && c != 3)
        return cfx_set_error(CFX_EINVAL, "write '%s': an image has 1 or 3 channels, not %d", path,
                             c);
    if (h < 1 || w < 1 || (int64_t)h * w > (1 << 28))
        return cfx_set_error(CFX_EINVAL, "write '%s': bad image size %dx%d", path, w, h);
    size_t plane = (size_t)h * (size_t)w;
    uint8_t *hwc = cfx_malloc(plane * (size_t)c);
    if (!hwc) return CFX_ENOMEM;
    for (size_t p = 0; p < plane; p++)
        for (int k = 0; k < c; k++) hwc[p * (size_t)c + (size_t)k] = chw[(size_t)k * plane + p];
    cfx_file af;
    cfx_status s = cfx_file_create(&af, path);
    if (s == CFX_OK) {
        if (!stbi_write_png_to_func(write_to_file, &af, w, h, c, hwc, w * c)) {
            cfx_file_abort(&af);
            s = cfx_set_error(CFX_EIO, "write '%s': PNG encoding failed", path);
        } else {
            s = cfx_file_commit(&af);
        }
    }
    cfx_free(hwc);
    return s;
}

/* A growing buffer for stb_image_write's pieces. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
    bool failed;
} membuf;

static void write_to_mem(void *ctx, void *data, int size) {
    membuf *b = ctx;
    if (b->failed) return;
    if (b->n + (size_t)size > b->cap) {
        size_t cap = CFX_MAX(b->cap * 2, b->n + (size_t)size + 4096);
        unsigned char *q = cfx_realloc(b->p, cap);
        if (!q) {
            b->failed = true;
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, data, (size_t)size);
    b->n += (size_t)size;
}

cfx_status cfx_image_encode_png(const float *chw, int c, int h, int w, unsigned char **png,
                                size_t *len) {
    if ((c != 1 && c != 3) || h < 1 || w < 1 || (int64_t)h * w > (1 << 28))
        return cfx_set_error(CFX_EINVAL, "encode PNG: bad image (%d, %d, %d)", c, h, w);
    size_t plane = (size_t)h * (size_t)w;
    uint8_t *hwc = cfx_malloc(plane * (size_t)c);
    if (!hwc) return CFX_ENOMEM;
    for (size_t p = 0; p < plane; p++)
        for (int k = 0; k < c; k++) {
            float v = chw[(size_t)k * plane + p];
            v = v > 0 ? (v < 1 ? v : 1) : 0; /* NaN reads as 0 */
            hwc[p * (size_t)c + (size_t)k] = (uint8_t)lrintf(v * 255.0f);
        }
    membuf b = {0};
    int ok = stbi_write_png_to_func(write_to_mem, &b, w, h, c, hwc, w * c);
    cfx_free(hwc);
    if (!ok || b.failed) {
        cfx_free(b.p);
        return b.failed ? CFX_ENOMEM : cfx_set_error(CFX_EIO, "encode PNG: stb failed");
    }
    *png = b.p, *len = b.n;
    return CFX_OK;
}

cfx_status cfx_image_write_png(const char *path, const cfx_tensor *image) {
    if (!image) return cfx_set_error(CFX_EINVAL, "write '%s': image is NULL", path);
    int off = image->ndim == 4 ? 1 : 0;
    if ((image->ndim != 3 && image->ndim != 4) || (off && image->shape[0] != 1))
        return cfx_set_error(CFX_ESHAPE, "write '%s': expected an image (C,H,W) or (1,C,H,W)",
                             path);
    int c = (int)image->shape[off], h = (int)image->shape[off + 1], w = (int)image->shape[off + 2];
    uint8_t *u8 = cfx_malloc((size_t)image->numel);
    if (!u8) return CFX_ENOMEM;
    for (int64_t i = 0; i < image->numel; i++) {
        float v = image->data[i];
        v = v != v ? 0 : v < 0 ? 0 : v > 1 ? 1 : v; /* NaN shows as black */
        u8[i] = (uint8_t)lrintf(v * 255.0f);
    }
    cfx_status s = cfx_image_write_png_u8(path, u8, c, h, w);
    cfx_free(u8);
    return s;
}

cfx_tensor *cfx_image_grid(const cfx_tensor *images, const cfx_grid_options *o) {
    cfx_grid_options g = o ? *o : (cfx_grid_options){0};
    if (!images || images->ndim != 4) {
        cfx_set_error(CFX_ESHAPE, "image grid: expected a batch (N,C,H,W)");
        return NULL;
    }
    int64_t n = images->shape[0], c = images->shape[1], h = images->shape[2], w = images->shape[3];
    if (g.scale <= 0) g.scale = 1;
    if (g.pad < 0) g.pad = 0;
    if (g.cols <= 0) g.cols = (int)ceil(sqrt((double)n));
    int64_t cols = CFX_MIN((int64_t)g.cols, n), rows = (n + cols - 1) / cols;
    int64_t th = h * g.scale + g.pad, tw = w * g.scale + g.pad;
    cfx_tensor *out = cfx_tensor_new(3, (int64_t[]){c, rows * th + g.pad, cols * tw + g.pad});
    if (!out) {
        cfx_error_context(CFX_EINVAL, "image grid");
        return NULL;
    }
    cfx_tensor_fill(out, g.pad_value);
    int64_t oh = out->shape[1], ow = out->shape[2];
    for (int64_t i = 0; i < n; i++) {
        int64_t y0 = g.pad + (i / cols) * th, x0 = g.pad + (i % cols) * tw;
        for (int64_t k = 0; k < c; k++) {
            const float *src = images->data + (i * c + k) * h * w;
            float *dst = out->data + k * oh * ow;
            for (int64_t y = 0; y < h * g.scale; y++)
                for (int64_t x = 0; x < w * g.scale; x++)
                    dst[(y0 + y) * ow + x0 + x] = src[(y / g.scale) * w + x / g.scale];
        }
    }
    return out;
}

cfx_status cfx_image_write_grid(const char *path, const cfx_tensor *images,
                                const cfx_grid_options *o) {
    cfx_tensor *g = cfx_image_grid(images, o);
    if (!g) return cfx_error_context(CFX_EINVAL, "write '%s'", path);
    cfx_status s = cfx_image_write_png(path, g);
    cfx_tensor_free(g);
    return s;
}
