/* bench_engine.c - a small CNN at batch 1, forward and backward to the input image: the inner
 * step of every gradient-based counterfactual search. Two networks:
 *   ref:  the reference classifier of DESIGN.md on 1x28x28 (conv 5x5/2 32, conv 3x3/2 64,
 *         conv 3x3/2 64, fully connected 512-512-256-256-10, softmax);
 *   tiny: conv 3x3 8, batch norm, relu, max pool, conv 3x3/2 16, relu, avg pool, linear, softmax.
 * Weights are random (seeded); the same networks run in bench/engine_torch.py.
 * Usage: bench_engine THREADS REPEATS -> one line per network: "name median_ms". */
#include "cfx.h"

#include <stdio.h>
#include <stdlib.h>

static int conv(cfx_graph *g, int x, int cin, int cout, int k, int stride, int pad, int *np) {
    char w[32], b[32];
    snprintf(w, sizeof w, "w%d", (*np)++);
    snprintf(b, sizeof b, "b%d", (*np)++);
    int wi = cfx_graph_param(g, w, 4, (int64_t[]){cout, cin, k, k});
    int bi = cfx_graph_param(g, b, 1, (int64_t[]){cout});
    return cfx_op_conv2d(
        g, x, wi, bi, &(cfx_conv2d_attr){.stride = {stride, stride}, .pad = {pad, pad, pad, pad}});
}

static int linear(cfx_graph *g, int x, int in, int out, int *np) {
    char w[32], b[32];
    snprintf(w, sizeof w, "w%d", (*np)++);
    snprintf(b, sizeof b, "b%d", (*np)++);
    return cfx_op_linear(g, x, cfx_graph_param(g, w, 2, (int64_t[]){out, in}),
                         cfx_graph_param(g, b, 1, (int64_t[]){out}));
}

static int build_ref(cfx_graph *g, int x) {
    int np = 0;
    int h = cfx_op_relu(g, conv(g, x, 1, 32, 5, 2, 2, &np)); /* 14x14 */
    h = cfx_op_relu(g, conv(g, h, 32, 64, 3, 2, 1, &np));    /* 7x7 */
    h = cfx_op_relu(g, conv(g, h, 64, 64, 3, 2, 1, &np));    /* 4x4 */
    h = cfx_op_flatten(g, h, 1);
    int dims[] = {64 * 4 * 4, 512, 512, 256, 256};
    for (int i = 0; i < 4; i++) h = cfx_op_relu(g, linear(g, h, dims[i], dims[i + 1], &np));
    return cfx_op_softmax(g, linear(g, h, 256, 10, &np), 1);
}

static int build_tiny(cfx_graph *g, int x) {
    int np = 0;
    int h = conv(g, x, 1, 8, 3, 1, 1, &np);
    int s = cfx_graph_param(g, "bn_s", 1, (int64_t[]){8}),
        b = cfx_graph_param(g, "bn_b", 1, (int64_t[]){8});
    int m = cfx_graph_const(g, "bn_m", 1, (int64_t[]){8}, NULL);
    float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    int v = cfx_graph_const(g, "bn_v", 1, (int64_t[]){8}, ones);
    h = cfx_op_batch_norm(g, h, s, b, m, v, &(cfx_batch_norm_attr){0});
    h = cfx_op_max_pool2d(g, cfx_op_relu(g, h), &(cfx_pool2d_attr){.kernel = {2, 2}});
    h = cfx_op_relu(g, conv(g, h, 8, 16, 3, 2, 1, &np));
    h = cfx_op_avg_pool2d(g, h, &(cfx_pool2d_attr){.kernel = {2, 2}});
    return cfx_op_softmax(g, linear(g, cfx_op_flatten(g, h, 1), 144, 10, &np), 1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double run(const char *name, int (*build)(cfx_graph *, int), int repeats) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    int y = build(g, x);
    cfx_graph_requires_grad(g, x, 1);
    cfx_graph_enable_param_grads(g, 0);
    if (cfx_graph_compile(g) != CFX_OK) {
        fprintf(stderr, "bench_engine: %s: %s\n", name, cfx_last_error());
        exit(1);
    }
    cfx_rng r;
    cfx_rng_init(&r, 1);
    size_t n;
    float *p = cfx_graph_params(g, &n);
    for (size_t i = 0; i < n; i++) p[i] = 0.1f * (float)cfx_rng_normal(&r);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &r, 0, 1);
    float seed[10] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    /* Each sample times a block of iterations long enough to rise above clock noise. */
    int iters = 200;
    double *t = malloc((size_t)repeats * sizeof *t);
    for (int w = 0; w < 50; w++) cfx_graph_forward(g), cfx_graph_backward(g, y, seed);
    for (int k = 0; k < repeats; k++) {
        double t0 = cfx_now();
        for (int i = 0; i < iters; i++) {
            cfx_graph_forward(g);
            cfx_graph_backward(g, y, seed);
        }
        t[k] = (cfx_now() - t0) / iters * 1e3;
    }
    qsort(t, (size_t)repeats, sizeof *t, cmp_double);
    double med = t[repeats / 2];
    free(t);
    cfx_graph_free(g);
    return med;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, repeats = argc > 2 ? atoi(argv[2]) : 7;
    cfx_set_threads(threads);
    printf("ref %.4f\n", run("ref", build_ref, repeats));
    printf("tiny %.4f\n", run("tiny", build_tiny, repeats));
    return 0;
}
