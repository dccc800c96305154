/* tiny_models.h - the small competency models the competency, counterfactual and distance
 * tests write: dir/<classifier> (conv 3x3 4 -> tanh -> linear 8 "features" -> tanh -> linear 3,
 * then a Softmax unless logits), dir/encoder.onnx (linear 5, tanh: "latent") and
 * dir/decoder.onnx (linear, sigmoid, reshape to the image). Smooth activations, so central
 * differences need not step over a kink. Same seed, same weights; the scales multiply the
 * classifier's last weights and the decoder's (1: as initialised). Images are 3x6x6 unless
 * c, h, w say otherwise. two_convs gives the classifier a second convolution for the LPIPS
 * tests: conv 3x3 4 -> relu -> conv 3x3 stride 2 6 -> batch norm -> tanh -> linear 8 ... */
#ifndef CFX_TESTS_TINY_MODELS_H
#define CFX_TESTS_TINY_MODELS_H

#include "test.h"

enum { TINY_C = 3, TINY_H = 6, TINY_W = 6, TINY_K = 3, TINY_D = 5, TINY_F = 8 };

typedef struct {
    const char *classifier; /* file name in dir; NULL: classifier.onnx */
    bool logits;            /* no final Softmax (the output is named logits) */
    float head_scale, decoder_scale;
    int c, h, w;    /* the image; 0: TINY_C, TINY_H, TINY_W */
    bool two_convs; /* conv, relu, conv, batch norm, tanh (see above) */
} tiny_models;

/* The paths of the models tiny_models_write wrote in dir: the classifier's file as named, the
 * autoencoder's halves (c, e and d hold 800 bytes each). */
static inline void tiny_model_paths(const char *dir, const char *classifier, char *c, char *e,
                                    char *d) {
    snprintf(c, 800, "%s/%s", dir, classifier);
    snprintf(e, 800, "%s/encoder.onnx", dir);
    snprintf(d, 800, "%s/decoder.onnx", dir);
}

/* n images of the tiny models' default size, uniform in [0, 1), drawn from seed. */
static inline cfx_tensor *tiny_random_images(int64_t n, uint64_t seed) {
    cfx_tensor *t = cfx_tensor_new(4, (int64_t[]){n, TINY_C, TINY_H, TINY_W});
    cfx_rng r;
    cfx_rng_init(&r, seed);
    cfx_tensor_fill_uniform(t, &r, 0.0f, 1.0f);
    return t;
}

static inline void tiny_scale(cfx_graph *g, const char *name, int64_t n, float scale) {
    if (scale == 0 || scale == 1) return;
    float *w = cfx_graph_tensor(g, cfx_graph_find(g, name))->data;
    for (int64_t i = 0; i < n; i++) w[i] *= scale;
}

static inline void tiny_save(cfx_graph *g, const char *dir, const char *name) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_OK(cfx_onnx_save(g, path, NULL, 0));
}

/* The second convolution of two_convs and its batch norm (random statistics). */
static inline int tiny_second_conv(cfx_graph *g, int h, cfx_rng *r) {
    h = cfx_layer_conv2d(g, cfx_op_relu(g, h), "c2", 6, 3, 2, 1, r);
    int p[4];
    const char *names[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    const float lo[4] = {0.5f, -0.2f, -0.1f, 0.5f}, hi[4] = {1.5f, 0.2f, 0.1f, 1.5f};
    for (int k = 0; k < 4; k++) {
        p[k] = k < 2 ? cfx_graph_param(g, names[k], 1, (int64_t[]){6})
                     : cfx_graph_const(g, names[k], 1, (int64_t[]){6}, NULL);
        cfx_tensor_fill_uniform(cfx_graph_tensor(g, p[k]), r, lo[k], hi[k]);
    }
    return cfx_op_tanh(g, cfx_op_batch_norm(g, h, p[0], p[1], p[2], p[3], NULL));
}

static inline void tiny_models_write(const char *dir, const tiny_models *o) {
    enum { K = TINY_K, D = TINY_D, F = TINY_F };
    const int C = o->c ? o->c : TINY_C, H = o->h ? o->h : TINY_H, W = o->w ? o->w : TINY_W;
    cfx_rng r;
    cfx_rng_init(&r, 7);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, C, H, W});
    int h = cfx_layer_conv2d(g, x, "c1", 4, 3, 1, 1, &r);
    h = o->two_convs ? tiny_second_conv(g, h, &r) : cfx_op_tanh(g, h);
    int f = cfx_op_tanh(g, cfx_layer_linear(g, cfx_op_flatten(g, h, 1), "fc1", F, &r));
    CHECK_OK(cfx_graph_set_name(g, f, "features"));
    int y = cfx_layer_linear(g, f, "fc2", K, &r);
    if (!o->logits) y = cfx_op_softmax(g, y, 1);
    CHECK_OK(cfx_graph_set_output(g, y, o->logits ? "logits" : "probs"));
    CHECK_OK(cfx_graph_compile(g));
    tiny_scale(g, "fc2.weight", K * F, o->head_scale);
    tiny_save(g, dir, o->classifier ? o->classifier : "classifier.onnx");
    cfx_graph_free(g);

    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 4, (int64_t[]){1, C, H, W});
    int z = cfx_op_tanh(g, cfx_layer_linear(g, cfx_op_flatten(g, x, 1), "enc", D, &r));
    CHECK_OK(cfx_graph_set_output(g, z, "latent"));
    CHECK_OK(cfx_graph_compile(g));
    tiny_save(g, dir, "encoder.onnx");
    cfx_graph_free(g);

    g = cfx_graph_new();
    z = cfx_graph_input(g, "latent", 2, (int64_t[]){1, D});
    int out = cfx_op_sigmoid(g, cfx_layer_linear(g, z, "dec", C * H * W, &r));
    out = cfx_op_reshape(g, out, 4, (int64_t[]){-1, C, H, W});
    CHECK_OK(cfx_graph_set_output(g, out, "recon"));
    CHECK_OK(cfx_graph_compile(g));
    tiny_scale(g, "dec.weight", (int64_t)C * H * W * D, o->decoder_scale);
    tiny_save(g, dir, "decoder.onnx");
    cfx_graph_free(g);
}

#endif
