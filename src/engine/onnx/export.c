/* export.c - writes a graph as an ONNX file at opset 13 (cfx_onnx_save): the nodes that reach
 * the outputs, each through the writer of its op (a table by op type), which reads the node's
 * attribute struct. Ops with no ONNX node of their own become several (Affine as Mul then Add,
 * NormalCdf through Erf, ArgMax then a Cast to float); helper values (shapes, exponents, clip
 * bounds) are Constant nodes, so a re-import does not make them trainable parameters. */
#include "engine/onnx/onnx.h"

#include <math.h>
#include <stdio.h>

typedef struct exporter {
    cfx_graph *g;
    cfx__onnx_arena a;
    Onnx__NodeProto **nodes;
    size_t nn, ncap;
    Onnx__TensorProto **inits;
    size_t ni, icap;
    Onnx__ValueInfoProto **ins;
    size_t nin, incap;
    uint8_t *emitted;                /* per value: its input or initializer is written */
    int tmp;                         /* counter for names of helper tensors */
    Onnx__TensorProto *const_tensor; /* the value of the next Constant node */
} exporter;

static bool grow(void ***p, size_t *cap, size_t n) {
    if (n < *cap) return true;
    size_t c = *cap ? 2 * *cap : 64;
    void **q = cfx_realloc(*p, c * sizeof *q);
    if (!q) return false;
    *p = q, *cap = c;
    return true;
}

/* The ONNX name of value id: its graph name, else "v<id>" (kept in the arena). */
static const char *vname(exporter *e, int id) {
    const char *n = cfx_graph_value_name(e->g, id);
    if (n) return n;
    char b[32];
    snprintf(b, sizeof b, "v%d", id);
    return cfx__onnx_arena_str(&e->a, b);
}

static const char *tmp_name(exporter *e, const char *base) {
    char b[600];
    snprintf(b, sizeof b, "%s__%d", base, e->tmp++);
    return cfx__onnx_arena_str(&e->a, b);
}

static Onnx__TensorProto *add_init(exporter *e, const char *name, int dtype, int ndim,
                                   const int64_t *shape, const void *data, size_t bytes) {
    Onnx__TensorProto *t = cfx__onnx_arena_alloc(&e->a, sizeof *t);
    int64_t *dims = cfx__onnx_arena_alloc(&e->a, (size_t)(ndim + 1) * sizeof *dims);
    uint8_t *raw = cfx__onnx_arena_alloc(&e->a, bytes);
    if (!t || !dims || !raw || !grow((void ***)&e->inits, &e->icap, e->ni)) return NULL;
    onnx__tensor_proto__init(t);
    if (ndim) memcpy(dims, shape, (size_t)ndim * sizeof *dims); /* a scalar has no shape */
    if (bytes) memcpy(raw, data, bytes);
    t->n_dims = (size_t)ndim;
    t->dims = dims;
    t->has_data_type = 1;
    t->data_type = dtype;
    t->name = (char *)name;
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = bytes;
    e->inits[e->ni++] = t;
    return t;
}

struct xattr;

static cfx_status add_node(exporter *e, const char *op, const char *const *in, int nin,
                           const char *out, const struct xattr *at, int nat);

/* A Constant node holding the tensor (helper values: shapes, exponents, clip bounds), so that
 * re-importing does not turn them into trainable parameters. Returns its output name. */
static const char *const_node(exporter *e, const char *base, int dtype, int ndim,
                              const int64_t *shape, const void *data, size_t bytes) {
    const char *nm = tmp_name(e, base);
    if (!nm || !add_init(e, nm, dtype, ndim, shape, data, bytes)) return NULL;
    Onnx__TensorProto *t = e->inits[--e->ni]; /* taken back out of the initializers */
    e->const_tensor = t;
    return add_node(e, "Constant", NULL, 0, nm, NULL, 0) == CFX_OK ? nm : NULL;
}

static const char *const_ints_init(exporter *e, const char *base, const int64_t *v, int n) {
    int64_t shape[1] = {n};
    return const_node(e, base, CFX__ONNX_INT64, 1, shape, v, (size_t)n * 8);
}

static const char *const_float_init(exporter *e, const char *base, float v) {
    return const_node(e, base, CFX__ONNX_FLOAT, 0, NULL, &v, 4);
}

/* Makes sure value id exists in the file: an input, or an initializer with its data. */
static cfx_status emit_value(exporter *e, int id) {
    if (e->emitted[id]) return CFX_OK;
    e->emitted[id] = 1;
    cfx_value_kind k = cfx_graph_value_kind(e->g, id);
    const cfx_tensor *t = cfx_graph_tensor(e->g, id);
    if (k == CFX_VALUE_NODE) return CFX_OK;
    if (k == CFX_VALUE_INPUT) {
        int64_t shape[CFX_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (t->ndim > 0) shape[0] = -1;
        Onnx__ValueInfoProto *vi = cfx__onnx_value_info(&e->a, vname(e, id), t->ndim, shape);
        if (!vi || !grow((void ***)&e->ins, &e->incap, e->nin)) return CFX_ENOMEM;
        e->ins[e->nin++] = vi;
        return CFX_OK;
    }
    return add_init(e, vname(e, id), CFX__ONNX_FLOAT, t->ndim, t->shape, t->data,
                    (size_t)t->numel * sizeof(float))
               ? CFX_OK
               : CFX_ENOMEM;
}

struct xattr {
    const char *name;
    int type; /* 'i', 'f', 's', 'I' (ints) */
    int64_t i;
    float f;
    const char *s;
    const int64_t *ints;
    int n;
};

typedef struct xattr xattr;

/* Adds a node op(inputs) -> outputs with attributes. */
static cfx_status add_node(exporter *e, const char *op, const char *const *in, int nin,
                           const char *out, const struct xattr *at, int nat) {
    Onnx__NodeProto *n = cfx__onnx_arena_alloc(&e->a, sizeof *n);
    char **ins = cfx__onnx_arena_alloc(&e->a, (size_t)(nin + 1) * sizeof *ins);
    char **outs = cfx__onnx_arena_alloc(&e->a, sizeof *outs);
    Onnx__AttributeProto **attrs = cfx__onnx_arena_alloc(&e->a, (size_t)(nat + 1) * sizeof *attrs);
    if (!n || !ins || !outs || !attrs || !grow((void ***)&e->nodes, &e->ncap, e->nn))
        return CFX_ENOMEM;
    onnx__node_proto__init(n);
    for (int k = 0; k < nin; k++) ins[k] = (char *)(in[k] ? in[k] : "");
    outs[0] = (char *)out;
    for (int k = 0; k < nat; k++) {
        Onnx__AttributeProto *p = cfx__onnx_arena_alloc(&e->a, sizeof *p);
        if (!p) return CFX_ENOMEM;
        onnx__attribute_proto__init(p);
        p->name = (char *)at[k].name;
        p->has_type = 1;
        switch (at[k].type) {
            case 'i':
                p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
                p->has_i = 1, p->i = at[k].i;
                break;
            case 'f':
                p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
                p->has_f = 1, p->f = at[k].f;
                break;
            case 's':
                p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
                p->has_s = 1, p->s.data = (uint8_t *)at[k].s, p->s.len = strlen(at[k].s);
                break;
            default:
                p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
                p->n_ints = (size_t)at[k].n;
                p->ints = (int64_t *)at[k].ints;
        }
        attrs[k] = p;
    }
    n->n_input = (size_t)nin, n->input = ins;
    n->n_output = 1, n->output = outs;
    n->n_attribute = (size_t)nat, n->attribute = attrs;
    n->op_type = (char *)op;
    n->name = (char *)out;
    if (!strcmp(op, "Constant")) {
        Onnx__AttributeProto *p = cfx__onnx_arena_alloc(&e->a, sizeof *p);
        Onnx__AttributeProto **pp = cfx__onnx_arena_alloc(&e->a, sizeof *pp);
        if (!p || !pp) return CFX_ENOMEM;
        onnx__attribute_proto__init(p);
        p->name = "value";
        p->has_type = 1;
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
        p->t = e->const_tensor;
        p->t->name = NULL;
        pp[0] = p;
        n->n_attribute = 1, n->attribute = pp;
    }
    e->nodes[e->nn++] = n;
    return CFX_OK;
}

#define AI(nm, v)                                                                                  \
    { .name = nm, .type = 'i', .i = (v) }

#define AF(nm, v)                                                                                  \
    { .name = nm, .type = 'f', .f = (v) }

#define AS(nm, v)                                                                                  \
    { .name = nm, .type = 's', .s = (v) }

#define AIS(nm, p, c)                                                                              \
    { .name = nm, .type = 'I', .ints = (p), .n = (c) }

/* How each op is written: a writer gets the node, the names of its inputs (room for extra
 * helper inputs after them) and the name of its output, and adds the ONNX nodes. */
typedef cfx_status (*writer_fn)(exporter *e, const cfx__node *n, const char **in, const char *out);

/* Ops whose ONNX node has the same type, the same inputs and no attributes. */
static cfx_status write_same(exporter *e, const cfx__node *n, const char **in, const char *out) {
    return add_node(e, n->op->name, in, n->nin, out, NULL, 0);
}

/* Pow of two tensors as is; of a tensor and the scalar exponent attribute, with the exponent as a
 * constant input. */
static cfx_status write_pow(exporter *e, const cfx__node *n, const char **in, const char *out) {
    if (n->nin != 1) return write_same(e, n, in, out);
    in[1] = const_float_init(e, out, ((const cfx__unary_attr *)n->attr)->p);
    return add_node(e, "Pow", in, 2, out, NULL, 0);
}

static cfx_status write_leaky_relu(exporter *e, const cfx__node *n, const char **in,
                                   const char *out) {
    xattr a[] = {AF("alpha", ((const cfx__unary_attr *)n->attr)->alpha)};
    return add_node(e, "LeakyRelu", in, 1, out, a, 1);
}

/* Clip's bounds are optional inputs: an infinite one is left out. */
static cfx_status write_clip(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__unary_attr *u = n->attr;
    in[1] = isinf(u->lo) ? NULL : const_float_init(e, out, u->lo);
    in[2] = isinf(u->hi) ? NULL : const_float_init(e, out, u->hi);
    return add_node(e, "Clip", in, in[2] ? 3 : in[1] ? 2 : 1, out, NULL, 0);
}

/* scale * x + shift as Mul then Add. */
static cfx_status write_affine(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__unary_attr *u = n->attr;
    const char *m = tmp_name(e, out);
    const char *a1[] = {in[0], const_float_init(e, out, u->scale)};
    CFX_TRY(add_node(e, "Mul", a1, 2, m, NULL, 0));
    const char *a2[] = {m, const_float_init(e, out, u->shift)};
    return add_node(e, "Add", a2, 2, out, NULL, 0);
}

/* Phi(x) = 0.5 (1 + erf(x / sqrt 2)). */
static cfx_status write_normal_cdf(exporter *e, const cfx__node *n, const char **in,
                                   const char *out) {
    const char *t1 = tmp_name(e, out), *t2 = tmp_name(e, out), *t3 = tmp_name(e, out);
    const char *a1[] = {in[0], const_float_init(e, out, 0.70710678118654752f)};
    const char *a2[] = {t1};
    const char *a3[] = {t2, const_float_init(e, out, 1.0f)};
    const char *a4[] = {t3, const_float_init(e, out, 0.5f)};
    CFX_TRY(add_node(e, "Mul", a1, 2, t1, NULL, 0));
    CFX_TRY(add_node(e, "Erf", a2, 1, t2, NULL, 0));
    CFX_TRY(add_node(e, "Add", a3, 2, t3, NULL, 0));
    return add_node(e, "Mul", a4, 2, out, NULL, 0);
}

/* Conv and ConvTranspose; only the transpose has output_padding. */
static cfx_status write_conv_any(exporter *e, const cfx__node *n, const char **in, const char *out,
                                 bool transpose) {
    const cfx_conv2d_attr *c = n->attr;
    const cfx_tensor *w = cfx_graph_tensor(e->g, n->in[1]);
    int64_t *v = cfx__onnx_arena_alloc(&e->a, 16 * sizeof *v);
    if (!v) return CFX_ENOMEM;
    v[0] = w->shape[2], v[1] = w->shape[3];
    v[2] = c->stride[0] ? c->stride[0] : 1, v[3] = c->stride[1] ? c->stride[1] : 1;
    for (int k = 0; k < 4; k++) v[4 + k] = c->pad[k];
    v[8] = c->dilation[0] ? c->dilation[0] : 1, v[9] = c->dilation[1] ? c->dilation[1] : 1;
    v[10] = c->output_padding[0], v[11] = c->output_padding[1];
    xattr a[] = {AIS("kernel_shape", v, 2),
                 AIS("strides", v + 2, 2),
                 AIS("pads", v + 4, 4),
                 AIS("dilations", v + 8, 2),
                 AI("group", c->groups ? c->groups : 1),
                 AIS("output_padding", v + 10, 2)};
    return add_node(e, n->op->name, in, n->in[2] >= 0 ? 3 : 2, out, a, transpose ? 6 : 5);
}

static cfx_status write_conv(exporter *e, const cfx__node *n, const char **in, const char *out) {
    return write_conv_any(e, n, in, out, false);
}

static cfx_status write_conv_transpose(exporter *e, const cfx__node *n, const char **in,
                                       const char *out) {
    return write_conv_any(e, n, in, out, true);
}

/* MaxPool has dilations, AveragePool count_include_pad. */
static cfx_status write_pool_any(exporter *e, const cfx__node *n, const char **in, const char *out,
                                 bool max) {
    const cfx_pool2d_attr *p = n->attr;
    int64_t *v = cfx__onnx_arena_alloc(&e->a, 12 * sizeof *v);
    if (!v) return CFX_ENOMEM;
    v[0] = p->kernel[0], v[1] = p->kernel[1];
    v[2] = p->stride[0] ? p->stride[0] : p->kernel[0];
    v[3] = p->stride[1] ? p->stride[1] : p->kernel[1];
    for (int k = 0; k < 4; k++) v[4 + k] = p->pad[k];
    v[8] = p->dilation[0] ? p->dilation[0] : 1, v[9] = p->dilation[1] ? p->dilation[1] : 1;
    xattr a[] = {AIS("kernel_shape", v, 2), AIS("strides", v + 2, 2), AIS("pads", v + 4, 4),
                 AI("ceil_mode", p->ceil_mode),
                 max ? (xattr)AIS("dilations", v + 8, 2)
                     : (xattr)AI("count_include_pad", p->count_include_pad)};
    return add_node(e, n->op->name, in, 1, out, a, 5);
}

static cfx_status write_max_pool(exporter *e, const cfx__node *n, const char **in,
                                 const char *out) {
    return write_pool_any(e, n, in, out, true);
}

static cfx_status write_avg_pool(exporter *e, const cfx__node *n, const char **in,
                                 const char *out) {
    return write_pool_any(e, n, in, out, false);
}

/* Gemm with its attributes; Linear (x W^T + b) is the Gemm with transB. */
static cfx_status write_gemm_attr(exporter *e, const cfx__node *n, const char **in, const char *out,
                                  cfx__gemm_attr g) {
    xattr a[] = {AI("transA", g.trans_a), AI("transB", g.trans_b),
                 AF("alpha", g.alpha == 0 && g.beta == 0 ? 1 : g.alpha),
                 AF("beta", g.alpha == 0 && g.beta == 0 ? 1 : g.beta)};
    return add_node(e, "Gemm", in, n->in[2] >= 0 ? 3 : 2, out, a, 4);
}

static cfx_status write_gemm(exporter *e, const cfx__node *n, const char **in, const char *out) {
    return write_gemm_attr(e, n, in, out, *(const cfx__gemm_attr *)n->attr);
}

static cfx_status write_linear(exporter *e, const cfx__node *n, const char **in, const char *out) {
    return write_gemm_attr(e, n, in, out, (cfx__gemm_attr){.trans_b = 1, .alpha = 1, .beta = 1});
}

static cfx_status write_batch_norm(exporter *e, const cfx__node *n, const char **in,
                                   const char *out) {
    const cfx__bn_attr *b = n->attr;
    xattr a[] = {AF("epsilon", b->eps ? b->eps : 1e-5f),
                 AF("momentum", 1.0f - (b->momentum ? b->momentum : 0.1f))};
    return add_node(e, "BatchNormalization", in, 5, out, a, 2);
}

static cfx_status write_instance_norm(exporter *e, const cfx__node *n, const char **in,
                                      const char *out) {
    xattr a[] = {AF("epsilon", ((const cfx__in_attr *)n->attr)->eps)};
    return add_node(e, "InstanceNormalization", in, 3, out, a, 1);
}

static cfx_status write_dropout(exporter *e, const cfx__node *n, const char **in, const char *out) {
    in[1] = const_float_init(e, out, ((const cfx__dropout_attr *)n->attr)->p);
    return add_node(e, "Dropout", in, 2, out, NULL, 0);
}

static cfx_status write_flatten(exporter *e, const cfx__node *n, const char **in, const char *out) {
    xattr a[] = {AI("axis", ((const cfx__flatten_attr *)n->attr)->axis)};
    return add_node(e, "Flatten", in, 1, out, a, 1);
}

static cfx_status write_reshape(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__reshape_attr *r = n->attr;
    in[1] = const_ints_init(e, out, r->shape, r->ndim);
    return add_node(e, "Reshape", in, 2, out, NULL, 0);
}

static cfx_status write_transpose(exporter *e, const cfx__node *n, const char **in,
                                  const char *out) {
    const cfx__perm_attr *p = n->attr;
    int64_t *v = cfx__onnx_arena_alloc(&e->a, CFX_MAX_DIMS * sizeof *v);
    if (!v) return CFX_ENOMEM;
    for (int k = 0; k < p->ndim; k++) v[k] = p->perm[k];
    xattr a[] = {AIS("perm", v, p->ndim)};
    return add_node(e, "Transpose", in, 1, out, a, 1);
}

static cfx_status write_concat(exporter *e, const cfx__node *n, const char **in, const char *out) {
    xattr a[] = {AI("axis", ((const cfx__concat_attr *)n->attr)->axis)};
    return add_node(e, "Concat", in, n->nin, out, a, 1);
}

/* Slice's starts, ends, axes and steps are constant inputs from opset 10 on. */
static cfx_status write_slice(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__slice_attr *s = n->attr;
    int64_t ax[CFX_MAX_DIMS];
    for (int k = 0; k < s->naxes; k++) ax[k] = s->axes[k];
    in[1] = const_ints_init(e, out, s->starts, s->naxes);
    in[2] = const_ints_init(e, out, s->ends, s->naxes);
    in[3] = const_ints_init(e, out, ax, s->naxes);
    in[4] = const_ints_init(e, out, s->steps, s->naxes);
    return add_node(e, "Slice", in, 5, out, NULL, 0);
}

static cfx_status write_pad(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__pad_attr *p = n->attr;
    in[1] = const_ints_init(e, out, p->pads, 2 * p->ndim);
    in[2] = const_float_init(e, out, p->value);
    xattr a[] = {AS("mode", p->mode == CFX_PAD_REFLECT ? "reflect"
                            : p->mode == CFX_PAD_EDGE  ? "edge"
                                                       : "constant")};
    return add_node(e, "Pad", in, 3, out, a, 1);
}

/* ReduceSum takes its axes as an input from opset 13 on; ReduceMean and ReduceMax keep the
 * attribute until opset 18. */
static cfx_status write_reduce(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__reduce_attr *r = n->attr;
    const char *op = n->op->name;
    int64_t *v = cfx__onnx_arena_alloc(&e->a, CFX_MAX_DIMS * sizeof *v);
    if (!v) return CFX_ENOMEM;
    for (int k = 0; k < r->naxes; k++) v[k] = r->axes[k];
    xattr a[] = {AI("keepdims", r->keepdims), AIS("axes", v, r->naxes)};
    if (!strcmp(op, "ReduceSum")) {
        if (r->naxes) in[1] = const_ints_init(e, out, v, r->naxes);
        return add_node(e, op, in, r->naxes ? 2 : 1, out, a, 1);
    }
    return add_node(e, op, in, 1, out, a, r->naxes ? 2 : 1);
}

/* Softmax and LogSoftmax along one axis (opset 13). */
static cfx_status write_softmax(exporter *e, const cfx__node *n, const char **in, const char *out) {
    xattr a[] = {AI("axis", ((const cfx__axis_attr *)n->attr)->axis)};
    return add_node(e, n->op->name, in, 1, out, a, 1);
}

/* ONNX's ArgMax gives int64; cfx's gives floats, so a Cast follows. */
static cfx_status write_argmax(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx__axis_attr *x = n->attr;
    const char *t = tmp_name(e, out);
    xattr a[] = {AI("axis", x->axis), AI("keepdims", x->keepdims)};
    CFX_TRY(add_node(e, "ArgMax", in, 1, t, a, 2));
    const char *ci[] = {t};
    xattr ca[] = {AI("to", CFX__ONNX_FLOAT)};
    return add_node(e, "Cast", ci, 1, out, ca, 1);
}

/* Resize (opset 13: X, roi, scales, sizes) with either sizes or scales. */
static cfx_status write_resize(exporter *e, const cfx__node *n, const char **in, const char *out) {
    const cfx_resize_attr *r = n->attr;
    const cfx_tensor *x = cfx_graph_tensor(e->g, n->in[0]);
    static const char *coords[] = {"half_pixel", "asymmetric", "align_corners",
                                   "pytorch_half_pixel"};
    static const char *nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    in[1] = "";
    if (r->out_h) {
        int64_t sz[4] = {x->shape[0], x->shape[1], r->out_h, r->out_w};
        in[2] = "";
        in[3] = const_ints_init(e, out, sz, 4);
    } else {
        float sc[4] = {1, 1, r->scale_h, r->scale_w};
        const char *nm = tmp_name(e, out);
        int64_t four = 4;
        if (!nm || !add_init(e, nm, CFX__ONNX_FLOAT, 1, &four, sc, sizeof sc)) return CFX_ENOMEM;
        in[2] = nm;
    }
    xattr a[] = {AS("mode", r->mode == CFX_RESIZE_NEAREST ? "nearest" : "linear"),
                 AS("coordinate_transformation_mode", coords[r->coord]),
                 AS("nearest_mode", nearest[r->nearest])};
    return add_node(e, "Resize", in, r->out_h ? 4 : 3, out, a, 3);
}

/* Every op cfx exports, by its cfx__op_def name. */
static const struct {
    const char *op;
    writer_fn write;
} writers[] = {
    {"Abs", write_same},
    {"Add", write_same},
    {"Affine", write_affine},
    {"ArgMax", write_argmax},
    {"AveragePool", write_avg_pool},
    {"BatchNormalization", write_batch_norm},
    {"Clip", write_clip},
    {"Concat", write_concat},
    {"Conv", write_conv},
    {"ConvTranspose", write_conv_transpose},
    {"Div", write_same},
    {"Dropout", write_dropout},
    {"Erf", write_same},
    {"Exp", write_same},
    {"Flatten", write_flatten},
    {"Gemm", write_gemm},
    {"GlobalAveragePool", write_same},
    {"InstanceNormalization", write_instance_norm},
    {"LeakyRelu", write_leaky_relu},
    {"Linear", write_linear},
    {"Log", write_same},
    {"LogSoftmax", write_softmax},
    {"MatMul", write_same},
    {"MaxPool", write_max_pool},
    {"Mul", write_same},
    {"Neg", write_same},
    {"NormalCdf", write_normal_cdf},
    {"Pad", write_pad},
    {"Pow", write_pow},
    {"ReduceMax", write_reduce},
    {"ReduceMean", write_reduce},
    {"ReduceSum", write_reduce},
    {"Relu", write_same},
    {"Reshape", write_reshape},
    {"Resize", write_resize},
    {"Sigmoid", write_same},
    {"Slice", write_slice},
    {"Softmax", write_softmax},
    {"Sqrt", write_same},
    {"Sub", write_same},
    {"Tanh", write_same},
    {"Transpose", write_transpose},
};

/* Writes one graph node as ONNX nodes. */
static cfx_status export_node(exporter *e, const cfx__node *n) {
    const char *op = n->op->name, *out = vname(e, n->out);
    const char *in[CFX_OP_MAX_IN + 4] = {0};
    for (int k = 0; k < n->nin; k++) {
        if (n->in[k] < 0) continue;
        CFX_TRY(emit_value(e, n->in[k]));
        in[k] = vname(e, n->in[k]);
    }
    for (size_t k = 0; k < sizeof writers / sizeof writers[0]; k++)
        if (!strcmp(op, writers[k].op)) return writers[k].write(e, n, in, out);
    return cfx_set_error(CFX_EUNSUPPORTED, "op '%s' (value '%s') has no ONNX export", op, out);
}

cfx_status cfx_onnx_save(cfx_graph *g, const char *path, const int *outputs, int n) {
    if (!g) return cfx_set_error(CFX_EINVAL, "save model: graph is NULL");
    int nv = cfx_graph_num_values(g);
    exporter e = {.g = g};
    uint8_t *mark = cfx_calloc((size_t)nv + 1, 1);
    int *outs = cfx_calloc((size_t)nv + 1, sizeof *outs);
    e.emitted = cfx_calloc((size_t)nv + 1, 1);
    cfx_status st = CFX_ENOMEM;
    int no = 0;
    if (!mark || !outs || !e.emitted) goto done;
    if (n > 0) {
        for (int k = 0; k < n; k++) {
            if (outputs[k] < 0 || outputs[k] >= nv) {
                st = cfx_set_error(CFX_EINVAL, "save model: no value %d", outputs[k]);
                goto done;
            }
            outs[no++] = outputs[k];
        }
    } else {
        for (int k = 0; k < nv; k++)
            if (g->values[k].is_output) outs[no++] = k;
    }
    if (!no) {
        st = cfx_set_error(CFX_EINVAL,
                           "save model: no outputs (mark some with cfx_graph_set_output)");
        goto done;
    }
    /* Nodes that reach an output, in graph order. */
    for (int k = 0; k < no; k++) mark[outs[k]] = 1;
    for (int k = g->nnodes - 1; k >= 0; k--) {
        const cfx__node *nd = &g->nodes[k];
        if (!mark[nd->out]) continue;
        for (int j = 0; j < nd->nin; j++)
            if (nd->in[j] >= 0) mark[nd->in[j]] = 1;
    }
    for (int k = 0; k < g->nnodes && (st = CFX_OK) == CFX_OK; k++) {
        if (!mark[g->nodes[k].out]) continue;
        st = export_node(&e, &g->nodes[k]);
        if (st != CFX_OK) goto done;
    }
    Onnx__ValueInfoProto **ovi = cfx__onnx_arena_alloc(&e.a, (size_t)no * sizeof *ovi);
    if (!ovi) {
        st = CFX_ENOMEM;
        goto done;
    }
    for (int k = 0; k < no; k++) {
        const cfx_tensor *t = cfx_graph_tensor(g, outs[k]);
        int64_t shape[CFX_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (t->ndim > 0) shape[0] = -1;
        if ((st = emit_value(&e, outs[k])) != CFX_OK) goto done;
        if (!(ovi[k] = cfx__onnx_value_info(&e.a, vname(&e, outs[k]), t->ndim, shape))) {
            st = CFX_ENOMEM;
            goto done;
        }
    }
    Onnx__ModelProto m;
    Onnx__GraphProto gr;
    Onnx__OperatorSetIdProto os;
    Onnx__OperatorSetIdProto *osp = &os;
    onnx__model_proto__init(&m);
    onnx__graph_proto__init(&gr);
    onnx__operator_set_id_proto__init(&os);
    os.domain = "";
    os.has_version = 1, os.version = 13;
    m.has_ir_version = 1, m.ir_version = 7;
    m.n_opset_import = 1, m.opset_import = &osp;
    m.producer_name = "cfx";
    m.producer_version = CFX_VERSION;
    m.graph = &gr;
    gr.name = "cfx";
    gr.n_node = e.nn, gr.node = e.nodes;
    gr.n_initializer = e.ni, gr.initializer = e.inits;
    gr.n_input = e.nin, gr.input = e.ins;
    gr.n_output = (size_t)no, gr.output = ovi;
    st = cfx__onnx_model_write(&m, path);
done:
    if (st == CFX_ENOMEM && !strstr(cfx_last_error(), "memory"))
        cfx_set_error(CFX_ENOMEM, "out of memory");
    cfx_free(mark);
    cfx_free(outs);
    cfx_free(e.emitted);
    cfx_free(e.nodes);
    cfx_free(e.inits);
    cfx_free(e.ins);
    cfx__onnx_arena_free(&e.a);
    return st == CFX_OK ? CFX_OK : cfx_error_context(st, "save model '%s'", path);
}
