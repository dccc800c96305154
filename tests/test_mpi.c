/* test_mpi.c - build/cfx-mpi under `mpirun --oversubscribe` with 2 and 4 ranks on this machine
 * (issue 23): `competency score`, `counterfactual` (per-image stop) and `evaluate` write the bytes
 * one process writes (the seconds of results.jsonl aside); a run whose mpirun is killed mid-run
 * resumes under mpirun to the same files; the plain build under mpirun, ranks started with other
 * arguments or seeing other files under the same paths, and commands not yet sharded are refused.
 */
#include "test.h"

#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char root[600], mpi_bin[1100], plain_bin[1100];

/* The programs, mpirun and a small bundle with examples (as test_cf_cli.c makes them). */
static bool grows_past(const char *path, off_t bytes);

static bool setup(void) {
    const char *cli = cfx_test_cli_or_skip();
    if (!cli) return false;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", cli);
    snprintf(plain_bin, sizeof plain_bin, "%s", cli);
    /* Absolute: the ranks of one test start in other working folders. */
    char *abs = realpath(dir, NULL);
    snprintf(mpi_bin, sizeof mpi_bin, "%s/cfx-mpi", abs ? dirname(abs) : dirname(dir));
    free(abs);
    if (access(mpi_bin, X_OK) != 0) {
        cfx_test_skip("%s is not built (make mpi builds it; make test does)", mpi_bin);
        return false;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        cfx_test_skip("mpirun is not installed (scripts/deps.sh mpi installs Open MPI)");
        return false;
    }
    /* mpirun refuses root unless told twice; harmless for other users. */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    return cfx_test_bundle_once(root, sizeof root, &cfx_test_small_bundle, NULL);
}

/* Runs a shell command line (printf-formatted) with stderr into out when both is set, else
 * thrown away; returns the exit status (-1 when it did not exit). */
static int sh(char *out, size_t n, bool both, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sh(char *out, size_t n, bool both, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return cfx_test_sh(out, n, "%s %s", cmd, both ? "2>&1" : "2>/dev/null");
}

#define MPIRUN "mpirun --oversubscribe --allow-run-as-root"

/* A shell command that prints nothing when two run folders of cfx concepts edit hold the same
 * files, results.jsonl without the wall-clock "seconds" of each record (the loop's phases);
 * each folder is named twice: SAME_RUN_DIRS("%s/a", "%s/b") takes the arguments of a, of b,
 * then of a and b again, and diff options may follow it. */
#define SAME_RUN_SED "sed -E 's/\"seconds\":\\{[^}]*\\}//' "
#define SAME_RUN_DIRS(A, B)                                                                        \
    "[ \"$(" SAME_RUN_SED A "/results.jsonl)\" = \"$(" SAME_RUN_SED B                              \
    "/results.jsonl)\" ] || echo 'results.jsonl differ'; diff -r -x results.jsonl " A " " B

/* Two run folders hold the same files, byte for byte, results.jsonl without its seconds. */
static void check_same_run(const char *a, const char *b, const char *const *files, int nfiles) {
    char pa[1200], pb[1200];
    CHECK_SAME_FILES(a, b, files, nfiles);
    snprintf(pa, sizeof pa, "%s/results.jsonl", a);
    snprintf(pb, sizeof pb, "%s/results.jsonl", b);
    char *x = cfx_test_without_seconds(pa), *y = cfx_test_without_seconds(pb);
    CHECK_MSG(x && y && *x && !strcmp(x, y), "results.jsonl differs between %s and %s", a, b);
    cfx_free(x), cfx_free(y);
}

/* The JSON lines of 93 images (the test split and the examples), in batches of 5 that the
 * ranks' blocks cut anywhere: stdout and --out as one process writes them. */
CFX_TEST(mpi, score_writes_the_bytes_of_one_process) {
    if (!setup()) return;
    static char one[65536], many[65536];
    const char *in = "--batch 5 --threads 1";
    CHECK_INT_EQ(sh(one, sizeof one, false,
                    "%s competency score --bundle %s/b %s/s/test_images.npy "
                    "%s/ex/images.npy %s",
                    plain_bin, root, root, root, in),
                 0);
    CHECK_MSG(strstr(one, "\"index\": 92,") != NULL, "one process did not score 93 images: %.300s",
              one);
    for (int k = 2; k <= 4; k += 2) {
        CHECK_INT_EQ(sh(many, sizeof many, false,
                        MPIRUN " -n %d %s competency score --bundle %s/b %s/s/test_images.npy "
                               "%s/ex/images.npy %s",
                        k, mpi_bin, root, root, root, in),
                     0);
        CHECK_MSG(!strcmp(one, many), "%d ranks printed other lines than one process", k);
        char a[800], b[800];
        snprintf(a, sizeof a, "%s/score1.jsonl", root);
        snprintf(b, sizeof b, "%s/score%d.jsonl", root, k);
        CHECK_INT_EQ(sh(many, sizeof many, true,
                        "%s competency score --bundle %s/b %s/s/test_images.npy --out %s %s "
                        "--force",
                        plain_bin, root, root, a, in),
                     0);
        CHECK_INT_EQ(sh(many, sizeof many, true,
                        MPIRUN " -n %d %s competency score --bundle %s/b %s/s/test_images.npy "
                               "--out %s %s",
                        k, mpi_bin, root, root, b, in),
                     0);
        CHECK_MSG(cfx_test_same_file(a, b), "%d ranks wrote another %s than one process", k, b);
    }
}

/* Every method and best, per-image stop, batches of 2 spread over 2 and 4 ranks: the run folder
 * one process writes, and the same table on stdout. */
CFX_TEST(mpi, counterfactual_writes_the_files_of_one_process) {
    if (!setup()) return;
    static char one[32768], many[32768];
    const char *args = "--method all,best --stop per-image --max-iter 20 --batch 2 --threads 1";
    char a[800], b[800];
    snprintf(a, sizeof a, "%s/cf1", root);
    CHECK_INT_EQ(sh(one, sizeof one, false,
                    "%s counterfactual --bundle %s/b --examples %s/ex "
                    "--out %s %s --json",
                    plain_bin, root, root, a, args),
                 0);
    const char *files[] = {"run.json",
                           "images.npy",
                           "counterfactuals_igd.npy",
                           "counterfactuals_fgd.npy",
                           "counterfactuals_reco.npy",
                           "counterfactuals_lgd.npy",
                           "counterfactuals_lnn.npy",
                           "counterfactuals_best.npy",
                           "strips/spatial.png"};
    for (int k = 2; k <= 4; k += 2) {
        snprintf(b, sizeof b, "%s/cf%d", root, k);
        CHECK_INT_EQ(sh(many, sizeof many, false,
                        MPIRUN " -n %d %s counterfactual --bundle %s/b --examples %s/ex --out %s "
                               "%s --json",
                        k, mpi_bin, root, root, b, args),
                     0);
        CHECK_MSG(strstr(many, "\"best\": {\"all\": ") != NULL, "no summary from %d ranks: %s", k,
                  many);
        check_same_run(a, b, files, (int)(sizeof files / sizeof files[0]));
    }
}

/* The kill tests' counterfactual arguments, and their uninterrupted run by one process in
 * a (made by the first test that asks; bundle and ex get the fixture's folders, 800 bytes). A
 * threshold nothing reaches: every batch runs all its steps, enough of them (a batch of one
 * image) that a kill lands mid-run. */
static const char *whole_run(char *a, size_t n, char *bundle, char *ex) {
    static const char *args = "--method igd,lgd,reco,best --threshold 0.999 --max-iter 300 "
                              "--batch 1 --threads 1";
    static char out[32768];
    snprintf(a, n, "%s/whole", root);
    snprintf(bundle, 800, "%s/b", root);
    snprintf(ex, 800, "%s/ex", root);
    char done[900];
    snprintf(done, sizeof done, "%s/results.jsonl", a);
    if (access(done, F_OK) != 0)
        CHECK_INT_EQ(sh(out, sizeof out, true,
                        "%s counterfactual --bundle %s --examples %s --out %s %s", plain_bin,
                        bundle, ex, a, args),
                     0);
    return args;
}

/* The killed run in b resumed under mpirun on the given number of ranks, with whole_run's
 * arguments: it says it resumes, and ends with the uninterrupted run's files (those named). */
static void resume_matches_whole(int ranks, const char *b, const char *args,
                                 const char *const *files, int nfiles) {
    static char out[32768];
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    MPIRUN " -n %d %s counterfactual --bundle %s/b --examples %s/ex --out %s %s "
                           "--resume",
                    ranks, mpi_bin, root, root, b, args),
                 0);
    CHECK_MSG(strstr(out, "resuming after") != NULL, "the run did not resume: %s", out);
    char a[800];
    snprintf(a, sizeof a, "%s/whole", root);
    check_same_run(a, b, files, nfiles);
}

/* Starts the shell command line cmd (which execs what is to be killed, so that the pid is its
 * own) in a child process, its output thrown away when quiet; returns the child's pid. */
static pid_t start(const char *cmd, bool quiet) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (quiet && (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)))
            _exit(126);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* mpirun killed once the first batches are on disk (SIGTERM: it ends its ranks and waits for
 * them), then --resume under mpirun with another number of ranks: an uninterrupted run's files. */
CFX_TEST(mpi, resume_after_killing_mpirun_gives_the_same_files) {
    if (!setup()) return;
    char a[800], b[800], bundle[800], ex[800], pb[1200], cmd[6000];
    const char *args = whole_run(a, sizeof a, bundle, ex);
    snprintf(b, sizeof b, "%s/killed", root);
    snprintf(pb, sizeof pb, "%s/results.jsonl", b);
    snprintf(cmd, sizeof cmd,
             "exec " MPIRUN " -n 2 %s counterfactual --bundle %s --examples %s --out %s %s",
             mpi_bin, bundle, ex, b, args);
    pid_t pid = start(cmd, true);
    bool started = grows_past(pb, 0);
    kill(pid, SIGTERM);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(started && !(WIFEXITED(status) && WEXITSTATUS(status) == 0),
              "mpirun was not killed in the middle (status %d)", status);
    char pa[1200];
    snprintf(pa, sizeof pa, "%s/results.jsonl", a);
    char *whole = NULL, *part = NULL;
    size_t nw = 0, np = 0;
    CHECK(cfx_file_read_all(pa, &whole, &nw) == CFX_OK);
    CHECK(cfx_file_read_all(pb, &part, &np) == CFX_OK);
    CHECK_MSG(np > 0 && np < nw, "killed after %zu of %zu bytes of results", np, nw);
    cfx_free(whole), cfx_free(part);
    const char *files[] = {"run.json",
                           "images.npy",
                           "counterfactuals_igd.npy",
                           "counterfactuals_lgd.npy",
                           "counterfactuals_reco.npy",
                           "counterfactuals_best.npy",
                           "strips/spatial.png"};
    resume_matches_whole(4, b, args, files, (int)(sizeof files / sizeof files[0]));
}

/* One rank killed (SIGKILL) once the first batches are on disk: mpirun ends the job with a
 * message that names the rank, the finished results stay, and --resume gives an uninterrupted
 * run's files. */
CFX_TEST(mpi, a_killed_rank_is_named_and_the_run_resumes) {
    if (!setup()) return;
    char a[800], b[800], bundle[800], ex[800], pb[1200], log[1200], cmd[6000];
    const char *args = whole_run(a, sizeof a, bundle, ex);
    snprintf(b, sizeof b, "%s/rank_killed", root);
    snprintf(log, sizeof log, "%s/rank_killed.log", root);
    snprintf(pb, sizeof pb, "%s/results.jsonl", b);
    snprintf(cmd, sizeof cmd,
             "exec " MPIRUN " -n 2 %s counterfactual --bundle %s --examples %s --out %s %s "
             ">'%s' 2>&1",
             mpi_bin, bundle, ex, b, args, log);
    pid_t pid = start(cmd, false);
    bool started = grows_past(pb, 0);
    /* The ranks are the processes whose command line starts with cfx-mpi and names this run's
     * folder (not mpirun's, nor the shell's running pkill); the newest of them. */
    char pick[1600];
    snprintf(pick, sizeof pick, "pkill -KILL -n -f '^[^ ]*cfx-mpi counterfactual .*%s '", b);
    CHECK_MSG(started && system(pick) == 0, "no rank to kill (started: %d)", started);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(!(WIFEXITED(status) && WEXITSTATUS(status) == 0),
              "the job went on after a rank was killed (status %d)", status);
    char *text = NULL;
    size_t n = 0;
    CHECK(cfx_file_read_all(log, &text, &n) == CFX_OK);
    CHECK_MSG(text && strstr(text, "rank") && (strstr(text, "signal 9") || strstr(text, "Killed")),
              "the message does not name the killed rank: %s", text ? text : "");
    cfx_free(text);
    const char *files[] = {"run.json",
                           "images.npy",
                           "counterfactuals_igd.npy",
                           "counterfactuals_lgd.npy",
                           "counterfactuals_reco.npy",
                           "counterfactuals_best.npy"};
    resume_matches_whole(2, b, args, files, (int)(sizeof files / sizeof files[0]));
}

/* The plain build under mpirun, a command not yet sharded, and ranks that differ are refused
 * with exit code 2 (1 for what they loaded), naming the build, the command or the rank. */
CFX_TEST(mpi, plain_build_and_mismatched_ranks_are_refused) {
    if (!setup()) return;
    static char out[16384];
    CHECK_INT_EQ(sh(out, sizeof out, true, MPIRUN " -n 2 %s version", plain_bin), 2);
    CHECK_MSG(strstr(out, "not the MPI build") && strstr(out, "make mpi"),
              "the plain build under mpirun: %s", out);
    CHECK_INT_EQ(sh(out, sizeof out, true, MPIRUN " -n 2 %s version", mpi_bin), 0);
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    MPIRUN " -n 2 %s data signs --out %s/never --size 16 --train 4 --calib 4 "
                           "--test 4 --ood 4",
                    mpi_bin, root),
                 2);
    CHECK_MSG(strstr(out, "one rank") != NULL, "an unsharded command under mpirun: %s", out);
    char never[800];
    snprintf(never, sizeof never, "%s/never", root);
    CHECK_MSG(access(never, F_OK) != 0, "the refused command wrote %s", never);
    /* An MPMD line whose second rank has another input. */
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    MPIRUN " -n 1 %s competency score --bundle %s/b %s/s/test_images.npy : -n 1 "
                           "%s competency score --bundle %s/b %s/ex/images.npy",
                    mpi_bin, root, root, mpi_bin, root, root),
                 2);
    CHECK_MSG(strstr(out, "rank 1 of 2 was started with other arguments"), "MPMD: %s", out);
    /* The same arguments naming other files: each rank in its own working folder. */
    char cmd[4000];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/w1 %s/w2 && cp %s/s/test_images.npy %s/w1/x.npy && cp "
             "%s/ex/images.npy %s/w2/x.npy",
             root, root, root, root, root, root);
    CHECK_INT_EQ(system(cmd), 0);
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    MPIRUN " -n 1 --wdir %s/w1 %s competency score --bundle %s/b x.npy : -n 1 "
                           "--wdir %s/w2 %s competency score --bundle %s/b x.npy",
                    root, mpi_bin, root, root, mpi_bin, root),
                 1);
    CHECK_MSG(strstr(out, "rank 1 of 2 loaded other images than rank 0"), "other files: %s", out);
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    MPIRUN " -n 1 --wdir %s/w1 %s counterfactual --bundle %s/b --images x.npy "
                           "--all --out %s/wrun --max-iter 2 : -n 1 --wdir %s/w2 %s counterfactual "
                           "--bundle %s/b --images x.npy --all --out %s/wrun --max-iter 2",
                    root, mpi_bin, root, root, root, mpi_bin, root, root),
                 1);
    CHECK_MSG(strstr(out, "rank 1 of 2 loaded other inputs or settings"), "other files: %s", out);
    snprintf(never, sizeof never, "%s/wrun", root);
    CHECK_MSG(access(never, F_OK) != 0, "the refused run wrote %s", never);
}

/* cfx evaluate of one run folder, copied: at 2 and 4 ranks (batches of 2 over the images, some
 * ranks with none) metrics.json, summary.md and summary.csv are one process's, the run's folder
 * name aside. */
CFX_TEST(mpi, evaluate_writes_the_files_of_one_process) {
    if (!setup()) return;
    static char out[32768];
    char cmd[4000];
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    "%s counterfactual --bundle %s/b --examples %s/ex --out %s/ev1 --method "
                    "igd,reco,best --max-iter 10 --batch 3 --threads 1",
                    plain_bin, root, root, root),
                 0);
    snprintf(cmd, sizeof cmd, "cp -r %s/ev1 %s/ev2 && cp -r %s/ev1 %s/ev4", root, root, root, root);
    CHECK_INT_EQ(system(cmd), 0);
    CHECK_INT_EQ(
        sh(out, sizeof out, true, "%s evaluate %s/ev1 --batch 2 --threads 1", plain_bin, root), 0);
    const char *files[] = {"metrics.json", "summary.md", "summary.csv"};
    for (int k = 2; k <= 4; k += 2) {
        CHECK_INT_EQ(sh(out, sizeof out, true,
                        MPIRUN " -n %d %s evaluate %s/ev%d --batch 2 --threads 1", k, mpi_bin, root,
                        k),
                     0);
        for (size_t q = 0; q < sizeof files / sizeof files[0]; q++) {
            char a[1200], b[1200];
            snprintf(a, sizeof a, "%s/ev1/%s", root, files[q]);
            snprintf(b, sizeof b, "%s/ev%d/%s", root, k, files[q]);
            char *x = NULL, *y = NULL;
            size_t nx = 0, ny = 0;
            CHECK(cfx_file_read_all(a, &x, &nx) == CFX_OK);
            CHECK(cfx_file_read_all(b, &y, &ny) == CFX_OK);
            /* The one difference allowed: "ev1" where the run names its folder. */
            char *at = y ? strstr(y, "/ev") : NULL;
            if (at && at[3] == '0' + k) at[3] = '1';
            CHECK_MSG(x && y && nx == ny && !memcmp(x, y, nx), "%s differs at %d ranks", files[q],
                      k);
            cfx_free(x), cfx_free(y);
        }
    }
}

/* Waits (up to a minute) until path holds more than `bytes` bytes. */
static bool grows_past(const char *path, off_t bytes) {
    struct stat st;
    for (int i = 0; i < 120000; i++) {
        if (stat(path, &st) == 0 && st.st_size > bytes) return true;
        nanosleep(&(struct timespec){0, 500000}, NULL);
    }
    return false;
}

/* The largest |a - b| over the parameters of two ONNX models of one architecture, and the
 * largest |a|; false when they do not load or differ in size. */
static bool weight_diff(const char *a, const char *b, double *diff, double *scale) {
    cfx_graph *ga = cfx_onnx_load(a, NULL), *gb = cfx_onnx_load(b, NULL);
    size_t na = 0, nb = 0;
    if (ga && cfx_graph_compile(ga) != CFX_OK) cfx_graph_free(ga), ga = NULL;
    if (gb && cfx_graph_compile(gb) != CFX_OK) cfx_graph_free(gb), gb = NULL;
    const float *pa = ga ? cfx_graph_params(ga, &na) : NULL;
    const float *pb = gb ? cfx_graph_params(gb, &nb) : NULL;
    bool ok = pa && pb && na == nb && na > 0;
    *diff = *scale = 0;
    for (size_t i = 0; ok && i < na; i++) {
        double d = fabs((double)pa[i] - (double)pb[i]);
        *diff = d > *diff ? d : *diff;
        *scale = fabs(pa[i]) > *scale ? fabs(pa[i]) : *scale;
    }
    cfx_graph_free(ga), cfx_graph_free(gb);
    return ok;
}

/* Data-parallel training. An autoencoder on 2 ranks of one thread is, byte for byte, the one
 * process on 2 threads (the same halves of each batch, the same sum of two gradients). A
 * classifier on 2 and 4 ranks differs from one process only by the order of its float sums:
 * after 2 epochs of batches of 32 its weights are within 1e-4 of one process's on one thread
 * (measured: 2e-5, where one process on 2 threads differs from 1 thread by 1e-5), while another
 * seed moves them by more than 1e-2. */
CFX_TEST(mpi, training_is_one_process_within_rounding) {
    if (!setup()) return;
    static char out[16384];
    const char *args = "--epochs 2 --batch 32 --threads";
    char a[800], b[800];
    snprintf(a, sizeof a, "%s/t_ae2/ae.onnx", root);
    snprintf(b, sizeof b, "%s/t_aem2/ae.onnx", root);
    CHECK_INT_EQ(sh(out, sizeof out, true, "mkdir -p %s/t_ae2 %s/t_aem2", root, root), 0);
    CHECK_INT_EQ(sh(out, sizeof out, true, "%s train autoencoder --data %s/s --out %s %s 2",
                    plain_bin, root, a, args),
                 0);
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    MPIRUN " -n 2 %s train autoencoder --data %s/s --out %s %s 1", mpi_bin, root, b,
                    args),
                 0);
    CHECK_MSG(strstr(out, "wrote") != NULL, "2 ranks: %s", out);
    CHECK_MSG(cfx_test_same_file(a, b),
              "2 ranks of 1 thread wrote another autoencoder than 1 process of 2");
    /* The classifier: one process on 1 and 2 threads, another seed, 2 and 4 ranks. */
    const char *name[] = {"c1", "c2", "cseed", "m2", "m4"};
    for (int k = 0; k < 5; k++) {
        bool mpi = k >= 3;
        CHECK_INT_EQ(sh(out, sizeof out, true,
                        "%s%s%s train classifier --data %s/s --out %s/t_%s.onnx %s %d%s",
                        mpi ? MPIRUN " -n " : "", mpi ? (k == 3 ? "2 " : "4 ") : "",
                        mpi ? mpi_bin : plain_bin, root, root, name[k], args, k == 1 ? 2 : 1,
                        k == 2 ? " --seed 7" : ""),
                     0);
    }
    double base, scale, d, seed;
    snprintf(a, sizeof a, "%s/t_c1.onnx", root);
    snprintf(b, sizeof b, "%s/t_c2.onnx", root);
    CHECK(weight_diff(a, b, &base, &scale));
    snprintf(b, sizeof b, "%s/t_cseed.onnx", root);
    CHECK(weight_diff(a, b, &seed, &scale));
    CHECK_MSG(seed > 1e-2, "another seed moved the weights by %g only: the test cannot tell", seed);
    for (int k = 3; k < 5; k++) {
        snprintf(b, sizeof b, "%s/t_%s.onnx", root, name[k]);
        CHECK(weight_diff(a, b, &d, &scale));
        printf("  # training on %d ranks: max |w - w_1| %.3g (1 vs 2 threads: %.3g; max |w| "
               "%.3g)\n",
               k == 3 ? 2 : 4, d, base, scale);
        CHECK_MSG(d <= 1e-4, "%d ranks: weights %g from one process's (1 vs 2 threads: %g)",
                  k == 3 ? 2 : 4, d, base);
    }
    /* A rank killed once rank 0 has written the first epoch's checkpoint, then --resume on 2
     * ranks: the model of an uninterrupted 2-rank run, byte for byte. */
    char ckpt[1200], cmd[4000];
    snprintf(a, sizeof a, "%s/t_m2.onnx", root);
    snprintf(b, sizeof b, "%s/t_killed.onnx", root);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", b);
    /* An epoch of the 40 training images takes tens of milliseconds, and a SIGTERM to mpirun
     * takes longer than that to reach the ranks: one rank is SIGKILLed instead, as soon as the
     * first checkpoint is on disk, and 40 epochs leave room for a slow scheduler. */
    const char *four = "--epochs 40 --batch 32 --threads 1";
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    MPIRUN " -n 2 %s train classifier --data %s/s --out %s %s --force", mpi_bin,
                    root, a, four),
                 0);
    snprintf(cmd, sizeof cmd, "exec " MPIRUN " -n 2 %s train classifier --data %s/s --out %s %s",
             mpi_bin, root, b, four);
    pid_t pid = start(cmd, true);
    bool started = grows_past(ckpt, 0);
    char pick[1600];
    snprintf(pick, sizeof pick, "pkill -KILL -n -f '^[^ ]*cfx-mpi train classifier .*%s '", b);
    CHECK_MSG(started && system(pick) == 0, "no rank to kill (started: %d)", started);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(started && !(WIFEXITED(status) && WEXITSTATUS(status) == 0) && access(b, F_OK) != 0,
              "training was not killed in the middle (status %d)", status);
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    MPIRUN " -n 2 %s train classifier --data %s/s --out %s %s --resume", mpi_bin,
                    root, b, four),
                 0);
    CHECK_MSG(strstr(out, "(resumed)") != NULL, "the training did not resume: %s", out);
    CHECK_MSG(cfx_test_same_file(a, b), "the resumed 2-rank training wrote another model");
}

/* concepts nearest --all over the repository's 499 VG images: the ranks share the queries by
 * estimated cost; --out at 2 and 4 ranks holds one process's bytes, and the summary line is one
 * process's up to its seconds. Ranks that loaded other data are refused. */
CFX_TEST(mpi, nearest_writes_the_bytes_of_one_process) {
    if (!setup()) return;
    static char one[4096], many[4096];
    char data[1200], a[800], b[800];
    char *abs = realpath("data/vg_random.json", NULL);
    if (!abs) {
        cfx_test_skip("data/vg_random.json is not here (run the tests from the repository)");
        return;
    }
    snprintf(data, sizeof data, "%s", abs);
    free(abs);
    const char *args = "--labels claude-3-haiku --all --threads 1 --json";
    snprintf(a, sizeof a, "%s/near1.jsonl", root);
    CHECK_INT_EQ(sh(one, sizeof one, false, "%s concepts nearest --data %s %s --out %s", plain_bin,
                    data, args, a),
                 0);
    CHECK_MSG(strstr(one, "\"queries\": 499") != NULL, "one process: %s", one);
    char *cut = strstr(one, "\"seconds\"");
    for (int k = 2; k <= 4; k += 2) {
        snprintf(b, sizeof b, "%s/near%d.jsonl", root, k);
        CHECK_INT_EQ(sh(many, sizeof many, false,
                        MPIRUN " -n %d %s concepts nearest --data %s %s --out %s", k, mpi_bin, data,
                        args, b),
                     0);
        CHECK_MSG(cfx_test_same_file(a, b), "%d ranks wrote another %s than one process", k, b);
        CHECK_MSG(cut && !strncmp(one, many, (size_t)(cut - one)),
                  "%d ranks printed another summary: %s", k, many);
    }
    /* The data under the same name differs on rank 1: one image's label. */
    char cmd[8000];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/n1 %s/n2 && cp %s %s/n1/vg.json && sed '0,/\"claude-3-haiku\": "
             "\"[a-z]*\"/s//\"claude-3-haiku\": \"zzz\"/' %s > %s/n2/vg.json",
             root, root, data, root, data, root);
    CHECK_INT_EQ(system(cmd), 0);
    snprintf(a, sizeof a, "%s/n1/vg.json", root);
    snprintf(b, sizeof b, "%s/n2/vg.json", root);
    CHECK_MSG(!cfx_test_same_file(a, b), "the edited copy is the same as the data");
    CHECK_INT_EQ(sh(many, sizeof many, true,
                    MPIRUN " -n 1 --wdir %s/n1 %s concepts nearest --data vg.json --labels "
                           "claude-3-haiku --all : -n 1 --wdir %s/n2 %s concepts nearest --data "
                           "vg.json --labels claude-3-haiku --all",
                    root, mpi_bin, root, mpi_bin),
                 1);
    CHECK_MSG(strstr(many, "rank 1 of 2 loaded other concept data than rank 0"), "other data: %s",
              many);
}

/* concepts edit over 40 scenes (local mode, an ONNX classifier): at 2 and 4 ranks the run
 * folder -- results.jsonl and every step image -- is one process's, byte for byte. Then a run
 * with a slow command classifier, its mpirun killed once rank 0 has written a line, resumed
 * under mpirun with 4 ranks: one process's folder again. */
CFX_TEST(mpi, edit_writes_the_files_of_one_process_and_resumes) {
    if (!setup()) return;
    static char out[16384];
    CHECK_INT_EQ(sh(out, sizeof out, true,
                    "%s data scenes --out %s/sc --count 40 --size 32 --force && %s train "
                    "classifier --data %s/sc --out %s/sc.onnx --epochs 1 --batch 16 --threads 1",
                    plain_bin, root, plain_bin, root, root),
                 0);
    char args[2000];
    snprintf(args, sizeof args,
             "concepts edit --data %s/sc/concepts.json --images %s/sc --labels rule --all "
             "--threads 1 --max-steps 6",
             root, root);
    CHECK_INT_EQ(sh(out, sizeof out, true, "%s %s --classifier %s/sc.onnx --out %s/e1", plain_bin,
                    args, root, root),
                 0);
    CHECK_MSG(strstr(out, "40 images edited") != NULL, "one process: %s", out);
    for (int k = 2; k <= 4; k += 2) {
        CHECK_INT_EQ(sh(out, sizeof out, true,
                        MPIRUN " -n %d %s %s --classifier %s/sc.onnx --out %s/e%d", k, mpi_bin,
                        args, root, root, k),
                     0);
        CHECK_MSG(strstr(out, "40 images edited") != NULL, "%d ranks: %s", k, out);
        CHECK_INT_EQ(sh(out, sizeof out, true, SAME_RUN_DIRS("%s/e1", "%s/e%d"), root, root, k,
                        root, root, k),
                     0);
        CHECK_MSG(!out[0], "%d ranks wrote other files: %.500s", k, out);
    }
    /* A classifier that answers "casual" after 60 ms, every time: each image runs all its
     * steps, long enough for the kill to land mid-run. */
    char slow[2400];
    snprintf(slow, sizeof slow,
             "%s --limit 16 --classifier-cmd 'sleep 0.06; echo casual # {image}'", args);
    CHECK_INT_EQ(sh(out, sizeof out, true, "%s %s --out %s/s1", plain_bin, slow, root), 0);
    char b[800], pb[1200], cmd[8000];
    snprintf(b, sizeof b, "%s/sk", root);
    snprintf(pb, sizeof pb, "%s/results.jsonl", b);
    snprintf(cmd, sizeof cmd, "exec mpirun --oversubscribe --allow-run-as-root -n 2 %s %s --out %s",
             mpi_bin, slow, b);
    pid_t pid = start(cmd, true);
    bool started = grows_past(pb, 0);
    kill(pid, SIGTERM);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(started && !(WIFEXITED(status) && WEXITSTATUS(status) == 0),
              "mpirun was not killed in the middle (status %d)", status);
    char pa[1200];
    snprintf(pa, sizeof pa, "%s/s1/results.jsonl", root);
    struct stat sa, sb;
    CHECK(stat(pa, &sa) == 0 && stat(pb, &sb) == 0);
    CHECK_MSG(sb.st_size > 0 && sb.st_size < sa.st_size, "killed after %lld of %lld bytes",
              (long long)sb.st_size, (long long)sa.st_size);
    CHECK_INT_EQ(
        sh(out, sizeof out, true, MPIRUN " -n 4 %s %s --out %s --resume", mpi_bin, slow, b), 0);
    CHECK_MSG(strstr(out, "kept from before") && !strstr(out, "(0 kept from before)"),
              "the run did not resume: %s", out);
    /* The command classifier's image files of the killed images stay behind (its temporaries,
     * cfx-classify-*.png, are not removed on a kill): not part of the run. */
    CHECK_INT_EQ(sh(out, sizeof out, true, SAME_RUN_DIRS("%s/s1", "%s") " -x 'cfx-classify-*'",
                    root, b, root, b),
                 0);
    CHECK_MSG(!out[0], "the resumed run differs: %.500s", out);
}

/* cfx explain of one run folder, copied: at 2 and 4 ranks (whole batches of 2 over the images)
 * explanations.jsonl and every map are one process's, and so is the accuracy table. */
CFX_TEST(mpi, explain_writes_the_files_of_one_process) {
    if (!setup()) return;
    static char one[16384], many[16384];
    CHECK_INT_EQ(sh(one, sizeof one, true,
                    "%s counterfactual --bundle %s/b --examples %s/ex --out %s/x1 --method "
                    "igd,reco,best --max-iter 10 --batch 3 --threads 1 && cp -r %s/x1 %s/x2 && "
                    "cp -r %s/x1 %s/x4",
                    plain_bin, root, root, root, root, root, root, root),
                 0);
    CHECK_INT_EQ(sh(one, sizeof one, false,
                    "%s explain %s/x1 --data %s/s --sources 60 --accuracy "
                    "--batch 2 --threads 1",
                    plain_bin, root, root),
                 0);
    CHECK_MSG(strstr(one, "| Method |") != NULL, "one process: %s", one);
    for (int k = 2; k <= 4; k += 2) {
        CHECK_INT_EQ(sh(many, sizeof many, false,
                        MPIRUN " -n %d %s explain %s/x%d --data %s/s --sources 60 --accuracy "
                               "--batch 2 --threads 1",
                        k, mpi_bin, root, k, root),
                     0);
        char *a = strstr(one, "\nwrote"), *b = strstr(many, "\nwrote");
        CHECK_MSG(a && b && a - one == b - many && !strncmp(one, many, (size_t)(a - one)),
                  "%d ranks printed another table: %s", k, many);
        CHECK_INT_EQ(sh(many, sizeof many, true, "diff -r %s/x1 %s/x%d", root, root, k), 0);
        CHECK_MSG(!many[0], "%d ranks wrote other files: %.500s", k, many);
    }
}
