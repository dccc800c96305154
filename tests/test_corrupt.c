/* test_corrupt.c - the causes' image operations against Debian's Pillow, bit for bit
 * (tests/py/corrupt_oracle.py), the noise's range and seeding, and bad factors. */
#include "test.h"

#include <stdlib.h>

/* Reads a uint8 .npy written by the oracle into bytes (NULL when missing). */
static uint8_t *read_u8(const char *dir, const char *name, int64_t *shape) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cfx_tensor *t = cfx_npy_read(path);
    if (!t) return NULL;
    uint8_t *b = malloc((size_t)t->numel);
    for (int64_t i = 0; b && i < t->numel; i++) b[i] = (uint8_t)t->data[i];
    for (int d = 0; d < 3; d++) shape[d] = t->shape[d];
    cfx_tensor_free(t);
    return b;
}

CFX_TEST(corrupt, equals_pillow_bit_for_bit) {
    const char *dir = cfx_test_tmpdir();
    char args[700], path[1200], cause_name[32];
    snprintf(args, sizeof args, "'%s'", dir);
    CHECK_INT_EQ(cfx_test_python("corrupt_oracle.py", args), 0);
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "the oracle wrote no cases.txt");
    if (!f) return;
    int k, i, cases = 0, bad = 0;
    double factor;
    int seen[CFX_CAUSE_COUNT] = {0};
    while (fscanf(f, "%31s %d %d %lf", cause_name, &k, &i, &factor) == 4) {
        cfx_cause cause;
        CHECK_OK(cfx_cause_parse(cause_name, &cause));
        int64_t shape[3], oshape[3];
        char name[64];
        snprintf(name, sizeof name, "in_%d.npy", k);
        uint8_t *in = read_u8(dir, name, shape);
        snprintf(name, sizeof name, "%s_%d_%d.npy", cause_name, k, i);
        uint8_t *want = read_u8(dir, name, oshape);
        CHECK(in && want);
        if (!in || !want) break;
        int64_t n = shape[0] * shape[1] * shape[2];
        uint8_t *got = malloc((size_t)n);
        CHECK_OK(cfx_corrupt_u8(cause, factor, in, got, (int)shape[0], (int)shape[1], (int)shape[2],
                                NULL));
        int64_t first = -1;
        for (int64_t j = 0; j < n && first < 0; j++)
            if (got[j] != want[j]) first = j;
        if (first >= 0 && bad++ < 5)
            cfx_test_fail(__FILE__, __LINE__, "%s %g on image %d: element %lld is %d, Pillow %d",
                          cause_name, factor, k, (long long)first, got[first], want[first]);
        seen[cause]++;
        cases++;
        free(in), free(want), free(got);
    }
    fclose(f);
    CHECK_INT_EQ(bad, 0);
    CHECK(cases > 100);
    CHECK(seen[CFX_CAUSE_BRIGHTNESS] && seen[CFX_CAUSE_CONTRAST] && seen[CFX_CAUSE_SATURATION] &&
          seen[CFX_CAUSE_PIXELATION]);
}

CFX_TEST(corrupt, noise_is_uniform_in_range_clipped_and_seeded) {
    enum { C = 3, H = 40, W = 40, N = C * H * W };
    uint8_t in[N], a[N], b[N];
    for (int i = 0; i < N; i++) in[i] = (uint8_t)(i * 37 % 256);
    cfx_rng r1, r2;
    cfx_rng_init(&r1, 5);
    cfx_rng_init(&r2, 5);
    CHECK_OK(cfx_corrupt_u8(CFX_CAUSE_NOISE, 20, in, a, C, H, W, &r1));
    CHECK_OK(cfx_corrupt_u8(CFX_CAUSE_NOISE, 20, in, b, C, H, W, &r2));
    CHECK(memcmp(a, b, N) == 0);
    int hits[41] = {0}, outside = 0;
    double sum = 0;
    for (int i = 0; i < N; i++) {
        int d = a[i] - in[i];
        if (in[i] >= 20 && in[i] <= 235) { /* no clipping possible: d is the noise itself */
            if (d < -20 || d > 20)
                outside++;
            else
                hits[d + 20]++, sum += d;
        } else if ((in[i] < 20 && a[i] > in[i] + 20) || (in[i] > 235 && a[i] < in[i] - 20)) {
            outside++;
        }
    }
    CHECK_INT_EQ(outside, 0);
    int missing = 0;
    for (int d = 0; d <= 40; d++) missing += hits[d] == 0;
    CHECK_INT_EQ(missing, 0);
    CHECK(fabs(sum / N) < 1.0);
    /* Clipping: 250 + up to 120 stays 255 at most, 3 - up to 120 stays 0 at least. */
    uint8_t hi[N], lo[N], out[N];
    memset(hi, 250, N), memset(lo, 3, N);
    CHECK_OK(cfx_corrupt_u8(CFX_CAUSE_NOISE, 120, hi, out, C, H, W, &r1));
    int at255 = 0;
    for (int i = 0; i < N; i++) at255 += out[i] == 255;
    CHECK(at255 > N / 3);
    CHECK_OK(cfx_corrupt_u8(CFX_CAUSE_NOISE, 120, lo, out, C, H, W, &r1));
    int at0 = 0;
    for (int i = 0; i < N; i++) at0 += out[i] == 0;
    CHECK(at0 > N / 3);
}

CFX_TEST(corrupt, float_batches_round_trip_through_8_bits) {
    cfx_tensor *x = cfx_tensor_new(4, (int64_t[]){2, 1, 4, 4});
    for (int64_t i = 0; i < x->numel; i++) x->data[i] = (float)(i * 9 % 256) / 255.0f;
    cfx_tensor *y = cfx_tensor_new(4, x->shape);
    CHECK_OK(cfx_corrupt(CFX_CAUSE_BRIGHTNESS, 0.5, x, y, NULL));
    for (int64_t i = 0; i < x->numel; i++) {
        int v = (int)(i * 9 % 256);
        CHECK_NEAR(y->data[i] * 255.0f, (float)(int)(v * 0.5f), 1e-3);
    }
    x->data[5] = NAN;
    CHECK_ERR(cfx_corrupt(CFX_CAUSE_BRIGHTNESS, 0.5, x, y, NULL), CFX_ENUMERIC);
    CHECK(strstr(cfx_last_error(), "image 0") && strstr(cfx_last_error(), "element 5"));
    cfx_tensor_free(x);
    cfx_tensor_free(y);
}

CFX_TEST(corrupt, bad_factors_and_names_are_refused) {
    uint8_t in[3 * 8 * 8] = {0}, out[3 * 8 * 8];
    CHECK_ERR(cfx_corrupt_u8(CFX_CAUSE_SATURATION, 2, in, out, 1, 8, 8, NULL), CFX_EINVAL);
    CHECK(strstr(cfx_last_error(), "colour") != NULL);
    CHECK_ERR(cfx_corrupt_u8(CFX_CAUSE_PIXELATION, 9, in, out, 3, 8, 8, NULL), CFX_EINVAL);
    CHECK_ERR(cfx_corrupt_u8(CFX_CAUSE_PIXELATION, 2.5, in, out, 3, 8, 8, NULL), CFX_EINVAL);
    CHECK_ERR(cfx_corrupt_u8(CFX_CAUSE_NOISE, 20, in, out, 3, 8, 8, NULL), CFX_EINVAL);
    CHECK_ERR(cfx_corrupt_u8(CFX_CAUSE_BRIGHTNESS, -1, in, out, 3, 8, 8, NULL), CFX_EINVAL);
    CHECK_ERR(cfx_corrupt_u8(CFX_CAUSE_BRIGHTNESS, NAN, in, out, 3, 8, 8, NULL), CFX_EINVAL);
    CHECK_ERR(cfx_corrupt_u8(CFX_CAUSE_SPATIAL, 1, in, out, 3, 8, 8, NULL), CFX_EINVAL);
    CHECK_ERR(cfx_corrupt_u8(CFX_CAUSE_BRIGHTNESS, 1, in, out, 2, 8, 8, NULL), CFX_EINVAL);
    cfx_cause c;
    CHECK_ERR(cfx_cause_parse("blur", &c), CFX_EINVAL);
    CHECK(strstr(cfx_last_error(), "'blur'") != NULL);
    for (int k = 0; k < CFX_CAUSE_COUNT; k++) {
        CHECK_OK(cfx_cause_parse(cfx_cause_name((cfx_cause)k), &c));
        CHECK_INT_EQ(c, k);
    }
    const double *f;
    CHECK_INT_EQ(cfx_cause_grid(CFX_CAUSE_NOISE, &f), 6);
    CHECK(f[0] == 20 && f[5] == 120);
    CHECK_INT_EQ(cfx_cause_grid(CFX_CAUSE_SPATIAL, &f), 0);
}
