/* cmd_concepts.c - `cfx concepts cost|nearest|global|order` (edit and evaluate:
 * cmd_concepts_edit.c): semantic edits over WordNet (V-CECE).
 */
#include "cli.h"
#include "mpi.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *data, *labels, *class_name, *out, *wordnet, *a, *b;
    long long query, top, max_sub, threads;
    int all, json, unknown_skip, empty_skip, cost_model, assignment, mode, force;
    cfx_cost_options cost;
} opts;

#define NO_QUERY LLONG_MIN /* --query takes every other whole number */

static const char *const cost_words[] = {"cece", "graph", NULL};
static const cfx_cost_model cost_models[] = {CFX_COST_CECE, CFX_COST_GRAPH};
static const char *const assignment_words[] = {"optimal", "reference", NULL};
static const cfx_assignment assignments[] = {CFX_ASSIGN_OPTIMAL, CFX_ASSIGN_REFERENCE};
static const char *const mode_words[] = {"local", "global", "local-global", NULL};
static const cfx_order_mode modes[] = {CFX_ORDER_LOCAL, CFX_ORDER_GLOBAL, CFX_ORDER_LOCAL_GLOBAL};
static const char *const unknown_words[] = {"error", "skip", NULL};
static const char *const empty_words[] = {"keep", "skip", NULL};

/* The options of `cfx concepts <action>`: the entries are named once, and each action lists
 * those it takes. */
static void parse(const char *action, int argc, char **argv, opts *o) {
    char path[64];
    snprintf(path, sizeof path, "concepts %s", action);
    *o = (opts){.query = NO_QUERY};
    const cli_opt a = {"A",
                       NULL,
                       "a comma-separated concept list, e.g. chair.n.01,dog.n.01 or "
                       "chairs,dog",
                       .str = &o->a,
                       .required = true,
                       .positional = true},
                  b = {"B",
                       NULL,
                       "the list to edit A into",
                       .str = &o->b,
                       .required = true,
                       .positional = true},
                  data = {"data",
                          "FILE",
                          "images as JSON: {\"images\": [{\"id\", \"objects\", "
                          "\"labels\"}]}",
                          .str = &o->data,
                          .required = true,
                          .role = CLI_IN},
                  labels = {"labels", "KEY",
                            "which classifier's label to use (a key of each "
                            "image's \"labels\")",
                            .str = &o->labels, .required = true},
                  query = {"query",
                           "ID",
                           "one image by id",
                           .i = &o->query,
                           .lo = LLONG_MIN + 1,
                           .hi = LLONG_MAX,
                           .def = "none",
                           .required = strcmp(action, "order") == 0},
                  all = {"all", NULL, "every image", .flag = &o->all},
                  class_name = {"class", "C", "the class to explain", .str = &o->class_name,
                                .required = true},
                  mode = {"mode", "M", "the order of the edits", .pick = &o->mode,
                          .choices = mode_words},
                  out = {"out", "FILE", "write one JSON record per query to FILE (JSON Lines)",
                         .str = &o->out, .role = CLI_OUT},
                  cost = {"cost", "MODEL",
                          "cece (the reference code's set costs) or graph "
                          "(WordNet path lengths)",
                          .pick = &o->cost_model, .choices = cost_words},
                  assignment = {"assignment", "A",
                                "optimal (the least cost) or reference (the released V-CECE "
                                "code's matching, which can cost more)",
                                .pick = &o->assignment, .choices = assignment_words},
                  max_sub = {"max-sub",
                             "N",
                             "substitutions dearer than N are not actionable; "
                             "0: no cap",
                             .i = &o->max_sub,
                             .lo = 0,
                             .hi = INT32_MAX},
                  unknown = {"unknown", "P", "error or skip: what to do with unknown concepts",
                             .pick = &o->unknown_skip, .choices = unknown_words},
                  empty = {"empty", "P",
                           "keep or skip: images without concepts; two such images "
                           "with different labels are each other's "
                           "counterfactual at cost 0",
                           .pick = &o->empty_skip, .choices = empty_words},
                  top = {"top",        "N",     "rows of the importance table; 0: all non-zero",
                         .i = &o->top, .lo = 0, .hi = INT32_MAX},
                  wordnet = {"wordnet",
                             "DIR",
                             "WordNet 3.0 database folder",
                             .str = &o->wordnet,
                             .def = "/usr/share/wordnet",
                             .role = CLI_IN},
                  threads = CLI_OPT_THREADS(&o->threads), json = CLI_OPT_JSON(&o->json),
                  force = CLI_OPT_FORCE(&o->force);
    if (strcmp(action, "cost") == 0) {
        const cli_opt t[] = {a, b, cost, assignment, max_sub, unknown, wordnet, json};
        cli_parse(path,
                  "Prints the cheapest edits (insertions, deletions, substitutions) from the "
                  "concepts A\nto the concepts B and their cost (--assignment reference: the "
                  "released V-CECE\ncode's edits).\n",
                  t, CLI_LEN(t), argc, argv);
    } else if (strcmp(action, "nearest") == 0) {
        const cli_opt t[] = {data,    labels,  query, all,     out,     cost,  assignment,
                             max_sub, unknown, empty, wordnet, threads, force, json};
        cli_parse(path,
                  "Finds the closest counterfactual of an image (--query) or of every image "
                  "(--all): the\ncheapest image with another label, and the edits to it.\n",
                  t, CLI_LEN(t), argc, argv);
        if (o->all == (o->query != NO_QUERY))
            cli_usage_error(path, "give either --query ID or --all");
    } else if (strcmp(action, "global") == 0) {
        const cli_opt t[] = {data,    labels,  class_name, top,     cost,    assignment,
                             max_sub, unknown, empty,      wordnet, threads, json};
        cli_parse(path,
                  "Ranks the concepts by their importance for the images of --class: over each "
                  "image's\nedits to its closest counterfactual, the times a concept is "
                  "brought in minus the\ntimes it is taken out.\n",
                  t, CLI_LEN(t), argc, argv);
    } else {
        const cli_opt t[] = {data,    labels,  query, mode,    cost,    assignment,
                             max_sub, unknown, empty, wordnet, threads, json};
        cli_parse(path,
                  "Lists the edits of --query to its closest counterfactual in the order of "
                  "--mode: local\n(this image's edits, deletions first), global (the "
                  "class's edits by importance,\nthose this image allows) or local-global "
                  "(this image's edits by the class's importance).\n",
                  t, CLI_LEN(t), argc, argv);
    }
    o->cost = (cfx_cost_options){.model = cost_models[o->cost_model],
                                 .max_sub = o->max_sub,
                                 .assignment = assignments[o->assignment]};
    cli_set_threads(o->threads);
}

/* Loads WordNet and the vocabulary; the caller frees both. */
static int open_vocab(const opts *o, cfx_wordnet **wn, cfx_concepts **c) {
    *wn = cfx_wordnet_load(o->wordnet);
    if (!*wn) return cli_fail("concepts", NULL);
    *c = cfx_concepts_new(*wn, &o->cost);
    if (!*c) {
        cfx_wordnet_free(*wn);
        return cli_fail("concepts", NULL);
    }
    return 0;
}

/* Splits a comma-separated list into concept ids. */
static int parse_list(cfx_concepts *c, const char *list, int unknown_skip, int32_t **ids,
                      int32_t *n, int64_t *skipped) {
    size_t len = strlen(list);
    char *copy = malloc(len + 1);
    *ids = malloc((len / 2 + 2) * sizeof **ids);
    *n = 0;
    if (!copy || !*ids) {
        free(copy);
        return cli_fail("concepts cost", "out of memory");
    }
    memcpy(copy, list, len + 1);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        cfx_status st = cfx_concepts_add(c, tok, &(*ids)[*n]);
        if (st == CFX_ENOTFOUND && unknown_skip) {
            (*skipped)++;
            continue;
        }
        if (st != CFX_OK) {
            free(copy);
            return cli_fail("concepts cost", NULL);
        }
        (*n)++;
    }
    free(copy);
    return 0;
}

/* Writes the edits as JSON fields: "insertions": [...], "deletions": [...], "substitutions":
 * [[from, to], ...], with concepts as words. */
static void json_edits(FILE *f, const cfx_concepts *c, const cfx_edit_set *es) {
    static const char *field[3] = {"insertions", "deletions", "substitutions"};
    static const cfx_edit_kind kind[3] = {CFX_EDIT_INSERT, CFX_EDIT_DELETE, CFX_EDIT_SUBSTITUTE};
    for (int k = 0; k < 3; k++) {
        fprintf(f, ", \"%s\": [", field[k]);
        int first = 1;
        for (int32_t i = 0; i < es->n; i++) {
            const cfx_edit *e = &es->edits[i];
            if (e->kind != kind[k]) continue;
            fputs(first ? "" : ", ", f);
            first = 0;
            if (e->kind == CFX_EDIT_SUBSTITUTE) {
                fputc('[', f);
                cli_json_str(f, cfx_concepts_word(c, e->from));
                fputs(", ", f);
                cli_json_str(f, cfx_concepts_word(c, e->to));
                fputc(']', f);
            } else {
                cli_json_str(f, cfx_concepts_word(c, e->from >= 0 ? e->from : e->to));
            }
        }
        fputc(']', f);
    }
}

/* One edit for people: "delete chair.n.01 (11)". */
static void print_edit(FILE *f, const cfx_concepts *c, const cfx_edit *e) {
    if (e->kind == CFX_EDIT_INSERT)
        fprintf(f, "  insert     %s (%lld)\n", cfx_concepts_name(c, e->to), (long long)e->cost);
    else if (e->kind == CFX_EDIT_DELETE)
        fprintf(f, "  delete     %s (%lld)\n", cfx_concepts_name(c, e->from), (long long)e->cost);
    else
        fprintf(f, "  substitute %s -> %s (%lld)\n", cfx_concepts_name(c, e->from),
                cfx_concepts_name(c, e->to), (long long)e->cost);
}

static int run_cost(const opts *o) {
    cfx_wordnet *wn;
    cfx_concepts *c;
    if (open_vocab(o, &wn, &c)) return 1;
    int32_t *a = NULL, *b = NULL, na = 0, nb = 0;
    int64_t skipped = 0;
    int rc = parse_list(c, o->a, o->unknown_skip, &a, &na, &skipped);
    if (!rc) rc = parse_list(c, o->b, o->unknown_skip, &b, &nb, &skipped);
    cfx_edit_set es = {0};
    if (!rc && cfx_concepts_edits(c, a, na, b, nb, &es) != CFX_OK)
        rc = cli_fail_status("concepts cost", "edits");
    if (!rc) {
        if (skipped)
            fprintf(stderr, "cfx concepts: skipped %lld unknown concepts\n", (long long)skipped);
        if (o->json) {
            printf("{\"cost\": %lld", (long long)es.cost);
            json_edits(stdout, c, &es);
            printf(", \"skipped\": %lld}\n", (long long)skipped);
        } else {
            printf("cost %lld (%d edits)\n", (long long)es.cost, es.n);
            for (int32_t i = 0; i < es.n; i++) print_edit(stdout, c, &es.edits[i]);
        }
    }
    cfx_edit_set_deinit(&es);
    free(a);
    free(b);
    cfx_concepts_free(c);
    cfx_wordnet_free(wn);
    return rc;
}

static void close_data(cfx_wordnet *wn, cfx_concepts *c, cfx_concepts_data *d) {
    cfx_concepts_data_free(d);
    cfx_concepts_free(c);
    cfx_wordnet_free(wn);
}

/* Opens the vocabulary and the dataset, reporting skipped and empty images on stderr. */
static int open_data(const opts *o, const char *what, cfx_wordnet **wn, cfx_concepts **c,
                     cfx_concepts_data **d) {
    if (open_vocab(o, wn, c)) return 1;
    int64_t skipped = 0;
    *d = cfx_concepts_data_load(*c, o->data, o->labels,
                                o->unknown_skip ? CFX_UNKNOWN_SKIP : CFX_UNKNOWN_ERROR, &skipped);
    if (!*d) {
        cfx_concepts_free(*c);
        cfx_wordnet_free(*wn);
        return cli_fail(what, NULL);
    }
    const bool quiet = cli_mpi_rank() > 0; /* under mpirun rank 0 alone notes */
    if (skipped && !quiet)
        fprintf(stderr, "cfx %s: skipped %lld unknown concepts\n", what, (long long)skipped);
    int32_t empty = cfx_concepts_data_empty(*d), n = cfx_concepts_data_count(*d);
    if (empty && o->empty_skip) {
        /* A copy without the images that have no concepts. */
        cfx_concepts_data *kept = cfx_concepts_data_new(*c);
        cfx_status st = kept ? CFX_OK : CFX_ENOMEM;
        for (int32_t i = 0; i < n && st == CFX_OK; i++) {
            int32_t k;
            const int32_t *im = cfx_concepts_data_image(*d, i, &k);
            if (k > 0)
                st = cfx_concepts_data_add(kept, cfx_concepts_data_id(*d, i), im, k,
                                           cfx_concepts_data_label(*d, i));
        }
        cfx_concepts_data_free(*d);
        *d = kept;
        if (st != CFX_OK) {
            close_data(*wn, *c, *d);
            return cli_fail(what, NULL);
        }
        if (!quiet)
            fprintf(stderr, "cfx %s: skipped %d of %d images that have no concepts\n", what, empty,
                    n);
    } else if (empty && !quiet) {
        fprintf(stderr,
                "cfx %s: note: %d of %d images have no concepts (edits to or from them are pure "
                "insertions or deletions; two of them with different labels cost 0; --empty "
                "skip leaves them out)\n",
                what, empty, n);
    }
    return 0;
}

static int find_query(const cfx_concepts_data *d, const opts *o, const char *what, int32_t *q) {
    *q = cfx_concepts_data_find(d, o->query);
    if (*q < 0)
        return cli_fail(what, "no image with id %lld in the data%s", (long long)o->query,
                        o->empty_skip ? " (or it has no concepts and --empty skip left it out)"
                                      : "");
    return 0;
}

/* Under mpirun (cfx-mpi) the queries are shared by estimated cost: a query's search weighs its
 * candidates (images with another label) against its concepts, so each gets
 * candidates * (concepts + 1) (cli_mpi_assign). Each rank searches its queries; rank 0 gathers
 * the results, as one message per rank (this header and its results in query order), computes
 * the edits and writes what one process writes. */
typedef struct {
    int32_t status;
    int64_t solved;
    char message[500];
} nearest_header;

/* A fingerprint of the loaded data (ids, labels, concepts), which every rank must share. */
static uint64_t data_fingerprint(const cfx_concepts_data *d) {
    uint64_t h = CFX_FNV1A_INIT;
    for (int32_t i = 0, n = cfx_concepts_data_count(d); i < n; i++) {
        int64_t id = cfx_concepts_data_id(d, i);
        int32_t k;
        const int32_t *im = cfx_concepts_data_image(d, i, &k);
        const char *label = cfx_concepts_data_label(d, i);
        h = cfx_fnv1a(h, &id, sizeof id);
        h = cfx_fnv1a(h, label, strlen(label) + 1);
        h = cfx_fnv1a(h, &k, sizeof k);
        h = cfx_fnv1a(h, im, (size_t)k * sizeof *im);
    }
    return h;
}

static const cfx_concepts_data *label_data;
static int by_label(const void *a, const void *b) {
    return strcmp(cfx_concepts_data_label(label_data, *(const int32_t *)a),
                  cfx_concepts_data_label(label_data, *(const int32_t *)b));
}

/* Each query's estimated cost (see above); false when out of memory. */
static bool query_costs(const cfx_concepts_data *d, const int32_t *q, int32_t nq, double *cost) {
    int32_t n = cfx_concepts_data_count(d);
    int32_t *idx = malloc(((size_t)n + 1) * sizeof *idx), *same = malloc(((size_t)n + 1) * 4);
    if (!idx || !same) {
        free(idx), free(same);
        return false;
    }
    for (int32_t i = 0; i < n; i++) idx[i] = i;
    label_data = d;
    qsort(idx, (size_t)n, sizeof *idx, by_label);
    for (int32_t a = 0, b; a < n; a = b) { /* runs of one label */
        for (b = a + 1; b < n && !by_label(&idx[a], &idx[b]);) b++;
        for (int32_t k = a; k < b; k++) same[idx[k]] = b - a;
    }
    for (int32_t i = 0; i < nq; i++) {
        int32_t k;
        cfx_concepts_data_image(d, q[i], &k);
        cost[i] = (double)(n - same[q[i]]) * (double)(k + 1);
    }
    free(idx), free(same);
    return true;
}

/* The search of queries q[0..nq) shared among the ranks: res in query order and *solved on rank
 * 0; on every rank, nonzero after a failure, which the failing rank (or rank 0, for another
 * rank's) has reported. */
static int nearest_sharded(const cfx_concepts_data *d, const int32_t *q, int32_t nq,
                           const cfx_progress *pr, cfx_nearest *res, int64_t *solved) {
    const char *what = "concepts nearest";
    const int rank = cli_mpi_rank(), ranks = cli_mpi_size();
    int *owner = malloc(((size_t)nq + 1) * sizeof *owner);
    double *cost = malloc(((size_t)nq + 1) * sizeof *cost);
    int32_t *mine = malloc(((size_t)nq + 1) * sizeof *mine), m = 0;
    size_t bytes = sizeof(nearest_header) + ((size_t)nq + 1) * sizeof(cfx_nearest);
    char *msg = malloc(bytes), *all = NULL;
    bool ok = owner && cost && mine && msg && query_costs(d, q, nq, cost);
    if (cli_mpi_first_failure(!ok) >= 0) {
        free(owner), free(cost), free(mine), free(msg);
        return ok ? 1 : cli_fail(what, "out of memory");
    }
    cli_mpi_assign(cost, nq, ranks, owner);
    for (int32_t i = 0; i < nq; i++)
        if (owner[i] == rank) mine[m++] = q[i];
    nearest_header h = {0};
    cfx_nearest *out = (cfx_nearest *)(msg + sizeof h);
    double t0 = cfx_now(), c0 = cli_mpi_cpu();
    cfx_nearest_options no = {.progress = rank ? NULL : pr, .solved = &h.solved};
    if ((h.status = cfx_concepts_nearest(d, mine, m, &no, out)) != CFX_OK)
        snprintf(h.message, sizeof h.message, "%s", cfx_last_error());
    double work = cfx_now() - t0, cpu = cli_mpi_cpu() - c0;
    memcpy(msg, &h, sizeof h);
    size_t total = 0;
    cfx_status s = cli_mpi_gather(msg, sizeof h + (size_t)m * sizeof *out, &all, &total);
    int rc = s == CFX_OK ? 0 : cli_fail(what, NULL);
    /* Rank 0 takes each rank's results back to the queries' order. */
    for (int r = 0, at = 0; rank == 0 && !rc && r < ranks; r++) {
        memcpy(&h, all + at, sizeof h);
        const cfx_nearest *got = (const cfx_nearest *)(all + at + sizeof h);
        int32_t k = 0;
        for (int32_t i = 0; i < nq; i++)
            if (owner[i] == r) res[i] = got[k++];
        at += (int)(sizeof h + (size_t)k * sizeof *got);
        if (h.status != CFX_OK) {
            char ids[200] = "";
            int len = 0, shown = 0;
            for (int32_t i = 0; i < nq && len < 150; i++)
                if (owner[i] == r && shown++ < 8)
                    len += snprintf(ids + len, sizeof ids - (size_t)len, "%s%lld", len ? ", " : "",
                                    (long long)cfx_concepts_data_id(d, q[i]));
            h.message[sizeof h.message - 1] = '\0';
            rc = ranks > 1 ? cli_fail(what, "rank %d of %d (%d queries: images %s%s): %s", r, ranks,
                                      k, ids, k > shown ? ", ..." : "", h.message)
                           : cli_fail(what, "search: %s", h.message);
        }
        *solved += h.solved;
    }
    cli_mpi_stats(what, m, work, cpu);
    free(all);
    free(owner), free(cost), free(mine), free(msg);
    /* Rank 0 says whether it wrote; the others end with its code. */
    int32_t code = rank == 0 ? rc : 0;
    if (ranks > 1 && cli_mpi_broadcast(&code, sizeof code) != CFX_OK) code = 1;
    return code;
}

static int run_nearest(const opts *o) {
    const char *what = "concepts nearest";
    cfx_wordnet *wn;
    cfx_concepts *c;
    cfx_concepts_data *d;
    const int rank = cli_mpi_rank(), ranks = cli_mpi_size();
    if (open_data(o, what, &wn, &c, &d)) {
        cli_mpi_first_failure(true); /* the other ranks stop too */
        return 1;
    }
    int32_t n = cfx_concepts_data_count(d), nq = 0, *q = malloc(((size_t)n + 1) * sizeof *q);
    cfx_nearest *res = malloc(((size_t)n + 1) * sizeof *res);
    int rc = 0;
    if (!q || !res) rc = cli_fail(what, "out of memory");
    if (!rc && o->all)
        for (int32_t i = 0; i < n; i++) q[nq++] = i;
    else if (!rc && !(rc = find_query(d, o, what, &q[0])))
        nq = 1;
    /* Under mpirun the ranks agree that all loaded the same data before any search. */
    if (cli_mpi_first_failure(rc != 0) >= 0 ||
        (ranks > 1 && !cli_mpi_same(what, "concept data", data_fingerprint(d)))) {
        free(q), free(res);
        close_data(wn, c, d);
        return 1;
    }
    /* Records go to a temporary renamed into place only when all are written (cfx_file); it is
     * opened before the search so a bad path fails at once. Rank 0 alone writes. */
    cfx_file af = {0};
    FILE *f = NULL;
    if (!rc && o->out && rank == 0) {
        if (cfx_file_create(&af, o->out) == CFX_OK)
            f = af.f;
        else
            rc = cli_fail(what, "%s", cfx_last_error());
    }
    if (ranks > 1) {
        int32_t code = rc;
        if (cli_mpi_broadcast(&code, sizeof code) != CFX_OK) code = 1;
        rc = code;
    }
    double t0 = cfx_now();
    int64_t solved = 0;
    cfx_progress pr = {cfx_progress_stderr, NULL};
    if (!rc) rc = nearest_sharded(d, q, nq, o->all ? &pr : NULL, res, &solved);
    double secs = cfx_now() - t0;
    if (rank > 0) {
        free(q), free(res);
        close_data(wn, c, d);
        return rc;
    }
    int64_t total = 0;
    int32_t none = 0;
    for (int32_t i = 0; i < nq && !rc; i++) {
        const cfx_nearest *r = &res[i];
        int32_t na, nb = 0;
        const int32_t *a = cfx_concepts_data_listed(d, r->query, &na), *b = NULL;
        if (r->target >= 0) b = cfx_concepts_data_listed(d, r->target, &nb);
        cfx_edit_set es = {0};
        if (r->target >= 0 && cfx_concepts_edits(c, a, na, b, nb, &es) != CFX_OK) {
            rc = cli_fail_status(what, "edits");
            break;
        }
        if (r->target < 0)
            none++;
        else
            total += r->cost;
        if (f) {
            fprintf(f,
                    "{\"query\": %lld, \"label\": ", (long long)cfx_concepts_data_id(d, r->query));
            cli_json_str(f, cfx_concepts_data_label(d, r->query));
            if (r->target >= 0) {
                fprintf(f, ", \"target\": %lld, \"target_label\": ",
                        (long long)cfx_concepts_data_id(d, r->target));
                cli_json_str(f, cfx_concepts_data_label(d, r->target));
            } else {
                fputs(", \"target\": null, \"target_label\": null", f);
            }
            fprintf(f, ", \"cost\": %lld", (long long)r->cost);
            json_edits(f, c, &es);
            fputs("}\n", f);
        }
        /* One query on a terminal: show its edits. */
        if (!o->all && !o->json) {
            if (r->target < 0) {
                printf("image %lld (%s): every image has its label; no counterfactual\n",
                       (long long)o->query, cfx_concepts_data_label(d, r->query));
            } else {
                printf("image %lld (%s) -> image %lld (%s): cost %lld, %d edits\n",
                       (long long)o->query, cfx_concepts_data_label(d, r->query),
                       (long long)cfx_concepts_data_id(d, r->target),
                       cfx_concepts_data_label(d, r->target), (long long)r->cost, es.n);
                for (int32_t k = 0; k < es.n; k++) print_edit(stdout, c, &es.edits[k]);
            }
        }
        cfx_edit_set_deinit(&es);
    }
    if (f && rc) cfx_file_abort(&af);
    if (f && !rc && cfx_file_commit(&af) != CFX_OK) rc = cli_fail(what, "%s", cfx_last_error());
    if (!rc) {
        int32_t found = nq - none;
        double mean = found ? (double)total / found : 0;
        if (o->json) {
            printf("{\"queries\": %d, \"with_counterfactual\": %d, \"mean_cost\": %.4f, "
                   "\"assignments_solved\": %lld, \"seconds\": %.4f, \"threads\": %d, \"out\": ",
                   nq, found, mean, (long long)solved, secs, cfx_get_threads());
            if (o->out)
                cli_json_str(stdout, o->out);
            else
                fputs("null", stdout);
            puts("}");
        } else if (o->all || o->out) {
            printf("%d queries, %d with a counterfactual, mean cost %.2f; %lld assignments solved "
                   "in %.3f s (%d threads)%s%s\n",
                   nq, found, mean, (long long)solved, secs, cfx_get_threads(),
                   o->out ? "; wrote " : "", o->out ? o->out : "");
        }
    }
    free(q);
    free(res);
    close_data(wn, c, d);
    return rc;
}

typedef struct {
    const char *name;
    double imp;
} row;

static int cmp_row(const void *x, const void *y) {
    const row *a = x, *b = y;
    double fa = a->imp < 0 ? -a->imp : a->imp, fb = b->imp < 0 ? -b->imp : b->imp;
    if (fa != fb) return fa > fb ? -1 : 1;
    if (a->imp != b->imp) return a->imp > b->imp ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int run_global(const opts *o) {
    const char *what = "concepts global";
    cfx_wordnet *wn;
    cfx_concepts *c;
    cfx_concepts_data *d;
    if (open_data(o, what, &wn, &c, &d)) return 1;
    int32_t nc = cfx_concepts_count(c), nimg = 0, nrows = 0;
    double *imp = malloc(((size_t)nc + 1) * sizeof *imp);
    row *rows = malloc(((size_t)nc + 1) * sizeof *rows);
    int rc = !imp || !rows ? cli_fail(what, "out of memory") : 0;
    cfx_progress pr = {cfx_progress_stderr, NULL};
    if (!rc && cfx_concepts_importance(d, o->class_name, &pr, imp, &nimg) != CFX_OK)
        rc = cli_fail(what, NULL);
    if (!rc) {
        for (int32_t i = 0; i < nc; i++)
            if (imp[i] != 0) rows[nrows++] = (row){cfx_concepts_name(c, i), imp[i]};
        qsort(rows, (size_t)nrows, sizeof *rows, cmp_row);
        if (o->top > 0 && nrows > o->top) nrows = (int32_t)o->top;
        if (o->json) {
            fputs("{\"class\": ", stdout);
            cli_json_str(stdout, o->class_name);
            printf(", \"images\": %d, \"importance\": [", nimg);
            for (int32_t i = 0; i < nrows; i++) {
                fputs(i ? ", {\"concept\": " : "{\"concept\": ", stdout);
                cli_json_str(stdout, rows[i].name);
                printf(", \"importance\": %g}", rows[i].imp);
            }
            puts("]}");
        } else {
            printf("importance over the %d images labelled '%s' (+: added by their edits, "
                   "-: removed)\n",
                   nimg, o->class_name);
            for (int32_t i = 0; i < nrows; i++) printf("%+8g  %s\n", rows[i].imp, rows[i].name);
        }
    }
    free(imp);
    free(rows);
    close_data(wn, c, d);
    return rc;
}

static int run_order(const opts *o) {
    const char *what = "concepts order";
    const char *m = mode_words[o->mode];
    cfx_order_mode mode = modes[o->mode];
    cfx_wordnet *wn;
    cfx_concepts *c;
    cfx_concepts_data *d;
    if (open_data(o, what, &wn, &c, &d)) return 1;
    int32_t q;
    int rc = find_query(d, o, what, &q);
    cfx_edit_set es = {0};
    cfx_progress pr = {cfx_progress_stderr, NULL};
    if (!rc && cfx_concepts_order(d, q, mode, mode == CFX_ORDER_LOCAL ? NULL : &pr, &es) != CFX_OK)
        rc = cli_fail(what, NULL);
    if (!rc && o->json) {
        printf("{\"query\": %lld, \"mode\": \"%s\", \"edits\": [", (long long)o->query, m);
        for (int32_t i = 0; i < es.n; i++) {
            const cfx_edit *e = &es.edits[i];
            static const char *kinds[3] = {"insert", "delete", "substitute"};
            printf("%s{\"edit\": \"%s\", \"from\": ", i ? ", " : "", kinds[e->kind]);
            if (e->from >= 0)
                cli_json_str(stdout, cfx_concepts_word(c, e->from));
            else
                fputs("null", stdout);
            fputs(", \"to\": ", stdout);
            if (e->to >= 0)
                cli_json_str(stdout, cfx_concepts_word(c, e->to));
            else
                fputs("null", stdout);
            printf(", \"cost\": %lld}", (long long)e->cost);
        }
        puts("]}");
    } else if (!rc) {
        printf("image %lld (%s): %d edits in %s order\n", (long long)o->query,
               cfx_concepts_data_label(d, q), es.n, m);
        for (int32_t i = 0; i < es.n; i++) print_edit(stdout, c, &es.edits[i]);
    }
    cfx_edit_set_deinit(&es);
    close_data(wn, c, d);
    return rc;
}

/* Every action: argv[0], its name, picks its table in parse and what runs. */
static int concepts_main(int argc, char **argv) {
    opts o;
    parse(argv[0], argc, argv, &o);
    if (strcmp(argv[0], "cost") == 0) return run_cost(&o);
    if (strcmp(argv[0], "nearest") == 0) return run_nearest(&o);
    if (strcmp(argv[0], "global") == 0) return run_global(&o);
    return run_order(&o);
}

int cmd_concepts(int argc, char **argv) {
    static const cli_command leaves[] = {
        {"cost", concepts_main, "optimal edits from concept list A to B"},
        {"nearest", concepts_main,
         "closest counterfactual (cheapest image of another label) per image"},
        {"global", concepts_main, "importance of each concept for the images of --class"},
        {"order", concepts_main, "the edits of --query in the order of --mode"},
        {"edit", cmd_concepts_loop,
         "edit images concept by concept until the classifier's label flips"},
        {"evaluate", cmd_concepts_loop, "success rate, edits and concepts of edit runs"},
    };
    return cli_dispatch("concepts",
                        "Explains a classifier with semantic edits between concept-annotated "
                        "images (V-CECE).\n",
                        leaves, CLI_LEN(leaves), argc, argv);
}
