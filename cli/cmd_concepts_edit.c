/* cmd_concepts_edit.c - `cfx concepts edit` (V-CECE's loop on pixels: edit an image concept by
 * concept until the classifier's label flips); `cfx concepts evaluate` is
 * cmd_concepts_evaluate.c. */
#include "cli.h"
#include "mpi.h"

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
static const char *const assignment_words[] = {"optimal", "reference", NULL};

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

/* Checks the run folder out (results: its results.jsonl) for a new run or --resume, makes it,
 * and writes run.json (settings), or checks that a resumed run has those settings. */
static int make_run(const char *cmd, const char *out, const char *results, int resume, int force,
                    const char *settings) {
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
    char runjson[4200];
    snprintf(runjson, sizeof runjson, "%s/run.json", out);
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
    return 0;
}

/* Under mpirun the images of the run are dealt round-robin (image i of the run to rank
 * i % ranks): rank 0 writes every line in order as it comes, its own as it makes them, so the
 * deal keeps the ranks' shares of any stretch of the run equal and rank 0 seldom waits; the
 * others post their lines (cli_mpi_post) and run ahead. A message is 'L' and a line, or 'E' and
 * the error that stopped its rank. */
typedef struct {
    cfx_edit_loop_shard s;
    int rank, ranks;
    int64_t ran; /* images this rank ran */
} edit_shard;
enum { TAG_LINE = 11 };

static int mine(void *user, int32_t i) {
    const edit_shard *e = user;
    return i % e->ranks == e->rank;
}

static cfx_status take(void *user, int32_t i, char **line) {
    const edit_shard *e = user;
    char *msg = NULL;
    size_t n = 0;
    int from = (int)(i % e->ranks);
    cfx_status s = cli_mpi_recv_any(from, TAG_LINE, &msg, &n);
    if (s != CFX_OK) return s;
    if (n < 1 || msg[0] != 'L') {
        s = cfx_set_error(CFX_EIO, "%s", n > 1 ? msg + 1 : "an empty message");
        free(msg);
        return s;
    }
    memmove(msg, msg + 1, n); /* the line and its NUL */
    *line = msg;
    return CFX_OK;
}

static cfx_status give(void *user, int32_t i, const char *line) {
    edit_shard *e = user;
    size_t n = strlen(line);
    char *msg = malloc(n + 1);
    if (!msg) return CFX_ENOMEM;
    msg[0] = 'L';
    memcpy(msg + 1, line, n);
    cfx_status s = cli_mpi_post(0, TAG_LINE, msg, n + 1);
    free(msg);
    e->ran++;
    return s;
}

/* Whether the ranks failed to load or differ in the data or the run so far (rank 0 or the
 * lowest failing rank says why). Collective. */
static bool mpi_agree(const char *cmd, const char *data, const char *results, int resume) {
    if (cli_mpi_size() == 1) return false;
    if (cli_mpi_first_failure(false) >= 0) return true;
    uint64_t h = CFX_FNV1A_INIT;
    char *bytes = NULL;
    size_t size = 0;
    if (cfx_file_read_all(data, &bytes, &size) == CFX_OK) h = cfx_fnv1a(h, bytes, size);
    cfx_free(bytes), bytes = NULL;
    if (resume && cfx_file_read_all(results, &bytes, &size) == CFX_OK)
        h = cfx_fnv1a(h, bytes, size);
    cfx_free(bytes);
    return !cli_mpi_same(cmd, resume ? "data or results.jsonl" : "data", h);
}

/* A failure during the loop under mpirun: rank 0 says why and ends every rank; another rank
 * sends its error to rank 0, which says it (naming the rank and its images) and ends all. */
static _Noreturn void mpi_failed(const char *cmd, edit_shard *e, const char *results) {
    char msg[1400];
    if (e->rank == 0) {
        cli_fail(cmd, NULL);
        fprintf(stderr,
                "cfx %s: the finished images are in %s: run the same command with --resume to "
                "continue\n",
                cmd, results);
        cli_mpi_abort(1);
    }
    snprintf(msg, sizeof msg,
             "Erank %d of %d (images %d, %d, ... of the run, every %d-th, %lld of them done): %s",
             e->rank, e->ranks, e->rank, e->rank + e->ranks, e->ranks, (long long)e->ran,
             cfx_last_error());
    cli_mpi_post(0, TAG_LINE, msg, strlen(msg));
    cli_mpi_flush(); /* rank 0 takes it, says it and ends every rank */
    cli_mpi_abort(1);
}

static int concepts_edit(int argc, char **argv) {
    const char *cmd = "concepts edit";
    const char *data = NULL, *images = NULL, *labels = NULL, *clf_path = NULL, *clf_cmd = NULL,
               *classes = NULL, *out = NULL, *wordnet = NULL, *split = NULL, *editor = "builtin",
               *clf_llm = NULL, *planner_llm = NULL, *llm_model = NULL, *key_env = NULL;
    long long query = LLONG_MIN, max_steps = 10, threads = 0, limit = 0, votes = 7, retries = 2;
    double temperature = 1, timeout = 0;
    int all = 0, mode = 0, resume = 0, force = 0, json = 0, assignment = 0, away = 0;
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
        {"assignment", "A",
         "optimal (the cheapest edits) or reference (the released V-CECE code's matching)",
         .pick = &assignment, .choices = assignment_words},
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
        {"away", NULL,
         "when the classifier's label is another class of --labels and the closest "
         "counterfactual has it, aim at the closest with neither class",
         .flag = &away},
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
    /* The run's settings (a resumed run must have the same): what decides its images. */
    char *settings = NULL;
    {
        cJSON *j = cJSON_CreateObject(), *k = cJSON_CreateObject();
        char *adata = cli_absolute(data), *aimages = cli_absolute(images),
             *aclf = clf_path ? cli_absolute(clf_path) : NULL;
        cJSON_AddStringToObject(j, "mode", mode_words[mode]);
        cJSON_AddStringToObject(j, "labels", labels);
        cJSON_AddStringToObject(j, "editor", editor);
        cJSON_AddNumberToObject(j, "max_steps", (double)max_steps);
        cJSON_AddStringToObject(j, "assignment", assignment_words[assignment]);
        cJSON_AddBoolToObject(j, "away", away);
        cJSON_AddStringToObject(j, "data", adata);
        cJSON_AddStringToObject(j, "images", aimages);
        if (aclf) cJSON_AddStringToObject(k, "onnx", aclf);
        if (clf_cmd) cJSON_AddStringToObject(k, "command", clf_cmd);
        if (clf_llm) {
            cJSON_AddStringToObject(k, "llm", clf_llm);
            cJSON_AddStringToObject(k, "model", llm_model);
            cJSON_AddNumberToObject(k, "votes", (double)votes);
        }
        cJSON_AddItemToObject(j, "classifier", k);
        if (planner_llm) {
            cJSON *pl = cJSON_AddObjectToObject(j, "planner");
            cJSON_AddStringToObject(pl, "llm", planner_llm);
            cJSON_AddStringToObject(pl, "model", llm_model);
        } else {
            cJSON_AddStringToObject(j, "planner", "built-in");
        }
        char *text = cJSON_Print(j);
        if (text) settings = malloc(strlen(text) + 2);
        if (settings) sprintf(settings, "%s\n", text);
        cJSON_free(text);
        cJSON_Delete(j);
        free(adata), free(aimages), free(aclf);
        if (!settings) return cli_fail(cmd, "out of memory");
    }
    /* The classes. */
    int ncls = 0;
    char **cls = classes ? split_list(classes, &ncls) : manifest_classes(images, &ncls);
    if (ncls < 2) {
        free(settings);
        return cli_fail(cmd, classes
                                 ? "--classes needs at least two classes"
                                 : "no class list: give --classes, or --images a dataset folder "
                                   "with manifest.json (as cfx data scenes writes)");
    }
    int rc = 0;
    bool agreed = cli_mpi_size() == 1; /* under mpirun: whether the ranks have agreed to start */
    cfx_wordnet *wn = NULL;
    cfx_concepts *c = NULL;
    cfx_concepts_data *d = NULL;
    cfx_image_classifier *clf = NULL;
    cfx_image_editor *ed = NULL;
    cfx_edit_planner *planner = NULL;
    wn = cfx_wordnet_load(wordnet);
    if (wn)
        c = cfx_concepts_new(wn,
                             &(cfx_cost_options){.assignment = assignment ? CFX_ASSIGN_REFERENCE
                                                                          : CFX_ASSIGN_OPTIMAL});
    bool relabel = strcmp(labels, "classifier") == 0;
    /* With relabelling, any label key does for loading: the first the file has. */
    /* Images with a concept WordNet lacks are recorded with an error by the loop. */
    int64_t skipped = 0;
    if (c)
        d = cfx_concepts_data_load(c, data, relabel ? first_label_key(data) : labels,
                                   CFX_UNKNOWN_SKIP, &skipped);
    if (skipped && cli_mpi_rank() == 0)
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
    /* The run folder, once every input has loaded: a bad input leaves nothing behind. Under
     * mpirun rank 0 alone checks and makes it; the others learn how it went. */
    int32_t made = cli_mpi_rank() == 0 ? make_run(cmd, out, results, resume, force, settings) : 0;
    if (cli_mpi_size() > 1 && cli_mpi_broadcast(&made, sizeof made) != CFX_OK) made = 1;
    if (made) {
        rc = 1;
        goto done;
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
    /* Under mpirun: every rank has loaded, and all agree on the data and the run so far. */
    agreed = true;
    if (mpi_agree(cmd, data, results, resume)) {
        rc = 1;
        goto done;
    }
    edit_shard shard = {
        {mine, take, give, cli_mpi_rank() == 0, &shard}, cli_mpi_rank(), cli_mpi_size()};
    char note[4400];
    snprintf(note, sizeof note,
             "cfx concepts edit: interrupted; the finished images are in %s: run the same "
             "command with --resume to continue",
             results);
    if (shard.rank == 0) cfx_set_signal_note(note);
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
                                .away = away,
                                .progress = {shard.rank ? NULL : cfx_progress_stderr, NULL},
                                .shard = shard.ranks > 1 ? &shard.s : NULL};
    cfx_edit_loop_summary sum;
    double t0 = cfx_now(), c0 = cli_mpi_cpu();
    if (cfx_edit_loop_run(&lo, &sum) != CFX_OK) {
        if (shard.ranks == 1) {
            rc = cli_fail(cmd, NULL);
            goto done;
        }
        mpi_failed(cmd, &shard, results); /* does not return */
    }
    double secs = cfx_now() - t0;
    if (shard.ranks > 1) {
        cli_mpi_stats(cmd, shard.rank ? shard.ran : (sum.images + shard.ranks - 1) / shard.ranks,
                      secs, cli_mpi_cpu() - c0);
        if (cli_mpi_flush() != CFX_OK) mpi_failed(cmd, &shard, results);
        if (shard.rank > 0) goto done; /* rank 0 reports */
    }
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
    if (!agreed) cli_mpi_first_failure(true); /* the other ranks stop too */
    for (int k = 0; k < ncls; k++) free(cls[k]);
    free(cls);
    cfx_edit_planner_free(planner);
    cfx_image_editor_free(ed);
    cfx_image_classifier_free(clf);
    cfx_concepts_data_free(d);
    cfx_concepts_free(c);
    cfx_wordnet_free(wn);
    free(settings);
    return rc;
}

int cmd_concepts_loop(int argc, char **argv) {
    return strcmp(argv[0], "edit") == 0 ? concepts_edit(argc, argv)
                                        : cmd_concepts_evaluate(argc, argv);
}
