/* layers.c - layer builders with PyTorch's default initialisation, and the reference
 * classifier and autoencoder of the competency paper (Pohl et al.), adapted to the image size;
 * and conv-pool, a small translation-invariant classifier for scenes (global max pooling).
 *
 * PyTorch initialises Conv and Linear weights with kaiming_uniform(a = sqrt 5), whose bound
 * sqrt(6 / ((1 + a^2) fan_in)) simplifies to 1 / sqrt(fan_in), and biases uniformly within the
 * same bound. fan_in is in_channels/groups * kernel area; for a transposed convolution PyTorch
 * computes it from the weight's second dimension, which is the output channels. */
#include "engine/graph.h"

#include <math.h>
#include <stdio.h>

static int uniform_param(cfx_graph *g, const char *name, const char *suffix, int ndim,
                         const int64_t *shape, double bound, cfx_rng *r) {
    char full[256];
    snprintf(full, sizeof full, "%s.%s", name, suffix);
    int id = cfx_graph_param(g, full, ndim, shape);
    if (id < 0) return -1;
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, id), r, (float)-bound, (float)bound);
    return id;
}

/* Channels (dimension 1) of x, or -1 with a message naming the layer. */
static int64_t channels(cfx_graph *g, int x, const char *name, int want_ndim) {
    const cfx_tensor *t = cfx_graph_tensor(g, x);
    if (!t) return -1;
    if (t->ndim != want_ndim) {
        char buf[96];
        cfx__graph_fail(g, name, "expects a %d-d input, got %s", want_ndim,
                        cfx__shape_fmt(t, buf, sizeof buf));
        return -1;
    }
    return t->shape[1];
}

int cfx_layer_conv2d(cfx_graph *g, int x, const char *name, int cout, int k, int stride, int pad,
                     cfx_rng *r) {
    int64_t cin = channels(g, x, name, 4);
    if (cin < 0) return -1;
    double bound = 1.0 / sqrt((double)cin * k * k);
    int w = uniform_param(g, name, "weight", 4, (int64_t[]){cout, cin, k, k}, bound, r);
    int b = uniform_param(g, name, "bias", 1, (int64_t[]){cout}, bound, r);
    return cfx_op_conv2d(
        g, x, w, b, &(cfx_conv2d_attr){.stride = {stride, stride}, .pad = {pad, pad, pad, pad}});
}

int cfx_layer_conv_transpose2d(cfx_graph *g, int x, const char *name, int cout, int k, int stride,
                               int pad, int output_padding, cfx_rng *r) {
    int64_t cin = channels(g, x, name, 4);
    if (cin < 0) return -1;
    double bound = 1.0 / sqrt((double)cout * k * k);
    int w = uniform_param(g, name, "weight", 4, (int64_t[]){cin, cout, k, k}, bound, r);
    int b = uniform_param(g, name, "bias", 1, (int64_t[]){cout}, bound, r);
    return cfx_op_conv_transpose2d(
        g, x, w, b,
        &(cfx_conv2d_attr){.stride = {stride, stride},
                           .pad = {pad, pad, pad, pad},
                           .output_padding = {output_padding, output_padding}});
}

int cfx_layer_linear(cfx_graph *g, int x, const char *name, int out, cfx_rng *r) {
    int64_t in = channels(g, x, name, 2);
    if (in < 0) return -1;
    double bound = 1.0 / sqrt((double)in);
    int w = uniform_param(g, name, "weight", 2, (int64_t[]){out, in}, bound, r);
    int b = uniform_param(g, name, "bias", 1, (int64_t[]){out}, bound, r);
    return cfx_op_linear(g, x, w, b);
}

/* He initialisation (normal, std sqrt(2 / fan_in), zero bias) of the layer called name, for the
 * reference classifier's ReLU layers. With PyTorch's default (variance 1 / (3 fan_in)) the signal
 * shrinks at each of the eight layers and training on the generated signs sits on a plateau at
 * chance level (loss ln 7 after 10 epochs, the same in PyTorch and in cfx); He's variance keeps
 * the signal's scale through ReLUs and both learn. */
static void he_init(cfx_graph *g, const char *name, cfx_rng *r) {
    char full[256];
    snprintf(full, sizeof full, "%s.weight", name);
    cfx_tensor *w = cfx_graph_tensor(g, cfx_graph_find(g, full));
    snprintf(full, sizeof full, "%s.bias", name);
    cfx_tensor *b = cfx_graph_tensor(g, cfx_graph_find(g, full));
    if (!w || !b) return;
    cfx_tensor_fill_normal(w, r, 0.0f, (float)sqrt(2.0 * (double)w->shape[0] / (double)w->numel));
    cfx_tensor_fill(b, 0.0f);
}

/* The convolution stack shared by the classifier and the encoder. sizes[] receives the
 * spatial size after each convolution so the decoder can mirror them exactly. */
static int conv_stack(cfx_graph *g, int x, const char *prefix, cfx_rng *r, int64_t sizes[3][2]) {
    static const int couts[3] = {32, 64, 64}, ks[3] = {5, 3, 3};
    char name[64];
    int h = x;
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s%d", prefix, i + 1);
        h = cfx_op_relu(g, cfx_layer_conv2d(g, h, name, couts[i], ks[i], 2, ks[i] / 2, r));
        if (h < 0) return -1;
        sizes[i][0] = cfx_graph_tensor(g, h)->shape[2];
        sizes[i][1] = cfx_graph_tensor(g, h)->shape[3];
    }
    return h;
}

static cfx_status check_image_input(cfx_graph *g, int x, const char *what) {
    const cfx_tensor *t = cfx_graph_tensor(g, x);
    if (!t || t->ndim != 4)
        return cfx_set_error(CFX_ESHAPE, "%s: the input must be an image batch (N,C,H,W)", what);
    if (t->shape[2] < 8 || t->shape[3] < 8)
        return cfx_set_error(CFX_ESHAPE, "%s: images must be at least 8x8, not %lldx%lld", what,
                             (long long)t->shape[2], (long long)t->shape[3]);
    return CFX_OK;
}

static cfx_status name_or_fail(cfx_graph *g, int id, const char *name) {
    if (id < 0) return cfx_set_error(CFX_EINVAL, "%s", cfx_last_error());
    return cfx_graph_set_output(g, id, name);
}

cfx_status cfx_model_classifier(cfx_graph *g, int x, int num_classes, cfx_rng *r,
                                cfx_classifier_ids *ids) {
    CFX_TRY(check_image_input(g, x, "classifier"));
    if (num_classes < 2)
        return cfx_set_error(CFX_EINVAL, "classifier: needs at least 2 classes, not %d",
                             num_classes);
    int64_t sizes[3][2];
    int h = cfx_op_flatten(g, conv_stack(g, x, "conv", r, sizes), 1);
    static const int widths[4] = {512, 512, 256, 256};
    char name[32];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "fc%d", i + 1);
        h = cfx_op_relu(g, cfx_layer_linear(g, h, name, widths[i], r));
    }
    static const char *const relu_layers[] = {"conv1", "conv2", "conv3", "fc1",
                                              "fc2",   "fc3",   "fc4"};
    for (int i = 0; i < 7 && h >= 0; i++) he_init(g, relu_layers[i], r);
    ids->features = h;
    ids->logits = cfx_layer_linear(g, h, "fc5", num_classes, r);
    ids->probs = cfx_op_softmax(g, ids->logits, 1);
    CFX_TRY(name_or_fail(g, ids->features, "features"));
    CFX_TRY(name_or_fail(g, ids->logits, "logits"));
    return name_or_fail(g, ids->probs, "probs");
}

/* Instance normalisation (cfx_op_instance_norm) of x with a learnt scale (ones) and shift
 * (zeros) per channel, named "<name>.weight" and "<name>.bias" as PyTorch's
 * InstanceNorm2d(C, affine=True). */
static int instance_norm(cfx_graph *g, int x, const char *name) {
    int64_t c = channels(g, x, name, 4);
    if (c < 0) return -1;
    char full[64];
    snprintf(full, sizeof full, "%s.weight", name);
    int scale = cfx_graph_param(g, full, 1, &c);
    snprintf(full, sizeof full, "%s.bias", name);
    int shift = cfx_graph_param(g, full, 1, &c);
    if (scale < 0 || shift < 0) return -1;
    cfx_tensor_fill(cfx_graph_tensor(g, scale), 1.0f);
    cfx_tensor_fill(cfx_graph_tensor(g, shift), 0.0f);
    return cfx_op_instance_norm(g, x, scale, shift, 1e-5f);
}

cfx_status cfx_model_classifier_conv_pool(cfx_graph *g, int x, int num_classes, cfx_rng *r,
                                          cfx_classifier_ids *ids) {
    CFX_TRY(check_image_input(g, x, "classifier"));
    if (num_classes < 2)
        return cfx_set_error(CFX_EINVAL, "classifier: needs at least 2 classes, not %d",
                             num_classes);
    /* Five convolutions (the receptive field grows to 51 pixels, about two scene cells at 48),
     * each followed by instance normalisation and a ReLU. */
    static const int couts[5] = {32, 64, 64, 128, 128}, ks[5] = {5, 3, 3, 3, 3},
                     strides[5] = {2, 2, 1, 2, 1};
    char name[32];
    int h = x;
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "conv%d", i + 1);
        h = cfx_layer_conv2d(g, h, name, couts[i], ks[i], strides[i], ks[i] / 2, r);
        if (h >= 0) he_init(g, name, r);
        snprintf(name, sizeof name, "norm%d", i + 1);
        h = cfx_op_relu(g, instance_norm(g, h, name));
    }
    /* Global max pooling: a channel answers whether its pattern is anywhere in the image. */
    ids->features = cfx_op_reduce(g, h, CFX_REDUCE_MAX, (const int[]){2, 3}, 2, 0);
    ids->logits = cfx_layer_linear(g, ids->features, "fc", num_classes, r);
    ids->probs = cfx_op_softmax(g, ids->logits, 1);
    CFX_TRY(name_or_fail(g, ids->features, "features"));
    CFX_TRY(name_or_fail(g, ids->logits, "logits"));
    return name_or_fail(g, ids->probs, "probs");
}

/* Output padding that makes a stride-2 transposed convolution of size `in` produce `want`. */
static int out_pad(int64_t in, int64_t want, int k, int pad) {
    return (int)(want - ((in - 1) * 2 - 2 * pad + k));
}

cfx_status cfx_model_autoencoder(cfx_graph *g, int x, int latent_dim, cfx_rng *r,
                                 cfx_autoencoder_ids *ids) {
    CFX_TRY(check_image_input(g, x, "autoencoder"));
    if (latent_dim < 1) return cfx_set_error(CFX_EINVAL, "autoencoder: latent size must be >= 1");
    const cfx_tensor *xt = cfx_graph_tensor(g, x);
    int64_t c = xt->shape[1], hw[2] = {xt->shape[2], xt->shape[3]};
    int64_t sizes[3][2];
    int h = cfx_op_flatten(g, conv_stack(g, x, "enc", r, sizes), 1);
    ids->latent = cfx_layer_linear(g, h, "enc_fc", latent_dim, r);
    CFX_TRY(name_or_fail(g, ids->latent, "latent"));
    h = cfx_op_relu(
        g, cfx_layer_linear(g, ids->latent, "dec_fc", (int)(64 * sizes[2][0] * sizes[2][1]), r));
    h = cfx_op_reshape(g, h, 4, (int64_t[]){-1, 64, sizes[2][0], sizes[2][1]});
    /* Mirror the encoder: 3x3 up to the second and first sizes, then 5x5 to the input. */
    static const int couts[2] = {64, 32};
    char name[32];
    for (int i = 1; i >= 0; i--) {
        int op = out_pad(sizes[i + 1][0], sizes[i][0], 3, 1);
        snprintf(name, sizeof name, "dec%d", 2 - i);
        h = cfx_op_relu(g, cfx_layer_conv_transpose2d(g, h, name, couts[1 - i], 3, 2, 1, op, r));
    }
    int op = out_pad(sizes[0][0], hw[0], 5, 2);
    h = cfx_layer_conv_transpose2d(g, h, "dec3", (int)c, 5, 2, 2, op, r);
    ids->reconstruction = cfx_op_sigmoid(g, h);
    CFX_TRY(name_or_fail(g, ids->reconstruction, "reconstruction"));
    /* Building grew the graph: fetch both tensors afresh. */
    if (!cfx_tensor_same_shape(cfx_graph_tensor(g, x), cfx_graph_tensor(g, ids->reconstruction)))
        return cfx_set_error(CFX_EINTERNAL, "autoencoder: decoder does not mirror the encoder");
    return CFX_OK;
}
