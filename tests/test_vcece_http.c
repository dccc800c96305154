/* test_vcece_http.c - V-CECE's loop over HTTP: the Replacer and img2img editors
 * (src/concepts/editor_http.c), the vision-LLM classifier with n-vote self-consistency
 * (classify_llm.c) and planner (planner_llm.c), against tests/py/vcece_server.py on 127.0.0.1:
 * every request field checked one by one with Python's json, base64 and Pillow as the
 * independent decoders; each fault (timeout, 500 then success, malformed JSON, an image that
 * does not decode, nothing detected, an image of another size, answers outside the class
 * list) retried or a clear error for its image; votes with ties; the planner's good and bad
 * answers; and `cfx concepts edit` with those servers on scenes, where the run goes on past a
 * faulty image and `cfx concepts evaluate` reports the mean stability. */
#include "test.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ----------------------------------------------------------------- the server === */

/* The server in a folder of its own. */
static bool server_start(cfx_test_server *s) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/srv", cfx_test_tmpdir());
    mkdir(dir, 0755);
    return cfx_test_server_start(s, "vcece_server.py", dir);
}

/* Writes DIR/name (faults.json, answers.json) and empties the log. */
static void server_script(const cfx_test_server *s, const char *name, const char *json) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) fputs(json, f), fclose(f);
}

static void server_clear_log(const cfx_test_server *s) {
    char path[800];
    snprintf(path, sizeof path, "%s/log.jsonl", s->dir);
    unlink(path);
}

static const char *str_of(const cJSON *j, const char *key) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(j, key));
    return s ? s : "(absent)";
}

static double num_of(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -12345;
}

/* A (3,h,w) image: a smooth pattern, top-left pixel (0.2, 0.4, 0.6). */
static cfx_tensor *make_image(int h, int w) {
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){3, h, w});
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < h * w; p++)
            t->data[c * h * w + p] = 0.3f + 0.05f * (float)((p + c) % 7);
    t->data[0] = 0.2f, t->data[h * w] = 0.4f, t->data[2 * h * w] = 0.6f;
    return t;
}

static const char NEG[] = "cartoon, unrealistic proportions, blurry edges, low detail, "
                          "overexposed lighting, distorted shapes";

/* -------------------------------------------------------------------- editors === */

CFX_TEST(vcece_http, replacer_sends_vcece_fields_and_decodes_the_reply) {
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    enum { H = 16, W = 20 };
    cfx_tensor *im = make_image(H, W);
    uint8_t mask[H * W] = {0};
    for (int y = 4; y < 9; y++)
        for (int x = 5; x < 11; x++) mask[y * W + x] = 1;
    cfx_image_editor *ed = cfx_image_editor_replacer(sv.url, NULL);
    CHECK_MSG(ed != NULL, "%s", cfx_last_error());
    if (!ed) goto out;
    const cfx_edit_request reqs[3] = {
        {.kind = CFX_EDIT_DELETE, .from = "coat.n.01", .mask = mask, .box = {5, 4, 11, 9}},
        {.kind = CFX_EDIT_INSERT, .to = "ankle_boot.n.01", .box = {0, 0, 8, 8}},
        {.kind = CFX_EDIT_SUBSTITUTE,
         .from = "coat.n.01",
         .to = "sandal",
         .mask = mask,
         .box = {4, 3, 12, 11}}};
    const char *detect[3] = {"coat", "background", "coat"};
    const char *positive[3] = {"empty background", "ankle boot", "sandal"};
    for (int k = 0; k < 3; k++) {
        cfx_tensor *o = NULL;
        uint8_t nm[H * W];
        int has = -1;
        CHECK_OK(ed->edit(ed->user, &reqs[k], im, &o, nm, &has));
        CHECK(has == 0);
        /* The server painted the top-left quarter red; the rest is the input. */
        if (o) {
            CHECK(o->shape[1] == H && o->shape[2] == W);
            CHECK_NEAR(o->data[0], 1, 1e-6);
            CHECK_NEAR(o->data[H * W], 0, 1e-6);
            int p = (H - 1) * W + W - 1;
            CHECK_NEAR(o->data[p], roundf(im->data[p] * 255) / 255, 1e-6);
        }
        cfx_tensor_free(o);
    }
    cJSON *log = cfx_test_server_log(&sv);
    CHECK_INT_EQ(cJSON_GetArraySize(log), 3);
    for (int k = 0; k < 3 && k < cJSON_GetArraySize(log); k++) {
        const cJSON *r = cJSON_GetArrayItem(log, k);
        CHECK_STR_EQ(str_of(r, "path"), "/replacer/replace");
        CHECK_STR_EQ(str_of(r, "content_type"), "application/json");
        CHECK_STR_EQ(str_of(r, "detection_prompt"), detect[k]);
        CHECK_STR_EQ(str_of(r, "positive_prompt"), positive[k]);
        CHECK_STR_EQ(str_of(r, "negative_prompt"), NEG);
        CHECK_NEAR(num_of(r, "mask_blur"), 10, 0);
        CHECK_NEAR(num_of(r, "cfg_scale"), 10, 0);
        CHECK_NEAR(num_of(r, "denoise"), 1, 0);
        CHECK_NEAR(num_of(r, "steps"), 40, 0);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r, "use_hires_fix")));
        CHECK(cJSON_GetObjectItem(r, "problem") == NULL);
        /* Pillow decodes the input image: its size and top-left pixel. */
        const cJSON *in = cJSON_GetObjectItem(r, "input_image");
        CHECK_NEAR(num_of(in, "width"), W, 0);
        CHECK_NEAR(num_of(in, "height"), H, 0);
        const cJSON *px = cJSON_GetObjectItem(in, "pixel");
        CHECK_NEAR(cJSON_GetArrayItem(px, 0)->valuedouble, 51, 0);  /* 0.2 * 255 */
        CHECK_NEAR(cJSON_GetArrayItem(px, 1)->valuedouble, 102, 0); /* 0.4 */
        CHECK_NEAR(cJSON_GetArrayItem(px, 2)->valuedouble, 153, 0); /* 0.6 */
    }
    cJSON_Delete(log);
    cfx_image_editor_free(ed);
    /* A URL that is not http is refused at once. */
    CHECK(cfx_image_editor_replacer("127.0.0.1:7860", NULL) == NULL);
    CHECK(strstr(cfx_last_error(), "http://") != NULL);
out:
    cfx_tensor_free(im);
    cfx_test_server_stop(&sv);
}

CFX_TEST(vcece_http, img2img_sends_the_dilated_mask_and_the_prompts) {
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    enum { H = 24, W = 30 };
    cfx_tensor *im = make_image(H, W);
    uint8_t mask[H * W] = {0};
    for (int y = 8; y < 14; y++)
        for (int x = 10; x < 17; x++) mask[y * W + x] = 1;
    cfx_image_editor *ed = cfx_image_editor_img2img(sv.url, NULL);
    CHECK_MSG(ed != NULL, "%s", cfx_last_error());
    if (!ed) goto out;
    const cfx_edit_request reqs[2] = {
        {.kind = CFX_EDIT_DELETE, .from = "coat.n.01", .mask = mask, .box = {10, 8, 17, 14}},
        {.kind = CFX_EDIT_INSERT, .to = "sandal.n.01", .box = {20, 2, 28, 10}}};
    for (int k = 0; k < 2; k++) {
        cfx_tensor *o = NULL;
        uint8_t nm[H * W];
        int has;
        CHECK_OK(ed->edit(ed->user, &reqs[k], im, &o, nm, &has));
        if (!o) continue;
        /* Painted red exactly where the server read the mask above 127: inside the region. */
        int p = k == 0 ? 10 * W + 12 : 5 * W + 24;
        CHECK_NEAR(o->data[p], 1, 1e-6);
        CHECK_NEAR(o->data[H * W + p], 0, 1e-6);
        CHECK_NEAR(o->data[0], roundf(im->data[0] * 255) / 255, 1e-6);
        cfx_tensor_free(o);
    }
    cJSON *log = cfx_test_server_log(&sv);
    CHECK_INT_EQ(cJSON_GetArraySize(log), 2);
    /* The mask: the region dilated by 2 and blurred over 5x5, so above 127 out to the dilated
     * region's edge (there 3 of the blur's 5 columns are inside, mid-side) and not beyond. */
    const int want_box[2][4] = {{8, 6, 19, 16}, {18, 0, 30, 12}};
    const char *prompt[2] = {"empty background", "sandal"};
    for (int k = 0; k < 2 && k < cJSON_GetArraySize(log); k++) {
        const cJSON *r = cJSON_GetArrayItem(log, k);
        CHECK_STR_EQ(str_of(r, "path"), "/sdapi/v1/img2img");
        CHECK_STR_EQ(str_of(r, "prompt"), prompt[k]);
        CHECK_STR_EQ(str_of(r, "negative_prompt"), NEG);
        CHECK_NEAR(num_of(r, "n_init_images"), 1, 0);
        CHECK_NEAR(num_of(r, "denoising_strength"), 1, 0);
        CHECK_NEAR(num_of(r, "inpainting_fill"), 1, 0);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r, "inpaint_full_res")));
        CHECK_NEAR(num_of(r, "mask_blur"), 10, 0);
        CHECK_NEAR(num_of(r, "steps"), 40, 0);
        CHECK_NEAR(num_of(r, "cfg_scale"), 10, 0);
        CHECK_NEAR(num_of(r, "width"), W, 0);
        CHECK_NEAR(num_of(r, "height"), H, 0);
        CHECK(cJSON_GetObjectItem(r, "problem") == NULL);
        const cJSON *ii = cJSON_GetObjectItem(r, "init_image"), *m = cJSON_GetObjectItem(r, "mask");
        CHECK_NEAR(num_of(ii, "width"), W, 0);
        CHECK_NEAR(num_of(m, "width"), W, 0);
        CHECK_NEAR(num_of(m, "height"), H, 0);
        CHECK_STR_EQ(str_of(m, "mode"), "L");
        const cJSON *bb = cJSON_GetObjectItem(m, "bbox");
        for (int j = 0; j < 4; j++)
            CHECK_MSG(cJSON_GetArrayItem(bb, j) &&
                          cJSON_GetArrayItem(bb, j)->valueint == want_box[k][j],
                      "request %d: mask box[%d] is %d, want %d", k, j,
                      cJSON_GetArrayItem(bb, j) ? cJSON_GetArrayItem(bb, j)->valueint : -1,
                      want_box[k][j]);
    }
    cJSON_Delete(log);
    cfx_image_editor_free(ed);
out:
    cfx_tensor_free(im);
    cfx_test_server_stop(&sv);
}

CFX_TEST(vcece_http, editor_faults_are_retried_or_clear_errors) {
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    enum { H = 12, W = 14 };
    cfx_tensor *im = make_image(H, W);
    cfx_http_editor_options eo = {.timeout = 1, .retries = 0, .backoff = 0.05};
    cfx_image_editor *rep = cfx_image_editor_replacer(sv.url, &eo);
    eo.retries = 1;
    cfx_image_editor *rep1 = cfx_image_editor_replacer(sv.url, &eo);
    cfx_edit_request rq = {.kind = CFX_EDIT_INSERT, .to = "sandal", .box = {0, 0, 4, 4}};
    cfx_tensor *o = NULL;
    uint8_t nm[H * W];
    int has;
    struct {
        const char *faults;
        cfx_image_editor *ed;
        cfx_status st;
        const char *words[2];
        int requests;
    } cases[] = {
        {"[\"timeout\"]", rep, CFX_ETIMEOUT, {"no complete reply within 1 s", "Replacer"}, 1},
        {"[\"500\"]", rep1, CFX_OK, {NULL, NULL}, 2}, /* 500, then the retry succeeds */
        {"[\"500\", \"500\"]", rep1, CFX_ENET, {"HTTP 500", "after 2 attempts"}, 2},
        {"[\"malformed\"]", rep, CFX_EFORMAT, {"not a JSON object", "Replacer editor"}, 1},
        {"[\"baddecode\"]",
         rep,
         CFX_EFORMAT,
         {"decode the editor's image", "not a PNG or JPEG"},
         1},
        {"[\"nothing\"]",
         rep,
         CFX_ENOTFOUND,
         {"nothing detected", "nothing detected for the prompt"},
         1},
        {"[\"wrongsize\"]",
         rep,
         CFX_ESHAPE,
         {"returned a 10x10 image, expected 14x12", "Replacer"},
         1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        server_clear_log(&sv);
        server_script(&sv, "faults.json", cases[k].faults);
        o = NULL;
        cfx_status st = cases[k].ed->edit(cases[k].ed->user, &rq, im, &o, nm, &has);
        CHECK_MSG(st == cases[k].st, "faults %s: status %d, want %d (%s)", cases[k].faults, st,
                  cases[k].st, cfx_last_error());
        for (int j = 0; j < 2; j++)
            if (cases[k].words[j])
                CHECK_MSG(strstr(cfx_last_error(), cases[k].words[j]) != NULL,
                          "faults %s: '%s' lacks '%s'", cases[k].faults, cfx_last_error(),
                          cases[k].words[j]);
        CHECK((st == CFX_OK) == (o != NULL));
        cfx_tensor_free(o);
        if (cases[k].st == CFX_ETIMEOUT) sleep(3); /* the slow reply ends before the next */
        cJSON *log = cfx_test_server_log(&sv);
        CHECK_MSG(cJSON_GetArraySize(log) == cases[k].requests, "faults %s: %d requests, want %d",
                  cases[k].faults, cJSON_GetArraySize(log), cases[k].requests);
        cJSON_Delete(log);
    }
    cfx_image_editor_free(rep);
    cfx_image_editor_free(rep1);
    cfx_tensor_free(im);
    cfx_test_server_stop(&sv);
}

/* ----------------------------------------------------------------------- LLMs === */

CFX_TEST(vcece_http, llm_classifier_votes_with_ties_to_the_first_and_drops_outside_answers) {
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    const char *cls[] = {"summer", "winter", "travel"};
    char url[200];
    snprintf(url, sizeof url, "%s/v1", sv.url);
    setenv("CFX_TEST_VCECE_KEY", "sk-vcece-test", 1);
    cfx_llm_options o = {.url = url,
                         .model = "m1",
                         .api_key = "sk-vcece-test",
                         .temperature = 1,
                         .timeout = 5,
                         .retries = 1,
                         .backoff = 0.05};
    cfx_image_classifier *c = cfx_image_classifier_llm(&o, 0, cls, 3);
    CHECK_MSG(c != NULL, "%s", cfx_last_error());
    if (!c) {
        cfx_test_server_stop(&sv);
        return;
    }
    cfx_tensor *im = make_image(8, 8);
    int lab = -9;
    char ans[128];
    /* 7 votes: summer x3, winter x3 (one with a full stop and capitals), one outside the list.
     * A tie: summer was answered first. The 500 is retried within its vote. */
    server_script(&sv, "answers.json",
                  "[\"winter\", \"summer\", \"Winter.\", \"autumn\", \"summer\", \"summer\", "
                  "\"winter\"]");
    server_script(&sv, "faults.json", "[\"ok\", \"500\"]");
    CHECK_OK(c->classify(c->user, im, &lab, NULL, ans, sizeof ans));
    CHECK_INT_EQ(lab, 1); /* winter: 3 votes, first seen before summer */
    cJSON *rep = cJSON_Parse(c->report(c->user));
    CHECK(rep != NULL);
    CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "votes")), 6);
    CHECK_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "dropped"), 0)->valuestring, "autumn");
    CHECK_NEAR(num_of(rep, "stability"), 3.0 / 6.0, 1e-12);
    cJSON_Delete(rep);
    cJSON *log = cfx_test_server_log(&sv);
    CHECK_INT_EQ(cJSON_GetArraySize(log), 8); /* 7 votes, one of them sent twice */
    const cJSON *r0 = cJSON_GetArrayItem(log, 0);
    CHECK_STR_EQ(str_of(r0, "path"), "/v1/chat/completions");
    CHECK_STR_EQ(str_of(r0, "model"), "m1");
    CHECK_STR_EQ(str_of(r0, "authorization"), "Bearer sk-vcece-test");
    CHECK_STR_EQ(str_of(r0, "uri_prefix"), "data:image/png;base64,");
    CHECK_STR_EQ(str_of(r0, "text"),
                 "Classify each image in their appropriate class according to the scene they "
                 "depict. Valid classes are summer, winter, travel and only these, so you need to "
                 "classify the images in one of these classes. Pay attention to the semantics "
                 "that define each class. Return me only the label of the scene depicted and "
                 "nothing else.");
    CHECK_NEAR(num_of(cJSON_GetObjectItem(r0, "image"), "width"), 8, 0);
    cJSON_Delete(log);
    /* A clear majority: stability 4/5 of the kept votes. */
    server_clear_log(&sv);
    server_script(&sv, "answers.json",
                  "[\"travel\", \"'Travel'\", \"summer\", \"travel\", \"nothing\", \"travel\", "
                  "\"x\"]");
    CHECK_OK(c->classify(c->user, im, &lab, NULL, ans, sizeof ans));
    CHECK_INT_EQ(lab, 2);
    rep = cJSON_Parse(c->report(c->user));
    CHECK_NEAR(num_of(rep, "stability"), 0.8, 1e-12);
    CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "dropped")), 2);
    cJSON_Delete(rep);
    /* Every answer outside the list: no label, the first answer handed back. */
    server_script(&sv, "answers.json",
                  "[\"spring\", \"autumn\", \"a\", \"b\", \"c\", \"d\", \"e\"]");
    CHECK_OK(c->classify(c->user, im, &lab, NULL, ans, sizeof ans));
    CHECK_INT_EQ(lab, -1);
    CHECK_STR_EQ(ans, "spring");
    /* A vote that fails after its retries fails the classification, naming the vote. */
    server_script(&sv, "answers.json", "[]");
    server_script(&sv, "faults.json", "[\"ok\", \"malformed\"]");
    CHECK_ERR(c->classify(c->user, im, &lab, NULL, ans, sizeof ans), CFX_EFORMAT);
    CHECK(strstr(cfx_last_error(), "vote 2 of 7") != NULL);
    cfx_tensor_free(im);
    cfx_image_classifier_free(c);
    cfx_test_server_stop(&sv);
}

/* A classifier with scores: class 0's score is the image's mean red (for the fallback). */
static cfx_status red_classify(void *user, const cfx_tensor *image, int *label, float *scores,
                               char *answer, size_t cap) {
    (void)user, (void)answer, (void)cap;
    int64_t P = image->shape[1] * image->shape[2];
    double s = 0;
    for (int64_t p = 0; p < P; p++) s += image->data[p];
    if (scores) scores[0] = (float)(s / (double)P), scores[1] = 1 - scores[0];
    *label = s / (double)P > 0.5 ? 0 : 1;
    return CFX_OK;
}

CFX_TEST(vcece_http, llm_planner_takes_good_answers_retries_once_then_falls_back) {
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    cfx_wordnet *wn = cfx_wordnet_load(NULL);
    if (!wn) {
        cfx_test_skip("no WordNet (wordnet-base): %s", cfx_last_error());
        cfx_test_server_stop(&sv);
        return;
    }
    cfx_concepts *cc = cfx_concepts_new(wn, NULL);
    int32_t coat, sandal, bag;
    CHECK_OK(cfx_concepts_add(cc, "coat.n.01", &coat));
    CHECK_OK(cfx_concepts_add(cc, "sandal.n.01", &sandal));
    CHECK_OK(cfx_concepts_add(cc, "bag.n.04", &bag));
    char *names[2] = {"winter", "summer"};
    cfx_image_classifier clf = {
        .classify = red_classify, .num_classes = 2, .classes = names, .has_scores = 1};
    char url[200];
    snprintf(url, sizeof url, "%s/v1", sv.url);
    cfx_llm_options o = {.url = url, .model = "planner", .timeout = 5, .retries = 0};
    cfx_edit_planner *p = cfx_edit_planner_llm(&o, cc, &clf);
    CHECK_MSG(p != NULL, "%s", cfx_last_error());
    enum { H = 12, W = 12 };
    cfx_tensor *im = make_image(H, W);
    for (int i = 0; i < H * W; i++) im->data[i] = 0.9f; /* red: winter (label 0) */
    /* Edit 0 removes a coat at the top left, 1 inserts a sandal at the bottom right, 2
     * replaces the bag (centre) by a sandal. Inpainting the bottom-right region lowers red most
     * in none (red is uniform), so the fallback's ties go to the first. */
    cfx_edit edits[3] = {{.kind = CFX_EDIT_DELETE, .from = coat, .to = -1},
                         {.kind = CFX_EDIT_INSERT, .from = -1, .to = sandal},
                         {.kind = CFX_EDIT_SUBSTITUTE, .from = bag, .to = sandal}};
    static uint8_t r[3][H * W];
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++) r[0][y * W + x] = 1, r[1][(H - 1 - y) * W + W - 1 - x] = 1;
    for (int y = 5; y < 7; y++)
        for (int x = 5; x < 7; x++) r[2][y * W + x] = 1;
    const uint8_t *regions[3] = {r[0], r[1], r[2]};
    int pick = -1;
    struct {
        const char *answers;
        int pick, requests;
        bool fallback;
    } cases[] = {
        {"[\"[insert, sandal, bottom right]\"]", 1, 1, false},
        {"[\"Next: [Replace, 'bag -> sandal', centre].\"]", 2, 1, false},
        {"[\"[replace, bag.n.04, centre]\"]", 2, 1, false},
        {"[\"[remove, sandal, top left]\", \"[remove, coat, top left]\"]", 0, 2, false},
        {"[\"paint it blue\", \"[insert, hat, top]\"]", 0, 2, true},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        server_clear_log(&sv);
        server_script(&sv, "answers.json", cases[k].answers);
        CHECK_OK(p->next(p->user, im, 0, edits, regions, 3, &pick));
        CHECK_MSG(pick == cases[k].pick, "answers %s: picked %d, want %d", cases[k].answers, pick,
                  cases[k].pick);
        cJSON *rep = cJSON_Parse(p->report(p->user));
        CHECK(cJSON_IsBool(cJSON_GetObjectItem(rep, "fallback")) &&
              cJSON_IsTrue(cJSON_GetObjectItem(rep, "fallback")) == cases[k].fallback);
        CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "answers")), cases[k].requests);
        cJSON_Delete(rep);
        cJSON *log = cfx_test_server_log(&sv);
        CHECK_INT_EQ(cJSON_GetArraySize(log), cases[k].requests);
        const cJSON *r0 = cJSON_GetArrayItem(log, 0);
        const char *t = str_of(r0, "text");
        CHECK_MSG(strstr(t, "classified as 'winter'") && strstr(t, "1. [remove, coat, top left]") &&
                      strstr(t, "2. [insert, sandal, bottom right]") &&
                      strstr(t, "3. [replace, bag -> sandal, centre]"),
                  "%s", t);
        if (cases[k].requests == 2)
            CHECK(strstr(str_of(cJSON_GetArrayItem(log, 1), "text"), "is not one of the listed"));
        cJSON_Delete(log);
    }
    /* A failed request: the fallback, with the error recorded. */
    server_script(&sv, "answers.json", "[]");
    server_script(&sv, "faults.json", "[\"500\"]");
    CHECK_OK(p->next(p->user, im, 0, edits, regions, 3, &pick));
    cJSON *rep = cJSON_Parse(p->report(p->user));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(rep, "fallback")));
    CHECK(strstr(str_of(rep, "error"), "HTTP 500") != NULL);
    cJSON_Delete(rep);
    cfx_tensor_free(im);
    cfx_edit_planner_free(p);
    cfx_concepts_free(cc);
    cfx_wordnet_free(wn);
    cfx_test_server_stop(&sv);
}

/* ------------------------------------------------------------- the loop, CLI === */

CFX_TEST(vcece_http, cli_loop_over_http_flips_records_votes_and_goes_on_past_faults) {
    if (!cfx_test_cli_or_skip()) return;
    char root[700], out[16384];
    snprintf(root, sizeof root, "%s", cfx_test_tmpdir());
    int rc = cfx_test_run_cli(out, sizeof out,
                              "data scenes --out %s/sc --size 48 --count 30 --seed 3", root);
    if (rc != 0 && strstr(out, "Fashion-MNIST")) {
        cfx_test_skip("no scenes (Fashion-MNIST from dataset-fashion-mnist?): %s", out);
        return;
    }
    CHECK_MSG(rc == 0, "%s", out);
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    /* The LLM answers summer when the top-left pixel is red, which the fake Replacer paints
     * with every edit; so every image is winter first and flips at its first edit, except the
     * first image, whose edit request (after its 3 votes) finds nothing. */
    server_script(&sv, "faults.json", "[\"ok\", \"ok\", \"ok\", \"nothing\"]");
    setenv("CFX_VCECE_TEST_KEY", "sk-loop", 1);
    rc = cfx_test_run_cli(out, sizeof out,
                          "concepts edit --data %s/sc/concepts.json --images %s/sc --labels rule "
                          "--classifier-llm %s/v1 --llm-model m --llm-votes 3 --llm-key-env "
                          "CFX_VCECE_TEST_KEY --retries 0 --timeout 5 --editor replacer:%s "
                          "--mode global --all --split test --max-steps 3 --out %s/run",
                          root, root, sv.url, sv.url, root);
    CHECK_MSG(rc == 0, "%s", out);
    char path[800], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/run/results.jsonl", root);
    CHECK_OK(cfx_file_read_all(path, &text, &len));
    int lines = 0, errors = 0, flips = 0, with_votes = 0;
    for (char *p = text, *nl; text && p < text + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl) break;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        lines++;
        const char *why = str_of(j, "stop_reason");
        if (!strcmp(why, "error")) {
            errors++;
            CHECK_MSG(strstr(str_of(j, "error"), "nothing detected"), "%s", str_of(j, "error"));
        }
        flips += !strcmp(why, "flip");
        const cJSON *v = cJSON_GetObjectItem(j, "votes"), *lab = cJSON_GetObjectItem(j, "labels");
        if (cJSON_GetArraySize(v) > 0) {
            with_votes++;
            CHECK_INT_EQ(cJSON_GetArraySize(v), cJSON_GetArraySize(lab));
            CHECK_NEAR(num_of(cJSON_GetArrayItem(v, 0), "stability"), 1, 1e-12);
            CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(v, 0), "votes")),
                         3);
        }
        cJSON_Delete(j);
    }
    cfx_free(text);
    CHECK_INT_EQ(lines, 6); /* 20% of 30: every test image has its line */
    CHECK_INT_EQ(errors, 1);
    CHECK_INT_EQ(with_votes, 6);
    CHECK_INT_EQ(flips, 5);
    /* The server saw the key as a header, and the Replacer requests V-CECE's fields. */
    cJSON *log = cfx_test_server_log(&sv);
    int chats = 0, edits = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, log) {
        if (!strcmp(str_of(e, "path"), "/v1/chat/completions")) {
            chats++;
            CHECK_STR_EQ(str_of(e, "authorization"), "Bearer sk-loop");
        } else {
            edits++;
            CHECK_STR_EQ(str_of(e, "path"), "/replacer/replace");
            CHECK_NEAR(num_of(cJSON_GetObjectItem(e, "input_image"), "width"), 48, 0);
        }
    }
    CHECK_INT_EQ(chats, 3 + 5 * 6); /* 3 votes for each label: the first image's one, 2 each */
    CHECK_INT_EQ(edits, 6);
    cJSON_Delete(log);
    CHECK(strstr(out, "sk-loop") == NULL);
    /* evaluate reports the mean stability: every vote here agreed. */
    rc = cfx_test_run_cli(out, sizeof out, "concepts evaluate %s/run --json", root);
    CHECK_MSG(rc == 0 && strstr(out, "\"mean_stability\": 1.0000"), "%s", out);
    cfx_test_server_stop(&sv);
}

CFX_TEST(vcece_http, cli_local_mode_img2img_flips_a_command_classifier_with_the_llm_planner) {
    if (!cfx_test_cli_or_skip()) return;
    char root[700], out[16384], path[800];
    snprintf(root, sizeof root, "%s", cfx_test_tmpdir());
    int rc = cfx_test_run_cli(out, sizeof out,
                              "data scenes --out %s/sc --size 48 --count 30 --seed 5", root);
    if (rc != 0 && strstr(out, "Fashion-MNIST")) {
        cfx_test_skip("no scenes (Fashion-MNIST from dataset-fashion-mnist?): %s", out);
        return;
    }
    CHECK_MSG(rc == 0, "%s", out);
    /* The classifier: summer once the image has more than 20 pure red pixels (what the fake
     * img2img paints over its mask), winter before. */
    snprintf(path, sizeof path, "%s/clf.py", root);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("import sys\nfrom PIL import Image\n"
          "im = Image.open(sys.argv[1]).convert('RGB')\n"
          "red = sum(1 for p in im.getdata() if p == (255, 0, 0))\n"
          "print('summer' if red > 20 else 'winter')\n",
          f);
    fclose(f);
    cfx_test_server sv;
    if (!server_start(&sv)) return;
    /* The planner's first question gets two answers that name no edit: it falls back. */
    server_script(&sv, "answers.json", "[\"paint it\", \"[insert, unicorn, top]\"]");
    rc = cfx_test_run_cli(out, sizeof out,
                          "concepts edit --data %s/sc/concepts.json --images %s/sc --labels rule "
                          "--classifier-cmd '/usr/bin/python3 %s {image}' --editor img2img:%s "
                          "--planner-llm %s/v1 --llm-model p --retries 0 --mode local --all "
                          "--split test --max-steps 3 --out %s/run",
                          root, root, path, sv.url, sv.url, root);
    CHECK_MSG(rc == 0, "%s", out);
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/run/results.jsonl", root);
    CHECK_OK(cfx_file_read_all(path, &text, &len));
    int lines = 0, flips = 0, planned = 0, fallbacks = 0;
    for (char *p = text, *nl; text && p < text + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl) break;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        lines++;
        /* winter first, summer after the first edit: a flip at step 1. */
        if (!strcmp(str_of(j, "stop_reason"), "flip")) {
            flips++;
            CHECK_NEAR(num_of(j, "steps"), 1, 0);
            const cJSON *lab = cJSON_GetObjectItem(j, "labels");
            CHECK_STR_EQ(cJSON_GetArrayItem(lab, 0)->valuestring, "winter");
            CHECK_STR_EQ(cJSON_GetArrayItem(lab, 1)->valuestring, "summer");
        } else {
            CHECK_MSG(false, "%.*s", (int)(nl - p), p);
        }
        const cJSON *pl, *plans = cJSON_GetObjectItem(j, "planner");
        cJSON_ArrayForEach(pl, plans) {
            if (cJSON_IsNull(pl)) continue; /* a single edit left: nothing asked */
            planned++;
            fallbacks += cJSON_IsTrue(cJSON_GetObjectItem(pl, "fallback"));
        }
        cJSON_Delete(j);
    }
    cfx_free(text);
    CHECK_INT_EQ(lines, 6);
    CHECK_INT_EQ(flips, 6);
    CHECK_MSG(planned >= 1, "no image had two edits to choose from");
    CHECK_INT_EQ(fallbacks, 1);
    /* Every editor request was img2img with a mask over the 48x48 image. */
    cJSON *log = cfx_test_server_log(&sv);
    int edits = 0, chats = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, log) {
        if (!strcmp(str_of(e, "path"), "/sdapi/v1/img2img")) {
            edits++;
            CHECK(num_of(cJSON_GetObjectItem(e, "mask"), "count") > 20);
            CHECK_NEAR(num_of(cJSON_GetObjectItem(e, "mask"), "width"), 48, 0);
        } else {
            chats++;
            CHECK_STR_EQ(str_of(e, "path"), "/v1/chat/completions");
        }
    }
    cJSON_Delete(log);
    CHECK_INT_EQ(edits, 6);
    CHECK_INT_EQ(chats, planned + 1); /* the fallback's question was asked twice */
    cfx_test_server_stop(&sv);
}

CFX_TEST(vcece_http, cli_refuses_incomplete_llm_and_editor_options_with_one_line) {
    if (!cfx_test_cli_or_skip()) return;
    char out[4096];
    const char *base = "concepts edit --data d.json --images i --labels rule --all --out r";
    struct {
        const char *args, *says;
        int rc;
    } cases[] = {
        {"--classifier-llm http://h/v1", "need --llm-model NAME", 2},
        {"--classifier c.onnx --classifier-llm http://h/v1 --llm-model m", "give one of", 2},
        {"--classifier-cmd 'x {image}' --planner-llm http://h/v1 --llm-model m --mode global",
         "--planner-llm plans local mode", 2},
        {"--classifier-cmd 'x {image}' --editor sd:http://h", "--editor must be one of", 2},
        {"--classifier-llm http://h/v1 --llm-model m --llm-key-env CFX_VCECE_UNSET_VAR",
         "CFX_VCECE_UNSET_VAR (--llm-key-env) is not set", 1},
    };
    unsetenv("CFX_VCECE_UNSET_VAR");
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int rc = cfx_test_run_cli(out, sizeof out, "%s %s", base, cases[k].args);
        CHECK_MSG(rc == cases[k].rc && strstr(out, cases[k].says) &&
                      !strchr(strchr(out, '\n') ? strchr(out, '\n') + 1 : "", '\n'),
                  "%s: exit %d, want %d and one line with '%s': %s", cases[k].args, rc, cases[k].rc,
                  cases[k].says, out);
    }
}
