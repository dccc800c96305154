/* test_distance.c - the image distances (src/counterfactual/distance.c) against PyTorch in
 * float64 (tests/py/distance_oracle.py): 1 - SSIM as pytorch_msssim computes it, the built-in
 * LPIPS on a classifier's feature maps read from its ONNX file, and a user's LPIPS network
 * exported by torch.onnx.export with two inputs (the images as cfx prepares them: mapped to
 * [-1, 1], grey to 3 channels, resized), each value and its gradient with respect to X'; the
 * gradient through the graph IGD builds (the classifier that rho runs on X'); names, labels
 * and bad models. */
#include "oracle_io.h"
#include "test.h"
#include "tiny_models.h"

#include "competency/parce.h"
#include "counterfactual/cf.h"
#include "counterfactual/distance.h"

#include <stdlib.h>

enum { N = 5 };

/* Any calibration: the methods need one, the distances do not look at it. */
static double any_mu[TINY_K] = {0.05, 0.05, 0.05}, any_sigma[TINY_K] = {0.05, 0.05, 0.05};
static const cfx_parce any_parce = {
    .num_classes = TINY_K, .mu = any_mu, .sigma = any_sigma, .loss_scale = 2, .threshold = 0.9};

/* The tiny models in a fresh folder (its path in dir) and a competency on them. */
static cfx_competency *open_models(char *dir, const tiny_models *o, int64_t batch) {
    snprintf(dir, 600, "%s", cfx_test_tmpdir());
    tiny_models_write(dir, o);
    char c[800], e[800], d[800];
    tiny_model_paths(dir, "classifier.onnx", c, e, d);
    cfx_competency *cm = cfx_competency_new(
        &(cfx_competency_models){.classifier = c, .encoder = e, .decoder = d}, batch);
    CHECK_MSG(cm != NULL, "cfx_competency_new: %s", cfx_last_error());
    if (cm) CHECK_OK(cfx_competency_set_parce(cm, &any_parce));
    return cm;
}

/* x random in [0, 1]; y: x plus noise of growing size (image 0 the same as x, the last an
 * unrelated image), so that the distances range from 0 to those of unrelated images; w random
 * weights. The nearest noisy pair is 1e-2 away, or 3e-2 with near (LPIPS): two float32
 * convolutions of images 1e-2 apart differ by about 1e-2 of their size, known to about 1e-7 of
 * it, so their LPIPS carries errors near 1e-5 of itself, which the comparison would see. */
static const float noise_far[N] = {0, 0.01f, 0.05f, 0.2f, 1},
                   noise_near[N] = {0, 0.03f, 0.1f, 0.3f, 1};
static void make_pairs_at(const cfx_competency *cm, cfx_tensor **x, cfx_tensor **y, float *w,
                          const float *noise) {
    cfx_competency_shape sh;
    cfx_competency_shape_of(cm, &sh);
    *x = cfx_tensor_new(4, (int64_t[]){N, sh.c, sh.h, sh.w});
    *y = cfx_tensor_new(4, (*x)->shape);
    cfx_rng r;
    cfx_rng_init(&r, 3);
    cfx_tensor_fill_uniform(*x, &r, 0.0f, 1.0f);
    int64_t img = (*x)->numel / N;
    for (int i = 0; i < N; i++) {
        for (int64_t j = 0; j < img; j++) {
            float v = (*x)->data[i * img + j] + noise[i] * (float)(cfx_rng_uniform(&r) - 0.5);
            (*y)->data[i * img + j] = i == N - 1 ? (float)cfx_rng_uniform(&r) : v;
        }
        w[i] = (float)(0.5 + cfx_rng_uniform(&r));
    }
}

static void make_pairs(const cfx_competency *cm, cfx_tensor **x, cfx_tensor **y, float *w) {
    make_pairs_at(cm, x, y, w, noise_far);
}

/* D and its weighted gradient through cfx__distance_add on a graph of its own: y an input
 * (prefix NULL), or, with prefix "classifier/", the image that the competency's networks run
 * on, as in IGD's graph. */
static void distance_and_gradient(cfx_distance *d, cfx_competency *cm, const char *prefix,
                                  const cfx_tensor *x, const cfx_tensor *y, const float *w,
                                  float *dist, float *grad) {
    cfx_graph *g = cfx_graph_new();
    int xi = cfx_graph_input(g, "x", 4, x->shape), yi = cfx_graph_input(g, "y", 4, y->shape);
    cfx__parce_net n;
    if (prefix) CHECK_OK(cfx__competency_build(cm, g, yi, &n));
    cfx__distance_term t = {0};
    CHECK_OK(cfx__distance_add(d, g, xi, yi, prefix, &t));
    CHECK_OK(cfx_graph_set_output(g, t.term, "d"));
    CHECK_OK(cfx_graph_requires_grad(g, yi, 1));
    CHECK_OK(cfx_graph_enable_param_grads(g, 0));
    cfx_status s = cfx_graph_compile(g);
    CHECK_MSG(s == CFX_OK, "compile: %s", cfx_last_error());
    if (s == CFX_OK) {
        memcpy(cfx_graph_tensor(g, xi)->data, x->data, (size_t)x->numel * sizeof(float));
        memcpy(cfx_graph_tensor(g, yi)->data, y->data, (size_t)y->numel * sizeof(float));
        CHECK_OK(cfx__distance_reference(d, g, &t, x->data, x->shape[0]));
        CHECK_OK(cfx_graph_forward(g));
        CHECK_OK(cfx_graph_backward(g, t.term, w));
        memcpy(dist, cfx_graph_tensor(g, t.term)->data, (size_t)x->shape[0] * sizeof(float));
        memcpy(grad, cfx_graph_grad(g, yi), (size_t)y->numel * sizeof(float));
    }
    cfx__distance_term_deinit(&t);
    cfx_graph_free(g);
}

/* The worst |a - b| / max|b| over an array: gradients compared relative to their scale. */
static double scaled_error(const float *a, const float *b, int64_t n) {
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= worst)) worst = e;
    }
    return worst / scale;
}

/* Writes x, y, w into dir, runs distance_oracle.py with args, and compares d's values
 * (cfx_distance_run, within 1e-5 relative) and the gradients of the graph with and without
 * the competency's classifier (prefix) against it. */
static void check_against_oracle(cfx_distance *d, cfx_competency *cm, const char *dir,
                                 const char *args, bool igd_graph, const cfx_tensor *x,
                                 const cfx_tensor *y, const float *w, const char *what) {
    const int64_t n = x->shape[0], numel = x->numel;
    double got[N];
    CHECK_OK(cfx_distance_run(d, x, y, got));
    float *want = oracle_read(dir, "d", n), *want_grad = oracle_read(dir, "grad", numel);
    CHECK_MSG(want && want_grad, "%s: no oracle output in %s (%s)", what, dir,
              oracle_dir_state(dir));
    if (!want || !want_grad) goto done;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double rel = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-6);
        worst = fmax(worst, rel);
        CHECK_MSG(rel <= 1e-5 || fabs(got[i] - want[i]) < 1e-9, "%s: image %lld: %.9g, torch %.9g",
                  what, (long long)i, got[i], want[i]);
    }
    printf("  (%s: distances %.3g .. %.3g, worst relative difference to torch %.2g)\n", what,
           (double)want[0], (double)want[n - 1], worst);
    for (int pass = 0; pass < 1 + igd_graph; pass++) {
        float dist[N], *grad = malloc((size_t)numel * sizeof *grad);
        distance_and_gradient(d, cm, pass ? "classifier/" : NULL, x, y, w, dist, grad);
        CHECK_ARRAY_NEAR(dist, want, (size_t)n, 1e-5, 1e-9);
        double e = scaled_error(grad, want_grad, numel);
        printf("  (%s, %s: gradient's worst difference %.2g of its largest element)\n", what,
               pass ? "IGD's graph" : "its own graph", e);
        CHECK_MSG(e < 1e-5, "%s: gradient differs by %.3g of its scale", what, e);
        free(grad);
    }
done:
    free(want), free(want_grad);
}

static void write_pairs(const char *dir, const cfx_tensor *x, const cfx_tensor *y, const float *w) {
    CHECK(oracle_write(dir, "x", 4, x->shape, x->data));
    CHECK(oracle_write(dir, "y", 4, y->shape, y->data));
    CHECK(oracle_write(dir, "w", 1, (int64_t[]){x->shape[0]}, w));
}

/* ------------------------------------------------------------------------ names --- */

CFX_TEST(distance, names_parse_both_ways_and_unknown_names_are_refused) {
    for (int k = 0; k < CFX_CF_DISTANCE_COUNT; k++) {
        cfx_cf_distance got = CFX_CF_DISTANCE_COUNT;
        CHECK_OK(cfx_cf_distance_parse(cfx_cf_distance_name(k), &got));
        CHECK_INT_EQ(got, k);
    }
    for (int k = 0; k < CFX_CF_VECTOR_COUNT; k++) {
        cfx_cf_vector got = CFX_CF_VECTOR_COUNT;
        CHECK_OK(cfx_cf_vector_parse(cfx_cf_vector_name(k), &got));
        CHECK_INT_EQ(got, k);
    }
    CHECK_STR_EQ(cfx_cf_distance_name(CFX_CF_DISTANCE_LPIPS), "lpips");
    CHECK_STR_EQ(cfx_cf_distance_name(CFX_CF_DISTANCE_SSIM), "ssim");
    CHECK_STR_EQ(cfx_cf_vector_name(CFX_CF_VECTOR_DEFAULT), "default");
    CHECK_STR_EQ(cfx_cf_vector_name(CFX_CF_VECTOR_COS), "cos");
    cfx_cf_distance dk;
    CHECK_OK(cfx_cf_distance_parse("SSIM", &dk));
    CHECK_INT_EQ(dk, CFX_CF_DISTANCE_SSIM);
    CHECK_ERR(cfx_cf_distance_parse("cos", &dk), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), "'cos'") && strstr(cfx_last_error(), "lpips, l2, l1, ssim"),
              "got: %s", cfx_last_error());
    CHECK_ERR(cfx_cf_distance_parse(NULL, &dk), CFX_EINVAL);
    cfx_cf_vector vk;
    CHECK_ERR(cfx_cf_vector_parse("lpips", &vk), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), "'lpips'") && strstr(cfx_last_error(), "cos, l1, l2"),
              "got: %s", cfx_last_error());
    /* A zeroed options struct is the reference's: LPIPS, the methods' own vector terms. */
    cfx_cf_options zero = {0};
    CHECK_INT_EQ(zero.distance, CFX_CF_DISTANCE_LPIPS);
    CHECK_INT_EQ(zero.vector, CFX_CF_VECTOR_DEFAULT);
}

CFX_TEST(distance, labels_name_what_is_computed) {
    char dir[600];
    cfx_competency *cm = open_models(dir, &(tiny_models){0}, 2);
    if (!cm) return;
    const char *want[CFX_CF_DISTANCE_COUNT] = {"LPIPS[classifier]", "L2", "L1", "1-SSIM"};
    for (int k = 0; k < CFX_CF_DISTANCE_COUNT; k++) {
        cfx_distance *d = cfx_distance_new(cm, k, NULL, 2);
        CHECK_MSG(d != NULL, "%s: %s", cfx_cf_distance_name(k), cfx_last_error());
        if (d) CHECK_STR_EQ(cfx_distance_label(d), want[k]);
        cfx_distance_free(d);
        cfx_cf *cf = cfx_cf_new(cm, CFX_CF_RECO, &(cfx_cf_options){.distance = k}, 2, NULL, NULL);
        CHECK_MSG(cf != NULL, "%s", cfx_last_error());
        if (cf) CHECK_STR_EQ(cfx_cf_distance_label(cf), want[k]);
        cfx_cf_free(cf);
    }
    cfx_distance_free(NULL);
    cfx_competency_free(cm);
}

/* ------------------------------------------------------------------ L2, L1, SSIM --- */

CFX_TEST(distance, l2_and_l1_are_the_pixel_formulas) {
    char dir[600];
    cfx_competency *cm = open_models(dir, &(tiny_models){0}, 2);
    if (!cm) return;
    cfx_tensor *x, *y;
    float w[N];
    make_pairs(cm, &x, &y, w);
    const int64_t img = x->numel / N;
    for (int k = CFX_CF_DISTANCE_L2; k <= CFX_CF_DISTANCE_L1; k++) {
        cfx_distance *d = cfx_distance_new(cm, k, NULL, 2);
        double got[N];
        CHECK_OK(cfx_distance_run(d, x, y, got));
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int64_t j = 0; j < img; j++) {
                double e = (double)y->data[i * img + j] - x->data[i * img + j];
                s += k == CFX_CF_DISTANCE_L1 ? fabs(e) : e * e;
            }
            CHECK_NEAR(got[i], k == CFX_CF_DISTANCE_L1 ? s / img : sqrt(s), 1e-12);
        }
        cfx_distance_free(d);
    }
    cfx_tensor_free(x), cfx_tensor_free(y);
    cfx_competency_free(cm);
}

/* Three image shapes: both sides smoothed (16 x 12), the short side skipped (6 x 13, grey),
 * no smoothing at all (6 x 6, the tiny models'), as pytorch_msssim does. */
CFX_TEST(distance, ssim_and_its_gradient_match_pytorch_msssim) {
    const tiny_models shapes[3] = {{.c = 3, .h = 16, .w = 12}, {.c = 1, .h = 6, .w = 13}, {0}};
    const char *names[3] = {"SSIM 3x16x12", "SSIM 1x6x13", "SSIM 3x6x6"};
    for (int s = 0; s < 3; s++) {
        char dir[600];
        cfx_competency *cm = open_models(dir, &shapes[s], 2);
        if (!cm) continue;
        cfx_tensor *x, *y;
        float w[N];
        make_pairs(cm, &x, &y, w);
        cfx_distance *d = cfx_distance_new(cm, CFX_CF_DISTANCE_SSIM, NULL, 2); /* 2 + 2 + 1 */
        CHECK_MSG(d != NULL, "%s", cfx_last_error());
        write_pairs(dir, x, y, w);
        char args[700];
        snprintf(args, sizeof args, "ssim %s", dir);
        CHECK_INT_EQ(cfx_test_python("distance_oracle.py", args), 0);
        if (d) check_against_oracle(d, cm, dir, args, false, x, y, w, names[s]);
        /* Identical images are at distance 0. */
        double same[N];
        if (d) CHECK_OK(cfx_distance_run(d, x, x, same));
        for (int i = 0; d && i < N; i++) CHECK_NEAR(same[i], 0, 1e-6);
        cfx_distance_free(d);
        cfx_tensor_free(x), cfx_tensor_free(y);
        cfx_competency_free(cm);
    }
}

/* -------------------------------------------------------------------------- LPIPS --- */

/* The classifier with two convolutions (relu; batch norm then tanh): two feature maps, one
 * past a ReLU, whose positions with every channel off meet cfx_op_normalize's zero case. */
CFX_TEST(distance, builtin_lpips_and_its_gradient_match_torch) {
    const tiny_models models[2] = {{.two_convs = true}, {0}};
    const char *names[2] = {"LPIPS[classifier] two convolutions", "LPIPS[classifier] one"};
    for (int m = 0; m < 2; m++) {
        char dir[600];
        cfx_competency *cm = open_models(dir, &models[m], 2);
        if (!cm) continue;
        cfx_tensor *x, *y;
        float w[N];
        make_pairs_at(cm, &x, &y, w, noise_near);
        cfx_distance *d = cfx_distance_new(cm, CFX_CF_DISTANCE_LPIPS, NULL, 2);
        CHECK_MSG(d != NULL, "%s", cfx_last_error());
        write_pairs(dir, x, y, w);
        char args[700];
        snprintf(args, sizeof args, "lpips %s", dir);
        CHECK_INT_EQ(cfx_test_python("distance_oracle.py", args), 0);
        if (d) check_against_oracle(d, cm, dir, args, true, x, y, w, names[m]);
        /* D(X, X) is exactly 0: both sides go through the same import and ops. */
        double same[N];
        if (d) CHECK_OK(cfx_distance_run(d, x, x, same));
        for (int i = 0; d && i < N; i++) CHECK(same[i] == 0);
        cfx_distance_free(d);
        cfx_tensor_free(x), cfx_tensor_free(y);
        cfx_competency_free(cm);
    }
}

/* IGD's graph with the built-in LPIPS runs the classifier once per iteration: its Conv nodes
 * are the competency's own (two in this classifier, none in the autoencoder), the reference's
 * maps being inputs. */
CFX_TEST(distance, igd_with_the_builtin_lpips_runs_the_classifier_once) {
    char dir[600];
    cfx_competency *cm = open_models(dir, &(tiny_models){.two_convs = true}, 2);
    if (!cm) return;
    for (int k = 0; k < 2; k++) {
        cfx_cf_options o = {.distance = k ? CFX_CF_DISTANCE_L2 : CFX_CF_DISTANCE_LPIPS};
        cfx_cf *cf = cfx_cf_new(cm, CFX_CF_IGD, &o, 2, NULL, NULL);
        CHECK_MSG(cf != NULL, "%s", cfx_last_error());
        if (!cf) continue;
        int convs = 0, inputs = 0;
        for (int id = 0; id < cfx_graph_num_values(cf->g); id++) {
            const char *op = cfx_graph_value_op(cf->g, id);
            convs += op && !strcmp(op, "Conv");
            inputs += cfx_graph_value_kind(cf->g, id) == CFX_VALUE_INPUT;
        }
        CHECK_INT_EQ(convs, 2);
        CHECK_INT_EQ(inputs, k ? 2 : 4); /* X', X and, for LPIPS, X's two normalised maps */
        cfx_cf_free(cf);
    }
    cfx_competency_free(cm);
}

/* A user's LPIPS network from torch.onnx.export: at the images' own size; at a fixed 16x16
 * with grey images (repeated to 3 channels and resized); with a dynamic size (resized to
 * 32x32). */
CFX_TEST(distance, lpips_model_and_its_gradient_match_torch) {
    const struct {
        const char *kind, *what;
        tiny_models m;
    } cases[3] = {{"fixed", "LPIPS model 3x6x6", {0}},
                  {"fixed16", "LPIPS model 3x16x16, grey 6x6 images", {.c = 1}},
                  {"dynamic", "LPIPS model of any size, 6x6 images to 32x32", {0}}};
    for (int k = 0; k < 3; k++) {
        char dir[600];
        cfx_competency *cm = open_models(dir, &cases[k].m, 2);
        if (!cm) continue;
        cfx_tensor *x, *y;
        float w[N];
        make_pairs_at(cm, &x, &y, w, noise_near);
        write_pairs(dir, x, y, w);
        char args[700], path[700];
        snprintf(args, sizeof args, "model %s %s", dir, cases[k].kind);
        CHECK_INT_EQ(cfx_test_python("distance_oracle.py", args), 0);
        snprintf(path, sizeof path, "%s/lpips.onnx", dir);
        cfx_distance *d = cfx_distance_new(cm, CFX_CF_DISTANCE_LPIPS, path, 2);
        CHECK_MSG(d != NULL, "%s: %s", cases[k].what, cfx_last_error());
        if (d) {
            CHECK_STR_EQ(cfx_distance_label(d), "LPIPS");
            check_against_oracle(d, cm, dir, args, false, x, y, w, cases[k].what);
        }
        cfx_distance_free(d);
        cfx_tensor_free(x), cfx_tensor_free(y);
        cfx_competency_free(cm);
    }
}

/* -------------------------------------------------------------------- bad input --- */

/* Writes a model of image inputs (nin of them, ch channels, 6x6) whose output per image is
 * `per` values (the mean of the inputs' sum, repeated) and, with two_outputs, a second
 * output. */
static void write_model(const char *path, int nin, int ch, int per, bool two_outputs) {
    cfx_graph *g = cfx_graph_new();
    int in[2], s = -1;
    for (int k = 0; k < nin; k++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", k);
        in[k] = cfx_graph_input(g, name, 4, (int64_t[]){1, ch, 6, 6});
        s = s < 0 ? in[k] : cfx_op_sub(g, s, in[k]);
    }
    int m = cfx_op_reduce(g, cfx_op_mul(g, s, s), CFX_REDUCE_MEAN, (int[]){1, 2, 3}, 3, 1);
    int out = m;
    if (per > 1) out = cfx_op_concat(g, (int[]){m, m, m, m}, per, 1);
    CHECK_OK(cfx_graph_set_output(g, out, "distance"));
    if (two_outputs) CHECK_OK(cfx_graph_set_output(g, cfx_op_affine(g, m, 2, 0), "twice"));
    CHECK_OK(cfx_graph_compile(g));
    CHECK_OK(cfx_onnx_save(g, path, NULL, 0));
    cfx_graph_free(g);
}

CFX_TEST(distance, models_that_do_not_fit_are_clear_errors) {
    char dir[600];
    cfx_competency *cm = open_models(dir, &(tiny_models){0}, 2);
    if (!cm) return;
    const struct {
        const char *file;
        int nin, ch, per;
        bool two;
        const char *msg;
    } bad[] = {{"one_input.onnx", 1, 3, 1, false, "has 1 input and 1 output"},
               {"two_outputs.onnx", 2, 3, 1, true, "has 2 inputs and 2 outputs"},
               {"per4.onnx", 2, 3, 4, false, "not one value per"},
               {"grey.onnx", 2, 1, 1, false, "takes 1 channel but the images have 3"},
               {"two_channels.onnx", 2, 2, 1, false, "takes 2 channels"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, bad[k].file);
        write_model(path, bad[k].nin, bad[k].ch, bad[k].per, bad[k].two);
        cfx_cf_options o = {.lpips_model = path};
        for (int m = 0; m < CFX_CF_COUNT; m += CFX_CF_LGD) { /* IGD and LGD */
            cfx_set_error(CFX_OK, "%s", "");
            CHECK(cfx_cf_new(cm, m, &o, 2, NULL, NULL) == NULL);
            CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), bad[k].msg) &&
                          strstr(cfx_last_error(), cfx_cf_method_name(m)),
                      "%s: got: %s", bad[k].file, cfx_last_error());
        }
        CHECK(cfx_distance_new(cm, CFX_CF_DISTANCE_LPIPS, path, 2) == NULL);
        CHECK_MSG(strstr(cfx_last_error(), bad[k].msg), "got: %s", cfx_last_error());
    }
    /* A model that fits (two 3-channel inputs, one value each) is taken, and is what runs. */
    char path[700];
    snprintf(path, sizeof path, "%s/fits.onnx", dir);
    write_model(path, 2, 3, 1, false);
    cfx_distance *d = cfx_distance_new(cm, CFX_CF_DISTANCE_LPIPS, path, 2);
    CHECK_MSG(d != NULL, "%s", cfx_last_error());
    if (d) {
        /* mean((2x - 1) - (2y - 1))^2 = 4 mean (x - y)^2 */
        cfx_tensor *x, *y;
        float w[N];
        make_pairs(cm, &x, &y, w);
        double got[N];
        CHECK_OK(cfx_distance_run(d, x, y, got));
        const int64_t img = x->numel / N;
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int64_t j = 0; j < img; j++)
                s += pow(x->data[i * img + j] - y->data[i * img + j], 2);
            CHECK_NEAR(got[i], 4 * s / img, 1e-6 * (1 + 4 * s / img));
        }
        /* Pairs of another shape are refused. */
        cfx_tensor *grey = cfx_tensor_new(4, (int64_t[]){N, 1, x->shape[2], x->shape[3]});
        CHECK_ERR(cfx_distance_run(d, x, grey, got), CFX_ESHAPE);
        CHECK_MSG(strstr(cfx_last_error(), "(5, 1, 6, 6)") && strstr(cfx_last_error(), "LPIPS"),
                  "got: %s", cfx_last_error());
        cfx_tensor_free(grey), cfx_tensor_free(x), cfx_tensor_free(y);
    }
    cfx_distance_free(d);
    /* A file that is not there. */
    snprintf(path, sizeof path, "%s/missing.onnx", dir);
    CHECK(cfx_cf_new(cm, CFX_CF_IGD, &(cfx_cf_options){.lpips_model = path}, 2, NULL, NULL) ==
          NULL);
    CHECK_MSG(strstr(cfx_last_error(), "missing.onnx"), "got: %s", cfx_last_error());
    /* The model is used with the LPIPS distance only. */
    cfx_cf *cf = cfx_cf_new(cm, CFX_CF_IGD,
                            &(cfx_cf_options){.lpips_model = path, .distance = CFX_CF_DISTANCE_L2},
                            2, NULL, NULL);
    CHECK_MSG(cf != NULL, "%s", cfx_last_error());
    cfx_cf_free(cf);
    cfx_competency_free(cm);
}

/* The built-in LPIPS needs a convolution: a classifier without one is refused by name. */
CFX_TEST(distance, builtin_lpips_without_a_convolution_is_refused) {
    char dir[600];
    cfx_competency *cm = open_models(dir, &(tiny_models){0}, 2);
    if (!cm) return;
    cfx_competency_free(cm);
    /* A linear classifier in place of the tiny one. */
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, TINY_C, TINY_H, TINY_W});
    int f = cfx_op_tanh(g, cfx_layer_linear(g, cfx_op_flatten(g, x, 1), "fc1", TINY_F, &r));
    CHECK_OK(cfx_graph_set_name(g, f, "features"));
    int y = cfx_op_softmax(g, cfx_layer_linear(g, f, "fc2", TINY_K, &r), 1);
    CHECK_OK(cfx_graph_set_output(g, y, "probs"));
    CHECK_OK(cfx_graph_compile(g));
    char c[800], e[800], d[800];
    tiny_model_paths(dir, "linear.onnx", c, e, d);
    CHECK_OK(cfx_onnx_save(g, c, NULL, 0));
    cfx_graph_free(g);
    cm = cfx_competency_new(&(cfx_competency_models){.classifier = c, .encoder = e, .decoder = d},
                            2);
    CHECK_MSG(cm != NULL, "%s", cfx_last_error());
    if (!cm) return;
    CHECK(cfx_distance_new(cm, CFX_CF_DISTANCE_LPIPS, NULL, 2) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "linear.onnx") && strstr(cfx_last_error(), "no Conv") &&
                  strstr(cfx_last_error(), "--lpips-model"),
              "got: %s", cfx_last_error());
    /* The other distances do not need one. */
    cfx_distance *ssim = cfx_distance_new(cm, CFX_CF_DISTANCE_SSIM, NULL, 2);
    CHECK_MSG(ssim != NULL, "%s", cfx_last_error());
    cfx_distance_free(ssim);
    cfx_competency_free(cm);
}

/* ------------------------------------------------------------- out of memory --- */

/* Fails each allocation in turn, from opening the models to a run of IGD with the built-in
 * LPIPS and of the 1 - SSIM distance: every failure comes back as an error (never a crash) and
 * nothing leaks. Ends after 30 attempts in a row that succeed (the allocations ran out). A few
 * allocations are optional (cfx_onnx_info_load goes on without a tensor's name) and let the run
 * succeed; they are counted. */
CFX_TEST(distance, every_failed_allocation_is_an_error_without_leaks) {
    char dir[600];
    cfx_competency *cm = open_models(dir, &(tiny_models){.two_convs = true}, 2);
    cfx_competency_free(cm);
    char c[800], e[800], d[800];
    tiny_model_paths(dir, "classifier.onnx", c, e, d);
    /* Under valgrind and the sanitizers (the fast subset), every 13th allocation. */
    const long step = cfx_test_fast() ? 13 : 1;
    long fail = 1, failures = 0, streak = 0, got_past = 0;
    for (; streak < 30 && fail < 20000; fail += step) {
        cfx_test_alloc_begin(fail);
        cfx_competency *m = cfx_competency_new(
            &(cfx_competency_models){.classifier = c, .encoder = e, .decoder = d}, 2);
        cfx_distance *ssim = NULL;
        cfx_cf *cf = NULL;
        cfx_tensor *x = NULL, *out = NULL;
        bool ok = m && cfx_competency_set_parce(m, &any_parce) == CFX_OK;
        if (ok)
            ok = (cf = cfx_cf_new(m, CFX_CF_IGD, &(cfx_cf_options){.max_iter = 2}, 2, NULL,
                                  NULL)) != NULL;
        if (ok) ok = (ssim = cfx_distance_new(m, CFX_CF_DISTANCE_SSIM, NULL, 2)) != NULL;
        if (ok) {
            x = cfx_tensor_new(4, (int64_t[]){3, TINY_C, TINY_H, TINY_W});
            out = x ? cfx_tensor_new(4, x->shape) : NULL;
            ok = x && out;
        }
        if (ok) {
            cfx_tensor_fill(x, 0.5f);
            cfx_cf_record rec[3];
            double dist[3];
            ok = cfx_cf_run(cf, x, out, rec) == CFX_OK &&
                 cfx_distance_run(ssim, x, out, dist) == CFX_OK;
        }
        if (!ok) {
            failures++;
            CHECK_MSG(cfx_last_error()[0], "failing allocation %ld: no message", fail);
        }
        cfx_tensor_free(x), cfx_tensor_free(out);
        cfx_distance_free(ssim);
        cfx_cf_free(cf);
        cfx_competency_free(m);
        long live = cfx_test_alloc_end();
        CHECK_MSG(live == 0, "failing allocation %ld leaked %ld blocks", fail, live);
        if (!ok && streak > 0) got_past += streak;
        streak = ok ? streak + 1 : 0;
        if (live != 0) break;
    }
    printf("  (%ld failed allocations were errors without leaks, %ld were got past, before %ld "
           "allocations ran out)\n",
           failures, got_past, fail - step * 30);
    CHECK_MSG(streak >= 30, "still failing at allocation %ld", fail);
    /* Under the fast subset, each failure stands for `step` allocations. */
    CHECK(failures * step > 1000 && got_past < 10);
}
