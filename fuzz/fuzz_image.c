/* fuzz_image.c - libFuzzer target for the image loader (src/data/image.c: stb_image's PNG and
 * JPEG decoders behind cfx's checks): the input is the file, read with its own channels and, when
 * that works, converted to the other count (gray <-> RGB), as a dataset folder does. Images are
 * limited to 2^16 pixels (CFX_MAX_IMAGE_PIXELS) so that an input declaring a large frame, which
 * the limit's own test covers, does not slow every later execution. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    setenv("CFX_MAX_IMAGE_PIXELS", "65536", 0);
    const char *path = fuzz_write(0, "x.png", data, size);
    cfx_tensor *t = cfx_image_read(path, 0);
    if (t) {
        cfx_tensor_free(cfx_image_read(path, t->shape[0] == 1 ? 3 : 1));
        cfx_tensor_free(t);
    }
    return 0;
}
