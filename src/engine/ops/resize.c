/* resize.c - ONNX Resize for images (N,C,H,W): nearest and bilinear, four coordinate modes, four
 * nearest rounding modes, given an output size or scales; forward and backward to x.
 *
 * Each output coordinate x maps to an input coordinate by the coordinate mode, with
 * scale = out/in (or the given scale, and then out = floor(in * scale)):
 *     half_pixel          (x + 0.5) / scale - 0.5
 *     pytorch_half_pixel  the same when out > 1, else 0
 *     align_corners       x (in - 1) / (out - 1), 0 when out == 1
 *     asymmetric          x / scale
 * As PyTorch does, 1/scale is computed once (in/out as a float, or 1/scale in double rounded to
 * float) and multiplied, so nearest indices at exact .5 and integer boundaries agree with it.
 * Nearest rounds that coordinate (round_prefer_floor, round_prefer_ceil, floor, ceil) and clamps
 * it to the input; bilinear clamps it to [0, in - 1] and blends the two neighbours. Both are
 * separable, so each axis gets a table (index pair and weight) built in forward and kept in the
 * node state for backward, which scatters each output gradient back with the same weights.
 * Loops run over (image, channel) planes, so backward is deterministic for any thread count. */
#include "engine/graph.h"

#include <math.h>

typedef struct {
    int32_t i0, i1;
    float l; /* weight of i1; i0 gets 1 - l (nearest: i1 == i0, l == 0) */
} axis_tap;

static cfx_status out_size(int64_t in, int64_t size, float scale, const char *axis, int64_t *out) {
    if (size > 0) {
        *out = size;
        return CFX_OK;
    }
    if (!(scale > 0) || !isfinite(scale))
        return cfx_set_error(CFX_EINVAL, "scale_%s must be positive, got %g", axis, scale);
    double o = floor((double)in * scale);
    if (o < 1 || o > 1e9)
        return cfx_set_error(CFX_ESHAPE, "scale_%s %g gives output length %.0f from %lld", axis,
                             scale, o, (long long)in);
    *out = (int64_t)o;
    return CFX_OK;
}

static cfx_status resize_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx_tensor *x = a->in[0];
    const cfx_resize_attr *at = a->attr;
    char xs[96];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    if (x->ndim != 4)
        return cfx_set_error(CFX_ESHAPE, "input %s must be 4-D (N,C,H,W)",
                             cfx__shape_fmt(x, xs, sizeof xs));
    if ((unsigned)at->mode > CFX_RESIZE_BILINEAR)
        return cfx_set_error(CFX_EINVAL, "unknown mode %d", (int)at->mode);
    if ((unsigned)at->coord > CFX_COORD_PYTORCH_HALF_PIXEL)
        return cfx_set_error(CFX_EINVAL, "unknown coordinate mode %d", (int)at->coord);
    if ((unsigned)at->nearest > CFX_NEAREST_CEIL)
        return cfx_set_error(CFX_EINVAL, "unknown nearest mode %d", (int)at->nearest);
    if (at->out_h < 0 || at->out_w < 0 || (at->out_h > 0) != (at->out_w > 0))
        return cfx_set_error(CFX_EINVAL,
                             "give both output sizes or neither (then scales), got %lld x %lld",
                             (long long)at->out_h, (long long)at->out_w);
    int64_t oh = 0, ow = 0;
    CFX_TRY(out_size(x->shape[2], at->out_h, at->scale_h, "h", &oh));
    CFX_TRY(out_size(x->shape[3], at->out_w, at->scale_w, "w", &ow));
    s->ndim = 4;
    s->shape[0] = x->shape[0], s->shape[1] = x->shape[1], s->shape[2] = oh, s->shape[3] = ow;
    s->state_bytes = (size_t)(oh + ow) * sizeof(axis_tap);
    return CFX_OK;
}

/* Fills the taps of one axis: in -> out, scale > 0 when given (0: derived from the sizes). */
static void make_taps(const cfx_resize_attr *at, int64_t in, int64_t out, float scale,
                      axis_tap *t) {
    /* inv multiplies the output coordinate, as PyTorch's area_pixel_compute_scale. */
    float inv;
    if (at->coord == CFX_COORD_ALIGN_CORNERS)
        inv = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0;
    else if (scale > 0 && at->out_h == 0)
        inv = (float)(1.0 / (double)scale);
    else
        inv = (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        float x;
        switch (at->coord) {
            case CFX_COORD_HALF_PIXEL:
                x = ((float)o + 0.5f) * inv - 0.5f;
                break;
            case CFX_COORD_PYTORCH_HALF_PIXEL:
                x = out > 1 ? ((float)o + 0.5f) * inv - 0.5f : 0;
                break;
            case CFX_COORD_ALIGN_CORNERS:
                x = (float)o * inv;
                break;
            default:
                x = (float)o * inv;
                break;
        }
        if (at->mode == CFX_RESIZE_NEAREST) {
            float r;
            switch (at->nearest) {
                case CFX_NEAREST_ROUND_PREFER_FLOOR:
                    r = ceilf(x - 0.5f);
                    break;
                case CFX_NEAREST_ROUND_PREFER_CEIL:
                    r = floorf(x + 0.5f);
                    break;
                case CFX_NEAREST_FLOOR:
                    r = floorf(x);
                    break;
                default:
                    r = ceilf(x);
                    break;
            }
            int64_t i = (int64_t)CFX_MIN(CFX_MAX(r, 0.0f), (float)(in - 1));
            t[o] = (axis_tap){(int32_t)i, (int32_t)i, 0.0f};
        } else {
            x = CFX_MIN(CFX_MAX(x, 0.0f), (float)(in - 1));
            int64_t i0 = (int64_t)x;
            int64_t i1 = CFX_MIN(i0 + 1, in - 1);
            t[o] = (axis_tap){(int32_t)i0, (int32_t)i1, x - (float)i0};
        }
    }
}

/* Planes [lo, hi) of resize_forward: x planes (H,W) -> y planes (OH,OW) through the taps. */
static void resize_forward_planes(const float *restrict X, float *restrict Y,
                                  const axis_tap *restrict th, const axis_tap *restrict tw,
                                  int64_t H, int64_t W, int64_t OH, int64_t OW, bool nearest,
                                  int64_t lo, int64_t hi) {
    for (int64_t pl = lo; pl < hi; pl++) {
        const float *src = X + pl * H * W;
        float *dst = Y + pl * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            const float *r0 = src + th[oh].i0 * W, *r1 = src + th[oh].i1 * W;
            float ly = th[oh].l;
            float *d = dst + oh * OW;
            if (nearest) {
                for (int64_t ow = 0; ow < OW; ow++) d[ow] = r0[tw[ow].i0];
                continue;
            }
            for (int64_t ow = 0; ow < OW; ow++) {
                float lx = tw[ow].l;
                float top = r0[tw[ow].i0] * (1 - lx) + r0[tw[ow].i1] * lx;
                float bot = r1[tw[ow].i0] * (1 - lx) + r1[tw[ow].i1] * lx;
                d[ow] = top * (1 - ly) + bot * ly;
            }
        }
    }
}

// x (N,C,H,W) -> y (N,C,OH,OW); state: taps for OH rows then OW columns
static void resize_forward(const cfx__op_args *a) {
    const cfx_resize_attr *at = a->attr;
    const cfx_tensor *x = a->in[0], *y = a->out;
    int64_t H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3];
    axis_tap *th = a->state, *tw = th + OH;
    make_taps(at, H, OH, at->scale_h, th);
    make_taps(at, W, OW, at->scale_w, tw);
    int64_t planes = x->shape[0] * x->shape[1];
    CFX_PARALLEL_RANGE(planes, planes * OH * OW > 32768,
                       resize_forward_planes(x->data, y->data, th, tw, H, W, OH, OW,
                                             at->mode == CFX_RESIZE_NEAREST, lo, hi));
}

/* Planes [lo, hi) of resize_backward: each output gradient goes back to its taps, with their
 * weights. */
static void resize_backward_planes(const float *restrict G, float *restrict DX,
                                   const axis_tap *restrict th, const axis_tap *restrict tw,
                                   int64_t H, int64_t W, int64_t OH, int64_t OW, bool nearest,
                                   int64_t lo, int64_t hi) {
    for (int64_t pl = lo; pl < hi; pl++) {
        float *dx = DX + pl * H * W;
        const float *dy = G + pl * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            float *r0 = dx + th[oh].i0 * W, *r1 = dx + th[oh].i1 * W;
            float ly = th[oh].l;
            const float *g = dy + oh * OW;
            if (nearest) {
                for (int64_t ow = 0; ow < OW; ow++) r0[tw[ow].i0] += g[ow];
                continue;
            }
            for (int64_t ow = 0; ow < OW; ow++) {
                float lx = tw[ow].l, gt = g[ow] * (1 - ly), gb = g[ow] * ly;
                r0[tw[ow].i0] += gt * (1 - lx);
                r0[tw[ow].i1] += gt * lx;
                r1[tw[ow].i0] += gb * (1 - lx);
                r1[tw[ow].i1] += gb * lx;
            }
        }
    }
}

static void resize_backward(const cfx__op_args *a) {
    if (!a->din[0]) return;
    const cfx_resize_attr *at = a->attr;
    const cfx_tensor *x = a->in[0], *y = a->out;
    int64_t H = x->shape[2], W = x->shape[3], OH = y->shape[2], OW = y->shape[3];
    const axis_tap *th = a->state, *tw = th + OH;
    int64_t planes = x->shape[0] * x->shape[1];
    CFX_PARALLEL_RANGE(planes, planes * OH * OW > 32768,
                       resize_backward_planes(a->dout, a->din[0], th, tw, H, W, OH, OW,
                                              at->mode == CFX_RESIZE_NEAREST, lo, hi));
}

static const cfx__op_def resize_def = {"Resize", sizeof(cfx_resize_attr), resize_infer,   NULL,
                                       NULL,     resize_forward,          resize_backward};

int cfx_op_resize(cfx_graph *g, int x, const cfx_resize_attr *attr) {
    if (!attr) return cfx__graph_fail(g, "Resize", "attributes are NULL");
    return cfx__graph_add(g, &resize_def, &x, 1, attr);
}
