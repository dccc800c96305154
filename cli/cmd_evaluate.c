/* cmd_evaluate.c - `cfx evaluate RUN`: the metrics of a counterfactual run per method and per
 * method and cause (src/metrics/evaluate.c), written as RUN/metrics.json, RUN/summary.md and
 * RUN/summary.csv. Every distribution metric carries the name of the network it ran on:
 * FID[classifier] without a user network. */
#include "cli.h"
#include "mpi.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const cmd = "evaluate";

static void num(FILE *f, double v, const char *fmt) {
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs("null", f);
}

/* A cell of the markdown or CSV tables: the value, or "none". */
static void cell(FILE *f, double v, const char *fmt) {
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs("none", f);
}

static void write_json(FILE *f, const cfx_run *r, const cfx_evaluation *e, const char *data) {
    fprintf(f, "{\"run\": ");
    cli_json_str(f, r->dir);
    fprintf(f, ", \"reference\": ");
    cli_json_str(f, data);
    fprintf(f,
            ", \"reference_images\": %lld, \"threshold\": %.9g, \"networks\": {\"features\": "
            "\"classifier\", \"fid\": ",
            (long long)e->reference_images, r->threshold);
    cli_json_str(f, e->fid_label);
    fprintf(f, ", \"lpips\": ");
    cli_json_str(f, e->lpips_label);
    fprintf(f, ", \"kid\": ");
    cli_json_str(f, e->fid_label);
    fprintf(f, ", \"cmmd\": ");
    cli_json_str(f, e->cmmd_label);
    fprintf(f, "}, \"rows\": [");
    for (int i = 0; i < e->nrows; i++) {
        const cfx_eval_row *w = &e->rows[i];
        fprintf(f, "%s\n  {\"method\": \"%s\", \"cause\": ", i ? "," : "",
                cfx_run_method_name(w->method));
        if (w->cause)
            cli_json_str(f, w->cause);
        else
            fputs("null", f);
        fprintf(f,
                ", \"images\": %lld, \"success\": %lld, \"success_rate\": ", (long long)w->images,
                (long long)w->success);
        num(f, w->images ? (double)w->success / (double)w->images : NAN, "%.6g");
        const struct {
            const char *key;
            double v;
        } v[] = {{"rho_after", w->rho_after},
                 {"lpips", w->lpips.mean},
                 {"lpips_std", w->lpips.std},
                 {"feature_similarity", w->feature_similarity.mean},
                 {"feature_similarity_std", w->feature_similarity.std},
                 {"latent_similarity", w->latent_similarity.mean},
                 {"latent_similarity_std", w->latent_similarity.std},
                 {"fid", w->fid},
                 {"kid", w->kid_mean},
                 {"kid_std", w->kid_std},
                 {"cmmd", w->cmmd},
                 {"steps", w->steps},
                 {"seconds_per_image", w->seconds}};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            fprintf(f, ", \"%s\": ", v[k].key);
            num(f, v[k].v, "%.9g");
        }
        fprintf(f, ", \"similarity_over\": %lld}", (long long)w->feature_similarity.count);
    }
    fprintf(f, "\n]}\n");
}

/* The paper's layout: a row per method (then per method and cause), validity, similarity and
 * realism, then cost. sep "|" for markdown, "," for CSV. */
static void write_table(FILE *f, const cfx_evaluation *e, bool md) {
    const char *s = md ? " | " : ",";
    char fid[96], kid[96], cmmd[96];
    const char *lpips = e->lpips_label;
    snprintf(fid, sizeof fid, "FID[%s]", e->fid_label);
    snprintf(kid, sizeof kid, "KID[%s]", e->fid_label);
    snprintf(cmmd, sizeof cmmd, "CMMD[%s]", e->cmmd_label);
    if (md) fputs("| ", f);
    fprintf(f,
            "method%scause%simages%ssuccess%srho after%s%s%sfeature cos[classifier]%slatent "
            "cos%s%s%s%s%s%s%ssteps%sseconds/image",
            s, s, s, s, s, lpips, s, s, s, fid, s, kid, s, cmmd, s, s);
    fputs(md ? " |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" : "\n", f);
    for (int i = 0; i < e->nrows; i++) {
        const cfx_eval_row *w = &e->rows[i];
        if (md) fputs("| ", f);
        fprintf(f, "%s%s%s%s%lld%s", cfx_run_method_name(w->method), s, w->cause ? w->cause : "all",
                s, (long long)w->images, s);
        cell(f, w->images ? 100.0 * (double)w->success / (double)w->images : NAN, "%.1f%%");
        fputs(s, f);
        cell(f, w->rho_after, "%.3f");
        fputs(s, f);
        cell(f, w->lpips.mean, "%.4f");
        fputs(s, f);
        cell(f, w->feature_similarity.mean, "%.4f");
        fputs(s, f);
        cell(f, w->latent_similarity.mean, "%.4f");
        fputs(s, f);
        cell(f, w->fid, "%.4g");
        fputs(s, f);
        cell(f, w->kid_mean, "%.4g");
        fputs(s, f);
        cell(f, w->cmmd, "%.4g");
        fputs(s, f);
        cell(f, w->steps, "%.1f");
        fputs(s, f);
        cell(f, w->seconds, "%.4f");
        fputs(md ? " |\n" : "\n", f);
    }
}

/* Under mpirun: each rank's rows are its whole batches, and the all-gather fills the rest. */
static void share_part(void *ctx, int64_t n, int64_t batch, int64_t *lo, int64_t *hi) {
    cli_mpi_batches(n, batch, cli_mpi_rank(), cli_mpi_size(), lo, hi);
}

static cfx_status share_fill(void *ctx, void *rows, int64_t n, size_t row_bytes, int64_t batch) {
    return cli_mpi_allgather_rows(rows, n, row_bytes, batch);
}

/* What the ranks must agree they loaded: the run's images and counterfactuals, the bundle and
 * the reference images. */
static uint64_t inputs_fingerprint(const cfx_run *r, const cfx_bundle *b, const cfx_dataset *d) {
    uint64_t h = cfx_fnv1a(CFX_FNV1A_INIT, r->images->data, (size_t)r->images->numel * 4);
    for (int k = 0; k < CFX_RUN_METHODS; k++)
        if (r->has[k])
            h = cfx_fnv1a(h, r->counterfactuals[k]->data,
                          (size_t)r->counterfactuals[k]->numel * sizeof(float));
    h = cfx_fnv1a(h, b->fingerprint, strlen(b->fingerprint));
    return cfx_fnv1a(h, d->images->data, (size_t)d->images->numel * sizeof(float));
}

int cmd_evaluate(int argc, char **argv) {
    const char *run_dir = NULL, *data = NULL, *fid_model = NULL, *fid_features = NULL,
               *cmmd_model = NULL, *cmmd_features = NULL, *lpips_model = NULL;
    long long seed = 0, batch = 64, threads = 0;
    int json = 0;
    const cli_opt opts[] = {
        {"RUN", NULL, "a run folder written by cfx counterfactual", .str = &run_dir,
         .required = true, .positional = true},
        {"data", "DIR", "the dataset folder whose calib split is the reference set", .str = &data,
         .def = "the dataset the bundle was fitted on"},
        {"fid-model", "FILE", "an ONNX network for FID and KID (RGB in [0,1] at its own size)",
         .str = &fid_model, .def = "the classifier's features"},
        {"fid-features", "NAME", "the FID network's feature tensor", .str = &fid_features},
        {"cmmd-model", "FILE", "an ONNX network for CMMD (CLIP's image tower in the paper)",
         .str = &cmmd_model, .def = "the classifier's features"},
        {"cmmd-features", "NAME", "the CMMD network's feature tensor", .str = &cmmd_features},
        {"lpips-model", "FILE",
         "an LPIPS network (ONNX: two images in [-1,1], one distance per image)",
         .str = &lpips_model, .def = "the LPIPS formula on the classifier's feature maps"},
        CLI_OPT_SEED(&seed, "seed of KID's subsets"),
        {"batch", "N", "images per forward pass", .i = &batch, .lo = 1, .hi = 100000},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_JSON(&json),
    };
    cli_parse(
        cmd,
        "Measures a run's counterfactuals per method and per method and cause: success\n"
        "rate, rho after, cosine similarity of classifier features and of latent codes\n"
        "(over the successful ones), FID, KID and CMMD against the calibration images, steps\n"
        "and seconds per image. Writes RUN/metrics.json, RUN/summary.md and RUN/summary.csv.\n"
        "Without --fid-model/--cmmd-model the classifier's own features are used, and every\n"
        "table says so (FID[classifier]).\n",
        opts, CLI_LEN(opts), argc, argv);
    if (!fid_model != !fid_features)
        cli_usage_error(cmd, "--fid-model and --fid-features go together");
    if (!cmmd_model != !cmmd_features)
        cli_usage_error(cmd, "--cmmd-model and --cmmd-features go together");
    cli_set_threads(threads);
    const int rank = cli_mpi_rank(), ranks = cli_mpi_size();
    int rc = 0;
    char *recorded = NULL;
    cfx_bundle *b = NULL;
    cfx_dataset *d = NULL;
    cfx_evaluation e = {0};
    cfx_file f[3] = {{0}};
    cfx_run *r = cfx_run_open(run_dir);
    if (!r) {
        rc = cli_fail(cmd, NULL);
        goto agree;
    }
    if (!r->complete) {
        rc = cli_fail(cmd,
                      "run '%s' is not complete: finish it with cfx counterfactual ... --resume",
                      run_dir);
        goto agree;
    }
    if (!(b = cfx_bundle_load(r->bundle, batch))) {
        rc = cli_fail(cmd, NULL);
        goto agree;
    }
    if (strcmp(b->fingerprint, r->bundle_fingerprint)) {
        rc = cli_fail(cmd,
                      "the bundle '%s' has changed since the run (fingerprint %s, the run's %s)",
                      r->bundle, b->fingerprint, r->bundle_fingerprint);
        goto agree;
    }
    if (!data && !(data = recorded = cli_bundle_dataset(r->bundle))) {
        rc = cli_fail(cmd, "the bundle does not name its dataset: give --data DIR");
        goto agree;
    }
    if (!(d = cfx_dataset_load(data, "calib"))) {
        rc = cli_fail(cmd, "%s (the reference images are the calib split of --data)",
                      cfx_last_error());
        goto agree;
    }
    /* Every rank has loaded its inputs: a rank that failed has said why, and the ranks must
     * have loaded the same (the per-image work is shared below, the metrics computed on each). */
agree:
    if (cli_mpi_first_failure(rc != 0) >= 0) {
        rc = 1;
        goto done;
    }
    if (ranks > 1 &&
        !cli_mpi_same(cmd, "run, bundle or reference images", inputs_fingerprint(r, b, d))) {
        rc = 1;
        goto done;
    }
    cfx_evaluate_options o = {.reference = d->images,
                              .fid_model = fid_model,
                              .fid_features = fid_features,
                              .cmmd_model = cmmd_model,
                              .cmmd_features = cmmd_features,
                              .lpips_model = lpips_model,
                              .seed = (uint64_t)seed,
                              .batch = batch,
                              .progress = {.fn = json || rank ? NULL : cfx_progress_stderr}};
    if (ranks > 1) o.share = (cfx_evaluate_share){.part = share_part, .fill = share_fill};
    if (cfx_evaluate(r, b->competency, &o, &e) != CFX_OK) {
        if (ranks == 1) {
            rc = cli_fail(cmd, NULL);
            goto done;
        }
        /* The other ranks may wait for this one's rows: end them all. */
        cli_fail(cmd, "rank %d of %d: %s", rank, ranks, cfx_last_error());
        cli_mpi_abort(1);
    }
    if (rank > 0) goto done; /* rank 0 writes */
    const char *names[3] = {"metrics.json", "summary.md", "summary.csv"};
    cfx_status s = CFX_OK;
    for (int k = 0; k < 3 && s == CFX_OK; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", run_dir, names[k]);
        s = cfx_file_create(&f[k], path);
    }
    if (s == CFX_OK) {
        write_json(f[0].f, r, &e, data);
        write_table(f[1].f, &e, true);
        write_table(f[2].f, &e, false);
        for (int k = 0; k < 3 && s == CFX_OK; k++) s = cfx_file_commit(&f[k]);
    }
    if (s != CFX_OK) {
        for (int k = 0; k < 3; k++)
            if (f[k].f) cfx_file_abort(&f[k]);
        rc = cli_fail(cmd, NULL);
        goto done;
    }
    if (json)
        write_json(stdout, r, &e, data);
    else {
        write_table(stdout, &e, true);
        printf("\nreference: the %lld calib images of %s; wrote %s/metrics.json, summary.md, "
               "summary.csv\n",
               (long long)e.reference_images, data, run_dir);
    }
done:
    cfx_evaluation_free(&e);
    cfx_dataset_free(d);
    cfx_bundle_free(b);
    free(recorded);
    cfx_run_free(r);
    return rc;
}
