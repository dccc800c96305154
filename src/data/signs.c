/* signs.c - a generator of small photographs of round speed-limit signs.
 *
 * The seed paper's second dataset is German speed-limit signs with the 20 km/h sign never seen
 * in training; cfx draws its own so that it needs no download. Each image is drawn in three
 * layers, all from one random stream per image:
 *   1. a scene: a sky-to-ground gradient, smooth value noise, and a few soft-edged shapes
 *      (trees, buildings, cars, poles), sometimes with the sign's own post;
 *   2. the sign: a white disc with a red ring and a black number (DejaVu Sans Bold rendered
 *      once per speed with stb_truetype into a high-resolution mask), placed through a
 *      homography (scale, aspect, perspective, rotation, position) and supersampled k x k per
 *      output pixel, which is an area (box) filter down to the output size;
 *   3. the camera: lighting gradient and exposure, colour cast, mild contrast and saturation
 *      changes, anisotropic Gaussian blur, and sensor noise, then 8-bit quantisation.
 * Image i uses cfx_rng_split(r, i), so the bytes depend on the seed only, never on threads. */
#include "data/font.h"

#include <math.h>
#include <stdlib.h>

#define STBTT_malloc(x, u) ((void)(u), cfx_malloc(x))
#define STBTT_free(x, u)   ((void)(u), cfx_free(x))
#define STBTT_assert(x)    CFX_ASSERT(x)
#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
#include "base/quiet_begin.h" /* until the pop below */
#include <stb/stb_truetype.h>
#pragma GCC diagnostic pop
/* stb declares static functions that this file never calls; GCC reports them at the end. */
#pragma GCC diagnostic ignored "-Wunused-function"

const int cfx_signs_speeds[CFX_SIGNS_NUM_SPEEDS] = {20, 30, 50, 60, 70, 80, 100, 120};

#define DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
#define MASK_H       96 /* rows of a number's mask; its width follows the glyphs */

/* A number rendered once: coverage in [0,1], cropped tightly to the ink. */
typedef struct {
    float *a;
    int w, h;
} text_mask;

static cfx_status render_number(const stbtt_fontinfo *font, const char *path, int speed,
                                text_mask *m) {
    char txt[8];
    snprintf(txt, sizeof txt, "%d", speed);
    float scale = stbtt_ScaleForPixelHeight(font, MASK_H * 1.45f);
    int ascent, descent, gap;
    stbtt_GetFontVMetrics(font, &ascent, &descent, &gap);
    int cw = (int)(strlen(txt) * MASK_H * 1.3f) + 8, ch = (int)((ascent - descent) * scale) + 8;
    unsigned char *canvas = cfx_calloc((size_t)cw * (size_t)ch, 1);
    if (!canvas) return CFX_ENOMEM;
    int base = (int)(ascent * scale) + 4;
    float x = 4;
    for (const char *p = txt; *p; p++) {
        int adv, lsb, x0, y0, x1, y1;
        stbtt_GetCodepointHMetrics(font, *p, &adv, &lsb);
        stbtt_GetCodepointBitmapBoxSubpixel(font, *p, scale, scale, x - floorf(x), 0, &x0, &y0, &x1,
                                            &y1);
        int ox = (int)floorf(x) + x0, oy = base + y0;
        if (ox >= 0 && oy >= 0 && ox + (x1 - x0) <= cw && oy + (y1 - y0) <= ch)
            stbtt_MakeCodepointBitmapSubpixel(font, canvas + oy * cw + ox, x1 - x0, y1 - y0, cw,
                                              scale, scale, x - floorf(x), 0, *p);
        x += adv * scale; /* no kerning: sign numerals are tabular (DejaVu has no digit pairs) */
    }
    /* Crop to the ink so the number can be fitted into the disc exactly. */
    int bx0 = cw, by0 = ch, bx1 = -1, by1 = -1;
    for (int y = 0; y < ch; y++)
        for (int xx = 0; xx < cw; xx++)
            if (canvas[y * cw + xx]) {
                bx0 = CFX_MIN(bx0, xx), bx1 = CFX_MAX(bx1, xx);
                by0 = CFX_MIN(by0, y), by1 = CFX_MAX(by1, y);
            }
    if (bx1 < 0) {
        cfx_free(canvas);
        return cfx_set_error(CFX_EFORMAT, "signs: the font '%s' draws nothing for '%s'", path, txt);
    }
    m->w = bx1 - bx0 + 1, m->h = by1 - by0 + 1;
    m->a = cfx_malloc((size_t)m->w * (size_t)m->h * sizeof *m->a);
    if (m->a)
        for (int y = 0; y < m->h; y++)
            for (int xx = 0; xx < m->w; xx++)
                m->a[y * m->w + xx] = canvas[(by0 + y) * cw + bx0 + xx] / 255.0f;
    cfx_free(canvas);
    return m->a ? CFX_OK : CFX_ENOMEM;
}

/* Bilinear coverage at mask coordinates (x, y) in pixels; 0 outside. */
static float mask_at(const text_mask *m, float x, float y) {
    x -= 0.5f, y -= 0.5f;
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float fx = x - (float)x0, fy = y - (float)y0, v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            if (xx < 0 || yy < 0 || xx >= m->w || yy >= m->h) continue;
            v += (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy) * m->a[yy * m->w + xx];
        }
    return v;
}

/* ------------------------------------------------------------------ randomness --- */

static float uni(cfx_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)cfx_rng_uniform(r);
}

static float gauss(cfx_rng *r, float sd) {
    return sd * (float)cfx_rng_normal(r);
}

static float clamp01(float v) {
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static float smoothstep(float e0, float e1, float x) {
    float t = clamp01((x - e0) / (e1 - e0));
    return t * t * (3 - 2 * t);
}

/* A random colour from a palette of things found along roads, jittered. */
static void scene_colour(cfx_rng *r, float *c) {
    static const float pal[][3] = {
        {0.20f, 0.35f, 0.15f}, {0.30f, 0.45f, 0.20f}, {0.12f, 0.22f, 0.10f}, /* foliage */
        {0.40f, 0.32f, 0.22f}, {0.28f, 0.20f, 0.14f},                        /* bark, soil */
        {0.55f, 0.55f, 0.55f}, {0.35f, 0.36f, 0.38f}, {0.75f, 0.74f, 0.72f}, /* concrete */
        {0.70f, 0.62f, 0.48f}, {0.55f, 0.28f, 0.20f},                        /* plaster, brick */
        {0.15f, 0.20f, 0.35f}, {0.85f, 0.85f, 0.88f}, {0.08f, 0.08f, 0.09f}, /* cars */
        {0.60f, 0.12f, 0.10f},                                               /* a red distractor */
    };
    int k = (int)cfx_rng_below(r, sizeof pal / sizeof pal[0]);
    float lum = uni(r, 0.8f, 1.2f);
    for (int i = 0; i < 3; i++) c[i] = clamp01(pal[k][i] * lum + gauss(r, 0.04f));
}

static void sky_colour(cfx_rng *r, float *c) {
    static const float pal[][3] = {{0.55f, 0.70f, 0.90f}, {0.75f, 0.80f, 0.85f},
                                   {0.90f, 0.90f, 0.92f}, {0.50f, 0.55f, 0.60f},
                                   {0.85f, 0.70f, 0.55f}, {0.35f, 0.50f, 0.75f}};
    int k = (int)cfx_rng_below(r, sizeof pal / sizeof pal[0]);
    for (int i = 0; i < 3; i++) c[i] = clamp01(pal[k][i] + gauss(r, 0.05f));
}

/* Smooth value noise: a g x g lattice of random values, interpolated with smoothstep. */
typedef struct {
    float v[12 * 12];
    int g;
} value_noise;

static void noise_init(value_noise *n, cfx_rng *r, int g) {
    n->g = g;
    for (int i = 0; i < g * g; i++) n->v[i] = uni(r, -1, 1);
}

static float noise_at(const value_noise *n, float x, float y) { /* x, y in [0,1] */
    float fx = x * (float)(n->g - 1), fy = y * (float)(n->g - 1);
    int x0 = CFX_MIN((int)fx, n->g - 2), y0 = CFX_MIN((int)fy, n->g - 2);
    float tx = fx - (float)x0, ty = fy - (float)y0;
    tx = tx * tx * (3 - 2 * tx), ty = ty * ty * (3 - 2 * ty);
    const float *v = n->v + y0 * n->g + x0;
    return (v[0] * (1 - tx) + v[1] * tx) * (1 - ty) + (v[n->g] * (1 - tx) + v[n->g + 1] * tx) * ty;
}

/* ------------------------------------------------------------------- geometry --- */

/* 3x3 row-major matrices acting on column vectors (x, y, 1). */
static void mat_mul(const double *a, const double *b, double *out) {
    double t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            t[i * 3 + j] = a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j];
    memcpy(out, t, sizeof t);
}

static void mat_inv(const double *m, double *out) {
    double a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5], g = m[6], h = m[7], i = m[8];
    double A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
    double det = a * A + b * B + c * C;
    double inv[9] = {A, -(b * i - c * h), b * f - c * e, B, a * i - c * g, -(a * f - c * d),
                     C, -(a * h - b * g), a * e - b * d};
    for (int k = 0; k < 9; k++) out[k] = inv[k] / det;
}

static void apply(const double *m, double x, double y, double *ox, double *oy) {
    double w = m[6] * x + m[7] * y + m[8];
    *ox = (m[0] * x + m[1] * y + m[2]) / w;
    *oy = (m[3] * x + m[4] * y + m[5]) / w;
}

/* ---------------------------------------------------------------------- image --- */

/* Separable Gaussian blur of one (h,w) plane with clamped edges; tmp has h*w floats. */
static void blur_plane(float *p, float *tmp, int h, int w, float sx, float sy) {
    float k[32];
    for (int pass = 0; pass < 2; pass++) {
        float s = pass ? sy : sx;
        if (s < 0.2f) continue;
        int rad = CFX_MIN((int)ceilf(2.5f * s), 15);
        float sum = 0;
        for (int i = -rad; i <= rad; i++)
            sum += k[i + rad] = expf(-0.5f * (float)(i * i) / (s * s));
        for (int i = 0; i <= 2 * rad; i++) k[i] /= sum;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float v = 0;
                for (int i = -rad; i <= rad; i++) {
                    int xx = pass ? x : CFX_MIN(CFX_MAX(x + i, 0), w - 1);
                    int yy = pass ? CFX_MIN(CFX_MAX(y + i, 0), h - 1) : y;
                    v += k[i + rad] * p[yy * w + xx];
                }
                tmp[y * w + x] = v;
            }
        memcpy(p, tmp, (size_t)h * (size_t)w * sizeof *p);
    }
}

/* Draws one image into img (3,S,S) floats; work holds 2*S*S floats. */
static void draw_sign(const text_mask *m, int S, int k, cfx_rng *r, float *img, float *work) {
    const int P = S * S;
    float *R = img, *G = img + P, *B = img + 2 * P;
    const float fs = (float)S;

    /* 1. The scene. */
    float sky[3], ground[3];
    sky_colour(r, sky);
    scene_colour(r, ground);
    float horizon = uni(r, 0.2f, 0.9f), soft = uni(r, 0.05f, 0.4f);
    value_noise n1, n2;
    noise_init(&n1, r, 4 + (int)cfx_rng_below(r, 4));
    noise_init(&n2, r, 8 + (int)cfx_rng_below(r, 4));
    float amp1 = uni(r, 0.02f, 0.15f), amp2 = uni(r, 0.0f, 0.08f);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float fy = ((float)y + 0.5f) / fs, fx = ((float)x + 0.5f) / fs;
            float t = smoothstep(horizon - soft, horizon + soft, fy);
            float nz = amp1 * noise_at(&n1, fx, fy) + amp2 * noise_at(&n2, fx, fy);
            for (int c = 0; c < 3; c++)
                img[c * P + y * S + x] = sky[c] * (1 - t) + ground[c] * t + nz;
        }
    int nshapes = 1 + (int)cfx_rng_below(r, 6);
    for (int s = 0; s < nshapes; s++) {
        float col[3];
        scene_colour(r, col);
        int kind = (int)cfx_rng_below(r, 3); /* ellipse, box, vertical bar */
        float cx = uni(r, -0.1f, 1.1f) * fs, cy = uni(r, 0.0f, 1.1f) * fs;
        float rx = uni(r, 0.08f, 0.5f) * fs, ry = uni(r, 0.08f, 0.5f) * fs;
        if (kind == 2) rx = uni(r, 0.02f, 0.08f) * fs, ry = fs;
        float ang = kind == 0 ? uni(r, 0, 3.14159f) : gauss(r, 0.05f);
        float ca = cosf(ang), sa = sinf(ang), edge = uni(r, 0.4f, 2.0f) * fs / 32;
        float alpha = uni(r, 0.6f, 1.0f), tex = uni(r, 0.0f, 0.3f);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                float dx = (float)x + 0.5f - cx, dy = (float)y + 0.5f - cy;
                float u = ca * dx + sa * dy, v = -sa * dx + ca * dy, d;
                if (kind == 0) {
                    float q = sqrtf((u * u) / (rx * rx) + (v * v) / (ry * ry));
                    d = (q - 1) * fminf(rx, ry); /* approximate distance outside, in pixels */
                } else {
                    d = fmaxf(fabsf(u) - rx, fabsf(v) - ry);
                }
                float a = alpha * (1 - smoothstep(-edge, edge, d));
                if (a <= 0) continue;
                float shade =
                    1 + tex * noise_at(&n2, ((float)x + 0.5f) / fs, ((float)y + 0.5f) / fs);
                for (int c = 0; c < 3; c++) {
                    float *p = &img[c * P + y * S + x];
                    *p = *p * (1 - a) + col[c] * shade * a;
                }
            }
    }

    /* 2. The sign's pose: unit disc -> pixels through H = T Rot diag(ax, ay) R P. */
    float radius = uni(r, 0.20f, 0.45f) * fs; /* diameter 40-90% of the frame */
    float slack = fmaxf(fs / 2 - radius, 0) * 0.9f + 0.04f * fs;
    float cx = fs / 2 + uni(r, -slack, slack), cy = fs / 2 + uni(r, -slack, slack);
    float rot = gauss(r, 0.10f), ax = uni(r, 0.72f, 1.0f), ay = uni(r, 0.92f, 1.0f);
    double persp[9] = {1, 0, 0, 0, 1, 0, gauss(r, 0.10f), gauss(r, 0.06f), 1};
    double sc[9] = {radius * ax, 0, 0, 0, radius * ay, 0, 0, 0, 1};
    double rt[9] = {cos(rot), -sin(rot), cx, sin(rot), cos(rot), cy, 0, 0, 1};
    double H[9], Hi[9];
    mat_mul(sc, persp, H);
    mat_mul(rt, H, H);
    mat_inv(H, Hi);
    /* The sign's post, behind the sign, from its centre down along the rotated vertical. */
    if (cfx_rng_uniform(r) < 0.7) {
        float pw = radius * uni(r, 0.07f, 0.12f), pc = uni(r, 0.35f, 0.65f);
        float sr = sinf(rot), cr = cosf(rot);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                float dx = (float)x + 0.5f - cx, dy = (float)y + 0.5f - cy;
                float across = cr * dx + sr * dy, along = -sr * dx + cr * dy;
                if (along < 0) continue;
                float a = 1 - smoothstep(pw - 0.5f, pw + 0.5f, fabsf(across));
                float shade = pc * (1 - 0.4f * across / pw);
                for (int c = 0; c < 3; c++)
                    img[c * P + y * S + x] = img[c * P + y * S + x] * (1 - a) + shade * a;
            }
    }

    /* The sign's face: colours, ring radii, the number's box, and light across the face. */
    float red[3] = {uni(r, 0.62f, 0.85f), uni(r, 0.02f, 0.14f), uni(r, 0.04f, 0.16f)};
    float wl = uni(r, 0.80f, 0.97f), white[3] = {wl, wl + gauss(r, 0.02f), wl - uni(r, 0, 0.08f)};
    float ink[3] = {uni(r, 0.02f, 0.12f), 0, 0};
    ink[1] = ink[2] = ink[0];
    float r_in = uni(r, 0.74f, 0.80f), r_out = uni(r, 0.94f, 0.97f);
    float th = uni(r, 0.78f, 0.88f), tw = th * (float)m->w / (float)m->h;
    tw = fminf(tw, 2 * r_in * 0.86f); /* three digits are condensed, as on real signs */
    float ty = gauss(r, 0.02f), lang = uni(r, 0, 6.2832f), lamp = uni(r, 0, 0.35f);
    float lc = cosf(lang), ls = sinf(lang);

    /* Bounding box of the disc in pixels. */
    double bx0 = 1e9, by0 = 1e9, bx1 = -1e9, by1 = -1e9;
    for (int i = 0; i < 64; i++) {
        double px, py, t = 2 * 3.14159265358979 * i / 64;
        apply(H, cos(t), sin(t), &px, &py);
        bx0 = fmin(bx0, px), bx1 = fmax(bx1, px), by0 = fmin(by0, py), by1 = fmax(by1, py);
    }
    int x0 = CFX_MAX((int)floor(bx0) - 1, 0), x1 = CFX_MIN((int)ceil(bx1) + 1, S - 1);
    int y0 = CFX_MAX((int)floor(by0) - 1, 0), y1 = CFX_MIN((int)ceil(by1) + 1, S - 1);
    const float inv_k2 = 1.0f / (float)(k * k);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float acc[3] = {0, 0, 0}, cov = 0;
            for (int sy = 0; sy < k; sy++)
                for (int sx = 0; sx < k; sx++) {
                    double u, v;
                    apply(Hi, x + (sx + 0.5) / k, y + (sy + 0.5) / k, &u, &v);
                    float rr = (float)(u * u + v * v);
                    if (rr > 1) continue;
                    const float *c = white;
                    float col[3];
                    if (rr > r_out * r_out) {
                        c = white; /* the plate's white edge */
                    } else if (rr > r_in * r_in) {
                        c = red;
                    } else {
                        float mx = ((float)u / tw + 0.5f) * (float)m->w;
                        float my = (((float)v - ty) / th + 0.5f) * (float)m->h;
                        float a = mask_at(m, mx, my);
                        for (int ch = 0; ch < 3; ch++) col[ch] = white[ch] * (1 - a) + ink[ch] * a;
                        c = col;
                    }
                    float light = 1 + lamp * (lc * (float)u + ls * (float)v);
                    for (int ch = 0; ch < 3; ch++) acc[ch] += c[ch] * light;
                    cov += 1;
                }
            if (cov == 0) continue;
            float a = cov * inv_k2;
            for (int ch = 0; ch < 3; ch++) {
                float *p = &img[ch * P + y * S + x];
                *p = *p * (1 - a) + acc[ch] * inv_k2;
            }
        }

    /* 3. The camera: exposure and a light gradient, colour cast, contrast and saturation. */
    float gain = expf(gauss(r, 0.25f)), grad = uni(r, 0, 0.6f), gang = uni(r, 0, 6.2832f);
    float gx = cosf(gang) * grad, gy = sinf(gang) * grad;
    float cast[3] = {1 + gauss(r, 0.06f), 1 + gauss(r, 0.04f), 1 + gauss(r, 0.06f)};
    float contrast = uni(r, 0.8f, 1.1f), sat = uni(r, 0.8f, 1.15f);
    for (int p = 0; p < P; p++) {
        float fx = ((float)(p % S) + 0.5f) / fs - 0.5f, fy = ((float)(p / S) + 0.5f) / fs - 0.5f;
        float l = gain * (1 + gx * fx + gy * fy);
        float rgb[3] = {R[p] * l * cast[0], G[p] * l * cast[1], B[p] * l * cast[2]};
        float grey = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
        for (int c = 0; c < 3; c++) {
            float v = grey + sat * (rgb[c] - grey);
            img[c * P + p] = 0.5f + contrast * (v - 0.5f);
        }
    }
    /* Focus and motion: independent horizontal and vertical blur. */
    float bs = fs / 32;
    float sx = uni(r, 0, 1) < 0.25f ? 0 : uni(r, 0.2f, 1.0f) * bs;
    float sy = uni(r, 0, 1) < 0.25f ? 0 : uni(r, 0.2f, 1.0f) * bs;
    for (int c = 0; c < 3; c++) blur_plane(img + c * P, work, S, S, sx, sy);
    /* Sensor noise, mostly in brightness. */
    float sd = uni(r, 0, 0.035f);
    for (int p = 0; p < P; p++) {
        float nl = gauss(r, sd);
        for (int c = 0; c < 3; c++) img[c * P + p] += 0.85f * nl + gauss(r, 0.25f * sd);
    }
}

cfx_status cfx_signs_generate(const cfx_signs_options *o, const cfx_rng *r, const int *speeds,
                              int64_t n, uint8_t *out, const cfx_progress *p) {
    cfx_signs_options so = o ? *o : (cfx_signs_options){0};
    if (!so.size) so.size = 32;
    if (!so.supersample) so.supersample = 4;
    if (!so.font_path) so.font_path = DEFAULT_FONT;
    if (so.size < 8 || so.size > 1024 || so.supersample < 1 || so.supersample > 16)
        return cfx_set_error(CFX_EINVAL, "signs: size %d (8..1024) or supersample %d (1..16)",
                             so.size, so.supersample);
    int which[CFX_SIGNS_NUM_SPEEDS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int k = 0;
        while (k < CFX_SIGNS_NUM_SPEEDS && cfx_signs_speeds[k] != speeds[i]) k++;
        if (k == CFX_SIGNS_NUM_SPEEDS)
            return cfx_set_error(CFX_EINVAL, "signs: %d is not a speed cfx draws", speeds[i]);
        which[k] = 1;
    }
    char *ttf = NULL;
    size_t ttf_size;
    if (cfx_file_read_all(so.font_path, &ttf, &ttf_size) != CFX_OK)
        return cfx_error_context(CFX_EIO, "signs: font (Debian package fonts-dejavu-core)");
    stbtt_fontinfo font;
    text_mask masks[CFX_SIGNS_NUM_SPEEDS] = {{0}};
    cfx_status s = CFX_OK;
    /* stb_truetype trusts the file: check every byte it will read for the digits first. */
    s = cfx__font_check((const uint8_t *)ttf, ttf_size, so.font_path, "0123456789");
    if (s == CFX_OK && !stbtt_InitFont(&font, (unsigned char *)ttf,
                                       stbtt_GetFontOffsetForIndex((unsigned char *)ttf, 0)))
        s = cfx_set_error(CFX_EFORMAT, "'%s' is not a TrueType font", so.font_path);
    if (s != CFX_OK) cfx_error_context(s, "signs");
    for (int k = 0; s == CFX_OK && k < CFX_SIGNS_NUM_SPEEDS; k++)
        if (which[k]) s = render_number(&font, so.font_path, cfx_signs_speeds[k], &masks[k]);
    const int S = so.size, P = S * S;
    /* Chunks keep progress reports on the calling thread; inside one, images run in parallel. */
    const int64_t chunk = 256;
    for (int64_t start = 0; s == CFX_OK && start < n; start += chunk) {
        int64_t end = CFX_MIN(start + chunk, n);
        int failed = 0;
#pragma omp parallel
        {
            float *buf = cfx_malloc((size_t)P * 5 * sizeof(float));
            if (!buf) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(dynamic, 4)
            for (int64_t i = start; i < end; i++) {
                if (!buf) continue;
                cfx_rng ri;
                cfx_rng_split(r, (uint64_t)i, &ri);
                int k = 0;
                while (cfx_signs_speeds[k] != speeds[i]) k++;
                draw_sign(&masks[k], S, so.supersample, &ri, buf, buf + 3 * P);
                uint8_t *dst = out + i * 3 * P;
                for (int q = 0; q < 3 * P; q++) dst[q] = (uint8_t)lrintf(clamp01(buf[q]) * 255.0f);
            }
            cfx_free(buf);
        }
        if (failed) s = cfx_set_error(CFX_ENOMEM, "signs: out of memory");
        cfx_progress_report(p, "signs", end, n, NULL);
    }
    for (int k = 0; k < CFX_SIGNS_NUM_SPEEDS; k++) cfx_free(masks[k].a);
    cfx_free(ttf);
    return s;
}
