/* check.c - the input checks every metric makes, so that a wrong feature matrix gets the same
 * message from each, and the conversion of float feature rows to double that they share. */
#include "metrics/metrics.h"

#include <math.h>

cfx_status cfx__metrics_check(const cfx_tensor *t, int64_t min_rows, const char *metric,
                              const char *set) {
    if (!t) return cfx_set_error(CFX_EINVAL, "%s: no %s given", metric, set);
    char buf[96];
    cfx_tensor_shape_str(t->ndim, t->shape, buf, sizeof buf);
    if (t->ndim != 2)
        return cfx_set_error(CFX_ESHAPE,
                             "%s: the %s %s is not a matrix (images, features); flatten each "
                             "image's features into one row",
                             metric, set, buf);
    if (t->shape[0] < min_rows)
        return cfx_set_error(CFX_EINVAL, "%s: the %s has %lld image%s; it needs at least %lld",
                             metric, set, (long long)t->shape[0], t->shape[0] == 1 ? "" : "s",
                             (long long)min_rows);
    int64_t bad = cfx_tensor_find_nonfinite(t);
    if (bad >= 0) {
        float v = t->data[bad];
        return cfx_set_error(CFX_ENUMERIC,
                             "%s: the %s holds %s at image %lld, feature %lld; the feature "
                             "network gave a non-finite value (check its images and weights)",
                             metric, set, isnan(v) ? "NaN" : "an infinity",
                             (long long)(bad / t->shape[1]), (long long)(bad % t->shape[1]));
    }
    return CFX_OK;
}

cfx_status cfx__metrics_check_pair(const cfx_tensor *a, const cfx_tensor *b, int64_t min_rows,
                                   const char *metric) {
    CFX_TRY(cfx__metrics_check(a, min_rows, metric, "first feature set"));
    CFX_TRY(cfx__metrics_check(b, min_rows, metric, "second feature set"));
    if (a->shape[1] != b->shape[1])
        return cfx_set_error(CFX_ESHAPE,
                             "%s: the feature sets have %lld and %lld features per image; both "
                             "must come from the same network and tensor",
                             metric, (long long)a->shape[1], (long long)b->shape[1]);
    return CFX_OK;
}

void cfx__metrics_rows_double(const float *src, int64_t d, const int64_t *rows, int64_t first,
                              int64_t n, const double *shift, double *dst) {
    for (int64_t i = 0; i < n; i++) {
        const float *restrict s = src + (rows ? rows[i] : first + i) * d;
        double *restrict o = dst + i * d;
        if (shift)
            for (int64_t j = 0; j < d; j++) o[j] = (double)s[j] - shift[j];
        else
            for (int64_t j = 0; j < d; j++) o[j] = s[j];
    }
}
