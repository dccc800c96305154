/* parce.c - PaRCE competency (the competency paper): the classifier, the encoder and the decoder
 * imported into one graph, with rho built on top of them from graph ops, so that one forward
 * and one backward pass give every image's competency and its gradient with respect to the
 * image; and the calibration fit.
 *
 * The graph, for images x (N,C,H,W):
 *   p      = the classifier's probabilities (its own Softmax output, or softmax of its logits)
 *   recon  = decode(encode(x));  L = mean((x - recon)^2) per image, (N) -> (N,1)
 *   t      = L * a + b, with constants a = 1 / sigma, b = -(s mu) / sigma - z      (N,K)
 *   P      = Phi(-t) = 1 - Phi(t)   (the normal CDF op is accurate in both tails, so the
 *                                     complement is not formed by subtraction)
 *   S      = sum_c p_c P_c;  rho = max_c p_c * S
 * A calibration only rewrites the constants a and b, so fitting needs no second graph. The
 * latent graph puts a decoder in front: code z -> decode(z) -> the same graph, so d rho / d z
 * comes from the same backward pass (LGD).
 *
 * Fitting pairs each image's loss with the softmax of the same forward pass. (The reference code
 * took them from two passes over differently shuffled loaders, pairing one image's loss with
 * another image's softmax; DESIGN.md.) z is then found on the host, in double precision, over
 * the reference's grid 0, 0.05, ..., 4.95: the first z whose mean rho is closest to the
 * calibration accuracy. */
#include "competency/parce.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef cfx__parce_net net;

struct cfx_competency {
    cfx_graph *g, *gl; /* images; latent codes (built on first use) */
    net n, nl;
    int64_t batch;
    cfx_competency_shape shape;
    char *classifier, *encoder, *decoder, *autoencoder, *latent, *features;
    cfx_classifier_output output;
    bool probs_output; /* the classifier's output is used as probabilities */
    bool has_parce;
    cfx_parce parce;
};

double cfx_normal_cdf(double x) {
    /* erfc keeps its relative accuracy for large arguments, so both tails stay accurate. */
    return 0.5 * erfc(-x / M_SQRT2);
}

void cfx_parce_deinit(cfx_parce *p) {
    if (!p) return;
    cfx_free(p->mu);
    cfx_free(p->sigma);
    p->mu = p->sigma = NULL;
}

static char *dup_or_null(const char *s) {
    return s ? cfx_strdup(s) : NULL;
}

/* ---------------------------------------------------------------------- loading --- */

/* The feature tensor of a classifier file: a value named "features", else the input of the
 * last Gemm, MatMul or Linear (nodes are imported in topological order, so the last one by id
 * is the last layer). */
static cfx_status find_features(const char *path, char **name) {
    cfx_graph *g = cfx_onnx_load(path, &(cfx_onnx_options){.batch = 1});
    if (!g) return cfx_error_context(CFX_EFORMAT, "load classifier '%s'", path);
    cfx_status s = CFX_OK;
    if (cfx_graph_find(g, "features") >= 0) {
        *name = cfx_strdup("features");
    } else {
        int last = -1;
        for (int id = 0; id < cfx_graph_num_values(g); id++) {
            const char *op = cfx_graph_value_op(g, id);
            if (op && (!strcmp(op, "Gemm") || !strcmp(op, "MatMul") || !strcmp(op, "Linear")))
                last = id;
        }
        int in = last >= 0 ? cfx_graph_value_input(g, last, 0) : -1;
        const char *nm = in >= 0 ? cfx_graph_value_name(g, in) : NULL;
        if (!nm)
            s = cfx_set_error(CFX_ENOTFOUND,
                              "classifier '%s': no tensor named 'features' and no Gemm, MatMul "
                              "or Linear layer whose input could serve as features (name one "
                              "with --features)",
                              path);
        else
            *name = cfx_strdup(nm);
    }
    if (s == CFX_OK && !*name) s = CFX_ENOMEM;
    cfx_graph_free(g);
    return s;
}

/* Imports one model into g with its first input bound to `in` (or, when the options cut the
 * model at a tensor, that tensor: cfx_onnx_import numbers cut inputs after all of the model's
 * own inputs); *out gets its first output and *extra the id of the extra output asked for. */
static cfx_status import(cfx_graph *g, const char *path, const char *what, const char *prefix,
                         cfx_onnx_options o, int in, int *out, const char *extra_name, int *extra) {
    const char *ex[1] = {extra_name};
    if (extra_name) o.extra_outputs = ex, o.n_extra_outputs = 1;
    o.prefix = prefix;
    int bind[17], nbind = 1;
    bind[0] = in;
    if (o.n_inputs > 0) {
        cfx_onnx_info *info = cfx_onnx_info_load(path);
        if (!info) return cfx_error_context(CFX_EFORMAT, "load %s '%s'", what, path);
        nbind = CFX_MIN(info->n_inputs, 16) + 1;
        cfx_onnx_info_free(info);
        for (int k = 0; k < nbind - 1; k++) bind[k] = -1;
        bind[nbind - 1] = in;
    }
    int outs[16], n = 0;
    if (cfx_onnx_import(g, path, &o, bind, nbind, outs, 16, &n) != CFX_OK)
        return cfx_error_context(CFX_EFORMAT, "load %s '%s'", what, path);
    /* A model cut at a tensor that is also one of its outputs (an autoencoder's latent) lists
     * that tensor among its outputs: the output wanted is the first other one. */
    int first = 0;
    while (first < n && o.n_inputs > 0 && outs[first] == in) first++;
    if (first >= n) return cfx_set_error(CFX_EFORMAT, "%s '%s' has no output", what, path);
    if (out) *out = outs[first];
    if (extra) {
        /* Outputs are the model's own, then the extras not among them. */
        char full[512];
        snprintf(full, sizeof full, "%s%s", prefix, extra_name);
        *extra = cfx_graph_find(g, full);
        if (*extra < 0)
            return cfx_set_error(CFX_ENOTFOUND, "%s '%s' has no tensor named '%s'", what, path,
                                 extra_name);
    }
    return CFX_OK;
}

/* The autoencoder's two halves into g: x -> latent -> reconstruction. */
static cfx_status import_autoencoder(cfx_competency *c, cfx_graph *g, int x, const char *pe,
                                     const char *pd, int *latent, int *recon) {
    if (c->autoencoder) {
        const char *cut[1] = {c->latent};
        CFX_TRY(import(g, c->autoencoder, "autoencoder", pe, (cfx_onnx_options){.outputs_only = 1},
                       x, NULL, c->latent, latent));
        return import(g, c->autoencoder, "autoencoder", pd,
                      (cfx_onnx_options){.inputs = cut, .n_inputs = 1}, *latent, recon, NULL, NULL);
    }
    CFX_TRY(import(g, c->encoder, "encoder", pe, (cfx_onnx_options){0}, x, latent, NULL, NULL));
    return import(g, c->decoder, "decoder", pd, (cfx_onnx_options){0}, *latent, recon, NULL, NULL);
}

cfx_status cfx__competency_build(cfx_competency *c, cfx_graph *g, int x, net *n) {
    n->x = x, n->code = -1;
    int out = -1, recon = -1;
    CFX_TRY(import(g, c->classifier, "classifier", "classifier/", (cfx_onnx_options){0}, x, &out,
                   c->features, &n->features));
    CFX_TRY(import_autoencoder(c, g, x, "encoder/", "decoder/", &n->latent, &recon));
    const char *op = cfx_graph_value_op(g, out);
    c->probs_output = c->output == CFX_OUTPUT_PROBS ||
                      (c->output == CFX_OUTPUT_AUTO && op && !strcmp(op, "Softmax"));
    n->probs = c->probs_output ? out : cfx_op_softmax(g, out, 1);
    int k = c->shape.num_classes;
    n->loss = cfx_op_loss(g, x, recon, CFX_LOSS_MSE, CFX_REDUCTION_NONE);
    n->a = cfx_graph_const(g, NULL, 2, (int64_t[]){1, k}, NULL);
    n->b = cfx_graph_const(g, NULL, 2, (int64_t[]){1, k}, NULL);
    int l2 = cfx_op_reshape(g, n->loss, 2, (int64_t[]){-1, 1});
    int t = cfx_op_add(g, cfx_op_mul(g, l2, n->a), n->b);
    int in_dist = cfx_op_normal_cdf(g, cfx_op_neg(g, t));
    n->indist =
        cfx_op_reduce(g, cfx_op_mul(g, n->probs, in_dist), CFX_REDUCE_SUM, (int[]){1}, 1, 0);
    int pmax = cfx_op_reduce(g, n->probs, CFX_REDUCE_MAX, (int[]){1}, 1, 0);
    n->rho = cfx_op_mul(g, pmax, n->indist);
    const int outs[] = {n->probs, n->loss, n->indist, n->rho, n->latent, n->features};
    const char *names[] = {"probs", "loss", "in_distribution", "rho", "latent", "features"};
    for (int i = 0; i < 6; i++)
        if (outs[i] < 0 || cfx_graph_set_output(g, outs[i], names[i]) != CFX_OK)
            return cfx_error_context(CFX_EINVAL, "build the competency graph");
    CFX_TRY(cfx_graph_enable_param_grads(g, 0));
    return CFX_OK;
}

/* Checks that the networks' outputs follow the batch, naming the file at fault (the loss op
 * already checked that the reconstruction has the image's shape). */
static cfx_status check_shapes(cfx_competency *c, cfx_graph *g, const net *n) {
    const struct {
        int id;
        const char *what, *file, *name;
    } v[] = {{n->probs, "classifier", c->classifier, "output"},
             {n->latent, "encoder", c->autoencoder ? c->autoencoder : c->encoder, "latent"},
             {n->features, "classifier", c->classifier, c->features}};
    for (int i = 0; i < 3; i++) {
        const cfx_tensor *t = cfx_graph_tensor(g, v[i].id);
        if (t->shape[0] != c->batch || (i == 0 && t->ndim != 2)) {
            char buf[64];
            cfx_tensor_shape_str(t->ndim, t->shape, buf, sizeof buf);
            return cfx_set_error(CFX_ESHAPE,
                                 "%s '%s': the tensor '%s' %s is not one row per image of the "
                                 "batch of %lld",
                                 v[i].what, v[i].file, v[i].name, buf, (long long)c->batch);
        }
    }
    return CFX_OK;
}

/* The image shape the classifier takes (its first input, batch dimension apart). */
static cfx_status image_shape(const char *path, int *ch, int *h, int *w) {
    cfx_onnx_info *info = cfx_onnx_info_load(path);
    if (!info) return cfx_error_context(CFX_EFORMAT, "load classifier '%s'", path);
    cfx_status s = CFX_OK;
    const cfx_onnx_tensor_info *in = info->n_inputs ? &info->inputs[0] : NULL;
    if (!in || in->ndim != 4 || in->shape[1] < 1 || in->shape[2] < 1 || in->shape[3] < 1) {
        char buf[64] = "none";
        if (in) cfx_tensor_shape_str(in->ndim, in->shape, buf, sizeof buf);
        s = cfx_set_error(CFX_ESHAPE,
                          "classifier '%s': its input %s is not an image batch (N,C,H,W) with "
                          "fixed C, H and W",
                          path, buf);
    } else {
        *ch = (int)in->shape[1], *h = (int)in->shape[2], *w = (int)in->shape[3];
        if (*ch != 1 && *ch != 3)
            s = cfx_set_error(
                CFX_ESHAPE, "classifier '%s': images must have 1 or 3 channels, not %d", path, *ch);
    }
    cfx_onnx_info_free(info);
    return s;
}

static int64_t numel_per_image(const cfx_tensor *t) {
    int64_t n = 1;
    for (int d = 1; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

cfx_competency *cfx_competency_new(const cfx_competency_models *m, int64_t batch) {
    if (!m || !m->classifier) {
        cfx_set_error(CFX_EINVAL, "competency: no classifier given");
        return NULL;
    }
    if (!m->autoencoder && (!m->encoder || !m->decoder)) {
        cfx_set_error(CFX_EINVAL, "competency: give an encoder and a decoder, or an autoencoder "
                                  "and the name of its latent tensor");
        return NULL;
    }
    if (m->autoencoder && !m->latent) {
        cfx_set_error(CFX_EINVAL,
                      "competency: autoencoder '%s' needs the name of its latent "
                      "tensor",
                      m->autoencoder);
        return NULL;
    }
    cfx_competency *c = cfx_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->batch = batch > 0 ? batch : 1;
    c->output = m->output;
    c->classifier = cfx_strdup(m->classifier);
    c->encoder = dup_or_null(m->autoencoder ? NULL : m->encoder);
    c->decoder = dup_or_null(m->autoencoder ? NULL : m->decoder);
    c->autoencoder = dup_or_null(m->autoencoder);
    c->latent = dup_or_null(m->autoencoder ? m->latent : NULL);
    c->features = dup_or_null(m->features);
    c->n.code = c->nl.code = -1;
    cfx_status s = c->classifier ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK && !c->features) s = find_features(c->classifier, &c->features);
    int ch = 0, h = 0, w = 0;
    if (s == CFX_OK) s = image_shape(c->classifier, &ch, &h, &w);
    if (s == CFX_OK) {
        c->shape.c = ch, c->shape.h = h, c->shape.w = w;
        c->g = cfx_graph_new();
        if (!c->g) s = CFX_ENOMEM;
    }
    if (s == CFX_OK) {
        c->n.x = cfx_graph_input(c->g, "image", 4, (int64_t[]){c->batch, ch, h, w});
        /* The class count is known once the classifier is in: build reads it for the
         * constants, so import the classifier's output shape first through a probe. */
        cfx_onnx_info *info = cfx_onnx_info_load(c->classifier);
        if (!info) s = CFX_EFORMAT;
        if (s == CFX_OK) {
            const cfx_onnx_tensor_info *o0 = info->n_outputs ? &info->outputs[0] : NULL;
            if (!o0 || o0->ndim != 2 || o0->shape[1] < 2)
                s = cfx_set_error(CFX_ESHAPE,
                                  "classifier '%s': its first output is not (batch, classes) "
                                  "with at least 2 classes",
                                  c->classifier);
            else
                c->shape.num_classes = (int)o0->shape[1];
            cfx_onnx_info_free(info);
        }
    }
    if (s == CFX_OK) s = cfx__competency_build(c, c->g, c->n.x, &c->n);
    if (s == CFX_OK) s = cfx_graph_requires_grad(c->g, c->n.x, 1);
    if (s == CFX_OK && cfx_graph_compile(c->g) != CFX_OK)
        s = cfx_error_context(CFX_ESHAPE,
                              "the classifier '%s' and the autoencoder '%s' do not fit "
                              "together",
                              c->classifier, c->autoencoder ? c->autoencoder : c->encoder);
    if (s == CFX_OK) {
        const cfx_tensor *lat = cfx_graph_tensor(c->g, c->n.latent);
        const cfx_tensor *f = cfx_graph_tensor(c->g, c->n.features);
        c->shape.latent_dim = (int)numel_per_image(lat);
        c->shape.feature_dim = (int)numel_per_image(f);
        c->shape.features = c->features;
        s = check_shapes(c, c->g, &c->n);
    }
    if (s != CFX_OK) {
        cfx_competency_free(c);
        return NULL;
    }
    c->shape.probs_output = c->probs_output;
    return c;
}

void cfx_competency_free(cfx_competency *c) {
    if (!c) return;
    cfx_graph_free(c->g);
    cfx_graph_free(c->gl);
    cfx_free(c->classifier), cfx_free(c->encoder), cfx_free(c->decoder);
    cfx_free(c->autoencoder), cfx_free(c->latent), cfx_free(c->features);
    cfx_parce_deinit(&c->parce);
    cfx_free(c);
}

void cfx_competency_shape_of(const cfx_competency *c, cfx_competency_shape *out) {
    *out = c->shape;
}

const cfx_parce *cfx_competency_parce(const cfx_competency *c) {
    return c->has_parce ? &c->parce : NULL;
}

/* Writes a calibration's constants a = 1 / sigma and b = -(s mu) / sigma - z into a graph. */
static void write_constants(cfx_graph *g, const net *n, const cfx_parce *p) {
    float *a = cfx_graph_tensor(g, n->a)->data, *b = cfx_graph_tensor(g, n->b)->data;
    for (int k = 0; k < p->num_classes; k++) {
        a[k] = (float)(1.0 / p->sigma[k]);
        b[k] = (float)(-(p->loss_scale * p->mu[k]) / p->sigma[k] - p->z);
    }
}

void cfx__competency_write_constants(const cfx_competency *c, cfx_graph *g, const net *n) {
    if (c->has_parce) write_constants(g, n, &c->parce);
}

cfx_status cfx_competency_set_parce(cfx_competency *c, const cfx_parce *p) {
    if (!p || p->num_classes != c->shape.num_classes || !p->mu || !p->sigma)
        return cfx_set_error(CFX_EINVAL,
                             "the calibration has %d classes but the classifier '%s' has %d",
                             p ? p->num_classes : 0, c->classifier, c->shape.num_classes);
    for (int k = 0; k < p->num_classes; k++)
        if (!isfinite(p->mu[k]) || !(p->sigma[k] > 0) || !isfinite(p->sigma[k]))
            return cfx_set_error(CFX_EINVAL,
                                 "the calibration of class %d is not usable (mu %g, sigma %g)", k,
                                 p->mu[k], p->sigma[k]);
    if (!isfinite(p->z) || !isfinite(p->loss_scale) || !isfinite(p->threshold))
        return cfx_set_error(CFX_EINVAL, "the calibration's z, loss scale or threshold is not a "
                                         "number");
    double *mu = cfx_malloc((size_t)p->num_classes * sizeof *mu);
    double *sigma = cfx_malloc((size_t)p->num_classes * sizeof *sigma);
    if (!mu || !sigma) {
        cfx_free(mu), cfx_free(sigma);
        return CFX_ENOMEM;
    }
    memcpy(mu, p->mu, (size_t)p->num_classes * sizeof *mu);
    memcpy(sigma, p->sigma, (size_t)p->num_classes * sizeof *sigma);
    cfx_parce_deinit(&c->parce);
    c->parce = *p;
    c->parce.mu = mu, c->parce.sigma = sigma;
    c->has_parce = true;
    write_constants(c->g, &c->n, &c->parce);
    if (c->gl) write_constants(c->gl, &c->nl, &c->parce);
    return CFX_OK;
}

/* ---------------------------------------------------------------------- scoring --- */

/* Copies batch results of m images, from image `first` on, out of graph g. */
static void collect(cfx_competency *c, cfx_graph *g, const net *n, int64_t first, int64_t m,
                    const cfx_competency_scores *out) {
    if (!out) return;
    const float *p = cfx_graph_tensor(g, n->probs)->data;
    int k = c->shape.num_classes;
    for (int64_t i = 0; i < m; i++) {
        const float *pi = p + i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (pi[j] > pi[best]) best = j;
        if (out->predicted) out->predicted[first + i] = best;
        if (out->softmax_max) out->softmax_max[first + i] = pi[best];
    }
    if (out->probs) memcpy(out->probs + first * k, p, (size_t)(m * k) * sizeof *p);
    if (out->loss)
        memcpy(out->loss + first, cfx_graph_tensor(g, n->loss)->data, (size_t)m * sizeof(float));
    if (c->has_parce && out->rho)
        memcpy(out->rho + first, cfx_graph_tensor(g, n->rho)->data, (size_t)m * sizeof(float));
    if (c->has_parce && out->in_distribution)
        memcpy(out->in_distribution + first, cfx_graph_tensor(g, n->indist)->data,
               (size_t)m * sizeof(float));
    int64_t d = c->shape.latent_dim, f = c->shape.feature_dim;
    if (out->latent)
        memcpy(out->latent + first * d, cfx_graph_tensor(g, n->latent)->data,
               (size_t)(m * d) * sizeof(float));
    if (out->features)
        memcpy(out->features + first * f, cfx_graph_tensor(g, n->features)->data,
               (size_t)(m * f) * sizeof(float));
}

/* Runs graph g over n inputs of `per` floats each (its input value `in`), in batches. */
static cfx_status run(cfx_competency *c, cfx_graph *g, const net *n, int in, const float *data,
                      int64_t count, int64_t per, const cfx_competency_scores *out, float *grad,
                      float *decoded) {
    if (grad && !c->has_parce)
        return cfx_set_error(CFX_EINVAL, "competency: the gradient of rho needs a calibration");
    int64_t img = (int64_t)c->shape.c * c->shape.h * c->shape.w;
    for (int64_t first = 0; first < count; first += c->batch) {
        int64_t m = CFX_MIN(c->batch, count - first);
        if (cfx_graph_tensor(g, in)->shape[0] != m) CFX_TRY(cfx_graph_set_batch(g, m));
        CFX_TRY(cfx_graph_replan(g));
        float *x = cfx_graph_tensor(g, in)->data;
        const float *src = data + first * per;
        for (int64_t i = 0; i < m * per; i++) {
            if (!isfinite(src[i]))
                return cfx_set_error(CFX_ENUMERIC,
                                     "input %lld holds a non-finite value at element "
                                     "%lld",
                                     (long long)(first + i / per), (long long)(i % per));
            x[i] = src[i];
        }
        CFX_TRY(cfx_graph_forward(g));
        collect(c, g, n, first, m, out);
        if (decoded)
            memcpy(decoded + first * img, cfx_graph_tensor(g, n->x)->data,
                   (size_t)(m * img) * sizeof(float));
        if (grad) {
            CFX_TRY(cfx_graph_backward(g, n->rho, NULL));
            const float *dx = cfx_graph_grad(g, in);
            if (!dx) return cfx_set_error(CFX_EINTERNAL, "competency: no gradient for the input");
            memcpy(grad + first * per, dx, (size_t)(m * per) * sizeof *dx);
        }
    }
    return CFX_OK;
}

static cfx_status check_batch(const cfx_tensor *t, int ndim_min, int64_t per, const char *what,
                              const char *want) {
    if (!t || t->ndim < ndim_min || t->shape[0] < 1 || numel_per_image(t) != per) {
        char buf[64] = "none";
        if (t) cfx_tensor_shape_str(t->ndim, t->shape, buf, sizeof buf);
        return cfx_set_error(CFX_ESHAPE, "%s %s do not fit the models, which take %s", what, buf,
                             want);
    }
    return CFX_OK;
}

cfx_status cfx_competency_score(cfx_competency *c, const cfx_tensor *images,
                                const cfx_competency_scores *out, float *grad) {
    char want[64];
    snprintf(want, sizeof want, "(N, %d, %d, %d)", c->shape.c, c->shape.h, c->shape.w);
    CFX_TRY(check_batch(images, 4, (int64_t)c->shape.c * c->shape.h * c->shape.w, "images", want));
    if (images->shape[1] != c->shape.c || images->shape[2] != c->shape.h)
        return check_batch(NULL, 4, 0, "images", want);
    return run(c, c->g, &c->n, c->n.x, images->data, images->shape[0], numel_per_image(images), out,
               grad, NULL);
}

cfx_status cfx__competency_decoder(cfx_competency *c, cfx_graph *g, int code, const char *prefix,
                                   int *decoded) {
    if (c->autoencoder) {
        const char *cut[1] = {c->latent};
        return import(g, c->autoencoder, "autoencoder", prefix,
                      (cfx_onnx_options){.inputs = cut, .n_inputs = 1}, code, decoded, NULL, NULL);
    }
    return import(g, c->decoder, "decoder", prefix, (cfx_onnx_options){0}, code, decoded, NULL,
                  NULL);
}

const char *cfx__competency_classifier(const cfx_competency *c) {
    return c->classifier;
}

void cfx__competency_latent_shape(cfx_competency *c, int *ndim, int64_t *shape) {
    const cfx_tensor *lat = cfx_graph_tensor(c->g, c->n.latent);
    *ndim = lat->ndim;
    memcpy(shape, lat->shape, sizeof lat->shape);
}

/* The latent graph: code -> a decoder -> the image graph's networks and rho. */
static cfx_status build_latent(cfx_competency *c) {
    cfx_graph *g = cfx_graph_new();
    if (!g) return CFX_ENOMEM;
    const cfx_tensor *lat = cfx_graph_tensor(c->g, c->n.latent);
    int64_t shape[CFX_MAX_DIMS];
    memcpy(shape, lat->shape, sizeof shape);
    shape[0] = c->batch;
    int code = cfx_graph_input(g, "code", lat->ndim, shape), decoded = -1;
    cfx_status s = cfx__competency_decoder(c, g, code, "generator/", &decoded);
    if (s == CFX_OK) s = cfx__competency_build(c, g, decoded, &c->nl);
    c->nl.code = code;
    if (s == CFX_OK) s = cfx_graph_set_output(g, decoded, "decoded");
    if (s == CFX_OK) s = cfx_graph_requires_grad(g, code, 1);
    if (s == CFX_OK) s = cfx_graph_compile(g);
    if (s != CFX_OK) {
        cfx_graph_free(g);
        return cfx_error_context(s, "build the latent competency graph");
    }
    c->gl = g;
    if (c->has_parce) write_constants(g, &c->nl, &c->parce);
    return CFX_OK;
}

cfx_status cfx_competency_score_latent(cfx_competency *c, const cfx_tensor *codes,
                                       const cfx_competency_scores *out, float *grad,
                                       float *decoded) {
    char want[64];
    snprintf(want, sizeof want, "%d values per code", c->shape.latent_dim);
    CFX_TRY(check_batch(codes, 2, c->shape.latent_dim, "latent codes", want));
    if (!c->gl) CFX_TRY(build_latent(c));
    return run(c, c->gl, &c->nl, c->nl.code, codes->data, codes->shape[0], c->shape.latent_dim, out,
               grad, decoded);
}

/* ---------------------------------------------------------------------- fitting --- */

/* Mean rho over n images for a given z, in double precision. */
static double mean_rho(const float *probs, const float *loss, int64_t n, int k, const double *mu,
                       const double *sigma, double scale, double z) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *p = probs + i * k;
        double pmax = 0, s = 0;
        for (int j = 0; j < k; j++) {
            double t = (loss[i] - scale * mu[j]) / sigma[j] - z;
            s += p[j] * cfx_normal_cdf(-t);
            pmax = fmax(pmax, p[j]);
        }
        sum += pmax * s;
    }
    return sum / (double)n;
}

cfx_status cfx_parce_fit(cfx_competency *c, const cfx_dataset *calib,
                         const cfx_parce_fit_options *o, cfx_parce *out, float *latents,
                         float *rho) {
    static const cfx_parce_fit_options defaults = {0};
    if (!o) o = &defaults;
    memset(out, 0, sizeof *out);
    int k = c->shape.num_classes;
    if (!calib || !calib->images || calib->n < 1)
        return cfx_set_error(CFX_EINVAL, "fit: the calibration set is empty");
    if (calib->num_classes != k)
        return cfx_set_error(CFX_ESHAPE,
                             "fit: the calibration set has %d classes but the classifier '%s' "
                             "outputs %d",
                             calib->num_classes, c->classifier, k);
    int64_t n = calib->n;
    float *probs = cfx_malloc((size_t)(n * k) * sizeof *probs);
    float *loss = cfx_malloc((size_t)n * sizeof *loss);
    out->mu = cfx_calloc((size_t)k, sizeof *out->mu);
    out->sigma = cfx_calloc((size_t)k, sizeof *out->sigma);
    int64_t *count = cfx_calloc((size_t)k, sizeof *count);
    cfx_status s = probs && loss && out->mu && out->sigma && count ? CFX_OK : CFX_ENOMEM;
    /* One forward pass per batch gives each image's softmax and loss together. */
    int64_t per = numel_per_image(calib->images);
    for (int64_t first = 0; s == CFX_OK && first < n; first += c->batch) {
        int64_t m = CFX_MIN(c->batch, n - first);
        cfx_tensor view = *calib->images;
        view.shape[0] = m, view.numel = m * per, view.data = calib->images->data + first * per;
        cfx_competency_scores sc = {.probs = probs + first * k, .loss = loss + first};
        if (latents) sc.latent = latents + first * c->shape.latent_dim;
        bool had = c->has_parce;
        c->has_parce = false; /* scores without rho: no calibration is needed yet */
        s = cfx_competency_score(c, &view, &sc, NULL);
        c->has_parce = had;
        cfx_progress_report(&o->progress, "calibrate", first + m, n, NULL);
    }
    int64_t correct = 0;
    for (int64_t i = 0; s == CFX_OK && i < n; i++) {
        int y = calib->labels[i];
        if (y < 0 || y >= k) {
            s = cfx_set_error(CFX_EINVAL, "fit: calibration image %lld has label %d, not 0..%d",
                              (long long)i, y, k - 1);
            break;
        }
        count[y]++;
        out->mu[y] += loss[i];
        const float *p = probs + i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (p[j] > p[best]) best = j;
        correct += best == y;
    }
    for (int j = 0; s == CFX_OK && j < k; j++) {
        const char *name =
            calib->class_names && calib->class_names[j] ? calib->class_names[j] : "?";
        if (count[j] < 2) {
            s = cfx_set_error(CFX_EINVAL,
                              "fit: class %d ('%s') has %lld image(s) in the calibration split; "
                              "PaRCE needs at least 2 per class",
                              j, name, (long long)count[j]);
            break;
        }
        out->mu[j] /= (double)count[j];
    }
    for (int64_t i = 0; s == CFX_OK && i < n; i++) {
        double d = loss[i] - out->mu[calib->labels[i]];
        out->sigma[calib->labels[i]] += d * d;
    }
    for (int j = 0; s == CFX_OK && j < k; j++) {
        out->sigma[j] = sqrt(out->sigma[j] / (double)count[j]); /* population deviation */
        if (!(out->sigma[j] > 0))
            s = cfx_set_error(CFX_ENUMERIC,
                              "fit: the reconstruction loss of class %d is the same on all its "
                              "calibration images (deviation 0)",
                              j);
    }
    if (s == CFX_OK) {
        out->num_classes = k;
        out->loss_scale = o->loss_scale > 0 ? o->loss_scale : 2.0;
        out->threshold = o->threshold > 0 ? o->threshold : 0.9;
        out->accuracy = (double)correct / (double)n;
        out->n_calib = n;
        if (o->fixed_z) {
            out->z = o->z;
        } else {
            double best = INFINITY;
            for (int g = 0; g < 100; g++) {
                double z = 0.05 * g;
                double gap =
                    fabs(mean_rho(probs, loss, n, k, out->mu, out->sigma, out->loss_scale, z) -
                         out->accuracy);
                if (gap < best) best = gap, out->z = z;
            }
        }
        out->mean_rho = mean_rho(probs, loss, n, k, out->mu, out->sigma, out->loss_scale, out->z);
        s = cfx_competency_set_parce(c, out);
    }
    if (s == CFX_OK && rho) {
        cfx_competency_scores sc = {.rho = rho};
        s = cfx_competency_score(c, calib->images, &sc, NULL);
    }
    cfx_free(probs), cfx_free(loss), cfx_free(count);
    if (s != CFX_OK) cfx_parce_deinit(out);
    return s;
}
