/* shape.c - shape ops with ONNX semantics: Flatten, Reshape, Transpose, Concat, Slice, Pad.
 *
 * Flatten and Reshape only relabel a row-major buffer, so they are views: infer sets alias and
 * the graph points their output (and its gradient) at input 0's storage and never runs them.
 * Transpose and Slice map every output element to one input offset, base + sum o_d st_d, so
 * one strided walk does both directions (gather forward, scatter-add backward); the map is
 * one-to-one, so the backward can run in parallel. Pad maps each output coordinate to an input
 * coordinate per axis (constant: none; edge: clamp; reflect: mirror about the end elements);
 * several outputs can share an input under edge and reflect, so its backward runs serially. */
#include "engine/ops/ops.h"

/* Row-major element strides of t. */
static void strides_of(const cfx_tensor *t, int64_t *st) {
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        st[d] = s;
        s *= t->shape[d];
    }
}

/* Rows [lo, hi) of strided_walk, each of last elements with input stride lst. */
static void strided_walk_rows(int nd, const int64_t *restrict shape, int64_t base,
                              const int64_t *restrict st, float *restrict x, float *restrict y,
                              bool scatter, int64_t last, int64_t lst, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = base, q = r;
        for (int d = nd - 2; d >= 0; d--) {
            off += (q % shape[d]) * st[d];
            q /= shape[d];
        }
        float *yr = y + r * last;
        if (scatter)
            for (int64_t j = 0; j < last; j++) x[off + j * lst] += yr[j];
        else
            for (int64_t j = 0; j < last; j++) yr[j] = x[off + j * lst];
    }
}

/* For every element o of an (nd, shape) output, with input offset off = base + sum o_d st_d:
 * gather (y[o] = x[off]) or scatter-add (x[off] += y[o]). Parallel over rows of the last axis. */
static void strided_walk(int nd, const int64_t *shape, int64_t base, const int64_t *st, float *x,
                         float *y, bool scatter) {
    int64_t last = nd ? shape[nd - 1] : 1, lst = nd ? st[nd - 1] : 0, rows = 1;
    for (int d = 0; d < nd - 1; d++) rows *= shape[d];
    CFX_PARALLEL_RANGE(rows, rows * last > 32768,
                       strided_walk_rows(nd, shape, base, st, x, y, scatter, last, lst, lo, hi));
}

/* Forward and backward of a view, should the graph ever run one: copy, and add the gradient
 * unless it already is the same buffer. */
static void view_forward(const cfx__op_args *a) {
    if (a->out->data != a->in[0]->data)
        memcpy(a->out->data, a->in[0]->data, (size_t)a->out->numel * sizeof(float));
}

static void view_backward(const cfx__op_args *a) {
    if (a->din[0] == a->dout) return;
    for (int64_t i = 0; i < a->out->numel; i++) a->din[0][i] += a->dout[i];
}

/* ---------------------------------------------------------------------- flatten --- */

// x (d0..dk-1, dk..) -> y (d0*..*dk-1, dk*..), a view
static cfx_status flatten_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__flatten_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    char b[96];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    int ax = at->axis < 0 ? at->axis + x->ndim : at->axis;
    if (ax < 0 || ax > x->ndim)
        return cfx_set_error(CFX_EINVAL, "axis %d is out of range for input %s", at->axis,
                             cfx__shape_fmt(x, b, sizeof b));
    s->ndim = 2;
    s->shape[0] = s->shape[1] = 1;
    for (int d = 0; d < x->ndim; d++) s->shape[d < ax ? 0 : 1] *= x->shape[d];
    s->alias = true;
    return CFX_OK;
}

static const cfx__op_def flatten_def = {
    "Flatten", sizeof(cfx__flatten_attr), flatten_infer, NULL, NULL, view_forward, view_backward};

int cfx_op_flatten(cfx_graph *g, int x, int axis) {
    cfx__flatten_attr at = {axis};
    return cfx__graph_add(g, &flatten_def, &x, 1, &at);
}

/* ---------------------------------------------------------------------- reshape --- */

// x (any) -> y (attr shape; 0 copies x's dimension, -1 takes what is left), a view
static cfx_status reshape_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__reshape_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    char b[96], c[96];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    cfx_tensor_shape_str(at->ndim, at->shape, c, sizeof c);
    int infer_at = -1;
    int64_t known = 1;
    s->ndim = at->ndim;
    for (int d = 0; d < at->ndim; d++) {
        int64_t v = at->shape[d];
        if (v == 0) {
            if (d >= x->ndim)
                return cfx_set_error(CFX_ESHAPE,
                                     "target %s copies dimension %d, which input %s "
                                     "does not have",
                                     c, d, cfx__shape_fmt(x, b, sizeof b));
            v = x->shape[d];
        } else if (v == -1) {
            if (infer_at >= 0)
                return cfx_set_error(CFX_EINVAL, "target %s has more than one -1", c);
            infer_at = d;
            v = 1;
        } else if (v < 0) {
            return cfx_set_error(CFX_EINVAL, "target %s has a negative dimension", c);
        }
        s->shape[d] = v;
        if (v > 0 && known > INT64_MAX / v) /* more elements than any input has */
            return cfx_set_error(CFX_ESHAPE, "input %s (%lld elements) cannot be reshaped to %s",
                                 cfx__shape_fmt(x, b, sizeof b), (long long)x->numel, c);
        known *= v;
    }
    if (infer_at >= 0) {
        if (x->numel % known != 0)
            return cfx_set_error(CFX_ESHAPE, "input %s (%lld elements) cannot be reshaped to %s",
                                 cfx__shape_fmt(x, b, sizeof b), (long long)x->numel, c);
        s->shape[infer_at] = x->numel / known;
        known = x->numel;
    }
    if (known != x->numel)
        return cfx_set_error(CFX_ESHAPE, "input %s (%lld elements) cannot be reshaped to %s",
                             cfx__shape_fmt(x, b, sizeof b), (long long)x->numel, c);
    s->alias = true;
    return CFX_OK;
}

static const cfx__op_def reshape_def = {
    "Reshape", sizeof(cfx__reshape_attr), reshape_infer, NULL, NULL, view_forward, view_backward};

int cfx_op_reshape(cfx_graph *g, int x, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > CFX_MAX_DIMS || (ndim > 0 && !shape))
        return cfx__graph_fail(g, "Reshape", "target must have 0 to %d dimensions, not %d",
                               CFX_MAX_DIMS, ndim);
    cfx__reshape_attr at = {.ndim = ndim};
    for (int d = 0; d < ndim; d++) at.shape[d] = shape[d];
    return cfx__graph_add(g, &reshape_def, &x, 1, &at);
}

/* -------------------------------------------------------------------- transpose --- */

static cfx_status transpose_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__perm_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    char b[96];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    if (x->ndim != at->ndim)
        return cfx_set_error(CFX_ESHAPE, "the permutation has %d entries for input %s", at->ndim,
                             cfx__shape_fmt(x, b, sizeof b));
    bool seen[CFX_MAX_DIMS] = {false};
    for (int d = 0; d < at->ndim; d++) {
        int p = at->perm[d];
        if (p < 0 || p >= at->ndim || seen[p])
            return cfx_set_error(CFX_EINVAL, "perm is not a permutation of 0..%d (entry %d is %d)",
                                 at->ndim - 1, d, p);
        seen[p] = true;
        s->shape[d] = x->shape[p];
    }
    s->ndim = x->ndim;
    return CFX_OK;
}

/* Input strides in output order: output axis d walks input axis perm[d]. */
static void transpose_strides(const cfx__op_args *a, int64_t *st) {
    const cfx__perm_attr *at = a->attr;
    int64_t ist[CFX_MAX_DIMS];
    strides_of(a->in[0], ist);
    for (int d = 0; d < at->ndim; d++) st[d] = ist[at->perm[d]];
}

// x (d0..dn-1) -> y (d_perm[0]..d_perm[n-1])
static void transpose_forward(const cfx__op_args *a) {
    int64_t st[CFX_MAX_DIMS];
    transpose_strides(a, st);
    strided_walk(a->out->ndim, a->out->shape, 0, st, a->in[0]->data, a->out->data, false);
}

static void transpose_backward(const cfx__op_args *a) {
    int64_t st[CFX_MAX_DIMS];
    transpose_strides(a, st);
    strided_walk(a->out->ndim, a->out->shape, 0, st, a->din[0], (float *)a->dout, true);
}

static const cfx__op_def transpose_def = {
    "Transpose", sizeof(cfx__perm_attr), transpose_infer,   NULL,
    NULL,        transpose_forward,      transpose_backward};

/* The rank of value x at build time, or -1 (the graph then reports the bad id). */
static int rank_of(cfx_graph *g, int x) {
    const cfx_tensor *t = x >= 0 ? cfx_graph_tensor(g, x) : NULL;
    return t ? t->ndim : -1;
}

int cfx_op_transpose(cfx_graph *g, int x, const int *perm) {
    int nd = rank_of(g, x);
    cfx__perm_attr at = {.ndim = nd < 0 ? 0 : nd};
    /* No permutation reverses the axes, as ONNX's default. */
    for (int d = 0; d < at.ndim; d++) at.perm[d] = perm ? perm[d] : at.ndim - 1 - d;
    return cfx__graph_add(g, &transpose_def, &x, 1, &at);
}

/* ----------------------------------------------------------------------- concat --- */

static cfx_status concat_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__concat_attr *at = a->attr;
    char b[96], c[96];
    for (int i = 0; i < a->nin; i++)
        if (!a->in[i]) return cfx_set_error(CFX_EINVAL, "input %d is missing", i);
    const cfx_tensor *x0 = a->in[0];
    int ax = at->axis < 0 ? at->axis + x0->ndim : at->axis;
    if (ax < 0 || ax >= x0->ndim)
        return cfx_set_error(CFX_EINVAL, "axis %d is out of range for input %s", at->axis,
                             cfx__shape_fmt(x0, b, sizeof b));
    cfx__shape_copy(s, x0);
    for (int i = 1; i < a->nin; i++) {
        const cfx_tensor *t = a->in[i];
        bool ok = t->ndim == x0->ndim;
        for (int d = 0; ok && d < t->ndim; d++) ok = d == ax || t->shape[d] == x0->shape[d];
        if (!ok)
            return cfx_set_error(CFX_ESHAPE, "inputs %s and %s differ outside axis %d",
                                 cfx__shape_fmt(x0, b, sizeof b), cfx__shape_fmt(t, c, sizeof c),
                                 at->axis);
        s->shape[ax] += t->shape[ax];
    }
    return CFX_OK;
}

/* Each input is (outer, d_i * inner); the output row of every outer index holds them in turn. */
static void concat_run(const cfx__op_args *a, bool backward) {
    const cfx__concat_attr *at = a->attr;
    const cfx_tensor *x0 = a->in[0];
    int ax = at->axis < 0 ? at->axis + x0->ndim : at->axis;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= x0->shape[d];
    for (int d = ax + 1; d < x0->ndim; d++) inner *= x0->shape[d];
    /* Held in NHWC (concat_blocked_ok: 4-D, axis 1), the channels are the innermost axis. In
     * nChw16c (c16_in0, every channel count a multiple of 16) an image's blocks of each input
     * follow each other as its planes do in NCHW. */
    if (a->blocked_in0 && !a->c16_in0)
        outer = x0->shape[0] * x0->shape[2] * x0->shape[3], inner = 1;
    int64_t orow = a->out->shape[ax] * inner, col = 0;
    for (int i = 0; i < a->nin; i++) {
        int64_t w = a->in[i]->shape[ax] * inner;
        if (!backward) {
            for (int64_t o = 0; o < outer; o++)
                memcpy(a->out->data + o * orow + col, a->in[i]->data + o * w,
                       (size_t)w * sizeof(float));
        } else if (a->din[i]) {
            float *dx = a->din[i];
            for (int64_t o = 0; o < outer; o++)
                for (int64_t j = 0; j < w; j++) dx[o * w + j] += a->dout[o * orow + col + j];
        }
        col += w;
    }
}

// xs[i] (..., d_i, ...) -> y (..., sum d_i, ...)
static void concat_forward(const cfx__op_args *a) {
    concat_run(a, false);
}
static void concat_backward(const cfx__op_args *a) {
    concat_run(a, true);
}

/* cfx__op_def.blocked_ok: the channel concatenation of 4-D tensors (squeezenet's fire modules)
 * runs on NHWC inputs and output as well. */
static bool concat_blocked_ok(const cfx__op_args *a, bool in0, bool out) {
    const cfx__concat_attr *at = a->attr;
    int nd = a->in[0] ? a->in[0]->ndim : 0;
    return nd == 4 && (at->axis < 0 ? at->axis + nd : at->axis) == 1;
}

static const cfx__op_def concat_def = {"Concat",
                                       sizeof(cfx__concat_attr),
                                       concat_infer,
                                       NULL,
                                       NULL,
                                       concat_forward,
                                       concat_backward,
                                       .any_layout = true,
                                       .blocked_ok = concat_blocked_ok};

int cfx_op_concat(cfx_graph *g, const int *xs, int n, int axis) {
    if (n < 1 || n > CFX_OP_MAX_IN || !xs)
        return cfx__graph_fail(g, "Concat", "takes 1 to %d inputs, not %d", CFX_OP_MAX_IN, n);
    cfx__concat_attr at = {axis};
    return cfx__graph_add(g, &concat_def, xs, n, &at);
}

/* ------------------------------------------------------------------------ slice --- */

/* Per input axis: first index and step (the output's shape goes into s). ONNX clamps a start
 * to [0, d] (to [0, d-1] for a negative step) and an end to [0, d] ([-1, d-1] for a negative
 * step), after adding d to a negative value. */
static cfx_status slice_plan(const cfx__slice_attr *at, const cfx_tensor *x, int64_t *first,
                             int64_t *step, cfx__op_shape *s) {
    char b[96];
    bool seen[CFX_MAX_DIMS] = {false};
    for (int d = 0; d < x->ndim; d++) {
        first[d] = 0;
        step[d] = 1;
        s->shape[d] = x->shape[d];
    }
    s->ndim = x->ndim;
    for (int i = 0; i < at->naxes; i++) {
        int ax = at->axes[i] < 0 ? at->axes[i] + x->ndim : at->axes[i];
        if (ax < 0 || ax >= x->ndim || seen[ax])
            return cfx_set_error(CFX_EINVAL, "axis %d is out of range or repeated for input %s",
                                 at->axes[i], cfx__shape_fmt(x, b, sizeof b));
        seen[ax] = true;
        int64_t d = x->shape[ax], st = at->steps[i], lo = at->starts[i], hi = at->ends[i];
        if (st == 0) return cfx_set_error(CFX_EINVAL, "step of axis %d is 0", at->axes[i]);
        if (lo < 0) lo = lo < -d ? 0 : lo + d;
        if (hi < 0) hi = hi < -d ? (st > 0 ? 0 : -1) : hi + d;
        int64_t len;
        if (st > 0) {
            lo = CFX_MIN(lo, d);
            hi = CFX_MIN(hi, d);
            len = hi > lo ? (hi - lo + st - 1) / st : 0;
        } else {
            lo = CFX_MIN(lo, d - 1);
            hi = CFX_MIN(hi, d - 1);
            len = lo > hi ? (lo - hi + (-st) - 1) / (-st) : 0;
        }
        if (len == 0)
            return cfx_set_error(CFX_ESHAPE,
                                 "slice of axis %d (start %lld, end %lld, step %lld) of input %s "
                                 "is empty",
                                 at->axes[i], (long long)at->starts[i], (long long)at->ends[i],
                                 (long long)st, cfx__shape_fmt(x, b, sizeof b));
        first[ax] = lo;
        step[ax] = st;
        s->shape[ax] = len;
    }
    return CFX_OK;
}

static cfx_status slice_infer(const cfx__op_args *a, cfx__op_shape *s) {
    if (!a->in[0]) return cfx_set_error(CFX_EINVAL, "needs an input");
    int64_t first[CFX_MAX_DIMS], step[CFX_MAX_DIMS];
    return slice_plan(a->attr, a->in[0], first, step, s);
}

static void slice_run(const cfx__op_args *a, bool backward) {
    int64_t first[CFX_MAX_DIMS], step[CFX_MAX_DIMS], ist[CFX_MAX_DIMS], st[CFX_MAX_DIMS];
    cfx__op_shape s;
    slice_plan(a->attr, a->in[0], first, step, &s);
    strides_of(a->in[0], ist);
    int64_t base = 0;
    for (int d = 0; d < a->in[0]->ndim; d++) {
        base += first[d] * ist[d];
        st[d] = step[d] * ist[d];
    }
    if (backward)
        strided_walk(a->out->ndim, a->out->shape, base, st, a->din[0], (float *)a->dout, true);
    else
        strided_walk(a->out->ndim, a->out->shape, base, st, a->in[0]->data, a->out->data, false);
}

// x (d0..) -> y (len0..), y[o] = x[first + o step] per axis
static void slice_forward(const cfx__op_args *a) {
    slice_run(a, false);
}
static void slice_backward(const cfx__op_args *a) {
    slice_run(a, true);
}

static const cfx__op_def slice_def = {"Slice", sizeof(cfx__slice_attr), slice_infer,   NULL,
                                      NULL,    slice_forward,           slice_backward};

int cfx_op_slice(cfx_graph *g, int x, int naxes, const int *axes, const int64_t *starts,
                 const int64_t *ends, const int64_t *steps) {
    if (naxes < 0 || naxes > CFX_MAX_DIMS || (naxes > 0 && (!starts || !ends)))
        return cfx__graph_fail(g, "Slice", "needs 0 to %d axes with starts and ends, not %d",
                               CFX_MAX_DIMS, naxes);
    cfx__slice_attr at = {.naxes = naxes};
    for (int i = 0; i < naxes; i++) {
        at.axes[i] = axes ? axes[i] : i;
        at.starts[i] = starts[i];
        at.ends[i] = ends[i];
        at.steps[i] = steps ? steps[i] : 1;
    }
    return cfx__graph_add(g, &slice_def, &x, 1, &at);
}

/* -------------------------------------------------------------------------- pad --- */

static cfx_status pad_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__pad_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    char b[96];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    if (x->ndim == 0) return cfx_set_error(CFX_ESHAPE, "cannot pad a scalar");
    if (x->ndim != at->ndim)
        return cfx_set_error(CFX_ESHAPE, "pads are given for %d axes, input %s has %d", at->ndim,
                             cfx__shape_fmt(x, b, sizeof b), x->ndim);
    s->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        int64_t lo = at->pads[d], hi = at->pads[d + x->ndim], n = x->shape[d];
        s->shape[d] = n + lo + hi;
        if (s->shape[d] < 1)
            return cfx_set_error(CFX_ESHAPE, "pads %lld and %lld leave nothing of axis %d of %s",
                                 (long long)lo, (long long)hi, d, cfx__shape_fmt(x, b, sizeof b));
        /* Reflection mirrors about the end element, so it can add at most n - 1 per side. */
        if (at->mode == CFX_PAD_REFLECT && (lo > n - 1 || hi > n - 1))
            return cfx_set_error(CFX_EINVAL,
                                 "reflect pads %lld and %lld of axis %d must be below its size "
                                 "for input %s",
                                 (long long)lo, (long long)hi, d, cfx__shape_fmt(x, b, sizeof b));
    }
    return CFX_OK;
}

/* The input index of output coordinate o on an axis of size n with begin pad lo, or -1 when it
 * lies in a constant border. */
static int64_t pad_src(int64_t o, int64_t lo, int64_t n, cfx_pad_mode mode) {
    int64_t i = o - lo;
    if (i >= 0 && i < n) return i;
    if (mode == CFX_PAD_CONSTANT) return -1;
    if (mode == CFX_PAD_EDGE) return i < 0 ? 0 : n - 1;
    return i < 0 ? -i : 2 * (n - 1) - i; /* reflect */
}

/* Rows [lo, hi) of the output's last axis for pad_run: gather forward (X to Y), scatter-add
 * backward (G to DX). */
static void pad_rows(const cfx__op_args *a, const float *restrict X, const float *restrict G,
                     float *restrict Y, float *restrict DX, bool backward, int64_t lo, int64_t hi) {
    const cfx__pad_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    int nd = x->ndim;
    int64_t ist[CFX_MAX_DIMS];
    strides_of(x, ist);
    int64_t last = a->out->shape[nd - 1];
    int64_t nlast = x->shape[nd - 1], plo = at->pads[nd - 1];
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = 0, q = r;
        for (int d = nd - 2; d >= 0 && off >= 0; d--) {
            int64_t i = pad_src(q % a->out->shape[d], at->pads[d], x->shape[d], at->mode);
            q /= a->out->shape[d];
            off = i < 0 ? -1 : off + i * ist[d];
        }
        for (int64_t j = 0; j < last; j++) {
            int64_t i = off < 0 ? -1 : pad_src(j, plo, nlast, at->mode);
            if (backward) {
                if (i >= 0) DX[off + i] += G[r * last + j];
            } else {
                Y[r * last + j] = i >= 0 ? X[off + i] : at->value;
            }
        }
    }
}

/* Walks every output element with its input offset (or -1): gather forward, scatter backward.
 * Only the forward is split between threads (see the top of the file). */
static void pad_run(const cfx__op_args *a, bool backward) {
    int64_t rows = a->out->numel / a->out->shape[a->in[0]->ndim - 1];
    CFX_PARALLEL_RANGE(
        rows, !backward && a->out->numel > 32768,
        pad_rows(a, a->in[0]->data, a->dout, a->out->data, a->din[0], backward, lo, hi));
}

// x (d0..) -> y (d0 + begin0 + end0, ..)
static void pad_forward(const cfx__op_args *a) {
    pad_run(a, false);
}
static void pad_backward(const cfx__op_args *a) {
    pad_run(a, true);
}

static const cfx__op_def pad_def = {"Pad", sizeof(cfx__pad_attr), pad_infer,   NULL,
                                    NULL,  pad_forward,           pad_backward};

int cfx_op_pad(cfx_graph *g, int x, const int64_t *pads, cfx_pad_mode mode, float value) {
    if (mode != CFX_PAD_CONSTANT && mode != CFX_PAD_REFLECT && mode != CFX_PAD_EDGE)
        return cfx__graph_fail(g, "Pad", "unknown mode %d", (int)mode);
    int nd = rank_of(g, x);
    cfx__pad_attr at = {.ndim = nd < 0 ? 0 : nd, .mode = mode, .value = value};
    if (nd > 0 && !pads) return cfx__graph_fail(g, "Pad", "pads is NULL");
    for (int d = 0; d < 2 * at.ndim; d++) at.pads[d] = pads[d];
    return cfx__graph_add(g, &pad_def, &x, 1, &at);
}
