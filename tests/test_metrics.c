/* test_metrics.c - the metrics (src/metrics/): FID against pytorch-fid's computation with
 * scipy.linalg.sqrtm (both of cfx's routes to the trace, a full-rank and a singular case), KID
 * against torch-fidelity's formulas on subsets the oracle draws again from the seed with its
 * own port of the generator, CMMD against the reference code's formula in NumPy, cosine
 * statistics against PyTorch and NumPy, features through a user ONNX network against PyTorch
 * on resized grey images, and bad input. The oracles: tests/py/metrics_oracle.py. */
#include "test.h"
#include "metrics/metrics.h"
#include "oracle_io.h"
#include "tiny_models.h"

#include <math.h>
#include <stdlib.h>

/* The value of `name` in DIR/MODE.txt that the oracle wrote ("name value" lines), or NaN. */
static double oracle_value(const char *dir, const char *mode, const char *name) {
    char path[1024], key[128];
    snprintf(path, sizeof path, "%s/%s.txt", dir, mode);
    FILE *f = fopen(path, "r");
    double v = NAN, x;
    while (f && fscanf(f, "%127s %lf", key, &x) == 2)
        if (!strcmp(key, name)) v = x;
    if (f) fclose(f);
    CHECK_MSG(!isnan(v), "the oracle's %s has no value '%s'", path, name);
    return v;
}

static void check_rel(double got, double want, double rtol, const char *what) {
    CHECK_MSG(fabs(got - want) <= rtol * fabs(want), "%s: cfx %.12g, oracle %.12g (rel %.2g)", what,
              got, want, fabs(got - want) / fabs(want));
}

/* Rows of a mixed Gaussian: x = z M + shift, z standard normal, M (d x d) with entries
 * normal / sqrt(d) times scale, so the covariance is far from the identity. */
static cfx_tensor *features(int64_t n, int64_t d, uint64_t seed, float scale, float shift) {
    cfx_rng r;
    cfx_rng_init(&r, seed);
    float *m = malloc((size_t)(d * d) * sizeof *m), *z = malloc((size_t)d * sizeof *z);
    for (int64_t i = 0; i < d * d; i++) m[i] = scale * (float)cfx_rng_normal(&r) / sqrtf((float)d);
    cfx_tensor *t = cfx_tensor_new(2, (int64_t[]){n, d});
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < d; k++) z[k] = (float)cfx_rng_normal(&r);
        for (int64_t j = 0; j < d; j++) {
            double s = shift * (double)(j % 3);
            for (int64_t k = 0; k < d; k++) s += z[k] * m[k * d + j];
            t->data[i * d + j] = (float)s;
        }
    }
    free(m), free(z);
    return t;
}

static void write_pair(const char *dir, const cfx_tensor *a, const cfx_tensor *b) {
    CHECK(oracle_write(dir, "a", 2, a->shape, a->data));
    CHECK(oracle_write(dir, "b", 2, b->shape, b->data));
}

static int run_oracle(const char *mode, const char *dir) {
    char args[800];
    snprintf(args, sizeof args, "%s '%s'", mode, dir);
    int rc = cfx_test_python("metrics_oracle.py", args);
    CHECK_MSG(rc == 0, "metrics_oracle.py %s exited with %d", mode, rc);
    return rc;
}

/* FID and the trace of the square root, by both routes of src/metrics/fid.c, against the
 * oracle: full rank (more rows than features: the Cholesky route) and singular (fewer: the
 * eigendecomposition route, which the Cholesky one hands over to). */
CFX_TEST(metrics, fid_matches_pytorch_fid_with_scipy_sqrtm) {
    static const int64_t cases[][3] = {{300, 260, 40}, {30, 35, 40}};
    for (int c = 0; c < 2; c++) {
        const char *dir = cfx_test_tmpdir();
        int64_t n1 = cases[c][0], n2 = cases[c][1], d = cases[c][2];
        cfx_tensor *a = features(n1, d, 1 + c, 1.0f, 0.0f), *b = features(n2, d, 7 + c, 1.3f, 0.2f);
        write_pair(dir, a, b);
        double fid = NAN, tr[2] = {NAN, NAN};
        CHECK_OK(cfx_fid(a, b, &fid));
        cfx_fid_stats sa, sb;
        CHECK_OK(cfx_fid_stats_init(&sa, a));
        CHECK_OK(cfx_fid_stats_init(&sb, b));
        for (int route = 0; route < 2; route++)
            CHECK_OK(cfx__fid_trace_sqrt(sa.cov, sb.cov, d, route, &tr[route]));
        /* The same statistics against themselves: 0 up to rounding of terms of size tr(S).
         * A singular S has eigenvalues that are zero up to rounding (1e-16 tr(S)), and their
         * square roots (1e-8) count in the trace: there the tolerance is sqrt(eps)'s. */
        double self = NAN, fid2 = NAN;
        CHECK_OK(cfx_fid_from_stats(&sa, &sa, &self));
        CHECK_OK(cfx_fid_from_stats(&sa, &sb, &fid2));
        CHECK_MSG(fabs(self) < (c == 0 ? 1e-9 : 1e-6) * tr[0], "FID of a set with itself: %g",
                  self);
        CHECK(fid2 == fid);
        if (run_oracle("fid", dir) == 0) {
            check_rel(fid, oracle_value(dir, "fid", "fid"), 1e-4, "FID");
            check_rel(tr[0], oracle_value(dir, "fid", "trace_sqrt"), 1e-6, "trace, route 0");
            check_rel(tr[1], oracle_value(dir, "fid", "trace_sqrt"), 1e-6, "trace, eigen route");
            printf("  n %lld/%lld d %lld: FID %.10g (oracle %.10g)\n", (long long)n1, (long long)n2,
                   (long long)d, fid, oracle_value(dir, "fid", "fid"));
        }
        cfx_fid_stats_deinit(&sa), cfx_fid_stats_deinit(&sb);
        cfx_tensor_free(a), cfx_tensor_free(b);
    }
}

CFX_TEST(metrics, kid_matches_torch_fidelity_on_subsets_drawn_from_the_seed) {
    /* Default subsets of 50 from 130 and 90 rows; and a set smaller than 50, which sets m. */
    static const int64_t cases[][4] = {{130, 90, 32, 5}, {30, 12, 20, 77}};
    for (int c = 0; c < 2; c++) {
        const char *dir = cfx_test_tmpdir();
        int64_t n1 = cases[c][0], n2 = cases[c][1], d = cases[c][2];
        cfx_tensor *a = features(n1, d, 3 + c, 1.0f, 0.0f), *b = features(n2, d, 9 + c, 1.2f, 0.3f);
        write_pair(dir, a, b);
        cfx_kid_options o = {.seed = (uint64_t)cases[c][3]};
        cfx_kid_result k = {0};
        CHECK_OK(cfx_kid(a, b, &o, &k));
        int64_t m = CFX_MIN(50, CFX_MIN(n1, n2));
        CHECK_INT_EQ(k.subsets, 100);
        CHECK_INT_EQ(k.subset_size, m);
        int64_t *ia = malloc((size_t)(100 * m) * sizeof *ia), *ib = malloc((size_t)(100 * m) * 8);
        float *fa = malloc((size_t)(100 * m) * sizeof *fa), *fb = malloc((size_t)(100 * m) * 4);
        CHECK_OK(cfx_kid_subsets(n1, n2, &o, ia, ib));
        for (int64_t i = 0; i < 100 * m; i++) fa[i] = (float)ia[i], fb[i] = (float)ib[i];
        CHECK(oracle_write(dir, "idx_a", 2, (int64_t[]){100, m}, fa));
        CHECK(oracle_write(dir, "idx_b", 2, (int64_t[]){100, m}, fb));
        CHECK(oracle_write(dir, "seed", 1, (int64_t[]){1}, (float[]){(float)cases[c][3]}));
        if (run_oracle("kid", dir) == 0) {
            CHECK_MSG(oracle_value(dir, "kid", "subsets_equal") == 1,
                      "the oracle drew other subsets from seed %lld", (long long)cases[c][3]);
            check_rel(k.mean, oracle_value(dir, "kid", "mean"), 1e-4, "KID mean");
            check_rel(k.std, oracle_value(dir, "kid", "std"), 1e-4, "KID std");
        }
        CHECK(k.std > 0); /* the subsets differ: the deviation is not vacuous */
        free(ia), free(ib), free(fa), free(fb);
        cfx_tensor_free(a), cfx_tensor_free(b);
    }
}

CFX_TEST(metrics, cmmd_matches_the_reference_formula_in_numpy) {
    /* More rows than one tile (512): tiles above the diagonal are counted twice. */
    static const struct {
        int64_t n1, n2, d;
        double sigma, scale;
    } cases[] = {{600, 530, 24, 0, 0}, {40, 70, 8, 3, 50}};
    for (int c = 0; c < 2; c++) {
        const char *dir = cfx_test_tmpdir();
        cfx_tensor *a = features(cases[c].n1, cases[c].d, 21 + c, 1.0f, 0.0f);
        cfx_tensor *b = features(cases[c].n2, cases[c].d, 31 + c, 1.1f, 0.4f);
        write_pair(dir, a, b);
        double sigma = cases[c].sigma ? cases[c].sigma : 10;
        double scale = cases[c].scale ? cases[c].scale : 1000;
        CHECK(oracle_write(dir, "opts", 1, (int64_t[]){2}, (float[]){(float)sigma, (float)scale}));
        double v = NAN;
        cfx_cmmd_options o = {cases[c].sigma, cases[c].scale};
        CHECK_OK(cfx_cmmd(a, b, c ? &o : NULL, &v));
        if (run_oracle("cmmd", dir) == 0)
            check_rel(v, oracle_value(dir, "cmmd", "cmmd"), 1e-9, "CMMD");
        CHECK(v > 0);
        double self = NAN;
        CHECK_OK(cfx_cmmd(a, a, NULL, &self));
        CHECK_MSG(fabs(self) < 1e-9, "CMMD of a set with itself: %g", self);
        cfx_tensor_free(a), cfx_tensor_free(b);
    }
}

CFX_TEST(metrics, cosine_statistics_match_pytorch_and_numpy) {
    const char *dir = cfx_test_tmpdir();
    enum { N = 40, D = 12 };
    cfx_tensor *a = features(N, D, 41, 1.0f, 0.5f), *b = features(N, D, 42, 1.0f, 0.5f);
    for (int j = 0; j < D; j++) a->data[3 * D + j] = 0; /* a zero row: the eps of the formula */
    for (int j = 0; j < D; j++) b->data[5 * D + j] = 2 * a->data[5 * D + j]; /* cos 1 */
    uint8_t sel[N];
    float fsel[N];
    for (int i = 0; i < N; i++) sel[i] = (uint8_t)(i % 3 != 1), fsel[i] = sel[i];
    write_pair(dir, a, b);
    CHECK(oracle_write(dir, "mask", 1, (int64_t[]){N}, fsel));
    double cos[N];
    cfx_cosine_summary s = {0};
    CHECK_OK(cfx_cosine_stats(a, b, sel, cos, &s));
    if (run_oracle("cosine", dir) == 0) {
        CHECK_INT_EQ(s.count, (int64_t)oracle_value(dir, "cosine", "count"));
        check_rel(s.mean, oracle_value(dir, "cosine", "mean"), 1e-12, "mean");
        check_rel(s.std, oracle_value(dir, "cosine", "std"), 1e-12, "std");
        for (int i = 0; i < N; i++) {
            char nm[16];
            snprintf(nm, sizeof nm, "cos%d", i);
            CHECK_NEAR(cos[i], oracle_value(dir, "cosine", nm), 1e-12);
        }
    }
    CHECK(cos[3] == 0);
    CHECK_NEAR(cos[5], 1, 1e-12);
    /* Nothing selected: count 0 and NaN, not a division by zero. */
    memset(sel, 0, sizeof sel);
    CHECK_OK(cfx_cosine_stats(a, b, sel, NULL, &s));
    CHECK_INT_EQ(s.count, 0);
    CHECK(isnan(s.mean) && isnan(s.std));
    /* No selection: every row. */
    CHECK_OK(cfx_cosine_stats(a, b, NULL, NULL, &s));
    CHECK_INT_EQ(s.count, N);
    cfx_tensor_free(a), cfx_tensor_free(b);
}

/* The user-network path: a PyTorch network exported with its feature tensor renamed (an
 * inner tensor), fed 1x28x28 images (resized to its 3x40x40 and repeated to RGB) and 3x40x40
 * ones (no resize), in batches of 3. */
CFX_TEST(metrics, features_of_a_user_network_match_pytorch) {
    const char *dir = cfx_test_tmpdir();
    enum { N = 7 };
    cfx_rng r;
    cfx_rng_init(&r, 12);
    cfx_tensor *grey = cfx_tensor_new(4, (int64_t[]){N, 1, 28, 28});
    cfx_tensor *rgb = cfx_tensor_new(4, (int64_t[]){N, 3, 40, 40});
    cfx_tensor_fill_uniform(grey, &r, 0, 1);
    cfx_tensor_fill_uniform(rgb, &r, 0, 1);
    CHECK(oracle_write(dir, "grey", 4, grey->shape, grey->data));
    CHECK(oracle_write(dir, "rgb", 4, rgb->shape, rgb->data));
    if (run_oracle("features", dir) != 0) goto out;
    char model[800];
    snprintf(model, sizeof model, "%s/net.onnx", dir);
    const int64_t dim = (int64_t)oracle_value(dir, "features", "dim");
    for (int k = 0; k < 2; k++) {
        const cfx_tensor *x = k ? rgb : grey;
        cfx_features_spec sp = {.model = model,
                                .tensor = "pool_features",
                                .c = (int)x->shape[1],
                                .h = (int)x->shape[2],
                                .w = (int)x->shape[3],
                                .batch = 3};
        cfx_features *f = cfx_features_new(&sp);
        CHECK_MSG(f != NULL, "cfx_features_new: %s", cfx_last_error());
        if (!f) continue;
        CHECK_STR_EQ(cfx_features_label(f), "net");
        CHECK_INT_EQ(cfx_features_dim(f), dim);
        cfx_tensor *out = cfx_tensor_new(2, (int64_t[]){N, dim});
        CHECK_OK(cfx_features_run(f, x, out));
        float *want = oracle_read(dir, k ? "feat_rgb" : "feat_grey", N * dim);
        CHECK(want != NULL);
        if (want && !CHECK_ARRAY_NEAR(out->data, want, (size_t)(N * dim), 1e-5, 1e-5))
            printf("  (%s images)\n", k ? "3x40x40" : "1x28x28");
        double spread = 0; /* the images give different features: the check is not vacuous */
        for (int64_t i = 0; i < dim; i++) spread += fabs(out->data[i] - out->data[dim + i]);
        CHECK(spread > 1e-3);
        free(want);
        cfx_tensor_free(out);
        cfx_features_free(f);
    }
    /* A label given; a network with a grey input; a tensor it lacks. */
    cfx_features_spec sp = {.model = model, .tensor = "pool_features", .c = 1, .h = 28, .w = 28};
    sp.label = "mine";
    cfx_features *f = cfx_features_new(&sp);
    CHECK(f && !strcmp(cfx_features_label(f), "mine"));
    /* Images of another shape than the spec said. */
    CHECK_ERR(cfx_features_run(f, rgb, NULL), CFX_ESHAPE);
    cfx_features_free(f);
    sp.label = NULL;
    snprintf(model, sizeof model, "%s/grey_net.onnx", dir);
    CHECK(cfx_features_new(&sp) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "grey_net.onnx") && strstr(cfx_last_error(), "(N, 3, H, W)"),
              "message: %s", cfx_last_error());
    snprintf(model, sizeof model, "%s/net.onnx", dir);
    sp.tensor = "no_such_tensor";
    CHECK(cfx_features_new(&sp) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "no_such_tensor"), "message: %s", cfx_last_error());
out:
    cfx_tensor_free(grey), cfx_tensor_free(rgb);
}

/* The classifier's own features, through a competency: the tensor the competency computes,
 * labelled "classifier". */
CFX_TEST(metrics, features_of_the_classifier_come_from_the_competency) {
    const char *dir = cfx_test_tmpdir();
    tiny_models_write(dir, &(tiny_models){0});
    char c[800], e[800], dd[800];
    tiny_model_paths(dir, "classifier.onnx", c, e, dd);
    cfx_competency *cm = cfx_competency_new(
        &(cfx_competency_models){.classifier = c, .encoder = e, .decoder = dd}, 4);
    CHECK_MSG(cm != NULL, "%s", cfx_last_error());
    if (!cm) return;
    cfx_features *f = cfx_features_new(&(cfx_features_spec){.competency = cm});
    CHECK(f != NULL);
    CHECK_STR_EQ(cfx_features_label(f), "classifier");
    CHECK_INT_EQ(cfx_features_dim(f), TINY_F);
    cfx_tensor *x = cfx_tensor_new(4, (int64_t[]){6, TINY_C, TINY_H, TINY_W});
    cfx_rng r;
    cfx_rng_init(&r, 4);
    cfx_tensor_fill_uniform(x, &r, 0, 1);
    cfx_tensor *out = cfx_tensor_new(2, (int64_t[]){6, TINY_F});
    float want[6 * TINY_F];
    CHECK_OK(cfx_features_run(f, x, out));
    CHECK_OK(cfx_competency_score(cm, x, &(cfx_competency_scores){.features = want}, NULL));
    CHECK(memcmp(out->data, want, sizeof want) == 0);
    /* A NaN pixel is refused by name. */
    x->data[2 * TINY_C * TINY_H * TINY_W + 5] = NAN;
    CHECK_ERR(cfx_features_run(f, x, out), CFX_ENUMERIC);
    CHECK_MSG(strstr(cfx_last_error(), "image 2"), "message: %s", cfx_last_error());
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_features_free(f);
    /* Neither or both sources. */
    CHECK(cfx_features_new(&(cfx_features_spec){0}) == NULL);
    CHECK(cfx_features_new(&(cfx_features_spec){.competency = cm, .model = c}) == NULL);
    CHECK(cfx_features_new(&(cfx_features_spec){.model = c, .c = 3, .h = 6, .w = 6}) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "--fid-features"), "message: %s", cfx_last_error());
    cfx_competency_free(cm);
}

/* Fewer images than a metric needs, mismatched feature dimensions, NaN features, a subset
 * larger than a set: each refused with a message that names it. */
CFX_TEST(metrics, bad_input_is_refused_with_a_message) {
    cfx_tensor *a = features(10, 6, 1, 1, 0), *b = features(8, 6, 2, 1, 0);
    cfx_tensor *one = features(1, 6, 3, 1, 0), *wide = features(8, 7, 4, 1, 0);
    cfx_tensor *cube = cfx_tensor_new(3, (int64_t[]){4, 2, 3});
    double v;
    cfx_kid_result k;
    cfx_cosine_summary cs;
    CHECK_ERR(cfx_fid(a, one, &v), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), "1 image") && strstr(cfx_last_error(), "at least 2"),
              "message: %s", cfx_last_error());
    CHECK_ERR(cfx_kid(one, b, NULL, &k), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), "KID"), "message: %s", cfx_last_error());
    CHECK_ERR(cfx_kid(a, b, &(cfx_kid_options){.subset_size = 9}, &k), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), "subset"), "message: %s", cfx_last_error());
    CHECK_ERR(cfx_kid(a, b, &(cfx_kid_options){.subsets = -1}, &k), CFX_EINVAL);
    CHECK_ERR(cfx_fid(a, wide, &v), CFX_ESHAPE);
    CHECK_MSG(strstr(cfx_last_error(), "6 and 7"), "message: %s", cfx_last_error());
    CHECK_ERR(cfx_kid(a, wide, NULL, &k), CFX_ESHAPE);
    CHECK_ERR(cfx_cmmd(a, wide, NULL, &v), CFX_ESHAPE);
    CHECK_ERR(cfx_cosine_stats(a, b, NULL, NULL, &cs), CFX_ESHAPE);
    CHECK_ERR(cfx_fid(a, cube, &v), CFX_ESHAPE);
    CHECK_MSG(strstr(cfx_last_error(), "not a matrix"), "message: %s", cfx_last_error());
    CHECK_ERR(cfx_fid(a, NULL, &v), CFX_EINVAL);
    CHECK_ERR(cfx_cmmd(a, b, &(cfx_cmmd_options){.sigma = -1}, &v), CFX_EINVAL);
    b->data[3 * 6 + 4] = NAN;
    CHECK_ERR(cfx_fid(a, b, &v), CFX_ENUMERIC);
    CHECK_MSG(strstr(cfx_last_error(), "NaN at image 3, feature 4"), "message: %s",
              cfx_last_error());
    CHECK_ERR(cfx_kid(a, b, NULL, &k), CFX_ENUMERIC);
    CHECK_ERR(cfx_cmmd(a, b, NULL, &v), CFX_ENUMERIC);
    a->data[0] = INFINITY;
    CHECK_ERR(cfx_cosine_stats(a, a, NULL, NULL, &cs), CFX_ENUMERIC);
    CHECK_MSG(strstr(cfx_last_error(), "infinity"), "message: %s", cfx_last_error());
    cfx_fid_stats s = {0};
    CHECK_ERR(cfx_fid_from_stats(&s, &s, &v), CFX_EINVAL);
    cfx_fid_stats_deinit(&s);
    cfx_tensor_free(a), cfx_tensor_free(b), cfx_tensor_free(one), cfx_tensor_free(wide);
    cfx_tensor_free(cube);
}

/* Every allocation of FID (both routes: a singular set takes the eigendecomposition), KID, CMMD
 * and the cosine statistics failed in turn: CFX_ENOMEM, never a leak, until none fails. */
CFX_TEST(metrics, allocation_failures_are_reported_without_leaks) {
    cfx_tensor *a = features(10, 6, 1, 1, 0), *b = features(8, 6, 2, 1, 0);
    cfx_tensor *few = features(4, 6, 3, 1, 0); /* 4 rows, 6 features: a singular covariance */
    int failures = 0, limit = 500;
    for (int k = 1; k <= limit; k++) {
        cfx_test_alloc_begin(k);
        double v;
        cfx_kid_result kr;
        cfx_cosine_summary cs;
        cfx_status st = cfx_fid(a, b, &v);
        if (st == CFX_OK) st = cfx_fid(few, b, &v);
        if (st == CFX_OK) st = cfx_kid(a, b, NULL, &kr);
        if (st == CFX_OK) st = cfx_cmmd(a, b, NULL, &v);
        if (st == CFX_OK) st = cfx_cosine_stats(a, a, NULL, NULL, &cs);
        long leaks = cfx_test_alloc_end();
        CHECK_MSG(leaks == 0, "%ld blocks leaked when allocation %d failed", leaks, k);
        CHECK_MSG(st == CFX_OK || st == CFX_ENOMEM, "allocation %d failed: %s (%s)", k,
                  cfx_status_str(st), cfx_last_error());
        if (st == CFX_OK) break;
        failures++;
    }
    CHECK(failures > 10 && failures < limit);
    cfx_tensor_free(a), cfx_tensor_free(b), cfx_tensor_free(few);
}
