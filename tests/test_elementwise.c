/* test_elementwise.c - unary and broadcasting binary ops: values and gradient checks. */
#include "gradcheck.h"

#include <math.h>

typedef int (*unary_fn)(cfx_graph *, int);

/* Builds y = f(x) over a (2,3,4) input with values in [lo, hi] and checks its gradient. */
static void check_unary(const char *what, unary_fn f, float lo, float hi) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 3, (int64_t[]){2, 3, 4});
    int y = f(g, x);
    cfx_graph_requires_grad(g, x, 1);
    CHECK_OK(cfx_graph_compile(g));
    cfx_rng r;
    cfx_rng_init(&r, 5);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &r, lo, hi);
    if (CHECK_GRADS(g, y, NULL)) printf("  (unary op %s)\n", what);
    cfx_graph_free(g);
}

static int leaky(cfx_graph *g, int x) {
    return cfx_op_leaky_relu(g, x, 0.1f);
}
static int clip(cfx_graph *g, int x) {
    return cfx_op_clip(g, x, -0.5f, 0.5f);
}
static int powp(cfx_graph *g, int x) {
    return cfx_op_pow_scalar(g, x, 2.5f);
}
static int affine(cfx_graph *g, int x) {
    return cfx_op_affine(g, x, -1.5f, 0.25f);
}

CFX_TEST(elementwise, unary_gradients) {
    check_unary("relu", cfx_op_relu, -1, 1);
    check_unary("leaky_relu", leaky, -1, 1);
    check_unary("sigmoid", cfx_op_sigmoid, -3, 3);
    check_unary("tanh", cfx_op_tanh, -2, 2);
    check_unary("clip", clip, -1, 1);
    check_unary("exp", cfx_op_exp, -2, 2);
    check_unary("log", cfx_op_log, 0.5f, 3);
    check_unary("sqrt", cfx_op_sqrt, 0.5f, 3);
    check_unary("pow", powp, 0.5f, 2);
    check_unary("abs", cfx_op_abs, -1, 1);
    check_unary("neg", cfx_op_neg, -1, 1);
    check_unary("erf", cfx_op_erf, -2, 2);
    check_unary("normal_cdf", cfx_op_normal_cdf, -3, 3);
    check_unary("affine", affine, -1, 1);
}

/* Phi in the far lower tail keeps relative accuracy (erfc, not 1 + erf). */
CFX_TEST(elementwise, normal_cdf_values) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 1, (int64_t[]){5});
    int y = cfx_op_normal_cdf(g, x);
    CHECK_OK(cfx_graph_compile(g));
    float xs[5] = {0, 1.0f, -1.0f, -6.0f, -10.0f};
    /* scipy.stats.norm.cdf of the same points. */
    float want[5] = {0.5f, 0.8413447460685429f, 0.15865525393145707f, 9.865876450376946e-10f,
                     7.61985302416047e-24f};
    memcpy(cfx_graph_tensor(g, x)->data, xs, sizeof xs);
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, y)->data, want, 5, 1e-5, 0);
    cfx_graph_free(g);
}

/* Sigmoid's own exponential (elementwise.c) against the logistic in double: within 4 ulp over
 * [-100, 100] (a million points, both tails where the value is a normal float), exactly 0.5 at
 * +-0, the limits at +-inf and far out, NaN kept. */
CFX_TEST(elementwise, sigmoid_values) {
    enum { N = 1000001, S = 8 };
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 1, (int64_t[]){N + S});
    int y = cfx_op_sigmoid(g, x);
    CHECK_OK(cfx_graph_compile(g));
    float *xs = cfx_graph_tensor(g, x)->data;
    for (int i = 0; i < N; i++) xs[i] = -100.0f + 200.0f * (float)i / (N - 1);
    const float special[S] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e30f, -1e30f, 88.0f};
    memcpy(xs + N, special, sizeof special);
    CHECK_OK(cfx_graph_forward(g));
    const float *ys = cfx_graph_tensor(g, y)->data;
    double worst = 0;
    int at = 0;
    for (int i = 0; i < N; i++) {
        double want = 1.0 / (1.0 + exp(-(double)xs[i]));
        if (want < 1e-37) continue; /* denormal results: absolute error below 1e-37 */
        double ulp = nextafterf((float)want, INFINITY) - (float)want;
        double err = fabs(ys[i] - want) / ulp;
        if (err > worst) worst = err, at = i;
    }
    CHECK_MSG(worst <= 4, "sigmoid(%.9g) = %.9g: %.2f ulp from %.9g", xs[at], ys[at], worst,
              1.0 / (1.0 + exp(-(double)xs[at])));
    const float *sy = ys + N;
    CHECK(sy[0] == 0.5f && sy[1] == 0.5f);
    CHECK(sy[2] == 1.0f && sy[3] >= 0 && sy[3] < 1e-37f);
    CHECK(isnan(sy[4]));
    CHECK(sy[5] == 1.0f && sy[6] >= 0 && sy[6] < 1e-37f && sy[7] == 1.0f);
    cfx_graph_free(g);
}

typedef int (*binary_fn)(cfx_graph *, int, int);

static void check_binary(const char *what, binary_fn f, int nda, const int64_t *sa, int ndb,
                         const int64_t *sb, float lo, float hi) {
    cfx_graph *g = cfx_graph_new();
    int a = cfx_graph_input(g, "a", nda, sa), b = cfx_graph_input(g, "b", ndb, sb);
    int y = f(g, a, b);
    cfx_graph_requires_grad(g, a, 1);
    cfx_graph_requires_grad(g, b, 1);
    CHECK_OK(cfx_graph_compile(g));
    cfx_rng r;
    cfx_rng_init(&r, 11);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, a), &r, lo, hi);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, b), &r, lo, hi);
    if (CHECK_GRADS(g, y, NULL)) printf("  (binary op %s)\n", what);
    cfx_graph_free(g);
}

CFX_TEST(elementwise, binary_gradients_with_broadcasting) {
    binary_fn fs[] = {cfx_op_add, cfx_op_sub, cfx_op_mul, cfx_op_div, cfx_op_pow};
    const char *names[] = {"add", "sub", "mul", "div", "pow"};
    for (int k = 0; k < 5; k++) {
        check_binary(names[k], fs[k], 3, (int64_t[]){2, 3, 4}, 3, (int64_t[]){2, 3, 4}, 0.5f, 2);
        check_binary(names[k], fs[k], 3, (int64_t[]){2, 3, 4}, 1, (int64_t[]){4}, 0.5f, 2);
        check_binary(names[k], fs[k], 4, (int64_t[]){2, 3, 2, 2}, 3, (int64_t[]){3, 1, 1}, 0.5f, 2);
        check_binary(names[k], fs[k], 3, (int64_t[]){2, 1, 4}, 2, (int64_t[]){3, 1}, 0.5f, 2);
    }
}

CFX_TEST(elementwise, broadcast_values_and_errors) {
    cfx_graph *g = cfx_graph_new();
    int a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 1});
    int b = cfx_graph_input(g, "b", 1, (int64_t[]){3});
    int y = cfx_op_sub(g, a, b);
    CHECK_OK(cfx_graph_compile(g));
    const cfx_tensor *t = cfx_graph_tensor(g, y);
    CHECK_INT_EQ(t->ndim, 2);
    CHECK_INT_EQ(t->shape[0], 2);
    CHECK_INT_EQ(t->shape[1], 3);
    float av[2] = {10, 20}, bv[3] = {1, 2, 3}, want[6] = {9, 8, 7, 19, 18, 17};
    memcpy(cfx_graph_tensor(g, a)->data, av, sizeof av);
    memcpy(cfx_graph_tensor(g, b)->data, bv, sizeof bv);
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ARRAY_NEAR(t->data, want, 6, 0, 0);
    cfx_graph_free(g);

    g = cfx_graph_new();
    a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 3});
    b = cfx_graph_input(g, "b", 1, (int64_t[]){4});
    CHECK(cfx_op_add(g, a, b) < 0);
    CHECK(strstr(cfx_last_error(), "do not broadcast") != NULL);
    CHECK(cfx_op_relu(g, a) < 0); /* the first error sticks */
    CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
    CHECK(strstr(cfx_last_error(), "Add") != NULL);
    cfx_graph_free(g);
}
