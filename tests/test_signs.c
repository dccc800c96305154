/* test_signs.c - the speed-limit sign generator: determinism (seed, not threads), image
 * statistics, class balance, and the held-out speed only in ood. */
#include "test.h"

#include <stdlib.h>

/* Per-image statistics of n uint8 (3,S,S) images. */
static void image_stats(const uint8_t *img, int S, double *mean, double *sd, double *red) {
    int P = S * S;
    double s = 0, s2 = 0;
    int nred = 0;
    for (int p = 0; p < P; p++) {
        int r = img[p], g = img[P + p], b = img[2 * P + p];
        nred += r > 100 && r > g + 50 && r > b + 40;
        for (int c = 0; c < 3; c++)
            s += img[c * P + p], s2 += (double)img[c * P + p] * img[c * P + p];
    }
    *mean = s / (3.0 * P);
    *sd = sqrt(fmax(s2 / (3.0 * P) - *mean * *mean, 0));
    *red = (double)nred / P;
}

CFX_TEST(signs, same_seed_same_bytes_any_threads) {
    const int n = 40, S = 32;
    int speeds[40];
    for (int i = 0; i < n; i++) speeds[i] = cfx_signs_speeds[i % CFX_SIGNS_NUM_SPEEDS];
    uint8_t *a = malloc((size_t)n * 3 * S * S), *b = malloc((size_t)n * 3 * S * S);
    cfx_rng r;
    cfx_rng_init(&r, 99);
    CHECK_OK(cfx_signs_generate(NULL, &r, speeds, n, a, NULL));
    cfx_set_threads(2);
    CHECK_OK(cfx_signs_generate(NULL, &r, speeds, n, b, NULL));
    cfx_set_threads(1);
    CHECK(memcmp(a, b, (size_t)n * 3 * S * S) == 0);
    /* Image i depends on i, not on its neighbours: a sub-range reproduces the same images. */
    cfx_rng_init(&r, 100);
    CHECK_OK(cfx_signs_generate(NULL, &r, speeds, n, b, NULL));
    CHECK(memcmp(a, b, (size_t)3 * S * S) != 0);
    free(a);
    free(b);
}

CFX_TEST(signs, images_look_like_varied_photographs) {
    const int n = 160, S = 32;
    int *speeds = malloc(n * sizeof *speeds);
    for (int i = 0; i < n; i++) speeds[i] = cfx_signs_speeds[i % CFX_SIGNS_NUM_SPEEDS];
    uint8_t *img = malloc((size_t)n * 3 * S * S);
    cfx_rng r;
    cfx_rng_init(&r, 3);
    double t0 = cfx_now();
    CHECK_OK(cfx_signs_generate(NULL, &r, speeds, n, img, NULL));
    double per = (cfx_now() - t0) / n;
    /* 10k images in a few seconds; sanitizers and valgrind (the fast subset) are slower. */
    if (!cfx_test_fast()) CHECK_MSG(per < 2e-3, "%.2f ms per image on one thread", per * 1e3);
    int with_red = 0, flat = 0, lo = 255, hi = 0;
    double mean_lo = 1e9, mean_hi = 0;
    for (int i = 0; i < n; i++) {
        double mean, sd, red;
        image_stats(img + (size_t)i * 3 * S * S, S, &mean, &sd, &red);
        with_red += red > 0.03; /* the ring is visible in most images */
        flat += sd < 12;        /* no constant images */
        mean_lo = fmin(mean_lo, mean), mean_hi = fmax(mean_hi, mean);
        for (int p = 0; p < 3 * S * S; p++) {
            int v = img[(size_t)i * 3 * S * S + p];
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    }
    CHECK_MSG(with_red > n * 7 / 10, "%d of %d images show a red ring", with_red, n);
    CHECK_MSG(flat == 0, "%d flat images", flat);
    CHECK_MSG(lo < 20 && hi > 235, "values span %d..%d", lo, hi);
    CHECK_MSG(mean_hi - mean_lo > 60, "brightness varies only from %.0f to %.0f", mean_lo, mean_hi);
    /* Two images of the same speed differ (position, scene, light). */
    CHECK(memcmp(img, img + (size_t)CFX_SIGNS_NUM_SPEEDS * 3 * S * S, (size_t)3 * S * S) != 0);
    /* Other sizes work; bad arguments are refused with a message. */
    cfx_signs_options o = {.size = 64, .supersample = 2};
    CHECK_OK(cfx_signs_generate(&o, &r, speeds, 2, img, NULL));
    CHECK_ERR(cfx_signs_generate(NULL, &r, (int[]){25}, 1, img, NULL), CFX_EINVAL);
    o = (cfx_signs_options){.font_path = "/nonexistent/font.ttf"};
    CHECK_ERR(cfx_signs_generate(&o, &r, speeds, 1, img, NULL), CFX_EIO);
    CHECK(strstr(cfx_last_error(), "/nonexistent/font.ttf") != NULL);
    free(img);
    free(speeds);
}

CFX_TEST(signs, prepared_dataset_is_balanced_deterministic_and_holds_out_20) {
    const char *dir = cfx_test_tmpdir();
    char a[600], b[600], pa[800], pb[800];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    cfx_signs_counts c = {.train = 12, .calib = 3, .test = 4, .ood = 9, .holdout = 20};
    cfx_data_options o = {.out = a, .seed = 5};
    CHECK_OK(cfx_data_prepare_signs(&o, NULL, &c));
    o.out = b;
    cfx_set_threads(2);
    CHECK_OK(cfx_data_prepare_signs(&o, NULL, &c));
    cfx_set_threads(1);
    const char *files[] = {"manifest.json",    "train_images.npy", "train_labels.npy",
                           "calib_images.npy", "calib_labels.npy", "test_images.npy",
                           "test_labels.npy",  "ood_images.npy",   "ood_labels.npy"};
    CHECK_SAME_FILES(a, b, files, 9);
    const char *splits[4] = {"train", "calib", "test", "ood"};
    const int per[4] = {12, 3, 4, 0};
    for (int s = 0; s < 4; s++) {
        cfx_dataset *d = cfx_dataset_load(a, splits[s]);
        CHECK_MSG(d != NULL, "%s", cfx_last_error());
        if (!d) continue;
        CHECK_INT_EQ(d->num_classes, 7);
        CHECK_STR_EQ(d->class_names[0], "30");
        CHECK_STR_EQ(d->class_names[6], "120");
        CHECK_INT_EQ(d->images->shape[1], 3);
        CHECK_INT_EQ(d->images->shape[2], 32);
        int counts[8] = {0};
        for (int64_t i = 0; i < d->n; i++) counts[d->orig_labels[i]]++;
        if (s < 3) {
            CHECK_INT_EQ(d->n, 7 * per[s]);
            CHECK_INT_EQ(counts[0], 0); /* 20 km/h never in train, calib or test */
            for (int k = 1; k < 8; k++) CHECK_INT_EQ(counts[k], per[s]);
            for (int64_t i = 0; i < d->n; i++) CHECK(d->labels[i] == d->orig_labels[i] - 1);
        } else {
            CHECK_INT_EQ(d->n, 9);
            CHECK_INT_EQ(counts[0], 9);
            for (int64_t i = 0; i < d->n; i++) CHECK_INT_EQ(d->labels[i], -1);
        }
        cfx_dataset_free(d);
    }
    /* A different seed gives different images. */
    o.seed = 6;
    o.force = 1;
    CHECK_OK(cfx_data_prepare_signs(&o, NULL, &c));
    char *x = NULL, *y = NULL;
    size_t nx, ny;
    snprintf(pa, sizeof pa, "%s/test_images.npy", a);
    snprintf(pb, sizeof pb, "%s/test_images.npy", b);
    CHECK_OK(cfx_file_read_all(pa, &x, &nx));
    CHECK_OK(cfx_file_read_all(pb, &y, &ny));
    CHECK(x && y && nx == ny && memcmp(x, y, nx) != 0);
    cfx_free(x);
    cfx_free(y);
    c.holdout = 25;
    CHECK_ERR(cfx_data_prepare_signs(&o, NULL, &c), CFX_EINVAL);
}

/* ------------------------------------------------------------ hostile fonts (issue 22) --- */

static void be16(uint8_t *p, int v) {
    p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v;
}
static void be32(uint8_t *p, uint32_t v) {
    be16(p, (int)(v >> 16)), be16(p + 2, (int)(v & 0xffff));
}

/* A minimal TrueType font written by hand (the format's own layout, no library): glyph 0 empty,
 * glyph 1 a square, glyph 2 a composite of glyph 1; the digits map to glyph 1 except '1',
 * which maps to glyph 2, through a format 4 cmap with three segments: '0' and '1' by a delta,
 * '2'..'9' through the glyph id array. Returns its size. */
static size_t tiny_font(uint8_t *f) {
    static const char *tags[7] = {"cmap", "glyf", "head", "hhea", "hmtx", "loca", "maxp"};
    uint8_t t[7][96];
    size_t len[7];
    memset(t, 0, sizeof t);
    /* cmap: one (3, 1) record, format 4 with segments '0', '1', '2'..'9' and the 0xFFFF end. */
    uint8_t *c = t[0];
    be16(c + 2, 1), be16(c + 4, 3), be16(c + 6, 1), be32(c + 8, 12);
    uint8_t *s = c + 12;
    const int ends[4] = {'0', '1', '9', 0xffff}, starts[4] = {'0', '1', '2', 0xffff},
              deltas[4] = {1 - '0', 2 - '1', 0, 1}, range_offsets[4] = {0, 0, 4, 0};
    be16(s, 4), be16(s + 2, 64), be16(s + 6, 8), be16(s + 8, 8), be16(s + 10, 2), be16(s + 12, 0);
    for (int k = 0; k < 4; k++) {
        be16(s + 14 + 2 * k, ends[k]);
        be16(s + 24 + 2 * k, starts[k]);
        be16(s + 32 + 2 * k, deltas[k]);
        be16(s + 40 + 2 * k, range_offsets[k]);
    }
    for (int k = 0; k < 8; k++) be16(s + 48 + 2 * k, 1); /* '2'..'9' -> glyph 1 */
    len[0] = 12 + 64;
    /* glyf: glyph 1, a square of four on-curve points (two-byte deltas); glyph 2, glyph 1 as a
     * component at (0, 0). */
    uint8_t *g = t[1];
    const int sq_x[4] = {50, 500, 0, -500}, sq_y[4] = {0, 0, 700, 0};
    be16(g, 1), be16(g + 2, 50), be16(g + 4, 0), be16(g + 6, 550), be16(g + 8, 700);
    be16(g + 10, 3), be16(g + 12, 0);
    for (int k = 0; k < 4; k++)
        g[14 + k] = 1, be16(g + 18 + 2 * k, sq_x[k]), be16(g + 26 + 2 * k, sq_y[k]);
    g += 34;
    be16(g, -1), be16(g + 2, 50), be16(g + 4, 0), be16(g + 6, 550), be16(g + 8, 700);
    be16(g + 10, 3), be16(g + 12, 1), be16(g + 14, 0), be16(g + 16, 0);
    len[1] = 52;
    /* head (units per em 1000, short loca), hhea (ascent 800, descent -200, 3 metrics), hmtx,
     * loca (offsets / 2), maxp 0.5 (3 glyphs). */
    be32(t[2], 0x10000), be32(t[2] + 12, 0x5F0F3CF5), be16(t[2] + 18, 1000);
    be16(t[2] + 36, 50), be16(t[2] + 40, 550), be16(t[2] + 42, 700);
    len[2] = 54;
    be32(t[3], 0x10000), be16(t[3] + 4, 800), be16(t[3] + 6, -200), be16(t[3] + 34, 3);
    len[3] = 36;
    for (int k = 0; k < 3; k++) be16(t[4] + 4 * k, 600), be16(t[4] + 4 * k + 2, 50);
    len[4] = 12;
    be16(t[5] + 2, 0), be16(t[5] + 4, 17), be16(t[5] + 6, 26);
    len[5] = 8;
    be32(t[6], 0x5000), be16(t[6] + 4, 3);
    len[6] = 6;
    memset(f, 0, 12 + 16 * 7);
    be32(f, 0x10000), be16(f + 4, 7);
    size_t off = 12 + 16 * 7;
    for (int k = 0; k < 7; k++) {
        memcpy(f + 12 + 16 * k, tags[k], 4);
        be32(f + 12 + 16 * k + 8, (uint32_t)off), be32(f + 12 + 16 * k + 12, (uint32_t)len[k]);
        memcpy(f + off, t[k], len[k]);
        off += (len[k] + 3) & ~(size_t)3;
    }
    return off;
}

/* Draws one image of each speed with the font in file path; the status. */
static cfx_status draw_with_font(const char *path, uint8_t *out) {
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_signs_options o = {.font_path = path, .size = 8, .supersample = 1};
    return cfx_signs_generate(&o, &r, cfx_signs_speeds, CFX_SIGNS_NUM_SPEEDS, out, NULL);
}

/* Issue 22: a file that is not a font (text, PNG, a truncated TTF) crashed stb_truetype. Every
 * truncation and some thousands of corruptions of a small valid font are drawn or refused with
 * a message naming the file; none crashes (the sanitizer build checks every read). */
CFX_TEST(signs, hostile_fonts_are_refused_not_crashed_on) {
    static uint8_t font[1024], bad[1024], out[CFX_SIGNS_NUM_SPEEDS * 3 * 8 * 8];
    size_t n = tiny_font(font);
    char path[600];
    snprintf(path, sizeof path, "%s/f.ttf", cfx_test_tmpdir());
    FILE *f = fopen(path, "wb");
    fwrite(font, 1, n, f);
    fclose(f);
    CHECK_OK(draw_with_font(path, out)); /* the font itself is fine, composite and all */
    int refused = 0, drawn = 0;
    cfx_rng r;
    cfx_rng_init(&r, 22);
    int trials = cfx_test_fast() ? 500 : 2000;
    for (int t = 0; t < (int)n + trials; t++) {
        size_t m = n;
        memcpy(bad, font, n);
        if (t < (int)n) {
            m = (size_t)t; /* every truncation */
        } else {           /* one to four bytes set at random, now and then to an extreme */
            for (int k = 1 + (int)cfx_rng_below(&r, 4); k > 0; k--) {
                size_t at = (size_t)cfx_rng_below(&r, n);
                bad[at] = cfx_rng_below(&r, 3) ? (uint8_t)cfx_rng_below(&r, 256)
                                               : (uint8_t)(cfx_rng_below(&r, 2) ? 0xff : 0x80);
            }
        }
        f = fopen(path, "wb");
        fwrite(bad, 1, m, f);
        fclose(f);
        cfx_set_error(CFX_OK, "%s", "");
        cfx_status s = draw_with_font(path, out);
        if (s == CFX_OK) {
            drawn++;
        } else {
            refused++;
            CHECK_MSG(strstr(cfx_last_error(), path) != NULL,
                      "trial %d: the message does not name the font: %s", t, cfx_last_error());
        }
    }
    CHECK_MSG(refused > (int)n && drawn > 0, "%d refused, %d drawn", refused, drawn);
    /* Not fonts at all. */
    f = fopen(path, "wb");
    fputs("hello, I am not a font\n", f);
    fclose(f);
    CHECK_ERR(draw_with_font(path, out), CFX_EFORMAT);
}

/* The same through the program: one line naming the file, exit 1, no temporary left. */
CFX_TEST(signs, cli_refuses_a_text_file_as_font) {
    if (!cfx_test_cli_or_skip()) return;
    const char *dir = cfx_test_tmpdir();
    char path[600], out[4096], cmd[1400];
    snprintf(path, sizeof path, "%s/notes.ttf", dir);
    FILE *f = fopen(path, "wb");
    fputs("these are notes, not a font\n", f);
    fclose(f);
    int rc = cfx_test_run_cli(
        out, sizeof out, "data signs --out %s/s --train 2 --calib 1 --test 1 --ood 1 --font %s",
        dir, path);
    const char *nl = strchr(out, '\n');
    CHECK_MSG(rc == 1 && strstr(out, "notes.ttf") && nl && !nl[1], "exit %d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep -v notes.ttf)\"", dir);
    CHECK_MSG(system(cmd) == 0, "cfx data signs left files in %s", dir);
}
