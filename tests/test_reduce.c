/* test_reduce.c - sum/mean/max over axis sets, argmax, softmax and log-softmax: gradient checks,
 * hand-computed values, PyTorch values and gradients, and bad axes. */
#include "gradcheck.h"
#include "ops_oracle.h"

static const int64_t X3[3] = {2, 3, 4};

/* x (2,3,4) with a gradient, filled with distinct uniform values (no ties for max). */
static cfx_graph *input_graph(int *x) {
    cfx_graph *g = cfx_graph_new();
    *x = cfx_graph_input(g, "x", 3, X3);
    cfx_graph_requires_grad(g, *x, 1);
    return g;
}

static void fill(cfx_graph *g, int x, uint64_t seed) {
    cfx_rng r;
    cfx_rng_init(&r, seed);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &r, -2.0f, 2.0f);
}

CFX_TEST(reduce, gradients_over_axis_sets) {
    struct {
        int naxes, axes[3];
    } sets[] = {{0, {0}},    {1, {0}},      {1, {1}},      {1, {-1}},
                {2, {0, 2}}, {2, {-1, -2}}, {3, {2, 0, 1}}};
    const char *kinds[] = {"sum", "mean", "max"};
    for (int k = 0; k < 3; k++)
        for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++)
            for (int keep = 0; keep < 2; keep++) {
                int x;
                cfx_graph *g = input_graph(&x);
                int y = cfx_op_reduce(g, x, (cfx_reduce_kind)k, sets[s].axes, sets[s].naxes, keep);
                CHECK_OK(cfx_graph_compile(g));
                fill(g, x, 3 + s);
                if (CHECK_GRADS(g, y, NULL))
                    printf("  (reduce %s, axis set %zu, keepdims %d)\n", kinds[k], s, keep);
                cfx_graph_free(g);
            }
}

CFX_TEST(reduce, values_shapes_and_first_max) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 2, (int64_t[]){2, 3});
    cfx_graph_requires_grad(g, x, 1);
    int s1 = cfx_op_reduce(g, x, CFX_REDUCE_SUM, (int[]){1}, 1, 0);
    int m0 = cfx_op_reduce(g, x, CFX_REDUCE_MEAN, (int[]){-2}, 1, 1);
    int mx = cfx_op_reduce(g, x, CFX_REDUCE_MAX, (int[]){1}, 1, 0);
    int all = cfx_op_reduce(g, x, CFX_REDUCE_SUM, NULL, 0, 0);
    int am = cfx_op_argmax(g, x, -1, 0);
    int am0 = cfx_op_argmax(g, x, 0, 1);
    CHECK_OK(cfx_graph_compile(g));
    float xs[6] = {1, 5, 5, -2, -1, -3}; /* a tie in row 0: the first 5 wins */
    memcpy(cfx_graph_tensor(g, x)->data, xs, sizeof xs);
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, s1)->data, ((float[]){11, -6}), 2, 0, 0);
    const cfx_tensor *tm = cfx_graph_tensor(g, m0);
    CHECK_INT_EQ(tm->ndim, 2);
    CHECK_INT_EQ(tm->shape[0], 1);
    CHECK_INT_EQ(tm->shape[1], 3);
    CHECK_ARRAY_NEAR(tm->data, ((float[]){-0.5f, 2, 1}), 3, 0, 0);
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, mx)->data, ((float[]){5, -1}), 2, 0, 0);
    CHECK_INT_EQ(cfx_graph_tensor(g, all)->ndim, 0);
    CHECK_NEAR(cfx_graph_tensor(g, all)->data[0], 5, 0);
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, am)->data, ((float[]){1, 1}), 2, 0, 0);
    CHECK_INT_EQ(cfx_graph_tensor(g, am0)->ndim, 2);
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, am0)->data, ((float[]){0, 0, 0}), 3, 0, 0);
    CHECK_OK(cfx_graph_backward(g, mx, NULL));
    CHECK_ARRAY_NEAR(cfx_graph_grad(g, x), ((float[]){0, 1, 0, 0, 1, 0}), 6, 0, 0);
    /* Argmax has no gradient: backward from it is refused. */
    CHECK_ERR(cfx_graph_backward(g, am, NULL), CFX_EINVAL);
    cfx_graph_free(g);
}

CFX_TEST(reduce, softmax_gradients_on_each_axis) {
    int axes[] = {0, 1, 2, -1};
    for (int a = 0; a < 4; a++)
        for (int lg = 0; lg < 2; lg++) {
            int x;
            cfx_graph *g = input_graph(&x);
            int y = lg ? cfx_op_log_softmax(g, x, axes[a]) : cfx_op_softmax(g, x, axes[a]);
            CHECK_OK(cfx_graph_compile(g));
            fill(g, x, 8);
            if (CHECK_GRADS(g, y, NULL))
                printf("  (%ssoftmax axis %d)\n", lg ? "log_" : "", axes[a]);
            cfx_graph_free(g);
        }
}

/* Logits far outside exp's range stay finite thanks to the max subtraction. */
CFX_TEST(reduce, softmax_is_stable_for_huge_logits) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 2, (int64_t[]){2, 3});
    int p = cfx_op_softmax(g, x, 1), lp = cfx_op_log_softmax(g, x, 1);
    CHECK_OK(cfx_graph_compile(g));
    float xs[6] = {1000, 1000, 0, -1000, -1001, -1e4f};
    memcpy(cfx_graph_tensor(g, x)->data, xs, sizeof xs);
    CHECK_OK(cfx_graph_forward(g));
    float e = expf(-1.0f), s = 1 + e;
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, p)->data, ((float[]){0.5f, 0.5f, 0, 1 / s, e / s, 0}), 6,
                     1e-6, 1e-7);
    CHECK_ARRAY_NEAR(
        cfx_graph_tensor(g, lp)->data,
        ((float[]){-logf(2), -logf(2), -1000 - logf(2), -logf(s), -1 - logf(s), -9000 - logf(s)}),
        6, 1e-6, 1e-6);
    cfx_graph_free(g);
}

CFX_TEST(reduce, softmax_and_reductions_match_torch) {
    oracle o = {0};
    int axes[] = {0, 1, -1};
    char attr[16];
    for (int a = 0; a < 3; a++)
        for (int lg = 0; lg < 2; lg++) {
            int x;
            cfx_graph *g = input_graph(&x);
            int y = lg ? cfx_op_log_softmax(g, x, axes[a]) : cfx_op_softmax(g, x, axes[a]);
            CHECK_OK(cfx_graph_compile(g));
            fill(g, x, 12 + (uint64_t)a);
            snprintf(attr, sizeof attr, "%d", axes[a]);
            ORACLE_ADD(&o, lg ? "log_softmax" : "softmax", attr, g, y, &x, 1, NULL);
            cfx_graph_free(g);
        }
    /* Reductions too (random values: no ties for torch.amax to split). */
    struct {
        cfx_reduce_kind kind;
        int keep, naxes, axes[2];
        const char *attrs; /* kind keepdims axes... */
    } reds[] = {{CFX_REDUCE_SUM, 1, 2, {0, 2}, "sum 1 0 2"},
                {CFX_REDUCE_MEAN, 0, 1, {-1}, "mean 0 -1"},
                {CFX_REDUCE_MAX, 0, 1, {1}, "max 0 1"},
                {CFX_REDUCE_MAX, 1, 0, {0}, "max 1"}};
    for (int k = 0; k < 4; k++) {
        int x;
        cfx_graph *g = input_graph(&x);
        int y = cfx_op_reduce(g, x, reds[k].kind, reds[k].axes, reds[k].naxes, reds[k].keep);
        CHECK_OK(cfx_graph_compile(g));
        fill(g, x, 20 + (uint64_t)k);
        ORACLE_ADD(&o, "reduce", reds[k].attrs, g, y, &x, 1, NULL);
        cfx_graph_free(g);
    }
    ORACLE_RUN(&o);
}

CFX_TEST(reduce, bad_axes) {
    int x;
    cfx_graph *g = input_graph(&x);
    CHECK(cfx_op_reduce(g, x, CFX_REDUCE_SUM, (int[]){3}, 1, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "axis 3 is out of range for input (2, 3, 4)"), "message: %s",
              cfx_last_error());
    cfx_graph_free(g);
    g = input_graph(&x);
    CHECK(cfx_op_reduce(g, x, CFX_REDUCE_MAX, (int[]){1, -2}, 2, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "repeated"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
    g = input_graph(&x);
    CHECK(cfx_op_reduce(g, x, (cfx_reduce_kind)7, NULL, 0, 0) < 0);
    cfx_graph_free(g);
    g = input_graph(&x);
    CHECK(cfx_op_reduce(g, x, CFX_REDUCE_SUM, NULL, 7, 0) < 0);
    cfx_graph_free(g);
    g = input_graph(&x);
    CHECK(cfx_op_softmax(g, x, -4) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "axis -4"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
    g = input_graph(&x);
    CHECK(cfx_op_argmax(g, x, 3, 0) < 0);
    CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
    cfx_graph_free(g);
}
