/* bench_loop.c - the V-CECE loop's two pixel phases on their own, for bench/loop.sh to set
 * beside NumPy and PyTorch on the same inputs: the built-in editor's removal (the object's
 * mask dilated by 2 pixels, then cfx_image_inpaint) and the ONNX classifier's label of one
 * image (cfx_image_classifier_onnx, the loop's classify call).
 *
 * usage: bench_loop SCENES CLASSIFIER.onnx N OUTDIR
 * Takes the first N test images of SCENES/concepts.json and each of their objects; writes
 * OUTDIR/inpainted.npy (one inpainted image per object, in that order) and OUTDIR/probs.npy
 * (one row of class probabilities per image) for the Python side to compare, and prints
 * "inpaint_median S" and "classify_median S" (seconds per call, 1 thread, after one warm-up
 * pass). */
#include "cfx.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what) {
    fprintf(stderr, "bench_loop: %s: %s\n", what, cfx_last_error());
    exit(1);
}

/* Run lengths over the image (outside, inside, ...) into a 0/1 mask. */
static void decode_rle(const cJSON *rle, uint8_t *m, size_t n) {
    size_t at = 0;
    int in = 0;
    const cJSON *v;
    memset(m, 0, n);
    cJSON_ArrayForEach(v, rle) {
        size_t len = (size_t)v->valuedouble;
        if (in)
            for (size_t i = at; i < at + len && i < n; i++) m[i] = 1;
        at += len, in = !in;
    }
}

/* The editor's dilation: a square neighbourhood of radius r. */
static void dilate(const uint8_t *m, int h, int w, int r, uint8_t *out) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = 0;
            for (int dy = -r; dy <= r && !v; dy++)
                for (int dx = -r; dx <= r && !v; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy >= 0 && xx >= 0 && yy < h && xx < w) v = m[yy * w + xx] != 0;
                }
            out[y * w + x] = v;
        }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: bench_loop SCENES CLASSIFIER.onnx N OUTDIR\n");
        return 2;
    }
    cfx_set_threads(1);
    const char *scenes = argv[1], *out = argv[4];
    int want = atoi(argv[3]);
    char path[4200], *text = NULL;
    snprintf(path, sizeof path, "%s/concepts.json", scenes);
    if (cfx_file_read_all(path, &text, NULL) != CFX_OK) die("concepts.json");
    cJSON *j = cJSON_Parse(text);
    const cJSON *im, *images = cJSON_GetObjectItem(j, "images");
    /* The classes from the manifest's order. */
    char *mtext = NULL;
    snprintf(path, sizeof path, "%s/manifest.json", scenes);
    if (cfx_file_read_all(path, &mtext, NULL) != CFX_OK) die("manifest.json");
    cJSON *man = cJSON_Parse(mtext);
    const cJSON *cls = cJSON_GetObjectItem(man, "classes"), *c;
    const char *names[64];
    int ncls = 0;
    cJSON_ArrayForEach(c, cls) if (ncls < 64) names[ncls++] = c->valuestring;
    cfx_image_classifier *clf = cfx_image_classifier_onnx(argv[2], names, ncls);
    if (!clf) die("classifier");
    int n = 0, nobj = 0, h = 0, w = 0;
    cfx_tensor **img = calloc((size_t)want, sizeof *img);
    uint8_t **masks = NULL;
    int *owner = NULL, cap = 0;
    cJSON_ArrayForEach(im, images) {
        const char *split = cJSON_GetStringValue(cJSON_GetObjectItem(im, "split"));
        if (n == want || !split || strcmp(split, "test")) continue;
        snprintf(path, sizeof path, "%s/%s", scenes,
                 cJSON_GetStringValue(cJSON_GetObjectItem(im, "file")));
        if (!(img[n] = cfx_image_read(path, 3))) die("image");
        h = (int)img[n]->shape[1], w = (int)img[n]->shape[2];
        const cJSON *o, *rles = cJSON_GetObjectItem(im, "masks");
        cJSON_ArrayForEach(o, rles) {
            if (nobj == cap) {
                cap = cap ? 2 * cap : 64;
                masks = realloc(masks, (size_t)cap * sizeof *masks);
                owner = realloc(owner, (size_t)cap * sizeof *owner);
            }
            uint8_t *m = malloc((size_t)h * w);
            masks[nobj] = malloc((size_t)h * w);
            decode_rle(o, m, (size_t)h * w);
            dilate(m, h, w, 2, masks[nobj]);
            free(m);
            owner[nobj++] = n;
        }
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "bench_loop: no test images in %s\n", scenes);
        return 1;
    }
    size_t per = (size_t)3 * h * w;
    cfx_tensor *inp = cfx_tensor_new(4, (int64_t[]){nobj, 3, h, w});
    cfx_tensor *probs = cfx_tensor_new(2, (int64_t[]){n, ncls});
    double *t = malloc((size_t)(nobj > n ? nobj : n) * sizeof *t);
    char ans[256];
    int lab;
    for (int pass = 0; pass < 2; pass++) /* the first pass warms up */
        for (int k = 0; k < nobj; k++) {
            float *dst = inp->data + k * per;
            memcpy(dst, img[owner[k]]->data, per * sizeof(float));
            double t0 = cfx_now();
            if (cfx_image_inpaint(dst, 3, h, w, masks[k]) != CFX_OK) die("inpaint");
            t[k] = cfx_now() - t0;
        }
    printf("inpaint_median %.9f\n", median(t, nobj));
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            double t0 = cfx_now();
            if (clf->classify(clf->user, img[i], &lab, probs->data + i * ncls, ans, sizeof ans) !=
                CFX_OK)
                die("classify");
            t[i] = cfx_now() - t0;
        }
    printf("classify_median %.9f\nimages %d\nobjects %d\nsize %dx%d\n", median(t, n), n, nobj, h,
           w);
    snprintf(path, sizeof path, "%s/inpainted.npy", out);
    if (cfx_npy_write(path, inp) != CFX_OK) die("inpainted.npy");
    snprintf(path, sizeof path, "%s/probs.npy", out);
    if (cfx_npy_write(path, probs) != CFX_OK) die("probs.npy");
    for (int i = 0; i < n; i++) cfx_tensor_free(img[i]);
    for (int k = 0; k < nobj; k++) free(masks[k]);
    free(img), free(masks), free(owner), free(t);
    cfx_tensor_free(inp), cfx_tensor_free(probs);
    cfx_image_classifier_free(clf);
    cJSON_Delete(j), cJSON_Delete(man);
    cfx_free(text), cfx_free(mtext);
    return 0;
}
