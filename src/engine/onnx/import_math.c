/* import_math.c - importers of elementwise ops (Add, Mul, Relu, Clip, Pow, ...) and reductions
 * (ReduceSum/Mean/Max, ArgMax, Softmax, LogSoftmax). Binary ops on two constants fold. */
#include "engine/onnx/onnx.h"

#include <math.h>

static cfx_status imp_binary(cfx__onnx_ctx *c, char op) {
    cfx__onnx_entry *a = cfx__onnx_const_of(c, cfx__onnx_input(c, 0)),
                    *b = cfx__onnx_const_of(c, cfx__onnx_input(c, 1));
    if (a && b) return cfx__onnx_fold_binary(c, a, b, op);
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false),
        y = cfx__onnx_value_of(c, cfx__onnx_input(c, 1), false);
    if (x < 0 || y < 0) return CFX_EINVAL;
    int id = op == '+'   ? cfx_op_add(c->g, x, y)
             : op == '-' ? cfx_op_sub(c->g, x, y)
             : op == '*' ? cfx_op_mul(c->g, x, y)
                         : cfx_op_div(c->g, x, y);
    return cfx__onnx_set_out(c, 0, id);
}

static cfx_status imp_add(cfx__onnx_ctx *c) {
    return imp_binary(c, '+');
}

static cfx_status imp_sub(cfx__onnx_ctx *c) {
    return imp_binary(c, '-');
}

static cfx_status imp_mul(cfx__onnx_ctx *c) {
    return imp_binary(c, '*');
}

static cfx_status imp_div(cfx__onnx_ctx *c) {
    return imp_binary(c, '/');
}

static cfx_status imp_sum(cfx__onnx_ctx *c) {
    int acc = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    for (size_t k = 1; acc >= 0 && k < c->node->n_input; k++) {
        int y = cfx__onnx_value_of(c, cfx__onnx_input(c, k), false);
        acc = y < 0 ? -1 : cfx_op_add(c->g, acc, y);
    }
    return acc < 0 ? CFX_EINVAL : cfx__onnx_set_out(c, 0, acc);
}

static cfx_status imp_pow(cfx__onnx_ctx *c) {
    cfx__onnx_entry *e = cfx__onnx_const_of(c, cfx__onnx_input(c, 1));
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    if (e && e->numel == 1)
        return cfx__onnx_set_out(c, 0, cfx_op_pow_scalar(c->g, x, (float)cfx__onnx_cget(e, 0)));
    int y = cfx__onnx_value_of(c, cfx__onnx_input(c, 1), false);
    return y < 0 ? CFX_EINVAL : cfx__onnx_set_out(c, 0, cfx_op_pow(c->g, x, y));
}

static cfx_status imp_leaky_relu(cfx__onnx_ctx *c) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    float alpha = cfx__onnx_attr_float(c->node, "alpha", 0.01f);
    return x < 0 ? CFX_EINVAL : cfx__onnx_set_out(c, 0, cfx_op_leaky_relu(c->g, x, alpha));
}

/* Clip: min/max attributes before opset 11, optional constant inputs from 11 on. */
static cfx_status imp_clip(cfx__onnx_ctx *c) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    float lo = -INFINITY, hi = INFINITY;
    if (c->opset < 11) {
        lo = cfx__onnx_attr_float(c->node, "min", lo);
        hi = cfx__onnx_attr_float(c->node, "max", hi);
    } else {
        if (cfx__onnx_input(c, 1) && cfx__onnx_const_floats(c, 1, &lo, 1) != 1)
            return CFX_EUNSUPPORTED;
        if (cfx__onnx_input(c, 2) && cfx__onnx_const_floats(c, 2, &hi, 1) != 1)
            return CFX_EUNSUPPORTED;
    }
    return cfx__onnx_set_out(c, 0, cfx_op_clip(c->g, x, lo, hi));
}

static cfx_status imp_reduce(cfx__onnx_ctx *c, cfx_reduce_kind kind, bool axes_input) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    int64_t a[CFX_MAX_DIMS];
    int na = cfx__onnx_axes_of(c, a, axes_input);
    if (na < 0) return CFX_EUNSUPPORTED;
    if (na == 0 && cfx__onnx_attr_int(c->node, "noop_with_empty_axes", 0))
        return cfx__onnx_alias_out(c, 0, 0);
    int axes[CFX_MAX_DIMS];
    for (int k = 0; k < na; k++) axes[k] = (int)a[k];
    return cfx__onnx_set_out(
        c, 0,
        cfx_op_reduce(c->g, x, kind, axes, na, (int)cfx__onnx_attr_int(c->node, "keepdims", 1)));
}

static cfx_status imp_reduce_sum(cfx__onnx_ctx *c) {
    return imp_reduce(c, CFX_REDUCE_SUM, c->opset >= 13);
}

static cfx_status imp_reduce_mean(cfx__onnx_ctx *c) {
    return imp_reduce(c, CFX_REDUCE_MEAN, c->opset >= 18);
}

static cfx_status imp_reduce_max(cfx__onnx_ctx *c) {
    return imp_reduce(c, CFX_REDUCE_MAX, c->opset >= 18);
}

static cfx_status imp_argmax(cfx__onnx_ctx *c) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    if (cfx__onnx_attr_int(c->node, "select_last_index", 0))
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "select_last_index 1 is not supported");
    int axis =
        cfx__onnx_norm_axis(cfx__onnx_attr_int(c->node, "axis", 0), cfx__onnx_tensor(c, x)->ndim);
    return cfx__onnx_set_out(
        c, 0, cfx_op_argmax(c->g, x, axis, (int)cfx__onnx_attr_int(c->node, "keepdims", 1)));
}

/* Softmax before opset 13 normalises the input flattened to 2-D at axis (default 1); from 13
 * on it runs along one axis (default -1). */
static cfx_status imp_softmax_any(cfx__onnx_ctx *c, bool log) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    int nd = cfx__onnx_tensor(c, x)->ndim;
    int axis =
        cfx__onnx_norm_axis(cfx__onnx_attr_int(c->node, "axis", c->opset >= 13 ? -1 : 1), nd);
    if (axis < 0 || axis >= nd)
        return cfx__onnx_fail(c, CFX_EINVAL, "axis out of range for %d dims", nd);
    if (c->opset >= 13 || axis == nd - 1)
        return cfx__onnx_set_out(
            c, 0, log ? cfx_op_log_softmax(c->g, x, axis) : cfx_op_softmax(c->g, x, axis));
    int64_t shape[CFX_MAX_DIMS];
    memcpy(shape, cfx__onnx_tensor(c, x)->shape, sizeof shape);
    int f = cfx_op_flatten(c->g, x, axis);
    int s = log ? cfx_op_log_softmax(c->g, f, 1) : cfx_op_softmax(c->g, f, 1);
    shape[0] = 0;
    return cfx__onnx_set_out(c, 0, cfx_op_reshape(c->g, s, nd, shape));
}

static cfx_status imp_softmax(cfx__onnx_ctx *c) {
    return imp_softmax_any(c, false);
}

static cfx_status imp_log_softmax(cfx__onnx_ctx *c) {
    return imp_softmax_any(c, true);
}

/* The ops this file imports, by ONNX op type; cfx__onnx_find_importer looks here. */
const cfx__onnx_importer cfx__onnx_math_importers[] = {
    {"Abs", NULL, cfx_op_abs},
    {"Add", imp_add},
    {"ArgMax", imp_argmax},
    {"Clip", imp_clip},
    {"Div", imp_div},
    {"Erf", NULL, cfx_op_erf},
    {"Exp", NULL, cfx_op_exp},
    {"LeakyRelu", imp_leaky_relu},
    {"Log", NULL, cfx_op_log},
    {"LogSoftmax", imp_log_softmax},
    {"Mul", imp_mul},
    {"Neg", NULL, cfx_op_neg},
    {"Pow", imp_pow},
    {"ReduceMax", imp_reduce_max},
    {"ReduceMean", imp_reduce_mean},
    {"ReduceSum", imp_reduce_sum},
    {"Relu", NULL, cfx_op_relu},
    {"Sigmoid", NULL, cfx_op_sigmoid},
    {"Softmax", imp_softmax},
    {"Sqrt", NULL, cfx_op_sqrt},
    {"Sub", imp_sub},
    {"Sum", imp_sum},
    {"Tanh", NULL, cfx_op_tanh},
    {NULL, NULL},
};
