/* cmd_explain.c - `cfx explain RUN`: the measured explainer (src/explain/measured.c) on every
 * image of a counterfactual run, without a counterfactual and with each method's, and a
 * competency map per image. Writes RUN/explanations.jsonl (one line per image and method,
 * atomically) and RUN/maps/<index>.png; with --accuracy, when the run knows its causes, prints
 * the share of right causes per cause and method in the layout of the competency paper's
 * tables 3 and 4. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const cmd = "explain";

/* The rows of the explanations: "none" (no counterfactual) and the run's methods. */
enum { ROW_NONE = CFX_RUN_METHODS, NROWS = CFX_RUN_METHODS + 1 };
static const char *row_name(int k) {
    return k == ROW_NONE ? "none" : cfx_run_method_name(k);
}

/* The dataset the bundle was fitted on, as bundle.json records it (NULL when it does not). */
static char *bundle_dataset(const char *bundle) {
    char path[4200], *text = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/bundle.json", bundle);
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return NULL;
    cJSON *j = cJSON_Parse(text);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "dataset");
    char *out = cJSON_IsString(d) ? strdup(d->valuestring) : NULL;
    cJSON_Delete(j);
    cfx_free(text);
    return out;
}

/* d rho / d X of every image of the run, n x C x H x W. */
static float *gradients(cfx_competency *c, const cfx_tensor *images) {
    float *g = malloc((size_t)images->numel * sizeof *g);
    if (!g) {
        cfx_set_error(CFX_ENOMEM, "out of memory");
        return NULL;
    }
    if (cfx_competency_score(c, images, &(cfx_competency_scores){0}, g) != CFX_OK) {
        free(g);
        return NULL;
    }
    return g;
}

/* Correct and total explanations per row and cause (causes by their index in the run). */
typedef struct {
    int ncause;
    const char *cause[64];
    int64_t right[NROWS][64], total[NROWS][64];
} tally;

static void print_accuracy(FILE *f, const tally *t, const bool *rows) {
    fputs("| Method |", f);
    for (int c = 0; c < t->ncause; c++) fprintf(f, " %s |", t->cause[c]);
    fputs(" Average |\n|---|", f);
    for (int c = 0; c <= t->ncause; c++) fputs("---|", f);
    fputs("\n", f);
    const int order[] = {ROW_NONE,   CFX_CF_IGD, CFX_CF_FGD,  CFX_CF_RECO,
                         CFX_CF_LGD, CFX_CF_LNN, CFX_RUN_BEST};
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++) {
        int k = order[o];
        if (!rows[k]) continue;
        fprintf(f, "| %s |", k == ROW_NONE ? "None" : row_name(k));
        double sum = 0;
        int counted = 0;
        for (int c = 0; c < t->ncause; c++) {
            if (!t->total[k][c]) {
                fputs(" - |", f);
                continue;
            }
            double a = 100.0 * (double)t->right[k][c] / (double)t->total[k][c];
            fprintf(f, " %.0f%% |", a);
            sum += a, counted++;
        }
        if (counted)
            fprintf(f, " %.2f%% |\n", sum / counted);
        else
            fputs(" - |\n", f);
    }
}

static cfx_status write_line(FILE *f, int64_t i, int k, const cfx_run *r,
                             const cfx_explanation *x) {
    fprintf(f, "{\"index\": %lld, \"method\": \"%s\", ", (long long)i, row_name(k));
    if (r->cause && strcmp(r->cause[i], "unknown")) {
        fputs("\"cause\": ", f);
        cli_json_str(f, r->cause[i]);
        fputs(", ", f);
    }
    fprintf(f, "\"predicted_cause\": \"%s\", \"confidence\": %.4f, \"shares\": {",
            cfx_cause_name(x->cause), x->confidence);
    bool first = true;
    for (int c = CFX_CAUSE_SPATIAL; c < CFX_CAUSE_COUNT; c++) {
        if (x->share[c] <= 0) continue;
        fprintf(f, "%s\"%s\": %.4f", first ? "" : ", ", cfx_cause_name((cfx_cause)c), x->share[c]);
        first = false;
    }
    fprintf(f, "}, \"region\": [%d, %d, %d, %d], \"sentence\": ", x->region[0], x->region[1],
            x->region[2], x->region[3]);
    cli_json_str(f, x->sentence);
    fputs(", \"stats\": {", f);
    for (int s = 0; s < CFX_STAT_COUNT; s++)
        fprintf(f, "%s\"%s\": %.6g", s ? ", " : "", cfx_stat_name((cfx_stat)s), x->stats[s]);
    fprintf(f, "}, \"reference\": \"%s\"}\n", k == ROW_NONE ? "calibration" : "counterfactual");
    return CFX_OK;
}

int cmd_explain(int argc, char **argv) {
    const char *run_dir = NULL, *data = NULL, *method = NULL;
    long long threads = 0, sources = 300, k = 15, seed = 0, batch = 64;
    int json = 0, accuracy = 0, no_maps = 0;
    const cli_opt opts[] = {
        {"RUN", NULL, "a run folder written by cfx counterfactual", .str = &run_dir,
         .required = true, .positional = true},
        {"method", "M",
         "explain with this method's counterfactual only, or none (no "
         "counterfactual)",
         .str = &method, .def = "none and every method of the run"},
        {"data", "DIR", "the dataset folder whose calib split the explainer learns from",
         .str = &data, .def = "the dataset the bundle was fitted on"},
        {"sources", "N", "calibration images corrupted per cause and factor to learn from",
         .i = &sources, .lo = 2, .hi = 100000},
        {"neighbours", "K", "learned samples that vote on a cause", .i = &k, .lo = 1, .hi = 64},
        CLI_OPT_SEED(&seed, "seed of the calibration sample and its noise"),
        {"batch", "N", "images per forward pass", .i = &batch, .lo = 1, .hi = 100000},
        {"accuracy", NULL,
         "print the share of right causes per cause and method (the run must "
         "know its causes)",
         .flag = &accuracy},
        {"no-maps", NULL, "do not write RUN/maps/<index>.png", .flag = &no_maps},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Explains in words why competency is low on each image of a run: the measured\n"
              "explainer compares the image with its counterfactual (and, with no\n"
              "counterfactual, with the calibration images) on brightness, contrast,\n"
              "saturation, noise and blockiness, names the most likely cause with a\n"
              "confidence, and writes one sentence with the numbers. Writes\n"
              "RUN/explanations.jsonl (a line per image and method, \"none\" without a\n"
              "counterfactual) and a competency map per image, RUN/maps/<index>.png (from the\n"
              "gradient of rho and the difference to the counterfactual).\n",
              opts, CLI_LEN(opts), argc, argv);
    bool rows[NROWS] = {false};
    cli_set_threads(threads);
    cfx_run *r = cfx_run_open(run_dir);
    if (!r)
        return cli_fail(cmd,
                        "%s (give a run folder written by cfx counterfactual --bundle B "
                        "--examples EX --out RUN)",
                        cfx_last_error());
    int rc = 0, nmethods = 0;
    char *recorded = NULL;
    float *grad = NULL, *map = NULL;
    cfx_bundle *b = NULL;
    cfx_dataset *d = NULL;
    cfx_tensor *lat = NULL, *scores = NULL;
    cfx_explainer *e = NULL;
    cfx_file af = {0};
    tally *t = calloc(1, sizeof *t);
    for (int m = 0; m < CFX_RUN_METHODS; m++) nmethods += r->has[m];
    if (!t) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    if (nmethods == 0) {
        rc = cli_fail(cmd, "run '%s' has no counterfactuals: make them with cfx counterfactual",
                      run_dir);
        goto done;
    }
    if (!method) {
        for (int m = 0; m < CFX_RUN_METHODS; m++) rows[m] = r->has[m];
        rows[ROW_NONE] = true;
    } else {
        int m = 0;
        while (m < NROWS && strcmp(method, row_name(m))) m++;
        if (m == NROWS)
            cli_usage_error(cmd, "--method must be none or a method of the run, not '%s'", method);
        if (m != ROW_NONE && !r->has[m]) {
            rc = cli_fail(cmd, "run '%s' has no %s counterfactuals", run_dir, method);
            goto done;
        }
        rows[m] = true;
    }
    if (accuracy && !r->cause) {
        rc = cli_fail(cmd,
                      "run '%s' does not know its images' causes, so --accuracy has nothing to "
                      "compare with: make the run from cfx competency examples (--examples)",
                      run_dir);
        goto done;
    }
    if (!(b = cfx_bundle_load(r->bundle, batch))) {
        rc = cli_fail(cmd, "%s (the run's bundle)", cfx_last_error());
        goto done;
    }
    if (strcmp(b->fingerprint, r->bundle_fingerprint)) {
        rc = cli_fail(cmd,
                      "the bundle '%s' is not the one the run was made with (fingerprint %s, the "
                      "run's %s): it was replaced or refitted; run cfx counterfactual again",
                      r->bundle, b->fingerprint, r->bundle_fingerprint);
        goto done;
    }
    if (!data && !(data = recorded = bundle_dataset(r->bundle))) {
        rc = cli_fail(cmd, "the bundle does not name its dataset: give --data DIR");
        goto done;
    }
    if (!(d = cfx_dataset_load(data, "calib"))) {
        rc = cli_fail(cmd, "%s (the explainer learns from the calib split of --data)",
                      cfx_last_error());
        goto done;
    }
    if (cfx_bundle_calibration(b, &lat, &scores) != CFX_OK) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    if (scores->numel != d->n) {
        rc = cli_fail(cmd,
                      "the bundle has %lld calibration scores but '%s' has %lld calib images: "
                      "give the --data the bundle was fitted on",
                      (long long)scores->numel, data, (long long)d->n);
        goto done;
    }
    cfx_explainer_options eo = {.sources = sources,
                                .k = (int)k,
                                .seed = (uint64_t)seed,
                                .calib_latents = lat,
                                .calib_scores = scores,
                                .progress = {.fn = json ? NULL : cfx_progress_stderr}};
    if (!(e = cfx_explainer_new(b->competency, d, scores->data, &eo))) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    if (!(grad = gradients(b->competency, r->images))) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    int64_t per = (int64_t)r->c * r->h * r->w, hw = (int64_t)r->h * r->w;
    map = malloc((size_t)hw * sizeof *map);
    char path[4200];
    snprintf(path, sizeof path, "%s/maps", run_dir);
    if (!map || (!no_maps && mkdir(path, 0777) != 0 && errno != EEXIST)) {
        rc = cli_fail(cmd, "cannot make '%s': %s", path, map ? strerror(errno) : "out of memory");
        goto done;
    }
    snprintf(path, sizeof path, "%s/explanations.jsonl", run_dir);
    cfx_status s = cfx_file_create(&af, path);
    t->ncause = cfx_run_causes(r, t->cause, 64);
    /* The map of each image uses the first method's counterfactual (best when the run has it). */
    int map_method = r->has[CFX_RUN_BEST] ? CFX_RUN_BEST : -1;
    for (int m = 0; map_method < 0 && m < CFX_RUN_METHODS; m++)
        if (r->has[m]) map_method = m;
    const int order[] = {CFX_RUN_BEST, CFX_CF_IGD, CFX_CF_FGD, CFX_CF_RECO,
                         CFX_CF_LGD,   CFX_CF_LNN, ROW_NONE};
    for (int64_t i = 0; s == CFX_OK && i < r->n; i++) {
        const float *x = r->images->data + i * per;
        const cfx_run_result *mr = &r->results[map_method * r->n + i];
        const float *mcf = mr->present ? r->counterfactuals[map_method]->data + i * per : NULL;
        s = cfx_competency_map(grad + i * per, x, mcf, r->c, r->h, r->w, map);
        if (s == CFX_OK && !no_maps) {
            cfx_tensor *png = cfx_competency_map_render(map, x, r->c, r->h, r->w,
                                                        r->h < 96 ? (96 + r->h - 1) / r->h : 1);
            snprintf(path, sizeof path, "%s/maps/%lld.png", run_dir, (long long)i);
            s = png ? cfx_image_write_png(path, png) : CFX_ENOMEM;
            cfx_tensor_free(png);
        }
        double rho0 = NAN;
        for (int m = 0; m < CFX_RUN_METHODS && isnan(rho0); m++)
            if (r->has[m] && r->results[m * r->n + i].present)
                rho0 = r->results[m * r->n + i].rho_before;
        int ci = 0;
        while (r->cause && ci < t->ncause && strcmp(t->cause[ci], r->cause[i])) ci++;
        for (size_t o = 0; s == CFX_OK && o < sizeof order / sizeof order[0]; o++) {
            int m = order[o];
            if (!rows[m]) continue;
            const cfx_run_result *res = m == ROW_NONE ? NULL : &r->results[m * r->n + i];
            if (res && !res->present) continue;
            cfx_explanation ex;
            int made_by = m == CFX_RUN_BEST ? res->winner : m;
            s = cfx_explain_image(e, r->images->data + i * per,
                                  res ? r->counterfactuals[m]->data + i * per : NULL, made_by, map,
                                  rho0, res ? res->rho_after : NAN, &ex);
            if (s != CFX_OK) {
                cfx_error_context(s, "image %lld, %s", (long long)i, row_name(m));
                break;
            }
            write_line(af.f, i, m, r, &ex);
            if (r->cause && ci < t->ncause) {
                t->total[m][ci]++;
                t->right[m][ci] += !strcmp(cfx_cause_name(ex.cause), r->cause[i]);
            }
        }
    }
    if (s == CFX_OK)
        s = cfx_file_commit(&af);
    else
        cfx_file_abort(&af);
    if (s != CFX_OK) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    if (json) {
        printf("{\"run\": ");
        cli_json_str(stdout, run_dir);
        printf(", \"images\": %lld, \"explanations\": \"explanations.jsonl\", \"maps\": %s",
               (long long)r->n, no_maps ? "null" : "\"maps\"");
        if (r->cause) {
            printf(", \"accuracy\": {");
            bool firstrow = true;
            for (int m = 0; m < NROWS; m++) {
                if (!rows[m]) continue;
                printf("%s\"%s\": {", firstrow ? "" : ", ", row_name(m));
                firstrow = false;
                for (int c = 0; c < t->ncause; c++) {
                    printf("%s", c ? ", " : "");
                    cli_json_str(stdout, t->cause[c]);
                    if (t->total[m][c])
                        printf(": %.4f", (double)t->right[m][c] / (double)t->total[m][c]);
                    else
                        printf(": null");
                }
                printf("}");
            }
            printf("}");
        }
        printf("}\n");
    } else {
        if (accuracy) print_accuracy(stdout, t, rows);
        printf("%swrote %s/explanations.jsonl%s (%lld images)\n", accuracy ? "\n" : "", run_dir,
               no_maps ? "" : " and maps/<index>.png", (long long)r->n);
    }
done:
    cfx_explainer_free(e);
    cfx_tensor_free(lat), cfx_tensor_free(scores);
    cfx_dataset_free(d);
    cfx_bundle_free(b);
    free(recorded), free(grad), free(map), free(t);
    cfx_run_free(r);
    return rc;
}
