/* metrics.h - what the metric modules of src/metrics/ share (input checks, rows in double) and
 * FID's trace term for the benchmark; not part of the public API. */
#ifndef CFX_METRICS_METRICS_H
#define CFX_METRICS_METRICS_H

#include "base/base.h"

/* Checks that t is a feature matrix (rows, d) with at least min_rows rows and only finite
 * values; messages name the metric and the set ("FID: the second feature set ..."). */
cfx_status cfx__metrics_check(const cfx_tensor *t, int64_t min_rows, const char *metric,
                              const char *set);
/* The same for two sets, which must have the same number of columns. */
cfx_status cfx__metrics_check_pair(const cfx_tensor *a, const cfx_tensor *b, int64_t min_rows,
                                   const char *metric);
/* dst (n x d, row stride d) = the float rows rows[0..n) of src (row stride d) in double, minus
 * shift (d entries; NULL: nothing). rows NULL: rows first, first + 1, ... */
void cfx__metrics_rows_double(const float *src, int64_t d, const int64_t *rows, int64_t first,
                              int64_t n, const double *shift, double *dst);

/* FID's tr((S_A S_B)^(1/2)) for covariances sa and sb (d x d, full), by the route src/metrics/
 * fid.c chooses (route 0), or always through the eigendecomposition of sa (route 1: what is
 * done when sa is not positive definite; the benchmark times both). */
cfx_status cfx__fid_trace_sqrt(const double *sa, const double *sb, int64_t d, int route,
                               double *out);

#endif
