/* cmd_data.c - `cfx data`: writes the built-in datasets (Fashion-MNIST, generated speed-limit
 * signs) or an image folder as dataset folders that training and the other commands read, and
 * previews a split as an image grid. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_text =
    "usage: cfx data <what> [options]\n"
    "\n"
    "Writes a dataset folder: manifest.json plus <split>_images.npy (uint8 N,C,H,W) and\n"
    "<split>_labels.npy (uint8 N) for the splits train, calib (calibration, never used for\n"
    "training), test and ood (the held-out classes). The folder is written under a temporary\n"
    "name and renamed at the end, so it is complete or absent.\n"
    "\n"
    "  cfx data fashion-mnist --out DIR   Fashion-MNIST from Debian's dataset-fashion-mnist\n"
    "  cfx data signs --out DIR           generated photographs of speed-limit signs\n"
    "  cfx data folder --src DIR --out DIR  an image folder (one sub-folder per class)\n"
    "  cfx data preview --data DIR --out grid.png  a grid of a split's images\n"
    "\n"
    "`cfx data <what> --help` lists the options.\n";

static const char *help_fmnist =
    "usage: cfx data fashion-mnist --out DIR [options]\n"
    "\n"
    "Splits Fashion-MNIST: test = the official 10k test set without the held-out class;\n"
    "calib = a seeded, per-class fraction of the official training set without it; train =\n"
    "the rest; ood = the held-out class's images from the official TEST set.\n"
    "\n"
    "  --out DIR          folder to write (required)\n"
    "  --holdout K        class id held out of training, 0..9, or -1 for none (default 9,\n"
    "                     \"Ankle boot\")\n"
    "  --calib-frac F     fraction of the training set for calibration (default 0.1)\n"
    "  --seed S           seed of the calibration draw (default 0)\n"
    "  --source DIR       the gzip IDX files (default /usr/share/datasets/fashion-mnist)\n"
    "  --force            replace DIR if it exists and is not empty\n"
    "  --json             print one JSON object instead of the summary\n";

static const char *help_signs =
    "usage: cfx data signs --out DIR [options]\n"
    "\n"
    "Generates photographs of round speed-limit signs (30, 50, 60, 70, 80, 100, 120 km/h in\n"
    "training; the held-out speed, 20 by default, only in ood) over varied scenes, with random\n"
    "scale, position, rotation, perspective, blur, lighting, colour cast and noise.\n"
    "\n"
    "  --out DIR          folder to write (required)\n"
    "  --size N           image side in pixels (default 32)\n"
    "  --train N          training images per class (default 10000)\n"
    "  --calib N          calibration images per class (default 200)\n"
    "  --test N           test images per class (default 200)\n"
    "  --ood N            images of the held-out speed (default 500)\n"
    "  --per-class N      sets --train, and --calib and --test to N/5\n"
    "  --holdout SPEED    speed held out of training (default 20; none for no ood split)\n"
    "  --supersample K    samples per pixel side when drawing the sign (default 4)\n"
    "  --font PATH        TrueType font (default DejaVu Sans Bold from fonts-dejavu-core)\n"
    "  --seed S           seed (default 0); the same seed gives the same bytes\n"
    "  --threads N        threads, 0 for all cores (default 0); results do not depend on it\n"
    "  --force            replace DIR if it exists and is not empty\n"
    "  --json             print one JSON object instead of the summary\n";

static const char *help_folder =
    "usage: cfx data folder --src DIR --out DIR [options]\n"
    "\n"
    "Reads an image folder with one sub-folder of PNG/JPEG images per class (class names are\n"
    "the folder names, in name order) and splits each class by seeded fractions.\n"
    "\n"
    "  --src DIR          the image folder (required)\n"
    "  --out DIR          folder to write (required)\n"
    "  --channels C       1 (grey) or 3 (RGB); default: that of the first image\n"
    "  --size HxW         image size every file must have; default: that of the first image\n"
    "  --holdout NAMES    comma-separated class folders to hold out (ood); default none\n"
    "  --calib-frac F     fraction of each class for calibration (default 0.1)\n"
    "  --test-frac F      fraction of each class for testing (default 0.2)\n"
    "  --seed S           seed (default 0)\n"
    "  --force            replace DIR if it exists and is not empty\n"
    "  --json             print one JSON object instead of the summary\n";

static const char *help_preview =
    "usage: cfx data preview --data DIR --out grid.png [options]\n"
    "\n"
    "Writes the first N images of a split as one PNG grid.\n"
    "\n"
    "  --data DIR         a dataset folder written by cfx data (required)\n"
    "  --out PNG          the grid to write (required)\n"
    "  --split NAME       train, calib, test or ood (default test)\n"
    "  --n N              images to show (default 64)\n"
    "  --cols N           images per row (default: a square)\n"
    "  --scale K          upscaling factor (default: 4 for images up to 32 pixels, else 1)\n"
    "  --json             print one JSON object instead of the summary\n";

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

/* Fetches an option's value or fails. */
#define VALUE(flag)                                                                                \
    (i + 1 < argc ? argv[++i] : (cli_fail(cmd, "%s needs a value", flag), (char *)NULL))

static int data_fmnist(int argc, char **argv) {
    const char *cmd = "data fashion-mnist";
    cfx_data_options o = {.progress = {cfx_progress_stderr, NULL}};
    const char *source = NULL;
    long long holdout = 9, seed = 0;
    double frac = 0.1;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help_fmnist, stdout);
            return 0;
        } else if (!strcmp(a, "--out")) {
            if (!(o.out = VALUE(a))) return 1;
        } else if (!strcmp(a, "--source")) {
            if (!(source = VALUE(a))) return 1;
        } else if (!strcmp(a, "--holdout")) {
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, -1, 9, &holdout)) return 1;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, 0, 1LL << 53, &seed)) return 1;
        } else if (!strcmp(a, "--calib-frac")) {
            if (!(v = VALUE(a)) || !cli_parse_double(cmd, a, v, &frac)) return 1;
            if (!(frac > 0 && frac < 1)) return cli_fail(cmd, "--calib-frac must be in (0, 1)");
        } else if (!strcmp(a, "--force")) {
            o.force = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            return cli_fail(cmd, "unknown option '%s' (see cfx data fashion-mnist --help)", a);
        }
    }
    if (!o.out) return cli_fail(cmd, "--out DIR is required");
    o.seed = (uint64_t)seed;
    double t0 = cfx_now();
    if (cfx_data_prepare_fashion_mnist(&o, source, (int)holdout, frac) != CFX_OK)
        return cli_fail(cmd, NULL);
    return report(cmd, o.out, cfx_now() - t0, json);
}

static int data_signs(int argc, char **argv) {
    const char *cmd = "data signs";
    cfx_data_options o = {.progress = {cfx_progress_stderr, NULL}};
    cfx_signs_options so = {.size = 32, .supersample = 4};
    cfx_signs_counts c = {10000, 200, 200, 500, 20};
    long long seed = 0, threads = 0, v64;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help_signs, stdout);
            return 0;
        } else if (!strcmp(a, "--out")) {
            if (!(o.out = VALUE(a))) return 1;
        } else if (!strcmp(a, "--font")) {
            if (!(so.font_path = VALUE(a))) return 1;
        } else if (!strcmp(a, "--size") || !strcmp(a, "--supersample") || !strcmp(a, "--train") ||
                   !strcmp(a, "--calib") || !strcmp(a, "--test") || !strcmp(a, "--ood") ||
                   !strcmp(a, "--per-class") || !strcmp(a, "--threads")) {
            long long lo = !strcmp(a, "--size") ? 8 : !strcmp(a, "--supersample") ? 1 : 0;
            long long hi = !strcmp(a, "--size") ? 1024 : !strcmp(a, "--supersample") ? 16 : 1000000;
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, lo, hi, &v64)) return 1;
            int x = (int)v64;
            if (!strcmp(a, "--size"))
                so.size = x;
            else if (!strcmp(a, "--supersample"))
                so.supersample = x;
            else if (!strcmp(a, "--train"))
                c.train = x;
            else if (!strcmp(a, "--calib"))
                c.calib = x;
            else if (!strcmp(a, "--test"))
                c.test = x;
            else if (!strcmp(a, "--ood"))
                c.ood = x;
            else if (!strcmp(a, "--threads"))
                threads = x;
            else
                c.train = x, c.calib = c.test = x / 5 > 0 ? x / 5 : 1;
        } else if (!strcmp(a, "--holdout")) {
            if (!(v = VALUE(a))) return 1;
            if (!strcmp(v, "none"))
                c.holdout = -1;
            else if (!cli_parse_int(cmd, a, v, 1, 1000, &v64))
                return 1;
            else
                c.holdout = (int)v64;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, 0, 1LL << 53, &seed)) return 1;
        } else if (!strcmp(a, "--force")) {
            o.force = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            return cli_fail(cmd, "unknown option '%s' (see cfx data signs --help)", a);
        }
    }
    if (!o.out) return cli_fail(cmd, "--out DIR is required");
    cli_set_threads(threads);
    o.seed = (uint64_t)seed;
    double t0 = cfx_now();
    if (cfx_data_prepare_signs(&o, &so, &c) != CFX_OK) return cli_fail(cmd, NULL);
    return report(cmd, o.out, cfx_now() - t0, json);
}

static int data_folder(int argc, char **argv) {
    const char *cmd = "data folder";
    cfx_data_options o = {.progress = {cfx_progress_stderr, NULL}};
    const char *src = NULL, *holdout = NULL;
    long long seed = 0, channels = 0;
    int h = 0, w = 0, json = 0;
    double cf = 0.1, tf = 0.2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help_folder, stdout);
            return 0;
        } else if (!strcmp(a, "--out")) {
            if (!(o.out = VALUE(a))) return 1;
        } else if (!strcmp(a, "--src")) {
            if (!(src = VALUE(a))) return 1;
        } else if (!strcmp(a, "--holdout")) {
            if (!(holdout = VALUE(a))) return 1;
        } else if (!strcmp(a, "--channels")) {
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, 1, 3, &channels)) return 1;
            if (channels == 2) return cli_fail(cmd, "--channels is 1 or 3");
        } else if (!strcmp(a, "--size")) {
            if (!(v = VALUE(a))) return 1;
            if (sscanf(v, "%dx%d", &h, &w) != 2 || h < 1 || w < 1 || h > 65536 || w > 65536)
                return cli_fail(cmd, "--size takes HxW such as 32x32, not '%s'", v);
        } else if (!strcmp(a, "--calib-frac") || !strcmp(a, "--test-frac")) {
            double *f = !strcmp(a, "--calib-frac") ? &cf : &tf;
            if (!(v = VALUE(a)) || !cli_parse_double(cmd, a, v, f)) return 1;
            if (!(*f > 0 && *f < 1)) return cli_fail(cmd, "%s must be in (0, 1)", a);
        } else if (!strcmp(a, "--seed")) {
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, 0, 1LL << 53, &seed)) return 1;
        } else if (!strcmp(a, "--force")) {
            o.force = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            return cli_fail(cmd, "unknown option '%s' (see cfx data folder --help)", a);
        }
    }
    if (!src || !o.out) return cli_fail(cmd, "--src DIR and --out DIR are required");
    o.seed = (uint64_t)seed;
    double t0 = cfx_now();
    if (cfx_data_prepare_folder(&o, src, (int)channels, h, w, holdout, cf, tf) != CFX_OK)
        return cli_fail(cmd, NULL);
    return report(cmd, o.out, cfx_now() - t0, json);
}

static int data_preview(int argc, char **argv) {
    const char *cmd = "data preview";
    const char *data = NULL, *out = NULL, *split = "test";
    long long n = 64, cols = 0, scale = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help_preview, stdout);
            return 0;
        } else if (!strcmp(a, "--data")) {
            if (!(data = VALUE(a))) return 1;
        } else if (!strcmp(a, "--out")) {
            if (!(out = VALUE(a))) return 1;
        } else if (!strcmp(a, "--split")) {
            if (!(split = VALUE(a))) return 1;
        } else if (!strcmp(a, "--n")) {
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, 1, 100000, &n)) return 1;
        } else if (!strcmp(a, "--cols")) {
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, 1, 10000, &cols)) return 1;
        } else if (!strcmp(a, "--scale")) {
            if (!(v = VALUE(a)) || !cli_parse_int(cmd, a, v, 1, 64, &scale)) return 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            return cli_fail(cmd, "unknown option '%s' (see cfx data preview --help)", a);
        }
    }
    if (!data || !out) return cli_fail(cmd, "--data DIR and --out PNG are required");
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

int cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "fashion-mnist")) return data_fmnist(argc - 1, argv + 1);
    if (!strcmp(argv[1], "signs")) return data_signs(argc - 1, argv + 1);
    if (!strcmp(argv[1], "folder")) return data_folder(argc - 1, argv + 1);
    if (!strcmp(argv[1], "preview")) return data_preview(argc - 1, argv + 1);
    return cli_fail("data", "unknown dataset '%s' (fashion-mnist, signs, folder, preview)",
                    argv[1]);
}
