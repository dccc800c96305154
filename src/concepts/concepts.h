/* concepts.h - what the modules of src/concepts/ share; not part of the public API.
 *
 * V-CECE (Dimitriou et al. 2025) explains a classifier with semantic edits. An image is a
 * multiset of concepts (WordNet noun synsets or plain words). The layer prices the edits that
 * turn one image into another, finds the provably cheapest set of insertions, deletions and
 * substitutions, searches a dataset for each image's closest counterfactual (the cheapest image
 * with a different label), and tallies which concepts those edits move across a class (global
 * importance), which also orders the edits.
 *
 * The modules, bottom-up; each uses only modules listed before it (scripts/layers.py fails on a
 * cycle inside the folder):
 *   wordnet        WordNet 3.0's nouns with NLTK's conventions (base only, public)
 *   hungarian      the rectangular assignment problem (base only, public)
 *   intern         interned strings: concept names, words, labels
 *   costs          the vocabulary: concept sets and the cost of every edit
 *   edits          the optimal edit set between two images (an assignment)
 *   concepts_data  a dataset of images (concepts and a label each) and its JSON loader
 *   search         closest counterfactuals, pruned by a lower bound
 *   importance     global importance and the orders of one image's edits
 *   classify       image classifiers behind one interface (ONNX, a command)
 *   editor         the images' boxes and masks, and the built-in image editor
 *   editor_http    editors behind HTTP: the web UI's Replacer extension and img2img
 *   classify_llm   a vision LLM as the classifier, with n-vote self-consistency
 *   edit_loop      the loop on pixels: plan, edit, classify until the label flips
 *   loop_run       a run of the loop read back; FID, CMMD and S3 of its flips
 *   study          the human study's answers beside the loops (Table 2)
 *   planner_llm    a vision LLM that picks local mode's next edit
 * hungarian needs nothing from this header; wordnet only declares its test and fuzz hooks here. */
#ifndef CFX_CONCEPTS_CONCEPTS_H
#define CFX_CONCEPTS_CONCEPTS_H

#include "base/base.h"
#include "base/strmap.h"

#include <stdlib.h>

/* Whether wn was read from its binary cache (wordnet.c) rather than parsed: for the tests. */
bool cfx__wordnet_from_cache(const cfx_wordnet *wn);
/* For fuzz/fuzz_wordnet.c: the cache file at path read as cfx_wordnet_load reads its own, with
 * key the key it must hold (NULL when the cache is refused), and the checksum a cache file's
 * last 8 bytes hold, of its n bytes before them, so that a mutated file can be made to pass it
 * and reach the checks after it. */
cfx_wordnet *cfx__wordnet_cache_open(const char *path, uint64_t key);
uint64_t cfx__wordnet_cache_checksum(const void *p, size_t n);

/* Ascending int32_t, for qsort (concept lists and set elements). */
static inline int cfx__concepts_cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Sorts n int32 ascending: insertion sort for the short arrays of one image or one concept
 * (qsort's indirect comparisons were a tenth of `concepts nearest`), qsort above 64. */
static inline void cfx__concepts_sort_i32(int32_t *v, size_t n) {
    if (n > 64) {
        qsort(v, n, sizeof *v, cfx__concepts_cmp_i32);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        int32_t x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
        v[j] = x;
    }
}

/* ------------------------------------------------------------------ intern.c --- */

/* Interned strings: an array of owned copies, in insertion order, and the shared string map
 * from each copy to its index (the map borrows the copies as its keys). A zeroed struct is
 * empty. */
typedef struct cfx__intern {
    char **str;      /* (n) owned copies, in insertion order */
    int32_t n, cap;  /* cap: capacity of str */
    cfx__strmap map; /* str[i] -> i */
} cfx__intern;

/* The index of s, or -1 when absent. */
int32_t cfx__intern_find(const cfx__intern *t, const char *s);
/* The index of s, adding a copy when new; -1 when out of memory. */
int32_t cfx__intern_add(cfx__intern *t, const char *s);
/* Frees the copies and the map. */
void cfx__intern_deinit(cfx__intern *t);

/* ------------------------------------------------------------------- costs.c --- */

/* A vocabulary: concept i's name, word, synset and sorted set of element ids (synsets, then
 * words numbered from the WordNet count up), and the costs of every edit between concepts. */
struct cfx_concepts {
    const cfx_wordnet *wn;
    cfx_cost_options opt;
    cfx__intern names;   /* concept strings as given (spaces turned into underscores) */
    cfx__intern words;   /* the word part of each concept; element id = wn count + index */
    int32_t *synset;     /* (n) the concept's synset */
    int32_t *word;       /* (n) index into words */
    int32_t *elem_start; /* (n+1) concept i's set: elem[elem_start[i] .. elem_start[i+1]) */
    int32_t *elem;       /* sorted element ids */
    int32_t *chain; /* (nelem) the same sets in path order: synsets root first, then the word */
    int32_t nelem, capelem;
    /* Substitution costs, a lower triangle: row i holds the costs to concepts 0..i. The rows
     * lie in blocks that double in size and never move, so that a new concept copies nothing:
     * one growing array (realloc) copied and page-faulted 3 MB for VG's 767 concepts. */
    int32_t **row;       /* (n) */
    int32_t *blocks[40]; /* the rows' storage, nblocks of them */
    int32_t nblocks;
    int32_t *block_next; /* the free part of the last block, block_left costs */
    size_t block_left;
    int32_t *insdel; /* (n) cost of inserting or deleting concept i */
    int32_t cap;     /* capacity of the per-concept arrays */
    int32_t *dist;   /* graph model: scratch for distances from one synset */
};

/* cfx_concepts_sub_cost, inline for the assignment's inner loop: the larger id picks the row
 * of the triangle. */
static inline int64_t cfx__costs_sub(const cfx_concepts *c, int32_t a, int32_t b) {
    if (a < b) {
        int32_t t = a;
        a = b, b = t;
    }
    return c->row[a][b];
}

/* The price of pairing a with b in the assignment: the substitution when it is allowed and not
 * dearer than deleting a and inserting b, else delete + insert. *sub tells which. */
static inline int64_t cfx__costs_pair(const cfx_concepts *c, int32_t a, int32_t b, bool *sub) {
    int64_t s = cfx__costs_sub(c, a, b), di = (int64_t)c->insdel[a] + c->insdel[b];
    bool ok = (c->opt.max_sub <= 0 || s <= c->opt.max_sub) && s <= di;
    if (sub) *sub = ok;
    return ok ? s : di;
}

/* ------------------------------------------------------------------- edits.c --- */

/* Scratch for one pair of images: the unmatched concepts, a cost matrix and the solver's
 * work block. Sized for the largest image once, so the search never allocates per pair. */
typedef struct {
    int32_t *ps, *qs, *col; /* (maxn) */
    double *m;              /* (maxn * maxn) */
    void *work;             /* cfx_hungarian_work_size(maxn, maxn) */
    char *used;             /* (maxn) cfx__edits_cancel_listed's paired targets */
    int32_t maxn;
} cfx__edits_ws;

/* A workspace for images of up to maxn concepts (CFX_ENOMEM, leaving w empty, on failure);
 * deinit frees it and accepts an empty one. */
cfx_status cfx__edits_ws_init(cfx__edits_ws *w, int32_t maxn);
void cfx__edits_ws_deinit(cfx__edits_ws *w);
/* The steps of cfx_concepts_edits, for the search to run one at a time: cancel_identical puts
 * the concepts of the sorted multisets p and q that do not pair with an identical one into
 * w->ps[0, *npo) and w->qs[0, *nqo); fill_matrix prices those into w->m and returns a lower
 * bound of their cost; solve_matrix returns the exact cost, the pairs left in w->col. */
void cfx__edits_cancel_identical(const int32_t *p, int32_t np, const int32_t *q, int32_t nq,
                                 cfx__edits_ws *w, int32_t *npo, int32_t *nqo);
/* cancel_identical for CFX_ASSIGN_REFERENCE, on the concepts as listed (unsorted): the
 * leftovers keep the listed order. */
void cfx__edits_cancel_listed(const int32_t *p, int32_t np, const int32_t *q, int32_t nq,
                              cfx__edits_ws *w, int32_t *npo, int32_t *nqo);
int64_t cfx__edits_fill_matrix(const cfx_concepts *c, cfx__edits_ws *w, int32_t np, int32_t nq);
int64_t cfx__edits_solve_matrix(const cfx_concepts *c, cfx__edits_ws *w, int32_t np, int32_t nq);
/* Appends e to out, whose edits array has room for *cap (grown by doubling). */
cfx_status cfx__edits_push(cfx_edit_set *out, int32_t *cap, cfx_edit e);

/* ----------------------------------------------------------- concepts_data.c --- */

/* A dataset: per image its id, label, sorted concepts and sorted element counts. */
struct cfx_concepts_data {
    cfx_concepts *c;
    int32_t n, cap;
    int64_t *id;     /* (n) the images' ids */
    int32_t *label;  /* (n) index into labels */
    int32_t *cstart; /* (n+1) image i's concepts: con[cstart[i] .. cstart[i+1]), sorted */
    int32_t *con;
    int32_t *listed; /* the same concepts in the order given (the reference matching's) */
    int64_t ncon, capcon;
    int64_t *estart; /* (n+1) image i's element counts: (ecode, ecount)[estart[i] ..) */
    int32_t *ecode, *ecount;
    int64_t nel, capel;
    int64_t *etotal; /* (n) sum of image i's element counts */
    int32_t maxcon;  /* most concepts in one image */
    int32_t nempty;  /* images without concepts */
    cfx__intern labels;
    /* The inverted index of the element counts, built by the first search after the last
     * change (under a lock) and dropped by cfx_concepts_data_add: element e occurs in images
     * pimg[pstart[e] .. pstart[e+1]) with counts pcnt[...], images ascending. */
    int64_t *pstart;
    int32_t *pimg, *pcnt;
    int32_t pelems; /* element ids covered */
};

/* -------------------------------------------------------------- importance.c --- */

/* The tally of label lab's images (imp: one entry per concept) and, when edits is not NULL,
 * all their edits; and cfx_concepts_order with that tally given (imp NULL: computed), so a
 * caller ordering many images of one class tallies it once, and toward a given target image
 * (-1: the query's closest counterfactual). */
cfx_status cfx__concepts_tally(const cfx_concepts_data *d, int32_t lab, double *imp,
                               cfx_edit_set *edits);
cfx_status cfx__concepts_order_with(const cfx_concepts_data *d, int32_t query, cfx_order_mode mode,
                                    const cfx_progress *progress, const double *imp,
                                    const cfx_edit_set *cls, int32_t target, cfx_edit_set *out);

/* ------------------------------------------------------------------ editor.c --- */

/* The per-image annotations of a concepts JSON that the loop and the built-in editor need
 * beyond the concepts: file, size, boxes and masks (kept as the parsed JSON, read on use). */
typedef struct cfx__annots {
    void *root;   /* the cJSON document */
    void **image; /* (n) each image's cJSON object */
    int64_t *id;  /* (n) */
    int32_t n;
} cfx__annots;
/* Reads path; CFX_EFORMAT/CFX_EIO with a message naming it. */
cfx_status cfx__annots_load(cfx__annots *a, const char *path);
void cfx__annots_deinit(cfx__annots *a);
/* The index of the image with this id, or -1. */
int32_t cfx__annots_find(const cfx__annots *a, int64_t id);
/* Image i's object count, k-th object name, and file (NULL when it has none). */
int cfx__annots_count(const cfx__annots *a, int32_t i);
const char *cfx__annots_object(const cfx__annots *a, int32_t i, int k);
const char *cfx__annots_file(const cfx__annots *a, int32_t i);
/* Image i's string field key (split), or NULL. */
const char *cfx__annots_str(const cfx__annots *a, int32_t i, const char *key);
/* Image i's integer field key (min_edits), or def when absent. */
int cfx__annots_int(const cfx__annots *a, int32_t i, const char *key, int def);
/* Object k's box and mask (h*w bytes) for an image of h x w pixels; CFX_ENOTFOUND when the
 * image has no boxes or masks, CFX_EFORMAT when they do not fit the image. */
cfx_status cfx__annots_region(const cfx__annots *a, int32_t i, int k, int h, int w, int box[4],
                              uint8_t *mask);
/* Reads image i as (3,h,w) from dir (its "file", else <id>.png); NULL with a message. */
cfx_tensor *cfx__annots_read_image(const cfx__annots *a, int32_t i, const char *dir);
/* Dilates a 0/1 mask (h*w) by r pixels (square neighbourhood) into out. */
void cfx__mask_dilate(const uint8_t *m, int h, int w, int r, uint8_t *out);

#endif
