/* test_concepts_eval.c - the evaluation of V-CECE's loop: a run folder read back (torn last
 * line, malformed lines named), FID, CMMD and S3 of its flips on the classifier's labelled
 * features and on a user network against NumPy/SciPy/PyTorch (tests/py/loop_eval_oracle.py,
 * which decodes the PNGs and runs the network itself), the human study's CSV (bad lines named,
 * Table 2 against Python's csv module), the report and the study sheet as a reader gets them,
 * and the sheet driven in Chromium by playwright-core (fill, save, the CSV read back). */
#include "oracle_io.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { C = 3, H = 8, W = 8, D = C * H * W, F = 4, K = 3 };

/* A network (1,3,8,8) -> "features" (F) = W1 x + b1 -> relu -> "logits" (K) = W2 f + b2, its
 * weights seeded and also written as .npy for the oracle. */
static void write_net(const char *dir) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "input", 4, (int64_t[]){1, C, H, W});
    int w1 = cfx_graph_param(g, "fc1.weight", 2, (int64_t[]){F, D});
    int b1 = cfx_graph_param(g, "fc1.bias", 1, (int64_t[]){F});
    int w2 = cfx_graph_param(g, "fc2.weight", 2, (int64_t[]){K, F});
    int b2 = cfx_graph_param(g, "fc2.bias", 1, (int64_t[]){K});
    int f = cfx_op_linear(g, cfx_op_flatten(g, x, 1), w1, b1);
    int y = cfx_op_linear(g, cfx_op_relu(g, f), w2, b2);
    CHECK_OK(cfx_graph_set_output(g, f, "features"));
    CHECK_OK(cfx_graph_set_output(g, y, "logits"));
    CHECK_OK(cfx_graph_compile(g));
    cfx_rng r;
    cfx_rng_init(&r, 11);
    const int ids[4] = {w1, b1, w2, b2};
    const char *names[4] = {"w1", "b1", "w2", "b2"};
    for (int k = 0; k < 4; k++) {
        cfx_tensor *t = cfx_graph_tensor(g, ids[k]);
        for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)cfx_rng_normal(&r) * 0.2f;
        CHECK(oracle_write(dir, names[k], t->ndim, t->shape, t->data));
    }
    char path[700];
    snprintf(path, sizeof path, "%s/net.onnx", dir);
    CHECK_OK(cfx_onnx_save(g, path, NULL, 0));
    cfx_graph_free(g);
}

/* A run folder dir/name as cfx concepts edit writes it: 10 flipped loops (1 to 3 steps), one
 * exhausted, one error, and a torn last line. Images: seeded noise, each step a little apart. */
static void write_run(const char *dir, const char *name) {
    char path[900];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/steps", dir, name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/results.jsonl", dir, name);
    FILE *f = fopen(path, "w");
    cfx_rng r;
    cfx_rng_init(&r, 5);
    cfx_tensor *im = cfx_tensor_new(3, (int64_t[]){C, H, W});
    for (int q = 0; q < 12; q++) {
        int steps = q < 10 ? 1 + q % 3 : q == 10 ? 2 : 0, flipped = q < 10;
        snprintf(path, sizeof path, "%s/%s/steps/%d", dir, name, 100 + q);
        mkdir(path, 0755);
        fprintf(f,
                "{\"query\":%d,\"target\":%d,\"mode\":\"local\",\"source_label\":\"summer\","
                "\"target_label\":\"winter\",\"min_edits\":1,\"agrees\":%s,\"labels\":[\"summer\"",
                100 + q, 200 + q, q % 2 ? "true" : "false");
        for (int k = 1; k <= steps; k++)
            fprintf(f, ",\"%s\"", flipped && k == steps ? "winter" : "summer");
        fprintf(f, "],\"edits\":[");
        for (int k = 1; k <= steps; k++)
            fprintf(f, "%s{\"action\":\"%s\",\"from\":\"sandal.n.01\"%s}", k > 1 ? "," : "",
                    k == 2 ? "remove" : "replace", k == 2 ? "" : ",\"to\":\"coat.n.01\"");
        fprintf(f, "],\"images\":[");
        for (int k = 0; k <= steps; k++) {
            for (int64_t i = 0; i < im->numel; i++)
                im->data[i] =
                    k == 0
                        ? (float)cfx_rng_uniform(&r)
                        : fminf(1,
                                fmaxf(0, im->data[i] + 0.3f * (float)cfx_rng_uniform(&r) - 0.1f));
            snprintf(path, sizeof path, "%s/%s/steps/%d/%d.png", dir, name, 100 + q, k);
            CHECK_OK(cfx_image_write_png(path, im));
            fprintf(f, "%s\"steps/%d/%d.png\"", k ? "," : "", 100 + q, k);
        }
        fprintf(f, "],\"steps\":%d,\"flipped\":%s,\"stop_reason\":\"%s\"%s}\n", steps,
                flipped ? "true" : "false",
                flipped   ? "flip"
                : q == 10 ? "exhausted"
                          : "error",
                q == 11 ? ",\"error\":\"editor, step 1: it returned an image of another size\""
                        : "");
    }
    fputs("{\"query\":999,\"mode\":\"lo", f); /* torn: killed while writing */
    fclose(f);
    cfx_tensor_free(im);
}

static double oracle_num(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    char k[128];
    double v;
    double out = NAN;
    while (f && fscanf(f, "%127s %lf", k, &v) == 2)
        if (strcmp(k, key) == 0) out = v;
    if (f) fclose(f);
    CHECK_MSG(!isnan(out), "oracle %s has no %s", path, key);
    return out;
}

static void check_rel(double got, double want, double rtol, const char *what) {
    CHECK_MSG(fabs(got - want) <= rtol * fabs(want) + 1e-9, "%s: %.12g, oracle %.12g", what, got,
              want);
}

CFX_TEST(concepts_eval, run_is_read_back_and_bad_lines_are_named) {
    const char *dir = cfx_test_tmpdir();
    write_run(dir, "runA");
    char path[700];
    snprintf(path, sizeof path, "%s/runA/", dir);
    cfx_loop_run *r = cfx_loop_run_open(path);
    CHECK_MSG(r != NULL, "%s", cfx_last_error());
    if (!r) return;
    CHECK_INT_EQ(r->n, 12); /* the torn line is not a record */
    CHECK_STR_EQ(r->name, "runA");
    CHECK_STR_EQ(r->mode, "local");
    const cfx_loop_record *a = &r->rec[2];
    CHECK_INT_EQ(a->query, 102);
    CHECK_INT_EQ(a->steps, 3);
    CHECK_INT_EQ(a->nsteps, 4);
    CHECK(a->flipped);
    CHECK_STR_EQ(a->step[2].action, "remove");
    CHECK(a->step[2].to == NULL);
    CHECK_STR_EQ(a->step[3].to, "coat.n.01");
    CHECK_STR_EQ(a->step[3].label, "winter");
    CHECK_STR_EQ(a->step[3].image, "steps/102/3.png");
    CHECK_STR_EQ(r->rec[11].stop_reason, "error");
    CHECK(strstr(r->rec[11].error, "another size") != NULL);
    cfx_loop_run_free(r);
    /* A line that is no record: the file and line are named. */
    snprintf(path, sizeof path, "%s/runA/results.jsonl", dir);
    FILE *f = fopen(path, "a");
    fputs("\n{\"query\": 5, \"steps\": 2, \"mode\": \"local\", \"stop_reason\": \"flip\"}\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/runA", dir);
    CHECK(cfx_loop_run_open(path) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "line 13") != NULL, "%s", cfx_last_error());
    snprintf(path, sizeof path, "%s/none", dir);
    CHECK(cfx_loop_run_open(path) == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "cfx concepts edit") != NULL, "%s", cfx_last_error());
}

CFX_TEST(concepts_eval, fid_cmmd_s3_match_numpy_on_the_decoded_images) {
    const char *dir = cfx_test_tmpdir();
    write_net(dir);
    write_run(dir, "runA");
    char run[700], net[700];
    snprintf(run, sizeof run, "%s/runA", dir);
    snprintf(net, sizeof net, "%s/net.onnx", dir);
    cfx_loop_run *r = cfx_loop_run_open(run);
    CHECK_MSG(r != NULL, "%s", cfx_last_error());
    if (!r) return;
    /* The fallback (classifier's features) for FID and S3, a user network (the same file's
     * logits, labelled by its name) for CMMD. */
    cfx_loop_metrics m, u;
    cfx_loop_metrics_options o = {.classifier = net, .batch = 3};
    CHECK_OK(cfx_loop_run_metrics(r, &o, &m));
    o.cmmd_model = o.fid_model = o.s3_model = net;
    o.cmmd_features = o.fid_features = o.s3_features = "logits";
    CHECK_OK(cfx_loop_run_metrics(r, &o, &u));
    CHECK_INT_EQ(m.pairs, 10);
    CHECK_STR_EQ(m.fid_label, "classifier");
    CHECK_STR_EQ(m.cmmd_label, "classifier");
    CHECK_STR_EQ(m.s3_label, "classifier");
    CHECK_STR_EQ(u.fid_label, "net");
    CHECK_INT_EQ(m.s3.count, 10);
    char args[4000], out[800];
    snprintf(out, sizeof out, "%s/oracle.txt", dir);
    snprintf(args, sizeof args, "metrics '%s' '%s/w1.npy' '%s/b1.npy' '%s/w2.npy' '%s/b2.npy' '%s'",
             run, dir, dir, dir, dir, out);
    int rc = cfx_test_python("loop_eval_oracle.py", args);
    CHECK_MSG(rc == 0, "loop_eval_oracle.py metrics exited with %d", rc);
    if (rc == 0) {
        CHECK_INT_EQ((int)oracle_num(out, "pairs"), 10);
        /* Float32 features against float64: FID and CMMD to 1e-4, cosines to 1e-5. */
        check_rel(m.fid, oracle_num(out, "features_fid"), 1e-4, "FID[classifier]");
        check_rel(m.cmmd, oracle_num(out, "features_cmmd"), 1e-4, "CMMD[classifier]");
        check_rel(m.s3.mean, oracle_num(out, "features_s3"), 1e-5, "S3[classifier]");
        check_rel(m.s3.std, oracle_num(out, "features_s3_std"), 1e-3, "S3 deviation");
        check_rel(u.fid, oracle_num(out, "logits_fid"), 1e-4, "FID[net]");
        check_rel(u.cmmd, oracle_num(out, "logits_cmmd"), 1e-4, "CMMD[net]");
        check_rel(u.s3.mean, oracle_num(out, "logits_s3"), 1e-5, "S3[net]");
        printf("  FID[classifier] %.8g (oracle %.8g), CMMD %.8g, S3 %.8g\n", m.fid,
               oracle_num(out, "features_fid"), m.cmmd, m.s3.mean);
    }
    /* No network at all: NaN and empty labels, not a number under a wrong name. */
    cfx_loop_metrics z;
    CHECK_OK(cfx_loop_run_metrics(r, &(cfx_loop_metrics_options){0}, &z));
    CHECK(isnan(z.fid) && isnan(z.cmmd) && isnan(z.s3.mean) && !z.fid_label[0]);
    /* A classifier without the feature tensor is named. */
    o = (cfx_loop_metrics_options){.classifier = net, .classifier_features = "nope"};
    CHECK(cfx_loop_run_metrics(r, &o, &z) != CFX_OK);
    CHECK_MSG(strstr(cfx_last_error(), "nope") != NULL, "%s", cfx_last_error());
    cfx_loop_run_free(r);
}

/* The sheet's sections: (run, query, number of flip choices) in page order. */
static int sheet_items(const char *html, char runs[][32], int *queries, int *choices, int max) {
    int n = 0;
    for (const char *p = html; (p = strstr(p, "<section class=\"item\"")) && n < max; p++) {
        const char *rr = strstr(p, "data-run=\""), *qq = strstr(p, "data-query=\"");
        sscanf(rr + 10, "%31[^\"]", runs[n]);
        queries[n] = atoi(qq + 12);
        const char *end = strstr(p, "</section>");
        choices[n] = 0;
        for (const char *c = p; (c = strstr(c, "-flip\" value=")) && c < end; c++) choices[n]++;
        n++;
    }
    return n;
}

CFX_TEST(concepts_eval, study_sheet_and_answers_give_table2) {
    const char *dir = cfx_test_tmpdir();
    write_run(dir, "runA");
    char run[700], sheet[700], csv[700];
    snprintf(run, sizeof run, "%s/runA", dir);
    snprintf(sheet, sizeof sheet, "%s/study.html", dir);
    snprintf(csv, sizeof csv, "%s/answers.csv", dir);
    cfx_loop_run *r = cfx_loop_run_open(run);
    CHECK_MSG(r != NULL, "%s", cfx_last_error());
    if (!r) return;
    const cfx_loop_run *runs[1] = {r};
    CHECK_OK(cfx_report_study_html(runs, 1, 0, sheet));
    char *html = NULL;
    CHECK_OK(cfx_file_read_all(sheet, &html, NULL));
    if (!html) return;
    /* Self-contained: every image inlined, nothing fetched. */
    CHECK(strstr(html, "src=\"http") == NULL && strstr(html, "href=\"http") == NULL);
    int imgs = 0;
    for (const char *p = html; (p = strstr(p, "src=\"data:image/png;base64,")); p++) imgs++;
    /* The flipped loops only: 10, with their steps + 1 images each (sources included). */
    char names[16][32];
    int q[16], ch[16], want_imgs = 0;
    int n = sheet_items(html, names, q, ch, 16);
    CHECK_INT_EQ(n, 10);
    for (int i = 0; i < n && i < 10; i++) {
        CHECK_STR_EQ(names[i], "runA");
        CHECK_INT_EQ(q[i], 100 + i);
        CHECK_INT_EQ(ch[i], r->rec[i].steps + 1); /* 1..steps and none */
        want_imgs += r->rec[i].steps + 1;
    }
    CHECK_INT_EQ(imgs, want_imgs);
    CHECK(strstr(html, "new Blob(") != NULL && strstr(html, "answers.csv") != NULL);
    cfx_free(html);
    /* Answers as the sheet writes them (header, a quoted name), read back into Table 2. */
    FILE *f = fopen(csv, "w");
    fputs("participant,run,query,flip_step,artifact_free\n", f);
    for (int i = 0; i < 10; i++)
        fprintf(f, "\"Ann, B.\",runA,%d,%s,%s\n", 100 + i,
                i % 4 == 3   ? "none"
                : i % 3 == 2 ? "2"
                             : "1",
                i % 2 ? "yes" : "no");
    fputs("bob,runA,101,1,yes\r\n\n", f);
    fclose(f);
    cfx_study_answers *a = cfx_study_load(csv);
    CHECK_MSG(a != NULL, "%s", cfx_last_error());
    if (a) {
        CHECK_INT_EQ(a->n, 11);
        CHECK_STR_EQ(a->a[0].participant, "Ann, B.");
        cfx_study_row t;
        CHECK_OK(cfx_study_tally(a, r, &t));
        char out[800], args[3000];
        snprintf(out, sizeof out, "%s/table2.txt", dir);
        snprintf(args, sizeof args, "table2 '%s' '%s' '%s'", run, csv, out);
        int rc = cfx_test_python("loop_eval_oracle.py", args);
        CHECK_MSG(rc == 0, "loop_eval_oracle.py table2 exited with %d", rc);
        if (rc == 0) {
            CHECK_INT_EQ(t.answers, (int)oracle_num(out, "answers"));
            CHECK_INT_EQ(t.none, (int)oracle_num(out, "none"));
            CHECK_NEAR(t.model_step, oracle_num(out, "model_step"), 1e-12);
            CHECK_NEAR(t.human_step, oracle_num(out, "human_step"), 1e-12);
            CHECK_NEAR((double)t.artifact_free / t.answers, oracle_num(out, "visually_correct"),
                       1e-12);
        }
        cfx_study_free(a);
    }
    /* Bad answers: the line and the field are named. */
    static const char *const bad[][2] = {
        {"participant,run,query,flip_step,artifact_free\nx,runA,101,two,yes\n",
         "line 2: flip_step"},
        {"participant,run,query,flip_step,artifact_free\nx,runA,101,1\n", "line 2 has not 5"},
        {"participant,run,query,flip_step,artifact_free\nx,runA,1x,1,yes\n", "line 2: query"},
        {"participant,run,query,flip_step,artifact_free\n\nx,runA,101,1,maybe\n",
         "line 3: artifact_free"},
        {"participant,run,query,flip_step,artifact_free\n\"x,runA,101,1,yes\n", "unterminated"},
        {"name,run,query\n", "line 1 is not the header"},
        {"", "empty"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        f = fopen(csv, "w");
        fputs(bad[k][0], f);
        fclose(f);
        cfx_study_answers *b = cfx_study_load(csv);
        CHECK(b == NULL);
        CHECK_MSG(strstr(cfx_last_error(), bad[k][1]) != NULL, "case %zu: %s", k, cfx_last_error());
        cfx_study_free(b);
    }
    /* An answer for a loop that did not flip, or a step past its end. */
    f = fopen(csv, "w");
    fputs("participant,run,query,flip_step,artifact_free\nx,runA,110,1,yes\n", f);
    fclose(f);
    a = cfx_study_load(csv);
    cfx_study_row t;
    CHECK(a && cfx_study_tally(a, r, &t) == CFX_ENOTFOUND);
    CHECK_MSG(strstr(cfx_last_error(), "image 110") != NULL, "%s", cfx_last_error());
    cfx_study_free(a);
    f = fopen(csv, "w");
    fputs("participant,run,query,flip_step,artifact_free\nx,runA,100,4,yes\n", f);
    fclose(f);
    a = cfx_study_load(csv);
    CHECK(a && cfx_study_tally(a, r, &t) == CFX_EINVAL);
    cfx_study_free(a);
    cfx_loop_run_free(r);
}

CFX_TEST(concepts_eval, cli_report_has_strips_table_and_json) {
    if (!cfx_test_cli_or_skip()) return;
    const char *dir = cfx_test_tmpdir();
    write_net(dir);
    write_run(dir, "runA");
    static char out[1 << 16];
    int rc = cfx_test_run_cli_stdout(out, sizeof out,
                                     "concepts evaluate '%s/runA' --classifier '%s/net.onnx' "
                                     "--html '%s/r.html' --strips 3 --json",
                                     dir, dir, dir);
    CHECK_INT_EQ(rc, 0);
    CHECK_MSG(strstr(out, "\"fid_features\": \"classifier\"") != NULL, "%s", out);
    CHECK_MSG(strstr(out, "\"flipped\": 10") != NULL, "%s", out);
    CHECK_MSG(strstr(out, "\"pairs\": 10") != NULL, "%s", out);
    char path[700], *html = NULL;
    snprintf(path, sizeof path, "%s/r.html", dir);
    CHECK_OK(cfx_file_read_all(path, &html, NULL));
    if (html) {
        CHECK(strstr(html, "FID[classifier]") != NULL && strstr(html, "S3[classifier]") != NULL);
        int strips = 0, flips = 0, imgs = 0;
        for (const char *p = html; (p = strstr(p, "<div class=\"strip\">")); p++) strips++;
        for (const char *p = html; (p = strstr(p, "class=\"step flip\"")); p++) flips++;
        for (const char *p = html; (p = strstr(p, "data:image/png;base64,")); p++) imgs++;
        CHECK_INT_EQ(strips, 3);
        CHECK_INT_EQ(flips, 3);        /* the first 3 loops flipped */
        CHECK_INT_EQ(imgs, 2 + 3 + 4); /* steps 1, 2, 3 and their sources */
        cfx_free(html);
    }
    /* Bad answers on the command line: a clear one-line error, exit 1, no report. */
    snprintf(path, sizeof path, "%s/a.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("participant,run,query,flip_step,artifact_free\nx,runA,101,1,perhaps\n", f);
    fclose(f);
    rc = cfx_test_run_cli(out, sizeof out,
                          "concepts evaluate '%s/runA' --human '%s' --html '%s/h.html'", dir, path,
                          dir);
    CHECK_INT_EQ(rc, 1);
    CHECK_MSG(strstr(out, "line 2: artifact_free") != NULL, "%s", out);
    snprintf(path, sizeof path, "%s/h.html", dir);
    CHECK(access(path, F_OK) != 0);
    /* Good answers: Table 2 in the text. */
    snprintf(path, sizeof path, "%s/a.csv", dir);
    f = fopen(path, "w");
    fputs("participant,run,query,flip_step,artifact_free\nx,runA,101,1,yes\ny,runA,102,3,no\n", f);
    fclose(f);
    rc = cfx_test_run_cli_stdout(out, sizeof out, "concepts evaluate '%s/runA' --human '%s'", dir,
                                 path);
    CHECK_INT_EQ(rc, 0);
    /* Model: loops 101 (2 steps) and 102 (3 steps): 2.50; people: 1 and 3: 2.00; 50% clean. */
    CHECK_MSG(strstr(out, "2.50") && strstr(out, "2.00") && strstr(out, "50.0%"), "%s", out);
}

/* The sheet in a real browser: playwright-core drives Debian's Chromium, fills every answer,
 * presses Save, and the downloaded CSV must load and tally like the answers it was given. */
CFX_TEST(concepts_eval, study_sheet_saves_answers_in_chromium) {
    const char *pw = getenv("CFX_PLAYWRIGHT");
    char mod[700];
    snprintf(mod, sizeof mod, "%s/playwright-core/package.json",
             pw ? pw : "/usr/local/lib/node_modules");
    if (access(mod, R_OK) != 0 || access("/usr/bin/chromium", X_OK) != 0 ||
        access("/usr/bin/node", X_OK) != 0) {
        cfx_test_skip("needs node, /usr/bin/chromium and playwright-core (npm install "
                      "--ignore-scripts playwright-core; CFX_PLAYWRIGHT=its node_modules folder)");
        return;
    }
    const char *dir = cfx_test_tmpdir();
    write_run(dir, "runA");
    char run[700], sheet[700];
    snprintf(run, sizeof run, "%s/runA", dir);
    snprintf(sheet, sizeof sheet, "%s/study.html", dir);
    cfx_loop_run *r = cfx_loop_run_open(run);
    if (!r) return;
    CHECK_OK(cfx_report_study_html((const cfx_loop_run *const[]){r}, 1, 4, sheet));
    /* Sequence i (1-based): flip choice = the last step when i is odd, else none; clean when
     * i is odd. Sequence 4 is left blank to check that it is left out. */
    char cmd[4000];
    snprintf(
        cmd, sizeof cmd,
        "cd '%s' && NODE_PATH='%s' timeout 120 /usr/bin/node -e \""
        "const {chromium}=require('playwright-core');(async()=>{"
        "const b=await chromium.launch({executablePath:'/usr/bin/chromium',args:['--no-sandbox',"
        "'--disable-gpu','--disable-quic','--no-first-run','--disable-background-networking',"
        "'--disable-component-update','--disable-sync']});"
        "const p=await b.newPage({acceptDownloads:true});await p.goto('file://%s');"
        "await p.fill('#participant','Zoe \\\"Z\\\", 1');"
        "for(let i=1;i<=3;i++){const r=await p.\\$\\$('input[name=s'+i+'-flip]');"
        "await r[i%%2?r.length-2:r.length-1].check();"
        "await p.check('input[name=s'+i+'-clean][value='+(i%%2?'yes':'no')+']');}"
        "const [d]=await Promise.all([p.waitForEvent('download'),p.click('#save')]);"
        "await d.saveAs('got.csv');console.log(await p.textContent('#status'));"
        "await b.close();})().catch(e=>{console.error(e);process.exit(1);});\" > pw.log 2>&1",
        dir, pw ? pw : "/usr/local/lib/node_modules", sheet);
    int rc = system(cmd);
    char log[700], *text = NULL;
    snprintf(log, sizeof log, "%s/pw.log", dir);
    cfx_file_read_all(log, &text, NULL);
    CHECK_MSG(rc == 0, "playwright exited with %d: %s", rc, text ? text : "");
    CHECK_MSG(text && strstr(text, "1 sequences are not answered"), "%s", text ? text : "");
    cfx_free(text);
    char got[700];
    snprintf(got, sizeof got, "%s/got.csv", dir);
    cfx_study_answers *a = rc == 0 ? cfx_study_load(got) : NULL;
    CHECK_MSG(a != NULL, "%s", cfx_last_error());
    if (a) {
        CHECK_INT_EQ(a->n, 3);
        for (int i = 0; i < a->n && i < 3; i++) {
            CHECK_STR_EQ(a->a[i].participant, "Zoe \"Z\", 1");
            CHECK_STR_EQ(a->a[i].run, "runA");
            CHECK_INT_EQ(a->a[i].query, 100 + i);
            CHECK_INT_EQ(a->a[i].flip_step, i % 2 == 0 ? r->rec[i].steps : 0);
            CHECK_INT_EQ(a->a[i].artifact_free, i % 2 == 0);
        }
        cfx_study_row t;
        CHECK_OK(cfx_study_tally(a, r, &t));
        CHECK_INT_EQ(t.none, 1);
        cfx_study_free(a);
    }
    cfx_loop_run_free(r);
}
