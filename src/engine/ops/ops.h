/* ops.h - attribute structs of ops whose attributes are not public, shared by the op files and
 * the ONNX exporter (which reads a node's attributes to write them back out). */
#ifndef CFX_OPS_H
#define CFX_OPS_H

#include "engine/graph.h"

/* Unary ops of src/elementwise.c: LeakyRelu uses alpha, Clip lo/hi, Pow (scalar) p,
 * Affine scale/shift. */
typedef struct cfx__unary_attr {
    float alpha, lo, hi, p, scale, shift;
} cfx__unary_attr;

/* Gemm (src/linear.c). */
typedef struct {
    int trans_a, trans_b;
    float alpha, beta;
} cfx__gemm_attr;

/* ReduceSum/Mean/Max, and the axis of ArgMax, Softmax and LogSoftmax (src/reduce.c). */
typedef struct {
    cfx_reduce_kind kind;
    int axes[CFX_MAX_DIMS];
    int naxes;
    int keepdims;
} cfx__reduce_attr;
typedef struct {
    int axis;
    int keepdims;
} cfx__axis_attr;

/* BatchNormalization (PyTorch's momentum) and Dropout (src/norm.c). */
typedef struct {
    float eps, momentum;
} cfx__bn_attr;
typedef struct {
    float p;
} cfx__dropout_attr;
typedef struct {
    float eps;
} cfx__in_attr;

/* Shape ops (src/shape.c): Flatten, Reshape (0 copies, -1 infers), Transpose, Concat, Slice,
 * Pad (pads: begins then ends). */
typedef struct {
    int axis;
} cfx__flatten_attr;
typedef struct {
    int ndim;
    int64_t shape[CFX_MAX_DIMS];
} cfx__reshape_attr;
typedef struct {
    int ndim;
    int perm[CFX_MAX_DIMS];
} cfx__perm_attr;
typedef struct {
    int axis;
} cfx__concat_attr;
typedef struct {
    int naxes;
    int axes[CFX_MAX_DIMS];
    int64_t starts[CFX_MAX_DIMS], ends[CFX_MAX_DIMS], steps[CFX_MAX_DIMS];
} cfx__slice_attr;
typedef struct {
    int ndim;
    int64_t pads[2 * CFX_MAX_DIMS];
    cfx_pad_mode mode;
    float value;
} cfx__pad_attr;

#endif
