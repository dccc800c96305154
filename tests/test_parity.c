/* test_parity.c - the engine against PyTorch on whole networks (tests/py/parity_oracle.py):
 * a small CNN (conv, batch norm in training mode, relu, max and average pooling, linear,
 * softmax) and a conv autoencoder (conv-transpose, nearest upsampling, sigmoid) with the same
 * weights give the same outputs, weight gradients and input gradients; five Adam steps on an
 * input image land on the same image. "Within 1e-4 relative" is taken per tensor: every element
 * within 1e-4 of the reference scaled by the tensor's largest magnitude. */
#include "test.h"

#include <stdio.h>

static const char *dir;

/* Runs the PyTorch side once per process; every test here reads its files. */
static bool oracle_ready(void) {
    static int rc = -1;
    if (rc < 0) {
        dir = cfx_test_tmpdir();
        rc = cfx_test_python("parity_oracle.py", dir);
        CHECK_MSG(rc == 0, "tests/py/parity_oracle.py failed (exit %d)", rc);
    }
    return rc == 0;
}

static void compare(const char *what, const float *got, const char *ref_name) {
    cfx_tensor *ref = cfx_test_npy(dir, ref_name);
    if (!ref || !got) {
        CHECK_MSG(got != NULL, "%s: no gradient", what);
        cfx_tensor_free(ref);
        return;
    }
    float scale = 0;
    for (int64_t i = 0; i < ref->numel; i++) scale = fmaxf(scale, fabsf(ref->data[i]));
    if (!CHECK_ARRAY_NEAR(got, ref->data, (size_t)ref->numel, 1e-4, 1e-4 * scale))
        printf("  (%s, reference scale %g)\n", what, (double)scale);
    cfx_tensor_free(ref);
}

/* A parameter or constant named like the PyTorch state-dict entry, filled from prefix_name. */
static int weight(cfx_graph *g, const char *prefix, const char *name, int is_const) {
    char file[128];
    snprintf(file, sizeof file, "%s_%s", prefix, name);
    cfx_tensor *t = cfx_test_npy(dir, file);
    if (!t) return -1;
    int id = is_const ? cfx_graph_const(g, name, t->ndim, t->shape, t->data)
                      : cfx_graph_param(g, name, t->ndim, t->shape);
    if (id >= 0 && !is_const) memcpy(cfx_graph_tensor(g, id)->data, t->data, (size_t)t->numel * 4);
    cfx_tensor_free(t);
    return id;
}

static int conv(cfx_graph *g, int x, const char *pre, const char *name, int stride, int pad) {
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    return cfx_op_conv2d(
        g, x, weight(g, pre, w, 0), weight(g, pre, b, 0),
        &(cfx_conv2d_attr){.stride = {stride, stride}, .pad = {pad, pad, pad, pad}});
}

static int linear(cfx_graph *g, int x, const char *pre, const char *name) {
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    return cfx_op_linear(g, x, weight(g, pre, w, 0), weight(g, pre, b, 0));
}

/* The CNN of parity_oracle.py; returns the softmax output, sets *x to the input. */
static int build_cnn(cfx_graph *g, int64_t batch, int *x) {
    *x = cfx_graph_input(g, "x", 4, (int64_t[]){batch, 1, 28, 28});
    int h = conv(g, *x, "cnn", "c1", 1, 1);
    h = cfx_op_batch_norm(g, h, weight(g, "cnn", "bn.weight", 0), weight(g, "cnn", "bn.bias", 0),
                          weight(g, "cnn", "bn.running_mean", 1),
                          weight(g, "cnn", "bn.running_var", 1), &(cfx_batch_norm_attr){0});
    h = cfx_op_max_pool2d(g, cfx_op_relu(g, h), &(cfx_pool2d_attr){.kernel = {2, 2}});
    h = cfx_op_relu(g, conv(g, h, "cnn", "c2", 2, 1));
    h = cfx_op_avg_pool2d(g, h, &(cfx_pool2d_attr){.kernel = {2, 2}});
    h = linear(g, cfx_op_flatten(g, h, 1), "cnn", "fc");
    return cfx_op_softmax(g, h, 1);
}

static void fill_input(cfx_graph *g, int x, const char *name) {
    cfx_tensor *t = cfx_test_npy(dir, name);
    if (t) CHECK_OK(cfx_tensor_copy(cfx_graph_tensor(g, x), t));
    cfx_tensor_free(t);
}

static void check_weight_grads(cfx_graph *g, const char *prefix, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        char ref[128], what[128];
        snprintf(ref, sizeof ref, "%s_d_%s", prefix, names[i]);
        snprintf(what, sizeof what, "%s d%s", prefix, names[i]);
        compare(what, cfx_graph_grad(g, cfx_graph_find(g, names[i])), ref);
    }
}

CFX_TEST(parity, cnn_and_autoencoder_match_pytorch) {
    if (!oracle_ready()) return;

    /* CNN, batch norm in training mode. */
    cfx_graph *g = cfx_graph_new();
    int x, y = build_cnn(g, 4, &x);
    CHECK_OK(cfx_graph_requires_grad(g, x, 1));
    CHECK_OK(cfx_graph_compile(g));
    cfx_graph_set_training(g, 1);
    fill_input(g, x, "cnn_x");
    CHECK_OK(cfx_graph_forward(g));
    compare("cnn y", cfx_graph_tensor(g, y)->data, "cnn_y");
    cfx_tensor *w = cfx_test_npy(dir, "cnn_W");
    if (w) CHECK_OK(cfx_graph_backward(g, y, w->data));
    cfx_tensor_free(w);
    compare("cnn dx", cfx_graph_grad(g, x), "cnn_dx");
    /* c1.bias feeds a training-mode batch norm, which subtracts the batch mean: its gradient is
     * exactly zero in exact arithmetic, and both frameworks return rounding noise (~1e-8 here,
     * ~1e-10 in PyTorch). Check that property instead of comparing noise. */
    const float *db = cfx_graph_grad(g, cfx_graph_find(g, "c1.bias"));
    const cfx_tensor *c1w = cfx_graph_tensor(g, cfx_graph_find(g, "c1.weight"));
    const float *dw = cfx_graph_grad(g, cfx_graph_find(g, "c1.weight"));
    float wscale = 0;
    for (int64_t i = 0; dw && i < c1w->numel; i++) wscale = fmaxf(wscale, fabsf(dw[i]));
    for (int i = 0; db && i < 8; i++)
        CHECK_MSG(fabsf(db[i]) <= 1e-4f * wscale,
                  "dc1.bias[%d] = %g is not ~0 (dc1.weight scale %g)", i, (double)db[i],
                  (double)wscale);
    static const char *const cnn_params[] = {"c1.weight", "bn.weight", "bn.bias", "c2.weight",
                                             "c2.bias",   "fc.weight", "fc.bias", NULL};
    check_weight_grads(g, "cnn", cnn_params);
    compare("running mean", cfx_graph_tensor(g, cfx_graph_find(g, "bn.running_mean"))->data,
            "cnn_after_bn.running_mean");
    compare("running var", cfx_graph_tensor(g, cfx_graph_find(g, "bn.running_var"))->data,
            "cnn_after_bn.running_var");
    cfx_graph_free(g);

    /* Autoencoder. */
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 4, (int64_t[]){2, 1, 16, 16});
    int h = cfx_op_relu(g, conv(g, x, "ae", "e1", 2, 1));
    h = cfx_op_relu(g, conv(g, h, "ae", "e2", 2, 1));
    int z = linear(g, cfx_op_flatten(g, h, 1), "ae", "el");
    h = cfx_op_reshape(g, linear(g, z, "ae", "dl"), 4, (int64_t[]){-1, 16, 4, 4});
    h = cfx_op_conv_transpose2d(g, h, weight(g, "ae", "d1.weight", 0),
                                weight(g, "ae", "d1.bias", 0),
                                &(cfx_conv2d_attr){.stride = {2, 2}, .pad = {1, 1, 1, 1}});
    h = cfx_op_resize(g, cfx_op_relu(g, h),
                      &(cfx_resize_attr){.mode = CFX_RESIZE_NEAREST,
                                         .coord = CFX_COORD_ASYMMETRIC,
                                         .nearest = CFX_NEAREST_FLOOR,
                                         .out_h = 16,
                                         .out_w = 16});
    y = cfx_op_sigmoid(g, conv(g, h, "ae", "d2", 1, 1));
    CHECK_OK(cfx_graph_requires_grad(g, x, 1));
    CHECK_OK(cfx_graph_compile(g));
    fill_input(g, x, "ae_x");
    CHECK_OK(cfx_graph_forward(g));
    compare("ae y", cfx_graph_tensor(g, y)->data, "ae_y");
    w = cfx_test_npy(dir, "ae_W");
    if (w) CHECK_OK(cfx_graph_backward(g, y, w->data));
    cfx_tensor_free(w);
    compare("ae dx", cfx_graph_grad(g, x), "ae_dx");
    static const char *const ae_params[] = {
        "e1.weight", "e1.bias",   "e2.weight", "e2.bias",   "el.weight", "el.bias", "dl.weight",
        "dl.bias",   "d1.weight", "d1.bias",   "d2.weight", "d2.bias",   NULL};
    check_weight_grads(g, "ae", ae_params);
    cfx_graph_free(g);
}

CFX_TEST(parity, adam_on_an_input_image_matches_pytorch) {
    if (!oracle_ready()) return;
    cfx_graph *g = cfx_graph_new();
    int x, y = build_cnn(g, 1, &x);
    CHECK_OK(cfx_graph_requires_grad(g, x, 1));
    CHECK_OK(cfx_graph_enable_param_grads(g, 0));
    CHECK_OK(cfx_graph_compile(g));
    fill_input(g, x, "adam_x0");
    cfx_tensor *rm = cfx_test_npy(dir, "adam_rm"), *rv = cfx_test_npy(dir, "adam_rv"),
               *w = cfx_test_npy(dir, "adam_W");
    if (!rm || !rv || !w) goto done;
    CHECK_OK(cfx_tensor_copy(cfx_graph_tensor(g, cfx_graph_find(g, "bn.running_mean")), rm));
    CHECK_OK(cfx_tensor_copy(cfx_graph_tensor(g, cfx_graph_find(g, "bn.running_var")), rv));
    cfx_tensor *img = cfx_graph_tensor(g, x);
    cfx_optim *opt = cfx_optim_adam((size_t)img->numel, &(cfx_adam_options){.lr = 0.01f});
    for (int step = 0; step < 5; step++) {
        CHECK_OK(cfx_graph_forward(g));
        CHECK_OK(cfx_graph_backward(g, y, w->data));
        CHECK_OK(cfx_optim_step(opt, img->data, cfx_graph_grad(g, x)));
    }
    cfx_optim_free(opt);
    compare("image after 5 Adam steps", img->data, "adam_x5");
done:
    cfx_tensor_free(rm);
    cfx_tensor_free(rv);
    cfx_tensor_free(w);
    cfx_graph_free(g);
}
