/* test_npy.c - .npy round trips, NumPy as the oracle, and refusals of what cfx cannot read. */
#include "test.h"

#include <stdlib.h>

CFX_TEST(npy, round_trip_and_numpy_agrees) {
    const char *dir = cfx_test_tmpdir();
    char path[600], args[1400];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){2, 3, 4});
    for (int i = 0; i < 24; i++) t->data[i] = (float)i * 0.5f - 3;
    CHECK_OK(cfx_npy_write(path, t));
    cfx_tensor *u = cfx_npy_read(path);
    CHECK(u && cfx_tensor_same_shape(t, u));
    if (u) CHECK_ARRAY_NEAR(u->data, t->data, 24, 0, 0);
    cfx_tensor_free(u);
    /* NumPy reads ours, and writes float64/uint8/int64 arrays that we read back. */
    snprintf(args, sizeof args, "npy_oracle.py %s/a.npy %s", dir, dir);
    CHECK_INT_EQ(cfx_test_python(args, ""), 0);
    const char *names[] = {"f8", "u1", "i8", "i4", "f4v2"};
    for (int k = 0; k < 5; k++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, names[k]);
        u = cfx_npy_read(path);
        CHECK_MSG(u != NULL, "%s: %s", names[k], cfx_last_error());
        if (!u) continue;
        CHECK_INT_EQ(u->ndim, 2);
        CHECK_INT_EQ(u->shape[0], 2);
        CHECK_INT_EQ(u->shape[1], 3);
        float want[6] = {0, 1, 2, 3, 4, 250};
        CHECK_ARRAY_NEAR(u->data, want, 6, 0, 0);
        cfx_tensor_free(u);
    }
    snprintf(path, sizeof path, "%s/fortran.npy", dir);
    CHECK(cfx_npy_read(path) == NULL);
    CHECK(strstr(cfx_last_error(), "Fortran") != NULL);
    snprintf(path, sizeof path, "%s/c16.npy", dir);
    CHECK(cfx_npy_read(path) == NULL);
    CHECK(strstr(cfx_last_error(), "not supported") != NULL);
    cfx_tensor_free(t);
}

CFX_TEST(npy, truncated_and_missing_files_fail_clearly) {
    const char *dir = cfx_test_tmpdir();
    char path[600], cut[600];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    snprintf(cut, sizeof cut, "%s/cut.npy", dir);
    cfx_tensor *t = cfx_tensor_new(2, (int64_t[]){10, 10});
    CHECK_OK(cfx_npy_write(path, t));
    char *data;
    size_t n;
    CHECK_OK(cfx_file_read_all(path, &data, &n));
    FILE *f = fopen(cut, "wb");
    fwrite(data, 1, n - 7, f);
    fclose(f);
    CHECK(cfx_npy_read(cut) == NULL);
    CHECK(strstr(cfx_last_error(), "truncated") != NULL);
    f = fopen(cut, "wb");
    fwrite("hello", 1, 5, f);
    fclose(f);
    CHECK(cfx_npy_read(cut) == NULL);
    CHECK(strstr(cfx_last_error(), "not a .npy") != NULL);
    CHECK(cfx_npy_read("/nonexistent/x.npy") == NULL);
    CHECK(strstr(cfx_last_error(), "/nonexistent/x.npy") != NULL);
    /* A write into a missing folder fails and leaves nothing behind. */
    CHECK_ERR(cfx_npy_write("/nonexistent/y.npy", t), CFX_EIO);
    cfx_free(data);
    cfx_tensor_free(t);
}

/* Found by fuzzing (fuzz/fuzz_npy.c, tests/data/fuzz-regressions/npy/): a 160-byte file whose
 * header gives 3444444444 int64 values had 13 GB asked of the allocator before its data was
 * read. The header's size is checked against the file's first. */
CFX_TEST(npy, a_header_larger_than_the_file_is_refused_before_allocating) {
    char path[600];
    snprintf(path, sizeof path, "%s/huge.npy", cfx_test_tmpdir());
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 16384, 16384), }";
    char head[128];
    memset(head, ' ', sizeof head);
    memcpy(head, "\x93NUMPY\x01\x00\x76\x00", 10);
    memcpy(head + 10, h, strlen(h));
    head[127] = '\n';
    FILE *f = fopen(path, "wb");
    fwrite(head, 1, sizeof head, f);
    fwrite("abcdefghijkl", 1, 12, f);
    fclose(f);
    cfx_test_largest_begin();
    cfx_tensor *t = cfx_npy_read(path);
    size_t largest = cfx_test_largest_end();
    CHECK(t == NULL);
    cfx_tensor_free(t);
    CHECK_MSG(largest < (1 << 20), "a block of %zu bytes was allocated", largest);
    CHECK_MSG(strstr(cfx_last_error(), "truncated .npy data") && strstr(cfx_last_error(), path) &&
                  strstr(cfx_last_error(), "2147483648 bytes"),
              "message: %s", cfx_last_error());
    t = cfx_npy_read("tests/data/fuzz-regressions/npy/shape_3444444444_in_160_bytes.npy");
    CHECK(t == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "truncated .npy data"), "message: %s", cfx_last_error());
    cfx_tensor_free(t);
}
