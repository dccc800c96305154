/* fuzz_manifest.c - libFuzzer target for the dataset loader (src/data/dataset.c): a dataset
 * folder's manifest.json and the test and ood splits' arrays, as one input joined by
 * CFX_FUZZ_SEP (fuzz.h), loaded split by split. */
#include "fuzz.h"

static const char *const names[] = {"manifest.json", "test_images.npy", "test_labels.npy",
                                    "ood_images.npy", "ood_labels.npy"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    fuzz_write_parts(data, size, names, 5);
    cfx_dataset_free(cfx_dataset_load(fuzz_dir, "test"));
    cfx_dataset_free(cfx_dataset_load(fuzz_dir, "ood"));
    return 0;
}
