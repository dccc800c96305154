/* planner_llm.c - a vision LLM as the planner of V-CECE's local mode (Dimitriou et al. 2025:
 * the model sees the current image and the edits that remain, and names the next one).
 *
 * The request (explain/llm.c, cfx_llm_chat, fresh each time) holds the image and a numbered
 * list of the remaining edits, each as [action, concept, where]: "remove" and "insert" name one
 * concept, "replace" names "old -> new"; where is the region's place in the image ("top left",
 * "centre", ...), from its centroid. The answer is parsed leniently: the first bracketed list
 * (or the whole text), split at commas; the action by its word (remove/delete, insert/add,
 * replace/substitute), the concept by its word or synset name (either side of a replacement);
 * `where` settles a tie. An answer that names no remaining edit is asked again once, with the
 * answer quoted; then, as after a failed request, the built-in planner (edit_loop.c) chooses,
 * and the report says so. */
#include "concepts/concepts.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

typedef struct {
    cfx_llm *llm;
    const cfx_concepts *c;
    cfx_image_classifier *clf; /* the current label's name */
    cfx_edit_planner *fallback;
    char *report;
} llm_planner;

static void llm_planner_free(void *user) {
    llm_planner *p = user;
    if (!p) return;
    cfx_llm_free(p->llm);
    cfx_edit_planner_free(p->fallback);
    cfx_free(p->report);
    cfx_free(p);
}

static const char *llm_planner_report(void *user) {
    return ((llm_planner *)user)->report;
}

/* A concept's word in lower case with spaces: "ankle_boot.n.01" -> "ankle boot". */
static void word_of(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s", name ? name : "");
    char *dot = strchr(out, '.');
    if (dot) *dot = '\0';
    for (char *q = out; *q; q++) *q = *q == '_' ? ' ' : (char)tolower((unsigned char)*q);
}

/* Where a region lies: "top left" ... "bottom right", "centre" in the middle. */
static void where_of(const uint8_t *r, int h, int w, char *out, size_t cap) {
    double sx = 0, sy = 0, n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (r[(size_t)y * w + x]) sx += x + 0.5, sy += y + 0.5, n++;
    if (!n) {
        snprintf(out, cap, "anywhere");
        return;
    }
    int col = (int)(3 * sx / n / w), row = (int)(3 * sy / n / h);
    static const char *const rows[] = {"top", "middle", "bottom"};
    static const char *const cols[] = {"left", "centre", "right"};
    if (row == 1 && col == 1)
        snprintf(out, cap, "centre");
    else if (row == 1)
        snprintf(out, cap, "middle %s", cols[CFX_MIN(col, 2)]);
    else
        snprintf(out, cap, "%s %s", rows[CFX_MIN(row, 2)], cols[CFX_MIN(col, 2)]);
}

/* Copies s without surrounding white space, quotes and brackets, in lower case. */
static void clean(const char *s, size_t n, char *out, size_t cap) {
    while (n && (isspace((unsigned char)*s) || strchr("\"'`*[(", *s))) s++, n--;
    while (n && (isspace((unsigned char)s[n - 1]) || strchr("\"'`*.])", s[n - 1]))) n--;
    size_t k = 0;
    for (; k < n && k + 1 < cap; k++)
        out[k] = s[k] == '_' ? ' ' : (char)tolower((unsigned char)s[k]);
    out[k] = '\0';
}

static cfx_edit_kind action_of(const char *a, bool *ok) {
    *ok = true;
    if (!strcmp(a, "remove") || !strcmp(a, "delete") || !strcmp(a, "deletion"))
        return CFX_EDIT_DELETE;
    if (!strcmp(a, "insert") || !strcmp(a, "add") || !strcmp(a, "insertion"))
        return CFX_EDIT_INSERT;
    *ok = !strcmp(a, "replace") || !strcmp(a, "substitute") || !strcmp(a, "substitution");
    return CFX_EDIT_SUBSTITUTE;
}

/* The remaining edit an answer names, or -1. */
static int parse_answer(const llm_planner *p, const char *answer, const cfx_edit *edits,
                        char where[][32], int n) {
    const char *s = strchr(answer, '['), *e = s ? strchr(s, ']') : NULL;
    if (!s || !e)
        s = answer, e = answer + strlen(answer);
    else
        s++;
    char f[3][256] = {"", "", ""};
    for (int k = 0; k < 3 && s <= e; k++) {
        const char *comma = memchr(s, ',', (size_t)(e - s));
        const char *end = comma && k < 2 ? comma : e;
        clean(s, (size_t)(end - s), f[k], sizeof f[k]);
        s = end + 1;
    }
    bool ok;
    cfx_edit_kind kind = action_of(f[0], &ok);
    if (!ok) return -1;
    int pick = -1;
    for (int i = 0; i < n; i++) {
        if (edits[i].kind != kind) continue;
        char from[256] = "", to[256] = "", both[520];
        if (edits[i].from >= 0) word_of(cfx_concepts_name(p->c, edits[i].from), from, sizeof from);
        if (edits[i].to >= 0) word_of(cfx_concepts_name(p->c, edits[i].to), to, sizeof to);
        snprintf(both, sizeof both, "%s -> %s", from, to);
        char name[256];
        clean(f[1], strlen(f[1]), name, sizeof name);
        char *dot = strchr(name, '.'); /* a synset name: its word */
        if (dot && strchr(dot + 1, '.')) *dot = '\0';
        bool hit = kind == CFX_EDIT_DELETE ? !strcmp(name, from)
                   : kind == CFX_EDIT_INSERT
                       ? !strcmp(name, to)
                       : !strcmp(name, both) || !strcmp(name, to) || !strcmp(name, from);
        if (!hit) continue;
        /* The first that fits, unless a later one's place fits the answer and its does not. */
        if (pick < 0 || (strcmp(f[2], where[pick]) && !strcmp(f[2], where[i]))) pick = i;
    }
    return pick;
}

static cfx_status llm_next(void *user, const cfx_tensor *image, int current, const cfx_edit *edits,
                           const uint8_t *const *regions, int n, int *choice) {
    llm_planner *p = user;
    *choice = 0;
    cfx_free(p->report);
    p->report = NULL;
    if (n <= 1) return CFX_OK;
    int c = (int)image->shape[0], h = (int)image->shape[1], w = (int)image->shape[2];
    char(*where)[32] = cfx_malloc((size_t)n * sizeof *where);
    size_t cap = 1024 + (size_t)n * 600;
    char *text = cfx_malloc(cap);
    cJSON *rep = cJSON_CreateObject(), *answers = cJSON_AddArrayToObject(rep, "answers");
    if (!where || !text || !answers) {
        cfx_free(where), cfx_free(text), cJSON_Delete(rep);
        return cfx_set_error(CFX_ENOMEM, "out of memory");
    }
    const char *label =
        current >= 0 && current < p->clf->num_classes ? p->clf->classes[current] : "?";
    size_t at = (size_t)snprintf(
        text, cap,
        "This image is classified as '%s'. We edit it one concept at a time until the "
        "classifier's label changes. The edits that remain, each as [action, concept, where]:\n",
        label);
    for (int i = 0; i < n; i++) {
        char from[256] = "", to[256] = "";
        if (edits[i].from >= 0) word_of(cfx_concepts_name(p->c, edits[i].from), from, sizeof from);
        if (edits[i].to >= 0) word_of(cfx_concepts_name(p->c, edits[i].to), to, sizeof to);
        where_of(regions[i], h, w, where[i], sizeof where[i]);
        at += (size_t)snprintf(text + at, cap - at, "%d. [%s, %s%s%s, %s]\n", i + 1,
                               edits[i].kind == CFX_EDIT_INSERT   ? "insert"
                               : edits[i].kind == CFX_EDIT_DELETE ? "remove"
                                                                  : "replace",
                               edits[i].kind == CFX_EDIT_INSERT ? to : from,
                               edits[i].kind == CFX_EDIT_SUBSTITUTE ? " -> " : "",
                               edits[i].kind == CFX_EDIT_SUBSTITUTE ? to : "", where[i]);
    }
    snprintf(text + at, cap - at,
             "Which edit should come next to change the label with the fewest edits? Answer "
             "with that edit exactly as listed, as [action, concept, where], and nothing else.");
    int pick = -1;
    cfx_status st = CFX_OK;
    char *first = NULL;
    for (int attempt = 0; attempt < 2 && pick < 0; attempt++) {
        char *ask = text, *reply = NULL;
        if (attempt) { /* once more, with the answer that named no edit */
            size_t m = strlen(text) + strlen(first) + 200;
            ask = cfx_malloc(m);
            if (!ask) {
                st = cfx_set_error(CFX_ENOMEM, "out of memory");
                break;
            }
            snprintf(ask, m, "%s\nYour previous answer '%s' is not one of the listed edits.", text,
                     first);
        }
        st = cfx_llm_chat(p->llm, NULL, ask, image->data, c, h, w, 1, &reply);
        if (ask != text) cfx_free(ask);
        if (st != CFX_OK) break;
        cJSON_AddItemToArray(answers, cJSON_CreateString(reply));
        pick = parse_answer(p, reply, edits, where, n);
        if (!attempt)
            first = reply;
        else
            cfx_free(reply);
    }
    cfx_free(first);
    cfx_free(text);
    cfx_free(where);
    if (st != CFX_OK) cJSON_AddStringToObject(rep, "error", cfx_last_error());
    bool fell_back = pick < 0;
    if (fell_back) { /* the built-in planner decides */
        st = p->fallback->next(p->fallback->user, image, current, edits, regions, n, &pick);
        if (st != CFX_OK) {
            cJSON_Delete(rep);
            return cfx_error_context(st, "the built-in planner (the LLM's fallback)");
        }
    }
    cJSON_AddBoolToObject(rep, "fallback", fell_back);
    *choice = pick;
    char *s = cJSON_PrintUnformatted(rep);
    p->report = s ? cfx_strdup(s) : NULL;
    cJSON_free(s);
    cJSON_Delete(rep);
    return p->report ? CFX_OK : cfx_set_error(CFX_ENOMEM, "out of memory");
}

cfx_edit_planner *cfx_edit_planner_llm(const cfx_llm_options *o, const cfx_concepts *c,
                                       cfx_image_classifier *classifier) {
    if (!c || !classifier) {
        cfx_set_error(CFX_EINVAL, "the LLM planner needs the concepts and the classifier");
        return NULL;
    }
    llm_planner *p = cfx_calloc(1, sizeof *p);
    cfx_edit_planner *e = cfx_calloc(1, sizeof *e);
    if (!p || !e) {
        cfx_free(p), cfx_free(e);
        cfx_set_error(CFX_ENOMEM, "out of memory");
        return NULL;
    }
    p->c = c;
    p->clf = classifier;
    p->llm = cfx_llm_new(o);
    p->fallback = p->llm ? cfx_edit_planner_builtin(classifier) : NULL;
    if (!p->llm || !p->fallback) {
        cfx_error_context(CFX_EINVAL, "LLM planner");
        llm_planner_free(p);
        cfx_free(e);
        return NULL;
    }
    e->user = p;
    e->next = llm_next;
    e->free = llm_planner_free;
    e->report = llm_planner_report;
    return e;
}
