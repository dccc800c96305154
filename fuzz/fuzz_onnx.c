/* fuzz_onnx.c - libFuzzer target for ONNX import (src/engine/onnx/): the input is the model
 * file, decoded by protobuf-c and built into a graph (shape inference, constant folding, every op
 * importer), and summarised by cfx_onnx_info_load. External data may only name files in the
 * model's folder, which holds nothing but the model itself. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    const char *path = fuzz_write(0, "model.onnx", data, size);
    cfx_graph_free(cfx_onnx_load(path, &(cfx_onnx_options){.batch = 2}));
    cfx_onnx_info_free(cfx_onnx_info_load(path));
    return 0;
}
