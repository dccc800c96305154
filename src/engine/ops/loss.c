/* loss.c - cosine similarity, LPIPS's normalisation, and the training losses: L1, MSE, L2 and
 * cross-entropy.
 *
 * Cosine similarity follows PyTorch 1.13 (Debian's python3-torch), which clamps each norm on
 * its own:  cos(a, b) = sum(a b) / (max(|a|, eps) max(|b|, eps)),  not max(|a| |b|, eps).
 * Its gradient here is the exact one of that formula: a clamped norm is a constant, so it
 * contributes nothing. (PyTorch 1.13 clamps in place under no_grad, so for a norm below eps
 * its autograd still differentiates the unclamped norm; values agree, gradients do not, in
 * that corner only.)
 *
 * The pairwise losses first reduce each sample (all axes but the first), then the batch.
 * Cross-entropy works from the row's log-sum-exp, computed after subtracting the row maximum
 * (see softmax in reduce.c); the maximum and the log of the shifted sum are saved for backward.
 * Hard targets are class indices stored as floats; since their values are only known at run time,
 * an index that is not an integer in [0, C) makes that sample's loss NaN (and its logits' gradient
 * NaN) rather than being clamped to a valid class, so a bad label shows up in the loss instead of
 * silently training on a wrong one. There is no ignore_index. */
#include "engine/graph.h"

#include <math.h>

static int64_t prod(const int64_t *s, int from, int to) {
    int64_t n = 1;
    for (int d = from; d < to; d++) n *= s[d];
    return n;
}

/* ------------------------------------------------------------ cosine similarity --- */

typedef struct {
    int axis;
    float eps;
} cos_attr;

static cfx_status cos_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const cos_attr *at = a->attr;
    const cfx_tensor *x = a->in[0], *y = a->in[1];
    char b[96], c[96];
    if (!x || !y) return cfx_set_error(CFX_EINVAL, "needs two inputs");
    if (!cfx_tensor_same_shape(x, y))
        return cfx_set_error(CFX_ESHAPE, "inputs %s and %s must have the same shape",
                             cfx__shape_fmt(x, b, sizeof b), cfx__shape_fmt(y, c, sizeof c));
    int ax = at->axis < 0 ? at->axis + x->ndim : at->axis;
    if (ax < 0 || ax >= x->ndim)
        return cfx_set_error(CFX_EINVAL, "axis %d is out of range for inputs %s", at->axis,
                             cfx__shape_fmt(x, b, sizeof b));
    s->ndim = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != ax) s->shape[s->ndim++] = x->shape[d];
    return CFX_OK;
}

/* The (outer, L, inner) view around the axis. */
static void cos_dims(const cfx__op_args *a, int64_t *outer, int64_t *len, int64_t *inner) {
    const cos_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    int ax = at->axis < 0 ? at->axis + x->ndim : at->axis;
    *outer = prod(x->shape, 0, ax);
    *len = x->shape[ax];
    *inner = prod(x->shape, ax + 1, x->ndim);
}

/* Dot product and both norms of one strided pair of vectors, in double. */
static void cos_sums(const float *x, const float *y, int64_t len, int64_t st, double *dot,
                     double *nx, double *ny) {
    double d = 0, sx = 0, sy = 0;
    for (int64_t l = 0; l < len; l++) {
        double u = x[l * st], v = y[l * st];
        d += u * v;
        sx += u * u;
        sy += v * v;
    }
    *dot = d, *nx = sqrt(sx), *ny = sqrt(sy);
}

/* Rows [lo, hi) of y (outer * inner): the cosine of each strided pair of vectors. */
static void cos_forward_rows(const float *restrict X, const float *restrict Y, float *restrict out,
                             int64_t len, int64_t inner, float eps, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = (r / inner) * len * inner + r % inner;
        double dot, nx, ny;
        cos_sums(X + off, Y + off, len, inner, &dot, &nx, &ny);
        out[r] = (float)(dot / (fmax(nx, eps) * fmax(ny, eps)));
    }
}

// a, b (outer, L, inner) -> y (outer, inner)
static void cos_forward(const cfx__op_args *a) {
    const cos_attr *at = a->attr;
    int64_t outer, len, inner;
    cos_dims(a, &outer, &len, &inner);
    int64_t rows = outer * inner;
    CFX_PARALLEL_RANGE(rows, rows * len > 32768,
                       cos_forward_rows(a->in[0]->data, a->in[1]->data, a->out->data, len, inner,
                                        at->eps, lo, hi));
}

/* Rows [lo, hi) of cos_backward. DA and DB are not restrict: they are one buffer when both
 * inputs are the same value (or views of it). */
static void cos_backward_rows(const float *restrict X, const float *restrict Y,
                              const float *restrict G, float *DA, float *DB, int64_t len,
                              int64_t inner, float eps, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = (r / inner) * len * inner + r % inner;
        const float *x = X + off, *y = Y + off;
        double dot, nx, ny;
        cos_sums(x, y, len, inner, &dot, &nx, &ny);
        double cx = fmax(nx, eps), cy = fmax(ny, eps), c = dot / (cx * cy);
        double g = G[r], k = g / (cx * cy);
        double kx = nx > eps ? g * c / (nx * cx) : 0, ky = ny > eps ? g * c / (ny * cy) : 0;
        for (int64_t l = 0; l < len; l++) {
            int64_t i = l * inner;
            if (DA) DA[off + i] += (float)(k * y[i] - kx * x[i]);
            if (DB) DB[off + i] += (float)(k * x[i] - ky * y[i]);
        }
    }
}

/* d cos / da = b / (ca cb) - cos a / (|a| ca) where ca = max(|a|, eps), the second term only
 * when |a| > eps; symmetric for b. */
static void cos_backward(const cfx__op_args *a) {
    const cos_attr *at = a->attr;
    int64_t outer, len, inner;
    cos_dims(a, &outer, &len, &inner);
    int64_t rows = outer * inner;
    CFX_PARALLEL_RANGE(rows, rows * len > 32768,
                       cos_backward_rows(a->in[0]->data, a->in[1]->data, a->dout, a->din[0],
                                         a->din[1], len, inner, at->eps, lo, hi));
}

static const cfx__op_def cos_def = {"CosineSimilarity", sizeof(cos_attr), cos_infer, NULL, NULL,
                                    cos_forward,        cos_backward};

int cfx_op_cosine_similarity(cfx_graph *g, int a, int b, int axis, float eps) {
    if (!(eps >= 0)) return cfx__graph_fail(g, "CosineSimilarity", "eps must be >= 0, not %g", eps);
    cos_attr at = {axis, eps > 0 ? eps : 1e-8f};
    return cfx__graph_add(g, &cos_def, (int[]){a, b}, 2, &at);
}

/* --------------------------------------------------------------------- normalize --- */

/* LPIPS's normalize_tensor along an axis: y = x / s with s = r + eps, r = |x| = sqrt(sum x^2).
 * Its gradient is dx = g / s - x (x . g) / (r s^2). The second term is taken as 0 where r = 0,
 * which is its limit (x x^T / r has norm r), so an all-zero vector (a position where every
 * channel of a ReLU is off) gets g / eps; the same formula built from Sqrt and Div gets
 * 0.5 / sqrt(0) * 0 = NaN there (so does PyTorch's autograd through torch.sqrt). */
typedef struct {
    int axis;
    float eps;
} normalize_attr;

static cfx_status normalize_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const normalize_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    char b[96];
    if (!x) return cfx_set_error(CFX_EINVAL, "needs an input");
    int ax = at->axis < 0 ? at->axis + x->ndim : at->axis;
    if (ax < 0 || ax >= x->ndim)
        return cfx_set_error(CFX_EINVAL, "axis %d is out of range for input %s", at->axis,
                             cfx__shape_fmt(x, b, sizeof b));
    cfx__shape_copy(s, x);
    return CFX_OK;
}

/* The (outer, L, inner) view around the axis (cos_dims's, for one input). */
static void normalize_dims(const cfx__op_args *a, int64_t *outer, int64_t *len, int64_t *inner) {
    const normalize_attr *at = a->attr;
    const cfx_tensor *x = a->in[0];
    int ax = at->axis < 0 ? at->axis + x->ndim : at->axis;
    *outer = prod(x->shape, 0, ax);
    *len = x->shape[ax];
    *inner = prod(x->shape, ax + 1, x->ndim);
}

/* Vectors [lo, hi) of outer * inner strided ones: y = x / (|x| + eps), the norm in double. */
static void normalize_forward_rows(const float *restrict X, float *restrict Y, int64_t len,
                                   int64_t inner, float eps, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = (r / inner) * len * inner + r % inner;
        double ss = 0;
        for (int64_t l = 0; l < len; l++) ss += (double)X[off + l * inner] * X[off + l * inner];
        double k = 1.0 / (sqrt(ss) + eps);
        for (int64_t l = 0; l < len; l++) Y[off + l * inner] = (float)(X[off + l * inner] * k);
    }
}

// x (outer, L, inner) -> y (outer, L, inner)
static void normalize_forward(const cfx__op_args *a) {
    const normalize_attr *at = a->attr;
    int64_t outer, len, inner;
    normalize_dims(a, &outer, &len, &inner);
    int64_t rows = outer * inner;
    CFX_PARALLEL_RANGE(
        rows, rows * len > 32768,
        normalize_forward_rows(a->in[0]->data, a->out->data, len, inner, at->eps, lo, hi));
}

static void normalize_backward_rows(const float *restrict X, const float *restrict G,
                                    float *restrict D, int64_t len, int64_t inner, float eps,
                                    int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int64_t off = (r / inner) * len * inner + r % inner;
        double ss = 0, xg = 0;
        for (int64_t l = 0; l < len; l++) {
            double x = X[off + l * inner];
            ss += x * x;
            xg += x * G[off + l * inner];
        }
        double n = sqrt(ss), s = n + eps;
        double k = 1.0 / s, kx = n > 0 ? xg / (n * s * s) : 0;
        for (int64_t l = 0; l < len; l++) {
            int64_t i = off + l * inner;
            D[i] += (float)(G[i] * k - X[i] * kx);
        }
    }
}

static void normalize_backward(const cfx__op_args *a) {
    const normalize_attr *at = a->attr;
    int64_t outer, len, inner;
    normalize_dims(a, &outer, &len, &inner);
    int64_t rows = outer * inner;
    CFX_PARALLEL_RANGE(
        rows, rows * len > 32768,
        normalize_backward_rows(a->in[0]->data, a->dout, a->din[0], len, inner, at->eps, lo, hi));
}

static const cfx__op_def normalize_def = {
    "Normalize", sizeof(normalize_attr), normalize_infer,   NULL,
    NULL,        normalize_forward,      normalize_backward};

int cfx_op_normalize(cfx_graph *g, int x, int axis, float eps) {
    if (!(eps >= 0)) return cfx__graph_fail(g, "Normalize", "eps must be >= 0, not %g", eps);
    normalize_attr at = {axis, eps > 0 ? eps : 1e-10f};
    return cfx__graph_add(g, &normalize_def, &x, 1, &at);
}

/* ------------------------------------------------------------ reduction helpers --- */

typedef struct {
    int kind;
    cfx_reduction reduction;
} loss_attr;

static cfx_status reduction_shape(cfx_reduction r, int64_t n, cfx__op_shape *s) {
    if (r == CFX_REDUCTION_NONE) {
        s->ndim = 1;
        s->shape[0] = n;
    } else {
        s->ndim = 0;
    }
    return CFX_OK;
}

/* Writes the reduced batch of per-sample losses l (n) into y. */
static void reduction_apply(cfx_reduction r, const float *l, int64_t n, float *y) {
    if (r == CFX_REDUCTION_NONE) {
        memcpy(y, l, (size_t)n * sizeof(float));
        return;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += l[i];
    y[0] = (float)(r == CFX_REDUCTION_MEAN ? s / (double)n : s);
}

/* The gradient reaching sample i's loss. */
static float reduction_grad(cfx_reduction r, const float *g, int64_t i, int64_t n) {
    if (r == CFX_REDUCTION_NONE) return g[i];
    return r == CFX_REDUCTION_MEAN ? g[0] / (float)n : g[0];
}

static bool valid_reduction(cfx_reduction r) {
    return r == CFX_REDUCTION_MEAN || r == CFX_REDUCTION_SUM || r == CFX_REDUCTION_NONE;
}

/* ------------------------------------------------------------ pairwise losses --- */

static cfx_status loss_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const loss_attr *at = a->attr;
    const cfx_tensor *x = a->in[0], *y = a->in[1];
    char b[96], c[96];
    if (!x || !y) return cfx_set_error(CFX_EINVAL, "needs two inputs");
    if (!cfx_tensor_same_shape(x, y) || x->ndim < 1)
        return cfx_set_error(CFX_ESHAPE, "inputs %s and %s must have the same shape (N,...)",
                             cfx__shape_fmt(x, b, sizeof b), cfx__shape_fmt(y, c, sizeof c));
    s->state_bytes = (size_t)x->shape[0] * sizeof(float); /* per-sample losses */
    return reduction_shape(at->reduction, x->shape[0], s);
}

/* Samples [lo, hi) of the per-sample losses l, each over its d elements. */
static void loss_forward_samples(const float *restrict X, const float *restrict Y,
                                 float *restrict l, int kind, int64_t d, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        const float *x = X + i * d, *y = Y + i * d;
        double s = 0;
        for (int64_t j = 0; j < d; j++) {
            double e = (double)x[j] - y[j];
            s += kind == CFX_LOSS_L1 ? fabs(e) : e * e;
        }
        l[i] = (float)(kind == CFX_LOSS_L2 ? sqrt(s) : s / (double)d);
    }
}

// a, b (N, D...) -> per-sample l (N) -> y (N) or ()
static void loss_forward(const cfx__op_args *a) {
    const loss_attr *at = a->attr;
    int64_t n = a->in[0]->shape[0], d = a->in[0]->numel / n;
    float *l = a->state;
    CFX_PARALLEL_RANGE(
        n, n * d > 32768,
        loss_forward_samples(a->in[0]->data, a->in[1]->data, l, at->kind, d, lo, hi));
    reduction_apply(at->reduction, l, n, a->out->data);
}

/* Samples [lo, hi) of loss_backward. DA and DB are not restrict: they are one buffer when both
 * inputs are the same value (or views of it). */
static void loss_backward_samples(const float *restrict X, const float *restrict Y,
                                  const float *restrict l, const float *restrict G, float *DA,
                                  float *DB, int kind, cfx_reduction reduction, int64_t n,
                                  int64_t d, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        const float *x = X + i * d, *y = Y + i * d;
        float gi = reduction_grad(reduction, G, i, n);
        for (int64_t j = 0; j < d; j++) {
            float e = x[j] - y[j], v;
            if (kind == CFX_LOSS_L1)
                v = gi * (float)((e > 0) - (e < 0)) / (float)d;
            else if (kind == CFX_LOSS_MSE)
                v = gi * 2.0f * e / (float)d;
            else
                v = l[i] > 0 ? gi * e / l[i] : 0.0f;
            if (DA) DA[i * d + j] += v;
            if (DB) DB[i * d + j] -= v;
        }
    }
}

/* dL1/da = sign(a-b)/D, dMSE/da = 2 (a-b)/D, dL2/da = (a-b)/L2 (0 where L2 = 0); b gets minus. */
static void loss_backward(const cfx__op_args *a) {
    const loss_attr *at = a->attr;
    int64_t n = a->in[0]->shape[0], d = a->in[0]->numel / n;
    CFX_PARALLEL_RANGE(n, n * d > 32768,
                       loss_backward_samples(a->in[0]->data, a->in[1]->data, a->state, a->dout,
                                             a->din[0], a->din[1], at->kind, at->reduction, n, d,
                                             lo, hi));
}

static const cfx__op_def loss_def = {"Loss", sizeof(loss_attr), loss_infer,   NULL,
                                     NULL,   loss_forward,      loss_backward};

int cfx_op_loss(cfx_graph *g, int a, int b, cfx_loss_kind kind, cfx_reduction reduction) {
    if (kind != CFX_LOSS_L1 && kind != CFX_LOSS_MSE && kind != CFX_LOSS_L2)
        return cfx__graph_fail(g, "Loss", "unknown loss kind %d", (int)kind);
    if (!valid_reduction(reduction))
        return cfx__graph_fail(g, "Loss", "unknown reduction %d", (int)reduction);
    loss_attr at = {kind, reduction};
    return cfx__graph_add(g, &loss_def, (int[]){a, b}, 2, &at);
}

/* -------------------------------------------------------------- cross-entropy --- */

static cfx_status ce_infer(const cfx__op_args *a, cfx__op_shape *s) {
    const loss_attr *at = a->attr;
    const cfx_tensor *z = a->in[0], *t = a->in[1];
    char b[96], c[96];
    if (!z || !t) return cfx_set_error(CFX_EINVAL, "needs logits and targets");
    if (z->ndim != 2)
        return cfx_set_error(CFX_ESHAPE, "logits %s must be (N,C)", cfx__shape_fmt(z, b, sizeof b));
    bool hard = t->ndim == 1 && t->shape[0] == z->shape[0];
    if (!hard && !cfx_tensor_same_shape(z, t))
        return cfx_set_error(CFX_ESHAPE,
                             "targets %s must be class indices (N) or probabilities (N,C) for "
                             "logits %s",
                             cfx__shape_fmt(t, b, sizeof b), cfx__shape_fmt(z, c, sizeof c));
    /* per row: maximum, log of the shifted sum of exponentials, loss */
    s->state_bytes = (size_t)z->shape[0] * 3 * sizeof(float);
    return reduction_shape(at->reduction, z->shape[0], s);
}

/* The class of a hard target, or -1 when it is not an integer in [0, c). */
static int64_t ce_class(float t, int64_t c) {
    if (!(t >= 0 && t < (float)c) || t != floorf(t)) return -1;
    return (int64_t)t;
}

/* Rows [lo, hi) of ce_forward: each row's maximum mx, log of the shifted sum ls and loss l. */
static void ce_forward_rows(const float *restrict Z, const float *restrict T, float *restrict mx,
                            float *restrict ls, float *restrict l, bool hard, int64_t c, int64_t lo,
                            int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        const float *z = Z + i * c;
        float m = z[0];
        for (int64_t k = 1; k < c; k++) m = z[k] > m ? z[k] : m;
        double s = 0;
        for (int64_t k = 0; k < c; k++) s += exp((double)z[k] - m);
        /* log_softmax(z)_k = (z_k - m) - log s, exact in z_k - m (see softmax in reduce.c). */
        mx[i] = m;
        ls[i] = (float)log(s);
        if (hard) {
            int64_t k = ce_class(T[i], c);
            l[i] = k < 0 ? NAN : ls[i] - (z[k] - m);
        } else {
            const float *t = T + i * c;
            double acc = 0;
            for (int64_t k = 0; k < c; k++) acc -= (double)t[k] * ((z[k] - m) - ls[i]);
            l[i] = (float)acc;
        }
    }
}

// logits (N,C), targets (N) or (N,C) -> y (N) or ()
static void ce_forward(const cfx__op_args *a) {
    const loss_attr *at = a->attr;
    const cfx_tensor *zt = a->in[0], *tt = a->in[1];
    int64_t n = zt->shape[0], c = zt->shape[1];
    bool hard = tt->ndim == 1;
    float *mx = a->state, *ls = mx + n, *l = ls + n;
    CFX_PARALLEL_RANGE(n, n * c > 32768,
                       ce_forward_rows(zt->data, tt->data, mx, ls, l, hard, c, lo, hi));
    reduction_apply(at->reduction, l, n, a->out->data);
}

/* Rows [lo, hi) of ce_backward. DZ and DT are not restrict: they are one buffer when logits
 * and targets are the same value (or views of it). */
static void ce_backward_rows(const float *restrict Z, const float *restrict T,
                             const float *restrict mx, const float *restrict ls,
                             const float *restrict G, float *DZ, float *DT, bool hard,
                             cfx_reduction reduction, int64_t n, int64_t c, int64_t lo,
                             int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        const float *z = Z + i * c;
        float gi = reduction_grad(reduction, G, i, n);
        if (hard) {
            int64_t cls = ce_class(T[i], c);
            if (!DZ) continue;
            for (int64_t k = 0; k < c; k++)
                DZ[i * c + k] += cls < 0 ? NAN : gi * (expf((z[k] - mx[i]) - ls[i]) - (k == cls));
            continue;
        }
        const float *t = T + i * c;
        double ts = 0;
        for (int64_t k = 0; k < c; k++) ts += t[k];
        for (int64_t k = 0; k < c; k++) {
            float lp = (z[k] - mx[i]) - ls[i];
            if (DZ) DZ[i * c + k] += gi * (expf(lp) * (float)ts - t[k]);
            if (DT) DT[i * c + k] -= gi * lp;
        }
    }
}

/* Hard: dz = g (softmax(z) - onehot(t)). Soft: dz = g (softmax(z) sum(t) - t) and
 * dt = -g log_softmax(z). Hard targets get no gradient (indices are piecewise constant). */
static void ce_backward(const cfx__op_args *a) {
    const loss_attr *at = a->attr;
    const cfx_tensor *zt = a->in[0], *tt = a->in[1];
    int64_t n = zt->shape[0], c = zt->shape[1];
    bool hard = tt->ndim == 1;
    const float *mx = a->state, *ls = mx + n;
    float *DZ = a->din[0], *DT = hard ? NULL : a->din[1];
    CFX_PARALLEL_RANGE(n, n * c > 32768,
                       ce_backward_rows(zt->data, tt->data, mx, ls, a->dout, DZ, DT, hard,
                                        at->reduction, n, c, lo, hi));
}

static const cfx__op_def ce_def = {"CrossEntropy", sizeof(loss_attr), ce_infer,   NULL,
                                   NULL,           ce_forward,        ce_backward};

int cfx_op_cross_entropy(cfx_graph *g, int logits, int target, cfx_reduction reduction) {
    if (!valid_reduction(reduction))
        return cfx__graph_fail(g, "CrossEntropy", "unknown reduction %d", (int)reduction);
    loss_attr at = {0, reduction};
    return cfx__graph_add(g, &ce_def, (int[]){logits, target}, 2, &at);
}
