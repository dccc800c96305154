/* fold.c - constant folding of the integer shape arithmetic that PyTorch emits for flatten and
 * view (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, with Add/Sub/Mul/Div on the way), so
 * the engine graph holds only float ops. Elements that came from the batch dimension keep their
 * flag through * 1 and / 1, so a Reshape can still write them as "keep this dimension". */
#include "engine/onnx/onnx.h"

/* Index into a broadcast operand: the flat output index split by the output shape. */
static int64_t bcast_index(const cfx__onnx_entry *e, int ndim, const int64_t *oshape,
                           int64_t flat) {
    int64_t idx = 0, stride = 1;
    for (int d = ndim - 1, ed = e->ndim - 1; d >= 0; d--, ed--) {
        int64_t coord = flat % oshape[d];
        flat /= oshape[d];
        if (ed < 0) continue;
        if (e->shape[ed] != 1) idx += coord * stride;
        stride *= e->shape[ed];
    }
    return idx;
}

/* Add/Sub/Mul/Div (and Equal-free arithmetic) on two folded constants, NumPy broadcasting;
 * integer division truncates as ONNX's integer Div. */
cfx_status cfx__onnx_fold_binary(cfx__onnx_ctx *c, cfx__onnx_entry *a, cfx__onnx_entry *b,
                                 char op) {
    int ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t shape[CFX_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        int ia = d - (ndim - a->ndim), ib = d - (ndim - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return cfx__onnx_fail(c, CFX_ESHAPE, "constant operands do not broadcast");
        shape[d] = da == 1 ? db : da;
    }
    bool ints = a->dtype == CFX__ONNX_INT64 && b->dtype == CFX__ONNX_INT64;
    cfx__onnx_entry ca = *a, cb = *b; /* new_const may move the table */
    cfx__onnx_entry *o = cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0),
                                             ints ? CFX__ONNX_INT64 : CFX__ONNX_FLOAT, ndim, shape);
    if (!o) return CFX_ENOMEM;
    for (int64_t k = 0; k < o->numel; k++) {
        int64_t ia = bcast_index(&ca, ndim, shape, k), ib = bcast_index(&cb, ndim, shape, k);
        if (ints) {
            int64_t x = ca.i[ia], y = cb.i[ib];
            if (op == '/' && y == 0)
                return cfx__onnx_fail(c, CFX_EINVAL, "integer division by zero");
            o->i[k] = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
            /* A batch size times or divided by 1 is still the batch size. */
            o->batch[k] = (ca.batch[ia] && ((op == '*' && y == 1) || (op == '/' && y == 1))) ||
                          (cb.batch[ib] && op == '*' && x == 1);
        } else {
            double x = cfx__onnx_cget(&ca, ia), y = cfx__onnx_cget(&cb, ib);
            o->f[k] = (float)(op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y);
        }
    }
    return CFX_OK;
}

/* The output of a shape-only change of a constant (Reshape, Flatten, Squeeze, Unsqueeze). */
cfx_status cfx__onnx_fold_reshape(cfx__onnx_ctx *c, cfx__onnx_entry *src, int ndim,
                                  const int64_t *shape) {
    cfx__onnx_entry s = *src;
    cfx__onnx_entry *o =
        cfx__onnx_new_const(c, cfx__onnx_out_name(c->node, 0), s.dtype, ndim, shape);
    if (!o) return CFX_ENOMEM;
    if (o->numel != s.numel)
        return cfx__onnx_fail(c, CFX_ESHAPE, "constant reshape changes the size");
    if (s.dtype == CFX__ONNX_INT64) {
        memcpy(o->i, s.i, (size_t)s.numel * sizeof *o->i);
        memcpy(o->batch, s.batch, (size_t)s.numel);
    } else {
        memcpy(o->f, s.f, (size_t)s.numel * sizeof *o->f);
    }
    return CFX_OK;
}
