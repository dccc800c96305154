/* norm.c - batch and instance normalisation (any rank >= 2) and inverted dropout, forward
 * and backward.
 *
 * Batch norm views x as (N, C, S) with S the product of the spatial dimensions and works per
 * channel over its m = N*S values. Inference normalises with the running statistics (constants
 * then, so x's gradient is just g scale invstd). Training normalises with the batch mean and
 * the biased variance (two passes in double, no E[x^2]-E[x]^2 cancellation), updates the
 * running statistics as PyTorch does (running = (1 - momentum) running + momentum batch, with
 * the UNBIASED variance m/(m-1) var), and differentiates through the batch statistics:
 *     dx = scale invstd / m (m g - sum g - xhat sum(g xhat)),   xhat = (x - mean) invstd.
 * The mean and invstd a forward used are saved in the node's state for its backward. With one
 * value per channel PyTorch refuses to train; here the running variance then takes the biased
 * variance (0) instead of dividing by zero.
 *
 * Instance norm (ONNX InstanceNormalization, PyTorch's instance_norm) is batch norm's training
 * formula per image: each (image, channel) plane is normalised with its own mean and biased
 * variance over its S values, always (no running statistics, no mode), and then scaled and
 * shifted per channel. It mixes no images, so a trainer may still split batches.
 *
 * Dropout draws one uniform number per element from the graph's seeded stream (in element
 * order, so a seed fixes the mask), keeps an element when u >= p and scales kept ones by
 * 1/(1-p), so the expected output equals the input; the mask is saved for backward. Outside
 * training mode it is the identity. */
#include "engine/ops/ops.h"

#include <math.h>

/* ------------------------------------------------------------------- batch norm --- */

/* The checks both norms share: inputs x then n - 1 per-channel vectors named names[1..], all
 * present, x of at least min_rank dimensions (what_rank says why); the output is x's shape. */
static cfx_status norm_check(const cfx__op_args *a, cfx__op_shape *s, int n,
                             const char *const *names, const char *needs, int min_rank,
                             const char *what_rank) {
    const cfx_tensor *x = a->in[0];
    char b[96], c[96];
    for (int i = 0; i < n; i++)
        if (!a->in[i]) return cfx_set_error(CFX_EINVAL, "needs %s", needs);
    if (x->ndim < min_rank)
        return cfx_set_error(CFX_ESHAPE, "x %s must be (N,C,...) with %s",
                             cfx__shape_fmt(x, b, sizeof b), what_rank);
    for (int i = 1; i < n; i++) {
        const cfx_tensor *t = a->in[i];
        if (t->ndim != 1 || t->shape[0] != x->shape[1])
            return cfx_set_error(CFX_ESHAPE, "%s %s must be (%lld) for x %s", names[i],
                                 cfx__shape_fmt(t, b, sizeof b), (long long)x->shape[1],
                                 cfx__shape_fmt(x, c, sizeof c));
    }
    cfx__shape_copy(s, x);
    return CFX_OK;
}

static cfx_status bn_infer(const cfx__op_args *a, cfx__op_shape *s) {
    static const char *const names[5] = {"x", "scale", "bias", "mean", "var"};
    CFX_TRY(
        norm_check(a, s, 5, names, "x, scale, bias, mean and var", 2, "at least two dimensions"));
    /* mean, invstd, and whether that forward used batch statistics */
    s->state_bytes = (2 * (size_t)a->in[0]->shape[1] + 1) * sizeof(float);
    return CFX_OK;
}

static void bn_dims(const cfx_tensor *x, int64_t *n, int64_t *c, int64_t *sp) {
    *n = x->shape[0];
    *c = x->shape[1];
    *sp = 1;
    for (int d = 2; d < x->ndim; d++) *sp *= x->shape[d];
}

/* Channels [lo, hi) of bn_forward. Only the node's own output and state are restrict: the
 * running statistics are inputs written in place, and a graph may pass one value as several
 * inputs. */
static void bn_forward_channels(const float *X, const float *gam, const float *bet, float *rmean,
                                float *rvar, float *restrict Y, float *restrict mean,
                                float *restrict invstd, const cfx__bn_attr *attr, bool training,
                                int64_t n, int64_t c, int64_t sp, int64_t lo, int64_t hi) {
    const cfx__bn_attr at = *attr;
    double m = (double)(n * sp);
    for (int64_t ch = lo; ch < hi; ch++) {
        if (training) {
            double sum = 0, sq = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < sp; j++) sum += X[(i * c + ch) * sp + j];
            double mu = sum / m;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < sp; j++) {
                    double d = X[(i * c + ch) * sp + j] - mu;
                    sq += d * d;
                }
            double var = sq / m;
            mean[ch] = (float)mu;
            invstd[ch] = (float)(1.0 / sqrt(var + at.eps));
            double unbiased = m > 1 ? sq / (m - 1) : var;
            rmean[ch] = (float)((1.0 - at.momentum) * rmean[ch] + at.momentum * mu);
            rvar[ch] = (float)((1.0 - at.momentum) * rvar[ch] + at.momentum * unbiased);
        } else {
            mean[ch] = rmean[ch];
            invstd[ch] = (float)(1.0 / sqrt((double)rvar[ch] + at.eps));
        }
        float k = gam[ch] * invstd[ch], b = bet[ch] - mean[ch] * k;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++) {
                int64_t o = (i * c + ch) * sp + j;
                Y[o] = X[o] * k + b;
            }
    }
}

// x (N,C,...), scale/bias/mean/var (C) -> y (N,C,...); state: mean (C), invstd (C), mode
static void bn_forward(const cfx__op_args *a) {
    float *mean = a->state, *invstd = mean + a->in[1]->numel;
    int64_t n, c, sp;
    bn_dims(a->in[0], &n, &c, &sp);
    bool training = a->training;
    mean[2 * c] = training ? 1.0f : 0.0f;
    CFX_PARALLEL_RANGE(c, n * c * sp > 32768,
                       bn_forward_channels(a->in[0]->data, a->in[1]->data, a->in[2]->data,
                                           a->in[3]->data, a->in[4]->data, a->out->data, mean,
                                           invstd, a->attr, training, n, c, sp, lo, hi));
}

/* Channels [lo, hi) of bn_backward. The gradients are not restrict: a graph may pass one
 * value as several inputs (scale and bias, say), which then share one gradient buffer. */
static void bn_backward_channels(const float *restrict X, const float *restrict gam,
                                 const float *restrict G, const float *restrict mean,
                                 const float *restrict invstd, float *DX, float *DG, float *DB,
                                 bool training, bool sums, int64_t n, int64_t c, int64_t sp,
                                 int64_t lo, int64_t hi) {
    double m = (double)(n * sp);
    for (int64_t ch = lo; ch < hi; ch++) {
        double sg = 0, sgx = 0; /* sum g, sum g xhat */
        float mu = mean[ch], is = invstd[ch];
        for (int64_t i = 0; sums && i < n; i++)
            for (int64_t j = 0; j < sp; j++) {
                int64_t o = (i * c + ch) * sp + j;
                sg += G[o];
                sgx += (double)G[o] * (X[o] - mu) * is;
            }
        if (DG) DG[ch] += (float)sgx;
        if (DB) DB[ch] += (float)sg;
        if (!DX) continue;
        float k = gam[ch] * is;
        float mg = (float)(sg / m), mgx = (float)(sgx / m);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < sp; j++) {
                int64_t o = (i * c + ch) * sp + j;
                if (training)
                    DX[o] += k * (G[o] - mg - (X[o] - mu) * is * mgx);
                else
                    DX[o] += k * G[o];
            }
    }
}

static void bn_backward(const cfx__op_args *a) {
    const float *mean = a->state, *invstd = mean + a->in[1]->numel;
    int64_t n, c, sp;
    bn_dims(a->in[0], &n, &c, &sp);
    bool training = mean[2 * c] != 0.0f;
    /* The sums are needed for the parameters' gradients and for dx in training mode; an
     * inference-mode backward to the input alone (counterfactual search) skips them. */
    bool sums = training || a->din[1] || a->din[2];
    CFX_PARALLEL_RANGE(c, n * c * sp > 32768,
                       bn_backward_channels(a->in[0]->data, a->in[1]->data, a->dout, mean, invstd,
                                            a->din[0], a->din[1], a->din[2], training, sums, n, c,
                                            sp, lo, hi));
}

/* Training normalises with the batch's statistics; inference needs no lanes. */
static bool bn_couples_batch(const cfx__op_args *a) {
    (void)a;
    return true;
}

static const cfx__op_def bn_def = {"BatchNormalization",
                                   sizeof(cfx__bn_attr),
                                   bn_infer,
                                   NULL,
                                   NULL,
                                   bn_forward,
                                   bn_backward,
                                   .couples_batch = bn_couples_batch};

int cfx_op_batch_norm(cfx_graph *g, int x, int scale, int bias, int mean, int var,
                      const cfx_batch_norm_attr *attr) {
    cfx__bn_attr at = {1e-5f, 0.1f};
    if (attr) {
        if (attr->eps != 0) at.eps = attr->eps;
        if (attr->momentum != 0) at.momentum = attr->momentum;
    }
    if (!(at.eps > 0))
        return cfx__graph_fail(g, "BatchNormalization", "eps must be positive, not %g", at.eps);
    if (!(at.momentum > 0 && at.momentum <= 1))
        return cfx__graph_fail(g, "BatchNormalization", "momentum must be in (0, 1], not %g",
                               at.momentum);
    return cfx__graph_add(g, &bn_def, (int[]){x, scale, bias, mean, var}, 5, &at);
}

/* --------------------------------------------------------------- instance norm --- */

static cfx_status in_infer(const cfx__op_args *a, cfx__op_shape *s) {
    static const char *const names[3] = {"x", "scale", "bias"};
    CFX_TRY(norm_check(a, s, 3, names, "x, scale and bias", 3, "spatial dimensions"));
    const cfx_tensor *x = a->in[0];
    s->state_bytes = 2 * (size_t)(x->shape[0] * x->shape[1]) * sizeof(float); /* mean, invstd */
    return CFX_OK;
}

/* Planes [lo, hi) (plane p = image p / c, channel p % c) of in_forward. */
static void in_forward_planes(const float *restrict X, const float *restrict gam,
                              const float *restrict bet, float *restrict Y, float *restrict mean,
                              float *restrict invstd, float eps, int64_t c, int64_t sp, int64_t lo,
                              int64_t hi) {
    for (int64_t p = lo; p < hi; p++) {
        const float *x = X + p * sp;
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < sp; j++) sum += x[j];
        double mu = sum / (double)sp;
        for (int64_t j = 0; j < sp; j++) sq += (x[j] - mu) * (x[j] - mu);
        mean[p] = (float)mu;
        invstd[p] = (float)(1.0 / sqrt(sq / (double)sp + eps));
        float k = gam[p % c] * invstd[p], b = bet[p % c] - mean[p] * k;
        for (int64_t j = 0; j < sp; j++) Y[p * sp + j] = x[j] * k + b;
    }
}

// x (N,C,...), scale/bias (C) -> y (N,C,...); state: mean (N*C), invstd (N*C)
static void in_forward(const cfx__op_args *a) {
    int64_t n, c, sp;
    bn_dims(a->in[0], &n, &c, &sp);
    float *mean = a->state, *invstd = mean + n * c;
    float eps = ((const cfx__in_attr *)a->attr)->eps;
    CFX_PARALLEL_RANGE(n * c, n * c * sp > 32768,
                       in_forward_planes(a->in[0]->data, a->in[1]->data, a->in[2]->data,
                                         a->out->data, mean, invstd, eps, c, sp, lo, hi));
}

/* Channels [lo, hi) of in_backward (a channel's scale and bias gradients sum over images, so
 * the work is split by channel): per plane, with xhat = (x - mean) invstd and m = S,
 *     dx = scale invstd / m (m g - sum g - xhat sum(g xhat)). */
static void in_backward_channels(const float *restrict X, const float *restrict gam,
                                 const float *restrict G, const float *restrict mean,
                                 const float *restrict invstd, float *DX, float *DG, float *DB,
                                 int64_t n, int64_t c, int64_t sp, int64_t lo, int64_t hi) {
    for (int64_t ch = lo; ch < hi; ch++)
        for (int64_t i = 0; i < n; i++) {
            int64_t p = i * c + ch;
            const float *x = X + p * sp, *g = G + p * sp;
            float mu = mean[p], is = invstd[p];
            double sg = 0, sgx = 0;
            for (int64_t j = 0; j < sp; j++) {
                sg += g[j];
                sgx += (double)g[j] * (x[j] - mu) * is;
            }
            if (DG) DG[ch] += (float)sgx;
            if (DB) DB[ch] += (float)sg;
            if (!DX) continue;
            float k = gam[ch] * is, mg = (float)(sg / (double)sp), mgx = (float)(sgx / (double)sp);
            for (int64_t j = 0; j < sp; j++)
                DX[p * sp + j] += k * (g[j] - mg - (x[j] - mu) * is * mgx);
        }
}

static void in_backward(const cfx__op_args *a) {
    int64_t n, c, sp;
    bn_dims(a->in[0], &n, &c, &sp);
    const float *mean = a->state, *invstd = mean + n * c;
    CFX_PARALLEL_RANGE(c, n * c * sp > 32768,
                       in_backward_channels(a->in[0]->data, a->in[1]->data, a->dout, mean, invstd,
                                            a->din[0], a->din[1], a->din[2], n, c, sp, lo, hi));
}

static const cfx__op_def in_def = {
    "InstanceNormalization", sizeof(cfx__in_attr), in_infer, NULL, NULL, in_forward, in_backward};

int cfx_op_instance_norm(cfx_graph *g, int x, int scale, int bias, float eps) {
    cfx__in_attr at = {eps != 0 ? eps : 1e-5f};
    if (!(at.eps > 0))
        return cfx__graph_fail(g, "InstanceNormalization", "eps must be positive, not %g", at.eps);
    return cfx__graph_add(g, &in_def, (int[]){x, scale, bias}, 3, &at);
}

/* ---------------------------------------------------------------------- dropout --- */

/* State: a flag (was the last forward in training mode) padded to 64 bytes, then the mask. */
#define DROPOUT_HEAD 64

static cfx_status dropout_infer(const cfx__op_args *a, cfx__op_shape *s) {
    if (!a->in[0]) return cfx_set_error(CFX_EINVAL, "needs an input");
    cfx__shape_copy(s, a->in[0]);
    s->state_bytes = DROPOUT_HEAD + (size_t)a->in[0]->numel * sizeof(float);
    return CFX_OK;
}

// x (any) -> y (same); state: mode flag, mask (0 or 1/(1-p) per element)
static void dropout_forward(const cfx__op_args *a) {
    const cfx__dropout_attr *at = a->attr;
    int *trained = a->state;
    float *mask = (float *)((char *)a->state + DROPOUT_HEAD);
    const float *X = a->in[0]->data;
    float *Y = a->out->data;
    int64_t n = a->out->numel;
    *trained = a->training && at->p > 0;
    if (!*trained) {
        memcpy(Y, X, (size_t)n * sizeof(float));
        return;
    }
    /* p = 1 drops everything; the scale is then never used. */
    float scale = at->p < 1 ? 1.0f / (1.0f - at->p) : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        mask[i] = cfx_rng_uniform(a->rng) >= at->p ? scale : 0.0f;
        Y[i] = X[i] * mask[i];
    }
}

static void dropout_backward(const cfx__op_args *a) {
    const int *trained = a->state;
    const float *mask = (const float *)((const char *)a->state + DROPOUT_HEAD);
    const float *G = a->dout;
    float *DX = a->din[0];
    int64_t n = a->out->numel;
    if (*trained)
        for (int64_t i = 0; i < n; i++) DX[i] += G[i] * mask[i];
    else
        for (int64_t i = 0; i < n; i++) DX[i] += G[i];
}

static const cfx__op_def dropout_def = {"Dropout", sizeof(cfx__dropout_attr), dropout_infer,   NULL,
                                        NULL,      dropout_forward,           dropout_backward};

int cfx_op_dropout(cfx_graph *g, int x, float p) {
    if (!(p >= 0 && p <= 1))
        return cfx__graph_fail(g, "Dropout", "probability must be in [0, 1], not %g", p);
    cfx__dropout_attr at = {p};
    return cfx__graph_add(g, &dropout_def, &x, 1, &at);
}
