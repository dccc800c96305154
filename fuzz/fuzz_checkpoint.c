/* fuzz_checkpoint.c - libFuzzer target for training checkpoints (src/learn/checkpoint.c): the
 * input is the file, restored into a small fixed model (linear 4 -> 3) and its Adam state, with
 * the run settings below. With CFX_FUZZ_WRITE_SEED=PATH in the environment the program writes a
 * valid checkpoint of that model and those settings to PATH and exits (fuzz/seeds.sh). */
#include "fuzz.h"
#include "learn/checkpoint.h"

static cfx_graph *g;
static cfx_optim *opt;
static const cfx__checkpoint_meta settings = {
    .epochs = 3, .batch = 8, .lr = 1e-3f, .seed = 5, .data = 0x5eed5eed5eed5eedull};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_init();
    cfx_rng r;
    cfx_rng_init(&r, 1);
    g = cfx_graph_new();
    size_t n = 0;
    int y =
        g ? cfx_layer_linear(g, cfx_graph_input(g, "x", 2, (int64_t[]){1, 4}), "fc", 3, &r) : -1;
    if (y < 0 || cfx_graph_set_output(g, y, NULL) != CFX_OK || cfx_graph_compile(g) != CFX_OK ||
        !cfx_graph_params(g, &n) || !(opt = cfx_optim_adam(n, NULL))) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", cfx_last_error());
        abort();
    }
    const char *seed = getenv("CFX_FUZZ_WRITE_SEED");
    if (seed) {
        cfx__checkpoint_meta m = settings;
        m.epoch = 1, m.loss = 0.5, m.accuracy = 0.75;
        cfx_status s = cfx__checkpoint_write(seed, g, opt, &m);
        if (s != CFX_OK) fprintf(stderr, "fuzz_checkpoint: %s\n", cfx_last_error());
        exit(s == CFX_OK ? 0 : 1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cfx__checkpoint_meta m = settings;
    (void)cfx__checkpoint_read(fuzz_write(0, "model.ckpt", data, size), g, opt, &m);
    return 0;
}
