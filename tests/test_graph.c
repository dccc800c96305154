/* test_graph.c - building, planning, replanning, fan-out gradients, errors, leaks. */
#include "engine/ops/conv.h"
#include "gradcheck.h"

#include <stdlib.h>

CFX_TEST(graph, fan_out_gradients_sum) {
    /* y = x*x + exp(x): both uses of x contribute to dy/dx = 2x + exp(x). */
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 1, (int64_t[]){4});
    int y = cfx_op_add(g, cfx_op_mul(g, x, x), cfx_op_exp(g, x));
    cfx_graph_requires_grad(g, x, 1);
    CHECK_OK(cfx_graph_compile(g));
    float xs[4] = {-1, 0, 0.5f, 2};
    memcpy(cfx_graph_tensor(g, x)->data, xs, sizeof xs);
    CHECK_OK(cfx_graph_forward(g));
    CHECK_OK(cfx_graph_backward(g, y, NULL));
    float want[4];
    for (int i = 0; i < 4; i++) want[i] = 2 * xs[i] + expf(xs[i]);
    CHECK_ARRAY_NEAR(cfx_graph_grad(g, x), want, 4, 1e-6, 1e-6);
    /* A second backward overwrites rather than accumulates. */
    CHECK_OK(cfx_graph_backward(g, y, NULL));
    CHECK_ARRAY_NEAR(cfx_graph_grad(g, x), want, 4, 1e-6, 1e-6);
    cfx_graph_free(g);
}

CFX_TEST(graph, params_live_in_one_block) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 2, (int64_t[]){2, 3});
    int w1 = cfx_graph_param(g, "w1", 2, (int64_t[]){2, 3});
    int w2 = cfx_graph_param(g, "w2", 1, (int64_t[]){3});
    cfx_tensor_fill(cfx_graph_tensor(g, w1), 2.0f); /* filled before compile: kept */
    int y = cfx_op_mul(g, cfx_op_add(g, x, w1), w2);
    CHECK_OK(cfx_graph_compile(g));
    size_t n;
    float *p = cfx_graph_params(g, &n);
    CHECK_INT_EQ(n, 9);
    CHECK(cfx_graph_tensor(g, w1)->data == p);
    CHECK(cfx_graph_tensor(g, w2)->data == p + 6);
    CHECK_NEAR(p[0], 2.0f, 0);
    cfx_rng r;
    cfx_rng_init(&r, 3);
    cfx_tensor_fill_normal(cfx_graph_tensor(g, x), &r, 0, 1);
    cfx_tensor_fill_normal(cfx_graph_tensor(g, w2), &r, 0, 1);
    CHECK_GRADS(g, y, NULL);
    CHECK(cfx_graph_param_grads(g, NULL) != NULL);
    /* Without parameter gradients and without an input that wants one, nothing flows. */
    CHECK_OK(cfx_graph_enable_param_grads(g, 0));
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ERR(cfx_graph_backward(g, y, NULL), CFX_EINVAL);
    cfx_graph_free(g);
}

CFX_TEST(graph, reshape_input_replans) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 2, (int64_t[]){1, 3});
    int b = cfx_graph_const(g, "b", 1, (int64_t[]){3}, (float[]){1, 2, 3});
    int y = cfx_op_add(g, x, b);
    CHECK_OK(cfx_graph_compile(g));
    CHECK_OK(cfx_graph_reshape_input(g, x, 2, (int64_t[]){4, 3}));
    CHECK_OK(cfx_graph_forward(g)); /* replans: the new input buffer is zeroed */
    const cfx_tensor *t = cfx_graph_tensor(g, y);
    CHECK_INT_EQ(t->shape[0], 4);
    CHECK_NEAR(t->data[11], 3.0f, 0);
    CHECK_OK(cfx_graph_reshape_input(g, x, 2, (int64_t[]){4, 5}));
    CHECK_ERR(cfx_graph_forward(g), CFX_ESHAPE);
    CHECK(strstr(cfx_last_error(), "broadcast") != NULL);
    cfx_graph_free(g);
}

CFX_TEST(graph, bad_input_gets_messages) {
    cfx_graph *g = cfx_graph_new();
    CHECK(cfx_graph_input(g, "x", 2, (int64_t[]){0, 3}) < 0);
    CHECK(strstr(cfx_last_error(), "must be >= 1") != NULL);
    cfx_graph_free(g);
    g = cfx_graph_new();
    CHECK(cfx_graph_input(g, "x", 7, (int64_t[]){1, 1, 1, 1, 1, 1, 1}) < 0);
    cfx_graph_free(g);
    g = cfx_graph_new();
    CHECK(cfx_graph_input(g, "x", 3, (int64_t[]){1 << 20, 1 << 20, 1 << 20}) < 0);
    CHECK(strstr(cfx_last_error(), "(1048576, 1048576, 1048576) would have more than 2^40") !=
          NULL);
    cfx_graph_free(g);
    g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 1, (int64_t[]){2});
    CHECK(cfx_graph_input(g, "x", 1, (int64_t[]){2}) < 0); /* duplicate name */
    cfx_graph_free(g);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 1, (int64_t[]){2});
    CHECK(cfx_op_add(g, x, 57) < 0);
    CHECK_ERR(cfx_graph_forward(g), CFX_EINVAL);
    CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
    cfx_graph_free(g);
    CHECK(cfx_op_relu(NULL, 0) < 0);
    CHECK_ERR(cfx_graph_compile(NULL), CFX_EINVAL);
    CHECK(cfx_graph_tensor(NULL, 0) == NULL);
    cfx_graph_free(NULL);
}

CFX_TEST(graph, no_leaks_and_allocation_failures_are_clean) {
    /* Fail each allocation in turn: every failure must come back as an error, never a crash,
     * and nothing may leak. */
    for (long fail = 1; fail < 60; fail++) {
        cfx_test_alloc_begin(fail);
        cfx_graph *g = cfx_graph_new();
        int x = cfx_graph_input(g, "x", 2, (int64_t[]){2, 3});
        int w = cfx_graph_param(g, "w", 1, (int64_t[]){3});
        int y = cfx_op_sigmoid(g, cfx_op_mul(g, x, w));
        cfx_graph_requires_grad(g, x, 1);
        if (cfx_graph_compile(g) == CFX_OK && cfx_graph_forward(g) == CFX_OK)
            (void)cfx_graph_backward(g, y, NULL);
        cfx_graph_free(g);
        long live = cfx_test_alloc_end();
        CHECK_MSG(live == 0, "failing allocation %ld leaked %ld blocks", fail, live);
    }
}

CFX_TEST(graph, unreached_input_gradient_is_zero) {
    /* Two inputs; backward from an output that depends on one of them only. The other's
     * gradient must read zero, not what an earlier backward left there. */
    cfx_graph *g = cfx_graph_new();
    int a = cfx_graph_input(g, "a", 1, (int64_t[]){3}),
        b = cfx_graph_input(g, "b", 1, (int64_t[]){3});
    int ya = cfx_op_exp(g, a), yb = cfx_op_mul(g, b, b);
    cfx_graph_requires_grad(g, a, 1);
    cfx_graph_requires_grad(g, b, 1);
    CHECK_OK(cfx_graph_compile(g));
    cfx_tensor_fill(cfx_graph_tensor(g, b), 2.0f);
    CHECK_OK(cfx_graph_forward(g));
    CHECK_OK(cfx_graph_backward(g, yb, NULL));
    CHECK_NEAR(cfx_graph_grad(g, b)[0], 4.0f, 0);
    CHECK_OK(cfx_graph_backward(g, ya, NULL));
    float zeros[3] = {0, 0, 0}, ones[3] = {1, 1, 1};
    CHECK_ARRAY_NEAR(cfx_graph_grad(g, b), zeros, 3, 0, 0);
    CHECK_ARRAY_NEAR(cfx_graph_grad(g, a), ones, 3, 0, 0);
    cfx_graph_free(g);
}

/* Backward lets the first op to write a gradient buffer store into it instead of zeroing it and
 * adding (din_fresh). Every pattern that must still accumulate, against central differences:
 * a shared parameter used by two nodes, a value used twice by one node, a value reached through
 * an alias (flatten), and a buffer first written by an op that always adds (max pool), then by
 * one that can store (relu). Run twice so stale values from the first pass would show. */
CFX_TEST(graph, first_writer_stores_and_the_rest_accumulate) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){2, 3, 2, 2});
    int w = cfx_graph_param(g, "w", 2, (int64_t[]){4, 12});
    int b = cfx_graph_param(g, "b", 1, (int64_t[]){4});
    int r = cfx_op_tanh(g, x);
    int f = cfx_op_flatten(g, r, 1);
    int y1 = cfx_op_linear(g, f, w, b), y2 = cfx_op_linear(g, f, w, b);
    int sq = cfx_op_mul(g, y2, y2);
    int m = cfx_op_flatten(g, cfx_op_max_pool2d(g, x, &(cfx_pool2d_attr){.kernel = {2, 2}}), 1);
    int xm = cfx_op_sigmoid(g, cfx_op_flatten(g, x, 1)); /* x again, through a second alias */
    /* Two convolutions sharing x, weights and bias (oneDNN's store and add reorders). */
    int cw = cfx_graph_param(g, "cw", 4, (int64_t[]){2, 3, 2, 2});
    int cb = cfx_graph_param(g, "cb", 1, (int64_t[]){2});
    int c1 = cfx_op_conv2d(g, x, cw, cb, NULL), c2 = cfx_op_conv2d(g, r, cw, cb, NULL);
    int cc = cfx_op_flatten(g, cfx_op_mul(g, c1, c2), 1);
    int all = cfx_op_concat(g, (int[]){cfx_op_add(g, y1, sq), m, xm, cc}, 4, 1);
    cfx_graph_requires_grad(g, x, 1);
    CHECK_OK(cfx_graph_compile(g));
    gradcheck_fill(g, x, 3, 0.3f);
    for (int pass = 0; pass < 2; pass++) CHECK_INT_EQ(CHECK_GRADS(g, all, NULL), 0);
    cfx_graph_free(g);
}

/* A ReLU reading only a Linear's, Gemm's, Conv's or ConvTranspose's private output is fused
 * into that op (plan_relu_fusion): the op writes max(0, .) and the ReLU's forward is skipped.
 * Not fused: a ReLU whose input has a second reader, or is an output. Values and gradients must
 * equal the same graph with every ReLU input marked as an output (nothing fused, each op
 * gradchecked on its own elsewhere), on the reference convolution path and on the fast one.
 * (Six ReLU layers deep, central differences cross too many kinks to be a test here.) */
CFX_TEST(graph, relu_fused_into_the_op_before_it) {
    int pre[6], post[6], outs[2], xs[2];
    cfx_graph *gs[2];
    for (int path = 0; path < 2; path++) {
        cfx__conv_force_path(path ? CFX__CONV_PATH_AUTO : CFX__CONV_PATH_REF);
        for (int v = 0; v < 2; v++) {
            cfx_graph *g = gs[v] = cfx_graph_new();
            int x = xs[v] = cfx_graph_input(g, "x", 4, (int64_t[]){3, 16, 6, 6});
            const cfx_conv2d_attr same = {.pad = {1, 1, 1, 1}};
            int i = 0;
            pre[i] = cfx_op_conv2d(g, x, cfx_graph_param(g, "c1", 4, (int64_t[]){16, 16, 3, 3}),
                                   cfx_graph_param(g, "c1b", 1, (int64_t[]){16}), &same);
            post[i] = cfx_op_relu(g, pre[i]), i++;
            pre[i] = cfx_op_conv2d(
                g, post[i - 1], cfx_graph_param(g, "c2", 4, (int64_t[]){16, 16, 3, 3}), -1, &same);
            post[i] = cfx_op_relu(g, pre[i]), i++;
            pre[i] = cfx_op_conv_transpose2d(
                g, post[i - 1], cfx_graph_param(g, "t", 4, (int64_t[]){16, 4, 2, 2}),
                cfx_graph_param(g, "tb", 1, (int64_t[]){4}), &(cfx_conv2d_attr){.stride = {2, 2}});
            post[i] = cfx_op_relu(g, pre[i]), i++;
            int f = cfx_op_flatten(g, post[i - 1], 1); /* 4 x 12 x 12 */
            pre[i] = cfx_op_linear(g, f, cfx_graph_param(g, "l1", 2, (int64_t[]){40, 576}),
                                   cfx_graph_param(g, "l1b", 1, (int64_t[]){40}));
            post[i] = cfx_op_relu(g, pre[i]), i++;
            pre[i] = cfx_op_gemm(g, post[i - 1], cfx_graph_param(g, "l2", 2, (int64_t[]){24, 40}),
                                 -1, &(cfx_gemm_attr){.trans_b = 1});
            post[i] = cfx_op_relu(g, pre[i]), i++;
            /* Read twice: not fused. */
            pre[i] =
                cfx_op_linear(g, post[i - 1], cfx_graph_param(g, "l3", 2, (int64_t[]){5, 24}), -1);
            post[i] = cfx_op_relu(g, pre[i]), i++;
            outs[v] = cfx_op_mul(g, post[i - 1], pre[i - 1]);
            cfx_graph_requires_grad(g, x, 1);
            if (v)
                for (int k = 0; k < 6; k++) CHECK_OK(cfx_graph_set_output(g, pre[k], NULL));
            CHECK_OK(cfx_graph_compile(g));
            gradcheck_fill(g, x, 51, 0.3f);
            CHECK_OK(cfx_graph_forward(g));
            float *dy = malloc((size_t)cfx_graph_tensor(g, outs[v])->numel * sizeof *dy);
            for (int64_t k = 0; k < cfx_graph_tensor(g, outs[v])->numel; k++)
                dy[k] = 0.1f * (float)(k % 7) - 0.3f;
            CHECK_OK(cfx_graph_backward(g, outs[v], dy));
            free(dy);
            /* Fused where planned: the op before each of the first five ReLUs but the
             * ConvTranspose (k 2), which fuses none (src/engine/ops/conv.c). */
            for (int k = 0; k < 6; k++) {
                const cfx__node *n = &g->nodes[g->values[pre[k]].producer];
                bool fused = v == 0 && k < 5 && k != 2;
                CHECK_INT_EQ(n->relu, fused);
                CHECK_INT_EQ(g->nodes[g->values[post[k]].producer].fused, fused);
            }
        }
        size_t n = (size_t)cfx_graph_tensor(gs[1], outs[1])->numel;
        if (!CHECK_ARRAY_NEAR(cfx_graph_tensor(gs[0], outs[0])->data,
                              cfx_graph_tensor(gs[1], outs[1])->data, n, 1e-5, 1e-5))
            printf("  (output, path %d)\n", path);
        n = (size_t)cfx_graph_tensor(gs[1], xs[1])->numel;
        if (!CHECK_ARRAY_NEAR(cfx_graph_grad(gs[0], xs[0]), cfx_graph_grad(gs[1], xs[1]), n, 1e-5,
                              1e-5))
            printf("  (input gradient, path %d)\n", path);
        size_t np;
        cfx_graph_params(gs[1], &np);
        if (!CHECK_ARRAY_NEAR(cfx_graph_param_grads(gs[0], NULL),
                              cfx_graph_param_grads(gs[1], NULL), np, 1e-5, 1e-5))
            printf("  (parameter gradients, path %d)\n", path);
        for (int v = 0; v < 2; v++) cfx_graph_free(gs[v]);
    }
    cfx__conv_force_path(CFX__CONV_PATH_AUTO);
}
