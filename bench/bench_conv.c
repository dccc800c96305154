/* bench_conv.c - times Conv forward + backward (data, weights and bias) through a cfx graph, on
 * the default path (the dispatch's choice: oneDNN, or the direct kernels for small ones) and on
 * the im2col + GEMM reference, for bench/conv.sh.
 *
 *   bench_conv [--threads N] [--reps R] CASE...
 *   CASE: "B,C,K,H,W" (3x3 conv, pad 1, bias) or "small" (1x1x28x28 -> 32, forward + backward
 *   to the input only, the batch-1 latency case).
 * Prints one line per case and path: "cfx CASE THREADS PATH MEDIAN_MS MIN_MS". */
#include "cfx.h"
#include "engine/ops/conv.h"

#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and minimum over reps of the mean time of one forward + backward. */
static void time_case(const char *name, int64_t B, int64_t C, int64_t K, int64_t H, int64_t W,
                      bool small, int reps, int threads, bool reference) {
    cfx__conv_force_path(reference ? CFX__CONV_PATH_REF : CFX__CONV_PATH_AUTO);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){B, C, H, W});
    int w = cfx_graph_param(g, "w", 4, (int64_t[]){K, C, 3, 3});
    int b = cfx_graph_param(g, "b", 1, &K);
    int y = cfx_op_conv2d(g, x, w, b, &(cfx_conv2d_attr){.pad = {1, 1, 1, 1}});
    cfx_graph_requires_grad(g, x, 1);
    if (small) cfx_graph_enable_param_grads(g, 0);
    if (cfx_graph_compile(g) != CFX_OK) {
        fprintf(stderr, "bench_conv: %s\n", cfx_last_error());
        exit(1);
    }
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &r, -1, 1);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, w), &r, -0.1f, 0.1f);
    /* Warm up, then choose the iterations per rep so one rep takes about 0.2 s. */
    double t0 = cfx_now();
    int warm = 0;
    while (warm < 2 || cfx_now() - t0 < 0.2) {
        cfx_graph_forward(g);
        cfx_graph_backward(g, y, NULL);
        warm++;
    }
    double per = (cfx_now() - t0) / warm;
    int iters = (int)(0.2 / per) + 1;
    double *ts = malloc((size_t)reps * sizeof *ts);
    for (int k = 0; k < reps; k++) {
        double s = cfx_now();
        for (int i = 0; i < iters; i++) {
            cfx_graph_forward(g);
            cfx_graph_backward(g, y, NULL);
        }
        ts[k] = (cfx_now() - s) / iters * 1e3;
    }
    qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
    printf("cfx %s %d %s %.4f %.4f\n", name, threads, reference ? "im2col" : "onednn", ts[reps / 2],
           ts[0]);
    fflush(stdout);
    free(ts);
    cfx_graph_free(g);
    cfx__conv_force_path(CFX__CONV_PATH_AUTO);
}

int main(int argc, char **argv) {
    int threads = 1, reps = 7;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
    }
    cfx_set_threads(threads);
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            i++;
            continue;
        }
        if (strcmp(argv[i], "small") == 0) {
            for (int ref = 0; ref < 2; ref++)
                time_case("small", 1, 1, 32, 28, 28, true, reps, threads, ref);
            continue;
        }
        long long B, C, K, H, W;
        if (sscanf(argv[i], "%lld,%lld,%lld,%lld,%lld", &B, &C, &K, &H, &W) != 5) {
            fprintf(stderr, "bench_conv: bad case '%s' (want B,C,K,H,W or small)\n", argv[i]);
            return 2;
        }
        for (int ref = 0; ref < 2; ref++)
            time_case(argv[i], B, C, K, H, W, false, reps, threads, ref);
    }
    return 0;
}
