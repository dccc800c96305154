/* test_cli.c - the commands end to end, as a user runs them: outputs exist and load, summaries
 * parse, bad input exits non-zero with one line and writes nothing; and every leaf command of
 * the tree takes its options the same way (help, wording of each usage error, exit codes). */
#include "test.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
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
    if (!cfx_test_cli_or_skip()) return false;
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
                                  "eval classifier --model %s/clf.onnx --data=%s/signs --json", dir,
                                  dir),
                 0);
    CHECK_MSG(strstr(out, "\"confusion\": [[") != NULL, "no confusion matrix: %s", out);
    CHECK_MSG(strstr(out, "\"batch\": 256") != NULL, "eval's default batch is not 256: %s", out);
    /* eval runs at the batch it is given, 64 included (train's default, which eval took for
     * "not given" and ran at 256). */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "eval classifier --model %s/clf.onnx --data %s/signs --batch 64 "
                                  "--json",
                                  dir, dir),
                 0);
    CHECK_MSG(strstr(out, "\"batch\": 64,") != NULL, "eval --batch 64 ran at another batch: %s",
              out);
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
    /* Usage errors exit 2, in the commands as at the top. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "train classifier --data %s --out %s/m.onnx --epochs 0", dir,
                                  dir),
                 2);
    CHECK_MSG(strstr(out, "cfx train classifier: --epochs must be 1..100000") == out, "got: %s",
              out);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "train classifer"), 2);
    CHECK_MSG(strstr(out, "cfx train: unknown command 'classifer'") == out, "got: %s", out);
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

/* Every leaf command. The walk checks this list against what the groups' help lists, so a new
 * leaf is walked as soon as it is added here, and forgetting it here fails. */
static const struct {
    const char *path;
    bool threads; /* takes --threads */
} leaves[] = {
    {"data fashion-mnist", false},
    {"data signs", true},
    {"data scenes", false},
    {"data folder", false},
    {"data preview", false},
    {"data corrupt", false},
    {"train classifier", true},
    {"train autoencoder", true},
    {"eval classifier", true},
    {"eval autoencoder", true},
    {"model info", false},
    {"model check", true},
    {"model run", true},
    {"model bench", true},
    {"model split", false},
    {"concepts cost", false},
    {"concepts nearest", true},
    {"concepts global", true},
    {"concepts order", true},
    {"concepts edit", true},
    {"concepts evaluate", true},
    {"competency fit", true},
    {"competency score", true},
    {"competency report", true},
    {"competency examples", true},
    {"counterfactual", true},
    {"report", false},
    {"evaluate", true},
    {"explain", true},
    {"version", false},
};
#define N_LEAVES (sizeof leaves / sizeof leaves[0])

/* `cfx <leaf> <args>` is a usage error: exit 2 and exactly one line, on stderr, that starts
 * "cfx <leaf>: <want>"; nothing on stdout. */
static void check_usage_error(const char *leaf, const char *args, const char *want) {
    char out[4096], line[512];
    int rc = cfx_test_run_cli(out, sizeof out, "%s %s", leaf, args);
    snprintf(line, sizeof line, "cfx %s: %s", leaf, want);
    const char *nl = strchr(out, '\n');
    CHECK_MSG(rc == 2 && strncmp(out, line, strlen(line)) == 0 && nl && !nl[1],
              "cfx %s %s: exit %d, wanted 2 and one line starting '%s', got: %s", leaf, args, rc,
              line, out);
    rc = cfx_test_run_cli_stdout(out, sizeof out, "%s %s", leaf, args);
    CHECK_MSG(rc == 2 && !out[0], "cfx %s %s: exit %d and on stdout: %s", leaf, args, rc, out);
}

/* The options of a help text that take a value: lines "  --name VALUE  help" (a flag's help
 * stands two spaces after its name). */
static int value_options(const char *help, char names[][32], int cap) {
    int n = 0;
    for (const char *p = help; (p = strstr(p, "\n  --")) && n < cap; p++) {
        const char *name = p + 5;
        size_t len = strcspn(name, " \n");
        if (name[len] == ' ' && name[len + 1] != ' ' && len < 32)
            snprintf(names[n++], 32, "%.*s", (int)len, name);
    }
    return n;
}

/* The commands a group's help lists: the lines "  name   help" after "commands:". */
static int listed_commands(const char *help, char names[][32], int cap) {
    const char *p = strstr(help, "\ncommands:\n");
    int n = 0;
    for (p = p ? p + 11 : NULL; p && strncmp(p, "  ", 2) == 0 && n < cap;) {
        snprintf(names[n++], 32, "%.*s", (int)strcspn(p + 2, " \n"), p + 2);
        if ((p = strchr(p, '\n'))) p++;
    }
    return n;
}

CFX_TEST(cli, groups_list_exactly_the_walked_leaves) {
    char dir[600], help[8192], out[8192];
    if (!cli_ready(dir, sizeof dir)) return;
    const char *groups[] = {"", "data", "train", "eval", "model", "concepts", "competency"};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        const char *grp = groups[g], *sp = grp[0] ? " " : "";
        char names[16][32], usage[64];
        snprintf(usage, sizeof usage, "usage: cfx%s%s <command>", sp, grp);
        CHECK_INT_EQ(cfx_test_run_cli_stdout(help, sizeof help, "%s --help", grp), 0);
        CHECK_MSG(strncmp(help, usage, strlen(usage)) == 0, "cfx %s --help: %s", grp, help);
        CHECK_INT_EQ(cfx_test_run_cli_stdout(out, sizeof out, "%s -h", grp), 0);
        CHECK_MSG(strcmp(out, help) == 0, "cfx %s -h is not cfx %s --help: %s", grp, grp, out);
        /* No command: the same list, on stderr, exit 2. */
        CHECK_INT_EQ(cfx_test_run_cli_stdout(out, sizeof out, "%s", grp), 2);
        CHECK_MSG(!out[0], "cfx %s printed on stdout: %s", grp, out);
        CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "%s", grp), 2);
        CHECK_MSG(strcmp(out, help) == 0, "cfx %s without a command: %s", grp, out);
        char want[96];
        snprintf(want, sizeof want, "cfx%s%s: unknown command 'bogus'", sp, grp);
        CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "%s bogus", grp), 2);
        CHECK_MSG(strncmp(out, want, strlen(want)) == 0, "got: %s", out);
        snprintf(want, sizeof want, "cfx%s%s: unknown option --bogus", sp, grp);
        CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "%s --bogus", grp), 2);
        CHECK_MSG(strncmp(out, want, strlen(want)) == 0, "got: %s", out);
        /* Each command listed is a walked leaf or (at the top) a group of them, and the other
         * way round. */
        int n = listed_commands(help, names, 16), walked = 0;
        CHECK_MSG(n > 0, "cfx %s --help lists no commands: %s", grp, help);
        for (int k = 0; k < n; k++) {
            char path[96];
            snprintf(path, sizeof path, "%s%s%.31s", grp, sp, names[k]);
            bool found = false;
            for (size_t i = 0; i < N_LEAVES && !found; i++)
                found = strcmp(leaves[i].path, path) == 0 ||
                        (!grp[0] && strncmp(leaves[i].path, path, strlen(path)) == 0 &&
                         leaves[i].path[strlen(path)] == ' ');
            CHECK_MSG(found, "cfx %s lists '%s', which the walk does not know", grp, names[k]);
        }
        for (size_t i = 0; i < N_LEAVES; i++)
            walked += grp[0] ? strncmp(leaves[i].path, grp, strlen(grp)) == 0 &&
                                   leaves[i].path[strlen(grp)] == ' '
                             : strchr(leaves[i].path, ' ') == NULL;
        if (grp[0])
            CHECK_MSG(walked == n, "cfx %s lists %d commands, the walk has %d", grp, n, walked);
    }
}

CFX_TEST(cli, every_leaf_takes_options_the_same_way) {
    char dir[600], help[8192], out[8192];
    int total = 0; /* options with a value found in all the help texts */
    if (!cli_ready(dir, sizeof dir)) return;
    for (size_t i = 0; i < N_LEAVES; i++) {
        const char *leaf = leaves[i].path;
        char usage[96];
        snprintf(usage, sizeof usage, "usage: cfx %s", leaf);
        /* Help is on stdout with exit 0, for -h as for --help, and lists both. */
        CHECK_MSG(cfx_test_run_cli_stdout(help, sizeof help, "%s --help", leaf) == 0,
                  "cfx %s --help: not exit 0: %s", leaf, help);
        CHECK_MSG(strncmp(help, usage, strlen(usage)) == 0 &&
                      (help[strlen(usage)] == ' ' || help[strlen(usage)] == '\n'),
                  "cfx %s --help: %s", leaf, help);
        CHECK_MSG(strstr(help, "\n  -h, --help ") != NULL, "cfx %s --help: %s", leaf, help);
        CHECK_MSG(cfx_test_run_cli_stdout(out, sizeof out, "%s -h", leaf) == 0 &&
                      strcmp(out, help) == 0,
                  "cfx %s -h is not --help: %s", leaf, out);
        check_usage_error(leaf, "--bogus", "unknown option --bogus");
        check_usage_error(leaf, "-x", "unknown option -x");
        /* Every option that takes a value, given last without it; and its name cut short,
         * which is no abbreviation (unless that is another option's name). A trailing --bogus
         * keeps a broken parser from running the command (--ou x would write x). */
        char names[32][32], args[64], want[96];
        int n = value_options(help, names, 32);
        total += n;
        for (int k = 0; k < n; k++) {
            snprintf(args, sizeof args, "--%.31s", names[k]);
            snprintf(want, sizeof want, "--%.31s needs a value", names[k]);
            check_usage_error(leaf, args, want);
            snprintf(args, sizeof args, "\n  --%.*s ", (int)strlen(names[k]) - 1, names[k]);
            if (strlen(names[k]) < 2 || strstr(help, args)) continue;
            snprintf(args, sizeof args, "--%.*s x --bogus", (int)strlen(names[k]) - 1, names[k]);
            snprintf(want, sizeof want, "unknown option --%.*s", (int)strlen(names[k]) - 1,
                     names[k]);
            check_usage_error(leaf, args, want);
        }
        /* A leaf that writes files takes --force, and then cli_parse checks its outputs against
         * its inputs (the option table gives each path its role; opt.h). */
        if (strstr(help, "\n  --out ") || strstr(help, "\n  OUT "))
            CHECK_MSG(strstr(help, "\n  --force ") != NULL,
                      "cfx %s writes files (--out) but has no --force", leaf);
        /* --threads, where there is one: the shared range. */
        bool threads = strstr(help, "\n  --threads N ") != NULL;
        CHECK_MSG(threads == leaves[i].threads, "cfx %s: --threads %s expected", leaf,
                  threads ? "not" : "");
        if (threads) {
            check_usage_error(leaf, "--threads 5000 --bogus", "--threads must be 0..1024");
            check_usage_error(leaf, "--threads two --bogus", "--threads must be 0..1024");
        }
    }
    /* The help texts were read: the leaves have some 90 options with a value in all. */
    CHECK_MSG(total > 80, "only %d options with a value found in the help texts", total);
}

/* What the review of the five old parsers found, one check each. The paths named do not
 * exist, so a broken parser fails to load them instead of writing anything. */
CFX_TEST(cli, old_parser_bugs_stay_fixed) {
    char dir[600], out[8192];
    if (!cli_ready(dir, sizeof dir)) return;
    /* eval had train's options: now each is unknown to it. */
    check_usage_error("eval classifier", "--model m.onnx --data d --epochs 3",
                      "unknown option --epochs");
    check_usage_error("eval autoencoder", "--model m.onnx --data d --resume",
                      "unknown option --resume");
    check_usage_error("eval classifier", "--model m.onnx --data d --lr 0.1", "unknown option --lr");
    check_usage_error("train classifier", "--data d --out m.onnx --latent 8",
                      "unknown option --latent");
    /* The architecture is the classifier's alone, one of two, and not with --model. */
    check_usage_error("train autoencoder", "--data d --out m.onnx --arch conv-pool",
                      "unknown option --arch");
    check_usage_error("train classifier", "--data d --out m.onnx --arch resnet",
                      "--arch must be one of reference, conv-pool");
    check_usage_error("train classifier", "--data d --out m.onnx --model x.onnx --arch reference",
                      "--arch chooses a built-in architecture; --model trains its own");
    /* Exact names only: getopt_long took --dat for --data. */
    check_usage_error("train classifier", "--dat d --out m.onnx", "unknown option --dat");
    check_usage_error("eval classifier", "--mod m.onnx --data d", "unknown option --mod");
    /* An unknown option is unknown, not "needs a value", even given last. */
    check_usage_error("concepts nearest", "--data d --labels l --bogus", "unknown option --bogus");
    /* Another option is no value. */
    check_usage_error("data preview", "--data --out x.png", "--data needs a value");
    /* Required options and arguments, values out of range, choices, positionals. */
    check_usage_error("train classifier", "--out m.onnx", "--data is required");
    check_usage_error("model info", "", "FILE is required");
    check_usage_error("model info", "a.onnx b.onnx", "unexpected argument 'b.onnx'");
    check_usage_error("train classifier", "--data d --out m.onnx --lr -1",
                      "--lr must be a number > 0");
    check_usage_error("data fashion-mnist", "--calib-frac nan --bogus --out d",
                      "--calib-frac must be a number in (0, 1)");
    check_usage_error("concepts order", "--data d --labels l --query 1 --mode far",
                      "--mode must be one of local, global, local-global");
    check_usage_error("concepts order", "--data d --labels l", "--query is required");
    check_usage_error(
        "concepts edit", "--data d --images i --labels l --out r --all",
        "give one of --classifier FILE, --classifier-cmd CMD and --classifier-llm URL");
    check_usage_error("concepts edit",
                      "--data d --images i --labels l --out r --classifier c --query 1 --all",
                      "give either --query ID or --all");
    check_usage_error("concepts edit",
                      "--data d --images i --labels l --out r --all "
                      "--classifier c --editor sd",
                      "--editor must be one of builtin");
    check_usage_error("version", "--json=yes", "--json takes no value");
    /* Values after '=' and after "--" are taken as they stand. */
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "model info -- %s/none.onnx", dir), 1);
    CHECK_MSG(strstr(out, "none.onnx") != NULL, "got: %s", out);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out, "version --json"), 0);
    CHECK_MSG(strstr(out, "{\"version\": ") == out, "got: %s", out);
}

/* ------------------------------------------------- outputs and inputs (issue 22) --- */

/* A small signs dataset (s), a classifier (clf.onnx) and an autoencoder (ae.onnx with
 * encoder.onnx and decoder.onnx) in dir, of one epoch each. */
static bool small_models(const char *dir) {
    char out[8192];
    int rc = cfx_test_run_cli(out, sizeof out,
                              "data signs --out %s/s --train 32 --calib 4 --test 8 --ood 8 "
                              "--threads 1",
                              dir);
    if (rc == 0)
        rc = cfx_test_run_cli(out, sizeof out,
                              "train classifier --data %s/s --out %s/clf.onnx --epochs 1 --batch "
                              "16 --threads 1",
                              dir, dir);
    if (rc == 0)
        rc = cfx_test_run_cli(out, sizeof out,
                              "train autoencoder --data %s/s --out %s/ae.onnx --epochs 1 --batch "
                              "16 --latent 8 --threads 1",
                              dir, dir);
    CHECK_MSG(rc == 0, "making the small models: %s", out);
    return rc == 0;
}

/* The bytes of a file (NULL when it cannot be read); the caller frees them. */
static char *slurp(const char *path, size_t *n) {
    char *data = NULL;
    if (cfx_file_read_all(path, &data, n) != CFX_OK) return NULL;
    return data;
}

/* `cfx <args>` fails with exit rc and one line holding want, and every file of dir is as it
 * was (none added, removed or changed; no temporary). */
static void check_fails_and_changes_nothing(const char *dir, int rc, const char *want,
                                            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_fails_and_changes_nothing(const char *dir, int rc, const char *want,
                                            const char *fmt, ...) {
    char args[2000], out[8192], cmd[1400], before[1200], after[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(before, sizeof before, "%s.before", dir);
    snprintf(after, sizeof after, "%s.after", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && find . -type f | sort | xargs md5sum > '%s'", dir,
             before);
    CHECK(system(cmd) == 0);
    int got = cfx_test_run_cli(out, sizeof out, "%s", args);
    const char *nl = strchr(out, '\n');
    CHECK_MSG(got == rc && strstr(out, want) && nl && !nl[1],
              "cfx %s: exit %d (wanted %d), wanted one line with '%s', got: %s", args, got, rc,
              want, out);
    snprintf(cmd, sizeof cmd, "cd '%s' && find . -type f | sort | xargs md5sum > '%s'", dir, after);
    CHECK(system(cmd) == 0);
    size_t n1 = 0, n2 = 0;
    char *a = slurp(before, &n1), *b = slurp(after, &n2);
    CHECK_MSG(a && b && n1 == n2 && memcmp(a, b, n1) == 0, "cfx %s changed files in %s:\n%s---\n%s",
              args, dir, a ? a : "", b ? b : "");
    cfx_free(a);
    cfx_free(b);
}

/* A command's outputs are committed together or not at all: model run wrote --out before the
 * --vjp weights turned out wrong; model split wrote the encoder before the decoder's folder
 * failed; train autoencoder wrote the model (after all the training) before the grid's folder
 * failed. Paths that cannot be written now fail before any work. */
CFX_TEST(cli, failing_commands_leave_no_outputs) {
    char dir[600];
    if (!cli_ready(dir, sizeof dir) || !small_models(dir)) return;
    char path[800];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    cfx_tensor *x = cfx_tensor_new(4, (int64_t[]){2, 3, 32, 32}),
               *w = cfx_tensor_new(1, (int64_t[]){3});
    CHECK_OK(cfx_npy_write(path, x));
    snprintf(path, sizeof path, "%s/w3.npy", dir);
    CHECK_OK(cfx_npy_write(path, w));
    cfx_tensor_free(x), cfx_tensor_free(w);
    check_fails_and_changes_nothing(dir, 1, "--vjp has 3 values",
                                    "model run %s/clf.onnx --input %s/x.npy --out %s/y.npy --vjp "
                                    "%s/w3.npy --grad-out %s/g.npy",
                                    dir, dir, dir, dir, dir);
    check_fails_and_changes_nothing(dir, 1, "the folder '/nonexistent' does not exist",
                                    "model split %s/ae.onnx --latent latent --encoder %s/e.onnx "
                                    "--decoder /nonexistent/d.onnx",
                                    dir, dir);
    double t0 = cfx_now();
    check_fails_and_changes_nothing(dir, 1, "the folder '/nonexistent' does not exist",
                                    "train autoencoder --data %s/s --out %s/ae2.onnx --epochs 50 "
                                    "--batch 16 --latent 8 --threads 1 --grid /nonexistent/g.png",
                                    dir, dir);
    check_fails_and_changes_nothing(
        dir, 1, "/nodir' does not exist",
        "train classifier --data %s/s --out %s/nodir/m.onnx --epochs 50 "
        "--batch 16 --threads 1",
        dir, dir);
    CHECK_MSG(cfx_now() - t0 < 10, "the failing trainings ran first (%.1f s)", cfx_now() - t0);
    /* The library's split: the decoder's write fails after the encoder's, and neither stays. */
    char ae[800], enc[800], dec[800];
    snprintf(ae, sizeof ae, "%s/ae.onnx", dir);
    snprintf(enc, sizeof enc, "%s/e.onnx", dir);
    snprintf(dec, sizeof dec, "%s/gone/d.onnx", dir);
    CHECK(cfx_onnx_split(ae, "latent", enc, dec) != CFX_OK);
    CHECK_MSG(!exists(dir, "e.onnx"), "the encoder was written though the decoder failed");
}

/* An output equal to an input destroyed the input (model run --out MODEL, --out = --input,
 * train --out DATA/manifest.json, data folder --out SRC --force, concepts nearest --out DATA,
 * the encoder = the model in model split); train --out over an existing model replaced it
 * without --force although cfx data asks for it. Refused the same way everywhere. */
CFX_TEST(cli, outputs_never_replace_inputs_and_need_force) {
    char dir[600];
    if (!cli_ready(dir, sizeof dir) || !small_models(dir)) return;
    char path[800], out[8192];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    cfx_tensor *x = cfx_tensor_new(4, (int64_t[]){2, 3, 32, 32});
    CHECK_OK(cfx_npy_write(path, x));
    cfx_tensor_free(x);
    snprintf(path, sizeof path, "%s/imgs", dir);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/imgs/a", dir);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/imgs/a/1.png", dir);
    uint8_t px[3 * 4 * 4] = {0};
    CHECK_OK(cfx_image_write_png_u8(path, px, 3, 4, 4));
    snprintf(path, sizeof path, "%s/vg.json", dir);
    char cmd[1500];
    snprintf(cmd, sizeof cmd, "cp data/vg_random.json '%s'", path); /* (tests run in the tree) */
    CHECK(system(cmd) == 0);
    const char *same = "an output must not replace an input";
    check_fails_and_changes_nothing(
        dir, 2, same, "model run %s/clf.onnx --input %s/x.npy --out %s/clf.onnx", dir, dir, dir);
    check_fails_and_changes_nothing(
        dir, 2, same, "model run %s/clf.onnx --input %s/x.npy --out %s/x.npy", dir, dir, dir);
    check_fails_and_changes_nothing(dir, 2, "is a file of the input --data",
                                    "train classifier --data %s/s --out %s/s/manifest.json", dir,
                                    dir);
    check_fails_and_changes_nothing(dir, 2, same, "data folder --src %s/imgs --out %s/imgs --force",
                                    dir, dir);
    check_fails_and_changes_nothing(dir, 2, "holds the input --src",
                                    "data folder --src %s/imgs/a --out %s/imgs --force", dir, dir);
    check_fails_and_changes_nothing(dir, 2, same,
                                    "concepts nearest --data %s/vg.json --labels "
                                    "claude-3-5-sonnet --query 1 --out %s/vg.json",
                                    dir, dir);
    check_fails_and_changes_nothing(dir, 2, same,
                                    "model split %s/ae.onnx --latent latent --encoder %s/ae.onnx "
                                    "--decoder %s/d.onnx",
                                    dir, dir, dir);
    check_fails_and_changes_nothing(dir, 2, "are the same file",
                                    "model run %s/clf.onnx --input %s/x.npy --out %s/y.npy --vjp "
                                    "%s/x.npy --grad-out %s/y.npy",
                                    dir, dir, dir, dir, dir);
    /* An existing output needs --force, for a model as for a dataset folder. */
    check_fails_and_changes_nothing(dir, 1, "clf.onnx' exists (use --force to replace it)",
                                    "train classifier --data %s/s --out %s/clf.onnx --epochs 1 "
                                    "--batch 16 --threads 1",
                                    dir, dir);
    check_fails_and_changes_nothing(dir, 1, "exists and is not empty (use --force",
                                    "data signs --out %s/s --train 2 --calib 1 --test 1", dir);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "train classifier --data %s/s --out %s/clf.onnx --epochs 1 "
                                  "--batch 16 --threads 1 --force",
                                  dir, dir),
                 0);
    /* A file output that ends in '/' is refused by name before the work (it failed at the
     * save, after training); a folder output named with a trailing slash is that folder. */
    check_fails_and_changes_nothing(dir, 1, "ends in '/', but it is a file",
                                    "train classifier --data %s/s --out %s/models/ --threads 1",
                                    dir, dir);
    CHECK_INT_EQ(cfx_test_run_cli(out, sizeof out,
                                  "data signs --out %s/s2/ --train 2 --calib 1 --test 1 --ood 1 "
                                  "--threads 1",
                                  dir),
                 0);
    CHECK(exists(dir, "s2/manifest.json"));
}

/* Issue 22's cosmetic findings: each message says a thing once and names the right thing.
 * ("load model: load model:", "train: train:", "evaluate: eval:", "Conv: Conv:", garbage after
 * an npy type, an overflowing npy shape blaming one dimension, "stb: Not a PNG" for a JPEG.) Two
 * were fixed by the option parser before: --lr inf or nan is one line, and an extra positional
 * argument is refused; they are checked here too. */
CFX_TEST(cli, messages_say_each_thing_once) {
    char dir[600], out[8192], path[800];
    if (!cli_ready(dir, sizeof dir) || !small_models(dir)) return;
    snprintf(path, sizeof path, "%s/bad.onnx", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs("not a model", f), fclose(f);
    static const char *doubled[] = {"load model: load model", "train: train",
                                    "evaluate: eval",         "eval: eval",
                                    "signs: signs",           "Conv: Conv"};
    const char *runs[][2] = {
        {"train classifier --data %s/s --out %s/m.onnx --model %s/bad.onnx", "load model: '"},
        {"eval classifier --data %s/s --model %s/bad.onnx", "load model: '"},
        {"eval autoencoder --data %s/s --model %s/clf.onnx", "is not a reconstruction"},
        {"data signs --out %s/s9 --train 2 --font %s/bad.onnx", "not a TrueType font"},
    };
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        cfx_test_run_cli(out, sizeof out, runs[k][0], dir, dir, dir);
        CHECK_MSG(strstr(out, runs[k][1]) != NULL, "%s: %s", runs[k][0], out);
        for (size_t d = 0; d < sizeof doubled / sizeof doubled[0]; d++)
            CHECK_MSG(!strstr(out, doubled[d]), "'%s' in: %s", doubled[d], out);
    }
    /* The library's context: a prefix already there is not added again. */
    cfx_set_error(CFX_EIO, "load model: 'x' is missing");
    cfx_error_context(CFX_EIO, "load model");
    CHECK_STR_EQ(cfx_last_error(), "load model: 'x' is missing");
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 8, 8});
    int w = cfx_graph_param(g, "w", 4, (int64_t[]){2, 3, 3, 3});
    CHECK(cfx_op_conv2d(g, x, w, -1, &(cfx_conv2d_attr){0}) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "Conv: channel mismatch") &&
                  !strstr(cfx_last_error(), "Conv: Conv"),
              "%s", cfx_last_error());
    cfx_graph_free(g);
    /* .npy headers: the type as written, and an overflowing shape named whole. */
    const char *headers[][2] = {
        {"{'descr': '<c16', 'fortran_order': False, 'shape': (2, 3), }",
         "array type '<c16' is not supported"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1000000000000, 3), }",
         "a tensor of shape (2, 1000000000000, 3) would have more than 2^40 elements"},
    };
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/h%d.npy", dir, k);
        f = fopen(path, "wb");
        char h[128];
        memset(h, ' ', sizeof h);
        memcpy(h, headers[k][0], strlen(headers[k][0]));
        h[117] = '\n';
        fwrite("\x93NUMPY\x01\x00\x76\x00", 1, 10, f);
        fwrite(h, 1, 118, f);
        fclose(f);
        CHECK(cfx_npy_read(path) == NULL);
        CHECK_MSG(strstr(cfx_last_error(), headers[k][1]) != NULL, "%s", cfx_last_error());
    }
    /* A JPEG whose decoder gives up without a reason (three bytes of a small JPEG changed): the
     * message said the PNG test's "Not a PNG". */
    cfx_tensor *im = cfx_image_read("tests/data/jpeg_stb_gives_up.jpg", 0);
    CHECK(im == NULL);
    CHECK_MSG(strstr(cfx_last_error(), "cannot decode the JPEG") &&
                  !strstr(cfx_last_error(), "PNG"),
              "%s", cfx_last_error());
    cfx_tensor_free(im);
    /* Options: --lr inf and nan are one usage line each; an extra argument is refused. */
    check_usage_error("train classifier", "--data d --out m.onnx --lr inf",
                      "--lr must be a number > 0");
    check_usage_error("train classifier", "--data d --out m.onnx --lr nan",
                      "--lr must be a number > 0");
    check_usage_error("model check", "a.onnx b.onnx", "unexpected argument 'b.onnx'");
}

/* model bench: the timings are ordered, the FLOPs a pass are the graph's multiply-adds twice (and
 * twice again with --backward), and a file that is no model is refused. */
CFX_TEST(cli, model_bench_reports_ordered_times_and_flops) {
    char dir[600], out[8192];
    if (!cli_ready(dir, sizeof dir) || !small_models(dir)) return;
    double gflop[2] = {0};
    for (int back = 0; back < 2; back++) {
        int rc = cfx_test_run_cli_stdout(out, sizeof out,
                                         "model bench %s/clf.onnx --batch 4 --runs 5 --warmup 1 "
                                         "--json%s",
                                         dir, back ? " --backward" : "");
        cJSON *j = cJSON_Parse(out);
        CHECK_MSG(rc == 0 && j, "exit %d: %s", rc, out);
        if (!j) continue;
        double v[5];
        const char *keys[5] = {"min_s", "p10_s", "median_s", "p90_s", "max_s"};
        for (int k = 0; k < 5; k++) {
            cJSON *e = cJSON_GetObjectItem(j, keys[k]);
            v[k] = cJSON_IsNumber(e) ? e->valuedouble : -1;
            CHECK_MSG(v[k] > 0 && (k == 0 || v[k] >= v[k - 1]), "%s out of order: %s", keys[k],
                      out);
        }
        gflop[back] = cJSON_GetObjectItem(j, "gflop")->valuedouble;
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "backward")) == back);
        cJSON_Delete(j);
    }
    /* The reference classifier at 32x32: its convolutions and layers are counted. */
    CHECK_MSG(gflop[0] > 1e-3 && fabs(gflop[1] - 2 * gflop[0]) < 2e-6, "%g %g", gflop[0], gflop[1]);
    snprintf(out, sizeof out, "%s/s/manifest.json", dir);
    char msg[8192];
    CHECK_INT_EQ(cfx_test_run_cli(msg, sizeof msg, "model bench %s", out), 1);
    CHECK_MSG(strstr(msg, "manifest.json"), "%s", msg);
}
