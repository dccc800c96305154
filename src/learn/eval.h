/* eval.h - evaluation's private calls (src/learn/eval.c), for the trainer and the training
 * loops; not part of the public API. */
#ifndef CFX_LEARN_EVAL_H
#define CFX_LEARN_EVAL_H

#include "base/base.h"

/* Whether images (N,C,H,W) fit xt, a model's input (the batch may differ); CFX_ESHAPE with a
 * message that starts with what and names both shapes when not. */
cfx_status cfx__eval_check_images(const cfx_tensor *images, const cfx_tensor *xt, const char *what);

#endif
