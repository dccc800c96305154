/* hungarian.c - the linear assignment problem on rectangular cost matrices with forbidden pairs.
 *
 * Given an nr x nc matrix of costs, choose min(nr, nc) pairs (row, column), no row and no column
 * twice, with the smallest total cost. V-CECE solves one such problem for every pair of images it
 * compares: rows are the source image's concepts, columns the target's, and the optimum is the
 * cheapest set of substitutions.
 *
 * The algorithm is the shortest augmenting path method of Jonker and Volgenant in the form of
 * D. F. Crouse, "On implementing 2D rectangular assignment algorithms" (IEEE TAES, 2016), which
 * is also what scipy.optimize.linear_sum_assignment runs, so the two agree on forbidden pairs
 * and infeasibility. With fewer rows than columns (the matrix is read transposed otherwise),
 * each row in turn is joined to the matching by a Dijkstra search for the cheapest alternating
 * path from it to a free column, measured in reduced costs c(i,j) - u(i) - v(j). The dual
 * potentials u, v keep every reduced cost non-negative and every matched pair at zero reduced
 * cost, which is what makes Dijkstra valid and the final matching optimal. O(nr^2 nc) time.
 */
#include "base/base.h"

#include <math.h>

/* The matrix as the algorithm sees it: rows r < nr <= nc columns, read through strides so a
 * tall matrix is solved transposed without a copy, and shifted so the smallest entry is 0. */
typedef struct {
    const double *c;
    size_t rs, cs; /* strides of a row and a column */
    double shift;
} view;

static inline double at(const view *m, int i, int j) {
    return m->c[(size_t)i * m->rs + (size_t)j * m->cs] - m->shift;
}

size_t cfx_hungarian_work_size(int nr, int nc) {
    size_t n = (size_t)(nr > nc ? nr : nc);
    return n * (3 * sizeof(double) + 4 * sizeof(int) + 2) + 64;
}

/* Finds the cheapest augmenting path from free row i to any free column, Dijkstra over the
 * columns. Returns the free column reached (the sink), or -1 when every remaining column is
 * forbidden (infinite reduced cost): then no complete assignment exists. */
static int augment(const view *m, int nc, const double *u, const double *v, int *path,
                   const int *row4col, double *spc, char *SR, char *SC, int *remaining, int i,
                   double *min_val) {
    double mv = 0;
    int nrem = nc, sink = -1;
    /* Columns are scanned in reverse so ties go to the same column as in scipy. */
    for (int it = 0; it < nc; it++) remaining[it] = nc - it - 1;
    for (int j = 0; j < nc; j++) SC[j] = 0, spc[j] = INFINITY;
    while (sink == -1) {
        int index = -1;
        double lowest = INFINITY;
        SR[i] = 1;
        for (int it = 0; it < nrem; it++) {
            int j = remaining[it];
            double r = mv + at(m, i, j) - u[i] - v[j];
            if (r < spc[j]) path[j] = i, spc[j] = r;
            /* On a tie prefer a free column: the search can stop there. */
            if (spc[j] < lowest || (spc[j] == lowest && row4col[j] == -1)) {
                lowest = spc[j];
                index = it;
            }
        }
        mv = lowest;
        if (mv == INFINITY) return -1;
        int j = remaining[index];
        if (row4col[j] == -1)
            sink = j;
        else
            i = row4col[j];
        SC[j] = 1;
        remaining[index] = remaining[--nrem];
    }
    *min_val = mv;
    return sink;
}

cfx_status cfx_hungarian_solve_work(const double *cost, int nr, int nc, int *col_of_row,
                                    double *total, void *work) {
    if (nr < 0 || nc < 0 || (nr * nc > 0 && !cost) || !col_of_row)
        return cfx_set_error(CFX_EINVAL, "assignment: bad arguments (%d x %d)", nr, nc);
    for (int i = 0; i < nr; i++) col_of_row[i] = -1;
    if (total) *total = 0;
    if (nr == 0 || nc == 0) return CFX_OK;
    /* NaN and -inf have no meaning as a cost; +inf marks a forbidden pair. */
    double lo = INFINITY;
    size_t n = (size_t)nr * (size_t)nc;
    for (size_t k = 0; k < n; k++) {
        if (isnan(cost[k]) || cost[k] == -INFINITY)
            return cfx_set_error(CFX_EINVAL, "assignment: entry (%zu, %zu) is %s", k / (size_t)nc,
                                 k % (size_t)nc, isnan(cost[k]) ? "NaN" : "-inf");
        if (cost[k] < lo) lo = cost[k];
    }
    if (lo == INFINITY)
        return cfx_set_error(CFX_ENOTFOUND, "assignment: infeasible, every pair is forbidden");
    bool tr = nr > nc;
    view m = {cost, tr ? 1 : (size_t)nc, tr ? (size_t)nc : 1, lo};
    int R = tr ? nc : nr, C = tr ? nr : nc;

    /* Carve the work block: u (R), v (C), spc (C) doubles; path, row4col, remaining (C) and
     * col4row (R) ints; SR (R) and SC (C) flags. */
    double *u = work, *v = u + R, *spc = v + C;
    int *path = (int *)(spc + C), *row4col = path + C, *remaining = row4col + C;
    int *col4row = remaining + C;
    char *SR = (char *)(col4row + R), *SC = SR + R;
    for (int i = 0; i < R; i++) u[i] = 0, col4row[i] = -1;
    for (int j = 0; j < C; j++) v[j] = 0, row4col[j] = -1, path[j] = -1;

    for (int cur = 0; cur < R; cur++) {
        double mv;
        for (int i = 0; i < R; i++) SR[i] = 0;
        int sink = augment(&m, C, u, v, path, row4col, spc, SR, SC, remaining, cur, &mv);
        if (sink < 0)
            return cfx_set_error(CFX_ENOTFOUND,
                                 "assignment: infeasible, the forbidden pairs leave no complete "
                                 "assignment of %d %s",
                                 R, tr ? "columns" : "rows");
        /* Update the potentials so reduced costs stay non-negative and the pairs on the new
         * path get reduced cost zero: rows and columns the search settled move by how much
         * shorter their distance was than the path's length. */
        u[cur] += mv;
        for (int i = 0; i < R; i++)
            if (SR[i] && i != cur) u[i] += mv - spc[col4row[i]];
        for (int j = 0; j < C; j++)
            if (SC[j]) v[j] -= mv - spc[j];
        /* Flip the alternating path: every column on it takes the row it was reached from. */
        for (int j = sink;;) {
            int i = path[j];
            row4col[j] = i;
            int prev = col4row[i];
            col4row[i] = j;
            j = prev;
            if (i == cur) break;
        }
    }
    double sum = 0;
    for (int i = 0; i < R; i++) {
        int j = col4row[i];
        if (tr)
            col_of_row[j] = i;
        else
            col_of_row[i] = j;
        sum += tr ? cost[(size_t)j * (size_t)nc + (size_t)i]
                  : cost[(size_t)i * (size_t)nc + (size_t)j];
    }
    if (total) *total = sum;
    return CFX_OK;
}

cfx_status cfx_hungarian_solve(const double *cost, int nr, int nc, int *col_of_row, double *total) {
    void *work = cfx_malloc(cfx_hungarian_work_size(nr, nc));
    if (!work) return CFX_ENOMEM;
    cfx_status st = cfx_hungarian_solve_work(cost, nr, nc, col_of_row, total, work);
    cfx_free(work);
    return st;
}
