/* cosine.c - cosine similarity of paired rows (an image's classifier features or latent code
 * and its counterfactual's), summarised over a selection (the successful counterfactuals):
 * cos_i = a_i.b_i / (max(|a_i|, eps) max(|b_i|, eps)), eps = 1e-8, which is
 * torch.nn.functional.cosine_similarity's definition (PyTorch 1.13) and that of the graph op
 * cfx_op_cosine_similarity, in double. The summary's mean and population deviation are NaN when
 * nothing is selected: they are never formed by dividing by zero, and the count says "none". */
#include "metrics/metrics.h"

#include <math.h>

/* cos of one pair of rows of d floats, in double. */
static double row_cos(const float *x, const float *y, int64_t d) {
    const double eps = 1e-8;
    double xy = 0, xx = 0, yy = 0;
    for (int64_t j = 0; j < d; j++) {
        xy += (double)x[j] * y[j];
        xx += (double)x[j] * x[j];
        yy += (double)y[j] * y[j];
    }
    return xy / (fmax(sqrt(xx), eps) * fmax(sqrt(yy), eps));
}

cfx_status cfx_cosine_stats(const cfx_tensor *a, const cfx_tensor *b, const uint8_t *select,
                            double *cos, cfx_cosine_summary *out) {
    CFX_TRY(cfx__metrics_check(a, 1, "cosine similarity", "first matrix"));
    CFX_TRY(cfx__metrics_check(b, 1, "cosine similarity", "second matrix"));
    if (a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) {
        char sa[64], sb[64];
        cfx_tensor_shape_str(a->ndim, a->shape, sa, sizeof sa);
        cfx_tensor_shape_str(b->ndim, b->shape, sb, sizeof sb);
        return cfx_set_error(CFX_ESHAPE,
                             "cosine similarity: the matrices %s and %s must have the same "
                             "shape, one row per image and its counterfactual",
                             sa, sb);
    }
    const int64_t n = a->shape[0], d = a->shape[1];
    int64_t count = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double c = row_cos(a->data + i * d, b->data + i * d, d);
        if (cos) cos[i] = c;
        if (!select || select[i]) count++, sum += c;
    }
    double mean = count ? sum / (double)count : NAN, sum_sq = 0;
    /* The deviation from the mean in a second pass: no cancellation of sum and sum of squares. */
    for (int64_t i = 0; count && i < n; i++)
        if (!select || select[i]) {
            double e = row_cos(a->data + i * d, b->data + i * d, d) - mean;
            sum_sq += e * e;
        }
    *out = (cfx_cosine_summary){
        .count = count, .mean = mean, .std = count ? sqrt(sum_sq / (double)count) : NAN};
    return CFX_OK;
}
