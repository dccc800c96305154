/* test.h - the in-house test runner: checks record and continue; the last line of output is
 * exactly "N passed, N failed[, N skipped]". Tests register themselves with CFX_TEST. */
#ifndef CFX_TEST_H
#define CFX_TEST_H

#include "cfx.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

typedef void (*cfx_test_fn)(void);
void cfx_test_register(const char *suite, const char *name, cfx_test_fn fn);

/* Defines and registers a test: CFX_TEST(hungarian, square_matches_scipy) { ... } */
#define CFX_TEST(suite, name)                                                                      \
    static void test_##suite##_##name(void);                                                       \
    __attribute__((constructor)) static void reg_##suite##_##name(void) {                          \
        cfx_test_register(#suite, #name, test_##suite##_##name);                                   \
    }                                                                                              \
    static void test_##suite##_##name(void)

/* Internal: a failed check prints file:line and the message, and marks the test failed. */
void cfx_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Marks the current test skipped, with the reason printed; the test should return. */
void cfx_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when the environment asks for the fast subset (CFX_TEST_FAST=1, used under asan/valgrind).
 */
bool cfx_test_fast(void);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) cfx_test_fail(__FILE__, __LINE__, "expected %s", #cond);                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) cfx_test_fail(__FILE__, __LINE__, __VA_ARGS__);                               \
    } while (0)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        cfx_status s_ = (expr);                                                                    \
        if (s_ != CFX_OK)                                                                          \
            cfx_test_fail(__FILE__, __LINE__, "%s returned %s: %s", #expr, cfx_status_str(s_),     \
                          cfx_last_error());                                                       \
    } while (0)

/* Checks that expr fails with the given status and a non-empty message. */
#define CHECK_ERR(expr, status)                                                                    \
    do {                                                                                           \
        cfx_set_error(CFX_OK, "%s", "");                                                           \
        cfx_status s_ = (expr);                                                                    \
        if (s_ != (status))                                                                        \
            cfx_test_fail(__FILE__, __LINE__, "%s returned %s, expected %s (%s)", #expr,           \
                          cfx_status_str(s_), cfx_status_str(status), cfx_last_error());           \
        else if (!cfx_last_error()[0])                                                             \
            cfx_test_fail(__FILE__, __LINE__, "%s failed without a message", #expr);               \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) cfx_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            cfx_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                \
                          a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                 \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            cfx_test_fail(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_,    \
                          (double)(tol));                                                          \
    } while (0)

/* Arrays agree when |a-b| <= atol + rtol*|b| everywhere; a failure names the worst element. */
bool cfx_test_arrays_near(const char *file, int line, const char *what, const float *a,
                          const float *b, size_t n, double rtol, double atol);
#define CHECK_ARRAY_NEAR(a, b, n, rtol, atol)                                                      \
    cfx_test_arrays_near(__FILE__, __LINE__, #a " ~ " #b, (a), (b), (n), (rtol), (atol))

/* Fresh temporary directory for this test (removed at exit); returns its path. */
const char *cfx_test_tmpdir(void);
/* Runs /usr/bin/python3 tests/py/<script> with args; returns its exit status (127 when
 * Python or the module is missing, which the caller reports as a failure). */
int cfx_test_python(const char *script, const char *args);

/* Runs the shell command line fmt (printf-formatted; redirections are the caller's) and returns
 * its exit status (-1 when it did not exit), what it printed on stdout in out (n bytes, cut to
 * fit). */
int cfx_test_sh(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The cfx program built beside this test binary (CFX_BIN overrides), or NULL when it is not
 * there; a test that needs it skips with that reason. */
const char *cfx_test_cli(void);
/* The same, and when it is not there the current test is skipped with that reason (NULL
 * returned; the test should return). */
const char *cfx_test_cli_or_skip(void);
/* Runs `cfx <args>` (args printf-formatted) with that program; returns its exit status (-1 when
 * it could not run) and what it printed, stdout and stderr, in out (n bytes, cut to fit). */
int cfx_test_run_cli(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* What the dynamic loader reports (LD_DEBUG=libs, on stderr) while `cfx --version` runs, in out
 * (n bytes, cut to fit); returns its exit status (-1 when it could not run). */
int cfx_test_cli_startup_libs(char *out, size_t n);
/* The same with what it printed on stdout only (stderr is thrown away). */
int cfx_test_run_cli_stdout(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A small competency bundle made with the cfx program in dir, as the CLI suites share it: s/
 * (signs at 16 pixels, seed 1), clf.onnx, ae.onnx with encoder.onnx and decoder.onnx (latent 16),
 * b/ (competency fit at threshold) and ex/ (per_cause examples of each cause, seed 2). Returns
 * the first failing command's exit status (0 when all ran), its output in out. */
typedef struct cfx_test_bundle_spec {
    int train, calib, test, ood; /* images per class of each split */
    int clf_epochs, ae_epochs, per_cause;
    double threshold;
} cfx_test_bundle_spec;
int cfx_test_make_bundle(const char *dir, const cfx_test_bundle_spec *spec, char *out, size_t n);
/* The smallest bundle the CLI suites use (cf_cli, mpi): 40 training images a class, 2 epochs. */
extern const cfx_test_bundle_spec cfx_test_small_bundle;
/* A suite's shared fixture, made on its first call: root (size bytes, empty at first) gets a
 * fresh temporary folder holding cfx_test_make_bundle's bundle and, when methods is not NULL,
 * the run `cfx counterfactual --bundle ROOT/b --examples ROOT/ex --method METHODS --out
 * ROOT/run --threads 1`. Later calls return true at once. False when the test was skipped
 * (no cfx program) or a command failed (a failed check with its output; root is emptied so
 * that the next test tries again). */
bool cfx_test_bundle_once(char *root, size_t size, const cfx_test_bundle_spec *spec,
                          const char *methods);

/* DIR/NAME.npy, an oracle's output; NULL (and a failed check naming the file) when it cannot
 * be read. */
cfx_tensor *cfx_test_npy(const char *dir, const char *name);
/* True when files a and b both read and hold the same bytes. */
bool cfx_test_same_file(const char *a, const char *b);
/* Folders a and b hold the same bytes under each of the nfiles names; a failure names the file
 * and both folders. */
bool cfx_test_same_files(const char *file, int line, const char *a, const char *b,
                         const char *const *files, int nfiles);
#define CHECK_SAME_FILES(a, b, files, nfiles)                                                      \
    cfx_test_same_files(__FILE__, __LINE__, (a), (b), (files), (nfiles))
/* The text of a run's results.jsonl without the wall-time values ("seconds": x), which no two
 * runs share; NULL when it cannot be read (cfx_free it). */
char *cfx_test_without_seconds(const char *path);

/* A fake HTTP server: /usr/bin/python3 tests/py/<script> DIR, which writes the port it listens
 * on to DIR/port (tests/py/fake_http.py) and logs each request as a line of DIR/log.jsonl. */
typedef struct cfx_test_server {
    pid_t pid;
    int port;
    char dir[700], url[100]; /* url: http://127.0.0.1:PORT */
} cfx_test_server;
/* Starts script with the folder dir and waits up to 15 s for its port; false (and a failed
 * check naming the script) when it did not start. */
bool cfx_test_server_start(cfx_test_server *s, const char *script, const char *dir);
/* Stops it (SIGTERM, then waits); a server stopped already is left alone. */
void cfx_test_server_stop(cfx_test_server *s);
/* The requests in its log, one parsed object each (empty when none; cJSON_Delete the array). */
struct cJSON *cfx_test_server_log(const cfx_test_server *s);

/* WordNet from Debian's wordnet-base, loaded once (a fifth of a second) and shared by the
 * suites that need it, freed at exit; NULL (and a failed check) when it cannot be loaded. */
cfx_wordnet *cfx_test_wordnet(void);

/* Installs a counting allocator that fails the fail_at-th allocation (0: never). */
void cfx_test_alloc_begin(long fail_at);
/* Restores malloc/free and returns the number of blocks still live (leaks). */
long cfx_test_alloc_end(void);

/* Installs an allocator that records the largest block asked of it. */
void cfx_test_largest_begin(void);
/* Restores malloc/free and returns the largest block, in bytes, asked for since the begin. */
size_t cfx_test_largest_end(void);

#endif
