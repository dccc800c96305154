/* cmd_train.c - `cfx train classifier|autoencoder` and `cfx eval classifier|autoencoder`.
 * Under mpirun (cfx-mpi) training is data parallel: every rank loads the data and builds the
 * model alike, trains its block of every batch (cfx_train_shard, gradients summed by
 * cli_mpi_sum), and rank 0 alone writes the checkpoint, the model and the report. */
#include "cli.h"
#include "mpi.h"

#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        cfx_status s_ = (expr);                                                                    \
        if (s_ != CFX_OK) return s_;                                                               \
    } while (0)

typedef struct {
    const char *data, *out, *model, *checkpoint, *split, *grid;
    long long epochs, batch, seed, threads, latent;
    double lr;
    int resume, json, constant_lr, force, arch;
} train_args;

/* The first input and first output of a graph loaded from ONNX, found by name. */
static int onnx_io(const char *cmd, cfx_graph *g, const char *path, int *x, int *y) {
    cfx_onnx_info *info = cfx_onnx_info_load(path);
    if (!info) return cli_fail_status(cmd, "read model");
    if (info->n_inputs < 1 || info->n_outputs < 1) {
        cfx_onnx_info_free(info);
        return cli_fail(cmd, "'%s' has no input or no output", path);
    }
    *x = cfx_graph_find(g, info->inputs[0].name);
    *y = cfx_graph_find(g, info->outputs[0].name);
    cfx_onnx_info_free(info);
    if (*x < 0 || *y < 0) return cli_fail(cmd, "'%s': cannot find its input or output", path);
    return 0;
}

static float *labels_as_floats(const cfx_dataset *d) {
    float *l = malloc((size_t)d->n * sizeof *l);
    for (int64_t i = 0; l && i < d->n; i++) l[i] = (float)d->labels[i];
    return l;
}

/* Under mpirun: whether every rank loaded the same training images and labels and, resuming,
 * the same checkpoint (rank 0 names the one that differs). Collective. */
static bool same_on_every_rank(const char *cmd, const cfx_dataset *d, const char *ckpt,
                               bool resume) {
    uint64_t h =
        cfx_fnv1a(CFX_FNV1A_INIT, d->images->data, (size_t)d->images->numel * sizeof(float));
    h = cfx_fnv1a(h, d->labels, (size_t)d->n * sizeof *d->labels);
    char *bytes = NULL;
    size_t size = 0;
    if (resume && cfx_file_read_all(ckpt, &bytes, &size) == CFX_OK) h = cfx_fnv1a(h, bytes, size);
    cfx_free(bytes);
    return cli_mpi_same(cmd, resume ? "training data or checkpoint" : "training data", h);
}

/* A path beside `model`: dirname(model)/name. */
static void beside(char *buf, size_t n, const char *model, const char *name) {
    char *copy = strdup(model);
    snprintf(buf, n, "%s/%s", dirname(copy), name);
    free(copy);
}

/* Writes 16 test images (top row) over their reconstructions (bottom row) as one PNG. */
static cfx_status write_recon_grid(cfx_graph *g, int x, int y, const cfx_tensor *images,
                                   const char *path) {
    int64_t n = images->shape[0] < 16 ? images->shape[0] : 16,
            per = images->numel / images->shape[0];
    int64_t shape[4] = {n, images->shape[1], images->shape[2], images->shape[3]};
    TRY(cfx_graph_reshape_input(g, x, 4, shape));
    TRY(cfx_graph_replan(g));
    memcpy(cfx_graph_tensor(g, x)->data, images->data, (size_t)(n * per) * sizeof(float));
    TRY(cfx_graph_forward(g));
    shape[0] = 2 * n;
    cfx_tensor *pair = cfx_tensor_new(4, shape);
    if (!pair) return CFX_ENOMEM;
    memcpy(pair->data, images->data, (size_t)(n * per) * sizeof(float));
    memcpy(pair->data + n * per, cfx_graph_tensor(g, y)->data, (size_t)(n * per) * sizeof(float));
    cfx_status s = cfx_image_write_grid(
        path, pair, &(cfx_grid_options){.cols = (int)n, .scale = 4, .pad = 2, .pad_value = 0.5f});
    cfx_tensor_free(pair);
    return s;
}

static const char *const arch_words[] = {"reference", "conv-pool", NULL};

/* `cfx train classifier|autoencoder`: argv[0] says which. */
static int train_main(int argc, char **argv) {
    int is_clf = strcmp(argv[0], "classifier") == 0;
    const char *what = is_clf ? "classifier" : "autoencoder";
    const char *cmd = is_clf ? "train classifier" : "train autoencoder";
    train_args a = {.epochs = 10, .batch = 64, .lr = 1e-3, .latent = 256, .arch = -1};
    const cli_opt opts[] = {
        {"data", "DIR", "dataset folder", .str = &a.data, .required = true, .role = CLI_IN},
        CLI_OPT_OUT(&a.out, "FILE", "output model"),
        {"model", "FILE", "train this ONNX model instead of the built-in architecture",
         .str = &a.model, .role = CLI_IN},
        /* The classifier's own option: the autoencoder's table leaves it out. */
        {"arch", "A",
         "the built-in architecture: reference (the competency paper's) or conv-pool (five "
         "convolutions with instance normalisation and a global max pool: learns whether an "
         "item is anywhere, as the scenes' classes ask)",
         .pick = &a.arch, .choices = arch_words, .def = "reference"},
        {"epochs", "N", "epochs", .i = &a.epochs, .lo = 1, .hi = 100000},
        {"batch", "N", "batch size", .i = &a.batch, .lo = 1, .hi = 65536},
        {"lr", "X", "Adam learning rate, decayed to 0 along a cosine over the run", .num = &a.lr,
         .min = 0, .max = INFINITY},
        {"constant-lr", NULL, "keep the learning rate constant", .flag = &a.constant_lr},
        CLI_OPT_SEED(&a.seed, "seed of the initialisation and the shuffling"),
        CLI_OPT_THREADS(&a.threads),
        {"checkpoint", "FILE", "checkpoint written after every epoch", .str = &a.checkpoint,
         .def = "OUT.ckpt", .role = CLI_WORK},
        {"resume", NULL, "continue from the checkpoint if it exists", .flag = &a.resume},
        CLI_OPT_FORCE(&a.force),
        CLI_OPT_JSON(&a.json),
    /* The autoencoder's own options come last: the classifier's table stops before them. */
#define AE_ONLY 2
        {"latent", "N", "latent size", .i = &a.latent, .lo = 1, .hi = 65536},
        {"grid", "FILE", "reconstruction grid", .str = &a.grid,
         .def = "reconstructions.png beside OUT", .role = CLI_OUT},
    };
    cli_opt table[CLI_LEN(opts)];
    int n = 0;
    for (size_t i = 0; i < CLI_LEN(opts) - (is_clf ? AE_ONLY : 0); i++)
        if (is_clf || strcmp(opts[i].name, "arch") != 0) table[n++] = opts[i];
    cli_parse(cmd,
              is_clf ? "Trains a classifier on the train split of a dataset folder written by `cfx "
                       "data`,\nevaluates it on the test split, and writes it as ONNX. The "
                       "built-in architecture is\nthe reference one, or conv-pool with --arch (see "
                       "README); --model trains a user's\nown ONNX model instead.\n"
                     : "Trains an autoencoder on the train split of a dataset folder written by "
                       "`cfx data`,\nevaluates it on the test split, and writes it as ONNX, and "
                       "also as encoder.onnx and\ndecoder.onnx beside OUT, split at the tensor "
                       "'latent', with a PNG grid of test images\n(top rows) and their "
                       "reconstructions (bottom rows). The built-in architecture is the\n"
                       "reference one (see README); --model trains a user's own ONNX model "
                       "instead.\n",
              table, n, argc, argv);
    if (a.model && a.arch >= 0)
        cli_usage_error(cmd, "--arch chooses a built-in architecture; --model trains its own: "
                             "give one of them");
    cli_set_threads(a.threads);
    /* The outputs the table does not name, checked like its own before any work: a folder
     * that does not exist fails now, not after training. */
    char ckpt[4096], enc[4096] = "", dec[4096] = "", grid[4096] = "";
    if (!a.checkpoint) {
        snprintf(ckpt, sizeof ckpt, "%s.ckpt", a.out);
        a.checkpoint = ckpt;
        cli_check_output("the checkpoint", a.checkpoint, CLI_WORK);
    }
    if (!is_clf) {
        beside(enc, sizeof enc, a.out, "encoder.onnx");
        beside(dec, sizeof dec, a.out, "decoder.onnx");
        cli_check_output("the encoder", enc, CLI_OUT);
        cli_check_output("the decoder", dec, CLI_OUT);
        if (!a.grid) {
            beside(grid, sizeof grid, a.out, "reconstructions.png");
            a.grid = grid;
            cli_check_output("the grid", a.grid, CLI_OUT);
        }
    }
    /* Under mpirun the ranks agree (cli_mpi_first_failure) once all have loaded and built, so
     * that one rank's failure before then ends all, the lowest failing rank saying why. */
    const int rank = cli_mpi_rank(), ranks = cli_mpi_size();
    bool agreed = ranks == 1;
    cfx_graph *g = NULL;
    cfx_dataset *test = NULL, *train = cfx_dataset_load(a.data, "train");
    if (!train || !(test = cfx_dataset_load(a.data, "test"))) {
        cli_fail_status(cmd, "load data");
        goto fail;
    }
    int x = -1, y = -1;
    cfx_rng rng;
    cfx_rng_init(&rng, (uint64_t)a.seed);
    const cfx_tensor *im = train->images;
    cfx_status s = CFX_OK;
    if (a.model) {
        g = cfx_onnx_load(a.model, &(cfx_onnx_options){.batch = 1});
        if (!g || onnx_io(cmd, g, a.model, &x, &y)) {
            if (!g) cli_fail_status(cmd, "load model");
            goto fail;
        }
        if (!is_clf) {
            const char *latent = "latent";
            if (cfx_graph_find(g, latent) < 0) {
                cli_fail(cmd, "'%s' has no tensor named 'latent' to split at", a.model);
                goto fail;
            }
        }
    } else {
        g = cfx_graph_new();
        x = cfx_graph_input(g, "input", 4,
                            (int64_t[]){1, im->shape[1], im->shape[2], im->shape[3]});
        if (is_clf) {
            cfx_classifier_ids ids;
            s = a.arch == 1 ? cfx_model_classifier_conv_pool(g, x, train->num_classes, &rng, &ids)
                            : cfx_model_classifier(g, x, train->num_classes, &rng, &ids);
            y = ids.probs;
        } else {
            cfx_autoencoder_ids ids;
            s = cfx_model_autoencoder(g, x, (int)a.latent, &rng, &ids);
            y = ids.reconstruction;
        }
        if (s != CFX_OK) {
            cli_fail_status(cmd, "build model");
            goto fail;
        }
    }
    if (!agreed) {
        int failed = cli_mpi_first_failure(false);
        agreed = true;
        if (failed >= 0 || !same_on_every_rank(cmd, train, a.checkpoint, a.resume)) goto fail;
    }
    cfx_train_shard shard = {rank, ranks, cli_mpi_sum, NULL};
    cfx_train_options o = {.epochs = (int)a.epochs,
                           .batch = (int)a.batch,
                           .lr = (float)a.lr,
                           .constant_lr = a.constant_lr,
                           .seed = (uint64_t)a.seed,
                           .checkpoint = a.checkpoint,
                           .resume = a.resume,
                           .progress = {rank ? NULL : cfx_progress_stderr, NULL},
                           .shard = ranks > 1 ? &shard : NULL};
    char note[4200];
    snprintf(note, sizeof note,
             "cfx %s: interrupted. The same command with --resume continues from the last "
             "finished epoch (checkpoint '%s'), if there is one.",
             cmd, a.checkpoint);
    if (rank == 0) cfx_set_signal_note(note);
    cfx_train_result res;
    float *labels = is_clf ? labels_as_floats(train) : NULL;
    if (is_clf && !labels) {
        cli_fail(cmd, "out of memory");
        goto fail;
    }
    s = is_clf ? cfx_train_classifier(g, x, y, im, labels, &o, &res)
               : cfx_train_autoencoder(g, x, y, im, &o, &res);
    free(labels);
    if (s != CFX_OK) {
        int64_t lo, hi;
        cli_mpi_block(a.batch, rank, ranks, &lo, &hi);
        if (ranks > 1)
            cli_fail(cmd, "rank %d of %d (images %lld..%lld of each batch): %s", rank, ranks,
                     (long long)lo, (long long)hi - 1, cfx_last_error());
        else
            cli_fail_status(cmd, "train");
        goto fail;
    }
    if (rank > 0) { /* rank 0 evaluates and writes */
        cfx_graph_free(g);
        cfx_dataset_free(train);
        cfx_dataset_free(test);
        return 0;
    }
    double metric = 0;
    int64_t *conf = NULL;
    if (is_clf) {
        labels = labels_as_floats(test);
        conf = calloc((size_t)test->num_classes * (size_t)test->num_classes, sizeof *conf);
        if (labels && conf)
            s = cfx_eval_classifier(g, x, y, test->images, labels, test->num_classes, 256, conf,
                                    &metric);
        free(labels);
        if (!labels || !conf) {
            free(conf);
            cli_fail(cmd, "out of memory");
            goto fail;
        }
    } else {
        s = cfx_eval_autoencoder(g, x, y, test->images, 256, &metric);
    }
    free(conf);
    if (s != CFX_OK) {
        cli_fail(cmd, NULL); /* "eval: ..." */
        goto fail;
    }
    /* The model, and an autoencoder's halves and grid, are renamed into place together, once
     * all are written. */
    cfx_outputs outs;
    cfx_outputs_begin(&outs);
    if (cfx_onnx_save(g, a.out, &y, 1) != CFX_OK) {
        cfx_outputs_abort(&outs);
        cli_fail_status(cmd, "save model");
        goto fail;
    }
    if (!is_clf) {
        if (cfx_onnx_split(cfx_outputs_path(&outs, a.out), "latent", enc, dec) != CFX_OK) {
            cfx_outputs_abort(&outs);
            cli_fail_status(cmd, "split autoencoder");
            goto fail;
        }
        s = write_recon_grid(g, x, y, test->images, a.grid);
        if (s != CFX_OK) {
            cfx_outputs_abort(&outs);
            cli_fail_status(cmd, "write grid");
            goto fail;
        }
    }
    if (cfx_outputs_commit(&outs) != CFX_OK) {
        cli_fail_status(cmd, "save");
        goto fail;
    }
    if (a.json) {
        printf("{\"model\": ");
        cli_json_str(stdout, a.out);
        printf(", \"epochs\": %d, \"resumed_from\": %d, \"train_loss\": %.6g, ", res.epochs_done,
               res.resumed_from, res.loss);
        if (is_clf)
            printf("\"train_accuracy\": %.6g, \"test_accuracy\": %.6g", res.accuracy, metric);
        else
            printf("\"test_mse\": %.6g", metric);
        printf(", \"seconds\": %.3f, \"threads\": %d}\n", res.seconds, cfx_get_threads());
    } else {
        printf("trained %s: %d epochs%s, %.1f s on %d threads\n", what, res.epochs_done,
               res.resumed_from ? " (resumed)" : "", res.seconds, cfx_get_threads());
        if (is_clf)
            printf("train loss %.4f, train accuracy %.2f%%, test accuracy %.2f%% (%lld images)\n",
                   res.loss, 100 * res.accuracy, 100 * metric, (long long)test->n);
        else
            printf("train loss %.5f, test reconstruction MSE %.5f (%lld images)\n", res.loss,
                   metric, (long long)test->n);
        printf("wrote %s\n", a.out);
        if (!is_clf) printf("wrote %s, %s, %s\n", enc, dec, a.grid);
    }
    cfx_graph_free(g);
    cfx_dataset_free(train);
    cfx_dataset_free(test);
    return 0;
fail:
    if (!agreed) cli_mpi_first_failure(true); /* the other ranks learn and stop */
    cfx_graph_free(g);
    cfx_dataset_free(train);
    cfx_dataset_free(test);
    return 1;
}

/* `cfx eval classifier|autoencoder`: argv[0] says which. */
static int eval_main(int argc, char **argv) {
    int is_clf = strcmp(argv[0], "classifier") == 0;
    const char *cmd = is_clf ? "eval classifier" : "eval autoencoder";
    train_args a = {.batch = 256, .split = "test"};
    const cli_opt opts[] = {
        {"model", "FILE", "ONNX model", .str = &a.model, .required = true, .role = CLI_IN},
        {"data", "DIR", "dataset folder", .str = &a.data, .required = true, .role = CLI_IN},
        {"split", "NAME", "train, calib, test or ood", .str = &a.split},
        {"batch", "N", "batch size", .i = &a.batch, .lo = 1, .hi = 65536},
        CLI_OPT_THREADS(&a.threads),
        CLI_OPT_JSON(&a.json),
    };
    cli_parse(cmd,
              is_clf ? "Evaluates a classifier on one split of a dataset folder: its accuracy and "
                       "confusion\nmatrix (rows: true class, columns: predicted).\n"
                     : "Evaluates an autoencoder on one split of a dataset folder: its mean "
                       "squared\nreconstruction error.\n",
              opts, CLI_LEN(opts), argc, argv);
    cli_set_threads(a.threads);
    cfx_dataset *d = cfx_dataset_load(a.data, a.split);
    if (!d) return cli_fail_status(cmd, "load data");
    cfx_graph *g = cfx_onnx_load(a.model, &(cfx_onnx_options){.batch = 1, .frozen = 1});
    int x, y, ret = 1;
    int64_t *conf = NULL;
    float *labels = NULL;
    if (!g) {
        cli_fail_status(cmd, "load model");
        goto done;
    }
    if (onnx_io(cmd, g, a.model, &x, &y)) goto done;
    if (cfx_graph_compile(g) != CFX_OK) {
        cli_fail_status(cmd, "compile model");
        goto done;
    }
    double metric;
    cfx_status s;
    int C = d->num_classes;
    if (is_clf) {
        if (strcmp(a.split, "ood") == 0) {
            cli_fail(cmd, "the ood split holds classes the classifier never saw; evaluate "
                          "train, calib or test");
            goto done;
        }
        labels = labels_as_floats(d);
        conf = calloc((size_t)C * (size_t)C, sizeof *conf);
        if (!labels || !conf) {
            cli_fail(cmd, "out of memory");
            goto done;
        }
        s = cfx_eval_classifier(g, x, y, d->images, labels, C, (int)a.batch, conf, &metric);
    } else {
        s = cfx_eval_autoencoder(g, x, y, d->images, (int)a.batch, &metric);
    }
    if (s != CFX_OK) {
        cli_fail(cmd, NULL); /* "eval: ..." */
        goto done;
    }
    if (a.json) {
        printf("{\"model\": ");
        cli_json_str(stdout, a.model);
        printf(", \"split\": ");
        cli_json_str(stdout, a.split);
        printf(", \"images\": %lld, \"batch\": %lld", (long long)d->n, a.batch);
        if (is_clf) {
            printf(", \"accuracy\": %.6g, \"classes\": [", metric);
            for (int i = 0; i < C; i++) {
                if (i) printf(", ");
                cli_json_str(stdout, d->class_names[i]);
            }
            printf("], \"confusion\": [");
            for (int i = 0; i < C; i++) {
                printf(i ? ", [" : "[");
                for (int j = 0; j < C; j++)
                    printf(j ? ", %lld" : "%lld", (long long)conf[i * C + j]);
                printf("]");
            }
            printf("]}\n");
        } else {
            printf(", \"mse\": %.6g}\n", metric);
        }
    } else if (is_clf) {
        printf("accuracy %.2f%% on %lld %s images\n\nconfusion (rows: true, columns: predicted)\n",
               100 * metric, (long long)d->n, a.split);
        printf("%14s", "");
        for (int j = 0; j < C; j++) printf(" %6.6s", d->class_names[j]);
        printf("\n");
        for (int i = 0; i < C; i++) {
            printf("%14.14s", d->class_names[i]);
            for (int j = 0; j < C; j++) printf(" %6lld", (long long)conf[i * C + j]);
            printf("\n");
        }
    } else {
        printf("reconstruction MSE %.6f on %lld %s images\n", metric, (long long)d->n, a.split);
    }
    ret = 0;
done:
    free(conf);
    free(labels);
    cfx_graph_free(g);
    cfx_dataset_free(d);
    return ret;
}

int cmd_train(int argc, char **argv) {
    static const cli_command leaves[] = {
        {"classifier", train_main, "a classifier: the reference one or an ONNX model"},
        {"autoencoder", train_main, "an autoencoder, also written as encoder and decoder"},
    };
    return cli_dispatch("train",
                        "Trains a model on the train split of a dataset folder written by `cfx "
                        "data`,\nevaluates it on the test split, and writes it as ONNX.\n",
                        leaves, CLI_LEN(leaves), argc, argv);
}

int cmd_eval(int argc, char **argv) {
    static const cli_command leaves[] = {
        {"classifier", eval_main, "accuracy and confusion matrix"},
        {"autoencoder", eval_main, "mean squared reconstruction error"},
    };
    return cli_dispatch("eval", "Evaluates a model on one split of a dataset folder.\n", leaves,
                        CLI_LEN(leaves), argc, argv);
}
