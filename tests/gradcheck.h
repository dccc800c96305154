/* gradcheck.h - compares a graph's backward with central differences. */
#ifndef CFX_GRADCHECK_H
#define CFX_GRADCHECK_H

#include "test.h"

typedef struct gradcheck_opts {
    double eps;    /* finite-difference step; 0 reads as 1e-3 */
    double rtol;   /* 0 reads as 2e-2 */
    double atol;   /* 0 reads as 2e-3 */
    int max_elems; /* elements checked per tensor (sampled when larger); 0 reads as 48 */
    uint64_t seed; /* for the projection weights and the sample */
} gradcheck_opts;

/* For a compiled graph, checks d(sum(out * W))/dv for every input that requires a gradient and
 * every parameter, W random. Reseeds the graph before each forward so dropout repeats. Reports
 * each failing tensor with its worst element; returns the number of failing tensors. */
int gradcheck_at(const char *file, int line, cfx_graph *g, int out, const gradcheck_opts *o);

/* Fills a compiled graph's input x uniform in [-1, 1] and every parameter normal with standard
 * deviation param_scale, from seed. */
void gradcheck_fill(cfx_graph *g, int x, uint64_t seed, float param_scale);
#define CHECK_GRADS(g, out, opts) gradcheck_at(__FILE__, __LINE__, (g), (out), (opts))

#endif
