/* checkpoint.h - the training checkpoint's file format (src/learn/checkpoint.c), for the
 * training loops; not part of the public API. */
#ifndef CFX_LEARN_CHECKPOINT_H
#define CFX_LEARN_CHECKPOINT_H

#include "base/base.h"

/* What a checkpoint holds besides the parameters and the optimizer's state. */
typedef struct cfx__checkpoint_meta {
    uint32_t epoch; /* epochs done */
    double loss, accuracy;
} cfx__checkpoint_meta;

/* Writes g's parameters, opt's state and m to path, atomically (a checkpoint that was there
 * stays until the new one is complete). */
cfx_status cfx__checkpoint_write(const char *path, cfx_graph *g, const cfx_optim *opt,
                                 const cfx__checkpoint_meta *m);
/* Restores g's parameters and opt's state from path, and fills m; CFX_ENOTFOUND (without a
 * message) when there is no checkpoint, CFX_EFORMAT when it is not one or was written for a
 * model of another size. */
cfx_status cfx__checkpoint_read(const char *path, cfx_graph *g, cfx_optim *opt,
                                cfx__checkpoint_meta *m);

#endif
