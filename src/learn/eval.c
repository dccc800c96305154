/* eval.c - a trained model's accuracy (and confusion matrix) or reconstruction error on a set
 * of images, run forward in batches.
 *
 * The images are copied into the graph's input a batch at a time (the graph is set to each
 * batch's size and replanned, so the last, smaller batch is neither padded nor dropped). The
 * check that a set of images fits a model's input lives here, the lowest module that needs
 * it: the trainer and the training loops use it too. */
#include "engine/graph.h"
#include "learn/eval.h"

cfx_status cfx__eval_check_images(const cfx_tensor *images, const cfx_tensor *xt,
                                  const char *what) {
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

/* Runs the graph over images in batches of `batch`, calling visit for each batch. */
static cfx_status batches(cfx_graph *g, int x, const cfx_tensor *images, int batch,
                          cfx_status (*visit)(cfx_graph *, int64_t first, int64_t count, void *),
                          void *ctx) {
    const cfx_tensor *xt = cfx_graph_tensor(g, x);
    if (!xt) return cfx_set_error(CFX_EINVAL, "eval: bad input id");
    CFX_TRY(cfx__eval_check_images(images, xt, "eval"));
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
    if (!cfx_tensor_same_shape(xt, rt)) { /* a classifier, say: its output is no image */
        char a[96], b[96];
        return cfx_set_error(CFX_ESHAPE,
                             "eval: the model's output %s is not a reconstruction of its input %s "
                             "(is it an autoencoder?)",
                             cfx__shape_fmt(rt, a, sizeof a), cfx__shape_fmt(xt, b, sizeof b));
    }
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
