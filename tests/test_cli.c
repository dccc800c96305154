/* test_cli.c - the data, train and eval commands end to end, as a user runs them: outputs
 * exist and load, summaries parse, bad input exits non-zero with one line and writes nothing. */
#include "test.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bool exists(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* The cfx program is built beside the tests (or the test is skipped, saying why); dir gets a
 * fresh temporary folder. */
static bool cli_ready(char *dir, size_t n) {
    if (!cfx_test_cli()) {
        cfx_test_skip("the cfx program is not built beside cfx_tests (make all builds both)");
        return false;
    }
    snprintf(dir, n, "%s", cfx_test_tmpdir());
    return true;
}

CFX_TEST(cli, data_train_eval_end_to_end) {
    char dir[600], out[8192];
    if (!cli_ready(dir, sizeof dir)) return;
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "data signs --out %s/signs --train 32 --calib 4 --test 8 "
                                  "--ood 8 --seed 3 --threads 1",
                                  dir),
                 0);
    CHECK_INT_EQ(
        cfx_test_run_cli(out, sizeof out,
                         "train classifier --data %s/signs --out %s/clf.onnx --epochs 2 --batch 16 "
                         "--threads 1 --json",
                         dir, dir),
        0);
    CHECK_MSG(strstr(out, "\"test_accuracy\": ") != NULL, "no JSON summary: %s", out);
    CHECK(exists(dir, "clf.onnx"));
    CHECK(exists(dir, "clf.onnx.ckpt"));
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "eval classifier --model %s/clf.onnx --data %s/signs --json", dir,
                                  dir),
                 0);
    CHECK_MSG(strstr(out, "\"confusion\": [[") != NULL, "no confusion matrix: %s", out);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "model check %s/clf.onnx", dir), 0);
    /* The autoencoder also writes its halves and a grid that reads back as an image. */
    CHECK_INT_EQ(
        cfx_test_run_cli(out, sizeof out,
                         "train autoencoder --data %s/signs --out %s/ae.onnx --epochs 1 --batch 16 "
                         "--latent 16 --threads 1",
                         dir, dir),
        0);
    CHECK(exists(dir, "ae.onnx") && exists(dir, "encoder.onnx") && exists(dir, "decoder.onnx"));
    char grid[1200];
    snprintf(grid, sizeof grid, "%s/reconstructions.png", dir);
    cfx_tensor *im = cfx_image_read(grid, 0);
    CHECK_MSG(im != NULL, "%s", cfx_last_error());
    if (im) CHECK_INT_EQ(im->shape[0], 3);
    cfx_tensor_free(im);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "eval autoencoder --model %s/ae.onnx --data %s/signs", dir, dir),
                 0);
    CHECK(strstr(out, "reconstruction MSE") != NULL);
}

CFX_TEST(cli, bad_input_exits_non_zero_and_writes_nothing) {
    char dir[600], out[8192];
    if (!cli_ready(dir, sizeof dir)) return;
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "train classifier --data %s/none --out %s/m.onnx", dir, dir),
                 1);
    CHECK(strstr(out, "manifest.json") != NULL);
    CHECK(!exists(dir, "m.onnx"));
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "train classifier --data %s --out %s/m.onnx --epochs 0", dir,
                                  dir),
                 1);
    CHECK(strstr(out, "--epochs") != NULL);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "train classifer"), 1);
    CHECK(strstr(out, "unknown model kind") != NULL);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "frobnicate"), 2);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "eval classifier --model %s/missing.onnx --data %s", dir, dir),
                 1);
    /* Every command answers --help with exit 0. */
    const char *cmds[] = {"data", "train", "eval", "model", "concepts", "version"};
    for (int i = 0; i < 6; i++) {
        CHECK_MSG(cfx_test_run_cli(out, sizeof out, "%s --help", cmds[i]) == 0, "cfx %s --help: %s",
                  cmds[i], out);
        CHECK_MSG(strstr(out, "usage") != NULL, "cfx %s --help prints no usage", cmds[i]);
    }
    /* Nothing half-written was left in the folder. */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", dir);
    CHECK_MSG(system(cmd) == 0, "files were left in %s", dir);
}

/* Whether dir holds an entry whose name starts with prefix. */
static bool has_entry(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));)
        found = strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return found;
}

/* Ctrl-C while `cfx data` writes: the program dies of SIGINT and leaves neither the output
 * folder nor its temporary (it is interrupted once the temporary folder exists, as it makes or
 * writes the images). */
CFX_TEST(cli, interrupted_data_leaves_nothing) {
    char dir[600], out[700];
    if (!cli_ready(dir, sizeof dir)) return;
    snprintf(out, sizeof out, "%s/signs", dir);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
        signal(SIGINT,
               SIG_DFL); /* as from a terminal, even when the tests run as a background job */
        execl(cfx_test_cli(), "cfx", "data", "signs", "--out", out, "--train", "3000", "--threads",
              "1", (char *)NULL);
        _exit(127);
    }
    bool seen = false;
    for (int i = 0; i < 20000 && !seen; i++) { /* up to 20 s */
        seen = has_entry(dir, "signs.tmp.");
        if (!seen) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    CHECK_MSG(seen, "the temporary folder never appeared in %s", dir);
    kill(pid, SIGINT);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT,
              "cfx data finished before the signal, or exited otherwise (status %d)", st);
    CHECK_MSG(!has_entry(dir, "signs"), "an output or temporary folder is left in %s", dir);
}
