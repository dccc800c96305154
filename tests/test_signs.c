/* test_signs.c - the speed-limit sign generator: determinism (seed, not threads), image
 * statistics, class balance, and the held-out speed only in ood. */
#include "test.h"

#include <stdlib.h>

/* Per-image statistics of n uint8 (3,S,S) images. */
static void image_stats(const uint8_t *img, int S, double *mean, double *sd, double *red) {
    int P = S * S;
    double s = 0, s2 = 0;
    int nred = 0;
    for (int p = 0; p < P; p++) {
        int r = img[p], g = img[P + p], b = img[2 * P + p];
        nred += r > 100 && r > g + 50 && r > b + 40;
        for (int c = 0; c < 3; c++)
            s += img[c * P + p], s2 += (double)img[c * P + p] * img[c * P + p];
    }
    *mean = s / (3.0 * P);
    *sd = sqrt(fmax(s2 / (3.0 * P) - *mean * *mean, 0));
    *red = (double)nred / P;
}

CFX_TEST(signs, same_seed_same_bytes_any_threads) {
    const int n = 40, S = 32;
    int speeds[40];
    for (int i = 0; i < n; i++) speeds[i] = cfx_signs_speeds[i % CFX_SIGNS_NUM_SPEEDS];
    uint8_t *a = malloc((size_t)n * 3 * S * S), *b = malloc((size_t)n * 3 * S * S);
    cfx_rng r;
    cfx_rng_init(&r, 99);
    CHECK_OK(cfx_signs_generate(NULL, &r, speeds, n, a, NULL));
    cfx_set_threads(2);
    CHECK_OK(cfx_signs_generate(NULL, &r, speeds, n, b, NULL));
    cfx_set_threads(1);
    CHECK(memcmp(a, b, (size_t)n * 3 * S * S) == 0);
    /* Image i depends on i, not on its neighbours: a sub-range reproduces the same images. */
    cfx_rng_init(&r, 100);
    CHECK_OK(cfx_signs_generate(NULL, &r, speeds, n, b, NULL));
    CHECK(memcmp(a, b, (size_t)3 * S * S) != 0);
    free(a);
    free(b);
}

CFX_TEST(signs, images_look_like_varied_photographs) {
    const int n = 160, S = 32;
    int *speeds = malloc(n * sizeof *speeds);
    for (int i = 0; i < n; i++) speeds[i] = cfx_signs_speeds[i % CFX_SIGNS_NUM_SPEEDS];
    uint8_t *img = malloc((size_t)n * 3 * S * S);
    cfx_rng r;
    cfx_rng_init(&r, 3);
    double t0 = cfx_now();
    CHECK_OK(cfx_signs_generate(NULL, &r, speeds, n, img, NULL));
    double per = (cfx_now() - t0) / n;
    /* 10k images in a few seconds; sanitizers and valgrind (the fast subset) are slower. */
    if (!cfx_test_fast()) CHECK_MSG(per < 2e-3, "%.2f ms per image on one thread", per * 1e3);
    int with_red = 0, flat = 0, lo = 255, hi = 0;
    double mean_lo = 1e9, mean_hi = 0;
    for (int i = 0; i < n; i++) {
        double mean, sd, red;
        image_stats(img + (size_t)i * 3 * S * S, S, &mean, &sd, &red);
        with_red += red > 0.03; /* the ring is visible in most images */
        flat += sd < 12;        /* no constant images */
        mean_lo = fmin(mean_lo, mean), mean_hi = fmax(mean_hi, mean);
        for (int p = 0; p < 3 * S * S; p++) {
            int v = img[(size_t)i * 3 * S * S + p];
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    }
    CHECK_MSG(with_red > n * 7 / 10, "%d of %d images show a red ring", with_red, n);
    CHECK_MSG(flat == 0, "%d flat images", flat);
    CHECK_MSG(lo < 20 && hi > 235, "values span %d..%d", lo, hi);
    CHECK_MSG(mean_hi - mean_lo > 60, "brightness varies only from %.0f to %.0f", mean_lo, mean_hi);
    /* Two images of the same speed differ (position, scene, light). */
    CHECK(memcmp(img, img + (size_t)CFX_SIGNS_NUM_SPEEDS * 3 * S * S, (size_t)3 * S * S) != 0);
    /* Other sizes work; bad arguments are refused with a message. */
    cfx_signs_options o = {.size = 64, .supersample = 2};
    CHECK_OK(cfx_signs_generate(&o, &r, speeds, 2, img, NULL));
    CHECK_ERR(cfx_signs_generate(NULL, &r, (int[]){25}, 1, img, NULL), CFX_EINVAL);
    o = (cfx_signs_options){.font_path = "/nonexistent/font.ttf"};
    CHECK_ERR(cfx_signs_generate(&o, &r, speeds, 1, img, NULL), CFX_EIO);
    CHECK(strstr(cfx_last_error(), "/nonexistent/font.ttf") != NULL);
    free(img);
    free(speeds);
}

CFX_TEST(signs, prepared_dataset_is_balanced_deterministic_and_holds_out_20) {
    const char *dir = cfx_test_tmpdir();
    char a[600], b[600], pa[800], pb[800];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    cfx_signs_counts c = {.train = 12, .calib = 3, .test = 4, .ood = 9, .holdout = 20};
    cfx_data_options o = {.out = a, .seed = 5};
    CHECK_OK(cfx_data_prepare_signs(&o, NULL, &c));
    o.out = b;
    cfx_set_threads(2);
    CHECK_OK(cfx_data_prepare_signs(&o, NULL, &c));
    cfx_set_threads(1);
    const char *files[] = {"manifest.json",    "train_images.npy", "train_labels.npy",
                           "calib_images.npy", "calib_labels.npy", "test_images.npy",
                           "test_labels.npy",  "ood_images.npy",   "ood_labels.npy"};
    for (int k = 0; k < 9; k++) {
        char *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        snprintf(pa, sizeof pa, "%s/%s", a, files[k]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[k]);
        CHECK_OK(cfx_file_read_all(pa, &x, &nx));
        CHECK_OK(cfx_file_read_all(pb, &y, &ny));
        CHECK_MSG(x && y && nx == ny && memcmp(x, y, nx) == 0, "%s differs", files[k]);
        cfx_free(x);
        cfx_free(y);
    }
    const char *splits[4] = {"train", "calib", "test", "ood"};
    const int per[4] = {12, 3, 4, 0};
    for (int s = 0; s < 4; s++) {
        cfx_dataset *d = cfx_dataset_load(a, splits[s]);
        CHECK_MSG(d != NULL, "%s", cfx_last_error());
        if (!d) continue;
        CHECK_INT_EQ(d->num_classes, 7);
        CHECK_STR_EQ(d->class_names[0], "30");
        CHECK_STR_EQ(d->class_names[6], "120");
        CHECK_INT_EQ(d->images->shape[1], 3);
        CHECK_INT_EQ(d->images->shape[2], 32);
        int counts[8] = {0};
        for (int64_t i = 0; i < d->n; i++) counts[d->orig_labels[i]]++;
        if (s < 3) {
            CHECK_INT_EQ(d->n, 7 * per[s]);
            CHECK_INT_EQ(counts[0], 0); /* 20 km/h never in train, calib or test */
            for (int k = 1; k < 8; k++) CHECK_INT_EQ(counts[k], per[s]);
            for (int64_t i = 0; i < d->n; i++) CHECK(d->labels[i] == d->orig_labels[i] - 1);
        } else {
            CHECK_INT_EQ(d->n, 9);
            CHECK_INT_EQ(counts[0], 9);
            for (int64_t i = 0; i < d->n; i++) CHECK_INT_EQ(d->labels[i], -1);
        }
        cfx_dataset_free(d);
    }
    /* A different seed gives different images. */
    o.seed = 6;
    o.force = 1;
    CHECK_OK(cfx_data_prepare_signs(&o, NULL, &c));
    char *x = NULL, *y = NULL;
    size_t nx, ny;
    snprintf(pa, sizeof pa, "%s/test_images.npy", a);
    snprintf(pb, sizeof pb, "%s/test_images.npy", b);
    CHECK_OK(cfx_file_read_all(pa, &x, &nx));
    CHECK_OK(cfx_file_read_all(pb, &y, &ny));
    CHECK(x && y && nx == ny && memcmp(x, y, nx) != 0);
    cfx_free(x);
    cfx_free(y);
    c.holdout = 25;
    CHECK_ERR(cfx_data_prepare_signs(&o, NULL, &c), CFX_EINVAL);
}
