/* fuzz_bundle.c - libFuzzer target for the competency bundle (src/competency/bundle.c): a
 * bundle folder's bundle.json, parce.json and calibration arrays as one input joined by
 * CFX_FUZZ_SEP (fuzz.h), opened for batches of 2, and its calibration arrays read when it opens.
 * The three models are fixed, small and valid (ONNX import has its own target): made once here
 * with cfx's layers for 3x8x8 images and 7 classes, the shape of fuzz/seeds.sh's tiny `cfx data
 * signs` set. With CFX_FUZZ_WRITE_SEED=DIR in the environment the program writes the models to
 * DIR and exits (fuzz/seeds.sh fits the seed bundle on them). */
#include "fuzz.h"

enum { C = 3, H = 8, W = 8, K = 7, D = 5, F = 8 };

static const char *const names[] = {"bundle.json", "parce.json", "calib_latents.npy",
                                    "calib_scores.npy"};

static void save(cfx_graph *g, int y, const char *out, const char *dir, const char *file) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (y < 0 || cfx_graph_set_output(g, y, out) != CFX_OK || cfx_graph_compile(g) != CFX_OK ||
        cfx_onnx_save(g, path, NULL, 0) != CFX_OK) {
        fprintf(stderr, "fuzz_bundle: %s: %s\n", path, cfx_last_error());
        abort();
    }
    cfx_graph_free(g);
}

/* classifier: conv 3x3 4, tanh, linear F "features", tanh, linear K, softmax; encoder: linear D,
 * tanh "latent"; decoder: linear, sigmoid, reshape to the image. */
static void write_models(const char *dir) {
    cfx_rng r;
    cfx_rng_init(&r, 7);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, C, H, W});
    int h = cfx_op_tanh(g, cfx_layer_conv2d(g, x, "c1", 4, 3, 1, 1, &r));
    int f = cfx_op_tanh(g, cfx_layer_linear(g, cfx_op_flatten(g, h, 1), "fc1", F, &r));
    if (cfx_graph_set_name(g, f, "features") != CFX_OK) abort();
    save(g, cfx_op_softmax(g, cfx_layer_linear(g, f, "fc2", K, &r), 1), "probs", dir,
         "classifier.onnx");
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 4, (int64_t[]){1, C, H, W});
    save(g, cfx_op_tanh(g, cfx_layer_linear(g, cfx_op_flatten(g, x, 1), "enc", D, &r)), "latent",
         dir, "encoder.onnx");
    g = cfx_graph_new();
    int z = cfx_graph_input(g, "latent", 2, (int64_t[]){1, D});
    int y = cfx_op_sigmoid(g, cfx_layer_linear(g, z, "dec", C * H * W, &r));
    save(g, cfx_op_reshape(g, y, 4, (int64_t[]){-1, C, H, W}), "recon", dir, "decoder.onnx");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_init();
    const char *seed = getenv("CFX_FUZZ_WRITE_SEED");
    if (seed) {
        write_models(seed);
        exit(0);
    }
    write_models(fuzz_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write_parts(data, size, names, 4);
    cfx_bundle *b = cfx_bundle_load(fuzz_dir, 2);
    if (b) {
        cfx_tensor *latents = NULL, *scores = NULL;
        if (cfx_bundle_calibration(b, &latents, &scores) == CFX_OK) {
            cfx_tensor_free(latents);
            cfx_tensor_free(scores);
        }
        cfx_bundle_free(b);
    }
    return 0;
}
