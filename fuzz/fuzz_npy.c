/* fuzz_npy.c - libFuzzer target for the .npy reader (src/data/npy.c): the input is the file. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    cfx_tensor_free(cfx_npy_read(fuzz_write(0, "x.npy", data, size)));
    return 0;
}
