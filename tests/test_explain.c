/* test_explain.c - explanations (src/explain/): every image statistic and the competency map
 * against NumPy (tests/py/explain_oracle.py); the measured explainer, learned on a small signs
 * bundle, naming the cause of images corrupted by cfx_corrupt with known causes; `cfx explain`
 * on a run (its files and the report's use of them); and the refusals: a folder that holds no
 * run, a run of another bundle, bad arguments. */
#include "oracle_io.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Images whose statistics cover the interesting cases: smooth colour and grey images, each
 * corrupted by every operation, a constant image, and one with black and white clipping. */
static cfx_tensor *varied_images(int c, int h, int w, int *n_out) {
    enum { BASE = 3 };
    int n = BASE * 6 + 2;
    cfx_tensor *t = cfx_tensor_new(4, (int64_t[]){n, c, h, w});
    cfx_rng r;
    cfx_rng_init(&r, 5 + (uint64_t)c);
    int64_t per = (int64_t)c * h * w;
    for (int b = 0; b < BASE; b++) {
        float *x = t->data + b * 6 * per;
        double fx = 0.1 + 0.2 * cfx_rng_uniform(&r), fy = 0.1 + 0.2 * cfx_rng_uniform(&r);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    x[(ch * h + y) * w + xx] =
                        (float)(round(255 * (0.5 + 0.4 * sin(fx * xx + ch) * cos(fy * y))) / 255);
        const cfx_cause causes[5] = {CFX_CAUSE_BRIGHTNESS, CFX_CAUSE_CONTRAST, CFX_CAUSE_NOISE,
                                     CFX_CAUSE_PIXELATION, CFX_CAUSE_SATURATION};
        const double factors[5] = {0.5, 3, 40, 4, 3};
        for (int k = 0; k < (c == 3 ? 5 : 4); k++) {
            cfx_tensor src = *t, dst = *t;
            src.data = x, src.shape[0] = 1, src.numel = per;
            dst.data = x + (k + 1) * per, dst.shape[0] = 1, dst.numel = per;
            CHECK_OK(cfx_corrupt(causes[k], factors[k], &src, &dst, &r));
        }
        if (c == 1) memcpy(x + 5 * per, x, (size_t)per * sizeof *x);
    }
    float *constant = t->data + BASE * 6 * per, *clipped = constant + per;
    for (int64_t i = 0; i < per; i++) {
        constant[i] = 0.25f;
        clipped[i] = i % 3 == 0 ? 0.0f : i % 3 == 1 ? 1.0f : (float)cfx_rng_uniform(&r);
    }
    *n_out = n;
    return t;
}

CFX_TEST(explain, statistics_match_numpy) {
    const int shapes[2][3] = {{1, 28, 28}, {3, 20, 17}};
    for (int s = 0; s < 2; s++) {
        int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2], n = 0;
        cfx_tensor *x = varied_images(c, h, w, &n);
        const char *dir = cfx_test_tmpdir();
        char sub[900];
        snprintf(sub, sizeof sub, "%s/stats%d", dir, s);
        mkdir(sub, 0777);
        CHECK(oracle_write(sub, "images", 4, x->shape, x->data));
        char args[1000];
        snprintf(args, sizeof args, "stats %s", sub);
        int rc = cfx_test_python("explain_oracle.py", args);
        CHECK_MSG(rc == 0, "explain_oracle.py stats exited with %d", rc);
        char path[1000];
        snprintf(path, sizeof path, "%s/stats.npy", sub);
        cfx_tensor *want = rc == 0 ? cfx_npy_read(path) : NULL;
        CHECK_MSG(want && want->numel == (int64_t)n * CFX_STAT_COUNT,
                  "the oracle's statistics are missing or of another size");
        if (want && want->numel != (int64_t)n * CFX_STAT_COUNT) {
            cfx_tensor_free(want);
            want = NULL;
        }
        int64_t per = (int64_t)c * h * w;
        double worst = 0;
        int worst_at = -1;
        for (int i = 0; want && i < n; i++) {
            double got[CFX_STAT_COUNT];
            CHECK_OK(cfx_image_stats(x->data + i * per, c, h, w, got));
            for (int k = 0; k < CFX_STAT_COUNT; k++) {
                /* float32 from the .npy; the values are well inside its precision */
                double d = fabs(got[k] - want->data[i * CFX_STAT_COUNT + k]);
                if (d > worst) worst = d, worst_at = i * CFX_STAT_COUNT + k;
            }
        }
        CHECK_MSG(worst < 2e-6, "%dx%dx%d: statistic %s of image %d differs by %g", c, h, w,
                  worst_at >= 0 ? cfx_stat_name((cfx_stat)(worst_at % CFX_STAT_COUNT)) : "?",
                  worst_at / CFX_STAT_COUNT, worst);
        /* The statistics say what the operations did (a check on the definitions). */
        double clean[CFX_STAT_COUNT], v[CFX_STAT_COUNT];
        CHECK_OK(cfx_image_stats(x->data, c, h, w, clean));
        CHECK_OK(cfx_image_stats(x->data + per, c, h, w, v)); /* brightness 0.5 */
        CHECK_NEAR(v[CFX_STAT_BRIGHTNESS] / clean[CFX_STAT_BRIGHTNESS], 0.5, 0.02);
        CHECK_OK(cfx_image_stats(x->data + 4 * per, c, h, w, v)); /* pixelation 4 */
        CHECK_MSG(v[CFX_STAT_BLOCKINESS] > 0.6 && clean[CFX_STAT_BLOCKINESS] < 0.1,
                  "blockiness %g pixelated, %g clean", v[CFX_STAT_BLOCKINESS],
                  clean[CFX_STAT_BLOCKINESS]);
        CHECK_OK(cfx_image_stats(x->data + 3 * per, c, h, w, v)); /* noise 40 */
        CHECK(v[CFX_STAT_NOISE_MEDIAN] > 3 * clean[CFX_STAT_NOISE_MEDIAN]);
        cfx_tensor_free(want);
        cfx_tensor_free(x);
    }
    double out[CFX_STAT_COUNT];
    float tiny[4] = {0};
    CHECK_ERR(cfx_image_stats(tiny, 1, 2, 2, out), CFX_EINVAL);
    float nan_image[9] = {0, 0, 0, 0, NAN, 0, 0, 0, 0};
    CHECK_ERR(cfx_image_stats(nan_image, 1, 3, 3, out), CFX_ENUMERIC);
}

CFX_TEST(explain, map_matches_numpy_and_names_its_region) {
    enum { C = 3, H = 12, W = 10 };
    float grad[C * H * W], image[C * H * W], cf[C * H * W], map[H * W];
    cfx_rng r;
    cfx_rng_init(&r, 9);
    for (int i = 0; i < C * H * W; i++) {
        grad[i] = (float)(cfx_rng_uniform(&r) - 0.5) * 0.01f;
        image[i] = (float)cfx_rng_uniform(&r);
        cf[i] = image[i];
    }
    /* The counterfactual changes a block at x 6..8, y 2..5; the gradient is strong there too. */
    for (int ch = 0; ch < C; ch++)
        for (int y = 2; y <= 5; y++)
            for (int x = 6; x <= 8; x++) {
                cf[(ch * H + y) * W + x] = 1 - image[(ch * H + y) * W + x];
                grad[(ch * H + y) * W + x] = 0.3f;
            }
    for (int with = 0; with < 2; with++) {
        CHECK_OK(cfx_competency_map(grad, image, with ? cf : NULL, C, H, W, map));
        const char *dir = cfx_test_tmpdir();
        char sub[900], args[1000];
        snprintf(sub, sizeof sub, "%s/map%d", dir, with);
        mkdir(sub, 0777);
        float flags[1] = {(float)with};
        CHECK(oracle_write(sub, "grad", 3, (int64_t[]){C, H, W}, grad));
        CHECK(oracle_write(sub, "image", 3, (int64_t[]){C, H, W}, image));
        CHECK(oracle_write(sub, "cf", 3, (int64_t[]){C, H, W}, cf));
        CHECK(oracle_write(sub, "flags", 1, (int64_t[]){1}, flags));
        snprintf(args, sizeof args, "map %s", sub);
        int rc = cfx_test_python("explain_oracle.py", args);
        CHECK_MSG(rc == 0, "explain_oracle.py map exited with %d", rc);
        float *want = rc == 0 ? oracle_read(sub, "map", H * W) : NULL;
        CHECK_MSG(want != NULL, "the oracle's map is missing");
        if (want) CHECK_ARRAY_NEAR(map, want, H * W, 1e-5, 1e-6);
        free(want);
        int region[4];
        cfx_competency_map_region(map, H, W, region);
        /* The blurred block reaches half its height one pixel outside at most. */
        CHECK_MSG(region[0] >= 5 && region[0] <= 6 && region[1] >= 1 && region[1] <= 2 &&
                      region[0] + region[2] >= 9 && region[0] + region[2] <= 10 &&
                      region[1] + region[3] >= 6 && region[1] + region[3] <= 7,
                  "region (%d, %d, %d, %d), not around (6, 2, 3, 4)", region[0], region[1],
                  region[2], region[3]);
    }
    cfx_tensor *png = cfx_competency_map_render(map, image, C, H, W, 4);
    CHECK(png && png->ndim == 3 && png->shape[0] == 3 && png->shape[1] == 4 * H &&
          png->shape[2] == 4 * W);
    cfx_tensor_free(png);
    CHECK_ERR(cfx_competency_map(NULL, image, NULL, C, H, W, map), CFX_EINVAL);
}

/* A small signs bundle (as tests/test_cf_cli.c makes it), once for the suite. */
static char root[600];

static bool setup(void) {
    return cfx_test_bundle_once(root, sizeof root,
                                &(cfx_test_bundle_spec){.train = 60,
                                                        .calib = 30,
                                                        .test = 30,
                                                        .ood = 20,
                                                        .clf_epochs = 6,
                                                        .ae_epochs = 2,
                                                        .threshold = 0.17,
                                                        .per_cause = 4},
                                "reco,lnn");
}

/* Images of the test split (never seen by the explainer) corrupted with known causes: the
 * explainer names the cause of most of those the corruption made low-competency. */
CFX_TEST(explain, names_the_known_cause_of_corrupted_images) {
    if (!setup()) return;
    char path[900];
    snprintf(path, sizeof path, "%s/b", root);
    cfx_bundle *b = cfx_bundle_load(path, 64);
    snprintf(path, sizeof path, "%s/s", root);
    cfx_dataset *calib = cfx_dataset_load(path, "calib"), *test = cfx_dataset_load(path, "test");
    cfx_tensor *lat = NULL, *sc = NULL;
    CHECK(b && calib && test);
    if (!b || !calib || !test) goto done;
    CHECK_OK(cfx_bundle_calibration(b, &lat, &sc));
    cfx_explainer *e = cfx_explainer_new(
        b->competency, calib, sc->data,
        &(cfx_explainer_options){.sources = 120, .calib_latents = lat, .calib_scores = sc});
    CHECK_MSG(e != NULL, "cfx_explainer_new: %s", cfx_last_error());
    if (!e) goto done;
    for (int cause = CFX_CAUSE_SPATIAL; cause < CFX_CAUSE_COUNT; cause++)
        CHECK_MSG(cfx_explainer_samples(e, (cfx_cause)cause) > 0, "no sample of %s",
                  cfx_cause_name((cfx_cause)cause));
    const cfx_tensor *x = test->images;
    int64_t per = x->numel / x->shape[0];
    cfx_tensor *y = cfx_tensor_new(4, x->shape);
    float *rho = malloc((size_t)x->shape[0] * sizeof *rho);
    const double factor[CFX_CAUSE_COUNT] = {0, 0, 0.25, 0.25, 0, 80, 4};
    const double thr = cfx_competency_parce(b->competency)->threshold;
    for (int cause = CFX_CAUSE_BRIGHTNESS; cause < CFX_CAUSE_COUNT; cause++) {
        cfx_rng r;
        cfx_rng_init(&r, 1000 + (uint64_t)cause); /* not the explainer's seed */
        CHECK_OK(cfx_corrupt((cfx_cause)cause, factor[cause], x, y, &r));
        CHECK_OK(
            cfx_competency_score(b->competency, y, &(cfx_competency_scores){.rho = rho}, NULL));
        int right = 0, low = 0;
        for (int64_t i = 0; i < x->shape[0]; i++) {
            if (!(rho[i] < thr)) continue;
            cfx_explanation ex;
            CHECK_OK(cfx_explain_image(e, y->data + i * per, NULL, -1, NULL, rho[i], NAN, &ex));
            low++, right += ex.cause == (cfx_cause)cause;
            if (low <= 3) {
                /* An IGD or FGD counterfactual (here: the image, a little lighter) only gives
                 * the sentence its numbers: the vote is the image's alone. */
                float *cf = malloc((size_t)per * sizeof *cf);
                for (int64_t j = 0; cf && j < per; j++)
                    cf[j] = fminf(1.0f, y->data[i * per + j] + 0.01f);
                for (int m = 0; cf && m < 2; m++) {
                    cfx_explanation ec;
                    CHECK_OK(cfx_explain_image(e, y->data + i * per, cf,
                                               m ? CFX_CF_FGD : CFX_CF_IGD, NULL, rho[i], 0.95,
                                               &ec));
                    CHECK(ec.cause == ex.cause && ec.with_counterfactual &&
                          !memcmp(ec.share, ex.share, sizeof ec.share));
                }
                free(cf);
            }
            if (i == 0) CHECK_MSG(strlen(ex.sentence) > 20, "sentence: %s", ex.sentence);
        }
        CHECK_MSG(low >= 10, "%s %g made only %d images low-competency", cfx_cause_name(cause),
                  factor[cause], low);
        CHECK_MSG(right >= 0.8 * low, "%s: %d of %d right", cfx_cause_name(cause), right, low);
    }
    free(rho);
    cfx_tensor_free(y);
    cfx_explainer_free(e);
done:
    cfx_tensor_free(lat), cfx_tensor_free(sc);
    cfx_dataset_free(calib), cfx_dataset_free(test);
    cfx_bundle_free(b);
}

CFX_TEST(explain, cli_writes_explanations_maps_and_accuracy) {
    if (!setup()) return;
    char out[16384], path[900];
    int rc = cfx_test_run_cli_stdout(out, sizeof out,
                                     "explain %s/run --data %s/s --sources 60 "
                                     "--json --threads 1",
                                     root, root);
    CHECK_MSG(rc == 0, "cfx explain: exit %d: %s", rc, out);
    cJSON *j = cJSON_Parse(out);
    CHECK_MSG(cJSON_GetObjectItem(j, "accuracy") != NULL, "no accuracy in: %s", out);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/run/explanations.jsonl", root);
    char *text = NULL;
    size_t size;
    CHECK_OK(cfx_file_read_all(path, &text, &size));
    int lines = 0, with_cause = 0;
    for (char *p = text, *nl; p && *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) break;
        cJSON *l = cJSON_ParseWithLength(p, (size_t)(nl - p));
        CHECK_MSG(l && cJSON_GetObjectItem(l, "index") && cJSON_GetObjectItem(l, "method") &&
                      cJSON_GetObjectItem(l, "predicted_cause") &&
                      cJSON_GetObjectItem(l, "confidence") &&
                      cJSON_GetArraySize(cJSON_GetObjectItem(l, "region")) == 4 &&
                      cJSON_IsString(cJSON_GetObjectItem(l, "sentence")),
                  "line %d lacks a field: %.*s", lines + 1, (int)(nl - p), p);
        with_cause += cJSON_GetObjectItem(l, "cause") != NULL;
        cJSON_Delete(l);
        lines++;
    }
    cfx_free(text);
    cfx_run *r = NULL;
    snprintf(path, sizeof path, "%s/run", root);
    r = cfx_run_open(path);
    CHECK(r != NULL);
    /* none, reco and lnn for every image; every run image's cause is known. */
    if (r) {
        CHECK_INT_EQ(lines, 3 * r->n);
        CHECK_INT_EQ(with_cause, lines);
        for (int64_t i = 0; i < r->n; i++) {
            snprintf(path, sizeof path, "%s/run/maps/%lld.png", root, (long long)i);
            cfx_tensor *m = cfx_image_read(path, 3);
            CHECK_MSG(m && m->shape[1] >= r->h && m->shape[2] >= r->w, "map %s", path);
            cfx_tensor_free(m);
        }
        cfx_run_free(r);
    }
    /* The accuracy table: a row without a counterfactual and one per method. */
    rc = cfx_test_run_cli_stdout(out, sizeof out,
                                 "explain %s/run --data %s/s --sources 60 --accuracy --no-maps "
                                 "--threads 1",
                                 root, root);
    CHECK_MSG(rc == 0 && strstr(out, "| Method |") && strstr(out, "| None |") &&
                  strstr(out, "| reco |") && strstr(out, "| lnn |") && strstr(out, "Average"),
              "exit %d: %s", rc, out);
}

CFX_TEST(explain, bad_input_gets_clear_messages) {
    if (!setup()) return;
    char out[16384], dir[900];
    /* A folder without a run: it says what to give. */
    snprintf(dir, sizeof dir, "%s/empty", root);
    mkdir(dir, 0777);
    int rc = cfx_test_run_cli(out, sizeof out, "explain %s --threads 1", dir);
    CHECK_MSG(rc == 1 && strstr(out, "cfx explain: ") && strstr(out, "run.json") &&
                  strstr(out, "cfx counterfactual"),
              "exit %d: %s", rc, out);
    /* A method the run does not have. */
    rc = cfx_test_run_cli(out, sizeof out, "explain %s/run --method lgd --threads 1", root);
    CHECK_MSG(rc == 1 && strstr(out, "no lgd counterfactuals"), "exit %d: %s", rc, out);
    rc = cfx_test_run_cli(out, sizeof out, "explain %s/run --method bogus --threads 1", root);
    CHECK_MSG(rc == 2 && strstr(out, "--method must be"), "exit %d: %s", rc, out);
    /* A run whose bundle was refitted since: refused, naming both fingerprints. */
    rc = cfx_test_run_cli(out, sizeof out,
                          "competency fit --classifier %s/clf.onnx --encoder %s/encoder.onnx "
                          "--decoder %s/decoder.onnx --data %s/s --out %s/b2 --threshold 0.18 "
                          "--threads 1",
                          root, root, root, root, root);
    CHECK_MSG(rc == 0, "refit: %s", out);
    char runjson[900], *text = NULL;
    size_t size;
    snprintf(runjson, sizeof runjson, "%s/run2", root);
    mkdir(runjson, 0777);
    const char *files[] = {"images.npy", "results.jsonl", "counterfactuals_reco.npy",
                           "counterfactuals_lnn.npy", "run.json"};
    for (int k = 0; k < 5; k++) {
        char a[900], bpath[900];
        snprintf(a, sizeof a, "%s/run/%s", root, files[k]);
        snprintf(bpath, sizeof bpath, "%s/run2/%s", root, files[k]);
        CHECK_OK(cfx_file_read_all(a, &text, &size));
        if (k == 4) { /* the run now names the refitted bundle */
            cJSON *j = cJSON_Parse(text);
            char b2[900];
            snprintf(b2, sizeof b2, "%s/b2", root);
            cJSON_ReplaceItemInObject(j, "bundle", cJSON_CreateString(b2));
            cfx_free(text);
            char *s = cJSON_Print(j);
            text = cfx_strdup(s);
            size = strlen(text);
            free(s);
            cJSON_Delete(j);
        }
        FILE *f = fopen(bpath, "wb");
        CHECK(f && fwrite(text, 1, size, f) == size);
        if (f) fclose(f);
        cfx_free(text);
    }
    rc = cfx_test_run_cli(out, sizeof out, "explain %s/run2 --threads 1", root);
    CHECK_MSG(rc == 1 && strstr(out, "is not the one the run was made with"), "exit %d: %s", rc,
              out);
}
