/* test_cf_cli.c - `cfx counterfactual` as a user runs it: the run folder's files and what they
 * hold, best's choice by its definition, a run killed with SIGKILL and resumed ending with the
 * same bytes as an uninterrupted one, and the refusals (a run of other settings or another
 * bundle, images that do not fit, --max-iter 0) that leave the folder as it was. */
#include "test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A bundle and examples from small signs, made once for the suite's tests. */
static char root[600];

static bool setup(void) {
    return cfx_test_bundle_once(root, sizeof root, &cfx_test_small_bundle, NULL);
}

static cJSON *read_lines(const char *path, int *n) {
    char *text = NULL;
    size_t size;
    *n = 0;
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return NULL;
    cJSON *all = cJSON_CreateArray();
    for (char *p = text, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) break;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        if (!j) break;
        cJSON_AddItemToArray(all, j);
        (*n)++;
    }
    cfx_free(text);
    return all;
}

/* A run: every file, a line per image and method, best by its definition. */
CFX_TEST(cf_cli, run_folder_holds_each_method_and_best) {
    if (!setup()) return;
    char out[16384], path[1200], run[800];
    snprintf(run, sizeof run, "%s/run", root);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s/b --examples %s/ex --out %s "
                                  "--method all,best --max-iter 20 --batch 4 "
                                  "--threads 1 --json",
                                  root, root, run),
                 0);
    CHECK_MSG(strstr(out, "\"best\": {\"all\": ") != NULL, "no JSON summary: %s", out);
    const char *methods[] = {"igd", "fgd", "reco", "lgd", "lnn", "best"};
    snprintf(path, sizeof path, "%s/images.npy", run);
    cfx_tensor *x = cfx_npy_read(path);
    CHECK(x != NULL);
    if (!x) return;
    const int64_t n = x->shape[0], img = x->numel / n;
    cfx_tensor *cf[6] = {0};
    for (int k = 0; k < 6; k++) {
        snprintf(path, sizeof path, "%s/counterfactuals_%s.npy", run, methods[k]);
        cf[k] = cfx_npy_read(path);
        CHECK_MSG(cf[k] && cfx_tensor_same_shape(cf[k], x), "%s", path);
    }
    snprintf(path, sizeof path, "%s/results.jsonl", run);
    int lines = 0;
    cJSON *res = read_lines(path, &lines);
    CHECK_INT_EQ(lines, 6 * n);
    /* Per image, the lines of each method; best is the nearest successful one. */
    double dist[6][64];
    int success[6][64], seen[6][64] = {{0}};
    const char *winner[64] = {0};
    CHECK(n <= 64);
    for (const cJSON *j = res ? res->child : NULL; j && n <= 64; j = j->next) {
        const cJSON *m = cJSON_GetObjectItem(j, "method"), *i = cJSON_GetObjectItem(j, "index");
        int k = 0;
        while (k < 6 && strcmp(m->valuestring, methods[k])) k++;
        CHECK(k < 6 && cJSON_IsNumber(i) && i->valueint >= 0 && i->valueint < n);
        if (k == 6 || i->valueint < 0 || i->valueint >= n) continue;
        seen[k][i->valueint]++;
        dist[k][i->valueint] = cJSON_GetObjectItem(j, "distance")->valuedouble;
        success[k][i->valueint] = cJSON_IsTrue(cJSON_GetObjectItem(j, "success"));
        CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "cause")));
        CHECK(cJSON_GetObjectItem(j, "rho_before")->valuedouble < 0.16);
        if (k == 5) winner[i->valueint] = cJSON_GetObjectItem(j, "winner")->valuestring;
    }
    for (int64_t i = 0; i < n && n <= 64; i++) {
        int w = -1;
        for (int k = 0; k < 5; k++) {
            CHECK_INT_EQ(seen[k][i], 1);
            if (success[k][i] && (w < 0 || dist[k][i] < dist[w][i])) w = k;
        }
        if (w < 0) continue; /* none succeeded: best keeps the highest rho */
        CHECK_MSG(winner[i] && !strcmp(winner[i], methods[w]), "image %lld: best took %s, not %s",
                  (long long)i, winner[i] ? winner[i] : "none", methods[w]);
        CHECK(success[5][i]);
        CHECK_MSG(cf[w] && cf[5] &&
                      !memcmp(cf[5]->data + i * img, cf[w]->data + i * img, (size_t)img * 4),
                  "image %lld: best's pixels are not %s's", (long long)i, methods[w]);
    }
    snprintf(path, sizeof path, "%s/strips/spatial.png", run);
    CHECK_MSG(access(path, F_OK) == 0, "no strip %s", path);
    snprintf(path, sizeof path, "%s/run.json", run);
    char *text = NULL;
    size_t size;
    CHECK_OK(cfx_file_read_all(path, &text, &size));
    CHECK(text && strstr(text, "\"status\":\t\"complete\""));
    /* The paths recorded for the readers are absolute, so they work from any folder. */
    CHECK_MSG(text && strstr(text, "\"bundle\":\t\"/"), "run.json: %s", text);
    cfx_free(text);
    snprintf(path, sizeof path, "%s/b/bundle.json", root);
    CHECK_OK(cfx_file_read_all(path, &text, &size));
    CHECK_MSG(text && strstr(text, "\"dataset\":\t\"/"), "bundle.json: %s", text);
    cfx_free(text);
    /* An image whose rho was not finite is written with null and left out of the means. */
    snprintf(path, sizeof path, "%s/results.jsonl", run);
    CHECK_OK(cfx_file_read_all(path, &text, &size));
    char *at = text ? strstr(text, "\"rho_before\": ") : NULL;
    CHECK(at != NULL);
    if (at && res && res->child) {
        at += strlen("\"rho_before\": ");
        size_t len = strcspn(at, ",");
        FILE *f = fopen(path, "wb");
        fprintf(f, "%.*snull%s", (int)(at - text), text, at + len);
        fclose(f);
        const char *m0 = cJSON_GetObjectItem(res->child, "method")->valuestring;
        double sum = 0;
        int count = 0;
        for (const cJSON *j = res->child->next; j; j = j->next)
            if (!strcmp(cJSON_GetObjectItem(j, "method")->valuestring, m0))
                sum += cJSON_GetObjectItem(j, "rho_before")->valuedouble, count++;
        cfx_run *r = cfx_run_open(run);
        CHECK_MSG(r != NULL, "%s", cfx_last_error());
        int k = 0;
        while (r && k < CFX_RUN_METHODS && strcmp(cfx_run_method_name(k), m0)) k++;
        cfx_run_tally t = r ? cfx_run_tally_of(r, k, NULL) : (cfx_run_tally){0};
        CHECK_MSG(t.n == count + 1 && fabs(t.rho_before - sum / count) < 1e-6,
                  "%s: %lld images, rho before %g, expected %g over %d", m0, (long long)t.n,
                  t.rho_before, sum / count, count);
        cfx_run_free(r);
    }
    cfx_free(text);
    cJSON_Delete(res);
    cfx_tensor_free(x);
    for (int k = 0; k < 6; k++) cfx_tensor_free(cf[k]);
}

/* SIGKILL in the middle of a run, then --resume: the same files as an uninterrupted run (the
 * seconds aside); a resume with other settings or another bundle is refused and changes
 * nothing. */
CFX_TEST(cf_cli, resume_after_kill_gives_the_same_files) {
    if (!setup()) return;
    char out[16384], a[800], b[800], pa[1200], pb[1200], bundle[800], ex[800];
    snprintf(a, sizeof a, "%s/whole", root);
    snprintf(b, sizeof b, "%s/killed", root);
    snprintf(bundle, sizeof bundle, "%s/b", root);
    snprintf(ex, sizeof ex, "%s/ex", root);
    /* A threshold nothing reaches: every batch runs all its steps (and LNN, which needs a
     * candidate above the threshold, is left out). */
    const char *args = "--method igd,lgd,reco,best --threshold 0.999 --max-iter 60 --batch 2 "
                       "--threads 1";
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s --examples %s --out %s %s", bundle,
                                  ex, a, args),
                 0);
    snprintf(pb, sizeof pb, "%s/results.jsonl", b);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
        execl(cfx_test_cli(), "cfx", "counterfactual", "--bundle", bundle, "--examples", ex,
              "--out", b, "--method", "igd,lgd,reco,best", "--threshold", "0.999", "--max-iter",
              "60", "--batch", "2", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    /* Killed once the first batch's lines are on disk. */
    struct stat st;
    bool started = false;
    for (int i = 0; i < 60000 && !started; i++) {
        started = stat(pb, &st) == 0 && st.st_size > 0;
        if (!started) nanosleep(&(struct timespec){0, 500000}, NULL);
    }
    kill(pid, SIGKILL);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(started && WIFSIGNALED(status), "the run was not killed in the middle (status %d)",
              status);
    snprintf(pa, sizeof pa, "%s/results.jsonl", a);
    int whole = 0, part = 0;
    cJSON_Delete(read_lines(pa, &whole));
    cJSON_Delete(read_lines(pb, &part));
    CHECK_MSG(part > 0 && part < whole, "killed after %d of %d lines", part, whole);
    /* Other settings, and another bundle's run, are refused; nothing changes. */
    char before[1200];
    snprintf(before, sizeof before, "%s/before.jsonl", root);
    char cmd[4000];
    snprintf(cmd, sizeof cmd, "cp %s %s", pb, before);
    CHECK_INT_EQ(system(cmd), 0);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s --examples %s --out %s --resume "
                                  "--method igd,lgd,reco,best --threshold 0.999 --max-iter 60 "
                                  "--batch 2 --threads 1 --gamma 0.5",
                                  bundle, ex, b),
                 1);
    CHECK_MSG(strstr(out, "'gamma'") != NULL, "the refusal does not name gamma: %s", out);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s --examples %s --out %s %s", bundle,
                                  ex, b, args),
                 1);
    CHECK_MSG(strstr(out, "--resume") != NULL, "no hint at --resume: %s", out);
    CHECK(cfx_test_same_file(before, pb));
    /* The resumed run. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s --examples %s --out %s %s --resume",
                                  bundle, ex, b, args),
                 0);
    const char *files[] = {"run.json",
                           "images.npy",
                           "counterfactuals_igd.npy",
                           "counterfactuals_lgd.npy",
                           "counterfactuals_reco.npy",
                           "counterfactuals_best.npy",
                           "strips/spatial.png"};
    CHECK_SAME_FILES(a, b, files, (int)(sizeof files / sizeof files[0]));
    snprintf(pa, sizeof pa, "%s/results.jsonl", a);
    snprintf(pb, sizeof pb, "%s/results.jsonl", b);
    char *ta = cfx_test_without_seconds(pa), *tb = cfx_test_without_seconds(pb);
    CHECK_MSG(ta && tb && !strcmp(ta, tb), "results.jsonl differs after the resume");
    cfx_free(ta), cfx_free(tb);
    /* No counterfactual of this run succeeded: the similarities over the successful ones are
     * "none", not a division by zero. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "evaluate %s --threads 1 --json", a), 0);
    CHECK_MSG(strstr(out, "\"success\": 0, ") && strstr(out, "\"feature_similarity\": null") &&
                  !strstr(out, "nan"),
              "got: %s", out);
}

/* Bad input: a clear error, exit 1 or 2, and no run folder. */
CFX_TEST(cf_cli, bad_input_is_refused_before_anything_is_written) {
    if (!setup()) return;
    char out[16384], path[1200], run[800];
    snprintf(run, sizeof run, "%s/bad", root);
    /* Images of another shape than the bundle's. */
    snprintf(path, sizeof path, "%s/wrong.npy", root);
    cfx_tensor *w = cfx_tensor_new(4, (int64_t[]){2, 3, 8, 8});
    CHECK_OK(cfx_npy_write(path, w));
    cfx_tensor_free(w);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s/b --images %s --out %s --threads 1",
                                  root, path, run),
                 1);
    CHECK_MSG(strstr(out, "wrong.npy") != NULL, "the message does not name the file: %s", out);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s/b --examples %s/ex --out %s "
                                  "--max-iter 0",
                                  root, root, run),
                 2);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s/b --examples %s/ex --out %s "
                                  "--method igd,xyz",
                                  root, root, run),
                 2);
    CHECK_MSG(strstr(out, "xyz") != NULL, "got: %s", out);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s/b --examples %s/ex --out %s/ex", root,
                                  root, root),
                 2);
    CHECK_MSG(access(run, F_OK) != 0, "a run folder was left at %s", run);
}

/* The metrics and the report of a run, opened by a browser: every embedded image decodes, the
 * tables hold the numbers of results.jsonl and metrics.json (whose success counts agree with
 * results.jsonl), and the page is not blank (tests/py/report_check.py). */
CFX_TEST(cf_cli, report_opens_in_a_browser) {
    if (!setup()) return;
    if (system("command -v chromium >/dev/null 2>&1") != 0) {
        cfx_test_skip("Debian's chromium is not installed (scripts/deps.sh test installs it)");
        return;
    }
    char out[16384], run[800];
    snprintf(run, sizeof run, "%s/for_report", root);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "counterfactual --bundle %s/b --examples %s/ex --out %s "
                                  "--method reco,lnn,best --threads 1",
                                  root, root, run),
                 0);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "evaluate %s --threads 1", run), 0);
    CHECK_MSG(strstr(out, "FID[classifier]") != NULL, "the table does not name the network: %s",
              out);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "report %s", run), 0);
    char res[2000];
    int rc = cfx_test_sh(res, sizeof res,
                         "/usr/bin/python3 tests/py/report_check.py %s %s/report.html %s/shot.png "
                         "2>&1",
                         run, run, run);
    CHECK_MSG(rc == 0 && !strncmp(res, "ok", 2), "report check: %s", res);
}
