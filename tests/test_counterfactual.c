/* test_counterfactual.c - the counterfactual methods (src/counterfactual/): each raises rho on a
 * small model; IGD's and FGD's first updates against Adam written out here from gradients that
 * come from the competency API (and central differences for the feature term); the two stopping
 * rules by their definitions; LNN against a brute-force search; Reco against decode(encode(X));
 * bad input. */
#include "oracle_io.h"
#include "test.h"
#include "tiny_models.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

enum { C = TINY_C, H = TINY_H, W = TINY_W, K = TINY_K, D = TINY_D, F = TINY_F, IMG = C * H * W };

/* The tiny models (tiny_models.h) with the classifier's last weights scaled by 15, so that it
 * is confident on some images and not on others, and the decoder's by 4 so that decodings
 * vary: rho of random images then spans (0, 1) and the methods can raise it. */
static void write_models(const char *dir) {
    tiny_models_write(dir, &(tiny_models){.head_scale = 15, .decoder_scale = 4});
}

/* The models with a calibration that puts the reconstruction term P_c of the images below
 * near one half, so that rho depends on the autoencoder as well as on the softmax. */
static cfx_competency *open_models(int64_t batch) {
    const char *dir = cfx_test_tmpdir();
    write_models(dir);
    char c[800], e[800], d[800];
    tiny_model_paths(dir, "classifier.onnx", c, e, d);
    cfx_competency_models m = {.classifier = c, .encoder = e, .decoder = d};
    cfx_competency *cm = cfx_competency_new(&m, batch);
    CHECK_MSG(cm != NULL, "cfx_competency_new: %s", cfx_last_error());
    if (!cm) return NULL;
    cfx_tensor *x = tiny_random_images(64, 100);
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
    CHECK_ERR(cfx_cf_distance_parse("cosine", &d), CFX_EINVAL);
}

/* The calibration set for LNN: 64 random images' codes, scored by rho of their decoding (so
 * that a candidate above the threshold gives a counterfactual above it). */
static void lnn_candidates(cfx_competency *cm, cfx_tensor **lat, cfx_tensor **sc) {
    cfx_tensor *x = tiny_random_images(64, 200);
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
    cfx_tensor *x = tiny_random_images(N, 1), *out = cfx_tensor_new(4, x->shape);
    cfx_tensor *lat = NULL, *sc = NULL;
    lnn_candidates(cm, &lat, &sc);
    float rho0[N], rho1[N];
    score(cm, x, rho0, NULL);
    /* The reference's distance is LPIPS: here the built-in one, on the classifier's conv. */
    cfx_distance *lpips = cfx_distance_new(cm, CFX_CF_DISTANCE_LPIPS, NULL, 5);
    CHECK_MSG(lpips != NULL, "%s", cfx_last_error());
    double dist[N];
    for (int m = 0; lpips && m < CFX_CF_COUNT; m++) {
        cfx_cf *cf = cfx_cf_new(cm, m, NULL, 8, lat, sc); /* batches of 8, 8, 8, 8 */
        CHECK_MSG(cf != NULL, "%s", cfx_last_error());
        if (!cf) continue;
        CHECK_NEAR(cfx_cf_threshold(cf), 0.9, 0);
        CHECK_STR_EQ(cfx_cf_distance_label(cf), "LPIPS[classifier]");
        cfx_cf_record rec[N];
        CHECK_OK(cfx_cf_run(cf, x, out, rec));
        /* rho after is rho of the image returned, scored afresh; the distance is LPIPS's. */
        score(cm, out, rho1, NULL);
        CHECK_OK(cfx_distance_run(lpips, x, out, dist));
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
            CHECK_NEAR(r->distance, dist[i], 1e-7 * (1 + dist[i]));
            CHECK_STR_EQ(r->failure, "");
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
    cfx_distance_free(lpips);
    cfx_tensor_free(lat), cfx_tensor_free(sc);
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

/* ---------------------------------------------------------------- Adam by hand --- */

/* Update t (from 1) of torch.optim.Adam with the default betas and eps, in double. */
static void adam_by_hand(double *x, double *m, double *v, const double *g, int64_t n, int t,
                         double lr) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int64_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        x[i] -= lr / (1 - pow(b1, t)) * m[i] / (sqrt(v[i]) / sqrt(1 - pow(b2, t)) + eps);
    }
}

/* The counterfactuals of x after exactly `iters` updates (a threshold no image reaches). */
static void run_updates(cfx_competency *cm, cfx_cf_method method, cfx_cf_vector vector,
                        double gamma, double lr, int iters, const cfx_tensor *x, cfx_tensor *out) {
    cfx_cf_options o = {.gamma = gamma,
                        .adam = {.lr = (float)lr},
                        .threshold = 0.999,
                        .max_iter = iters,
                        .distance = CFX_CF_DISTANCE_L2,
                        .vector = vector,
                        .stop = CFX_CF_STOP_PER_BATCH};
    cfx_cf *cf = cfx_cf_new(cm, method, &o, 4, NULL, NULL);
    CHECK_MSG(cf != NULL, "%s", cfx_last_error());
    if (!cf) return;
    cfx_cf_record rec[8];
    CHECK_OK(cfx_cf_run(cf, x, out, rec));
    for (int64_t i = 0; i < x->shape[0]; i++) CHECK_INT_EQ(rec[i].steps, iters);
    cfx_cf_free(cf);
}

static double max_diff(const double *a, const float *b, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return worst;
}

/* d term / d b of FGD's and LGD's vector terms between a (the reference) and b, n floats each,
 * by formula: cos a / (|a| |b|) - cos b / |b|^2, sign(b - a) / n, (b - a) / |b - a|. */
static void vector_term_gradient(cfx_cf_vector kind, const float *a, const double *b, int64_t n,
                                 double *out) {
    double dot = 0, na = 0, nb = 0, nd = 0;
    for (int64_t k = 0; k < n; k++) {
        dot += a[k] * b[k], na += a[k] * a[k], nb += b[k] * b[k];
        nd += (b[k] - a[k]) * (b[k] - a[k]);
    }
    na = sqrt(na), nb = sqrt(nb), nd = sqrt(nd);
    for (int64_t k = 0; k < n; k++) {
        double e = b[k] - a[k];
        if (kind == CFX_CF_VECTOR_L1)
            out[k] = (double)((e > 0) - (e < 0)) / (double)n;
        else if (kind == CFX_CF_VECTOR_L2)
            out[k] = nd > 0 ? e / nd : 0;
        else
            out[k] = a[k] / (na * nb) - dot / (na * nb) * b[k] / (nb * nb);
    }
}

/* The gradient of sum_i term(f(X_i), f(X'_i)) with respect to X': the chain rule, with
 * d term / d f(X') by formula (v) and v . f(X') differentiated by central differences, from the
 * competency's feature outputs (independent of the counterfactual graph). */
static void feature_term_gradient(cfx_competency *cm, cfx_cf_vector kind, const cfx_tensor *x0,
                                  const cfx_tensor *x1, double *grad) {
    const int64_t n = x0->shape[0];
    const float h = 1e-2f;
    float *f0 = malloc((size_t)(n * F) * sizeof *f0), *f1 = malloc((size_t)(n * F) * sizeof *f1),
          *f = malloc(2 * IMG * F * sizeof *f);
    CHECK_OK(cfx_competency_score(cm, x0, &(cfx_competency_scores){.features = f0}, NULL));
    CHECK_OK(cfx_competency_score(cm, x1, &(cfx_competency_scores){.features = f1}, NULL));
    cfx_tensor *probe = cfx_tensor_new(4, (int64_t[]){2 * IMG, C, H, W});
    for (int64_t i = 0; i < n; i++) {
        double b[F], v[F];
        for (int k = 0; k < F; k++) b[k] = f1[i * F + k];
        vector_term_gradient(kind, f0 + i * F, b, F, v);
        for (int j = 0; j < IMG; j++) {
            float *up = probe->data + (2 * j) * IMG, *down = up + IMG;
            memcpy(up, x1->data + i * IMG, IMG * sizeof(float));
            memcpy(down, up, IMG * sizeof(float));
            up[j] += h, down[j] -= h;
        }
        CHECK_OK(cfx_competency_score(cm, probe, &(cfx_competency_scores){.features = f}, NULL));
        for (int j = 0; j < IMG; j++) {
            double s = 0;
            for (int k = 0; k < F; k++) s += v[k] * (f[(2 * j) * F + k] - f[(2 * j + 1) * F + k]);
            grad[i * IMG + j] = s / (2.0 * h);
        }
    }
    cfx_tensor_free(probe);
    free(f0), free(f1), free(f);
}

/* IGD and FGD, two updates each, against Adam by hand on the objective's gradient: the rho
 * part from the competency API, the distance part by formula (IGD, L2: (X' - X) / |X' - X|,
 * 0 at X' = X) or by the chain rule through central differences (FGD: the features' cosine,
 * l1 or l2 distance, whose gradient is 0 at X' = X, so the second update is the one that sees
 * it). A similarity is subtracted from -rho, a distance added. */
static void check_two_updates(cfx_cf_method method, cfx_cf_vector vector) {
    enum { N = 3 };
    cfx_competency *cm = open_models(4);
    if (!cm) return;
    const double lr = 1e-2, gamma = method == CFX_CF_IGD ? 0.5 : 2.0;
    cfx_tensor *x = tiny_random_images(N, 1), *out = cfx_tensor_new(4, x->shape);
    cfx_tensor *x1 = cfx_tensor_new(4, x->shape);
    double *X = calloc(N * IMG, sizeof *X), *M = calloc(N * IMG, sizeof *M),
           *V = calloc(N * IMG, sizeof *V), *G = calloc(N * IMG, sizeof *G),
           *T = calloc(N * IMG, sizeof *T);
    float g[N * IMG], rho[N];
    for (int i = 0; i < N * IMG; i++) X[i] = x->data[i];
    /* Update 1: the distance term's gradient is 0 at X' = X. */
    score(cm, x, rho, g);
    for (int i = 0; i < N * IMG; i++) G[i] = -g[i];
    adam_by_hand(X, M, V, G, N * IMG, 1, lr);
    run_updates(cm, method, vector, gamma, lr, 1, x, out);
    double err1 = max_diff(X, out->data, N * IMG);
    CHECK_MSG(err1 < 1e-6, "%s update 1: worst difference %.3g", cfx_cf_method_name(method), err1);
    /* Update 2 from the hand-made X1. */
    for (int i = 0; i < N * IMG; i++) x1->data[i] = (float)X[i];
    score(cm, x1, rho, g);
    if (method == CFX_CF_IGD) {
        for (int i = 0; i < N; i++) {
            double norm = 0;
            for (int j = 0; j < IMG; j++) norm += pow(X[i * IMG + j] - x->data[i * IMG + j], 2);
            for (int j = 0; j < IMG; j++)
                T[i * IMG + j] = (X[i * IMG + j] - x->data[i * IMG + j]) / sqrt(norm);
        }
    } else {
        feature_term_gradient(cm, vector, x, x1, T);
        bool similarity = vector == CFX_CF_VECTOR_DEFAULT || vector == CFX_CF_VECTOR_COS;
        for (int i = 0; i < N * IMG; i++) T[i] = similarity ? -T[i] : T[i];
    }
    for (int i = 0; i < N * IMG; i++) G[i] = -g[i] + gamma * T[i];
    /* Without the distance term, for comparison: the check below must be able to see it. */
    double *Xn = malloc(N * IMG * sizeof *Xn), *Mn = malloc(N * IMG * sizeof *Mn),
           *Vn = malloc(N * IMG * sizeof *Vn), *Gn = malloc(N * IMG * sizeof *Gn);
    memcpy(Xn, X, N * IMG * sizeof *X), memcpy(Mn, M, N * IMG * sizeof *M);
    memcpy(Vn, V, N * IMG * sizeof *V);
    for (int i = 0; i < N * IMG; i++) Gn[i] = -g[i];
    adam_by_hand(X, M, V, G, N * IMG, 2, lr);
    adam_by_hand(Xn, Mn, Vn, Gn, N * IMG, 2, lr);
    run_updates(cm, method, vector, gamma, lr, 2, x, out);
    double err2 = max_diff(X, out->data, N * IMG), term = 0;
    for (int i = 0; i < N * IMG; i++) term = fmax(term, fabs(X[i] - Xn[i]));
    double tol = method == CFX_CF_IGD ? 2e-6 : 5e-5; /* FGD: float features over a 1e-2 step */
    printf("  (%s %s update 2: worst difference %.3g; the term moves pixels by up to %.3g)\n",
           cfx_cf_method_name(method),
           method == CFX_CF_IGD ? "l2 distance" : cfx_cf_vector_name(vector), err2, term);
    CHECK_MSG(err2 < tol, "%s update 2: worst difference %.3g", cfx_cf_method_name(method), err2);
    CHECK(term > 20 * tol);
    free(X), free(M), free(V), free(G), free(T), free(Xn), free(Mn), free(Vn), free(Gn);
    cfx_tensor_free(x), cfx_tensor_free(x1), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

CFX_TEST(counterfactual, igd_l2_updates_are_adam_on_its_objective) {
    check_two_updates(CFX_CF_IGD, CFX_CF_VECTOR_DEFAULT);
}

CFX_TEST(counterfactual, fgd_updates_are_adam_on_its_objective_for_each_vector_term) {
    for (int v = 0; v < CFX_CF_VECTOR_COUNT; v++) check_two_updates(CFX_CF_FGD, v);
}

/* ------------------------------------------------------------------- stopping --- */

/* Copies images idx[0..n) of x into a new batch. */
static cfx_tensor *pick(const cfx_tensor *x, const int *idx, int n) {
    cfx_tensor *t = cfx_tensor_new(4, (int64_t[]){n, C, H, W});
    for (int i = 0; i < n; i++)
        memcpy(t->data + i * IMG, x->data + idx[i] * IMG, IMG * sizeof(float));
    return t;
}

/* Runs IGD with the given options and batch on x. */
static void run_igd(cfx_competency *cm, const cfx_cf_options *o, int64_t batch, const cfx_tensor *x,
                    cfx_tensor *out, cfx_cf_record *rec) {
    cfx_cf *cf = cfx_cf_new(cm, CFX_CF_IGD, o, batch, NULL, NULL);
    CHECK_MSG(cf != NULL, "%s", cfx_last_error());
    if (cf) CHECK_OK(cfx_cf_run(cf, x, out, rec));
    cfx_cf_free(cf);
}

CFX_TEST(counterfactual, stopping_per_image_and_per_batch_follow_their_definitions) {
    enum { N = 32 };
    cfx_competency *cm = open_models(N);
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(N, 1), *out = cfx_tensor_new(4, x->shape);
    cfx_cf_record all[N];
    const cfx_cf_options l2 = {.distance = CFX_CF_DISTANCE_L2};
    run_igd(cm, &l2, N, x, out, all);
    /* A: competent from the start; B: passes after a few updates; L: never passes. */
    int a = -1, b = -1, l = -1;
    for (int i = 0; i < N; i++) {
        if (a < 0 && all[i].rho_before >= 0.9) a = i;
        if (b < 0 && all[i].success && all[i].steps >= 3) b = i;
        if (l < 0 && !all[i].success) l = i;
    }
    CHECK(a >= 0 && b >= 0 && l >= 0);
    if (a < 0 || b < 0 || l < 0) goto done;
    const int sb = all[b].steps;
    cfx_cf_record rec[3], one[1];
    cfx_tensor *abl = pick(x, (int[]){a, b, l}, 3), *y = cfx_tensor_new(4, abl->shape);
    cfx_tensor *xb = pick(x, (int[]){b}, 1), *yb = cfx_tensor_new(4, xb->shape);

    /* Per image: A is never updated, B stops when it passes, L runs to the cap, and each
     * image's result is what it gets alone. */
    run_igd(cm, &l2, 3, abl, y, rec);
    CHECK_INT_EQ(rec[0].steps, 0);
    CHECK(memcmp(y->data, abl->data, IMG * sizeof(float)) == 0);
    CHECK_INT_EQ(rec[1].steps, sb);
    CHECK_INT_EQ(rec[2].steps, 100);
    CHECK(rec[1].success && !rec[2].success);
    CHECK_ARRAY_NEAR(y->data + IMG, out->data + b * IMG, IMG, 0, 1e-6);
    CHECK_ARRAY_NEAR(y->data + 2 * IMG, out->data + l * IMG, IMG, 0, 1e-6);
    run_igd(cm, &l2, 1, xb, yb, one);
    CHECK_INT_EQ(one[0].steps, sb);
    CHECK_ARRAY_NEAR(y->data + IMG, yb->data, IMG, 0, 1e-6);

    /* Per batch, A and B: both are updated until both pass, after B's sb updates; A's result
     * is sb plain Adam updates (a run that no threshold stops). */
    cfx_cf_options pb = {.distance = CFX_CF_DISTANCE_L2, .stop = CFX_CF_STOP_PER_BATCH};
    cfx_tensor *ab = pick(x, (int[]){a, b}, 2), *yab = cfx_tensor_new(4, ab->shape);
    run_igd(cm, &pb, 2, ab, yab, rec);
    CHECK_INT_EQ(rec[0].steps, sb);
    CHECK_INT_EQ(rec[1].steps, sb);
    CHECK(rec[0].distance > 0);
    cfx_tensor *xa = pick(x, (int[]){a}, 1), *ya = cfx_tensor_new(4, xa->shape);
    cfx_cf_options fixed = {.distance = CFX_CF_DISTANCE_L2, .threshold = 0.999, .max_iter = sb};
    run_igd(cm, &fixed, 1, xa, ya, one);
    CHECK_INT_EQ(one[0].steps, sb);
    CHECK_ARRAY_NEAR(yab->data, ya->data, IMG, 0, 1e-6);
    CHECK_ARRAY_NEAR(yab->data + IMG, yb->data, IMG, 0, 1e-6);
    /* Per batch with L: nobody stops before the cap. */
    run_igd(cm, &pb, 3, abl, y, rec);
    for (int i = 0; i < 3; i++) CHECK_INT_EQ(rec[i].steps, 100);
    CHECK(rec[0].success && rec[1].success && !rec[2].success);
    cfx_tensor_free(ab), cfx_tensor_free(yab), cfx_tensor_free(xa), cfx_tensor_free(ya);
    cfx_tensor_free(abl), cfx_tensor_free(y), cfx_tensor_free(xb), cfx_tensor_free(yb);
done:
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

/* ------------------------------------------------------------------ Reco, LNN --- */

CFX_TEST(counterfactual, reco_is_the_reconstruction) {
    enum { N = 5 };
    cfx_competency *cm = open_models(2);
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(N, 3), *out = cfx_tensor_new(4, x->shape);
    cfx_cf_options l2 = {.distance = CFX_CF_DISTANCE_L2};
    cfx_cf *cf = cfx_cf_new(cm, CFX_CF_RECO, &l2, 2, NULL, NULL); /* batches of 2, 2, 1 */
    CHECK_MSG(cf != NULL, "%s", cfx_last_error());
    if (!cf) goto done;
    cfx_cf_record rec[N];
    CHECK_OK(cfx_cf_run(cf, x, out, rec));
    float z[N * D], rho[N], want[N * IMG];
    CHECK_OK(cfx_competency_score(cm, x, &(cfx_competency_scores){.latent = z}, NULL));
    score_codes(cm, z, N, rho, want);
    CHECK_ARRAY_NEAR(out->data, want, N * IMG, 0, 0);
    for (int i = 0; i < N; i++) {
        CHECK(rec[i].rho_after == rho[i]);
        CHECK_INT_EQ(rec[i].steps, 0);
        double d = 0;
        for (int j = 0; j < IMG; j++) d += pow((double)want[i * IMG + j] - x->data[i * IMG + j], 2);
        CHECK_NEAR(rec[i].distance, sqrt(d), 1e-9);
    }
    cfx_cf_free(cf);
done:
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

/* The nearest row of lat among those with score > thr, by brute force (lower row on a tie),
 * under each vector term: the L1 sum (default; l1 reports it divided by D), the Euclidean
 * distance, the largest cosine. *term gets the value the record reports. */
static int64_t brute_nearest(cfx_cf_vector kind, const float *q, const cfx_tensor *lat,
                             const cfx_tensor *sc, double thr, double *term) {
    int64_t best = -1;
    double best_s = INFINITY, qn = 0;
    for (int k = 0; k < D; k++) qn += (double)q[k] * q[k];
    qn = fmax(sqrt(qn), 1e-8);
    for (int64_t r = 0; r < lat->shape[0]; r++) {
        if (!(sc->data[r] > thr)) continue;
        const float *c = lat->data + r * D;
        double s = 0, cn = 0;
        for (int k = 0; k < D; k++) {
            double e = (double)q[k] - (double)c[k];
            s += kind == CFX_CF_VECTOR_L2    ? e * e
                 : kind == CFX_CF_VECTOR_COS ? (double)q[k] * (double)c[k]
                                             : fabs(e);
            cn += (double)c[k] * c[k];
        }
        if (kind == CFX_CF_VECTOR_COS) s = -s / (qn * fmax(sqrt(cn), 1e-8));
        if (s < best_s) best_s = s, best = r;
    }
    *term = kind == CFX_CF_VECTOR_L1    ? best_s / D
            : kind == CFX_CF_VECTOR_L2  ? sqrt(best_s)
            : kind == CFX_CF_VECTOR_COS ? -best_s
                                        : best_s;
    return best;
}

CFX_TEST(counterfactual, lnn_finds_the_nearest_candidate_above_the_threshold) {
    enum { N = 10, M = 700 };
    cfx_competency *cm = open_models(4);
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(N, 4), *out = cfx_tensor_new(4, x->shape);
    float z[N * D];
    CHECK_OK(cfx_competency_score(cm, x, &(cfx_competency_scores){.latent = z}, NULL));
    /* 700 random candidates (three blocks of 256), scores uniform in [0, 1]. Image 0's own code
     * is row 3 with a score below the threshold (not eligible), and rows 500 and 40 (40
     * eligible, distance 0: the lower row wins the tie). */
    cfx_tensor *lat = cfx_tensor_new(2, (int64_t[]){M, D}), *sc = cfx_tensor_new(1, (int64_t[]){M});
    cfx_rng r;
    cfx_rng_init(&r, 11);
    cfx_tensor_fill_uniform(lat, &r, -1.0f, 1.0f);
    cfx_tensor_fill_uniform(sc, &r, 0.0f, 1.0f);
    memcpy(lat->data + 3 * D, z, D * sizeof(float));
    memcpy(lat->data + 40 * D, z, D * sizeof(float));
    memcpy(lat->data + 500 * D, z, D * sizeof(float));
    sc->data[3] = 0.5f, sc->data[40] = 0.95f, sc->data[500] = 0.97f;
    const int64_t blocks[] = {0, 7, 1, 100000};
    for (int v = 0; v < CFX_CF_VECTOR_COUNT; v++)
        for (int bi = 0; bi < 4; bi++) {
            if (v != CFX_CF_VECTOR_DEFAULT && bi != 1) continue; /* every block size once */
            cfx_cf_options o = {.lnn_block = blocks[bi], .vector = v};
            cfx_cf *cf = cfx_cf_new(cm, CFX_CF_LNN, &o, 4, lat, sc); /* batches of 4, 4, 2 */
            CHECK_MSG(cf != NULL, "%s", cfx_last_error());
            if (!cf) continue;
            cfx_cf_record rec[N];
            CHECK_OK(cfx_cf_run(cf, x, out, rec));
            int differ = 0;
            for (int i = 0; i < N; i++) {
                double t, t1;
                int64_t want = brute_nearest(v, z + i * D, lat, sc, 0.9, &t);
                differ +=
                    want != brute_nearest(CFX_CF_VECTOR_DEFAULT, z + i * D, lat, sc, 0.9, &t1);
                CHECK_MSG(rec[i].neighbour == want,
                          "%s, block %lld, image %d: row %lld, brute force %lld",
                          cfx_cf_vector_name(v), (long long)blocks[bi], i,
                          (long long)rec[i].neighbour, (long long)want);
                CHECK_MSG(rec[i].vector_term == t, "%s: term %.17g, brute force %.17g",
                          cfx_cf_vector_name(v), rec[i].vector_term, t);
                float rho, dec[IMG];
                score_codes(cm, lat->data + want * D, 1, &rho, dec);
                CHECK_ARRAY_NEAR(out->data + i * IMG, dec, IMG, 0, 0);
                CHECK(rec[i].rho_after == rho);
            }
            CHECK_INT_EQ(rec[0].neighbour, 40);
            /* l1 chooses as the default does; l2 and cos choose otherwise for some image. */
            if (v == CFX_CF_VECTOR_L1) CHECK_INT_EQ(differ, 0);
            if (v == CFX_CF_VECTOR_L2 || v == CFX_CF_VECTOR_COS)
                CHECK_MSG(differ > 0, "%s chose as L1 for every image", cfx_cf_vector_name(v));
            cfx_cf_free(cf);
        }
    cfx_tensor_free(lat), cfx_tensor_free(sc);
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

/* ------------------------------------------------------------------ bad input --- */

CFX_TEST(counterfactual, bad_input_gives_clear_errors) {
    cfx_competency *cm = open_models(2);
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(2, 5), *out = cfx_tensor_new(4, x->shape);
    cfx_tensor *grey = cfx_tensor_new(4, (int64_t[]){2, 1, H, W});
    cfx_cf *cf = cfx_cf_new(cm, CFX_CF_FGD, NULL, 2, NULL, NULL);
    CHECK_MSG(cf != NULL, "%s", cfx_last_error());
    if (cf) {
        cfx_cf_record rec[2];
        CHECK_ERR(cfx_cf_run(cf, grey, out, rec), CFX_ESHAPE);
        CHECK_MSG(strstr(cfx_last_error(), "fgd") && strstr(cfx_last_error(), "(2, 1, 6, 6)") &&
                      strstr(cfx_last_error(), "(N, 3, 6, 6)"),
                  "got: %s", cfx_last_error());
        CHECK_ERR(cfx_cf_run(cf, x, grey, rec), CFX_EINVAL);
        x->data[IMG + 7] = NAN;
        CHECK_ERR(cfx_cf_run(cf, x, out, rec), CFX_ENUMERIC);
        CHECK_MSG(strstr(cfx_last_error(), "images 0..1") && strstr(cfx_last_error(), "input 1"),
                  "got: %s", cfx_last_error());
        cfx_cf_free(cf);
    }
    /* LNN: no candidates; none above the threshold; mismatched scores. */
    CHECK(cfx_cf_new(cm, CFX_CF_LNN, NULL, 2, NULL, NULL) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "calib_latents.npy"), "got: %s", cfx_last_error());
    cfx_tensor *lat = cfx_tensor_new(2, (int64_t[]){5, D}), *sc = cfx_tensor_new(1, (int64_t[]){5});
    cfx_tensor_fill(sc, 0.5f);
    sc->data[2] = 0.75f; /* at the threshold, not above it */
    cfx_cf_options at = {.threshold = 0.75};
    CHECK(cfx_cf_new(cm, CFX_CF_LNN, &at, 2, lat, sc) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "none of the 5") && strstr(cfx_last_error(), "0.75"),
              "got: %s", cfx_last_error());
    cfx_tensor *sc4 = cfx_tensor_new(1, (int64_t[]){4});
    CHECK(cfx_cf_new(cm, CFX_CF_LNN, NULL, 2, lat, sc4) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "(5, 5)") && strstr(cfx_last_error(), "(4)"), "got: %s",
              cfx_last_error());
    /* Options out of range; a competency without a calibration. */
    CHECK(cfx_cf_new(cm, CFX_CF_IGD, &(cfx_cf_options){.threshold = 2}, 2, NULL, NULL) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "threshold"), "got: %s", cfx_last_error());
    char c[800], e[800], d[800];
    const char *dir = cfx_test_tmpdir();
    write_models(dir);
    tiny_model_paths(dir, "classifier.onnx", c, e, d);
    cfx_competency *raw = cfx_competency_new(
        &(cfx_competency_models){.classifier = c, .encoder = e, .decoder = d}, 2);
    CHECK(raw != NULL);
    if (raw) {
        CHECK(cfx_cf_new(raw, CFX_CF_IGD, NULL, 2, NULL, NULL) == NULL);
        CHECK_MSG(strstr(cfx_last_error(), "igd") && strstr(cfx_last_error(), "calibration"),
                  "got: %s", cfx_last_error());
    }
    cfx_competency_free(raw);
    cfx_tensor_free(lat), cfx_tensor_free(sc), cfx_tensor_free(sc4);
    cfx_tensor_free(x), cfx_tensor_free(out), cfx_tensor_free(grey);
    cfx_competency_free(cm);
}

/* LGD, two updates, against Adam by hand for each vector term: d rho / d z' from the
 * competency's latent graph and the term's gradient by formula (vector_term_gradient; the
 * cosine's is z / (|z| |z'|) - cos z' / |z'|^2). */
CFX_TEST(counterfactual, lgd_updates_are_adam_on_its_objective_for_each_vector_term) {
    enum { N = 3, P = N * D };
    cfx_competency *cm = open_models(4);
    if (!cm) return;
    const double lr = 1e-2, gamma = 2;
    cfx_tensor *x = tiny_random_images(N, 6), *out = cfx_tensor_new(4, x->shape);
    float z0[P], g[P], rho[N], want[N * IMG];
    CHECK_OK(cfx_competency_score(cm, x, &(cfx_competency_scores){.latent = z0}, NULL));
    cfx_tensor *z = cfx_tensor_new(2, (int64_t[]){N, D});
    for (int v = 0; v < CFX_CF_VECTOR_COUNT; v++) {
        const bool similarity = v == CFX_CF_VECTOR_DEFAULT || v == CFX_CF_VECTOR_COS;
        double Z[P], M[P] = {0}, V[P] = {0}, G[P], T[D];
        for (int upd = 1; upd <= 2; upd++) {
            for (int i = 0; i < P; i++) z->data[i] = upd == 1 ? z0[i] : (float)Z[i];
            if (upd == 1)
                for (int i = 0; i < P; i++) Z[i] = z0[i];
            CHECK_OK(
                cfx_competency_score_latent(cm, z, &(cfx_competency_scores){.rho = rho}, g, NULL));
            for (int i = 0; i < N; i++) {
                vector_term_gradient(v, z0 + i * D, Z + i * D, D, T);
                for (int k = 0; k < D; k++)
                    G[i * D + k] = -g[i * D + k] + (similarity ? -gamma : gamma) * T[k];
            }
            adam_by_hand(Z, M, V, G, P, upd, lr);
            run_updates(cm, CFX_CF_LGD, v, gamma, lr, upd, x, out);
            /* The result is decode(z') of the hand-made z'. */
            for (int i = 0; i < P; i++) z->data[i] = (float)Z[i];
            CHECK_OK(cfx_competency_score_latent(cm, z, &(cfx_competency_scores){0}, NULL, want));
            if (!CHECK_ARRAY_NEAR(out->data, want, N * IMG, 0, 2e-6))
                printf("  (vector term %s, update %d)\n", cfx_cf_vector_name(v), upd);
        }
    }
    cfx_tensor_free(z), cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

CFX_TEST(counterfactual, igd_with_the_l1_distance_raises_rho) {
    enum { N = 8 };
    cfx_competency *cm = open_models(N);
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(N, 7), *out = cfx_tensor_new(4, x->shape);
    cfx_cf_record rec[N];
    cfx_cf_options o = {.distance = CFX_CF_DISTANCE_L1, .clip = 1, .adam = {.lr = 5e-3f}};
    run_igd(cm, &o, N, x, out, rec);
    float rho[N];
    score(cm, out, rho, NULL);
    for (int i = 0; i < N; i++) {
        CHECK(rec[i].rho_after >= rec[i].rho_before);
        CHECK_NEAR(rec[i].rho_after, rho[i], 2e-5);
        double d = 0;
        for (int j = 0; j < IMG; j++) {
            float v = out->data[i * IMG + j];
            CHECK(v >= 0 && v <= 1); /* clipped */
            d += fabs((double)v - x->data[i * IMG + j]) / IMG;
        }
        CHECK_NEAR(rec[i].distance, d, 1e-9);
    }
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

/* ---------------------------------------------------------------- the distances --- */

/* IGD under each image distance, at the reference settings otherwise: rho rises on every
 * low-competency image and most succeed, the records' distance is the distance's own
 * (cfx_distance_run on X and the result), and the term pulls X' towards X: with gamma 1 the
 * mean distance is below that of a run without the term. The LPIPS model is a small LPIPS
 * network exported by PyTorch (tests/py/distance_oracle.py). */
CFX_TEST(counterfactual, igd_with_each_distance_raises_rho) {
    enum { N = 16 };
    cfx_competency *cm = open_models(8);
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(N, 9), *out = cfx_tensor_new(4, x->shape);
    const char *dir = cfx_test_tmpdir();
    float w[N];
    for (int i = 0; i < N; i++) w[i] = 1;
    CHECK(oracle_write(dir, "x", 4, x->shape, x->data));
    CHECK(oracle_write(dir, "y", 4, x->shape, x->data));
    CHECK(oracle_write(dir, "w", 1, (int64_t[]){N}, w));
    char args[700], model[700];
    snprintf(args, sizeof args, "model %s fixed", dir);
    snprintf(model, sizeof model, "%s/lpips.onnx", dir);
    CHECK_INT_EQ(cfx_test_python("distance_oracle.py", args), 0);
    const struct {
        cfx_cf_distance kind;
        const char *model, *label;
    } cases[] = {{CFX_CF_DISTANCE_LPIPS, NULL, "LPIPS[classifier]"},
                 {CFX_CF_DISTANCE_LPIPS, model, "LPIPS"},
                 {CFX_CF_DISTANCE_L2, NULL, "L2"},
                 {CFX_CF_DISTANCE_L1, NULL, "L1"},
                 {CFX_CF_DISTANCE_SSIM, NULL, "1-SSIM"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cfx_distance *dist = cfx_distance_new(cm, cases[k].kind, cases[k].model, 8);
        CHECK_MSG(dist != NULL, "%s: %s", cases[k].label, cfx_last_error());
        if (!dist) continue;
        double mean[3] = {0, 0, 0}, d[N];
        int low = 0, succ = 0;
        const double gammas[3] = {-1, 0, 1}; /* no term, the reference's 0.1, 1 */
        for (int run = 0; run < 3; run++) {
            cfx_cf_options o = {
                .distance = cases[k].kind, .lpips_model = cases[k].model, .gamma = gammas[run]};
            cfx_cf *cf = cfx_cf_new(cm, CFX_CF_IGD, &o, 8, NULL, NULL);
            CHECK_MSG(cf != NULL, "%s: %s", cases[k].label, cfx_last_error());
            if (!cf) continue;
            CHECK_STR_EQ(cfx_cf_distance_label(cf), cases[k].label);
            cfx_cf_record rec[N];
            CHECK_OK(cfx_cf_run(cf, x, out, rec));
            CHECK_OK(cfx_distance_run(dist, x, out, d));
            for (int i = 0; i < N; i++) {
                CHECK_STR_EQ(rec[i].failure, "");
                CHECK_NEAR(rec[i].distance, d[i], 1e-7 * (1 + d[i]));
                mean[run] += d[i] / N;
                if (rec[i].rho_before >= 0.9 || run == 2) continue;
                CHECK_MSG(rec[i].rho_after > rec[i].rho_before, "%s: image %d: rho %g -> %g",
                          cases[k].label, i, rec[i].rho_before, rec[i].rho_after);
                if (run == 1) low++, succ += rec[i].success;
            }
            cfx_cf_free(cf);
        }
        printf("  (IGD, %s: %d of %d succeed; mean distance %.4g, %.4g with gamma 1, %.4g "
               "without the term)\n",
               cases[k].label, succ, low, mean[1], mean[2], mean[0]);
        CHECK(low >= 8);
        CHECK_MSG(succ * 2 > low, "%s: %d of %d succeed", cases[k].label, succ, low);
        CHECK_MSG(mean[2] < mean[0], "%s: mean distance %g with gamma 1, %g without the term",
                  cases[k].label, mean[2], mean[0]);
        cfx_distance_free(dist);
    }
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

/* ------------------------------------------------------------ per-image failure --- */

/* A classifier whose rho is not finite for some images only: logits (1 - 2 sqrt(x_0),
 * 6 sqrt(x_1) - 4, 0) of two pixels, through a Sqrt, so that a negative pixel gives NaN and a
 * pixel at 0 an infinite gradient; with a calibration whose P_c is 1, rho is the softmax's
 * maximum. Image A starts with x_0 = 0.045: rho is p_0, which IGD raises by lowering x_0, until
 * it is negative a few updates later (a non-finite rho); B has x_0 = 0 (a non-finite gradient
 * at once); C raises p_1 and passes. */
static cfx_competency *open_sqrt_model(void) {
    const char *dir = cfx_test_tmpdir();
    write_models(dir);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, C, H, W});
    int f = cfx_op_flatten(g, cfx_op_sqrt(g, x), 1);
    CHECK_OK(cfx_graph_set_name(g, f, "features"));
    int wt = cfx_graph_param(g, "fc.weight", 2, (int64_t[]){K, IMG});
    int b = cfx_graph_param(g, "fc.bias", 1, (int64_t[]){K});
    CHECK_OK(cfx_graph_set_output(g, cfx_op_softmax(g, cfx_op_linear(g, f, wt, b), 1), "probs"));
    CHECK_OK(cfx_graph_compile(g));
    float *wd = cfx_graph_tensor(g, wt)->data, *bd = cfx_graph_tensor(g, b)->data;
    memset(wd, 0, K * IMG * sizeof(float));
    wd[0 * IMG + 0] = -2, wd[1 * IMG + 1] = 6;
    bd[0] = 1, bd[1] = -4, bd[2] = 0;
    char c[800], e[800], d[800];
    tiny_model_paths(dir, "sqrt.onnx", c, e, d);
    CHECK_OK(cfx_onnx_save(g, c, NULL, 0));
    cfx_graph_free(g);
    cfx_competency *cm = cfx_competency_new(
        &(cfx_competency_models){.classifier = c, .encoder = e, .decoder = d}, 4);
    CHECK_MSG(cm != NULL, "%s", cfx_last_error());
    double mu[K] = {0, 0, 0}, sigma[K] = {1, 1, 1};
    cfx_parce p = {
        .num_classes = K, .mu = mu, .sigma = sigma, .z = 20, .loss_scale = 2, .threshold = 0.7};
    if (cm) CHECK_OK(cfx_competency_set_parce(cm, &p));
    return cm;
}

CFX_TEST(counterfactual, a_non_finite_rho_or_gradient_fails_one_image_and_the_others_go_on) {
    cfx_competency *cm = open_sqrt_model();
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(3, 12), *out = cfx_tensor_new(4, x->shape);
    for (int i = 0; i < 3 * IMG; i++) x->data[i] = 0.3f + 0.4f * x->data[i]; /* no pixel near 0 */
    const float x0[3] = {0.045f, 0, 0.5f}, x1[3] = {0.3f, 0.3f, 0.6f};
    for (int i = 0; i < 3; i++) x->data[i * IMG] = x0[i], x->data[i * IMG + 1] = x1[i];
    cfx_cf_options o = {.distance = CFX_CF_DISTANCE_L2, .adam = {.lr = 1e-2f}, .max_iter = 60};
    for (int rule = 0; rule < 2; rule++) {
        o.stop = rule ? CFX_CF_STOP_PER_BATCH : CFX_CF_STOP_PER_IMAGE;
        cfx_cf_record rec[3];
        cfx_cf *cf = cfx_cf_new(cm, CFX_CF_IGD, &o, 3, NULL, NULL);
        CHECK_MSG(cf != NULL, "%s", cfx_last_error());
        if (!cf) break;
        CHECK_OK(cfx_cf_run(cf, x, out, rec));
        cfx_cf_free(cf);
        for (int i = 0; i < 3; i++)
            printf("  (%s, image %c: %d steps, rho %.4f -> %.4f, failure \"%s\")\n",
                   rule ? "per batch" : "per image", 'A' + i, rec[i].steps, rec[i].rho_before,
                   rec[i].rho_after, rec[i].failure);
        /* A: a non-finite rho after k - 1 updates; kept: the image after k - 2, with its rho. */
        int k = 0;
        CHECK_MSG(sscanf(rec[0].failure, "non-finite rho at iteration %d", &k) == 1 && k >= 3,
                  "A: \"%s\"", rec[0].failure);
        CHECK(!rec[0].success);
        CHECK_INT_EQ(rec[0].steps, k - 2);
        float rho[3];
        score(cm, out, rho, NULL);
        CHECK(isfinite(rec[0].rho_after) && rec[0].rho_after == rho[0]);
        CHECK(out->data[0] > 0 && out->data[0] < x0[0]);
        /* ... which is A alone after k - 2 updates. */
        cfx_tensor *a = cfx_tensor_new(4, (int64_t[]){1, C, H, W}),
                   *ya = cfx_tensor_new(4, a->shape);
        memcpy(a->data, x->data, IMG * sizeof(float));
        for (int extra = 0; extra < 2; extra++) {
            cfx_cf_options alone = o;
            alone.max_iter = k - 2 + extra, alone.threshold = 0.99;
            cfx_cf *ca = cfx_cf_new(cm, CFX_CF_IGD, &alone, 1, NULL, NULL);
            cfx_cf_record ra;
            if (ca) CHECK_OK(cfx_cf_run(ca, a, ya, &ra));
            cfx_cf_free(ca);
            /* Alone, k - 2 updates give the image kept; asked for one more, A fails the same
             * way and is put back to the same image. */
            CHECK_ARRAY_NEAR(ya->data, out->data, IMG, 0, 0);
            if (extra == 1) CHECK_STR_EQ(ra.failure, rec[0].failure);
        }
        cfx_tensor_free(a), cfx_tensor_free(ya);
        /* B: an infinite gradient at the first iteration; it stays X. */
        CHECK_STR_EQ(rec[1].failure, "non-finite gradient at iteration 1");
        CHECK(!rec[1].success && rec[1].steps == 0);
        CHECK(rec[1].rho_after == rec[1].rho_before);
        CHECK(memcmp(out->data + IMG, x->data + IMG, IMG * sizeof(float)) == 0);
        /* C goes on and passes, as alone (per batch, the failed images are not waited for). */
        CHECK_STR_EQ(rec[2].failure, "");
        CHECK(rec[2].success && rec[2].steps > 0 && rec[2].steps < o.max_iter);
        cfx_tensor *c = cfx_tensor_new(4, (int64_t[]){1, C, H, W}),
                   *yc = cfx_tensor_new(4, c->shape);
        memcpy(c->data, x->data + 2 * IMG, IMG * sizeof(float));
        cfx_cf *cc = cfx_cf_new(cm, CFX_CF_IGD, &o, 1, NULL, NULL);
        cfx_cf_record rc;
        if (cc) CHECK_OK(cfx_cf_run(cc, c, yc, &rc));
        cfx_cf_free(cc);
        CHECK_INT_EQ(rc.steps, rec[2].steps);
        CHECK_ARRAY_NEAR(yc->data, out->data + 2 * IMG, IMG, 0, 1e-6);
        cfx_tensor_free(c), cfx_tensor_free(yc);
    }
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

/* Per-image stopping packs the images still optimised into a smaller batch once half have
 * stopped. Each image's result is still its own: for IGD, FGD and LGD, a batch of 32 gives
 * every image the steps and X' it gets alone (X' within float rounding: the batch size may
 * change the order of a few sums). */
CFX_TEST(counterfactual, packing_the_active_images_keeps_each_result) {
    enum { N = 32 };
    cfx_competency *cm = open_models(N);
    if (!cm) return;
    cfx_tensor *x = tiny_random_images(N, 5), *out = cfx_tensor_new(4, x->shape);
    cfx_tensor *one = cfx_tensor_new(4, (int64_t[]){1, C, H, W}),
               *y = cfx_tensor_new(4, one->shape);
    const cfx_cf_method methods[3] = {CFX_CF_IGD, CFX_CF_FGD, CFX_CF_LGD};
    const cfx_cf_options o = {.distance = CFX_CF_DISTANCE_L2};
    for (int q = 0; q < 3; q++) {
        cfx_cf_record rec[N], r1;
        cfx_cf *cf = cfx_cf_new(cm, methods[q], &o, N, NULL, NULL);
        CHECK_MSG(cf != NULL, "%s", cfx_last_error());
        if (!cf) continue;
        CHECK_OK(cfx_cf_run(cf, x, out, rec));
        /* Packing happens when half the batch has stopped while others go on. */
        int most = 0, before = 0;
        for (int i = 0; i < N; i++) most = rec[i].steps > most ? rec[i].steps : most;
        for (int i = 0; i < N; i++) before += rec[i].steps < most;
        CHECK_MSG(before >= N / 2,
                  "%s: only %d images stop before the last (%d steps): packing "
                  "is not tested",
                  cfx_cf_method_name(methods[q]), before, most);
        for (int i = 0; i < N; i++) {
            memcpy(one->data, x->data + i * IMG, IMG * sizeof(float));
            CHECK_OK(cfx_cf_run(cf, one, y, &r1));
            CHECK_MSG(r1.steps == rec[i].steps, "%s image %d: %d steps alone, %d in the batch",
                      cfx_cf_method_name(methods[q]), i, r1.steps, rec[i].steps);
            CHECK_ARRAY_NEAR(y->data, out->data + i * IMG, IMG, 0, 1e-5);
        }
        cfx_cf_free(cf);
    }
    cfx_tensor_free(x), cfx_tensor_free(out), cfx_tensor_free(one), cfx_tensor_free(y);
    cfx_competency_free(cm);
}

/* An encoder through a Sqrt, so that an image with a negative pixel (finite, so accepted) has a
 * NaN code and rho: every method fails that image alone, and it keeps X. */
CFX_TEST(counterfactual, an_image_with_a_non_finite_code_fails_alone_in_every_method) {
    enum { N = 3 };
    const char *dir = cfx_test_tmpdir();
    write_models(dir);
    cfx_rng r;
    cfx_rng_init(&r, 5);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, C, H, W});
    int z = cfx_layer_linear(g, cfx_op_flatten(g, cfx_op_sqrt(g, x), 1), "enc", D, &r);
    CHECK_OK(cfx_graph_set_output(g, cfx_op_tanh(g, z), "latent"));
    CHECK_OK(cfx_graph_compile(g));
    char c[800], e[800], d[800];
    snprintf(c, sizeof c, "%s/classifier.onnx", dir);
    snprintf(e, sizeof e, "%s/sqrt_encoder.onnx", dir);
    snprintf(d, sizeof d, "%s/decoder.onnx", dir);
    CHECK_OK(cfx_onnx_save(g, e, NULL, 0));
    cfx_graph_free(g);
    cfx_competency *cm = cfx_competency_new(
        &(cfx_competency_models){.classifier = c, .encoder = e, .decoder = d}, 4);
    CHECK_MSG(cm != NULL, "%s", cfx_last_error());
    if (!cm) return;
    double mu[K] = {0.02, 0.02, 0.02}, sigma[K] = {0.02, 0.02, 0.02};
    cfx_parce p = {
        .num_classes = K, .mu = mu, .sigma = sigma, .z = 1, .loss_scale = 2, .threshold = 0.9};
    CHECK_OK(cfx_competency_set_parce(cm, &p));
    cfx_tensor *xs = tiny_random_images(N, 21), *out = cfx_tensor_new(4, xs->shape);
    xs->data[IMG + 5] = -0.5f;
    cfx_tensor *lat = NULL, *sc = NULL;
    lnn_candidates(cm, &lat, &sc);
    for (int m = 0; m < CFX_CF_COUNT; m++) {
        cfx_cf_options o = {.distance = CFX_CF_DISTANCE_L2, .threshold = 0.5, .max_iter = 5};
        cfx_cf *cf = cfx_cf_new(cm, m, &o, 4, lat, sc);
        CHECK_MSG(cf != NULL, "%s", cfx_last_error());
        if (!cf) continue;
        cfx_cf_record rec[N];
        CHECK_OK(cfx_cf_run(cf, xs, out, rec));
        cfx_cf_free(cf);
        printf("  (%s: \"%s\")\n", cfx_cf_method_name(m), rec[1].failure);
        const char *want = m == CFX_CF_RECO  ? "non-finite latent code"
                           : m == CFX_CF_LNN ? "no finite distance to any candidate"
                                             : "non-finite rho at iteration 1";
        CHECK_MSG(!strncmp(rec[1].failure, want, strlen(want)), "%s: \"%s\"", cfx_cf_method_name(m),
                  rec[1].failure);
        CHECK(!rec[1].success && rec[1].steps == 0);
        CHECK(memcmp(out->data + IMG, xs->data + IMG, IMG * sizeof(float)) == 0);
        CHECK(isnan(rec[1].rho_before) && isnan(rec[1].rho_after));
        for (int i = 0; i < N; i += 2) {
            CHECK_STR_EQ(rec[i].failure, "");
            CHECK(isfinite(rec[i].rho_after) && isfinite(rec[i].distance));
        }
    }
    cfx_tensor_free(lat), cfx_tensor_free(sc);
    cfx_tensor_free(xs), cfx_tensor_free(out);
    cfx_competency_free(cm);
}

/* Found by fuzzing (fuzz/fuzz_run.c, tests/data/fuzz-regressions/run/): a results.jsonl line
 * without a number for "steps" had NaN converted to int (undefined behaviour; INT_MIN steps in
 * the tallies). cfx writes steps as a count on every line, so anything else is refused, naming
 * the file and line. */
CFX_TEST(counterfactual, run_folder_line_without_a_step_count_is_refused) {
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/run", cfx_test_tmpdir());
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/run.json", dir);
    FILE *f = fopen(path, "wb");
    fputs("{\"format\": \"cfx-counterfactual-run\", \"images\": 1, \"image_shape\": [1, 2, 2], "
          "\"methods\": [\"igd\"], \"bundle_fingerprint\": \"0\", \"settings\": {\"threshold\": "
          "0.5}}\n",
          f);
    fclose(f);
    cfx_tensor *x = cfx_tensor_new(4, (int64_t[]){1, 1, 2, 2});
    snprintf(path, sizeof path, "%s/images.npy", dir);
    CHECK_OK(cfx_npy_write(path, x));
    snprintf(path, sizeof path, "%s/counterfactuals_igd.npy", dir);
    CHECK_OK(cfx_npy_write(path, x));
    cfx_tensor_free(x);
    /* An image_shape beyond 65536 is refused, and not converted to int first (1e111 was: UB,
     * found by fuzz_run; UBSan failed before the fix). */
    snprintf(path, sizeof path, "%s/run.json", dir);
    f = fopen(path, "wb");
    fputs("{\"format\": \"cfx-counterfactual-run\", \"images\": 1, \"image_shape\": [1e111, 2, "
          "2], \"methods\": [\"igd\"], \"bundle_fingerprint\": \"0\", \"settings\": "
          "{\"threshold\": 0.5}}\n",
          f);
    fclose(f);
    CHECK(cfx_run_open(dir) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "a bad image_shape"), "message: %s", cfx_last_error());
    f = fopen(path, "wb");
    fputs("{\"format\": \"cfx-counterfactual-run\", \"images\": 1, \"image_shape\": [1, 2, 2], "
          "\"methods\": [\"igd\"], \"bundle_fingerprint\": \"0\", \"settings\": {\"threshold\": "
          "0.5}}\n",
          f);
    fclose(f);
    const char *steps[] = {"\"steps\": 3, ", "", "\"steps\": null, ", "\"steps\": 1e300, ",
                           "\"steps\": -1, "};
    for (int c = 0; c < 5; c++) {
        snprintf(path, sizeof path, "%s/results.jsonl", dir);
        f = fopen(path, "wb");
        fprintf(f, "{\"method\": \"igd\", \"index\": 0, %s\"success\": true}\n", steps[c]);
        fclose(f);
        cfx_run *r = cfx_run_open(dir);
        if (c == 0) {
            CHECK_MSG(r && r->results[0].present && r->results[0].steps == 3, "%s",
                      r ? "steps" : cfx_last_error());
        } else {
            CHECK_MSG(r == NULL, "results.jsonl with %s opened", c == 1 ? "no steps" : steps[c]);
            CHECK_MSG(strstr(cfx_last_error(), "results.jsonl") &&
                          strstr(cfx_last_error(), "line 1"),
                      "message: %s", cfx_last_error());
        }
        cfx_run_free(r);
    }
}
