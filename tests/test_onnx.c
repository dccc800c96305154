/* test_onnx.c - ONNX import against PyTorch (outputs and input gradients of models exported by
 * torch.onnx.export), export round trips checked by onnx.checker, splitting, and bad files. */
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

/* Runs tests/py/onnx_oracle.py KIND into a fresh folder; NULL (with a failure) on error. */
static const char *oracle(const char *kind) {
    /* A copy, as cfx_test_tmpdir reuses its buffer; a ring of four is enough per test. */
    static char ring[4][512];
    static int next;
    char *dir = ring[next++ % 4];
    snprintf(dir, 512, "%s", cfx_test_tmpdir());
    char args[600];
    snprintf(args, sizeof args, "%s '%s'", kind, dir);
    int rc = cfx_test_python("onnx_oracle.py", args);
    CHECK_MSG(rc == 0, "onnx_oracle.py %s exited with %d", kind, rc);
    return rc == 0 ? dir : NULL;
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
    cfx_tensor *x = cfx_test_npy(dir, "x"), *y = cfx_test_npy(dir, "y");
    cfx_tensor *w = cfx_test_npy(dir, "w"), *gx = cfx_test_npy(dir, "gx");
    cfx_tensor *feat = with_extra ? cfx_test_npy(dir, "feat") : NULL;
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

/* Writes bytes to dir/name; returns the path in buf. */
static const char *write_bytes(const char *dir, const char *name, const void *data, size_t n,
                               char *buf, size_t size) {
    snprintf(buf, size, "%s/%s", dir, name);
    FILE *f = fopen(buf, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
    return buf;
}

CFX_TEST(onnx, truncated_and_random_files_fail_with_a_message) {
    const char *dir = oracle("cnn");
    if (!dir) return;
    char path[600], bad[600];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    /* Cut in the middle of the weights, and near the start. */
    size_t cuts[] = {n / 2, n - 7, 40};
    for (size_t k = 0; k < 3; k++) {
        write_bytes(dir, "cut.onnx", buf, cuts[k], bad, sizeof bad);
        cfx_set_error(CFX_OK, "%s", "");
        cfx_graph *g = cfx_onnx_load(bad, NULL);
        CHECK_MSG(g == NULL, "a file cut at %zu of %zu bytes loaded", cuts[k], n);
        CHECK(strstr(cfx_last_error(), "cut.onnx") != NULL);
        cfx_graph_free(g);
    }
    cfx_rng r;
    cfx_rng_init(&r, 5);
    for (size_t i = 0; i < 4096; i++) buf[i] = (unsigned char)cfx_rng_below(&r, 256);
    write_bytes(dir, "random.onnx", buf, 4096, bad, sizeof bad);
    CHECK(cfx_onnx_load(bad, NULL) == NULL);
    CHECK(strstr(cfx_last_error(), "not an ONNX model") != NULL);
    CHECK(cfx_onnx_info_load(bad) == NULL);
    CHECK(cfx_onnx_load("/nonexistent/m.onnx", NULL) == NULL);
    CHECK(strstr(cfx_last_error(), "No such file") != NULL);
}

CFX_TEST(onnx, unsupported_ops_are_all_named_with_node_and_opset) {
    const char *dir = cfx_test_tmpdir();
    char args[600], path[600];
    snprintf(args, sizeof args, "make '%s'", dir);
    CHECK_INT_EQ(cfx_test_python("onnx_models.py", args), 0);
    snprintf(path, sizeof path, "%s/bad_ops.onnx", dir);
    CHECK(cfx_onnx_load(path, NULL) == NULL);
    const char *m = cfx_last_error();
    CHECK_MSG(strstr(m, "NonZero (node 'nonzero0')") && strstr(m, "LSTM (node 'lstm0')") &&
                  strstr(m, "opset 13"),
              "message: %s", m);
    cfx_onnx_info *in = cfx_onnx_info_load(path);
    CHECK(in != NULL);
    if (in) {
        int bad = 0;
        for (int k = 0; k < in->n_op_types; k++) bad += !in->op_supported[k];
        CHECK_INT_EQ(bad, 2);
        CHECK_INT_EQ(in->n_nodes, 4);
        cfx_onnx_info_free(in);
    }
    /* The Relu before them imports fine when only it is asked for. */
    const char *relu[] = {"r"};
    cfx_onnx_options o = {.extra_outputs = relu, .n_extra_outputs = 1, .outputs_only = 1};
    cfx_graph *g = cfx_onnx_load(path, &o);
    CHECK_MSG(g != NULL, "%s", cfx_last_error());
    cfx_graph_free(g);
    /* Weights in an external file that is missing. */
    snprintf(path, sizeof path, "%s/external.onnx", dir);
    CHECK(cfx_onnx_load(path, NULL) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "external.data") != NULL, "%s", cfx_last_error());
}

CFX_TEST(onnx, wrong_input_shape_fails_at_compile) {
    const char *dir = oracle("cnn");
    if (!dir) return;
    char path[600];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    cfx_graph *g = cfx_onnx_load(path, NULL);
    CHECK(g != NULL);
    if (!g) return;
    int x = cfx_graph_find(g, "input");
    CHECK_OK(cfx_graph_compile(g));
    CHECK_OK(cfx_graph_reshape_input(g, x, 4, (int64_t[]){3, 3, 16, 16})); /* a new batch: fine */
    CHECK_OK(cfx_graph_forward(g));
    CHECK_INT_EQ(cfx_graph_tensor(g, cfx_graph_find(g, "logits"))->shape[0], 3);
    CHECK_OK(cfx_graph_reshape_input(g, x, 4, (int64_t[]){1, 3, 20, 20}));
    CHECK_ERR(cfx_graph_forward(g), CFX_ESHAPE);
    cfx_graph_free(g);
}

/* A classifier-like and an autoencoder-like graph built with the builders, every exported op
 * in it, saved, checked by onnx.checker (full_check), re-imported: same outputs. */
CFX_TEST(onnx, roundtrip_export_checker_reimport) {
    cfx_graph *g = cfx_graph_new();
    cfx_rng r;
    cfx_rng_init(&r, 3);
    int x = cfx_graph_input(g, "image", 4, (int64_t[]){2, 3, 8, 8});
    int w1 = cfx_graph_param(g, "w1", 4, (int64_t[]){4, 3, 3, 3});
    int b1 = cfx_graph_param(g, "b1", 1, (int64_t[]){4});
    int h = cfx_op_conv2d(g, x, w1, b1, &(cfx_conv2d_attr){.stride = {1, 1}, .pad = {1, 1, 1, 1}});
    int sc = cfx_graph_param(g, "bn_s", 1, (int64_t[]){4});
    int bb = cfx_graph_param(g, "bn_b", 1, (int64_t[]){4});
    float mean[4] = {0.1f, -0.2f, 0.0f, 0.3f}, var[4] = {1.0f, 0.5f, 2.0f, 1.5f};
    int mu = cfx_graph_const(g, "bn_m", 1, (int64_t[]){4}, mean);
    int va = cfx_graph_const(g, "bn_v", 1, (int64_t[]){4}, var);
    h = cfx_op_batch_norm(g, h, sc, bb, mu, va, &(cfx_batch_norm_attr){0});
    h = cfx_op_leaky_relu(g, h, 0.1f);
    int feat = cfx_op_max_pool2d(g, h, &(cfx_pool2d_attr){.kernel = {2, 2}});
    int up = cfx_op_resize(
        g, feat, &(cfx_resize_attr){.mode = CFX_RESIZE_BILINEAR, .scale_h = 2, .scale_w = 2});
    int w2 = cfx_graph_param(g, "w2", 4, (int64_t[]){4, 2, 3, 3});
    int rec = cfx_op_sigmoid(g, cfx_op_conv_transpose2d(g, cfx_op_clip(g, up, 0, 6), w2, -1,
                                                        &(cfx_conv2d_attr){.pad = {1, 1, 1, 1}}));
    int p = cfx_op_avg_pool2d(
        g, feat, &(cfx_pool2d_attr){.kernel = {2, 2}, .pad = {1, 1, 1, 1}, .count_include_pad = 1});
    int f = cfx_op_flatten(g, cfx_op_tanh(g, p), 1);
    int w3 = cfx_graph_param(g, "w3", 2, (int64_t[]){36, 5});
    int logits = cfx_op_gemm(g, f, w3, -1, &(cfx_gemm_attr){.alpha = 1, .beta = 1});
    logits = cfx_op_affine(g, cfx_op_normal_cdf(g, logits), 2.0f, -1.0f);
    int prob = cfx_op_softmax(g, cfx_op_reshape(g, logits, 2, (int64_t[]){0, -1}), 1);
    int gap = cfx_op_reduce(g, cfx_op_global_avg_pool(g, rec), CFX_REDUCE_MEAN, (int[]){1}, 1, 0);
    CHECK_OK(cfx_graph_set_output(g, prob, "probs"));
    CHECK_OK(cfx_graph_set_output(g, rec, "recon"));
    CHECK_OK(cfx_graph_set_output(g, gap, "gap"));
    CHECK_OK(cfx_graph_compile(g));
    size_t np;
    float *params = cfx_graph_params(g, &np);
    for (size_t i = 0; i < np; i++) params[i] = (float)(cfx_rng_normal(&r) * 0.3);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &r, 0, 1);
    CHECK_OK(cfx_graph_forward(g));
    const char *dir = cfx_test_tmpdir();
    char path[600], args[700];
    snprintf(path, sizeof path, "%s/rt.onnx", dir);
    CHECK_OK(cfx_onnx_save(g, path, NULL, 0));
    snprintf(args, sizeof args, "check '%s'", path);
    CHECK_INT_EQ(cfx_test_python("onnx_models.py", args), 0);
    cfx_onnx_options o = {.batch = 2};
    cfx_graph *g2 = cfx_onnx_load(path, &o);
    CHECK_MSG(g2 != NULL, "%s", cfx_last_error());
    if (g2) {
        CHECK_INT_EQ(cfx_graph_num_params(g2), cfx_graph_num_params(g));
        CHECK_OK(cfx_graph_compile(g2));
        memcpy(cfx_graph_tensor(g2, cfx_graph_find(g2, "image"))->data,
               cfx_graph_tensor(g, x)->data, 2 * 3 * 8 * 8 * sizeof(float));
        CHECK_OK(cfx_graph_forward(g2));
        const char *names[] = {"probs", "recon", "gap"};
        for (int k = 0; k < 3; k++) {
            cfx_tensor *a = cfx_graph_tensor(g, cfx_graph_find(g, names[k]));
            cfx_tensor *b = cfx_graph_tensor(g2, cfx_graph_find(g2, names[k]));
            CHECK(b != NULL && cfx_tensor_same_shape(a, b));
            if (b && cfx_tensor_same_shape(a, b))
                CHECK_ARRAY_NEAR(b->data, a->data, (size_t)a->numel, 1e-6, 1e-7);
        }
    }
    /* Ops with no ONNX form are refused by name. */
    int loss = cfx_graph_num_values(g); /* any id past the end */
    CHECK_ERR(cfx_onnx_save(g, path, &loss, 1), CFX_EINVAL);
    cfx_graph_free(g2);
    cfx_graph_free(g);
}

CFX_TEST(onnx, losses_are_refused_by_name) {
    cfx_graph *g = cfx_graph_new();
    int a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 3});
    int b = cfx_graph_input(g, "b", 2, (int64_t[]){2, 3});
    int l = cfx_op_loss(g, a, b, CFX_LOSS_MSE, CFX_REDUCTION_MEAN);
    CHECK(l >= 0);
    char path[600];
    snprintf(path, sizeof path, "%s/loss.onnx", cfx_test_tmpdir());
    CHECK_ERR(cfx_onnx_save(g, path, &l, 1), CFX_EUNSUPPORTED);
    CHECK_MSG(strstr(cfx_last_error(), "Loss") != NULL, "%s", cfx_last_error());
    cfx_graph_free(g);
}

/* One autoencoder file split at its latent: encoder then decoder equals the whole. */
CFX_TEST(onnx, split_autoencoder_at_latent) {
    const char *dir = oracle("ae");
    if (!dir) return;
    char path[600], enc[600], dec[600], lat[256], args[700];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    snprintf(enc, sizeof enc, "%s/encoder.onnx", dir);
    snprintf(dec, sizeof dec, "%s/decoder.onnx", dir);
    read_text(dir, "extra.txt", lat, sizeof lat);
    CHECK_OK(cfx_onnx_split(path, lat, enc, dec));
    snprintf(args, sizeof args, "check '%s'", enc);
    CHECK_INT_EQ(cfx_test_python("onnx_models.py", args), 0);
    snprintf(args, sizeof args, "check '%s'", dec);
    CHECK_INT_EQ(cfx_test_python("onnx_models.py", args), 0);
    cfx_tensor *x = cfx_test_npy(dir, "x"), *y = cfx_test_npy(dir, "y");
    cfx_onnx_options o = {.batch = 2};
    cfx_graph *g = cfx_graph_new();
    int outs[4], n = 0, zo[4], nz = 0;
    CHECK_OK(cfx_onnx_import(g, enc, &o, NULL, 0, zo, 4, &nz));
    o.prefix = "dec/";
    CHECK_OK(cfx_onnx_import(g, dec, &o, zo, 1, outs, 4, &n));
    CHECK_INT_EQ(n, 1);
    CHECK_OK(cfx_graph_compile(g));
    if (x && y && n == 1 && nz == 1) {
        memcpy(cfx_graph_tensor(g, cfx_graph_find(g, "input"))->data, x->data,
               (size_t)x->numel * sizeof(float));
        CHECK_OK(cfx_graph_forward(g));
        CHECK_ARRAY_NEAR(cfx_graph_tensor(g, outs[0])->data, y->data, (size_t)y->numel, 1e-4, 1e-6);
    }
    cfx_graph_free(g);
    /* The decoder alone from the whole file, fed with a cut input. */
    const char *cut[] = {lat};
    cfx_onnx_options od = {.batch = 2, .inputs = cut, .n_inputs = 1};
    g = cfx_onnx_load(path, &od);
    CHECK_MSG(g != NULL, "%s", cfx_last_error());
    if (g) {
        CHECK(cfx_graph_find(g, "input") < 0);
        CHECK(cfx_graph_value_kind(g, cfx_graph_find(g, lat)) == CFX_VALUE_INPUT);
    }
    cfx_graph_free(g);
    cfx_tensor_free(x);
    cfx_tensor_free(y);
}

/* The CLI on a PyTorch model: run with --vjp reproduces PyTorch's gradient; check passes;
 * check on unsupported ops fails naming them; run with a wrongly shaped input fails. */
CFX_TEST(onnx, cli_model_run_check_info) {
    const char *dir = oracle("cnn");
    if (!dir) return;
    char cmd[3000];
    const char *exe = cfx_test_cli_or_skip();
    if (!exe) return;
    snprintf(cmd, sizeof cmd,
             "%s model run '%s/model.onnx' --input '%s/x.npy' --out '%s/cy.npy' "
             "--vjp '%s/w.npy' --grad-out '%s/cg.npy' > /dev/null",
             exe, dir, dir, dir, dir, dir);
    CHECK_INT_EQ(system(cmd), 0);
    cfx_tensor *y = cfx_test_npy(dir, "y"), *cy = cfx_test_npy(dir, "cy");
    cfx_tensor *g = cfx_test_npy(dir, "gx"), *cg = cfx_test_npy(dir, "cg");
    if (y && cy && g && cg && y->numel == cy->numel && g->numel == cg->numel) {
        CHECK_ARRAY_NEAR(cy->data, y->data, (size_t)y->numel, 1e-4, 1e-5);
        CHECK_ARRAY_NEAR(cg->data, g->data, (size_t)g->numel, 1e-4, 1e-5);
    } else {
        CHECK_MSG(0, "cfx model run wrote nothing usable");
    }
    cfx_tensor_free(y), cfx_tensor_free(cy), cfx_tensor_free(g), cfx_tensor_free(cg);
    snprintf(cmd, sizeof cmd, "%s model check '%s/model.onnx' > /dev/null", exe, dir);
    CHECK_INT_EQ(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s model info --json '%s/model.onnx' > /dev/null", exe, dir);
    CHECK_INT_EQ(system(cmd), 0);
    /* x.npy of the autoencoder has one channel, the classifier wants three. */
    const char *ae = oracle("ae");
    snprintf(cmd, sizeof cmd,
             "%s model run '%s/model.onnx' --input '%s/x.npy' --out '%s/no.npy' 2>/dev/null", exe,
             dir, ae ? ae : dir, dir);
    CHECK(system(cmd) != 0);
    char mk[700];
    snprintf(mk, sizeof mk, "make '%s'", dir);
    CHECK_INT_EQ(cfx_test_python("onnx_models.py", mk), 0);
    snprintf(cmd, sizeof cmd,
             "%s model check '%s/bad_ops.onnx' 2>&1 | grep -q 'LSTM.*NonZero\\|NonZero.*LSTM'", exe,
             dir);
    CHECK_INT_EQ(system(cmd), 0);
}

/* ------------------------------------------------------------ hostile files (issue 22) --- */

/* The models onnx_models.py writes for these tests, in dir/model/; NULL (and a failed check)
 * when Python cannot write them. */
static const char *hostile_models(void) {
    static char dir[600];
    snprintf(dir, sizeof dir, "%s", cfx_test_tmpdir());
    char args[700];
    snprintf(args, sizeof args, "hostile '%s'", dir);
    int rc = cfx_test_python("onnx_models.py", args);
    CHECK_INT_EQ(rc, 0);
    return rc == 0 ? dir : NULL;
}

/* Loads dir/model/name.onnx, which must fail with a message holding want. */
static void check_refused(const char *dir, const char *name, const char *want) {
    char path[800];
    snprintf(path, sizeof path, "%s/model/%s.onnx", dir, name);
    cfx_set_error(CFX_OK, "%s", "");
    cfx_graph *g = cfx_onnx_load(path, NULL);
    CHECK_MSG(g == NULL && strstr(cfx_last_error(), want) && strstr(cfx_last_error(), name),
              "%s: loaded %s, message '%s' (wanted '%s')", name, g ? "fine" : "not",
              cfx_last_error(), want);
    cfx_graph_free(g);
}

/* An external data location may not leave the model's folder: not absolute, no "..", no
 * symbolic link that points out (ONNX Runtime's rule, and the links resolved). Before, all
 * three read the file outside into the weights. */
CFX_TEST(onnx, external_data_stays_in_the_model_folder) {
    const char *dir = hostile_models();
    if (!dir) return;
    check_refused(dir, "ext_abs", "outside the model's folder");
    check_refused(dir, "ext_up", "outside the model's folder");
    check_refused(dir, "ext_link", "outside the model's folder");
    char path[800];
    snprintf(path, sizeof path, "%s/model/ext_inside.onnx", dir); /* weights/w.data: fine */
    cfx_graph *g = cfx_onnx_load(path, NULL);
    CHECK_MSG(g != NULL, "%s", cfx_last_error());
    int w = g ? cfx_graph_find(g, "W") : -1;
    CHECK(w >= 0);
    if (w >= 0) CHECK_NEAR(cfx_graph_tensor(g, w)->data[11], 1.0, 0);
    cfx_graph_free(g);
}

/* A node whose output is already a tensor (its own input, an initializer): the import freed the
 * constant the node was reading (heap use after free in Cast) or silently replaced the graph
 * input (Identity). ONNX graphs assign each tensor once; such a file is refused by name. */
CFX_TEST(onnx, a_tensor_assigned_twice_is_refused) {
    const char *dir = hostile_models();
    if (!dir) return;
    check_refused(dir, "ssa_cast", "its output 'shape' is already an initializer");
    check_refused(dir, "ssa_identity", "its output 'x' is already a graph input");
}

/* A truncated integer initializer that a Cast tries as a constant and then as a graph value:
 * the second decode leaked the first one's buffers. The message names the short tensor, for a
 * Reshape too (it said "must be a constant"). */
CFX_TEST(onnx, corrupt_initializer_read_twice_leaks_nothing) {
    const char *dir = hostile_models();
    if (!dir) return;
    cfx_test_alloc_begin(0);
    check_refused(dir, "cut_cast", "tensor 'shape' holds 13 bytes of data, not the 16");
    CHECK_INT_EQ(cfx_test_alloc_end(), 0);
    check_refused(dir, "cut_shape", "tensor 'shape' holds 13 bytes of data, not the 16");
}

/* Conv attributes ONNX forbids were taken as cfx's defaults (0 reads as 1) or truncated to
 * int; a kernel_shape that disagrees with the weight was ignored. Sizes that overflow int64
 * (padding 2^30 into the im2col size, a Reshape whose target's product wraps to the input's
 * 64 elements) were signed overflows, and the Reshape was accepted. */
CFX_TEST(onnx, conv_attributes_and_sizes_that_overflow_are_refused) {
    const char *dir = hostile_models();
    if (!dir) return;
    check_refused(dir, "conv_stride0", "strides value 0 is not in 1..");
    check_refused(dir, "conv_dilation0", "dilations value 0 is not in 1..");
    check_refused(dir, "conv_group0", "group 0 is not in 1..");
    check_refused(dir, "conv_kernel",
                  "kernel_shape has 2 values (5, 5) but the weight's kernel "
                  "is 3x3");
    check_refused(dir, "conv_pads", "pads value 1073741824 is not in 0..");
    check_refused(dir, "conv_pads_neg", "pads value -1 is not in 0..");
    check_refused(dir, "reshape_overflow", "cannot be reshaped to (4611686018427387905, 64)");
    /* Of a constant, folded at import: the product overflowed int64 (UB, found by fuzz_onnx;
     * UBSan failed on it before the fix). */
    check_refused(dir, "reshape_fold_overflow",
                  "the target shape (size 64 in dimension 1) is negative or overflows");
    /* A size of 0 is no symbolic dimension (the message called it one). */
    check_refused(dir, "zero_dim", "input 'x': dimension 1 is 0;");
    char path[800];
    snprintf(path, sizeof path, "%s/model/conv_ok.onnx", dir);
    cfx_graph *g = cfx_onnx_load(path, NULL);
    CHECK_MSG(g != NULL, "%s", cfx_last_error());
    cfx_graph_free(g);
    /* The op itself, with padding past its bound. */
    g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 8, 8});
    int w = cfx_graph_param(g, "w", 4, (int64_t[]){2, 1, 3, 3});
    cfx_conv2d_attr at = {.pad = {1 << 30, 1 << 30, 1 << 30, 1 << 30}};
    CHECK(cfx_op_conv2d(g, x, w, -1, &at) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "padding must be 0..") != NULL, "%s", cfx_last_error());
    cfx_graph_free(g);
}

/* Found by fuzzing (fuzz/fuzz_onnx.c; the file is its input, 199 bytes): a graph output without
 * a name (protobuf-c leaves an absent string NULL) reached strlen(NULL) in the import. Graph
 * inputs, outputs and initializers without a name are refused when the file is read, for the
 * import, the summary and the split alike. */
CFX_TEST(onnx, graph_output_without_a_name_is_refused) {
    const char *path = "tests/data/fuzz-regressions/onnx/graph_output_without_a_name.onnx";
    char enc[600], dec[600];
    snprintf(enc, sizeof enc, "%s/enc.onnx", cfx_test_tmpdir());
    snprintf(dec, sizeof dec, "%s/dec.onnx", cfx_test_tmpdir());
    CHECK(cfx_onnx_load(path, NULL) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) &&
                  strstr(cfx_last_error(), "graph output 0 has no name"),
              "message: %s", cfx_last_error());
    CHECK(cfx_onnx_info_load(path) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "graph output 0 has no name"), "message: %s",
              cfx_last_error());
    CHECK(cfx_onnx_split(path, "x", enc, dec) != CFX_OK);
    CHECK_MSG(strstr(cfx_last_error(), "graph output 0 has no name"), "message: %s",
              cfx_last_error());
    CHECK(access(enc, F_OK) != 0 && access(dec, F_OK) != 0);
}

/* Found by fuzzing (fuzz/fuzz_onnx.c; tests/data/fuzz-regressions/onnx/ holds its 148-byte
 * input): a MatMul weight of 503 million elements with 48 bytes of external data had its 2 GB
 * allocated as a parameter before the data was looked at. A tensor's data is now checked (raw
 * bytes, typed values, the external file's size) before anything is allocated for it. */
CFX_TEST(onnx, a_weight_larger_than_its_data_is_refused_before_allocating) {
    const char *dir = hostile_models();
    if (!dir) return;
    const char *cases[][2] = {
        {"huge_external", "is shorter than 2147483648 bytes"},
        {"huge_raw", "holds 48 bytes of data, not the 2147483648 its shape needs"},
        {"", ""}};
    for (int k = 0; k < 3; k++) {
        cfx_test_largest_begin();
        if (k < 2)
            check_refused(dir, cases[k][0], cases[k][1]);
        else
            CHECK(cfx_onnx_load("tests/data/fuzz-regressions/onnx/"
                                "weight_of_2_gb_with_48_bytes_external.onnx",
                                NULL) == NULL);
        size_t largest = cfx_test_largest_end();
        CHECK_MSG(largest < (1 << 20), "%s: a block of %zu bytes was allocated",
                  k < 2 ? cases[k][0] : "the fuzzer's input", largest);
    }
}

/* Found by fuzzing (fuzz/fuzz_onnx.c; tests/data/fuzz-regressions/onnx/ holds its input): a
 * Concat node without inputs read its first input's id from an uninitialised array and crashed
 * (a null tensor in the normal build). A Concat needs at least one input. */
CFX_TEST(onnx, concat_without_inputs_is_refused) {
    const char *path = "tests/data/fuzz-regressions/onnx/concat_without_inputs.onnx";
    CHECK(cfx_onnx_load(path, NULL) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), "at least one input"),
              "message: %s", cfx_last_error());
}

/* Found by fuzzing (fuzz/fuzz_onnx.c; tests/data/fuzz-regressions/onnx/ holds its input): a
 * Reshape whose target shape was a float constant of inf had it converted to int64 (undefined
 * behaviour, UBSan). A float constant where integers are read must hold whole numbers int64
 * can hold. */
CFX_TEST(onnx, a_float_shape_of_inf_is_refused) {
    const char *path = "tests/data/fuzz-regressions/onnx/reshape_to_a_float_inf.onnx";
    CHECK(cfx_onnx_load(path, NULL) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), "not an integer"),
              "message: %s", cfx_last_error());
}
