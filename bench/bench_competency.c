/* bench_competency.c - PaRCE competency on a bundle: images per second of scoring (rho) and of
 * rho with its gradient with respect to the image (what IGD and FGD run every step), at batch
 * 1 and 50. The same computation runs in bench/competency_torch.py with the weights of the
 * same ONNX files.
 * Usage: bench_competency BUNDLE THREADS REPEATS -> lines "score_b1 images_per_s" etc. */
#include "cfx.h"

#include <stdio.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench_competency BUNDLE THREADS REPEATS\n");
        return 2;
    }
    int threads = atoi(argv[2]), repeats = atoi(argv[3]);
    cfx_set_threads(threads);
    const int batches[2] = {1, 50};
    for (int bi = 0; bi < 2; bi++) {
        int b = batches[bi];
        cfx_bundle *bu = cfx_bundle_load(argv[1], b);
        if (!bu) {
            fprintf(stderr, "bench_competency: %s\n", cfx_last_error());
            return 1;
        }
        cfx_competency_shape sh;
        cfx_competency_shape_of(bu->competency, &sh);
        cfx_tensor *x = cfx_tensor_new(4, (int64_t[]){b, sh.c, sh.h, sh.w});
        cfx_rng r;
        cfx_rng_init(&r, 1);
        cfx_tensor_fill_uniform(x, &r, 0, 1);
        float *rho = malloc((size_t)b * sizeof *rho), *grad = malloc((size_t)x->numel * 4);
        cfx_competency_scores sc = {.rho = rho};
        for (int mode = 0; mode < 2; mode++) {
            int iters = b == 1 ? 200 : 10;
            for (int w = 0; w < 20; w++)
                cfx_competency_score(bu->competency, x, &sc, mode ? grad : NULL);
            double *t = malloc((size_t)repeats * sizeof *t);
            for (int k = 0; k < repeats; k++) {
                double t0 = cfx_now();
                for (int i = 0; i < iters; i++)
                    if (cfx_competency_score(bu->competency, x, &sc, mode ? grad : NULL) !=
                        CFX_OK) {
                        fprintf(stderr, "bench_competency: %s\n", cfx_last_error());
                        return 1;
                    }
                t[k] = (cfx_now() - t0) / iters;
            }
            qsort(t, (size_t)repeats, sizeof *t, cmp_double);
            printf("%s_b%d %.1f\n", mode ? "grad" : "score", b, b / t[repeats / 2]);
            free(t);
        }
        free(rho), free(grad);
        cfx_tensor_free(x);
        cfx_bundle_free(bu);
    }
    return 0;
}
