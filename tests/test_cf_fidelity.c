/* test_cf_fidelity.c - fidelity of the counterfactual methods (src/counterfactual/) to the
 * reference loops in PyTorch (bench/counterfactual_torch.py, run by
 * tests/py/cf_fidelity_oracle.py): on a classifier, encoder and decoder written by
 * torch.onnx.export and a calibration cfx fits and writes as a bundle, which both sides read.
 * IGD (L2), FGD and LGD after 10 updates at a threshold no image reaches, per image and per
 * batch; the two stopping rules where images stop at different updates; Reco; LNN's choices. */
#include "oracle_io.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

enum { N = 8, C = 3, S = 16, IMG = C * S * S, CALIB = 40, CLASSES = 4, LATENT = 8, STEPS = 10 };

static const cfx_cf_method gradient_methods[3] = {CFX_CF_IGD, CFX_CF_FGD, CFX_CF_LGD};
static const cfx_cf_stop stops[2] = {CFX_CF_STOP_PER_IMAGE, CFX_CF_STOP_PER_BATCH};
static const char *const stop_names[2] = {"per-image", "per-batch"};

/* PyTorch exports the models into dir; cfx fits the calibration on the oracle's labelled
 * images and writes dir/bundle (the calibration codes and their rho included, for LNN). */
static bool make_bundle(const char *dir) {
    char args[900], clf[900], enc[900], dec[900], out[900];
    snprintf(args, sizeof args, "export '%s'", dir);
    int rc = cfx_test_python("cf_fidelity_oracle.py", args);
    CHECK_MSG(rc == 0, "cf_fidelity_oracle.py export exited with %d", rc);
    if (rc != 0) return false;
    snprintf(clf, sizeof clf, "%s/classifier.onnx", dir);
    snprintf(enc, sizeof enc, "%s/encoder.onnx", dir);
    snprintf(dec, sizeof dec, "%s/decoder.onnx", dir);
    snprintf(out, sizeof out, "%s/bundle", dir);
    cfx_competency_models m = {.classifier = clf, .encoder = enc, .decoder = dec};
    cfx_competency *cm = cfx_competency_new(&m, CALIB);
    CHECK_MSG(cm != NULL, "%s", cfx_last_error());
    cfx_tensor *x = cfx_test_npy(dir, "calib_images"), *y = cfx_test_npy(dir, "calib_labels");
    bool ok = cm && x && y && x->numel == CALIB * IMG && y->numel == CALIB;
    if (ok) {
        cfx_competency_shape sh;
        cfx_competency_shape_of(cm, &sh);
        CHECK_STR_EQ(sh.features, "features"); /* the exporter's tensor, renamed */
        CHECK(sh.probs_output);                /* the Softmax is detected, not applied twice */
        CHECK_INT_EQ(sh.latent_dim, LATENT);
        int32_t labels[CALIB];
        for (int i = 0; i < CALIB; i++) labels[i] = (int32_t)y->data[i];
        cfx_dataset d = {.images = x, .labels = labels, .n = CALIB, .num_classes = CLASSES};
        cfx_parce p = {0};
        float latents[CALIB * LATENT], rho[CALIB];
        CHECK_OK(cfx_parce_fit(cm, &d, NULL, &p, latents, rho));
        cfx_bundle_spec spec = {.out = out,
                                .models = &m,
                                .competency = cm,
                                .latents = latents,
                                .scores = rho,
                                .n = CALIB,
                                .dataset = "cf_fidelity"};
        cfx_status s = cfx_bundle_write(&spec);
        CHECK_OK(s);
        ok = s == CFX_OK;
        cfx_parce_deinit(&p);
    }
    cfx_tensor_free(x), cfx_tensor_free(y);
    cfx_competency_free(cm);
    return ok;
}

static cfx_bundle *open_bundle(const char *dir, int64_t batch) {
    char path[900];
    snprintf(path, sizeof path, "%s/bundle", dir);
    cfx_bundle *b = cfx_bundle_load(path, batch);
    CHECK_MSG(b != NULL, "%s", cfx_last_error());
    return b;
}

/* Runs one method on x; out gets X', rec the records. */
static bool run(cfx_bundle *b, cfx_cf_method m, const cfx_cf_options *o, int64_t batch,
                const cfx_tensor *x, cfx_tensor *out, cfx_cf_record *rec) {
    cfx_tensor *lat = NULL, *sc = NULL;
    if (m == CFX_CF_LNN) CHECK_OK(cfx_bundle_calibration(b, &lat, &sc));
    cfx_cf *cf = cfx_cf_new(b->competency, m, o, batch, lat, sc);
    CHECK_MSG(cf != NULL, "%s: %s", cfx_cf_method_name(m), cfx_last_error());
    cfx_status s = cf ? cfx_cf_run(cf, x, out, rec) : CFX_EINVAL;
    if (cf) CHECK_OK(s);
    cfx_cf_free(cf);
    cfx_tensor_free(lat), cfx_tensor_free(sc);
    return s == CFX_OK;
}

/* The worst |a - b| over n floats. */
static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    return worst;
}

/* X' against the oracle's name.npy; prints the worst difference. The issue asks for 1e-3; the
 * check is 2e-5, because one Adam update moves a pixel by about lr = 1e-3, so at 1e-3 a loop
 * off by one update could pass (float rounding leaves about 1e-6). */
static void compare(const char *dir, const char *name, const float *got, const char *what) {
    float *want = oracle_read(dir, name, N * IMG);
    CHECK_MSG(want != NULL, "oracle output %s missing or of another size (%s %s)", name, dir,
              oracle_dir_state(dir));
    if (!want) return;
    double d = max_abs_diff(got, want, N * IMG);
    printf("  (%s: max |cfx - PyTorch| %.3g)\n", what, d);
    CHECK_MSG(d <= 2e-5, "%s: X' differs from PyTorch's by %.3g", what, d);
    free(want);
}

CFX_TEST(cf_fidelity, gradient_methods_reco_and_lnn_match_pytorch) {
    const char *dir = cfx_test_tmpdir();
    if (!make_bundle(dir)) return;
    cfx_bundle *b = open_bundle(dir, N);
    cfx_tensor *x = cfx_test_npy(dir, "x");
    if (!b || !x) {
        cfx_bundle_free(b), cfx_tensor_free(x);
        return;
    }
    cfx_tensor *outs[3][2] = {{0}}, *reco = cfx_tensor_new(4, x->shape);
    cfx_tensor *lnn = cfx_tensor_new(4, x->shape);
    cfx_cf_record rec[N], reco_rec[N], lnn_rec[N];
    run(b, CFX_CF_RECO, NULL, N, x, reco, reco_rec);
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 2; s++) {
            outs[k][s] = cfx_tensor_new(4, x->shape);
            /* A threshold no image reaches: all 10 updates run under either rule. */
            cfx_cf_options o = {.max_iter = STEPS,
                                .threshold = 0.999,
                                .stop = stops[s],
                                .distance = CFX_CF_DISTANCE_L2};
            if (!run(b, gradient_methods[k], &o, N, x, outs[k][s], rec)) continue;
            for (int i = 0; i < N; i++) {
                CHECK_INT_EQ(rec[i].steps, STEPS);
                /* rho climbed from where the method started: X, or LGD's decode(encode(X)). */
                double from =
                    gradient_methods[k] == CFX_CF_LGD ? reco_rec[i].rho_after : rec[i].rho_before;
                CHECK_MSG(rec[i].rho_after > from, "%s, image %d: rho %g -> %g",
                          cfx_cf_method_name(gradient_methods[k]), i, from, rec[i].rho_after);
            }
        }
    /* LNN's threshold: between the calibration's 20th and 21st rho, so half the calibration
     * images are candidates and none sits on the threshold. */
    cfx_tensor *lat = NULL, *sc = NULL;
    CHECK_OK(cfx_bundle_calibration(b, &lat, &sc));
    float thr = 0.5f;
    if (sc) {
        float v[CALIB];
        memcpy(v, sc->data, sizeof v);
        for (int i = 1; i < CALIB; i++) /* insertion sort */
            for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
                float t = v[j];
                v[j] = v[j - 1], v[j - 1] = t;
            }
        CHECK(v[CALIB / 2 - 1] < v[CALIB / 2]);
        thr = 0.5f * (v[CALIB / 2 - 1] + v[CALIB / 2]);
    }
    cfx_tensor_free(lat), cfx_tensor_free(sc);
    CHECK(oracle_write(dir, "lnn_threshold", 1, (int64_t[]){1}, &thr));
    run(b, CFX_CF_LNN, &(cfx_cf_options){.threshold = thr}, N, x, lnn, lnn_rec);

    char args[900];
    snprintf(args, sizeof args, "run '%s'", dir);
    int rc = cfx_test_python("cf_fidelity_oracle.py", args);
    CHECK_MSG(rc == 0, "cf_fidelity_oracle.py run exited with %d", rc);
    for (int k = 0; rc == 0 && k < 3; k++)
        for (int s = 0; s < 2; s++) {
            char name[64], what[64];
            snprintf(name, sizeof name, "%s_%s", cfx_cf_method_name(gradient_methods[k]),
                     stop_names[s]);
            snprintf(what, sizeof what, "%s %s, %d updates",
                     cfx_cf_method_name(gradient_methods[k]), stop_names[s], STEPS);
            compare(dir, name, outs[k][s]->data, what);
        }
    if (rc == 0) {
        compare(dir, "reco", reco->data, "reco");
        compare(dir, "lnn", lnn->data, "lnn");
        float *rows = oracle_read(dir, "lnn_rows", N), *gap = oracle_read(dir, "lnn_gap", N);
        CHECK(rows && gap);
        double least = INFINITY;
        for (int i = 0; rows && gap && i < N; i++) {
            CHECK_MSG(lnn_rec[i].neighbour == (int64_t)rows[i],
                      "image %d: cfx chose calibration row %lld, PyTorch %lld", i,
                      (long long)lnn_rec[i].neighbour, (long long)rows[i]);
            least = fmin(least, gap[i]);
        }
        printf("  (lnn: the same rows for all %d images; the closest runner-up is %.3g further "
               "in L1)\n",
               N, least);
        free(rows), free(gap);
    }
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 2; s++) cfx_tensor_free(outs[k][s]);
    cfx_tensor_free(reco), cfx_tensor_free(lnn), cfx_tensor_free(x);
    cfx_bundle_free(b);
}

/* The stopping rules where they matter: at a threshold some images reach within 10 updates
 * and others do not (chosen by the oracle, far from every rho along the way), in batches of 2,
 * each image stops at the same update as in PyTorch and ends at the same X'. */
CFX_TEST(cf_fidelity, stopping_rules_match_pytorch) {
    const char *dir = cfx_test_tmpdir();
    if (!make_bundle(dir)) return;
    char args[900];
    snprintf(args, sizeof args, "stops '%s'", dir);
    int rc = cfx_test_python("cf_fidelity_oracle.py", args);
    CHECK_MSG(rc == 0, "cf_fidelity_oracle.py stops exited with %d", rc);
    cfx_bundle *b = open_bundle(dir, 2);
    cfx_tensor *x = cfx_test_npy(dir, "x");
    cfx_tensor *out = x ? cfx_tensor_new(4, x->shape) : NULL;
    for (int k = 0; rc == 0 && b && x && k < 3; k++) {
        const char *m = cfx_cf_method_name(gradient_methods[k]);
        char name[64];
        snprintf(name, sizeof name, "stop_%s", m);
        float *tm = oracle_read(dir, name, 2); /* threshold, margin */
        CHECK(tm != NULL);
        if (!tm) continue;
        CHECK_MSG(tm[1] > 1e-5, "%s: the threshold %g is only %g from a rho on the way", m, tm[0],
                  tm[1]);
        for (int s = 0; s < 2; s++) {
            cfx_cf_options o = {.max_iter = STEPS,
                                .threshold = tm[0],
                                .adam = {.lr = 1e-2f},
                                .stop = stops[s],
                                .distance = CFX_CF_DISTANCE_L2};
            cfx_cf_record rec[N];
            if (!run(b, gradient_methods[k], &o, 2, x, out, rec)) continue;
            char what[160];
            snprintf(name, sizeof name, "stop_%s_%s_steps", m, stop_names[s]);
            float *steps = oracle_read(dir, name, N);
            CHECK(steps != NULL);
            int early = 0;
            char list[64] = "";
            for (int i = 0; steps && i < N; i++) {
                CHECK_MSG(rec[i].steps == (int)steps[i], "%s %s, image %d: %d updates, PyTorch %d",
                          m, stop_names[s], i, rec[i].steps, (int)steps[i]);
                early += rec[i].steps < STEPS;
                snprintf(list + strlen(list), sizeof list - strlen(list), " %d", rec[i].steps);
            }
            /* The oracle picked a threshold that stops some images early and some pair of
             * images together, so each rule is exercised. */
            CHECK_MSG(early >= 2, "%s %s: %d images stopped early", m, stop_names[s], early);
            snprintf(name, sizeof name, "stop_%s_%s", m, stop_names[s]);
            snprintf(what, sizeof what, "%s %s at threshold %.4f (margin %.2g), updates%s", m,
                     stop_names[s], tm[0], tm[1], list);
            compare(dir, name, out->data, what);
            free(steps);
        }
        free(tm);
    }
    cfx_tensor_free(out), cfx_tensor_free(x);
    cfx_bundle_free(b);
}
