/* optim.c - SGD with momentum and Adam, with torch.optim's exact update rules.
 *
 * Adam (Kingma and Ba), as PyTorch computes it:
 *   g  = grad + weight_decay x
 *   m  = b1 m + (1 - b1) g;          v = b2 v + (1 - b2) g^2
 *   x -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * eps is added after the square root and after the bias correction of v, which matters for the
 * first steps of a counterfactual search where gradients are tiny.
 * SGD: g = grad + wd x; buf = momentum buf + g (buf = g on the first step); x -= lr buf
 * (or lr (g + momentum buf) with Nesterov). */
#include "base/base.h"
#include "learn/optim.h"

#include <float.h>
#include <math.h>
#include <string.h>

typedef enum { OPT_SGD, OPT_ADAM } opt_kind;

struct cfx_optim {
    opt_kind kind;
    size_t n;
    cfx_sgd_options sgd;
    cfx_adam_options adam;
    int64_t t;
    float *m, *v; /* Adam moments, or SGD momentum buffer in m */
};

static cfx_optim *optim_new(opt_kind kind, size_t n) {
    cfx_optim *o = cfx_calloc(1, sizeof *o);
    if (!o) return NULL;
    o->kind = kind;
    o->n = n;
    o->m = cfx_calloc(n ? n : 1, sizeof(float));
    o->v = kind == OPT_ADAM ? cfx_calloc(n ? n : 1, sizeof(float)) : NULL;
    if (!o->m || (kind == OPT_ADAM && !o->v)) {
        cfx_optim_free(o);
        return NULL;
    }
    return o;
}

cfx_optim *cfx_optim_sgd(size_t n, const cfx_sgd_options *opts) {
    cfx_sgd_options d = opts ? *opts : (cfx_sgd_options){0};
    if (d.lr == 0) d.lr = 0.01f;
    if (!(d.lr > 0) || d.momentum < 0 || d.weight_decay < 0) {
        cfx_set_error(CFX_EINVAL, "sgd: lr must be > 0, momentum and weight decay >= 0");
        return NULL;
    }
    cfx_optim *o = optim_new(OPT_SGD, n);
    if (o) o->sgd = d;
    return o;
}

cfx_optim *cfx_optim_adam(size_t n, const cfx_adam_options *opts) {
    cfx_adam_options d = opts ? *opts : (cfx_adam_options){0};
    if (d.lr == 0) d.lr = 1e-3f;
    if (d.beta1 == 0) d.beta1 = 0.9f;
    if (d.beta2 == 0) d.beta2 = 0.999f;
    if (d.eps == 0) d.eps = 1e-8f;
    if (!(d.lr > 0) || !(d.beta1 > 0 && d.beta1 < 1) || !(d.beta2 > 0 && d.beta2 < 1) ||
        !(d.eps > 0) || d.weight_decay < 0) {
        cfx_set_error(CFX_EINVAL, "adam: need lr > 0, 0 < betas < 1, eps > 0, weight decay >= 0");
        return NULL;
    }
    cfx_optim *o = optim_new(OPT_ADAM, n);
    if (o) o->adam = d;
    return o;
}

void cfx_optim_free(cfx_optim *o) {
    if (!o) return;
    cfx_free(o->m);
    cfx_free(o->v);
    cfx_free(o);
}

void cfx_optim_reset(cfx_optim *o) {
    if (!o) return;
    o->t = 0;
    memset(o->m, 0, o->n * sizeof(float));
    if (o->v) memset(o->v, 0, o->n * sizeof(float));
}

void cfx_optim_set_lr(cfx_optim *o, float lr) {
    if (!o) return;
    if (o->kind == OPT_SGD)
        o->sgd.lr = lr;
    else
        o->adam.lr = lr;
}

/* Elements [lo, hi) of an SGD step on the gradient g0 (+ g1 when not NULL: the trainer's lanes;
 * built per ISA, as adam_update). x and the gradients are the caller's and not restrict:
 * nothing in the API says they cannot overlap. */
CFX_CLONES static void sgd_update(float *x, const float *g0, const float *g1, float *restrict buf,
                                  float lr, float mu, float wd, bool nesterov, bool first,
                                  int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        float g = (g1 ? g0[i] + g1[i] : g0[i]) + wd * x[i];
        if (mu != 0) {
            buf[i] = first ? g : mu * buf[i] + g;
            g = nesterov ? g + mu * buf[i] : buf[i];
        }
        x[i] -= lr * g;
    }
}

/* Elements [lo, hi) of an Adam step; x, g0 and g1 as in sgd_update. Built for each x86 vector
 * ISA and picked at run time (we build without -march): the square root and division run a
 * vector at a time, so SSE2's four lanes made the step compute bound (a twelfth of a batch-64
 * training step of the reference classifier). With -std=c11 GCC contracts nothing into FMAs
 * and vector sqrt and division round exactly, so every clone gives the same bits. */
CFX_CLONES static void adam_update(float *x, const float *g0, const float *g1, float *restrict m,
                                   float *restrict v, float step, float rbc2, float b1, float b2,
                                   float eps, float wd, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) {
        float g = (g1 ? g0[i] + g1[i] : g0[i]) + wd * x[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        x[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
    }
}

/* Whether every element of g lies within [-bound, bound] (NaN does not): one branch-free pass
 * (per ISA, as adam_update). */
CFX_CLONES static bool all_within(const float *g, int64_t lo, int64_t hi, float bound) {
    int bad = 0;
    for (int64_t i = lo; i < hi; i++) bad |= !(fabsf(g[i]) <= bound);
    return !bad;
}

cfx_status cfx__optim_check_grad(const float *g, size_t n, float bound) {
    return cfx__optim_check_range(g, 0, n, bound);
}

bool cfx__optim_within(const float *g, int64_t n, float bound) {
    return all_within(g, 0, n, bound);
}

cfx_status cfx__optim_check_range(const float *g, size_t first, size_t end, float bound) {
    int ok = 1;
    CFX_PARALLEL_RANGE((int64_t)(end - first), end - first > 65536, {
        int mine = all_within(g + first, lo, hi, bound);
        _Pragma("omp atomic update") ok &= mine;
    });
    if (ok) return CFX_OK;
    /* Only now is the first such element looked up. */
    for (size_t i = first; i < end; i++)
        if (!(fabsf(g[i]) <= bound))
            return cfx_set_error(CFX_ENUMERIC,
                                 "optimizer step: gradient element %zu is %g%s; lower the "
                                 "learning rate or check the inputs for NaN",
                                 i, (double)g[i], isfinite(g[i]) ? ", too large to sum" : "");
    return CFX_OK;
}

void cfx__optim_tick(cfx_optim *o) {
    o->t++;
}

void cfx__optim_apply(cfx_optim *o, float *x, const float *g0, const float *g1, int64_t lo,
                      int64_t hi) {
    if (o->kind == OPT_SGD) {
        const float lr = o->sgd.lr, mu = o->sgd.momentum, wd = o->sgd.weight_decay;
        sgd_update(x, g0, g1, o->m, lr, mu, wd, o->sgd.nesterov != 0, o->t == 1, lo, hi);
        return;
    }
    const cfx_adam_options *a = &o->adam;
    /* Bias corrections in double: beta2^t stays accurate for long runs. */
    const double bc1 = 1.0 - pow(a->beta1, (double)o->t), bc2 = 1.0 - pow(a->beta2, (double)o->t);
    const float step = (float)(a->lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    adam_update(x, g0, g1, o->m, o->v, step, rbc2, a->beta1, a->beta2, a->eps, a->weight_decay, lo,
                hi);
}

void cfx__optim_move(cfx_optim *o, int64_t to, int64_t from, int64_t n) {
    memmove(o->m + to, o->m + from, (size_t)n * sizeof *o->m);
    if (o->v) memmove(o->v + to, o->v + from, (size_t)n * sizeof *o->v);
}

cfx_status cfx__optim_step2(cfx_optim *o, float *x, const float *g0, const float *g1) {
    cfx__optim_tick(o);
    const int64_t n = (int64_t)o->n;
    CFX_PARALLEL_RANGE(n, n > 65536, cfx__optim_apply(o, x, g0, g1, lo, hi));
    return CFX_OK;
}

cfx_status cfx_optim_step(cfx_optim *o, float *x, const float *grad) {
    if (!o || !x || !grad) return cfx_set_error(CFX_EINVAL, "optimizer step: NULL argument");
    CFX_TRY(cfx__optim_check_grad(grad, o->n, FLT_MAX));
    return cfx__optim_step2(o, x, grad, NULL);
}

size_t cfx_optim_state_size(const cfx_optim *o) {
    if (!o) return 0;
    return 1 + o->n * (o->v ? 2 : 1);
}

void cfx_optim_state_save(const cfx_optim *o, float *out) {
    if (!o || !out) return;
    out[0] = (float)o->t; /* exact up to 2^24 steps */
    memcpy(out + 1, o->m, o->n * sizeof(float));
    if (o->v) memcpy(out + 1 + o->n, o->v, o->n * sizeof(float));
}

void cfx_optim_state_load(cfx_optim *o, const float *in) {
    if (!o || !in) return;
    o->t = (int64_t)in[0];
    memcpy(o->m, in + 1, o->n * sizeof(float));
    if (o->v) memcpy(o->v, in + 1 + o->n, o->n * sizeof(float));
}
