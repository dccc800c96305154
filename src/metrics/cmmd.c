/* cmmd.c - CMMD (Jayasumana et al., "Rethinking FID: Towards a Better Evaluation Metric for
 * Image Generation", CVPR 2024): the squared maximum mean discrepancy between two embedding sets
 * with a Gaussian kernel, exactly as the paper's reference code computes it
 * (google-research/google-research, cmmd/distance.py, function mmd):
 *   gamma = 1 / (2 _SIGMA^2),  k(x, y) = exp(-gamma (|x|^2 + |y|^2 - 2 x.y)),
 *   CMMD  = _SCALE (mean k(x_i, x_j) + mean k(y_i, y_j) - 2 mean k(x_i, y_j)),
 * each mean over all pairs, the diagonal included (the biased, minimum-variance estimate of
 * Gretton et al. 2012, eq. 5), with _SIGMA = 10 and _SCALE = 1000. The reference feeds it
 * CLIP ViT-L/14 embeddings (cmmd/embedding.py); here it gets whatever features it is given.
 *
 * The reference forms the n x n kernel matrices whole, in float32. cfx sums them a tile at a
 * time in double (rows converted to double per tile, one dgemm per tile pair, a kernel matrix
 * over one set visited only on and above its diagonal), so memory stays at a few tiles for any
 * n. The work is O((n1 + n2)^2 d); per-row partial sums are added in a fixed order. */
#include "engine/blas.h"
#include "metrics/metrics.h"

#include <math.h>

enum { TILE = 512 };

typedef struct {
    const float *x, *y; /* y == x: the kernel matrix of one set */
    int64_t nx, ny, d;
    const double *sx, *sy; /* squared norms of the rows */
    double gamma;
    double *tx, *ty, *g; /* tiles: TILE x d, TILE x d, TILE x TILE */
} pairs;

static void sq_norms(const float *x, int64_t n, int64_t d, double *out) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
        out[i] = s;
    }
}

/* sum over i, j of exp(-gamma (|x_i|^2 + |y_j|^2 - 2 x_i.y_j)). */
static double kernel_total(pairs *p) {
    const bool same = p->x == p->y;
    double total = 0;
    for (int64_t i0 = 0; i0 < p->nx; i0 += TILE) {
        int64_t mi = CFX_MIN(TILE, p->nx - i0);
        cfx__metrics_rows_double(p->x, p->d, NULL, i0, mi, NULL, p->tx);
        for (int64_t j0 = same ? i0 : 0; j0 < p->ny; j0 += TILE) {
            int64_t mj = CFX_MIN(TILE, p->ny - j0);
            const double *ty = p->tx;
            if (!same || j0 != i0) {
                cfx__metrics_rows_double(p->y, p->d, NULL, j0, mj, NULL, p->ty);
                ty = p->ty;
            }
            cfx__blas_dgemm(0, 1, mi, mj, p->d, 1.0, p->tx, p->d, ty, p->d, 0.0, p->g, mj);
            double tile = 0;
            for (int64_t i = 0; i < mi; i++) {
                double row = 0;
                for (int64_t j = 0; j < mj; j++)
                    row += exp(-p->gamma * (p->sx[i0 + i] + p->sy[j0 + j] - 2 * p->g[i * mj + j]));
                tile += row;
            }
            /* A tile above the diagonal stands for its mirror image below it too. */
            total += same && j0 != i0 ? 2 * tile : tile;
        }
    }
    return total;
}

cfx_status cfx_cmmd(const cfx_tensor *a, const cfx_tensor *b, const cfx_cmmd_options *o,
                    double *out) {
    CFX_TRY(cfx__metrics_check_pair(a, b, 1, "CMMD"));
    CFX_TRY(cfx__blas_open());
    double sigma = o && o->sigma != 0 ? o->sigma : 10, scale = o && o->scale != 0 ? o->scale : 1000;
    if (!(sigma > 0) || !isfinite(sigma) || !isfinite(scale))
        return cfx_set_error(CFX_EINVAL, "CMMD: sigma %g and scale %g must be finite, sigma > 0",
                             sigma, scale);
    const int64_t n1 = a->shape[0], n2 = b->shape[0], d = a->shape[1];
    double *sa = cfx_malloc((size_t)n1 * sizeof *sa), *sb = cfx_malloc((size_t)n2 * sizeof *sb);
    double *tx = cfx_malloc((size_t)(TILE * d) * sizeof *tx);
    double *ty = cfx_malloc((size_t)(TILE * d) * sizeof *ty);
    double *g = cfx_malloc((size_t)TILE * TILE * sizeof *g);
    cfx_status s = sa && sb && tx && ty && g ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK) {
        sq_norms(a->data, n1, d, sa);
        sq_norms(b->data, n2, d, sb);
        const double gamma = 1 / (2 * sigma * sigma);
        pairs aa = {a->data, a->data, n1, n1, d, sa, sa, gamma, tx, ty, g};
        pairs bb = {b->data, b->data, n2, n2, d, sb, sb, gamma, tx, ty, g};
        pairs ab = {a->data, b->data, n1, n2, d, sa, sb, gamma, tx, ty, g};
        double kaa = kernel_total(&aa) / ((double)n1 * n1);
        double kbb = o && o->b_self > 0 ? o->b_self : kernel_total(&bb) / ((double)n2 * n2);
        double kab = kernel_total(&ab) / ((double)n1 * n2);
        *out = scale * (kaa + kbb - 2 * kab);
    }
    cfx_free(sa), cfx_free(sb), cfx_free(tx), cfx_free(ty), cfx_free(g);
    return s;
}

cfx_status cfx_cmmd_self(const cfx_tensor *b, const cfx_cmmd_options *o, double *out) {
    CFX_TRY(cfx__metrics_check(b, 1, "CMMD", "the set"));
    CFX_TRY(cfx__blas_open());
    double sigma = o && o->sigma != 0 ? o->sigma : 10;
    if (!(sigma > 0) || !isfinite(sigma))
        return cfx_set_error(CFX_EINVAL, "CMMD: sigma %g must be finite and > 0", sigma);
    const int64_t n = b->shape[0], d = b->shape[1];
    double *sb = cfx_malloc((size_t)n * sizeof *sb);
    double *tx = cfx_malloc((size_t)(TILE * d) * sizeof *tx);
    double *ty = cfx_malloc((size_t)(TILE * d) * sizeof *ty);
    double *g = cfx_malloc((size_t)TILE * TILE * sizeof *g);
    cfx_status s = sb && tx && ty && g ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK) {
        sq_norms(b->data, n, d, sb);
        pairs bb = {b->data, b->data, n, n, d, sb, sb, 1 / (2 * sigma * sigma), tx, ty, g};
        *out = kernel_total(&bb) / ((double)n * n);
    }
    cfx_free(sb), cfx_free(tx), cfx_free(ty), cfx_free(g);
    return s;
}
