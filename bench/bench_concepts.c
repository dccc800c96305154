/* bench_concepts.c - closest-counterfactual search speed (V-CECE concepts).
 *
 * usage: bench_concepts DATA.json LABEL_KEY OUT.tsv [runs] [generated_images]
 *
 * 1. Every image of DATA as a query (vg_random.json: 499), `runs` times with 1 thread and with
 *    all threads; prints the median search seconds and the time to load WordNet and the data,
 *    and writes "query_id target_id cost" lines to OUT.tsv for bench/concepts.sh to compare
 *    with the Python implementation's.
 * 2. A generated dataset of `generated_images` VG-like images (default 100000): image sizes and
 *    concepts drawn from DATA's empirical frequencies, labels from its label frequencies, seeded.
 *    Prints the median and worst single-query time over 25 queries on one thread, without and
 *    (after a batch of 16 queries has built it) with the dataset's inverted index.
 * Lines of the form "name value" are for the driver script.
 */
#include "cfx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double time_all(const cfx_concepts_data *d, const int32_t *q, int32_t n, cfx_nearest *res,
                       int runs, int threads) {
    double t[64];
    cfx_set_threads(threads);
    for (int r = 0; r < runs; r++) {
        double t0 = cfx_now();
        if (cfx_concepts_nearest(d, q, n, NULL, res) != CFX_OK) {
            fprintf(stderr, "bench_concepts: %s\n", cfx_last_error());
            exit(1);
        }
        t[r] = cfx_now() - t0;
    }
    return median(t, runs);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_concepts DATA.json LABEL_KEY OUT.tsv [runs] [images]\n");
        return 2;
    }
    int runs = argc > 4 ? atoi(argv[4]) : 7;
    long ngen = argc > 5 ? atol(argv[5]) : 100000;
    if (runs < 1 || runs > 64) runs = 7;
    cfx_set_threads(0);
    int all_threads = cfx_get_threads();

    double t0 = cfx_now();
    cfx_wordnet *wn = cfx_wordnet_load(NULL);
    double t_wn = cfx_now() - t0;
    if (!wn) {
        fprintf(stderr, "bench_concepts: %s\n", cfx_last_error());
        return 1;
    }
    cfx_concepts *c = cfx_concepts_new(wn, NULL);
    t0 = cfx_now();
    cfx_concepts_data *d = cfx_concepts_data_load(c, argv[1], argv[2], CFX_UNKNOWN_ERROR, NULL);
    double t_data = cfx_now() - t0;
    if (!d) {
        fprintf(stderr, "bench_concepts: %s\n", cfx_last_error());
        return 1;
    }
    int32_t n = cfx_concepts_data_count(d);
    int32_t *q = malloc((size_t)n * sizeof *q);
    cfx_nearest *res = malloc((size_t)n * sizeof *res);
    for (int32_t i = 0; i < n; i++) q[i] = i;
    double t1 = time_all(d, q, n, res, runs, 1);
    double tn = time_all(d, q, n, res, runs, all_threads);
    printf("wordnet_load_s %.4f\n", t_wn);
    printf("data_load_s %.4f\n", t_data);
    printf("queries %d\n", n);
    printf("search_1thread_s %.5f\n", t1);
    printf("search_%dthreads_s %.5f\n", all_threads, tn);
    printf("threads %d\n", all_threads);
    FILE *f = fopen(argv[3], "w");
    if (!f) {
        perror(argv[3]);
        return 1;
    }
    for (int32_t i = 0; i < n; i++)
        fprintf(f, "%lld\t%lld\t%lld\n", (long long)cfx_concepts_data_id(d, res[i].query),
                res[i].target >= 0 ? (long long)cfx_concepts_data_id(d, res[i].target) : -1LL,
                (long long)res[i].cost);
    fclose(f);

    /* The generated set: draw from the empirical distributions of DATA. */
    if (ngen > 0) {
        int64_t ncon = 0;
        for (int32_t i = 0; i < n; i++) {
            int32_t k;
            cfx_concepts_data_image(d, i, &k);
            ncon += k;
        }
        int32_t *pool = malloc((size_t)ncon * sizeof *pool),
                *sizes = malloc((size_t)n * sizeof *sizes);
        int64_t at = 0;
        for (int32_t i = 0; i < n; i++) {
            const int32_t *im = cfx_concepts_data_image(d, i, &sizes[i]);
            memcpy(pool + at, im, (size_t)sizes[i] * sizeof *pool);
            at += sizes[i];
        }
        cfx_rng rng;
        cfx_rng_init(&rng, 42);
        cfx_concepts_data *g = cfx_concepts_data_new(c);
        int32_t buf[1024];
        for (long i = 0; i < ngen; i++) {
            int32_t k = sizes[cfx_rng_below(&rng, (uint64_t)n)];
            for (int32_t j = 0; j < k; j++) buf[j] = pool[cfx_rng_below(&rng, (uint64_t)ncon)];
            const char *label =
                cfx_concepts_data_label(d, (int32_t)cfx_rng_below(&rng, (uint64_t)n));
            if (cfx_concepts_data_add(g, i, buf, k, label) != CFX_OK) {
                fprintf(stderr, "bench_concepts: %s\n", cfx_last_error());
                return 1;
            }
        }
        cfx_set_threads(1);
        /* Single queries on data without the inverted index (a few queries never build it),
         * then a batch of 16 that builds it, then single queries that use it. */
        double t_first = 0, med[2], worst[2] = {0, 0}, t_batch = 0;
        int64_t solved_total = 0;
        for (int pass = 0; pass < 2; pass++) {
            double t[25];
            for (int r = 0; r < 25; r++) {
                int32_t qi = (int32_t)cfx_rng_below(&rng, (uint64_t)ngen);
                cfx_nearest one;
                int64_t solved = 0;
                cfx_nearest_options o = {.solved = &solved};
                double s = cfx_now();
                if (cfx_concepts_nearest(g, &qi, 1, &o, &one) != CFX_OK) {
                    fprintf(stderr, "bench_concepts: %s\n", cfx_last_error());
                    return 1;
                }
                t[r] = cfx_now() - s;
                if (pass == 0 && r == 0) t_first = t[r];
                solved_total += solved;
                if (t[r] > worst[pass]) worst[pass] = t[r];
            }
            med[pass] = median(t, 25);
            if (pass == 0) {
                int32_t batch[16];
                cfx_nearest out[16];
                for (int k = 0; k < 16; k++)
                    batch[k] = (int32_t)cfx_rng_below(&rng, (uint64_t)ngen);
                double s = cfx_now();
                if (cfx_concepts_nearest(g, batch, 16, NULL, out) != CFX_OK) return 1;
                t_batch = cfx_now() - s;
            }
        }
        printf("generated_images %ld\n", ngen);
        printf("generated_query_median_ms %.2f\n", 1e3 * med[0]);
        printf("generated_query_worst_ms %.2f\n", 1e3 * worst[0]);
        printf("generated_first_query_ms %.2f\n", 1e3 * t_first);
        printf("generated_batch16_with_index_build_ms %.2f\n", 1e3 * t_batch);
        printf("generated_indexed_query_median_ms %.2f\n", 1e3 * med[1]);
        printf("generated_indexed_query_worst_ms %.2f\n", 1e3 * worst[1]);
        printf("generated_solved_per_query %.1f\n", (double)solved_total / 50);
        cfx_concepts_data_free(g);
        free(pool);
        free(sizes);
    }
    free(q);
    free(res);
    cfx_concepts_data_free(d);
    cfx_concepts_free(c);
    cfx_wordnet_free(wn);
    return 0;
}
