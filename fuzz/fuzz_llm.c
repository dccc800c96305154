/* fuzz_llm.c - libFuzzer target for what a vision-LLM server and its answer cache hand cfx
 * (src/explain/llm.c): the input's first part is a chat-completions reply body
 * (cfx_llm_parse_reply), its second the JSON Lines answer cache that cfx_llm_new reads. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init();
    static const char *const names[] = {"reply.json", "cache.jsonl"};
    int parts = fuzz_write_parts(data, size, names, 2);
    /* The reply as the HTTP client hands it over: NUL-terminated. */
    const uint8_t *end = memmem(data, size, CFX_FUZZ_SEP, sizeof CFX_FUZZ_SEP - 1);
    size_t n = end ? (size_t)(end - data) : size;
    char *body = malloc(n + 1);
    if (!body) abort();
    memcpy(body, data, n);
    body[n] = '\0';
    char *text = NULL;
    if (cfx_llm_parse_reply(body, &text) == CFX_OK && !text) abort(); /* OK gives a text */
    cfx_free(text);
    free(body);
    if (parts > 1) {
        cfx_llm *l = cfx_llm_new(&(cfx_llm_options){
            .url = "http://127.0.0.1:9/v1", .model = "m", .cache = fuzz_path(1, names[1])});
        cfx_llm_free(l);
    }
    return 0;
}
