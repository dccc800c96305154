/* fuzz_image.c - libFuzzer target for the image loader (src/data/image.c: stb_image's PNG and
 * JPEG decoders behind cfx's checks): the input is the file, read with its own channels and, when
 * that works, converted to the other count (gray <-> RGB), as a dataset folder does. Images are
 * limited to 2^14 pixels (128 x 128, more than the 96 x 96 scenes; CFX_MAX_IMAGE_PIXELS): the
 * decoders' per-pixel loops under the fuzzer's comparison tracing made a large frame cost 4x
 * the executions, and the limit itself has its own test. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    setenv("CFX_MAX_IMAGE_PIXELS", "16384", 0);
    const char *path = fuzz_write(0, "x.png", data, size);
    cfx_tensor *t = cfx_image_read(path, 0);
    if (t) {
        cfx_tensor_free(cfx_image_read(path, t->shape[0] == 1 ? 3 : 1));
        cfx_tensor_free(t);
    }
    return 0;
}
