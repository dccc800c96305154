/*
 * cfx.h - counterfactual explanations for image classifiers.
 *
 * The one public header of libcfx. A short example, compiled and run by the tests
 * (tests/test_example.c), builds a tiny model, runs it, and differentiates a scalar of its
 * output with respect to the input image, which is what every counterfactual method needs:
 *
 *     cfx_graph *g = cfx_graph_new();
 *     int x = cfx_graph_input(g, "image", 4, (int64_t[]){1, 1, 8, 8});
 *     int w = cfx_graph_param(g, "w", 4, (int64_t[]){4, 1, 3, 3});
 *     int y = cfx_op_conv2d(g, x, w, -1, &(cfx_conv2d_attr){.stride = {1, 1}, .pad = {1, 1, 1, 1}});
 *     int s = cfx_op_reduce(g, cfx_op_relu(g, y), CFX_REDUCE_SUM, NULL, 0, 0);
 *     cfx_graph_requires_grad(g, x, 1);
 *     if (cfx_graph_compile(g) != CFX_OK) fprintf(stderr, "%s\n", cfx_last_error());
 *     cfx_rng rng;
 *     cfx_rng_init(&rng, 42);
 *     cfx_tensor_fill_normal(cfx_graph_tensor(g, w), &rng, 0.0f, 0.5f);
 *     cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &rng, 0.0f, 1.0f);
 *     cfx_graph_forward(g);
 *     cfx_graph_backward(g, s, NULL);          // ds/dx is now in cfx_graph_grad(g, x)
 *     cfx_graph_free(g);
 *
 * Conventions: a fallible call returns cfx_status (0 is success) and leaves a message for
 * cfx_last_error(); constructors return NULL on failure. Images are float32 NCHW in [0, 1].
 * Nothing here prints to stdout, exits, or aborts on bad input.
 */
#ifndef CFX_H
#define CFX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CFX_VERSION "0.1.0"

/* ===================================================================== status === */

/* One table generates the enum and the messages of cfx_status_str. */
#define CFX_STATUS_MAP(X)                                                                          \
    X(OK, 0, "success")                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "input/output error")                                                               \
    X(EFORMAT, -4, "malformed input")                                                              \
    X(ESHAPE, -5, "shape mismatch")                                                                \
    X(EUNSUPPORTED, -6, "unsupported")                                                             \
    X(ENOTFOUND, -7, "not found")                                                                  \
    X(ENUMERIC, -8, "numerical error")                                                             \
    X(ENET, -9, "network error")                                                                   \
    X(ETIMEOUT, -10, "timed out")                                                                  \
    X(ECANCELED, -11, "canceled")                                                                  \
    X(EINTERNAL, -12, "internal error")

typedef enum {
#define CFX__STATUS_ENUM(name, code, msg) CFX_##name = code,
    CFX_STATUS_MAP(CFX__STATUS_ENUM)
#undef CFX__STATUS_ENUM
} cfx_status;

/* A static string naming the status ("shape mismatch"). */
const char *cfx_status_str(cfx_status s);
/* The calling thread's message for the last failure, e.g.
 * "load model: cannot open 'm.onnx': No such file or directory". Never NULL. */
const char *cfx_last_error(void);
/* Sets the calling thread's message and returns code. For callers that wrap cfx. */
cfx_status cfx_set_error(cfx_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "<context>: " (for example a file name); returns code. */
cfx_status cfx_error_context(cfx_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ================================================================= allocation === */

/* Every allocation in libcfx goes through this hook. realloc_fn(NULL, n) must allocate. */
typedef struct cfx_allocator {
    void *(*realloc_fn)(void *ptr, size_t size, void *ctx);
    void (*free_fn)(void *ptr, void *ctx);
    void *ctx;
} cfx_allocator;

/* Installs a (process-wide) allocator; NULL restores malloc/free. Set it before any other
 * call, and free every object with the allocator that made it. */
void cfx_set_allocator(const cfx_allocator *a);
void *cfx_malloc(size_t size);
void *cfx_calloc(size_t count, size_t size); /* zeroed; NULL (with a message) on overflow */
void *cfx_realloc(void *ptr, size_t size);
void cfx_free(void *ptr);
char *cfx_strdup(const char *s);
/* 64-byte aligned blocks for tensor data; free with cfx_aligned_free. */
void *cfx_aligned_alloc(size_t size);
void cfx_aligned_free(void *ptr);

/* ======================================================================== log === */

typedef enum { CFX_LOG_ERROR, CFX_LOG_WARN, CFX_LOG_INFO, CFX_LOG_DEBUG } cfx_log_level;
typedef void (*cfx_log_fn)(cfx_log_level level, const char *msg, void *ctx);

/* Messages at or below level go to fn (default: stderr, "cfx: warning: ..."). */
void cfx_log_set(cfx_log_level level, cfx_log_fn fn, void *ctx);
void cfx_log(cfx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ======================================================================== rng === */

/* xoshiro256** seeded through splitmix64. Same seed, same stream, on every machine. */
typedef struct cfx_rng {
    uint64_t s[4];
} cfx_rng;

void cfx_rng_init(cfx_rng *r, uint64_t seed);
uint64_t cfx_rng_u64(cfx_rng *r);
double cfx_rng_uniform(cfx_rng *r);                /* [0, 1), 53 bits */
uint64_t cfx_rng_below(cfx_rng *r, uint64_t n);    /* uniform in [0, n), unbiased; n > 0 */
double cfx_rng_normal(cfx_rng *r);                 /* standard normal (Box-Muller) */
void cfx_rng_shuffle(cfx_rng *r, int64_t *a, int64_t n); /* Fisher-Yates */
/* An independent stream for worker i, so results do not depend on scheduling. */
void cfx_rng_split(const cfx_rng *r, uint64_t i, cfx_rng *out);

/* =================================================================== progress === */

/* Long-running calls report progress through this callback (all fields optional).
 * done counts units out of total (total 0 = unknown); note is a short status such as
 * "loss 0.312 acc 0.91". cfx_progress_stderr is a ready-made bar with rate and ETA. */
typedef void (*cfx_progress_fn)(void *ctx, const char *label, int64_t done, int64_t total,
                                const char *note);
typedef struct cfx_progress {
    cfx_progress_fn fn;
    void *ctx;
} cfx_progress;

void cfx_progress_report(const cfx_progress *p, const char *label, int64_t done, int64_t total,
                         const char *note);
/* Draws a bar on stderr (one updating line on a terminal, a line each 10% otherwise).
 * ctx must be NULL. */
void cfx_progress_stderr(void *ctx, const char *label, int64_t done, int64_t total,
                         const char *note);

/* ==================================================================== threads === */

/* Sets the threads used by every kernel (OpenMP, OpenBLAS, oneDNN). n <= 0 means all cores. */
void cfx_set_threads(int n);
int cfx_get_threads(void);
/* Wall-clock seconds from a monotonic clock. */
double cfx_now(void);

/* ===================================================================== tensor === */
/* @@tensor@@ */

/* ====================================================================== graph === */
/* @@graph@@ */

/* ======================================================================== ops === */
/* @@ops@@ */

/* ====================================================================== optim === */
/* @@optim@@ */

/* ======================================================================= onnx === */
/* @@onnx@@ */

/* ======================================================================== npy === */
/* @@npy@@ */

/* ==================================================================== wordnet === */
/* @@wordnet@@ */

/* ================================================================= hungarian === */
/* @@hungarian@@ */

/* =================================================================== concepts === */
/* @@concepts@@ */

#ifdef __cplusplus
}
#endif
#endif /* CFX_H */
