/* trainer.h - the trainer's private state, shared by its lanes (src/learn/trainer.c) and its
 * head (src/learn/head.c), the head's calls, and the trainer's test hooks; not part of the
 * public API (cfx_trainer is opaque there). */
#ifndef CFX_LEARN_TRAINER_H
#define CFX_LEARN_TRAINER_H

#include "engine/graph.h"
#include "engine/blas.h"

#include <math.h>
#include <stdatomic.h>

/* One fully connected layer of a trainer's head: y = x W^T + b, then a ReLU when relu. */
typedef struct cfx__head_layer {
    size_t w, b; /* offsets of W (out x in) and b (out) in the parameters; b is SIZE_MAX without */
    int64_t in, out;
    bool relu;
} cfx__head_layer;

struct cfx_trainer {
    cfx_graph *g;
    int x, target, loss, scores; /* target and scores: -1 for an autoencoder */
    int64_t batch;
    double share; /* the loss's weight: this process's share of a data-parallel batch, else 1 */
    cfx_optim *opt;
    int nlanes;        /* 1: the step runs on g, its ops using the threads */
    cfx_graph **lane;  /* nlanes copies of g, one slice of the batch each */
    int64_t *first;    /* lane i trains on rows first[i] .. first[i+1]-1 */
    cfx_status *st;    /* per lane (per thread in a head step), for one step */
    double *lane_loss; /* per lane */
    int64_t *lane_correct;
    char (*msg)[256];
    /* The head (nhead > 0): fully connected layers from value `cut` to the logits, run on the
     * whole batch with each thread owning rows of every weight (see src/learn/head.c). */
    int nhead;
    cfx__head_layer *hl;
    int cut, cut_end, logits; /* lanes run nodes [0, cut_end) */
    bool cut_grad;            /* whether a gradient flows back into the lanes from the cut */
    /* Per layer boundary k = 0..nhead: activations and (k > 0) gradients, features x batch. The
     * gradient at the cut goes to the lanes as the threads' parts (head_part), batch x features. */
    float **H, **D;
    float *hbuf, *part, *seed, *hgrad;
    int64_t part_stride; /* floats a part */
    /* Per thread q, layer k: its products (plan[(q * nhead + k) * NPLAN + j], head_plan),
     * made by thread q for plan_T[q] threads. */
    cfx__gemm_plan **plan;
    int *plan_T;
    _Atomic int *claim;  /* per thread: the next of its chunks of weight gradient to claim */
    _Atomic bool dw_bad; /* a chunk of the head's gradient failed its check */
    size_t *trunk;       /* ntrunk ranges [trunk[2i], trunk[2i+1]) of parameters outside the head */
    int ntrunk;
    size_t trunk_n;
};

/* ============================================= shared by the lanes and the head === */

/* Copies images rows[0..count) into x, and their labels into target (when not NULL). */
static inline void cfx__trainer_gather(const cfx_tensor *images, const float *labels,
                                       const int64_t *rows, int64_t count, float *x,
                                       float *target) {
    const int64_t per = images->numel / images->shape[0];
    for (int64_t i = 0; i < count; i++) {
        memcpy(x + i * per, images->data + rows[i] * per, (size_t)per * sizeof(float));
        if (target) target[i] = labels[rows[i]];
    }
}

/* How many of n rows of scores (C a row) have their largest score (the first of equals) at
 * the row's label. */
static inline int64_t cfx__trainer_count_right(const float *scores, int64_t n, int64_t C,
                                               const float *labels) {
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *row = scores + i * C;
        int64_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (row[c] > row[best]) best = c;
        right += best == (int64_t)labels[i];
    }
    return right;
}

/* A finite loss, or the error that stops training. */
static inline cfx_status cfx__trainer_check_loss(double loss) {
    if (isfinite(loss)) return CFX_OK;
    return cfx_set_error(CFX_ENUMERIC, "the loss became %g; lower --lr or check the data for NaN",
                         loss);
}

/* Lane 1's parameter gradients += those of lanes 2.., in lane order (lane 0's and lane 1's
 * are summed in the optimizer's pass). */
static inline void cfx__trainer_sum_lane_grads(cfx_graph *const *lane, int L, int64_t lo,
                                               int64_t hi) {
    float *restrict d = lane[1]->param_grads;
    for (int k = 2; k < L; k++) {
        const float *restrict s = lane[k]->param_grads;
        for (int64_t i = lo; i < hi; i++) d[i] += s[i];
    }
}

/* ===================================================== the head (src/learn/head.c) === */

/* Finds the trainer's head (t->nhead, 0: none, the lanes train the whole graph) and allocates
 * its buffers, once the lanes are made. */
cfx_status cfx__head_init(cfx_trainer *t);
/* A trainer step with the head (t->nhead > 0) on checked arguments: the batch's mean loss and
 * count of right answers; the update too when apply. */
cfx_status cfx__head_step(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                          const int64_t *rows, bool apply, double *loss, int64_t *correct);
/* The batch's gradient after a head step without the update (cfx_graph_num_params floats):
 * the lanes' sum on the trunk, the head's own on the head. */
void cfx__head_gradient(const cfx_trainer *t, float *grad);
/* Frees the head's buffers (none when there is no head). */
void cfx__head_free(cfx_trainer *t);

/* The forward and backward of a cfx_trainer_step without the update, on unchecked arguments
 * (checked here): the batch's mean loss, its right answers, and the parameters' gradient
 * (cfx_graph_num_params floats) summed over lanes; for data-parallel training (train.c). */
cfx_status cfx__trainer_grad(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                             const int64_t *rows, double *loss, int64_t *correct, float *grad);

/* ============================================================ the trainer's test hooks === */

/* Test hook: at most n lanes per cfx_trainer (n < 1: as many as threads). */
void cfx__trainer_max_lanes(int n);
/* Test hook: whether trainers made from now on run a classifier's fully connected head on the
 * whole batch, split by weight rows among the threads (default on). */
void cfx__trainer_use_head(bool on);
/* Test hook: how many fully connected layers the trainer runs as its head (0: none). */
int cfx__trainer_head_layers(const cfx_trainer *t);
/* Test hook: the forward and backward of a cfx_trainer_step without the update: the batch's mean
 * loss and the gradient of the parameters (cfx_graph_num_params floats), summed over lanes. */
cfx_status cfx__trainer_gradient(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                                 const int64_t *rows, double *loss, float *grad);

#endif
