/* test_optim.c - SGD and Adam against torch.optim, step for step. */
#include "base/base.h"
#include "learn/optim.h"
#include "test.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>

/* Ten steps on f(x) = sum(sin(x) w), whose gradient is cos(x) w, as the oracle does. */
static void run(cfx_optim *opt, const cfx_tensor *x0, const cfx_tensor *w, float *x) {
    float g[200];
    memcpy(x, x0->data, 200 * sizeof(float));
    for (int s = 0; s < 10; s++) {
        for (int i = 0; i < 200; i++) g[i] = cosf(x[i]) * w->data[i];
        CHECK_OK(cfx_optim_step(opt, x, g));
    }
}

CFX_TEST(optim, matches_torch_optim) {
    const char *dir = cfx_test_tmpdir();
    CHECK_INT_EQ(cfx_test_python("optim_oracle.py", dir), 0);
    cfx_tensor *x0 = cfx_test_npy(dir, "x0"), *w = cfx_test_npy(dir, "w");
    if (!x0 || !w) return;
    struct {
        const char *name;
        cfx_optim *opt;
    } runs[] = {
        {"adam", cfx_optim_adam(200, &(cfx_adam_options){.lr = 0.05f,
                                                         .beta1 = 0.8f,
                                                         .beta2 = 0.99f,
                                                         .eps = 1e-6f,
                                                         .weight_decay = 0.01f})},
        {"adam_default", cfx_optim_adam(200, NULL)},
        {"sgd", cfx_optim_sgd(
                    200, &(cfx_sgd_options){.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f})},
        {"sgd_nesterov",
         cfx_optim_sgd(200, &(cfx_sgd_options){.lr = 0.1f, .momentum = 0.9f, .nesterov = 1})},
        {"sgd_plain", cfx_optim_sgd(200, &(cfx_sgd_options){.lr = 0.1f})},
    };
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        float x[200];
        run(runs[k].opt, x0, w, x);
        cfx_tensor *want = cfx_test_npy(dir, runs[k].name);
        if (want && !CHECK_ARRAY_NEAR(x, want->data, 200, 1e-5, 1e-6))
            printf("  (%s)\n", runs[k].name);
        /* Reset starts afresh: the same ten steps give the same result. */
        cfx_optim_reset(runs[k].opt);
        float again[200];
        run(runs[k].opt, x0, w, again);
        CHECK_ARRAY_NEAR(again, x, 200, 0, 0);
        cfx_tensor_free(want);
        cfx_optim_free(runs[k].opt);
    }
    cfx_tensor_free(x0);
    cfx_tensor_free(w);
}

CFX_TEST(optim, state_round_trip_resumes_exactly) {
    float x[4] = {1, 2, 3, 4}, y[4], g[4] = {0.1f, -0.2f, 0.3f, -0.4f};
    cfx_optim *a = cfx_optim_adam(4, NULL), *b = cfx_optim_adam(4, NULL);
    CHECK_OK(cfx_optim_step(a, x, g));
    float state[9];
    CHECK_INT_EQ(cfx_optim_state_size(a), 9);
    cfx_optim_state_save(a, state);
    cfx_optim_state_load(b, state);
    memcpy(y, x, sizeof x);
    CHECK_OK(cfx_optim_step(a, x, g));
    CHECK_OK(cfx_optim_step(b, y, g));
    CHECK_ARRAY_NEAR(x, y, 4, 0, 0);
    cfx_optim_free(a);
    cfx_optim_free(b);
}

CFX_TEST(optim, bad_input_is_refused) {
    CHECK(cfx_optim_adam(4, &(cfx_adam_options){.beta1 = 1.5f}) == NULL);
    CHECK(strstr(cfx_last_error(), "betas") != NULL);
    CHECK(cfx_optim_sgd(4, &(cfx_sgd_options){.lr = -1}) == NULL);
    cfx_optim *o = cfx_optim_adam(2, NULL);
    float x[2] = {1, 2}, g[2] = {NAN, 0};
    CHECK_ERR(cfx_optim_step(o, x, g), CFX_ENUMERIC);
    CHECK(x[0] == 1 && x[1] == 2);
    CHECK_ERR(cfx_optim_step(o, NULL, g), CFX_EINVAL);
    cfx_optim_free(o);
    cfx_optim_free(NULL);
}

/* The trainer's lanes: a step on g0 + g1 in one pass gives the bits of a step on their sum, for
 * both optimizers, over enough elements to run on two threads; the check names the first element
 * beyond its bound, a finite one as too large to sum. */
CFX_TEST(optim, step_on_a_sum_of_two_gradients) {
    const size_t n = 200003;
    float *x = malloc(n * 4), *y = malloc(n * 4), *g0 = malloc(n * 4), *g1 = malloc(n * 4),
          *sum = malloc(n * 4);
    cfx_rng r;
    cfx_rng_init(&r, 8);
    for (size_t i = 0; i < n; i++) {
        x[i] = y[i] = (float)cfx_rng_normal(&r);
        g0[i] = (float)cfx_rng_normal(&r), g1[i] = (float)cfx_rng_normal(&r);
        sum[i] = g0[i] + g1[i];
    }
    cfx_set_threads(2);
    for (int k = 0; k < 2; k++) {
        cfx_optim *a = k ? cfx_optim_sgd(n, &(cfx_sgd_options){.momentum = 0.9f})
                         : cfx_optim_adam(n, &(cfx_adam_options){.weight_decay = 0.01f});
        cfx_optim *b = k ? cfx_optim_sgd(n, &(cfx_sgd_options){.momentum = 0.9f})
                         : cfx_optim_adam(n, &(cfx_adam_options){.weight_decay = 0.01f});
        for (int step = 0; step < 3; step++) {
            CHECK_OK(cfx__optim_step2(a, x, g0, g1));
            CHECK_OK(cfx_optim_step(b, y, sum));
        }
        CHECK(memcmp(x, y, n * 4) == 0);
        cfx_optim_free(a), cfx_optim_free(b);
    }
    cfx_set_threads(1);
    CHECK_OK(cfx__optim_check_grad(g0, n, 1e30f));
    g0[150000] = 3e38f, g0[170000] = NAN;
    CHECK_ERR(cfx__optim_check_grad(g0, n, FLT_MAX / 2), CFX_ENUMERIC);
    CHECK_MSG(strstr(cfx_last_error(), "element 150000 is 3e+38, too large to sum"), "%s",
              cfx_last_error());
    CHECK_OK(cfx__optim_check_grad(g0 + 160000, 10000, FLT_MAX));
    CHECK_ERR(cfx__optim_check_grad(g0 + 160000, n - 160000, FLT_MAX), CFX_ENUMERIC);
    CHECK(strstr(cfx_last_error(), "element 10000 is nan") != NULL);
    free(x), free(y), free(g0), free(g1), free(sum);
}
