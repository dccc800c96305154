/* importance.c - global concept importance and the order of an image's edits (V-CECE,
 * Dimitriou et al. 2025).
 *
 * Global importance tallies which concepts the closest counterfactuals of a class move
 * (DESIGN.md): over every image of the class and every edit to its closest counterfactual, an
 * insertion of c adds one for c, a deletion subtracts one, and a substitution a -> b adds one for
 * b and subtracts one for a. The tally also orders edits, each scored by the importance it gains.
 *
 * An image's edits in three orders (cfx_order_mode):
 * - local: its own optimal edits by a heuristic, deletions, then substitutions, then insertions;
 * - local-global: its own optimal edits, highest score first;
 * - global: the class's distinct edits, highest score first, then the most frequent, each applied
 *   in turn where the image allows it.
 */
#include "concepts/concepts.h"

#include <stdlib.h>

/* An edit's tally key and importance score: inserting x scores imp(x), deleting x scores
 * -imp(x), and substituting a by b scores imp(b) - imp(a). */
static double edit_score(const cfx_edit *e, const double *imp) {
    switch (e->kind) {
        case CFX_EDIT_INSERT:
            return imp[e->to];
        case CFX_EDIT_DELETE:
            return -imp[e->from];
        default:
            return imp[e->to] - imp[e->from];
    }
}

/* The images with label lab and their closest counterfactuals. */
static cfx_status class_nearest(const cfx_concepts_data *d, int32_t lab, const cfx_progress *pr,
                                int32_t **qs, cfx_nearest **res, int32_t *n) {
    *n = 0;
    *qs = cfx_malloc(((size_t)d->n + 1) * sizeof **qs);
    *res = cfx_malloc(((size_t)d->n + 1) * sizeof **res);
    if (!*qs || !*res) return CFX_ENOMEM;
    for (int32_t i = 0; i < d->n; i++)
        if (d->label[i] == lab) (*qs)[(*n)++] = i;
    cfx_nearest_options o = {.progress = pr};
    return cfx_concepts_nearest(d, *qs, *n, &o, *res);
}

static cfx_status find_label(const cfx_concepts_data *d, const char *label, int32_t *lab) {
    *lab = label ? cfx__intern_find(&d->labels, label) : -1;
    if (*lab < 0)
        return cfx_set_error(CFX_ENOTFOUND, "no image has the label '%s'", label ? label : "");
    return CFX_OK;
}

/* Tallies every edit of every image of the class into imp (DESIGN.md): an insertion of c adds
 * one, a deletion of c subtracts one, a substitution a -> b adds one for b and subtracts one
 * for a. When edits is not NULL, the class's edits are also collected there. */
static cfx_status tally(const cfx_concepts_data *d, int32_t lab, const cfx_progress *pr,
                        double *imp, cfx_edit_set *edits, int32_t *nimages) {
    int32_t *qs = NULL, n = 0, cap = 0;
    cfx_nearest *res = NULL;
    cfx_status st = class_nearest(d, lab, pr, &qs, &res, &n);
    memset(imp, 0, (size_t)d->c->names.n * sizeof *imp);
    for (int32_t k = 0; k < n && st == CFX_OK; k++) {
        if (res[k].target < 0) continue;
        int32_t na, nb;
        const int32_t *a = cfx_concepts_data_listed(d, res[k].query, &na);
        const int32_t *b = cfx_concepts_data_listed(d, res[k].target, &nb);
        cfx_edit_set es;
        if ((st = cfx_concepts_edits(d->c, a, na, b, nb, &es)) != CFX_OK) break;
        for (int32_t e = 0; e < es.n && st == CFX_OK; e++) {
            if (es.edits[e].to >= 0) imp[es.edits[e].to] += 1;
            if (es.edits[e].from >= 0) imp[es.edits[e].from] -= 1;
            if (edits) st = cfx__edits_push(edits, &cap, es.edits[e]);
        }
        cfx_edit_set_deinit(&es);
    }
    if (nimages) *nimages = n;
    cfx_free(qs);
    cfx_free(res);
    return st;
}

cfx_status cfx_concepts_importance(const cfx_concepts_data *d, const char *label,
                                   const cfx_progress *progress, double *imp, int32_t *nimages) {
    int32_t lab;
    CFX_TRY(find_label(d, label, &lab));
    cfx_status st = tally(d, lab, progress, imp, NULL, nimages);
    if (st == CFX_ENOMEM) cfx_set_error(CFX_ENOMEM, "importance: out of memory");
    return st;
}

/* Sorting edits needs the scores and the names; qsort has no context, so they travel along. */
typedef struct {
    cfx_edit e;
    double score;
    int64_t count; /* how often the class used this edit (global order) */
    const char *a, *b;
} ranked;

static int cmp_ranked(const void *x, const void *y) {
    const ranked *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->count != q->count) return p->count > q->count ? -1 : 1;
    if (p->e.kind != q->e.kind) return (int)p->e.kind - (int)q->e.kind;
    int c = strcmp(p->a, q->a);
    return c ? c : strcmp(p->b, q->b);
}

/* The heuristic local order: deletions, then substitutions, then insertions (an editor
 * removes objects more reliably than it adds them), each kind cheapest first, then by name. */
static int cmp_local(const void *x, const void *y) {
    const ranked *p = x, *q = y;
    static const int rank[3] = {
        [CFX_EDIT_DELETE] = 0, [CFX_EDIT_SUBSTITUTE] = 1, [CFX_EDIT_INSERT] = 2};
    if (p->e.kind != q->e.kind) return rank[p->e.kind] - rank[q->e.kind];
    if (p->e.cost != q->e.cost) return p->e.cost < q->e.cost ? -1 : 1;
    int c = strcmp(p->a, q->a);
    return c ? c : strcmp(p->b, q->b);
}

static int cmp_edit_key(const void *x, const void *y) {
    const cfx_edit *p = x, *q = y;
    if (p->kind != q->kind) return (int)p->kind - (int)q->kind;
    if (p->from != q->from) return p->from < q->from ? -1 : 1;
    return (p->to > q->to) - (p->to < q->to);
}

static void fill_ranked(const cfx_concepts *c, ranked *r, const cfx_edit *e, const double *imp) {
    r->e = *e;
    r->score = imp ? edit_score(e, imp) : 0;
    r->count = 1;
    r->a = e->from >= 0 ? c->names.str[e->from] : "";
    r->b = e->to >= 0 ? c->names.str[e->to] : "";
}

cfx_status cfx__concepts_tally(const cfx_concepts_data *d, int32_t lab, double *imp,
                               cfx_edit_set *edits) {
    return tally(d, lab, NULL, imp, edits, NULL);
}

cfx_status cfx_concepts_order(const cfx_concepts_data *d, int32_t query, cfx_order_mode mode,
                              const cfx_progress *progress, cfx_edit_set *out) {
    return cfx__concepts_order_with(d, query, mode, progress, NULL, NULL, -1, out);
}

cfx_status cfx__concepts_order_with(const cfx_concepts_data *d, int32_t query, cfx_order_mode mode,
                                    const cfx_progress *progress, const double *imp_given,
                                    const cfx_edit_set *cls_given, int32_t target,
                                    cfx_edit_set *out) {
    const cfx_concepts *c = d->c;
    memset(out, 0, sizeof *out);
    if (query < 0 || query >= d->n)
        return cfx_set_error(CFX_EINVAL, "order: query index %d out of range", query);
    if (mode != CFX_ORDER_LOCAL && mode != CFX_ORDER_GLOBAL && mode != CFX_ORDER_LOCAL_GLOBAL)
        return cfx_set_error(CFX_EINVAL, "order: unknown mode %d", (int)mode);
    if (target >= d->n) return cfx_set_error(CFX_EINVAL, "order: target %d out of range", target);
    cfx_nearest nr = {.target = target};
    cfx_status st = target < 0 ? cfx_concepts_nearest(d, &query, 1, NULL, &nr) : CFX_OK;
    if (st != CFX_OK) return st;
    if (nr.target < 0)
        return cfx_set_error(CFX_ENOTFOUND, "order: image %lld has no image of another label",
                             (long long)d->id[query]);
    int32_t na, nb;
    const int32_t *a = cfx_concepts_data_listed(d, query, &na);
    const int32_t *b = cfx_concepts_data_listed(d, nr.target, &nb);
    cfx_edit_set local = {0}, cls = {0};
    double *imp = NULL;
    ranked *r = NULL;
    int32_t nr_ = 0;
    if ((st = cfx_concepts_edits(c, a, na, b, nb, &local)) != CFX_OK) goto done;
    st = CFX_ENOMEM;
    if (mode != CFX_ORDER_LOCAL) {
        if (!(imp = cfx_malloc(((size_t)c->names.n + 1) * sizeof *imp))) goto done;
        if (imp_given) { /* the class's tally, computed once by the caller */
            memcpy(imp, imp_given, (size_t)c->names.n * sizeof *imp);
            if (mode == CFX_ORDER_GLOBAL && cls_given && cls_given->n) {
                cls.edits = cfx_malloc((size_t)cls_given->n * sizeof *cls.edits);
                if (!cls.edits) goto done;
                memcpy(cls.edits, cls_given->edits, (size_t)cls_given->n * sizeof *cls.edits);
                cls.n = cls_given->n;
            }
        } else if ((st = tally(d, d->label[query], progress, imp,
                               mode == CFX_ORDER_GLOBAL ? &cls : NULL, NULL)) != CFX_OK) {
            goto done;
        }
        st = CFX_ENOMEM;
    }
    const cfx_edit_set *src = mode == CFX_ORDER_GLOBAL ? &cls : &local;
    if (!(r = cfx_malloc(((size_t)src->n + 1) * sizeof *r))) goto done;
    if (mode == CFX_ORDER_GLOBAL) {
        /* The class's distinct edits with their frequency, best score first; then the ones
         * this image allows, applied in turn to a copy of its concepts: a deletion or a
         * substitution needs its concept present, an insertion always applies. */
        if (cls.n) qsort(cls.edits, (size_t)cls.n, sizeof *cls.edits, cmp_edit_key);
        for (int32_t i = 0; i < cls.n; i++) {
            if (nr_ > 0 && cmp_edit_key(&r[nr_ - 1].e, &cls.edits[i]) == 0) {
                r[nr_ - 1].count++;
                continue;
            }
            fill_ranked(c, &r[nr_++], &cls.edits[i], imp);
        }
        qsort(r, (size_t)nr_, sizeof *r, cmp_ranked);
        int32_t *have = cfx_calloc((size_t)c->names.n + 1, sizeof *have);
        if (!have) goto done;
        for (int32_t i = 0; i < na; i++) have[a[i]]++;
        int32_t cap = 0;
        st = CFX_OK;
        for (int32_t i = 0; i < nr_ && st == CFX_OK; i++) {
            cfx_edit e = r[i].e;
            if (e.from >= 0 && have[e.from] == 0) continue;
            if (e.from >= 0) have[e.from]--;
            if (e.to >= 0) have[e.to]++;
            st = cfx__edits_push(out, &cap, e);
        }
        cfx_free(have);
        for (int32_t i = 0; i < out->n; i++) out->cost += out->edits[i].cost;
    } else {
        for (int32_t i = 0; i < local.n; i++) fill_ranked(c, &r[nr_++], &local.edits[i], imp);
        qsort(r, (size_t)nr_, sizeof *r, mode == CFX_ORDER_LOCAL ? cmp_local : cmp_ranked);
        if (!(out->edits = cfx_malloc(((size_t)nr_ + 1) * sizeof *out->edits))) goto done;
        for (int32_t i = 0; i < nr_; i++) out->edits[i] = r[i].e;
        out->n = nr_;
        out->cost = local.cost;
        st = CFX_OK;
    }
done:
    if (st != CFX_OK) {
        cfx_edit_set_deinit(out);
        if (st == CFX_ENOMEM) cfx_set_error(CFX_ENOMEM, "order: out of memory");
    }
    cfx_edit_set_deinit(&local);
    cfx_edit_set_deinit(&cls);
    cfx_free(imp);
    cfx_free(r);
    return st;
}
