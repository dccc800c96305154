/* test_onnx.c - ONNX import against PyTorch (outputs and input gradients of models exported by
 * torch.onnx.export), export round trips checked by onnx.checker, splitting, and bad files. */
#include "test.h"

#include <stdlib.h>

/* Runs tests/py/onnx_oracle.py KIND into a fresh folder; NULL (with a failure) on error. */
static const char *oracle(const char *kind) {
    const char *dir = cfx_test_tmpdir();
    char args[600];
    snprintf(args, sizeof args, "%s '%s'", kind, dir);
    int rc = cfx_test_python("onnx_oracle.py", args);
    CHECK_MSG(rc == 0, "onnx_oracle.py %s exited with %d", kind, rc);
    return rc == 0 ? dir : NULL;
}

static cfx_tensor *load_npy(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    cfx_tensor *t = cfx_npy_read(p);
    CHECK_MSG(t != NULL, "read %s: %s", p, cfx_last_error());
    return t;
}

static void read_text(const char *dir, const char *name, char *buf, size_t size) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    buf[0] = 0;
    if (!f) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Largest |a-b| / (|b| + floor) over the arrays, for reporting. */
static double max_rel(const float *a, const float *b, size_t n, double floor) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + floor);
        if (r > worst) worst = r;
    }
    return worst;
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs((double)a[i]) > m ? fabs((double)a[i]) : m;
    return m;
}

/* Loads dir/model.onnx, checks the output against y.npy and the input gradient of
 * sum(y * w) against gx.npy; with the feature name in extra.txt, also that tensor. */
static void parity(const char *kind, bool with_extra) {
    const char *dir = oracle(kind);
    if (!dir) return;
    cfx_tensor *x = load_npy(dir, "x.npy"), *y = load_npy(dir, "y.npy");
    cfx_tensor *w = load_npy(dir, "w.npy"), *gx = load_npy(dir, "gx.npy");
    cfx_tensor *feat = with_extra ? load_npy(dir, "feat.npy") : NULL;
    char extra[256];
    read_text(dir, "extra.txt", extra, sizeof extra);
    const char *extras[] = {extra};
    char path[600];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    cfx_onnx_options o = {.batch = x ? x->shape[0] : 1,
                          .extra_outputs = with_extra ? extras : NULL,
                          .n_extra_outputs = with_extra ? 1 : 0};
    cfx_graph *g = cfx_onnx_load(path, &o);
    CHECK_MSG(g != NULL, "load %s: %s", kind, cfx_last_error());
    if (!g || !x || !y || !w || !gx || (with_extra && !feat)) goto out;
    int in = cfx_graph_find(g, "input");
    int out = -1, fid = with_extra ? cfx_graph_find(g, extra) : -1;
    for (int i = 0; i < cfx_graph_num_values(g); i++)
        if (cfx_graph_value_name(g, i) && (!strcmp(cfx_graph_value_name(g, i), "logits") ||
                                           !strcmp(cfx_graph_value_name(g, i), "recon")))
            out = i;
    CHECK(in >= 0 && out >= 0);
    CHECK(!with_extra || fid >= 0);
    if (in < 0 || out < 0) goto out;
    CHECK_OK(cfx_graph_requires_grad(g, in, 1));
    CHECK_OK(cfx_graph_enable_param_grads(g, 0));
    CHECK_OK(cfx_graph_compile(g));
    cfx_tensor *tx = cfx_graph_tensor(g, in);
    CHECK_INT_EQ(tx->numel, x->numel);
    if (tx->numel != x->numel) goto out;
    memcpy(tx->data, x->data, (size_t)x->numel * sizeof(float));
    CHECK_OK(cfx_graph_forward(g));
    cfx_tensor *ty = cfx_graph_tensor(g, out);
    CHECK_INT_EQ(ty->numel, y->numel);
    if (ty->numel != y->numel) goto out;
    CHECK(max_abs(y->data, (size_t)y->numel) > 1e-3); /* a test that can fail */
    CHECK_ARRAY_NEAR(ty->data, y->data, (size_t)y->numel, 1e-4,
                     1e-5 * max_abs(y->data, (size_t)y->numel));
    if (fid >= 0) {
        cfx_tensor *tf = cfx_graph_tensor(g, fid);
        CHECK_INT_EQ(tf->numel, feat->numel);
        if (tf->numel == feat->numel)
            CHECK_ARRAY_NEAR(tf->data, feat->data, (size_t)feat->numel, 1e-4, 1e-5);
    }
    /* The gradient of sum(y * w), w repeated over the batch, is the backward seed. */
    float *seed = malloc((size_t)y->numel * sizeof *seed);
    for (int64_t i = 0; i < y->numel; i++) seed[i] = w->data[i % w->numel];
    CHECK_OK(cfx_graph_backward(g, out, seed));
    free(seed);
    const float *dx = cfx_graph_grad(g, in);
    CHECK(dx != NULL);
    if (dx) {
        double gmax = max_abs(gx->data, (size_t)gx->numel);
        CHECK(gmax > 1e-3);
        CHECK_ARRAY_NEAR(dx, gx->data, (size_t)gx->numel, 1e-4, 1e-5 * gmax);
        printf(
            "  %s: max rel error output %.2g, input gradient %.2g\n", kind,
            max_rel(ty->data, y->data, (size_t)y->numel, 1e-3 * max_abs(y->data, (size_t)y->numel)),
            max_rel(dx, gx->data, (size_t)gx->numel, 1e-3 * gmax));
    }
out:
    cfx_graph_free(g);
    cfx_tensor_free(x);
    cfx_tensor_free(y);
    cfx_tensor_free(w);
    cfx_tensor_free(gx);
    cfx_tensor_free(feat);
}

CFX_TEST(onnx, cnn_batchnorm_maxpool_matches_pytorch) {
    parity("cnn", true);
}

CFX_TEST(onnx, autoencoder_convtranspose_resize_matches_pytorch) {
    parity("ae", true);
}

CFX_TEST(onnx, mobilenet_v2_matches_pytorch) {
    if (cfx_test_fast()) {
        cfx_test_skip("CFX_TEST_FAST: torchvision nets are slow under sanitizers");
        return;
    }
    parity("mobilenet", false);
}

CFX_TEST(onnx, squeezenet_concat_matches_pytorch) {
    if (cfx_test_fast()) {
        cfx_test_skip("CFX_TEST_FAST: torchvision nets are slow under sanitizers");
        return;
    }
    parity("squeezenet", false);
}
