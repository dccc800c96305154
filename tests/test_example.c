/* test_example.c - the usage example at the top of include/cfx.h, compiled and run as written.
 *
 * The example is not copied here: the build extracts the indented lines of the header's opening
 * comment into $(BUILD)/gen/header_example.inc (see the Makefile), and the test includes them,
 * so an edit to the example in the header is what this test compiles (errors point at the
 * header's lines). The example ends by freeing its graph; the checks of what it claims run just
 * before that, through a hook on cfx_graph_free. */
#include "test.h"

static bool example_checked;

/* The example's claims: s is a scalar, and ds/dx is a finite, non-zero gradient per pixel. */
static void check_example(cfx_graph *g, int x, int s) {
    example_checked = true;
    CHECK_INT_EQ(cfx_graph_tensor(g, s)->numel, 1);
    CHECK_INT_EQ(cfx_graph_tensor(g, x)->numel, 64);
    const float *dx = cfx_graph_grad(g, x);
    CHECK(dx != NULL);
    double norm = 0;
    for (int i = 0; dx && i < 64; i++) {
        norm += fabs(dx[i]);
        CHECK(isfinite(dx[i]));
    }
    CHECK(norm > 0);
}

CFX_TEST(example, header_example_runs) {
    example_checked = false;
/* The hook: the example's last line, cfx_graph_free(g), first checks the values the example
 * made (g, x, s). A macro is not expanded again inside its own expansion, so the second
 * cfx_graph_free is the library's. */
#define cfx_graph_free(graph) (check_example(graph, x, s), cfx_graph_free(graph))
#include "header_example.inc"
#undef cfx_graph_free
    CHECK_MSG(example_checked, "the example in include/cfx.h no longer ends with "
                               "cfx_graph_free(g), so its checks did not run");
}
