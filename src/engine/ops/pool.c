/* pool.c - 2-D max and average pooling and global average pooling (ONNX MaxPool, AveragePool,
 * GlobalAveragePool), forward and backward.
 *
 * Output size, per axis, as ONNX and PyTorch define it: with the dilated kernel
 * e = d (k - 1) + 1 and padded length L = H + pad_begin + pad_end,
 *     out = floor((L - e) / s) + 1            (ceil_mode off)
 *     out = ceil((L - e) / s) + 1             (ceil_mode on)
 * and in ceil mode the last window must start inside the input or the left padding: when
 * (out - 1) s >= H + pad_begin it is dropped. Windows that run past the bottom/right padding
 * (ceil mode) simply read fewer elements.
 *
 * Max pooling stores, per output, the index of the first maximal element of its window in the
 * node state, and its backward sends the gradient there (NaN counts as maximal, as PyTorch).
 * Average pooling divides by the number of input elements in the window, or with
 * count_include_pad by the window clipped to the padded input (PyTorch's rule, which ONNX
 * follows: the part of a ceil-mode window beyond the end padding never counts). Every loop is
 * parallel over (image, channel) planes, so results do not depend on the thread count. */
#include "engine/graph.h"

#include <math.h>

typedef struct {
    int64_t N, C, H, W, P, Q;
    int kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
} pool_geom;

static cfx_status out_len(const char *axis, int64_t in, int k, int s, int p0, int p1, int d,
                          int ceil_mode, int64_t *out) {
    int64_t e = (int64_t)d * (k - 1) + 1, L = in + p0 + p1;
    if (e > L)
        return cfx_set_error(CFX_ESHAPE,
                             "kernel %d (dilated %lld) is larger than the padded input %s %lld", k,
                             (long long)e, axis, (long long)L);
    int64_t o = ceil_mode ? (L - e + s - 1) / s + 1 : (L - e) / s + 1;
    if (ceil_mode && (o - 1) * s >= in + p0) o--;
    *out = o;
    return CFX_OK;
}

static cfx_status pool_geometry(const cfx__op_args *a, bool is_max, pool_geom *g) {
    const cfx_tensor *x = a->in[0];
    const cfx_pool2d_attr *at = a->attr;
    char xs[96];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    if (x->ndim != 4)
        return cfx_set_error(CFX_ESHAPE, "input %s must be 4-D (N,C,H,W)",
                             cfx__shape_fmt(x, xs, sizeof xs));
    if (at->kernel[0] < 1 || at->kernel[1] < 1)
        return cfx_set_error(CFX_EINVAL, "kernel must be positive, got (%d, %d)", at->kernel[0],
                             at->kernel[1]);
    if (at->stride[0] < 0 || at->stride[1] < 0)
        return cfx_set_error(CFX_EINVAL, "stride must be positive, got (%d, %d)", at->stride[0],
                             at->stride[1]);
    if (at->dilation[0] < 0 || at->dilation[1] < 0)
        return cfx_set_error(CFX_EINVAL, "dilation must be positive, got (%d, %d)", at->dilation[0],
                             at->dilation[1]);
    if (!is_max && (at->dilation[0] > 1 || at->dilation[1] > 1))
        return cfx_set_error(CFX_EUNSUPPORTED, "average pooling has no dilation, got (%d, %d)",
                             at->dilation[0], at->dilation[1]);
    for (int i = 0; i < 4; i++)
        if (at->pad[i] < 0)
            return cfx_set_error(CFX_EINVAL, "padding must be >= 0, got (%d, %d, %d, %d)",
                                 at->pad[0], at->pad[1], at->pad[2], at->pad[3]);
    g->N = x->shape[0], g->C = x->shape[1], g->H = x->shape[2], g->W = x->shape[3];
    g->kh = at->kernel[0], g->kw = at->kernel[1];
    g->sh = at->stride[0] ? at->stride[0] : g->kh;
    g->sw = at->stride[1] ? at->stride[1] : g->kw;
    g->pt = at->pad[0], g->pl = at->pad[1], g->pb = at->pad[2], g->pr = at->pad[3];
    g->dh = at->dilation[0] ? at->dilation[0] : 1;
    g->dw = at->dilation[1] ? at->dilation[1] : 1;
    /* A window made of padding only would have no maximum (and a zero average divisor). */
    if (g->pt >= (int64_t)g->dh * (g->kh - 1) + 1 || g->pb >= (int64_t)g->dh * (g->kh - 1) + 1 ||
        g->pl >= (int64_t)g->dw * (g->kw - 1) + 1 || g->pr >= (int64_t)g->dw * (g->kw - 1) + 1)
        return cfx_set_error(CFX_EINVAL,
                             "padding (%d, %d, %d, %d) must be smaller than the kernel (%d, %d)",
                             g->pt, g->pl, g->pb, g->pr, g->kh, g->kw);
    CFX_TRY(out_len("height", g->H, g->kh, g->sh, g->pt, g->pb, g->dh, at->ceil_mode, &g->P));
    CFX_TRY(out_len("width", g->W, g->kw, g->sw, g->pl, g->pr, g->dw, at->ceil_mode, &g->Q));
    return CFX_OK;
}

static void set_shape(cfx__op_shape *s, const pool_geom *g) {
    s->ndim = 4;
    s->shape[0] = g->N, s->shape[1] = g->C, s->shape[2] = g->P, s->shape[3] = g->Q;
}

/* ------------------------------------------------------------------- max pool --- */

static cfx_status max_infer(const cfx__op_args *a, cfx__op_shape *s) {
    pool_geom g;
    CFX_TRY(pool_geometry(a, true, &g));
    set_shape(s, &g);
    s->state_bytes = (size_t)(g.N * g.C * g.P * g.Q) * sizeof(int32_t);
    return CFX_OK;
}

// x (N,C,H,W) -> y (N,C,P,Q), state: argmax (N,C,P,Q) as an index into the H*W plane
/* Output (oh, ow) with its window clipped to the input: y and the argmax am. Strictly greater
 * keeps the first maximum; a NaN (for which v <= m is false) wins and then stays (m == m is
 * false). A dilated window can fall entirely between input pixels: output 0 and argmax -1. */
static void max_window(const pool_geom *g, const float *x, float *y, int32_t *am, int64_t oh,
                       int64_t ow) {
    int64_t best = -1;
    float m = 0;
    for (int r = 0; r < g->kh; r++) {
        int64_t ih = oh * g->sh - g->pt + (int64_t)r * g->dh;
        if (ih < 0 || ih >= g->H) continue;
        for (int c = 0; c < g->kw; c++) {
            int64_t iw = ow * g->sw - g->pl + (int64_t)c * g->dw;
            if (iw < 0 || iw >= g->W) continue;
            float v = x[ih * g->W + iw];
            if (best < 0 || (!(v <= m) && m == m)) m = v, best = ih * g->W + iw;
        }
    }
    y[oh * g->Q + ow] = best < 0 ? 0.0f : m;
    am[oh * g->Q + ow] = (int32_t)best;
}

/* n outputs of one row whose windows lie inside the input, the first window starting at plane
 * index base: the taps outermost and the outputs innermost, so the compare-and-select runs
 * across outputs (it vectorises; a window at a time it did not, and max pool's forward was a
 * fifth of a batch-1 step of a small CNN). Same order of taps, same ties, same NaN rule as
 * max_window. Inlined with a constant stride for the common strides. */
static inline __attribute__((always_inline)) void max_row(const float *restrict x,
                                                          float *restrict y, int32_t *restrict am,
                                                          int32_t base, int32_t sw, int kh, int kw,
                                                          int32_t rstep, int32_t cstep, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        int32_t i = base + (int32_t)j * sw;
        y[j] = x[i];
        am[j] = i;
    }
    for (int r = 0; r < kh; r++)
        for (int c = 0; c < kw; c++) {
            if (r == 0 && c == 0) continue;
            int32_t off = base + r * rstep + c * cstep;
            for (int64_t j = 0; j < n; j++) {
                int32_t i = off + (int32_t)j * sw;
                float v = x[i], m = y[j];
                bool take = !(v <= m) & (m == m);
                y[j] = take ? v : m;
                am[j] = take ? i : am[j];
            }
        }
}

/* Planes [lo, hi) of max_forward: output y and the argmax am of each window. */
static void max_forward_planes(const float *restrict X, float *restrict Y, int32_t *restrict arg,
                               const pool_geom *geom, int64_t lo, int64_t hi) {
    /* A private copy: the stores through y and am could otherwise alias the caller's fields
     * and force a reload of every field in the inner loop. */
    const pool_geom g = *geom;
    /* The outputs [q0, q1) of a row whose windows fit horizontally. */
    int64_t q0 = (g.pl + g.sw - 1) / g.sw, q1 = g.Q;
    while (q1 > q0 && (q1 - 1) * g.sw - g.pl + (int64_t)(g.kw - 1) * g.dw >= g.W) q1--;
    if (q1 < q0) q1 = q0;
    int32_t rstep = (int32_t)(g.dh * g.W), cstep = g.dw;
    for (int64_t pl = lo; pl < hi; pl++) {
        const float *x = X + pl * g.H * g.W;
        float *y = Y + pl * g.P * g.Q;
        int32_t *am = arg + pl * g.P * g.Q;
        for (int64_t oh = 0; oh < g.P; oh++) {
            int64_t ih = oh * g.sh - g.pt;
            if (ih < 0 || ih + (int64_t)(g.kh - 1) * g.dh >= g.H || q0 >= q1) {
                for (int64_t ow = 0; ow < g.Q; ow++) max_window(&g, x, y, am, oh, ow);
                continue;
            }
            for (int64_t ow = 0; ow < q0; ow++) max_window(&g, x, y, am, oh, ow);
            int32_t base = (int32_t)(ih * g.W + q0 * g.sw - g.pl);
            float *yr = y + oh * g.Q + q0;
            int32_t *ar = am + oh * g.Q + q0;
            if (g.sw == 2)
                max_row(x, yr, ar, base, 2, g.kh, g.kw, rstep, cstep, q1 - q0);
            else if (g.sw == 1)
                max_row(x, yr, ar, base, 1, g.kh, g.kw, rstep, cstep, q1 - q0);
            else
                max_row(x, yr, ar, base, g.sw, g.kh, g.kw, rstep, cstep, q1 - q0);
            for (int64_t ow = q1; ow < g.Q; ow++) max_window(&g, x, y, am, oh, ow);
        }
    }
}

/* NHWC (the graph holds x and y so between convolutions, cfx__op_args.blocked_in0; nChw16c is
 * taken as N C/16 images of 16 channels): rows [lo, hi) of the N*P output rows, each output's
 * window taken over all C channels at once (the channels innermost, so the compare-and-select
 * vectorises). The argmax is the offset into the image's H*W*C values. Same taps in the same order,
 * same ties and NaN rule as max_window, so the values and winners are the NCHW kernel's. */
CFX_CLONES static void max_forward_nhwc(const float *restrict X, float *restrict Y,
                                        int32_t *restrict arg, const pool_geom *geom, int64_t lo,
                                        int64_t hi) {
    const pool_geom g = *geom; /* a private copy, as in max_forward_planes */
    for (int64_t row = lo; row < hi; row++) {
        int64_t n = row / g.P, oh = row % g.P;
        const float *x = X + n * g.H * g.W * g.C;
        for (int64_t ow = 0; ow < g.Q; ow++) {
            float *y = Y + (row * g.Q + ow) * g.C;
            int32_t *am = arg + (row * g.Q + ow) * g.C;
            bool seen = false;
            for (int r = 0; r < g.kh; r++) {
                int64_t ih = oh * g.sh - g.pt + (int64_t)r * g.dh;
                if (ih < 0 || ih >= g.H) continue;
                for (int c = 0; c < g.kw; c++) {
                    int64_t iw = ow * g.sw - g.pl + (int64_t)c * g.dw;
                    if (iw < 0 || iw >= g.W) continue;
                    int32_t base = (int32_t)((ih * g.W + iw) * g.C);
                    const float *xp = x + base;
                    if (!seen) {
                        for (int64_t k = 0; k < g.C; k++) y[k] = xp[k], am[k] = base + (int32_t)k;
                        seen = true;
                        continue;
                    }
                    for (int64_t k = 0; k < g.C; k++) {
                        float v = xp[k], m = y[k];
                        bool take = !(v <= m) & (m == m);
                        y[k] = take ? v : m;
                        am[k] = take ? base + (int32_t)k : am[k];
                    }
                }
            }
            if (!seen)
                for (int64_t k = 0; k < g.C; k++) y[k] = 0.0f, am[k] = -1;
        }
    }
}

static void max_forward(const cfx__op_args *a) {
    pool_geom g;
    CFX_ASSERT(pool_geometry(a, true, &g) == CFX_OK);
    if (a->blocked_in0) {
        /* nChw16c is NHWC images of 16 channels, C/16 of them per image. */
        int64_t b = a->c16_in0 ? 16 : g.C;
        pool_geom gb = g;
        gb.N = g.N * (g.C / b), gb.C = b;
        int64_t rows = gb.N * g.P;
        CFX_PARALLEL_RANGE(rows, rows * g.Q * b * g.kh * g.kw > 32768,
                           max_forward_nhwc(a->in[0]->data, a->out->data, a->state, &gb, lo, hi));
        return;
    }
    int64_t planes = g.N * g.C;
    CFX_PARALLEL_RANGE(planes, planes * g.P * g.Q * g.kh * g.kw > 32768,
                       max_forward_planes(a->in[0]->data, a->out->data, a->state, &g, lo, hi));
}

/* Planes [lo, hi) of max_backward: each output's gradient goes to its window's argmax. */
static void max_backward_planes(const float *restrict G, const int32_t *restrict arg,
                                float *restrict DX, int64_t HW, int64_t PQ, int64_t lo,
                                int64_t hi) {
    for (int64_t pl = lo; pl < hi; pl++) {
        float *dx = DX + pl * HW;
        const float *dy = G + pl * PQ;
        const int32_t *am = arg + pl * PQ;
        for (int64_t i = 0; i < PQ; i++)
            if (am[i] >= 0) dx[am[i]] += dy[i];
    }
}

static void max_backward(const cfx__op_args *a) {
    float *DX = a->din[0];
    if (!DX) return;
    const cfx_tensor *x = a->in[0], *y = a->out;
    if (a->blocked_in0) {
        /* NHWC: an image's argmaxes index its H*W*C values, and its outputs are visited in the
         * NCHW kernel's order for each channel (oh, ow), so every sum is added in that order. */
        int64_t imgs = a->c16_in0 ? x->shape[0] * (x->shape[1] / 16) : x->shape[0];
        int64_t HWC = x->numel / imgs, PQC = y->numel / imgs;
        CFX_PARALLEL_RANGE(imgs, y->numel > 32768,
                           max_backward_planes(a->dout, a->state, DX, HWC, PQC, lo, hi));
        return;
    }
    int64_t planes = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3];
    int64_t PQ = y->shape[2] * y->shape[3];
    CFX_PARALLEL_RANGE(planes, planes * PQ > 32768,
                       max_backward_planes(a->dout, a->state, DX, HW, PQ, lo, hi));
}

/* cfx__op_def.blocked_ok: max pooling runs in NHWC when an image's H*W*C offsets fit the
 * argmax's int32. */
static bool max_blocked_ok(const cfx__op_args *a, bool in0, bool out) {
    const cfx_tensor *x = a->in[0];
    return x && x->ndim == 4 && x->shape[1] * x->shape[2] * x->shape[3] <= INT32_MAX;
}

/* --------------------------------------------------------------- average pool --- */

static cfx_status avg_infer(const cfx__op_args *a, cfx__op_shape *s) {
    pool_geom g;
    CFX_TRY(pool_geometry(a, false, &g));
    set_shape(s, &g);
    return CFX_OK;
}

/* The clipped window [*h0, *h1) of output row o and its divisor share for one axis: the
 * window clipped to the padded input (count_include_pad) or to the input. */
static void avg_window(int64_t o, int s, int k, int p0, int p1, int64_t in, int64_t *lo,
                       int64_t *hi, int64_t *padded) {
    int64_t st = o * s - p0, en = CFX_MIN(st + k, in + p1);
    *padded = en - st;
    *lo = CFX_MAX(st, 0);
    *hi = CFX_MIN(en, in);
}

/* Planes [lo, hi) of avg_forward. */
static void avg_forward_planes(const float *restrict X, float *restrict Y, const pool_geom *geom,
                               bool count_include_pad, int64_t lo, int64_t hi) {
    const pool_geom g = *geom; /* a private copy, as in max_forward_planes */
    for (int64_t pl = lo; pl < hi; pl++) {
        const float *x = X + pl * g.H * g.W;
        float *y = Y + pl * g.P * g.Q;
        for (int64_t oh = 0; oh < g.P; oh++) {
            int64_t h0, h1, ph;
            avg_window(oh, g.sh, g.kh, g.pt, g.pb, g.H, &h0, &h1, &ph);
            for (int64_t ow = 0; ow < g.Q; ow++) {
                int64_t w0, w1, pw;
                avg_window(ow, g.sw, g.kw, g.pl, g.pr, g.W, &w0, &w1, &pw);
                float sum = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) sum += x[ih * g.W + iw];
                int64_t div = count_include_pad ? ph * pw : (h1 - h0) * (w1 - w0);
                y[oh * g.Q + ow] = div > 0 ? sum / (float)div : 0.0f;
            }
        }
    }
}

// x (N,C,H,W) -> y (N,C,P,Q)
static void avg_forward(const cfx__op_args *a) {
    pool_geom g;
    CFX_ASSERT(pool_geometry(a, false, &g) == CFX_OK);
    const cfx_pool2d_attr *at = a->attr;
    int64_t planes = g.N * g.C;
    CFX_PARALLEL_RANGE(
        planes, planes * g.P * g.Q * g.kh * g.kw > 32768,
        avg_forward_planes(a->in[0]->data, a->out->data, &g, at->count_include_pad, lo, hi));
}

/* Planes [lo, hi) of avg_backward: each output's gradient spreads evenly over its window. */
static void avg_backward_planes(const float *restrict G, float *restrict DX, const pool_geom *geom,
                                bool count_include_pad, int64_t lo, int64_t hi) {
    const pool_geom g = *geom; /* a private copy, as in max_forward_planes */
    for (int64_t pl = lo; pl < hi; pl++) {
        float *dx = DX + pl * g.H * g.W;
        const float *dy = G + pl * g.P * g.Q;
        for (int64_t oh = 0; oh < g.P; oh++) {
            int64_t h0, h1, ph;
            avg_window(oh, g.sh, g.kh, g.pt, g.pb, g.H, &h0, &h1, &ph);
            for (int64_t ow = 0; ow < g.Q; ow++) {
                int64_t w0, w1, pw;
                avg_window(ow, g.sw, g.kw, g.pl, g.pr, g.W, &w0, &w1, &pw);
                int64_t div = count_include_pad ? ph * pw : (h1 - h0) * (w1 - w0);
                if (div <= 0) continue;
                float v = dy[oh * g.Q + ow] / (float)div;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) dx[ih * g.W + iw] += v;
            }
        }
    }
}

static void avg_backward(const cfx__op_args *a) {
    float *DX = a->din[0];
    if (!DX) return;
    pool_geom g;
    CFX_ASSERT(pool_geometry(a, false, &g) == CFX_OK);
    const cfx_pool2d_attr *at = a->attr;
    int64_t planes = g.N * g.C;
    CFX_PARALLEL_RANGE(planes, planes * g.P * g.Q * g.kh * g.kw > 32768,
                       avg_backward_planes(a->dout, DX, &g, at->count_include_pad, lo, hi));
}

/* -------------------------------------------------------- global average pool --- */

static cfx_status gap_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx_tensor *x = a->in[0];
    char xs[96];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    if (x->ndim != 4)
        return cfx_set_error(CFX_ESHAPE, "input %s must be 4-D (N,C,H,W)",
                             cfx__shape_fmt(x, xs, sizeof xs));
    s->ndim = 4;
    s->shape[0] = x->shape[0], s->shape[1] = x->shape[1], s->shape[2] = 1, s->shape[3] = 1;
    return CFX_OK;
}

/* Planes [lo, hi) of gap_forward: the mean of each plane of HW values. */
static void gap_forward_planes(const float *restrict X, float *restrict Y, int64_t HW, int64_t lo,
                               int64_t hi) {
    for (int64_t pl = lo; pl < hi; pl++) {
        const float *p = X + pl * HW;
        float s = 0;
        for (int64_t i = 0; i < HW; i++) s += p[i];
        Y[pl] = s / (float)HW;
    }
}

/* NHWC (cfx__op_args.blocked_in0): images [lo, hi), each channel's sum in y, added in the
 * order of the NCHW loop (the channels innermost, so it vectorises): the same sums. y
 * (N,C,1,1) is the same in either layout. */
CFX_CLONES static void gap_forward_nhwc(const float *restrict X, float *restrict Y, int64_t C,
                                        int64_t HW, int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; n++) {
        const float *x = X + n * HW * C;
        float *y = Y + n * C;
        for (int64_t c = 0; c < C; c++) y[c] = 0.0f;
        for (int64_t i = 0; i < HW; i++)
            for (int64_t c = 0; c < C; c++) y[c] += x[i * C + c];
        for (int64_t c = 0; c < C; c++) y[c] /= (float)HW;
    }
}

CFX_CLONES static void gap_backward_nhwc(const float *restrict G, float *restrict DX, int64_t C,
                                         int64_t HW, int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; n++) {
        float *dx = DX + n * HW * C;
        const float *dy = G + n * C;
        for (int64_t i = 0; i < HW; i++)
            for (int64_t c = 0; c < C; c++) dx[i * C + c] += dy[c] / (float)HW;
    }
}

// x (N,C,H,W) -> y (N,C,1,1)
static void gap_forward(const cfx__op_args *a) {
    const cfx_tensor *x = a->in[0];
    int64_t planes = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3];
    if (a->blocked_in0) {
        /* nChw16c: NHWC images of 16 channels, whose outputs follow each other in NCHW order. */
        int64_t b = a->c16_in0 ? 16 : x->shape[1], imgs = planes / b;
        CFX_PARALLEL_RANGE(imgs, planes * HW > 65536,
                           gap_forward_nhwc(x->data, a->out->data, b, HW, lo, hi));
        return;
    }
    CFX_PARALLEL_RANGE(planes, planes * HW > 65536,
                       gap_forward_planes(x->data, a->out->data, HW, lo, hi));
}

/* Planes [lo, hi) of gap_backward: each plane gets its output's gradient over HW. */
static void gap_backward_planes(const float *restrict G, float *restrict DX, int64_t HW, int64_t lo,
                                int64_t hi) {
    for (int64_t pl = lo; pl < hi; pl++) {
        float v = G[pl] / (float)HW, *p = DX + pl * HW;
        for (int64_t i = 0; i < HW; i++) p[i] += v;
    }
}

static void gap_backward(const cfx__op_args *a) {
    if (!a->din[0]) return;
    const cfx_tensor *x = a->in[0];
    int64_t planes = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3];
    if (a->blocked_in0) {
        int64_t b = a->c16_in0 ? 16 : x->shape[1], imgs = planes / b;
        CFX_PARALLEL_RANGE(imgs, planes * HW > 65536,
                           gap_backward_nhwc(a->dout, a->din[0], b, HW, lo, hi));
        return;
    }
    CFX_PARALLEL_RANGE(planes, planes * HW > 65536,
                       gap_backward_planes(a->dout, a->din[0], HW, lo, hi));
}

static const cfx__op_def max_def = {"MaxPool",
                                    sizeof(cfx_pool2d_attr),
                                    max_infer,
                                    NULL,
                                    NULL,
                                    max_forward,
                                    max_backward,
                                    .any_layout = true,
                                    .blocked_ok = max_blocked_ok};
static const cfx__op_def avg_def = {
    "AveragePool", sizeof(cfx_pool2d_attr), avg_infer, NULL, NULL, avg_forward, avg_backward};
/* cfx__op_def.blocked_ok: global average pooling reads NHWC; its (N,C,1,1) output is the same
 * in either layout, so the graph keeps it NCHW. */
static bool gap_blocked_ok(const cfx__op_args *a, bool in0, bool out) {
    return !out && a->in[0] && a->in[0]->ndim == 4;
}

static const cfx__op_def gap_def = {
    "GlobalAveragePool",         0, gap_infer, NULL, NULL, gap_forward, gap_backward,
    .blocked_ok = gap_blocked_ok};

int cfx_op_max_pool2d(cfx_graph *g, int x, const cfx_pool2d_attr *attr) {
    if (!attr) return cfx__graph_fail(g, "MaxPool", "attributes are NULL (the kernel is required)");
    return cfx__graph_add(g, &max_def, &x, 1, attr);
}

int cfx_op_avg_pool2d(cfx_graph *g, int x, const cfx_pool2d_attr *attr) {
    if (!attr)
        return cfx__graph_fail(g, "AveragePool", "attributes are NULL (the kernel is required)");
    return cfx__graph_add(g, &avg_def, &x, 1, attr);
}

int cfx_op_global_avg_pool(cfx_graph *g, int x) {
    return cfx__graph_add(g, &gap_def, &x, 1, NULL);
}
