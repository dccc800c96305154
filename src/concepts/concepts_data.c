/* concepts_data.c - a dataset of concept-annotated images for V-CECE: each image's id, label and
 * multiset of concepts, and the JSON file that holds them.
 *
 * Besides its concepts (sorted, so that two images compare by a merge), each image keeps the
 * multiset of its concepts' set elements as sorted (element, count) pairs, from which alone the
 * search computes its lower bound (search.c). The search also builds an inverted index of those
 * counts when it first needs one; adding an image drops it.
 *
 * The loader reads {"images": [{"id", "objects", "labels"}]} with cJSON. The file comes from a
 * user, so each problem is an error that names the image, or the line and column of malformed
 * JSON.
 */
#include "concepts/concepts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

cfx_concepts_data *cfx_concepts_data_new(cfx_concepts *c) {
    cfx_concepts_data *d = cfx_calloc(1, sizeof *d);
    if (!d) return NULL;
    d->c = c;
    d->cstart = cfx_malloc(sizeof *d->cstart);
    d->estart = cfx_malloc(sizeof *d->estart);
    if (!d->cstart || !d->estart) {
        cfx_concepts_data_free(d);
        return NULL;
    }
    d->cstart[0] = 0;
    d->estart[0] = 0;
    return d;
}

void cfx_concepts_data_free(cfx_concepts_data *d) {
    if (!d) return;
    cfx_free(d->id);
    cfx_free(d->label);
    cfx_free(d->cstart);
    cfx_free(d->con);
    cfx_free(d->listed);
    cfx_free(d->estart);
    cfx_free(d->ecode);
    cfx_free(d->ecount);
    cfx_free(d->etotal);
    cfx__intern_deinit(&d->labels);
    cfx_free(d->pstart);
    cfx_free(d->pimg);
    cfx_free(d->pcnt);
    cfx_free(d);
}

/* Grows *p (elements of size sz) to hold at least need, doubling. */
static cfx_status reserve(void **p, int64_t *cap, int64_t need, size_t sz) {
    if (need <= *cap) return CFX_OK;
    int64_t nc = *cap ? *cap : 1024;
    while (nc < need) nc *= 2;
    void *g = cfx_realloc(*p, (size_t)nc * sz);
    if (!g) return CFX_ENOMEM;
    *p = g;
    *cap = nc;
    return CFX_OK;
}

/* Sorts an image's n element codes (non-negative) ascending: insertion sort when short, else an
 * LSD radix sort by bytes through a stack buffer (an image's codes number a few hundred, and
 * qsort's comparisons were a tenth of loading VG); qsort when they do not fit. */
static void sort_codes(int32_t *v, int64_t n) {
    enum { CAP = 4096 };
    if (n <= 48 || n > CAP) {
        cfx__concepts_sort_i32(v, (size_t)n);
        return;
    }
    int32_t tmp[CAP], mx = 0, *src = v, *dst = tmp;
    for (int64_t i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    for (int shift = 0; shift < 32 && (mx >> shift) > 0; shift += 8) {
        int64_t count[257] = {0};
        for (int64_t i = 0; i < n; i++) count[((src[i] >> shift) & 255) + 1]++;
        for (int b = 1; b <= 256; b++) count[b] += count[b - 1];
        for (int64_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & 255]++] = src[i];
        int32_t *t = src;
        src = dst, dst = t;
    }
    if (src != v) memcpy(v, src, (size_t)n * sizeof *v);
}

cfx_status cfx_concepts_data_add(cfx_concepts_data *d, int64_t id, const int32_t *concepts,
                                 int32_t n, const char *label) {
    const cfx_concepts *c = d->c;
    if (n < 0 || (n > 0 && !concepts) || !label)
        return cfx_set_error(CFX_EINVAL, "image %lld: bad arguments", (long long)id);
    int64_t nelem = 0;
    for (int32_t i = 0; i < n; i++) {
        if (concepts[i] < 0 || concepts[i] >= c->names.n)
            return cfx_set_error(CFX_EINVAL, "image %lld: concept id %d out of range",
                                 (long long)id, concepts[i]);
        nelem += c->elem_start[concepts[i] + 1] - c->elem_start[concepts[i]];
    }
    if (d->n == d->cap) {
        size_t nc = d->cap ? 2 * (size_t)d->cap : 1024;
        void *g;
        if (!(g = cfx_realloc(d->id, nc * sizeof *d->id))) return CFX_ENOMEM;
        d->id = g;
        if (!(g = cfx_realloc(d->label, nc * sizeof *d->label))) return CFX_ENOMEM;
        d->label = g;
        if (!(g = cfx_realloc(d->etotal, nc * sizeof *d->etotal))) return CFX_ENOMEM;
        d->etotal = g;
        if (!(g = cfx_realloc(d->cstart, (nc + 1) * sizeof *d->cstart))) return CFX_ENOMEM;
        d->cstart = g;
        if (!(g = cfx_realloc(d->estart, (nc + 1) * sizeof *d->estart))) return CFX_ENOMEM;
        d->estart = g;
        d->cap = (int32_t)nc;
    }
    int64_t cc = d->capcon;
    CFX_TRY(reserve((void **)&d->listed, &cc, d->ncon + n, sizeof *d->listed));
    CFX_TRY(reserve((void **)&d->con, &d->capcon, d->ncon + n, sizeof *d->con));
    int64_t ce = d->capel;
    CFX_TRY(reserve((void **)&d->ecode, &ce, d->nel + nelem, sizeof *d->ecode));
    CFX_TRY(reserve((void **)&d->ecount, &d->capel, d->nel + nelem, sizeof *d->ecount));
    int32_t lab = cfx__intern_add(&d->labels, label);
    if (lab < 0) return CFX_ENOMEM;
    /* Concepts sorted; the element multiset as sorted (element, count) pairs, gathered in the
     * free tail of the element arrays and compacted in place. */
    /* (The arrays are NULL while every image so far is empty: no pointer arithmetic on them.) */
    int32_t *con = d->con ? d->con + d->ncon : NULL;
    if (n) memcpy(con, concepts, (size_t)n * sizeof *con);
    if (n) memcpy(d->listed + d->ncon, concepts, (size_t)n * sizeof *con);
    if (n) cfx__concepts_sort_i32(con, (size_t)n);
    int32_t *codes = d->ecode ? d->ecode + d->nel : NULL;
    int64_t k = 0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t e = c->elem_start[con[i]]; e < c->elem_start[con[i] + 1]; e++)
            codes[k++] = c->elem[e];
    if (k) sort_codes(codes, k);
    int64_t m = 0;
    for (int64_t i = 0; i < k; i++) {
        if (m > 0 && codes[m - 1] == codes[i]) {
            d->ecount[d->nel + m - 1]++;
        } else {
            codes[m] = codes[i];
            d->ecount[d->nel + m] = 1;
            m++;
        }
    }
    int32_t i = d->n++;
    d->id[i] = id;
    d->label[i] = lab;
    d->etotal[i] = k;
    d->ncon += n;
    d->cstart[i + 1] = (int32_t)d->ncon;
    d->nel += m;
    d->estart[i + 1] = d->nel;
    if (n > d->maxcon) d->maxcon = n;
    d->nempty += n == 0;
    cfx_free(d->pstart);
    cfx_free(d->pimg);
    cfx_free(d->pcnt);
    d->pstart = NULL, d->pimg = d->pcnt = NULL;
    return CFX_OK;
}

int32_t cfx_concepts_data_count(const cfx_concepts_data *d) {
    return d->n;
}

int64_t cfx_concepts_data_id(const cfx_concepts_data *d, int32_t i) {
    return d->id[i];
}

const char *cfx_concepts_data_label(const cfx_concepts_data *d, int32_t i) {
    return d->labels.str[d->label[i]];
}

const int32_t *cfx_concepts_data_image(const cfx_concepts_data *d, int32_t i, int32_t *n) {
    *n = d->cstart[i + 1] - d->cstart[i];
    return d->con ? d->con + d->cstart[i] : NULL;
}

const int32_t *cfx_concepts_data_listed(const cfx_concepts_data *d, int32_t i, int32_t *n) {
    *n = d->cstart[i + 1] - d->cstart[i];
    return d->listed ? d->listed + d->cstart[i] : NULL;
}

int32_t cfx_concepts_data_find(const cfx_concepts_data *d, int64_t id) {
    for (int32_t i = 0; i < d->n; i++)
        if (d->id[i] == id) return i;
    return -1;
}

int32_t cfx_concepts_data_empty(const cfx_concepts_data *d) {
    return d->nempty;
}

/* Line and column (both from 1) of byte offset off in text. */
static void line_col(const char *text, size_t off, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

/* Lists the label keys an image has, for the message about a missing one. */
static void key_list(const cJSON *labels, char *buf, size_t n) {
    size_t at = 0;
    buf[0] = '\0';
    const cJSON *k;
    cJSON_ArrayForEach(k, labels) {
        if (!k->string || at + 4 >= n) continue;
        at += (size_t)snprintf(buf + at, n - at, "%s'%s'", at ? ", " : "", k->string);
    }
    if (!at) snprintf(buf, n, "none");
}

/* An image id names one image: a file that gives two images the same id is refused (a query
 * by id would silently take the first). */
static int cmp_id(const void *a, const void *b) {
    const int64_t *x = a, *y = b; /* (id, index) pairs */
    return x[0] != y[0] ? (x[0] < y[0] ? -1 : 1) : (x[1] < y[1] ? -1 : x[1] > y[1]);
}

static cfx_status check_unique_ids(const cfx_concepts_data *d) {
    int64_t *pairs = cfx_malloc(((size_t)d->n + 1) * 2 * sizeof *pairs);
    if (!pairs) return CFX_ENOMEM;
    for (int32_t i = 0; i < d->n; i++) pairs[2 * i] = d->id[i], pairs[2 * i + 1] = i;
    qsort(pairs, (size_t)d->n, 2 * sizeof *pairs, cmp_id);
    cfx_status st = CFX_OK;
    for (int32_t i = 1; i < d->n && st == CFX_OK; i++)
        if (pairs[2 * i] == pairs[2 * i - 2])
            st = cfx_set_error(CFX_EFORMAT, "images #%lld and #%lld have the same id %lld",
                               (long long)pairs[2 * i - 1], (long long)pairs[2 * i + 1],
                               (long long)pairs[2 * i]);
    cfx_free(pairs);
    return st;
}

static cfx_status load_images(cfx_concepts_data *d, const cJSON *root, const char *label_key,
                              cfx_unknown_policy unknown, int64_t *skipped) {
    const cJSON *images =
        cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "images") : NULL;
    if (!cJSON_IsArray(images))
        return cfx_set_error(CFX_EFORMAT, "no \"images\" array at the top level");
    int32_t cap = 64, *ids = cfx_malloc((size_t)cap * sizeof *ids);
    if (!ids) return CFX_ENOMEM;
    cfx_status st = CFX_OK;
    int index = 0;
    const cJSON *im;
    cJSON_ArrayForEach(im, images) {
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(im, "id");
        const cJSON *objs = cJSON_GetObjectItemCaseSensitive(im, "objects");
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(im, "labels");
        /* A double holds whole numbers exactly up to 2^53; 1e300 converted to int64 is UB
         * (and printed as INT64_MIN). */
        if (!cJSON_IsNumber(jid) || jid->valuedouble != floor(jid->valuedouble) ||
            fabs(jid->valuedouble) > 9007199254740992.0) {
            st = cfx_set_error(
                CFX_EFORMAT, "image #%d has no \"id\" that is a whole number within +-2^53", index);
            break;
        }
        int64_t id = (int64_t)jid->valuedouble;
        if (!cJSON_IsArray(objs)) {
            st = cfx_set_error(CFX_EFORMAT, "image %lld has no \"objects\" array", (long long)id);
            break;
        }
        const cJSON *lab =
            cJSON_IsObject(labels) ? cJSON_GetObjectItemCaseSensitive(labels, label_key) : NULL;
        if (!cJSON_IsString(lab)) {
            char keys[512];
            key_list(labels, keys, sizeof keys);
            st = cfx_set_error(CFX_ENOTFOUND, "image %lld has no label '%s' (its label keys: %s)",
                               (long long)id, label_key, keys);
            break;
        }
        int32_t n = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, objs) {
            if (!cJSON_IsString(o)) {
                st = cfx_set_error(CFX_EFORMAT, "image %lld: an object is not a string",
                                   (long long)id);
                break;
            }
            int32_t cid;
            st = cfx_concepts_add(d->c, o->valuestring, &cid);
            if (st == CFX_ENOTFOUND && unknown == CFX_UNKNOWN_SKIP) {
                if (skipped) (*skipped)++;
                st = CFX_OK;
                continue;
            }
            if (st != CFX_OK) {
                cfx_error_context(st, "image %lld", (long long)id);
                break;
            }
            if (n == cap) {
                int32_t *g = cfx_realloc(ids, 2 * (size_t)cap * sizeof *g);
                if (!g) {
                    st = CFX_ENOMEM;
                    break;
                }
                ids = g;
                cap *= 2;
            }
            ids[n++] = cid;
        }
        if (st != CFX_OK) break;
        if ((st = cfx_concepts_data_add(d, id, ids, n, lab->valuestring)) != CFX_OK) break;
        index++;
    }
    cfx_free(ids);
    return st == CFX_OK ? check_unique_ids(d) : st;
}

cfx_concepts_data *cfx_concepts_data_load(cfx_concepts *c, const char *path, const char *label_key,
                                          cfx_unknown_policy unknown, int64_t *skipped) {
    if (skipped) *skipped = 0;
    if (!label_key || !label_key[0]) {
        cfx_set_error(CFX_EINVAL, "load '%s': no label key given", path ? path : "(null)");
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    cfx_status rs =
        path ? cfx_file_read_all(path, &text, &len) : cfx_set_error(CFX_EINVAL, "no path given");
    if (rs != CFX_OK) {
        cfx_error_context(rs, "load");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    /* Only white space may follow the document (cJSON stops after it). */
    const char *rest = root && end ? end : NULL;
    while (rest && rest < text + len && strchr(" \t\r\n", *rest)) rest++;
    if (!root || (rest && rest < text + len)) {
        int line, col;
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
        if (rest) off = (size_t)(rest - text);
        line_col(text, off, &line, &col);
        cfx_free(text);
        cJSON_Delete(root);
        cfx_set_error(CFX_EFORMAT, "load '%s': %s at line %d, column %d", path,
                      root ? "text after the JSON document" : "malformed JSON", line, col);
        return NULL;
    }
    cfx_free(text);
    cfx_concepts_data *d = cfx_concepts_data_new(c);
    cfx_status st = d ? load_images(d, root, label_key, unknown, skipped) : CFX_ENOMEM;
    cJSON_Delete(root);
    if (st != CFX_OK) {
        if (st == CFX_ENOMEM) cfx_set_error(CFX_ENOMEM, "out of memory");
        cfx_error_context(st, "load '%s'", path);
        cfx_concepts_data_free(d);
        return NULL;
    }
    return d;
}
