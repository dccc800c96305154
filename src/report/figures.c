/* figures.c - figures as PNG files: the reliability diagram of a competency estimator (the
 * accuracy in each bin of rho against the diagonal of perfect calibration, with the gap to the
 * bin's mean rho shaded), drawn on a canvas (canvas.c). */
#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { FIG_W = 480, FIG_H = 490, LEFT = 64, TOP = 56, SIDE = 380 };

static const uint32_t ink = 0x202020, grid = 0xdddddd, bar = 0x3b6fb6, gap = 0xd9534f;

cfx_status cfx_figure_reliability(const char *path, const cfx_calibration_bin *bins, int nbins,
                                  double ece, double accuracy, double mean_score) {
    if (nbins < 1 || nbins > 1000)
        return cfx_set_error(CFX_EINVAL, "reliability diagram: %d bins", nbins);
    cfx_canvas *c = cfx_canvas_new(FIG_W, FIG_H, 0xffffff);
    if (!c) return CFX_ENOMEM;
        /* Plot coordinates: (u, v) in [0,1]^2 -> pixels. */
#define PX(u) (LEFT + (float)(u)*SIDE)
#define PY(v) (TOP + (1 - (float)(v)) * SIDE)
    char buf[160];
    for (int t = 0; t <= 5; t++) {
        float u = t / 5.0f;
        cfx_canvas_line(c, PX(u), PY(0), PX(u), PY(1), 1, grid);
        cfx_canvas_line(c, PX(0), PY(u), PX(1), PY(u), 1, grid);
        snprintf(buf, sizeof buf, "%.1f", u);
        cfx_canvas_text(c, (int)PX(u), (int)PY(0) + 6, 13, ink, 1, buf);
        cfx_canvas_text(c, LEFT - 8, (int)PY(u) - 8, 13, ink, 2, buf);
    }
    for (int b = 0; b < nbins; b++) {
        if (!bins[b].n) continue;
        float u0 = (float)b / nbins, u1 = (float)(b + 1) / nbins;
        int x0 = (int)lrintf(PX(u0)) + 1, x1 = (int)lrintf(PX(u1)) - 1;
        int ya = (int)lrintf(PY(bins[b].accuracy)), yc = (int)lrintf(PY(bins[b].mean_score));
        cfx_canvas_rect(c, x0, ya, x1 - x0, (int)PY(0) - ya, bar);
        /* The gap between accuracy and mean competency, shaded over the bar. */
        int lo = CFX_MIN(ya, yc), hi = CFX_MAX(ya, yc);
        for (int y = lo; y < hi; y++)
            for (int x = x0; x < x1; x++)
                if ((x + y) % 4 < 2) cfx_canvas_rect(c, x, y, 1, 1, gap);
    }
    cfx_canvas_line(c, PX(0), PY(0), PX(1), PY(1), 1.5f, 0x888888);
    cfx_canvas_line(c, PX(0), PY(0), PX(1), PY(0), 1.5f, ink);
    cfx_canvas_line(c, PX(0), PY(0), PX(0), PY(1), 1.5f, ink);
    cfx_canvas_text(c, (int)PX(0.5), (int)PY(0) + 26, 15, ink, 1, "competency rho (bin)");
    cfx_canvas_text(c, 10, TOP - 24, 15, ink, 0, "accuracy");
    snprintf(buf, sizeof buf, "ECE %.4f   accuracy %.2f%%   mean rho %.4f", ece, 100 * accuracy,
             mean_score);
    cfx_canvas_text(c, FIG_W / 2, 8, 15, ink, 1, buf);
    /* A legend in the plot's top-left corner. */
    cfx_canvas_rect(c, LEFT + 10, TOP + 10, 14, 14, bar);
    cfx_canvas_text(c, LEFT + 30, TOP + 8, 13, ink, 0, "accuracy in the bin");
    for (int y = 0; y < 14; y++)
        for (int x = 0; x < 14; x++)
            if ((x + y) % 4 < 2) cfx_canvas_rect(c, LEFT + 10 + x, TOP + 30 + y, 1, 1, gap);
    cfx_canvas_text(c, LEFT + 30, TOP + 28, 13, ink, 0, "gap to the bin's mean rho");
#undef PX
#undef PY
    cfx_status s = cfx_canvas_write_png(c, path);
    cfx_canvas_free(c);
    return s;
}

/* ------------------------------------------------------------------------ image grid --- */

cfx_status cfx_figure_image_grid(const char *path, const cfx_figure_grid *g) {
    if (!g || g->rows < 1 || g->cols < 1 || g->rows * (int64_t)g->cols > 100000 ||
        (g->c != 1 && g->c != 3) || g->h < 1 || g->w < 1 || g->h > 4096 || g->w > 4096)
        return cfx_set_error(CFX_EINVAL,
                             "image grid: need rows, columns and (1 or 3, H, W) images");
    /* Small images are enlarged so that a caption fits under each. */
    int scale = CFX_MAX(1, (96 + g->w - 1) / g->w);
    if (g->w * scale > 256) scale = CFX_MAX(1, 256 / g->w);
    const int iw = g->w * scale, ih = g->h * scale, pad = 10, cap = 20;
    const int title = g->title ? 30 : 0, head = g->col_titles ? 22 : 0;
    const int cw = iw + pad, chh = ih + cap + pad;
    const int64_t W = (int64_t)pad + (int64_t)g->cols * cw,
                  H = (int64_t)title + head + pad + (int64_t)g->rows * chh;
    if (W > 32768 || H > 32768)
        return cfx_set_error(CFX_EINVAL, "image grid: %lld x %lld pixels is too large",
                             (long long)W, (long long)H);
    cfx_canvas *c = cfx_canvas_new((int)W, (int)H, 0xffffff);
    if (!c) return CFX_ENOMEM;
    if (g->title) cfx_canvas_text(c, pad, 8, 16, ink, 0, g->title);
    for (int j = 0; g->col_titles && j < g->cols; j++)
        if (g->col_titles[j])
            cfx_canvas_text(c, pad + j * cw + iw / 2, title + 4, 13, ink, 1, g->col_titles[j]);
    for (int i = 0; i < g->rows; i++)
        for (int j = 0; j < g->cols; j++) {
            int k = i * g->cols + j, x = pad + j * cw, y = title + head + pad / 2 + i * chh;
            if (g->images && g->images[k])
                cfx_canvas_image(c, g->images[k], g->c, g->h, g->w, x, y, scale);
            if (g->captions && g->captions[k])
                cfx_canvas_text(c, x + iw / 2, y + ih + 3, 13,
                                g->caption_rgb ? g->caption_rgb[k] : ink, 1, g->captions[k]);
        }
    cfx_status s = cfx_canvas_write_png(c, path);
    cfx_canvas_free(c);
    return s;
}

/* ---------------------------------------------------------------- a run's strips --- */

/* A cause as a plain file name: letters, digits, '-' and '_' kept, the rest '_'. */
static void file_name(char *buf, size_t size, const char *cause) {
    snprintf(buf, size, "%s", cause);
    for (char *p = buf; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            *p = '_';
}

cfx_status cfx_figure_run_strips(const cfx_run *r, const char *dir, int rows) {
    static const char *const upper[CFX_RUN_METHODS] = {"IGD", "FGD", "Reco", "LGD", "LNN", "best"};
    enum { MAXC = CFX_RUN_METHODS + 1 };
    if (rows < 1 || rows > 1000) return cfx_set_error(CFX_EINVAL, "strips: %d rows", rows);
    const int64_t img = (int64_t)r->c * r->h * r->w;
    int cols = 1, col_of[MAXC] = {-1};
    const char *titles[MAXC] = {"original"};
    for (int k = 0; k < CFX_RUN_METHODS; k++)
        if (r->has[k]) col_of[cols] = k, titles[cols++] = upper[k];
    const float **images = cfx_calloc((size_t)rows * MAXC, sizeof *images);
    const char **captions = cfx_calloc((size_t)rows * MAXC, sizeof *captions);
    char(*text)[40] = cfx_calloc((size_t)rows * MAXC, sizeof *text);
    uint32_t *colour = cfx_calloc((size_t)rows * MAXC, sizeof *colour);
    const char *cause[64] = {NULL};
    int ncause = r->cause ? cfx_run_causes(r, cause, 64) : 1;
    cfx_status s = images && captions && text && colour ? CFX_OK : CFX_ENOMEM;
    for (int c = 0; s == CFX_OK && c < ncause; c++) {
        int n = 0;
        for (int64_t i = 0; i < r->n && n < rows; i++) {
            if (cause[c] && strcmp(r->cause[i], cause[c])) continue;
            for (int j = 0; j < cols; j++) {
                int q = n * cols + j, k = col_of[j];
                const cfx_run_result *e = k < 0 ? NULL : &r->results[k * r->n + i];
                double rho = e ? e->rho_after : NAN;
                for (int m = 0; !e && m < CFX_RUN_METHODS; m++)
                    if (r->has[m] && r->results[m * r->n + i].present)
                        rho = r->results[m * r->n + i].rho_before;
                images[q] = (k < 0 ? r->images : r->counterfactuals[k])->data + i * img;
                bool ok = e ? e->success != 0 : rho >= r->threshold;
                if (e && k == CFX_RUN_BEST && e->winner >= 0)
                    snprintf(text[q], sizeof text[q], "%.3f %s", rho,
                             cfx_run_method_name(e->winner));
                else
                    snprintf(text[q], sizeof text[q], "%.3f", rho);
                captions[q] = text[q];
                colour[q] = ok ? 0x1e7b34 : 0xc0392b;
            }
            n++;
        }
        if (!n) continue;
        char title[200], name[96], path[4400];
        snprintf(title, sizeof title, "%s: rho under each image (threshold %.2f)",
                 cause[c] ? cause[c] : "images", r->threshold);
        file_name(name, sizeof name, cause[c] ? cause[c] : "images");
        snprintf(path, sizeof path, "%s/%s.png", dir, name);
        cfx_figure_grid g = {.title = title,
                             .rows = n,
                             .cols = cols,
                             .c = r->c,
                             .h = r->h,
                             .w = r->w,
                             .col_titles = titles,
                             .images = images,
                             .captions = captions,
                             .caption_rgb = colour};
        s = cfx_figure_image_grid(path, &g);
    }
    cfx_free(images), cfx_free(captions), cfx_free(text), cfx_free(colour);
    return s;
}
