/* fuzz_run.c - libFuzzer target for RUN folders (src/counterfactual/run.c): run.json,
 * results.jsonl, images.npy and a counterfactual array per method, as one input joined by
 * CFX_FUZZ_SEP (fuzz.h), opened, and tallied per method and cause as `cfx evaluate` does. */
#include "fuzz.h"

static const char *const names[] = {"run.json",
                                    "results.jsonl",
                                    "images.npy",
                                    "counterfactuals_igd.npy",
                                    "counterfactuals_fgd.npy",
                                    "counterfactuals_reco.npy",
                                    "counterfactuals_lgd.npy",
                                    "counterfactuals_lnn.npy",
                                    "counterfactuals_best.npy"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    fuzz_write_parts(data, size, names, 9);
    cfx_run *r = cfx_run_open(fuzz_dir);
    if (r) {
        const char *causes[16];
        int nc = cfx_run_causes(r, causes, 16);
        for (int k = 0; k < CFX_RUN_METHODS; k++) {
            if (!r->has[k]) continue;
            (void)cfx_run_tally_of(r, k, NULL);
            for (int c = 0; c < nc && c < 16; c++) (void)cfx_run_tally_of(r, k, causes[c]);
        }
        cfx_run_free(r);
    }
    return 0;
}
