/* costs.c - the vocabulary of V-CECE (Dimitriou et al. 2025): concepts, their sets, and the price
 * of every edit between two of them.
 *
 * A concept is a WordNet noun synset or a plain word ("chairs") that WordNet reduces to one.
 * Adding a concept gives it a dense id, makes its set, and prices it against every concept
 * added before, so that the search later reads each cost from a table.
 *
 * Cost models (DESIGN.md, "Concepts"):
 * - cece, the released reference code: a concept is the set of synset names on its first
 *   longest hypernym path plus its word; a substitution costs |A symmetric-difference B|, an
 *   insertion or deletion |A|.
 * - graph, the paper's prose: a substitution costs the shortest path between the two synsets over
 *   hypernym and hyponym edges, an insertion or deletion the distance to the root.
 * In both, a substitution never costs more than deleting and inserting (|A^B| <= |A| + |B|, and
 * a path through the root), which the edit sets rely on (edits.c). An optional cap makes dearer
 * substitutions non-actionable (cfx__costs_pair in concepts.h).
 */
#include "concepts/concepts.h"

#include <stdlib.h>

cfx_concepts *cfx_concepts_new(const cfx_wordnet *wn, const cfx_cost_options *opts) {
    if (!wn) {
        cfx_set_error(CFX_EINVAL, "concepts: no WordNet");
        return NULL;
    }
    cfx_concepts *c = cfx_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->wn = wn;
    if (opts) c->opt = *opts;
    if (c->opt.model != CFX_COST_CECE && c->opt.model != CFX_COST_GRAPH) {
        cfx_set_error(CFX_EINVAL, "concepts: unknown cost model %d", (int)c->opt.model);
        cfx_free(c);
        return NULL;
    }
    if (c->opt.assignment != CFX_ASSIGN_OPTIMAL && c->opt.assignment != CFX_ASSIGN_REFERENCE) {
        cfx_set_error(CFX_EINVAL, "concepts: unknown assignment %d", (int)c->opt.assignment);
        cfx_free(c);
        return NULL;
    }
    if (c->opt.model == CFX_COST_GRAPH &&
        !(c->dist = cfx_malloc((size_t)cfx_wordnet_count(wn) * sizeof *c->dist))) {
        cfx_free(c);
        return NULL;
    }
    return c;
}

void cfx_concepts_free(cfx_concepts *c) {
    if (!c) return;
    cfx__intern_deinit(&c->names);
    cfx__intern_deinit(&c->words);
    cfx_free(c->synset);
    cfx_free(c->word);
    cfx_free(c->elem_start);
    cfx_free(c->elem);
    cfx_free(c->chain);
    for (int32_t i = 0; i < c->nblocks; i++) cfx_free(c->blocks[i]);
    cfx_free(c->row);
    cfx_free(c->insdel);
    cfx_free(c->dist);
    cfx_free(c);
}

/* |A ^ B| of two cece sets given in path order (n synsets root first, then the word): |A| + |B|
 * - 2 |A n B|. Each path follows the best parents from its synset to the root, so two paths that
 * meet at a synset coincide from there to the root: in root-first order they share a prefix and
 * nothing else, and the common part is that prefix plus the word when the words are the same
 * (a word is never a synset). The vocabulary prices every pair of its concepts: on VG's 767 this
 * takes 17 M instructions against 70 M for merging the sorted sets. */
static int32_t sym_diff_chains(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t m = (na < nb ? na : nb) - 1, common = 0;
    while (common < m && a[common] == b[common]) common++;
    common += a[na - 1] == b[nb - 1];
    return na + nb - 2 * common;
}

static cfx_status grow_concepts(cfx_concepts *c) {
    int32_t cap = c->cap ? 2 * c->cap : 256;
    int32_t *p;
    if (!(p = cfx_realloc(c->synset, (size_t)cap * sizeof *p))) return CFX_ENOMEM;
    c->synset = p;
    if (!(p = cfx_realloc(c->word, (size_t)cap * sizeof *p))) return CFX_ENOMEM;
    c->word = p;
    if (!(p = cfx_realloc(c->insdel, (size_t)cap * sizeof *p))) return CFX_ENOMEM;
    c->insdel = p;
    if (!(p = cfx_realloc(c->elem_start, ((size_t)cap + 1) * sizeof *p))) return CFX_ENOMEM;
    c->elem_start = p;
    int32_t **r = cfx_realloc(c->row, (size_t)cap * sizeof *r);
    if (!r) return CFX_ENOMEM;
    c->row = r;
    if (c->cap == 0) c->elem_start[0] = 0;
    c->cap = cap;
    return CFX_OK;
}

cfx_status cfx_concepts_add(cfx_concepts *c, const char *concept, int32_t *id) {
    char norm[512];
    size_t len = concept ? strlen(concept) : 0;
    if (len == 0 || len >= sizeof norm)
        return cfx_set_error(CFX_EINVAL, "concept '%s' is empty or too long",
                             concept ? concept : "(null)");
    for (size_t i = 0; i <= len; i++) norm[i] = concept[i] == ' ' ? '_' : concept[i];
    int32_t k = cfx__intern_find(&c->names, norm);
    if (k >= 0) {
        *id = k;
        return CFX_OK;
    }
    int32_t s;
    cfx_status st = cfx_wordnet_lookup(c->wn, norm, &s);
    if (st != CFX_OK) return st;
    int32_t n = c->names.n;
    if (n == c->cap) CFX_TRY(grow_concepts(c));
    /* The set: the concept path's synsets, then the word (the part before the first dot). */
    int32_t path[256];
    int32_t plen = cfx_wordnet_concept_path(c->wn, s, path, 255);
    CFX_ASSERT(plen <= 255);
    char word[512];
    size_t wl = strcspn(norm, ".");
    memcpy(word, norm, wl);
    word[wl] = '\0';
    int32_t w = cfx__intern_add(&c->words, word);
    if (w < 0) return CFX_ENOMEM;
    path[plen] = cfx_wordnet_count(c->wn) + w;
    int32_t sorted[256];
    memcpy(sorted, path, ((size_t)plen + 1) * sizeof *path);
    cfx__concepts_sort_i32(sorted, (size_t)plen + 1);
    if (c->nelem + plen + 1 > c->capelem) {
        int32_t cap = c->capelem ? 2 * c->capelem : 4096;
        while (cap < c->nelem + plen + 1) cap *= 2;
        int32_t *e = cfx_realloc(c->elem, (size_t)cap * sizeof *e);
        if (!e) return CFX_ENOMEM;
        c->elem = e;
        if (!(e = cfx_realloc(c->chain, (size_t)cap * sizeof *e))) return CFX_ENOMEM;
        c->chain = e;
        c->capelem = cap;
    }
    /* The costs to every earlier concept and to itself: row n of the lower triangle, n + 1
     * of them, in the last block or a new one twice its size. */
    if (c->block_left < (size_t)n + 1) {
        CFX_ASSERT(c->nblocks < (int32_t)(sizeof c->blocks / sizeof *c->blocks));
        size_t size = (size_t)1 << (12 + c->nblocks); /* (small first: fuzzing loads many) */
        size = CFX_MAX(size, (size_t)n + 1);
        int32_t *b = cfx_malloc(size * sizeof *b);
        if (!b) return CFX_ENOMEM;
        c->blocks[c->nblocks++] = c->block_next = b;
        c->block_left = size;
    }
    if (c->opt.model == CFX_COST_GRAPH) CFX_TRY(cfx_wordnet_distances(c->wn, s, c->dist));
    /* Everything that can fail is done: commit the concept. */
    if (cfx__intern_add(&c->names, norm) != n) return CFX_ENOMEM;
    memcpy(c->elem + c->nelem, sorted, ((size_t)plen + 1) * sizeof *sorted);
    memcpy(c->chain + c->nelem, path, ((size_t)plen + 1) * sizeof *path);
    c->nelem += plen + 1;
    c->elem_start[n + 1] = c->nelem;
    c->synset[n] = s;
    c->word[n] = w;
    int32_t *row = c->row[n] = c->block_next;
    c->block_next += n + 1, c->block_left -= (size_t)n + 1;
    const int32_t *a = c->chain + c->elem_start[n];
    for (int32_t j = 0; j <= n; j++) {
        if (c->opt.model == CFX_COST_CECE) {
            const int32_t *b = c->chain + c->elem_start[j];
            row[j] = sym_diff_chains(a, plen + 1, b, c->elem_start[j + 1] - c->elem_start[j]);
        } else {
            row[j] = c->dist[c->synset[j]];
        }
    }
    c->insdel[n] = c->opt.model == CFX_COST_CECE ? plen + 1 : cfx_wordnet_depth(c->wn, s);
    *id = n;
    return CFX_OK;
}

int32_t cfx_concepts_count(const cfx_concepts *c) {
    return c->names.n;
}

const char *cfx_concepts_name(const cfx_concepts *c, int32_t id) {
    return id >= 0 && id < c->names.n ? c->names.str[id] : NULL;
}

const char *cfx_concepts_word(const cfx_concepts *c, int32_t id) {
    return id >= 0 && id < c->names.n ? c->words.str[c->word[id]] : NULL;
}

int32_t cfx_concepts_synset(const cfx_concepts *c, int32_t id) {
    return c->synset[id];
}

int32_t cfx_concepts_set(const cfx_concepts *c, int32_t id, const char **names, int32_t cap) {
    int32_t n = c->elem_start[id + 1] - c->elem_start[id], nwn = cfx_wordnet_count(c->wn);
    for (int32_t i = 0; i < n && i < cap; i++) {
        int32_t e = c->elem[c->elem_start[id] + i];
        names[i] = e < nwn ? cfx_wordnet_name(c->wn, e) : c->words.str[e - nwn];
    }
    return n;
}

int64_t cfx_concepts_insert_cost(const cfx_concepts *c, int32_t a) {
    return c->insdel[a];
}

int64_t cfx_concepts_sub_cost(const cfx_concepts *c, int32_t a, int32_t b) {
    return cfx__costs_sub(c, a, b);
}
