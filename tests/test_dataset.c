/* test_dataset.c - image folders (and their refusals), dataset folders written whole or not at
 * all, Fashion-MNIST preparation end to end, and loading what was written. */
#include "test.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Writes an h x w RGB PNG whose pixels encode (class, index). */
static void write_png(const char *dir, const char *cls, const char *name, int k, int i, int h,
                      int w) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, cls);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/%s", dir, cls, name);
    uint8_t px[3 * 64 * 64];
    for (int j = 0; j < 3 * h * w; j++) px[j] = (uint8_t)(k * 100 + i * 5 + j % 5);
    CHECK_OK(cfx_image_write_png_u8(path, px, 3, h, w));
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Counts entries of dir whose name starts with prefix (leftover temporary folders). */
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

CFX_TEST(dataset, image_folder_loads_in_name_order) {
    const char *dir = cfx_test_tmpdir();
    char root[600];
    snprintf(root, sizeof root, "%s/imgs", dir);
    mkdir(root, 0700);
    write_png(root, "cat", "b.png", 0, 1, 4, 5);
    write_png(root, "cat", "a.PNG", 0, 0, 4, 5);
    write_png(root, "dog", "x.png", 1, 0, 4, 5);
    char other[800];
    snprintf(other, sizeof other, "%s/dog/readme.txt", root); /* ignored: not an image name */
    FILE *f = fopen(other, "w");
    fputs("hello", f);
    fclose(f);
    cfx_dataset *d = cfx_imagefolder_load(root, 0, 0, 0);
    CHECK_MSG(d != NULL, "%s", cfx_last_error());
    if (!d) return;
    CHECK_INT_EQ(d->n, 3);
    CHECK_INT_EQ(d->num_classes, 2);
    CHECK_STR_EQ(d->class_names[0], "cat");
    CHECK_STR_EQ(d->class_names[1], "dog");
    CHECK_INT_EQ(d->labels[0], 0);
    CHECK_INT_EQ(d->labels[2], 1);
    CHECK_INT_EQ(d->images->shape[1], 3);
    CHECK_INT_EQ(d->images->shape[2], 4);
    CHECK_INT_EQ(d->images->shape[3], 5);
    /* a.PNG (index 0) comes before b.png; pixel 0 of each encodes its index. */
    int64_t per = 3 * 4 * 5;
    CHECK_NEAR(d->images->data[0] * 255, 0, 1e-4);
    CHECK_NEAR(d->images->data[per] * 255, 5, 1e-4);
    CHECK_NEAR(d->images->data[2 * per] * 255, 100, 1e-4);
    cfx_dataset_free(d);
    /* Grey on request. */
    d = cfx_imagefolder_load(root, 1, 4, 5);
    CHECK(d && d->images->shape[1] == 1);
    cfx_dataset_free(d);
}

/* Each class's files in name order, whatever the other classes hold: a later class whose names
 * sort before an earlier one's (zeta in cat, alpha in dog), and classes that share names (000
 * and 001 in each), read every file once from its own folder. (The listing once sorted every
 * class's names together: "cannot open 'f/dog/zeta.png'", or cat's 000 twice and dog read as
 * cat's 001.) */
CFX_TEST(dataset, image_folder_classes_list_their_own_files) {
    const char *dir = cfx_test_tmpdir();
    char root[600];
    snprintf(root, sizeof root, "%s/f", dir);
    mkdir(root, 0700);
    write_png(root, "cat", "zeta.png", 0, 0, 4, 5);
    write_png(root, "dog", "alpha.png", 1, 0, 4, 5);
    cfx_dataset *d = cfx_imagefolder_load(root, 0, 0, 0);
    CHECK_MSG(d != NULL, "%s", cfx_last_error());
    if (d) {
        CHECK_INT_EQ(d->n, 2);
        CHECK_INT_EQ(d->labels[0], 0);
        CHECK_INT_EQ(d->labels[1], 1);
        CHECK_NEAR(d->images->data[60] * 255, 100, 1e-4); /* dog's image, second */
    }
    cfx_dataset_free(d);
    snprintf(root, sizeof root, "%s/g", dir);
    mkdir(root, 0700);
    write_png(root, "cat", "000.png", 0, 0, 4, 5);
    write_png(root, "cat", "001.png", 0, 1, 4, 5);
    write_png(root, "dog", "000.png", 1, 2, 4, 5);
    d = cfx_imagefolder_load(root, 0, 0, 0);
    CHECK_MSG(d != NULL, "%s", cfx_last_error());
    if (d) {
        CHECK_INT_EQ(d->n, 3);
        /* pixel 0 of each image encodes (class, index): 0, 5, 110 */
        const float want[3] = {0, 5, 110};
        for (int i = 0; i < 3; i++) CHECK_NEAR(d->images->data[i * 60] * 255, want[i], 1e-4);
        CHECK_INT_EQ(d->labels[2], 1);
    }
    cfx_dataset_free(d);
}

CFX_TEST(dataset, image_folder_errors_name_the_file) {
    const char *dir = cfx_test_tmpdir();
    char root[600], path[800];
    /* A folder with files but no class folders. */
    snprintf(root, sizeof root, "%s/flat", dir);
    mkdir(root, 0700);
    snprintf(path, sizeof path, "%s/a.png", root);
    fclose(fopen(path, "w"));
    CHECK(cfx_imagefolder_load(root, 0, 0, 0) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "no class folders") && strstr(cfx_last_error(), root),
              "message: %s", cfx_last_error());
    /* A text file named .png. */
    snprintf(root, sizeof root, "%s/fake", dir);
    mkdir(root, 0700);
    write_png(root, "a", "1.png", 0, 0, 4, 4);
    snprintf(path, sizeof path, "%s/a/2.png", root);
    FILE *f = fopen(path, "w");
    fputs("not an image", f);
    fclose(f);
    CHECK(cfx_imagefolder_load(root, 0, 0, 0) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), "not a PNG or JPEG"),
              "message: %s", cfx_last_error());
    /* An image of the wrong size, against the first image and against the size asked. */
    snprintf(root, sizeof root, "%s/sizes", dir);
    mkdir(root, 0700);
    write_png(root, "a", "1.png", 0, 0, 4, 4);
    write_png(root, "b", "1.png", 1, 0, 5, 4);
    CHECK(cfx_imagefolder_load(root, 0, 0, 0) == NULL);
    snprintf(path, sizeof path, "%s/b/1.png", root);
    CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), "4x5"), "message: %s",
              cfx_last_error());
    CHECK(cfx_imagefolder_load(root, 0, 8, 8) == NULL);
    CHECK(strstr(cfx_last_error(), "expected 8x8") != NULL);
    /* An empty class folder, and a folder that does not exist. */
    snprintf(root, sizeof root, "%s/emptyclass", dir);
    mkdir(root, 0700);
    snprintf(path, sizeof path, "%s/a", root);
    mkdir(path, 0700);
    CHECK(cfx_imagefolder_load(root, 0, 0, 0) == NULL);
    CHECK(strstr(cfx_last_error(), path) != NULL);
    CHECK(cfx_imagefolder_load("/nonexistent/imgs", 0, 0, 0) == NULL);
    CHECK(strstr(cfx_last_error(), "/nonexistent/imgs") != NULL);
}

CFX_TEST(dataset, folder_split_round_trip_and_no_partial_output) {
    const char *dir = cfx_test_tmpdir();
    char root[600], out[600], path[800];
    snprintf(root, sizeof root, "%s/imgs", dir);
    mkdir(root, 0700);
    const char *cls[3] = {"ant", "bee", "wasp"};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 10; i++) {
            char name[32];
            snprintf(name, sizeof name, "%02d.png", i);
            write_png(root, cls[k], name, k, i, 6, 6);
        }
    snprintf(out, sizeof out, "%s/ds", dir);
    cfx_data_options o = {.out = out, .seed = 7};
    CHECK_OK(cfx_data_prepare_folder(&o, root, 0, 0, 0, "bee", 0.2, 0.3));
    cfx_dataset *tr = cfx_dataset_load(out, "train"), *te = cfx_dataset_load(out, "test");
    cfx_dataset *ca = cfx_dataset_load(out, "calib"), *ood = cfx_dataset_load(out, "ood");
    CHECK_MSG(tr && te && ca && ood, "%s", cfx_last_error());
    if (tr && te && ca && ood) {
        /* Per class of 10: 3 test, 2 calibration, 5 training; bee (10 images) is ood. */
        CHECK_INT_EQ(tr->n, 10);
        CHECK_INT_EQ(te->n, 6);
        CHECK_INT_EQ(ca->n, 4);
        CHECK_INT_EQ(ood->n, 10);
        CHECK_INT_EQ(tr->num_classes, 2);
        CHECK_STR_EQ(tr->class_names[1], "wasp");
        CHECK_INT_EQ(tr->class_ids[1], 2);
        for (int64_t i = 0; i < tr->n; i++) {
            /* Labels re-indexed; original ids kept; the pixels say which class they came from. */
            CHECK(tr->labels[i] == (tr->orig_labels[i] == 2 ? 1 : 0));
            float px = tr->images->data[i * 3 * 36] * 255;
            CHECK_NEAR(px - fmodf(px, 100.0f), tr->orig_labels[i] * 100, 1e-3);
        }
        for (int64_t i = 0; i < ood->n; i++) {
            CHECK_INT_EQ(ood->labels[i], -1);
            CHECK_INT_EQ(ood->orig_labels[i], 1);
        }
    }
    cfx_dataset_free(tr);
    cfx_dataset_free(te);
    cfx_dataset_free(ca);
    cfx_dataset_free(ood);
    /* An existing non-empty folder is kept unless forced. */
    CHECK_ERR(cfx_data_prepare_folder(&o, root, 0, 0, 0, NULL, 0.2, 0.3), CFX_EINVAL);
    CHECK(strstr(cfx_last_error(), "--force") != NULL);
    o.force = 1;
    CHECK_OK(cfx_data_prepare_folder(&o, root, 0, 0, 0, NULL, 0.2, 0.3));
    cfx_dataset *all = cfx_dataset_load(out, "train");
    CHECK(all && all->num_classes == 3);
    cfx_dataset_free(all);
    CHECK_ERR(cfx_data_prepare_folder(&o, root, 0, 0, 0, "moth", 0.2, 0.3), CFX_ENOTFOUND);
    CHECK(strstr(cfx_last_error(), "moth") != NULL);
    /* A failure half-way (a broken image in the last class) leaves neither a new folder nor a
     * temporary one, and the old folder untouched. */
    snprintf(path, sizeof path, "%s/wasp/09.png", root);
    FILE *f = fopen(path, "w");
    fputs("junk", f);
    fclose(f);
    char out2[600];
    snprintf(out2, sizeof out2, "%s/ds2", dir);
    cfx_data_options o2 = {.out = out2};
    CHECK_ERR(cfx_data_prepare_folder(&o2, root, 0, 0, 0, NULL, 0.2, 0.3), CFX_EFORMAT);
    CHECK(!exists(out2));
    CHECK_ERR(cfx_data_prepare_folder(&o, root, 0, 0, 0, NULL, 0.2, 0.3), CFX_EFORMAT);
    CHECK_INT_EQ(count_prefix(dir, "ds"), 1);
    snprintf(path, sizeof path, "%s/manifest.json", out);
    CHECK(exists(path));
    /* Loading errors: a split that does not exist, a folder that is not a dataset. */
    CHECK(cfx_dataset_load(out, "validation") == NULL);
    CHECK(strstr(cfx_last_error(), "validation") != NULL);
    CHECK(cfx_dataset_load(root, "train") == NULL);
    CHECK(strstr(cfx_last_error(), root) != NULL);
}

#define FMNIST "/usr/share/datasets/fashion-mnist"

CFX_TEST(dataset, fashion_mnist_prepare_end_to_end) {
    const char *dir = cfx_test_tmpdir();
    char out[600], path[800];
    snprintf(out, sizeof out, "%s/fm", dir);
    cfx_data_options o = {.out = out, .seed = 11};
    double t0 = cfx_now();
    CHECK_OK(cfx_data_prepare_fashion_mnist(&o, NULL, 9, 0.1));
    double secs = cfx_now() - t0;
    CHECK_MSG(secs < 20, "took %.1f s", secs);
    /* Official 60k train / 10k test, 6000 / 1000 per class; class 9 held out. */
    const char *splits[4] = {"train", "calib", "test", "ood"};
    const int64_t want[4] = {48600, 5400, 9000, 1000};
    /* The training split is large: its labels are checked from the file alone. */
    snprintf(path, sizeof path, "%s/train_labels.npy", out);
    cfx_tensor *tl = cfx_npy_read(path);
    CHECK(tl && tl->numel == want[0]);
    int64_t tcounts[10] = {0};
    for (int64_t i = 0; tl && i < tl->numel; i++) tcounts[(int)tl->data[i] % 10]++;
    for (int k = 0; k < 9; k++) CHECK_INT_EQ(tcounts[k], 5400);
    cfx_tensor_free(tl);
    for (int s = 1; s < 4; s++) {
        cfx_dataset *d = cfx_dataset_load(out, splits[s]);
        CHECK_MSG(d != NULL, "%s: %s", splits[s], cfx_last_error());
        if (!d) continue;
        CHECK_INT_EQ(d->n, want[s]);
        CHECK_INT_EQ(d->num_classes, 9);
        CHECK_STR_EQ(d->class_names[0], "T-shirt/top");
        CHECK_STR_EQ(d->class_names[8], "Bag");
        CHECK_INT_EQ(d->images->shape[1], 1);
        CHECK_INT_EQ(d->images->shape[2], 28);
        int64_t counts[10] = {0}, bad = 0;
        for (int64_t i = 0; i < d->n; i++) {
            counts[d->orig_labels[i]]++;
            bad += s < 3 ? d->labels[i] != d->orig_labels[i] : d->labels[i] != -1;
        }
        CHECK_INT_EQ(bad, 0);
        CHECK_INT_EQ(counts[9], s == 3 ? 1000 : 0);
        if (s == 1) CHECK_INT_EQ(counts[0], 600); /* stratified */
        float lo = 1, hi = 0;
        for (int64_t i = 0; i < d->images->numel; i++)
            lo = fminf(lo, d->images->data[i]), hi = fmaxf(hi, d->images->data[i]);
        CHECK(lo == 0 && hi == 1);
        cfx_dataset_free(d);
    }
    /* A truncated source file fails, names the file, and writes nothing. */
    char src[600], cmd[2000];
    snprintf(src, sizeof src, "%s/src", dir);
    mkdir(src, 0700);
    snprintf(cmd, sizeof cmd,
             "cp " FMNIST "/train-* " FMNIST "/t10k-labels* '%s' && head -c 2000000 " FMNIST
             "/t10k-images-idx3-ubyte.gz > '%s/t10k-images-idx3-ubyte.gz'",
             src, src);
    CHECK_INT_EQ(system(cmd), 0);
    snprintf(out, sizeof out, "%s/fm2", dir);
    o.out = out;
    CHECK_ERR(cfx_data_prepare_fashion_mnist(&o, src, 9, 0.1), CFX_EFORMAT);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", src);
    CHECK_MSG(strstr(cfx_last_error(), path) != NULL, "message: %s", cfx_last_error());
    CHECK(!exists(out));
    CHECK_INT_EQ(count_prefix(dir, "fm2"), 0);
    CHECK_ERR(cfx_data_prepare_fashion_mnist(&o, NULL, 10, 0.1), CFX_EINVAL);
    CHECK_ERR(cfx_data_prepare_fashion_mnist(&o, NULL, 9, 1.5), CFX_EINVAL);
}

/* A dataset prepared in DIR/ds (its path in out) from an image folder of two classes of five
 * 4x4 PNGs; returns the size of its test split (1 when it did not load, a failed check). */
static int64_t two_class_dataset(const char *dir, char *out, size_t size) {
    char root[600];
    snprintf(root, sizeof root, "%s/imgs", dir);
    mkdir(root, 0700);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 5; i++) {
            char name[32];
            snprintf(name, sizeof name, "%02d.png", i);
            write_png(root, k ? "b" : "a", name, k, i, 4, 4);
        }
    snprintf(out, size, "%s/ds", dir);
    cfx_data_options o = {.out = out, .seed = 1};
    CHECK_OK(cfx_data_prepare_folder(&o, root, 0, 0, 0, NULL, 0.2, 0.2));
    cfx_dataset *d = cfx_dataset_load(out, "test");
    CHECK_MSG(d != NULL, "%s", cfx_last_error());
    int64_t n = d ? d->n : 1;
    cfx_dataset_free(d);
    return n;
}

/* Issue 22: NaN and infinite images passed through (ReLU maps NaN to 0), so an all-NaN test
 * split scored "accuracy 14.29%"; float images of 1e30 trained to a loss of 2e29. A dataset's
 * images are bytes, and every .npy input is finite: each is refused naming the file and the
 * first bad element. */
CFX_TEST(dataset, non_finite_or_non_byte_images_are_refused) {
    const char *dir = cfx_test_tmpdir();
    char out[600], path[800];
    int64_t n = two_class_dataset(dir, out, sizeof out);
    /* The test split's images replaced by floats: NaN, then 1e30, then 255.5. */
    cfx_tensor *t = cfx_tensor_new(4, (int64_t[]){n, 3, 4, 4});
    snprintf(path, sizeof path, "%s/test_images.npy", out);
    const float bad[3] = {NAN, 1e30f, 255.5f};
    const char *want[3] = {"element 37 [0, 2, 1, 1] is a non-finite value (nan)",
                           "element 37 (image 0) is 1e+30", "element 37 (image 0) is 255.5"};
    for (int k = 0; k < 3; k++) {
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = i < 37 ? 7 : bad[k];
        CHECK_OK(cfx_npy_write(path, t));
        cfx_set_error(CFX_OK, "%s", "");
        cfx_dataset *d = cfx_dataset_load(out, "test");
        CHECK_MSG(d == NULL && strstr(cfx_last_error(), want[k]) &&
                      strstr(cfx_last_error(), "test_images.npy"),
                  "%g: loaded %s: %s", (double)bad[k], d ? "fine" : "not", cfx_last_error());
        cfx_dataset_free(d);
    }
    /* Any .npy input: an infinity in an image batch given on a command line. */
    t->data[5] = -INFINITY;
    snprintf(path, sizeof path, "%s/x.npy", dir);
    CHECK_OK(cfx_npy_write(path, t));
    CHECK(cfx_npy_read(path) == NULL);
    CHECK_MSG(strstr(cfx_last_error(),
                     "x.npy': element 5 [0, 0, 1, 1] is a non-finite value (-inf)") != NULL,
              "%s", cfx_last_error());
    cfx_tensor_free(t);
}

/* Found by fuzzing (fuzz/fuzz_manifest.c, tests/data/fuzz-regressions/manifest/): a label of
 * -2.1e33 in a float labels array was converted to int before it was checked (undefined
 * behaviour: UBSan, as `make asan` and the fuzzer build run, failed before the fix). Labels
 * that are no whole class number are refused with their value and index. */
CFX_TEST(dataset, huge_or_fractional_labels_are_refused) {
    const char *dir = cfx_test_tmpdir();
    char out[600], path[800];
    int64_t n = two_class_dataset(dir, out, sizeof out);
    cfx_tensor *t = cfx_tensor_new(1, (int64_t[]){n});
    snprintf(path, sizeof path, "%s/test_labels.npy", out);
    const float bad[3] = {-2.09981e33f, 3e9f, 0.5f};
    const char *want[3] = {"label -2.09981e+33 at index 0", "label 3e+09 at index 0",
                           "label 0.5 at index 0"};
    for (int k = 0; k < 3; k++) {
        t->data[0] = bad[k];
        CHECK_OK(cfx_npy_write(path, t));
        cfx_dataset *d = cfx_dataset_load(out, "test");
        CHECK_MSG(d == NULL && strstr(cfx_last_error(), want[k]) &&
                      strstr(cfx_last_error(), "test_labels.npy"),
                  "%g: loaded %s: %s", (double)bad[k], d ? "fine" : "not", cfx_last_error());
        cfx_dataset_free(d);
    }
    cfx_tensor_free(t);
}
