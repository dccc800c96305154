/* map.c - competency maps: where on an image competency is lost. Two measurements point there:
 * the gradient of rho with respect to the pixels (the pixels whose change would raise
 * competency fastest) and, when there is one, the difference between the image and its
 * high-competency counterfactual (the pixels the counterfactual had to change). Each is summed
 * over channels, blurred by a 3x3 box so that single pixels do not dominate, and scaled to a
 * maximum of 1 before the two are averaged. The region the explainer names is the bounding box
 * of the map at half its maximum. */
#include "explain/explain.h"

#include <math.h>

/* Sum over channels of |v| (NaN counts as 0), 3x3 box blur with clamped edges, scaled to max 1,
 * added into acc with weight wt. tmp holds h*w floats. */
static void accumulate(const float *v, const float *minus, int c, int h, int w, float wt,
                       float *tmp, float *acc) {
    int64_t hw = (int64_t)h * w;
    for (int64_t i = 0; i < hw; i++) {
        float s = 0;
        for (int ch = 0; ch < c; ch++) {
            float d = v[ch * hw + i] - (minus ? minus[ch * hw + i] : 0.0f);
            if (isfinite(d)) s += fabsf(d);
        }
        tmp[i] = s;
    }
    float top = 0;
    float *blur = tmp + hw;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float s = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = CFX_MIN(h - 1, CFX_MAX(0, y + dy)),
                        xx = CFX_MIN(w - 1, CFX_MAX(0, x + dx));
                    s += tmp[(int64_t)yy * w + xx];
                }
            blur[(int64_t)y * w + x] = s / 9.0f;
            top = fmaxf(top, s / 9.0f);
        }
    for (int64_t i = 0; i < hw; i++) acc[i] += top > 0 ? wt * blur[i] / top : 0.0f;
}

cfx_status cfx_competency_map(const float *grad, const float *image, const float *cf, int c, int h,
                              int w, float *map) {
    if (!grad || !map || (cf && !image))
        return cfx_set_error(CFX_EINVAL, "competency map: no gradient, image or output");
    if ((c != 1 && c != 3) || h < 1 || w < 1)
        return cfx_set_error(CFX_EINVAL, "competency map: a %dx%dx%d image", c, h, w);
    int64_t hw = (int64_t)h * w;
    float *tmp = cfx_malloc(2 * (size_t)hw * sizeof *tmp);
    if (!tmp) return CFX_ENOMEM;
    for (int64_t i = 0; i < hw; i++) map[i] = 0;
    accumulate(grad, NULL, c, h, w, cf ? 0.5f : 1.0f, tmp, map);
    if (cf) accumulate(cf, image, c, h, w, 0.5f, tmp, map);
    cfx_free(tmp);
    return CFX_OK;
}

void cfx_competency_map_region(const float *map, int h, int w, int region[4]) {
    if (!region) return;
    float top = 0;
    for (int64_t i = 0; map && i < (int64_t)h * w; i++) top = fmaxf(top, map[i]);
    int x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (int y = 0; top > 0 && y < h; y++)
        for (int x = 0; x < w; x++)
            if (map[(int64_t)y * w + x] >= 0.5f * top) {
                x0 = CFX_MIN(x0, x), x1 = CFX_MAX(x1, x);
                y0 = CFX_MIN(y0, y), y1 = CFX_MAX(y1, y);
            }
    if (x1 < 0) x0 = 0, y0 = 0, x1 = CFX_MAX(0, w - 1), y1 = CFX_MAX(0, h - 1);
    region[0] = x0, region[1] = y0, region[2] = x1 - x0 + 1, region[3] = y1 - y0 + 1;
}

/* A dark-blue - cyan - yellow - red ramp for t in [0, 1]. */
static void heat(float t, float rgb[3]) {
    static const float stops[5][3] = {{0.0f, 0.0f, 0.5f},
                                      {0.0f, 0.5f, 1.0f},
                                      {0.2f, 1.0f, 0.8f},
                                      {1.0f, 0.9f, 0.0f},
                                      {0.9f, 0.0f, 0.0f}};
    t = fminf(1.0f, fmaxf(0.0f, isfinite(t) ? t : 0.0f)) * 4.0f;
    int k = CFX_MIN(3, (int)t);
    float f = t - (float)k;
    for (int j = 0; j < 3; j++) rgb[j] = stops[k][j] + f * (stops[k + 1][j] - stops[k][j]);
}

cfx_tensor *cfx_competency_map_render(const float *map, const float *image, int c, int h, int w,
                                      int scale) {
    if (!map || !image || (c != 1 && c != 3) || h < 1 || w < 1 || scale < 1 || scale > 64) {
        cfx_set_error(CFX_EINVAL, "render a competency map: bad arguments");
        return NULL;
    }
    int64_t hw = (int64_t)h * w, H = (int64_t)h * scale, W = (int64_t)w * scale;
    cfx_tensor *out = cfx_tensor_new(3, (int64_t[]){3, H, W});
    if (!out) return NULL;
    /* Half the image's luminance under half the heat colour. */
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int64_t i = (y / scale) * w + x / scale;
            float lum =
                c == 1 ? image[i]
                       : 0.299f * image[i] + 0.587f * image[hw + i] + 0.114f * image[2 * hw + i];
            float rgb[3];
            heat(map[i], rgb);
            for (int j = 0; j < 3; j++)
                out->data[j * H * W + y * W + x] = 0.5f * lum + 0.5f * rgb[j];
        }
    return out;
}
