/* cmd_explain.c - `cfx explain RUN`: the measured explainer (src/explain/measured.c) on every
 * image of a counterfactual run, without a counterfactual and with each method's, and a
 * competency map per image. Writes RUN/explanations.jsonl (one line per image and method,
 * atomically) and RUN/maps/<index>.png; with --accuracy, when the run knows its causes, prints
 * the share of right causes per cause and method in the layout of the competency paper's
 * tables 3 and 4. Under mpirun (cfx-mpi) the ranks explain contiguous blocks of whole batches
 * of the images (each image costs about the same), each writing its images' maps into the run
 * folder; rank 0 gathers their lines, in order, and the counts, and writes what one process writes.
 */
#include "cli.h"
#include "mpi.h"

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

/* d rho / d X of images lo..hi-1 of the run, (hi - lo) x C x H x W. */
static float *block_gradients(cfx_competency *c, const cfx_tensor *images, int64_t lo, int64_t hi) {
    if (lo == 0 && hi == images->shape[0]) return gradients(c, images);
    if (hi == lo) return malloc(1);
    int64_t shape[4] = {hi - lo, images->shape[1], images->shape[2], images->shape[3]};
    cfx_tensor *part = cfx_tensor_new(images->ndim, shape);
    if (!part) {
        cfx_set_error(CFX_ENOMEM, "out of memory");
        return NULL;
    }
    int64_t per = images->numel / images->shape[0];
    memcpy(part->data, images->data + lo * per, (size_t)part->numel * sizeof(float));
    float *g = gradients(c, part);
    cfx_tensor_free(part);
    return g;
}

/* Correct and total explanations per row and cause (causes by their index in the run). */
typedef struct {
    int ncause;
    const char *cause[64];
    int64_t right[NROWS][64], total[NROWS][64];
} tally;

/* Under mpirun: the counts summed over the ranks, on every rank (exact below 2^53). */
static cfx_status sum_tally(tally *t) {
    enum { N = 2 * NROWS * 64 };
    double *v = malloc(N * sizeof *v);
    if (!v) return CFX_ENOMEM;
    for (int k = 0; k < NROWS * 64; k++) {
        v[k] = (double)t->right[k / 64][k % 64];
        v[NROWS * 64 + k] = (double)t->total[k / 64][k % 64];
    }
    cfx_status s = cli_mpi_sum(NULL, NULL, 0, v, N);
    for (int k = 0; s == CFX_OK && k < NROWS * 64; k++) {
        t->right[k / 64][k % 64] = (int64_t)v[k];
        t->total[k / 64][k % 64] = (int64_t)v[NROWS * 64 + k];
    }
    free(v);
    return s;
}

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

/* The explainer of a line of explanations.jsonl ("measured" for lines written before the field
 * was), or NULL for a line that does not parse. The result is a cJSON the caller deletes. */
static const char *line_explainer(const char *p, size_t n, cJSON **j) {
    *j = cJSON_ParseWithLength(p, n);
    if (!*j) return NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(*j, "explainer");
    return cJSON_IsString(e) ? e->valuestring : "measured";
}

/* Copies the lines of RUN/explanations.jsonl that another explainer wrote (not `mine`) to f,
 * so that each explainer replaces only its own rows. */
static void copy_other_rows(FILE *f, const char *run_dir, const char *mine) {
    char path[4200], *text = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/explanations.jsonl", run_dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) return;
    fclose(probe);
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return;
    for (char *p = text, *nl; p < text + size; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) nl = text + size;
        cJSON *j;
        const char *e = line_explainer(p, (size_t)(nl - p), &j);
        if (e && strcmp(e, mine)) fprintf(f, "%.*s\n", (int)(nl - p), p);
        cJSON_Delete(j);
    }
    cfx_free(text);
}

static cfx_status write_line(FILE *f, int64_t i, int k, const cfx_run *r,
                             const cfx_explanation *x) {
    fprintf(f, "{\"index\": %lld, \"method\": \"%s\", \"explainer\": \"measured\", ", (long long)i,
            row_name(k));
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

/* The description of the run's dataset for the LLM's prompt: from the manifest of the dataset
 * the bundle was fitted on (its name and class names), generic when there is none. */
static char *run_description(const cfx_run *r) {
    char *dir = cli_bundle_dataset(r->bundle), path[4200], *text = NULL, *out = NULL;
    size_t size;
    cJSON *m = NULL;
    if (dir) {
        snprintf(path, sizeof path, "%s/manifest.json", dir);
        if (cfx_file_read_all(path, &text, &size) == CFX_OK) m = cJSON_Parse(text);
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name"),
                *classes = cJSON_GetObjectItemCaseSensitive(m, "classes");
    const char *names[256];
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, classes) if (cJSON_IsString(c) && n < 256) names[n++] = c->valuestring;
    out = cfx_llm_dataset_description(cJSON_IsString(name) ? name->valuestring : NULL, names, n);
    cJSON_Delete(m);
    cfx_free(text);
    free(dir);
    return out;
}

typedef struct {
    const char *url, *model, *key_env, *description;
    double temperature, timeout;
    long long max_tokens, retries, concurrency;
    int json;
} llm_args;

/* `cfx explain RUN --llm URL`: asks the server about every image and row, writes the answers
 * (or each failure's reason) as explanations.jsonl rows of the explainer "llm:<model>". */
static int explain_llm(const cfx_run *r, const char *run_dir, const bool *rows, const llm_args *a) {
    const char *key = NULL;
    if (a->key_env) {
        key = getenv(a->key_env);
        if (!key || !*key)
            return cli_fail(cmd,
                            "the environment variable %s (--api-key-env) is not set or empty: "
                            "export it with the server's API key",
                            a->key_env);
    }
    char explainer[300], cache[4200], path[4200];
    snprintf(explainer, sizeof explainer, "llm:%s", a->model);
    snprintf(cache, sizeof cache, "%s/llm_cache.jsonl", run_dir);
    char *desc = a->description ? cfx_strdup(a->description) : run_description(r);
    cfx_llm_options o = {.url = a->url,
                         .model = a->model,
                         .api_key = key,
                         .temperature = a->temperature,
                         .max_tokens = (int)a->max_tokens,
                         .timeout = a->timeout,
                         .retries = (int)a->retries,
                         .concurrency = (int)a->concurrency,
                         .description = desc,
                         .cache = cache};
    cfx_llm *l = desc ? cfx_llm_new(&o) : NULL;
    cfx_free(desc);
    if (!l) return cli_fail(cmd, NULL);
    /* One row per image and row kind, in the order the measured explainer writes them, and a
     * job per row, except that best's row shares the job of the method it took when that row
     * is asked too (the same counterfactual: the same request). */
    const int order[] = {CFX_RUN_BEST, CFX_CF_IGD, CFX_CF_FGD, CFX_CF_RECO,
                         CFX_CF_LGD,   CFX_CF_LNN, ROW_NONE};
    int64_t per = (int64_t)r->c * r->h * r->w, n = 0, nj = 0;
    cfx_llm_job *jobs = calloc((size_t)r->n * NROWS, sizeof *jobs);
    int64_t *which = malloc((size_t)r->n * NROWS * sizeof *which),
            *job_of = malloc((size_t)r->n * NROWS * sizeof *job_of);
    if (!jobs || !which || !job_of) {
        free(jobs), free(which), free(job_of);
        cfx_llm_free(l);
        return cli_fail(cmd, "out of memory");
    }
    for (int64_t i = 0; i < r->n; i++)
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
            int m = order[k];
            if (!rows[m] || (m != ROW_NONE && !r->results[m * r->n + i].present)) continue;
            const float *cf = m == ROW_NONE ? NULL : r->counterfactuals[m]->data + i * per;
            int w = m == CFX_RUN_BEST ? r->results[m * r->n + i].winner : -1;
            which[n] = i * NROWS + m;
            if (w >= 0 && w < CFX_RUN_BEST && rows[w] && r->results[w * r->n + i].present &&
                !memcmp(cf, r->counterfactuals[w]->data + i * per, (size_t)per * sizeof *cf)) {
                job_of[n++] = -1 - w; /* resolved below, once the winner's row has its job */
                continue;
            }
            jobs[nj].image = r->images->data + i * per;
            jobs[nj].cf = cf;
            job_of[n++] = nj++;
        }
    for (int64_t j = 0; j < n; j++)
        for (int64_t q = j + 1; job_of[j] < 0 && q < n; q++)
            if (which[q] == which[j] - CFX_RUN_BEST + (-1 - job_of[j])) job_of[j] = job_of[q];
    int64_t failed = 0;
    cfx_status s =
        cfx_llm_ask(l, jobs, nj, r->c, r->h, r->w,
                    &(cfx_progress){.fn = a->json ? NULL : cfx_progress_stderr}, &failed);
    cfx_file af = {0};
    snprintf(path, sizeof path, "%s/explanations.jsonl", run_dir);
    if (s == CFX_OK) s = cfx_file_create(&af, path);
    if (s == CFX_OK) copy_other_rows(af.f, run_dir, explainer);
    int64_t cached = 0, first_failed = -1;
    for (int64_t j = 0; j < nj; j++) cached += jobs[j].cached;
    for (int64_t j = 0; s == CFX_OK && j < n; j++) {
        const cfx_llm_job *job = &jobs[job_of[j]];
        int64_t i = which[j] / NROWS;
        int m = (int)(which[j] % NROWS);
        fprintf(af.f, "{\"index\": %lld, \"method\": \"%s\", \"explainer\": ", (long long)i,
                row_name(m));
        cli_json_str(af.f, explainer);
        if (r->cause && strcmp(r->cause[i], "unknown")) {
            fputs(", \"cause\": ", af.f);
            cli_json_str(af.f, r->cause[i]);
        }
        if (job->reply) {
            fprintf(af.f, ", \"predicted_cause\": \"%s\", \"sentence\": ",
                    cfx_cause_name(cfx_explain_keyword_cause(job->reply)));
            cli_json_str(af.f, job->reply);
            fprintf(af.f, ", \"reference\": \"%s\"}\n", m == ROW_NONE ? "none" : "counterfactual");
        } else {
            fputs(", \"error\": ", af.f);
            cli_json_str(af.f, job->error);
            fputs("}\n", af.f);
            if (first_failed < 0) first_failed = j;
        }
    }
    if (s == CFX_OK)
        s = cfx_file_commit(&af);
    else if (af.f)
        cfx_file_abort(&af);
    int rc = 0;
    if (s != CFX_OK)
        rc = cli_fail(cmd, NULL);
    else if (a->json) {
        printf("{\"run\": ");
        cli_json_str(stdout, run_dir);
        printf(", \"explainer\": ");
        cli_json_str(stdout, explainer);
        printf(", \"requests\": %lld, \"sent\": %lld, \"cached\": %lld, \"failed\": %lld}\n",
               (long long)nj, (long long)cfx_llm_sent(l), (long long)cached, (long long)failed);
    } else
        printf("wrote %s/explanations.jsonl: %lld answers of %s (%lld asked, %lld from the "
               "cache, %lld failed)\n",
               run_dir, (long long)(nj - failed), explainer, (long long)cfx_llm_sent(l),
               (long long)cached, (long long)failed);
    if (rc == 0 && failed > 0)
        rc = cli_fail(cmd,
                      "%lld of %lld requests failed, for example image %lld: %s; their rows in "
                      "explanations.jsonl say why; the answers are kept (RUN/llm_cache.jsonl), so "
                      "running the same command again asks only the failed ones",
                      (long long)failed, (long long)nj, (long long)(which[first_failed] / NROWS),
                      jobs[job_of[first_failed]].error);
    for (int64_t j = 0; j < nj; j++) cfx_free(jobs[j].reply);
    free(jobs), free(which), free(job_of);
    cfx_llm_free(l);
    return rc;
}

static int cmd_explain_score(int argc, char **argv);
static int cmd_explain_export(int argc, char **argv);

int cmd_explain(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "score")) return cmd_explain_score(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "export-finetune"))
        return cmd_explain_export(argc - 1, argv + 1);
    const char *run_dir = NULL, *data = NULL, *method = NULL;
    long long threads = 0, sources = 300, k = 15, seed = 0, batch = 64;
    int json = 0, accuracy = 0, no_maps = 0, no_cf = 0;
    llm_args la = {
        .temperature = 0, .timeout = 60, .max_tokens = 128, .retries = 2, .concurrency = 2};
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
        {"llm", "URL",
         "explain with a vision LLM behind an OpenAI-compatible API instead, such as "
         "http://127.0.0.1:8080/v1 (llama.cpp server, vLLM, Ollama)",
         .str = &la.url},
        {"llm-model", "NAME", "the model the server should answer with (with --llm)",
         .str = &la.model},
        {"api-key-env", "VAR",
         "the environment variable holding the server's API key (sent as a bearer token, never "
         "printed or stored)",
         .str = &la.key_env, .def = "no key"},
        {"temperature", "T", "the LLM's sampling temperature", .num = &la.temperature, .min = -1,
         .max = 3},
        {"max-tokens", "N", "the longest answer in tokens", .i = &la.max_tokens, .lo = 1,
         .hi = 1000000},
        {"timeout", "S", "seconds for one request, reply included", .num = &la.timeout,
         .max = INFINITY},
        {"retries", "N", "attempts after the first on timeouts, connection errors and 5xx",
         .i = &la.retries, .lo = 0, .hi = 100},
        {"concurrency", "N", "requests in flight at once", .i = &la.concurrency, .lo = 1, .hi = 64},
        {"no-counterfactual", NULL, "ask without the counterfactual only (the row \"none\")",
         .flag = &no_cf},
        {"dataset-description", "TEXT", "the dataset's description in the LLM's prompt",
         .str = &la.description, .def = "from the dataset's manifest"},
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
              "gradient of rho and the difference to the counterfactual).\n"
              "With --llm URL --llm-model NAME, a vision LLM answers instead, with the\n"
              "competency paper's prompts, as rows of the explainer \"llm:NAME\" (the other\n"
              "explainers' rows are kept). `cfx explain score RUN` scores the explanations\n"
              "per cause; `cfx explain export-finetune RUN --out F.jsonl` writes fine-tuning\n"
              "examples.\n",
              opts, CLI_LEN(opts), argc, argv);
    bool rows[NROWS] = {false};
    cli_set_threads(threads);
    const int rank = cli_mpi_rank(), ranks = cli_mpi_size();
    bool agreed = ranks == 1; /* under mpirun: whether the ranks have agreed to start */
    cfx_run *r = cfx_run_open(run_dir);
    if (!r && !agreed) cli_mpi_first_failure(true); /* the other ranks stop too */
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
    if (no_cf) {
        if (method && strcmp(method, "none"))
            cli_usage_error(cmd, "--no-counterfactual and --method %s contradict", method);
        for (int m = 0; m < NROWS; m++) rows[m] = m == ROW_NONE;
    }
    if (la.url || la.model) {
        if (!la.url || !la.model) cli_usage_error(cmd, "--llm and --llm-model go together");
        if (ranks > 1) cli_usage_error(cmd, "--llm runs on one rank: start it without mpirun");
        la.json = json;
        rc = explain_llm(r, run_dir, rows, &la);
        goto done;
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
    if (!data && !(data = recorded = cli_bundle_dataset(r->bundle))) {
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
                                .progress = {.fn = json || rank ? NULL : cfx_progress_stderr}};
    if (!(e = cfx_explainer_new(b->competency, d, scores->data, &eo))) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    /* This rank's block of the images, and their gradients. */
    int64_t lo = 0, hi = r->n;
    cli_mpi_batches(r->n, batch, rank, ranks, &lo, &hi); /* one process's batches */
    if (!(grad = block_gradients(b->competency, r->images, lo, hi))) {
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
    /* Under mpirun: every rank has loaded, and all explain the same run. */
    if (!agreed) {
        agreed = true;
        uint64_t h =
            cfx_fnv1a(CFX_FNV1A_INIT, r->images->data, (size_t)r->images->numel * sizeof(float));
        h = cfx_fnv1a(h, r->bundle_fingerprint, strlen(r->bundle_fingerprint));
        if (cli_mpi_first_failure(false) >= 0 || !cli_mpi_same(cmd, "run or data", h)) {
            rc = 1;
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/explanations.jsonl", run_dir);
    cfx_status s = rank == 0 ? cfx_file_create(&af, path) : CFX_OK;
    if (s == CFX_OK && rank == 0) copy_other_rows(af.f, run_dir, "measured");
    /* This rank's lines, in memory until rank 0 has them all. */
    char *mine = NULL, *all = NULL;
    size_t nmine = 0, nall = 0;
    FILE *mf = s == CFX_OK ? open_memstream(&mine, &nmine) : NULL;
    if (s == CFX_OK && !mf) s = cfx_set_error(CFX_ENOMEM, "out of memory");
    t->ncause = cfx_run_causes(r, t->cause, 64);
    /* The map of each image uses the first method's counterfactual (best when the run has it). */
    int map_method = r->has[CFX_RUN_BEST] ? CFX_RUN_BEST : -1;
    for (int m = 0; map_method < 0 && m < CFX_RUN_METHODS; m++)
        if (r->has[m]) map_method = m;
    const int order[] = {CFX_RUN_BEST, CFX_CF_IGD, CFX_CF_FGD, CFX_CF_RECO,
                         CFX_CF_LGD,   CFX_CF_LNN, ROW_NONE};
    double t0 = cfx_now(), c0 = cli_mpi_cpu();
    for (int64_t i = lo; s == CFX_OK && i < hi; i++) {
        const float *x = r->images->data + i * per;
        const cfx_run_result *mr = &r->results[map_method * r->n + i];
        const float *mcf = mr->present ? r->counterfactuals[map_method]->data + i * per : NULL;
        s = cfx_competency_map(grad + (i - lo) * per, x, mcf, r->c, r->h, r->w, map);
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
            write_line(mf, i, m, r, &ex);
            if (r->cause && ci < t->ncause) {
                t->total[m][ci]++;
                t->right[m][ci] += !strcmp(cfx_cause_name(ex.cause), r->cause[i]);
            }
        }
    }
    if (mf && fclose(mf) != 0 && s == CFX_OK) s = cfx_set_error(CFX_ENOMEM, "out of memory");
    double work = cfx_now() - t0, cpu = cli_mpi_cpu() - c0;
    /* Under mpirun the lowest rank that failed says why, with its images. */
    int failed = cli_mpi_first_failure(s != CFX_OK);
    if (failed >= 0) {
        if (rank == 0) cfx_file_abort(&af);
        if (failed == rank && ranks > 1)
            rc = cli_fail(cmd, "rank %d of %d (images %lld..%lld): %s", rank, ranks, (long long)lo,
                          (long long)hi - 1, cfx_last_error());
        else
            rc = failed == rank ? cli_fail(cmd, NULL) : 1;
        free(mine);
        goto done;
    }
    /* Rank 0 takes the lines in rank order, which is the images' order, and the counts. */
    s = cli_mpi_gather(mine, nmine, &all, &nall);
    free(mine);
    if (s == CFX_OK && ranks > 1) s = sum_tally(t);
    cli_mpi_stats(cmd, hi - lo, work, cpu);
    if (rank > 0) {
        free(all);
        if (s != CFX_OK) rc = cli_fail(cmd, NULL);
        goto done;
    }
    if (s == CFX_OK && nall && fwrite(all, 1, nall, af.f) != nall)
        s = cfx_set_error(CFX_EIO, "cannot write '%s': %s", path, strerror(errno));
    free(all);
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
    if (!agreed) cli_mpi_first_failure(true); /* the other ranks stop too */
    cfx_explainer_free(e);
    cfx_tensor_free(lat), cfx_tensor_free(scores);
    cfx_dataset_free(d);
    cfx_bundle_free(b);
    free(recorded), free(grad), free(map), free(t);
    cfx_run_free(r);
    return rc;
}

/* ------------------------------------------------------------------ explain score === */

/* One scored explanation. */
typedef struct {
    long long index;
    int row; /* ROW_NONE or a method */
    char explainer[128], truth[32], predicted[32];
    char *sentence;
    int correct;
} scored;

/* Accuracy tables per explainer (tally and print_accuracy above), in the order explainers first
 * appear. */
static void print_scores(FILE *f, const scored *s, int64_t n) {
    const char *done[64];
    int ndone = 0;
    for (int64_t a = 0; a < n; a++) {
        bool seen = false;
        for (int d = 0; d < ndone && !seen; d++) seen = !strcmp(done[d], s[a].explainer);
        if (seen || ndone == 64) continue;
        done[ndone++] = s[a].explainer;
        tally *t = calloc(1, sizeof *t);
        if (!t) return;
        bool rows[NROWS] = {false};
        for (int64_t b = 0; b < n; b++) {
            if (strcmp(s[b].explainer, s[a].explainer)) continue;
            int c = 0;
            while (c < t->ncause && strcmp(t->cause[c], s[b].truth)) c++;
            if (c == t->ncause && c < 64) t->cause[t->ncause++] = s[b].truth;
            if (c == 64) continue;
            rows[s[b].row] = true;
            t->total[s[b].row][c]++;
            t->right[s[b].row][c] += s[b].correct;
        }
        /* Causes in their usual order (cfx_cause), as the paper's tables. */
        const char *sorted[64];
        int ns = 0;
        for (int c = CFX_CAUSE_SPATIAL; c < CFX_CAUSE_COUNT; c++)
            for (int k = 0; k < t->ncause; k++)
                if (!strcmp(t->cause[k], cfx_cause_name((cfx_cause)c))) sorted[ns++] = t->cause[k];
        tally *u = calloc(1, sizeof *u);
        if (u) {
            u->ncause = ns;
            for (int c = 0; c < ns; c++) {
                u->cause[c] = sorted[c];
                int k = 0;
                while (strcmp(t->cause[k], sorted[c])) k++;
                for (int m = 0; m < NROWS; m++)
                    u->right[m][c] = t->right[m][k], u->total[m][c] = t->total[m][k];
            }
            fprintf(f, "%s%s:\n\n", a ? "\n" : "", s[a].explainer);
            print_accuracy(f, u, rows);
        }
        free(u), free(t);
    }
}

/* A field of a CSV line (RFC 4180: quoted fields may hold commas, "" and line breaks) at *p,
 * advancing past it and its comma. Returns the field's text (malloc), or NULL at the line's end. */
static char *csv_field(const char **p, bool *end) {
    const char *q = *p;
    size_t cap = 64, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    bool quoted = *q == '"';
    if (quoted) q++;
    for (;; q++) {
        if (!*q) break;
        if (quoted && *q == '"') {
            if (q[1] == '"') {
                q++;
            } else {
                quoted = false;
                continue;
            }
        } else if (!quoted && (*q == ',' || *q == '\n' || *q == '\r'))
            break;
        if (n + 2 > cap) {
            char *o = realloc(out, cap *= 2);
            if (!o) return free(out), NULL;
            out = o;
        }
        out[n++] = *q;
    }
    out[n] = '\0';
    if (*q == '\r') q++;
    *end = *q != ',';
    if (*q) q++;
    *p = q;
    return out;
}

static void csv_put(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char score_header[] =
    "index,method,explainer,true cause,predicted cause,sentence,correct";

/* Reads a corrected score CSV into *out; a message naming the row on anything unknown. */
static int read_corrected(const char *file, scored **out, int64_t *count) {
    char *text = NULL;
    size_t size;
    if (cfx_file_read_all(file, &text, &size) != CFX_OK) return cli_fail(cmd, NULL);
    int64_t cap = 64, n = 0;
    scored *s = calloc((size_t)cap, sizeof *s);
    const char *p = text;
    int rc = 0;
    int line = 1;
    size_t hl = strcspn(p, "\r\n");
    if (hl != strlen(score_header) || strncmp(p, score_header, hl)) {
        rc = cli_fail(cmd, "'%s' row 1: the header must be \"%s\" (as cfx explain score writes it)",
                      file, score_header);
        goto done;
    }
    p += hl;
    while (*p == '\r' || *p == '\n') p++;
    while (*p && !rc) {
        line++;
        char *field[7] = {NULL};
        int nf = 0;
        bool end = false;
        while (!end && nf < 7) field[nf++] = csv_field(&p, &end);
        while (!end) { /* extra fields */
            free(csv_field(&p, &end));
            nf = 8;
        }
        while (*p == '\r' || *p == '\n') p++;
        if (nf != 7) {
            rc = cli_fail(cmd, "'%s' row %d: %d fields, expected 7 (%s)", file, line, nf,
                          score_header);
        } else {
            if (n == cap) {
                scored *g = realloc(s, (size_t)(cap *= 2) * sizeof *s);
                if (!g) {
                    rc = cli_fail(cmd, "out of memory");
                    break;
                }
                s = g;
            }
            scored *x = &s[n];
            memset(x, 0, sizeof *x);
            char *end_num = NULL;
            x->index = strtoll(field[0], &end_num, 10);
            int m = 0;
            while (m < NROWS && strcmp(field[1], row_name(m))) m++;
            cfx_cause tc, pc;
            const char *c = field[6];
            if (!*field[0] || *end_num)
                rc = cli_fail(cmd, "'%s' row %d: index '%s' is not a number", file, line, field[0]);
            else if (m == NROWS)
                rc = cli_fail(cmd,
                              "'%s' row %d: unknown method '%s' (none, igd, fgd, reco, lgd, "
                              "lnn or best)",
                              file, line, field[1]);
            else if (cfx_cause_parse(field[3], &tc) != CFX_OK || tc == CFX_CAUSE_NONE)
                rc = cli_fail(cmd,
                              "'%s' row %d: unknown true cause '%s' (spatial, brightness, "
                              "contrast, saturation, noise or pixelation)",
                              file, line, field[3]);
            else if (cfx_cause_parse(field[4], &pc) != CFX_OK)
                rc = cli_fail(cmd,
                              "'%s' row %d: unknown predicted cause '%s' (spatial, brightness, "
                              "contrast, saturation, noise, pixelation, or none when the "
                              "sentence names no cause)",
                              file, line, field[4]);
            else if (*c && strcmp(c, "0") && strcmp(c, "1") && strcmp(c, "yes") &&
                     strcmp(c, "no") && strcmp(c, "true") && strcmp(c, "false"))
                rc = cli_fail(cmd,
                              "'%s' row %d: correct is '%s'; write 1 or 0 (yes/no, true/false), "
                              "or leave it empty to compare the causes",
                              file, line, c);
            else {
                x->row = m;
                snprintf(x->explainer, sizeof x->explainer, "%s", field[2]);
                snprintf(x->truth, sizeof x->truth, "%s", cfx_cause_name(tc));
                snprintf(x->predicted, sizeof x->predicted, "%s", cfx_cause_name(pc));
                x->correct =
                    *c ? (!strcmp(c, "1") || !strcmp(c, "yes") || !strcmp(c, "true")) : tc == pc;
                n++;
            }
        }
        for (int k = 0; k < 7 && k < nf; k++) free(field[k]);
    }
done:
    cfx_free(text);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s, *count = n;
    return 0;
}

static int cmd_explain_score(int argc, char **argv) {
    const char *run_dir = NULL, *corrected = NULL;
    const cli_opt opts[] = {
        {"RUN", NULL, "a run folder that cfx explain has explained", .str = &run_dir,
         .required = true, .positional = true},
        {"corrected", "FILE.csv",
         "score from this copy of RUN/explanations_score.csv as a person corrected it instead",
         .str = &corrected, .role = CLI_IN},
    };
    cli_parse("explain score",
              "Scores the explanations of a run whose causes are known (made from cfx\n"
              "competency examples): a sentence names the cause whose keyword comes first\n"
              "(README \"Explanations\" lists the keywords; the measured explainer names its\n"
              "own). Writes RUN/explanations_score.csv (index, method, explainer, true cause,\n"
              "predicted cause, sentence, correct) for a person to confirm or correct, and\n"
              "prints the accuracy per cause and explainer, without a counterfactual and per\n"
              "counterfactual method, as the competency paper's tables 3 and 4. With\n"
              "--corrected, reads a corrected copy back instead (an empty correct compares\n"
              "the causes) and prints its accuracy.\n",
              opts, CLI_LEN(opts), argc, argv);
    scored *s = NULL;
    int64_t n = 0;
    int rc = 0;
    if (corrected) {
        if ((rc = read_corrected(corrected, &s, &n))) return rc;
    } else {
        char path[4200], *text = NULL;
        size_t size;
        snprintf(path, sizeof path, "%s/explanations.jsonl", run_dir);
        FILE *probe = fopen(path, "rb");
        if (!probe)
            return cli_fail(cmd,
                            "'%s' has no explanations.jsonl: run cfx explain %s first (with --llm "
                            "for a language model's)",
                            run_dir, run_dir);
        fclose(probe);
        if (cfx_file_read_all(path, &text, &size) != CFX_OK) return cli_fail(cmd, NULL);
        int64_t cap = 64;
        s = calloc((size_t)cap, sizeof *s);
        for (char *p = text, *nl; s && p < text + size; p = nl + 1) {
            nl = memchr(p, '\n', (size_t)(text + size - p));
            if (!nl) nl = text + size;
            cJSON *j;
            const char *e = line_explainer(p, (size_t)(nl - p), &j);
            const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index"),
                        *me = cJSON_GetObjectItemCaseSensitive(j, "method"),
                        *ca = cJSON_GetObjectItemCaseSensitive(j, "cause"),
                        *pr = cJSON_GetObjectItemCaseSensitive(j, "predicted_cause"),
                        *se = cJSON_GetObjectItemCaseSensitive(j, "sentence");
            int m = 0;
            while (cJSON_IsString(me) && m < NROWS && strcmp(me->valuestring, row_name(m))) m++;
            /* Rows without a known cause, and failed requests (no sentence), are not scored. */
            if (e && cJSON_IsNumber(ix) && cJSON_IsString(me) && m < NROWS && cJSON_IsString(ca) &&
                cJSON_IsString(pr) && cJSON_IsString(se)) {
                if (n == cap) {
                    scored *g = realloc(s, (size_t)(cap *= 2) * sizeof *s);
                    if (!g) {
                        free(s), s = NULL;
                        cJSON_Delete(j);
                        break;
                    }
                    s = g;
                }
                scored *x = &s[n++];
                memset(x, 0, sizeof *x);
                x->index = (long long)ix->valuedouble, x->row = m;
                snprintf(x->explainer, sizeof x->explainer, "%s", e);
                snprintf(x->truth, sizeof x->truth, "%s", ca->valuestring);
                snprintf(x->predicted, sizeof x->predicted, "%s", pr->valuestring);
                x->sentence = strdup(se->valuestring);
                x->correct = !strcmp(x->truth, x->predicted);
            }
            cJSON_Delete(j);
        }
        cfx_free(text);
        if (!s) return cli_fail(cmd, "out of memory");
        if (n == 0) {
            free(s);
            return cli_fail(cmd,
                            "'%s' has no explanation of an image whose cause is known: make the "
                            "run from cfx competency examples (--examples)",
                            path);
        }
        cfx_file af = {0};
        snprintf(path, sizeof path, "%s/explanations_score.csv", run_dir);
        cfx_status st = cfx_file_create(&af, path);
        if (st == CFX_OK) {
            fprintf(af.f, "%s\n", score_header);
            for (int64_t i = 0; i < n; i++) {
                fprintf(af.f, "%lld,%s,", s[i].index, row_name(s[i].row));
                csv_put(af.f, s[i].explainer);
                fprintf(af.f, ",%s,%s,", s[i].truth, s[i].predicted);
                csv_put(af.f, s[i].sentence ? s[i].sentence : "");
                fprintf(af.f, ",%d\n", s[i].correct);
            }
            st = cfx_file_commit(&af);
        }
        if (st != CFX_OK) rc = cli_fail(cmd, NULL);
    }
    if (!rc) {
        print_scores(stdout, s, n);
        if (!corrected)
            printf("\nwrote %s/explanations_score.csv (%lld explanations): correct it and read it "
                   "back with --corrected\n",
                   run_dir, (long long)n);
    }
    for (int64_t i = 0; i < n; i++) free(s[i].sentence);
    free(s);
    return rc;
}

/* -------------------------------------------------------- explain export-finetune === */

static int cmd_explain_export(int argc, char **argv) {
    const char *run_dir = NULL, *out = NULL, *description = NULL;
    int force = 0;
    const cli_opt opts[] = {
        {"RUN", NULL, "a run folder written by cfx counterfactual from cfx competency examples",
         .str = &run_dir, .required = true, .positional = true, .role = CLI_IN},
        CLI_OPT_OUT(&out, "F.jsonl", "the JSON Lines file to write"),
        {"dataset-description", "TEXT", "the dataset's description in the system message",
         .str = &description, .def = "from the dataset's manifest"},
        CLI_OPT_FORCE(&force),
    };
    cli_parse("explain export-finetune",
              "Writes fine-tuning examples for a vision LLM, one JSON object per line in the\n"
              "common chat format ({\"messages\": [system, user, assistant]}): for each image\n"
              "of the run whose cause is known, without a counterfactual and with each\n"
              "method's, the prompts cfx explain --llm sends (the image, or the image and\n"
              "its counterfactual side by side, as a PNG data URI) and as the answer a\n"
              "sentence naming the true cause (\"The original image is over-saturated.\"),\n"
              "as the competency paper's appendix C.\n",
              opts, CLI_LEN(opts), argc, argv);
    cfx_run *r = cfx_run_open(run_dir);
    if (!r)
        return cli_fail(cmd, "%s (give a run folder written by cfx counterfactual)",
                        cfx_last_error());
    int rc = 0;
    if (!r->cause) {
        cfx_run_free(r);
        return cli_fail(cmd,
                        "run '%s' does not know its images' causes, so there is no true "
                        "explanation to export: make the run from cfx competency examples",
                        run_dir);
    }
    char *desc = description ? cfx_strdup(description) : run_description(r);
    int64_t per = (int64_t)r->c * r->h * r->w, lines = 0;
    cfx_file af = {0};
    cfx_status s = desc ? cfx_file_create(&af, out) : CFX_ENOMEM;
    /* The counterfactual that shows the direction of a change (best, else the first method). */
    for (int64_t i = 0; s == CFX_OK && i < r->n; i++) {
        cfx_cause cause;
        if (cfx_cause_parse(r->cause[i], &cause) != CFX_OK || cause == CFX_CAUSE_NONE) continue;
        const float *x = r->images->data + i * per, *ref = NULL;
        for (int m = CFX_RUN_METHODS - 1; m >= 0 && !ref; m--)
            if (r->has[m] && r->results[m * r->n + i].present)
                ref = r->counterfactuals[m]->data + i * per;
        char truth[256];
        cfx_explain_true_sentence(cause, x, ref, r->c, r->h, r->w, truth, sizeof truth);
        for (int k = -1; s == CFX_OK && k < CFX_RUN_BEST; k++) { /* -1: none; best repeats one */
            if (k >= 0 && !(r->has[k] && r->results[k * r->n + i].present)) continue;
            char *m =
                cfx_llm_messages(desc, x, k < 0 ? NULL : r->counterfactuals[k]->data + i * per,
                                 r->c, r->h, r->w, truth);
            if (!m) {
                s = CFX_ENOMEM;
                break;
            }
            fprintf(af.f, "{\"messages\": %s}\n", m);
            cfx_free(m);
            lines++;
        }
    }
    if (s == CFX_OK)
        s = cfx_file_commit(&af);
    else if (af.f)
        cfx_file_abort(&af);
    if (s != CFX_OK)
        rc = cli_fail(cmd, NULL);
    else
        printf("wrote %s (%lld examples)\n", out, (long long)lines);
    cfx_free(desc);
    cfx_run_free(r);
    return rc;
}
