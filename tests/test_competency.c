/* test_competency.c - PaRCE (src/competency/parce.c): rho against a NumPy/SciPy computation of
 * the formula from the same model outputs, a final Softmax recognised (never applied twice),
 * the gradients of rho with respect to the image and to a latent code against central
 * differences, the fit against PyTorch on models written by torch.onnx.export, and bad input. */
#include "test.h"
#include "oracle_io.h"
#include "tiny_models.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

enum { C = TINY_C, H = TINY_H, W = TINY_W, K = TINY_K, D = TINY_D };

static void write_models(const char *dir, bool softmax, const char *clf_name) {
    tiny_models_write(dir, &(tiny_models){.classifier = clf_name, .logits = !softmax});
}

static cfx_competency *open_models(const char *dir, const char *clf, cfx_classifier_output out,
                                   int64_t batch) {
    char c[800], e[800], d[800];
    tiny_model_paths(dir, clf, c, e, d);
    cfx_competency_models m = {.classifier = c, .encoder = e, .decoder = d, .output = out};
    cfx_competency *cm = cfx_competency_new(&m, batch);
    CHECK_MSG(cm != NULL, "cfx_competency_new: %s", cfx_last_error());
    return cm;
}

/* A calibration that puts t = (L - 2 mu) / sigma - z near 0 for these models' losses, so that
 * P_c is neither 0 nor 1 and rho has a gradient worth checking. */
static void calibration_near(cfx_competency *cm, const cfx_tensor *x, cfx_parce *p, double *mu,
                             double *sigma) {
    float loss[64];
    cfx_competency_scores sc = {.loss = loss};
    CHECK_OK(cfx_competency_score(cm, x, &sc, NULL));
    double mean = 0;
    for (int64_t i = 0; i < x->shape[0]; i++) mean += loss[i] / (double)x->shape[0];
    for (int k = 0; k < K; k++) mu[k] = mean / 2 * (0.9 + 0.1 * k), sigma[k] = 0.01 + 0.005 * k;
    *p = (cfx_parce){
        .num_classes = K, .mu = mu, .sigma = sigma, .z = 0.35, .loss_scale = 2, .threshold = 0.9};
}

CFX_TEST(competency, rho_matches_the_formula_in_numpy) {
    const char *dir = cfx_test_tmpdir();
    write_models(dir, true, "classifier.onnx");
    cfx_competency *cm = open_models(dir, "classifier.onnx", CFX_OUTPUT_AUTO, 3);
    if (!cm) return;
    cfx_competency_shape sh;
    cfx_competency_shape_of(cm, &sh);
    CHECK_INT_EQ(sh.num_classes, K);
    CHECK_INT_EQ(sh.latent_dim, D);
    CHECK_INT_EQ(sh.feature_dim, 8);
    CHECK(sh.probs_output);
    CHECK_STR_EQ(sh.features, "features");
    enum { N = 7 }; /* batches of 3, 3 and 1 */
    cfx_tensor *x = tiny_random_images(N, 1);
    double mu[K], sigma[K];
    cfx_parce p;
    calibration_near(cm, x, &p, mu, sigma);
    CHECK_OK(cfx_competency_set_parce(cm, &p));
    float probs[N * K], loss[N], rho[N], indist[N], smax[N];
    int32_t pred[N];
    cfx_competency_scores sc = {.predicted = pred,
                                .softmax_max = smax,
                                .loss = loss,
                                .in_distribution = indist,
                                .rho = rho,
                                .probs = probs};
    CHECK_OK(cfx_competency_score(cm, x, &sc, NULL));
    float params[2 + 2 * K] = {2.0f, 0.35f};
    for (int k = 0; k < K; k++) params[2 + k] = (float)mu[k], params[2 + K + k] = (float)sigma[k];
    CHECK(oracle_write(dir, "probs", 2, (int64_t[]){N, K}, probs));
    CHECK(oracle_write(dir, "loss", 1, (int64_t[]){N}, loss));
    CHECK(oracle_write(dir, "params", 1, (int64_t[]){2 + 2 * K}, params));
    char args[700];
    snprintf(args, sizeof args, "formula '%s'", dir);
    CHECK_INT_EQ(cfx_test_python("competency_oracle.py", args), 0);
    float *want = oracle_read(dir, "rho_oracle", N),
          *want_in = oracle_read(dir, "indist_oracle", N);
    CHECK(want && want_in);
    if (want && want_in) {
        CHECK_ARRAY_NEAR(rho, want, N, 0, 1e-5);
        CHECK_ARRAY_NEAR(indist, want_in, N, 0, 1e-5);
    }
    double spread = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (probs[i * K + k] > probs[i * K + best]) best = k;
        CHECK_INT_EQ(pred[i], best);
        CHECK(smax[i] == probs[i * K + best]);
        spread += fabs(rho[i] - rho[0]);
    }
    CHECK(spread > 1e-3); /* the images differ in competency: the check above is not vacuous */
    free(want), free(want_in);
    cfx_tensor_free(x);
    cfx_competency_free(cm);
}

CFX_TEST(competency, a_final_softmax_is_not_applied_twice) {
    const char *dir = cfx_test_tmpdir();
    write_models(dir, true, "probs.onnx");
    write_models(dir, false, "logits.onnx"); /* the same weights without the Softmax */
    cfx_competency *a = open_models(dir, "probs.onnx", CFX_OUTPUT_AUTO, 4);
    cfx_competency *b = open_models(dir, "logits.onnx", CFX_OUTPUT_AUTO, 4);
    cfx_competency *twice = open_models(dir, "probs.onnx", CFX_OUTPUT_LOGITS, 4);
    if (!a || !b || !twice) return;
    cfx_tensor *x = tiny_random_images(4, 2);
    float pa[4 * K], pb[4 * K], pt[4 * K];
    CHECK_OK(cfx_competency_score(a, x, &(cfx_competency_scores){.probs = pa}, NULL));
    CHECK_OK(cfx_competency_score(b, x, &(cfx_competency_scores){.probs = pb}, NULL));
    CHECK_OK(cfx_competency_score(twice, x, &(cfx_competency_scores){.probs = pt}, NULL));
    CHECK_ARRAY_NEAR(pa, pb, 4 * K, 1e-6, 1e-7);
    /* Told the output is logits, cfx applies softmax to probabilities: flatter rows. */
    double dmax = 0;
    for (int i = 0; i < 4 * K; i++) dmax = fmax(dmax, fabs(pa[i] - pt[i]));
    CHECK(dmax > 1e-3);
    cfx_competency_shape sa, sb;
    cfx_competency_shape_of(a, &sa);
    cfx_competency_shape_of(b, &sb);
    CHECK(sa.probs_output && !sb.probs_output);
    cfx_tensor_free(x);
    cfx_competency_free(a), cfx_competency_free(b), cfx_competency_free(twice);
}

/* Checks grad (d sum(rho) / d input) at a few elements of in by central differences, with f
 * recomputing sum(rho) for the current input. */
static void check_central(float *in, int64_t n, const float *grad, double (*f)(void *), void *ctx,
                          const char *what) {
    cfx_rng r;
    cfx_rng_init(&r, 3);
    const float h = 5e-3f;
    int bad = 0;
    double worst = 0;
    for (int t = 0; t < 16; t++) {
        int64_t i = (int64_t)cfx_rng_below(&r, (uint64_t)n);
        float keep = in[i];
        in[i] = keep + h;
        double up = f(ctx);
        in[i] = keep - h;
        double down = f(ctx);
        in[i] = keep;
        double num = (up - down) / (2.0 * h), err = fabs(num - grad[i]);
        worst = fmax(worst, err);
        if (err > 2e-4 + 2e-2 * fabs(num)) {
            if (bad++ < 3)
                cfx_test_fail(__FILE__, __LINE__, "%s: element %lld: analytic %.6g, central %.6g",
                              what, (long long)i, grad[i], num);
        }
    }
    CHECK_INT_EQ(bad, 0);
}

typedef struct {
    cfx_competency *cm;
    cfx_tensor *x;
    bool latent;
} rho_ctx;

static double sum_rho(void *p) {
    rho_ctx *c = p;
    float rho[8];
    cfx_competency_scores sc = {.rho = rho};
    cfx_status s = c->latent ? cfx_competency_score_latent(c->cm, c->x, &sc, NULL, NULL)
                             : cfx_competency_score(c->cm, c->x, &sc, NULL);
    CHECK_OK(s);
    double sum = 0;
    for (int64_t i = 0; i < c->x->shape[0]; i++) sum += rho[i];
    return sum;
}

CFX_TEST(competency, rho_gradients_match_central_differences) {
    const char *dir = cfx_test_tmpdir();
    write_models(dir, true, "classifier.onnx");
    cfx_competency *cm = open_models(dir, "classifier.onnx", CFX_OUTPUT_AUTO, 2);
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(3, 4);
    double mu[K], sigma[K];
    cfx_parce p;
    calibration_near(cm, x, &p, mu, sigma);
    CHECK_OK(cfx_competency_set_parce(cm, &p));
    /* With respect to the image (batches of 2 and 1). */
    float grad[3 * C * H * W], norm = 0;
    float rho[3];
    CHECK_OK(cfx_competency_score(cm, x, &(cfx_competency_scores){.rho = rho}, grad));
    for (int i = 0; i < 3 * C * H * W; i++) norm += fabsf(grad[i]);
    CHECK(norm > 1e-3);
    rho_ctx ctx = {cm, x, false};
    check_central(x->data, x->numel, grad, sum_rho, &ctx, "d rho / d image");
    /* With respect to a latent code, through the decoder. */
    cfx_tensor *z = cfx_tensor_new(2, (int64_t[]){3, D});
    cfx_rng r;
    cfx_rng_init(&r, 9);
    cfx_tensor_fill_uniform(z, &r, -1.0f, 1.0f);
    float gz[3 * D], decoded[3 * C * H * W];
    CHECK_OK(cfx_competency_score_latent(cm, z, &(cfx_competency_scores){.rho = rho}, gz, decoded));
    for (int i = 0; i < 3 * C * H * W; i++) CHECK(decoded[i] > 0 && decoded[i] < 1);
    ctx = (rho_ctx){cm, z, true};
    check_central(z->data, z->numel, gz, sum_rho, &ctx, "d rho / d latent");
    /* rho of a code equals rho of its decoded image. */
    cfx_tensor *xd = cfx_tensor_new(4, (int64_t[]){3, C, H, W});
    memcpy(xd->data, decoded, sizeof decoded);
    float rho_img[3];
    CHECK_OK(cfx_competency_score(cm, xd, &(cfx_competency_scores){.rho = rho_img}, NULL));
    CHECK_ARRAY_NEAR(rho, rho_img, 3, 1e-5, 1e-6);
    cfx_tensor_free(xd), cfx_tensor_free(z), cfx_tensor_free(x);
    cfx_competency_free(cm);
}

/* A dataset in memory from the oracle's calibration images and labels. */
static cfx_dataset *calib_from(const char *dir, int num_classes) {
    char path[800];
    snprintf(path, sizeof path, "%s/calib_images.npy", dir);
    cfx_tensor *x = cfx_npy_read(path);
    snprintf(path, sizeof path, "%s/calib_labels.npy", dir);
    cfx_tensor *y = cfx_npy_read(path);
    CHECK(x && y);
    if (!x || !y) return NULL;
    cfx_dataset *d = calloc(1, sizeof *d);
    d->images = x;
    d->n = x->shape[0];
    d->num_classes = num_classes;
    d->labels = calloc((size_t)d->n, sizeof *d->labels);
    for (int64_t i = 0; i < d->n; i++) d->labels[i] = (int32_t)y->data[i];
    cfx_tensor_free(y);
    return d;
}

static void calib_free(cfx_dataset *d) {
    if (!d) return;
    cfx_tensor_free(d->images);
    free(d->labels);
    free(d);
}

CFX_TEST(competency, fit_matches_pytorch_on_exported_models) {
    const char *dir = cfx_test_tmpdir();
    char args[700], clf[800], ae[800];
    snprintf(args, sizeof args, "torch '%s'", dir);
    CHECK_INT_EQ(cfx_test_python("competency_oracle.py", args), 0);
    snprintf(clf, sizeof clf, "%s/classifier.onnx", dir);
    snprintf(ae, sizeof ae, "%s/autoencoder.onnx", dir);
    /* One autoencoder file with the latent as one of its outputs; a classifier ending in
     * Softmax whose features are found as the input of its last Gemm. */
    cfx_competency_models m = {.classifier = clf, .autoencoder = ae, .latent = "latent"};
    cfx_competency *cm = cfx_competency_new(&m, 16);
    CHECK_MSG(cm != NULL, "%s", cfx_last_error());
    cfx_dataset *d = calib_from(dir, 4);
    if (!cm || !d) return;
    cfx_competency_shape sh;
    cfx_competency_shape_of(cm, &sh);
    CHECK(sh.probs_output);
    CHECK_INT_EQ(sh.c, 3);
    CHECK_INT_EQ(sh.latent_dim, 16);
    CHECK_INT_EQ(sh.feature_dim, 32);
    cfx_parce p;
    float latents[40 * 16], rho[40];
    CHECK_OK(cfx_parce_fit(cm, d, NULL, &p, latents, rho));
    double *mu = NULL, *sigma = NULL;
    float *want_mu = oracle_read(dir, "mu", 4), *want_sigma = oracle_read(dir, "sigma", 4);
    float *fit = oracle_read(dir, "fit", 2), *want_rho = oracle_read(dir, "rho", 40);
    (void)mu, (void)sigma;
    CHECK(want_mu && want_sigma && fit && want_rho);
    if (want_mu && want_sigma && fit && want_rho) {
        for (int k = 0; k < 4; k++) {
            CHECK_MSG(fabs(p.mu[k] - want_mu[k]) <= 1e-5 * fabs(want_mu[k]),
                      "mu[%d] %.9g, PyTorch %.9g", k, p.mu[k], want_mu[k]);
            CHECK_MSG(fabs(p.sigma[k] - want_sigma[k]) <= 1e-5 * fabs(want_sigma[k]),
                      "sigma[%d] %.9g, PyTorch %.9g", k, p.sigma[k], want_sigma[k]);
        }
        CHECK_NEAR(p.z, fit[0], 1e-6);
        CHECK_NEAR(p.accuracy, fit[1], 1e-6);
        CHECK_ARRAY_NEAR(rho, want_rho, 40, 0, 1e-5);
        CHECK(fabs(p.mean_rho - p.accuracy) < 0.1);
    }
    CHECK_INT_EQ(p.n_calib, 40);
    CHECK_NEAR(p.loss_scale, 2.0, 0);
    CHECK_NEAR(p.threshold, 0.9, 0);
    CHECK(cfx_competency_parce(cm) != NULL);
    free(want_mu), free(want_sigma), free(fit), free(want_rho);
    cfx_parce_deinit(&p);
    calib_free(d);
    cfx_competency_free(cm);
}

CFX_TEST(competency, bad_input_names_the_file) {
    const char *dir = cfx_test_tmpdir();
    write_models(dir, true, "classifier.onnx");
    char c[800], e[800], d[800];
    tiny_model_paths(dir, "classifier.onnx", c, e, d);
    /* The decoder used as an encoder: its input is a latent, not the image. */
    cfx_competency_models m = {.classifier = c, .encoder = d, .decoder = d};
    CHECK(cfx_competency_new(&m, 2) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "decoder.onnx") != NULL, "got: %s", cfx_last_error());
    /* An autoencoder without the named latent. */
    m = (cfx_competency_models){.classifier = c, .autoencoder = e, .latent = "no_such"};
    CHECK(cfx_competency_new(&m, 2) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "no_such") && strstr(cfx_last_error(), "encoder.onnx"),
              "got: %s", cfx_last_error());
    /* A file that is not a model. */
    m = (cfx_competency_models){.classifier = d, .encoder = e, .decoder = d};
    CHECK(cfx_competency_new(&m, 2) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "decoder.onnx") != NULL, "got: %s", cfx_last_error());
    cfx_competency *cm = open_models(dir, "classifier.onnx", CFX_OUTPUT_AUTO, 2);
    if (!cm) return;
    /* Images of another shape, and a NaN. */
    cfx_tensor *grey = cfx_tensor_new(4, (int64_t[]){2, 1, H, W});
    CHECK_ERR(cfx_competency_score(cm, grey, &(cfx_competency_scores){0}, NULL), CFX_ESHAPE);
    CHECK(strstr(cfx_last_error(), "(N, 3, 6, 6)") != NULL);
    cfx_tensor *x = tiny_random_images(3, 5);
    x->data[C * H * W + 4] = NAN;
    CHECK_ERR(cfx_competency_score(cm, x, &(cfx_competency_scores){0}, NULL), CFX_ENUMERIC);
    CHECK_MSG(strstr(cfx_last_error(), "input 1") && strstr(cfx_last_error(), "element 4"),
              "got: %s", cfx_last_error());
    /* Gradients need a calibration. */
    x->data[C * H * W + 4] = 0.5f;
    float grad[3 * C * H * W];
    CHECK_ERR(cfx_competency_score(cm, x, &(cfx_competency_scores){0}, grad), CFX_EINVAL);
    /* Calibration sets: another class count; a class with one image. */
    int32_t labels[3] = {0, 1, 1};
    cfx_dataset ds = {.images = x, .labels = labels, .n = 3, .num_classes = 2};
    cfx_parce p;
    CHECK_ERR(cfx_parce_fit(cm, &ds, NULL, &p, NULL, NULL), CFX_ESHAPE);
    ds.num_classes = K;
    labels[2] = 2;
    char *names[K] = {"a", "b", "c"};
    ds.class_names = names;
    CHECK_ERR(cfx_parce_fit(cm, &ds, NULL, &p, NULL, NULL), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), "class 0 ('a') has 1 image"), "got: %s", cfx_last_error());
    cfx_parce bad = {.num_classes = 2};
    CHECK_ERR(cfx_competency_set_parce(cm, &bad), CFX_EINVAL);
    cfx_tensor_free(grey), cfx_tensor_free(x);
    cfx_competency_free(cm);
}

/* ------------------------------------------------------------------ the commands --- */

static bool exists_in(const char *dir, const char *name) {
    char path[2600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Reads a JSON Lines file into an array of objects (NULL when unreadable). */
static cJSON *read_lines(const char *path, int *n) {
    char *text = NULL;
    *n = 0;
    if (cfx_file_read_all(path, &text, NULL) != CFX_OK) return NULL;
    cJSON *all = cJSON_CreateArray();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        CHECK_MSG(o != NULL, "%s: not JSON: %s", path, line);
        if (o) cJSON_AddItemToArray(all, o), (*n)++;
    }
    cfx_free(text);
    return all;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

CFX_TEST(competency, commands_fit_score_report_examples_end_to_end) {
    if (!cfx_test_cli_or_skip()) return;
    char d[600], out[16384], path[1200];
    snprintf(d, sizeof d, "%s", cfx_test_tmpdir());
    /* Small signs, a classifier and an autoencoder trained for a moment: enough for the
     * commands; a low threshold so that some test images count as competent. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "data signs --out %s/s --size 16 --train 40 --calib 4 --test 10 "
                                  "--ood 20 --seed 1 --threads 1",
                                  d),
                 0);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "train classifier --data %s/s --out %s/clf.onnx --epochs 2 "
                                  "--batch 16 --threads 1",
                                  d, d),
                 0);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "train autoencoder --data %s/s --out %s/ae.onnx --epochs 1 "
                                  "--batch 16 --latent 16 --threads 1",
                                  d, d),
                 0);
    const char *models = "--classifier %s/clf.onnx --encoder %s/encoder.onnx --decoder "
                         "%s/decoder.onnx";
    char m[2000];
    snprintf(m, sizeof m, models, d, d, d);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "competency fit %s --data %s/s --out %s/b --threshold 0.16 "
                                  "--threads 1 --json",
                                  m, d, d),
                 0);
    CHECK_MSG(strstr(out, "\"z\": ") && strstr(out, "\"classes\": [{\"name\": \"30\""), "got: %s",
              out);
    const char *files[] = {"classifier.onnx", "encoder.onnx",      "decoder.onnx",    "parce.json",
                           "bundle.json",     "calib_latents.npy", "calib_scores.npy"};
    snprintf(path, sizeof path, "%s/b", d);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CHECK_MSG(exists_in(path, files[i]), "the bundle has no %s", files[i]);
    /* Found by fuzzing (fuzz/fuzz_bundle.c; tests/data/fuzz-regressions/bundle/): an n_calib of
     * 8.9e114 in parce.json was converted to an integer unchecked (UBSan). A copy of the bundle
     * with that value is refused, naming the file. */
    char cmd[8000], bad[2200];
    snprintf(bad, sizeof bad, "%s/b_bad", d);
    snprintf(cmd, sizeof cmd,
             "cp -r '%s/b' '%s' && sed -i -E 's/\"n_calib\":[[:space:]]*[0-9.e+]+/\"n_calib\": "
             "8.9e114/' "
             "'%s/parce.json' && grep -q 8.9e114 '%s/parce.json'",
             d, bad, bad, bad);
    CHECK_INT_EQ(system(cmd), 0);
    CHECK(cfx_bundle_load(bad, 1) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "parce.json") && strstr(cfx_last_error(), "n_calib"),
              "got: %s", cfx_last_error());
    /* Not over an existing bundle without --force; not over an input. */
    CHECK_INT_EQ(
        cfx_test_run_cli(out, sizeof out, "competency fit %s --data %s/s --out %s/b", m, d, d), 1);
    CHECK_MSG(strstr(out, "--force") != NULL, "got: %s", out);
    CHECK_INT_EQ(
        cfx_test_run_cli(out, sizeof out, "competency fit %s --data %s/s --out %s/s", m, d, d), 2);
    CHECK_MSG(strstr(out, "is also the input --data") != NULL, "got: %s", out);

    /* Examples: one line per image, contact sheets, every corruption below the threshold. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "competency examples --bundle %s/b --data %s/s --out %s/ex "
                                  "--per-cause 3 --seed 2 --threads 1 --json",
                                  d, d, d),
                 0);
    int nex = 0;
    snprintf(path, sizeof path, "%s/ex/examples.jsonl", d);
    cJSON *ex = read_lines(path, &nex);
    snprintf(path, sizeof path, "%s/ex/images.npy", d);
    cfx_tensor *images = cfx_npy_read(path);
    CHECK(ex && images && nex > 3 && images->shape[0] == nex);
    snprintf(path, sizeof path, "%s/ex", d);
    CHECK(exists_in(path, "spatial.png"));
    int corrupted = 0;
    for (const cJSON *e = ex ? ex->child : NULL; e; e = e->next) {
        const char *cause = cJSON_GetObjectItemCaseSensitive(e, "cause")->valuestring;
        if (strcmp(cause, "none") != 0) CHECK(num(e, "rho_after") < 0.16);
        if (strcmp(cause, "none") != 0 && strcmp(cause, "spatial") != 0) {
            corrupted++;
            CHECK(num(e, "rho_before") >= 0.16);
        }
    }
    CHECK(corrupted > 0);

    /* Score the examples: each rho is the example's rho after. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "competency score --bundle %s/b %s/ex/images.npy --out "
                                  "%s/scores.jsonl --threads 1",
                                  d, d, d),
                 0);
    CHECK_MSG(strstr(out, "scored ") != NULL, "no summary: %s", out);
    int nsc = 0;
    snprintf(path, sizeof path, "%s/scores.jsonl", d);
    cJSON *sc = read_lines(path, &nsc);
    CHECK_INT_EQ(nsc, nex);
    const cJSON *a = sc ? sc->child : NULL, *b = ex ? ex->child : NULL;
    for (; a && b; a = a->next, b = b->next) CHECK_NEAR(num(a, "rho"), num(b, "rho_after"), 2e-6);

    /* data corrupt on the array equals the library call. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "data corrupt %s/ex/images.npy %s/c.npy --cause contrast "
                                  "--factor 2",
                                  d, d),
                 0);
    snprintf(path, sizeof path, "%s/c.npy", d);
    cfx_tensor *c = cfx_npy_read(path), *want = images ? cfx_tensor_new(4, images->shape) : NULL;
    CHECK(c && want);
    if (c && want) {
        CHECK_OK(cfx_corrupt(CFX_CAUSE_CONTRAST, 2, images, want, NULL));
        CHECK_ARRAY_NEAR(c->data, want->data, want->numel, 0, 0);
    }

    /* The report: a diagram that decodes, and the numbers. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "competency report --bundle %s/b --data %s/s --out %s/rep "
                                  "--threads 1 --json",
                                  d, d, d),
                 0);
    CHECK_MSG(strstr(out, "\"ece\": ") && strstr(out, "clean vs pixelation"), "got: %s", out);
    snprintf(path, sizeof path, "%s/rep/reliability.png", d);
    cfx_tensor *png = cfx_image_read(path, 3);
    CHECK_MSG(png != NULL, "reliability.png: %s", cfx_last_error());
    cfx_tensor_free(png);

    /* Bad input: a NaN in an array, an image of another size, a class with one calibration
     * image (nothing written). */
    if (images) {
        images->data[5] = NAN;
        snprintf(path, sizeof path, "%s/nan.npy", d);
        CHECK_OK(cfx_npy_write(path, images));
        CHECK_INT_EQ(
            cfx_test_run_cli(out, sizeof out, "competency score --bundle %s/b %s", d, path), 1);
        CHECK_MSG(strstr(out, "nan.npy") && strstr(out, "non-finite"), "got: %s", out);
    }
    CHECK_INT_EQ(
        cfx_test_run_cli(out, sizeof out, "competency score --bundle %s/b %s/ex/spatial.png", d, d),
        1);
    CHECK_MSG(strstr(out, "spatial.png") && strstr(out, "16x16"), "got: %s", out);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "data signs --out %s/one --size 16 --train 4 --calib 1 --test 2 "
                                  "--ood 0 --threads 1",
                                  d),
                 0);
    CHECK_INT_EQ(
        cfx_test_run_cli(out, sizeof out, "competency fit %s --data %s/one --out %s/b1", m, d, d),
        1);
    CHECK_MSG(strstr(out, "at least 2 per class") != NULL, "got: %s", out);
    snprintf(path, sizeof path, "%s", d);
    CHECK(!exists_in(path, "b1"));
    cfx_tensor_free(c), cfx_tensor_free(want), cfx_tensor_free(images);
    cJSON_Delete(ex), cJSON_Delete(sc);
}

/* AUROC and ECE (src/competency/calibration.c) against SciPy's Mann-Whitney U and a NumPy
 * computation, on scores with ties; and their edge cases. */
CFX_TEST(competency, auroc_and_ece_match_scipy) {
    const char *dir = cfx_test_tmpdir();
    enum { NP = 300, NN = 200, N = 500 };
    float pos[NP], neg[NN], score[N], correct_f[N];
    uint8_t correct[N];
    cfx_rng r;
    cfx_rng_init(&r, 12);
    /* Scores rounded to 1/50, so that many tie, positives shifted up. */
    for (int i = 0; i < NP; i++)
        pos[i] = (float)(floor((cfx_rng_uniform(&r) * 0.8 + 0.2) * 50) / 50);
    for (int i = 0; i < NN; i++) neg[i] = (float)(floor(cfx_rng_uniform(&r) * 0.8 * 50) / 50);
    for (int i = 0; i < N; i++) {
        score[i] = (float)cfx_rng_uniform(&r);
        correct[i] = cfx_rng_uniform(&r) < score[i];
        correct_f[i] = correct[i];
    }
    score[0] = 1.0f, score[1] = 0.0f; /* the closed last bin and the first */
    CHECK(oracle_write(dir, "pos", 1, (int64_t[]){NP}, pos));
    CHECK(oracle_write(dir, "neg", 1, (int64_t[]){NN}, neg));
    CHECK(oracle_write(dir, "score", 1, (int64_t[]){N}, score));
    CHECK(oracle_write(dir, "correct", 1, (int64_t[]){N}, correct_f));
    char args[700];
    snprintf(args, sizeof args, "'%s'", dir);
    CHECK_INT_EQ(cfx_test_python("calibration_oracle.py", args), 0);
    float *want = oracle_read(dir, "out", 32);
    CHECK(want != NULL);
    if (!want) return;
    cfx_calibration_bin bins[10];
    CHECK_NEAR(cfx_auroc(pos, NP, neg, NN), want[0], 1e-6);
    CHECK_NEAR(cfx_ece(score, correct, N, 10, bins), want[1], 1e-6);
    for (int b = 0; b < 10; b++) {
        CHECK_INT_EQ(bins[b].n, (long long)want[2 + 3 * b]);
        CHECK_NEAR(bins[b].mean_score, want[3 + 3 * b], 1e-6);
        CHECK_NEAR(bins[b].accuracy, want[4 + 3 * b], 1e-6);
    }
    free(want);
    /* Perfect and reversed separation, all ties, and empty sides. */
    float hi[3] = {0.9f, 0.8f, 0.7f}, lo[2] = {0.1f, 0.2f}, same[2] = {0.5f, 0.5f};
    CHECK_NEAR(cfx_auroc(hi, 3, lo, 2), 1.0, 0);
    CHECK_NEAR(cfx_auroc(lo, 2, hi, 3), 0.0, 0);
    CHECK_NEAR(cfx_auroc(same, 2, same, 2), 0.5, 0);
    CHECK(isnan(cfx_auroc(hi, 3, lo, 0)));
    CHECK(isnan(cfx_ece(score, correct, 0, 10, NULL)));
}
