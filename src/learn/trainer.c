/* trainer.c - cfx_trainer: one Adam step at a time, the batch split into lanes, one a thread.
 *
 * Each thread gets a slice of the batch, at least two images, and a copy of the graph that
 * reads the same parameters (cfx__graph_clone): it runs the whole forward and backward of its
 * slice with one-thread kernels and no barrier between ops, seeding its loss with its share of
 * the batch, and Adam then takes one pass over the sum of the slices' gradients. The split is
 * exact up to the order of that sum, which is fixed, so a thread count gives the same bits
 * every run (tested against one graph in tests/test_train.c). A graph whose ops mix the images
 * of a batch (BatchNormalization's statistics, a Softmax over axis 0, or any shape that does
 * not follow the batch) trains whole on one lane, its ops using the threads. A classifier's
 * fully connected head runs on the whole batch instead (src/learn/head.c): the lanes then stop
 * at the head's input. */
#include "engine/graph.h"
#include "learn/eval.h"
#include "learn/optim.h"
#include "learn/trainer.h"

#include <float.h>
#include <omp.h>
#include <stdio.h>

static int max_lanes = -1;   /* test hook: -1 no limit */
static bool use_head = true; /* test hook */

void cfx__trainer_max_lanes(int n) {
    max_lanes = n;
}

void cfx__trainer_use_head(bool on) {
    use_head = on;
}

int cfx__trainer_head_layers(const cfx_trainer *t) {
    return t ? t->nhead : 0;
}

/* Whether the graph's values that depend on the inputs keep the batch as their first
 * dimension, the same dimensions otherwise, at batch B (g) and b (lane, b < B), and no op mixes
 * images (couples_batch): then running slices of the batch apart and summing their gradients
 * is the whole batch's step. The loss, whose mean over the batch the seeds weigh, is exempt. */
static bool splits_by_batch(cfx_graph *g, cfx_graph *lane, int loss, int64_t B, int64_t b) {
    uint8_t *dep = g->mark;
    memset(dep, 0, (size_t)g->nvalues);
    for (int i = 0; i < g->nvalues; i++) {
        const cfx__value *v = &g->values[i], *w = &lane->values[i];
        if (v->kind == CFX_VALUE_INPUT) dep[i] = 1;
        if (v->producer >= 0) {
            const cfx__node *n = &g->nodes[v->producer];
            for (int k = 0; k < n->nin; k++) dep[i] |= n->in[k] >= 0 && dep[n->in[k]];
            if (!dep[i] || i == loss) continue;
            cfx__op_args a;
            cfx__node_args(g, n, &a, false);
            if (n->op->couples_batch && n->op->couples_batch(&a)) return false;
        }
        if (!dep[i] || i == loss) continue;
        if (v->t.ndim < 1 || v->t.ndim != w->t.ndim || v->t.shape[0] != B || w->t.shape[0] != b)
            return false;
        for (int d = 1; d < v->t.ndim; d++)
            if (v->t.shape[d] != w->t.shape[d]) return false;
    }
    return true;
}

void cfx_trainer_free(cfx_trainer *t) {
    if (!t) return;
    for (int i = 0; t->lane && i < t->nlanes; i++) cfx_graph_free(t->lane[i]);
    cfx_free(t->lane);
    cfx_free(t->first);
    cfx_free(t->st);
    cfx_free(t->lane_loss);
    cfx_free(t->lane_correct);
    cfx_free(t->msg);
    cfx__head_free(t);
    cfx_optim_free(t->opt);
    cfx_free(t);
}

/* Copies of g for the lanes, planned for one thread each; stays at one lane when the graph does
 * not split by batch or there are too few images per thread. */
static cfx_status make_lanes(cfx_trainer *t) {
    int threads = cfx_get_threads(), L = threads;
    if (max_lanes >= 1 && L > max_lanes) L = max_lanes;
    t->nlanes = 1;
    if (L < 2 || t->batch < 2 * (int64_t)L) return CFX_OK;
    t->lane = cfx_calloc((size_t)L, sizeof *t->lane);
    t->first = cfx_calloc((size_t)L + 1, sizeof *t->first);
    t->st = cfx_calloc((size_t)L, sizeof *t->st);
    t->lane_loss = cfx_calloc((size_t)L, sizeof *t->lane_loss);
    t->lane_correct = cfx_calloc((size_t)L, sizeof *t->lane_correct);
    t->msg = cfx_calloc((size_t)L, sizeof *t->msg);
    if (!t->lane || !t->first || !t->st || !t->lane_loss || !t->lane_correct || !t->msg)
        return CFX_ENOMEM;
    t->nlanes = L;
    for (int i = 0; i <= L; i++) t->first[i] = t->batch * i / L;
    /* Each lane runs on one thread: its oneDNN primitives are built for one. */
    omp_set_num_threads(1);
    cfx_status s = CFX_OK;
    for (int i = 0; i < L && s == CFX_OK; i++) {
        if (!(t->lane[i] = cfx__graph_clone(t->g, (uint64_t)i + 1))) s = CFX_ENOMEM;
        if (s == CFX_OK) s = cfx_graph_set_batch(t->lane[i], t->first[i + 1] - t->first[i]);
        if (s == CFX_OK) s = cfx_graph_replan(t->lane[i]);
    }
    omp_set_num_threads(threads);
    if (s == CFX_ENOMEM) return s;
    /* A lane that cannot be planned at its batch (a shape fixed to the whole batch) or a graph
     * that does not split by batch trains whole. */
    if (s != CFX_OK || !splits_by_batch(t->g, t->lane[0], t->loss, t->batch, t->first[1])) {
        for (int i = 0; i < L; i++) cfx_graph_free(t->lane[i]), t->lane[i] = NULL;
        t->nlanes = 1;
        return CFX_OK;
    }
    return use_head ? cfx__head_init(t) : CFX_OK;
}

static cfx_trainer *trainer_new(cfx_graph *g, int x, int target, int loss, int scores, int batch,
                                float lr) {
    if (loss < 0) {
        cfx_error_context(CFX_EINVAL, "trainer");
        return NULL;
    }
    cfx_trainer *t = cfx_calloc(1, sizeof *t);
    if (!t) return NULL;
    *t = (cfx_trainer){g, x, target, loss, scores, batch > 0 ? batch : 64, 1.0};
    cfx_status s = cfx_graph_set_batch(g, t->batch);
    if (s == CFX_OK) s = cfx_graph_compile(g);
    if (s == CFX_OK) s = cfx_graph_replan(g);
    if (s == CFX_OK) {
        cfx_graph_set_training(g, 1);
        t->opt =
            cfx_optim_adam(cfx_graph_num_params(g), &(cfx_adam_options){.lr = lr > 0 ? lr : 1e-3f});
        s = t->opt ? make_lanes(t) : CFX_ENOMEM;
    }
    if (s != CFX_OK) {
        cfx_error_context(s, "trainer");
        cfx_trainer_free(t);
        return NULL;
    }
    return t;
}

cfx_trainer *cfx_trainer_classifier(cfx_graph *g, int x, int out, int batch, float lr) {
    const cfx_tensor *ot = cfx_graph_tensor(g, out);
    if (!cfx_graph_tensor(g, x) || !ot) {
        cfx_set_error(CFX_EINVAL, "trainer: bad graph, input or output id");
        return NULL;
    }
    if (ot->ndim != 2) {
        cfx_set_error(CFX_ESHAPE, "train classifier: the output must be (N, classes)");
        return NULL;
    }
    /* A model that ends in Softmax trains on the Softmax's input. */
    int logits = out;
    const char *op = cfx_graph_value_op(g, out);
    if (op && strcmp(op, "Softmax") == 0) logits = cfx_graph_value_input(g, out, 0);
    int target = cfx_graph_input(g, "train.target", 1, (int64_t[]){ot->shape[0]});
    int loss = cfx_op_cross_entropy(g, logits, target, CFX_REDUCTION_MEAN);
    return trainer_new(g, x, target, loss, out, batch, lr);
}

cfx_trainer *cfx_trainer_autoencoder(cfx_graph *g, int x, int reconstruction, int batch, float lr) {
    const cfx_tensor *xt = cfx_graph_tensor(g, x), *rt = cfx_graph_tensor(g, reconstruction);
    if (!xt || !rt) {
        cfx_set_error(CFX_EINVAL, "trainer: bad graph, input or output id");
        return NULL;
    }
    if (!cfx_tensor_same_shape(xt, rt)) {
        cfx_set_error(CFX_ESHAPE, "train autoencoder: the reconstruction's shape differs from "
                                  "the input's");
        return NULL;
    }
    int loss = cfx_op_loss(g, reconstruction, x, CFX_LOSS_MSE, CFX_REDUCTION_MEAN);
    return trainer_new(g, x, -1, loss, -1, batch, lr);
}

cfx_optim *cfx_trainer_optim(cfx_trainer *t) {
    return t ? t->opt : NULL;
}

int cfx_trainer_lanes(const cfx_trainer *t) {
    return t ? t->nlanes : 0;
}

/* Forward and backward of graph g (the trainer's or a lane) on `count` rows; the loss's
 * gradient is seeded with `weight`, the lane's share of the batch. */
static cfx_status run_slice(const cfx_trainer *t, cfx_graph *g, const cfx_tensor *images,
                            const float *labels, const int64_t *rows, int64_t count, float weight,
                            double *loss, int64_t *correct) {
    float *tin = t->target >= 0 ? cfx_graph_tensor(g, t->target)->data : NULL;
    cfx__trainer_gather(images, labels, rows, count, cfx_graph_tensor(g, t->x)->data, tin);
    CFX_TRY(cfx_graph_forward(g));
    CFX_TRY(cfx_graph_backward(g, t->loss, &weight));
    *loss = cfx_graph_tensor(g, t->loss)->data[0];
    *correct = 0;
    if (t->scores < 0) return CFX_OK;
    const cfx_tensor *sc = cfx_graph_tensor(g, t->scores);
    *correct = cfx__trainer_count_right(sc->data, count, sc->shape[1], tin);
    return CFX_OK;
}

/* A slice's step (run_slice), then its loss and gradients checked: finite, and the gradients
 * small enough that the sum over `lanes` slices stays finite. */
static cfx_status run_checked(const cfx_trainer *t, cfx_graph *g, const cfx_tensor *images,
                              const float *labels, const int64_t *rows, int64_t count, float weight,
                              int lanes, double *loss, int64_t *correct) {
    CFX_TRY(run_slice(t, g, images, labels, rows, count, weight, loss, correct));
    CFX_TRY(cfx__trainer_check_loss(*loss));
    size_t np;
    const float *grads = cfx_graph_param_grads(g, &np);
    return cfx__optim_check_grad(grads, np, FLT_MAX / (float)lanes);
}

/* The arguments of a step. */
static cfx_status check_step(const cfx_trainer *t, const cfx_tensor *images, const float *labels,
                             const int64_t *rows) {
    if (!t || !images || !rows || (t->target >= 0 && !labels))
        return cfx_set_error(CFX_EINVAL, "train step: NULL argument");
    CFX_TRY(cfx__eval_check_images(images, cfx_graph_tensor(t->g, t->x), "train step"));
    for (int64_t i = 0; i < t->batch; i++)
        if (rows[i] < 0 || rows[i] >= images->shape[0])
            return cfx_set_error(CFX_EINVAL, "train step: row %lld is not an image in 0..%lld",
                                 (long long)rows[i], (long long)images->shape[0] - 1);
    return CFX_OK;
}

/* Forward and backward of one step without a head, on checked arguments (check_step): the loss
 * and count of right answers for the whole batch, and its parameter gradient as *g0 + *g1 (*g1
 * NULL on one lane). */
static cfx_status step_grads(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                             const int64_t *rows, double *loss, int64_t *correct, const float **g0,
                             const float **g1) {
    if (t->nlanes == 1) {
        CFX_TRY(run_checked(t, t->g, images, labels, rows, t->batch, (float)t->share, 1, loss,
                            correct));
        *g0 = cfx_graph_param_grads(t->g, NULL);
        *g1 = NULL;
        return CFX_OK;
    }
    const int L = t->nlanes;
#pragma omp parallel num_threads(L)
    {
        omp_set_num_threads(1); /* this lane's ops run on this thread alone */
        for (int i = omp_get_thread_num(); i < L; i += omp_get_num_threads()) {
            int64_t n = t->first[i + 1] - t->first[i];
            t->st[i] = run_checked(t, t->lane[i], images, labels, rows + t->first[i], n,
                                   (float)(t->share * (double)n / (double)t->batch), L,
                                   &t->lane_loss[i], &t->lane_correct[i]);
            if (t->st[i] != CFX_OK) snprintf(t->msg[i], sizeof t->msg[i], "%s", cfx_last_error());
        }
    }
    double lv = 0;
    int64_t right = 0;
    for (int i = 0; i < L; i++) {
        if (t->st[i] != CFX_OK) return cfx_set_error(t->st[i], "%s", t->msg[i]);
        lv += t->lane_loss[i] * (double)(t->first[i + 1] - t->first[i]) / (double)t->batch;
        right += t->lane_correct[i];
    }
    int64_t np = (int64_t)t->g->nparams;
    if (L > 2) CFX_PARALLEL_RANGE(np, np > 65536, cfx__trainer_sum_lane_grads(t->lane, L, lo, hi));
    *loss = lv;
    *correct = right;
    *g0 = t->lane[0]->param_grads;
    *g1 = t->lane[1]->param_grads;
    return CFX_OK;
}

cfx_status cfx_trainer_step(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                            const int64_t *rows, double *loss, int64_t *correct) {
    double lv;
    int64_t right;
    const float *g0, *g1;
    CFX_TRY(check_step(t, images, labels, rows));
    if (t->nhead) {
        CFX_TRY(cfx__head_step(t, images, labels, rows, true, &lv, &right));
        if (loss) *loss = lv;
        if (correct) *correct = right;
        return CFX_OK;
    }
    CFX_TRY(step_grads(t, images, labels, rows, &lv, &right, &g0, &g1));
    CFX_TRY(cfx__optim_step2(t->opt, cfx_graph_params(t->g, NULL), g0, g1));
    if (loss) *loss = lv;
    if (correct) *correct = right;
    return CFX_OK;
}

cfx_status cfx__trainer_grad(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                             const int64_t *rows, double *loss, int64_t *correct, float *grad) {
    const float *g0, *g1;
    CFX_TRY(check_step(t, images, labels, rows));
    if (t->nhead) {
        CFX_TRY(cfx__head_step(t, images, labels, rows, false, loss, correct));
        cfx__head_gradient(t, grad);
        return CFX_OK;
    }
    CFX_TRY(step_grads(t, images, labels, rows, loss, correct, &g0, &g1));
    for (size_t i = 0; i < t->g->nparams; i++) grad[i] = g1 ? g0[i] + g1[i] : g0[i];
    return CFX_OK;
}

cfx_status cfx__trainer_gradient(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                                 const int64_t *rows, double *loss, float *grad) {
    int64_t right;
    return cfx__trainer_grad(t, images, labels, rows, loss, &right, grad);
}
