/* distance.h - the image distances' graph builder (src/counterfactual/distance.c), shared by
 * cfx_distance_run and IGD's optimisation graph (gradient.c); not part of the public API. */
#ifndef CFX_COUNTERFACTUAL_DISTANCE_H
#define CFX_COUNTERFACTUAL_DISTANCE_H

#include "base/base.h"

/* D on two image values of one graph: term (N) is D(x_i, y_i). For the built-in LPIPS the
 * reference's feature maps, already normalised, are inputs of the graph (ref[0..nref), (N,C_l,
 * H_l,W_l)): they are constant per batch, so they are computed once per batch
 * (cfx__distance_reference) instead of at every iteration of IGD. */
typedef struct cfx__distance_term {
    int term;
    int nref;
    int *ref; /* owned: cfx__distance_term_deinit */
} cfx__distance_term;

/* Adds D(x, y) for image batches x (the reference, X) and y (X') of the uncompiled graph g,
 * both (N,C,H,W) with d's image shape; value names start with "distance/". For the built-in
 * LPIPS, y's feature maps are the values named features_prefix + (the tensor's name in the
 * classifier file) when features_prefix is not NULL (a graph that already runs the classifier
 * on y: cfx__competency_build names them "classifier/..."), otherwise the classifier's layers
 * up to them are imported on y. Differentiable with respect to y. */
cfx_status cfx__distance_add(cfx_distance *d, cfx_graph *g, int x, int y,
                             const char *features_prefix, cfx__distance_term *t);
/* After compile, with g's batch set to m: writes the reference's feature maps of the m images
 * x (m x C x H x W floats) into t's inputs (computed in batches of d's). Nothing to do but for
 * the built-in LPIPS. */
cfx_status cfx__distance_reference(cfx_distance *d, cfx_graph *g, const cfx__distance_term *t,
                                   const float *x, int64_t m);
void cfx__distance_term_deinit(cfx__distance_term *t);

#endif
