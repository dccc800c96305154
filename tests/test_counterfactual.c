/* test_counterfactual.c - the counterfactual methods (src/counterfactual/): each raises rho on a
 * small model; IGD's and FGD's first updates against Adam written out here from gradients that
 * come from the competency API (and central differences for the feature term); the two stopping
 * rules by their definitions; LNN against a brute-force search; Reco against decode(encode(X));
 * bad input. */
#include "test.h"

#include <math.h>
#include <stdlib.h>

enum { C = 3, H = 6, W = 6, K = 3, D = 5, F = 8, IMG = C * H * W };

/* Writes dir/classifier.onnx (conv 3x3 -> tanh -> linear 8 "features" -> tanh -> linear K ->
 * Softmax), dir/encoder.onnx (linear D, tanh) and dir/decoder.onnx (linear, sigmoid, reshape).
 * The classifier's last weights are scaled by 15 so that it is confident on some images and
 * not on others, and the decoder's by 4 so that decodings vary: rho of random images then
 * spans (0, 1) and the methods can raise it (smooth activations throughout, so that central
 * differences need not step over a kink). */
static void write_models(const char *dir) {
    char path[800];
    cfx_rng r;
    cfx_rng_init(&r, 7);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, C, H, W});
    int h = cfx_op_tanh(g, cfx_layer_conv2d(g, x, "c1", 4, 3, 1, 1, &r));
    int f = cfx_op_tanh(g, cfx_layer_linear(g, cfx_op_flatten(g, h, 1), "fc1", F, &r));
    CHECK_OK(cfx_graph_set_name(g, f, "features"));
    int y = cfx_op_softmax(g, cfx_layer_linear(g, f, "fc2", K, &r), 1);
    CHECK_OK(cfx_graph_set_output(g, y, "probs"));
    CHECK_OK(cfx_graph_compile(g));
    float *w = cfx_graph_tensor(g, cfx_graph_find(g, "fc2.weight"))->data;
    for (int i = 0; i < K * F; i++) w[i] *= 15;
    snprintf(path, sizeof path, "%s/classifier.onnx", dir);
    CHECK_OK(cfx_onnx_save(g, path, NULL, 0));
    cfx_graph_free(g);

    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 4, (int64_t[]){1, C, H, W});
    int z = cfx_op_tanh(g, cfx_layer_linear(g, cfx_op_flatten(g, x, 1), "enc", D, &r));
    CHECK_OK(cfx_graph_set_output(g, z, "latent"));
    CHECK_OK(cfx_graph_compile(g));
    snprintf(path, sizeof path, "%s/encoder.onnx", dir);
    CHECK_OK(cfx_onnx_save(g, path, NULL, 0));
    cfx_graph_free(g);

    g = cfx_graph_new();
    z = cfx_graph_input(g, "latent", 2, (int64_t[]){1, D});
    int o = cfx_op_sigmoid(g, cfx_layer_linear(g, z, "dec", IMG, &r));
    o = cfx_op_reshape(g, o, 4, (int64_t[]){-1, C, H, W});
    CHECK_OK(cfx_graph_set_output(g, o, "recon"));
    CHECK_OK(cfx_graph_compile(g));
    w = cfx_graph_tensor(g, cfx_graph_find(g, "dec.weight"))->data;
    for (int i = 0; i < IMG * D; i++) w[i] *= 4;
    snprintf(path, sizeof path, "%s/decoder.onnx", dir);
    CHECK_OK(cfx_onnx_save(g, path, NULL, 0));
    cfx_graph_free(g);
}

static cfx_tensor *random_images(int64_t n, uint64_t seed) {
    cfx_tensor *t = cfx_tensor_new(4, (int64_t[]){n, C, H, W});
    cfx_rng r;
    cfx_rng_init(&r, seed);
    cfx_tensor_fill_uniform(t, &r, 0.0f, 1.0f);
    return t;
}

/* The models with a calibration that puts the reconstruction term P_c of the images below
 * near one half, so that rho depends on the autoencoder as well as on the softmax. */
static cfx_competency *open_models(int64_t batch) {
    const char *dir = cfx_test_tmpdir();
    write_models(dir);
    char c[800], e[800], d[800];
    snprintf(c, sizeof c, "%s/classifier.onnx", dir);
    snprintf(e, sizeof e, "%s/encoder.onnx", dir);
    snprintf(d, sizeof d, "%s/decoder.onnx", dir);
    cfx_competency_models m = {.classifier = c, .encoder = e, .decoder = d};
    cfx_competency *cm = cfx_competency_new(&m, batch);
    CHECK_MSG(cm != NULL, "cfx_competency_new: %s", cfx_last_error());
    if (!cm) return NULL;
    cfx_tensor *x = random_images(64, 100);
    float loss[64];
    CHECK_OK(cfx_competency_score(cm, x, &(cfx_competency_scores){.loss = loss}, NULL));
    double mean = 0, sd = 0;
    for (int i = 0; i < 64; i++) mean += loss[i] / 64.0;
    for (int i = 0; i < 64; i++) sd += (loss[i] - mean) * (loss[i] - mean) / 64.0;
    double mu[K], sigma[K];
    for (int k = 0; k < K; k++) mu[k] = mean / 2, sigma[k] = sqrt(sd);
    cfx_parce p = {
        .num_classes = K, .mu = mu, .sigma = sigma, .z = 1, .loss_scale = 2, .threshold = 0.9};
    CHECK_OK(cfx_competency_set_parce(cm, &p));
    cfx_tensor_free(x);
    return cm;
}

static void score(cfx_competency *cm, const cfx_tensor *x, float *rho, float *grad) {
    CHECK_OK(cfx_competency_score(cm, x, &(cfx_competency_scores){.rho = rho}, grad));
}

/* rho of decode(code) for n codes. */
static void score_codes(cfx_competency *cm, const float *codes, int64_t n, float *rho,
                        float *decoded) {
    cfx_tensor *z = cfx_tensor_new(2, (int64_t[]){n, D});
    memcpy(z->data, codes, (size_t)(n * D) * sizeof(float));
    CHECK_OK(
        cfx_competency_score_latent(cm, z, &(cfx_competency_scores){.rho = rho}, NULL, decoded));
    cfx_tensor_free(z);
}

CFX_TEST(counterfactual, names_parse_both_ways) {
    for (int m = 0; m < CFX_CF_COUNT; m++) {
        cfx_cf_method got = CFX_CF_COUNT;
        CHECK_OK(cfx_cf_method_parse(cfx_cf_method_name(m), &got));
        CHECK_INT_EQ(got, m);
    }
    cfx_cf_method m;
    CHECK_OK(cfx_cf_method_parse("LGD", &m));
    CHECK_INT_EQ(m, CFX_CF_LGD);
    CHECK_ERR(cfx_cf_method_parse("lpips", &m), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), "'lpips'") && strstr(cfx_last_error(), "igd, fgd"),
              "got: %s", cfx_last_error());
    cfx_cf_distance d;
    CHECK_OK(cfx_cf_distance_parse("l1", &d));
    CHECK_INT_EQ(d, CFX_CF_DISTANCE_L1);
    CHECK_STR_EQ(cfx_cf_distance_name(CFX_CF_DISTANCE_L2), "l2");
    CHECK_ERR(cfx_cf_distance_parse("ssim", &d), CFX_EINVAL);
}

/* The calibration set for LNN: 64 random images' codes, scored by rho of their decoding (so
 * that a candidate above the threshold gives a counterfactual above it). */
static void lnn_candidates(cfx_competency *cm, cfx_tensor **lat, cfx_tensor **sc) {
    cfx_tensor *x = random_images(64, 200);
    *lat = cfx_tensor_new(2, (int64_t[]){64, D});
    *sc = cfx_tensor_new(1, (int64_t[]){64});
    CHECK_OK(cfx_competency_score(cm, x, &(cfx_competency_scores){.latent = (*lat)->data}, NULL));
    score_codes(cm, (*lat)->data, 64, (*sc)->data, NULL);
    cfx_tensor_free(x);
}

CFX_TEST(counterfactual, each_method_raises_rho_at_the_reference_settings) {
    enum { N = 32 };
    cfx_competency *cm = open_models(8);
    if (!cm) return;
    cfx_tensor *x = random_images(N, 1), *out = cfx_tensor_new(4, x->shape);
    cfx_tensor *lat = NULL, *sc = NULL;
    lnn_candidates(cm, &lat, &sc);
    float rho0[N], rho1[N];
    score(cm, x, rho0, NULL);
    for (int m = 0; m < CFX_CF_COUNT; m++) {
        cfx_cf *cf = cfx_cf_new(cm, m, NULL, 8, lat, sc); /* batches of 8, 8, 8, 8 */
        CHECK_MSG(cf != NULL, "%s", cfx_last_error());
        if (!cf) continue;
        CHECK_NEAR(cfx_cf_threshold(cf), 0.9, 0);
        cfx_cf_record rec[N];
        CHECK_OK(cfx_cf_run(cf, x, out, rec));
        /* rho after is rho of the image returned, scored afresh. */
        score(cm, out, rho1, NULL);
        int low = 0, succ = 0, raised = 0;
        double before = 0, after = 0, secs = 0;
        for (int i = 0; i < N; i++) {
            const cfx_cf_record *r = &rec[i];
            CHECK_INT_EQ(r->method, m);
            CHECK(r->rho_before == rho0[i]);
            CHECK_NEAR(r->rho_after, rho1[i], 2e-5);
            CHECK_INT_EQ(r->success, r->rho_after >= 0.9);
            CHECK_MSG(r->seconds > 0 && r->distance >= 0, "%s: %g s, distance %g",
                      cfx_cf_method_name(m), r->seconds, r->distance);
            bool gradient = m == CFX_CF_IGD || m == CFX_CF_FGD || m == CFX_CF_LGD;
            if (gradient) CHECK(r->steps >= 0 && r->steps <= 100);
            if (gradient && !r->success) CHECK_INT_EQ(r->steps, 100);
            if (m == CFX_CF_IGD || m == CFX_CF_FGD) {
                /* A competent image is left as it is; the others move. */
                CHECK_INT_EQ(r->steps == 0, rho0[i] >= 0.9);
                if (r->steps == 0) CHECK(r->distance == 0);
            }
            CHECK_INT_EQ(isnan(r->vector_term), m == CFX_CF_IGD || m == CFX_CF_RECO);
            CHECK_INT_EQ(r->neighbour >= 0, m == CFX_CF_LNN);
            if (m == CFX_CF_LNN) CHECK(r->success); /* every candidate decodes above 0.9 */
            if (rho0[i] >= 0.9) continue;
            low++, succ += r->success, raised += r->rho_after > r->rho_before;
            before += r->rho_before, after += r->rho_after, secs += r->seconds;
        }
        printf("  (%s: %d of %d low-competency images succeed, mean rho %.3f -> %.3f, %.2g "
               "s/image)\n",
               cfx_cf_method_name(m), succ, low, before / low, after / low, secs / low);
        CHECK(low >= 20);
        CHECK_MSG(succ * 2 > low, "%s: %d of %d succeed", cfx_cf_method_name(m), succ, low);
        if (m != CFX_CF_RECO) CHECK_INT_EQ(raised, low);
        cfx_cf_free(cf);
    }
    cfx_tensor_free(lat), cfx_tensor_free(sc);
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}
