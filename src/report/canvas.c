/* canvas.c - an RGB drawing surface for the figures cfx writes as PNG (reliability diagrams,
 * image grids with captions): rectangles, lines, images scaled by an integer factor, and text
 * in DejaVu Sans (Debian's fonts-dejavu-core), rendered with stb_truetype and blended by its
 * coverage. The font is read once per process; without it text is left out and the figure is
 * still drawn (cfx_canvas_has_text says which). */
#include "base/base.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#define STBTT_malloc(x, u) ((void)(u), cfx_malloc(x))
#define STBTT_free(x, u)   ((void)(u), cfx_free(x))
#define STBTT_assert(x)    CFX_ASSERT(x)
#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
#include "base/quiet_begin.h" /* until the pop below */
#include <stb/stb_truetype.h>
#pragma GCC diagnostic pop

static const char *const font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
static stbtt_fontinfo font;
static char *font_data;
static bool font_ok;
static pthread_once_t font_once = PTHREAD_ONCE_INIT;

static void font_load(void) {
    size_t size = 0;
    if (cfx_file_read_all(font_path, &font_data, &size) != CFX_OK || size < 12) return;
    int off = stbtt_GetFontOffsetForIndex((unsigned char *)font_data, 0);
    font_ok = off >= 0 && stbtt_InitFont(&font, (unsigned char *)font_data, off);
}

int cfx_canvas_has_text(void) {
    pthread_once(&font_once, font_load);
    return font_ok;
}

cfx_canvas *cfx_canvas_new(int w, int h, uint32_t rgb) {
    if (w < 1 || h < 1 || w > 1 << 15 || h > 1 << 15) {
        cfx_set_error(CFX_EINVAL, "canvas: size %dx%d is out of range", w, h);
        return NULL;
    }
    cfx_canvas *c = cfx_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->w = w, c->h = h;
    c->px = cfx_malloc((size_t)3 * w * h);
    if (!c->px) {
        cfx_free(c);
        return NULL;
    }
    cfx_canvas_rect(c, 0, 0, w, h, rgb);
    return c;
}

void cfx_canvas_free(cfx_canvas *c) {
    if (!c) return;
    cfx_free(c->px);
    cfx_free(c);
}

/* Blends colour rgb over pixel (x, y) with weight a in [0, 1]. */
static void blend(cfx_canvas *c, int x, int y, uint32_t rgb, float a) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h || a <= 0) return;
    if (a > 1) a = 1;
    int64_t plane = (int64_t)c->w * c->h, i = (int64_t)y * c->w + x;
    for (int k = 0; k < 3; k++) {
        float v = (float)((rgb >> (16 - 8 * k)) & 255);
        c->px[k * plane + i] = (uint8_t)lrintf(c->px[k * plane + i] * (1 - a) + v * a);
    }
}

void cfx_canvas_rect(cfx_canvas *c, int x, int y, int w, int h, uint32_t rgb) {
    for (int yy = CFX_MAX(y, 0); yy < CFX_MIN(y + h, c->h); yy++)
        for (int xx = CFX_MAX(x, 0); xx < CFX_MIN(x + w, c->w); xx++) blend(c, xx, yy, rgb, 1);
}

void cfx_canvas_line(cfx_canvas *c, float x0, float y0, float x1, float y1, float width,
                     uint32_t rgb) {
    /* Distance to the segment, anti-aliased over one pixel. */
    int lx = (int)floorf(fminf(x0, x1) - width), hx = (int)ceilf(fmaxf(x0, x1) + width);
    int ly = (int)floorf(fminf(y0, y1) - width), hy = (int)ceilf(fmaxf(y0, y1) + width);
    float dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = ly; y <= hy; y++)
        for (int x = lx; x <= hx; x++) {
            float px = x + 0.5f - x0, py = y + 0.5f - y0;
            float t = len2 > 0 ? fmaxf(0, fminf(1, (px * dx + py * dy) / len2)) : 0;
            float ex = px - t * dx, ey = py - t * dy;
            float d = sqrtf(ex * ex + ey * ey);
            blend(c, x, y, rgb, width / 2 + 0.5f - d);
        }
}

void cfx_canvas_image(cfx_canvas *c, const float *chw, int ch, int h, int w, int x, int y,
                      int scale) {
    int64_t plane = (int64_t)h * w, cplane = (int64_t)c->w * c->h;
    for (int yy = 0; yy < h * scale; yy++)
        for (int xx = 0; xx < w * scale; xx++) {
            int X = x + xx, Y = y + yy;
            if (X < 0 || Y < 0 || X >= c->w || Y >= c->h) continue;
            int64_t src = (int64_t)(yy / scale) * w + xx / scale;
            for (int k = 0; k < 3; k++) {
                float v = chw[(ch == 3 ? k : 0) * plane + src];
                v = v != v ? 0 : fminf(1, fmaxf(0, v));
                c->px[k * cplane + (int64_t)Y * c->w + X] = (uint8_t)lrintf(v * 255);
            }
        }
}

int cfx_canvas_text(cfx_canvas *c, int x, int y, float size, uint32_t rgb, int align,
                    const char *text) {
    if (!cfx_canvas_has_text() || !text) return 0;
    float scale = stbtt_ScaleForPixelHeight(&font, size);
    int ascent, descent, gap;
    stbtt_GetFontVMetrics(&font, &ascent, &descent, &gap);
    /* The width first, for alignment: align 0 left, 1 centre, 2 right of x. */
    float width = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        int adv, lsb;
        stbtt_GetCodepointHMetrics(&font, *p, &adv, &lsb);
        width += adv * scale;
        if (p[1]) width += scale * stbtt_GetCodepointKernAdvance(&font, p[0], p[1]);
    }
    float pen = x - (align == 1 ? width / 2 : align == 2 ? width : 0);
    int base = y + (int)lrintf(ascent * scale);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        int x0, y0, x1, y1, adv, lsb;
        stbtt_GetCodepointHMetrics(&font, *p, &adv, &lsb);
        stbtt_GetCodepointBitmapBoxSubpixel(&font, *p, scale, scale, pen - floorf(pen), 0, &x0, &y0,
                                            &x1, &y1);
        int gw = x1 - x0, gh = y1 - y0;
        if (gw > 0 && gh > 0 && gw < 512 && gh < 512) {
            unsigned char glyph[512 * 64];
            if (gw * gh <= (int)sizeof glyph) {
                stbtt_MakeCodepointBitmapSubpixel(&font, glyph, gw, gh, gw, scale, scale,
                                                  pen - floorf(pen), 0, *p);
                for (int gy = 0; gy < gh; gy++)
                    for (int gx = 0; gx < gw; gx++)
                        blend(c, (int)floorf(pen) + x0 + gx, base + y0 + gy, rgb,
                              glyph[gy * gw + gx] / 255.0f);
            }
        }
        pen += adv * scale;
        if (p[1]) pen += scale * stbtt_GetCodepointKernAdvance(&font, p[0], p[1]);
    }
    return (int)ceilf(width);
}

cfx_status cfx_canvas_write_png(const cfx_canvas *c, const char *path) {
    return cfx_image_write_png_u8(path, c->px, 3, c->h, c->w);
}
