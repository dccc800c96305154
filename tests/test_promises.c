/* test_promises.c - the README's promises about bad input, checked by machine over every
 * command that writes files: with its output in a folder that does not exist, or under a path
 * whose parent is a file, and with each of its input files corrupted in turn (cut to half, or
 * emptied), the command exits non-zero with one line that names the thing, and the fixture
 * folder is as it was: no output, no temporary, no input changed. */
#include "test.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Small signs, models, a bundle, examples, a run and a few loose files, made once. */
static char root[600];

static bool run_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool run_ok(const char *fmt, ...) {
    char args[2048], out[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int rc = cfx_test_run_cli(out, sizeof out, "%s", args);
    CHECK_MSG(rc == 0, "setting up: cfx %s: exit %d: %s", args, rc, out);
    return rc == 0;
}

static bool write_file(const char *dir, const char *name, const void *data, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    return ok;
}

static bool setup(void) {
    if (root[0]) return true;
    if (!cfx_test_bundle_once(root, sizeof root,
                              &(cfx_test_bundle_spec){.train = 40,
                                                      .calib = 8,
                                                      .test = 12,
                                                      .ood = 12,
                                                      .clf_epochs = 1,
                                                      .ae_epochs = 1,
                                                      .threshold = 0.16,
                                                      .per_cause = 2},
                              "reco,lnn"))
        return false;
    const char *d = root;
    /* Scenes from Fashion-MNIST (a package make test installs) and a classifier of them, for
     * the V-CECE loop. */
    bool ok = run_ok("data scenes --out %s/sc --size 32 --count 40 --seed 1", d) &&
              run_ok("train classifier --data %s/sc --out %s/sc.onnx --epochs 1 --batch 16 "
                     "--threads 1",
                     d, d);
    /* Loose inputs: an array, a PNG, an image folder, the concept annotations, and a plain
     * file that output paths try to use as a folder. */
    cfx_tensor *x = cfx_tensor_new(4, (int64_t[]){2, 3, 16, 16});
    char path[1200];
    snprintf(path, sizeof path, "%s/x.npy", d);
    ok = ok && x && cfx_npy_write(path, x) == CFX_OK;
    cfx_tensor_free(x);
    uint8_t px[3 * 8 * 8];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37);
    snprintf(path, sizeof path, "%s/x.png", d);
    ok = ok && cfx_image_write_png_u8(path, px, 3, 8, 8) == CFX_OK;
    for (int c = 0; c < 2 && ok; c++) {
        snprintf(path, sizeof path, "%s/imgs/%c", d, 'a' + c);
        char parent[1200];
        snprintf(parent, sizeof parent, "%s/imgs", d);
        mkdir(parent, 0700);
        ok = mkdir(path, 0700) == 0;
        for (int i = 0; i < 3 && ok; i++) {
            px[i] ^= (uint8_t)(c + 1);
            snprintf(path, sizeof path, "%s/imgs/%c/%d.png", d, 'a' + c, i);
            ok = cfx_image_write_png_u8(path, px, 3, 8, 8) == CFX_OK;
        }
    }
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp data/vg_random.json '%s/vg.json'", d); /* tests run in the tree */
    ok = ok && system(cmd) == 0 && write_file(d, "afile", "not a folder\n", 13);
    snprintf(path, sizeof path, "%s/m", d);
    ok = ok && mkdir(path, 0700) == 0;
    CHECK_MSG(ok, "setting up the fixture failed");
    if (!ok) root[0] = '\0';
    return ok;
}

/* A command that writes files: args with @D for the fixture folder and @O for the output under
 * test; out, the output's name; in, the fixture's files it reads, each corrupted in turn. */
typedef struct {
    const char *args, *out, *in[6];
} command;

static const command commands[] = {
    {"data signs --out @O --size 16 --train 4 --calib 2 --test 2 --ood 2 --threads 1", "s2", {0}},
    {"data folder --src @D/imgs --out @O", "f2", {"imgs/a/1.png"}},
    {"data preview --data @D/s --out @O", "p.png", {"s/manifest.json", "s/test_images.npy"}},
    {"data corrupt @D/x.png @O --cause noise --factor 20", "c.png", {"x.png"}},
    {"train classifier --data @D/s --out @O --epochs 1 --batch 16 --threads 1",
     "c2.onnx",
     {"s/manifest.json", "s/train_images.npy", "s/train_labels.npy"}},
    {"train autoencoder --data @D/s --out @O --epochs 1 --batch 16 --latent 8 --threads 1",
     "m/a2.onnx", /* (in a folder of its own: it writes encoder.onnx and decoder.onnx beside) */
     {"s/train_images.npy"}},
    {"model run @D/clf.onnx --input @D/x.npy --out @O --threads 1", "y.npy", {"clf.onnx", "x.npy"}},
    {"model split @D/ae.onnx --latent latent --encoder @O --decoder @D/d2.onnx",
     "e2.onnx",
     {"ae.onnx"}},
    {"model split @D/ae.onnx --latent latent --encoder @D/e2.onnx --decoder @O", "d2.onnx", {0}},
    {"concepts nearest --data @D/vg.json --labels claude-3-5-sonnet --query 1 --out @O",
     "n.jsonl",
     {"vg.json"}},
    {"competency fit --classifier @D/clf.onnx --encoder @D/encoder.onnx --decoder "
     "@D/decoder.onnx --data @D/s --out @O --threshold 0.16 --threads 1",
     "b2",
     {"clf.onnx", "encoder.onnx", "decoder.onnx", "s/manifest.json", "s/calib_images.npy"}},
    {"competency score @D/x.npy --bundle @D/b --out @O --threads 1",
     "sc.jsonl",
     {"x.npy", "b/parce.json", "b/bundle.json", "b/classifier.onnx", "b/encoder.onnx"}},
    {"competency report --bundle @D/b --data @D/s --out @O --threads 1",
     "rep",
     {"b/parce.json", "s/test_images.npy"}},
    {"competency examples --bundle @D/b --data @D/s --out @O --per-cause 2 --threads 1",
     "ex2",
     {"b/decoder.onnx", "s/ood_images.npy"}},
    {"counterfactual --bundle @D/b --examples @D/ex --out @O --method reco,lnn --threads 1",
     "run2",
     {"ex/images.npy", "ex/examples.jsonl", "b/calib_latents.npy", "b/calib_scores.npy"}},
    {"report @D/run --out @O",
     "r.html",
     {"run/run.json", "run/results.jsonl", "run/counterfactuals_reco.npy"}},
    {"data scenes --out @O --size 32 --count 10", "sc2", {0}},
    {"concepts edit --data @D/sc/concepts.json --images @D/sc --labels rule --classifier "
     "@D/sc.onnx --mode global --all --limit 3 --max-steps 2 --out @O --threads 1",
     "e",
     {"sc/concepts.json", "sc.onnx", "sc/manifest.json"}},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* args with @D and @O replaced. */
static void expand(char *buf, size_t n, const char *args, const char *out) {
    size_t k = 0;
    for (const char *p = args; *p && k + 1 < n; p++) {
        const char *with = NULL;
        if (p[0] == '@' && p[1] == 'D') with = root;
        if (p[0] == '@' && p[1] == 'O') with = out;
        if (!with) {
            buf[k++] = *p;
            continue;
        }
        k += (size_t)snprintf(buf + k, n - k, "%s", with);
        if (k >= n) k = n - 1;
        p++;
    }
    buf[k] = '\0';
}

/* Every file under root with its checksum, into a string the caller frees. */
static char *snapshot(void) {
    char cmd[3000], path[1200];
    snprintf(path, sizeof path, "%s.snapshot", root);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && find . | sort | while read -r f; do "
             "if [ -f \"$f\" ]; then md5sum \"$f\"; else echo \"$f\"; fi; done > '%s'",
             root, path);
    CHECK(system(cmd) == 0);
    char *text = NULL;
    size_t size;
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return NULL;
    return text;
}

/* `cfx <args>` fails (exit 1 or 2) with exactly one line that holds want, and root's files are
 * as they were. */
static void check_refused(const char *args, const char *want, const char *what) {
    char *before = snapshot(), out[8192];
    int rc = cfx_test_run_cli(out, sizeof out, "%s", args);
    const char *nl = strchr(out, '\n');
    CHECK_MSG((rc == 1 || rc == 2) && nl && !nl[1] && strstr(out, want),
              "%s: cfx %s: exit %d, wanted one line naming '%s', got: %s", what, args, rc, want,
              out);
    char *after = snapshot();
    CHECK_MSG(before && after && !strcmp(before, after),
              "%s: cfx %s changed the fixture:\n%s---\n%s", what, args, before ? before : "",
              after ? after : "");
    cfx_free(before), cfx_free(after);
}

CFX_TEST(promises, outputs_that_cannot_be_written_are_refused_before_the_work) {
    if (!setup()) return;
    char args[4096], out[1400];
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command *c = &commands[i];
        snprintf(out, sizeof out, "/nonexistent-cfx-folder/%s", c->out);
        expand(args, sizeof args, c->args, out);
        check_refused(args, "/nonexistent-cfx-folder", "an output in a missing folder");
        snprintf(out, sizeof out, "%s/afile/%s", root, c->out);
        expand(args, sizeof args, c->args, out);
        check_refused(args, "afile", "an output under a file");
    }
    if (geteuid() == 0)
        printf("  (running as root, which may write in a read-only folder: that case is not "
               "tried)\n");
}

CFX_TEST(promises, each_corrupted_input_is_named_and_nothing_is_written) {
    if (!setup()) return;
    char args[4096], out[1400], path[1200];
    int tried = 0;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command *c = &commands[i];
        snprintf(out, sizeof out, "%s/%s", root, c->out);
        expand(args, sizeof args, c->args, out);
        for (int k = 0; k < 6 && c->in[k]; k++) {
            snprintf(path, sizeof path, "%s/%s", root, c->in[k]);
            char *good = NULL;
            size_t size = 0;
            CHECK_OK(cfx_file_read_all(path, &good, &size));
            if (!good) continue;
            const char *base = strrchr(c->in[k], '/') ? strrchr(c->in[k], '/') + 1 : c->in[k];
            for (int cut = 0; cut < 2; cut++) {
                /* Cut to half, then emptied. */
                FILE *f = fopen(path, "wb");
                CHECK(f && fwrite(good, 1, cut ? 0 : size / 2, f) == (cut ? 0 : size / 2));
                if (f) fclose(f);
                char what[300];
                snprintf(what, sizeof what, "%s %s", c->in[k], cut ? "emptied" : "cut to half");
                check_refused(args, base, what);
                tried++;
                /* (an output a failed check let through would fail the next cases too) */
                char rm[1600];
                snprintf(rm, sizeof rm, "rm -rf '%s'", out);
                CHECK(system(rm) == 0);
            }
            FILE *f = fopen(path, "wb");
            CHECK(f && fwrite(good, 1, size, f) == size);
            if (f) fclose(f);
            cfx_free(good);
        }
    }
    printf("  (%d corrupted inputs over %zu commands)\n", tried, N_COMMANDS);
}

/* ------------------------------------------------------------------ kills --- */

/* A command killed (SIGKILL) at a random moment and then run again (train and counterfactual
 * with --resume; the V-CECE loop too) ends with the same files, byte for byte, as a run that was
 * never killed, and no temporary survives the rerun. @O is the output; results.jsonl's wall-clock
 * "seconds" are the one thing two runs do not share. */
typedef struct {
    const char *args, *rerun, *out;
    bool atomic; /* the output appears whole or not at all: present after a kill, it is done */
} killable;

static const killable killables[] = {
    {"data signs --out @O --size 16 --train 300 --calib 20 --test 20 --ood 20 --seed 3 "
     "--threads 1",
     "", "s", true},
    {"train classifier --data @D/s --out @O --epochs 4 --batch 16 --threads 1", " --resume",
     "c/c.onnx", true},
    {"counterfactual --bundle @D/b --examples @D/ex --out @O --method igd,lnn --max-iter 30 "
     "--batch 2 --threads 1",
     " --resume", "run", false},
    {"concepts edit --data @D/sc/concepts.json --images @D/sc --labels rule --classifier "
     "@D/sc.onnx --mode local --all --max-steps 4 --out @O --threads 1",
     " --resume", "edit", false},
};

/* The files under dir (relative names, sorted) with their checksums; results.jsonl without
 * its seconds. The caller frees the text. */
static char *tree(const char *dir) {
    char cmd[3000], path[1400];
    snprintf(path, sizeof path, "%s.tree", dir);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && find . -type f | sort | while read -r f; do case \"$f\" in "
             "*results.jsonl) echo \"$f $(sed -E 's/\"seconds\": [0-9.e+-]*//; "
             "s/\"seconds\":\\{[^}]*\\}//' \"$f\" | md5sum)\";; "
             "*) echo \"$f $(md5sum < \"$f\")\";; esac; done > '%s'",
             dir, path);
    if (system(cmd) != 0) return NULL;
    char *text = NULL;
    size_t size;
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return NULL;
    return text;
}

/* Runs `cfx <args>` in the background, its output thrown away; the pid. */
static pid_t start(const char *args) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "exec %s %s >/dev/null 2>&1", cfx_test_cli(), args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* A fresh folder dir for k's output (and the output's own folder); args, k's command line. */
static void prepare(const killable *k, const char *dir, char *args, size_t n) {
    char out[1400], cmd[3000];
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(out, sizeof out, "%s/%s", dir, k->out);
    if (strchr(k->out, '/')) {
        snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", out);
        CHECK(system(cmd) == 0);
    }
    expand(args, n, k->args, out);
}

CFX_TEST(promises, a_kill_at_any_moment_then_a_rerun_gives_the_same_files) {
    if (!setup()) return;
    cfx_rng rng;
    cfx_rng_init(&rng, 22);
    char args[4096], dir[1300];
    int kills = 0, rounds = 0;
    for (size_t i = 0; i < sizeof killables / sizeof killables[0]; i++) {
        const killable *k = &killables[i];
        /* The uninterrupted run, timed. */
        snprintf(dir, sizeof dir, "%s/k%zu_ref", root, i);
        prepare(k, dir, args, sizeof args);
        double t0 = cfx_now();
        char text[8192];
        CHECK_MSG(cfx_test_run_cli(text, sizeof text, "%s", args) == 0, "cfx %s: %s", args, text);
        double took = cfx_now() - t0;
        char *want = tree(dir);
        for (int round = 0; round < 3; round++) {
            snprintf(dir, sizeof dir, "%s/k%zu_%d", root, i, round);
            prepare(k, dir, args, sizeof args);
            /* Between a tenth and nine tenths of the uninterrupted run's time. */
            double at = took * (0.1 + 0.8 * cfx_rng_uniform(&rng));
            pid_t pid = start(args);
            nanosleep(&(struct timespec){(time_t)at, (long)((at - (double)(time_t)at) * 1e9)},
                      NULL);
            kill(pid, SIGKILL);
            int st = 0;
            CHECK(waitpid(pid, &st, 0) == pid);
            bool killed = WIFSIGNALED(st);
            char out[1400];
            snprintf(out, sizeof out, "%s/%s", dir, k->out);
            /* (a kill after the output was committed, while the process was ending, finds the
             * work done: it is not counted as a kill) */
            killed = killed && !(k->atomic && access(out, F_OK) == 0);
            kills += killed, rounds++;
            if (killed) {
                char again[4200];
                snprintf(again, sizeof again, "%s%s", args, k->rerun);
                CHECK_MSG(cfx_test_run_cli(text, sizeof text, "%s", again) == 0,
                          "after a kill at %.2f s: cfx %s: %s", at, again, text);
            }
            char *got = tree(dir);
            CHECK_MSG(want && got && !strcmp(want, got),
                      "cfx %s, killed at %.2f s of %.2f%s: the files differ:\n%s---\n%s", args, at,
                      took, killed ? " and run again" : " (it had finished)", want ? want : "",
                      got ? got : "");
            CHECK_MSG(got && !strstr(got, ".tmp."), "a temporary survived: %s", got ? got : "");
            cfx_free(got);
        }
        cfx_free(want);
    }
    printf("  (%d of %d runs were killed before they finished)\n", kills, rounds);
    CHECK_MSG(kills * 2 > rounds, "only %d of %d runs were killed", kills, rounds);
}
