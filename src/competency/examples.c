/* examples.c - low-competency examples for each cause, made the way the competency paper's
 * reference code made them, reproducibly from a seed:
 *
 *   none        correctly classified test images with rho >= threshold (controls)
 *   spatial     images of the held-out classes (the ood split) with rho < threshold
 *   brightness, contrast, saturation, noise, pixelation
 *               a correctly classified high-competency test image, corrupted with the first
 *               factor of the cause's grid, in a seeded order, that drives rho below the
 *               threshold; an image no factor pushes below is counted and passed over
 *
 * Each cause draws from its own stream of the seed (its candidates' order, the factor orders,
 * the noise), so the examples of one cause do not change when another is added or skipped.
 * Candidates are scored in chunks (every factor of several candidates in one batch); which
 * candidates are accepted depends only on the candidate order. */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>

enum { CHUNK = 8, MAX_GRID = 8 };

typedef struct {
    float *images; /* (cap, C, H, W) */
    cfx_example *ex;
    int64_t n, cap, per;
} out_list;

static cfx_status push(out_list *o, const float *image, const cfx_example *e) {
    if (o->n == o->cap) {
        int64_t cap = o->cap ? 2 * o->cap : 64;
        float *d = cfx_realloc(o->images, (size_t)(cap * o->per) * sizeof *d);
        if (!d) return CFX_ENOMEM;
        o->images = d;
        cfx_example *ex = cfx_realloc(o->ex, (size_t)cap * sizeof *ex);
        if (!ex) return CFX_ENOMEM;
        o->ex = ex, o->cap = cap;
    }
    memcpy(o->images + o->n * o->per, image, (size_t)o->per * sizeof(float));
    o->ex[o->n++] = *e;
    return CFX_OK;
}

/* A view of rows [first, first + n) of a batch. */
static cfx_tensor rows(const cfx_tensor *t, int64_t first, int64_t n) {
    cfx_tensor v = *t;
    int64_t per = t->numel / t->shape[0];
    v.shape[0] = n, v.numel = n * per, v.data = t->data + first * per;
    return v;
}

static void shuffled(int64_t *idx, int64_t n, cfx_rng *r) {
    cfx_rng_shuffle(r, idx, n);
}

/* The corruption causes: candidates in a seeded order, each tried with the grid's factors in a
 * seeded order; CHUNK candidates times the grid are scored in one batch. */
static cfx_status corrupted(cfx_competency *c, const cfx_dataset *test, const int64_t *cand,
                            int64_t ncand, cfx_cause cause, cfx_rng *r, int64_t per_cause,
                            float thr, const float *rho_clean, out_list *out,
                            cfx_examples_summary *sum, const cfx_progress *prog) {
    double grid[MAX_GRID];
    int ng =
        cfx_cause_grid_fit(cause, (int)test->images->shape[2], (int)test->images->shape[3], grid);
    int64_t per = out->per;
    int64_t *order = cfx_malloc((size_t)ncand * sizeof *order);
    cfx_tensor *batch =
        cfx_tensor_new(4, (int64_t[]){CHUNK * ng, test->images->shape[1], test->images->shape[2],
                                      test->images->shape[3]});
    float *rho = cfx_malloc((size_t)(CHUNK * ng) * sizeof *rho);
    int64_t(*forder)[MAX_GRID] = cfx_malloc((size_t)CHUNK * sizeof *forder);
    cfx_status s = order && batch && rho && forder ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK) {
        memcpy(order, cand, (size_t)ncand * sizeof *order);
        shuffled(order, ncand, r);
    }
    int64_t made = 0;
    for (int64_t first = 0; s == CFX_OK && first < ncand && made < per_cause; first += CHUNK) {
        int64_t m = CFX_MIN(CHUNK, ncand - first);
        for (int64_t i = 0; s == CFX_OK && i < m; i++) {
            int64_t row = order[first + i];
            for (int j = 0; j < ng; j++) forder[i][j] = j;
            shuffled(forder[i], ng, r);
            cfx_tensor src = rows(test->images, row, 1);
            for (int j = 0; s == CFX_OK && j < ng; j++) {
                cfx_tensor dst = rows(batch, i * ng + j, 1);
                cfx_rng noise;
                cfx_rng_split(r, (uint64_t)row * MAX_GRID + (uint64_t)forder[i][j], &noise);
                s = cfx_corrupt(cause, grid[forder[i][j]], &src, &dst, &noise);
            }
        }
        if (s != CFX_OK) break;
        cfx_tensor scored = rows(batch, 0, m * ng);
        s = cfx_competency_score(c, &scored, &(cfx_competency_scores){.rho = rho}, NULL);
        for (int64_t i = 0; s == CFX_OK && i < m && made < per_cause; i++) {
            int64_t row = order[first + i];
            sum->tried[cause]++;
            int j = 0;
            while (j < ng && !(rho[i * ng + j] < thr)) j++;
            if (j == ng) {
                sum->no_factor[cause]++;
                continue;
            }
            cfx_example e = {.cause = cause,
                             .factor = grid[forder[i][j]],
                             .row = row,
                             .label = test->labels[row],
                             .rho_before = rho_clean[row],
                             .rho_after = rho[i * ng + j]};
            s = push(out, batch->data + (i * ng + j) * per, &e);
            made++;
        }
        cfx_progress_report(prog, cfx_cause_name(cause), made, per_cause, NULL);
    }
    sum->made[cause] = made;
    cfx_free(order), cfx_free(rho), cfx_free(forder);
    cfx_tensor_free(batch);
    return s;
}

cfx_status cfx_examples_generate(cfx_competency *c, const cfx_dataset *test, const cfx_dataset *ood,
                                 const cfx_examples_options *o, cfx_tensor **images,
                                 cfx_example **examples, int64_t *n, cfx_examples_summary *sum) {
    *images = NULL, *examples = NULL, *n = 0;
    memset(sum, 0, sizeof *sum);
    const cfx_parce *p = cfx_competency_parce(c);
    if (!p) return cfx_set_error(CFX_EINVAL, "examples: the competency has no calibration");
    if (!test || test->n < 1) return cfx_set_error(CFX_EINVAL, "examples: the test split is empty");
    cfx_competency_shape sh;
    cfx_competency_shape_of(c, &sh);
    int64_t per_cause = o && o->per_cause > 0 ? o->per_cause : 100;
    uint64_t seed = o ? o->seed : 0;
    const cfx_progress *prog = o ? &o->progress : NULL;
    float thr = (float)p->threshold;
    int64_t nt = test->n, per = test->images->numel / test->images->shape[0];
    float *rho = cfx_malloc((size_t)nt * sizeof *rho);
    int32_t *pred = cfx_malloc((size_t)nt * sizeof *pred);
    int64_t *cand = cfx_malloc((size_t)nt * sizeof *cand);
    out_list out = {.per = per};
    cfx_status s = rho && pred && cand ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK) {
        s = cfx_competency_score(c, test->images,
                                 &(cfx_competency_scores){.predicted = pred, .rho = rho}, NULL);
    }
    int64_t ncand = 0;
    for (int64_t i = 0; s == CFX_OK && i < nt; i++)
        if (pred[i] == test->labels[i] && rho[i] >= thr) cand[ncand++] = i;
    sum->candidates = ncand;
    cfx_rng root;
    cfx_rng_init(&root, seed);
    for (int k = 0; s == CFX_OK && k < CFX_CAUSE_COUNT; k++) {
        cfx_cause cause = (cfx_cause)k;
        cfx_rng r;
        cfx_rng_split(&root, (uint64_t)k, &r);
        if (cause == CFX_CAUSE_NONE) {
            int64_t *order = cfx_malloc((size_t)CFX_MAX(ncand, 1) * sizeof *order);
            if (!order) {
                s = CFX_ENOMEM;
                break;
            }
            memcpy(order, cand, (size_t)ncand * sizeof *order);
            shuffled(order, ncand, &r);
            for (int64_t i = 0; s == CFX_OK && i < ncand && sum->made[k] < per_cause; i++) {
                cfx_example e = {.cause = cause,
                                 .factor = NAN,
                                 .row = order[i],
                                 .label = test->labels[order[i]],
                                 .rho_before = rho[order[i]],
                                 .rho_after = rho[order[i]]};
                s = push(&out, test->images->data + order[i] * per, &e);
                sum->made[k]++, sum->tried[k]++;
            }
            cfx_free(order);
        } else if (cause == CFX_CAUSE_SPATIAL) {
            if (!ood || ood->n < 1) {
                sum->skipped[k] = "no ood split (images of held-out classes)";
                continue;
            }
            float *orho = cfx_malloc((size_t)ood->n * sizeof *orho);
            int64_t *order = cfx_malloc((size_t)ood->n * sizeof *order);
            if (!orho || !order) s = CFX_ENOMEM;
            if (s == CFX_OK)
                s = cfx_competency_score(c, ood->images, &(cfx_competency_scores){.rho = orho},
                                         NULL);
            for (int64_t i = 0; s == CFX_OK && i < ood->n; i++) order[i] = i;
            if (s == CFX_OK) shuffled(order, ood->n, &r);
            for (int64_t i = 0; s == CFX_OK && i < ood->n && sum->made[k] < per_cause; i++) {
                int64_t row = order[i];
                sum->tried[k]++;
                if (!(orho[row] < thr)) {
                    sum->no_factor[k]++;
                    continue;
                }
                cfx_example e = {.cause = cause,
                                 .factor = NAN,
                                 .from_ood = 1,
                                 .row = row,
                                 .label = ood->orig_labels ? ood->orig_labels[row] : -1,
                                 .rho_before = orho[row],
                                 .rho_after = orho[row]};
                s = push(&out, ood->images->data + row * per, &e);
                sum->made[k]++;
            }
            cfx_free(orho), cfx_free(order);
        } else if (cause == CFX_CAUSE_SATURATION && sh.c != 3) {
            sum->skipped[k] = "the images are grey; saturation needs colour";
        } else {
            s = corrupted(c, test, cand, ncand, cause, &r, per_cause, thr, rho, &out, sum, prog);
        }
    }
    cfx_free(rho), cfx_free(pred), cfx_free(cand);
    if (s == CFX_OK && out.n == 0) s = cfx_set_error(CFX_EINVAL, "examples: none could be made");
    if (s == CFX_OK && !(*images = cfx_tensor_new(4, (int64_t[]){out.n, sh.c, sh.h, sh.w})))
        s = CFX_ENOMEM;
    if (s == CFX_OK) memcpy((*images)->data, out.images, (size_t)(out.n * per) * sizeof(float));
    cfx_free(out.images);
    if (s != CFX_OK) {
        cfx_free(out.ex);
        return s;
    }
    *examples = out.ex, *n = out.n;
    return CFX_OK;
}
