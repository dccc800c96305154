/* cmd_train.c - `cfx train classifier|autoencoder` and `cfx eval classifier|autoencoder`. */
#include "cli.h"

#include <getopt.h>
#include <libgen.h>
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
    int resume, json, constant_lr;
} train_args;

static const char *train_help =
    "usage: cfx train classifier|autoencoder --data DIR --out MODEL.onnx [options]\n"
    "\n"
    "Trains a model on the train split of a dataset folder written by `cfx data`, evaluates it\n"
    "on the test split, and writes it as ONNX. The built-in architectures are the reference\n"
    "ones (see README); --model trains a user's own ONNX model instead. An autoencoder is also\n"
    "written as encoder.onnx and decoder.onnx beside MODEL.onnx, split at the tensor 'latent',\n"
    "with a PNG grid of test images (top rows) and their reconstructions (bottom rows).\n"
    "\n"
    "options:\n"
    "  --data DIR          dataset folder (required)\n"
    "  --out FILE          output model (required)\n"
    "  --model FILE        train this ONNX model instead of the built-in architecture\n"
    "  --epochs N          epochs (default 10)\n"
    "  --batch N           batch size (default 64)\n"
    "  --lr X              Adam learning rate (default 0.001), decayed to 0 along a\n"
    "                      cosine over the run\n"
    "  --constant-lr       keep the learning rate constant\n"
    "  --latent N          autoencoder latent size (default 256)\n"
    "  --seed N            initialisation and shuffling (default 0)\n"
    "  --threads N         threads (default: all cores)\n"
    "  --checkpoint FILE   checkpoint written after every epoch (default OUT.ckpt)\n"
    "  --resume            continue from the checkpoint if it exists\n"
    "  --grid FILE         autoencoder: reconstruction grid (default beside OUT,\n"
    "                      reconstructions.png)\n"
    "  --json              print the summary as one JSON object\n";

static const char *eval_help =
    "usage: cfx eval classifier|autoencoder --model MODEL.onnx --data DIR [options]\n"
    "\n"
    "Evaluates a model on one split of a dataset folder: a classifier's accuracy and confusion\n"
    "matrix (rows: true class, columns: predicted), or an autoencoder's mean squared\n"
    "reconstruction error.\n"
    "\n"
    "options:\n"
    "  --model FILE   ONNX model (required)\n"
    "  --data DIR     dataset folder (required)\n"
    "  --split NAME   train, calib, test or ood (default test)\n"
    "  --batch N      batch size (default 256)\n"
    "  --threads N    threads (default: all cores)\n"
    "  --json         print the summary as one JSON object\n";

static int parse(const char *cmd, int argc, char **argv, train_args *a, const char *help) {
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"model", required_argument, 0, 'm'},
                                         {"epochs", required_argument, 0, 'e'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"lr", required_argument, 0, 'l'},
                                         {"latent", required_argument, 0, 'z'},
                                         {"seed", required_argument, 0, 's'},
                                         {"threads", required_argument, 0, 't'},
                                         {"checkpoint", required_argument, 0, 'c'},
                                         {"resume", no_argument, 0, 'r'},
                                         {"split", required_argument, 0, 'p'},
                                         {"grid", required_argument, 0, 'g'},
                                         {"constant-lr", no_argument, 0, 'k'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a = (train_args){.epochs = 10, .batch = 64, .lr = 1e-3, .latent = 256, .split = "test"};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'd':
                a->data = optarg;
                break;
            case 'o':
                a->out = optarg;
                break;
            case 'm':
                a->model = optarg;
                break;
            case 'c':
                a->checkpoint = optarg;
                break;
            case 'p':
                a->split = optarg;
                break;
            case 'g':
                a->grid = optarg;
                break;
            case 'r':
                a->resume = 1;
                break;
            case 'j':
                a->json = 1;
                break;
            case 'e':
                if (!cli_parse_int(cmd, "--epochs", optarg, 1, 100000, &a->epochs)) return 1;
                break;
            case 'b':
                if (!cli_parse_int(cmd, "--batch", optarg, 1, 65536, &a->batch)) return 1;
                break;
            case 'z':
                if (!cli_parse_int(cmd, "--latent", optarg, 1, 65536, &a->latent)) return 1;
                break;
            case 's':
                if (!cli_parse_int(cmd, "--seed", optarg, 0, INT64_MAX, &a->seed)) return 1;
                break;
            case 't':
                if (!cli_parse_int(cmd, "--threads", optarg, 0, 1024, &a->threads)) return 1;
                break;
            case 'l':
                if (!cli_parse_double(cmd, "--lr", optarg, &a->lr) || !(a->lr > 0))
                    return cli_fail(cmd, "--lr must be a positive number");
                break;
            case 'h':
                fputs(help, stdout);
                return -1;
            default:
                return cli_fail(cmd, "unknown or incomplete option '%s' (see --help)",
                                argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_fail(cmd, "unexpected argument '%s' (see --help)", argv[optind]);
    cli_set_threads(a->threads);
    return 0;
}

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

static int train_main(const char *what, int argc, char **argv) {
    const char *cmd = strcmp(what, "classifier") == 0 ? "train classifier" : "train autoencoder";
    int is_clf = strcmp(what, "classifier") == 0;
    train_args a;
    int rc = parse(cmd, argc, argv, &a, train_help);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.data || !a.out) return cli_fail(cmd, "--data and --out are required (see --help)");
    char ckpt[4096];
    if (!a.checkpoint) {
        snprintf(ckpt, sizeof ckpt, "%s.ckpt", a.out);
        a.checkpoint = ckpt;
    }
    cfx_dataset *train = cfx_dataset_load(a.data, "train");
    if (!train) return cli_fail_status(cmd, "load data");
    cfx_dataset *test = cfx_dataset_load(a.data, "test");
    if (!test) {
        cfx_dataset_free(train);
        return cli_fail_status(cmd, "load data");
    }
    cfx_graph *g = NULL;
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
            s = cfx_model_classifier(g, x, train->num_classes, &rng, &ids);
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
    cfx_train_options o = {.epochs = (int)a.epochs,
                           .batch = (int)a.batch,
                           .lr = (float)a.lr,
                           .constant_lr = a.constant_lr,
                           .seed = (uint64_t)a.seed,
                           .checkpoint = a.checkpoint,
                           .resume = a.resume,
                           .progress = {cfx_progress_stderr, NULL}};
    char note[4200];
    snprintf(note, sizeof note,
             "cfx %s: interrupted. The same command with --resume continues from the last "
             "finished epoch (checkpoint '%s'), if there is one.",
             cmd, a.checkpoint);
    cfx_set_signal_note(note);
    cfx_train_result res;
    float *labels = is_clf ? labels_as_floats(train) : NULL;
    s = is_clf ? cfx_train_classifier(g, x, y, im, labels, &o, &res)
               : cfx_train_autoencoder(g, x, y, im, &o, &res);
    free(labels);
    if (s != CFX_OK) {
        cli_fail_status(cmd, "train");
        goto fail;
    }
    double metric = 0;
    int64_t *conf = NULL;
    if (is_clf) {
        labels = labels_as_floats(test);
        conf = calloc((size_t)test->num_classes * (size_t)test->num_classes, sizeof *conf);
        s = cfx_eval_classifier(g, x, y, test->images, labels, test->num_classes, 256, conf,
                                &metric);
        free(labels);
    } else {
        s = cfx_eval_autoencoder(g, x, y, test->images, 256, &metric);
    }
    free(conf);
    if (s != CFX_OK) {
        cli_fail_status(cmd, "evaluate");
        goto fail;
    }
    if (cfx_onnx_save(g, a.out, &y, 1) != CFX_OK) {
        cli_fail_status(cmd, "save model");
        goto fail;
    }
    char enc[4096] = "", dec[4096] = "", grid[4096] = "";
    if (!is_clf) {
        beside(enc, sizeof enc, a.out, "encoder.onnx");
        beside(dec, sizeof dec, a.out, "decoder.onnx");
        if (cfx_onnx_split(a.out, "latent", enc, dec) != CFX_OK) {
            cli_fail_status(cmd, "split autoencoder");
            goto fail;
        }
        if (a.grid)
            snprintf(grid, sizeof grid, "%s", a.grid);
        else
            beside(grid, sizeof grid, a.out, "reconstructions.png");
        s = write_recon_grid(g, x, y, test->images, grid);
        if (s != CFX_OK) {
            cli_fail_status(cmd, "write grid");
            goto fail;
        }
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
        if (!is_clf) printf("wrote %s, %s, %s\n", enc, dec, grid);
    }
    cfx_graph_free(g);
    cfx_dataset_free(train);
    cfx_dataset_free(test);
    return 0;
fail:
    cfx_graph_free(g);
    cfx_dataset_free(train);
    cfx_dataset_free(test);
    return 1;
}

static int eval_main(const char *what, int argc, char **argv) {
    const char *cmd = strcmp(what, "classifier") == 0 ? "eval classifier" : "eval autoencoder";
    int is_clf = strcmp(what, "classifier") == 0;
    train_args a;
    int rc = parse(cmd, argc, argv, &a, eval_help);
    if (rc) return rc < 0 ? 0 : rc;
    if (!a.model || !a.data) return cli_fail(cmd, "--model and --data are required (see --help)");
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
        s = cfx_eval_classifier(g, x, y, d->images, labels, C, (int)(a.batch == 64 ? 256 : a.batch),
                                conf, &metric);
    } else {
        s = cfx_eval_autoencoder(g, x, y, d->images, (int)(a.batch == 64 ? 256 : a.batch), &metric);
    }
    if (s != CFX_OK) {
        cli_fail_status(cmd, "evaluate");
        goto done;
    }
    if (a.json) {
        printf("{\"model\": ");
        cli_json_str(stdout, a.model);
        printf(", \"split\": ");
        cli_json_str(stdout, a.split);
        printf(", \"images\": %lld", (long long)d->n);
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

static int dispatch(int argc, char **argv, int (*fn)(const char *, int, char **), const char *help,
                    const char *cmd) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "classifier") != 0 && strcmp(argv[1], "autoencoder") != 0)
        return cli_fail(cmd, "unknown model kind '%s': classifier or autoencoder", argv[1]);
    return fn(argv[1], argc - 1, argv + 1);
}

int cmd_train(int argc, char **argv) {
    return dispatch(argc, argv, train_main, train_help, "train");
}

int cmd_eval(int argc, char **argv) {
    return dispatch(argc, argv, eval_main, eval_help, "eval");
}
