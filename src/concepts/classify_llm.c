/* classify_llm.c - a vision LLM as V-CECE's black-box classifier, with n-vote self-consistency
 * (Dimitriou et al. 2025: the same question asked 7 times in fresh chats, answers outside the
 * class list dropped, the majority taken).
 *
 * Each vote is one chat-completions request (explain/llm.c, cfx_llm_chat with fresh set, so no
 * vote is answered from the cache or from an earlier vote): the paper's classification prompt
 * with the class list, and the image as a PNG data URI. An answer is matched to a class without
 * regard to case, quotes, white space or a final full stop; anything else is dropped and
 * recorded. The label is the class with the most votes, ties going to the class answered first;
 * the stability figure is the share of the kept votes that agree with it. A request that fails
 * after its retries fails the classification (the loop records it for that image). */
#include "concepts/concepts.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* The paper's classification prompt (DESIGN, "Concepts"); {classes} is the list. */
static const char PROMPT[] =
    "Classify each image in their appropriate class according to the scene they depict. Valid "
    "classes are {classes} and only these, so you need to classify the images in one of these "
    "classes. Pay attention to the semantics that define each class. Return me only the label of "
    "the scene depicted and nothing else.";

typedef struct {
    cfx_llm *llm;
    char *prompt;
    char **classes; /* borrowed from the classifier */
    int num_classes, votes;
    char *report; /* the last call's votes as JSON (cfx_free) */
} llm_clf;

static void llm_clf_free(void *user) {
    llm_clf *m = user;
    if (!m) return;
    cfx_llm_free(m->llm);
    cfx_free(m->prompt);
    cfx_free(m->report);
    cfx_free(m);
}

/* The class an answer names, or -1: compared without case, surrounding white space, quotes,
 * brackets or a final full stop. */
static int match_class(const llm_clf *m, const char *answer) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", answer);
    char *s = buf, *e = buf + strlen(buf);
    while (*s && (isspace((unsigned char)*s) || strchr("\"'`*[(", *s))) s++;
    while (e > s && (isspace((unsigned char)e[-1]) || strchr("\"'`*.])", e[-1]))) *--e = '\0';
    for (int k = 0; k < m->num_classes; k++)
        if (strcasecmp(s, m->classes[k]) == 0) return k;
    return -1;
}

static const char *llm_report(void *user) {
    return ((llm_clf *)user)->report;
}

static cfx_status llm_classify(void *user, const cfx_tensor *image, int *label, float *scores,
                               char *answer, size_t cap) {
    (void)scores;
    llm_clf *m = user;
    *label = -1;
    if (cap) answer[0] = '\0';
    cfx_free(m->report);
    m->report = NULL;
    if (image->ndim != 3)
        return cfx_set_error(CFX_ESHAPE, "the LLM classifier takes (C,H,W) images");
    int count[1024] = {0}, first[1024], kept = 0;
    cJSON *rep = cJSON_CreateObject(), *votes = cJSON_AddArrayToObject(rep, "votes"),
          *dropped = cJSON_AddArrayToObject(rep, "dropped");
    if (!votes || !dropped) {
        cJSON_Delete(rep);
        return cfx_set_error(CFX_ENOMEM, "out of memory");
    }
    cfx_status st = CFX_OK;
    for (int v = 0; v < m->votes; v++) {
        char *reply = NULL;
        st = cfx_llm_chat(m->llm, NULL, m->prompt, image->data, (int)image->shape[0],
                          (int)image->shape[1], (int)image->shape[2], 1, &reply);
        if (st != CFX_OK) {
            cfx_error_context(st, "LLM classifier, vote %d of %d", v + 1, m->votes);
            break;
        }
        int k = match_class(m, reply);
        if (k < 0) {
            cJSON_AddItemToArray(dropped, cJSON_CreateString(reply));
            if (cap && !answer[0]) snprintf(answer, cap, "%s", reply);
        } else {
            cJSON_AddItemToArray(votes, cJSON_CreateString(m->classes[k]));
            if (!count[k]++) first[k] = kept;
            kept++;
        }
        cfx_free(reply);
    }
    if (st != CFX_OK) {
        cJSON_Delete(rep);
        return st;
    }
    /* The majority; among equal counts, the class whose first vote came first. */
    int best = -1;
    for (int k = 0; k < m->num_classes; k++)
        if (count[k] && (best < 0 || count[k] > count[best] ||
                         (count[k] == count[best] && first[k] < first[best])))
            best = k;
    double stability = best >= 0 ? (double)count[best] / kept : 0;
    cJSON_AddNumberToObject(rep, "stability", stability);
    char *p = cJSON_PrintUnformatted(rep);
    m->report = p ? cfx_strdup(p) : NULL;
    cJSON_free(p);
    cJSON_Delete(rep);
    if (!m->report) return cfx_set_error(CFX_ENOMEM, "out of memory");
    *label = best;
    if (best >= 0 && cap) snprintf(answer, cap, "%s", m->classes[best]);
    return CFX_OK;
}

cfx_image_classifier *cfx_image_classifier_llm(const cfx_llm_options *o, int votes,
                                               const char *const *classes, int num_classes) {
    if (votes < 0 || votes > 1000 || num_classes > 1024) {
        cfx_set_error(CFX_EINVAL,
                      "LLM classifier: %d votes (0 reads as 7; at most 1000) and %d "
                      "classes (at most 1024)",
                      votes, num_classes);
        return NULL;
    }
    if (!classes || num_classes < 2) {
        cfx_set_error(CFX_EINVAL, "a classifier needs a class list of at least two classes");
        return NULL;
    }
    cfx_image_classifier *c = cfx_calloc(1, sizeof *c);
    llm_clf *m = cfx_calloc(1, sizeof *m);
    if (c) c->classes = cfx_calloc((size_t)num_classes, sizeof *c->classes);
    /* The prompt with the classes, comma-separated, in place of {classes}. */
    size_t len = sizeof PROMPT;
    for (int k = 0; k < num_classes; k++) len += strlen(classes[k]) + 2;
    if (m) m->prompt = cfx_malloc(len);
    bool ok = c && m && c->classes && m->prompt;
    if (ok) c->num_classes = num_classes;
    for (int k = 0; ok && k < num_classes; k++) ok = (c->classes[k] = cfx_strdup(classes[k]));
    if (!ok) {
        cfx_set_error(CFX_ENOMEM, "out of memory");
        llm_clf_free(m);
        cfx_image_classifier_free(c);
        return NULL;
    }
    const char *at = strstr(PROMPT, "{classes}");
    size_t n = (size_t)(at - PROMPT);
    memcpy(m->prompt, PROMPT, n);
    m->prompt[n] = '\0';
    for (int k = 0; k < num_classes; k++) {
        if (k) strcat(m->prompt, ", ");
        strcat(m->prompt, classes[k]);
    }
    strcat(m->prompt, at + 9);
    m->llm = cfx_llm_new(o);
    if (!m->llm) {
        cfx_error_context(CFX_EINVAL, "LLM classifier");
        llm_clf_free(m);
        cfx_image_classifier_free(c);
        return NULL;
    }
    m->classes = c->classes;
    m->num_classes = num_classes;
    m->votes = votes ? votes : 7;
    c->user = m;
    c->free = llm_clf_free;
    c->classify = llm_classify;
    c->report = llm_report;
    return c;
}
