/* bench_metrics.c - FID and KID on two random feature sets (n x d floats), the work of
 * `cfx evaluate` against a calibration set; bench/metrics_np.py times pytorch-fid's and
 * torch-fidelity's NumPy/SciPy computation on the same files in the same run.
 * The features: non-negative like pooled ReLU features, x = max(0, z) for z normal with mean
 * 0.5 (set A) or 0.6 and deviation 1 (set B), seeded; written to DIR/a.npy and DIR/b.npy.
 * Usage: bench_metrics DIR N D THREADS REPEATS -> lines "name value": medians in seconds of
 * FID (both sets' statistics and the distance), of the statistics of one set, of the trace of
 * the square root by the route FID takes and by the eigendecomposition of S_A (the route for a
 * singular S_A), of KID (100 subsets of 50), and the values. */
#include "cfx.h"
#include "metrics/metrics.h"

#include <stdio.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static cfx_tensor *make_set(int64_t n, int64_t d, uint64_t seed, double mean, const char *path) {
    cfx_tensor *t = cfx_tensor_new(2, (int64_t[]){n, d});
    if (!t) return NULL;
    cfx_rng r;
    cfx_rng_init(&r, seed);
    for (int64_t i = 0; i < t->numel; i++) {
        double z = mean + cfx_rng_normal(&r);
        t->data[i] = (float)(z > 0 ? z : 0);
    }
    if (cfx_npy_write(path, t) != CFX_OK) {
        cfx_tensor_free(t);
        return NULL;
    }
    return t;
}

static void fail(void) {
    fprintf(stderr, "bench_metrics: %s\n", cfx_last_error());
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: bench_metrics DIR N D THREADS REPEATS\n");
        return 2;
    }
    const int64_t n = atoll(argv[2]), d = atoll(argv[3]);
    const int threads = atoi(argv[4]), repeats = atoi(argv[5]);
    cfx_set_threads(threads);
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/a.npy", argv[1]);
    snprintf(pb, sizeof pb, "%s/b.npy", argv[1]);
    cfx_tensor *a = make_set(n, d, 1, 0.5, pa), *b = make_set(n, d, 2, 0.6, pb);
    if (!a || !b) fail();
    enum { FID, STATS, TRACE, TRACE_EIGEN, KID, NT };
    const char *names[NT] = {"fid_s", "stats_s", "trace_s", "trace_eigen_s", "kid_s"};
    double *t[NT], fid = 0, tr = 0, tr_eigen = 0;
    cfx_kid_result kid = {0};
    for (int k = 0; k < NT; k++) t[k] = malloc((size_t)repeats * sizeof *t[k]);
    for (int rep = 0; rep < repeats; rep++) {
        double t0 = cfx_now();
        if (cfx_fid(a, b, &fid) != CFX_OK) fail();
        t[FID][rep] = cfx_now() - t0;
        cfx_fid_stats sa, sb;
        t0 = cfx_now();
        if (cfx_fid_stats_init(&sa, a) != CFX_OK) fail();
        t[STATS][rep] = cfx_now() - t0;
        if (cfx_fid_stats_init(&sb, b) != CFX_OK) fail();
        t0 = cfx_now();
        if (cfx__fid_trace_sqrt(sa.cov, sb.cov, d, 0, &tr) != CFX_OK) fail();
        t[TRACE][rep] = cfx_now() - t0;
        t0 = cfx_now();
        if (cfx__fid_trace_sqrt(sa.cov, sb.cov, d, 1, &tr_eigen) != CFX_OK) fail();
        t[TRACE_EIGEN][rep] = cfx_now() - t0;
        cfx_fid_stats_deinit(&sa), cfx_fid_stats_deinit(&sb);
        t0 = cfx_now();
        if (cfx_kid(a, b, &(cfx_kid_options){.seed = 1}, &kid) != CFX_OK) fail();
        t[KID][rep] = cfx_now() - t0;
    }
    for (int k = 0; k < NT; k++) {
        qsort(t[k], (size_t)repeats, sizeof *t[k], cmp_double);
        printf("%s %.4f\n", names[k], t[k][repeats / 2]);
        free(t[k]);
    }
    printf("fid %.10g\ntrace %.10g\ntrace_eigen %.10g\nkid %.10g\nkid_std %.10g\n", fid, tr,
           tr_eigen, kid.mean, kid.std);
    cfx_tensor_free(a), cfx_tensor_free(b);
    return 0;
}
