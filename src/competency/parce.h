/* parce.h - the competency graph's parts for the modules built on it (the counterfactual
 * methods add their distances to the same graph); not part of the public API. */
#ifndef CFX_COMPETENCY_PARCE_H
#define CFX_COMPETENCY_PARCE_H

#include "base/base.h"

/* The value ids of the competency subgraph on one image value. */
typedef struct cfx__parce_net {
    int x;    /* the image (an input, or a decoder's output) */
    int code; /* the latent input when x is decoded from it, else -1 */
    int probs, loss, indist, rho, latent, features;
    int a, b; /* (1,K) calibration constants (cfx__competency_write_constants) */
} cfx__parce_net;

/* Adds c's classifier, encoder and decoder (value names prefixed "classifier/", "encoder/",
 * "decoder/") and the rho ops on image value x of the uncompiled graph g (n->x = x, n->code =
 * -1: a caller that feeds x from a code sets code); marks probs, loss,
 * in_distribution, rho, latent and features as outputs. The graph may hold other ops. */
cfx_status cfx__competency_build(cfx_competency *c, cfx_graph *g, int x, cfx__parce_net *n);
/* Adds c's decoder on latent value code of g (names prefixed with prefix); *decoded gets its
 * output, an image batch. */
cfx_status cfx__competency_decoder(cfx_competency *c, cfx_graph *g, int code, const char *prefix,
                                   int *decoded);
/* The shape of one batch of c's latent codes as the encoder gives them (the batch dimension
 * is c's batch): the input shape of a decoder built with cfx__competency_decoder. */
void cfx__competency_latent_shape(cfx_competency *c, int *ndim, int64_t *shape);
/* The classifier's ONNX file (owned by c): the built-in LPIPS reads its convolutions. */
const char *cfx__competency_classifier(const cfx_competency *c);
/* After compile: writes c's calibration into the constants of n (no-op without one). */
void cfx__competency_write_constants(const cfx_competency *c, cfx_graph *g,
                                     const cfx__parce_net *n);

#endif
