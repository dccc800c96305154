/* ops.h - attribute structs of ops whose attributes are not public, shared by the op files and
 * the ONNX exporter (which reads a node's attributes to write them back out). */
#ifndef CFX_OPS_H
#define CFX_OPS_H

#include "graph.h"

/* Unary ops of src/elementwise.c: LeakyRelu uses alpha, Clip lo/hi, Pow (scalar) p,
 * Affine scale/shift. */
typedef struct cfx_unary_attr {
    float alpha, lo, hi, p, scale, shift;
} cfx_unary_attr;

#endif
