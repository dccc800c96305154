/* stats.c - the measured statistics of one image that the explainer compares: what each of the
 * competency paper's image operations (src/data/corrupt.c) changes.
 *
 * Brightness multiplies every value by f: the mean luminance and its deviation scale together,
 * the black floor stays. Contrast blends with the mean grey: the deviation scales by f while
 * the mean stays, so a low contrast lifts the 2nd percentile and a high one clips both ends to
 * black and white. Saturation blends with the luminance image: the spread between a pixel's
 * channels scales by f. Noise adds independent values to every pixel: the residual of a pixel
 * against the mean of its four neighbours grows everywhere, so its median grows too (edges
 * raise the RMS but not the median). Pixelation repeats pixels in blocks: whole neighbouring
 * columns and rows become identical, which no camera image and no decoded image shows. The
 * definitions below are exactly those of tests/py/explain_oracle.py. */
#include "explain/explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const stat_names[CFX_STAT_COUNT] = {
    "brightness", "contrast",   "dark",       "light", "black",        "white",
    "shadows",    "highlights", "saturation", "noise", "noise_median", "blockiness"};

const char *cfx_stat_name(cfx_stat s) {
    return s >= 0 && s < CFX_STAT_COUNT ? stat_names[s] : "?";
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The value at quantile q of sorted[0..n) by the inverted CDF: the ceil(q n)-th smallest. */
static double quantile(const double *sorted, int64_t n, double q) {
    int64_t k = (int64_t)ceil(q * (double)n) - 1;
    return sorted[CFX_MAX(0, CFX_MIN(n - 1, k))];
}

/* Whether line a (count values, stride apart, for every channel) is constant. */
static bool line_constant(const float *x, int c, int64_t hw, int64_t start, int64_t step,
                          int count) {
    for (int ch = 0; ch < c; ch++)
        for (int i = 1; i < count; i++)
            if (fabsf(x[ch * hw + start + i * step] - x[ch * hw + start]) >= CFX__STAT_TOL)
                return false;
    return true;
}

static bool lines_equal(const float *x, int c, int64_t hw, int64_t a, int64_t b, int64_t step,
                        int count) {
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < count; i++)
            if (fabsf(x[ch * hw + a + i * step] - x[ch * hw + b + i * step]) >= CFX__STAT_TOL)
                return false;
    return true;
}

/* Blockiness: among the boundaries between neighbouring columns (and rows) whose two lines are
 * not both constant (a flat background says nothing), the share where the lines are identical. */
static double blockiness(const float *x, int c, int h, int w) {
    int64_t hw = (int64_t)h * w, counted = 0, same = 0;
    for (int col = 0; col + 1 < w; col++) {
        if (line_constant(x, c, hw, col, w, h) && line_constant(x, c, hw, col + 1, w, h)) continue;
        counted++;
        same += lines_equal(x, c, hw, col, col + 1, w, h);
    }
    for (int row = 0; row + 1 < h; row++) {
        int64_t a = (int64_t)row * w, b = a + w;
        if (line_constant(x, c, hw, a, 1, w) && line_constant(x, c, hw, b, 1, w)) continue;
        counted++;
        same += lines_equal(x, c, hw, a, b, 1, w);
    }
    return counted ? (double)same / (double)counted : 0.0;
}

cfx_status cfx_image_stats(const float *chw, int c, int h, int w, double out[CFX_STAT_COUNT]) {
    if (!chw || !out) return cfx_set_error(CFX_EINVAL, "image statistics: no image");
    if ((c != 1 && c != 3) || h < 3 || w < 3)
        return cfx_set_error(CFX_EINVAL,
                             "image statistics: images must have 1 or 3 channels and at least "
                             "3x3 pixels, not %dx%dx%d",
                             c, h, w);
    int64_t hw = (int64_t)h * w, nres = (int64_t)c * (h - 2) * (w - 2);
    for (int64_t i = 0; i < c * hw; i++)
        if (!isfinite(chw[i]))
            return cfx_set_error(
                CFX_ENUMERIC, "image statistics: a non-finite value at element %lld", (long long)i);
    double *lum = cfx_malloc((size_t)(hw + nres) * sizeof *lum), *res = lum + hw;
    if (!lum) return CFX_ENOMEM;
    /* Luminance (ITU-R 601-2 weights, as PIL's convert("L")) and the spread of the channels. */
    double sum = 0, sat = 0;
    for (int64_t i = 0; i < hw; i++) {
        if (c == 1) {
            lum[i] = chw[i];
        } else {
            double r = chw[i], g = chw[hw + i], b = chw[2 * hw + i];
            lum[i] = 0.299 * r + 0.587 * g + 0.114 * b;
            sat += fmax(r, fmax(g, b)) - fmin(r, fmin(g, b));
        }
        sum += lum[i];
    }
    double mean = sum / (double)hw, var = 0;
    int64_t black = 0, white = 0, shadows = 0, highlights = 0;
    for (int64_t i = 0; i < hw; i++) {
        var += (lum[i] - mean) * (lum[i] - mean);
        black += lum[i] <= CFX__STAT_TOL;
        white += lum[i] >= 1.0 - CFX__STAT_TOL;
        shadows += lum[i] <= 0.1;
        highlights += lum[i] >= 0.9;
    }
    out[CFX_STAT_BRIGHTNESS] = mean;
    out[CFX_STAT_CONTRAST] = sqrt(var / (double)hw);
    out[CFX_STAT_BLACK] = (double)black / (double)hw;
    out[CFX_STAT_WHITE] = (double)white / (double)hw;
    out[CFX_STAT_SHADOWS] = (double)shadows / (double)hw;
    out[CFX_STAT_HIGHLIGHTS] = (double)highlights / (double)hw;
    out[CFX_STAT_SATURATION] = sat / (double)hw;
    qsort(lum, (size_t)hw, sizeof *lum, cmp_double);
    out[CFX_STAT_DARK] = quantile(lum, hw, 0.02);
    out[CFX_STAT_LIGHT] = quantile(lum, hw, 0.98);
    /* The residual of each interior value against the mean of its four neighbours. */
    double sq = 0;
    int64_t k = 0;
    for (int ch = 0; ch < c; ch++)
        for (int y = 1; y + 1 < h; y++)
            for (int x = 1; x + 1 < w; x++) {
                const float *p = chw + ch * hw + (int64_t)y * w + x;
                double r = p[0] - 0.25 * ((double)p[-1] + p[1] + p[-w] + p[w]);
                sq += r * r;
                res[k++] = fabs(r);
            }
    out[CFX_STAT_NOISE] = sqrt(sq / (double)nres);
    qsort(res, (size_t)nres, sizeof *res, cmp_double);
    out[CFX_STAT_NOISE_MEDIAN] =
        nres % 2 ? res[nres / 2] : 0.5 * (res[nres / 2 - 1] + res[nres / 2]);
    out[CFX_STAT_BLOCKINESS] = blockiness(chw, c, h, w);
    cfx_free(lum);
    return CFX_OK;
}
