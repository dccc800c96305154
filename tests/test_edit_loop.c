/* test_edit_loop.c - V-CECE's loop on pixels: the inpainting (harmonic fills reproduced), the
 * ONNX and command classifiers (probabilities against a softmax computed here, answers outside
 * the class list), the built-in editor on scenes (removal changes only the object's
 * neighbourhood, insertion pastes a concept where the scene was free), and the loop itself with
 * scripted classifiers and editors: each stop reason, the records, resuming after a torn line,
 * and per-image errors that leave the run going. */
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

CFX_TEST(edit_loop, inpaint_fills_harmonic_images_exactly_enough) {
    /* A constant stays constant; a linear ramp is harmonic, so the Laplace fill of a hole
     * reproduces it. */
    enum { H = 24, W = 30 };
    float *im = malloc(2 * H * W * sizeof *im), *want = malloc(2 * H * W * sizeof *want);
    uint8_t mask[H * W] = {0};
    for (int y = 6; y < 17; y++)
        for (int x = 9; x < 19; x++) mask[y * W + x] = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            want[y * W + x] = 0.3f;
            want[H * W + y * W + x] = 0.1f + 0.02f * x + 0.01f * y;
        }
    memcpy(im, want, 2 * H * W * sizeof *im);
    for (int p = 0; p < H * W; p++)
        if (mask[p]) im[p] = 5, im[H * W + p] = -3; /* garbage the fill must not read */
    CHECK_OK(cfx_image_inpaint(im, 2, H, W, mask));
    double worst0 = 0, worst1 = 0;
    for (int p = 0; p < H * W; p++) {
        worst0 = fmax(worst0, fabs(im[p] - want[p]));
        worst1 = fmax(worst1, fabs(im[H * W + p] - want[H * W + p]));
    }
    CHECK_MSG(worst0 < 1e-6, "constant: worst error %g", worst0);
    CHECK_MSG(worst1 < 0.01, "ramp: worst error %g", worst1);
    /* Nothing known: grey. */
    memset(mask, 1, sizeof mask);
    CHECK_OK(cfx_image_inpaint(im, 1, H, W, mask));
    CHECK_NEAR(im[5], 0.5, 1e-6);
    free(im);
    free(want);
}

/* A model (1,3,4,4) -> logits (1,3): logit k = 8 * sum of channel k / 16 + bias k. */
static void write_mean_model(const char *path, int softmax) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "input", 4, (int64_t[]){1, 3, 4, 4});
    int f = cfx_op_flatten(g, x, 1);
    int wt = cfx_graph_param(g, "fc.weight", 2, (int64_t[]){3, 48});
    int b = cfx_graph_param(g, "fc.bias", 1, (int64_t[]){3});
    int y = cfx_op_linear(g, f, wt, b);
    if (softmax) y = cfx_op_softmax(g, y, 1);
    CHECK_OK(cfx_graph_set_output(g, y, "out"));
    CHECK_OK(cfx_graph_compile(g));
    float *wd = cfx_graph_tensor(g, wt)->data, *bd = cfx_graph_tensor(g, b)->data;
    memset(wd, 0, 3 * 48 * sizeof(float));
    for (int k = 0; k < 3; k++)
        for (int p = 0; p < 16; p++) wd[k * 48 + k * 16 + p] = 0.5f;
    bd[0] = 0.25f, bd[1] = -0.5f, bd[2] = 0;
    CHECK_OK(cfx_onnx_save(g, path, NULL, 0));
    cfx_graph_free(g);
}

CFX_TEST(edit_loop, onnx_classifier_gives_softmax_of_logits_or_the_models_own) {
    const char *dir = cfx_test_tmpdir();
    const char *cls[] = {"red", "green", "blue"};
    for (int sm = 0; sm < 2; sm++) {
        char path[700];
        snprintf(path, sizeof path, "%s/m%d.onnx", dir, sm);
        write_mean_model(path, sm);
        cfx_image_classifier *c = cfx_image_classifier_onnx(path, cls, 3);
        CHECK_MSG(c != NULL, "%s", cfx_last_error());
        if (!c) continue;
        cfx_tensor *im = cfx_tensor_new(3, (int64_t[]){3, 4, 4});
        for (int p = 0; p < 16; p++)
            im->data[p] = 0.2f, im->data[16 + p] = 0.9f, im->data[32 + p] = 0.4f;
        double z[3] = {8 * 0.2 + 0.25, 8 * 0.9 - 0.5, 8 * 0.4}, s = 0;
        for (int k = 0; k < 3; k++) s += exp(z[k]);
        float p[3];
        int lab = -9;
        char ans[64];
        CHECK_OK(c->classify(c->user, im, &lab, p, ans, sizeof ans));
        CHECK_INT_EQ(lab, 1);
        for (int k = 0; k < 3; k++) CHECK_NEAR(p[k], exp(z[k]) / s, 1e-5);
        CHECK(c->has_scores);
        /* An image of another size is refused with both shapes named. */
        cfx_tensor *big = cfx_tensor_new(3, (int64_t[]){3, 8, 8});
        CHECK_ERR(c->classify(c->user, big, &lab, p, ans, sizeof ans), CFX_ESHAPE);
        CHECK(strstr(cfx_last_error(), "(3,4,4)") && strstr(cfx_last_error(), "(3,8,8)"));
        cfx_tensor_free(big);
        cfx_tensor_free(im);
        cfx_image_classifier_free(c);
    }
    /* The class list must match the model's outputs. */
    char path[700];
    snprintf(path, sizeof path, "%s/m0.onnx", dir);
    CHECK(cfx_image_classifier_onnx(path, cls, 2) == NULL);
    CHECK(strstr(cfx_last_error(), "class list") != NULL);
}

CFX_TEST(edit_loop, command_classifier_reads_stdout_and_flags_foreign_answers) {
    const char *dir = cfx_test_tmpdir();
    const char *cls[] = {"summer", "winter"};
    cfx_tensor *im = cfx_tensor_new(3, (int64_t[]){3, 5, 5});
    int lab = -9;
    char ans[64];
    /* The image's PNG exists while the command runs. */
    cfx_image_classifier *c =
        cfx_image_classifier_command("test -s {image} && echo '  Winter '", cls, 2, dir);
    CHECK_MSG(c != NULL, "%s", cfx_last_error());
    if (c) {
        CHECK_OK(c->classify(c->user, im, &lab, NULL, ans, sizeof ans));
        CHECK_INT_EQ(lab, 1);
        CHECK(!c->has_scores);
    }
    cfx_image_classifier_free(c);
    c = cfx_image_classifier_command("echo autumn # {image}", cls, 2, dir);
    CHECK_OK(c->classify(c->user, im, &lab, NULL, ans, sizeof ans));
    CHECK_INT_EQ(lab, -1);
    CHECK_STR_EQ(ans, "autumn");
    cfx_image_classifier_free(c);
    c = cfx_image_classifier_command("exit 3 # {image}", cls, 2, dir);
    CHECK_ERR(c->classify(c->user, im, &lab, NULL, ans, sizeof ans), CFX_EIO);
    CHECK(strstr(cfx_last_error(), "exit status 3") != NULL);
    cfx_image_classifier_free(c);
    CHECK(cfx_image_classifier_command("echo summer", cls, 2, dir) == NULL);
    CHECK(strstr(cfx_last_error(), "{image}") != NULL);
    cfx_tensor_free(im);
}

/* ------------------------------------------------------------ loop fixtures --- */

/* A small scenes folder, or NULL (skipped) without Fashion-MNIST. */
static const char *scenes(void) {
    static char dir[700];
    snprintf(dir, sizeof dir, "%s/scenes", cfx_test_tmpdir());
    cfx_scenes_options so = {.size = 48, .count = 40};
    cfx_data_options o = {.out = dir, .seed = 7};
    cfx_status st = cfx_data_prepare_scenes(&o, &so);
    if (st != CFX_OK) {
        cfx_test_skip("no scenes (Fashion-MNIST from dataset-fashion-mnist?): %s",
                      cfx_last_error());
        return NULL;
    }
    return dir;
}

/* A scripted classifier: label 0 until `flip_after` calls since the last reset, then 1; or an
 * answer outside the list at call `foreign`. */
typedef struct {
    int calls, flip_after, foreign;
} script;

static cfx_status script_classify(void *user, const cfx_tensor *image, int *label, float *scores,
                                  char *answer, size_t cap) {
    (void)image;
    script *s = user;
    s->calls++;
    *label = s->calls > s->flip_after ? 1 : 0;
    if (s->calls == s->foreign) *label = -1, snprintf(answer, cap, "spring");
    if (scores) scores[0] = *label == 0, scores[1] = *label == 1;
    return CFX_OK;
}

static char *cls_names[4] = {"winter", "summer", "travel", "casual"};

/* The scripted classifier over the scenes' four classes, with scores. */
static cfx_image_classifier script_classifier(script *sc) {
    return (cfx_image_classifier){.classify = script_classify,
                                  .user = sc,
                                  .num_classes = 4,
                                  .classes = cls_names,
                                  .has_scores = 1};
}

/* A wrapper editor: the built-in one, or one that answers with an image of another size. */
typedef struct {
    cfx_image_editor *inner;
    int wrong_size;
} wrap;

static cfx_status wrap_edit(void *user, const cfx_edit_request *req, const cfx_tensor *image,
                            cfx_tensor **out, uint8_t *mask, int *has_mask) {
    wrap *w = user;
    if (w->wrong_size) {
        *out = cfx_tensor_new(3, (int64_t[]){3, 10, 10});
        *has_mask = 0;
        return CFX_OK;
    }
    return w->inner->edit(w->inner->user, req, image, out, mask, has_mask);
}

typedef struct {
    cfx_wordnet *wn;
    cfx_concepts *c;
    cfx_concepts_data *d;
    char json[800], out[800];
} fixture;

static bool fixture_open(fixture *f, const char *dir) {
    memset(f, 0, sizeof *f);
    snprintf(f->json, sizeof f->json, "%s/concepts.json", dir);
    snprintf(f->out, sizeof f->out, "%s/run", cfx_test_tmpdir());
    mkdir(f->out, 0755);
    f->wn = cfx_wordnet_load(NULL);
    if (!f->wn) {
        cfx_test_skip("no WordNet (wordnet-base): %s", cfx_last_error());
        return false;
    }
    f->c = cfx_concepts_new(f->wn, NULL);
    f->d = cfx_concepts_data_load(f->c, f->json, "rule", CFX_UNKNOWN_ERROR, NULL);
    CHECK_MSG(f->d != NULL, "%s", cfx_last_error());
    return f->d != NULL;
}

static void fixture_close(fixture *f) {
    cfx_concepts_data_free(f->d);
    cfx_concepts_free(f->c);
    cfx_wordnet_free(f->wn);
}

/* The loop tests' prologue: small scenes and the fixture on them. Returns the scenes' folder,
 * or NULL when the test was skipped (no Fashion-MNIST, no WordNet) or failed (f is closed). */
static const char *fixture_or_skip(fixture *f) {
    const char *dir = scenes();
    if (!dir) return NULL;
    if (!fixture_open(f, dir)) {
        fixture_close(f);
        return NULL;
    }
    return dir;
}

/* The records of results.jsonl as text lines (at most 64). */
static int read_lines(const char *out, char lines[][4096], int cap) {
    char path[900];
    snprintf(path, sizeof path, "%s/results.jsonl", out);
    FILE *fp = fopen(path, "r");
    int n = 0;
    while (fp && n < cap && fgets(lines[n], 4096, fp)) n++;
    if (fp) fclose(fp);
    return n;
}

CFX_TEST(edit_loop, stops_on_flip_exhausted_and_cap_and_records_each_step) {
    fixture f;
    const char *dir = fixture_or_skip(&f);
    if (!dir) return;
    script sc = {.flip_after = 2};
    cfx_image_classifier clf = script_classifier(&sc);
    cfx_image_editor *ed = cfx_image_editor_builtin(f.json, dir);
    CHECK_MSG(ed != NULL, "%s", cfx_last_error());
    /* A test image whose nearest counterfactual needs edits: id 36 onwards are test scenes. */
    int64_t q = 36;
    cfx_edit_loop_options o = {.data = f.d,
                               .annotations = f.json,
                               .images = dir,
                               .classifier = &clf,
                               .editor = ed,
                               .mode = CFX_ORDER_GLOBAL,
                               .out = f.out,
                               .queries = &q,
                               .nqueries = 1,
                               .max_steps = 10};
    cfx_edit_loop_summary sum;
    CHECK_OK(cfx_edit_loop_run(&o, &sum));
    char(*lines)[4096] = malloc(64 * 4096);
    int n = read_lines(f.out, lines, 64);
    CHECK_INT_EQ(n, 1);
    /* Calls: the original (1), then one per step: the label flips at the second step, unless
     * the plan had a single edit (then the edits ran out). */
    bool flip = strstr(lines[0], "\"stop_reason\":\"flip\"") != NULL;
    bool exh = strstr(lines[0], "\"stop_reason\":\"exhausted\"") != NULL;
    CHECK_MSG(flip || exh, "%s", lines[0]);
    if (flip) {
        CHECK(strstr(lines[0], "\"steps\":2") && strstr(lines[0], "\"flipped\":true"));
        CHECK(strstr(lines[0], "\"labels\":[\"winter\",\"winter\",\"summer\"]"));
        char png[1000];
        snprintf(png, sizeof png, "%s/steps/36/2.png", f.out);
        CHECK(access(png, F_OK) == 0);
    }
    CHECK_INT_EQ(sum.images, 1);
    /* Never flipping: every query ends exhausted or at the cap of 1. */
    sc = (script){.flip_after = 1000000};
    o.queries = NULL;
    o.split = "test";
    o.max_steps = 1;
    CHECK_OK(cfx_edit_loop_run(&o, &sum));
    CHECK_INT_EQ(sum.images, 8); /* 20% of 40 */
    CHECK_INT_EQ(sum.flipped, 0);
    n = read_lines(f.out, lines, 64);
    CHECK_INT_EQ(n, 8);
    int caps = 0;
    for (int i = 0; i < n; i++) {
        CHECK_MSG(strstr(lines[i], "\"stop_reason\":\"cap\"") ||
                      strstr(lines[i], "\"stop_reason\":\"exhausted\""),
                  "%s", lines[i]);
        caps += strstr(lines[i], "\"stop_reason\":\"cap\"") != NULL;
        CHECK(strstr(lines[i], "\"min_edits\":") != NULL);
        CHECK(strstr(lines[i], "\"mode\":\"global\"") != NULL);
    }
    CHECK(caps > 0);
    free(lines);
    cfx_image_editor_free(ed);
    fixture_close(&f);
}

CFX_TEST(edit_loop, away_aims_past_the_classifiers_label) {
    /* A classifier that always answers "winter" on scenes that are not winter: where the closest
     * counterfactual is a winter scene, --away aims at the closest scene of a third class,
     * checked here against every candidate's edit cost. */
    fixture f;
    const char *dir = fixture_or_skip(&f);
    if (!dir) return;
    int32_t n = cfx_concepts_data_count(f.d), q = -1;
    for (int32_t i = 0; i < n && q < 0; i++) {
        cfx_nearest nr;
        CHECK_OK(cfx_concepts_nearest(f.d, &i, 1, NULL, &nr));
        if (strcmp(cfx_concepts_data_label(f.d, i), "winter") != 0 && nr.target >= 0 &&
            strcmp(cfx_concepts_data_label(f.d, nr.target), "winter") == 0)
            q = i;
    }
    CHECK_MSG(q >= 0, "no scene whose closest counterfactual is a winter scene");
    if (q < 0) {
        fixture_close(&f);
        return;
    }
    /* The closest scene of neither class, by brute force (ties to the earlier scene). */
    const char *src = cfx_concepts_data_label(f.d, q);
    int32_t ns, nd, best = -1;
    int64_t best_cost = INT64_MAX;
    const int32_t *a = cfx_concepts_data_image(f.d, q, &ns);
    for (int32_t j = 0; j < n; j++) {
        const char *lj = cfx_concepts_data_label(f.d, j);
        if (!strcmp(lj, src) || !strcmp(lj, "winter")) continue;
        const int32_t *b = cfx_concepts_data_image(f.d, j, &nd);
        cfx_edit_set es;
        CHECK_OK(cfx_concepts_edits(f.c, a, ns, b, nd, &es));
        if (es.cost < best_cost) best_cost = es.cost, best = j;
        cfx_edit_set_deinit(&es);
    }
    script sc = {.flip_after = 1000000};
    cfx_image_classifier clf = script_classifier(&sc);
    cfx_image_editor *ed = cfx_image_editor_builtin(f.json, dir);
    int64_t qid = cfx_concepts_data_id(f.d, q);
    char want[256];
    snprintf(want, sizeof want, "\"target\":%lld,", (long long)cfx_concepts_data_id(f.d, best));
    char(*lines)[4096] = malloc(64 * 4096);
    for (int mode = 0; mode < 2; mode++) {
        cfx_edit_loop_options o = {.data = f.d,
                                   .annotations = f.json,
                                   .images = dir,
                                   .classifier = &clf,
                                   .editor = ed,
                                   .mode = mode ? CFX_ORDER_LOCAL_GLOBAL : CFX_ORDER_LOCAL,
                                   .out = f.out,
                                   .queries = &qid,
                                   .nqueries = 1,
                                   .max_steps = 10,
                                   .away = 1};
        CHECK_OK(cfx_edit_loop_run(&o, NULL));
        CHECK_INT_EQ(read_lines(f.out, lines, 64), 1);
        CHECK_MSG(strstr(lines[0], want) && strstr(lines[0], "\"away\":true") &&
                      !strstr(lines[0], "\"target_label\":\"winter\""),
                  "want %s in %s", want, lines[0]);
        char cost[64];
        snprintf(cost, sizeof cost, "\"cost\":%lld,", (long long)best_cost);
        CHECK_MSG(strstr(lines[0], cost), "want %s in %s", cost, lines[0]);
        /* Without --away the record keeps the winter scene. */
        o.away = 0;
        CHECK_OK(cfx_edit_loop_run(&o, NULL));
        read_lines(f.out, lines, 64);
        CHECK_MSG(strstr(lines[0], "\"target_label\":\"winter\"") && !strstr(lines[0], "away"),
                  "%s", lines[0]);
    }
    free(lines);
    cfx_image_editor_free(ed);
    fixture_close(&f);
}

CFX_TEST(edit_loop, builtin_editor_removes_only_the_object_and_inserts_into_free_space) {
    fixture f;
    const char *dir = fixture_or_skip(&f);
    if (!dir) return;
    cfx_image_editor *ed = cfx_image_editor_builtin(f.json, dir);
    char path[900];
    snprintf(path, sizeof path, "%s/images/0.png", dir);
    cfx_tensor *im = cfx_image_read(path, 3);
    CHECK(im != NULL);
    /* Scene 0's first object, by its mask from concepts.json via a one-step local loop would
     * hide it; here the request is built by hand from the box. */
    enum { S = 48 };
    uint8_t mask[S * S] = {0}, got[S * S];
    int32_t nn;
    const int32_t *con = cfx_concepts_data_image(f.d, 0, &nn);
    CHECK(nn >= 1);
    /* A square hole in the middle of the image stands for an object. */
    for (int y = 18; y < 30; y++)
        for (int x = 18; x < 30; x++) mask[y * S + x] = 1;
    cfx_edit_request rq = {.kind = CFX_EDIT_DELETE,
                           .from = "x",
                           .mask = mask,
                           .box = {18, 18, 30, 30},
                           .image_id = 0,
                           .step = 1};
    cfx_tensor *out = NULL;
    int has = 0;
    CHECK_OK(ed->edit(ed->user, &rq, im, &out, got, &has));
    CHECK(out && !has);
    int changed_far = 0, changed_in = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            bool near = y >= 16 && y < 32 && x >= 16 && x < 32; /* the hole grown by 2 */
            for (int c = 0; c < 3; c++) {
                float a = im->data[c * S * S + y * S + x], b = out->data[c * S * S + y * S + x];
                if (!near && a != b) changed_far++;
                if (mask[y * S + x] && a != b) changed_in++;
            }
        }
    CHECK_INT_EQ(changed_far, 0);
    CHECK(changed_in > 0);
    cfx_tensor_free(out);
    /* Inserting a concept of the bank into a box: the new mask lies inside the box. */
    rq = (cfx_edit_request){.kind = CFX_EDIT_INSERT,
                            .to = cfx_concepts_name(f.c, con[0]),
                            .box = {4, 4, 20, 20},
                            .image_id = 0,
                            .step = 1};
    CHECK_OK(ed->edit(ed->user, &rq, im, &out, got, &has));
    CHECK(out && has);
    int inside = 0, outside = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            if (got[y * S + x]) {
                if (x >= 4 && x < 20 && y >= 4 && y < 20)
                    inside++;
                else
                    outside++;
            }
    CHECK(inside > 20);
    CHECK_INT_EQ(outside, 0);
    cfx_tensor_free(out);
    /* A concept nobody has: the bank says so. */
    rq.to = "unicorn.n.01";
    CHECK_ERR(ed->edit(ed->user, &rq, im, &out, got, &has), CFX_ENOTFOUND);
    CHECK(strstr(cfx_last_error(), "unicorn") != NULL);
    cfx_tensor_free(im);
    cfx_image_editor_free(ed);
    fixture_close(&f);
}

CFX_TEST(edit_loop, builtin_editor_pastes_an_item_opaque_even_where_it_is_thin) {
    /* A bank of one exemplar: image 2's item, one- and two-pixel-wide strokes (a sandal's
     * straps at 48 pixels) of one colour on a dark background. Inserted into image 1 at a box
     * of the exemplar box's size (scale 1), every pixel of the item's mask must come out in the
     * item's own colour, not blended with image 1's background; pixels more than one away
     * from the mask keep the background; on the rim between, the exemplar's background
     * shows at the share of the pixel's 3x3 neighbourhood the mask covers. */
    enum { S = 20 };
    const char *dir = cfx_test_tmpdir();
    char path[900];
    snprintf(path, sizeof path, "%s/paste", dir);
    mkdir(path, 0755);
    cfx_tensor *bg = cfx_tensor_new(3, (int64_t[]){3, S, S});
    cfx_tensor *ex = cfx_tensor_new(3, (int64_t[]){3, S, S});
    uint8_t em[S * S] = {0};
    for (int y = 5; y < 15; y++) em[y * S + 6] = 1;                   /* 1 px wide */
    for (int y = 5; y < 15; y++) em[y * S + 10] = em[y * S + 11] = 1; /* 2 px wide */
    for (int x = 6; x < 12; x++) em[14 * S + x] = 1;                  /* 1 px high */
    const float item[3] = {0.8f, 0.2f, 0.4f}, back[3] = {0.4f, 0.6f, 0.2f};
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < S * S; p++) {
            ex->data[c * S * S + p] = em[p] ? item[c] : 0.1f;
            bg->data[c * S * S + p] = back[c];
        }
    snprintf(path, sizeof path, "%s/paste/1.png", dir);
    CHECK_OK(cfx_image_write_png(path, bg));
    snprintf(path, sizeof path, "%s/paste/2.png", dir);
    CHECK_OK(cfx_image_write_png(path, ex));
    /* The mask as runs (outside first), for image 2's annotation; its box [6, 5, 12, 15). */
    char runs[2048] = "", *w = runs;
    int at = 0;
    while (at < S * S) {
        int v = (at == 0 && em[0]) ? 0 : em[at], len = 0;
        if (at == 0 && em[0]) w += sprintf(w, "0,");
        while (at + len < S * S && em[at + len] == v) len++;
        w += sprintf(w, "%d,", len);
        at += len;
    }
    w[-1] = 0;
    char json[4096];
    snprintf(json, sizeof json,
             "{\"images\":[{\"id\":1,\"objects\":[],\"boxes\":[],\"masks\":[]},"
             "{\"id\":2,\"objects\":[\"sandal.n.01\"],\"boxes\":[[6,5,12,15]],"
             "\"masks\":[[%s]]}]}",
             runs);
    snprintf(path, sizeof path, "%s/paste/concepts.json", dir);
    FILE *fp = fopen(path, "w");
    fputs(json, fp);
    fclose(fp);
    char images[900];
    snprintf(images, sizeof images, "%s/paste", dir);
    cfx_image_editor *ed = cfx_image_editor_builtin(path, images);
    CHECK_MSG(ed != NULL, "%s", cfx_last_error());
    if (!ed) return;
    snprintf(path, sizeof path, "%s/paste/1.png", dir);
    cfx_tensor *im = cfx_image_read(path, 3);
    uint8_t got[S * S];
    int has = 0;
    cfx_tensor *out = NULL;
    /* The place: the exemplar's box moved by (+2, -3). */
    cfx_edit_request rq = {.kind = CFX_EDIT_INSERT,
                           .to = "sandal.n.01",
                           .box = {8, 2, 14, 12},
                           .image_id = 1,
                           .step = 1};
    CHECK_OK(ed->edit(ed->user, &rq, im, &out, got, &has));
    CHECK(out && has);
    double worst_item = 0, worst_far = 0, worst_rim = 0;
    int in_mask = 0, mask_agree = 0, rim = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int sx = x - 2, sy = y + 3; /* the exemplar's pixel pasted here */
            bool on = sx >= 0 && sy >= 0 && sx < S && sy < S && em[sy * S + sx];
            int near = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = sx + dx, yy = sy + dy;
                    near += xx >= 0 && yy >= 0 && xx < S && yy < S && em[yy * S + xx];
                }
            in_mask += on;
            rim += !on && near;
            mask_agree += !on && !near ? !got[y * S + x] : on ? got[y * S + x] != 0 : 1;
            for (int c = 0; c < 3; c++) {
                double v = out->data[c * S * S + y * S + x];
                double b = im->data[c * S * S + y * S + x];
                double want = roundf(item[c] * 255) / 255.0;
                if (on)
                    worst_item = fmax(worst_item, fabs(v - want));
                else if (!near)
                    worst_far = fmax(worst_far, fabs(v - b));
                else { /* the rim: the exemplar's background, 0.1, at near / 9 */
                    double a = near / 9.0, e = roundf(0.1f * 255) / 255.0;
                    worst_rim = fmax(worst_rim, fabs(v - (a * e + (1 - a) * b)));
                }
            }
        }
    CHECK_INT_EQ(in_mask, 33);
    CHECK(rim > 30);
    CHECK_INT_EQ(mask_agree, S * S);
    CHECK_MSG(worst_item < 1e-5, "the item's pixels differ from its colour by up to %g",
              worst_item);
    CHECK_MSG(worst_far < 1e-6, "the background changed by %g away from the item", worst_far);
    CHECK_MSG(worst_rim < 1e-5, "the rim differs from its blend by up to %g", worst_rim);
    cfx_tensor_free(out);
    cfx_tensor_free(im);
    cfx_tensor_free(bg);
    cfx_tensor_free(ex);
    cfx_image_editor_free(ed);
}

CFX_TEST(edit_loop, per_image_errors_are_recorded_and_resume_drops_a_torn_line) {
    fixture f;
    const char *dir = fixture_or_skip(&f);
    if (!dir) return;
    script sc = {.flip_after = 0, .foreign = 1};
    cfx_image_classifier clf = script_classifier(&sc);
    cfx_image_editor *inner = cfx_image_editor_builtin(f.json, dir);
    wrap w = {.inner = inner, .wrong_size = 1};
    cfx_image_editor ed = {.edit = wrap_edit, .user = &w};
    int64_t qs[3] = {36, 37, 38};
    cfx_edit_loop_options o = {.data = f.d,
                               .annotations = f.json,
                               .images = dir,
                               .classifier = &clf,
                               .editor = &ed,
                               .mode = CFX_ORDER_LOCAL,
                               .out = f.out,
                               .queries = qs,
                               .nqueries = 2};
    cfx_edit_loop_summary sum;
    /* Image 36: the classifier answers outside its list; 37: the editor's image has another
     * size. Both are recorded, and the run goes on. */
    sc.flip_after = 1000;
    CHECK_OK(cfx_edit_loop_run(&o, &sum));
    CHECK_INT_EQ(sum.images, 2);
    CHECK_INT_EQ(sum.failed, 2);
    char(*lines)[4096] = malloc(64 * 4096);
    int n = read_lines(f.out, lines, 64);
    CHECK_INT_EQ(n, 2);
    CHECK_MSG(strstr(lines[0], "'spring', which is not one of its classes"), "%s", lines[0]);
    CHECK_MSG(strstr(lines[1], "another size"), "%s", lines[1]);
    /* A torn line (a killed run) is dropped on resume; the images recorded stay. */
    char path[900];
    snprintf(path, sizeof path, "%s/results.jsonl", f.out);
    FILE *fp = fopen(path, "a");
    fputs("{\"query\":38,\"mo", fp);
    fclose(fp);
    w.wrong_size = 0;
    o.nqueries = 3;
    o.resume = 1;
    CHECK_OK(cfx_edit_loop_run(&o, &sum));
    CHECK_INT_EQ(sum.done_before, 2);
    CHECK_INT_EQ(sum.images, 1);
    n = read_lines(f.out, lines, 64);
    CHECK_INT_EQ(n, 3);
    CHECK_MSG(strncmp(lines[2], "{\"query\":38,\"target\"", 20) == 0, "%s", lines[2]);
    /* An image without boxes or masks: the message says the built-in editor needs them. */
    char json2[900];
    snprintf(json2, sizeof json2, "%s/nomask.json", f.out);
    fp = fopen(json2, "w");
    fputs("{\"images\": [{\"id\": 1, \"objects\": [\"coat.n.01\"], \"labels\": {\"rule\": "
          "\"winter\"}}, {\"id\": 2, \"objects\": [\"sandal.n.01\"], \"labels\": {\"rule\": "
          "\"summer\"}}]}",
          fp);
    fclose(fp);
    cfx_concepts_data *d2 = cfx_concepts_data_load(f.c, json2, "rule", CFX_UNKNOWN_ERROR, NULL);
    CHECK(d2 != NULL);
    int64_t one = 1;
    o = (cfx_edit_loop_options){.data = d2,
                                .annotations = json2,
                                .images = dir,
                                .classifier = &clf,
                                .editor = &ed,
                                .out = f.out,
                                .queries = &one,
                                .nqueries = 1,
                                .resume = 1};
    sc = (script){.flip_after = 1000};
    snprintf(path, sizeof path, "%s/images/0.png", dir);
    char link[900];
    snprintf(link, sizeof link, "%s/1.png", dir);
    CHECK(symlink(path, link) == 0);
    CHECK_OK(cfx_edit_loop_run(&o, &sum));
    CHECK_INT_EQ(sum.failed, 1);
    n = read_lines(f.out, lines, 64);
    CHECK_MSG(n == 4 && strstr(lines[3], "the built-in editor needs a box and a mask"), "%s",
              n == 4 ? lines[3] : "(no line)");
    /* A concept that is not in WordNet: that image is recorded with the concept named. */
    fp = fopen(json2, "w");
    fputs("{\"images\": [{\"id\": 1, \"objects\": [\"flurble.n.01\", \"coat.n.01\"], "
          "\"boxes\": [[0, 0, 2, 2], [0, 0, 2, 2]], \"masks\": [[2304], [2304]], "
          "\"labels\": {\"rule\": \"winter\"}}, {\"id\": 2, \"objects\": [\"sandal.n.01\"], "
          "\"labels\": {\"rule\": \"summer\"}}]}",
          fp);
    fclose(fp);
    cfx_concepts_data_free(d2);
    int64_t skipped = 0;
    d2 = cfx_concepts_data_load(f.c, json2, "rule", CFX_UNKNOWN_SKIP, &skipped);
    CHECK(d2 != NULL);
    CHECK_INT_EQ(skipped, 1);
    o.data = d2;
    o.resume = 0; /* a new run in the folder */
    CHECK_OK(cfx_edit_loop_run(&o, &sum));
    CHECK_INT_EQ(sum.failed, 1);
    n = read_lines(f.out, lines, 64);
    CHECK_MSG(n == 1 && strstr(lines[0], "concept 'flurble.n.01' is not in WordNet 3.0"), "%s",
              n == 1 ? lines[0] : "(no line)");
    cfx_concepts_data_free(d2);
    free(lines);
    cfx_image_editor_free(inner);
    fixture_close(&f);
}

/* run.json of `cfx concepts edit` records what decides the run's images (data, images, mode,
 * editor, the classifier and the planner), and --resume with another classifier is refused with
 * the run left as it was. */
CFX_TEST(edit_loop, run_json_names_the_classifier_and_resume_checks_it) {
    if (!cfx_test_cli_or_skip()) return;
    char root[700], out[4096], path[800];
    snprintf(root, sizeof root, "%s/edit-settings", cfx_test_tmpdir());
    CHECK(mkdir(root, 0700) == 0);
    int rc =
        cfx_test_run_cli(out, sizeof out, "data scenes --out %s/sc --count 24 --size 32", root);
    CHECK_MSG(rc == 0, "%s", out);
    const char *edit = "concepts edit --data %s/sc/concepts.json --images %s/sc --labels rule "
                       "--classifier-cmd 'true {image}; echo %s' --all --limit 2 --out %s/run "
                       "--threads 1%s";
    rc = cfx_test_run_cli(out, sizeof out, edit, root, root, "winter", root, "");
    CHECK_MSG(rc == 0, "%s", out);
    snprintf(path, sizeof path, "%s/run/run.json", root);
    char *text = NULL, *after = NULL;
    CHECK_OK(cfx_file_read_all(path, &text, NULL));
    CHECK_MSG(text && strstr(text, "\"command\":\t\"true {image}; echo winter\"") &&
                  strstr(text, "\"planner\":\t\"built-in\"") && strstr(text, "\"data\":\t\"/"),
              "run.json: %s", text ? text : "(none)");
    rc = cfx_test_run_cli(out, sizeof out, edit, root, root, "summer", root, " --resume");
    CHECK_MSG(rc != 0 && strstr(out, "a run of other settings"), "rc %d: %s", rc, out);
    CHECK_OK(cfx_file_read_all(path, &after, NULL));
    CHECK(text && after && strcmp(text, after) == 0);
    rc = cfx_test_run_cli(out, sizeof out, edit, root, root, "winter", root, " --resume");
    CHECK_MSG(rc == 0, "rc %d: %s", rc, out);
    cfx_free(text), cfx_free(after);
}
