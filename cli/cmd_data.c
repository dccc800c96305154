/* cmd_data.c - `cfx data`: writes the built-in datasets (Fashion-MNIST, generated speed-limit
 * signs) or an image folder as dataset folders that training and the other commands read, and
 * previews a split as an image grid. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *about_data =
    "Writes a dataset folder: manifest.json plus <split>_images.npy (uint8 N,C,H,W) and\n"
    "<split>_labels.npy (uint8 N) for the splits train, calib (calibration, never used for\n"
    "training), test and ood (the held-out classes). The folder is written under a temporary\n"
    "name and renamed at the end, so it is complete or absent.\n";

/* Prints the summary of a written folder from its manifest. */
static int report(const char *cmd, const char *out, double secs, int json) {
    char path[4200], *text;
    snprintf(path, sizeof path, "%s/manifest.json", out);
    if (cfx_file_read_all(path, &text, NULL) != CFX_OK) return cli_fail_status(cmd, "summary");
    cJSON *m = cJSON_Parse(text);
    cfx_free(text);
    if (!m) return cli_fail(cmd, "'%s' is not valid JSON", path);
    if (json) {
        char *s = cJSON_PrintUnformatted(m);
        printf("{\"out\": ");
        cli_json_str(stdout, out);
        printf(", \"seconds\": %.3f, \"manifest\": %s}\n", secs, s ? s : "null");
        cJSON_free(s);
    } else {
        const cJSON *name = cJSON_GetObjectItem(m, "name"),
                    *cls = cJSON_GetObjectItem(m, "classes");
        const cJSON *shape = cJSON_GetObjectItem(m, "image_shape");
        printf("wrote %s dataset to %s in %.2f s\n", cJSON_GetStringValue(name), out, secs);
        printf("images %dx%dx%d, %d classes:", cJSON_GetArrayItem(shape, 0)->valueint,
               cJSON_GetArrayItem(shape, 1)->valueint, cJSON_GetArrayItem(shape, 2)->valueint,
               cJSON_GetArraySize(cls));
        const cJSON *c;
        cJSON_ArrayForEach(c, cls) printf(" %s%s", cJSON_GetStringValue(c), c->next ? "," : "\n");
        const cJSON *all = cJSON_GetObjectItem(m, "all_classes"), *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItem(m, "holdout"))
            printf("held out: %s (id %d)\n",
                   cJSON_GetStringValue(cJSON_GetArrayItem(all, h->valueint)), h->valueint);
        const cJSON *sp;
        cJSON_ArrayForEach(sp, cJSON_GetObjectItem(m, "splits")) {
            const cJSON *from = cJSON_GetObjectItem(sp, "from");
            printf("  %-6s %7d images  %s\n", sp->string,
                   cJSON_GetObjectItem(sp, "count")->valueint,
                   from ? cJSON_GetStringValue(from) : "");
        }
    }
    cJSON_Delete(m);
    return 0;
}

static int data_fmnist(int argc, char **argv) {
    const char *cmd = "data fashion-mnist";
    cfx_data_options o = {.progress = {cfx_progress_stderr, NULL}};
    const char *source = NULL;
    long long holdout = 9, seed = 0;
    double frac = 0.1;
    int json = 0;
    const cli_opt opts[] = {
        CLI_OPT_OUT_DIR(&o.out, "DIR", "folder to write"),
        {"holdout", "K", "class id held out of training, 0..9, or -1 for none", .i = &holdout,
         .lo = -1, .hi = 9, .def = "9, \"Ankle boot\""},
        {"calib-frac", "F", "fraction of the training set for calibration", .num = &frac, .min = 0,
         .max = 1},
        CLI_OPT_SEED(&seed, "seed of the calibration draw"),
        {"source", "DIR", "the gzip IDX files", .str = &source,
         .def = "/usr/share/datasets/fashion-mnist", .role = CLI_IN},
        CLI_OPT_FORCE(&o.force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Splits Fashion-MNIST: test = the official 10k test set without the held-out class;\n"
              "calib = a seeded, per-class fraction of the official training set without it;\n"
              "train = the rest; ood = the held-out class's images from the official TEST set.\n",
              opts, CLI_LEN(opts), argc, argv);
    o.seed = (uint64_t)seed;
    double t0 = cfx_now();
    if (cfx_data_prepare_fashion_mnist(&o, source, (int)holdout, frac) != CFX_OK)
        return cli_fail(cmd, NULL);
    return report(cmd, o.out, cfx_now() - t0, json);
}

static int data_signs(int argc, char **argv) {
    const char *cmd = "data signs";
    cfx_data_options o = {.progress = {cfx_progress_stderr, NULL}};
    cfx_signs_options so = {.font_path = NULL};
    const char *holdout = "20";
    long long size = 32, supersample = 4, ood = 500, seed = 0, threads = 0;
    long long train = -1, calib = -1, test = -1, per_class = -1; /* -1: not given */
    int json = 0;
    const cli_opt opts[] = {
        CLI_OPT_OUT_DIR(&o.out, "DIR", "folder to write"),
        {"size", "N", "image side in pixels", .i = &size, .lo = 8, .hi = 1024},
        {"train", "N", "training images per class", .i = &train, .lo = 0, .hi = 1000000,
         .def = "10000"},
        {"calib", "N", "calibration images per class", .i = &calib, .lo = 0, .hi = 1000000,
         .def = "200"},
        {"test", "N", "test images per class", .i = &test, .lo = 0, .hi = 1000000, .def = "200"},
        {"ood", "N", "images of the held-out speed", .i = &ood, .lo = 0, .hi = 1000000},
        {"per-class", "N",
         "N training images per class, N/5 for calibration and for testing "
         "(--train, --calib and --test override it)",
         .i = &per_class, .lo = 0, .hi = 1000000, .def = "none"},
        {"holdout", "SPEED", "speed held out of training; none for no ood split", .str = &holdout},
        {"supersample", "K", "samples per pixel side when drawing the sign", .i = &supersample,
         .lo = 1, .hi = 16},
        {"font", "PATH", "TrueType font", .str = &so.font_path,
         .def = "DejaVu Sans Bold from fonts-dejavu-core", .role = CLI_IN},
        CLI_OPT_SEED(&seed, "seed; the same seed gives the same bytes"),
        CLI_OPT_THREADS(&threads),
        CLI_OPT_FORCE(&o.force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(
        cmd,
        "Generates photographs of round speed-limit signs (30, 50, 60, 70, 80, 100, 120 km/h\n"
        "in training; the held-out speed, 20 by default, only in ood) over varied scenes,\n"
        "with random scale, position, rotation, perspective, blur, lighting, colour cast and\n"
        "noise. The images do not depend on --threads.\n",
        opts, CLI_LEN(opts), argc, argv);
    long long pc = per_class, pc5 = per_class / 5 > 0 ? per_class / 5 : 1;
    cfx_signs_counts c = {.train = (int)(train >= 0 ? train
                                         : pc >= 0  ? pc
                                                    : 10000),
                          .calib = (int)(calib >= 0 ? calib
                                         : pc >= 0  ? pc5
                                                    : 200),
                          .test = (int)(test >= 0 ? test
                                        : pc >= 0 ? pc5
                                                  : 200),
                          .ood = (int)ood,
                          .holdout = -1};
    if (strcmp(holdout, "none") != 0) {
        char *end;
        long speed = strtol(holdout, &end, 10);
        if (end == holdout || *end || speed < 1 || speed > 1000)
            cli_usage_error(cmd, "--holdout must be 1..1000 or none");
        c.holdout = (int)speed;
    }
    so.size = (int)size;
    so.supersample = (int)supersample;
    cli_set_threads(threads);
    o.seed = (uint64_t)seed;
    double t0 = cfx_now();
    if (cfx_data_prepare_signs(&o, &so, &c) != CFX_OK) return cli_fail(cmd, NULL);
    return report(cmd, o.out, cfx_now() - t0, json);
}

static int data_folder(int argc, char **argv) {
    const char *cmd = "data folder";
    cfx_data_options o = {.progress = {cfx_progress_stderr, NULL}};
    const char *src = NULL, *holdout = NULL, *size = NULL;
    static const char *const channel_words[] = {"1", "3", NULL};
    long long seed = 0;
    int channels = -1, h = 0, w = 0, json = 0;
    double cf = 0.1, tf = 0.2;
    const cli_opt opts[] = {
        {"src", "DIR", "the image folder", .str = &src, .required = true, .role = CLI_IN},
        CLI_OPT_OUT_DIR(&o.out, "DIR", "folder to write"),
        {"channels", "C", "1 (grey) or 3 (RGB)", .pick = &channels, .choices = channel_words,
         .def = "that of the first image"},
        {"size", "HxW", "image size every file must have", .str = &size,
         .def = "that of the first image"},
        {"holdout", "NAMES", "comma-separated class folders to hold out (ood)", .str = &holdout,
         .def = "none"},
        {"calib-frac", "F", "fraction of each class for calibration", .num = &cf, .min = 0,
         .max = 1},
        {"test-frac", "F", "fraction of each class for testing", .num = &tf, .min = 0, .max = 1},
        CLI_OPT_SEED(&seed, "seed of the split"),
        CLI_OPT_FORCE(&o.force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(
        cmd,
        "Reads an image folder with one sub-folder of PNG/JPEG images per class (class names\n"
        "are the folder names, in name order) and splits each class by seeded fractions.\n",
        opts, CLI_LEN(opts), argc, argv);
    int used = 0;
    if (size && (sscanf(size, "%dx%d%n", &h, &w, &used) != 2 || size[used] || h < 1 || w < 1 ||
                 h > 65536 || w > 65536))
        cli_usage_error(cmd, "--size must be HxW such as 32x32");
    o.seed = (uint64_t)seed;
    double t0 = cfx_now();
    if (cfx_data_prepare_folder(&o, src,
                                channels < 0    ? 0
                                : channels == 0 ? 1
                                                : 3,
                                h, w, holdout, cf, tf) != CFX_OK)
        return cli_fail(cmd, NULL);
    return report(cmd, o.out, cfx_now() - t0, json);
}

static int data_preview(int argc, char **argv) {
    const char *cmd = "data preview";
    const char *data = NULL, *out = NULL, *split = "test";
    long long n = 64, cols = 0, scale = 0;
    int json = 0, force = 0;
    const cli_opt opts[] = {
        {"data", "DIR", "a dataset folder written by cfx data", .str = &data, .required = true,
         .role = CLI_IN},
        CLI_OPT_OUT(&out, "PNG", "the grid to write"),
        {"split", "NAME", "train, calib, test or ood", .str = &split},
        {"n", "N", "images to show", .i = &n, .lo = 1, .hi = 100000},
        {"cols", "N", "images per row", .i = &cols, .lo = 1, .hi = 10000, .def = "a square"},
        {"scale", "K", "upscaling factor", .i = &scale, .lo = 1, .hi = 64,
         .def = "4 for images up to 32 pixels, else 1"},
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd, "Writes the first N images of a split as one PNG grid.\n", opts, CLI_LEN(opts),
              argc, argv);
    cfx_dataset *d = cfx_dataset_load(data, split);
    if (!d) return cli_fail(cmd, NULL);
    cfx_tensor *im = d->images;
    int64_t shown = n < d->n ? n : d->n;
    /* Show the first images: a view of the batch with a smaller first dimension. */
    cfx_tensor view = *im;
    view.shape[0] = shown;
    view.numel = shown * im->shape[1] * im->shape[2] * im->shape[3];
    if (!scale) scale = im->shape[2] <= 32 ? 4 : 1;
    cfx_grid_options g = {.cols = (int)cols, .scale = (int)scale, .pad = 2, .pad_value = 1};
    cfx_status s = cfx_image_write_grid(out, &view, &g);
    if (s != CFX_OK) {
        cfx_dataset_free(d);
        return cli_fail(cmd, NULL);
    }
    if (json) {
        printf("{\"out\": ");
        cli_json_str(stdout, out);
        printf(", \"split\": ");
        cli_json_str(stdout, split);
        printf(", \"images\": %lld, \"labels\": [", (long long)shown);
        for (int64_t i = 0; i < shown; i++) printf("%s%d", i ? ", " : "", d->orig_labels[i]);
        printf("]}\n");
    } else {
        printf("wrote %lld %s images of %s to %s\n", (long long)shown, split, data, out);
    }
    cfx_dataset_free(d);
    return 0;
}

static const char *const causes[] = {"brightness", "contrast",   "saturation",
                                     "noise",      "pixelation", NULL};

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static int data_corrupt(int argc, char **argv) {
    const char *cmd = "data corrupt";
    const char *in = NULL, *out = NULL;
    int cause = 0, json = 0, force = 0;
    double factor = NAN;
    long long seed = 0;
    const cli_opt opts[] = {
        {"IN", NULL, "a PNG/JPEG image, or a .npy array (N,C,H,W) of floats in [0,1]", .str = &in,
         .required = true, .positional = true, .role = CLI_IN},
        {"OUT", NULL, "where to write: a PNG for an image, a .npy for an array", .str = &out,
         .required = true, .positional = true, .role = CLI_OUT},
        {"cause", "C", "brightness, contrast, saturation, noise or pixelation", .pick = &cause,
         .choices = causes},
        {"factor", "F",
         "the operation's factor: a blend factor (brightness, contrast, saturation), the noise "
         "amplitude on 0..255, or the pixelation block",
         .num = &factor, .min = -1, .max = 1e6, .def = "required"},
        CLI_OPT_SEED(&seed, "the noise's seed"),
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Applies one cause's image operation, as the competency paper's reference code did\n"
              "(PIL on 8-bit images): brightness blends with black, contrast with the mean grey,\n"
              "saturation with the greyscale image, noise adds uniform integers in [-F, F] and\n"
              "clips, pixelation resizes down by F with nearest neighbour and back up.\n",
              opts, CLI_LEN(opts), argc, argv);
    if (isnan(factor)) cli_usage_error(cmd, "--factor is required");
    bool npy = has_suffix(in, ".npy");
    if (npy != has_suffix(out, ".npy"))
        cli_usage_error(cmd, "OUT must be a .npy for a .npy input and a .png for an image");
    if (!npy && !has_suffix(out, ".png")) cli_usage_error(cmd, "OUT must end in .png");
    cfx_cause c;
    cfx_cause_parse(causes[cause], &c);
    cfx_rng r;
    cfx_rng_init(&r, (uint64_t)seed);
    cfx_tensor *x = npy ? cfx_npy_read(in) : cfx_image_read(in, 0);
    if (!x) return cli_fail(cmd, NULL);
    cfx_status s = CFX_OK;
    if (npy && x->ndim != 4) {
        char shape[64];
        cfx_tensor_shape_str(x->ndim, x->shape, shape, sizeof shape);
        s = cfx_set_error(CFX_ESHAPE, "'%s' holds %s, not images (N,C,H,W)", in, shape);
    }
    for (int64_t i = 0; s == CFX_OK && i < x->numel; i++)
        if (!(x->data[i] >= 0 && x->data[i] <= 1))
            s = cfx_set_error(CFX_EINVAL,
                              "'%s': element %lld is %g; images must be floats in [0,1]", in,
                              (long long)i, x->data[i]);
    cfx_tensor batch = *x;
    if (s == CFX_OK && !npy) { /* (C,H,W) -> (1,C,H,W) */
        batch.ndim = 4;
        for (int d = 3; d > 0; d--) batch.shape[d] = x->shape[d - 1];
        batch.shape[0] = 1;
    }
    if (s == CFX_OK) s = cfx_corrupt(c, factor, &batch, &batch, &r);
    if (s == CFX_OK) s = npy ? cfx_npy_write(out, x) : cfx_image_write_png(out, x);
    int rc = 0;
    if (s != CFX_OK) {
        rc = cli_fail(cmd, NULL);
    } else if (json) {
        printf("{\"cause\": \"%s\", \"factor\": %g, \"images\": %lld, \"out\": ", causes[cause],
               factor, (long long)batch.shape[0]);
        cli_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("wrote %s: %lld image%s, %s %g\n", out, (long long)batch.shape[0],
               batch.shape[0] == 1 ? "" : "s", causes[cause], factor);
    }
    cfx_tensor_free(x);
    return rc;
}

int cmd_data(int argc, char **argv) {
    static const cli_command leaves[] = {
        {"fashion-mnist", data_fmnist, "Fashion-MNIST from Debian's dataset-fashion-mnist"},
        {"signs", data_signs, "generated photographs of speed-limit signs"},
        {"folder", data_folder, "an image folder (one sub-folder per class)"},
        {"preview", data_preview, "a grid of a split's images"},
        {"corrupt", data_corrupt, "one cause's image operation on an image or a .npy of images"},
    };
    return cli_dispatch("data", about_data, leaves, CLI_LEN(leaves), argc, argv);
}
