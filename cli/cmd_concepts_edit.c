/* cmd_concepts_edit.c - `cfx concepts edit` (V-CECE's loop on pixels: edit an image concept by
 * concept until the classifier's label flips) and `cfx concepts evaluate` (its success rate,
 * edits against the rule's minimum, and which concepts the flips moved). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const mode_words[] = {"local", "global", "local-global", NULL};
static const cfx_order_mode modes[] = {CFX_ORDER_LOCAL, CFX_ORDER_GLOBAL, CFX_ORDER_LOCAL_GLOBAL};

/* Splits a comma-separated list into owned strings (*n of them); NULL on failure. */
static char **split_list(const char *s, int *n) {
    *n = 0;
    char **v = calloc(strlen(s) + 2, sizeof *v);
    if (!v) return NULL;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) v[(*n)++] = strndup(p, len);
        if (!e) break;
        p = e + 1;
    }
    return v;
}

/* The class list of a dataset folder's manifest.json (a scenes folder); NULL when none. */
static char **manifest_classes(const char *dir, int *n) {
    char path[4200], *text = NULL;
    *n = 0;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (access(path, R_OK) != 0 || cfx_file_read_all(path, &text, NULL) != CFX_OK) return NULL;
    cJSON *m = cJSON_Parse(text);
    cfx_free(text);
    const cJSON *cls = cJSON_GetObjectItem(m, "classes"), *c;
    char **v = cls ? calloc((size_t)cJSON_GetArraySize(cls) + 1, sizeof *v) : NULL;
    if (v) cJSON_ArrayForEach(c, cls) if (cJSON_IsString(c)) v[(*n)++] = strdup(c->valuestring);
    cJSON_Delete(m);
    return v;
}

/* The first label key of the first image of a concepts JSON ("rule" when none is found: the
 * loader then names what is missing). Lives until the program ends. */
static const char *first_label_key(const char *path) {
    static char key[256] = "rule";
    char *text = NULL;
    if (cfx_file_read_all(path, &text, NULL) != CFX_OK) return key;
    cJSON *j = cJSON_Parse(text);
    cfx_free(text);
    const cJSON *im = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "images"), 0);
    const cJSON *l = cJSON_GetObjectItem(im, "labels");
    if (l && l->child && l->child->string) snprintf(key, sizeof key, "%s", l->child->string);
    cJSON_Delete(j);
    return key;
}

static bool is_empty_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return true;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
    closedir(d);
    return empty;
}

static int concepts_edit(int argc, char **argv) {
    const char *cmd = "concepts edit";
    const char *data = NULL, *images = NULL, *labels = NULL, *clf_path = NULL, *clf_cmd = NULL,
               *classes = NULL, *out = NULL, *wordnet = NULL, *split = NULL, *editor = "builtin",
               *clf_llm = NULL, *planner_llm = NULL, *llm_model = NULL, *key_env = NULL;
    long long query = LLONG_MIN, max_steps = 10, threads = 0, limit = 0, votes = 7, retries = 2;
    double temperature = 1, timeout = 0;
    int all = 0, mode = 0, resume = 0, force = 0, json = 0;
    const cli_opt opts[] = {
        {"data", "FILE", "images as JSON with boxes and masks (concepts.json of cfx data scenes)",
         .str = &data, .required = true, .role = CLI_IN},
        {"images", "DIR", "the images: DIR/<file> of each image, else DIR/<id>.png", .str = &images,
         .required = true, .role = CLI_IN},
        {"labels", "KEY",
         "the label key whose classes the counterfactuals change; classifier: label every "
         "image with the classifier first (as V-CECE does)",
         .str = &labels, .required = true},
        {"classifier", "FILE", "an ONNX classifier (one image in, class scores out)",
         .str = &clf_path, .role = CLI_IN},
        {"classifier-cmd", "CMD",
         "a program that prints the label: a shell command with {image} for the image's PNG",
         .str = &clf_cmd},
        {"classes", "LIST", "the classifier's classes, comma-separated, in its output order",
         .str = &classes, .def = "the classes of DIR/manifest.json (--images)"},
        {"classifier-llm", "URL",
         "a vision LLM behind an OpenAI-compatible API (http://host:8080/v1) with V-CECE's "
         "prompt and --llm-votes self-consistency",
         .str = &clf_llm},
        {"editor", "E",
         "builtin (inpainting and pasting from the concept bank), replacer:URL (the web UI's "
         "Replacer extension, POST URL/replacer/replace) or img2img:URL (POST "
         "URL/sdapi/v1/img2img with a mask)",
         .str = &editor, .def = "builtin"},
        {"planner-llm", "URL",
         "local mode: a vision LLM (OpenAI-compatible API) picks each next edit from the image; "
         "the built-in planner when its answer names no remaining edit twice",
         .str = &planner_llm, .def = "the built-in planner"},
        {"llm-model", "NAME", "the model the LLM server should answer with (required with an LLM)",
         .str = &llm_model},
        {"llm-votes", "N", "fresh requests per classification; the majority wins", .i = &votes,
         .lo = 1, .hi = 1000},
        {"llm-temperature", "T", "the LLMs' sampling temperature (votes need it above 0)",
         .num = &temperature, .min = 0, .max = 2},
        {"llm-key-env", "VAR",
         "the environment variable holding the LLM server's API key (sent as a bearer token, "
         "never printed or stored)",
         .str = &key_env, .def = "no key"},
        {"timeout", "S", "seconds for one HTTP request, reply included", .num = &timeout,
         .max = INFINITY, .def = "60 for LLMs, 300 for editors"},
        {"retries", "N", "HTTP attempts after the first on timeouts, connection errors and 5xx",
         .i = &retries, .lo = 0, .hi = 100},
        {"mode", "M", "local, global or local-global: the order of the edits", .pick = &mode,
         .choices = mode_words},
        /* Checked below: a folder that --resume continues is not empty. */
        {"out", "RUN", "the run folder: results.jsonl and steps/<id>/<k>.png", .str = &out,
         .required = true},
        {"query", "ID", "one image by id", .i = &query, .lo = LLONG_MIN + 1, .hi = LLONG_MAX,
         .def = "none"},
        {"all", NULL, "every image", .flag = &all},
        {"split", "NAME", "only the images of this split (their \"split\" in --data)",
         .str = &split, .def = "all"},
        {"limit", "N", "only the first N images of the selection; 0: all", .i = &limit, .lo = 0,
         .hi = INT32_MAX},
        {"max-steps", "N", "edits per image at most", .i = &max_steps, .lo = 1, .hi = 100000},
        {"resume", NULL, "continue a run: keep the images results.jsonl holds", .flag = &resume},
        {"wordnet", "DIR", "WordNet 3.0 database folder", .str = &wordnet,
         .def = "/usr/share/wordnet", .role = CLI_IN},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Edits each image toward its closest counterfactual (the cheapest image of another\n"
              "label), one concept edit a step, and asks the classifier after every step; stops\n"
              "when its label flips, when the edits run out, or at --max-steps. Local mode picks\n"
              "each next edit as the one the classifier is most sensitive to (its label's score\n"
              "drops most when the concept's region is inpainted away); global and local-global\n"
              "order the edits by the class's concept importance. Writes RUN/results.jsonl (one\n"
              "line per image) and every step's image; --resume continues a killed run.\n"
              "With --classifier-llm each label is the majority of --llm-votes answers, recorded\n"
              "per step with its stability; an HTTP editor's or server's fault is recorded for\n"
              "that image and the run goes on.\n",
              opts, CLI_LEN(opts), argc, argv);
    if (all == (query != LLONG_MIN)) cli_usage_error(cmd, "give either --query ID or --all");
    if (!!clf_path + !!clf_cmd + !!clf_llm != 1)
        cli_usage_error(cmd, "give one of --classifier FILE, --classifier-cmd CMD and "
                             "--classifier-llm URL");
    if ((clf_llm || planner_llm) && !llm_model)
        cli_usage_error(cmd, "--classifier-llm and --planner-llm need --llm-model NAME");
    if (planner_llm && modes[mode] != CFX_ORDER_LOCAL)
        cli_usage_error(cmd, "--planner-llm plans local mode: add --mode local");
    const char *editor_url = strchr(editor, ':') ? strchr(editor, ':') + 1 : NULL;
    bool replacer = !strncmp(editor, "replacer:", 9), img2img = !strncmp(editor, "img2img:", 8);
    if (strcmp(editor, "builtin") && !replacer && !img2img)
        cli_usage_error(cmd, "--editor must be one of builtin, replacer:URL, img2img:URL");
    const char *key = NULL;
    if (key_env && (!(key = getenv(key_env)) || !*key))
        return cli_fail(cmd,
                        "the environment variable %s (--llm-key-env) is not set or empty: "
                        "export it with the server's API key",
                        key_env);
    if (resume && force)
        cli_usage_error(cmd, "--resume continues a run, --force replaces it: give one");
    cli_set_threads(threads);
    char results[4200];
    snprintf(results, sizeof results, "%s/results.jsonl", out);
    bool is_run = access(results, F_OK) == 0;
    if (resume && !is_run)
        return cli_fail(cmd, "--resume: '%s' is not a run folder (no results.jsonl)", out);
    if (!resume && !is_empty_dir(out) && !(force && is_run))
        return cli_fail(cmd,
                        force ? "'%s' is not empty and not a run folder; choose another --out"
                              : "'%s' exists and is not empty (--resume continues it, --force "
                                "replaces it)",
                        out);
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        return cli_fail(cmd, "mkdir '%s': %s (does its folder exist?)", out, strerror(errno));
    /* A resumed run must be the same run. */
    char runjson[4200], settings[8192];
    snprintf(runjson, sizeof runjson, "%s/run.json", out);
    snprintf(settings, sizeof settings,
             "{\"mode\": \"%s\", \"labels\": \"%s\", \"editor\": \"%s\", \"max_steps\": %lld}\n",
             mode_words[mode], labels, editor, max_steps);
    if (resume) {
        char *old = NULL;
        if (cfx_file_read_all(runjson, &old, NULL) == CFX_OK && strcmp(old, settings) != 0) {
            cfx_free(old);
            return cli_fail(cmd,
                            "--resume: '%s' is a run of other settings (%s); run again with "
                            "those, or start over with --force",
                            out, runjson);
        }
        cfx_free(old);
    } else {
        cfx_file af;
        if (cfx_file_create(&af, runjson) != CFX_OK) return cli_fail(cmd, NULL);
        fputs(settings, af.f);
        if (cfx_file_commit(&af) != CFX_OK) return cli_fail(cmd, NULL);
    }
    /* The classes. */
    int ncls = 0;
    char **cls = classes ? split_list(classes, &ncls) : manifest_classes(images, &ncls);
    if (ncls < 2)
        return cli_fail(cmd, classes
                                 ? "--classes needs at least two classes"
                                 : "no class list: give --classes, or --images a dataset folder "
                                   "with manifest.json (as cfx data scenes writes)");
    int rc = 0;
    cfx_wordnet *wn = NULL;
    cfx_concepts *c = NULL;
    cfx_concepts_data *d = NULL;
    cfx_image_classifier *clf = NULL;
    cfx_image_editor *ed = NULL;
    cfx_edit_planner *planner = NULL;
    wn = cfx_wordnet_load(wordnet);
    if (wn) c = cfx_concepts_new(wn, NULL);
    bool relabel = strcmp(labels, "classifier") == 0;
    /* With relabelling, any label key does for loading: the first the file has. */
    /* Images with a concept WordNet lacks are recorded with an error by the loop. */
    int64_t skipped = 0;
    if (c)
        d = cfx_concepts_data_load(c, data, relabel ? first_label_key(data) : labels,
                                   CFX_UNKNOWN_SKIP, &skipped);
    if (skipped)
        fprintf(stderr,
                "cfx %s: %lld concepts are not in WordNet; their images are recorded with an "
                "error naming them\n",
                cmd, (long long)skipped);
    if (!d) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    cfx_llm_options llo = {.url = clf_llm,
                           .model = llm_model,
                           .api_key = key,
                           .temperature = temperature,
                           .timeout = timeout,
                           .retries = (int)retries};
    clf = clf_path  ? cfx_image_classifier_onnx(clf_path, (const char *const *)cls, ncls)
          : clf_cmd ? cfx_image_classifier_command(clf_cmd, (const char *const *)cls, ncls, out)
                    : cfx_image_classifier_llm(&llo, (int)votes, (const char *const *)cls, ncls);
    if (!clf) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    cfx_http_editor_options eo = {.timeout = timeout, .retries = (int)retries};
    ed = replacer  ? cfx_image_editor_replacer(editor_url, &eo)
         : img2img ? cfx_image_editor_img2img(editor_url, &eo)
                   : cfx_image_editor_builtin(data, images);
    if (!ed) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    if (planner_llm) {
        llo.url = planner_llm;
        if (!(planner = cfx_edit_planner_llm(&llo, c, clf))) {
            rc = cli_fail(cmd, NULL);
            goto done;
        }
    }
    if (relabel) {
        cfx_concepts_data *nd;
        cfx_progress pr = {cfx_progress_stderr, NULL};
        if (cfx_edit_loop_relabel(d, data, images, clf, &pr, &nd) != CFX_OK) {
            rc = cli_fail(cmd, NULL);
            goto done;
        }
        cfx_concepts_data_free(d);
        d = nd;
    }
    char note[4400];
    snprintf(note, sizeof note,
             "cfx concepts edit: interrupted; the finished images are in %s: run the same "
             "command with --resume to continue",
             results);
    cfx_set_signal_note(note);
    int64_t qid = query;
    cfx_edit_loop_options lo = {.data = d,
                                .annotations = data,
                                .images = images,
                                .classifier = clf,
                                .editor = ed,
                                .planner = planner,
                                .mode = modes[mode],
                                .out = out,
                                .queries = all ? NULL : &qid,
                                .nqueries = all ? 0 : 1,
                                .split = split,
                                .limit = (int32_t)limit,
                                .max_steps = (int)max_steps,
                                .resume = resume,
                                .progress = {cfx_progress_stderr, NULL}};
    cfx_edit_loop_summary sum;
    double t0 = cfx_now();
    if (cfx_edit_loop_run(&lo, &sum) != CFX_OK) {
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    double secs = cfx_now() - t0;
    if (json) {
        printf("{\"out\": ");
        cli_json_str(stdout, out);
        printf(", \"mode\": \"%s\", \"images\": %d, \"done_before\": %d, \"flipped\": %d, "
               "\"errors\": %d, \"seconds\": %.3f}\n",
               mode_words[mode], sum.images, sum.done_before, sum.flipped, sum.failed, secs);
    } else {
        printf("%s: %d images edited (%d kept from before), %d flipped, %d with an error, in "
               "%.1f s; wrote %s\n",
               mode_words[mode], sum.images, sum.done_before, sum.flipped, sum.failed, secs,
               results);
    }
    if (sum.failed)
        fprintf(stderr, "cfx %s: %d images have an error; results.jsonl says which and why\n", cmd,
                sum.failed);
done:
    for (int k = 0; k < ncls; k++) free(cls[k]);
    free(cls);
    cfx_edit_planner_free(planner);
    cfx_image_editor_free(ed);
    cfx_image_classifier_free(clf);
    cfx_concepts_data_free(d);
    cfx_concepts_free(c);
    cfx_wordnet_free(wn);
    return rc;
}

/* ------------------------------------------------------------------- evaluate --- */

typedef struct {
    char name[128];
    int add, remove, flip; /* in flipped loops: brought in, taken out, in the flipping step */
} concept_row;

typedef struct {
    char mode[32], path[4096];
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

static int concepts_evaluate(int argc, char **argv) {
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
            const cJSON *v, *st;
            cJSON_ArrayForEach(v, cJSON_GetObjectItem(j, "votes")) {
                if (cJSON_IsNumber(st = cJSON_GetObjectItem(v, "stability")))
                    R->stability += st->valuedouble, R->nstab++;
            }
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
                       "\"agrees_flipped\": %d",
                       R->mode, R->images, R->flipped,
                       R->images ? (double)R->flipped / R->images : 0,
                       R->flipped ? R->edits / R->flipped : 0,
                       R->with_min ? R->min_edits / R->with_min : 0,
                       R->with_min ? R->excess / R->with_min : 0, R->errors, R->cap, R->exhausted,
                       R->agree, R->agree_flipped);
                if (R->nstab) printf(", \"mean_stability\": %.4f", R->stability / R->nstab);
                printf("}");
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
            for (int r = 0; r < runs.n; r++)
                if (rr[r].nstab)
                    printf("%s: mean stability of the LLM's labels %.3f over %d labels\n",
                           rr[r].path, rr[r].stability / rr[r].nstab, rr[r].nstab);
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

int cmd_concepts_loop(int argc, char **argv) {
    return strcmp(argv[0], "edit") == 0 ? concepts_edit(argc, argv) : concepts_evaluate(argc, argv);
}
