/* reduce.c - reductions (sum, mean, max over any set of axes), argmax, softmax, log-softmax.
 *
 * A reduction sees its input as pairs (kept coordinates, reduced coordinates): each output
 * element walks its reduced sub-block with a counter over the reduced dimensions, so any axis
 * set works without moving data, and every input element belongs to exactly one output, which
 * lets both passes run in parallel over outputs without atomics. Sums accumulate in double.
 * Max records the offset of the first maximal element (the walk visits offsets in increasing
 * order) so that backward sends the whole gradient there, as PyTorch's max(dim) does.
 * Softmax-like ops view the input as (outer, L, inner) around their axis. */
#include "engine/ops/ops.h"

#include <math.h>

/* ------------------------------------------------------------------- reductions --- */

/* The walk of one reduction: kept dimensions (sizes and input strides) and reduced ones. */
typedef struct {
    int nk, nr;
    int64_t ks[CFX_MAX_DIMS], kst[CFX_MAX_DIMS];
    int64_t rs[CFX_MAX_DIMS], rst[CFX_MAX_DIMS];
    int64_t count; /* elements per output */
} red_plan;

/* Marks the reduced axes of an ndim-tensor in red[]; fails on a bad or repeated axis. */
static cfx_status reduce_axes(const cfx__reduce_attr *at, const cfx_tensor *x, bool *red) {
    char b[96];
    for (int d = 0; d < x->ndim; d++) red[d] = at->naxes == 0;
    for (int i = 0; i < at->naxes; i++) {
        int ax = at->axes[i] < 0 ? at->axes[i] + x->ndim : at->axes[i];
        if (ax < 0 || ax >= x->ndim)
            return cfx_set_error(CFX_EINVAL, "axis %d is out of range for input %s", at->axes[i],
                                 cfx__shape_fmt(x, b, sizeof b));
        if (red[ax])
            return cfx_set_error(CFX_EINVAL, "axis %d is repeated for input %s", at->axes[i],
                                 cfx__shape_fmt(x, b, sizeof b));
        red[ax] = true;
    }
    return CFX_OK;
}

static void red_make(const cfx__reduce_attr *at, const cfx_tensor *x, red_plan *p) {
    bool red[CFX_MAX_DIMS];
    cfx_status st = reduce_axes(at, x, red);
    CFX_ASSERT(st == CFX_OK);
    int64_t stride = 1;
    int64_t st_all[CFX_MAX_DIMS];
    for (int d = x->ndim - 1; d >= 0; d--) {
        st_all[d] = stride;
        stride *= x->shape[d];
    }
    p->nk = p->nr = 0;
    p->count = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (red[d]) {
            p->rs[p->nr] = x->shape[d];
            p->rst[p->nr++] = st_all[d];
            p->count *= x->shape[d];
        } else {
            p->ks[p->nk] = x->shape[d];
            p->kst[p->nk++] = st_all[d];
        }
    }
}

/* Input offset of output element o (the kept coordinates, row-major). */
static int64_t red_base(const red_plan *p, int64_t o) {
    int64_t off = 0;
    for (int i = p->nk - 1; i >= 0; i--) {
        off += (o % p->ks[i]) * p->kst[i];
        o /= p->ks[i];
    }
    return off;
}

/* Steps the reduced-coordinate counter idx and the offset off to the next element. */
static inline void red_next(const red_plan *p, int64_t *idx, int64_t *off) {
    for (int d = p->nr - 1; d >= 0; d--) {
        *off += p->rst[d];
        if (++idx[d] < p->rs[d]) return;
        *off -= p->rst[d] * p->rs[d];
        idx[d] = 0;
    }
}

static cfx_status reduce_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__reduce_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    bool red[CFX_MAX_DIMS];
    CFX_TRY(reduce_axes(at, x, red));
    s->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!red[d])
            s->shape[s->ndim++] = x->shape[d];
        else if (at->keepdims)
            s->shape[s->ndim++] = 1;
    }
    /* Max keeps the offset of each output's maximum for backward. */
    if (at->kind == CFX_REDUCE_MAX) {
        int64_t n = 1;
        for (int d = 0; d < s->ndim; d++) n *= s->shape[d];
        s->state_bytes = (size_t)n * sizeof(int64_t);
    }
    return CFX_OK;
}

/* Outputs [lo, hi) of reduce_forward, each from its own reduced sub-block. */
static void reduce_forward_outputs(const float *restrict X, float *restrict Y,
                                   int64_t *restrict arg, const red_plan *plan,
                                   cfx_reduce_kind kind, int64_t lo, int64_t hi) {
    /* A private copy, so that the stores through Y and arg cannot alias the plan's fields. */
    const red_plan p = *plan;
    for (int64_t o = lo; o < hi; o++) {
        int64_t idx[CFX_MAX_DIMS] = {0}, off = red_base(&p, o);
        if (kind == CFX_REDUCE_MAX) {
            /* Strictly greater keeps the first maximum; a NaN never wins a comparison. */
            int64_t best = off;
            for (int64_t r = 0; r < p.count; r++, red_next(&p, idx, &off))
                if (X[off] > X[best]) best = off;
            arg[o] = best;
            Y[o] = X[best];
        } else {
            double sum = 0;
            for (int64_t r = 0; r < p.count; r++, red_next(&p, idx, &off)) sum += X[off];
            Y[o] = (float)(kind == CFX_REDUCE_MEAN ? sum / (double)p.count : sum);
        }
    }
}

// x (any) -> y (x without, or with 1 at, the reduced axes)
static void reduce_forward(const cfx__op_args *a) {
    const cfx__reduce_attr *at = a->attr;
    red_plan p;
    red_make(at, a->in[0], &p);
    int64_t n = a->out->numel;
    CFX_PARALLEL_RANGE(
        n, n * p.count > 32768,
        reduce_forward_outputs(a->in[0]->data, a->out->data, a->state, &p, at->kind, lo, hi));
}

/* Outputs [lo, hi) of a sum or mean's backward: each spreads g scale over its sub-block. */
static void reduce_backward_outputs(const float *restrict G, float *restrict DX,
                                    const red_plan *plan, float scale, int64_t lo, int64_t hi) {
    const red_plan p = *plan; /* a private copy, as in reduce_forward_outputs */
    for (int64_t o = lo; o < hi; o++) {
        int64_t idx[CFX_MAX_DIMS] = {0}, off = red_base(&p, o);
        float gv = G[o] * scale;
        for (int64_t r = 0; r < p.count; r++, red_next(&p, idx, &off)) DX[off] += gv;
    }
}

static void reduce_backward(const cfx__op_args *a) {
    const cfx__reduce_attr *at = a->attr;
    const float *G = a->dout;
    const int64_t *arg = a->state;
    float *DX = a->din[0];
    red_plan p;
    red_make(at, a->in[0], &p);
    int64_t n = a->out->numel;
    if (at->kind == CFX_REDUCE_MAX) {
        for (int64_t o = 0; o < n; o++) DX[arg[o]] += G[o];
        return;
    }
    float scale = at->kind == CFX_REDUCE_MEAN ? 1.0f / (float)p.count : 1.0f;
    CFX_PARALLEL_RANGE(n, n * p.count > 32768, reduce_backward_outputs(G, DX, &p, scale, lo, hi));
}

static const cfx__op_def reduce_sum_def = {
    "ReduceSum", sizeof(cfx__reduce_attr), reduce_infer,   NULL,
    NULL,        reduce_forward,           reduce_backward};
static const cfx__op_def reduce_mean_def = {
    "ReduceMean", sizeof(cfx__reduce_attr), reduce_infer,   NULL,
    NULL,         reduce_forward,           reduce_backward};
static const cfx__op_def reduce_max_def = {
    "ReduceMax", sizeof(cfx__reduce_attr), reduce_infer,   NULL,
    NULL,        reduce_forward,           reduce_backward};

int cfx_op_reduce(cfx_graph *g, int x, cfx_reduce_kind kind, const int *axes, int naxes,
                  int keepdims) {
    if (naxes < 0 || naxes > CFX_MAX_DIMS || (naxes > 0 && !axes))
        return cfx__graph_fail(g, "Reduce", "naxes must be 0..%d with axes given, not %d",
                               CFX_MAX_DIMS, naxes);
    const cfx__op_def *def = kind == CFX_REDUCE_SUM    ? &reduce_sum_def
                             : kind == CFX_REDUCE_MEAN ? &reduce_mean_def
                             : kind == CFX_REDUCE_MAX  ? &reduce_max_def
                                                       : NULL;
    if (!def) return cfx__graph_fail(g, "Reduce", "unknown reduction kind %d", (int)kind);
    cfx__reduce_attr at = {.kind = kind, .naxes = naxes, .keepdims = keepdims != 0};
    for (int i = 0; i < naxes; i++) at.axes[i] = axes[i];
    return cfx__graph_add(g, def, &x, 1, &at);
}

/* ------------------------------------------------------------- axis-wise ops --- */

/* outer * L * inner around a (possibly negative) axis. */
static cfx_status axis_split(const cfx_tensor *x, int axis, int *ax, int64_t *outer, int64_t *len,
                             int64_t *inner) {
    char b[96];
    int d = axis < 0 ? axis + x->ndim : axis;
    if (d < 0 || d >= x->ndim)
        return cfx_set_error(CFX_EINVAL, "axis %d is out of range for input %s", axis,
                             cfx__shape_fmt(x, b, sizeof b));
    *ax = d;
    *outer = *inner = 1;
    for (int i = 0; i < d; i++) *outer *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *len = x->shape[d];
    return CFX_OK;
}

static cfx_status argmax_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__axis_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    int ax = 0;
    int64_t o = 1, l = 1, in = 1;
    CFX_TRY(axis_split(x, at->axis, &ax, &o, &l, &in));
    s->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != ax)
            s->shape[s->ndim++] = x->shape[d];
        else if (at->keepdims)
            s->shape[s->ndim++] = 1;
    }
    return CFX_OK;
}

// x (outer,L,inner) -> y (outer,inner) indices as floats; no backward
static void argmax_forward(const cfx__op_args *a) {
    const cfx__axis_attr *at = a->attr;
    const float *X = a->in[0]->data;
    int ax = 0;
    int64_t outer = 1, len = 1, inner = 1;
    axis_split(a->in[0], at->axis, &ax, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *x = X + o * len * inner + i;
            int64_t best = 0;
            for (int64_t l = 1; l < len; l++)
                if (x[l * inner] > x[best * inner]) best = l;
            a->out->data[o * inner + i] = (float)best;
        }
}

static const cfx__op_def argmax_def = {"ArgMax", sizeof(cfx__axis_attr), argmax_infer, NULL,
                                       NULL,     argmax_forward,         NULL};

int cfx_op_argmax(cfx_graph *g, int x, int axis, int keepdims) {
    cfx__axis_attr at = {axis, keepdims != 0};
    return cfx__graph_add(g, &argmax_def, &x, 1, &at);
}

static cfx_status softmax_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cfx__axis_attr *at = a->attr;
    if (!a->in[0]) return cfx_set_error(CFX_EINVAL, "needs an input");
    int ax = 0;
    int64_t o = 1, l = 1, in = 1;
    CFX_TRY(axis_split(a->in[0], at->axis, &ax, &o, &l, &in));
    cfx__shape_copy(s, a->in[0]);
    return CFX_OK;
}

/* Softmax of one strided row. exp(x) overflows float for x > 88, and a row of very negative
 * logits would underflow to 0/0, so the row's maximum m is subtracted first: softmax is
 * unchanged (the factor exp(-m) cancels), every exponent is <= 0, and the largest term is
 * exactly 1, so the sum lies in [1, L] and its log is safe. Log-softmax is then (x - m) - log s,
 * which stays accurate for probabilities far below float's smallest normal. */
static void softmax_row(const float *x, float *y, int64_t len, int64_t st, bool log_out) {
    float m = x[0];
    for (int64_t l = 1; l < len; l++) m = x[l * st] > m ? x[l * st] : m;
    double sum = 0;
    for (int64_t l = 0; l < len; l++) sum += exp((double)x[l * st] - m);
    if (log_out) {
        /* (x - m) is exact for x near m; adding m + log s first would round at m's scale. */
        float ls = (float)log(sum);
        for (int64_t l = 0; l < len; l++) y[l * st] = (x[l * st] - m) - ls;
    } else {
        for (int64_t l = 0; l < len; l++) y[l * st] = (float)(exp((double)x[l * st] - m) / sum);
    }
}

/* Rows [lo, hi) of softmax_fwd. */
static void softmax_forward_rows(const float *restrict X, float *restrict Y, int64_t len,
                                 int64_t inner, bool log_out, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = (r / inner) * len * inner + r % inner;
        softmax_row(X + off, Y + off, len, inner, log_out);
    }
}

// x (outer,L,inner) -> y (outer,L,inner), softmax or log-softmax along L
static void softmax_fwd(const cfx__op_args *a, bool log_out) {
    const cfx__axis_attr *at = a->attr;
    int ax = 0;
    int64_t outer = 1, len = 1, inner = 1;
    axis_split(a->in[0], at->axis, &ax, &outer, &len, &inner);
    int64_t rows = outer * inner;
    CFX_PARALLEL_RANGE(
        rows, rows * len > 32768,
        softmax_forward_rows(a->in[0]->data, a->out->data, len, inner, log_out, lo, hi));
}

/* Rows [lo, hi) of softmax_bwd. */
static void softmax_backward_rows(const float *restrict Y, const float *restrict G,
                                  float *restrict DX, int64_t len, int64_t inner, bool log_out,
                                  int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = (r / inner) * len * inner + r % inner;
        const float *y = Y + off, *g = G + off;
        float *dx = DX + off;
        double dot = 0;
        for (int64_t l = 0; l < len; l++)
            dot += log_out ? g[l * inner] : g[l * inner] * y[l * inner];
        for (int64_t l = 0; l < len; l++) {
            int64_t i = l * inner;
            dx[i] += log_out ? g[i] - expf(y[i]) * (float)dot : y[i] * (g[i] - (float)dot);
        }
    }
}

/* With y = softmax(x): dx = y (g - sum(g y)). With y = log_softmax(x): dx = g - exp(y) sum(g). */
static void softmax_bwd(const cfx__op_args *a, bool log_out) {
    const cfx__axis_attr *at = a->attr;
    int ax = 0;
    int64_t outer = 1, len = 1, inner = 1;
    axis_split(a->in[0], at->axis, &ax, &outer, &len, &inner);
    int64_t rows = outer * inner;
    CFX_PARALLEL_RANGE(
        rows, rows * len > 32768,
        softmax_backward_rows(a->out->data, a->dout, a->din[0], len, inner, log_out, lo, hi));
}

static void softmax_forward(const cfx__op_args *a) {
    softmax_fwd(a, false);
}
static void softmax_backward(const cfx__op_args *a) {
    softmax_bwd(a, false);
}
static void log_softmax_forward(const cfx__op_args *a) {
    softmax_fwd(a, true);
}
static void log_softmax_backward(const cfx__op_args *a) {
    softmax_bwd(a, true);
}

/* Over axis 0 each image's result depends on the others. */
static bool softmax_couples_batch(const cfx__op_args *a) {
    const cfx__axis_attr *at = a->attr;
    return at->axis == 0 || at->axis == -a->in[0]->ndim;
}

static const cfx__op_def softmax_def = {
    "Softmax", sizeof(cfx__axis_attr), softmax_infer,    NULL,
    NULL,      softmax_forward,        softmax_backward, .couples_batch = softmax_couples_batch};
static const cfx__op_def log_softmax_def = {"LogSoftmax",
                                            sizeof(cfx__axis_attr),
                                            softmax_infer,
                                            NULL,
                                            NULL,
                                            log_softmax_forward,
                                            log_softmax_backward,
                                            .couples_batch = softmax_couples_batch};

int cfx_op_softmax(cfx_graph *g, int x, int axis) {
    cfx__axis_attr at = {axis, 0};
    return cfx__graph_add(g, &softmax_def, &x, 1, &at);
}

int cfx_op_log_softmax(cfx_graph *g, int x, int axis) {
    cfx__axis_attr at = {axis, 0};
    return cfx__graph_add(g, &log_softmax_def, &x, 1, &at);
}
