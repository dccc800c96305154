/* test_image.c - PNG write and read round trips (exact at 8 bits), channel conversion, files
 * that are not images, grids, and stb's allocations going through the cfx hook. */
#include "test.h"

#include <stdlib.h>
#include <zlib.h>

CFX_TEST(image, png_round_trip_is_exact) {
    const char *dir = cfx_test_tmpdir();
    char path[600];
    cfx_rng r;
    cfx_rng_init(&r, 5);
    for (int c = 1; c <= 3; c += 2) {
        const int h = 7, w = 13;
        cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){c, h, w});
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)cfx_rng_below(&r, 256) / 255.0f;
        t->data[0] = -0.5f, t->data[1] = 2.0f; /* clipped to 0 and 1 */
        snprintf(path, sizeof path, "%s/img%d.png", dir, c);
        cfx_test_alloc_begin(0);
        CHECK_OK(cfx_image_write_png(path, t));
        cfx_tensor *u = cfx_image_read(path, 0);
        cfx_tensor_free(u);
        CHECK_INT_EQ(cfx_test_alloc_end(), 0); /* stb allocates through cfx, and frees it all */
        u = cfx_image_read(path, 0);
        CHECK_MSG(u != NULL, "%s", cfx_last_error());
        if (!u) continue;
        CHECK_INT_EQ(u->ndim, 3);
        CHECK_INT_EQ(u->shape[0], c);
        CHECK_INT_EQ(u->shape[1], h);
        CHECK_INT_EQ(u->shape[2], w);
        t->data[0] = 0, t->data[1] = 1;
        CHECK_ARRAY_NEAR(u->data, t->data, (size_t)t->numel, 0, 1e-7);
        /* Channel conversion: grey read as RGB repeats the plane; RGB read as grey is luma. */
        cfx_tensor *v = cfx_image_read(path, c == 1 ? 3 : 1);
        CHECK(v && v->shape[0] == (c == 1 ? 3 : 1));
        if (v && c == 1) CHECK_ARRAY_NEAR(v->data + 2 * h * w, t->data, (size_t)(h * w), 0, 1e-7);
        cfx_tensor_free(v);
        cfx_tensor_free(u);
        cfx_tensor_free(t);
    }
    /* A batch of one is accepted, a batch of two is not an image. */
    cfx_tensor *b = cfx_tensor_new(4, (int64_t[]){2, 3, 4, 4});
    snprintf(path, sizeof path, "%s/batch.png", dir);
    CHECK_ERR(cfx_image_write_png(path, b), CFX_ESHAPE);
    b->shape[0] = 1, b->numel /= 2;
    CHECK_OK(cfx_image_write_png(path, b));
    cfx_tensor_free(b);
}

CFX_TEST(image, files_that_are_not_images_are_refused_by_name) {
    const char *dir = cfx_test_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/notes.png", dir);
    FILE *f = fopen(path, "w");
    fputs("this is not a picture\n", f);
    fclose(f);
    CHECK(cfx_image_read(path, 0) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), "not a PNG or JPEG"),
              "message: %s", cfx_last_error());
    /* A real PNG cut short: the header is fine, the pixels are not. */
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){3, 64, 64});
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_tensor_fill_uniform(t, &r, 0, 1);
    snprintf(path, sizeof path, "%s/full.png", dir);
    CHECK_OK(cfx_image_write_png(path, t));
    char *data;
    size_t n;
    CHECK_OK(cfx_file_read_all(path, &data, &n));
    snprintf(path, sizeof path, "%s/cut.png", dir);
    f = fopen(path, "wb");
    fwrite(data, 1, n / 2, f);
    fclose(f);
    CHECK(cfx_image_read(path, 0) == NULL);
    CHECK(strstr(cfx_last_error(), path) != NULL);
    cfx_free(data);
    CHECK(cfx_image_read("/nonexistent/a.png", 0) == NULL);
    CHECK(strstr(cfx_last_error(), "/nonexistent/a.png") != NULL);
    CHECK(cfx_image_read(path, 2) == NULL);
    /* Writing into a missing folder fails and leaves nothing. */
    CHECK_ERR(cfx_image_write_png("/nonexistent/b.png", t), CFX_EIO);
    cfx_tensor_free(t);
}

CFX_TEST(image, grid_places_scaled_tiles) {
    /* Five 1x2x3 images, 3 per row, scale 2, pad 1: (1, 2*(4+1)+1, 3*(6+1)+1) = (1, 11, 22). */
    cfx_tensor *b = cfx_tensor_new(4, (int64_t[]){5, 1, 2, 3});
    for (int64_t i = 0; i < b->numel; i++) b->data[i] = (float)i / 100.0f;
    cfx_tensor *g =
        cfx_image_grid(b, &(cfx_grid_options){.cols = 3, .scale = 2, .pad = 1, .pad_value = 0.5f});
    CHECK(g != NULL);
    if (!g) return;
    CHECK_INT_EQ(g->shape[0], 1);
    CHECK_INT_EQ(g->shape[1], 11);
    CHECK_INT_EQ(g->shape[2], 22);
    int64_t W = g->shape[2];
    CHECK_NEAR(g->data[0], 0.5, 0);             /* the border */
    CHECK_NEAR(g->data[1 * W + 1], 0.00, 1e-7); /* image 0, pixel (0,0) */
    CHECK_NEAR(g->data[2 * W + 2], 0.00, 1e-7); /* its 2x copy */
    CHECK_NEAR(g->data[4 * W + 6], 0.05, 1e-7); /* image 0, pixel (1,2) */
    CHECK_NEAR(g->data[1 * W + 8], 0.06, 1e-7); /* image 1, pixel (0,0) */
    CHECK_NEAR(g->data[6 * W + 8], 0.24, 1e-7); /* image 4 (row 1, col 1), pixel (0,0) */
    CHECK_NEAR(g->data[6 * W + 15], 0.5, 0);    /* the empty sixth tile */
    cfx_tensor_free(g);
    /* Defaults: a square of tiles, no padding, no scaling. */
    g = cfx_image_grid(b, NULL);
    CHECK(g && g->shape[1] == 4 && g->shape[2] == 9);
    cfx_tensor_free(g);
    const char *dir = cfx_test_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/grid.png", dir);
    CHECK_OK(cfx_image_write_grid(path, b, &(cfx_grid_options){.scale = 3}));
    cfx_tensor *u = cfx_image_read(path, 0);
    CHECK(u && u->shape[0] == 1 && u->shape[1] == 12 && u->shape[2] == 27);
    cfx_tensor_free(u);
    cfx_tensor_free(b);
    cfx_tensor *bad = cfx_tensor_new(3, (int64_t[]){1, 2, 2});
    CHECK(cfx_image_grid(bad, NULL) == NULL);
    cfx_tensor_free(bad);
}

/* Reads <dir>/<name>.npy (uint8 planes) as floats in [0,1]. */
static cfx_tensor *oracle(const char *dir, const char *name) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    cfx_tensor *t = cfx_npy_read(path);
    for (int64_t i = 0; t && i < t->numel; i++) t->data[i] /= 255.0f;
    return t;
}

CFX_TEST(image, pillow_agrees_both_ways) {
    const char *dir = cfx_test_tmpdir();
    char path[600], args[1400];
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){3, 10, 12});
    cfx_rng r;
    cfx_rng_init(&r, 8);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)cfx_rng_below(&r, 256) / 255.0f;
    snprintf(path, sizeof path, "%s/cfx.png", dir);
    CHECK_OK(cfx_image_write_png(path, t));
    snprintf(args, sizeof args, "png_oracle.py %s %s", path, dir);
    CHECK_INT_EQ(cfx_test_python(args, ""), 0);
    cfx_tensor *p = oracle(dir, "pil_of_cfx");
    CHECK(p && cfx_tensor_same_shape(p, t));
    if (p) CHECK_ARRAY_NEAR(p->data, t->data, (size_t)t->numel, 0, 1e-6);
    cfx_tensor_free(p);
    cfx_tensor_free(t);
    /* Alpha is dropped; grey+alpha stays grey. */
    const char *names[] = {"rgba", "la"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s.png", dir, names[k]);
        cfx_tensor *got = cfx_image_read(path, 0), *want = oracle(dir, names[k]);
        CHECK_MSG(got && want && cfx_tensor_same_shape(got, want), "%s: %s", names[k],
                  cfx_last_error());
        if (got && want && cfx_tensor_same_shape(got, want))
            CHECK_ARRAY_NEAR(got->data, want->data, (size_t)want->numel, 0, 1e-6);
        cfx_tensor_free(got);
        cfx_tensor_free(want);
    }
    /* 16-bit grey is reduced to 8 bits (stb rounds v*255/65535 down; within one level). */
    snprintf(path, sizeof path, "%s/g16.png", dir);
    cfx_tensor *got = cfx_image_read(path, 0), *want = oracle(dir, "g16");
    CHECK(got && want && got->numel == want->numel);
    if (got && want && got->numel == want->numel) {
        for (int64_t i = 0; i < want->numel; i++) want->data[i] /= 257.0f;
        CHECK_ARRAY_NEAR(got->data, want->data, (size_t)want->numel, 0, 1.01 / 255);
    }
    cfx_tensor_free(got);
    cfx_tensor_free(want);
    /* JPEG, baseline and progressive: two different decoders agree within a few levels on a
     * smooth image. */
    const char *jpegs[2] = {"smooth", "progressive"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s.jpg", dir, jpegs[k]);
        got = cfx_image_read(path, 3), want = oracle(dir, jpegs[k]);
        CHECK_MSG(got && want && cfx_tensor_same_shape(got, want), "%s: %s", jpegs[k],
                  cfx_last_error());
        if (got && want && cfx_tensor_same_shape(got, want))
            CHECK_ARRAY_NEAR(got->data, want->data, (size_t)want->numel, 0, 6.0 / 255);
        cfx_tensor_free(got);
        cfx_tensor_free(want);
    }
}

/* Found by fuzzing (fuzz/fuzz_image.c; the file is its input): a JPEG whose Huffman table
 * (DHT) has code counts adding up to more than 256 made stb_image write past its table (UBSan:
 * index 257 out of bounds in stbi__build_huffman). cfx checks the tables first and refuses the
 * file by name. */
CFX_TEST(image, jpeg_huffman_table_of_more_than_256_codes_is_refused) {
    const char *path = "tests/data/fuzz-regressions/image/dht_of_more_than_256_codes.jpg";
    CHECK(cfx_image_read(path, 0) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), "Huffman table"),
              "message: %s", cfx_last_error());
    /* The same table at the end of a file cut inside it (stb reads zeros past the end). */
    char *data;
    size_t n;
    CHECK_OK(cfx_file_read_all(path, &data, &n));
    char cut[600];
    snprintf(cut, sizeof cut, "%s/cut.jpg", cfx_test_tmpdir());
    FILE *f = fopen(cut, "wb");
    fwrite(data, 1, 0xe7, f); /* up to the second DHT's last count */
    fclose(f);
    cfx_free(data);
    CHECK(cfx_image_read(cut, 0) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "Huffman table"), "message: %s", cfx_last_error());
    /* stb takes 0xFF fill bytes before the start-of-image marker; so does the check (the
     * fuzzer's second input began 0xFF 0xFF 0xD8). */
    path = "tests/data/fuzz-regressions/image/dht_after_ff_fill_before_soi.jpg";
    CHECK(cfx_image_read(path, 0) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "Huffman table"), "message: %s", cfx_last_error());
}

/* Found by fuzzing (fuzz/fuzz_image.c; the file is its input): a 129-byte PNG whose IDAT chunk
 * states 2 GiB made stb_image grow its buffer to that before finding the bytes missing. Chunks
 * longer than the rest of the file are refused first. */
CFX_TEST(image, png_chunk_longer_than_the_file_is_refused_before_allocating) {
    const char *path = "tests/data/fuzz-regressions/image/idat_of_2_gib_in_129_bytes.png";
    cfx_test_largest_begin();
    cfx_tensor *t = cfx_image_read(path, 0);
    size_t largest = cfx_test_largest_end();
    CHECK(t == NULL);
    cfx_tensor_free(t);
    CHECK_MSG(largest < (1 << 20), "a block of %zu bytes was allocated", largest);
    CHECK_MSG(strstr(cfx_last_error(), path) &&
                  strstr(cfx_last_error(), "truncated or corrupt PNG"),
              "message: %s", cfx_last_error());
}

/* The offset of the first marker 0xFF m of a JPEG, or -1. */
static long marker_at(const unsigned char *b, size_t n, unsigned m) {
    for (size_t i = 0; i + 1 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == m) return (long)i;
    return -1;
}

/* Reads a copy of src with byte at..at+len replaced by rep (rep NULL: removed) and checks the
 * loader refuses it with a message holding want. */
static void check_patched_jpeg(const unsigned char *src, size_t n, long at, size_t len,
                               const unsigned char *rep, const char *want) {
    char path[600];
    snprintf(path, sizeof path, "%s/patched.jpg", cfx_test_tmpdir());
    FILE *f = fopen(path, "wb");
    fwrite(src, 1, (size_t)at, f);
    if (rep) fwrite(rep, 1, len, f);
    fwrite(src + at + (long)len, 1, n - (size_t)at - len, f);
    fclose(f);
    cfx_tensor *t = cfx_image_read(path, 0);
    CHECK_MSG(t == NULL && strstr(cfx_last_error(), want), "want '%s', got: %s", want,
              t ? "an image" : cfx_last_error());
    cfx_tensor_free(t);
}

/* Found by fuzzing (fuzz/fuzz_image.c; the files are its inputs). A scan that uses a Huffman
 * table no DHT defined made stb_image decode with uninitialised memory (valgrind: conditional
 * jumps on it in stbi__jpeg_decode_block) and, depending on that memory, shift a 32-bit value
 * by 32 (UBSan); the same holds for an undefined quantization table. A 1 KB JPEG declaring
 * 4101 x 8455 pixels decoded, zeros for the missing data, into 104 MB of pixels (60 s under
 * ASan). cfx refuses each before stb runs; files Pillow writes still decode. */
CFX_TEST(image, jpeg_scans_with_undefined_tables_or_too_little_data_are_refused) {
    const char *path = "tests/data/fuzz-regressions/image/scan_uses_undefined_huffman_table.jpg";
    CHECK(cfx_image_read(path, 0) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) &&
                  strstr(cfx_last_error(), "a scan uses a Huffman table that is not defined"),
              "message: %s", cfx_last_error());
    path = "tests/data/fuzz-regressions/image/1kb_declaring_4101x8455_pixels.jpg";
    CHECK(cfx_image_read(path, 0) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), "truncated"),
              "message: %s", cfx_last_error());
    /* The same faults made by hand in files Pillow wrote (baseline and progressive). */
    char dir[512], png[600], args[1400], jpg[700];
    snprintf(dir, sizeof dir, "%s", cfx_test_tmpdir()); /* the next call reuses its buffer */
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){3, 10, 12});
    cfx_tensor_fill(t, 0.5f);
    snprintf(png, sizeof png, "%s/cfx.png", dir);
    CHECK_OK(cfx_image_write_png(png, t));
    cfx_tensor_free(t);
    snprintf(args, sizeof args, "png_oracle.py %s %s", png, dir);
    CHECK_INT_EQ(cfx_test_python(args, ""), 0);
    const char *names[] = {"smooth.jpg", "progressive.jpg"};
    for (int k = 0; k < 2; k++) {
        snprintf(jpg, sizeof jpg, "%s/%s", dir, names[k]);
        char *data;
        size_t n;
        CHECK_OK(cfx_file_read_all(jpg, &data, &n));
        const unsigned char *b = (const unsigned char *)data;
        cfx_tensor_free(cfx_image_read(jpg, 0));
        long dht = marker_at(b, n, 0xC4), dqt = marker_at(b, n, 0xDB);
        long sof = marker_at(b, n, k ? 0xC2 : 0xC0);
        CHECK(dht > 0 && dqt > 0 && sof > 0);
        if (dht <= 0 || dqt <= 0 || sof <= 0) {
            cfx_free(data);
            continue;
        }
        /* Every DHT gets the table id 3, which no scan of Pillow's uses. */
        unsigned char *c = cfx_malloc(n);
        memcpy(c, b, n);
        for (long p = dht; p >= 0 && p < marker_at(b, n, 0xDA);) {
            c[p + 4] = (unsigned char)((c[p + 4] & 0xF0) | 3);
            long next = marker_at(b + p + 2, n - (size_t)p - 2, 0xC4);
            p = next < 0 ? -1 : p + 2 + next;
        }
        check_patched_jpeg(c, n, 0, 0, NULL, "Huffman table that is not defined");
        cfx_free(c);
        /* The first DQT segment removed. */
        size_t qlen = 2 + ((size_t)b[dqt + 2] << 8 | b[dqt + 3]);
        check_patched_jpeg(b, n, dqt, qlen, NULL, "quantization table that is not defined");
        /* A frame of 65535 x 65535 pixels. */
        check_patched_jpeg(b, n, sof + 5, 4, (const unsigned char *)"\xff\xff\xff\xff",
                           "truncated");
        cfx_free(data);
    }
}

/* A file of a few bytes can declare 65535 x 65535 pixels: images beyond Pillow's limit, or
 * CFX_MAX_IMAGE_PIXELS, are refused with a message that says how to raise it. */
CFX_TEST(image, images_beyond_the_pixel_limit_are_refused) {
    char path[600];
    snprintf(path, sizeof path, "%s/a.png", cfx_test_tmpdir());
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){1, 10, 12});
    cfx_tensor_fill(t, 0.25f);
    CHECK_OK(cfx_image_write_png(path, t));
    cfx_tensor_free(t);
    setenv("CFX_MAX_IMAGE_PIXELS", "119", 1);
    t = cfx_image_read(path, 0);
    CHECK(t == NULL);
    CHECK_MSG(strstr(cfx_last_error(), path) && strstr(cfx_last_error(), "12 x 10 pixels") &&
                  strstr(cfx_last_error(), "CFX_MAX_IMAGE_PIXELS"),
              "message: %s", cfx_last_error());
    setenv("CFX_MAX_IMAGE_PIXELS", "120", 1);
    t = cfx_image_read(path, 0);
    CHECK(t && t->numel == 120);
    cfx_tensor_free(t);
    unsetenv("CFX_MAX_IMAGE_PIXELS");
}

/* Found by fuzzing (fuzz/fuzz_image.c; its input is a replayed regression): a PNG whose first
 * IDAT chunk is empty made stb_image add the chunk's offset to its still-null data buffer
 * (UBSan). Empty IDAT chunks carry nothing, and cfx hands stb the file without them: a PNG with
 * one before its data decodes to the same pixels. */
CFX_TEST(image, an_empty_idat_chunk_reads_as_without_it) {
    char dir[512], path[700], path2[700];
    snprintf(dir, sizeof dir, "%s", cfx_test_tmpdir());
    snprintf(path, sizeof path, "%s/a.png", dir);
    snprintf(path2, sizeof path2, "%s/b.png", dir);
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){3, 10, 12});
    cfx_rng r;
    cfx_rng_init(&r, 4);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)cfx_rng_below(&r, 256) / 255.0f;
    CHECK_OK(cfx_image_write_png(path, t));
    char *data;
    size_t n;
    CHECK_OK(cfx_file_read_all(path, &data, &n));
    long at = 8;
    for (long i = 8; i + 8 <= (long)n; i++)
        if (!memcmp(data + i + 4, "IDAT", 4)) {
            at = i;
            break;
        }
    unsigned char empty[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T'};
    uint32_t crc = (uint32_t)crc32(0, (const unsigned char *)"IDAT", 4);
    for (int k = 0; k < 4; k++) empty[8 + k] = (unsigned char)(crc >> (24 - 8 * k));
    FILE *f = fopen(path2, "wb");
    fwrite(data, 1, (size_t)at, f);
    fwrite(empty, 1, sizeof empty, f);
    fwrite(data + at, 1, n - (size_t)at, f);
    fclose(f);
    cfx_free(data);
    cfx_tensor *u = cfx_image_read(path2, 0);
    CHECK_MSG(u && cfx_tensor_same_shape(u, t), "%s", cfx_last_error());
    if (u && cfx_tensor_same_shape(u, t))
        CHECK_ARRAY_NEAR(u->data, t->data, (size_t)t->numel, 0, 1e-6);
    cfx_tensor_free(u);
    cfx_tensor_free(t);
    /* The fuzzer's inputs: refused or read, without undefined behaviour (make asan, make fuzz);
     * the second ends inside its empty IDAT chunk's CRC. */
    cfx_tensor_free(
        cfx_image_read("tests/data/fuzz-regressions/image/empty_idat_chunk_first.png", 0));
    cfx_tensor_free(
        cfx_image_read("tests/data/fuzz-regressions/image/empty_idat_chunk_cut_in_its_crc.png", 0));
}

/* Found by fuzzing (fuzz/fuzz_image.c, long runs; the files are its inputs): baseline JPEGs
 * whose scan states a spectral end of 0 and whose file defines no AC Huffman table. stb decodes
 * all 64 coefficients of a baseline scan whatever it states, so it used the AC table's
 * uninitialised memory, and on an earlier image's bytes indexed its 257-entry arrays at
 * -16777464 or 65280 (UBSan) and failed its own assertion; a fresh process decoded the same
 * file to "Corrupt JPEG". cfx refuses them before stb runs. */
CFX_TEST(image, a_baseline_scan_without_its_ac_table_is_refused) {
    for (int k = 1; k <= 6; k++) {
        char path[200];
        snprintf(path, sizeof path,
                 "tests/data/fuzz-regressions/image/baseline_scan_without_its_ac_table_%d.jpg", k);
        cfx_tensor *t = cfx_image_read(path, 0);
        CHECK_MSG(t == NULL && strstr(cfx_last_error(), path) &&
                      strstr(cfx_last_error(), "a scan uses a Huffman table that is not defined"),
                  "%s", t ? "read" : cfx_last_error());
        cfx_tensor_free(t);
    }
}
