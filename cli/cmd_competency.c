/* cmd_competency.c - `cfx competency fit|score|report|examples`: PaRCE competency (how far a
 * prediction can be trusted), calibrated on a dataset's calib split, and the low-competency
 * examples of the six causes. */
#include "cli.h"
#include "mpi.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const outputs[] = {"auto", "logits", "probs", NULL};

/* --------------------------------------------------------------------------- fit --- */

static int comp_fit(int argc, char **argv) {
    const char *cmd = "competency fit";
    const char *classifier = NULL, *autoencoder = NULL, *latent = NULL, *encoder = NULL,
               *decoder = NULL, *data = NULL, *out = NULL, *features = NULL;
    double z = NAN, loss_scale = 2, threshold = 0.9;
    int output = 0, force = 0, json = 0;
    long long batch = 100, threads = 0;
    const cli_opt opts[] = {
        {"classifier", "FILE", "the classifier (ONNX)", .str = &classifier, .required = true,
         .role = CLI_IN},
        {"autoencoder", "FILE", "the autoencoder as one ONNX file (with --latent)",
         .str = &autoencoder, .role = CLI_IN},
        {"latent", "NAME", "the autoencoder's latent tensor", .str = &latent},
        {"encoder", "FILE", "the encoder (ONNX), with --decoder", .str = &encoder, .role = CLI_IN},
        {"decoder", "FILE", "the decoder (ONNX), with --encoder", .str = &decoder, .role = CLI_IN},
        {"data", "DIR", "a dataset folder written by cfx data; its calib split is used",
         .str = &data, .required = true, .role = CLI_IN},
        CLI_OPT_OUT_DIR(&out, "BUNDLE", "the bundle folder to write"),
        {"z", "Z", "use this z instead of searching the grid 0, 0.05, ..., 4.95", .num = &z,
         .min = -100, .max = 100, .def = "searched"},
        {"loss-scale", "S", "the factor of mu in (L - S mu) / sigma (the reference code's 2)",
         .num = &loss_scale, .min = 0, .max = 1e6},
        {"threshold", "T", "rho below T is low competency", .num = &threshold, .min = 0, .max = 1},
        {"features", "NAME", "the classifier tensor compared by feature similarity",
         .str = &features,
         .def = "a tensor named features, else the input of the last Gemm or MatMul"},
        {"classifier-output", "KIND",
         "auto (probabilities when the model ends in Softmax), logits or probs", .pick = &output,
         .choices = outputs},
        {"batch", "N", "images per forward pass", .i = &batch, .lo = 1, .hi = 100000},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Calibrates PaRCE competency on the calib split of a dataset folder: per class, the\n"
              "mean and population deviation of the autoencoder's reconstruction loss; z so that\n"
              "mean rho matches the calibration accuracy. Writes a bundle folder with copies of\n"
              "the models, the calibration and the calibration images' latent codes and rho.\n",
              opts, CLI_LEN(opts), argc, argv);
    if (!autoencoder == !encoder || (autoencoder && !latent) || (encoder && !decoder) ||
        (!encoder && decoder) || (latent && !autoencoder))
        cli_usage_error(cmd, "give --autoencoder FILE --latent NAME, or --encoder FILE "
                             "--decoder FILE");
    cli_set_threads(threads);
    cfx_dataset *d = cfx_dataset_load(data, "calib");
    if (!d) return cli_fail(cmd, NULL);
    cfx_competency_models m = {.classifier = classifier,
                               .encoder = encoder,
                               .decoder = decoder,
                               .autoencoder = autoencoder,
                               .latent = latent,
                               .features = features,
                               .output = (cfx_classifier_output)output};
    cfx_competency *c = cfx_competency_new(&m, batch);
    if (!c) {
        cfx_dataset_free(d);
        return cli_fail(cmd, NULL);
    }
    cfx_competency_shape sh;
    cfx_competency_shape_of(c, &sh);
    float *latents = malloc((size_t)d->n * (size_t)sh.latent_dim * sizeof *latents);
    float *rho = malloc((size_t)d->n * sizeof *rho);
    cfx_parce p = {0};
    cfx_parce_fit_options fo = {.loss_scale = loss_scale,
                                .threshold = threshold,
                                .fixed_z = !isnan(z),
                                .z = isnan(z) ? 0 : z,
                                .progress = {cfx_progress_stderr, NULL}};
    double t0 = cfx_now();
    cfx_status s = latents && rho ? cfx_parce_fit(c, d, &fo, &p, latents, rho) : CFX_ENOMEM;
    if (s != CFX_OK) cfx_error_context(s, "calibrate on the calib split of '%s'", data);
    if (s == CFX_OK) {
        char *data_abs = cli_absolute(data); /* so evaluate and explain find it from anywhere */
        cfx_bundle_spec spec = {.out = out,
                                .force = force,
                                .models = &m,
                                .competency = c,
                                .class_names = (const char *const *)d->class_names,
                                .latents = latents,
                                .scores = rho,
                                .n = d->n,
                                .dataset = data_abs ? data_abs : data};
        s = cfx_bundle_write(&spec);
        free(data_abs);
    }
    int rc = 0;
    if (s != CFX_OK) {
        rc = cli_fail(cmd, NULL);
    } else if (json) {
        printf("{\"bundle\": ");
        cli_json_str(stdout, out);
        printf(", \"calib_images\": %lld, \"accuracy\": %.6f, \"mean_rho\": %.6f, \"z\": %.2f, "
               "\"loss_scale\": %g, \"threshold\": %g, \"features\": ",
               (long long)p.n_calib, p.accuracy, p.mean_rho, p.z, p.loss_scale, p.threshold);
        cli_json_str(stdout, sh.features);
        printf(", \"classifier_output\": \"%s\", \"classes\": [",
               sh.probs_output ? "probs" : "logits");
        for (int k = 0; k < p.num_classes; k++) {
            printf("%s{\"name\": ", k ? ", " : "");
            cli_json_str(stdout, d->class_names[k]);
            printf(", \"mu\": %.9g, \"sigma\": %.9g}", p.mu[k], p.sigma[k]);
        }
        printf("], \"seconds\": %.2f}\n", cfx_now() - t0);
    } else {
        printf("calibrated on %lld calib images of %s (%d classes) in %.1f s\n",
               (long long)p.n_calib, data, p.num_classes, cfx_now() - t0);
        printf("accuracy %.2f%%, mean rho %.4f (difference %.4f), z %.2f%s, loss scale %g\n",
               100 * p.accuracy, p.mean_rho, p.mean_rho - p.accuracy, p.z,
               fo.fixed_z ? " (given)" : "", p.loss_scale);
        printf("classifier output: %s; features: '%s' (%d values); latent: %d values\n",
               sh.probs_output ? "probabilities (ends in Softmax)" : "logits", sh.features,
               sh.feature_dim, sh.latent_dim);
        printf("%-16s %12s %12s\n", "class", "mu", "sigma");
        for (int k = 0; k < p.num_classes; k++)
            printf("%-16s %12.6g %12.6g\n", d->class_names[k], p.mu[k], p.sigma[k]);
        printf("wrote %s\n", out);
    }
    cfx_parce_deinit(&p);
    free(latents), free(rho);
    cfx_competency_free(c);
    cfx_dataset_free(d);
    return rc;
}

/* ------------------------------------------------------------------------- score --- */

/* What the ranks must agree they loaded: the pixels and the names. */
static uint64_t images_fingerprint(const cfx_tensor *x, char **names) {
    uint64_t h = cfx_fnv1a(CFX_FNV1A_INIT, x->shape, sizeof x->shape);
    h = cfx_fnv1a(h, x->data, (size_t)x->numel * sizeof(float));
    for (int64_t i = 0; i < x->shape[0]; i++) h = cfx_fnv1a(h, names[i], strlen(names[i]) + 1);
    return h;
}

static int comp_score(int argc, char **argv) {
    const char *cmd = "competency score";
    const char *bundle = NULL, *out = NULL;
    cli_list inputs = {0};
    long long batch = 100, threads = 0;
    int force = 0;
    const cli_opt opts[] = {
        {"bundle", "DIR", "a bundle written by cfx competency fit", .str = &bundle,
         .required = true, .role = CLI_IN},
        {"INPUT", NULL, "PNG/JPEG files, folders of them, or .npy arrays (N,C,H,W) in [0,1]",
         .list = &inputs, .required = true, .positional = true, .role = CLI_IN},
        {"out", "FILE", "write the JSON lines here (atomically) instead of to stdout", .str = &out,
         .def = "stdout", .role = CLI_OUT},
        {"batch", "N", "images per forward pass", .i = &batch, .lo = 1, .hi = 100000},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&force),
    };
    cli_parse(cmd,
              "Scores images with a bundle: one JSON line per image with index, file, predicted\n"
              "class, softmax_max, loss, in_distribution (sum_c p_c P_c), rho and low (rho below\n"
              "the threshold). A one-line summary goes to stderr.\n",
              opts, CLI_LEN(opts), argc, argv);
    cli_set_threads(threads);
    cfx_bundle *b = cfx_bundle_load(bundle, batch);
    if (!b) return cli_fail(cmd, NULL);
    cfx_competency_shape sh;
    cfx_competency_shape_of(b->competency, &sh);
    cfx_tensor *x = NULL;
    char **names = NULL;
    cfx_status s = cfx_images_load(inputs.items, inputs.n, sh.c, sh.h, sh.w, &x, &names);
    if (s != CFX_OK) {
        cfx_bundle_free(b);
        return cli_fail(cmd, NULL);
    }
    /* Under mpirun each rank scores a contiguous block of whole batches and formats its lines;
     * rank 0 gathers the lines and the rho values in rank order, which is image order. Whole
     * batches, because a forward pass over another batch size rounds differently (the last
     * digit of softmax_max moves): each rank's batches are those of one process. */
    const int rank = cli_mpi_rank(), size = cli_mpi_size();
    int64_t n = x->shape[0], lo, hi;
    cli_mpi_batches(n, batch, rank, size, &lo, &hi);
    if (size > 1 && !cli_mpi_same(cmd, "images", images_fingerprint(x, names))) {
        cfx_images_names_free(names, n);
        cfx_tensor_free(x);
        cfx_bundle_free(b);
        return 1;
    }
    const int64_t m = hi - lo, img = x->numel / (n ? n : 1);
    int32_t *pred = malloc((size_t)(m ? m : 1) * sizeof *pred);
    float *buf = malloc((size_t)(m ? m : 1) * 5 * sizeof *buf);
    double t0 = cfx_now();
    cfx_competency_scores sc = {0};
    if (pred && buf)
        sc = (cfx_competency_scores){.predicted = pred,
                                     .softmax_max = buf,
                                     .loss = buf + m,
                                     .in_distribution = buf + 2 * m,
                                     .rho = buf + 3 * m};
    cfx_tensor block = {.data = x->data + lo * img, .ndim = 4, .numel = m * img};
    memcpy(block.shape, x->shape, sizeof block.shape);
    block.shape[0] = m;
    s = !pred || !buf ? CFX_ENOMEM
        : m           ? cfx_competency_score(b->competency, &block, &sc, NULL)
                      : CFX_OK;
    float thr = (float)cfx_competency_parce(b->competency)->threshold;
    char *lines = NULL, *all = NULL, *rho = NULL;
    size_t len = 0, total = 0, nrho = 0;
    FILE *mem = s == CFX_OK ? open_memstream(&lines, &len) : NULL;
    if (s == CFX_OK && !mem) s = CFX_ENOMEM;
    for (int64_t j = 0; s == CFX_OK && j < m; j++) {
        int64_t i = lo + j;
        fprintf(mem, "{\"index\": %lld, \"file\": ", (long long)i);
        cli_json_str(mem, names[i]);
        fprintf(mem, ", \"predicted\": %d, \"class\": ", pred[j]);
        cli_json_str(mem, b->class_names[pred[j]]);
        fprintf(mem,
                ", \"softmax_max\": %.7g, \"loss\": %.7g, \"in_distribution\": %.7g, \"rho\": "
                "%.7g, \"low\": %s}\n",
                sc.softmax_max[j], sc.loss[j], sc.in_distribution[j], sc.rho[j],
                sc.rho[j] < thr ? "true" : "false");
    }
    if (mem && fclose(mem) != 0 && s == CFX_OK) s = CFX_ENOMEM;
    int failed = cli_mpi_first_failure(s != CFX_OK);
    if (failed < 0 && (s = cli_mpi_gather(lines, len, &all, &total)) == CFX_OK)
        s = cli_mpi_gather(sc.rho, (size_t)m * sizeof(float), &rho, &nrho);
    double secs = cfx_now() - t0;
    cfx_file f = {0};
    FILE *o = stdout;
    if (failed < 0 && s == CFX_OK && rank == 0 && out) {
        s = cfx_file_create(&f, out);
        o = f.f;
    }
    if (failed < 0 && s == CFX_OK && rank == 0 && fwrite(all, 1, total, o) != total)
        s = cfx_set_error(CFX_EIO, "write '%s': %s", out ? out : "stdout", strerror(errno));
    if (failed < 0 && s == CFX_OK && rank == 0 && out) s = cfx_file_commit(&f);
    int rc = 0;
    if (failed >= 0 || s != CFX_OK) {
        if (f.f) cfx_file_abort(&f);
        rc = 1;
        if (size == 1)
            cli_fail(cmd, NULL);
        else if (s != CFX_OK && (failed < 0 || failed == rank))
            cli_fail(cmd, "rank %d of %d, images %lld..%lld: %s", rank, size, (long long)lo,
                     (long long)hi - 1, cfx_last_error());
    } else if (rank == 0) {
        int64_t low = 0;
        double sum = 0;
        for (int64_t i = 0; i < n; i++) {
            float r = ((const float *)rho)[i];
            low += r < thr;
            sum += r;
        }
        fflush(stdout);
        fprintf(stderr,
                "scored %lld image%s: %lld with low competency (rho < %g), mean rho %.4f, "
                "%.0f images/s%s%s\n",
                (long long)n, n == 1 ? "" : "s", (long long)low, thr, sum / (double)n,
                secs > 0 ? (double)n / secs : 0.0, out ? "; wrote " : "", out ? out : "");
    }
    free(lines), free(all), free(rho);
    cfx_images_names_free(names, n);
    cfx_tensor_free(x);
    free(pred), free(buf);
    cfx_bundle_free(b);
    return rc;
}

/* ------------------------------------------------------------------------ report --- */

typedef struct {
    const char *name;
    double auroc, mean_rho;
    int64_t n;
} auroc_row;

/* rho of every image of a split (NULL rho: just the count); false on failure. */
static bool score_split(cfx_competency *c, const cfx_tensor *x, float *rho, int32_t *pred) {
    return cfx_competency_score(c, x, &(cfx_competency_scores){.rho = rho, .predicted = pred},
                                NULL) == CFX_OK;
}

static int comp_report(int argc, char **argv) {
    const char *cmd = "competency report";
    const char *bundle = NULL, *data = NULL, *split = "test", *out = NULL;
    long long batch = 100, threads = 0, bins = 10, seed = 0;
    int json = 0, force = 0;
    const cli_opt opts[] = {
        {"bundle", "DIR", "a bundle written by cfx competency fit", .str = &bundle,
         .required = true, .role = CLI_IN},
        {"data", "DIR", "a dataset folder written by cfx data", .str = &data, .required = true,
         .role = CLI_IN},
        {"split", "NAME", "the split to evaluate (train, calib, test)", .str = &split},
        CLI_OPT_OUT_DIR(&out, "DIR", "folder for reliability.png and report.json"),
        {"bins", "N", "bins of the calibration error and the diagram", .i = &bins, .lo = 2,
         .hi = 100},
        {"batch", "N", "images per forward pass", .i = &batch, .lo = 1, .hi = 100000},
        CLI_OPT_SEED(&seed, "seed of the corruption factors and noise"),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(
        cmd,
        "How well rho is calibrated and how well it separates: accuracy against mean rho,\n"
        "the expected calibration error with a reliability diagram, and the AUROC of rho for\n"
        "correct against wrong predictions, the split against the held-out classes (ood),\n"
        "and clean against each cause's corruption (each image at a seeded factor of the\n"
        "cause's grid).\n",
        opts, CLI_LEN(opts), argc, argv);
    if (strcmp(split, "ood") == 0) cli_usage_error(cmd, "--split must be train, calib or test");
    cli_set_threads(threads);
    cfx_bundle *b = cfx_bundle_load(bundle, batch);
    if (!b) return cli_fail(cmd, NULL);
    cfx_dataset *d = cfx_dataset_load(data, split), *ood = NULL;
    if (!d) {
        cfx_bundle_free(b);
        return cli_fail(cmd, NULL);
    }
    cfx_competency *c = b->competency;
    cfx_competency_shape sh;
    cfx_competency_shape_of(c, &sh);
    float thr = (float)cfx_competency_parce(c)->threshold;
    int64_t n = d->n;
    float *rho = malloc((size_t)n * sizeof *rho), *rho2 = malloc((size_t)n * sizeof *rho2);
    int32_t *pred = malloc((size_t)n * sizeof *pred);
    uint8_t *right = malloc((size_t)n);
    float *pos = malloc((size_t)n * sizeof *pos), *neg = malloc((size_t)n * sizeof *neg);
    cfx_calibration_bin bin[100];
    auroc_row rows[CFX_CAUSE_COUNT + 1];
    int nrows = 0;
    cfx_status s = rho && rho2 && pred && right && pos && neg ? CFX_OK : CFX_ENOMEM;
    if (s == CFX_OK && n < 1)
        s = cfx_set_error(CFX_EINVAL, "split '%s' of '%s' is empty", split, data);
    if (s == CFX_OK && d->num_classes != sh.num_classes)
        s = cfx_set_error(CFX_ESHAPE, "'%s' has %d classes but the bundle's classifier has %d",
                          data, d->num_classes, sh.num_classes);
    if (s == CFX_OK && !score_split(c, d->images, rho, pred)) s = CFX_EFORMAT;
    int64_t correct = 0, np = 0, nn = 0;
    double sum = 0;
    for (int64_t i = 0; s == CFX_OK && i < n; i++) {
        right[i] = pred[i] == d->labels[i];
        correct += right[i];
        sum += rho[i];
        if (right[i])
            pos[np++] = rho[i];
        else
            neg[nn++] = rho[i];
    }
    double acc = n ? (double)correct / n : 0, mean = n ? sum / n : 0;
    double ece = s == CFX_OK ? cfx_ece(rho, right, n, (int)bins, bin) : NAN;
    if (s == CFX_OK)
        rows[nrows++] = (auroc_row){"correct vs wrong", cfx_auroc(pos, np, neg, nn), mean, n};
    /* The held-out classes. */
    if (s == CFX_OK && (ood = cfx_dataset_load(data, "ood")) && ood->n > 0) {
        float *orho = malloc((size_t)ood->n * sizeof *orho);
        if (orho && score_split(c, ood->images, orho, NULL)) {
            double osum = 0;
            for (int64_t i = 0; i < ood->n; i++) osum += orho[i];
            rows[nrows++] = (auroc_row){"in-distribution vs ood", cfx_auroc(rho, n, orho, ood->n),
                                        osum / ood->n, ood->n};
        } else {
            s = orho ? CFX_EFORMAT : CFX_ENOMEM;
        }
        free(orho);
    }
    /* Each cause's corruption, one seeded factor of its grid per image. */
    cfx_tensor *xc = s == CFX_OK ? cfx_tensor_new(4, d->images->shape) : NULL;
    if (s == CFX_OK && !xc) s = CFX_ENOMEM;
    cfx_rng root;
    cfx_rng_init(&root, (uint64_t)seed);
    static char labels[CFX_CAUSE_COUNT][48];
    for (int k = CFX_CAUSE_BRIGHTNESS; s == CFX_OK && k < CFX_CAUSE_COUNT; k++) {
        if (k == CFX_CAUSE_SATURATION && sh.c != 3) continue;
        double grid[8];
        int ng = cfx_cause_grid_fit((cfx_cause)k, sh.h, sh.w, grid);
        int64_t per = d->images->numel / n;
        for (int64_t i = 0; s == CFX_OK && i < n; i++) {
            cfx_rng r;
            cfx_rng_split(&root, (uint64_t)(k * n + i), &r);
            cfx_tensor src = *d->images, dst = *xc;
            src.shape[0] = dst.shape[0] = 1;
            src.numel = dst.numel = per;
            src.data += i * per, dst.data += i * per;
            s = cfx_corrupt((cfx_cause)k, grid[cfx_rng_below(&r, (uint64_t)ng)], &src, &dst, &r);
        }
        if (s == CFX_OK && !score_split(c, xc, rho2, NULL)) s = CFX_EFORMAT;
        double csum = 0;
        for (int64_t i = 0; s == CFX_OK && i < n; i++) csum += rho2[i];
        snprintf(labels[k], sizeof labels[k], "clean vs %s", cfx_cause_name((cfx_cause)k));
        if (s == CFX_OK)
            rows[nrows++] = (auroc_row){labels[k], cfx_auroc(rho, n, rho2, n), csum / n, n};
    }
    cfx_tensor_free(xc);
    /* The folder: the diagram and the numbers. */
    cfx_dir dir = {0};
    if (s == CFX_OK) s = cfx_dir_create(&dir, out, force);
    if (s == CFX_OK) {
        char path[4300];
        snprintf(path, sizeof path, "%s/reliability.png", dir.tmp);
        s = cfx_figure_reliability(path, bin, (int)bins, ece, acc, mean);
        snprintf(path, sizeof path, "%s/report.json", dir.tmp);
        cfx_file f;
        if (s == CFX_OK) s = cfx_file_create(&f, path);
        if (s == CFX_OK) {
            fprintf(f.f, "{\"split\": ");
            cli_json_str(f.f, split);
            fprintf(f.f,
                    ", \"images\": %lld, \"accuracy\": %.6f, \"mean_rho\": %.6f, "
                    "\"threshold\": %g, \"low\": %lld, \"ece\": %.6f, \"bins\": [",
                    (long long)n, acc, mean, thr, (long long)nn, ece);
            for (int k = 0; k < bins; k++)
                fprintf(f.f, "%s{\"n\": %lld, \"mean_rho\": %.6f, \"accuracy\": %.6f}",
                        k ? ", " : "", (long long)bin[k].n, bin[k].mean_score, bin[k].accuracy);
            fprintf(f.f, "], \"auroc\": [");
            for (int r = 0; r < nrows; r++) {
                fprintf(f.f, "%s{\"what\": ", r ? ", " : "");
                cli_json_str(f.f, rows[r].name);
                fprintf(f.f, ", \"auroc\": %.6f, \"mean_rho\": %.6f, \"images\": %lld}",
                        rows[r].auroc, rows[r].mean_rho, (long long)rows[r].n);
            }
            fprintf(f.f, "]}\n");
            s = cfx_file_commit(&f);
        }
        if (s == CFX_OK) s = cfx_dir_commit(&dir);
        if (s != CFX_OK) cfx_dir_abort(&dir);
    }
    int rc = 0;
    int64_t lowc = 0;
    for (int64_t i = 0; s == CFX_OK && i < n; i++) lowc += rho[i] < thr;
    if (s != CFX_OK) {
        rc = cli_fail(cmd, NULL);
    } else if (json) {
        printf("{\"split\": ");
        cli_json_str(stdout, split);
        printf(", \"images\": %lld, \"accuracy\": %.6f, \"mean_rho\": %.6f, \"ece\": %.6f, "
               "\"low\": %lld, \"auroc\": {",
               (long long)n, acc, mean, ece, (long long)lowc);
        for (int r = 0; r < nrows; r++) {
            printf("%s", r ? ", " : "");
            cli_json_str(stdout, rows[r].name);
            printf(": %.6f", rows[r].auroc);
        }
        printf("}, \"out\": ");
        cli_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("%s split of %s: %lld images, accuracy %.2f%%, mean rho %.4f, ECE %.4f (%lld "
               "bins), %lld with rho < %g\n",
               split, data, (long long)n, 100 * acc, mean, ece, bins, (long long)lowc, thr);
        printf("%-28s %8s %10s %8s\n", "AUROC of rho", "AUROC", "mean rho", "images");
        for (int r = 0; r < nrows; r++)
            printf("%-28s %8.4f %10.4f %8lld\n", rows[r].name, rows[r].auroc, rows[r].mean_rho,
                   (long long)rows[r].n);
        printf("wrote %s/reliability.png and %s/report.json\n", out, out);
    }
    free(rho), free(rho2), free(pred), free(right), free(pos), free(neg);
    cfx_dataset_free(ood);
    cfx_dataset_free(d);
    cfx_bundle_free(b);
    return rc;
}

/* ---------------------------------------------------------------------- examples --- */

static int comp_examples(int argc, char **argv) {
    const char *cmd = "competency examples";
    const char *bundle = NULL, *data = NULL, *out = NULL;
    long long per_cause = 100, seed = 0, batch = 100, threads = 0;
    int force = 0, json = 0;
    const cli_opt opts[] = {
        {"bundle", "DIR", "a bundle written by cfx competency fit", .str = &bundle,
         .required = true, .role = CLI_IN},
        {"data", "DIR", "a dataset folder (its test and ood splits are used)", .str = &data,
         .required = true, .role = CLI_IN},
        CLI_OPT_OUT_DIR(&out, "DIR", "the examples folder to write"),
        {"per-cause", "N", "examples per cause", .i = &per_cause, .lo = 1, .hi = 1000000},
        CLI_OPT_SEED(&seed, "the order of images and factors, and the noise"),
        {"batch", "N", "images per forward pass", .i = &batch, .lo = 1, .hi = 100000},
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(
        cmd,
        "Makes low-competency examples for each cause: correctly classified high-competency\n"
        "test images corrupted (brightness, contrast, saturation, noise, pixelation) with the\n"
        "first factor of the cause's grid, in a seeded order, that drives rho below the\n"
        "threshold; held-out-class images with low rho (spatial); and high-competency test\n"
        "images as controls (none). Writes images.npy, examples.jsonl and a PNG contact\n"
        "sheet per cause.\n",
        opts, CLI_LEN(opts), argc, argv);
    cli_set_threads(threads);
    cfx_bundle *b = cfx_bundle_load(bundle, batch);
    if (!b) return cli_fail(cmd, NULL);
    cfx_dataset *test = cfx_dataset_load(data, "test"), *ood = NULL;
    if (test) ood = cfx_dataset_load(data, "ood");
    if (!test || !ood) {
        cfx_dataset_free(test);
        cfx_bundle_free(b);
        return cli_fail(cmd, NULL);
    }
    cfx_examples_options o = {
        .per_cause = per_cause, .seed = (uint64_t)seed, .progress = {cfx_progress_stderr, NULL}};
    cfx_tensor *x = NULL;
    cfx_example *ex = NULL;
    int64_t n = 0;
    cfx_examples_summary sum;
    double t0 = cfx_now();
    cfx_status s = test->num_classes == b->num_classes
                       ? cfx_examples_generate(b->competency, test, ood, &o, &x, &ex, &n, &sum)
                       : cfx_set_error(CFX_ESHAPE,
                                       "'%s' has %d classes but the bundle's classifier "
                                       "has %d",
                                       data, test->num_classes, b->num_classes);
    cfx_dir dir = {0};
    if (s == CFX_OK) s = cfx_dir_create(&dir, out, force);
    char path[4300];
    if (s == CFX_OK) {
        snprintf(path, sizeof path, "%s/images.npy", dir.tmp);
        s = cfx_npy_write(path, x);
    }
    if (s == CFX_OK) {
        cfx_file f;
        snprintf(path, sizeof path, "%s/examples.jsonl", dir.tmp);
        s = cfx_file_create(&f, path);
        for (int64_t i = 0; s == CFX_OK && i < n; i++) {
            const cfx_example *e = &ex[i];
            fprintf(f.f, "{\"index\": %lld, \"cause\": \"%s\", \"factor\": ", (long long)i,
                    cfx_cause_name(e->cause));
            if (isnan(e->factor))
                fprintf(f.f, "null");
            else
                fprintf(f.f, "%g", e->factor);
            fprintf(f.f, ", \"split\": \"%s\", \"row\": %lld, \"label\": %d, \"class\": ",
                    e->from_ood ? "ood" : "test", (long long)e->row, e->label);
            if (e->from_ood)
                fprintf(f.f, "null");
            else
                cli_json_str(f.f, b->class_names[e->label]);
            fprintf(f.f, ", \"rho_before\": %.7g, \"rho_after\": %.7g}\n", e->rho_before,
                    e->rho_after);
        }
        if (s == CFX_OK) s = cfx_file_commit(&f);
    }
    /* A contact sheet per cause: its examples in order, 10 to a row. */
    for (int k = 0; s == CFX_OK && k < CFX_CAUSE_COUNT; k++) {
        int64_t first = 0;
        while (first < n && ex[first].cause != (cfx_cause)k) first++;
        if (first == n) continue;
        cfx_tensor view = *x;
        int64_t per = x->numel / n;
        view.shape[0] = sum.made[k], view.numel = sum.made[k] * per,
        view.data = x->data + first * per;
        snprintf(path, sizeof path, "%s/%s.png", dir.tmp, cfx_cause_name((cfx_cause)k));
        cfx_grid_options g = {
            .cols = 10, .scale = x->shape[2] <= 32 ? 3 : 1, .pad = 2, .pad_value = 1};
        s = cfx_image_write_grid(path, &view, &g);
    }
    if (s == CFX_OK) s = cfx_dir_commit(&dir);
    if (s != CFX_OK && dir.tmp) cfx_dir_abort(&dir);
    int rc = 0;
    if (s != CFX_OK) {
        rc = cli_fail(cmd, NULL);
    } else if (json) {
        printf("{\"out\": ");
        cli_json_str(stdout, out);
        printf(", \"examples\": %lld, \"candidates\": %lld, \"causes\": {", (long long)n,
               (long long)sum.candidates);
        for (int k = 0; k < CFX_CAUSE_COUNT; k++) {
            printf("%s\"%s\": {\"made\": %lld, \"tried\": %lld, \"not_below\": %lld, \"skipped\": ",
                   k ? ", " : "", cfx_cause_name((cfx_cause)k), (long long)sum.made[k],
                   (long long)sum.tried[k], (long long)sum.no_factor[k]);
            if (sum.skipped[k])
                cli_json_str(stdout, sum.skipped[k]);
            else
                printf("null");
            printf("}");
        }
        printf("}, \"seconds\": %.2f}\n", cfx_now() - t0);
    } else {
        printf("%lld examples from %s in %.1f s (%lld correctly classified test images with rho "
               ">= threshold to draw from)\n",
               (long long)n, data, cfx_now() - t0, (long long)sum.candidates);
        printf("%-12s %8s %8s %10s  %s\n", "cause", "made", "tried", "not below", "note");
        for (int k = 0; k < CFX_CAUSE_COUNT; k++) {
            char note[160] = "";
            if (sum.skipped[k])
                snprintf(note, sizeof note, "skipped: %s", sum.skipped[k]);
            else if (sum.made[k] < per_cause)
                snprintf(note, sizeof note, "fewer than %lld: the source images ran out",
                         per_cause);
            printf("%-12s %8lld %8lld %10lld  %s\n", cfx_cause_name((cfx_cause)k),
                   (long long)sum.made[k], (long long)sum.tried[k], (long long)sum.no_factor[k],
                   note);
        }
        printf("wrote %s (images.npy, examples.jsonl, a PNG per cause)\n", out);
    }
    cfx_tensor_free(x);
    cfx_free(ex);
    cfx_dataset_free(test), cfx_dataset_free(ood);
    cfx_bundle_free(b);
    return rc;
}

int cmd_competency(int argc, char **argv) {
    static const cli_command leaves[] = {
        {"fit", comp_fit, "calibrate PaRCE on a dataset's calib split and write a bundle"},
        {"score", comp_score, "competency of images: one JSON line each"},
        {"report", comp_report, "calibration error, reliability diagram and AUROCs of rho"},
        {"examples", comp_examples, "low-competency examples for each of the six causes"},
    };
    return cli_dispatch("competency",
                        "Competency (PaRCE): the probability that the classifier's prediction is\n"
                        "correct, from its softmax and an autoencoder's reconstruction loss.\n",
                        leaves, CLI_LEN(leaves), argc, argv);
}
