/* import_shape.c - importers of constants and shape ops: Constant, Shape, Cast, Gather,
 * Squeeze, Concat, Reshape, Slice, Pad, ... Most of them fold when their inputs are constants
 * (a shape computation) and become engine ops on graph values. */
#include "engine/onnx/onnx.h"

#include <math.h>

static cfx_status imp_constant(cfx__onnx_ctx *c) {
    const Onnx__AttributeProto *a;
    cfx__onnx_entry *e;
    if ((a = cfx__onnx_attr(c->node, "value")) && a->t) {
        e = cfx__onnx_define(c, cfx__onnx_out_name(c->node, 0));
        if (!e) return CFX_ENOMEM;
        CFX_TRY(cfx__onnx_entry_from_tensor(c, e, a->t, false));
        return cfx__onnx_entry_decode(c, e);
    }
    if ((a = cfx__onnx_attr(c->node, "value_float")) ||
        (a = cfx__onnx_attr(c->node, "value_int"))) {
        bool isf = a->has_f;
        if (!(e = cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0),
                                      isf ? CFX__ONNX_FLOAT : CFX__ONNX_INT64, 0, NULL)))
            return CFX_ENOMEM;
        if (isf)
            e->f[0] = a->f;
        else
            e->i[0] = a->i;
        return CFX_OK;
    }
    if ((a = cfx__onnx_attr(c->node, "value_floats")) ||
        (a = cfx__onnx_attr(c->node, "value_ints"))) {
        bool isf = a->n_floats > 0 || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        int64_t n = (int64_t)(isf ? a->n_floats : a->n_ints);
        if (!(e = cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0),
                                      isf ? CFX__ONNX_FLOAT : CFX__ONNX_INT64, 1, &n)))
            return CFX_ENOMEM;
        for (int64_t k = 0; k < n; k++) {
            if (isf)
                e->f[k] = a->floats[k];
            else
                e->i[k] = a->ints[k];
        }
        return CFX_OK;
    }
    return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                          "only value, value_float(s) and value_int(s) are supported");
}

static cfx_status imp_identity(cfx__onnx_ctx *c) {
    return cfx__onnx_alias_out(c, 0, 0);
}

static cfx_status imp_shape(cfx__onnx_ctx *c) {
    const char *nm = cfx__onnx_input(c, 0) ? cfx__onnx_input(c, 0) : "";
    cfx__onnx_entry *s = cfx__onnx_lookup(c, nm);
    if (!s) return cfx__onnx_fail(c, CFX_EFORMAT, "input '%s' has no value", nm);
    int ndim;
    int64_t shape[CFX_MAX_DIMS];
    bool from_graph = s->id >= 0;
    if (from_graph) {
        const cfx_tensor *t = cfx__onnx_tensor(c, s->id);
        ndim = t->ndim;
        memcpy(shape, t->shape, sizeof shape);
    } else {
        ndim = s->ndim;
        memcpy(shape, s->shape, sizeof shape);
    }
    int64_t start = cfx__onnx_attr_int(c->node, "start", 0),
            end = cfx__onnx_attr_int(c->node, "end", ndim);
    if (start < 0) start += ndim;
    if (end < 0) end += ndim;
    start = start < 0 ? 0 : start > ndim ? ndim : start;
    end = end < start ? start : end > ndim ? ndim : end;
    int64_t n = end - start;
    cfx__onnx_entry *o =
        cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0), CFX__ONNX_INT64, 1, &n);
    if (!o) return CFX_ENOMEM;
    for (int64_t k = 0; k < n; k++) {
        o->i[k] = shape[start + k];
        o->batch[k] = from_graph && start + k == 0;
    }
    return CFX_OK;
}

static cfx_status imp_cast(cfx__onnx_ctx *c) {
    int64_t to = cfx__onnx_attr_int(c->node, "to", CFX__ONNX_FLOAT);
    cfx__onnx_entry *s = cfx__onnx_const_of(c, cfx__onnx_input(c, 0));
    if (!s) {
        /* On a graph value (float already), a cast to float is the identity. */
        if (to == CFX__ONNX_FLOAT || to == CFX__ONNX_DOUBLE) return cfx__onnx_alias_out(c, 0, 0);
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                              "cast of a computed float tensor to type %lld (cfx "
                              "graphs are float)",
                              (long long)to);
    }
    cfx__onnx_entry cs = *s;
    bool ints = cfx__onnx_is_int_type((int)to);
    cfx__onnx_entry *o =
        cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0),
                            ints ? CFX__ONNX_INT64 : CFX__ONNX_FLOAT, cs.ndim, cs.shape);
    if (!o) return CFX_ENOMEM;
    for (int64_t k = 0; k < cs.numel; k++) {
        double v = cfx__onnx_cget(&cs, k);
        if (ints) {
            o->i[k] = to == CFX__ONNX_BOOL ? v != 0 : (int64_t)v;
            o->batch[k] = cs.dtype == CFX__ONNX_INT64 ? cs.batch[k] : 0;
        } else {
            o->f[k] = (float)v;
        }
    }
    return CFX_OK;
}

static cfx_status imp_constant_of_shape(cfx__onnx_ctx *c) {
    int64_t shape[CFX_MAX_DIMS];
    int nd = cfx__onnx_const_ints(c, 0, shape, CFX_MAX_DIMS, NULL);
    if (nd < 0) return CFX_EUNSUPPORTED;
    const Onnx__AttributeProto *a = cfx__onnx_attr(c->node, "value");
    int dt = CFX__ONNX_FLOAT;
    double v = 0;
    if (a && a->t) {
        dt = cfx__onnx_is_int_type(a->t->data_type) ? CFX__ONNX_INT64 : CFX__ONNX_FLOAT;
        if (dt == CFX__ONNX_INT64) {
            int64_t iv = 0;
            CFX_TRY(cfx__onnx_tensor_read(c->dir, a->t, NULL, &iv, 1));
            v = (double)iv;
        } else {
            float fv = 0;
            CFX_TRY(cfx__onnx_tensor_read(c->dir, a->t, &fv, NULL, 1));
            v = fv;
        }
    }
    cfx__onnx_entry *o = cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0), dt, nd, shape);
    if (!o) return CFX_ENOMEM;
    for (int64_t k = 0; k < o->numel; k++) {
        if (dt == CFX__ONNX_INT64)
            o->i[k] = (int64_t)v;
        else
            o->f[k] = (float)v;
    }
    return CFX_OK;
}

static cfx_status imp_range(cfx__onnx_ctx *c) {
    cfx__onnx_entry *s = cfx__onnx_const_of(c, cfx__onnx_input(c, 0)),
                    *l = cfx__onnx_const_of(c, cfx__onnx_input(c, 1)),
                    *d = cfx__onnx_const_of(c, cfx__onnx_input(c, 2));
    if (!s || !l || !d)
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "start, limit and delta must be constants");
    double a = cfx__onnx_cget(s, 0), b = cfx__onnx_cget(l, 0), st = cfx__onnx_cget(d, 0);
    if (st == 0) return cfx__onnx_fail(c, CFX_EINVAL, "delta is 0");
    int64_t n = (int64_t)ceil((b - a) / st);
    if (n < 0) n = 0;
    bool ints = s->dtype == CFX__ONNX_INT64;
    cfx__onnx_entry *o = cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0),
                                             ints ? CFX__ONNX_INT64 : CFX__ONNX_FLOAT, 1, &n);
    if (!o) return CFX_ENOMEM;
    for (int64_t k = 0; k < n; k++) {
        if (ints)
            o->i[k] = (int64_t)(a + st * (double)k);
        else
            o->f[k] = (float)(a + st * (double)k);
    }
    return CFX_OK;
}

/* Gather: folded when data and indices are constant; on a graph value, a constant scalar
 * index becomes Slice + Reshape (x[:, i]). */
static cfx_status imp_gather(cfx__onnx_ctx *c) {
    cfx__onnx_entry *ind = cfx__onnx_const_of(c, cfx__onnx_input(c, 1));
    if (!ind) return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "indices must be constant");
    cfx__onnx_entry ci = *ind;
    cfx__onnx_entry *d = cfx__onnx_const_of(c, cfx__onnx_input(c, 0));
    if (d) {
        cfx__onnx_entry cd = *d;
        int axis = cfx__onnx_norm_axis(cfx__onnx_attr_int(c->node, "axis", 0), cd.ndim);
        if (axis < 0 || axis >= cd.ndim) return cfx__onnx_fail(c, CFX_EINVAL, "axis out of range");
        if (cd.ndim > CFX_MAX_DIMS || cd.ndim + ci.ndim - 1 > CFX_MAX_DIMS)
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "too many dims");
        int64_t shape[CFX_MAX_DIMS], outer = 1, inner = 1, len = cd.shape[axis];
        int nd = 0;
        for (int k = 0; k < axis; k++) shape[nd++] = cd.shape[k], outer *= cd.shape[k];
        for (int k = 0; k < ci.ndim; k++) shape[nd++] = ci.shape[k];
        for (int k = axis + 1; k < cd.ndim; k++) shape[nd++] = cd.shape[k], inner *= cd.shape[k];
        cfx__onnx_entry *o =
            cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0), cd.dtype, nd, shape);
        if (!o) return CFX_ENOMEM;
        d = cfx__onnx_lookup(c, cfx__onnx_input(c, 0));
        ind = cfx__onnx_lookup(c, cfx__onnx_input(c, 1));
        int64_t q = 0;
        for (int64_t a = 0; a < outer; a++)
            for (int64_t j = 0; j < ci.numel; j++) {
                int64_t ix = (int64_t)cfx__onnx_cget(ind, j);
                if (ix < 0) ix += len;
                if (ix < 0 || ix >= len)
                    return cfx__onnx_fail(c, CFX_EINVAL, "index %lld out of range", (long long)ix);
                for (int64_t b = 0; b < inner; b++, q++) {
                    int64_t src = (a * len + ix) * inner + b;
                    if (cd.dtype == CFX__ONNX_INT64)
                        o->i[q] = d->i[src], o->batch[q] = d->batch[src];
                    else
                        o->f[q] = d->f[src];
                }
            }
        return CFX_OK;
    }
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    const cfx_tensor *t = cfx__onnx_tensor(c, x);
    int axis = cfx__onnx_norm_axis(cfx__onnx_attr_int(c->node, "axis", 0), t->ndim);
    if (ci.ndim != 0 || axis < 0 || axis >= t->ndim)
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                              "on a computed tensor only a scalar constant index is "
                              "supported");
    int64_t ix = (int64_t)cfx__onnx_cget(&ci, 0);
    if (ix < 0) ix += t->shape[axis];
    int ax = axis;
    int64_t st = ix, en = ix + 1, step = 1;
    int y = cfx_op_slice(c->g, x, 1, &ax, &st, &en, &step);
    if (y < 0) return cfx__onnx_graph_error(c);
    int64_t shape[CFX_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < t->ndim; k++)
        if (k != axis) shape[nd++] = k < axis ? 0 : t->shape[k];
    return cfx__onnx_set_out(c, 0, cfx_op_reshape(c->g, y, nd, shape));
}

/* A reshape of a graph value to an explicit shape; dimensions of the unchanged leading part
 * are written as 0 so they follow the input (a batch size set later). */
static int reshape_keep_prefix(cfx__onnx_ctx *c, int x, int nd, const int64_t *shape) {
    const cfx_tensor *t = cfx__onnx_tensor(c, x);
    int64_t s[CFX_MAX_DIMS];
    bool same = true;
    for (int k = 0; k < nd; k++) {
        same = same && k < t->ndim && shape[k] == t->shape[k];
        s[k] = same ? 0 : shape[k];
    }
    return cfx_op_reshape(c->g, x, nd, s);
}

static cfx_status imp_squeeze_unsqueeze(cfx__onnx_ctx *c, bool unsq) {
    int64_t axes[CFX_MAX_DIMS];
    int na = cfx__onnx_axes_of(c, axes, c->opset >= 13);
    if (na < 0) return CFX_EUNSUPPORTED;
    cfx__onnx_entry *e = cfx__onnx_const_of(c, cfx__onnx_input(c, 0));
    int ndim;
    int64_t in[CFX_MAX_DIMS], out[CFX_MAX_DIMS];
    int x = -1;
    if (e) {
        ndim = e->ndim;
        memcpy(in, e->shape, sizeof in);
    } else {
        if ((x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false)) < 0) return CFX_EINVAL;
        ndim = cfx__onnx_tensor(c, x)->ndim;
        memcpy(in, cfx__onnx_tensor(c, x)->shape, sizeof in);
    }
    int nd = 0;
    if (unsq) {
        nd = ndim + na;
        if (nd > CFX_MAX_DIMS)
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "more than %d dims", CFX_MAX_DIMS);
        bool ins[CFX_MAX_DIMS] = {0};
        for (int k = 0; k < na; k++) {
            int a = cfx__onnx_norm_axis(axes[k], nd);
            if (a < 0 || a >= nd || ins[a])
                return cfx__onnx_fail(c, CFX_EINVAL, "bad axis %lld", (long long)axes[k]);
            ins[a] = true;
        }
        for (int k = 0, j = 0; k < nd; k++) out[k] = ins[k] ? 1 : in[j++];
    } else {
        bool rm[CFX_MAX_DIMS] = {0};
        for (int k = 0; k < na; k++) {
            int a = cfx__onnx_norm_axis(axes[k], ndim);
            if (a < 0 || a >= ndim || in[a] != 1)
                return cfx__onnx_fail(c, CFX_EINVAL, "axis %lld is not a dimension of size 1",
                                      (long long)axes[k]);
            rm[a] = true;
        }
        for (int k = 0; k < ndim; k++)
            if (!(na ? rm[k] : in[k] == 1)) out[nd++] = in[k];
    }
    if (e) return cfx__onnx_fold_reshape(c, e, nd, out);
    return cfx__onnx_set_out(c, 0, reshape_keep_prefix(c, x, nd, out));
}

static cfx_status imp_squeeze(cfx__onnx_ctx *c) {
    return imp_squeeze_unsqueeze(c, false);
}

static cfx_status imp_unsqueeze(cfx__onnx_ctx *c) {
    return imp_squeeze_unsqueeze(c, true);
}

static cfx_status imp_concat(cfx__onnx_ctx *c) {
    size_t n = c->node->n_input;
    if (n == 0) return cfx__onnx_fail(c, CFX_EINVAL, "a Concat needs at least one input");
    bool all_const = true;
    for (size_t k = 0; k < n; k++)
        all_const = all_const && cfx__onnx_const_of(c, cfx__onnx_input(c, k));
    if (all_const && n > 0) {
        cfx__onnx_entry *f = cfx__onnx_const_of(c, cfx__onnx_input(c, 0));
        int nd = f->ndim, axis = cfx__onnx_norm_axis(cfx__onnx_attr_int(c->node, "axis", 0), nd);
        if (axis < 0 || axis >= nd) return cfx__onnx_fail(c, CFX_EINVAL, "axis out of range");
        int64_t shape[CFX_MAX_DIMS], outer = 1, inner = 1, total = 0;
        memcpy(shape, f->shape, sizeof shape);
        bool ints = true;
        for (size_t k = 0; k < n; k++) {
            cfx__onnx_entry *e = cfx__onnx_const_of(c, cfx__onnx_input(c, k));
            if (e->ndim != nd) return cfx__onnx_fail(c, CFX_ESHAPE, "inputs differ in rank");
            total += e->shape[axis];
            ints = ints && e->dtype == CFX__ONNX_INT64;
        }
        for (int k = 0; k < axis; k++) outer *= shape[k];
        for (int k = axis + 1; k < nd; k++) inner *= shape[k];
        shape[axis] = total;
        cfx__onnx_entry *o = cfx__onnx_new_const(
            c, cfx__onnx_out_name(c->node, 0), ints ? CFX__ONNX_INT64 : CFX__ONNX_FLOAT, nd, shape);
        if (!o) return CFX_ENOMEM;
        int64_t off = 0;
        for (size_t k = 0; k < n; k++) {
            cfx__onnx_entry *e = cfx__onnx_lookup(c, cfx__onnx_input(c, k));
            o = cfx__onnx_lookup(c, cfx__onnx_out_name(c->node, 0));
            int64_t len = e->shape[axis];
            for (int64_t a = 0; a < outer; a++)
                for (int64_t j = 0; j < len * inner; j++) {
                    int64_t dst = (a * total + off) * inner + j, src = a * len * inner + j;
                    if (ints)
                        o->i[dst] = e->i[src], o->batch[dst] = e->batch[src];
                    else
                        o->f[dst] = (float)cfx__onnx_cget(e, src);
                }
            off += len;
        }
        return CFX_OK;
    }
    int ids[64];
    if (n > 64) return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "more than 64 inputs");
    for (size_t k = 0; k < n; k++)
        if ((ids[k] = cfx__onnx_value_of(c, cfx__onnx_input(c, k), false)) < 0) return CFX_EINVAL;
    int axis = cfx__onnx_norm_axis(cfx__onnx_attr_int(c->node, "axis", 0),
                                   cfx__onnx_tensor(c, ids[0])->ndim);
    return cfx__onnx_set_out(c, 0, cfx_op_concat(c->g, ids, (int)n, axis));
}

static cfx_status imp_flatten(cfx__onnx_ctx *c) {
    cfx__onnx_entry *e = cfx__onnx_const_of(c, cfx__onnx_input(c, 0));
    int x = e ? -1 : cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (!e && x < 0) return CFX_EINVAL;
    int nd = e ? e->ndim : cfx__onnx_tensor(c, x)->ndim;
    int axis = cfx__onnx_norm_axis(cfx__onnx_attr_int(c->node, "axis", 1), nd);
    if (!e) return cfx__onnx_set_out(c, 0, cfx_op_flatten(c->g, x, axis));
    int64_t s[2] = {1, 1};
    for (int k = 0; k < nd; k++) s[k >= axis] *= e->shape[k];
    return cfx__onnx_fold_reshape(c, e, 2, s);
}

static cfx_status imp_reshape(cfx__onnx_ctx *c) {
    int64_t shape[CFX_MAX_DIMS];
    uint8_t batch[CFX_MAX_DIMS];
    int nd = cfx__onnx_const_ints(c, 1, shape, CFX_MAX_DIMS, batch);
    if (nd < 0) return CFX_EUNSUPPORTED;
    bool allowzero = cfx__onnx_attr_int(c->node, "allowzero", 0) != 0;
    for (int k = 0; k < nd; k++)
        if (allowzero && shape[k] == 0)
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED,
                                  "allowzero with a 0 in the shape (an empty tensor)");
    cfx__onnx_entry *e = cfx__onnx_const_of(c, cfx__onnx_input(c, 0));
    if (e) {
        int64_t s[CFX_MAX_DIMS], known = 1;
        int infer = -1;
        for (int k = 0; k < nd; k++) {
            if (shape[k] == 0 && k >= e->ndim)
                return cfx__onnx_fail(c, CFX_EFORMAT,
                                      "Reshape: a 0 (copy) in dimension %d of a %d-d input", k,
                                      e->ndim);
            s[k] = shape[k] == 0 ? e->shape[k] : shape[k];
            /* The product is checked as it grows (found by fuzzing: it overflowed int64). */
            if (s[k] == -1)
                infer = k;
            else if (s[k] < 0 || __builtin_mul_overflow(known, s[k], &known))
                return cfx__onnx_fail(c, CFX_EFORMAT,
                                      "Reshape: the target shape (size %lld in dimension %d) is "
                                      "negative or overflows",
                                      (long long)s[k], k);
        }
        if (infer >= 0) s[infer] = known ? e->numel / known : 0;
        return cfx__onnx_fold_reshape(c, e, nd, s);
    }
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    /* A size read from the batch dimension becomes 0, "copy the input's", when it is there. */
    const cfx_tensor *t = cfx__onnx_tensor(c, x);
    for (int k = 0; k < nd; k++)
        if (batch[k] && k == 0 && t->ndim > 0 && shape[0] == t->shape[0]) shape[k] = 0;
    return cfx__onnx_set_out(c, 0, cfx_op_reshape(c->g, x, nd, shape));
}

static cfx_status imp_transpose(cfx__onnx_ctx *c) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    int nd = cfx__onnx_tensor(c, x)->ndim;
    int64_t p[CFX_MAX_DIMS];
    int perm[CFX_MAX_DIMS];
    int n = cfx__onnx_attr_ints(c->node, "perm", p, CFX_MAX_DIMS);
    for (int k = 0; k < nd; k++) perm[k] = n == nd ? (int)p[k] : nd - 1 - k;
    if (n >= 0 && n != nd)
        return cfx__onnx_fail(c, CFX_EINVAL, "perm has %d values for %d dims", n, nd);
    return cfx__onnx_set_out(c, 0, cfx_op_transpose(c->g, x, perm));
}

static cfx_status imp_slice(cfx__onnx_ctx *c) {
    int64_t st[CFX_MAX_DIMS], en[CFX_MAX_DIMS], ax[CFX_MAX_DIMS], sp[CFX_MAX_DIMS];
    int n;
    if (c->opset < 10) {
        n = cfx__onnx_attr_ints(c->node, "starts", st, CFX_MAX_DIMS);
        if (n < 0 || cfx__onnx_attr_ints(c->node, "ends", en, CFX_MAX_DIMS) != n)
            return cfx__onnx_fail(c, CFX_EINVAL, "starts and ends must have the same length");
        if (cfx__onnx_attr_ints(c->node, "axes", ax, CFX_MAX_DIMS) != n)
            for (int k = 0; k < n; k++) ax[k] = k;
        for (int k = 0; k < n; k++) sp[k] = 1;
    } else {
        n = cfx__onnx_const_ints(c, 1, st, CFX_MAX_DIMS, NULL);
        if (n < 0 || cfx__onnx_const_ints(c, 2, en, CFX_MAX_DIMS, NULL) != n)
            return CFX_EUNSUPPORTED;
        if (!cfx__onnx_input(c, 3))
            for (int k = 0; k < n; k++) ax[k] = k;
        else if (cfx__onnx_const_ints(c, 3, ax, CFX_MAX_DIMS, NULL) != n)
            return CFX_EUNSUPPORTED;
        if (!cfx__onnx_input(c, 4))
            for (int k = 0; k < n; k++) sp[k] = 1;
        else if (cfx__onnx_const_ints(c, 4, sp, CFX_MAX_DIMS, NULL) != n)
            return CFX_EUNSUPPORTED;
    }
    cfx__onnx_entry *e = cfx__onnx_const_of(c, cfx__onnx_input(c, 0));
    if (e && e->ndim == 1 && n == 1) {
        /* A 1-D constant (a shape): fold, with ONNX's clamping. */
        cfx__onnx_entry ce = *e;
        int64_t len = ce.shape[0], s = st[0], t = en[0], step = sp[0];
        if (step == 0) return cfx__onnx_fail(c, CFX_EINVAL, "step 0");
        if (s < 0) s += len;
        if (t < 0) t += len;
        if (step > 0) {
            s = s < 0 ? 0 : s > len ? len : s;
            t = t < 0 ? 0 : t > len ? len : t;
        } else {
            s = s < 0 ? -1 : s > len - 1 ? len - 1 : s;
            t = t < -1 ? -1 : t > len - 1 ? len - 1 : t;
        }
        int64_t cnt = 0;
        for (int64_t q = s; step > 0 ? q < t : q > t; q += step) cnt++;
        cfx__onnx_entry *o =
            cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0), ce.dtype, 1, &cnt);
        if (!o) return CFX_ENOMEM;
        e = cfx__onnx_lookup(c, cfx__onnx_input(c, 0));
        int64_t j = 0;
        for (int64_t q = s; step > 0 ? q < t : q > t; q += step, j++) {
            if (ce.dtype == CFX__ONNX_INT64)
                o->i[j] = e->i[q], o->batch[j] = e->batch[q];
            else
                o->f[j] = e->f[q];
        }
        return CFX_OK;
    }
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    int axes[CFX_MAX_DIMS];
    for (int k = 0; k < n; k++) axes[k] = (int)ax[k];
    return cfx__onnx_set_out(c, 0, cfx_op_slice(c->g, x, n, axes, st, en, sp));
}

static cfx_status imp_pad(cfx__onnx_ctx *c) {
    int x = cfx__onnx_value_of(c, cfx__onnx_input(c, 0), false);
    if (x < 0) return CFX_EINVAL;
    int nd = cfx__onnx_tensor(c, x)->ndim;
    int64_t pads[2 * CFX_MAX_DIMS];
    float value = 0;
    int n;
    if (c->opset < 11) {
        n = cfx__onnx_attr_ints(c->node, "pads", pads, 2 * CFX_MAX_DIMS);
        value = cfx__onnx_attr_float(c->node, "value", 0);
    } else {
        n = cfx__onnx_const_ints(c, 1, pads, 2 * CFX_MAX_DIMS, NULL);
        if (n < 0) return CFX_EUNSUPPORTED;
        if (cfx__onnx_input(c, 2) && cfx__onnx_const_floats(c, 2, &value, 1) != 1)
            return CFX_EUNSUPPORTED;
        if (cfx__onnx_input(c, 3))
            return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "the axes input is not supported");
    }
    if (n != 2 * nd) return cfx__onnx_fail(c, CFX_EINVAL, "pads has %d values for %d dims", n, nd);
    char buf[32];
    const char *mode = cfx__onnx_attr_str(c->node, "mode", "constant", buf, sizeof buf);
    cfx_pad_mode pm = strcmp(mode, "reflect") == 0 ? CFX_PAD_REFLECT
                      : strcmp(mode, "edge") == 0  ? CFX_PAD_EDGE
                                                   : CFX_PAD_CONSTANT;
    if (pm == CFX_PAD_CONSTANT && strcmp(mode, "constant"))
        return cfx__onnx_fail(c, CFX_EUNSUPPORTED, "mode '%s' is not supported", mode);
    return cfx__onnx_set_out(c, 0, cfx_op_pad(c->g, x, pads, pm, value));
}

/* The ops this file imports, by ONNX op type; cfx__onnx_find_importer looks here. */
const cfx__onnx_importer cfx__onnx_shape_importers[] = {
    {"Cast", imp_cast},           {"Concat", imp_concat},
    {"Constant", imp_constant},   {"ConstantOfShape", imp_constant_of_shape},
    {"Flatten", imp_flatten},     {"Gather", imp_gather},
    {"Identity", imp_identity},   {"Pad", imp_pad},
    {"Range", imp_range},         {"Reshape", imp_reshape},
    {"Shape", imp_shape},         {"Slice", imp_slice},
    {"Squeeze", imp_squeeze},     {"Transpose", imp_transpose},
    {"Unsqueeze", imp_unsqueeze}, {NULL, NULL},
};
