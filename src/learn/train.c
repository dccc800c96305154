/* train.c - the training loops: epochs of trainer steps over a seeded shuffle, a cosine
 * learning rate schedule, and a checkpoint after every epoch.
 *
 * Determinism: the shuffle comes from a cfx_rng seeded per epoch (seed, epoch), kernels are
 * deterministic for a given thread count, and the loss is reduced in a fixed order, so the
 * same seed and threads give the same parameters bit for bit, resumed or not (checkpoints:
 * src/learn/checkpoint.c).
 *
 * Data parallel (o->shard): every process shuffles alike and trains on its block of each batch;
 * its gradient, weighted by the block's share, is summed over the processes by the caller's
 * callback before the one Adam step, so all keep the same parameters. */
#include "learn/checkpoint.h"
#include "learn/eval.h"
#include "learn/optim.h"
#include "learn/trainer.h"

#include <float.h>
#include <math.h>
#include <stdio.h>

/* A process's block [lo, hi) of a batch of B rows (cfx_train_shard). */
static void shard_block(int64_t B, const cfx_train_shard *sh, int64_t *lo, int64_t *hi) {
    int64_t q = B / sh->ranks, r = B % sh->ranks, k = sh->rank;
    *lo = k * q + (k < r ? k : r);
    *hi = *lo + q + (k < r);
}

/* One data-parallel step: this process's gradient of its rows, weighted by their share of the
 * batch (tr->share, which the lanes' loss seeds carry), summed with the loss and right answers
 * over the processes, then the Adam step. grad holds the graph's parameter count of floats. A
 * process whose gradient fails still takes part in the sum, with a NaN loss, so that every process
 * stops at the same step. */
static cfx_status shard_step(cfx_trainer *tr, const cfx_train_shard *sh, const cfx_tensor *images,
                             const float *labels, const int64_t *rows, double share, float *grad,
                             double *loss, int64_t *correct) {
    size_t np;
    float *params = cfx_graph_params(tr->g, &np);
    double lv = 0;
    int64_t right = 0;
    cfx_status mine = cfx__trainer_grad(tr, images, labels, rows, &lv, &right, grad);
    if (mine != CFX_OK)
        memset(grad, 0, np * sizeof *grad), lv = NAN;
    else if (tr->nhead && share != 1.0) /* the lanes weigh their losses by tr->share; a head not */
        for (size_t i = 0; i < np; i++) grad[i] = (float)((double)grad[i] * share);
    double stats[2] = {lv * share, (double)right};
    CFX_TRY(sh->sum(sh->user, grad, np, stats, 2));
    if (mine != CFX_OK) return mine;
    CFX_TRY(cfx__trainer_check_loss(stats[0]));
    CFX_TRY(cfx__optim_check_grad(grad, np, FLT_MAX));
    CFX_TRY(cfx__optim_step2(tr->opt, params, grad, NULL));
    *loss = stats[0];
    *correct = (int64_t)stats[1];
    return CFX_OK;
}

/* Runs epochs of trainer steps over images in a seeded shuffle, with checkpoints. */
static cfx_status train_loop(cfx_trainer *tr, const cfx_tensor *images, const float *labels,
                             const cfx_train_options *opts, cfx_train_result *res) {
    cfx_train_options o = opts ? *opts : (cfx_train_options){0};
    if (o.epochs <= 0) o.epochs = 10;
    if (o.lr <= 0) o.lr = 1e-3f;
    cfx_graph *g = tr->g;
    cfx_optim *opt = tr->opt;
    const cfx_train_shard *sh = o.shard;
    const int64_t n = images->shape[0], B = sh ? (o.batch > 0 ? o.batch : 64) : tr->batch;
    int64_t lo = 0, hi = B;
    if (sh) shard_block(B, sh, &lo, &hi), tr->share = (double)(hi - lo) / (double)B;
    int64_t *order = cfx_malloc((size_t)n * sizeof *order);
    float *grad = sh ? cfx_malloc(cfx_graph_num_params(g) * sizeof *grad) : NULL;
    if (!order || (sh && !grad)) {
        cfx_free(order), cfx_free(grad);
        return CFX_ENOMEM;
    }
    cfx_status s = CFX_OK;
    cfx__checkpoint_meta meta = {.loss = NAN,
                                 .accuracy = NAN,
                                 .epochs = (uint32_t)o.epochs,
                                 .batch = (uint32_t)B,
                                 .constant_lr = o.constant_lr != 0,
                                 .lr = o.lr,
                                 .seed = o.seed};
    memset(res, 0, sizeof *res);
    if (o.checkpoint) meta.data = cfx__checkpoint_fingerprint(images, labels);
    if (o.checkpoint && o.resume) {
        s = cfx__checkpoint_read(o.checkpoint, g, opt, &meta);
        if (s == CFX_ENOTFOUND) s = CFX_OK, meta.epoch = 0;
        res->resumed_from = (int)meta.epoch;
    }
    const int64_t nbatches = n / B;
    const double t0 = cfx_now();
    const int last = o.stop_after > 0 && o.stop_after < o.epochs ? o.stop_after : o.epochs;
    for (int epoch = (int)meta.epoch; s == CFX_OK && epoch < last; epoch++) {
        cfx_rng rng;
        cfx_rng_init(&rng, o.seed * 1000003u + (uint64_t)epoch);
        for (int64_t i = 0; i < n; i++) order[i] = i;
        cfx_rng_shuffle(&rng, order, n);
        double loss_sum = 0;
        int64_t correct = 0;
        char label[64];
        snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, o.epochs);
        for (int64_t b = 0; b < nbatches && s == CFX_OK; b++) {
            if (!o.constant_lr) {
                /* Cosine decay to 0 over all the run's steps: the last epochs take small
                 * steps, which is worth about half a point of test accuracy here. */
                double t = (double)(epoch * nbatches + b) / (double)(o.epochs * nbatches);
                cfx_optim_set_lr(opt, (float)(o.lr * 0.5 * (1.0 + cos(3.141592653589793 * t))));
            }
            double lv;
            int64_t right;
            s = sh ? shard_step(tr, sh, images, labels, order + b * B + lo,
                                (double)(hi - lo) / (double)B, grad, &lv, &right)
                   : cfx_trainer_step(tr, images, labels, order + b * B, &lv, &right);
            if (s != CFX_OK) {
                cfx_error_context(s, "train: epoch %d, batch %lld", epoch + 1, (long long)b + 1);
                break;
            }
            loss_sum += lv;
            correct += right;
            char note[96];
            if (tr->scores >= 0)
                snprintf(note, sizeof note, "loss %.4f acc %.4f", loss_sum / (double)(b + 1),
                         (double)correct / (double)((b + 1) * B));
            else
                snprintf(note, sizeof note, "loss %.5f", loss_sum / (double)(b + 1));
            cfx_progress_report(&o.progress, label, b + 1, nbatches, note);
        }
        if (s != CFX_OK) break;
        meta.epoch = (uint32_t)epoch + 1;
        meta.loss = loss_sum / (double)nbatches;
        meta.accuracy = tr->scores >= 0 ? (double)correct / (double)(nbatches * B) : NAN;
        if (o.checkpoint && (!sh || sh->rank == 0))
            s = cfx__checkpoint_write(o.checkpoint, g, opt, &meta);
    }
    cfx_graph_set_training(g, 0);
    res->epochs_done = (int)meta.epoch;
    res->loss = meta.loss;
    res->accuracy = meta.accuracy;
    res->seconds = cfx_now() - t0;
    cfx_free(order);
    cfx_free(grad);
    return s;
}

/* Checks the images, and that there is at least one batch of them. */
static cfx_status check_train_images(cfx_graph *g, int x, const cfx_tensor *images,
                                     const cfx_train_options *o, const char *what) {
    const cfx_tensor *xt = cfx_graph_tensor(g, x);
    if (!xt) return cfx_set_error(CFX_EINVAL, "%s: bad input id", what);
    CFX_TRY(cfx__eval_check_images(images, xt, what));
    int64_t B = o && o->batch > 0 ? o->batch : 64;
    if (images->shape[0] < B)
        return cfx_set_error(CFX_EINVAL, "train: %lld images are fewer than one batch of %lld",
                             (long long)images->shape[0], (long long)B);
    const cfx_train_shard *sh = o ? o->shard : NULL;
    if (sh && (sh->ranks < 1 || sh->rank < 0 || sh->rank >= sh->ranks || !sh->sum))
        return cfx_set_error(CFX_EINVAL, "train: shard %d of %d (or its sum) is not valid",
                             sh->rank, sh->ranks);
    if (sh && B < sh->ranks)
        return cfx_set_error(CFX_EINVAL,
                             "train: a batch of %lld images cannot be shared by %d processes: "
                             "use --batch %d or more, or fewer processes",
                             (long long)B, sh->ranks, sh->ranks);
    return CFX_OK;
}

/* The trainer's batch: the whole batch, or this process's block of it. */
static int trainer_batch(const cfx_train_options *o) {
    int64_t B = o && o->batch > 0 ? o->batch : 64, lo = 0, hi = B;
    if (o && o->shard) shard_block(B, o->shard, &lo, &hi);
    return (int)(hi - lo);
}

static cfx_status train_with(cfx_trainer *tr, const cfx_tensor *images, const float *labels,
                             const cfx_train_options *o, cfx_train_result *res) {
    if (!tr) return cfx_error_context(CFX_EINVAL, "train");
    cfx_status s = train_loop(tr, images, labels, o, res);
    cfx_trainer_free(tr);
    return s;
}

cfx_status cfx_train_classifier(cfx_graph *g, int x, int out, const cfx_tensor *images,
                                const float *labels, const cfx_train_options *o,
                                cfx_train_result *res) {
    const cfx_tensor *ot = cfx_graph_tensor(g, out);
    if (!ot) return cfx_set_error(CFX_EINVAL, "train classifier: bad input or output id");
    CFX_TRY(check_train_images(g, x, images, o, "train classifier"));
    if (!labels) return cfx_set_error(CFX_EINVAL, "train classifier: labels are NULL");
    if (ot->ndim != 2)
        return cfx_set_error(CFX_ESHAPE, "train classifier: the output must be (N, classes)");
    int64_t C = ot->shape[1];
    for (int64_t i = 0; i < images->shape[0]; i++)
        if (!(labels[i] >= 0 && labels[i] < (float)C && labels[i] == floorf(labels[i])))
            return cfx_set_error(CFX_EINVAL,
                                 "train classifier: label %lld is %g, not a class in 0..%lld",
                                 (long long)i, (double)labels[i], (long long)C - 1);
    return train_with(cfx_trainer_classifier(g, x, out, trainer_batch(o), o ? o->lr : 0), images,
                      labels, o, res);
}

cfx_status cfx_train_autoencoder(cfx_graph *g, int x, int reconstruction, const cfx_tensor *images,
                                 const cfx_train_options *o, cfx_train_result *res) {
    CFX_TRY(check_train_images(g, x, images, o, "train autoencoder"));
    return train_with(
        cfx_trainer_autoencoder(g, x, reconstruction, trainer_batch(o), o ? o->lr : 0), images,
        NULL, o, res);
}
