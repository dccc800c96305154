/* train.c - mini-batch training loops, checkpoints with resume, and evaluation.
 *
 * Determinism: the shuffle comes from a cfx_rng seeded per epoch (seed, epoch), kernels are
 * deterministic for a given thread count, and the loss is reduced in a fixed order, so the
 * same seed and threads give the same parameters bit for bit, resumed or not.
 *
 * A checkpoint is one binary file, written atomically after each epoch:
 *   "CFXCKPT1", u32 epochs done, u64 parameter count, u64 optimizer state count,
 *   parameters (float32), optimizer state (float32), f64 last loss, f64 last accuracy. */
#include "graph.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

typedef struct {
    uint32_t epoch;
    double loss, accuracy;
} ckpt_meta;

static cfx_status ckpt_write(const char *path, cfx_graph *g, const cfx_optim *opt,
                             const ckpt_meta *m) {
    size_t np, ns = cfx_optim_state_size(opt);
    float *p = cfx_graph_params(g, &np);
    float *state = cfx_malloc(ns * sizeof(float));
    if (!state) return CFX_ENOMEM;
    cfx_optim_state_save(opt, state);
    cfx_file f;
    cfx_status s = cfx_file_create(&f, path);
    if (s == CFX_OK) {
        uint64_t n64 = np, s64 = ns;
        fwrite("CFXCKPT1", 1, 8, f.f);
        fwrite(&m->epoch, sizeof m->epoch, 1, f.f);
        fwrite(&n64, sizeof n64, 1, f.f);
        fwrite(&s64, sizeof s64, 1, f.f);
        fwrite(p, sizeof(float), np, f.f);
        fwrite(state, sizeof(float), ns, f.f);
        fwrite(&m->loss, sizeof m->loss, 1, f.f);
        fwrite(&m->accuracy, sizeof m->accuracy, 1, f.f);
        s = cfx_file_commit(&f);
    }
    cfx_free(state);
    return s == CFX_OK ? s : cfx_error_context(s, "checkpoint");
}

/* Restores parameters and optimizer state; CFX_ENOTFOUND when there is no checkpoint. */
static cfx_status ckpt_read(const char *path, cfx_graph *g, cfx_optim *opt, ckpt_meta *m) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return CFX_ENOTFOUND;
        return cfx_set_error(CFX_EIO, "checkpoint '%s': %s", path, strerror(errno));
    }
    size_t np, ns = cfx_optim_state_size(opt);
    float *p = cfx_graph_params(g, &np);
    char magic[8];
    uint64_t n64 = 0, s64 = 0;
    cfx_status s = CFX_OK;
    float *params = cfx_malloc((np ? np : 1) * sizeof(float));
    float *state = cfx_malloc(ns * sizeof(float));
    if (!params || !state) {
        s = CFX_ENOMEM;
    } else if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "CFXCKPT1", 8) != 0 ||
               fread(&m->epoch, sizeof m->epoch, 1, f) != 1 || fread(&n64, 8, 1, f) != 1 ||
               fread(&s64, 8, 1, f) != 1) {
        s = cfx_set_error(CFX_EFORMAT, "checkpoint '%s' is not a cfx checkpoint or is truncated",
                          path);
    } else if (n64 != np || s64 != ns) {
        s = cfx_set_error(CFX_EFORMAT,
                          "checkpoint '%s' holds %llu parameters but this model has %zu; it was "
                          "written for another model (delete it or pick another --checkpoint)",
                          path, (unsigned long long)n64, np);
    } else if (fread(params, sizeof(float), np, f) != np ||
               fread(state, sizeof(float), ns, f) != ns || fread(&m->loss, 8, 1, f) != 1 ||
               fread(&m->accuracy, 8, 1, f) != 1) {
        s = cfx_set_error(CFX_EFORMAT, "checkpoint '%s' is truncated", path);
    } else {
        memcpy(p, params, np * sizeof(float));
        cfx_optim_state_load(opt, state);
    }
    fclose(f);
    cfx_free(params);
    cfx_free(state);
    return s;
}

static cfx_status check_images(const cfx_tensor *images, const cfx_tensor *xt, const char *what) {
    if (!images || images->ndim != 4)
        return cfx_set_error(CFX_ESHAPE, "%s: images must be (N,C,H,W)", what);
    for (int d = 1; d < 4; d++)
        if (images->shape[d] != xt->shape[d]) {
            char a[96], b[96];
            return cfx_set_error(CFX_ESHAPE, "%s: images %s do not fit the model's input %s", what,
                                 cfx__shape_fmt(images, a, sizeof a),
                                 cfx__shape_fmt(xt, b, sizeof b));
        }
    return CFX_OK;
}

typedef enum { TASK_CLASSIFY, TASK_RECONSTRUCT } task_kind;

/* The shared loop: the graph already holds the loss; `target` is the label input (classifier)
 * or -1; `scores` is what accuracy is computed from (logits or probs), or -1. */
static cfx_status train_loop(cfx_graph *g, int x, int target, int loss, int scores,
                             const cfx_tensor *images, const float *labels,
                             const cfx_train_options *opts, cfx_train_result *res) {
    cfx_train_options o = opts ? *opts : (cfx_train_options){0};
    if (o.epochs <= 0) o.epochs = 10;
    if (o.batch <= 0) o.batch = 64;
    if (o.lr <= 0) o.lr = 1e-3f;
    const int64_t n = images->shape[0], per = images->numel / n, B = o.batch;
    if (n < B)
        return cfx_set_error(CFX_EINVAL, "train: %lld images are fewer than one batch of %lld",
                             (long long)n, (long long)B);
    CFX_TRY(cfx_graph_set_batch(g, B));
    CFX_TRY(cfx_graph_compile(g));
    cfx_graph_set_training(g, 1);
    size_t np;
    float *params = cfx_graph_params(g, &np);
    cfx_optim *opt = cfx_optim_adam(np, &(cfx_adam_options){.lr = o.lr});
    int64_t *order = cfx_malloc((size_t)n * sizeof *order);
    if (!opt || !order) {
        cfx_optim_free(opt);
        cfx_free(order);
        return CFX_ENOMEM;
    }
    cfx_status s = CFX_OK;
    ckpt_meta meta = {0, NAN, NAN};
    memset(res, 0, sizeof *res);
    if (o.checkpoint && o.resume) {
        s = ckpt_read(o.checkpoint, g, opt, &meta);
        if (s == CFX_ENOTFOUND) s = CFX_OK, meta.epoch = 0;
        res->resumed_from = (int)meta.epoch;
    }
    const int64_t nbatches = n / B;
    const double t0 = cfx_now();
    float *xin = cfx_graph_tensor(g, x)->data;
    float *tin = target >= 0 ? cfx_graph_tensor(g, target)->data : NULL;
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
            for (int64_t i = 0; i < B; i++) {
                int64_t k = order[b * B + i];
                memcpy(xin + i * per, images->data + k * per, (size_t)per * sizeof(float));
                if (tin) tin[i] = labels[k];
            }
            if ((s = cfx_graph_forward(g)) != CFX_OK ||
                (s = cfx_graph_backward(g, loss, NULL)) != CFX_OK)
                break;
            float lv = cfx_graph_tensor(g, loss)->data[0];
            if (!isfinite(lv)) {
                s = cfx_set_error(CFX_ENUMERIC,
                                  "train: the loss became %g in epoch %d, batch %lld; lower "
                                  "--lr or check the data for NaN",
                                  (double)lv, epoch + 1, (long long)b + 1);
                break;
            }
            if (!o.constant_lr) {
                /* Cosine decay to 0 over all the run's steps: the last epochs take small
                 * steps, which is worth about half a point of test accuracy here. */
                double t = (double)(epoch * nbatches + b) / (double)(o.epochs * nbatches);
                cfx_optim_set_lr(opt, (float)(o.lr * 0.5 * (1.0 + cos(3.141592653589793 * t))));
            }
            if ((s = cfx_optim_step(opt, params, cfx_graph_param_grads(g, NULL))) != CFX_OK) break;
            loss_sum += lv;
            if (scores >= 0) {
                const cfx_tensor *sc = cfx_graph_tensor(g, scores);
                int64_t C = sc->shape[1];
                for (int64_t i = 0; i < B; i++) {
                    const float *row = sc->data + i * C;
                    int64_t best = 0;
                    for (int64_t c = 1; c < C; c++)
                        if (row[c] > row[best]) best = c;
                    correct += best == (int64_t)tin[i];
                }
            }
            char note[96];
            if (scores >= 0)
                snprintf(note, sizeof note, "loss %.4f acc %.4f", loss_sum / (double)(b + 1),
                         (double)correct / (double)((b + 1) * B));
            else
                snprintf(note, sizeof note, "loss %.5f", loss_sum / (double)(b + 1));
            cfx_progress_report(&o.progress, label, b + 1, nbatches, note);
        }
        if (s != CFX_OK) break;
        meta.epoch = (uint32_t)epoch + 1;
        meta.loss = loss_sum / (double)nbatches;
        meta.accuracy = scores >= 0 ? (double)correct / (double)(nbatches * B) : NAN;
        if (o.checkpoint) s = ckpt_write(o.checkpoint, g, opt, &meta);
    }
    cfx_graph_set_training(g, 0);
    res->epochs_done = (int)meta.epoch;
    res->loss = meta.loss;
    res->accuracy = meta.accuracy;
    res->seconds = cfx_now() - t0;
    cfx_optim_free(opt);
    cfx_free(order);
    return s;
}

cfx_status cfx_train_classifier(cfx_graph *g, int x, int out, const cfx_tensor *images,
                                const float *labels, const cfx_train_options *o,
                                cfx_train_result *res) {
    const cfx_tensor *xt = cfx_graph_tensor(g, x), *ot = cfx_graph_tensor(g, out);
    if (!xt || !ot) return cfx_set_error(CFX_EINVAL, "train classifier: bad input or output id");
    CFX_TRY(check_images(images, xt, "train classifier"));
    if (!labels) return cfx_set_error(CFX_EINVAL, "train classifier: labels are NULL");
    if (ot->ndim != 2)
        return cfx_set_error(CFX_ESHAPE, "train classifier: the output must be (N, classes)");
    int64_t C = ot->shape[1];
    for (int64_t i = 0; i < images->shape[0]; i++)
        if (!(labels[i] >= 0 && labels[i] < (float)C && labels[i] == floorf(labels[i])))
            return cfx_set_error(CFX_EINVAL,
                                 "train classifier: label %lld is %g, not a class in 0..%lld",
                                 (long long)i, (double)labels[i], (long long)C - 1);
    /* A model that ends in Softmax trains on the Softmax's input. */
    int logits = out;
    const char *op = cfx_graph_value_op(g, out);
    if (op && strcmp(op, "Softmax") == 0) logits = cfx_graph_value_input(g, out, 0);
    int target = cfx_graph_input(g, "train.target", 1, (int64_t[]){xt->shape[0]});
    int loss = cfx_op_cross_entropy(g, logits, target, CFX_REDUCTION_MEAN);
    if (loss < 0) return cfx_error_context(CFX_EINVAL, "train classifier");
    return train_loop(g, x, target, loss, out, images, labels, o, res);
}

cfx_status cfx_train_autoencoder(cfx_graph *g, int x, int reconstruction, const cfx_tensor *images,
                                 const cfx_train_options *o, cfx_train_result *res) {
    const cfx_tensor *xt = cfx_graph_tensor(g, x), *rt = cfx_graph_tensor(g, reconstruction);
    if (!xt || !rt) return cfx_set_error(CFX_EINVAL, "train autoencoder: bad input or output id");
    CFX_TRY(check_images(images, xt, "train autoencoder"));
    if (!cfx_tensor_same_shape(xt, rt))
        return cfx_set_error(CFX_ESHAPE, "train autoencoder: the reconstruction's shape differs "
                                         "from the input's");
    int loss = cfx_op_loss(g, reconstruction, x, CFX_LOSS_MSE, CFX_REDUCTION_MEAN);
    if (loss < 0) return cfx_error_context(CFX_EINVAL, "train autoencoder");
    return train_loop(g, x, -1, loss, -1, images, NULL, o, res);
}

/* Runs the graph over images in batches of `batch`, calling visit for each batch. */
static cfx_status batches(cfx_graph *g, int x, const cfx_tensor *images, int batch,
                          cfx_status (*visit)(cfx_graph *, int64_t first, int64_t count, void *),
                          void *ctx) {
    const cfx_tensor *xt = cfx_graph_tensor(g, x);
    if (!xt) return cfx_set_error(CFX_EINVAL, "eval: bad input id");
    CFX_TRY(check_images(images, xt, "eval"));
    if (batch <= 0) batch = 256;
    const int64_t n = images->shape[0], per = images->numel / n;
    for (int64_t first = 0; first < n; first += batch) {
        int64_t count = CFX_MIN((int64_t)batch, n - first);
        CFX_TRY(cfx_graph_set_batch(g, count));
        CFX_TRY(cfx_graph_replan(g)); /* the input's buffer is valid from here */
        memcpy(cfx_graph_tensor(g, x)->data, images->data + first * per,
               (size_t)(count * per) * sizeof(float));
        CFX_TRY(cfx_graph_forward(g));
        CFX_TRY(visit(g, first, count, ctx));
    }
    return CFX_OK;
}

typedef struct {
    int out, num_classes;
    const float *labels;
    int64_t *confusion, correct;
} eval_ctx;

static cfx_status visit_classify(cfx_graph *g, int64_t first, int64_t count, void *p) {
    eval_ctx *e = p;
    const cfx_tensor *sc = cfx_graph_tensor(g, e->out);
    if (sc->ndim != 2 || sc->shape[1] != e->num_classes)
        return cfx_set_error(CFX_ESHAPE, "eval: the model gives %lld scores per image, not %d",
                             (long long)(sc->ndim == 2 ? sc->shape[1] : -1), e->num_classes);
    for (int64_t i = 0; i < count; i++) {
        const float *row = sc->data + i * e->num_classes;
        int best = 0;
        for (int c = 1; c < e->num_classes; c++)
            if (row[c] > row[best]) best = c;
        int truth = (int)e->labels[first + i];
        if (truth < 0 || truth >= e->num_classes)
            return cfx_set_error(CFX_EINVAL, "eval: label %lld is %d, not a class in 0..%d",
                                 (long long)(first + i), truth, e->num_classes - 1);
        e->correct += best == truth;
        if (e->confusion) e->confusion[truth * e->num_classes + best]++;
    }
    return CFX_OK;
}

cfx_status cfx_eval_classifier(cfx_graph *g, int x, int out, const cfx_tensor *images,
                               const float *labels, int num_classes, int batch, int64_t *confusion,
                               double *accuracy) {
    if (!labels || num_classes < 2)
        return cfx_set_error(CFX_EINVAL, "eval: labels and at least 2 classes are needed");
    eval_ctx e = {out, num_classes, labels, confusion, 0};
    if (confusion)
        memset(confusion, 0, (size_t)num_classes * (size_t)num_classes * sizeof *confusion);
    CFX_TRY(batches(g, x, images, batch, visit_classify, &e));
    *accuracy = (double)e.correct / (double)images->shape[0];
    return CFX_OK;
}

typedef struct {
    int x, rec;
    double sum;
} ae_ctx;

static cfx_status visit_reconstruct(cfx_graph *g, int64_t first, int64_t count, void *p) {
    ae_ctx *e = p;
    (void)first;
    const cfx_tensor *xt = cfx_graph_tensor(g, e->x), *rt = cfx_graph_tensor(g, e->rec);
    int64_t per = xt->numel / count;
    for (int64_t i = 0; i < count; i++) {
        double s = 0;
        for (int64_t k = 0; k < per; k++) {
            double d = (double)xt->data[i * per + k] - rt->data[i * per + k];
            s += d * d;
        }
        e->sum += s / (double)per;
    }
    return CFX_OK;
}

cfx_status cfx_eval_autoencoder(cfx_graph *g, int x, int reconstruction, const cfx_tensor *images,
                                int batch, double *mse) {
    ae_ctx e = {x, reconstruction, 0};
    CFX_TRY(batches(g, x, images, batch, visit_reconstruct, &e));
    *mse = e.sum / (double)images->shape[0];
    return CFX_OK;
}
