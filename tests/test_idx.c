/* test_idx.c - the IDX reader against an independent gzip + NumPy parse of Debian's
 * Fashion-MNIST files, other element types, and truncated or foreign files. */
#include "test.h"

#include <stdlib.h>
#include <zlib.h>

#define FMNIST "/usr/share/datasets/fashion-mnist"

static int have_fmnist(void) {
    FILE *f = fopen(FMNIST "/t10k-labels-idx1-ubyte.gz", "rb");
    if (f) fclose(f);
    return f != NULL;
}

CFX_TEST(idx, fashion_mnist_matches_numpy) {
    if (!have_fmnist()) {
        cfx_test_fail(__FILE__, __LINE__,
                      "Debian package dataset-fashion-mnist is missing "
                      "(make test installs it)");
        return;
    }
    const char *dir = cfx_test_tmpdir();
    char args[1200], path[600];
    const char *files[] = {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, FMNIST "/%s", files[k]);
        snprintf(args, sizeof args, "idx_oracle.py %s %s", path, dir);
        CHECK_INT_EQ(cfx_test_python(args, ""), 0);
        snprintf(args, sizeof args, "%s/oracle.npy", dir);
        cfx_tensor *want = cfx_npy_read(args), *got = cfx_idx_read(path);
        CHECK_MSG(got != NULL, "%s", cfx_last_error());
        CHECK(want != NULL);
        if (!want || !got) continue;
        CHECK(cfx_tensor_same_shape(want, got));
        CHECK_INT_EQ(got->shape[0], 10000);
        if (k == 0) {
            CHECK_INT_EQ(got->ndim, 3);
            CHECK_INT_EQ(got->shape[2], 28);
        }
        CHECK_ARRAY_NEAR(got->data, want->data, (size_t)want->numel, 0, 0);
        /* The byte reader agrees with the float reader. */
        uint8_t *u8;
        int ndim;
        int64_t shape[CFX_MAX_DIMS];
        CHECK_OK(cfx_idx_read_u8(path, &u8, &ndim, shape));
        CHECK_INT_EQ(ndim, got->ndim);
        int bad = 0;
        for (int64_t i = 0; u8 && i < got->numel; i++) bad += u8[i] != (uint8_t)got->data[i];
        CHECK_INT_EQ(bad, 0);
        cfx_free(u8);
        cfx_tensor_free(want);
        cfx_tensor_free(got);
    }
    /* Other element types (plain, uncompressed files) convert with values unchanged. */
    const float v[6] = {-3, 0, 7, 250, -128, 12345};
    for (int code = 11; code <= 14; code++) {
        snprintf(path, sizeof path, "%s/t%d.idx", dir, code);
        cfx_tensor *t = cfx_idx_read(path);
        CHECK_MSG(t != NULL, "type %d: %s", code, cfx_last_error());
        if (!t) continue;
        CHECK_INT_EQ(t->ndim, 2);
        CHECK_INT_EQ(t->shape[1], 3);
        CHECK_ARRAY_NEAR(t->data, v, 6, 0, 0);
        cfx_tensor_free(t);
    }
    /* ...and the byte reader refuses them by name. */
    snprintf(path, sizeof path, "%s/t13.idx", dir);
    uint8_t *u8 = NULL;
    int ndim;
    int64_t shape[CFX_MAX_DIMS];
    CHECK_ERR(cfx_idx_read_u8(path, &u8, &ndim, shape), CFX_EUNSUPPORTED);
    CHECK(strstr(cfx_last_error(), "float") != NULL);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

CFX_TEST(idx, truncated_corrupt_and_foreign_files_are_refused) {
    const char *dir = cfx_test_tmpdir();
    char cut[600], path[600];
    /* A gzip file cut in half: zlib sees the missing end; the message names the file. */
    if (have_fmnist()) {
        char *data;
        size_t n;
        CHECK_OK(cfx_file_read_all(FMNIST "/t10k-labels-idx1-ubyte.gz", &data, &n));
        snprintf(cut, sizeof cut, "%s/cut-labels.gz", dir);
        write_bytes(cut, data, n / 2);
        CHECK(cfx_idx_read(cut) == NULL);
        CHECK_MSG(strstr(cfx_last_error(), "truncated") && strstr(cfx_last_error(), cut),
                  "message: %s", cfx_last_error());
        /* Cut just before the gzip trailer: all data bytes may arrive, the check still fails. */
        write_bytes(cut, data, n - 4);
        CHECK(cfx_idx_read(cut) == NULL);
        CHECK(strstr(cfx_last_error(), cut) != NULL);
        /* Flipped bytes in the middle of the deflate stream. */
        for (size_t i = n / 3; i < n / 3 + 16; i++) data[i] ^= 0x5a;
        write_bytes(cut, data, n);
        CHECK(cfx_idx_read(cut) == NULL);
        cfx_free(data);
    } else {
        cfx_test_fail(__FILE__, __LINE__, "Debian package dataset-fashion-mnist is missing");
    }
    /* A wrong magic, plain and gzip-compressed. */
    snprintf(path, sizeof path, "%s/png.idx", dir);
    write_bytes(path, "\x89PNG\r\n\x1a\n....", 12);
    CHECK(cfx_idx_read(path) == NULL);
    CHECK(strstr(cfx_last_error(), "not an IDX file") != NULL);
    snprintf(path, sizeof path, "%s/magic.gz", dir);
    gzFile g = gzopen(path, "wb");
    gzwrite(g,
            "\x00\x00\x07\x01\x00\x00\x00\x02"
            "ab",
            10);
    gzclose(g);
    CHECK(cfx_idx_read(path) == NULL);
    CHECK(strstr(cfx_last_error(), "not an IDX file") != NULL);
    /* Header promises more data than there is, and data followed by junk. */
    snprintf(path, sizeof path, "%s/short.idx", dir);
    write_bytes(path,
                "\x00\x00\x08\x01\x00\x00\x00\x05"
                "abc",
                11);
    CHECK(cfx_idx_read(path) == NULL);
    CHECK(strstr(cfx_last_error(), "truncated") != NULL);
    write_bytes(path,
                "\x00\x00\x08\x01\x00\x00\x00\x02"
                "abc",
                11);
    CHECK(cfx_idx_read(path) == NULL);
    CHECK(strstr(cfx_last_error(), "extra bytes") != NULL);
    /* A zero dimension and a missing file. */
    write_bytes(path, "\x00\x00\x08\x01\x00\x00\x00\x00", 8);
    CHECK(cfx_idx_read(path) == NULL);
    CHECK(cfx_idx_read("/nonexistent/x.gz") == NULL);
    CHECK(strstr(cfx_last_error(), "/nonexistent/x.gz") != NULL);
}

/* Found by fuzzing (fuzz/fuzz_idx.c, tests/data/fuzz-regressions/idx/): a 37-byte file whose
 * header claims 2 x 2 x 1129074517 bytes had them allocated (and zeroed) before any data was
 * read, so the fuzzer ran out of its 2 GiB. The header is now checked against what the file
 * can hold: its size, or 1032 times it when compressed (deflate's largest ratio). */
CFX_TEST(idx, a_header_larger_than_the_file_is_refused_before_allocating) {
    const char *dir = cfx_test_tmpdir();
    char path[600];
    /* 2 x 16384 x 16384 floats (2 GiB) in 12 data bytes, plain and gzip-compressed. */
    const unsigned char head[] = {0, 0, 0x0D, 3, 0, 0, 0, 2, 0, 0, 0x40, 0, 0, 0, 0x40, 0};
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/huge%s", dir, gz ? ".idx.gz" : ".idx");
        if (gz) {
            gzFile g = gzopen(path, "wb");
            gzwrite(g, head, sizeof head);
            gzwrite(g, "abcdefghijkl", 12);
            gzclose(g);
        } else {
            FILE *f = fopen(path, "wb");
            fwrite(head, 1, sizeof head, f);
            fwrite("abcdefghijkl", 1, 12, f);
            fclose(f);
        }
        cfx_test_largest_begin();
        cfx_tensor *t = cfx_idx_read(path);
        uint8_t *u8 = NULL;
        int ndim;
        int64_t shape[CFX_MAX_DIMS];
        cfx_status s = cfx_idx_read_u8(path, &u8, &ndim, shape);
        size_t largest = cfx_test_largest_end();
        CHECK(t == NULL);
        CHECK(s != CFX_OK);
        CHECK_MSG(largest < (1 << 20), "%s: a block of %zu bytes was allocated", path, largest);
        CHECK_MSG(strstr(cfx_last_error(), "more than the file can hold") &&
                      strstr(cfx_last_error(), path),
                  "message: %s", cfx_last_error());
    }
}
