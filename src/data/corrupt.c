/* corrupt.c - the six causes of low competency and the image operations that produce five of
 * them, as the competency paper's reference code applied them: PIL on 8-bit images.
 *
 * Brightness, contrast and saturation are PIL's ImageEnhance: Image.blend(degenerate, image,
 * f) with degenerate = black, a constant grey at the mean luminance (int(mean + 0.5)), or the
 * image's own luminance. Blend (Pillow's libImaging/Blend.c) computes in1 + f (in2 - in1) in
 * single precision and truncates toward zero; for f outside [0, 1] it clips to [0, 255] first.
 * Luminance is libImaging/Convert.c's fixed-point ITU-R 601-2 (19595 R + 38470 G + 7471 B +
 * 0x8000) >> 16. Noise adds a uniform integer in [-f, f] to each 8-bit value and clips.
 * Pixelation resizes down to (W / f, H / f) with nearest neighbour and back up, PIL's way
 * (nearest_table). The tests compare every operation with Debian's Pillow bit for bit.
 *
 * Float images in [0, 1] are taken to 8 bits by rounding x * 255 (exact for images that came
 * from 8-bit files) and brought back by dividing by 255. */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>

static const char *const cause_names[CFX_CAUSE_COUNT] = {
    "none", "spatial", "brightness", "contrast", "saturation", "noise", "pixelation"};

/* The reference's factor grids (speed-limit experiments), in the order they are listed. */
static const double grid_brightness[] = {0.25, 0.5, 2, 3, 4, 5};
static const double grid_contrast[] = {0.25, 0.5, 2, 3, 4, 5};
static const double grid_saturation[] = {0, 2, 4, 8, 12, 16};
static const double grid_noise[] = {20, 40, 60, 80, 100, 120};
static const double grid_pixelation[] = {4, 8, 12, 16, 20, 24};

const char *cfx_cause_name(cfx_cause c) {
    return c >= 0 && c < CFX_CAUSE_COUNT ? cause_names[c] : "unknown";
}

cfx_status cfx_cause_parse(const char *name, cfx_cause *out) {
    for (int c = 0; c < CFX_CAUSE_COUNT; c++)
        if (name && strcmp(name, cause_names[c]) == 0) {
            *out = (cfx_cause)c;
            return CFX_OK;
        }
    return cfx_set_error(CFX_EINVAL,
                         "unknown cause '%s' (none, spatial, brightness, contrast, saturation, "
                         "noise or pixelation)",
                         name ? name : "");
}

int cfx_cause_grid(cfx_cause c, const double **factors) {
    static const struct {
        const double *f;
        int n;
    } grids[CFX_CAUSE_COUNT] = {
        [CFX_CAUSE_BRIGHTNESS] = {grid_brightness, 6}, [CFX_CAUSE_CONTRAST] = {grid_contrast, 6},
        [CFX_CAUSE_SATURATION] = {grid_saturation, 6}, [CFX_CAUSE_NOISE] = {grid_noise, 6},
        [CFX_CAUSE_PIXELATION] = {grid_pixelation, 6},
    };
    if (c < 0 || c >= CFX_CAUSE_COUNT || !grids[c].f) {
        if (factors) *factors = NULL;
        return 0;
    }
    if (factors) *factors = grids[c].f;
    return grids[c].n;
}

int cfx_cause_grid_fit(cfx_cause c, int h, int w, double *out) {
    const double *grid;
    int n = cfx_cause_grid(c, &grid), m = 0;
    for (int i = 0; i < n; i++)
        if (c != CFX_CAUSE_PIXELATION || (grid[i] <= h && grid[i] <= w)) out[m++] = grid[i];
    return m;
}

/* Image.blend(degenerate, image, alpha) for one 8-bit value (Blend.c). */
static uint8_t blend(int degenerate, int image, float alpha) {
    float t = (float)degenerate + alpha * (float)(image - degenerate);
    if (alpha >= 0 && alpha <= 1.0f) return (uint8_t)(int)t;
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)(int)t;
}

/* PIL's nearest-neighbour resize of a side from n_in to n_out pixels (ImagingScaleAffine): the
 * source of output pixel x is trunc(scale / 2 + x scale), with the position accumulated in
 * double precision one step at a time, as Pillow does, so that its rounding is reproduced
 * (32 -> 10 pixels reads source 23 for small pixel 7, not 24). */
static void nearest_table(int n_out, int n_in, int *src) {
    double scale = (double)n_in / n_out, pos = scale * 0.5;
    for (int x = 0; x < n_out; x++, pos += scale) src[x] = CFX_MIN(n_in - 1, (int)pos);
}

static int luma(int r, int g, int b) {
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/* The luminance image PIL's convert("L") makes of (c,h,w) planes (c 1: the plane itself). */
static void to_luma(const uint8_t *in, int c, int64_t hw, uint8_t *out) {
    for (int64_t i = 0; i < hw; i++)
        out[i] = c == 1 ? in[i] : (uint8_t)luma(in[i], in[hw + i], in[2 * hw + i]);
}

static cfx_status check_factor(cfx_cause cause, double f, int c, int h, int w) {
    if (!isfinite(f))
        return cfx_set_error(CFX_EINVAL, "%s: the factor must be a finite number",
                             cfx_cause_name(cause));
    switch (cause) {
        case CFX_CAUSE_BRIGHTNESS:
        case CFX_CAUSE_CONTRAST:
        case CFX_CAUSE_SATURATION:
            if (f < 0 || f > 1e6)
                return cfx_set_error(CFX_EINVAL, "%s: the factor must be 0..1e6, not %g",
                                     cfx_cause_name(cause), f);
            if (cause == CFX_CAUSE_SATURATION && c != 3)
                return cfx_set_error(
                    CFX_EINVAL, "saturation needs colour images (3 channels), not %d channel%s", c,
                    c == 1 ? "" : "s");
            return CFX_OK;
        case CFX_CAUSE_NOISE:
            if (f < 0 || f > 255 || f != floor(f))
                return cfx_set_error(CFX_EINVAL,
                                     "noise: the factor must be a whole number 0..255, not %g", f);
            return CFX_OK;
        case CFX_CAUSE_PIXELATION:
            if (f < 1 || f != floor(f) || f > h || f > w)
                return cfx_set_error(CFX_EINVAL,
                                     "pixelation: the factor must be a whole number from 1 to the "
                                     "image's side (%dx%d), not %g",
                                     h, w, f);
            return CFX_OK;
        default:
            return cfx_set_error(CFX_EINVAL,
                                 "%s is not an image operation (brightness, contrast, "
                                 "saturation, noise or pixelation)",
                                 cfx_cause_name(cause));
    }
}

cfx_status cfx_corrupt_u8(cfx_cause cause, double factor, const uint8_t *in, uint8_t *out, int c,
                          int h, int w, cfx_rng *rng) {
    if (c != 1 && c != 3)
        return cfx_set_error(CFX_EINVAL, "%s: images must have 1 or 3 channels, not %d",
                             cfx_cause_name(cause), c);
    if (h < 1 || w < 1) return cfx_set_error(CFX_EINVAL, "empty image (%dx%d)", h, w);
    CFX_TRY(check_factor(cause, factor, c, h, w));
    if (cause == CFX_CAUSE_NOISE && !rng)
        return cfx_set_error(CFX_EINVAL, "noise needs a random generator");
    int64_t hw = (int64_t)h * w, n = c * hw;
    float alpha = (float)factor; /* Blend takes a C float */
    switch (cause) {
        case CFX_CAUSE_BRIGHTNESS:
            for (int64_t i = 0; i < n; i++) out[i] = blend(0, in[i], alpha);
            return CFX_OK;
        case CFX_CAUSE_CONTRAST: {
            /* ImageStat's mean of the luminance (a histogram sum over the count), rounded half up.
             */
            double sum = 0;
            for (int64_t i = 0; i < hw; i++)
                sum += c == 1 ? in[i] : luma(in[i], in[hw + i], in[2 * hw + i]);
            int mean = (int)(sum / (double)hw + 0.5);
            for (int64_t i = 0; i < n; i++) out[i] = blend(mean, in[i], alpha);
            return CFX_OK;
        }
        case CFX_CAUSE_SATURATION: {
            uint8_t *grey = cfx_malloc((size_t)hw);
            if (!grey) return CFX_ENOMEM;
            to_luma(in, c, hw, grey);
            for (int64_t i = 0; i < n; i++) out[i] = blend(grey[i % hw], in[i], alpha);
            cfx_free(grey);
            return CFX_OK;
        }
        case CFX_CAUSE_NOISE: {
            int f = (int)factor;
            for (int64_t i = 0; i < n; i++) {
                int v = in[i] + (int)cfx_rng_below(rng, (uint64_t)(2 * f + 1)) - f;
                out[i] = (uint8_t)CFX_MIN(255, CFX_MAX(0, v));
            }
            return CFX_OK;
        }
        case CFX_CAUSE_PIXELATION: {
            int f = (int)factor, sh = h / f, sw = w / f;
            int *ys = cfx_malloc(((size_t)h + w + sh + sw) * sizeof *ys);
            if (!ys) return CFX_ENOMEM;
            int *xs = ys + sh, *yi = xs + sw, *xi = yi + h;
            nearest_table(sh, h, ys); /* down: small pixel -> input pixel */
            nearest_table(sw, w, xs);
            nearest_table(h, sh, yi); /* up: output pixel -> small pixel */
            nearest_table(w, sw, xi);
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        out[ch * hw + (int64_t)y * w + x] =
                            in[ch * hw + (int64_t)ys[yi[y]] * w + xs[xi[x]]];
            cfx_free(ys);
            return CFX_OK;
        }
        default:
            return cfx_set_error(CFX_EINTERNAL, "corrupt: unhandled cause %d", (int)cause);
    }
}

cfx_status cfx_corrupt(cfx_cause cause, double factor, const cfx_tensor *in, cfx_tensor *out,
                       cfx_rng *rng) {
    if (!in || !out || in->ndim != 4 || !cfx_tensor_same_shape(in, out))
        return cfx_set_error(CFX_ESHAPE, "corrupt: images must be (N,C,H,W), and out alike");
    int c = (int)in->shape[1], h = (int)in->shape[2], w = (int)in->shape[3];
    int64_t chw = (int64_t)c * h * w;
    uint8_t *buf = cfx_malloc(2 * (size_t)chw);
    if (!buf) return CFX_ENOMEM;
    cfx_status s = CFX_OK;
    for (int64_t k = 0; k < in->shape[0] && s == CFX_OK; k++) {
        const float *src = in->data + k * chw;
        for (int64_t i = 0; i < chw; i++) {
            float v = src[i];
            if (!isfinite(v)) {
                s = cfx_set_error(CFX_ENUMERIC,
                                  "corrupt: image %lld holds a non-finite value at "
                                  "element %lld",
                                  (long long)k, (long long)i);
                break;
            }
            buf[i] = (uint8_t)lrintf(CFX_MIN(1.0f, CFX_MAX(0.0f, v)) * 255.0f);
        }
        if (s == CFX_OK) s = cfx_corrupt_u8(cause, factor, buf, buf + chw, c, h, w, rng);
        if (s == CFX_OK)
            for (int64_t i = 0; i < chw; i++) out->data[k * chw + i] = buf[chw + i] / 255.0f;
    }
    cfx_free(buf);
    return s;
}
