/* test_llm.c - the vision LLM client (src/explain/llm.c, http.c) against a small server that
 * speaks the OpenAI chat-completions API (tests/py/llm_server.py, on 127.0.0.1 and a free
 * port): each request checked field by field with Python's json, base64 and Pillow as the
 * independent decoders; the faults (a reply slower than the timeout, 500 then success,
 * malformed JSON, an empty choice list, a connection closed mid-reply, no text), each a retry
 * or a clear error for its image while the others go on; the cache (a re-run sends nothing
 * that was answered); an unreachable server; the keyword rules; and `cfx explain --llm`,
 * `cfx explain score` and `cfx explain export-finetune` on a run. */
#include "test.h"

#include "explain/http.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ----------------------------------------------------------------- the server === */

static bool server_start(cfx_test_server *s) {
    return cfx_test_server_start(s, "llm_server.py", cfx_test_tmpdir());
}

static void server_mode(const cfx_test_server *s, const char *mode) {
    char path[800];
    snprintf(path, sizeof path, "%s/mode", s->dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) fputs(mode, f), fclose(f);
}

/* Requests the server logged whose original's top-left pixel is px. */
static int requests_with_pixel(const cJSON *log, int px) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, log) {
        const cJSON *p = cJSON_GetObjectItem(e, "pixel");
        n += cJSON_IsNumber(p) && p->valueint == px;
    }
    return n;
}

/* A smooth (c,h,w) image whose top-left value is px/255 (the server reads its fault there). */
static void make_image(float *x, int c, int h, int w, int px, int seed) {
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w; i++)
                x[(ch * h + y) * w + i] =
                    (float)(0.3 + 0.2 * sin(0.4 * i + seed + ch) * cos(0.3 * y));
    for (int ch = 0; ch < c; ch++) x[ch * h * w] = (float)px / 255.0f;
}

static const char *key = "sk-test-7f3a9c-never-shown";

/* -------------------------------------------------------------------- tests === */

CFX_TEST(llm, request_is_the_api_with_the_papers_prompts) {
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    enum { H = 12, W = 9 };
    float grey[H * W], rgb[3 * H * W], rgb_cf[3 * H * W];
    make_image(grey, 1, H, W, 100, 1);
    make_image(rgb, 3, H, W, 110, 2);
    make_image(rgb_cf, 3, H, W, 200, 3);
    char url[100], cache[800];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", sv.port);
    snprintf(cache, sizeof cache, "%s/cache.jsonl", sv.dir);
    char *desc = cfx_llm_dataset_description("signs", NULL, 0);
    cfx_llm *l = cfx_llm_new(&(cfx_llm_options){.url = url,
                                                .model = "test-vlm",
                                                .api_key = key,
                                                .temperature = 0.25,
                                                .max_tokens = 77,
                                                .timeout = 10,
                                                .description = desc,
                                                .cache = cache});
    CHECK_MSG(l != NULL, "cfx_llm_new: %s", cfx_last_error());
    cfx_llm_job jobs[2] = {{.image = grey}, {.image = rgb, .cf = rgb_cf}};
    int64_t failed = -1;
    /* Grey without a counterfactual and colour with one: two shapes of the image part. */
    CHECK_OK(cfx_llm_ask(l, &jobs[0], 1, 1, H, W, NULL, &failed));
    CHECK_INT_EQ(failed, 0);
    CHECK_OK(cfx_llm_ask(l, &jobs[1], 1, 3, H, W, NULL, &failed));
    CHECK_INT_EQ(failed, 0);
    CHECK_MSG(jobs[0].reply && !strcmp(jobs[0].reply, "The image is too dark (pixel 100)."),
              "reply: %s (%s)", jobs[0].reply ? jobs[0].reply : "NULL", jobs[0].error);
    CHECK_MSG(jobs[1].reply && !strcmp(jobs[1].reply, "The image is too dark (pixel 110)."),
              "reply: %s (%s)", jobs[1].reply ? jobs[1].reply : "NULL", jobs[1].error);
    cJSON *log = cfx_test_server_log(&sv);
    CHECK_INT_EQ(cJSON_GetArraySize(log), 2);
    for (int k = 0; k < 2 && k < cJSON_GetArraySize(log); k++) {
        const cJSON *e = cJSON_GetArrayItem(log, k);
        char *shown = cJSON_PrintUnformatted(e);
        CHECK_MSG(cJSON_GetArraySize(cJSON_GetObjectItem(e, "problems")) == 0, "problems: %s",
                  shown);
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "path")), "/v1/chat/completions");
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "authorization")),
                     "Bearer sk-test-7f3a9c-never-shown");
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "model")), "test-vlm");
        CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(e, "temperature")), 0.25, 1e-12);
        CHECK_INT_EQ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "max_tokens")), 77);
        const cJSON *roles = cJSON_GetObjectItem(e, "roles");
        CHECK_MSG(cJSON_GetArraySize(roles) == 2 &&
                      !strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(roles, 0)), "system") &&
                      !strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(roles, 1)), "user"),
                  "roles: %s", shown);
        const char *sys = cJSON_GetStringValue(cJSON_GetObjectItem(e, "system")),
                   *ins = cJSON_GetStringValue(cJSON_GetObjectItem(e, "instruction"));
        /* B.2 (signs) then B.3; B.4 without a counterfactual, B.5 with one. */
        CHECK_MSG(sys &&
                      strstr(sys, "seven (7) different speed limits: 30, 50, 60, 70, 80, 100, "
                                  "and 120 km/hr.") &&
                      strstr(sys, "reconstruction-based competency estimator"),
                  "system: %s", sys ? sys : "NULL");
        CHECK_MSG(ins && strstr(ins, k == 0 ? "Here is an image for which the classifier is not "
                                              "confident."
                                            : "Here are two images side-by-side."),
                  "instruction: %s", ins ? ins : "NULL");
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "uri_prefix")),
                     "data:image/png;base64,");
        /* The image part decodes (Pillow) to the right size: the pair is 2W + 30 by H + 20. */
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(e, "mode")), k == 0 ? "L" : "RGB");
        CHECK_INT_EQ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "width")),
                     k == 0 ? W : 2 * W + 30);
        CHECK_INT_EQ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "height")),
                     k == 0 ? H : H + 20);
        CHECK_INT_EQ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "pixel")),
                     k == 0 ? 100 : 110);
        free(shown);
    }
    cJSON_Delete(log);
    /* The key is in no file the client wrote. */
    char *text = NULL;
    size_t size;
    CHECK_OK(cfx_file_read_all(cache, &text, &size));
    CHECK_MSG(text && !strstr(text, key), "the cache holds the key: %s", text);
    cfx_free(text);
    /* The side-by-side pair: white padding of 10, the original left, the counterfactual right. */
    cfx_tensor *pair = cfx_llm_side_by_side(rgb, rgb_cf, 3, H, W);
    CHECK(pair && pair->shape[0] == 3 && pair->shape[1] == H + 20 && pair->shape[2] == 2 * W + 30);
    if (pair) {
        int bad = 0, PW = 2 * W + 30;
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < H + 20; y++)
                for (int x = 0; x < PW; x++) {
                    float v = pair->data[(ch * (H + 20) + y) * PW + x], want = 1.0f;
                    int yy = y - 10, xl = x - 10, xr = x - 20 - W;
                    if (yy >= 0 && yy < H && xl >= 0 && xl < W) want = rgb[(ch * H + yy) * W + xl];
                    if (yy >= 0 && yy < H && xr >= 0 && xr < W)
                        want = rgb_cf[(ch * H + yy) * W + xr];
                    bad += v != want;
                }
        CHECK_INT_EQ(bad, 0);
    }
    cfx_tensor_free(pair);
    for (int k = 0; k < 2; k++) cfx_free(jobs[k].reply);
    cfx_free(desc);
    cfx_llm_free(l);
    cfx_test_server_stop(&sv);
}

CFX_TEST(llm, faults_give_a_retry_or_a_clear_error_and_the_others_go_on) {
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    enum { H = 8, W = 8, N = 9 };
    /* Pixel codes of tests/py/llm_server.py: 120 and 130 answer; 20 slow, 30 500 then an
     * answer, 40 malformed JSON, 50 no choices, 60 cut mid-reply, 70 no text, 90 HTTP 401. */
    const int px[N] = {120, 20, 30, 40, 50, 60, 70, 130, 90};
    float img[N][H * W];
    cfx_llm_job jobs[N];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < N; i++) make_image(img[i], 1, H, W, px[i], i), jobs[i].image = img[i];
    char url[100], cache[800];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", sv.port);
    snprintf(cache, sizeof cache, "%s/cache.jsonl", sv.dir);
    cfx_llm_options o = {.url = url,
                         .model = "m",
                         .api_key = key,
                         .timeout = 1,
                         .retries = 1,
                         .backoff = 0.05,
                         .concurrency = 3,
                         .cache = cache};
    cfx_llm *l = cfx_llm_new(&o);
    CHECK_MSG(l != NULL, "cfx_llm_new: %s", cfx_last_error());
    if (!l) goto done;
    int64_t failed = -1;
    CHECK_OK(cfx_llm_ask(l, jobs, N, 1, H, W, NULL, &failed));
    CHECK_INT_EQ(failed, 6);
    const char *want[N] = {NULL,
                           "no complete reply within 1 s",
                           NULL,
                           "not a JSON object",
                           "no choices",
                           "after 2 attempts",
                           "no text",
                           NULL,
                           "HTTP 401: {\"error\": {\"message\": \"invalid API key\"}}"};
    const cfx_status code[N] = {CFX_OK,   CFX_ETIMEOUT, CFX_OK, CFX_EFORMAT, CFX_EFORMAT,
                                CFX_ENET, CFX_EFORMAT,  CFX_OK, CFX_ENET};
    for (int i = 0; i < N; i++) {
        CHECK_MSG(jobs[i].status == code[i], "pixel %d: status %s, expected %s (%s)", px[i],
                  cfx_status_str(jobs[i].status), cfx_status_str(code[i]), jobs[i].error);
        if (want[i]) {
            CHECK_MSG(!jobs[i].reply && strstr(jobs[i].error, want[i]) &&
                          strstr(jobs[i].error, url) && !strstr(jobs[i].error, key),
                      "pixel %d: the error names neither '%s' nor the URL (or shows the key): %s",
                      px[i], want[i], jobs[i].error);
        } else {
            char r[64];
            snprintf(r, sizeof r, "The image is too dark (pixel %d).", px[i]);
            CHECK_MSG(jobs[i].reply && !strcmp(jobs[i].reply, r), "pixel %d: reply %s (%s)", px[i],
                      jobs[i].reply ? jobs[i].reply : "NULL", jobs[i].error);
        }
    }
    CHECK_MSG(strstr(jobs[1].error, "after 2 attempts"), "the slow one was retried: %s",
              jobs[1].error);
    cJSON *log = cfx_test_server_log(&sv);
    /* Retried: the timeout, the 500 and the cut reply (twice each); not the answers with a bad
     * body, which a repeat would not mend, nor the 401. */
    const int sent[N] = {1, 2, 2, 1, 1, 2, 1, 1, 1};
    for (int i = 0; i < N; i++)
        CHECK_MSG(requests_with_pixel(log, px[i]) == sent[i], "pixel %d: %d requests, expected %d",
                  px[i], requests_with_pixel(log, px[i]), sent[i]);
    int before = cJSON_GetArraySize(log);
    cJSON_Delete(log);
    for (int i = 0; i < N; i++) cfx_free(jobs[i].reply), jobs[i].reply = NULL;
    cfx_llm_free(l);
    /* A re-run with a new client on the same cache sends only what was not answered. */
    l = cfx_llm_new(&o);
    CHECK(l != NULL);
    if (!l) goto done;
    CHECK_OK(cfx_llm_ask(l, jobs, N, 1, H, W, NULL, &failed));
    CHECK_INT_EQ(failed, 6);
    CHECK_INT_EQ(cfx_llm_sent(l), 6);
    for (int i = 0; i < N; i++) CHECK_INT_EQ(jobs[i].cached, code[i] == CFX_OK);
    log = cfx_test_server_log(&sv);
    CHECK_INT_EQ(cJSON_GetArraySize(log) - before, 2 + 1 + 1 + 2 + 1 + 1);
    cJSON_Delete(log);
    for (int i = 0; i < N; i++) cfx_free(jobs[i].reply);
    cfx_llm_free(l);
done:
    cfx_test_server_stop(&sv);
}

CFX_TEST(llm, unreachable_server_and_bad_options_get_clear_messages) {
    float img[16];
    make_image(img, 1, 4, 4, 100, 0);
    /* Port 1 on the loopback: nothing listens there. */
    cfx_llm *l = cfx_llm_new(&(cfx_llm_options){
        .url = "http://127.0.0.1:1/v1", .model = "m", .retries = 1, .backoff = 0.01});
    CHECK(l != NULL);
    cfx_llm_job job = {.image = img};
    int64_t failed = 0;
    if (l) {
        CHECK_OK(cfx_llm_ask(l, &job, 1, 1, 4, 4, NULL, &failed));
        CHECK_INT_EQ(failed, 1);
        CHECK_MSG(job.status == CFX_ENET &&
                      strstr(job.error, "http://127.0.0.1:1/v1/chat/completions") &&
                      strstr(job.error, "after 2 attempts"),
                  "%s: %s", cfx_status_str(job.status), job.error);
    }
    cfx_llm_free(l);
    CHECK(cfx_llm_new(&(cfx_llm_options){.url = "127.0.0.1:8080", .model = "m"}) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "http://"), "%s", cfx_last_error());
    CHECK(cfx_llm_new(&(cfx_llm_options){.url = "http://x/v1"}) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "model"), "%s", cfx_last_error());
    /* Credentials in a URL stay out of messages. */
    l = cfx_llm_new(&(cfx_llm_options){.url = "http://user:secret@127.0.0.1:1/v1", .model = "m"});
    if (l) {
        CHECK_OK(cfx_llm_ask(l, &job, 1, 1, 4, 4, NULL, &failed));
        CHECK_MSG(!strstr(job.error, "secret") && strstr(job.error, "***@127.0.0.1:1"), "%s",
                  job.error);
    }
    cfx_llm_free(l);
}

CFX_TEST(llm, replies_parse_or_say_what_is_wrong) {
    char *t = NULL;
    CHECK_OK(cfx_llm_parse_reply(
        "{\"choices\": [{\"message\": {\"content\": \"  It is dark.\\n\"}}]}", &t));
    CHECK_STR_EQ(t ? t : "", "It is dark.");
    cfx_free(t);
    CHECK_OK(cfx_llm_parse_reply("{\"choices\": [{\"message\": {\"content\": [{\"type\": "
                                 "\"text\", \"text\": \"A\"}, {\"type\": \"text\", \"text\": "
                                 "\"B\"}]}}]}",
                                 &t));
    CHECK_STR_EQ(t ? t : "", "A B");
    cfx_free(t);
    const char *bad[][2] = {{"<html>502</html>", "not a JSON object"},
                            {"{\"choices\": []}", "no choices"},
                            {"{\"object\": \"x\"}", "no choices"},
                            {"{\"choices\": [{\"message\": {\"content\": null}}]}", "no text"},
                            {"{\"choices\": [{\"message\": {\"content\": \" \"}}]}", "no text"},
                            {"{\"error\": {\"message\": \"model not found\"}}", "model not found"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(cfx_llm_parse_reply(bad[i][0], &t), CFX_EFORMAT);
        CHECK_MSG(t == NULL && strstr(cfx_last_error(), bad[i][1]), "%s: %s", bad[i][0],
                  cfx_last_error());
    }
}

CFX_TEST(llm, keyword_rules_and_true_sentences) {
    const struct {
        const char *text;
        cfx_cause want;
    } cases[] = {
        {"The image is very dark, making the sign hard to read.", CFX_CAUSE_BRIGHTNESS},
        {"The object in the image is overexposed.", CFX_CAUSE_BRIGHTNESS},
        {"Low contrast makes the digits blend into the background.", CFX_CAUSE_CONTRAST},
        {"The colours are over-saturated.", CFX_CAUSE_SATURATION},
        {"The image contains a lot of random noise.", CFX_CAUSE_NOISE},
        {"The sign appears grainy.", CFX_CAUSE_NOISE},
        {"The image is heavily PIXELATED.", CFX_CAUSE_PIXELATION},
        {"The image shows an unfamiliar object.", CFX_CAUSE_SPATIAL},
        {"The dark image also has low contrast.", CFX_CAUSE_BRIGHTNESS},
        {"The image has low contrast and is dark.", CFX_CAUSE_CONTRAST},
        {"I cannot tell.", CFX_CAUSE_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(cfx_explain_keyword_cause(cases[i].text) == cases[i].want, "'%s': %s, not %s",
                  cases[i].text, cfx_cause_name(cfx_explain_keyword_cause(cases[i].text)),
                  cfx_cause_name(cases[i].want));
    /* The fine-tuning answer of every cause names it, with the direction the images show. */
    enum { H = 8, W = 8 };
    float a[3 * H * W], b[3 * H * W];
    make_image(a, 3, H, W, 100, 0);
    for (int i = 0; i < 3 * H * W; i++) b[i] = a[i] * 0.5f;
    char s[256];
    for (int c = CFX_CAUSE_SPATIAL; c < CFX_CAUSE_COUNT; c++)
        for (int ref = 0; ref < 2; ref++) {
            cfx_explain_true_sentence((cfx_cause)c, b, ref ? a : NULL, 3, H, W, s, sizeof s);
            CHECK_MSG(cfx_explain_keyword_cause(s) == (cfx_cause)c, "%s: '%s' reads as %s",
                      cfx_cause_name((cfx_cause)c), s,
                      cfx_cause_name(cfx_explain_keyword_cause(s)));
        }
    cfx_explain_true_sentence(CFX_CAUSE_BRIGHTNESS, b, a, 3, H, W, s, sizeof s);
    CHECK_MSG(strstr(s, "darker"), "%s", s);
    char *d = cfx_llm_dataset_description("fashion-mnist", (const char *[]){"Shirt", "Bag"}, 2);
    CHECK_MSG(d && strstr(d, "Fashion-MNIST") && strstr(d, "2 different classes: Shirt, and Bag."),
              "%s", d ? d : "NULL");
    cfx_free(d);
}

/* ----------------------------------------------------------------- the CLI === */

/* A small signs run (as tests/test_explain.c makes one), once for the suite. */
static char root[600];

static bool setup_run(void) {
    return cfx_test_bundle_once(root, sizeof root,
                                &(cfx_test_bundle_spec){.train = 60,
                                                        .calib = 30,
                                                        .test = 30,
                                                        .ood = 20,
                                                        .clf_epochs = 6,
                                                        .ae_epochs = 2,
                                                        .threshold = 0.17,
                                                        .per_cause = 2},
                                "reco,lnn,best");
}

/* The lines of RUN/explanations.jsonl of one explainer (cJSON_Delete the array). */
static cJSON *rows_of(const char *explainer) {
    char path[800], *text = NULL;
    size_t size;
    cJSON *all = cJSON_CreateArray();
    snprintf(path, sizeof path, "%s/run/explanations.jsonl", root);
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return all;
    for (char *p = text, *nl; p < text + size; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) nl = text + size;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        const char *e = cJSON_GetStringValue(cJSON_GetObjectItem(j, "explainer"));
        if (e && !strcmp(e, explainer))
            cJSON_AddItemToArray(all, j);
        else
            cJSON_Delete(j);
    }
    cfx_free(text);
    return all;
}

static bool file_has(const char *path, const char *needle) {
    char *text = NULL;
    size_t size;
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return false;
    bool has = strstr(text, needle) != NULL;
    cfx_free(text);
    return has;
}

/* Decodes standard base64 (the test's own decoder, for the export's images). */
static size_t unbase64(const char *s, unsigned char *out, size_t cap) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    unsigned v = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        const char *p = strchr(A, *s);
        if (!p) return 0;
        v = v << 6 | (unsigned)(p - A), bits += 6;
        if (bits >= 8) {
            if (n == cap) return 0;
            out[n++] = (unsigned char)(v >> (bits - 8)), bits -= 8;
        }
    }
    return n;
}

CFX_TEST(llm, cli_asks_keeps_answers_scores_and_exports) {
    if (!setup_run()) return;
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    char out[32768], path[900];
    setenv("CFX_TEST_LLM_KEY", key, 1);
    /* Half the requests fail (HTTP 500 after the retry): each failed row records its error,
     * the others their answer, and the command says how many failed (exit 1). */
    server_mode(&sv, "fail-half");
    int rc = cfx_test_run_cli(out, sizeof out,
                              "explain %s/run --llm http://127.0.0.1:%d/v1 --llm-model vlm "
                              "--api-key-env CFX_TEST_LLM_KEY --retries 1 --timeout 5 "
                              "--concurrency 2",
                              root, sv.port);
    CHECK_MSG(!strstr(out, key), "the output shows the key: %s", out);
    cJSON *rows = rows_of("llm:vlm"), *row;
    int n = cJSON_GetArraySize(rows), errors = 0;
    cfx_run *r = NULL;
    snprintf(path, sizeof path, "%s/run", root);
    r = cfx_run_open(path);
    CHECK(r != NULL);
    if (r) CHECK_INT_EQ(n, 4 * r->n); /* none, reco, lnn and best */
    cJSON_ArrayForEach(row, rows) {
        bool err = cJSON_IsString(cJSON_GetObjectItem(row, "error"));
        errors += err;
        CHECK(cJSON_IsString(cJSON_GetObjectItem(row, "cause")));
        if (err)
            CHECK_MSG(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(row, "error")), "HTTP 500"),
                      "%s", cJSON_GetStringValue(cJSON_GetObjectItem(row, "error")));
        else
            CHECK_MSG(
                !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(row, "predicted_cause")),
                        "brightness") &&
                    strstr(cJSON_GetStringValue(cJSON_GetObjectItem(row, "sentence")), "too dark"),
                "a row without the answer's cause or sentence");
        /* best's row is its winner's request, answered once for both. */
        const char *method = cJSON_GetStringValue(cJSON_GetObjectItem(row, "method"));
        if (r && method && !strcmp(method, "best")) {
            int i = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(row, "index"));
            const char *won = cfx_run_method_name(r->results[CFX_RUN_BEST * r->n + i].winner);
            const cJSON *other;
            bool same = false;
            cJSON_ArrayForEach(other, rows) {
                const char *om = cJSON_GetStringValue(cJSON_GetObjectItem(other, "method"));
                if ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(other, "index")) == i && om &&
                    !strcmp(om, won)) {
                    char *a = cJSON_PrintUnformatted(
                             cJSON_GetObjectItem(row, err ? "error" : "sentence")),
                         *b = cJSON_PrintUnformatted(
                             cJSON_GetObjectItem(other, err ? "error" : "sentence"));
                    same = a && b && !strcmp(a, b);
                    free(a), free(b);
                }
            }
            CHECK_MSG(same, "image %d: best's row is not its winner's (%s)", i, won);
        }
    }
    cJSON_Delete(rows);
    CHECK_MSG(errors > 0 && errors < n, "%d of %d failed: the server fails about half", errors, n);
    /* One request per image for none, reco and lnn; best's rows share their winner's. */
    int failed_jobs = -1, jobs = -1;
    const char *said = strstr(out, "requests failed") ? strstr(out, "cfx explain: ") : NULL;
    if (said) sscanf(said, "cfx explain: %d of %d requests failed", &failed_jobs, &jobs);
    if (r) CHECK_INT_EQ(jobs, 3 * r->n);
    CHECK_MSG(rc == 1 && failed_jobs > 0 && strstr(out, "again"), "exit %d: %s", rc, out);
    cJSON *log = cfx_test_server_log(&sv);
    int before = cJSON_GetArraySize(log);
    CHECK_INT_EQ(before, jobs + failed_jobs); /* each failed one was retried once */
    cJSON_Delete(log);
    /* Again with a server that answers: only the failed ones are asked. */
    server_mode(&sv, "ok");
    rc = cfx_test_run_cli_stdout(out, sizeof out,
                                 "explain %s/run --llm http://127.0.0.1:%d/v1 --llm-model vlm "
                                 "--api-key-env CFX_TEST_LLM_KEY --json",
                                 root, sv.port);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    cJSON *j = cJSON_Parse(out);
    CHECK_MSG(j && (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "sent")) == failed_jobs &&
                  (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "cached")) == jobs - failed_jobs,
              "%s", out);
    cJSON_Delete(j);
    log = cfx_test_server_log(&sv);
    CHECK_INT_EQ(cJSON_GetArraySize(log) - before, failed_jobs);
    cJSON_Delete(log);
    rows = rows_of("llm:vlm");
    CHECK_INT_EQ(cJSON_GetArraySize(rows), n);
    cJSON_ArrayForEach(row, rows) CHECK(cJSON_GetObjectItem(row, "error") == NULL);
    cJSON_Delete(rows);
    const char *files[] = {"explanations.jsonl", "llm_cache.jsonl"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/run/%s", root, files[k]);
        CHECK_MSG(!file_has(path, key), "%s holds the key", path);
    }
    /* The measured explainer's rows and the LLM's live side by side. */
    rc = cfx_test_run_cli(out, sizeof out, "explain %s/run --sources 40 --no-maps --threads 1",
                          root);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    rows = rows_of("measured");
    CHECK_INT_EQ(cJSON_GetArraySize(rows), n);
    cJSON_Delete(rows);
    rows = rows_of("llm:vlm");
    CHECK_INT_EQ(cJSON_GetArraySize(rows), n);
    cJSON_Delete(rows);

    /* Score: the CSV for a person, and a table per explainer. The test server's answers all
     * say "too dark", so the LLM is right exactly on the brightness images. */
    rc = cfx_test_run_cli_stdout(out, sizeof out, "explain score %s/run", root);
    CHECK_MSG(rc == 0 && strstr(out, "llm:vlm:") && strstr(out, "measured:") &&
                  strstr(out, "| Method | spatial | brightness |") && strstr(out, "| None |") &&
                  strstr(out, "| reco |"),
              "exit %d: %s", rc, out);
    const char *llm_table = strstr(out, "llm:vlm:");
    CHECK_MSG(llm_table && strstr(llm_table, "| None | 0% | 100% | 0% | 0% | 0% | 0% | 16.67% |"),
              "the LLM's table: %s", llm_table ? llm_table : out);
    char csv[900];
    snprintf(csv, sizeof csv, "%s/run/explanations_score.csv", root);
    char *text = NULL;
    size_t size;
    CHECK_OK(cfx_file_read_all(csv, &text, &size));
    int lines = 0;
    for (char *p = text; p && *p; p++) lines += *p == '\n';
    CHECK_INT_EQ(lines, 1 + 2 * n);
    const char *header = "index,method,explainer,true cause,predicted cause,sentence,correct\n";
    CHECK_MSG(text && !strncmp(text, header, strlen(header)), "header: %.80s", text ? text : "");
    /* A person marks every LLM answer right: its accuracy becomes 100% everywhere. */
    char corrected[900];
    snprintf(corrected, sizeof corrected, "%s/corrected.csv", root);
    FILE *f = fopen(corrected, "w");
    CHECK(f != NULL);
    for (char *p = text, *nl; f && p && *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) break;
        if (strstr(p, "\"llm:vlm\"") && strstr(p, "\"llm:vlm\"") < nl && nl[-1] == '0')
            fprintf(f, "%.*s1\n", (int)(nl - p - 1), p);
        else
            fprintf(f, "%.*s\n", (int)(nl - p), p);
    }
    if (f) fclose(f);
    rc = cfx_test_run_cli_stdout(out, sizeof out, "explain score %s/run --corrected %s", root,
                                 corrected);
    llm_table = strstr(out, "llm:vlm:");
    CHECK_MSG(rc == 0 && llm_table &&
                  strstr(llm_table, "| None | 100% | 100% | 100% | 100% | 100% | 100% | 100.00% |"),
              "exit %d: %s", rc, out);
    /* An unknown cause in the corrected file: the row is named. */
    f = fopen(corrected, "w");
    if (f) {
        fprintf(f, "index,method,explainer,true cause,predicted cause,sentence,correct\n"
                   "0,none,\"llm:vlm\",brightness,brightness,\"Dark, very.\",1\n"
                   "1,none,\"llm:vlm\",noise,glare,\"Glare.\",\n");
        fclose(f);
    }
    rc = cfx_test_run_cli(out, sizeof out, "explain score %s/run --corrected %s", root, corrected);
    CHECK_MSG(rc == 1 && strstr(out, "row 3") && strstr(out, "unknown predicted cause 'glare'"),
              "exit %d: %s", rc, out);
    cfx_free(text);

    /* Export: every line is a chat with a decodable image and the true cause's sentence. */
    char jl[900];
    snprintf(jl, sizeof jl, "%s/ft.jsonl", root);
    rc = cfx_test_run_cli(out, sizeof out, "explain export-finetune %s/run --out %s", root, jl);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out);
    text = NULL;
    CHECK_OK(cfx_file_read_all(jl, &text, &size));
    int examples = 0;
    for (char *p = text, *nl; text && p < text + size; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) break;
        cJSON *e = cJSON_ParseWithLength(p, (size_t)(nl - p));
        const cJSON *m = cJSON_GetObjectItem(e, "messages");
        const char *sys =
            cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "content"));
        const cJSON *parts = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content");
        const char *answer =
            cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "content"));
        const char *uri = cJSON_GetStringValue(cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(parts, 1), "image_url"), "url"));
        CHECK_MSG(cJSON_GetArraySize(m) == 3 && sys && strstr(sys, "speed limit") && answer &&
                      uri && !strncmp(uri, "data:image/png;base64,", 22),
                  "line %d: %.*s", examples + 1, (int)(nl - p > 300 ? 300 : nl - p), p);
        if (uri && r && examples < 4) {
            static unsigned char png[1 << 16];
            size_t len = unbase64(uri + 22, png, sizeof png);
            char pp[900];
            snprintf(pp, sizeof pp, "%s/ft%d.png", root, examples);
            FILE *pf = fopen(pp, "wb");
            if (pf) fwrite(png, 1, len, pf), fclose(pf);
            cfx_tensor *im = cfx_image_read(pp, 3);
            bool pair = strstr(cJSON_GetStringValue(
                                   cJSON_GetObjectItem(cJSON_GetArrayItem(parts, 0), "text")),
                               "side-by-side") != NULL;
            CHECK_MSG(im && im->shape[1] == r->h + (pair ? 20 : 0) &&
                          im->shape[2] == (pair ? 2 * r->w + 30 : r->w),
                      "example %d's image does not decode to its size", examples);
            cfx_tensor_free(im);
        }
        cJSON_Delete(e);
        examples++;
    }
    cfx_free(text);
    if (r) CHECK_INT_EQ(examples, 3 * r->n); /* none, reco and lnn */

    /* An unreachable server, a missing key variable, --llm without a model. */
    rc = cfx_test_run_cli(out, sizeof out,
                          "explain %s/run --llm http://127.0.0.1:1/v1 --llm-model other "
                          "--retries 0 --no-counterfactual",
                          root);
    CHECK_MSG(rc == 1 && strstr(out, "requests failed") && strstr(out, "127.0.0.1:1"),
              "exit %d: %s", rc, out);
    rows = rows_of("llm:vlm");
    CHECK_INT_EQ(cJSON_GetArraySize(rows), n); /* what was answered is kept */
    cJSON_Delete(rows);
    rc = cfx_test_run_cli(out, sizeof out,
                          "explain %s/run --llm http://127.0.0.1:%d/v1 --llm-model vlm "
                          "--api-key-env CFX_TEST_NO_SUCH_VAR",
                          root, sv.port);
    CHECK_MSG(rc == 1 && strstr(out, "CFX_TEST_NO_SUCH_VAR"), "exit %d: %s", rc, out);
    rc = cfx_test_run_cli(out, sizeof out, "explain %s/run --llm http://127.0.0.1:%d/v1", root,
                          sv.port);
    CHECK_MSG(rc == 2 && strstr(out, "--llm-model"), "exit %d: %s", rc, out);
    cfx_run_free(r);
    unsetenv("CFX_TEST_LLM_KEY");
    cfx_test_server_stop(&sv);
}

/* libcurl is opened on the first request (src/explain/http.c), not at process start: `cfx
 * --version` does not load it (LD_DEBUG=libs, the loader's own account); a library that is
 * missing, or that is not libcurl, gets a message naming it and the Debian package. */
CFX_TEST(llm, libcurl_loads_on_first_request_and_a_missing_one_is_named) {
    CHECK_OK(cfx__http_check_library(NULL));
    CHECK_ERR(cfx__http_check_library("libcfx_no_such_curl.so.4"), CFX_ENOTFOUND);
    CHECK_MSG(strstr(cfx_last_error(), "libcfx_no_such_curl.so.4") &&
                  strstr(cfx_last_error(), "apt-get install libcurl4"),
              "%s", cfx_last_error());
    CHECK_ERR(cfx__http_check_library("libm.so.6"), CFX_ENOTFOUND);
    CHECK_MSG(strstr(cfx_last_error(), "libm.so.6 has no curl_global_init") &&
                  strstr(cfx_last_error(), "libcurl4"),
              "%s", cfx_last_error());
    if (!cfx_test_cli()) {
        cfx_test_skip("no build/cfx beside the tests (the start-up half)");
        return;
    }
    static char out[32768];
    int rc = cfx_test_cli_startup_libs(out, sizeof out);
    CHECK_MSG(rc == 0 && strstr(out, "find library=libc.so.6"), "exit %d: %.300s", rc, out);
    CHECK_MSG(!strstr(out, "libcurl"), "cfx --version loaded libcurl: %.2000s", out);
}
