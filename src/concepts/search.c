/* search.c - closest counterfactuals (V-CECE, Dimitriou et al. 2025): for each query image, the
 * cheapest image of the dataset with a different label, and the cost of the edits between them.
 *
 * The search is exact. The sum over set elements e of |count_P(e) - count_Q(e)| bounds the cece
 * cost from below, because each edit changes the element counts by at most its cost; candidates
 * are visited in increasing order of that bound and the assignment is solved only while the
 * bound can still beat (or tie with an earlier image) the best so far. Before solving, the
 * matrix's own bound (edits.c) gets a second chance to skip the candidate. Ties go to the
 * earlier image in the dataset, so the answer does not depend on the order of the visits or on
 * the number of threads.
 *
 * Queries run in parallel, one workspace per thread, made up front.
 */
#include "concepts/concepts.h"

#include <omp.h>
#include <stdlib.h>

/* One worker's scratch: the elements each image shares with the query, every candidate's
 * bound, a counting sort of the candidates by bound, and the pair scratch. */
typedef struct {
    int32_t *common; /* (n) sum over elements of min(count in query, count in image) */
    int32_t *dense;  /* (element ids) the query's counts, for searches without the index */
    int32_t *lb;     /* (n) lower bound per candidate, -1 when not a candidate */
    int32_t *order;  /* (n) candidates by increasing bound, then by index */
    int32_t *bucket; /* (maxlb + 2) counting-sort offsets */
    int64_t nbucket;
    cfx__edits_ws pw;
} search_ws;

static void search_ws_deinit(search_ws *w) {
    cfx_free(w->common);
    cfx_free(w->dense);
    cfx_free(w->lb);
    cfx_free(w->order);
    cfx_free(w->bucket);
    cfx__edits_ws_deinit(&w->pw);
    memset(w, 0, sizeof *w);
}

static cfx_status search_ws_init(search_ws *w, const cfx_concepts_data *d) {
    memset(w, 0, sizeof *w);
    size_t nel = (size_t)cfx_wordnet_count(d->c->wn) + (size_t)d->c->words.n;
    w->common = cfx_calloc((size_t)d->n + 1, sizeof *w->common);
    w->dense = cfx_calloc(nel, sizeof *w->dense);
    w->lb = cfx_malloc(((size_t)d->n + 1) * sizeof *w->lb);
    w->order = cfx_malloc(((size_t)d->n + 1) * sizeof *w->order);
    if (!w->common || !w->dense || !w->lb || !w->order ||
        cfx__edits_ws_init(&w->pw, d->maxcon) != CFX_OK) {
        search_ws_deinit(w);
        return CFX_ENOMEM;
    }
    return CFX_OK;
}

/* The search for one query. Returns CFX_ENOMEM only (growing the buckets). */
static cfx_status nearest_one(const cfx_concepts_data *d, int32_t q, bool exhaustive, int32_t avoid,
                              search_ws *w, cfx_nearest *out, int64_t *solved) {
    const cfx_concepts *c = d->c;
    bool cece = c->opt.model == CFX_COST_CECE && !exhaustive;
    int32_t lab = d->label[q]; /* candidates have neither this label nor avoid's */
    int64_t maxlb = 0;
    /* Bounds. cece: sum |count_P(e) - count_Q(e)| = |P| + |Q| - 2 sum min(count_P, count_Q).
     * With the inverted index the sums of minima are gathered element by element, touching
     * only the images that share an element with the query, and only for the query's
     * elements: on VG data a fifth of the work of a pass over every image's elements. Without
     * it (a few queries on data not yet indexed) the query's counts go into a dense array and
     * each image is one pass over its own counts. Other models and the exhaustive check use
     * zero. */
    if (cece && d->pstart) {
        for (int64_t k = d->estart[q]; k < d->estart[q + 1]; k++) {
            int32_t e = d->ecode[k], cq = d->ecount[k];
            for (int64_t p = d->pstart[e]; p < d->pstart[e + 1]; p++) {
                int32_t cj = d->pcnt[p];
                w->common[d->pimg[p]] += cj < cq ? cj : cq;
            }
        }
    } else if (cece) {
        for (int64_t k = d->estart[q]; k < d->estart[q + 1]; k++)
            w->dense[d->ecode[k]] = d->ecount[k];
        for (int32_t j = 0; j < d->n; j++) {
            if (d->label[j] == lab || d->label[j] == avoid) continue;
            int32_t common = 0;
            for (int64_t k = d->estart[j]; k < d->estart[j + 1]; k++) {
                int32_t a = w->dense[d->ecode[k]], b = d->ecount[k];
                common += a < b ? a : b;
            }
            w->common[j] = common;
        }
        for (int64_t k = d->estart[q]; k < d->estart[q + 1]; k++) w->dense[d->ecode[k]] = 0;
    }
    for (int32_t j = 0; j < d->n; j++) {
        if (d->label[j] == lab || d->label[j] == avoid) {
            w->lb[j] = -1;
        } else {
            w->lb[j] =
                cece ? (int32_t)(d->etotal[q] + d->etotal[j] - 2 * (int64_t)w->common[j]) : 0;
            if (w->lb[j] > maxlb) maxlb = w->lb[j];
        }
        w->common[j] = 0;
    }
    /* Counting sort by bound; stable, so equal bounds stay in dataset order. */
    if (maxlb + 2 > w->nbucket) {
        int32_t *g = cfx_realloc(w->bucket, ((size_t)maxlb + 2) * sizeof *g);
        if (!g) return CFX_ENOMEM;
        w->bucket = g;
        w->nbucket = maxlb + 2;
    }
    memset(w->bucket, 0, ((size_t)maxlb + 2) * sizeof *w->bucket);
    int32_t ncand = 0;
    for (int32_t j = 0; j < d->n; j++)
        if (w->lb[j] >= 0) w->bucket[w->lb[j] + 1]++, ncand++;
    for (int64_t b = 1; b < maxlb + 2; b++) w->bucket[b] += w->bucket[b - 1];
    for (int32_t j = 0; j < d->n; j++)
        if (w->lb[j] >= 0) w->order[w->bucket[w->lb[j]]++] = j;
    /* Exact costs while a candidate can still win: a smaller cost, or the same cost earlier
     * in the dataset (ties go to dataset order). */
    int64_t best = INT64_MAX;
    int32_t best_j = -1;
    /* The reference matching works on the concepts as listed. */
    bool ref = c->opt.assignment == CFX_ASSIGN_REFERENCE;
    const int32_t *con = ref ? d->listed : d->con;
    const int32_t *p = con + d->cstart[q];
    int32_t np0 = d->cstart[q + 1] - d->cstart[q];
    for (int32_t t = 0; t < ncand; t++) {
        int32_t j = w->order[t];
        int64_t lb = w->lb[j];
        if (lb > best) break;
        if (lb == best && j > best_j) continue;
        int32_t np, nq;
        if (ref)
            cfx__edits_cancel_listed(p, np0, con + d->cstart[j], d->cstart[j + 1] - d->cstart[j],
                                     &w->pw, &np, &nq);
        else
            cfx__edits_cancel_identical(p, np0, con + d->cstart[j], d->cstart[j + 1] - d->cstart[j],
                                        &w->pw, &np, &nq);
        int64_t lb2 = cfx__edits_fill_matrix(c, &w->pw, np, nq);
        if (!exhaustive && (lb2 > best || (lb2 == best && j > best_j))) continue;
        int64_t cost = cfx__edits_solve_matrix(c, &w->pw, np, nq);
        (*solved)++;
        if (cost < best || (cost == best && j < best_j)) best = cost, best_j = j;
    }
    out->query = q;
    out->target = best_j;
    out->cost = best_j >= 0 ? best : -1;
    out->candidates = ncand;
    return CFX_OK;
}

#define CFX__INDEX_MIN_QUERIES 16

/* Builds the inverted index (see the struct): a counting sort of every image's elements by
 * element id. Called with the index lock held. */
static cfx_status build_index(cfx_concepts_data *d) {
    int32_t ne = cfx_wordnet_count(d->c->wn) + d->c->words.n;
    int64_t *start = cfx_calloc((size_t)ne + 2, sizeof *start);
    int32_t *img = cfx_malloc(((size_t)d->nel + 1) * sizeof *img);
    int32_t *cnt = cfx_malloc(((size_t)d->nel + 1) * sizeof *cnt);
    if (!start || !img || !cnt) {
        cfx_free(start);
        cfx_free(img);
        cfx_free(cnt);
        return CFX_ENOMEM;
    }
    for (int64_t k = 0; k < d->nel; k++) start[d->ecode[k] + 2]++;
    for (int32_t e = 0; e < ne; e++) start[e + 2] += start[e + 1];
    for (int32_t j = 0; j < d->n; j++)
        for (int64_t k = d->estart[j]; k < d->estart[j + 1]; k++) {
            int64_t at = start[d->ecode[k] + 1]++;
            img[at] = j;
            cnt[at] = d->ecount[k];
        }
    d->pstart = start;
    d->pimg = img;
    d->pcnt = cnt;
    d->pelems = ne;
    return CFX_OK;
}

cfx_status cfx_concepts_nearest(const cfx_concepts_data *d, const int32_t *queries, int32_t nq,
                                const cfx_nearest_options *opts, cfx_nearest *out) {
    cfx_nearest_options o = {0};
    if (opts) o = *opts;
    for (int32_t i = 0; i < nq; i++)
        if (queries[i] < 0 || queries[i] >= d->n)
            return cfx_set_error(CFX_EINVAL, "nearest: query index %d out of range (%d images)",
                                 queries[i], d->n);
    /* The index is a cache inside a logically const dataset, built under a lock so that
     * concurrent searches on the same data are safe. It costs about as much as 40 unindexed
     * queries, so a handful of queries on unindexed data go without it. */
    cfx_status ist = CFX_OK;
    if (d->c->opt.model == CFX_COST_CECE && !o.exhaustive && nq >= CFX__INDEX_MIN_QUERIES) {
#pragma omp critical(cfx_concepts_index)
        if (!d->pstart) ist = build_index((cfx_concepts_data *)d);
    }
    if (ist != CFX_OK) return cfx_set_error(CFX_ENOMEM, "nearest: out of memory");
    int nt = cfx_get_threads();
    if (nt > nq) nt = nq > 0 ? nq : 1;
    /* Workspaces are made up front, one per thread, so nothing allocates in the parallel
     * region except a rare growth of the sort buckets. */
    search_ws *ws = cfx_calloc((size_t)nt, sizeof *ws);
    if (!ws) return CFX_ENOMEM;
    cfx_status st = CFX_OK;
    for (int t = 0; t < nt && st == CFX_OK; t++) st = search_ws_init(&ws[t], d);
    int64_t done = 0, solved = 0;
    if (st == CFX_OK) {
        cfx_progress_report(o.progress, "nearest", 0, nq, NULL);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(+ : solved)
        for (int32_t i = 0; i < nq; i++) {
            search_ws *w = &ws[omp_get_thread_num()];
            int32_t avoid = o.avoid ? o.avoid[i] : -1;
            if (nearest_one(d, queries[i], o.exhaustive != 0, avoid, w, &out[i], &solved) !=
                CFX_OK) {
#pragma omp critical(cfx_concepts_nearest_status)
                st = CFX_ENOMEM;
            }
            int64_t now;
#pragma omp atomic capture
            now = ++done;
            /* Progress callbacks need not be thread-safe: only the first thread reports. */
            if (omp_get_thread_num() == 0)
                cfx_progress_report(o.progress, "nearest", now, nq, NULL);
        }
        cfx_progress_report(o.progress, "nearest", nq, nq, NULL);
    }
    if (o.solved) *o.solved = solved;
    for (int t = 0; t < nt; t++) search_ws_deinit(&ws[t]);
    cfx_free(ws);
    if (st == CFX_ENOMEM) cfx_set_error(CFX_ENOMEM, "nearest: out of memory");
    return st;
}
