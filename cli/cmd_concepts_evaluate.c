/* cmd_concepts_evaluate.c - `cfx concepts evaluate`: the success rate of runs of `cfx concepts
 * edit`, their edits against the rule's minimum, and which concepts the flips moved. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[128];
    int add, remove, flip; /* in flipped loops: brought in, taken out, in the flipping step */
} concept_row;

typedef struct {
    char mode[32], path[4096];
    int images, flipped, errors, cap, exhausted, with_min, agree, agree_flipped;
    double edits, min_edits, excess; /* sums over flipped loops (min: those with a minimum) */
} run_row;

static concept_row *row_of(concept_row **rows, int *n, int *cap, const char *name) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*rows)[i].name, name) == 0) return &(*rows)[i];
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 32;
        *rows = realloc(*rows, (size_t)*cap * sizeof **rows);
        if (!*rows) return NULL;
    }
    concept_row *r = &(*rows)[(*n)++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}

static int cmp_concept(const void *a, const void *b) {
    const concept_row *x = a, *y = b;
    int sx = x->add + x->remove, sy = y->add + y->remove;
    if (sx != sy) return sy - sx;
    return strcmp(x->name, y->name);
}

int cmd_concepts_evaluate(int argc, char **argv) {
    const char *cmd = "concepts evaluate";
    cli_list runs = {0};
    long long top = 10;
    int json = 0;
    const cli_opt opts[] = {
        {"RUN", NULL, "run folders of cfx concepts edit", .list = &runs, .required = true,
         .positional = true, .role = CLI_IN},
        {"top", "N", "rows of the concept table", .i = &top, .lo = 0, .hi = 100000},
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Per run: the share of loops that flipped the label, the mean number of edits of\n"
              "those, and beside it the mean least number of edits that changes the class by\n"
              "the data's rule (min_edits, on scenes), and the success over the images whose\n"
              "label the classifier got right (agrees); then, over the flipped loops of all runs,\n"
              "the concepts the edits brought in and took out, and how often each was in the\n"
              "flipping step.\n",
              opts, CLI_LEN(opts), argc, argv);
    run_row *rr = calloc((size_t)runs.n, sizeof *rr);
    concept_row *rows = NULL;
    int nrows = 0, caprows = 0, rc = 0;
    for (int r = 0; r < runs.n && !rc; r++) {
        run_row *R = &rr[r];
        snprintf(R->path, sizeof R->path, "%s", runs.items[r]);
        char path[4200], *text = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/results.jsonl", runs.items[r]);
        if (cfx_file_read_all(path, &text, &len) != CFX_OK) {
            rc = cli_fail(cmd, "%s (is '%s' a run of cfx concepts edit?)", cfx_last_error(),
                          runs.items[r]);
            break;
        }
        int lineno = 0;
        for (char *p = text, *nl; p < text + len; p = nl + 1) {
            nl = memchr(p, '\n', (size_t)(text + len - p));
            if (!nl) break; /* a torn last line: the run was killed while writing it */
            lineno++;
            cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
            const cJSON *mode = cJSON_GetObjectItem(j, "mode"),
                        *fl = cJSON_GetObjectItem(j, "flipped"),
                        *steps = cJSON_GetObjectItem(j, "steps"),
                        *stop = cJSON_GetObjectItem(j, "stop_reason");
            if (!cJSON_IsString(mode) || !cJSON_IsNumber(steps) || !cJSON_IsString(stop)) {
                cJSON_Delete(j);
                rc =
                    cli_fail(cmd, "%s: line %d is not a result of cfx concepts edit", path, lineno);
                break;
            }
            snprintf(R->mode, sizeof R->mode, "%s", mode->valuestring);
            R->images++;
            const char *why = stop->valuestring;
            R->errors += strcmp(why, "error") == 0;
            R->cap += strcmp(why, "cap") == 0;
            R->exhausted += strcmp(why, "exhausted") == 0;
            if (cJSON_IsTrue(cJSON_GetObjectItem(j, "agrees"))) {
                R->agree++;
                R->agree_flipped += cJSON_IsTrue(fl);
            }
            if (cJSON_IsTrue(fl)) {
                R->flipped++;
                R->edits += steps->valuedouble;
                const cJSON *mn = cJSON_GetObjectItem(j, "min_edits");
                if (cJSON_IsNumber(mn)) {
                    R->with_min++;
                    R->min_edits += mn->valuedouble;
                    R->excess += steps->valuedouble - mn->valuedouble;
                }
                const cJSON *e, *edits = cJSON_GetObjectItem(j, "edits");
                int k = 0, ne = cJSON_GetArraySize(edits);
                cJSON_ArrayForEach(e, edits) {
                    const char *from = cJSON_GetStringValue(cJSON_GetObjectItem(e, "from")),
                               *to = cJSON_GetStringValue(cJSON_GetObjectItem(e, "to"));
                    concept_row *a = to ? row_of(&rows, &nrows, &caprows, to) : NULL,
                                *b = from ? row_of(&rows, &nrows, &caprows, from) : NULL;
                    if (a) a->add++, a->flip += k == ne - 1;
                    if (b) b->remove++, b->flip += k == ne - 1;
                    k++;
                }
            }
            cJSON_Delete(j);
        }
        cfx_free(text);
    }
    if (!rc) {
        qsort(rows, (size_t)nrows, sizeof *rows, cmp_concept);
        int shown = top && top < nrows ? (int)top : nrows;
        if (json) {
            printf("{\"runs\": [");
            for (int r = 0; r < runs.n; r++) {
                run_row *R = &rr[r];
                printf("%s{\"run\": ", r ? ", " : "");
                cli_json_str(stdout, R->path);
                printf(", \"mode\": \"%s\", \"images\": %d, \"flipped\": %d, \"success_rate\": "
                       "%.4f, \"mean_edits\": %.4f, \"mean_min_edits\": %.4f, \"mean_excess\": "
                       "%.4f, \"errors\": %d, \"cap\": %d, \"exhausted\": %d, \"agrees\": %d, "
                       "\"agrees_flipped\": %d}",
                       R->mode, R->images, R->flipped,
                       R->images ? (double)R->flipped / R->images : 0,
                       R->flipped ? R->edits / R->flipped : 0,
                       R->with_min ? R->min_edits / R->with_min : 0,
                       R->with_min ? R->excess / R->with_min : 0, R->errors, R->cap, R->exhausted,
                       R->agree, R->agree_flipped);
            }
            printf("], \"concepts\": [");
            for (int i = 0; i < shown; i++)
                printf("%s{\"concept\": \"%s\", \"brought_in\": %d, \"taken_out\": %d, "
                       "\"in_flipping_step\": %d}",
                       i ? ", " : "", rows[i].name, rows[i].add, rows[i].remove, rows[i].flip);
            printf("]}\n");
        } else {
            printf("%-13s %7s %8s %8s %11s %10s %7s %5s %10s %15s\n", "mode", "images", "flipped",
                   "success", "mean edits", "rule min", "errors", "cap", "exhausted",
                   "success(agree)");
            for (int r = 0; r < runs.n; r++) {
                run_row *R = &rr[r];
                char mn[32] = "-";
                if (R->with_min) snprintf(mn, sizeof mn, "%.2f", R->min_edits / R->with_min);
                char ag[48] = "-";
                if (R->agree)
                    snprintf(ag, sizeof ag, "%.1f%% of %d", 100.0 * R->agree_flipped / R->agree,
                             R->agree);
                printf("%-13s %7d %8d %7.1f%% %11.2f %10s %7d %5d %10d %15s\n", R->mode, R->images,
                       R->flipped, R->images ? 100.0 * R->flipped / R->images : 0,
                       R->flipped ? R->edits / R->flipped : 0, mn, R->errors, R->cap, R->exhausted,
                       ag);
            }
            printf("\nconcepts moved by the loops that flipped (all runs):\n");
            printf("%-24s %10s %10s %16s\n", "concept", "brought in", "taken out",
                   "in flipping step");
            for (int i = 0; i < shown; i++)
                printf("%-24s %10d %10d %16d\n", rows[i].name, rows[i].add, rows[i].remove,
                       rows[i].flip);
        }
    }
    free(rr);
    free(rows);
    return rc;
}
