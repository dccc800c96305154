/* optim.h - the optimizers' private calls (src/learn/optim.c), for the trainer's split update;
 * not part of the public API. */
#ifndef CFX_LEARN_OPTIM_H
#define CFX_LEARN_OPTIM_H

#include "base/base.h"

/* cfx_optim_step's halves, for a gradient that is the sum of two (cfx_trainer's lanes):
 * check_grad fails with CFX_ENUMERIC, naming the first element, when an element of g is NaN or
 * beyond +-bound (FLT_MAX, or FLT_MAX / lanes so that the lanes' sum stays finite); step2 takes
 * the step on g0 + g1 (g1 may be NULL) in one pass. */
cfx_status cfx__optim_check_grad(const float *g, size_t n, float bound);
cfx_status cfx__optim_step2(cfx_optim *o, float *x, const float *g0, const float *g1);
/* The same in pieces, for threads that each own part of the parameters: check_range checks
 * g[first, end) (naming the element by its index in g); one tick per step, then apply on
 * disjoint ranges [lo, hi) of x, g0 and g1, from any thread, each on one thread. */
cfx_status cfx__optim_check_range(const float *g, size_t first, size_t end, float bound);
/* Whether every element of g[0, n) lies within [-bound, bound] (NaN does not), on the calling
 * thread: check_range's test without its error. */
bool cfx__optim_within(const float *g, int64_t n, float bound);
void cfx__optim_tick(cfx_optim *o);
void cfx__optim_apply(cfx_optim *o, float *x, const float *g0, const float *g1, int64_t lo,
                      int64_t hi);
/* Moves the state (moments) of elements [from, from + n) to [to, to + n), as memmove: for a
 * caller that packs the rows it still optimises (the counterfactual methods' compaction). */
void cfx__optim_move(cfx_optim *o, int64_t to, int64_t from, int64_t n);

#endif
