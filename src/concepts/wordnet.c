/* wordnet.c - an in-memory reader of the WordNet 3.0 noun hierarchy (Princeton database files).
 *
 * V-CECE turns every annotated object into a set of WordNet synset names, so cfx needs noun
 * synsets by name ("chair.n.01") and by word ("chairs"), their hypernyms and their root-to-leaf
 * paths. This module reads index.noun, data.noun and noun.exc once into flat arrays and answers
 * everything from memory; after cfx_wordnet_load returns, the object is read-only and may be
 * shared by any number of threads. Debian's wordnet-dev ships a C library too, but it keeps the
 * open files and search results in global state (not thread-safe), reads the files at every
 * query, and has no notion of NLTK's synset names, which are what the reference code and its
 * datasets use; so cfx has its own reader.
 *
 * The reference code used NLTK, so every convention here is NLTK's (nltk 3.8):
 * - A synset's name is "<first lemma, lowercased>.n.<NN>", NN being the 1-based position of the
 *   synset's offset in index.noun's list for that lemma. Looking up "X.n.NN" takes the NN-th
 *   offset of lemma X.
 * - A plain word is reduced by morphy (noun.exc, then the detachment rules applied
 *   breadth-first until some form is a lemma) and maps to the first sense of the first form.
 * - Synset.hypernym_paths() recurses over hypernyms() + instance_hypernyms(). NLTK keeps each
 *   kind of pointer in a set and returns it sorted by synset name, so the parent order is
 *   "@ targets by name, then @i targets by name", not the order of the data file.
 */
#include "base/base.h"
#include "base/strmap.h"
#include "concepts/concepts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct cfx_wordnet {
    int32_t n;            /* number of noun synsets */
    int32_t *offset;      /* (n) byte offset in data.noun; ascending, so it can be searched */
    const char **name;    /* (n) NLTK name, "chair.n.01" (points into pool) */
    int32_t *par_start;   /* (n+1) parents of s: par[par_start[s] .. par_start[s+1]) */
    int32_t *par;         /* hypernyms sorted by name, then instance hypernyms sorted by name */
    int32_t *child_start; /* (n+1) the reverse edges (hyponyms and instance hyponyms) */
    int32_t *child;
    int32_t *best_parent; /* (n) parent on the first longest path, -1 at a root */
    int32_t *longest;     /* (n) nodes on the longest root-to-s path, s included */
    int32_t *depth;       /* (n) edges on the shortest path to the root entity.n.01 */
    cfx__strmap lemmas;   /* lemma -> index into lemma_start (keys in pool) */
    int32_t *lemma_start; /* senses of lemma i: lemma_syn[lemma_start[i] .. lemma_start[i+1]) */
    int32_t *lemma_syn;
    cfx__strmap exc;    /* inflected form -> index into exc_start (keys in pool) */
    int32_t *exc_start; /* base forms of form i: exc_base[exc_start[i] .. exc_start[i+1]) */
    const char **exc_base;
    char *pool; /* every string above lives in this block */
    size_t pool_len;
    int32_t nlemmas, nsenses, nforms, nbases; /* lengths of the lemma and exception tables */
    bool from_cache;
    void *map; /* from the cache: the mapped file, which the int arrays and the pool point into */
    size_t map_len;
    /* From the cache, name, exc_base and the two maps stay NULL and empty: their strings are
     * read through the file's pool offsets where they lie (name_at, base_at, and the maps' slot
     * tables, -1 for an empty slot). Pointer tables built from them wrote 7 MB of fresh heap,
     * 1000 page faults, a fifth of a `concepts nearest` process. */
    const int64_t *name_at, *base_at;
    struct slots {
        const int64_t *at; /* (cap) pool offset of the key, -1: empty */
        const int32_t *val;
        size_t cap; /* a power of two, or 0 */
    } lemma_slots, exc_slots;
};

/* Synset s's name, and exception base k, wherever they are kept. */
static const char *syn_name(const cfx_wordnet *wn, int32_t s) {
    return wn->name ? wn->name[s] : wn->pool + wn->name_at[s];
}

static const char *exc_base(const cfx_wordnet *wn, int32_t k) {
    return wn->exc_base ? wn->exc_base[k] : wn->pool + wn->base_at[k];
}

/* The value of the len bytes at s in the map m or, from the cache, its slot table t: the same
 * probe as cfx__strmap_get (src/base/strmap.c), which wrote the table. */
static int32_t map_get(const cfx_wordnet *wn, const cfx__strmap *m, const struct slots *t,
                       const char *s, size_t len) {
    if (!t->cap) return cfx__strmap_get(m, s, len);
    size_t mask = t->cap - 1;
    for (size_t i = cfx__strmap_hash(s, len) & mask;; i = (i + 1) & mask) {
        if (t->at[i] < 0) return -1;
        const char *k = wn->pool + t->at[i];
        if (strncmp(k, s, len) == 0 && k[len] == '\0') return t->val[i];
    }
}

/* Fills an empty map with the n keys at base + at[k] -> k. A key listed twice keeps its first
 * value: noun.exc lists three forms on two lines (aurar, diastemata, involucra), and cfx reads
 * the first. NLTK's exception map is a dict filled line by line, so it keeps the last, and the
 * two differ on aurar (NLTK: eyrir.n.01, cfx: unknown) and involucra (NLTK: unknown, cfx:
 * involucre.n.01). */
static cfx_status fill_map(cfx__strmap *m, const char *base, const int64_t *at, int32_t n) {
    CFX_TRY(cfx__strmap_reserve(m, (size_t)n));
    for (int32_t k = 0; k < n; k++) {
        const char *key = base + at[k];
        if (cfx__strmap_get(m, key, strlen(key)) < 0) CFX_TRY(cfx__strmap_put(m, key, k));
    }
    return CFX_OK;
}

/* A whole file as a NUL-terminated block. Mapping it is several times faster than reading it
 * on small virtual machines (no copy, no page faults on a fresh heap block): the bytes after
 * the end of a file up to the end of its last page read as zero, which terminates the text.
 * A file that ends exactly at a page boundary is read into memory instead. */
typedef struct {
    char *p;
    size_t len;
    bool mapped;
} file_buf;

static void file_close(file_buf *fb) {
    if (fb->p && fb->mapped)
        munmap(fb->p, fb->len);
    else
        cfx_free(fb->p);
    fb->p = NULL;
}

static cfx_status file_open(const char *dir, const char *name, file_buf *fb) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    memset(fb, 0, sizeof *fb);
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        cfx_status e = cfx_set_error(CFX_EIO, "cannot open '%s': %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return e;
    }
    size_t len = (size_t)st.st_size;
    long page = sysconf(_SC_PAGESIZE);
    if (len > 0 && page > 0 && len % (size_t)page != 0) {
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m != MAP_FAILED) {
            close(fd);
            *fb = (file_buf){m, len, true};
            return CFX_OK;
        }
    }
    char *buf = cfx_malloc(len + 1);
    if (!buf) {
        close(fd);
        return CFX_ENOMEM;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != len) {
        cfx_free(buf);
        return cfx_set_error(CFX_EIO, "cannot read '%s'", path);
    }
    buf[len] = '\0';
    *fb = (file_buf){buf, len, false};
    return CFX_OK;
}

/* A growing block of NUL-terminated strings. Strings are referred to by their offset while the
 * block grows and turned into pointers once it is complete. */
typedef struct {
    char *p;
    size_t len, cap;
} pool;

static int64_t pool_add(pool *pl, const char *s, size_t n, bool lower) {
    if (pl->len + n + 1 > pl->cap) {
        size_t cap = pl->cap ? pl->cap : 1 << 20;
        while (pl->len + n + 1 > cap) cap *= 2;
        char *p = cfx_realloc(pl->p, cap);
        if (!p) return -1;
        pl->p = p;
        pl->cap = cap;
    }
    int64_t at = (int64_t)pl->len;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        pl->p[pl->len++] = lower && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    pl->p[pl->len++] = '\0';
    return at;
}

static int count_lines(const char *buf) {
    int n = 0;
    for (const char *p = buf; (p = strchr(p, '\n')); p++) n++;
    return n + 1;
}

static const char *skip_token(const char *p) {
    while (*p && *p != ' ' && *p != '\n') p++;
    while (*p == ' ') p++;
    return p;
}

static size_t token_len(const char *p) {
    size_t n = 0;
    while (p[n] && p[n] != ' ' && p[n] != '\n') n++;
    return n;
}

/* strchr is vectorised; most of data.noun is glosses that are skipped this way. */
static const char *next_line(const char *p) {
    const char *nl = strchr(p, '\n');
    return nl ? nl + 1 : p + strlen(p);
}

/* Finds the synset with a data.noun byte offset; -1 when none starts there. */
static int32_t find_offset(const cfx_wordnet *wn, long off) {
    int32_t lo = 0, hi = wn->n - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (wn->offset[mid] == off) return mid;
        if (wn->offset[mid] < off)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Parsed but not yet resolved: the raw pointers of every synset, as offsets. */
typedef struct {
    int32_t from, to_off;
    int kind; /* 0: @ hypernym, 1: @i instance hypernym */
} raw_edge;

/* data.noun: one synset per line, "offset lex_filenum n w_cnt (word lex_id)* p_cnt
 * (symbol offset pos source/target)* | gloss". Lines that start with a space are the licence. */
static cfx_status parse_data(cfx_wordnet *wn, const char *buf, pool *pl, int64_t *first_word,
                             raw_edge **edges, int32_t *nedges) {
    int maxlines = count_lines(buf);
    wn->offset = cfx_malloc((size_t)maxlines * sizeof *wn->offset);
    size_t ecap = (size_t)maxlines * 2;
    raw_edge *e = cfx_malloc(ecap * sizeof *e);
    if (!wn->offset || !e) {
        cfx_free(e);
        return CFX_ENOMEM;
    }
    int32_t n = 0, ne = 0, line = 0;
    for (const char *p = buf; *p; p = next_line(p)) {
        line++;
        if (*p == ' ' || *p == '\n') continue;
        char *end;
        long off = strtol(p, &end, 10);
        const char *q = skip_token(skip_token(skip_token(p))); /* offset, lex_filenum, ss_type */
        long wcnt = strtol(q, &end, 16);
        if (end == q || wcnt < 1) {
            cfx_free(e);
            return cfx_set_error(CFX_EFORMAT, "data.noun line %d: bad word count", line);
        }
        q = skip_token(q);
        int64_t w = pool_add(pl, q, token_len(q), true);
        if (w < 0) {
            cfx_free(e);
            return CFX_ENOMEM;
        }
        first_word[n] = w;
        for (long i = 0; i < wcnt; i++) q = skip_token(skip_token(q));
        long pcnt = strtol(q, &end, 10);
        q = skip_token(q);
        for (long i = 0; i < pcnt; i++) {
            size_t sl = token_len(q);
            int kind = sl == 1 && q[0] == '@' ? 0 : sl == 2 && q[0] == '@' && q[1] == 'i' ? 1 : -1;
            q = skip_token(q);
            long to = strtol(q, &end, 10);
            q = skip_token(q);
            char pos = *q;
            q = skip_token(skip_token(q));
            if (kind < 0 || pos != 'n') continue;
            if ((size_t)ne == ecap) {
                raw_edge *g = cfx_realloc(e, 2 * ecap * sizeof *e);
                if (!g) {
                    cfx_free(e);
                    return CFX_ENOMEM;
                }
                e = g;
                ecap *= 2;
            }
            e[ne++] = (raw_edge){n, (int32_t)to, kind};
        }
        wn->offset[n++] = (int32_t)off;
    }
    wn->n = n;
    *edges = e;
    *nedges = ne;
    return CFX_OK;
}

/* index.noun: "lemma n synset_cnt p_cnt (symbol)* sense_cnt tagsense_cnt (offset)*". The
 * senses are stored as offsets first and resolved once data.noun is read. */
static cfx_status parse_index(cfx_wordnet *wn, const char *buf, pool *pl, int64_t **lemma_at,
                              int32_t **sense_off, int32_t *nlemmas) {
    int maxlines = count_lines(buf);
    int64_t *at = cfx_malloc((size_t)maxlines * sizeof *at);
    wn->lemma_start = cfx_malloc(((size_t)maxlines + 1) * sizeof *wn->lemma_start);
    size_t scap = (size_t)maxlines * 2;
    int32_t *so = cfx_malloc(scap * sizeof *so);
    if (!at || !wn->lemma_start || !so) {
        cfx_free(at);
        cfx_free(so);
        return CFX_ENOMEM;
    }
    int32_t nl = 0, ns = 0, line = 0;
    for (const char *p = buf; *p; p = next_line(p)) {
        line++;
        if (*p == ' ' || *p == '\n') continue;
        size_t ll = token_len(p);
        const char *q = skip_token(skip_token(p));
        char *end;
        long cnt = strtol(q, &end, 10);
        q = skip_token(q);
        long pcnt = strtol(q, &end, 10);
        q = skip_token(q);
        for (long i = 0; i < pcnt; i++) q = skip_token(q);
        q = skip_token(skip_token(q)); /* sense_cnt, tagsense_cnt */
        if (cnt < 1) {
            cfx_free(at);
            cfx_free(so);
            return cfx_set_error(CFX_EFORMAT, "index.noun line %d: bad synset count", line);
        }
        if ((size_t)(ns + cnt) > scap) {
            while ((size_t)(ns + cnt) > scap) scap *= 2;
            int32_t *g = cfx_realloc(so, scap * sizeof *so);
            if (!g) {
                cfx_free(at);
                cfx_free(so);
                return CFX_ENOMEM;
            }
            so = g;
        }
        wn->lemma_start[nl] = ns;
        for (long i = 0; i < cnt; i++) {
            so[ns++] = (int32_t)strtol(q, &end, 10);
            q = skip_token(q);
        }
        if ((at[nl] = pool_add(pl, p, ll, false)) < 0) {
            cfx_free(at);
            cfx_free(so);
            return CFX_ENOMEM;
        }
        nl++;
    }
    wn->lemma_start[nl] = ns;
    *lemma_at = at;
    *sense_off = so;
    *nlemmas = nl;
    return CFX_OK;
}

/* noun.exc: "inflected base [base ...]". */
static cfx_status parse_exc(cfx_wordnet *wn, const char *buf, pool *pl, int64_t **form_at,
                            int64_t **base_at, int32_t *nforms) {
    int maxlines = count_lines(buf);
    size_t bcap = (size_t)maxlines * 2;
    int64_t *fa = cfx_malloc((size_t)maxlines * sizeof *fa), *ba = cfx_malloc(bcap * sizeof *ba);
    wn->exc_start = cfx_malloc(((size_t)maxlines + 1) * sizeof *wn->exc_start);
    int32_t nf = 0, nb = 0;
    if (!fa || !ba || !wn->exc_start) goto oom;
    for (const char *p = buf; *p; p = next_line(p)) {
        if (*p == ' ' || *p == '\n') continue;
        if ((fa[nf] = pool_add(pl, p, token_len(p), false)) < 0) goto oom;
        wn->exc_start[nf++] = nb;
        for (const char *q = skip_token(p); *q && *q != '\n'; q = skip_token(q)) {
            if ((size_t)nb == bcap) {
                int64_t *g = cfx_realloc(ba, 2 * bcap * sizeof *ba);
                if (!g) goto oom;
                ba = g;
                bcap *= 2;
            }
            if ((ba[nb++] = pool_add(pl, q, token_len(q), false)) < 0) goto oom;
        }
    }
    wn->exc_start[nf] = nb;
    *form_at = fa;
    *base_at = ba;
    *nforms = nf;
    return CFX_OK;
oom:
    cfx_free(fa);
    cfx_free(ba);
    return CFX_ENOMEM;
}

/* Sorting parents by name needs the names; qsort has no context argument, so the comparison
 * runs over (kind, name, synset) triples. */
typedef struct {
    const char *name;
    int32_t s;
    int kind;
} named;

static int cmp_named(const void *a, const void *b) {
    const named *x = a, *y = b;
    if (x->kind != y->kind) return x->kind - y->kind;
    return strcmp(x->name, y->name);
}

/* Length of the longest root-to-s path and the parent it continues, memoised in wn->longest
 * (0 = not yet known). Among the parents with the longest path the first one wins, so following
 * best_parent from s reproduces the first path of maximal length in NLTK's depth-first order:
 * that order lists every path through an earlier parent before any path through a later one.
 * WordNet's noun hierarchy is at most 20 levels deep, so the recursion stays shallow. */
static int32_t longest_path(cfx_wordnet *wn, int32_t s) {
    if (wn->longest[s]) return wn->longest[s];
    int32_t best = 0, bp = -1;
    for (int32_t i = wn->par_start[s]; i < wn->par_start[s + 1]; i++) {
        int32_t l = longest_path(wn, wn->par[i]);
        if (l > best) best = l, bp = wn->par[i];
    }
    wn->best_parent[s] = bp;
    return wn->longest[s] = best + 1;
}

/* Builds the parent lists (NLTK order, duplicates dropped as NLTK's set drops them), the child
 * lists, the first longest path of every synset and every synset's depth. The edges arrive
 * grouped by their source synset because data.noun is read in order. */
static cfx_status build_graph(cfx_wordnet *wn, const raw_edge *e, int32_t ne) {
    int32_t n = wn->n;
    wn->par_start = cfx_calloc((size_t)n + 1, sizeof(int32_t));
    wn->par = cfx_malloc(((size_t)ne + 1) * sizeof(int32_t));
    wn->child_start = cfx_calloc((size_t)n + 2, sizeof(int32_t));
    wn->child = cfx_malloc(((size_t)ne + 1) * sizeof(int32_t));
    wn->best_parent = cfx_malloc((size_t)n * sizeof(int32_t));
    wn->longest = cfx_calloc((size_t)n, sizeof(int32_t));
    wn->depth = cfx_malloc((size_t)n * sizeof(int32_t));
    named *tmp = cfx_malloc(((size_t)ne + 1) * sizeof *tmp);
    int32_t *queue = cfx_malloc(((size_t)n + 1) * sizeof *queue);
    if (!wn->par_start || !wn->par || !wn->child_start || !wn->child || !wn->best_parent ||
        !wn->longest || !wn->depth || !tmp || !queue) {
        cfx_free(tmp);
        cfx_free(queue);
        return CFX_ENOMEM;
    }
    int32_t np = 0, i = 0;
    for (int32_t s = 0; s < n; s++) {
        wn->par_start[s] = np;
        int32_t k = 0;
        for (; i < ne && e[i].from == s; i++) {
            int32_t to = find_offset(wn, e[i].to_off);
            if (to < 0) {
                cfx_free(tmp);
                cfx_free(queue);
                return cfx_set_error(CFX_EFORMAT,
                                     "data.noun: synset %08d points to %08d, which is not a synset",
                                     wn->offset[s], e[i].to_off);
            }
            tmp[k++] = (named){syn_name(wn, to), to, e[i].kind};
        }
        qsort(tmp, (size_t)k, sizeof *tmp, cmp_named);
        for (int32_t j = 0; j < k; j++)
            if (j == 0 || tmp[j].s != tmp[j - 1].s || tmp[j].kind != tmp[j - 1].kind)
                wn->par[np++] = tmp[j].s;
    }
    wn->par_start[n] = np;
    cfx_free(tmp);
    /* Children: a counting sort of the parent edges by parent. */
    for (int32_t j = 0; j < np; j++) wn->child_start[wn->par[j] + 2]++;
    for (int32_t s = 0; s < n; s++) wn->child_start[s + 2] += wn->child_start[s + 1];
    for (int32_t s = 0; s < n; s++)
        for (int32_t j = wn->par_start[s]; j < wn->par_start[s + 1]; j++)
            wn->child[wn->child_start[wn->par[j] + 1]++] = s;
    for (int32_t s = 0; s < n; s++) longest_path(wn, s);
    /* Depth: breadth-first search from every root (WordNet 3.0 nouns have one, entity.n.01)
     * over hypernym and hyponym edges in both directions, the graph cfx_wordnet_distances
     * walks. That is shorter than the way up the hypernyms for synsets that share a child with
     * a shallower synset, and it keeps the triangle inequality d(a,b) <= depth(a) + depth(b)
     * that the graph cost model relies on. */
    int32_t head = 0, tail = 0;
    for (int32_t s = 0; s < n; s++) {
        wn->depth[s] = -1;
        if (wn->par_start[s] == wn->par_start[s + 1]) wn->depth[s] = 0, queue[tail++] = s;
    }
    while (head < tail) {
        int32_t s = queue[head++];
        for (int pass = 0; pass < 2; pass++) {
            const int32_t *nb = pass ? wn->child : wn->par;
            int32_t lo = pass ? wn->child_start[s] : wn->par_start[s];
            int32_t hi = pass ? wn->child_start[s + 1] : wn->par_start[s + 1];
            for (int32_t j = lo; j < hi; j++)
                if (wn->depth[nb[j]] < 0)
                    wn->depth[nb[j]] = wn->depth[s] + 1, queue[tail++] = nb[j];
        }
    }
    cfx_free(queue);
    return CFX_OK;
}

/* Reads the three files and builds the tables. Intermediate strings are pool offsets until the
 * pool stops growing; then they become pointers. */
static cfx_status load(cfx_wordnet *wn, const char *dir) {
    file_buf ib = {0}, db = {0}, eb = {0};
    pool pl = {0};
    int64_t *lemma_at = NULL, *first_word = NULL, *form_at = NULL, *base_at = NULL;
    int64_t *name_at = NULL;
    int32_t *sense_off = NULL, nlemmas = 0, nforms = 0, ne = 0;
    raw_edge *edges = NULL;
    cfx_status st;
    if ((st = file_open(dir, "index.noun", &ib)) != CFX_OK) goto done;
    if ((st = parse_index(wn, ib.p, &pl, &lemma_at, &sense_off, &nlemmas)) != CFX_OK) goto done;
    file_close(&ib);
    if ((st = file_open(dir, "data.noun", &db)) != CFX_OK) goto done;
    st = CFX_ENOMEM;
    if (!(first_word = cfx_malloc((size_t)count_lines(db.p) * sizeof *first_word))) goto done;
    if ((st = parse_data(wn, db.p, &pl, first_word, &edges, &ne)) != CFX_OK) goto done;
    file_close(&db);
    if ((st = file_open(dir, "noun.exc", &eb)) != CFX_OK) goto done;
    if ((st = parse_exc(wn, eb.p, &pl, &form_at, &base_at, &nforms)) != CFX_OK) goto done;
    file_close(&eb);

    /* The lemma table (still pointing at offsets into the growing pool, so it is filled after
     * the names below are added) and the senses as synset indices. */
    st = CFX_ENOMEM;
    int32_t nsenses = wn->lemma_start[nlemmas], nbases = wn->exc_start[nforms];
    if (!(wn->lemma_syn = cfx_malloc(((size_t)nsenses + 1) * sizeof *wn->lemma_syn))) goto done;
    for (int32_t k = 0; k < nsenses; k++) {
        if ((wn->lemma_syn[k] = find_offset(wn, sense_off[k])) < 0) {
            st = cfx_set_error(CFX_EFORMAT, "index.noun: sense %08d is not a synset in data.noun",
                               sense_off[k]);
            goto done;
        }
    }
    if (fill_map(&wn->lemmas, pl.p, lemma_at, nlemmas) != CFX_OK) goto done;
    /* NLTK's names: first lemma lowercased, and the synset's position among that lemma's
     * senses. The table keys point into the pool, which may move while names are added, so
     * the names are made in a scratch block first. */
    if (!(name_at = cfx_malloc((size_t)wn->n * sizeof *name_at))) goto done;
    {
        pool names = {0};
        for (int32_t s = 0; s < wn->n; s++) {
            const char *w = pl.p + first_word[s];
            int32_t l = cfx__strmap_get(&wn->lemmas, w, strlen(w)), sense = 0;
            for (int32_t k = l < 0 ? 0 : wn->lemma_start[l]; l >= 0 && k < wn->lemma_start[l + 1];
                 k++)
                if (wn->lemma_syn[k] == s) sense = k - wn->lemma_start[l] + 1;
            if (sense == 0) {
                cfx_free(names.p);
                st = cfx_set_error(CFX_EFORMAT,
                                   "data.noun: synset %08d ('%s') is not a sense "
                                   "of its first lemma in index.noun",
                                   wn->offset[s], w);
                goto done;
            }
            char buf[512];
            int len = snprintf(buf, sizeof buf, "%.480s.n.%02d", w, sense);
            if ((name_at[s] = pool_add(&names, buf, (size_t)len, false)) < 0) {
                cfx_free(names.p);
                goto done;
            }
        }
        /* Append the names to the main pool, then fix every pointer at once. */
        size_t base = pl.len;
        if (pool_add(&pl, names.p, names.len, false) < 0) {
            cfx_free(names.p);
            goto done;
        }
        cfx_free(names.p);
        for (int32_t s = 0; s < wn->n; s++) name_at[s] += (int64_t)base;
    }
    wn->pool = pl.p;
    wn->pool_len = pl.len;
    wn->nlemmas = nlemmas, wn->nsenses = nsenses, wn->nforms = nforms, wn->nbases = nbases;
    pl.p = NULL;
    cfx__strmap_deinit(&wn->lemmas);
    if (fill_map(&wn->lemmas, wn->pool, lemma_at, nlemmas) != CFX_OK) goto done;
    if (!(wn->name = cfx_malloc((size_t)wn->n * sizeof *wn->name))) goto done;
    for (int32_t s = 0; s < wn->n; s++) wn->name[s] = wn->pool + name_at[s];
    if (!(wn->exc_base = cfx_malloc(((size_t)nbases + 1) * sizeof *wn->exc_base))) goto done;
    for (int32_t k = 0; k < nbases; k++) wn->exc_base[k] = wn->pool + base_at[k];
    if (fill_map(&wn->exc, wn->pool, form_at, nforms) != CFX_OK) goto done;
    st = build_graph(wn, edges, ne);
done:
    file_close(&ib);
    file_close(&db);
    file_close(&eb);
    cfx_free(pl.p);
    cfx_free(lemma_at);
    cfx_free(first_word);
    cfx_free(form_at);
    cfx_free(base_at);
    cfx_free(name_at);
    cfx_free(sense_off);
    cfx_free(edges);
    return st;
}

/* ------------------------------------------------------------------ the binary cache --- */

/* Parsing the three text files and building the tables takes about 0.15 s; the tables written
 * as one binary file load in a few milliseconds. The cache lives in $CFX_CACHE_DIR, else
 * $XDG_CACHE_HOME/cfx, else ~/.cache/cfx (CFX_CACHE_DIR=off: no cache), named by a hash of the
 * database folder's real path and each source file's size, modification time and inode, so an
 * edited or replaced database is parsed again. The file ends in a checksum of all before it,
 * and every index in it is checked on reading, so a damaged cache is never trusted: it is
 * parsed again from the text (and rewritten). A cache that cannot be written is not an error.
 *
 * Layout (native byte order; the key includes the machine's word size and order and the format's
 * magic): magic "CFXWN002", the u64 key, eight i32 counts (n, parents, children, lemmas, senses,
 * forms, bases, 0), the u64 pool length, the i32 lengths of the lemma and exception tables, the
 * pool, then the arrays: offset, name (pool offsets), par_start, par, child_start, child,
 * best_parent, longest, depth, the lemma map's slot table (capacity, keys as pool offsets or -1,
 * values), lemma_start, lemma_syn, the exception map's slot table, exc_start, exc_base (pool
 * offsets); each item padded to 8 bytes and the whole to 32, then the u64 checksum of everything
 * before it. A reader maps the file and uses the arrays where they lie: a warm load reads no
 * text, copies no table and hashes no key (15 M instructions, against 119 M for the copying
 * reader of format 001 with its byte-wise checksum). */
static const char cache_magic[8] = {'C', 'F', 'X', 'W', 'N', '0', '0', '2'};

/* The cache file's path for the database in dir; false when there is to be no cache. */
static bool cache_path(const char *dir, char *out, size_t cap, uint64_t *key) {
    const char *env = getenv("CFX_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    char folder[4096];
    if (env && !strcmp(env, "off")) return false;
    if (env && *env)
        snprintf(folder, sizeof folder, "%s", env);
    else if (xdg && *xdg)
        snprintf(folder, sizeof folder, "%s/cfx", xdg);
    else if (home && *home)
        snprintf(folder, sizeof folder, "%s/.cache/cfx", home);
    else
        return false;
    char *real = realpath(dir, NULL);
    if (!real) return false;
    uint64_t h = cfx_fnv1a(CFX_FNV1A_INIT, real, strlen(real) + 1);
    const uint32_t shape = (uint32_t)sizeof(void *) | 0x01020300u; /* word size, byte order */
    h = cfx_fnv1a(h, &shape, sizeof shape);
    h = cfx_fnv1a(h, cache_magic, sizeof cache_magic); /* a new format gets a new file */
    static const char *const files[] = {"index.noun", "data.noun", "noun.exc"};
    for (int i = 0; i < 3; i++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", real, files[i]);
        if (stat(path, &st) != 0) {
            free(real);
            return false;
        }
        int64_t v[4] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec,
                        (int64_t)st.st_mtim.tv_nsec, (int64_t)st.st_ino};
        h = cfx_fnv1a(h, v, sizeof v);
    }
    free(real);
    *key = h;
    /* (mkdir -p of the cache folder, one level at a time) */
    for (char *p = folder + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(folder, 0755);
            *p = '/';
        }
    mkdir(folder, 0755);
    return snprintf(out, cap, "%s/wordnet-%016llx.bin", folder, (unsigned long long)h) < (int)cap;
}

/* A growing byte buffer for the writer. */
typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} bytes;

static void put(bytes *b, const void *data, size_t n) {
    if (b->failed) return;
    if (b->len + n + 8 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 22;
        while (b->len + n + 8 > cap) cap *= 2;
        char *q = cfx_realloc(b->p, cap);
        if (!q) {
            b->failed = true;
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    while (b->len % 8) b->p[b->len++] = '\0'; /* every array starts 8-aligned in the file */
}

/* A map's slot table: the capacity, then each slot's key as a pool offset (-1 when empty), then
 * each slot's value. Read back as it is, the table needs no hashing. */
static void put_map(bytes *b, const cfx__strmap *m, const char *strings) {
    uint64_t cap = m->cap;
    put(b, &cap, sizeof cap);
    int64_t *at = cap ? cfx_malloc(cap * sizeof *at) : NULL;
    if (cap && !at) {
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < cap; i++) at[i] = m->keys[i] ? m->keys[i] - strings : -1;
    put(b, at, cap * sizeof *at);
    put(b, m->vals, cap * sizeof *m->vals);
    cfx_free(at);
}

static void put_strings(bytes *b, const char *const *s, int32_t n, const char *strings) {
    int64_t *at = cfx_malloc(((size_t)n + 1) * sizeof *at);
    if (!at) {
        b->failed = true;
        return;
    }
    for (int32_t i = 0; i < n; i++) at[i] = s[i] - strings;
    put(b, at, (size_t)n * sizeof *at);
    cfx_free(at);
}

/* The cache's checksum: FNV-1a over 8-byte words in four interleaved lanes (a byte-wise FNV-1a
 * of the 10 MB took 60 M instructions, a quarter of `concepts nearest`), the lanes then folded
 * the same way. Each step is a bijection of the lane, so any one changed word changes the sum.
 * n is a multiple of 32 (the writer pads the file). */
static uint64_t checksum(const char *p, size_t n) {
    const uint64_t prime = 1099511628211ull;
    uint64_t lane[4] = {CFX_FNV1A_INIT, CFX_FNV1A_INIT ^ 1, CFX_FNV1A_INIT ^ 2, CFX_FNV1A_INIT ^ 3};
    for (size_t i = 0; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * k, sizeof w);
            lane[k] = (lane[k] ^ w) * prime;
        }
    uint64_t h = CFX_FNV1A_INIT ^ n;
    for (int k = 0; k < 4; k++) h = (h ^ lane[k]) * prime;
    return h;
}

/* Writes the cache (atomically: a temporary renamed into place); failures are ignored. */
static void cache_write(const cfx_wordnet *wn, const char *path, uint64_t key) {
    bytes b = {0};
    const int32_t npar = wn->par_start[wn->n], nchild = wn->child_start[wn->n];
    const int32_t counts[8] = {
        wn->n, npar, nchild, (int32_t)wn->lemmas.n, wn->nsenses, (int32_t)wn->exc.n, wn->nbases, 0};
    const int32_t sizes[2] = {wn->nlemmas, wn->nforms};
    uint64_t pool_len = wn->pool_len;
    put(&b, cache_magic, sizeof cache_magic);
    put(&b, &key, sizeof key);
    put(&b, counts, sizeof counts);
    put(&b, &pool_len, sizeof pool_len);
    put(&b, sizes, sizeof sizes);
    put(&b, wn->pool, wn->pool_len);
    put(&b, wn->offset, (size_t)wn->n * sizeof(int32_t));
    put_strings(&b, wn->name, wn->n, wn->pool);
    put(&b, wn->par_start, ((size_t)wn->n + 1) * sizeof(int32_t));
    put(&b, wn->par, (size_t)npar * sizeof(int32_t));
    put(&b, wn->child_start, ((size_t)wn->n + 1) * sizeof(int32_t));
    put(&b, wn->child, (size_t)nchild * sizeof(int32_t));
    put(&b, wn->best_parent, (size_t)wn->n * sizeof(int32_t));
    put(&b, wn->longest, (size_t)wn->n * sizeof(int32_t));
    put(&b, wn->depth, (size_t)wn->n * sizeof(int32_t));
    put_map(&b, &wn->lemmas, wn->pool);
    put(&b, wn->lemma_start, ((size_t)wn->nlemmas + 1) * sizeof(int32_t));
    put(&b, wn->lemma_syn, (size_t)wn->nsenses * sizeof(int32_t));
    put_map(&b, &wn->exc, wn->pool);
    put(&b, wn->exc_start, ((size_t)wn->nforms + 1) * sizeof(int32_t));
    put_strings(&b, wn->exc_base, wn->nbases, wn->pool);
    static const char zero[32];
    if (!b.failed && b.len % 32) put(&b, zero, 32 - b.len % 32);
    uint64_t sum = b.failed ? 0 : checksum(b.p, b.len);
    put(&b, &sum, sizeof sum);
    if (!b.failed) {
        char tmp[4500];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        bool ok = f && fwrite(b.p, 1, b.len, f) == b.len;
        if (f) ok = fclose(f) == 0 && ok;
        if (!ok || rename(tmp, path) != 0) unlink(tmp);
    }
    cfx_free(b.p);
}

/* A reader over the mapped cache; any read past the end or any bad index sets bad. Arrays are
 * used in place (the file keeps each one 8-aligned), so reading copies nothing but the string
 * pointers and the maps' key pointers. */
typedef struct {
    const char *p, *end;
    bool bad;
} reader;

static const void *view(reader *r, size_t n) {
    size_t padded = (n + 7) & ~(size_t)7;
    if (r->bad || (size_t)(r->end - r->p) < padded) {
        r->bad = true;
        return NULL;
    }
    const void *out = r->p;
    r->p += padded;
    return out;
}

static void get(reader *r, void *out, size_t n) {
    const void *p = view(r, n);
    if (p) memcpy(out, p, n);
}

/* An index array: n values, each in [lo, hi). */
static int32_t *take_index(reader *r, int32_t n, int32_t lo, int32_t hi) {
    const int32_t *a = view(r, (size_t)n * sizeof *a);
    int32_t mn = INT32_MAX, mx = INT32_MIN; /* (a min and max that vectorise) */
    for (int32_t i = 0; a && i < n; i++) {
        mn = a[i] < mn ? a[i] : mn;
        mx = a[i] > mx ? a[i] : mx;
    }
    if (n > 0 && (mn < lo || mx >= hi)) r->bad = true;
    return (int32_t *)a;
}

/* A start array: n + 1 non-decreasing values from 0 to total. */
static int32_t *take_starts(reader *r, int32_t n, int32_t total) {
    int32_t *a = take_index(r, n + 1, 0, total + 1);
    int down = 0;
    for (int32_t i = 0; a && i < n; i++) down |= a[i] > a[i + 1];
    if (down) r->bad = true;
    if (a && (a[0] != 0 || a[n] != total)) r->bad = true;
    return a;
}

/* Pool offsets made pointers: each must start a string inside the pool. */
/* n string offsets into the pool, checked and used in place. */
static const int64_t *take_strings(reader *r, int32_t n, size_t len) {
    const int64_t *at = view(r, (size_t)n * sizeof *at);
    for (int32_t i = 0; at && i < n; i++)
        if (at[i] < 0 || (uint64_t)at[i] >= len) r->bad = true;
    return r->bad ? NULL : at;
}

/* A map's slot table into t, checked and used in place: n keys, values in [0, hi), at most
 * half the slots used (a probe must meet an empty slot). Keys are not rehashed: a table that
 * was damaged so that keys sit in the wrong slots would only miss lookups, and the checksum
 * rules that out. */
static void take_map(reader *r, struct slots *t, int32_t n, int32_t hi, size_t len) {
    uint64_t cap = 0;
    get(r, &cap, sizeof cap);
    if (r->bad || cap < 16 || (cap & (cap - 1)) || cap > ((uint64_t)1 << 32) ||
        2 * (uint64_t)n > cap) {
        r->bad = true;
        return;
    }
    const int64_t *at = view(r, cap * sizeof *at);
    const int32_t *val = view(r, cap * sizeof *val);
    if (r->bad) return;
    size_t used = 0;
    for (size_t i = 0; i < cap; i++) {
        if (at[i] == -1) continue;
        if (at[i] < 0 || (uint64_t)at[i] >= len || val[i] < 0 || val[i] >= hi) r->bad = true;
        used++;
    }
    if (used != (size_t)n) r->bad = true;
    if (!r->bad) *t = (struct slots){at, val, cap};
}

/* Fills wn from the cache file at path, mapped and used in place; false (wn left for
 * cfx_wordnet_free) when it is missing, from another key, damaged or out of memory. */
static bool cache_read(cfx_wordnet *wn, const char *path, uint64_t key) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0) return false;
    if (fstat(fd, &st) != 0 || st.st_size < 128 || st.st_size % 8 != 0) {
        close(fd);
        return false;
    }
    size_t size = (size_t)st.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return false;
    wn->map = m, wn->map_len = size;
    const char *data = m;
    reader r = {data, data + size - 8, false};
    char magic[8];
    uint64_t k = 0, pool_len = 0, sum = 0;
    int32_t c[8] = {0}, sizes[2] = {0};
    memcpy(&sum, data + size - 8, sizeof sum);
    if ((size - 8) % 32 || sum != checksum(data, size - 8)) r.bad = true;
    get(&r, magic, sizeof magic);
    get(&r, &k, sizeof k);
    get(&r, c, sizeof c);
    get(&r, &pool_len, sizeof pool_len);
    get(&r, sizes, sizeof sizes);
    const int32_t nl = sizes[0], nf = sizes[1];
    if (r.bad || memcmp(magic, cache_magic, sizeof magic) || k != key || c[0] < 1 || c[1] < 0 ||
        c[2] < 0 || c[3] < 0 || c[4] < 0 || c[5] < 0 || c[6] < 0 || nl < c[3] || nf < c[5] ||
        pool_len < 1 || pool_len > size)
        r.bad = true;
    /* Every count + 1 must fit (start arrays hold count + 1 entries up to the total + 1). */
    for (int i = 0; i < 7; i++) r.bad |= c[i] == INT32_MAX;
    r.bad |= nl == INT32_MAX || nf == INT32_MAX;
    const int32_t n = c[0];
    if (!r.bad) {
        const char *pool_at = view(&r, pool_len);
        if (pool_at && pool_at[pool_len - 1] != '\0') r.bad = true;
        wn->pool = (char *)pool_at;
        wn->pool_len = pool_len;
    }
    if (!r.bad) {
        wn->n = n, wn->nlemmas = nl, wn->nsenses = c[4], wn->nforms = nf, wn->nbases = c[6];
        wn->offset = (int32_t *)view(&r, (size_t)n * sizeof(int32_t));
        wn->name_at = take_strings(&r, n, pool_len);
        wn->par_start = take_starts(&r, n, c[1]);
        wn->par = take_index(&r, c[1], 0, n);
        wn->child_start = take_starts(&r, n, c[2]);
        wn->child = take_index(&r, c[2], 0, n);
        wn->best_parent = take_index(&r, n, -1, n);
        wn->longest = take_index(&r, n, 1, n + 1);
        wn->depth = take_index(&r, n, -1, n);
        take_map(&r, &wn->lemma_slots, c[3], nl, pool_len);
        wn->lemma_start = take_starts(&r, nl, c[4]);
        wn->lemma_syn = take_index(&r, c[4], 0, n);
        take_map(&r, &wn->exc_slots, c[5], nf, pool_len);
        wn->exc_start = take_starts(&r, nf, c[6]);
        wn->base_at = take_strings(&r, c[6], pool_len);
        for (int32_t i = 1; !r.bad && i < n; i++)
            if (wn->offset[i - 1] >= wn->offset[i]) r.bad = true; /* searched by bisection */
        if (!r.bad && (size_t)(r.end - r.p) >= 32) r.bad = true;  /* only the padding is left */
        /* The concept paths follow best parents: each must be one node shorter. */
        for (int32_t s = 0; !r.bad && s < n; s++) {
            int32_t bp = wn->best_parent[s];
            if (bp < 0 ? wn->longest[s] != 1 : wn->longest[bp] != wn->longest[s] - 1) r.bad = true;
        }
    }
    return !r.bad;
}

/* Frees every table of wn and zeroes it (a cache that failed half-way). */
static void clear(cfx_wordnet *wn);

cfx_wordnet *cfx_wordnet_load(const char *dir) {
    if (!dir) dir = "/usr/share/wordnet";
    cfx_wordnet *wn = cfx_calloc(1, sizeof *wn);
    if (!wn) return NULL;
    char cache[4400];
    uint64_t key = 0;
    bool cached = cache_path(dir, cache, sizeof cache, &key);
    if (cached && cache_read(wn, cache, key)) {
        wn->from_cache = true;
        return wn;
    }
    clear(wn);
    cfx_status st = load(wn, dir);
    if (st == CFX_OK && cached) cache_write(wn, cache, key);
    if (st != CFX_OK) {
        if (st == CFX_ENOMEM) cfx_set_error(CFX_ENOMEM, "out of memory");
        cfx_error_context(st, "load WordNet from '%s'", dir);
        cfx_wordnet_free(wn);
        return NULL;
    }
    return wn;
}

cfx_wordnet *cfx__wordnet_cache_open(const char *path, uint64_t key) {
    cfx_wordnet *wn = cfx_calloc(1, sizeof *wn);
    if (wn && !cache_read(wn, path, key)) {
        cfx_wordnet_free(wn);
        return NULL;
    }
    if (wn) wn->from_cache = true;
    return wn;
}

uint64_t cfx__wordnet_cache_checksum(const void *p, size_t n) {
    return checksum(p, n);
}

bool cfx__wordnet_from_cache(const cfx_wordnet *wn) {
    return wn->from_cache;
}

int32_t cfx_wordnet_count(const cfx_wordnet *wn) {
    return wn->n;
}

const char *cfx_wordnet_name(const cfx_wordnet *wn, int32_t s) {
    return s >= 0 && s < wn->n ? syn_name(wn, s) : NULL;
}

int32_t cfx_wordnet_offset(const cfx_wordnet *wn, int32_t s) {
    return wn->offset[s];
}

int32_t cfx_wordnet_parents(const cfx_wordnet *wn, int32_t s, const int32_t **parents) {
    *parents = wn->par + wn->par_start[s];
    return wn->par_start[s + 1] - wn->par_start[s];
}

int32_t cfx_wordnet_depth(const cfx_wordnet *wn, int32_t s) {
    return wn->depth[s];
}

/* Splits "lemma.n.NN" (the lemma may itself hold dots); false when s is not of that form. */
static bool split_name(const char *s, size_t *lemma_len, long *sense) {
    size_t len = strlen(s);
    size_t d = len;
    while (d > 0 && s[d - 1] >= '0' && s[d - 1] <= '9') d--;
    if (d == len || len - d > 6 || d < 4 || s[d - 1] != '.' ||
        (s[d - 2] != 'n' && s[d - 2] != 'N') || s[d - 3] != '.')
        return false;
    *lemma_len = d - 3;
    *sense = strtol(s + d, NULL, 10);
    return true;
}

int cfx_wordnet_is_name(const char *s) {
    size_t l;
    long k;
    return s && split_name(s, &l, &k);
}

cfx_status cfx_wordnet_synset(const cfx_wordnet *wn, const char *name, int32_t *out) {
    size_t ll;
    long sense;
    if (!name || !split_name(name, &ll, &sense))
        return cfx_set_error(CFX_EINVAL, "'%s' is not a noun synset name like 'chair.n.01'",
                             name ? name : "(null)");
    char lemma[512];
    if (ll >= sizeof lemma) return cfx_set_error(CFX_ENOTFOUND, "unknown synset '%s'", name);
    for (size_t i = 0; i < ll; i++) {
        char c = name[i];
        lemma[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c == ' ' ? '_' : c;
    }
    lemma[ll] = '\0';
    int32_t l = map_get(wn, &wn->lemmas, &wn->lemma_slots, lemma, ll);
    if (l < 0)
        return cfx_set_error(CFX_ENOTFOUND, "unknown synset '%s': no noun '%s'", name, lemma);
    int32_t nsenses = wn->lemma_start[l + 1] - wn->lemma_start[l];
    if (sense < 1 || sense > nsenses)
        return cfx_set_error(CFX_ENOTFOUND, "unknown synset '%s': the noun '%s' has %d sense%s",
                             name, lemma, nsenses, nsenses == 1 ? "" : "s");
    *out = wn->lemma_syn[wn->lemma_start[l] + sense - 1];
    return CFX_OK;
}

/* The noun detachment rules of morphy, in NLTK's order. */
static const char *const rule_old[] = {"s",    "ses",  "ves", "xes", "zes",
                                       "ches", "shes", "men", "ies"};
static const char *const rule_new[] = {"", "s", "f", "x", "z", "ch", "sh", "man", "y"};
#define NRULES     ((int)(sizeof rule_old / sizeof rule_old[0]))
#define MORPHY_MAX 64 /* forms kept per round; the rules only shorten words, so few arise */
#define WORD_MAX   256

/* Returns the lemma index of the first form in the list that is a noun, -1 if none. */
static int32_t first_lemma(const cfx_wordnet *wn, char (*forms)[WORD_MAX], int n) {
    for (int i = 0; i < n; i++) {
        int32_t l = map_get(wn, &wn->lemmas, &wn->lemma_slots, forms[i], strlen(forms[i]));
        if (l >= 0) return l;
    }
    return -1;
}

/* NLTK's _morphy for nouns, reduced to what synsets(word)[0] needs: the first form found. An
 * exception entry decides alone ([form] + its bases); otherwise the word and its one-rule
 * reductions are tried, then the rules are applied again and again to the reductions. */
static int32_t morphy(const cfx_wordnet *wn, const char *form) {
    /* 32 KiB of forms: on the heap, since worker threads may have small stacks. */
    char(*cur)[WORD_MAX] = cfx_malloc(2 * MORPHY_MAX * WORD_MAX);
    if (!cur) return -2;
    char(*next)[WORD_MAX] = cur + MORPHY_MAX;
    int32_t found = -1;
    size_t flen = strlen(form);
    int32_t e = map_get(wn, &wn->exc, &wn->exc_slots, form, flen);
    if (e >= 0) {
        int n = 0;
        snprintf(cur[n++], WORD_MAX, "%s", form);
        for (int32_t k = wn->exc_start[e]; k < wn->exc_start[e + 1] && n < MORPHY_MAX; k++)
            snprintf(cur[n++], WORD_MAX, "%s", exc_base(wn, k));
        found = first_lemma(wn, cur, n);
        cfx_free(cur);
        return found;
    }
    int n = 0;
    snprintf(cur[n++], WORD_MAX, "%s", form);
    for (int round = 0; n > 0 && found < 0; round++) {
        /* Apply every rule to every form; the first round also keeps the word itself. */
        int m = 0;
        if (round == 0) snprintf(next[m++], WORD_MAX, "%s", form);
        int first_new = m;
        for (int i = 0; i < n; i++) {
            size_t len = strlen(cur[i]);
            for (int r = 0; r < NRULES && m < MORPHY_MAX; r++) {
                size_t ol = strlen(rule_old[r]);
                if (len < ol || strcmp(cur[i] + len - ol, rule_old[r]) != 0) continue;
                snprintf(next[m++], WORD_MAX, "%.*s%s", (int)(len - ol), cur[i], rule_new[r]);
            }
        }
        found = first_lemma(wn, next, m);
        /* Only the reductions carry on to the next round. */
        n = m - first_new;
        memmove(cur, next + first_new, (size_t)n * WORD_MAX);
    }
    cfx_free(cur);
    return found;
}

cfx_status cfx_wordnet_word(const cfx_wordnet *wn, const char *word, int32_t *out) {
    char w[WORD_MAX];
    size_t len = word ? strlen(word) : 0;
    if (len == 0 || len >= WORD_MAX)
        return cfx_set_error(CFX_EINVAL, "'%s' is not a word", word ? word : "(null)");
    for (size_t i = 0; i <= len; i++) {
        char c = word[i];
        w[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c == ' ' ? '_' : c;
    }
    int32_t l = morphy(wn, w);
    if (l == -2) return CFX_ENOMEM;
    if (l < 0) return cfx_set_error(CFX_ENOTFOUND, "unknown word '%s': not a WordNet noun", word);
    *out = wn->lemma_syn[wn->lemma_start[l]];
    return CFX_OK;
}

cfx_status cfx_wordnet_lookup(const cfx_wordnet *wn, const char *concept, int32_t *out) {
    if (cfx_wordnet_is_name(concept)) return cfx_wordnet_synset(wn, concept, out);
    return cfx_wordnet_word(wn, concept, out);
}

int32_t cfx_wordnet_concept_path(const cfx_wordnet *wn, int32_t s, int32_t *path, int32_t cap) {
    int32_t len = wn->longest[s];
    if (path && cap >= len)
        for (int32_t i = len - 1, t = s; i >= 0; i--, t = wn->best_parent[t]) path[i] = t;
    return len;
}

/* All root-to-s paths in NLTK's order: depth first over the parents, each path root first. */
typedef struct {
    int32_t *flat, *lens;
    int32_t nflat, npaths, capflat, cappaths;
} paths_acc;

static cfx_status paths_rec(const cfx_wordnet *wn, int32_t s, int32_t *stack, int32_t depth,
                            paths_acc *acc) {
    stack[depth++] = s; /* the stack holds s, its parent, ..., leaf first */
    if (wn->par_start[s] == wn->par_start[s + 1]) {
        if (acc->npaths == acc->cappaths) {
            int32_t cap = acc->cappaths ? 2 * acc->cappaths : 8;
            int32_t *g = cfx_realloc(acc->lens, (size_t)cap * sizeof *g);
            if (!g) return CFX_ENOMEM;
            acc->lens = g, acc->cappaths = cap;
        }
        if (acc->nflat + depth > acc->capflat) {
            int32_t cap = acc->capflat ? 2 * acc->capflat : 64;
            while (cap < acc->nflat + depth) cap *= 2;
            int32_t *g = cfx_realloc(acc->flat, (size_t)cap * sizeof *g);
            if (!g) return CFX_ENOMEM;
            acc->flat = g, acc->capflat = cap;
        }
        for (int32_t i = 0; i < depth; i++) acc->flat[acc->nflat++] = stack[depth - 1 - i];
        acc->lens[acc->npaths++] = depth;
        return CFX_OK;
    }
    for (int32_t i = wn->par_start[s]; i < wn->par_start[s + 1]; i++)
        CFX_TRY(paths_rec(wn, wn->par[i], stack, depth, acc));
    return CFX_OK;
}

cfx_status cfx_wordnet_paths(const cfx_wordnet *wn, int32_t s, int32_t **flat, int32_t **lens,
                             int32_t *npaths) {
    int32_t stack[256];
    paths_acc acc = {0};
    cfx_status st = paths_rec(wn, s, stack, 0, &acc);
    if (st != CFX_OK) {
        cfx_free(acc.flat);
        cfx_free(acc.lens);
        return st;
    }
    *flat = acc.flat;
    *lens = acc.lens;
    *npaths = acc.npaths;
    return CFX_OK;
}

cfx_status cfx_wordnet_distances(const cfx_wordnet *wn, int32_t src, int32_t *dist) {
    int32_t *queue = cfx_malloc((size_t)wn->n * sizeof *queue);
    if (!queue) return CFX_ENOMEM;
    /* Every edge has length one, so Dijkstra's algorithm reduces to a breadth-first search:
     * the first time a synset is reached is along a shortest path. */
    for (int32_t s = 0; s < wn->n; s++) dist[s] = -1;
    int32_t head = 0, tail = 0;
    dist[src] = 0;
    queue[tail++] = src;
    while (head < tail) {
        int32_t s = queue[head++];
        for (int pass = 0; pass < 2; pass++) {
            const int32_t *nb = pass ? wn->child : wn->par;
            int32_t lo = pass ? wn->child_start[s] : wn->par_start[s];
            int32_t hi = pass ? wn->child_start[s + 1] : wn->par_start[s + 1];
            for (int32_t j = lo; j < hi; j++)
                if (dist[nb[j]] < 0) dist[nb[j]] = dist[s] + 1, queue[tail++] = nb[j];
        }
    }
    cfx_free(queue);
    return CFX_OK;
}

void cfx_wordnet_free(cfx_wordnet *wn) {
    if (!wn) return;
    clear(wn);
    cfx_free(wn);
}

static void clear(cfx_wordnet *wn) {
    if (!wn->map) {
        cfx_free(wn->offset);
        cfx_free(wn->par_start);
        cfx_free(wn->par);
        cfx_free(wn->child_start);
        cfx_free(wn->child);
        cfx_free(wn->best_parent);
        cfx_free(wn->longest);
        cfx_free(wn->depth);
        cfx_free(wn->lemma_start);
        cfx_free(wn->lemma_syn);
        cfx_free(wn->exc_start);
        cfx_free(wn->pool);
    } else {
        munmap(wn->map, wn->map_len);
    }
    cfx_free((void *)wn->name);
    cfx__strmap_deinit(&wn->lemmas);
    cfx__strmap_deinit(&wn->exc);
    cfx_free((void *)wn->exc_base);
    memset(wn, 0, sizeof *wn);
}
