/* study.c - V-CECE's human study (its Table 2 and appendix D): people watch a source image
 * become its counterfactual step by step, mark the step at which they think the label should
 * change, and say whether the final image is free of visible artifacts. The sheet
 * (src/report/loop_html.c) saves the answers as CSV; this module reads them back and sets them
 * beside the loops: the model's mean flip step against the people's, and the share of final
 * images they found visually correct, per run (one classifier and one mode).
 *
 * The CSV is the sheet's own, one answer a line: participant,run,query,flip_step,artifact_free
 * after a header of those names. Fields may be quoted ("..." with "" for a quote), as the
 * sheet quotes the participant's name. */
#include "concepts/concepts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

void cfx_study_free(cfx_study_answers *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n; i++) cfx_free(s->a[i].participant), cfx_free(s->a[i].run);
    cfx_free(s->a);
    cfx_free(s);
}

/* Splits one CSV line (no newline) into at most max fields, unquoting in place; returns the
 * count, or -1 on an unterminated quote. */
static int split_csv(char *line, char **field, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) return max + 1;
        char *w = p;
        field[n++] = w;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) return -1;
                if (*p == '"' && p[1] == '"')
                    *w++ = '"', p += 2;
                else if (*p == '"') {
                    p++;
                    break;
                } else
                    *w++ = *p++;
            }
            if (*p && *p != ',') return -1; /* text after the closing quote */
        } else {
            while (*p && *p != ',') *w++ = *p++;
        }
        char sep = *p;
        *w = 0;
        if (!sep) return n;
        p++;
    }
}

static const char *const header[5] = {"participant", "run", "query", "flip_step", "artifact_free"};

cfx_study_answers *cfx_study_load(const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (cfx_file_read_all(path, &text, &len) != CFX_OK) {
        cfx_error_context(CFX_EIO, "answers");
        return NULL;
    }
    cfx_study_answers *s = cfx_calloc(1, sizeof *s);
    cfx_status st = s ? CFX_OK : CFX_ENOMEM;
    int32_t cap = 0;
    int lineno = 0;
    char *p = text;
    while (st == CFX_OK && p < text + len) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p)), *end = nl ? nl : text + len;
        *end = 0;
        if (end > p && end[-1] == '\r') end[-1] = 0;
        lineno++;
        char *f[6], *line = p;
        p = end + 1;
        if (!*line) continue; /* a blank line */
        int nf = split_csv(line, f, 5);
        if (lineno == 1) {
            bool ok = nf == 5;
            for (int k = 0; ok && k < 5; k++) ok = strcmp(f[k], header[k]) == 0;
            if (!ok)
                st = cfx_set_error(CFX_EFORMAT,
                                   "answers '%s': line 1 is not the header "
                                   "participant,run,query,flip_step,artifact_free (save the "
                                   "answers from the study sheet of cfx concepts study)",
                                   path);
            continue;
        }
        if (nf != 5) {
            st = cfx_set_error(CFX_EFORMAT,
                               nf < 0 ? "answers '%s': line %d has an unterminated quote"
                                      : "answers '%s': line %d has not 5 fields "
                                        "(participant,run,query,flip_step,artifact_free)",
                               path, lineno);
            break;
        }
        cfx_study_answer a = {0};
        char *e;
        errno = 0;
        long long q = strtoll(f[2], &e, 10);
        if (!*f[2] || *e || errno) {
            st = cfx_set_error(CFX_EFORMAT, "answers '%s': line %d: query '%s' is not an image id",
                               path, lineno, f[2]);
            break;
        }
        a.query = q;
        if (strcasecmp(f[3], "none") == 0) {
            a.flip_step = 0;
        } else {
            long v = strtol(f[3], &e, 10);
            if (!*f[3] || *e || v < 1 || v > 1000000) {
                st = cfx_set_error(CFX_EFORMAT,
                                   "answers '%s': line %d: flip_step '%s' is neither a step "
                                   "number from 1 nor none",
                                   path, lineno, f[3]);
                break;
            }
            a.flip_step = (int)v;
        }
        if (strcasecmp(f[4], "yes") == 0) {
            a.artifact_free = 1;
        } else if (strcasecmp(f[4], "no") != 0) {
            st = cfx_set_error(CFX_EFORMAT,
                               "answers '%s': line %d: artifact_free '%s' is neither yes nor no",
                               path, lineno, f[4]);
            break;
        }
        if (!*f[1]) {
            st =
                cfx_set_error(CFX_EFORMAT, "answers '%s': line %d: the run is empty", path, lineno);
            break;
        }
        if (s->n == cap) {
            cap = cap ? 2 * cap : 64;
            cfx_study_answer *g = cfx_realloc(s->a, (size_t)cap * sizeof *g);
            if (!g) {
                st = CFX_ENOMEM;
                break;
            }
            s->a = g;
        }
        a.participant = cfx_strdup(f[0]);
        a.run = cfx_strdup(f[1]);
        s->a[s->n++] = a;
        if (!a.participant || !a.run) st = CFX_ENOMEM;
    }
    if (st == CFX_OK && lineno == 0)
        st = cfx_set_error(CFX_EFORMAT, "answers '%s' is empty (no header)", path);
    cfx_free(text);
    if (st != CFX_OK) {
        if (st == CFX_ENOMEM) cfx_set_error(CFX_ENOMEM, "out of memory");
        cfx_study_free(s);
        return NULL;
    }
    return s;
}

cfx_status cfx_study_tally(const cfx_study_answers *s, const cfx_loop_run *r, cfx_study_row *out) {
    *out = (cfx_study_row){.model_step = NAN, .human_step = NAN};
    double model = 0, human = 0;
    int32_t stepped = 0;
    /* The model's mean over the flipped loops that people answered for (each loop once). */
    for (int32_t i = 0; i < r->n; i++) {
        const cfx_loop_record *rec = &r->rec[i];
        bool answered = false;
        for (int32_t k = 0; k < s->n && !answered; k++)
            answered = s->a[k].query == rec->query && strcmp(s->a[k].run, r->name) == 0;
        if (answered && rec->flipped) out->loops++, model += rec->steps;
    }
    for (int32_t k = 0; k < s->n; k++) {
        const cfx_study_answer *a = &s->a[k];
        if (strcmp(a->run, r->name) != 0) continue;
        const cfx_loop_record *rec = NULL;
        for (int32_t i = 0; i < r->n && !rec; i++)
            if (r->rec[i].query == a->query) rec = &r->rec[i];
        if (!rec || !rec->flipped)
            return cfx_set_error(CFX_ENOTFOUND,
                                 "answers: run '%s' has no flipped loop for image %lld (the "
                                 "answers belong to another run of that name?)",
                                 r->name, (long long)a->query);
        if (a->flip_step > rec->steps)
            return cfx_set_error(CFX_EINVAL,
                                 "answers: run '%s', image %lld: step %d of a loop of %d steps",
                                 r->name, (long long)a->query, a->flip_step, rec->steps);
        out->answers++;
        out->artifact_free += a->artifact_free;
        if (a->flip_step)
            human += a->flip_step, stepped++;
        else
            out->none++;
    }
    if (out->loops) out->model_step = model / out->loops;
    if (stepped) out->human_step = human / stepped;
    return CFX_OK;
}
