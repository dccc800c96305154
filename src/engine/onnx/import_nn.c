/* import_nn.c - importers of layers: Conv and ConvTranspose, the pools, Gemm and MatMul,
 * BatchNormalization, InstanceNormalization, Dropout, Resize and Upsample. ONNX's window attributes
 * (strides, pads, dilations, auto_pad) map onto cfx's 2-D attribute structs here. */
#include "engine/onnx/onnx.h"

#include <math.h>

static cfx_status imp_global_avg_pool(cfx__onnx_ctx *c) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    return x < 0 ? CFX_EINVAL : cfx__onnx_set_out(c, 0, cfx_op_global_avg_pool(c->g, x));
}

static cfx_status imp_global_max_pool(cfx__onnx_ctx *c) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    return x < 0 ? CFX_EINVAL
                 : cfx__onnx_set_out(
                       c, 0, cfx_op_reduce(c->g, x, CFX_REDUCE_MAX, (const int[]){2, 3}, 2, 1));
}

/* SAME_UPPER / SAME_LOWER / VALID / NOTSET padding for one spatial dimension. */
static cfx_status auto_pad(cfx__onnx_ctx *c, const char *mode, int64_t in, int64_t k, int64_t s,
                           int64_t d, int *begin, int *end) {
    if (strcmp(mode, "NOTSET") == 0) return CFX_OK;
    if (strcmp(mode, "VALID") == 0) {
        *begin = *end = 0;
        return CFX_OK;
    }
    if (strcmp(mode, "SAME_UPPER") && strcmp(mode, "SAME_LOWER"))
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "auto_pad '%s' is not supported", mode);
    int64_t out = (in + s - 1) / s;
    int64_t total = (out - 1) * s + (k - 1) * d + 1 - in;
    if (total < 0) total = 0;
    bool upper = strcmp(mode, "SAME_UPPER") == 0;
    *begin = (int)(upper ? total / 2 : total - total / 2);
    *end = (int)(total - *begin);
    return CFX_OK;
}

/* strides, dilations, pads (ONNX order: begin h, begin w, end h, end w = top, left, bottom,
 * right, as cfx) and auto_pad of a 2-D window op. */
static cfx_status window_attrs(cfx__onnx_ctx *c, const cfx_tensor *x, int64_t kh, int64_t kw,
                               int *stride, int *dil, int *pad, bool transpose) {
    int64_t v[8];
    int n;
    if (x->ndim != 4)
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                              "only 2-D windows (4-D inputs) are supported, input "
                              "has %d dimensions",
                              x->ndim);
    /* ONNX has no "0 means the default" (cfx's attribute structs do): a stride or dilation
     * below 1 is an error, as is any value that does not fit the structs' ints. */
    stride[0] = stride[1] = dil[0] = dil[1] = 1;
    static const char *const names[3] = {"strides", "dilations", "pads"};
    int *dst[3] = {stride, dil, pad};
    const int want[3] = {2, 2, 4};
    const int64_t lo[3] = {1, 1, 0};
    for (int k = 0; k < 4; k++) pad[k] = 0;
    for (int a = 0; a < 3; a++) {
        if ((n = cfx__onnx_attr_ints(c->node, names[a], v, 8)) < 0) continue;
        if (n != want[a])
            return cfx__onnx_fail(c, CFX_EINVAL, "%s has %d values, not %d (2-D only)", names[a], n,
                                  want[a]);
        for (int k = 0; k < n; k++) {
            if (v[k] < lo[a] || v[k] > (1 << 24))
                return cfx__onnx_fail(c, CFX_EINVAL, "%s value %lld is not in %lld..%d", names[a],
                                      (long long)v[k], (long long)lo[a], 1 << 24);
            dst[a][k] = (int)v[k];
        }
    }
    char buf[32];
    const char *ap = cfx__onnx_attr_str(c->node, "auto_pad", "NOTSET", buf, sizeof buf);
    if (transpose) {
        if (strcmp(ap, "NOTSET") && strcmp(ap, "VALID"))
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "auto_pad '%s' (give explicit pads)", ap);
        if (strcmp(ap, "VALID") == 0)
            for (int k = 0; k < 4; k++) pad[k] = 0;
        return CFX_OK;
    }
    CFX_TRY(auto_pad(c, ap, x->shape[2], kh, stride[0], dil[0], &pad[0], &pad[2]));
    return auto_pad(c, ap, x->shape[3], kw, stride[1], dil[1], &pad[1], &pad[3]);
}

/* The folded constant for tensor name (decoded), or NULL when it is none; a constant whose
 * data cannot be decoded (out of memory) sets *st, so that folding never hides an error. */
static const cfx__onnx_entry *fold_const(cfx__onnx_ctx *c, const char *name, cfx_status *st) {
    cfx__onnx_entry *e = name ? cfx__onnx_lookup(c, name) : NULL;
    if (!e || !e->known || e->id >= 0 || *st != CFX_OK) return NULL;
    if ((*st = cfx__onnx_entry_decode(c, e)) != CFX_OK) return NULL;
    return e;
}

/* BatchNormalization folding (a frozen import, cfx_graph_fusions): the BatchNormalization
 * that alone reads the output of the Conv being imported, with constant scale, bias, mean and
 * variance of co elements and its output 0 only, or NULL (with *st set when reading them ran
 * out of memory). The Conv's output must not be a wanted output or a cut input. */
static const Onnx__NodeProto *foldable_bn(cfx__onnx_ctx *c, int64_t co, cfx_status *st) {
    if (!c->o->frozen || c->o->no_fuse || c->g->no_fuse || c->node->n_output != 1) return NULL;
    const char *y = cfx__onnx_out_name(c->node, 0);
    if (!y || cfx__onnx_in_list(c->want, c->nwant, y) ||
        cfx__onnx_in_list(c->o->inputs, c->o->n_inputs, y))
        return NULL;
    const Onnx__GraphProto *gr = c->m->graph;
    const Onnx__NodeProto *bn = NULL;
    for (size_t k = 0; k < gr->n_node; k++) {
        const Onnx__NodeProto *n = gr->node[k];
        if (!c->needed[k]) continue;
        for (size_t j = 0; j < n->n_input; j++) {
            const char *in = cfx__onnx_in_name(n, j);
            if (!in || strcmp(in, y)) continue;
            if (bn || j != 0 || !n->op_type || strcmp(n->op_type, "BatchNormalization"))
                return NULL;
            bn = n;
        }
    }
    if (!bn || bn->n_input < 5 || cfx__onnx_attr_int(bn, "training_mode", 0)) return NULL;
    for (size_t j = 1; j < bn->n_output; j++)
        if (cfx__onnx_out_name(bn, j)) return NULL;
    for (size_t j = 1; j < 5; j++) {
        const cfx__onnx_entry *e = fold_const(c, cfx__onnx_in_name(bn, j), st);
        if (!e || e->dtype != CFX__ONNX_FLOAT || e->numel != co) return NULL;
    }
    return bn;
}

/* Folds BatchNormalization bn into the Conv being imported, as ONNX Runtime does: with
 * s = scale / sqrt(var + eps), w'[o] = w[o] s[o] and b' = (b - mean) s + bias, computed in double
 * and stored as new constants named after the Conv's output; *w and *b become their ids. The
 * BatchNormalization is then imported as the Conv's output itself. *done stays false (and
 * nothing changes) when the weights are not folded constants. */
static cfx_status fold_bn(cfx__onnx_ctx *c, const Onnx__NodeProto *bn, int64_t co, int *w, int *b,
                          bool *done) {
    *done = false;
    cfx_status st = CFX_OK;
    const cfx__onnx_entry *we = fold_const(c, cfx__onnx_input(c, 1), &st);
    const cfx__onnx_entry *be = fold_const(c, cfx__onnx_input(c, 2), &st);
    if (st != CFX_OK) return st;
    if (!we || we->dtype != CFX__ONNX_FLOAT || we->ndim != 4 || we->shape[0] != co ||
        (cfx__onnx_input(c, 2) && (!be || be->dtype != CFX__ONNX_FLOAT || be->numel != co)))
        return CFX_OK;
    float *nw = cfx_malloc((size_t)we->numel * sizeof *nw),
          *nb = cfx_malloc((size_t)co * sizeof *nb);
    st = nw && nb ? CFX_OK : CFX_ENOMEM;
    const cfx__onnx_entry *sc = cfx__onnx_const_of(c, cfx__onnx_in_name(bn, 1)),
                          *bi = cfx__onnx_const_of(c, cfx__onnx_in_name(bn, 2)),
                          *mu = cfx__onnx_const_of(c, cfx__onnx_in_name(bn, 3)),
                          *va = cfx__onnx_const_of(c, cfx__onnx_in_name(bn, 4));
    double eps = cfx__onnx_attr_float(bn, "epsilon", 1e-5f);
    int64_t inner = we->numel / co;
    for (int64_t o = 0; st == CFX_OK && o < co; o++) {
        double s = (double)sc->f[o] / sqrt((double)va->f[o] + eps);
        for (int64_t k = 0; k < inner; k++) nw[o * inner + k] = (float)(we->f[o * inner + k] * s);
        nb[o] = (float)(((be ? (double)be->f[o] : 0.0) - mu->f[o]) * s + bi->f[o]);
    }
    int64_t wshape[4] = {we->shape[0], we->shape[1], we->shape[2], we->shape[3]};
    char base[1100], name[1200];
    cfx__onnx_gname(c, cfx__onnx_out_name(c->node, 0), base, sizeof base);
    if (st == CFX_OK) {
        snprintf(name, sizeof name, "%s:bn_weight", base);
        *w = cfx_graph_const(c->g, name, 4, wshape, nw);
        snprintf(name, sizeof name, "%s:bn_bias", base);
        *b = *w < 0 ? -1 : cfx_graph_const(c->g, name, 1, (int64_t[]){co}, nb);
        st = *w < 0 || *b < 0 ? cfx__onnx_graph_error(c) : CFX_OK;
    }
    if (st == CFX_OK) st = cfx__strmap_put(&c->folded_bn, cfx__onnx_out_name(bn, 0), 0);
    cfx_free(nw);
    cfx_free(nb);
    if (st == CFX_OK) {
        c->g->bn_folded++;
        *done = true;
    }
    return st;
}

static cfx_status imp_conv_any(cfx__onnx_ctx *c, bool transpose) {
    /* A BatchNormalization after it is folded into new weights before the old ones become
     * graph values (which would keep them in the graph unused). */
    int w = -1, b = -1;
    bool folded = false;
    cfx_status st = CFX_OK;
    const cfx__onnx_entry *we = transpose ? NULL : fold_const(c, cfx__onnx_input(c, 1), &st);
    const Onnx__NodeProto *bn = we && we->ndim == 4 ? foldable_bn(c, we->shape[0], &st) : NULL;
    if (st != CFX_OK) return st;
    if (bn) CFX_TRY(fold_bn(c, bn, we->shape[0], &w, &b, &folded));
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (!folded) {
        w = cfx__onnx_value_of(c, cfx__onnx_input(c, 1), false);
        b = cfx__onnx_input(c, 2) ? cfx__onnx_value_of(c, cfx__onnx_input(c, 2), false) : -1;
    }
    if (x < 0 || w < 0 || ((cfx__onnx_input(c, 2) || folded) && b < 0)) return CFX_EINVAL;
    const cfx_tensor *xt = cfx__onnx_tensor(c, x), *wt = cfx__onnx_tensor(c, w);
    if (wt->ndim != 4)
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                              "only 2-D convolution is supported (weight has %d "
                              "dimensions)",
                              wt->ndim);
    int64_t ks[4];
    int nk = cfx__onnx_attr_ints(c->node, "kernel_shape", ks, 4);
    if (nk >= 0 && (nk != 2 || ks[0] != wt->shape[2] || ks[1] != wt->shape[3]))
        return cfx__onnx_fail(c, CFX_EINVAL,
                              "kernel_shape has %d values (%lld, %lld) but the weight's kernel is "
                              "%lldx%lld",
                              nk, (long long)(nk > 0 ? ks[0] : 0), (long long)(nk > 1 ? ks[1] : 0),
                              (long long)wt->shape[2], (long long)wt->shape[3]);
    cfx_conv2d_attr at = {0};
    CFX_TRY(
        window_attrs(c, xt, wt->shape[2], wt->shape[3], at.stride, at.dilation, at.pad, transpose));
    int64_t group = cfx__onnx_attr_int(c->node, "group", 1);
    if (group < 1 || group > xt->shape[1])
        return cfx__onnx_fail(c, CFX_EINVAL, "group %lld is not in 1..%lld (the input's channels)",
                              (long long)group, (long long)xt->shape[1]);
    at.groups = (int)group;
    if (!transpose) return cfx__onnx_set_out(c, 0, cfx_op_conv2d(c->g, x, w, b, &at));
    int64_t v[4];
    if (cfx__onnx_attr_ints(c->node, "output_padding", v, 4) == 2) {
        if (v[0] < 0 || v[1] < 0 || v[0] > 65536 || v[1] > 65536)
            return cfx__onnx_fail(c, CFX_EINVAL, "output_padding (%lld, %lld) is not in 0..65536",
                                  (long long)v[0], (long long)v[1]);
        at.output_padding[0] = (int)v[0], at.output_padding[1] = (int)v[1];
    }
    if (cfx__onnx_attr_ints(c->node, "output_shape", v, 4) == 2) {
        if (v[0] < 1 || v[1] < 1)
            return cfx__onnx_fail(c, CFX_EINVAL, "output_shape (%lld, %lld) is not positive",
                                  (long long)v[0], (long long)v[1]);
        /* Padding that yields the requested size; extra goes to the end as SAME_UPPER. */
        for (int d = 0; d < 2; d++) {
            int64_t full = (int64_t)at.stride[d] * (xt->shape[2 + d] - 1) + at.output_padding[d] +
                           (wt->shape[2 + d] - 1) * at.dilation[d] + 1;
            int64_t total = full - v[d];
            if (total < 0)
                return cfx__onnx_fail(c, CFX_EINVAL, "output_shape is larger than possible");
            if (total > 2 * (1 << 24))
                return cfx__onnx_fail(c, CFX_EINVAL,
                                      "output_shape %lld is far below the %lld "
                                      "the convolution gives",
                                      (long long)v[d], (long long)full);
            at.pad[d] = (int)(total / 2);
            at.pad[d + 2] = (int)(total - total / 2);
        }
    }
    return cfx__onnx_set_out(c, 0, cfx_op_conv_transpose2d(c->g, x, w, b, &at));
}

static cfx_status imp_conv(cfx__onnx_ctx *c) {
    return imp_conv_any(c, false);
}

static cfx_status imp_conv_transpose(cfx__onnx_ctx *c) {
    return imp_conv_any(c, true);
}

static cfx_status imp_pool(cfx__onnx_ctx *c, bool max) {
    CFX_TRY(cfx__onnx_only_first_output(c));
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    int64_t k[4];
    if (cfx__onnx_attr_ints(c->node, "kernel_shape", k, 4) != 2)
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                              "kernel_shape must have 2 values (2-D pooling only)");
    if (k[0] < 1 || k[1] < 1 || k[0] > 65536 || k[1] > 65536)
        return cfx__onnx_fail(c, CFX_EINVAL, "kernel_shape (%lld, %lld) is not in 1..65536",
                              (long long)k[0], (long long)k[1]);
    cfx_pool2d_attr at = {0};
    at.kernel[0] = (int)k[0], at.kernel[1] = (int)k[1];
    int dil[2];
    CFX_TRY(window_attrs(c, cfx__onnx_tensor(c, x), k[0], k[1], at.stride, dil, at.pad, false));
    at.ceil_mode = (int)cfx__onnx_attr_int(c->node, "ceil_mode", 0);
    if (max) {
        at.dilation[0] = dil[0], at.dilation[1] = dil[1];
        if (cfx__onnx_attr_int(c->node, "storage_order", 0) != 0)
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "storage_order 1 is not supported");
        return cfx__onnx_set_out(c, 0, cfx_op_max_pool2d(c->g, x, &at));
    }
    at.count_include_pad = (int)cfx__onnx_attr_int(c->node, "count_include_pad", 0);
    return cfx__onnx_set_out(c, 0, cfx_op_avg_pool2d(c->g, x, &at));
}

static cfx_status imp_max_pool(cfx__onnx_ctx *c) {
    return imp_pool(c, true);
}

static cfx_status imp_avg_pool(cfx__onnx_ctx *c) {
    return imp_pool(c, false);
}

static cfx_status imp_gemm(cfx__onnx_ctx *c) {
    int a = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false),
        b = cfx__onnx_value_of(c, cfx__onnx_input(c, 1), false);
    float alpha = cfx__onnx_attr_float(c->node, "alpha", 1.0f),
          beta = cfx__onnx_attr_float(c->node, "beta", 1.0f);
    int cc = cfx__onnx_input(c, 2) && beta != 0
                 ? cfx__onnx_value_of(c, cfx__onnx_input(c, 2), false)
                 : -1;
    if (a < 0 || b < 0 || (cfx__onnx_input(c, 2) && beta != 0 && cc < 0)) return CFX_EINVAL;
    cfx_gemm_attr at = {.trans_a = (int)cfx__onnx_attr_int(c->node, "transA", 0),
                        .trans_b = (int)cfx__onnx_attr_int(c->node, "transB", 0),
                        .alpha = alpha,
                        .beta = cc < 0 ? 1.0f : beta};
    if (alpha == 0) return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "alpha 0 is not supported");
    return cfx__onnx_set_out(c, 0, cfx_op_gemm(c->g, a, b, cc, &at));
}

static cfx_status imp_matmul(cfx__onnx_ctx *c) {
    int a = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false),
        b = cfx__onnx_value_of(c, cfx__onnx_input(c, 1), false);
    return a < 0 || b < 0 ? CFX_EINVAL : cfx__onnx_set_out(c, 0, cfx_op_matmul(c->g, a, b));
}

static cfx_status imp_batch_norm(cfx__onnx_ctx *c) {
    CFX_TRY(cfx__onnx_only_first_output(c));
    /* Folded into the Conv that makes its input (fold_bn): the same value. */
    if (cfx__onnx_out_name(c->node, 0) &&
        cfx__onnx_in_set(&c->folded_bn, cfx__onnx_out_name(c->node, 0)))
        return cfx__onnx_alias_out(c, 0, 0);
    if (cfx__onnx_attr_int(c->node, "training_mode", 0))
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                              "training_mode 1 is not supported (export the model "
                              "in eval mode)");
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false),
        s = cfx__onnx_value_of(c, cfx__onnx_input(c, 1), false),
        b = cfx__onnx_value_of(c, cfx__onnx_input(c, 2), false);
    int m = cfx__onnx_value_of(c, cfx__onnx_input(c, 3), true),
        v = cfx__onnx_value_of(c, cfx__onnx_input(c, 4), true);
    if (x < 0 || s < 0 || b < 0 || m < 0 || v < 0) return CFX_EINVAL;
    /* ONNX: running = momentum running + (1 - momentum) batch; PyTorch's momentum is 1 - it. */
    float mom = 1.0f - cfx__onnx_attr_float(c->node, "momentum", 0.9f);
    cfx_batch_norm_attr at = {.eps = cfx__onnx_attr_float(c->node, "epsilon", 1e-5f),
                              .momentum = mom > 0 ? mom : 0.1f};
    return cfx__onnx_set_out(c, 0, cfx_op_batch_norm(c->g, x, s, b, m, v, &at));
}

static cfx_status imp_instance_norm(cfx__onnx_ctx *c) {
    CFX_TRY(cfx__onnx_only_first_output(c));
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false),
        s = cfx__onnx_value_of(c, cfx__onnx_input(c, 1), false),
        b = cfx__onnx_value_of(c, cfx__onnx_input(c, 2), false);
    if (x < 0 || s < 0 || b < 0) return CFX_EINVAL;
    float eps = cfx__onnx_attr_float(c->node, "epsilon", 1e-5f);
    return cfx__onnx_set_out(c, 0, cfx_op_instance_norm(c->g, x, s, b, eps));
}

static cfx_status imp_dropout(cfx__onnx_ctx *c) {
    CFX_TRY(cfx__onnx_only_first_output(c));
    float p = c->opset >= 12 ? 0.5f : cfx__onnx_attr_float(c->node, "ratio", 0.5f);
    if (c->opset >= 12 && cfx__onnx_input(c, 1) && cfx__onnx_const_floats(c, 1, &p, 1) != 1)
        return CFX_EUNSUPPORTED;
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    return x < 0 ? CFX_EINVAL : cfx__onnx_set_out(c, 0, cfx_op_dropout(c->g, x, p));
}

static cfx_status parse_coord(cfx__onnx_ctx *c, const char *s, cfx_coord_mode *m) {
    if (strcmp(s, "half_pixel") == 0)
        *m = CFX_COORD_HALF_PIXEL;
    else if (strcmp(s, "asymmetric") == 0)
        *m = CFX_COORD_ASYMMETRIC;
    else if (strcmp(s, "align_corners") == 0)
        *m = CFX_COORD_ALIGN_CORNERS;
    else if (strcmp(s, "pytorch_half_pixel") == 0)
        *m = CFX_COORD_PYTORCH_HALF_PIXEL;
    else
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                              "coordinate_transformation_mode '%s' is not supported", s);
    return CFX_OK;
}

/* Resize (opset 10 on: X, roi, scales, sizes) and Upsample (scales as input or attribute). */
static cfx_status imp_resize_any(cfx__onnx_ctx *c, bool upsample) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    const cfx_tensor *t = cfx__onnx_tensor(c, x);
    if (t->ndim != 4)
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "only 4-D (c->node,C,H,W) inputs are supported");
    char b1[40], b2[40], b3[40];
    const char *mode = cfx__onnx_attr_str(c->node, "mode", "nearest", b1, sizeof b1);
    cfx_resize_attr at = {0};
    if (strcmp(mode, "nearest") == 0)
        at.mode = CFX_RESIZE_NEAREST;
    else if (strcmp(mode, "linear") == 0 || strcmp(mode, "bilinear") == 0)
        at.mode = CFX_RESIZE_BILINEAR;
    else
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                              "mode '%s' is not supported (nearest and linear are)", mode);
    float sc[8];
    int64_t sz[8];
    int nsc = 0, nsz = 0;
    bool old = upsample || c->opset < 11;
    if (old) {
        at.coord = CFX_COORD_ASYMMETRIC;
        at.nearest = CFX_NEAREST_FLOOR;
        const Onnx__AttributeProto *a = cfx__onnx_attr(c->node, "scales");
        if (a && a->n_floats) {
            nsc = (int)a->n_floats;
            for (int k = 0; k < nsc && k < 8; k++) sc[k] = a->floats[k];
        } else if ((nsc = cfx__onnx_const_floats(c, 1, sc, 8)) < 0) {
            return CFX_EUNSUPPORTED;
        }
    } else {
        CFX_TRY(parse_coord(c,
                            cfx__onnx_attr_str(c->node, "coordinate_transformation_mode",
                                               "half_pixel", b2, sizeof b2),
                            &at.coord));
        const char *nm =
            cfx__onnx_attr_str(c->node, "nearest_mode", "round_prefer_floor", b3, sizeof b3);
        if (strcmp(nm, "round_prefer_floor") == 0)
            at.nearest = CFX_NEAREST_ROUND_PREFER_FLOOR;
        else if (strcmp(nm, "round_prefer_ceil") == 0)
            at.nearest = CFX_NEAREST_ROUND_PREFER_CEIL;
        else if (strcmp(nm, "floor") == 0)
            at.nearest = CFX_NEAREST_FLOOR;
        else if (strcmp(nm, "ceil") == 0)
            at.nearest = CFX_NEAREST_CEIL;
        else
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "nearest_mode '%s' is not supported", nm);
        if (cfx__onnx_input(c, 2) && (nsc = cfx__onnx_const_floats(c, 2, sc, 8)) < 0)
            return CFX_EUNSUPPORTED;
        if (cfx__onnx_input(c, 3) && (nsz = cfx__onnx_const_ints(c, 3, sz, 8, NULL)) < 0)
            return CFX_EUNSUPPORTED;
    }
    if (nsz == 4) {
        if (sz[0] != t->shape[0] || sz[1] != t->shape[1])
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "sizes may change only H and W");
        at.out_h = sz[2], at.out_w = sz[3];
    } else if (nsc == 4) {
        if (sc[0] != 1 || sc[1] != 1)
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "scales may change only H and W");
        at.scale_h = sc[2], at.scale_w = sc[3];
    } else {
        return cfx__onnx_fail(c, CFX_EINVAL, "needs 4 scales or 4 sizes");
    }
    return cfx__onnx_set_out(c, 0, cfx_op_resize(c->g, x, &at));
}

static cfx_status imp_resize(cfx__onnx_ctx *c) {
    return imp_resize_any(c, false);
}

static cfx_status imp_upsample(cfx__onnx_ctx *c) {
    return imp_resize_any(c, true);
}

/* The ops this file imports, by ONNX op type; cfx__onnx_find_importer looks here. */
const cfx__onnx_importer cfx__onnx_nn_importers[] = {
    {"AveragePool", imp_avg_pool},
    {"BatchNormalization", imp_batch_norm},
    {"Conv", imp_conv},
    {"ConvTranspose", imp_conv_transpose},
    {"Dropout", imp_dropout},
    {"Gemm", imp_gemm},
    {"GlobalAveragePool", imp_global_avg_pool},
    {"GlobalMaxPool", imp_global_max_pool},
    {"InstanceNormalization", imp_instance_norm},
    {"MatMul", imp_matmul},
    {"MaxPool", imp_max_pool},
    {"Resize", imp_resize},
    {"Upsample", imp_upsample},
    {NULL, NULL},
};
