/* cmd_concepts_evaluate.c - `cfx concepts evaluate`: per run of `cfx concepts edit` (one
 * classifier, one mode) the success rate, the edits against the rule's minimum, FID, CMMD and
 * S3 of the flips, the human study's Table 2, and which concepts the flips moved; the HTML
 * report with a strip of steps per image, and the human-study sheet. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[128];
    int add, remove, flip; /* in flipped loops: brought in, taken out, in the flipping step */
} concept_row;

typedef struct {
    int images, flipped, errors, cap, exhausted, with_min, agree, agree_flipped;
    double edits, min_edits, excess; /* sums over flipped loops (min: those with a minimum) */
    double stability;                /* sum over the LLM classifier's labels, nstab of them */
    int nstab;
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

/* The run's tallies, and its flips' concepts added to rows. */
static void tally(const cfx_loop_run *r, run_row *R, concept_row **rows, int *nrows, int *cap) {
    memset(R, 0, sizeof *R);
    for (int32_t i = 0; i < r->n; i++) {
        const cfx_loop_record *rec = &r->rec[i];
        R->images++;
        R->errors += strcmp(rec->stop_reason, "error") == 0;
        R->cap += strcmp(rec->stop_reason, "cap") == 0;
        R->exhausted += strcmp(rec->stop_reason, "exhausted") == 0;
        if (rec->agrees) R->agree++, R->agree_flipped += rec->flipped;
        R->stability += rec->stability, R->nstab += rec->nstability;
        if (!rec->flipped) continue;
        R->flipped++;
        R->edits += rec->steps;
        if (rec->min_edits >= 0) {
            R->with_min++;
            R->min_edits += rec->min_edits;
            R->excess += rec->steps - rec->min_edits;
        }
        for (int k = 1; k < rec->nsteps; k++) {
            const cfx_loop_step *s = &rec->step[k];
            concept_row *a = s->to ? row_of(rows, nrows, cap, s->to) : NULL;
            if (a) a->add++, a->flip += k == rec->nsteps - 1;
            concept_row *b = s->from ? row_of(rows, nrows, cap, s->from) : NULL;
            if (b) b->remove++, b->flip += k == rec->nsteps - 1;
        }
    }
}

/* A number for JSON: null when NaN. */
static void json_num(double v, const char *fmt) {
    if (isnan(v))
        printf("null");
    else
        printf(fmt, v);
}

static void text_num(double v, const char *fmt, int width) {
    char b[32] = "-";
    if (!isnan(v)) snprintf(b, sizeof b, fmt, v);
    printf(" %*s", width, b);
}

int cmd_concepts_evaluate(int argc, char **argv) {
    const char *cmd = "concepts evaluate";
    cli_list runs = {0};
    const char *clf = NULL, *clf_features = "features", *fid_model = NULL, *fid_features = NULL,
               *cmmd_model = NULL, *cmmd_features = NULL, *s3_model = NULL, *s3_features = NULL,
               *human = NULL, *html = NULL, *sheet = NULL;
    long long top = 10, batch = 32, threads = 0, strips = 20, study_limit = 0;
    int json = 0, force = 0;
    const cli_opt opts[] = {
        {"RUN", NULL, "run folders of cfx concepts edit (one classifier and one mode each)",
         .list = &runs, .required = true, .positional = true, .role = CLI_IN},
        {"top", "N", "rows of the concept table", .i = &top, .lo = 0, .hi = 100000},
        {"classifier", "FILE",
         "an ONNX classifier whose feature tensor stands in for the networks not given "
         "(labelled [classifier])",
         .str = &clf, .role = CLI_IN},
        {"classifier-features", "NAME", "the classifier's feature tensor", .str = &clf_features,
         .def = "features"},
        {"fid-model", "FILE", "an ONNX network for FID (RGB in [0,1] at its own size)",
         .str = &fid_model, .def = "the classifier's features", .role = CLI_IN},
        {"fid-features", "NAME", "the FID network's feature tensor", .str = &fid_features},
        {"cmmd-model", "FILE", "an ONNX network for CMMD (CLIP's image tower in the paper)",
         .str = &cmmd_model, .def = "the classifier's features", .role = CLI_IN},
        {"cmmd-features", "NAME", "the CMMD network's feature tensor", .str = &cmmd_features},
        {"s3-model", "FILE", "an ONNX network for S3 (SimSiam in the paper)", .str = &s3_model,
         .def = "the classifier's features", .role = CLI_IN},
        {"s3-features", "NAME", "the S3 network's feature tensor", .str = &s3_features},
        {"batch", "N", "images per forward pass", .i = &batch, .lo = 1, .hi = 100000},
        {"human", "CSV", "answers saved from the study sheet: Table 2 per run", .str = &human,
         .role = CLI_IN},
        {"html", "FILE", "write the report: the tables and a strip of steps per image",
         .str = &html, .role = CLI_OUT},
        {"strips", "N", "images per run in the report's strips; 0: all", .i = &strips, .lo = 0,
         .hi = INT32_MAX},
        {"study-sheet", "FILE",
         "write the human-study sheet (one page; it saves the answers as CSV)", .str = &sheet,
         .role = CLI_OUT},
        {"study-limit", "N", "flipped loops per run on the sheet; 0: all", .i = &study_limit,
         .lo = 0, .hi = INT32_MAX},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Per run: the share of loops that flipped the label, the mean number of edits of\n"
              "those, and beside it the mean least number of edits that changes the class by\n"
              "the data's rule (min_edits, on scenes), and the success over the images whose\n"
              "label the classifier got right (agrees); with a feature network, FID and CMMD\n"
              "between the flipped loops' source images and their final images and S3, the\n"
              "mean cosine similarity of each pair's features (V-CECE's realism metrics; without\n"
              "--fid-model, --cmmd-model or --s3-model, --classifier's features, labelled\n"
              "[classifier]); with --human, the mean step at which people said the label should\n"
              "change beside the model's, and the share of final images without visible\n"
              "artifacts; then, over the flipped loops of all runs, the concepts the edits\n"
              "brought in and took out, and how often each was in the flipping step.\n",
              opts, CLI_LEN(opts), argc, argv);
    if (!fid_model != !fid_features)
        cli_usage_error(cmd, "--fid-model and --fid-features go together");
    if (!cmmd_model != !cmmd_features)
        cli_usage_error(cmd, "--cmmd-model and --cmmd-features go together");
    if (!s3_model != !s3_features) cli_usage_error(cmd, "--s3-model and --s3-features go together");
    cli_set_threads(threads);
    int n = runs.n, rc = 0, nrows = 0, caprows = 0;
    bool metrics = clf || fid_model || cmmd_model || s3_model;
    cfx_loop_run **r = calloc((size_t)n, sizeof *r);
    run_row *rr = calloc((size_t)n, sizeof *rr);
    cfx_loop_metrics *m = calloc((size_t)n, sizeof *m);
    cfx_study_row *st = calloc((size_t)n, sizeof *st);
    concept_row *rows = NULL;
    cfx_study_answers *answers = NULL;
    if (!r || !rr || !m || !st) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (!(r[i] = cfx_loop_run_open(runs.items[i]))) {
            rc = cli_fail(cmd, NULL);
            goto done;
        }
        for (int j = 0; j < i; j++)
            if (human && strcmp(r[j]->name, r[i]->name) == 0) {
                rc = cli_fail(cmd,
                              "runs '%s' and '%s' have one name, '%s', which the answers cannot "
                              "tell apart; rename one folder",
                              r[j]->dir, r[i]->dir, r[i]->name);
                goto done;
            }
        tally(r[i], &rr[i], &rows, &nrows, &caprows);
    }
    cfx_loop_metrics_options mo = {.classifier = clf,
                                   .classifier_features = clf_features,
                                   .fid_model = fid_model,
                                   .fid_features = fid_features,
                                   .cmmd_model = cmmd_model,
                                   .cmmd_features = cmmd_features,
                                   .s3_model = s3_model,
                                   .s3_features = s3_features,
                                   .batch = batch};
    for (int i = 0; i < n && metrics; i++)
        if (cfx_loop_run_metrics(r[i], &mo, &m[i]) != CFX_OK) {
            rc = cli_fail(cmd, NULL);
            goto done;
        }
    if (human) {
        if (!(answers = cfx_study_load(human))) {
            rc = cli_fail(cmd, NULL);
            goto done;
        }
        for (int i = 0; i < n; i++)
            if (cfx_study_tally(answers, r[i], &st[i]) != CFX_OK) {
                rc = cli_fail(cmd, NULL);
                goto done;
            }
        /* An answer for a run not given is a mistake worth naming. */
        for (int32_t k = 0; k < answers->n; k++) {
            bool known = false;
            for (int i = 0; i < n && !known; i++) known = !strcmp(answers->a[k].run, r[i]->name);
            if (!known) {
                rc = cli_fail(cmd, "answers '%s': run '%s' is not among the runs given", human,
                              answers->a[k].run);
                goto done;
            }
        }
    }
    if (html && cfx_report_loop_html((const cfx_loop_run *const *)r, n, metrics ? m : NULL,
                                     human ? st : NULL, (int)strips, html) != CFX_OK) {
        rc = cli_fail_status(cmd, "report");
        goto done;
    }
    if (sheet && cfx_report_study_html((const cfx_loop_run *const *)r, n, (int)study_limit,
                                       sheet) != CFX_OK) {
        rc = cli_fail_status(cmd, "study sheet");
        goto done;
    }
    qsort(rows, (size_t)nrows, sizeof *rows, cmp_concept);
    int shown = top && top < nrows ? (int)top : nrows;
    if (json) {
        printf("{\"runs\": [");
        for (int i = 0; i < n; i++) {
            run_row *R = &rr[i];
            printf("%s{\"run\": ", i ? ", " : "");
            cli_json_str(stdout, r[i]->dir);
            printf(", \"name\": ");
            cli_json_str(stdout, r[i]->name);
            printf(", \"mode\": ");
            cli_json_str(stdout, r[i]->mode);
            printf(", \"images\": %d, \"flipped\": %d, \"success_rate\": "
                   "%.4f, \"mean_edits\": %.4f, \"mean_min_edits\": %.4f, \"mean_excess\": "
                   "%.4f, \"errors\": %d, \"cap\": %d, \"exhausted\": %d, \"agrees\": %d, "
                   "\"agrees_flipped\": %d",
                   R->images, R->flipped, R->images ? (double)R->flipped / R->images : 0,
                   R->flipped ? R->edits / R->flipped : 0,
                   R->with_min ? R->min_edits / R->with_min : 0,
                   R->with_min ? R->excess / R->with_min : 0, R->errors, R->cap, R->exhausted,
                   R->agree, R->agree_flipped);
            if (R->nstab) printf(", \"mean_stability\": %.4f", R->stability / R->nstab);
            if (metrics) {
                printf(", \"pairs\": %lld, \"fid\": ", (long long)m[i].pairs);
                json_num(m[i].fid, "%.6g");
                printf(", \"fid_features\": ");
                cli_json_str(stdout, m[i].fid_label);
                printf(", \"cmmd\": ");
                json_num(m[i].cmmd, "%.6g");
                printf(", \"cmmd_features\": ");
                cli_json_str(stdout, m[i].cmmd_label);
                printf(", \"s3\": ");
                json_num(m[i].s3.mean, "%.6g");
                printf(", \"s3_std\": ");
                json_num(m[i].s3.std, "%.6g");
                printf(", \"s3_features\": ");
                cli_json_str(stdout, m[i].s3_label);
            }
            if (human) {
                printf(", \"human\": {\"answers\": %d, \"loops\": %d, \"model_flip_step\": ",
                       st[i].answers, st[i].loops);
                json_num(st[i].model_step, "%.4f");
                printf(", \"human_flip_step\": ");
                json_num(st[i].human_step, "%.4f");
                printf(", \"none\": %d, \"visually_correct\": ", st[i].none);
                json_num(st[i].answers ? (double)st[i].artifact_free / st[i].answers : NAN, "%.4f");
                printf("}");
            }
            printf("}");
        }
        printf("], \"concepts\": [");
        for (int i = 0; i < shown; i++) {
            printf("%s{\"concept\": ", i ? ", " : "");
            cli_json_str(stdout, rows[i].name);
            printf(", \"brought_in\": %d, \"taken_out\": %d, \"in_flipping_step\": %d}",
                   rows[i].add, rows[i].remove, rows[i].flip);
        }
        printf("]}\n");
    } else {
        printf("%-16s %-13s %7s %8s %8s %11s %10s %7s %5s %10s %15s\n", "run", "mode", "images",
               "flipped", "success", "mean edits", "rule min", "errors", "cap", "exhausted",
               "success(agree)");
        for (int i = 0; i < n; i++) {
            run_row *R = &rr[i];
            char mn[32] = "-";
            if (R->with_min) snprintf(mn, sizeof mn, "%.2f", R->min_edits / R->with_min);
            char ag[48] = "-";
            if (R->agree)
                snprintf(ag, sizeof ag, "%.1f%% of %d", 100.0 * R->agree_flipped / R->agree,
                         R->agree);
            printf("%-16s %-13s %7d %8d %7.1f%% %11.2f %10s %7d %5d %10d %15s\n", r[i]->name,
                   r[i]->mode, R->images, R->flipped,
                   R->images ? 100.0 * R->flipped / R->images : 0,
                   R->flipped ? R->edits / R->flipped : 0, mn, R->errors, R->cap, R->exhausted, ag);
        }
        if (metrics) {
            char fh[80], ch[80], sh[80];
            snprintf(fh, sizeof fh, "FID[%s]", m[0].fid_label);
            snprintf(ch, sizeof ch, "CMMD[%s]", m[0].cmmd_label);
            snprintf(sh, sizeof sh, "S3[%s]", m[0].s3_label);
            printf("\nrealism of the flips (source images against their final images):\n");
            printf("%-16s %-13s %6s %20s %20s %20s\n", "run", "mode", "pairs", fh, ch, sh);
            for (int i = 0; i < n; i++) {
                printf("%-16s %-13s %6lld", r[i]->name, r[i]->mode, (long long)m[i].pairs);
                text_num(m[i].fid, "%.3f", 20);
                text_num(m[i].cmmd, "%.4f", 20);
                text_num(m[i].s3.mean, "%.4f", 20);
                printf("\n");
            }
        }
        if (human) {
            printf("\nhuman study (%s, %d answers):\n", human, (int)answers->n);
            printf("%-16s %-13s %8s %16s %16s %6s %17s\n", "run", "mode", "answers",
                   "model flip step", "human flip step", "none", "visually correct");
            for (int i = 0; i < n; i++) {
                printf("%-16s %-13s %8d", r[i]->name, r[i]->mode, st[i].answers);
                text_num(st[i].model_step, "%.2f", 16);
                text_num(st[i].human_step, "%.2f", 16);
                printf(" %6d", st[i].none);
                text_num(st[i].answers ? 100.0 * st[i].artifact_free / st[i].answers : NAN,
                         "%.1f%%", 17);
                printf("\n");
            }
        }
        for (int i = 0; i < n; i++)
            if (rr[i].nstab)
                printf("%s: mean stability of the LLM's labels %.3f over %d labels\n", r[i]->name,
                       rr[i].stability / rr[i].nstab, rr[i].nstab);
        printf("\nconcepts moved by the loops that flipped (all runs):\n");
        printf("%-24s %10s %10s %16s\n", "concept", "brought in", "taken out", "in flipping step");
        for (int i = 0; i < shown; i++)
            printf("%-24s %10d %10d %16d\n", rows[i].name, rows[i].add, rows[i].remove,
                   rows[i].flip);
        if (html) printf("\nwrote %s\n", html);
        if (sheet) printf("wrote the study sheet %s\n", sheet);
    }
done:
    for (int i = 0; r && i < n; i++) cfx_loop_run_free(r[i]);
    cfx_study_free(answers);
    free(r), free(rr), free(m), free(st), free(rows);
    return rc;
}
