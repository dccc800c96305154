/* test_example.c - the usage example at the top of include/cfx.h, compiled and run as written
 * (kept in sync by hand: the block below is the header's example verbatim, plus checks). */
#include "test.h"

CFX_TEST(example, header_example_runs) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "image", 4, (int64_t[]){1, 1, 8, 8});
    int w = cfx_graph_param(g, "w", 4, (int64_t[]){4, 1, 3, 3});
    int y = cfx_op_conv2d(g, x, w, -1, &(cfx_conv2d_attr){.stride = {1, 1}, .pad = {1, 1, 1, 1}});
    int s = cfx_op_reduce(g, cfx_op_relu(g, y), CFX_REDUCE_SUM, NULL, 0, 0);
    cfx_graph_requires_grad(g, x, 1);
    if (cfx_graph_compile(g) != CFX_OK) fprintf(stderr, "%s\n", cfx_last_error());
    cfx_rng rng;
    cfx_rng_init(&rng, 42);
    cfx_tensor_fill_normal(cfx_graph_tensor(g, w), &rng, 0.0f, 0.5f);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &rng, 0.0f, 1.0f);
    cfx_graph_forward(g);
    cfx_graph_backward(g, s, NULL); // ds/dx is now in cfx_graph_grad(g, x)

    /* The example's claims: a scalar output and a finite, non-zero gradient per pixel. */
    CHECK_INT_EQ(cfx_graph_tensor(g, s)->numel, 1);
    const float *dx = cfx_graph_grad(g, x);
    CHECK(dx != NULL);
    double norm = 0;
    for (int i = 0; dx && i < 64; i++) {
        norm += fabs(dx[i]);
        CHECK(isfinite(dx[i]));
    }
    CHECK(norm > 0);
    cfx_graph_free(g);
}
