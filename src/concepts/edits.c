/* edits.c - the optimal edit set between two images (V-CECE, Dimitriou et al. 2025): the
 * cheapest insertions, deletions and substitutions that turn one multiset of concepts into
 * another.
 *
 * Identical concepts pair at cost zero; the rest is an assignment problem, solved exactly by
 * the Hungarian method (hungarian.c). A substitution never costs more than deleting and
 * inserting (costs.c), so forcing min(m, n) substitutions loses nothing. An optional cap makes
 * dearer substitutions non-actionable; such a pair is priced as delete + insert in the
 * assignment and reported as those two edits, which keeps every instance feasible and optimal.
 *
 * The released V-CECE code matches differently (CFX_ASSIGN_REFERENCE): the assignment sees the
 * substitution costs alone, and whatever it leaves unmatched is inserted or deleted afterwards.
 * It may then leave a dear concept to be inserted to save a little on a substitution, so its
 * cost is never below the optimum and sometimes above it. Both run the same solver, whose ties
 * follow scipy's linear_sum_assignment; the reference keeps the unmatched concepts in the order
 * the images list them (as the released code's lists do), since that order breaks its ties.
 *
 * The closest-counterfactual search (search.c) runs the same steps one at a time on a workspace
 * sized once: it cancels identical concepts, fills the matrix (which also gives a lower bound)
 * and solves only while the bound can still win.
 */
#include "concepts/concepts.h"

#include <math.h>
#include <stdlib.h>

void cfx__edits_ws_deinit(cfx__edits_ws *w) {
    cfx_free(w->ps);
    cfx_free(w->qs);
    cfx_free(w->col);
    cfx_free(w->m);
    cfx_free(w->work);
    cfx_free(w->used);
    memset(w, 0, sizeof *w);
}

cfx_status cfx__edits_ws_init(cfx__edits_ws *w, int32_t maxn) {
    memset(w, 0, sizeof *w);
    if (maxn < 1) maxn = 1;
    w->maxn = maxn;
    w->ps = cfx_malloc((size_t)maxn * sizeof(int32_t));
    w->qs = cfx_malloc((size_t)maxn * sizeof(int32_t));
    w->col = cfx_malloc((size_t)maxn * sizeof(int32_t));
    w->m = cfx_malloc((size_t)maxn * (size_t)maxn * sizeof(double));
    w->work = cfx_malloc(cfx_hungarian_work_size(maxn, maxn));
    w->used = cfx_malloc((size_t)maxn);
    if (!w->ps || !w->qs || !w->col || !w->m || !w->work || !w->used) {
        cfx__edits_ws_deinit(w);
        return CFX_ENOMEM;
    }
    return CFX_OK;
}

/* The unmatched concepts after pairing identical ones at cost zero (both inputs sorted). */
void cfx__edits_cancel_identical(const int32_t *p, int32_t np, const int32_t *q, int32_t nq,
                                 cfx__edits_ws *w, int32_t *npo, int32_t *nqo) {
    int32_t i = 0, j = 0, a = 0, b = 0;
    while (i < np && j < nq) {
        if (p[i] == q[j])
            i++, j++;
        else if (p[i] < q[j])
            w->ps[a++] = p[i++];
        else
            w->qs[b++] = q[j++];
    }
    while (i < np) w->ps[a++] = p[i++];
    while (j < nq) w->qs[b++] = q[j++];
    *npo = a;
    *nqo = b;
}

/* The same for the reference matching, on the concepts as listed: each source concept in turn
 * pairs with the first unpaired identical target concept; the leftovers keep their order, which
 * decides the solver's choice among equally cheap assignments. O(np nq), as is the matrix. */
void cfx__edits_cancel_listed(const int32_t *p, int32_t np, const int32_t *q, int32_t nq,
                              cfx__edits_ws *w, int32_t *npo, int32_t *nqo) {
    int32_t a = 0, b = 0;
    memset(w->used, 0, (size_t)nq);
    for (int32_t i = 0; i < np; i++) {
        int32_t j = 0;
        while (j < nq && (w->used[j] || q[j] != p[i])) j++;
        if (j < nq)
            w->used[j] = 1;
        else
            w->ps[a++] = p[i];
    }
    for (int32_t j = 0; j < nq; j++)
        if (!w->used[j]) w->qs[b++] = q[j];
    *npo = a;
    *nqo = b;
}

/* Fills the assignment matrix of the unmatched concepts and returns a lower bound of their
 * edit cost.
 *
 * With np <= nq every source concept is paired (pairing never costs more than deleting and
 * inserting) and the nq - np targets left over are inserted, so the cost of a matching M is
 * sum_M pair(i,j) + sum_{j not in M} ins(j) = sum_M (pair(i,j) - ins(j)) + sum_j ins(j). The
 * matrix therefore holds pair(i,j) - ins(j): on raw pair costs the solver would happily leave a
 * dear target to be inserted to save a little on a substitution. Symmetrically, with np > nq
 * it holds pair(i,j) - del(i). The constant is added back by cfx__edits_solve_matrix. The
 * reference assignment is exactly that solver on raw pair costs, so it gets them unshifted.
 *
 * The bound: each concept of the larger side is paired or inserted/deleted, each of the smaller
 * side is paired, so the sum over either side of the cheapest thing each concept can do is a
 * lower bound. It holds for every cost model and costs O(np nq), far less than the solve. */
int64_t cfx__edits_fill_matrix(const cfx_concepts *c, cfx__edits_ws *w, int32_t np, int32_t nq) {
    int64_t lb_rows = 0, lb_cols = 0;
    bool ref = c->opt.assignment == CFX_ASSIGN_REFERENCE;
    for (int32_t j = 0; j < nq; j++) w->col[j] = INT32_MAX;
    for (int32_t i = 0; i < np; i++) {
        int64_t rmin = np > nq ? c->insdel[w->ps[i]] : INT64_MAX;
        int64_t shift = np > nq && !ref ? c->insdel[w->ps[i]] : 0;
        for (int32_t j = 0; j < nq; j++) {
            int64_t v = cfx__costs_pair(c, w->ps[i], w->qs[j], NULL);
            int64_t adj = v - (nq > np && !ref ? c->insdel[w->qs[j]] : shift);
            w->m[(size_t)i * (size_t)nq + (size_t)j] = (double)adj;
            if (v < rmin) rmin = v;
            if (v < w->col[j]) w->col[j] = (int32_t)v;
        }
        lb_rows += rmin;
    }
    for (int32_t j = 0; j < nq; j++) {
        int64_t v = w->col[j];
        if ((nq > np || np == 0) && c->insdel[w->qs[j]] < v) v = c->insdel[w->qs[j]];
        lb_cols += v;
    }
    return lb_rows > lb_cols ? lb_rows : lb_cols;
}

/* The exact cost of the unmatched concepts in w (matrix already filled); the solution stays in
 * w->col for the caller to read the pairs. */
int64_t cfx__edits_solve_matrix(const cfx_concepts *c, cfx__edits_ws *w, int32_t np, int32_t nq) {
    int64_t cost = 0;
    if (np == 0 || nq == 0) {
        for (int32_t i = 0; i < np; i++) cost += c->insdel[w->ps[i]];
        for (int32_t j = 0; j < nq; j++) cost += c->insdel[w->qs[j]];
        return cost;
    }
    double total;
    /* Every pair is allowed (a capped pair is priced as delete + insert), so this succeeds. */
    cfx_status st = cfx_hungarian_solve_work(w->m, np, nq, w->col, &total, w->work);
    CFX_ASSERT(st == CFX_OK);
    cost = (int64_t)llround(total);
    if (c->opt.assignment == CFX_ASSIGN_REFERENCE) {
        /* Raw pair costs: add the leftovers, the targets no row took or the rows left out. */
        if (nq > np) {
            for (int32_t j = 0; j < nq; j++) cost += c->insdel[w->qs[j]];
            for (int32_t i = 0; i < np; i++) cost -= c->insdel[w->qs[w->col[i]]];
        }
        for (int32_t i = 0; i < np && np > nq; i++)
            if (w->col[i] < 0) cost += c->insdel[w->ps[i]];
        return cost;
    }
    if (nq > np)
        for (int32_t j = 0; j < nq; j++) cost += c->insdel[w->qs[j]];
    if (np > nq)
        for (int32_t i = 0; i < np; i++) cost += c->insdel[w->ps[i]];
    return cost;
}

cfx_status cfx__edits_push(cfx_edit_set *out, int32_t *cap, cfx_edit e) {
    if (out->n == *cap) {
        int32_t nc = *cap ? 2 * *cap : 16;
        cfx_edit *g = cfx_realloc(out->edits, (size_t)nc * sizeof *g);
        if (!g) return CFX_ENOMEM;
        out->edits = g;
        *cap = nc;
    }
    out->edits[out->n++] = e;
    return CFX_OK;
}

static int32_t *sorted_copy(const int32_t *a, int32_t n) {
    int32_t *s = cfx_malloc(((size_t)n + 1) * sizeof *s);
    if (!s) return NULL;
    if (n) memcpy(s, a, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cfx__concepts_cmp_i32);
    return s;
}

void cfx_edit_set_deinit(cfx_edit_set *e) {
    if (!e) return;
    cfx_free(e->edits);
    memset(e, 0, sizeof *e);
}

cfx_status cfx_concepts_edits(const cfx_concepts *c, const int32_t *src, int32_t ns,
                              const int32_t *dst, int32_t nd, cfx_edit_set *out) {
    memset(out, 0, sizeof *out);
    for (int32_t i = 0; i < ns + nd; i++) {
        int32_t id = i < ns ? src[i] : dst[i - ns];
        if (id < 0 || id >= c->names.n)
            return cfx_set_error(CFX_EINVAL, "edits: concept id %d out of range", id);
    }
    int32_t *p = sorted_copy(src, ns), *q = sorted_copy(dst, nd);
    cfx__edits_ws w = {0};
    cfx_status st = CFX_ENOMEM;
    int32_t cap = 0, np, nq;
    if (!p || !q || cfx__edits_ws_init(&w, ns > nd ? ns : nd) != CFX_OK) goto done;
    if (c->opt.assignment == CFX_ASSIGN_REFERENCE)
        cfx__edits_cancel_listed(src, ns, dst, nd, &w, &np, &nq);
    else
        cfx__edits_cancel_identical(p, ns, q, nd, &w, &np, &nq);
    cfx__edits_fill_matrix(c, &w, np, nq);
    out->cost = cfx__edits_solve_matrix(c, &w, np, nq);
    /* Report the pairs: a real substitution, or a capped pair as a deletion and an insertion. */
    st = CFX_OK;
    char *taken = cfx_calloc((size_t)nq + 1, 1);
    if (!taken) {
        st = CFX_ENOMEM;
        goto done;
    }
    int32_t ndel = 0, nins = 0;
    int32_t *dels = cfx_malloc(((size_t)np + 1) * sizeof(int32_t));
    int32_t *ins = cfx_malloc(((size_t)nq + 1) * sizeof(int32_t));
    if (!dels || !ins) st = CFX_ENOMEM;
    for (int32_t i = 0; i < np && st == CFX_OK; i++) {
        int32_t j = nq ? w.col[i] : -1;
        if (j < 0) {
            dels[ndel++] = w.ps[i];
            continue;
        }
        taken[j] = 1;
        bool sub;
        int64_t v = cfx__costs_pair(c, w.ps[i], w.qs[j], &sub);
        if (sub)
            st = cfx__edits_push(out, &cap, (cfx_edit){CFX_EDIT_SUBSTITUTE, w.ps[i], w.qs[j], v});
        else
            dels[ndel++] = w.ps[i], ins[nins++] = w.qs[j];
    }
    for (int32_t j = 0; j < nq && st == CFX_OK; j++)
        if (!taken[j]) ins[nins++] = w.qs[j];
    for (int32_t i = 0; i < ndel && st == CFX_OK; i++)
        st = cfx__edits_push(out, &cap,
                             (cfx_edit){CFX_EDIT_DELETE, dels[i], -1, c->insdel[dels[i]]});
    for (int32_t i = 0; i < nins && st == CFX_OK; i++)
        st = cfx__edits_push(out, &cap, (cfx_edit){CFX_EDIT_INSERT, -1, ins[i], c->insdel[ins[i]]});
    cfx_free(taken);
    cfx_free(dels);
    cfx_free(ins);
done:
    if (st != CFX_OK) cfx_edit_set_deinit(out);
    cfx__edits_ws_deinit(&w);
    cfx_free(p);
    cfx_free(q);
    return st;
}
