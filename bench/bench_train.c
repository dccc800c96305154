/* bench_train.c - training speed of the reference classifier on Fashion-MNIST: Adam steps at
 * batch 64 on real, shuffled batches (the batch copy included), through cfx_trainer_step as the
 * training loop runs them (on 2 threads: two lanes of 32 images).
 * Also measures the machine's practical peak: a 2048^3 SGEMM through cfx_blas_sgemm, the GEMM
 * cfx's graphs use (dnnl_sgemm; the trainer's head runs oneDNN matmul primitives instead, about
 * 10% faster than it on the head's shapes alone).
 * The machine is shared and its speed moves by 10-20% within a minute, so each block of steps
 * is followed by its own peak measurement (the better of two SGEMMs) and the share of the peak
 * is the median of the per-block shares.
 * Usage: bench_train DATA_DIR THREADS REPEATS
 * Prints "step_ms <median>", "gflop_per_step <n>", "peak_gflops <median>",
 * "share_of_peak <median of per-block shares>". */
#include "cfx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Multiply-adds of the forward pass per image: convolutions and fully connected layers. */
static double forward_macs(int64_t h, int64_t w, int classes, double *first) {
    int64_t h1 = (h + 1) / 2, w1 = (w + 1) / 2, h2 = (h1 + 1) / 2, w2 = (w1 + 1) / 2;
    int64_t h3 = (h2 + 1) / 2, w3 = (w2 + 1) / 2;
    *first = (double)(h1 * w1) * 32 * 25;
    double conv = *first + (double)(h2 * w2) * 64 * 32 * 9 + (double)(h3 * w3) * 64 * 64 * 9;
    double fc =
        (double)64 * h3 * w3 * 512 + 512.0 * 512 + 512.0 * 256 + 256.0 * 256 + 256.0 * classes;
    return conv + fc;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_train DATA_DIR THREADS REPEATS\n");
        return 2;
    }
    int threads = atoi(argv[2]), repeats = atoi(argv[3]);
    cfx_set_threads(threads);
    cfx_dataset *d = cfx_dataset_load(argv[1], "train");
    if (!d) {
        fprintf(stderr, "bench_train: %s\n", cfx_last_error());
        return 1;
    }
    const int B = 64, steps = 100;
    const int64_t *s = d->images->shape;
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){B, s[1], s[2], s[3]});
    cfx_classifier_ids ids;
    cfx_model_classifier(g, x, d->num_classes, &r, &ids);
    cfx_trainer *tr = cfx_trainer_classifier(g, x, ids.logits, B, 1e-3f);
    if (!tr) {
        fprintf(stderr, "bench_train: %s\n", cfx_last_error());
        return 1;
    }
    int64_t *order = malloc((size_t)d->n * sizeof *order);
    float *labels = malloc((size_t)d->n * sizeof *labels);
    for (int64_t i = 0; i < d->n; i++) order[i] = i, labels[i] = (float)d->labels[i];
    cfx_rng_shuffle(&r, order, d->n);
    int64_t cursor = 0;
    double *ms = malloc((size_t)repeats * sizeof *ms),
           *peak = malloc((size_t)repeats * sizeof *peak);
    double *share = malloc((size_t)repeats * sizeof *share);
    double first, macs = forward_macs(s[2], s[3], d->num_classes, &first);
    /* Forward, data gradient (not for the first layer's input) and weight gradient. */
    double gflop = 2.0 * B * (3 * macs - first) / 1e9;
    /* Practical peak: the best a large, square GEMM reaches on these threads. */
    const int64_t n = 2048;
    float *a = malloc((size_t)(n * n) * 4), *bm = malloc((size_t)(n * n) * 4),
          *c = malloc((size_t)(n * n) * 4);
    for (int64_t i = 0; i < n * n; i++) a[i] = bm[i] = 0.001f * (float)(i % 1000);
    for (int k = -1; k < repeats; k++) { /* k = -1 warms up */
        double t0 = cfx_now();
        for (int i = 0; i < steps; i++) {
            if (cursor + B > d->n) cursor = 0;
            if (cfx_trainer_step(tr, d->images, labels, order + cursor, NULL, NULL) != CFX_OK) {
                fprintf(stderr, "bench_train: %s\n", cfx_last_error());
                return 1;
            }
            cursor += B;
        }
        if (k < 0) continue;
        ms[k] = (cfx_now() - t0) / steps * 1e3;
        peak[k] = 0;
        for (int rep = 0; rep < 2; rep++) {
            double t1 = cfx_now();
            cfx_blas_sgemm(0, 0, n, n, n, 1.0f, a, n, bm, n, 0.0f, c, n);
            double gf = 2.0 * n * n * n / (cfx_now() - t1) / 1e9;
            if (gf > peak[k]) peak[k] = gf;
        }
        share[k] = gflop / (ms[k] / 1e3) / peak[k];
    }
    qsort(ms, (size_t)repeats, sizeof *ms, cmp);
    qsort(peak, (size_t)repeats, sizeof *peak, cmp);
    qsort(share, (size_t)repeats, sizeof *share, cmp);
    printf("step_ms %.4f\ngflop_per_step %.4f\npeak_gflops %.2f\nshare_of_peak %.4f\n",
           ms[repeats / 2], gflop, peak[repeats / 2], share[repeats / 2]);
    free(a), free(bm), free(c), free(ms), free(peak), free(share), free(order), free(labels);
    cfx_trainer_free(tr);
    cfx_graph_free(g);
    cfx_dataset_free(d);
    return 0;
}
