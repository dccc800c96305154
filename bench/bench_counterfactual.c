/* bench_counterfactual.c - the five counterfactual methods (cfx_cf_run) on a competency bundle,
 * the cfx side of bench/counterfactual.sh; bench/counterfactual_torch.py runs the same loops in
 * PyTorch on the same ONNX files.
 *
 *   bench_counterfactual steps BUNDLE THREADS REPEATS STEPS
 *       IGD (L2), FGD and LGD for exactly STEPS updates (threshold 1, which no image reaches:
 *       checked) and Reco and LNN, at batch 1 and 50, on uniform random images; medians of
 *       REPEATS runs. Also LNN among 9,164 candidates (the reference's count: the calibration
 *       codes repeated, all eligible), as "lnn9164". Prints "METHOD BATCH s_per_image
 *       s_per_step gflop_per_step cpu_s_per_image cpu_s_per_step" ("-" where not applicable),
 *       then "peak_gflops P": the better of three 1024^3 SGEMMs through cfx_blas_sgemm, the
 *       GEMM the graphs use, on the same threads.
 *   bench_counterfactual examples BUNDLE IMAGES.npy THREADS STOP
 *       IGD (L2), FGD and LGD at the reference settings (at most 100 updates, the bundle's
 *       threshold) on the images in batches of 50, STOP per-image or per-batch. Prints
 *       "METHOD s_per_image success_rate mean_updates".
 *
 * The FLOPs of a step are counted from the models' shapes: a step is a forward pass of the
 * networks on the optimised tensor and a backward pass to it (no weight gradients), and each
 * layer's data gradient costs what its forward costs, so 2 x 2 x the multiply-adds of the
 * Conv, ConvTranspose, Gemm, MatMul and Linear layers per image (IGD, FGD: classifier, encoder,
 * decoder; LGD: a decoder in front of them). Elementwise ops and Adam are not counted. */
#include "cfx.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The reference's LNN candidate count (issue 18: its batch x candidates x latent tensor took
 * 1.8 GB for 9,164 candidates). */
enum { REF_CANDIDATES = 9164 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void die(const char *what) {
    fprintf(stderr, "bench_counterfactual: %s: %s\n", what, cfx_last_error());
    exit(1);
}

/* Multiply-adds of one image through the model in dir/name (batch 1). */
static double model_macs(const char *dir, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cfx_graph *g = cfx_onnx_load(path, &(cfx_onnx_options){.batch = 1});
    if (!g || cfx_graph_compile(g) != CFX_OK) die(path);
    double macs = 0;
    for (int id = 0; id < cfx_graph_num_values(g); id++) {
        const char *op = cfx_graph_value_op(g, id);
        if (!op) continue;
        const cfx_tensor *y = cfx_graph_tensor(g, id);
        int xi = cfx_graph_value_input(g, id, 0), wi = cfx_graph_value_input(g, id, 1);
        if (xi < 0 || wi < 0) continue;
        const cfx_tensor *x = cfx_graph_tensor(g, xi), *w = cfx_graph_tensor(g, wi);
        if (!strcmp(op, "Conv")) /* w (K, C/groups, R, S): each output reads C/groups R S */
            macs += (double)y->numel * (double)(w->numel / w->shape[0]);
        else if (!strcmp(op, "ConvTranspose")) /* w (C, K/groups, R, S): each input writes K R S */
            macs += (double)x->numel * (double)(w->numel / w->shape[0]);
        else if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul") || !strcmp(op, "Linear"))
            macs += (double)y->numel * (double)x->shape[x->ndim - 1];
    }
    cfx_graph_free(g);
    return macs;
}

/* The practical peak: the better of three 1024^3 SGEMMs (after one to warm up). */
static double peak_gflops(void) {
    const int64_t n = 1024;
    float *a = malloc((size_t)(n * n) * 4), *b = malloc((size_t)(n * n) * 4),
          *c = malloc((size_t)(n * n) * 4);
    for (int64_t i = 0; i < n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 1000);
    double best = 0;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = cfx_now();
        cfx_blas_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double gf = 2.0 * n * n * n / (cfx_now() - t0) / 1e9;
        if (rep > 0 && gf > best) best = gf;
    }
    free(a), free(b), free(c);
    return best;
}

static bool gradient(cfx_cf_method m) {
    return m == CFX_CF_IGD || m == CFX_CF_FGD || m == CFX_CF_LGD;
}

/* CPU seconds of this process: on the shared machine, a one-thread run's CPU time moves far
 * less with the other jobs' load than its wall time. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Medians over repeats (after one warm-up) of the wall and CPU seconds of `calls` runs of cf on
 * x, per run. steps > 0: every image must have had exactly that many updates. */
static void time_runs(cfx_cf *cf, const cfx_tensor *x, cfx_tensor *out, cfx_cf_record *rec,
                      int calls, int repeats, int steps, double *wall, double *cpu) {
    double *t = malloc((size_t)repeats * sizeof *t), *c = malloc((size_t)repeats * sizeof *c);
    for (int k = -1; k < repeats; k++) {
        double t0 = cfx_now(), c0 = cpu_now();
        for (int i = 0; i < calls; i++)
            if (cfx_cf_run(cf, x, out, rec) != CFX_OK) die("run");
        if (k >= 0) t[k] = (cfx_now() - t0) / calls, c[k] = (cpu_now() - c0) / calls;
        for (int64_t i = 0; steps > 0 && i < x->shape[0]; i++)
            if (rec[i].steps != steps) {
                fprintf(stderr,
                        "bench_counterfactual: image %lld stopped after %d updates, not %d\n",
                        (long long)i, rec[i].steps, steps);
                exit(1);
            }
    }
    *wall = median(t, repeats), *cpu = median(c, repeats);
    free(t), free(c);
}

static int bench_steps(const char *dir, int repeats, int steps) {
    cfx_tensor *lat = NULL, *sc = NULL;
    double clf = model_macs(dir, "classifier.onnx"), enc = model_macs(dir, "encoder.onnx");
    double dec = model_macs(dir, "decoder.onnx");
    const int batches[2] = {1, 50};
    for (int bi = 0; bi < 2; bi++) {
        const int b = batches[bi];
        cfx_bundle *bu = cfx_bundle_load(dir, b);
        if (!bu || cfx_bundle_calibration(bu, &lat, &sc) != CFX_OK) die(dir);
        cfx_competency_shape sh;
        cfx_competency_shape_of(bu->competency, &sh);
        cfx_tensor *x = cfx_tensor_new(4, (int64_t[]){b, sh.c, sh.h, sh.w});
        cfx_tensor *out = cfx_tensor_new(4, x->shape);
        cfx_rng r;
        cfx_rng_init(&r, 1);
        cfx_tensor_fill_uniform(x, &r, 0, 1);
        cfx_cf_record *rec = malloc((size_t)b * sizeof *rec);
        double s, c;
        for (int m = 0; m < CFX_CF_COUNT; m++) {
            cfx_cf_options o = {.distance = CFX_CF_DISTANCE_L2};
            if (gradient(m)) o.max_iter = steps, o.threshold = 1.0, o.stop = CFX_CF_STOP_PER_BATCH;
            cfx_cf *cf = cfx_cf_new(bu->competency, (cfx_cf_method)m, &o, b, lat, sc);
            if (!cf) die(cfx_cf_method_name(m));
            /* Reco and LNN are fast: several calls per timed run, as in the PyTorch peer. */
            int calls = gradient(m) ? 1 : b == 1 ? 20 : 4;
            time_runs(cf, x, out, rec, calls, repeats, gradient(m) ? steps : 0, &s, &c);
            if (gradient(m)) {
                double per = clf + enc + dec + (m == CFX_CF_LGD ? dec : 0);
                printf("%s %d %.6g %.6g %.6g %.6g %.6g\n", cfx_cf_method_name(m), b, s / b,
                       s / steps, 4.0 * per * b / 1e9, c / b, c / steps);
            } else {
                printf("%s %d %.6g - - %.6g -\n", cfx_cf_method_name(m), b, s / b, c / b);
            }
            fflush(stdout);
            cfx_cf_free(cf);
        }
        /* LNN at the reference's scale: 9,164 candidates (the calibration codes repeated). */
        cfx_tensor *big = cfx_tensor_new(2, (int64_t[]){REF_CANDIDATES, sh.latent_dim});
        cfx_tensor *ones = cfx_tensor_new(1, (int64_t[]){REF_CANDIDATES});
        for (int64_t i = 0; i < REF_CANDIDATES; i++) {
            memcpy(big->data + i * sh.latent_dim, lat->data + (i % lat->shape[0]) * sh.latent_dim,
                   (size_t)sh.latent_dim * sizeof(float));
            ones->data[i] = 1.0f;
        }
        cfx_cf *cf = cfx_cf_new(bu->competency, CFX_CF_LNN, NULL, b, big, ones);
        if (!cf) die("lnn");
        time_runs(cf, x, out, rec, b == 1 ? 20 : 4, repeats, 0, &s, &c);
        printf("lnn%d %d %.6g - - %.6g -\n", REF_CANDIDATES, b, s / b, c / b);
        cfx_cf_free(cf);
        cfx_tensor_free(big), cfx_tensor_free(ones);
        free(rec);
        cfx_tensor_free(x), cfx_tensor_free(out);
        cfx_tensor_free(lat), cfx_tensor_free(sc);
        cfx_bundle_free(bu);
    }
    printf("peak_gflops %.2f\n", peak_gflops());
    return 0;
}

static int bench_examples(const char *dir, const char *images, const char *stop) {
    cfx_tensor *x = cfx_npy_read(images);
    if (!x || x->ndim != 4) die(images);
    cfx_bundle *bu = cfx_bundle_load(dir, 50);
    if (!bu) die(dir);
    cfx_tensor *out = cfx_tensor_new(4, x->shape);
    const int64_t n = x->shape[0];
    cfx_cf_record *rec = malloc((size_t)n * sizeof *rec);
    const cfx_cf_method ms[3] = {CFX_CF_IGD, CFX_CF_FGD, CFX_CF_LGD};
    for (int k = 0; k < 3; k++) {
        cfx_cf_options o = {.distance = CFX_CF_DISTANCE_L2,
                            .stop = !strcmp(stop, "per-batch") ? CFX_CF_STOP_PER_BATCH
                                                               : CFX_CF_STOP_PER_IMAGE};
        cfx_cf *cf = cfx_cf_new(bu->competency, ms[k], &o, 50, NULL, NULL);
        if (!cf) die(cfx_cf_method_name(ms[k]));
        double t0 = cfx_now();
        if (cfx_cf_run(cf, x, out, rec) != CFX_OK) die(cfx_cf_method_name(ms[k]));
        double s = cfx_now() - t0, updates = 0;
        int64_t succ = 0;
        for (int64_t i = 0; i < n; i++) succ += rec[i].success, updates += rec[i].steps;
        printf("%s %.6g %.4f %.2f\n", cfx_cf_method_name(ms[k]), s / (double)n,
               (double)succ / (double)n, updates / (double)n);
        fflush(stdout);
        cfx_cf_free(cf);
    }
    free(rec);
    cfx_tensor_free(x), cfx_tensor_free(out);
    cfx_bundle_free(bu);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "steps")) {
        cfx_set_threads(atoi(argv[3]));
        return bench_steps(argv[2], atoi(argv[4]), atoi(argv[5]));
    }
    if (argc == 6 && !strcmp(argv[1], "examples") &&
        (!strcmp(argv[5], "per-image") || !strcmp(argv[5], "per-batch"))) {
        cfx_set_threads(atoi(argv[4]));
        return bench_examples(argv[2], argv[3], argv[5]);
    }
    fprintf(stderr, "usage: bench_counterfactual steps BUNDLE THREADS REPEATS STEPS\n"
                    "       bench_counterfactual examples BUNDLE IMAGES.npy THREADS "
                    "per-image|per-batch\n");
    return 2;
}
