/* runner.c - the test runner. Usage: cfx_tests [suite[/name] ...] [--list]
 * With no arguments every test runs. The last line is "N passed, N failed[, N skipped]". */
#include "test.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *suite, *name;
    cfx_test_fn fn;
} test_case;

static test_case *cases;
static int ncases, capcases;
static int cur_failed, cur_skipped;
static char skip_reason[512];
static char tmproot[256];
static char tmpdir[512];
static int tmpcount;
static char cli_path[1024];

void cfx_test_register(const char *suite, const char *name, cfx_test_fn fn) {
    if (ncases == capcases) {
        capcases = capcases ? 2 * capcases : 64;
        cases = realloc(cases, (size_t)capcases * sizeof *cases);
        if (!cases) abort();
    }
    cases[ncases++] = (test_case){suite, name, fn};
}

void cfx_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "%s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    cur_failed++;
}

void cfx_test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    va_end(ap);
    cur_skipped = 1;
}

bool cfx_test_fast(void) {
    const char *f = getenv("CFX_TEST_FAST");
    return f && f[0] == '1';
}

bool cfx_test_arrays_near(const char *file, int line, const char *what, const float *a,
                          const float *b, size_t n, double rtol, double atol) {
    size_t worst = 0;
    double worst_excess = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim)) { /* NaN counts as a failure */
            double excess = isnan(d) ? INFINITY : d - lim;
            if (!bad || excess > worst_excess) worst = i, worst_excess = excess;
            bad++;
        }
    }
    if (bad)
        cfx_test_fail(file, line, "%s: %d of %zu elements differ; worst [%zu]: %.9g vs %.9g", what,
                      bad, n, worst, (double)a[worst], (double)b[worst]);
    return bad == 0;
}

const char *cfx_test_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/t%d", tmproot, ++tmpcount);
    mkdir(tmpdir, 0700);
    return tmpdir;
}

int cfx_test_python(const char *script, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/py/%s %s", script, args ? args : "");
    fflush(stdout);
    int rc = system(cmd);
    if (rc == -1) return 127;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void cleanup_tmp(void) {
    char cmd[300];
    if (!tmproot[0] || getenv("CFX_TEST_KEEP")) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmproot);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmproot);
}

static bool selected(const test_case *t, int argc, char **argv) {
    int any = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        any = 1;
        char full[256];
        snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
        if (strcmp(argv[i], t->suite) == 0 || strcmp(argv[i], full) == 0) return true;
    }
    return !any;
}

static int cmp_case(const void *a, const void *b) {
    const test_case *x = a, *y = b;
    int c = strcmp(x->suite, y->suite);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
    int list = 0;
    for (int i = 1; i < argc; i++) list |= strcmp(argv[i], "--list") == 0;
    /* Tests run from the repository root so that tests/py and tests/data resolve. */
    if (access("tests/py", F_OK) != 0) {
        fprintf(stderr, "cfx_tests: run from the repository root (tests/py not found)\n");
        return 2;
    }
    qsort(cases, (size_t)ncases, sizeof *cases, cmp_case);
    snprintf(tmproot, sizeof tmproot, "/tmp/cfx_tests.XXXXXX");
    if (!mkdtemp(tmproot)) {
        perror("mkdtemp");
        return 2;
    }
    atexit(cleanup_tmp);
    setenv("CFX_TEST_TMP", tmproot, 1);
    /* Caches (WordNet's tables) go to the tests' folder, not the user's home. */
    char cache[300];
    snprintf(cache, sizeof cache, "%s/cache", tmproot);
    setenv("CFX_CACHE_DIR", cache, 1);
    /* The sanitizer build tests its own cfx: the program beside this binary. */
    const char *bin = getenv("CFX_BIN");
    if (bin)
        snprintf(cli_path, sizeof cli_path, "%s", bin);
    else {
        const char *slash = strrchr(argv[0], '/');
        int len = slash ? (int)(slash - argv[0]) : 1;
        snprintf(cli_path, sizeof cli_path, "%.*s/cfx", len, slash ? argv[0] : ".");
    }
    cfx_set_threads(1);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < ncases; i++) {
        test_case *t = &cases[i];
        if (!selected(t, argc, argv)) continue;
        if (list) {
            printf("%s/%s\n", t->suite, t->name);
            continue;
        }
        cur_failed = cur_skipped = 0;
        double t0 = cfx_now();
        t->fn();
        double dt = cfx_now() - t0;
        if (cur_failed) {
            printf("FAIL %s/%s (%.2fs)\n", t->suite, t->name, dt);
            failed++;
        } else if (cur_skipped) {
            printf("SKIP %s/%s: %s\n", t->suite, t->name, skip_reason);
            skipped++;
        } else {
            printf("ok   %s/%s (%.2fs)\n", t->suite, t->name, dt);
            passed++;
        }
        fflush(stdout);
    }
    if (list) return 0;
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

const char *cfx_test_cli(void) {
    return access(cli_path, X_OK) == 0 ? cli_path : NULL;
}

const char *cfx_test_cli_or_skip(void) {
    const char *cli = cfx_test_cli();
    if (!cli) cfx_test_skip("the cfx program is not built beside cfx_tests (make all builds both)");
    return cli;
}

/* Runs the shell command line cmd: out gets the first n - 1 bytes it printed on stdout (the rest
 * is read and dropped, so that it never blocks on a full pipe); returns its exit status, -1
 * when it did not exit. */
static int read_command(const char *cmd, char *out, size_t n) {
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        out[0] = '\0';
        return -1;
    }
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) continue;
    int rc = pclose(p);
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int cfx_test_sh(char *out, size_t n, const char *fmt, ...) {
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return read_command(cmd, out, n);
}

/* Runs cfx with args, its stderr sent where redirect says; out gets what the pipe carried. */
static int run_cli(char *out, size_t n, const char *redirect, const char *fmt, va_list ap) {
    char args[2048], cmd[4096];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "%s %s %s", cli_path, args, redirect);
    return read_command(cmd, out, n);
}

int cfx_test_cli_startup_libs(char *out, size_t n) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "LD_DEBUG=libs %s --version 2>&1", cli_path);
    return read_command(cmd, out, n);
}

int cfx_test_run_cli(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = run_cli(out, n, "2>&1", fmt, ap);
    va_end(ap);
    return rc;
}

int cfx_test_run_cli_stdout(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = run_cli(out, n, "2>/dev/null", fmt, ap);
    va_end(ap);
    return rc;
}

int cfx_test_make_bundle(const char *d, const cfx_test_bundle_spec *s, char *out, size_t n) {
    int rc = cfx_test_run_cli(out, n,
                              "data signs --out %s/s --size 16 --train %d --calib %d --test %d "
                              "--ood %d --seed 1 --threads 1",
                              d, s->train, s->calib, s->test, s->ood);
    if (!rc)
        rc = cfx_test_run_cli(out, n,
                              "train classifier --data %s/s --out %s/clf.onnx --epochs %d "
                              "--batch 16 --threads 1",
                              d, d, s->clf_epochs);
    if (!rc)
        rc = cfx_test_run_cli(out, n,
                              "train autoencoder --data %s/s --out %s/ae.onnx --epochs %d "
                              "--batch 16 --latent 16 --threads 1",
                              d, d, s->ae_epochs);
    if (!rc)
        rc = cfx_test_run_cli(out, n,
                              "competency fit --classifier %s/clf.onnx --encoder %s/encoder.onnx "
                              "--decoder %s/decoder.onnx --data %s/s --out %s/b --threshold %g "
                              "--threads 1",
                              d, d, d, d, d, s->threshold);
    if (!rc)
        rc = cfx_test_run_cli(out, n,
                              "competency examples --bundle %s/b --data %s/s --out %s/ex "
                              "--per-cause %d --seed 2 --threads 1",
                              d, d, d, s->per_cause);
    return rc;
}

const cfx_test_bundle_spec cfx_test_small_bundle = {.train = 40,
                                                    .calib = 8,
                                                    .test = 12,
                                                    .ood = 12,
                                                    .clf_epochs = 2,
                                                    .ae_epochs = 1,
                                                    .threshold = 0.16,
                                                    .per_cause = 3};

bool cfx_test_bundle_once(char *root, size_t size, const cfx_test_bundle_spec *spec,
                          const char *methods) {
    if (!cfx_test_cli_or_skip()) return false;
    if (root[0]) return true;
    char out[16384];
    snprintf(root, size, "%s", cfx_test_tmpdir());
    const char *d = root;
    int rc = cfx_test_make_bundle(d, spec, out, sizeof out);
    if (!rc && methods)
        rc = cfx_test_run_cli(out, sizeof out,
                              "counterfactual --bundle %s/b --examples %s/ex --method %s "
                              "--out %s/run --threads 1",
                              d, d, methods, d);
    CHECK_MSG(rc == 0, "setting up the bundle%s failed: %s", methods ? " and the run" : "", out);
    /* Emptied, so that the next test tries again rather than use half a fixture. */
    if (rc) root[0] = '\0';
    return rc == 0;
}

cfx_tensor *cfx_test_npy(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    cfx_tensor *t = cfx_npy_read(path);
    if (!t) cfx_test_fail(__FILE__, __LINE__, "read %s: %s", path, cfx_last_error());
    return t;
}

bool cfx_test_same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    bool same = cfx_file_read_all(a, &x, &nx) == CFX_OK &&
                cfx_file_read_all(b, &y, &ny) == CFX_OK && nx == ny && memcmp(x, y, nx) == 0;
    cfx_free(x), cfx_free(y);
    return same;
}

bool cfx_test_same_files(const char *file, int line, const char *a, const char *b,
                         const char *const *files, int nfiles) {
    char pa[1200], pb[1200];
    bool all = true;
    for (int k = 0; k < nfiles; k++) {
        snprintf(pa, sizeof pa, "%s/%s", a, files[k]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[k]);
        if (cfx_test_same_file(pa, pb)) continue;
        cfx_test_fail(file, line, "%s differs between %s and %s", files[k], a, b);
        all = false;
    }
    return all;
}

char *cfx_test_without_seconds(const char *path) {
    char *text = NULL;
    size_t size;
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return NULL;
    /* Copies text onto itself, dropping each "seconds": value up to the next , or }. */
    char *w = text;
    for (const char *r = text; *r;) {
        if (!strncmp(r, "\"seconds\": ", 11)) {
            r += 11;
            while (*r && *r != ',' && *r != '}') r++;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    return text;
}

bool cfx_test_server_start(cfx_test_server *s, const char *script, const char *dir) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    char prog[300], path[800];
    snprintf(prog, sizeof prog, "tests/py/%s", script);
    fflush(stdout), fflush(stderr);
    s->pid = fork();
    if (s->pid == 0) {
        execl("/usr/bin/python3", "python3", prog, s->dir, (char *)NULL);
        _exit(127);
    }
    snprintf(path, sizeof path, "%s/port", s->dir);
    for (int i = 0; i < 300 && s->pid > 0; i++) { /* up to 15 s for Python and Pillow */
        FILE *f = fopen(path, "r");
        if (f) {
            bool ok = fscanf(f, "%d", &s->port) == 1;
            fclose(f);
            if (ok) {
                snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
                return true;
            }
        }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    cfx_test_fail(__FILE__, __LINE__, "the test server did not start (%s)", prog);
    return false;
}

void cfx_test_server_stop(cfx_test_server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

cJSON *cfx_test_server_log(const cfx_test_server *s) {
    char path[800], *text = NULL;
    size_t size;
    cJSON *all = cJSON_CreateArray();
    snprintf(path, sizeof path, "%s/log.jsonl", s->dir);
    if (access(path, F_OK) != 0 || cfx_file_read_all(path, &text, &size) != CFX_OK) return all;
    for (char *p = text, *nl; p < text + size; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) nl = text + size;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        if (j) cJSON_AddItemToArray(all, j);
    }
    cfx_free(text);
    return all;
}

static cfx_wordnet *shared_wn;

static void free_wordnet(void) {
    cfx_wordnet_free(shared_wn);
}

cfx_wordnet *cfx_test_wordnet(void) {
    if (!shared_wn) {
        shared_wn = cfx_wordnet_load(NULL);
        if (shared_wn)
            atexit(free_wordnet);
        else
            cfx_test_fail(__FILE__, __LINE__, "load WordNet: %s", cfx_last_error());
    }
    return shared_wn;
}

/* An allocator that records the largest block asked of it, for the tests that a hostile
 * header is refused before its size is allocated. */
static size_t largest_block;

static void *largest_realloc(void *ptr, size_t size, void *ctx) {
    (void)ctx;
    if (size > largest_block) largest_block = size;
    return realloc(ptr, size);
}

static void largest_free(void *ptr, void *ctx) {
    (void)ctx;
    free(ptr);
}

void cfx_test_largest_begin(void) {
    largest_block = 0;
    cfx_set_allocator(&(cfx_allocator){largest_realloc, largest_free, NULL});
}

size_t cfx_test_largest_end(void) {
    cfx_set_allocator(NULL);
    return largest_block;
}

/* A counting allocator: each block carries a 16-byte header so frees can be counted. */
static long alloc_live, alloc_count, alloc_fail_at;

static void *count_realloc(void *ptr, size_t size, void *ctx) {
    (void)ctx;
    if (alloc_fail_at > 0 && ++alloc_count == alloc_fail_at) return NULL;
    unsigned char *raw = ptr ? (unsigned char *)ptr - 16 : NULL;
    unsigned char *p = realloc(raw, size + 16);
    if (!p) return NULL;
    if (!ptr) alloc_live++;
    return p + 16;
}

static void count_free(void *ptr, void *ctx) {
    (void)ctx;
    alloc_live--;
    free((unsigned char *)ptr - 16);
}

void cfx_test_alloc_begin(long fail_at) {
    alloc_live = alloc_count = 0;
    alloc_fail_at = fail_at;
    cfx_set_allocator(&(cfx_allocator){count_realloc, count_free, NULL});
}

long cfx_test_alloc_end(void) {
    cfx_set_allocator(NULL);
    return alloc_live;
}
