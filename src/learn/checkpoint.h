/* checkpoint.h - the training checkpoint's file format (src/learn/checkpoint.c), for the
 * training loops; not part of the public API. */
#ifndef CFX_LEARN_CHECKPOINT_H
#define CFX_LEARN_CHECKPOINT_H

#include "base/base.h"

/* What a checkpoint holds besides the parameters and the optimizer's state: the epochs done,
 * the last epoch's loss and accuracy, and the settings of the run that wrote it. A run resumes
 * only with the same settings, so that the result has the bytes of an uninterrupted run. */
typedef struct cfx__checkpoint_meta {
    uint32_t epoch; /* epochs done */
    double loss, accuracy;
    /* The run's settings. */
    uint32_t epochs, batch, constant_lr;
    float lr;
    uint64_t seed;
    uint64_t data; /* cfx__checkpoint_fingerprint of the training images and labels */
} cfx__checkpoint_meta;

/* Writes g's parameters, opt's state and m to path, atomically (a checkpoint that was there
 * stays until the new one is complete). */
cfx_status cfx__checkpoint_write(const char *path, cfx_graph *g, const cfx_optim *opt,
                                 const cfx__checkpoint_meta *m);
/* Restores g's parameters and opt's state from path, and m's epoch, loss and accuracy; m's
 * settings are this run's, and a checkpoint written with others is refused naming the first
 * that differs (CFX_EINVAL). CFX_ENOTFOUND (without a message) when there is no checkpoint,
 * CFX_EFORMAT when it is not one, is corrupt, or was written for a model of another size. */
cfx_status cfx__checkpoint_read(const char *path, cfx_graph *g, cfx_optim *opt,
                                cfx__checkpoint_meta *m);
/* A 64-bit fingerprint of the training images and labels (labels may be NULL). */
uint64_t cfx__checkpoint_fingerprint(const cfx_tensor *images, const float *labels);

#endif
