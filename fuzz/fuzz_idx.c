/* fuzz_idx.c - libFuzzer target for the IDX reader (src/data/idx.c), plain or gzip-compressed:
 * the input is the file, read both as floats and as bytes. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    const char *path = fuzz_write(0, "x.idx", data, size);
    cfx_tensor_free(cfx_idx_read(path));
    uint8_t *bytes = NULL;
    int ndim;
    int64_t shape[CFX_MAX_DIMS];
    if (cfx_idx_read_u8(path, &bytes, &ndim, shape) == CFX_OK) cfx_free(bytes);
    return 0;
}
