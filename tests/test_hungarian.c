/* test_hungarian.c - the assignment solver against scipy (tests/py/assign_oracle.py) and brute
 * force, with ties, forbidden pairs, rectangular shapes and infeasible instances. */
#include "test.h"

#include <stdlib.h>

/* Random matrix: integer costs from a small range (many ties) or reals, some negative, a share
 * p of the pairs forbidden. */
static void random_matrix(cfx_rng *r, double *c, int nr, int nc, double p) {
    int kind = (int)cfx_rng_below(r, 3), range = 1 + (int)cfx_rng_below(r, 6);
    for (int k = 0; k < nr * nc; k++) {
        if (cfx_rng_uniform(r) < p)
            c[k] = INFINITY;
        else if (kind == 0)
            c[k] = (double)cfx_rng_below(r, (uint64_t)range);
        else if (kind == 1)
            c[k] = (double)cfx_rng_below(r, 100) - 50;
        else
            c[k] = cfx_rng_uniform(r) * 1000;
    }
}

/* Checks that a solution is an assignment of min(nr, nc) distinct, allowed pairs whose costs sum
 * to total. */
static bool valid_assignment(const double *c, int nr, int nc, const int *col, double total) {
    int used[128] = {0}, pairs = 0;
    double sum = 0;
    for (int i = 0; i < nr; i++) {
        if (col[i] < 0) continue;
        if (col[i] >= nc || used[col[i]]++ || c[i * nc + col[i]] == INFINITY) return false;
        sum += c[i * nc + col[i]];
        pairs++;
    }
    return pairs == (nr < nc ? nr : nc) && fabs(sum - total) <= 1e-9 * (1 + fabs(total));
}

/* Exhaustive minimum over all assignments of the rows (nr <= nc, tiny sizes). */
static double brute(const double *c, int nr, int nc, int i, int *used) {
    if (i == nr) return 0;
    double best = INFINITY;
    for (int j = 0; j < nc; j++) {
        if (used[j] || c[i * nc + j] == INFINITY) continue;
        used[j] = 1;
        double rest = brute(c, nr, nc, i + 1, used);
        used[j] = 0;
        if (c[i * nc + j] + rest < best) best = c[i * nc + j] + rest;
    }
    return best;
}

CFX_TEST(hungarian, small_cases_by_hand) {
    int col[3];
    double total;
    double a[9] = {4, 1, 3, 2, 0, 5, 3, 2, 2}; /* scipy's doc example: cost 5 */
    CHECK_OK(cfx_hungarian_solve(a, 3, 3, col, &total));
    CHECK_NEAR(total, 5, 0);
    CHECK(col[0] == 1 && col[1] == 0 && col[2] == 2);
    /* Rectangular both ways: the tall matrix is the wide one transposed. */
    double w[6] = {1, 5, 0, 4, 2, 9}, t[6] = {1, 4, 5, 2, 0, 9};
    CHECK_OK(cfx_hungarian_solve(w, 2, 3, col, &total));
    CHECK_NEAR(total, 2, 0); /* (0,2) + (1,0) */
    CHECK_OK(cfx_hungarian_solve(t, 3, 2, col, &total));
    CHECK_NEAR(total, 2, 0);
    CHECK(col[0] == -1 && col[1] == 1 && col[2] == 0);
    /* A forbidden pair steers the optimum; an all-forbidden row is infeasible. */
    double f[4] = {1, INFINITY, 1, 10};
    CHECK_OK(cfx_hungarian_solve(f, 2, 2, col, &total));
    CHECK_NEAR(total, 11, 0);
    double g[4] = {INFINITY, INFINITY, 1, 2};
    CHECK_ERR(cfx_hungarian_solve(g, 2, 2, col, &total), CFX_ENOTFOUND);
    CHECK(strstr(cfx_last_error(), "infeasible") != NULL);
    double nan_m[2] = {1, NAN};
    CHECK_ERR(cfx_hungarian_solve(nan_m, 1, 2, col, &total), CFX_EINVAL);
    double neg_inf[1] = {-INFINITY};
    CHECK_ERR(cfx_hungarian_solve(neg_inf, 1, 1, col, &total), CFX_EINVAL);
    /* Empty matrices assign nothing. */
    CHECK_OK(cfx_hungarian_solve(NULL, 0, 3, col, &total));
    CHECK_OK(cfx_hungarian_solve(a, 2, 0, col, &total));
    CHECK(col[0] == -1 && col[1] == -1 && total == 0);
}

CFX_TEST(hungarian, matches_brute_force) {
    cfx_rng r;
    cfx_rng_init(&r, 11);
    double c[36];
    int col[6], used[6] = {0}, bad = 0, feasible = 0, n = cfx_test_fast() ? 500 : 3000;
    for (int t = 0; t < n; t++) {
        int nr = 1 + (int)cfx_rng_below(&r, 6), nc = nr + (int)cfx_rng_below(&r, 7 - nr);
        random_matrix(&r, c, nr, nc, t % 3 == 0 ? 0 : 0.3);
        double want = brute(c, nr, nc, 0, used), total;
        cfx_status s = cfx_hungarian_solve(c, nr, nc, col, &total);
        if (want == INFINITY)
            bad += s != CFX_ENOTFOUND;
        else
            bad += s != CFX_OK || !valid_assignment(c, nr, nc, col, total) ||
                   fabs(total - want) > 1e-9 * (1 + fabs(want));
        feasible += want != INFINITY;
    }
    CHECK_INT_EQ(bad, 0);
    CHECK(feasible > n / 2 && feasible < n);
}

CFX_TEST(hungarian, matches_scipy) {
    const char *dir = cfx_test_tmpdir();
    char in[600], out[600], args[1300];
    snprintf(in, sizeof in, "%s/matrices.txt", dir);
    snprintf(out, sizeof out, "%s/costs.txt", dir);
    int n = cfx_test_fast() ? 600 : 4000;
    double *c = malloc(64 * 96 * sizeof *c), *totals = malloc((size_t)n * sizeof *totals);
    int *shapes = malloc(2 * (size_t)n * sizeof *shapes), *status = malloc((size_t)n * sizeof(int));
    int col[96];
    FILE *f = fopen(in, "w");
    CHECK(f && c && totals && shapes && status);
    if (!f || !c || !totals || !shapes || !status) goto done;
    cfx_rng r;
    cfx_rng_init(&r, 2024);
    for (int t = 0; t < n; t++) {
        /* Mostly small square and rectangular matrices; every 50th is up to 64 x 96. */
        int big = t % 50 == 0, nr = 1 + (int)cfx_rng_below(&r, big ? 64 : 12);
        int nc = 1 + (int)cfx_rng_below(&r, big ? 96 : 12);
        if (t % 4 == 0) nc = nr;
        double p = (double[]){0, 0, 0.2, 0.5, 0.8}[t % 5];
        random_matrix(&r, c, nr, nc, p);
        status[t] = cfx_hungarian_solve(c, nr, nc, col, &totals[t]);
        if (status[t] == CFX_OK && !valid_assignment(c, nr, nc, col, totals[t]))
            cfx_test_fail(__FILE__, __LINE__, "matrix %d: not a valid assignment", t);
        fprintf(f, "%d %d", nr, nc);
        for (int k = 0; k < nr * nc; k++) {
            if (c[k] == INFINITY)
                fprintf(f, " inf");
            else
                fprintf(f, " %.17g", c[k]);
        }
        fputc('\n', f);
    }
    fclose(f);
    snprintf(args, sizeof args, "%s %s", in, out);
    int rc = cfx_test_python("assign_oracle.py", args);
    CHECK_MSG(rc == 0, "assign_oracle.py failed with status %d", rc);
    if (rc != 0 || !(f = fopen(out, "r"))) goto done;
    int bad = 0, infeasible = 0, compared = 0;
    char line[128];
    for (int t = 0; t < n && fgets(line, sizeof line, f); t++, compared++) {
        int want_inf = strncmp(line, "infeasible", 10) == 0;
        double want = want_inf ? 0 : strtod(line, NULL);
        infeasible += want_inf;
        int ok = want_inf
                     ? status[t] == CFX_ENOTFOUND
                     : status[t] == CFX_OK && fabs(totals[t] - want) <= 1e-9 * (1 + fabs(want));
        if (!ok && bad++ < 10)
            cfx_test_fail(__FILE__, __LINE__, "matrix %d: scipy %s, cfx %s %.17g", t,
                          want_inf ? "infeasible" : line, cfx_status_str(status[t]), totals[t]);
    }
    fclose(f);
    CHECK_INT_EQ(compared, n);
    CHECK_INT_EQ(bad, 0);
    /* The mix must exercise both outcomes. */
    CHECK(infeasible > n / 20 && infeasible < n / 2);
done:
    free(c);
    free(totals);
    free(shapes);
    free(status);
}

CFX_TEST(hungarian, allocation_failure) {
    double a[4] = {1, 2, 3, 4};
    int col[2];
    double total;
    cfx_test_alloc_begin(1);
    CHECK_ERR(cfx_hungarian_solve(a, 2, 2, col, &total), CFX_ENOMEM);
    CHECK_INT_EQ(cfx_test_alloc_end(), 0);
}
