/* bench_onnx.c - ONNX import time of a large model and forward time of an imported network
 * (1 thread, medians). usage: bench_onnx BIG.onnx RESNET.onnx; prints "import_s forward_s". */
#include "cfx.h"

#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_onnx BIG.onnx RESNET.onnx\n");
        return 2;
    }
    cfx_set_threads(1);
    double ti[5], tf[10];
    for (int k = 0; k < 5; k++) {
        double t0 = cfx_now();
        cfx_graph *g = cfx_onnx_load(argv[1], NULL);
        ti[k] = cfx_now() - t0;
        if (!g) {
            fprintf(stderr, "%s\n", cfx_last_error());
            return 1;
        }
        cfx_graph_free(g);
    }
    cfx_graph *g = cfx_onnx_load(argv[2], NULL);
    if (!g || cfx_graph_compile(g) != CFX_OK) {
        fprintf(stderr, "%s\n", cfx_last_error());
        return 1;
    }
    cfx_rng r;
    cfx_rng_init(&r, 0);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, cfx_graph_find(g, "input")), &r, 0, 1);
    for (int k = 0; k < 3; k++) cfx_graph_forward(g);
    for (int k = 0; k < 10; k++) {
        double t0 = cfx_now();
        cfx_graph_forward(g);
        tf[k] = cfx_now() - t0;
    }
    cfx_graph_free(g);
    qsort(ti, 5, sizeof *ti, cmp);
    qsort(tf, 10, sizeof *tf, cmp);
    printf("%.6f %.6f\n", ti[2], tf[5]);
    return 0;
}
