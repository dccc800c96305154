/* fuzz_concepts.c - libFuzzer target for the concept JSON loader (src/concepts/concepts_data.c):
 * the input is the file, labelled by "claude-3-haiku" as data/vg_random.json is, with unknown
 * concepts an error for inputs of even length and skipped for odd. WordNet is loaded once; the
 * vocabulary is made per input (the loader adds to it). */
#include "fuzz.h"

static cfx_wordnet *wn;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    if (!wn && !(wn = cfx_wordnet_load(NULL))) {
        fprintf(stderr, "fuzz_concepts: %s\n", cfx_last_error());
        abort();
    }
    const char *path = fuzz_write(0, "concepts.json", data, size);
    cfx_concepts *c = cfx_concepts_new(wn, NULL);
    if (!c) abort();
    int64_t skipped;
    cfx_concepts_data *d = cfx_concepts_data_load(
        c, path, "claude-3-haiku", size % 2 ? CFX_UNKNOWN_SKIP : CFX_UNKNOWN_ERROR, &skipped);
    cfx_concepts_data_free(d);
    cfx_concepts_free(c);
    return 0;
}
