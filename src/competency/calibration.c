/* calibration.c - how well competency scores are calibrated and how well they separate:
 * expected calibration error with its reliability bins, and the area under the ROC curve.
 *
 * AUROC is the Mann-Whitney statistic: the probability that a positive scores above a
 * negative, ties counting one half, computed from average ranks after one sort (O(n log n)).
 * ECE bins the scores into equal-width bins of [0, 1] and sums, over bins, the share of
 * images in the bin times |accuracy - mean score| there (the last bin includes 1). */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float v;
    int pos;
} scored;

static int cmp_scored(const void *a, const void *b) {
    float x = ((const scored *)a)->v, y = ((const scored *)b)->v;
    return (x > y) - (x < y);
}

double cfx_auroc(const float *pos, int64_t npos, const float *neg, int64_t nneg) {
    if (npos < 1 || nneg < 1) return NAN;
    int64_t n = npos + nneg;
    scored *s = cfx_malloc((size_t)n * sizeof *s);
    if (!s) return NAN;
    for (int64_t i = 0; i < npos; i++) s[i] = (scored){pos[i], 1};
    for (int64_t i = 0; i < nneg; i++) s[npos + i] = (scored){neg[i], 0};
    qsort(s, (size_t)n, sizeof *s, cmp_scored);
    double rank_sum = 0; /* of the positives, ranks from 1, ties sharing their average rank */
    for (int64_t i = 0; i < n;) {
        int64_t j = i, p = 0;
        while (j < n && s[j].v == s[i].v) p += s[j++].pos;
        rank_sum += p * ((double)(i + 1) + (double)j) / 2.0;
        i = j;
    }
    cfx_free(s);
    return (rank_sum - (double)npos * (double)(npos + 1) / 2.0) / ((double)npos * (double)nneg);
}

double cfx_ece(const float *score, const uint8_t *correct, int64_t n, int nbins,
               cfx_calibration_bin *bins) {
    if (n < 1 || nbins < 1) return NAN;
    for (int b = 0; bins && b < nbins; b++) bins[b] = (cfx_calibration_bin){0};
    double *sum = cfx_calloc((size_t)nbins * 3, sizeof *sum); /* count, score, correct */
    if (!sum) return NAN;
    for (int64_t i = 0; i < n; i++) {
        int b = (int)floor(CFX_MIN(1.0, CFX_MAX(0.0, (double)score[i])) * nbins);
        b = CFX_MIN(b, nbins - 1);
        sum[3 * b] += 1, sum[3 * b + 1] += score[i], sum[3 * b + 2] += correct[i] != 0;
    }
    double ece = 0;
    for (int b = 0; b < nbins; b++) {
        double c = sum[3 * b];
        if (c == 0) continue;
        double conf = sum[3 * b + 1] / c, acc = sum[3 * b + 2] / c;
        ece += c / (double)n * fabs(acc - conf);
        if (bins) bins[b] = (cfx_calibration_bin){(int64_t)c, conf, acc};
    }
    cfx_free(sum);
    return ece;
}
