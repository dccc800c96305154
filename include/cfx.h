/*
 * cfx.h - counterfactual explanations for image classifiers.
 *
 * The one public header of libcfx. A short example builds a tiny model, runs it, and
 * differentiates a scalar of its output with respect to the input image, which is what every
 * counterfactual method needs. The indented lines of this comment are that example: the build
 * copies them out of this header and tests/test_example.c compiles and runs them as they are.
 *
 *     cfx_graph *g = cfx_graph_new();
 *     int x = cfx_graph_input(g, "image", 4, (int64_t[]){1, 1, 8, 8});
 *     int w = cfx_graph_param(g, "w", 4, (int64_t[]){4, 1, 3, 3});
 *     cfx_conv2d_attr conv = {.stride = {1, 1}, .pad = {1, 1, 1, 1}};
 *     int y = cfx_op_conv2d(g, x, w, -1, &conv);
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

/*
 * Contents, bottom-up: ten layers (a ### banner each), as in src/, where a layer uses only
 * those above it. Each section below opens with a banner "=== <name> ===".
 *
 *   base      status      status codes, cfx_last_error, error context
 *             allocation  the one allocation hook; aligned blocks
 *             log         levels and the log callback
 *             rng         seeded xoshiro256** streams, one per worker
 *             progress    progress callbacks and a ready-made stderr bar
 *             threads     one thread count for every kernel; the clock
 *             file        atomic output files and folders, outputs committed together,
 *                         clean-up on signals, whole-file reads
 *   engine    tensor      dense float32 tensors
 *             blas        the GEMM every product goes through
 *             graph       static graphs: build, compile, forward, reverse-mode backward
 *             ops         the op builders cfx_op_*, by family
 *             onnx        ONNX import and export, autoencoder split, file summaries
 *   learn     optim       SGD and Adam with torch.optim's rules
 *             layers      layers with PyTorch's init; the reference classifier and autoencoder
 *             train       training loops, the step-by-step trainer, evaluation
 *   data      npy         NumPy .npy files
 *             idx         IDX files (MNIST, Fashion-MNIST)
 *             image       PNG/JPEG in, PNG out, image grids
 *             dataset     datasets in memory, image folders, dataset folders and their writers
 *             signs       generated speed-limit sign photographs
 *             scenes      Fashion-MNIST items composed into scenes with a class rule
 *             corrupt     the six causes of low competency and their image operations
 *   competency
 *             parce       calibration, scores, rho and its gradients to images and latents
 *             calibration ECE, reliability bins, AUROC
 *             examples    low-competency examples per cause
 *             bundle      the competency bundle folder
 *   counterfactual
 *             method      IGD, FGD, Reco, LGD and LNN behind one interface; records, stopping
 *             gradient    IGD, FGD and LGD: one graph per batch, Adam, per-image stopping
 *             reco, lnn   decode(encode(X)); the nearest competent calibration latent
 *             distance    image distances D(X, X'): LPIPS (a user's model or the built-in
 *                         formula on the classifier), L2, L1, 1 - SSIM
 *             run folder  reading what `cfx counterfactual` wrote; tallies per method and cause
 *   metrics   features    feature vectors from the classifier or a user network, labelled
 *             fid         Frechet distance: means, covariances, LAPACK's symmetric eigensolver
 *             kid         kernel distance: polynomial-kernel MMD^2 over seeded subsets
 *             cmmd        Gaussian-kernel MMD^2 as the CMMD paper's code
 *             cosine      cosine similarity of paired rows over a selection
 *             evaluate    a run's metrics per method and cause
 *   explain   stats       what the explainer measures on an image
 *             map         competency maps: where on an image competency is lost
 *             measured    the measured explainer: the cause, its confidence, one sentence
 *             keywords    the keyword rules that read a cause out of a sentence
 *             llm         an OpenAI-compatible vision LLM client with the paper's prompts
 *   concepts  wordnet     the WordNet 3.0 noun hierarchy with NLTK's names
 *             hungarian   rectangular assignment with forbidden pairs
 *             concepts    V-CECE: costs, optimal edit sets, closest counterfactuals,
 *                         importance, edit orders
 *             classify    image classifiers behind one interface: ONNX, a command, a
 *                         vision LLM with n-vote self-consistency
 *             editor      image editors behind one interface: the built-in editor, the web
 *                         UI's Replacer extension and img2img over HTTP
 *             edit_loop   the V-CECE loop: plan (built-in or a vision LLM), edit, classify
 *                         until the label flips
 *             loop_run    a loop's run folder read back; FID, CMMD and S3 of its flips
 *             study       the human study's answers (CSV) against the loops (Table 2)
 *   report    canvas      an RGB drawing surface with text, written as PNG
 *             figures     the reliability diagram, image grids, a run's strips
 *             html        the run report: one self-contained page
 *             loop_html   the concepts loop's report with step strips; the study sheet
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

/* #########################################################################################
 * base (src/base/): errors, allocation, logging, random numbers, progress, threads, atomic files
 * ###################################################################################### */

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
/* Prefixes the current message with "<context>: " (for example a file name), unless it already
 * starts with exactly that; returns code. */
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
double cfx_rng_uniform(cfx_rng *r);                      /* [0, 1), 53 bits */
uint64_t cfx_rng_below(cfx_rng *r, uint64_t n);          /* uniform in [0, n), unbiased; n > 0 */
double cfx_rng_normal(cfx_rng *r);                       /* standard normal (Box-Muller) */
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

/* ======================================================================= file === */

/* Atomic output: cfx_file_create opens "<path>.tmp.<pid>" for writing; cfx_file_commit closes it
 * and renames it over path (checking every write); cfx_file_abort closes and removes it. Both
 * cfx_file_create and cfx_dir_create first remove the temporaries of path that a killed
 * process left (those whose pid no longer exists). */
typedef struct cfx_file {
    FILE *f;
    char *path, *tmp;
    int slot; /* its entry among the temporaries a signal removes (cfx_clean_up_on_signals) */
} cfx_file;
cfx_status cfx_file_create(cfx_file *af, const char *path);
cfx_status cfx_file_commit(cfx_file *af);
void cfx_file_abort(cfx_file *af);
/* Atomic output folder: cfx_dir_create makes the folder "<path>.tmp.<pid>" (d->tmp) for the
 * caller to fill, refusing a path that exists and is not an empty folder unless force;
 * cfx_dir_commit renames it to path (an existing folder is replaced only then, and only once
 * the new one is complete); cfx_dir_abort removes it. The temporary is removed on a signal
 * like cfx_file's. A trailing slash in path is ignored. */
typedef struct cfx_dir {
    char *path, *tmp;
    int slot;
} cfx_dir;
cfx_status cfx_dir_create(cfx_dir *d, const char *path, int force);
cfx_status cfx_dir_commit(cfx_dir *d);
void cfx_dir_abort(cfx_dir *d);
/* Outputs committed together or not at all: between cfx_outputs_begin and cfx_outputs_commit,
 * each cfx_file the calling thread commits (every file cfx writes goes through one) is
 * complete and closed but keeps its temporary name; cfx_outputs_commit renames them all into
 * place once all are written (a rename that fails then, which is rare, leaves those before it
 * in place), cfx_outputs_abort removes them all (a signal too, as for any temporary). So a
 * command that fails half-way leaves none of its outputs. Until the commit, an
 * output is read at cfx_outputs_path(o, path) (its temporary, or path when it is not in the
 * group). A group begun while one is open on the thread joins it: its commit and abort leave
 * the work to the outer group. Files written into a cfx_dir's folder belong to the folder. */
typedef struct cfx_outputs {
    int n, cap;
    char **path, **tmp;
    int *slot;
    int joined;
} cfx_outputs;
cfx_status cfx_outputs_begin(cfx_outputs *o);
cfx_status cfx_outputs_commit(cfx_outputs *o);
void cfx_outputs_abort(cfx_outputs *o);
const char *cfx_outputs_path(const cfx_outputs *o, const char *path);
/* For programs: on SIGINT, SIGTERM or SIGHUP, removes the temporaries of the atomic outputs in
 * progress (cfx_file, and the folders cfx_data_* write), then dies of the signal as before, so
 * an interrupted command leaves nothing behind (a finished checkpoint stays). Signals the
 * program was started ignoring (nohup) stay ignored. The cfx program calls it first thing; a
 * library user with handlers of their own need not. */
void cfx_clean_up_on_signals(void);
/* A line that handler prints on stderr before the program dies (up to 1023 bytes; NULL or ""
 * for none), e.g. how to resume what was interrupted. */
void cfx_set_signal_note(const char *note);
/* Reads a whole file into a NUL-terminated buffer (caller frees with cfx_free). */
cfx_status cfx_file_read_all(const char *path, char **data, size_t *size);
/* FNV-1a, 64-bit, continuing from h (start with CFX_FNV1A_INIT): the fingerprints that let a
 * run folder refuse other inputs. Not a cryptographic hash. */
#define CFX_FNV1A_INIT 1469598103934665603ull
uint64_t cfx_fnv1a(uint64_t h, const void *data, size_t n);

/* #########################################################################################
 * engine (src/engine/): tensors, GEMM, the differentiable graph and its ops, ONNX files
 * ###################################################################################### */

/* ===================================================================== tensor === */
/* A dense float32 tensor, row-major (images NCHW). Fields are public for reading; a tensor that
 * a graph owns must not be freed or resized by the caller. */
#define CFX_MAX_DIMS 6

typedef struct cfx_tensor {
    float *data;
    int64_t shape[CFX_MAX_DIMS];
    int ndim;
    int64_t numel;
} cfx_tensor;

/* A zero-filled tensor that owns 64-byte aligned data; free with cfx_tensor_free. NULL (with a
 * message) on a bad shape (ndim outside 0..6, a dimension < 1, or a size that overflows). */
cfx_tensor *cfx_tensor_new(int ndim, const int64_t *shape);
void cfx_tensor_free(cfx_tensor *t);
/* Validates a shape and returns its element count in *numel. */
cfx_status cfx_tensor_check_shape(int ndim, const int64_t *shape, int64_t *numel);
int cfx_tensor_same_shape(const cfx_tensor *a, const cfx_tensor *b);
/* Writes "(1, 3, 32, 32)" into buf. */
void cfx_tensor_shape_str(int ndim, const int64_t *shape, char *buf, size_t size);
void cfx_tensor_fill(cfx_tensor *t, float v);
void cfx_tensor_fill_uniform(cfx_tensor *t, cfx_rng *r, float lo, float hi);
void cfx_tensor_fill_normal(cfx_tensor *t, cfx_rng *r, float mean, float std);
/* Copies src's data into dst; the element counts must match. */
cfx_status cfx_tensor_copy(cfx_tensor *dst, const cfx_tensor *src);
/* Index of the first NaN or infinity, or -1. */
int64_t cfx_tensor_find_nonfinite(const cfx_tensor *t);

/* ======================================================================= blas === */

/* Row-major C = alpha op(A) op(B) + beta C with op(A) M x K, op(B) K x N. Every GEMM in cfx
 * goes through here (oneDNN's dnnl_sgemm, plain vectorised loops for thin products; see
 * src/engine/blas.c); cfx_blas_sgemm_ref is the plain loop the tests compare to. */
void cfx_blas_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc);
void cfx_blas_sgemm_ref(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc);

/* ====================================================================== graph === */
/* A static graph of ops with forward and reverse-mode backward. Build it with cfx_graph_input,
 * cfx_graph_param, cfx_graph_const and the cfx_op_* builders (each returns the id of its output
 * value, or -1 with a message; a -1 passed on makes the next builder return -1 too, and
 * cfx_graph_compile reports the first error). Compile plans every buffer once; forward and
 * backward then run without allocating. Changing an input's shape (a new batch size) replans on
 * the next run. Trainable parameters live in one contiguous block, their gradients in another.
 * Values are identified by small integers; names are optional and unique. */
typedef struct cfx_graph cfx_graph;

typedef enum {
    CFX_VALUE_INPUT, /* fed by the caller before each forward */
    CFX_VALUE_PARAM, /* trainable, in the parameter block */
    CFX_VALUE_CONST, /* frozen data (batch-norm running statistics, ONNX constants) */
    CFX_VALUE_NODE   /* the output of an op */
} cfx_value_kind;

/* An empty graph. Owned by the caller: free with cfx_graph_free. */
cfx_graph *cfx_graph_new(void);
void cfx_graph_free(cfx_graph *g);
/* An input of the given shape (the batch dimension may change later). */
int cfx_graph_input(cfx_graph *g, const char *name, int ndim, const int64_t *shape);
/* A trainable parameter, zero until filled (after compile its data sits in the block). */
int cfx_graph_param(cfx_graph *g, const char *name, int ndim, const int64_t *shape);
/* A frozen tensor; data (numel floats) is copied, NULL means zeros. A Conv or ConvTranspose
 * that reads it as its weights keeps a copy in oneDNN's layout from its first pass on: fill
 * such a constant before the first forward. */
int cfx_graph_const(cfx_graph *g, const char *name, int ndim, const int64_t *shape,
                    const float *data);
/* Marks a value as a graph output (for export and lookups) under a name. An output's tensor and
 * gradient are always NCHW (see cfx_graph_tensor). */
cfx_status cfx_graph_set_output(cfx_graph *g, int id, const char *name);
cfx_status cfx_graph_set_name(cfx_graph *g, int id, const char *name);
/* The value with that name, or -1. */
int cfx_graph_find(const cfx_graph *g, const char *name);
/* Asks for the gradient of an input (an image or latent being optimised). */
cfx_status cfx_graph_requires_grad(cfx_graph *g, int id, int on);
/* Whether backward computes parameter gradients (default on; off for counterfactual search). */
cfx_status cfx_graph_enable_param_grads(cfx_graph *g, int on);
/* Training mode: batch norm uses and updates batch statistics; dropout drops. Default off. */
void cfx_graph_set_training(cfx_graph *g, int on);
/* Seeds the graph's random stream (dropout). */
void cfx_graph_seed(cfx_graph *g, uint64_t seed);
/* Plans buffers and checks every op. No values or ops can be added afterwards. */
cfx_status cfx_graph_compile(cfx_graph *g);
/* Changes an input's shape; everything downstream is re-inferred and replanned on next run. */
cfx_status cfx_graph_reshape_input(cfx_graph *g, int id, int ndim, const int64_t *shape);
/* Sets the leading (batch) dimension of every input to n, as one change: a training graph's
 * image and target inputs move together. */
cfx_status cfx_graph_set_batch(cfx_graph *g, int64_t n);
/* Replans now if an input changed shape, so that its (new) buffer can be filled before the
 * next forward. Forward and backward do this themselves when needed. */
cfx_status cfx_graph_replan(cfx_graph *g);
cfx_status cfx_graph_forward(cfx_graph *g);
/* Reverse-mode backward from value out with output gradient seed (numel floats; NULL means all
 * ones, the gradient of sum(out)). Gradients are overwritten, not accumulated: those of inputs
 * and parameters always (zero where out does not depend on them), those of intermediate values
 * on the paths to out. */
cfx_status cfx_graph_backward(cfx_graph *g, int out, const float *seed);
/* The value's tensor (graph-owned; data valid after compile), or NULL for a bad id. The
 * pointer is invalidated when values are added to the graph (re-fetch it after building), and
 * its data pointer when the graph replans after an input changed shape. Inputs, parameters,
 * constants and outputs hold their data in NCHW (row-major) order. Intermediate values may not:
 * one between two convolutions (Conv -> elementwise op -> Conv) may be held in oneDNN's blocked
 * layout, data and gradient alike, and the input of a ReLU fused into the Linear, Gemm, Conv or
 * ConvTranspose before it is never written (that op writes the ReLU's output directly). Mark a
 * value with cfx_graph_set_output to read it. */
cfx_tensor *cfx_graph_tensor(cfx_graph *g, int id);
/* The value's gradient after backward (graph-owned, numel floats), or NULL when it has none. */
float *cfx_graph_grad(cfx_graph *g, int id);
/* The parameter block and its gradient block (n floats each; after compile). */
float *cfx_graph_params(cfx_graph *g, size_t *n);
float *cfx_graph_param_grads(cfx_graph *g, size_t *n);
int cfx_graph_num_values(const cfx_graph *g);
cfx_value_kind cfx_graph_value_kind(const cfx_graph *g, int id);
const char *cfx_graph_value_name(const cfx_graph *g, int id); /* NULL when unnamed */
/* The op that produces a node value ("Conv", "Relu", ...), or NULL for other kinds. */
const char *cfx_graph_value_op(const cfx_graph *g, int id);
/* The k-th input of the op producing id, or -1. */
int cfx_graph_value_input(const cfx_graph *g, int id, int k);
/* Number of trainable parameters (floats). */
size_t cfx_graph_num_params(const cfx_graph *g);
/* The multiply-adds of one forward pass (after compile) in its Conv, ConvTranspose, Gemm,
 * Linear and MatMul nodes, the work that dominates a network; other ops are not counted. A
 * forward pass is about 2x this in FLOPs, and a backward to the inputs about as much again. */
double cfx_graph_forward_macs(const cfx_graph *g);
/* Graph optimisation. Planning (compile, and a replan) fuses into one kernel call: a ReLU into
 * the Conv, Gemm or Linear before it, and an Add (of a same-shaped tensor computed earlier,
 * with the ReLU after it if any) into the Conv before it, as oneDNN post-ops; the ONNX import
 * of a frozen model folds each BatchNormalization into the Conv before it when nothing else
 * reads that Conv's output. Outputs, input gradients and parameter gradients (of the graph
 * as built) stay what the unfused graph gives, up to float rounding. Where no gradient flows, a
 * Clip (ReLU6) after a Conv is fused too, and activations keep one layout between convolutions.
 * CFX_NO_FUSE=1 in the environment turns all of it off for every graph,
 * cfx_graph_enable_fusion(g, 0) for one (before compile, for the ONNX folding:
 * cfx_onnx_options.no_fuse). */
typedef struct cfx_graph_fusions {
    int bn_into_conv;  /* BatchNormalizations folded into convolution weights at import */
    int conv_add_relu; /* Conv + Add + Relu run as one convolution */
    int conv_add;      /* Conv + Add without a ReLU after it */
    int conv_relu;     /* Conv + Relu */
    int gemm_relu;     /* Gemm or Linear + Relu */
    int conv_clip;     /* Conv + Clip (ReLU6), where no gradient flows through it */
} cfx_graph_fusions;
/* What the last plan of g fused (zeros before compile). */
cfx_graph_fusions cfx_graph_fusion_counts(const cfx_graph *g);
/* Turns graph optimisation on (the default unless CFX_NO_FUSE is set) or off for g. */
cfx_status cfx_graph_enable_fusion(cfx_graph *g, int on);

/* ======================================================================== ops === */
/* Builders add one op to a graph and return its output value id (or -1; see cfx_graph). Shapes
 * in the comments: x (N,C,H,W) is an image batch. Every op has a backward for each of its
 * float inputs except argmax. Broadcasting follows NumPy (and ONNX) rules. */

/* --- elementwise (src/engine/ops/elementwise.c) --- */
int cfx_op_add(cfx_graph *g, int a, int b);
int cfx_op_sub(cfx_graph *g, int a, int b);
int cfx_op_mul(cfx_graph *g, int a, int b);
int cfx_op_div(cfx_graph *g, int a, int b);
/* a ** b elementwise with broadcasting (ONNX Pow); the gradient to b needs a > 0. */
int cfx_op_pow(cfx_graph *g, int a, int b);
int cfx_op_relu(cfx_graph *g, int x);
int cfx_op_leaky_relu(cfx_graph *g, int x, float alpha);
int cfx_op_sigmoid(cfx_graph *g, int x);
int cfx_op_tanh(cfx_graph *g, int x);
/* Clamp to [lo, hi]; use -INFINITY/INFINITY for an open side. */
int cfx_op_clip(cfx_graph *g, int x, float lo, float hi);
int cfx_op_exp(cfx_graph *g, int x);
int cfx_op_log(cfx_graph *g, int x);
int cfx_op_sqrt(cfx_graph *g, int x);
/* x ** p for a constant exponent. */
int cfx_op_pow_scalar(cfx_graph *g, int x, float p);
int cfx_op_abs(cfx_graph *g, int x);
int cfx_op_neg(cfx_graph *g, int x);
int cfx_op_erf(cfx_graph *g, int x);
/* Phi(x), the standard normal CDF, accurate in both tails. */
int cfx_op_normal_cdf(cfx_graph *g, int x);
/* scale * x + shift. */
int cfx_op_affine(cfx_graph *g, int x, float scale, float shift);

/* --- matrix products (src/engine/ops/linear.c) --- */
typedef struct cfx_gemm_attr {
    int trans_a, trans_b; /* transpose A (K,M) / B (N,K) before multiplying */
    float alpha, beta;    /* alpha op(A) op(B) + beta C; each reads as 1 when 0 (no C: beta 0) */
} cfx_gemm_attr;
/* ONNX Gemm: A (M,K), B (K,N), C broadcastable to (M,N) or -1. */
int cfx_op_gemm(cfx_graph *g, int a, int b, int c, const cfx_gemm_attr *attr);
/* x (N,in), w (out,in), b (out) or -1 -> (N,out). */
int cfx_op_linear(cfx_graph *g, int x, int w, int b);
/* NumPy matmul: (...,M,K) x (...,K,N) -> (...,M,N), batch dimensions broadcast. */
int cfx_op_matmul(cfx_graph *g, int a, int b);

/* --- convolution (src/engine/ops/conv.c) --- */
typedef struct cfx_conv2d_attr {
    int stride[2];         /* (h, w), at most 65536; 0 reads as 1 */
    int pad[4];            /* top, left, bottom, right; at most 2^24 */
    int dilation[2];       /* at most 65536; 0 reads as 1 */
    int groups;            /* 0 reads as 1; groups == C == K is depthwise */
    int output_padding[2]; /* conv-transpose only: extra rows/columns at the bottom/right */
} cfx_conv2d_attr;
/* x (N,C,H,W), w (K,C/groups,R,S), b (K) or -1 -> y (N,K,P,Q). attr NULL: stride 1, no
 * padding, no dilation, one group (likewise for the transposed convolution). */
int cfx_op_conv2d(cfx_graph *g, int x, int w, int b, const cfx_conv2d_attr *attr);
/* x (N,C,H,W), w (C,K/groups,R,S), b (K) or -1 -> y (N,K,P,Q) with
 * P = (H-1) stride - pad_top - pad_bottom + dilation (R-1) + output_padding + 1. */
int cfx_op_conv_transpose2d(cfx_graph *g, int x, int w, int b, const cfx_conv2d_attr *attr);

/* --- pooling (src/engine/ops/pool.c) --- */
typedef struct cfx_pool2d_attr {
    int kernel[2];
    int stride[2];   /* 0 reads as the kernel size */
    int pad[4];      /* top, left, bottom, right */
    int dilation[2]; /* max pool only; 0 reads as 1 */
    int ceil_mode;
    int count_include_pad; /* average pool: divide by the full window */
} cfx_pool2d_attr;
int cfx_op_max_pool2d(cfx_graph *g, int x, const cfx_pool2d_attr *attr);
int cfx_op_avg_pool2d(cfx_graph *g, int x, const cfx_pool2d_attr *attr);
/* x (N,C,H,W) -> (N,C,1,1). */
int cfx_op_global_avg_pool(cfx_graph *g, int x);

/* --- reductions and softmax (src/engine/ops/reduce.c) --- */
typedef enum { CFX_REDUCE_SUM, CFX_REDUCE_MEAN, CFX_REDUCE_MAX } cfx_reduce_kind;
/* Reduces over axes (negative counts from the end; naxes 0 means all). Max sends its gradient
 * to the first maximal element. */
int cfx_op_reduce(cfx_graph *g, int x, cfx_reduce_kind kind, const int *axes, int naxes,
                  int keepdims);
/* Index of the first maximum along axis, as floats; no gradient. */
int cfx_op_argmax(cfx_graph *g, int x, int axis, int keepdims);
int cfx_op_softmax(cfx_graph *g, int x, int axis);
int cfx_op_log_softmax(cfx_graph *g, int x, int axis);

/* --- normalization and dropout (src/engine/ops/norm.c) --- */
typedef struct cfx_batch_norm_attr {
    float eps;      /* 0 reads as 1e-5 */
    float momentum; /* PyTorch's: running = (1 - m) running + m batch; 0 reads as 0.1 */
} cfx_batch_norm_attr;
/* x (N,C,...), scale/bias params (C), mean/var consts (C). In training mode it normalises with
 * the batch statistics (biased variance) and updates the running ones (unbiased variance). */
int cfx_op_batch_norm(cfx_graph *g, int x, int scale, int bias, int mean, int var,
                      const cfx_batch_norm_attr *attr);
/* x (N,C,...) -> y: each image's channel normalised over its spatial values (mean 0, biased
 * variance 1, eps 0 reads as 1e-5), then times scale and plus bias, params (C) (ONNX
 * InstanceNormalization; the same in training and inference). */
int cfx_op_instance_norm(cfx_graph *g, int x, int scale, int bias, float eps);
/* Inverted dropout with probability p in training mode; the identity otherwise. */
int cfx_op_dropout(cfx_graph *g, int x, float p);

/* --- shapes (src/engine/ops/shape.c) --- */
/* (d0..dk-1, dk..) -> (d0*..*dk-1, dk*..) as ONNX Flatten. */
int cfx_op_flatten(cfx_graph *g, int x, int axis);
/* ONNX Reshape: 0 copies the input's dimension, -1 is inferred. */
int cfx_op_reshape(cfx_graph *g, int x, int ndim, const int64_t *shape);
int cfx_op_transpose(cfx_graph *g, int x, const int *perm);
int cfx_op_concat(cfx_graph *g, const int *xs, int n, int axis);
/* ONNX Slice with constant starts/ends/steps (clamped; steps may be negative). */
int cfx_op_slice(cfx_graph *g, int x, int naxes, const int *axes, const int64_t *starts,
                 const int64_t *ends, const int64_t *steps);
typedef enum { CFX_PAD_CONSTANT, CFX_PAD_REFLECT, CFX_PAD_EDGE } cfx_pad_mode;
/* pads: begin of every axis, then end of every axis (ONNX order); negative pads crop. */
int cfx_op_pad(cfx_graph *g, int x, const int64_t *pads, cfx_pad_mode mode, float value);

/* --- resize (src/engine/ops/resize.c) --- */
typedef enum { CFX_RESIZE_NEAREST, CFX_RESIZE_BILINEAR } cfx_resize_mode;
typedef enum {
    CFX_COORD_HALF_PIXEL, /* ONNX default and PyTorch align_corners=False */
    CFX_COORD_ASYMMETRIC, /* PyTorch nearest */
    CFX_COORD_ALIGN_CORNERS,
    CFX_COORD_PYTORCH_HALF_PIXEL
} cfx_coord_mode;
typedef enum {
    CFX_NEAREST_ROUND_PREFER_FLOOR, /* ONNX default */
    CFX_NEAREST_ROUND_PREFER_CEIL,
    CFX_NEAREST_FLOOR, /* PyTorch nearest */
    CFX_NEAREST_CEIL
} cfx_nearest_mode;
typedef struct cfx_resize_attr {
    cfx_resize_mode mode;
    cfx_coord_mode coord;
    cfx_nearest_mode nearest;
    int64_t out_h, out_w; /* output size; when 0, scale_h/scale_w are used */
    float scale_h, scale_w;
} cfx_resize_attr;
/* x (N,C,H,W) -> (N,C,out_h,out_w). */
int cfx_op_resize(cfx_graph *g, int x, const cfx_resize_attr *attr);

/* --- similarities and losses (src/engine/ops/loss.c) --- */
typedef enum { CFX_REDUCTION_MEAN, CFX_REDUCTION_SUM, CFX_REDUCTION_NONE } cfx_reduction;
/* Cosine similarity along axis: sum(a b) / (max(|a|, eps) max(|b|, eps)) as PyTorch 1.13;
 * eps 0 reads as 1e-8. */
int cfx_op_cosine_similarity(cfx_graph *g, int a, int b, int axis, float eps);
/* x / (sqrt(sum x^2 along axis) + eps), same shape (LPIPS's normalize_tensor); eps 0 reads
 * as 1e-10. An all-zero vector gets the gradient's limit, g / eps, where the formula through
 * Sqrt would give NaN. No ONNX export. */
int cfx_op_normalize(cfx_graph *g, int x, int axis, float eps);
/* Per-sample losses over all but the first axis, then reduced over the batch:
 * L1 = mean |a-b|, MSE = mean (a-b)^2, L2 = sqrt(sum (a-b)^2). */
typedef enum { CFX_LOSS_L1, CFX_LOSS_MSE, CFX_LOSS_L2 } cfx_loss_kind;
int cfx_op_loss(cfx_graph *g, int a, int b, cfx_loss_kind kind, cfx_reduction reduction);
/* Cross-entropy of logits (N,C) against targets: class indices (N) stored as floats, or soft
 * targets (N,C) that sum to 1 per row. */
int cfx_op_cross_entropy(cfx_graph *g, int logits, int target, cfx_reduction reduction);

/* ======================================================================= onnx === */
/* ONNX is cfx's model file format. Import reads opsets 11 to 17 (the op list and the attributes
 * supported are in the README); integer shape arithmetic (Shape, Gather, Concat, ... as PyTorch
 * emits for flatten and view) is folded while importing, so the graph holds only float ops.
 * Export writes opset 13 that onnx.checker accepts. Example: a classifier with its penultimate
 * features as a second output, and the gradient of one logit with respect to the image:
 *
 *     const char *feats[] = {"/avgpool/GlobalAveragePool_output_0"};
 *     cfx_onnx_options o = {.batch = 8, .extra_outputs = feats, .n_extra_outputs = 1};
 *     cfx_graph *g = cfx_onnx_load("classifier.onnx", &o);   // NULL: cfx_last_error()
 *     int x = cfx_graph_find(g, "input"), logits = cfx_graph_find(g, "logits");
 *     cfx_graph_requires_grad(g, x, 1);
 *     cfx_graph_compile(g);                                     // or add more ops first
 */
typedef struct cfx_onnx_options {
    /* Size given to a symbolic (named or unknown) first dimension of an input; 0 reads as 1.
     * Change it later with cfx_graph_reshape_input. */
    int64_t batch;
    /* Non-zero: float initializers become frozen constants instead of trainable parameters,
     * and BatchNormalization is folded into the Conv before it (cfx_graph_fusions). (Batch-norm
     * running mean and variance are always constants.) */
    int frozen;
    /* Intermediate tensors also marked as outputs (penultimate features, a latent code). */
    const char *const *extra_outputs;
    int n_extra_outputs;
    /* Non-zero: only the extra outputs are outputs, and only the nodes they need are imported
     * (the encoder half of an autoencoder file). */
    int outputs_only;
    /* Intermediate tensors that become graph inputs: the nodes that produced them are not
     * imported (the decoder half of an autoencoder file, fed with a latent). */
    const char *const *inputs;
    int n_inputs;
    /* Prepended to every value name (to put several models in one graph); NULL: none. */
    const char *prefix;
    /* Non-zero: no BatchNormalization folding at import (see cfx_graph_fusions); the graph's
     * plan-time fusions are left to cfx_graph_enable_fusion. */
    int no_fuse;
} cfx_onnx_options;

/* Reads an ONNX model into a new, not yet compiled graph (add ops, then cfx_graph_compile).
 * Graph inputs are the model's inputs that the outputs need, then o->inputs; outputs are
 * marked with cfx_graph_set_output under their ONNX names; every value keeps its tensor name
 * (with o->prefix), so cfx_graph_find locates inputs, outputs and parameters. o may be NULL.
 * Returns NULL with a message for an unreadable or corrupt file, an external-data file that
 * is missing, or ops cfx lacks (all of them named with node and opset). The caller owns the
 * graph (cfx_graph_free). */
cfx_graph *cfx_onnx_load(const char *path, const cfx_onnx_options *o);
/* Adds a model to an existing graph that is not compiled. Model input i is bound to the
 * existing value bind[i] for i < nbind (bind[i] < 0: a new input); the ids of the model's
 * outputs (as chosen by o) go to outputs[0..cap) and their number to *noutputs. On failure
 * the graph may hold part of the model: free it. */
cfx_status cfx_onnx_import(cfx_graph *g, const char *path, const cfx_onnx_options *o,
                           const int *bind, int nbind, int *outputs, int cap, int *noutputs);
/* Writes the part of g that computes outputs[0..n) (n 0: every value marked as an output) as
 * an ONNX model, opset 13: inputs get a symbolic first dimension "batch", parameters and
 * constants become initializers with their current values. Ops without an ONNX equivalent
 * (losses) are refused by name; NormalCdf and Affine become small subgraphs. Atomic write.
 * g may be compiled or not. */
cfx_status cfx_onnx_save(cfx_graph *g, const char *path, const int *outputs, int n);
/* Splits one autoencoder file at the tensor named latent into encoder_path (the model's inputs
 * to latent) and decoder_path (latent to the model's outputs), both complete ONNX files that
 * keep the original nodes, weights and opset. Both are written or neither (cfx_outputs). */
cfx_status cfx_onnx_split(const char *path, const char *latent, const char *encoder_path,
                          const char *decoder_path);

/* What a file holds, read without importing it (so it works for unsupported models too). */
typedef struct cfx_onnx_tensor_info {
    char *name;
    int elem_type; /* ONNX TensorProto.DataType: 1 float, 7 int64, ... */
    int ndim;
    int64_t shape[CFX_MAX_DIMS]; /* -1 for a symbolic dimension */
} cfx_onnx_tensor_info;
typedef struct cfx_onnx_info {
    int64_t ir_version, opset;
    char *producer; /* "pytorch 1.13.0" */
    int n_inputs, n_outputs;
    cfx_onnx_tensor_info *inputs, *outputs; /* initializers are not listed as inputs */
    int n_nodes, n_op_types;
    char **op_types;   /* distinct op types in order of first use */
    int *op_counts;    /* nodes of each type */
    int *op_supported; /* non-zero when cfx imports that op type */
    int n_initializers;
    int64_t n_weights; /* elements in all initializers */
} cfx_onnx_info;
/* NULL with a message on an unreadable or corrupt file. Free with cfx_onnx_info_free. */
cfx_onnx_info *cfx_onnx_info_load(const char *path);
void cfx_onnx_info_free(cfx_onnx_info *info);

/* #########################################################################################
 * learn (src/learn/): optimizers, layers and the reference models, training and evaluation
 * ###################################################################################### */

/* ====================================================================== optim === */
/* Optimizers over a flat float array: a graph's parameter block (cfx_graph_params and
 * cfx_graph_param_grads) or any tensor being optimised, such as an image or a latent vector
 * (cfx_graph_tensor and cfx_graph_grad of an input that requires a gradient). Both follow
 * PyTorch's torch.optim semantics exactly, so a run can be checked step by step against it. */
typedef struct cfx_sgd_options {
    float lr;           /* default 0.01 */
    float momentum;     /* default 0 */
    float weight_decay; /* L2 added to the gradient; default 0 */
    int nesterov;       /* default 0 */
} cfx_sgd_options;

typedef struct cfx_adam_options {
    float lr;           /* default 1e-3 */
    float beta1, beta2; /* default 0.9, 0.999 */
    float eps;          /* added after the square root; default 1e-8 */
    float weight_decay; /* L2 added to the gradient (torch.optim.Adam, not AdamW); default 0 */
} cfx_adam_options;

typedef struct cfx_optim cfx_optim;

/* An optimizer for n floats, with zeroed state. NULL options take the defaults; a field left at
 * 0 takes its default too except momentum and weight_decay (0 is their default). Owned by the
 * caller: free with cfx_optim_free. */
cfx_optim *cfx_optim_sgd(size_t n, const cfx_sgd_options *o);
cfx_optim *cfx_optim_adam(size_t n, const cfx_adam_options *o);
void cfx_optim_free(cfx_optim *opt);
/* One update of x (n floats) from its gradient. A non-finite gradient is refused with
 * CFX_ENUMERIC and x is left untouched. */
cfx_status cfx_optim_step(cfx_optim *opt, float *x, const float *grad);
/* Forgets the moments and the step count (a new image starts afresh). */
void cfx_optim_reset(cfx_optim *opt);
void cfx_optim_set_lr(cfx_optim *opt, float lr);
/* The state (moments, step count) as one float array for checkpoints: cfx_optim_state_size
 * floats; load the same size back to resume. */
size_t cfx_optim_state_size(const cfx_optim *opt);
void cfx_optim_state_save(const cfx_optim *opt, float *out);
void cfx_optim_state_load(cfx_optim *opt, const float *in);

/* ===================================================================== layers === */
/* Layer builders create their parameters with PyTorch's default initialisation drawn from r
 * (weights and biases uniform in +-1/sqrt(fan_in)), named "<name>.weight" and "<name>.bias" as
 * in a PyTorch state dict, and return the output id (or -1, see cfx_graph). Input channels
 * and features are read from x's shape. */
int cfx_layer_conv2d(cfx_graph *g, int x, const char *name, int cout, int k, int stride, int pad,
                     cfx_rng *r);
/* output_padding adds rows/columns at the bottom/right so a decoder can hit an exact size. */
int cfx_layer_conv_transpose2d(cfx_graph *g, int x, const char *name, int cout, int k, int stride,
                               int pad, int output_padding, cfx_rng *r);
int cfx_layer_linear(cfx_graph *g, int x, const char *name, int out, cfx_rng *r);

/* The reference classifier of the competency paper, adapted to the image size: conv 5x5/2 32,
 * conv 3x3/2 64, conv 3x3/2 64 (ReLU after each), fully connected 512-512-256-256-C with ReLU,
 * softmax. Values named "features" (the 256-d penultimate activations), "logits", "probs".
 * The ReLU layers take He initialisation (normal, std sqrt(2 / fan_in), zero bias): with
 * PyTorch's default this deep ReLU stack does not leave its initial plateau on the signs data. */
typedef struct cfx_classifier_ids {
    int features, logits, probs;
} cfx_classifier_ids;
cfx_status cfx_model_classifier(cfx_graph *g, int x, int num_classes, cfx_rng *r,
                                cfx_classifier_ids *ids);
/* A small translation-invariant classifier for "is this item anywhere in the image" classes
 * (cfx data scenes; `cfx train classifier --arch conv-pool`): convolutions 5x5/2 32, 3x3/2 64,
 * 3x3 64, 3x3/2 128, 3x3 128, each followed by instance normalisation (cfx_op_instance_norm,
 * learnt scale and shift) and a ReLU, then a global
 * max pool ("features", 128-d), a linear layer ("logits") and softmax ("probs"). 280k
 * parameters whatever the image size. */
cfx_status cfx_model_classifier_conv_pool(cfx_graph *g, int x, int num_classes, cfx_rng *r,
                                          cfx_classifier_ids *ids);
/* The reference autoencoder: the classifier's convolution stack to a latent_dim-d code
 * ("latent", linear), and the mirror image with transposed convolutions back to the input's
 * size, ending in a sigmoid ("reconstruction"). */
typedef struct cfx_autoencoder_ids {
    int latent, reconstruction;
} cfx_autoencoder_ids;
cfx_status cfx_model_autoencoder(cfx_graph *g, int x, int latent_dim, cfx_rng *r,
                                 cfx_autoencoder_ids *ids);

/* ====================================================================== train === */
/* Mini-batch training with Adam. The graph is given uncompiled: training adds its loss
 * (cross-entropy on the logits, or mean squared reconstruction error) and a "target" input,
 * compiles, and trains the parameters in place; afterwards cfx_onnx_save writes the model
 * without the loss. Batches are drawn in a seeded shuffle; an incomplete last batch is
 * dropped. Same seed and thread count give the same parameters, bit for bit. */
typedef struct cfx_train_options {
    int epochs;             /* default 10 */
    int batch;              /* default 64 */
    float lr;               /* Adam learning rate; default 1e-3 */
    int constant_lr;        /* non-zero: keep lr; default: cosine decay from lr to 0 over the
                             * run, step by step (so a resumed run decays the same way) */
    uint64_t seed;          /* shuffling; default 0 */
    const char *checkpoint; /* written atomically after every epoch; NULL: none */
    int resume;             /* continue from the checkpoint when it exists */
    int stop_after;         /* stop once this many epochs are done, as if interrupted (the
                             * schedule still spans `epochs`; resume continues); 0: never */
    cfx_progress progress;  /* one unit per batch, note "loss .. acc .." */
    const struct cfx_train_shard *shard; /* data-parallel training; NULL: one process */
} cfx_train_options;

/* Data-parallel training over `ranks` processes (an MPI job: cfx-mpi's `cfx train`). Each
 * process trains on block `rank` of every batch's rows (blocks whose sizes differ by one at
 * most, the larger first; batch >= ranks), its gradient weighted by its share of the batch;
 * sum then adds, in place and over all processes, the n gradient floats and the nstats doubles
 * of stats (the batch's loss and right answers), and every process takes the same Adam step.
 * Each process must start from the same parameters, images and options; only rank 0 writes
 * the checkpoint. One rank gives the bits of one process on one thread; more ranks differ only
 * by the order of the float sums (tests/test_mpi.c measures it). */
typedef struct cfx_train_shard {
    int rank, ranks;
    cfx_status (*sum)(void *user, float *grad, size_t n, double *stats, int nstats);
    void *user;
} cfx_train_shard;

typedef struct cfx_train_result {
    int epochs_done;  /* including those restored from a checkpoint */
    int resumed_from; /* epoch the checkpoint held, or 0 */
    double loss;      /* mean training loss of the last epoch */
    double accuracy;  /* training accuracy of the last epoch (classifier) */
    double seconds;   /* wall time of the epochs run now */
} cfx_train_result;

/* images (N,C,H,W) in [0,1]; labels N class indices in 0..C-1 (as floats). The graph's input x
 * must have images' C,H,W. out is the classifier's logits or, for a model ending in Softmax,
 * its probabilities (the loss then uses the Softmax's input). */
cfx_status cfx_train_classifier(cfx_graph *g, int x, int out, const cfx_tensor *images,
                                const float *labels, const cfx_train_options *o,
                                cfx_train_result *res);
cfx_status cfx_train_autoencoder(cfx_graph *g, int x, int reconstruction, const cfx_tensor *images,
                                 const cfx_train_options *o, cfx_train_result *res);

/* One Adam step at a time, as cfx_train_classifier and cfx_train_autoencoder run them (for a
 * caller's own loop, and the training benchmark). A trainer adds the loss and a "train.target"
 * input to the uncompiled graph g, compiles it and sets it training; g must outlive it, and its
 * parameters are updated in place. On several threads (cfx_set_threads) and a batch of at least
 * two images per thread, each thread runs the whole step on its own slice of the batch, on a
 * copy of the graph that reads g's parameters; the slices' gradients are summed in a fixed
 * order, so a thread count gives the same bits every run. A graph whose ops mix images of the
 * batch (BatchNormalization, a Softmax over axis 0, a Reshape that moves the batch) is run
 * whole instead, its ops using the threads. NULL with a message on a bad argument. */
typedef struct cfx_trainer cfx_trainer;
cfx_trainer *cfx_trainer_classifier(cfx_graph *g, int x, int out, int batch, float lr);
cfx_trainer *cfx_trainer_autoencoder(cfx_graph *g, int x, int reconstruction, int batch, float lr);
/* Trains on images rows[0..batch-1] (labels: their classes as floats, NULL for an autoencoder).
 * loss (optional) gets the batch's mean loss; correct (optional, classifier) the number of
 * images the step's forward pass classified right. CFX_ENUMERIC, parameters untouched, when
 * the loss or a gradient is not finite. */
cfx_status cfx_trainer_step(cfx_trainer *t, const cfx_tensor *images, const float *labels,
                            const int64_t *rows, double *loss, int64_t *correct);
cfx_optim *cfx_trainer_optim(cfx_trainer *t); /* its Adam: learning rate, checkpoints */
int cfx_trainer_lanes(const cfx_trainer *t);  /* slices of the batch run at once (1: whole) */
void cfx_trainer_free(cfx_trainer *t);

/* Accuracy of a compiled graph's output (probabilities or logits) on images, in batches;
 * confusion (C x C, row = true class, optional) counts predictions. */
cfx_status cfx_eval_classifier(cfx_graph *g, int x, int out, const cfx_tensor *images,
                               const float *labels, int num_classes, int batch, int64_t *confusion,
                               double *accuracy);
/* Mean reconstruction error (mean over pixels, then images) of a compiled autoencoder;
 * CFX_ESHAPE when its output is not shaped like its input (a classifier, say). */
cfx_status cfx_eval_autoencoder(cfx_graph *g, int x, int reconstruction, const cfx_tensor *images,
                                int batch, double *mse);

/* #########################################################################################
 * data (src/data/): array and image files, dataset folders, generated signs
 * ###################################################################################### */

/* ======================================================================== npy === */
/* NumPy .npy files (format 1.0-3.0, C order). Reading converts float32, float64, uint8, int32
 * and int64 arrays to float32 with values unchanged; the caller frees the tensor. An array
 * holding a NaN or an infinity is refused (CFX_ENUMERIC), naming the file and the element.
 * Writing is atomic: a temporary file is renamed into place, so a failure leaves nothing
 * half-written. */
cfx_tensor *cfx_npy_read(const char *path);
cfx_status cfx_npy_write(const char *path, const cfx_tensor *t);
cfx_status cfx_npy_write_u8(const char *path, const uint8_t *data, int ndim, const int64_t *shape);
/* For writers that stream the data themselves: the header of a float32 array of this shape
 * into buf (cap bytes; 640 always suffice); the data follows at offset *len, a multiple of 64. */
cfx_status cfx_npy_header_f32(int ndim, const int64_t *shape, unsigned char *buf, size_t cap,
                              size_t *len);

/* ======================================================================== idx === */
/* IDX files (the MNIST and Fashion-MNIST format), plain or gzip-compressed (detected from the
 * content). Types ubyte, byte, short, int, float and double are read; values are unchanged
 * (pixels stay 0..255). The caller frees the tensor. A truncated or corrupt file is refused
 * with a message naming it. */
cfx_tensor *cfx_idx_read(const char *path);
/* The same for ubyte files without the float copy: *data (caller frees with cfx_free) holds
 * the product of shape[0..*ndim) bytes. A file of another element type is refused. */
cfx_status cfx_idx_read_u8(const char *path, uint8_t **data, int *ndim, int64_t *shape);

/* ====================================================================== image === */
/* PNG and JPEG (and the other formats stb_image reads) in, PNG out. Images are float32 (C,H,W)
 * in [0, 1] with C = 1 (grey) or 3 (RGB); a batch is (N,C,H,W). */

/* Reads an image as (channels,H,W) floats in [0,1]. channels 0 keeps the file's own (grey 1,
 * colour 3; alpha is dropped), 1 converts to grey, 3 to RGB. The caller frees the tensor;
 * NULL with "read 'x.png': not a PNG or JPEG image (stb: ...)" on a bad file. */
cfx_tensor *cfx_image_read(const char *path, int channels);
/* The same from size bytes in memory (a server's reply); name ("the editor's image") goes into
 * messages: "decode the editor's image: not a PNG or JPEG image (stb: ...)". */
cfx_tensor *cfx_image_decode(const void *bytes, size_t size, int channels, const char *name);
/* Writes a (C,H,W) or (1,C,H,W) image with C 1 or 3 as an 8-bit PNG; values are clipped to
 * [0,1] and rounded. Atomic (cfx_file_create). */
cfx_status cfx_image_write_png(const char *path, const cfx_tensor *image);
/* The same from 8-bit (C,H,W) planes. */
cfx_status cfx_image_write_png_u8(const char *path, const uint8_t *chw, int c, int h, int w);
/* A (c,h,w) image in [0,1] (clipped; NaN as 0) as PNG bytes in memory (*png: cfx_free). */
cfx_status cfx_image_encode_png(const float *chw, int c, int h, int w, unsigned char **png,
                                size_t *len);

typedef struct cfx_grid_options {
    int cols;        /* images per row; 0: ceil(sqrt(N)) */
    int scale;       /* nearest-neighbour upscaling factor; 0: 1 */
    int pad;         /* pixels between and around tiles; default 0 */
    float pad_value; /* value of the padding and of empty tiles; default 0 (black) */
} cfx_grid_options;
/* Tiles a batch (N,C,H,W) row by row into one (C, rows*(H*s+pad)+pad, cols*(W*s+pad)+pad)
 * image (empty tiles take pad_value). o may be NULL. The caller frees the result. */
cfx_tensor *cfx_image_grid(const cfx_tensor *images, const cfx_grid_options *o);
/* cfx_image_grid followed by cfx_image_write_png. */
cfx_status cfx_image_write_grid(const char *path, const cfx_tensor *images,
                                const cfx_grid_options *o);

/* Images named on a command line, as one batch (n,c,h,w) in order: PNG or JPEG files,
 * folders of them (their image files in name order, not recursive), and .npy arrays
 * (N,c,h,w) of floats. Images are converted to c channels (1 or 3) and must be h x w; a
 * file that does not fit, and a non-finite value, are refused naming the file. names (may be
 * NULL) gets one owned name per image ("dir/a.png", "x.npy[3]"); free it with
 * cfx_images_names_free(names, n). */
cfx_status cfx_images_load(const char *const *inputs, int n_inputs, int c, int h, int w,
                           cfx_tensor **images, char ***names);
void cfx_images_names_free(char **names, int64_t n);

/* ==================================================================== dataset === */
/* A labelled image set in memory. Datasets on disk are folders that `cfx data` writes (see
 * README "Data"): manifest.json plus <split>_images.npy (uint8 (N,C,H,W)) and
 * <split>_labels.npy (uint8 (N)) per split. Splits: "train", "calib" (calibration, never used
 * for training), "test", and "ood" (images of the held-out classes, never seen in training).
 * Labels of train/calib/test are re-indexed contiguously 0..num_classes-1 over the classes
 * that are not held out; ood images carry label -1 and their dataset's own id in orig_labels. */
typedef struct cfx_dataset {
    cfx_tensor *images;   /* (N,C,H,W) float32 in [0,1] */
    int32_t *labels;      /* N entries: 0..num_classes-1, or -1 (held-out class) */
    int32_t *orig_labels; /* N entries: the label in the source dataset (Fashion-MNIST 0..9) */
    int64_t n;
    int num_classes;    /* classes used for training */
    char **class_names; /* num_classes names: "T-shirt/top", ..., or "30", "50", ... */
    int32_t *class_ids; /* num_classes original ids */
    char *name;         /* "fashion-mnist", "signs", or the folder name */
    char *split;        /* the split loaded, or NULL */
} cfx_dataset;

/* Loads one split of a prepared dataset folder. NULL with a message naming the file on
 * failure. The caller owns the result (cfx_dataset_free). */
cfx_dataset *cfx_dataset_load(const char *dir, const char *split);
void cfx_dataset_free(cfx_dataset *d);

/* Loads an image folder with one sub-folder per class (sorted by name; the class names are the
 * folder names) holding PNG or JPEG files (.png, .jpg, .jpeg in any case; other files are
 * ignored). Every image is converted to c channels (0: that of the first image) and must be
 * h x w (0: that of the first image); a file of another size, a file that is not an image, or
 * a folder without classes is refused with a message naming it. The caller owns the result. */
cfx_dataset *cfx_imagefolder_load(const char *dir, int c, int h, int w);

/* How `cfx data` writes a dataset folder: everything goes into "<out>.tmp.<pid>", which is
 * renamed to out at the end, so out is either complete (manifest.json included) or absent. */
typedef struct cfx_data_options {
    const char *out; /* the folder to create */
    int force;       /* non-zero: replace an existing non-empty out */
    uint64_t seed;   /* default 0 */
    cfx_progress progress;
} cfx_data_options;

/* Fashion-MNIST from the official gzip IDX files in source (NULL:
 * "/usr/share/datasets/fashion-mnist", Debian's dataset-fashion-mnist). test = the official test
 * set without the held-out class; calib = a seeded calib_frac of the official training set
 * without it; train = the rest; ood = the held-out class's images of the official TEST set.
 * holdout is a class id 0..9 (default 9, "Ankle boot"; -1: none) and calib_frac is in (0, 1)
 * (0 reads as 0.1). */
cfx_status cfx_data_prepare_fashion_mnist(const cfx_data_options *o, const char *source,
                                          int holdout, double calib_frac);

/* An image folder (cfx_imagefolder_load) split into train/calib/test by seeded fractions, with
 * the classes named in holdout (comma-separated folder names, or NULL) moved to ood. */
cfx_status cfx_data_prepare_folder(const cfx_data_options *o, const char *src, int c, int h, int w,
                                   const char *holdout, double calib_frac, double test_frac);

/* ====================================================================== signs === */
/* Generated photographs of round speed-limit signs (red ring, white disc, black number in
 * DejaVu Sans Bold) over varied scenes, with random scale (40-90% of the frame), position,
 * rotation, perspective, blur, lighting, colour cast and sensor noise. Each sign is
 * supersampled and area-filtered down to size x size RGB. Classes are the speeds 20, 30, 50,
 * 60, 70, 80, 100 and 120 (ids 0..7); 20 is the one held out of training by default. */
#define CFX_SIGNS_NUM_SPEEDS 8
extern const int cfx_signs_speeds[CFX_SIGNS_NUM_SPEEDS];

typedef struct cfx_signs_options {
    int size;              /* output side in pixels; default 32 */
    int supersample;       /* samples per pixel side for the sign; default 4 */
    const char *font_path; /* a TrueType (glyf) font, checked before use (CFX_EFORMAT naming it
                            * if it is corrupt); default
                            * /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf */
} cfx_signs_options;

/* Draws n signs with the given speeds (each one of cfx_signs_speeds) into out, uint8
 * (n,3,size,size). Image i takes its randomness from cfx_rng_split(r, i), so the bytes depend on
 * the seed only, not on the thread count. p may be NULL. */
cfx_status cfx_signs_generate(const cfx_signs_options *o, const cfx_rng *r, const int *speeds,
                              int64_t n, uint8_t *out, const cfx_progress *p);

typedef struct cfx_signs_counts {
    int train, calib, test; /* per trained class; defaults 10000, 200, 200 */
    int ood;                /* images of the held-out speed; default 500 */
    int holdout;            /* the held-out speed; default 20 (0 reads as 20; -1: none) */
} cfx_signs_counts;

/* Generates the signs dataset folder: seven classes 30..120 (labels 0..6) in train, calib and
 * test, and the held-out speed in ood. o_signs and counts may be NULL: NULL counts means
 * {10000, 200, 200, 500, 20}; given counts are taken as they are (0 images is 0), except a
 * holdout of 0, which reads as 20. Labels are shuffled within each split; each split draws
 * from its own stream of o->seed. */
cfx_status cfx_data_prepare_signs(const cfx_data_options *o, const cfx_signs_options *o_signs,
                                  const cfx_signs_counts *counts);

/* ===================================================================== scenes === */
/* Scenes with known answers for concept edits (V-CECE): RGB images of 1 to 4 distinct real
 * Fashion-MNIST items, one per cell of a 2x2 grid, each with a box and a mask, on a textured
 * background. Item k (the Fashion-MNIST class) is the concept cfx_scenes_synsets[k], a WordNet
 * 3.0 noun synset. A scene's class (cfx_scenes_classes) follows from cfx_scenes_rule_text. */
#define CFX_SCENES_NUM_ITEMS   10
#define CFX_SCENES_NUM_CLASSES 4
#define CFX_SCENES_MAX_ITEMS   4
extern const char *const cfx_scenes_synsets[CFX_SCENES_NUM_ITEMS];
extern const char *const cfx_scenes_classes[CFX_SCENES_NUM_CLASSES];
extern const char *const cfx_scenes_rule_text;
/* The class index of an item set (bit k: item k present). */
int cfx_scenes_rule(unsigned items);
/* The least number of edits (remove while 2+ items remain, insert while 3 or fewer, replace by
 * an absent item) that changes the class of an item set of 1 to 4 items; -1 for another set. */
int cfx_scenes_min_edits(unsigned items);

typedef struct cfx_scenes_options {
    int size;           /* image side; default 96 (32..1024) */
    int count;          /* scenes in all, split 70/10/20 into train/calib/test; default 2000 */
    const char *source; /* Fashion-MNIST IDX folder; NULL: /usr/share/datasets/fashion-mnist */
} cfx_scenes_options;
/* Writes a dataset folder of scenes (classes balanced in each split; train and calib scenes
 * use items of the official training set, test scenes those of the test set) plus
 * images/<id>.png for every scene, rule.txt, and concepts.json in the shape of
 * data/vg_random.json: {"images": [{"id", "file", "split", "size": [h, w], "objects":
 * [synsets], "boxes": [[x0, y0, x1, y1]] (x1, y1 exclusive), "masks": [runs], "labels":
 * {"rule": class}, "min_edits"}]}. A mask is a list of run lengths over the image in row-major
 * order, alternating outside and inside the object and starting outside. Ids are 0..count-1,
 * train first. Deterministic for a seed. */
cfx_status cfx_data_prepare_scenes(const cfx_data_options *o, const cfx_scenes_options *so);

/* ==================================================================== corrupt === */
/* The six causes of low competency the competency paper studies, and the image operations
 * that make five of them, with the reference code's semantics (PIL on 8-bit images; see
 * src/data/corrupt.c): brightness blends with black by factor f, contrast with the constant
 * grey of the mean luminance, saturation with the image's own luminance (colour images only);
 * noise adds a uniform integer in [-f, f] to each 8-bit value and clips; pixelation resizes
 * down by f with nearest neighbour and back up. Spatial anomalies (content never seen in
 * training) come from held-out classes, not from an operation. */
typedef enum {
    CFX_CAUSE_NONE,
    CFX_CAUSE_SPATIAL,
    CFX_CAUSE_BRIGHTNESS,
    CFX_CAUSE_CONTRAST,
    CFX_CAUSE_SATURATION,
    CFX_CAUSE_NOISE,
    CFX_CAUSE_PIXELATION,
    CFX_CAUSE_COUNT
} cfx_cause;

/* "none", "spatial", "brightness", "contrast", "saturation", "noise", "pixelation". */
const char *cfx_cause_name(cfx_cause c);
cfx_status cfx_cause_parse(const char *name, cfx_cause *out);
/* The reference's factor grid for a cause (speed-limit experiments), in its order: brightness
 * and contrast 0.25, 0.5, 2, 3, 4, 5; saturation 0, 2, 4, 8, 12, 16; noise 20..120 step 20;
 * pixelation 4..24 step 4. Returns the count (0 for none and spatial). */
int cfx_cause_grid(cfx_cause c, const double **factors);
/* The factors of the grid that apply to h x w images (pixelation blocks up to the side) into
 * out (room for 8); returns their count. */
int cfx_cause_grid_fit(cfx_cause c, int h, int w, double *out);
/* One image of 8-bit planes (c,h,w), c 1 or 3, into out (same size, not in). rng: noise only. */
cfx_status cfx_corrupt_u8(cfx_cause cause, double factor, const uint8_t *in, uint8_t *out, int c,
                          int h, int w, cfx_rng *rng);
/* A batch (N,C,H,W) in [0,1]: each image goes to 8 bits (round(x * 255)), through
 * cfx_corrupt_u8, and back (/ 255). out has in's shape (it may be in). A non-finite value is
 * refused, naming the image and element. */
cfx_status cfx_corrupt(cfx_cause cause, double factor, const cfx_tensor *in, cfx_tensor *out,
                       cfx_rng *rng);

/* #########################################################################################
 * competency (src/competency/): PaRCE calibration, scoring, rho and its gradients
 * ###################################################################################### */

/* ================================================================= competency === */
/* PaRCE (the competency paper): a classifier's competency on an image is the probability
 * that its prediction is correct, estimated from the softmax p and the reconstruction loss of
 * an autoencoder, calibrated on a held-out set:
 *   L(X)  = mean over channels and pixels of (X - decode(encode(X)))^2
 *   P_c   = 1 - Phi((L - s mu_c) / sigma_c - z)   (mu_c, sigma_c: L over calib images of class
 *                                                  c, population deviation; s = 2 as the
 *                                                  reference code)
 *   rho   = max_c p_c * sum_c p_c P_c
 * with z chosen on the grid 0, 0.05, ..., 4.95 so that the mean of rho over the calibration
 * set is closest to the classifier's accuracy there. rho is differentiable with respect to the
 * image and, through the decoder, to a latent code: that is what the counterfactual methods
 * optimise. An image is low-competency when rho < threshold (0.9). */
typedef enum {
    CFX_OUTPUT_AUTO,   /* probabilities when the classifier's output comes from a Softmax */
    CFX_OUTPUT_LOGITS, /* softmax is applied by cfx */
    CFX_OUTPUT_PROBS   /* used as they are */
} cfx_classifier_output;

/* The networks, as ONNX files: the classifier, and the autoencoder as an encoder and a
 * decoder file or as one file with the name of its latent tensor. */
typedef struct cfx_competency_models {
    const char *classifier;
    const char *encoder, *decoder;
    const char *autoencoder, *latent;
    /* The classifier tensor compared by feature similarity; NULL: a tensor named "features",
     * else the input of the classifier's last Gemm, MatMul or Linear. */
    const char *features;
    cfx_classifier_output output;
} cfx_competency_models;

/* A calibration. mu and sigma are owned (cfx_parce_deinit frees them). */
typedef struct cfx_parce {
    int num_classes;
    double *mu, *sigma;
    double z, loss_scale, threshold;
    double accuracy, mean_rho; /* on the calibration set, after fitting */
    int64_t n_calib;
} cfx_parce;
void cfx_parce_deinit(cfx_parce *p);

/* The three networks in one graph with rho on top, for batches of images (and, built on first
 * use, a second graph from a latent code through the decoder). NULL with a message naming the
 * file when a model cannot be read or the models do not fit together (image shape, channels,
 * the autoencoder's output, a missing latent or feature tensor). Owned by the caller. */
typedef struct cfx_competency cfx_competency;
cfx_competency *cfx_competency_new(const cfx_competency_models *m, int64_t batch);
void cfx_competency_free(cfx_competency *c);
/* Installs a calibration (copied); num_classes must match the classifier's outputs. */
cfx_status cfx_competency_set_parce(cfx_competency *c, const cfx_parce *p);
const cfx_parce *cfx_competency_parce(const cfx_competency *c); /* NULL before one is set */

typedef struct cfx_competency_shape {
    int c, h, w;          /* the image */
    int num_classes;      /* the classifier's outputs */
    int latent_dim;       /* elements of one latent code */
    int feature_dim;      /* elements of one feature tensor */
    const char *features; /* the feature tensor's name in the classifier */
    int probs_output;     /* non-zero: the classifier's output is used as probabilities */
} cfx_competency_shape;
void cfx_competency_shape_of(const cfx_competency *c, cfx_competency_shape *out);

/* Per-image results of a batch of n; every pointer may be NULL. predicted and the rest hold n
 * entries, probs n x num_classes, latent n x latent_dim, features n x feature_dim. Without a
 * calibration, rho and in_distribution are not computed (left untouched). */
typedef struct cfx_competency_scores {
    int32_t *predicted;
    float *softmax_max, *loss;
    float *in_distribution; /* sum_c p_c P_c */
    float *rho;
    float *probs, *latent, *features;
} cfx_competency_scores;
/* Scores images (n,C,H,W) in [0,1], in batches of at most the competency's batch. grad (may be
 * NULL) receives d rho_i / d image_i (n x C x H x W floats): one forward and one backward
 * through each network. No allocation when calls keep the batch size. */
cfx_status cfx_competency_score(cfx_competency *c, const cfx_tensor *images,
                                const cfx_competency_scores *out, float *grad);
/* The same for latent codes (n, latent_dim...): rho of decode(code) and d rho / d code
 * (grad, n x latent_dim); decoded (may be NULL) receives decode(code), n x C x H x W. */
cfx_status cfx_competency_score_latent(cfx_competency *c, const cfx_tensor *codes,
                                       const cfx_competency_scores *out, float *grad,
                                       float *decoded);

typedef struct cfx_parce_fit_options {
    double loss_scale; /* 0 reads as 2, the reference code's factor */
    double threshold;  /* 0 reads as 0.9 */
    int fixed_z;       /* non-zero: use z below instead of the grid search */
    double z;
    cfx_progress progress;
} cfx_parce_fit_options;
/* Fits a calibration on a labelled calibration set (labels 0..num_classes-1): every image's
 * loss and softmax from the same forward pass, per-class statistics (each class needs at
 * least 2 images and a non-zero deviation), accuracy, z; installs it in c. latents (n x
 * latent_dim) and rho (n), if not NULL, receive the calibration images' codes and their
 * competency under the fitted calibration (what LNN searches). out is owned by the caller. */
cfx_status cfx_parce_fit(cfx_competency *c, const cfx_dataset *calib,
                         const cfx_parce_fit_options *o, cfx_parce *out, float *latents,
                         float *rho);
/* Phi, the standard normal CDF, in double precision (both tails accurate). */
double cfx_normal_cdf(double x);

/* Calibration and separation of scores (src/competency/calibration.c). The area under the ROC
 * curve of scores that should be higher for pos than for neg (ties count one half; NaN when a
 * side is empty). */
double cfx_auroc(const float *pos, int64_t npos, const float *neg, int64_t nneg);
typedef struct cfx_calibration_bin {
    int64_t n;
    double mean_score, accuracy;
} cfx_calibration_bin;
/* Expected calibration error of scores in [0,1] against correct (0/1) over nbins equal-width
 * bins; bins (nbins entries, may be NULL) gets each bin's count, mean score and accuracy. */
double cfx_ece(const float *score, const uint8_t *correct, int64_t n, int nbins,
               cfx_calibration_bin *bins);

/* Low-competency examples per cause (src/competency/examples.c): controls (none), images of
 * held-out classes with rho below the threshold (spatial), and correctly classified
 * high-competency test images corrupted with the first factor of the cause's grid, in a seeded
 * order, that drives rho below the threshold. */
typedef struct cfx_example {
    cfx_cause cause;
    double factor;               /* NAN for none and spatial */
    int from_ood;                /* the source split: 0 test, 1 ood */
    int64_t row;                 /* the image's index in that split */
    int32_t label;               /* its class (test: 0..K-1; ood: the source dataset's id) */
    float rho_before, rho_after; /* clean and as given (equal for none and spatial) */
} cfx_example;
typedef struct cfx_examples_summary {
    int64_t candidates;                   /* correctly classified test images with high rho */
    int64_t made[CFX_CAUSE_COUNT];        /* examples per cause */
    int64_t tried[CFX_CAUSE_COUNT];       /* source images looked at */
    int64_t no_factor[CFX_CAUSE_COUNT];   /* of those, images no factor (spatial: their rho)
                                             took below the threshold */
    const char *skipped[CFX_CAUSE_COUNT]; /* why a cause was skipped, or NULL */
} cfx_examples_summary;
typedef struct cfx_examples_options {
    int64_t per_cause; /* default 100 */
    uint64_t seed;
    cfx_progress progress;
} cfx_examples_options;
/* Makes the examples from a test split (and an ood split, may be NULL) with c's calibration.
 * images (n,C,H,W) and examples (n, cfx_free) are the caller's, in cause order. */
cfx_status cfx_examples_generate(cfx_competency *c, const cfx_dataset *test, const cfx_dataset *ood,
                                 const cfx_examples_options *o, cfx_tensor **images,
                                 cfx_example **examples, int64_t *n, cfx_examples_summary *summary);

/* A competency bundle: one folder with the three models, the calibration and the calibration
 * set's latent codes and rho (see src/competency/bundle.c), written by `cfx competency fit`. */
typedef struct cfx_bundle_spec {
    const char *out; /* the folder to create (atomically) */
    int force;       /* replace an existing non-empty folder */
    const cfx_competency_models *models;
    const cfx_competency *competency; /* fitted (cfx_parce_fit) */
    const char *const *class_names;   /* num_classes names, or NULL ("0", "1", ...) */
    const float *latents, *scores;    /* the calibration images' codes (n x latent) and rho */
    int64_t n;
    const char *dataset; /* recorded in bundle.json; may be NULL */
} cfx_bundle_spec;
cfx_status cfx_bundle_write(const cfx_bundle_spec *spec);

typedef struct cfx_bundle {
    cfx_competency *competency; /* with the calibration installed */
    int num_classes;
    char **class_names;
    char fingerprint[17]; /* FNV-1a of every file of the bundle, 16 hex digits */
    char *dir;
} cfx_bundle;
/* Opens a bundle for batches of up to `batch` images. NULL with a message naming the file on
 * a missing or malformed part. Free with cfx_bundle_free. */
cfx_bundle *cfx_bundle_load(const char *dir, int64_t batch);
void cfx_bundle_free(cfx_bundle *b);
/* Reads the calibration codes (N, latent) and their rho (N); the caller frees both. */
cfx_status cfx_bundle_calibration(const cfx_bundle *b, cfx_tensor **latents, cfx_tensor **scores);

/* #########################################################################################
 * counterfactual (src/counterfactual/): the five counterfactual methods behind one interface
 * ###################################################################################### */

/* ============================================================= counterfactual === */
/* High-competency counterfactuals (the competency paper): for an image X, an image X' near X
 * on which rho (cfx_competency) reaches the threshold. Five methods:
 *   IGD   minimise -rho(X') + gamma D(X, X') over the pixels of X', from X' = X (D: LPIPS,
 *         L2, L1 or 1 - SSIM, cfx_cf_distance)
 *   FGD   minimise -rho(X') - gamma cos(f(X), f(X')) over the pixels (f: the classifier's
 *         feature tensor, cfx_competency_models.features)
 *   Reco  X' = decode(encode(X)), no optimisation
 *   LGD   minimise -rho(decode(z')) - gamma cos(z, z') over the latent, from z' = z =
 *         encode(X); X' = decode(z')
 *   LNN   among the calibration latents with rho > threshold, the one nearest to encode(X) in
 *         L1 (ties to the lower row); X' = its decoding
 * (FGD's, LGD's and LNN's vector term is an option too: cfx_cf_vector.)
 * IGD, FGD and LGD run Adam (torch.optim's rule) for at most max_iter updates and stop when
 * rho >= threshold. Each batch is one graph built once (the competency networks on the
 * optimised tensor plus the distance term); an iteration runs forward, backward and the
 * update without allocating. Stopping per image (the default): an image whose rho reaches the
 * threshold is never updated again. Per batch (the reference code's rule, on batches of 50):
 * every image of the batch is updated until all of them pass or the cap is reached, which is
 * plain Adam over the batch tensor. An image's Adam moments are its own either way (Adam is
 * elementwise and images are independent), so an image's result does not depend on the other
 * images of its batch under per-image stopping. */
typedef enum {
    CFX_CF_IGD,
    CFX_CF_FGD,
    CFX_CF_RECO,
    CFX_CF_LGD,
    CFX_CF_LNN,
    CFX_CF_COUNT
} cfx_cf_method;
/* "igd", "fgd", "reco", "lgd", "lnn" ("?" out of range). */
const char *cfx_cf_method_name(cfx_cf_method m);
/* The method named (case-insensitive); CFX_EINVAL naming the choices otherwise. */
cfx_status cfx_cf_method_parse(const char *name, cfx_cf_method *out);

/* The image distance D(X, X') of IGD, and of every record (see cfx_distance below):
 *   LPIPS  a user's LPIPS network (cfx_cf_options.lpips_model), or without one the LPIPS
 *          formula over the classifier's convolution feature maps, "LPIPS[classifier]"
 *   L2     sqrt(sum (X' - X)^2)
 *   L1     mean |X' - X|
 *   SSIM   1 - SSIM(X, X') as pytorch_msssim computes SSIM (Gaussian window 11, sigma 1.5)
 * LPIPS is the reference's and comes first, so that a zeroed struct gives it. */
typedef enum {
    CFX_CF_DISTANCE_LPIPS,
    CFX_CF_DISTANCE_L2,
    CFX_CF_DISTANCE_L1,
    CFX_CF_DISTANCE_SSIM,
    CFX_CF_DISTANCE_COUNT
} cfx_cf_distance;
const char *cfx_cf_distance_name(cfx_cf_distance d); /* "lpips", "l2", "l1", "ssim" */
/* The distance named (case-insensitive); CFX_EINVAL naming the choices otherwise. */
cfx_status cfx_cf_distance_parse(const char *name, cfx_cf_distance *out);

/* The vector term of FGD (features), LGD (latents) and LNN's search (latents). DEFAULT is the
 * method's reference term: the cosine similarity for FGD and LGD, the L1 norm |z - z'|_1 (a
 * sum) for LNN. COS is the cosine similarity (PyTorch's, eps 1e-8), L1 the mean |v - v'|, L2
 * the Euclidean distance. FGD and LGD minimise -rho - gamma cos, or -rho + gamma d for l1 and
 * l2; LNN takes the candidate with the largest cosine, or the smallest distance (l1 and the
 * default choose the same candidate). IGD and Reco have no vector term. */
typedef enum {
    CFX_CF_VECTOR_DEFAULT,
    CFX_CF_VECTOR_COS,
    CFX_CF_VECTOR_L1,
    CFX_CF_VECTOR_L2,
    CFX_CF_VECTOR_COUNT
} cfx_cf_vector;
const char *cfx_cf_vector_name(cfx_cf_vector v); /* "default", "cos", "l1", "l2" */
cfx_status cfx_cf_vector_parse(const char *name, cfx_cf_vector *out);

typedef enum {
    CFX_CF_STOP_PER_IMAGE, /* an image stops when it passes (default) */
    CFX_CF_STOP_PER_BATCH  /* the batch stops when every image passes (the reference's rule) */
} cfx_cf_stop;

/* Options; a zeroed struct gives the reference settings. */
typedef struct cfx_cf_options {
    double gamma;             /* weight of the distance term; 0 reads as 0.1, < 0 as no term */
    cfx_adam_options adam;    /* zeros read as lr 1e-3, betas 0.9/0.999, eps 1e-8 */
    int max_iter;             /* updates at most; 0 reads as 100 */
    double threshold;         /* 0 reads as the calibration's threshold (0.9) */
    cfx_cf_distance distance; /* IGD's D, and the image distance every record reports */
    cfx_cf_vector vector;     /* FGD's, LGD's and LNN's vector term */
    /* With distance LPIPS: an LPIPS network as an ONNX file (cfx_distance_new); NULL: the
     * built-in formula on the classifier. */
    const char *lpips_model;
    cfx_cf_stop stop;
    int clip;          /* keep IGD's and FGD's pixels in [0, 1] after each update */
    int64_t lnn_block; /* LNN: candidates compared per block; 0 reads as 256 */
} cfx_cf_options;

/* One image's result. success is rho_after >= threshold, the stopping rule's test (LNN's
 * candidates are those with rho > threshold, as the reference selects them). */
typedef struct cfx_cf_record {
    cfx_cf_method method;
    float rho_before, rho_after; /* rho(X), rho(X') */
    int success;
    int steps;       /* Adam updates applied to this image (0 for Reco and LNN) */
    double seconds;  /* wall time; see cfx_cf_run */
    double distance; /* D(X, X') under options.distance, for every method */
    /* The vector term actually used, at X': FGD and LGD cos(f(X), f(X')) or cos(z, z') (or the
     * l1 or l2 distance chosen), LNN the distance (or cosine) to the candidate chosen; NaN for
     * IGD and Reco. */
    double vector_term;
    int64_t neighbour; /* LNN: the calibration row chosen; -1 otherwise */
    /* Why the image failed, "" when it did not: "non-finite gradient at iteration 7" (that
     * iteration's image, after 6 updates, is kept), "non-finite rho at iteration 7" (rho of
     * the image after 6 updates is not finite: the image after 5 is kept, with its rho), "non-
     * finite rho" (Reco, LNN), "non-finite latent code" (Reco), "no finite distance to any
     * candidate" (LNN). Such an image
     * stops, is not successful, and the other images of its batch go on; one left without a
     * finite X' (a decoded non-finite code) keeps X, with rho_after = rho_before. */
    char failure[96];
} cfx_cf_record;

/* A method for batches of up to `batch` images on c, which must hold a calibration
 * (cfx_competency_set_parce or a bundle) and outlive the result. calib_latents (N,
 * latent_dim) and calib_scores (N) are LNN's candidates and their rho (cfx_bundle_calibration);
 * other methods ignore them (may be NULL). The candidates above the threshold are copied. NULL
 * with a message when the models, options or candidates do not fit (LNN without a candidate
 * above the threshold, an LPIPS model that does not take two images: see cfx_distance_new).
 * Owned by the caller: free with cfx_cf_free. */
typedef struct cfx_cf cfx_cf;
cfx_cf *cfx_cf_new(cfx_competency *c, cfx_cf_method m, const cfx_cf_options *o, int64_t batch,
                   const cfx_tensor *calib_latents, const cfx_tensor *calib_scores);
void cfx_cf_free(cfx_cf *cf);
/* The counterfactuals of images (n,C,H,W) into out (the caller's, the same shape), in batches,
 * and one record per image into records (n entries). seconds: under per-image stopping, each
 * iteration's wall time is shared among the images it updated, and the batch's set-up among
 * all of them; otherwise the batch's wall time is divided by its images. Either way a batch's
 * records add up to its wall time, apart from computing the records' distances (a measurement,
 * not part of the method). An image whose rho or gradient stops being finite is
 * recorded as a failure (cfx_cf_record.failure) and does not fail the run. */
cfx_status cfx_cf_run(cfx_cf *cf, const cfx_tensor *images, cfx_tensor *out,
                      cfx_cf_record *records);
/* The threshold in use (the option, or the calibration's). */
double cfx_cf_threshold(const cfx_cf *cf);
/* The name of the records' distance for tables: see cfx_distance_label. Owned by cf. */
const char *cfx_cf_distance_label(const cfx_cf *cf);

/* =================================================================== distance === */
/* Image distances D(X, X') per image pair, for the records and the metrics. How each is
 * computed (src/counterfactual/distance.c):
 *   L2, L1  in double precision over the pixels.
 *   SSIM    1 - SSIM with pytorch_msssim's rules, data range 1: a Gaussian window of 11 taps
 *           (sigma 1.5), applied as two 1-D valid convolutions, each only along a side of at
 *           least 11 pixels (pytorch_msssim skips the smoothing along a shorter side); K1 0.01,
 *           K2 0.03; the SSIM map averaged over channels and positions.
 *   LPIPS   with lpips_model: an ONNX graph with two image inputs in [-1, 1] (reference first)
 *           and one output, the distance of each pair, e.g. the LPIPS module exported with two
 *           inputs. Images are mapped x * 2 - 1, grey images repeated to 3 channels when the
 *           model takes 3, and resized bilinearly (half-pixel centres, as PyTorch's
 *           align_corners=False) to the model's H and W when they are fixed and differ; a side
 *           the model leaves dynamic is resized up to 32 when it is shorter. IGD differentiates
 *           through the model.
 *           Without one: the LPIPS formula without learned heads on the classifier's own
 *           convolution feature maps, labelled "LPIPS[classifier]": for each Conv node of the
 *           classifier, its output, taken past a BatchNormalization that is its only reader and
 *           then past an activation (Relu, LeakyRelu, Tanh, Sigmoid, Clip) that is the only
 *           reader; each position's channel vector unit-normalised as LPIPS's normalize_tensor
 *           (x / (sqrt(sum x^2) + 1e-10), cfx_op_normalize); the squared difference summed over
 *           channels, averaged over positions, summed over the layers. */
typedef struct cfx_distance cfx_distance;
/* A distance for batches of up to `batch` image pairs of c's image shape; c must outlive it.
 * lpips_model is used with CFX_CF_DISTANCE_LPIPS only (NULL: the built-in formula). NULL with
 * a message naming the file when the classifier has no convolution (built-in LPIPS) or the
 * model does not fit: not two inputs and one output, inputs not (N,C,H,W) with the images'
 * channels (or 3 for grey images), an output that is not one value per image. Owned by the
 * caller: free with cfx_distance_free. */
cfx_distance *cfx_distance_new(cfx_competency *c, cfx_cf_distance kind, const char *lpips_model,
                               int64_t batch);
/* D(x_i, y_i) for image batches x and y (n,C,H,W) into out (n values), in batches. */
cfx_status cfx_distance_run(cfx_distance *d, const cfx_tensor *x, const cfx_tensor *y, double *out);
/* The name to print in tables: "LPIPS" (a user's model), "LPIPS[classifier]" (built in),
 * "L2", "L1", "1-SSIM" ("?" for NULL). Owned by d. */
const char *cfx_distance_label(const cfx_distance *d);
void cfx_distance_free(cfx_distance *d);

/* ================================================================== run folder === */
/* A run folder written by `cfx counterfactual` (README "Counterfactuals" lists its files), read
 * whole: the images, each method's counterfactuals and each line of results.jsonl. Methods are
 * indexed by cfx_cf_method, and CFX_RUN_BEST for best. */
#define CFX_RUN_BEST    CFX_CF_COUNT
#define CFX_RUN_METHODS (CFX_CF_COUNT + 1)
typedef struct cfx_run_result {
    int present; /* the run has this image and method */
    double rho_before, rho_after;
    int success, steps;
    double seconds, distance, vector_term; /* NaN where results.jsonl has null */
    int winner;                            /* best: the method it took; -1 otherwise */
    char failure[96];                      /* why the image stopped early, or "" */
} cfx_run_result;
typedef struct cfx_run {
    char *dir, *run_json; /* run.json's text */
    int complete;         /* run.json's status is "complete" */
    int64_t n;            /* images */
    int c, h, w;
    int has[CFX_RUN_METHODS];
    cfx_tensor *images;                           /* (n, c, h, w) */
    cfx_tensor *counterfactuals[CFX_RUN_METHODS]; /* where has[k] */
    cfx_run_result *results;                      /* CFX_RUN_METHODS x n, method by method */
    char **cause;  /* n causes, or NULL when the run's inputs gave none */
    char **source; /* n names of where each image came from (entries may be NULL) */
    char *bundle;  /* the bundle's path as given to the run */
    char bundle_fingerprint[17];
    char distance[32]; /* the image distance of the records, as tables name it */
    double threshold;
} cfx_run;
/* NULL with a message naming the file that is missing or does not agree with run.json. */
cfx_run *cfx_run_open(const char *dir);
void cfx_run_free(cfx_run *r);
/* cfx_cf_method_name, and "best" for CFX_RUN_BEST. */
const char *cfx_run_method_name(int k);
/* The causes of the run's images in order of first appearance (at most cap; 0 without causes). */
int cfx_run_causes(const cfx_run *r, const char **out, int cap);
/* A method's images (of one cause, or all for NULL): their count, successes, and the means of
 * rho before and after (over the images where it is finite; NaN when none is), steps and seconds
 * (zeros when there are no images). */
typedef struct cfx_run_tally {
    int64_t n, success;
    double rho_before, rho_after, steps, seconds;
} cfx_run_tally;
cfx_run_tally cfx_run_tally_of(const cfx_run *r, int method, const char *cause);

/* #########################################################################################
 * metrics (src/metrics/): feature networks, FID, KID, CMMD, cosine similarity statistics
 * ###################################################################################### */

/* =================================================================== features === */
/* The feature vectors FID, KID and CMMD compare, from one of two networks, with a label that
 * every table prints beside the metric (FID[classifier], FID[inception]):
 *   - the classifier's own feature tensor (cfx_competency_models.features) through a
 *     competency, for images of the classifier's shape; label "classifier";
 *   - a user network: an ONNX file with one input, RGB images (N, 3, H, W) in [0, 1] at its own
 *     fixed H x W, and the name of its feature tensor (--fid-model F --fid-features NAME).
 *     Images of the given (c, h, w) are resized to H x W, bilinearly with half-pixel centres
 *     (PyTorch's F.interpolate(mode="bilinear", align_corners=False), no antialiasing: what
 *     pytorch-fid does; unchanged when the sizes agree), and grey ones repeated to 3 channels.
 *     Label: the file name without its folder and ".onnx".
 * Each image's features are flattened to one row. */
typedef struct cfx_features_spec {
    cfx_competency *competency; /* the classifier's features (must outlive the extractor), or */
    const char *model, *tensor; /* a user network and its feature tensor's name */
    int c, h, w;                /* model: the images that will be given; c 1 or 3 */
    const char *label;          /* NULL: the default above */
    int64_t batch;              /* model: images per forward pass; 0 reads as 32 */
} cfx_features_spec;
typedef struct cfx_features cfx_features;
/* NULL with a message when the spec is incomplete or the network does not fit: not one input,
 * an input that is not (N, 3, H, W) with fixed H and W, no tensor of that name, or a tensor that
 * is not one row per image. Owned by the caller: free with cfx_features_free. */
cfx_features *cfx_features_new(const cfx_features_spec *spec);
void cfx_features_free(cfx_features *f);
const char *cfx_features_label(const cfx_features *f);
int64_t cfx_features_dim(const cfx_features *f); /* floats per image */
/* The features of images (n, c, h, w) into out (n, dim), the caller's. CFX_ENUMERIC on a
 * non-finite pixel or feature. */
cfx_status cfx_features_run(cfx_features *f, const cfx_tensor *images, cfx_tensor *out);

/* The metrics below take feature sets as matrices (n, d) of finite floats, the same d for both
 * sets, and compute in double precision. A set with too few rows, unequal d or a NaN is refused
 * with a message naming it. */

/* ======================================================================== fid === */
/* Frechet distance (FID when the features are Inception's), as pytorch-fid computes it:
 *   FID = |mu_A - mu_B|^2 + tr(S_A) + tr(S_B) - 2 tr((S_A S_B)^(1/2))
 * mu: column means; S: unbiased covariances (divisor n - 1, as numpy.cov). The last trace is
 * the sum of the square roots of the eigenvalues of S_A S_B, found with LAPACK's symmetric
 * eigensolver on a symmetric matrix similar to it (src/metrics/fid.c): pytorch-fid's trace of
 * scipy.linalg.sqrtm(S_A S_B), computed exactly and stably. Each set needs 2 rows; with fewer
 * rows than d + 1 a covariance is singular, which is allowed (but a poor estimate). */
typedef struct cfx_fid_stats {
    int64_t n, d;
    double *mean; /* d */
    double *cov;  /* d x d, both triangles */
} cfx_fid_stats;
/* One set's statistics, to compare with several others (the calibration images against each
 * method's counterfactuals). Free with cfx_fid_stats_deinit. */
cfx_status cfx_fid_stats_init(cfx_fid_stats *s, const cfx_tensor *features);
void cfx_fid_stats_deinit(cfx_fid_stats *s);
cfx_status cfx_fid_from_stats(const cfx_fid_stats *a, const cfx_fid_stats *b, double *fid);
cfx_status cfx_fid(const cfx_tensor *a, const cfx_tensor *b, double *fid);

/* ======================================================================== kid === */
/* Kernel distance (KID on Inception features), as torch-fidelity computes it: the unbiased
 * MMD^2 estimate with the polynomial kernel k(x, y) = (x.y / d + 1)^3,
 *   (sum_{i!=j} k(a_i, a_j) + sum_{i!=j} k(b_i, b_j)) / (m (m-1)) - 2 sum_{i,j} k(a_i, b_j) / m^2
 * on `subsets` pairs of subsets of m rows, then the mean and the population deviation (numpy.std)
 * of the estimates. The subsets, without replacement, come from one cfx_rng seeded with seed, in
 * this order: for each subset, m rows of A, then m rows of B, each by a partial Fisher-Yates
 * shuffle of p = 0, 1, ..., n-1 (fresh for every draw): for j = 0 .. m-1, k = j +
 * cfx_rng_below(n - j), swap p[j] and p[k]; the subset is p[0], ..., p[m-1] in that order. */
typedef struct cfx_kid_options {
    int subsets;         /* 0 reads as 100 */
    int64_t subset_size; /* 0 reads as min(50, n1, n2); 2 .. min(n1, n2) */
    uint64_t seed;
} cfx_kid_options;
typedef struct cfx_kid_result {
    double mean, std;
    int subsets;
    int64_t subset_size;
} cfx_kid_result;
/* o may be NULL (defaults, seed 0). Each set needs at least 2 rows. */
cfx_status cfx_kid(const cfx_tensor *a, const cfx_tensor *b, const cfx_kid_options *o,
                   cfx_kid_result *out);
/* The row indices cfx_kid uses for sets of n1 and n2 rows: subsets x subset_size entries each,
 * subset after subset, into idx_a and idx_b (the caller's). */
cfx_status cfx_kid_subsets(int64_t n1, int64_t n2, const cfx_kid_options *o, int64_t *idx_a,
                           int64_t *idx_b);

/* ======================================================================= cmmd === */
/* CMMD (Jayasumana et al. 2024) as its reference code computes it (google-research cmmd,
 * distance.py): the biased MMD^2 estimate, diagonals included, with the Gaussian kernel
 * k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), times scale:
 *   scale (mean_{i,j} k(a_i, a_j) + mean_{i,j} k(b_i, b_j) - 2 mean_{i,j} k(a_i, b_j)).
 * The paper's network is CLIP, whose embeddings have unit norm; sigma 10 is tuned for that.
 * O((n1 + n2)^2 d) work, memory of a few tiles. */
typedef struct cfx_cmmd_options {
    double sigma, scale; /* 0 reads as 10 and 1000 */
    double b_self;       /* mean k(b_i, b_j) from cfx_cmmd_self, when b is compared often; 0:
                            computed */
} cfx_cmmd_options;
/* The mean kernel value over all pairs of one set (the second term of CMMD). */
cfx_status cfx_cmmd_self(const cfx_tensor *b, const cfx_cmmd_options *o, double *out);
/* o may be NULL. */
cfx_status cfx_cmmd(const cfx_tensor *a, const cfx_tensor *b, const cfx_cmmd_options *o,
                    double *out);

/* ===================================================================== cosine === */
/* Cosine similarity of paired rows a_i, b_i of two (n, d) matrices (an image's features or
 * latent code and its counterfactual's): a_i.b_i / (max(|a_i|, 1e-8) max(|b_i|, 1e-8)), as
 * torch.nn.functional.cosine_similarity. The summary is over the rows with select[i] != 0
 * (select NULL: all): their count, mean and population deviation; with count 0 ("none"),
 * mean and std are NaN. cos (n entries, may be NULL) receives every row's value. */
typedef struct cfx_cosine_summary {
    int64_t count;
    double mean, std;
} cfx_cosine_summary;
cfx_status cfx_cosine_stats(const cfx_tensor *a, const cfx_tensor *b, const uint8_t *select,
                            double *cos, cfx_cosine_summary *out);

/* =================================================================== evaluate === */
/* Sharing the per-image work of cfx_evaluate among processes (`cfx evaluate` under mpirun):
 * part gives this process's rows [lo, hi) of a set of n images, in whole batches so that every
 * batch is the one a single process would run; fill is called by every process with each (n,
 * row_bytes) array whose part it computed, and fills in the other processes' rows in place (an
 * all-gather). The metrics that follow are then the same on every process. */
typedef struct cfx_evaluate_share {
    void (*part)(void *ctx, int64_t n, int64_t batch, int64_t *lo, int64_t *hi);
    cfx_status (*fill)(void *ctx, void *rows, int64_t n, size_t row_bytes, int64_t batch);
    void *ctx;
} cfx_evaluate_share;
/* The metrics of a run (cfx_run_open), per method and per method and cause, as `cfx evaluate`
 * reports them: success rate, mean rho after, steps and seconds per image (from the run's
 * records); LPIPS (cfx_distance: the user's network, or the built-in formula on the classifier)
 * and the cosine similarity of the classifier's features and of the latent codes of each
 * image and its counterfactual, over the successful ones; FID and KID (seed o->seed, 100
 * subsets of up to 50) of all the method's counterfactuals of the group against the reference
 * images on the FID network's features, and CMMD on the CMMD network's. Without a user network
 * (o->fid_model, o->cmmd_model) the classifier's feature tensor stands in, and the labels say
 * "classifier". A group of fewer than 2 images has NaN for FID, KID and CMMD. */
typedef struct cfx_evaluate_options {
    const cfx_tensor *reference;            /* (n, c, h, w): the calibration images */
    const char *fid_model, *fid_features;   /* ONNX file and feature tensor, or NULL */
    const char *cmmd_model, *cmmd_features; /* likewise */
    const char *lpips_model;                /* cfx_distance_new's; NULL: the built-in formula */
    uint64_t seed;                          /* KID's subsets */
    int64_t batch;                          /* networks' batch, share's unit; 0 reads as 64 */
    cfx_progress progress;                  /* a unit per row */
    cfx_evaluate_share share;               /* NULL part and fill: every row here */
} cfx_evaluate_options;
typedef struct cfx_eval_row {
    int method;        /* cfx_cf_method, or CFX_RUN_BEST */
    const char *cause; /* NULL: all the method's images; else the run's cause string */
    int64_t images, success;
    double rho_after, steps, seconds; /* means over the images */
    cfx_cosine_summary feature_similarity, latent_similarity;
    cfx_cosine_summary lpips; /* LPIPS(X, X') over the successful ones (count, mean, std) */
    double fid, kid_mean, kid_std, cmmd;
} cfx_eval_row;
typedef struct cfx_evaluation {
    int nrows;
    cfx_eval_row *rows; /* per method: all, then each cause in the run's order */
    char fid_label[64], cmmd_label[64], lpips_label[64]; /* "classifier", "LPIPS[classifier]" */
    int64_t reference_images;
} cfx_evaluation;
/* c: the run's bundle's competency. The rows' cause strings point into r. */
cfx_status cfx_evaluate(const cfx_run *r, cfx_competency *c, const cfx_evaluate_options *o,
                        cfx_evaluation *out);
void cfx_evaluation_free(cfx_evaluation *e);

/* #########################################################################################
 * explain (src/explain/): explanations in words, competency maps
 * ###################################################################################### */

/* ===================================================================== stats === */
/* What the explainer measures on one image (src/explain/stats.c says why each one): */
typedef enum {
    CFX_STAT_BRIGHTNESS,   /* mean luminance (0.299 R + 0.587 G + 0.114 B; grey: the value) */
    CFX_STAT_CONTRAST,     /* population deviation of the luminance */
    CFX_STAT_DARK,         /* its 2nd percentile (the ceil(0.02 n)-th smallest) */
    CFX_STAT_LIGHT,        /* its 98th percentile */
    CFX_STAT_BLACK,        /* share of luminance values <= 0.5/255 */
    CFX_STAT_WHITE,        /* share >= 1 - 0.5/255 */
    CFX_STAT_SHADOWS,      /* share <= 0.1 (comparable with a smooth counterfactual's) */
    CFX_STAT_HIGHLIGHTS,   /* share >= 0.9 */
    CFX_STAT_SATURATION,   /* mean over pixels of the largest minus the smallest channel */
    CFX_STAT_NOISE,        /* RMS over interior values of x - the mean of its 4 neighbours */
    CFX_STAT_NOISE_MEDIAN, /* the median of |x - the mean of its 4 neighbours| */
    CFX_STAT_BLOCKINESS,   /* share of identical neighbouring columns and rows (values within
                              0.5/255), among those pairs not both constant */
    CFX_STAT_TONES,        /* deviation over mean of the luminance values above 0.5/255 (0
                              with fewer than 2): brightening scales them, contrast spreads them */
    CFX_STAT_COUNT
} cfx_stat;
const char *cfx_stat_name(cfx_stat s); /* "brightness", "contrast", ..., "tones" */
/* The statistics of one image (c,h,w) in [0,1], c 1 or 3, h and w at least 3. */
cfx_status cfx_image_stats(const float *chw, int c, int h, int w, double out[CFX_STAT_COUNT]);

/* ======================================================================= map === */
/* A competency map: where on an image competency is lost, in [0, 1] per pixel (h x w). It is
 * the sum over channels of |d rho / d X| (cfx_competency_score's grad), and, with a
 * counterfactual X', of |X' - X|, each blurred by a 3x3 box (edges clamped) and divided by
 * its maximum; with both, their mean. cf may be NULL. */
cfx_status cfx_competency_map(const float *grad, const float *image, const float *cf, int c, int h,
                              int w, float *map);
/* The region of a map: the bounding box (x, y, w, h) of the pixels at or above half its
 * maximum (the whole image for an empty or NULL map). */
void cfx_competency_map_region(const float *map, int h, int w, int region[4]);
/* The map as a heatmap over the image's luminance, each pixel a scale x scale block: a new
 * (3, h scale, w scale) tensor for cfx_image_write_png (the caller frees it). */
cfx_tensor *cfx_competency_map_render(const float *map, const float *image, int c, int h, int w,
                                      int scale);

/* =================================================================== measured === */
/* The measured explainer (the default): it says which of the six causes most likely lowered
 * competency on an image, with the measured numbers, and needs no language model. It learns
 * what each cause does to the statistics above on the bundle's own calibration images: every
 * image operation of src/data/corrupt.c at every factor of its grid is applied to a seeded
 * sample of competent calibration images, the results whose rho falls below the threshold are
 * kept (as `cfx competency examples` keeps them), and so are the calibration images that are
 * low-competency as they are (the "spatial" cause: nothing measurable is wrong with them, so
 * their content is unfamiliar). Without a counterfactual an image is described by its
 * statistics; with one, also by their difference to the counterfactual's (for learning, the
 * counterfactual of a sample is its reconstruction, decode(encode(X))). The cause is the vote
 * of the k nearest samples in standardized statistics, each class weighted by one over its
 * size; the confidence is the winner's share of the vote. */
typedef struct cfx_explainer_options {
    int64_t sources; /* calibration images corrupted per cause and factor; 0 reads as 300 */
    int k;           /* neighbours that vote; 0 reads as 15 */
    uint64_t seed;   /* the sample of calibration images and the noise */
    /* LNN's candidates (cfx_bundle_calibration), to learn how LNN's counterfactuals compare;
     * NULL: they are compared as reconstructions are. */
    const cfx_tensor *calib_latents, *calib_scores;
    cfx_progress progress;
} cfx_explainer_options;
typedef struct cfx_explainer cfx_explainer;
/* c: a competency with its calibration (it must outlive the call only); calib: its
 * calibration images, and calib_rho their rho in the same order (cfx_bundle_calibration).
 * NULL with a message when the data do not fit or a cause has no sample. Owned by the caller. */
cfx_explainer *cfx_explainer_new(cfx_competency *c, const cfx_dataset *calib,
                                 const float *calib_rho, const cfx_explainer_options *o);
void cfx_explainer_free(cfx_explainer *e);
/* Learning samples per cause (0 for none, and for saturation on grey images). */
int64_t cfx_explainer_samples(const cfx_explainer *e, cfx_cause cause);

typedef struct cfx_explanation {
    cfx_cause cause;                  /* the most likely cause */
    double confidence;                /* its share of the vote, in (0, 1] */
    double share[CFX_CAUSE_COUNT];    /* every cause's share */
    int region[4];                    /* x, y, w, h: the map's region (the whole image without) */
    double stats[CFX_STAT_COUNT];     /* the image's */
    double reference[CFX_STAT_COUNT]; /* the counterfactual's, or the calibration medians */
    int with_counterfactual;
    char sentence[512]; /* one sentence with the measured numbers */
} cfx_explanation;
/* Explains one image (c,h,w) of the explainer's shape: cf is its counterfactual or NULL and
 * cf_method the cfx_cf_method that made it (LNN's are compared as learned for LNN; IGD's and
 * FGD's, small moves of the image's pixels, only give the sentence its numbers, the cause being
 * read from the image alone; the others are compared as reconstructions), map its competency map (h
 * x w) or NULL, rho_after the counterfactual's rho (ignored without one). */
cfx_status cfx_explain_image(const cfx_explainer *e, const float *image, const float *cf,
                             int cf_method, const float *map, double rho_before, double rho_after,
                             cfx_explanation *out);

/* ==================================================================== keywords === */
/* The keyword rules that read a cause out of a sentence (src/explain/keywords.c holds the one
 * table, the README lists it): the cause whose keyword comes first in the text, case aside,
 * with spatial's keywords ("unfamiliar", "object", ...) counted only when no other cause's
 * appears; CFX_CAUSE_NONE when none does. */
cfx_cause cfx_explain_keyword_cause(const char *text);
/* The explanation a person would give for a known cause, for fine-tuning: "The original image
 * is darker than the images the classifier was trained on." The direction (darker or brighter,
 * less or more contrast or colour) comes from comparing image with reference (its
 * counterfactual; NULL: the generic "too dark or too bright"). Always matches
 * cfx_explain_keyword_cause. Writes at most cap bytes into out. */
void cfx_explain_true_sentence(cfx_cause cause, const float *image, const float *reference, int c,
                               int h, int w, char *out, size_t cap);

/* ======================================================================== llm === */
/* A client for any server that speaks the OpenAI chat-completions API with images (llama.cpp
 * server, vLLM, Ollama), asking the competency paper's questions (its appendix B): the system
 * message describes the dataset (B.1/B.2) and the competency estimator (B.3); the user message
 * holds the instruction (B.4 without a counterfactual, B.5 with one) and the image as a PNG
 * data URI: the image alone, or side by side with its counterfactual. HTTP goes through libcurl
 * with a timeout per attempt and retries with exponential backoff on timeouts, connection
 * errors and 5xx. Answers are cached by a 64-bit FNV-1a hash of the exact request body, so
 * asking again sends nothing for what was answered. The API key is sent as a header only: it is
 * never in a message, the cache or the request body. */
typedef struct cfx_llm_options {
    const char *url;         /* the API's base ("http://127.0.0.1:8080/v1"); requests go to
                                <url>/chat/completions (or to url when it already ends so) */
    const char *model;       /* required */
    const char *api_key;     /* sent as "Authorization: Bearer <key>"; NULL: no header */
    double temperature;      /* as given (0 is greedy) */
    int max_tokens;          /* 0 reads as 128 */
    double timeout;          /* seconds per attempt; 0 reads as 60 */
    int retries;             /* attempts after the first */
    double backoff;          /* seconds before the first retry, doubled after; 0 reads as 1 */
    int concurrency;         /* requests in flight at once; 0 reads as 2 */
    const char *description; /* the dataset's (cfx_llm_dataset_description); NULL: generic */
    const char *cache;       /* a JSON Lines file of answers, read when it exists and appended
                                and flushed after each answer; NULL: no cache */
} cfx_llm_options;
typedef struct cfx_llm cfx_llm;
/* Checks the options and reads the cache. NULL with a message on bad options or a cache that
 * cannot be read. Owned by the caller. */
cfx_llm *cfx_llm_new(const cfx_llm_options *o);
void cfx_llm_free(cfx_llm *l);
/* The description of a dataset folder's classifier, from its manifest's name and class names:
 * the paper's B.2 for "signs", Fashion-MNIST's own, and a generic one with the class names for
 * others (classes may be NULL). A new string (cfx_free). */
char *cfx_llm_dataset_description(const char *name, const char *const *classes, int nclasses);
/* The original (c,h,w) left and its counterfactual right, on white with 10 pixels of padding
 * around and between: a new (c, h + 20, 2w + 30) tensor. */
cfx_tensor *cfx_llm_side_by_side(const float *image, const float *cf, int c, int h, int w);
/* The chat messages for one image as JSON text (an array; cfx_free): system (the description
 * and B.3), user (a text part with B.4, or B.5 when cf is given, and an image_url part with the
 * image, or the side-by-side pair, as a PNG data URI) and, when assistant is not NULL, an
 * assistant message with that text (for fine-tuning files). NULL with a message on failure. */
char *cfx_llm_messages(const char *description, const float *image, const float *cf, int c, int h,
                       int w, const char *assistant);
/* The whole request body for one image (the messages, model, temperature, max_tokens), as sent
 * and as hashed for the cache (cfx_free). */
char *cfx_llm_request(const cfx_llm *l, const float *image, const float *cf, int c, int h, int w);
/* The answer text of a chat-completions reply body: choices[0].message.content (a string, or
 * the text parts of an array), trimmed. CFX_EFORMAT with a message for a body that is not JSON,
 * has an "error", no choices, or no text. *text: cfx_free. */
cfx_status cfx_llm_parse_reply(const char *body, char **text);

typedef struct cfx_llm_job {
    const float *image, *cf; /* (c,h,w) each; cf NULL: asked without a counterfactual */
    /* Out: */
    cfx_status status; /* CFX_OK when answered */
    char *reply;       /* the answer (cfx_free), NULL when it failed */
    char error[600];   /* why it failed ("" when answered) */
    int cached;        /* answered from the cache, nothing was sent */
} cfx_llm_job;
/* Asks for every job, at most the options' concurrency at a time; a job that fails (after its
 * retries) records its error and the others go on. Each answer is appended to the cache as it
 * comes. *failed counts the failed jobs. Returns an error only for bad arguments. */
cfx_status cfx_llm_ask(cfx_llm *l, cfx_llm_job *jobs, int64_t n, int c, int h, int w,
                       const cfx_progress *progress, int64_t *failed);
/* One chat of its own: an optional system message and a user message with text and, when image
 * (c,h,w) is given, the image as a PNG data URI; the model, temperature and token limit are the
 * client's. fresh: neither answered from nor kept in the cache (a vote of self-consistency
 * must be a new sample). Retries as the options say. *reply: the trimmed answer (cfx_free). */
cfx_status cfx_llm_chat(cfx_llm *l, const char *system, const char *text, const float *image, int c,
                        int h, int w, int fresh, char **reply);
/* Requests sent over the HTTP connection so far (not counting cached answers). */
int64_t cfx_llm_sent(const cfx_llm *l);

/* #########################################################################################
 * concepts (src/concepts/): WordNet, optimal assignment, semantic edits (V-CECE)
 * ###################################################################################### */

/* ==================================================================== wordnet === */
/* The WordNet 3.0 noun hierarchy, read once from the Princeton database files (Debian's
 * wordnet-base installs them in /usr/share/wordnet). Synsets are numbered 0..count-1 in the
 * order of data.noun. Names, word lookup and path order follow NLTK 3.8, which the V-CECE
 * reference used: "chair.n.01" is the first lemma plus the sense number of index.noun. After
 * cfx_wordnet_load returns, a cfx_wordnet is read-only and safe to share between threads. */
typedef struct cfx_wordnet cfx_wordnet;

/* Loads index.noun, data.noun and noun.exc from dir (NULL: "/usr/share/wordnet"). Returns NULL
 * on failure; the caller owns the result and frees it with cfx_wordnet_free. The parsed tables
 * are kept in a binary cache ($CFX_CACHE_DIR, else $XDG_CACHE_HOME/cfx, else ~/.cache/cfx;
 * CFX_CACHE_DIR=off for none), keyed by the files' sizes, times and inodes and checked on
 * reading: 0.15 s of parsing become 0.03 s. A cache that cannot be written is no error. */
cfx_wordnet *cfx_wordnet_load(const char *dir);
void cfx_wordnet_free(cfx_wordnet *wn);
int32_t cfx_wordnet_count(const cfx_wordnet *wn);
/* The NLTK name of synset s ("chair.n.01"), owned by wn; NULL when s is out of range. */
const char *cfx_wordnet_name(const cfx_wordnet *wn, int32_t s);
/* The synset's byte offset in data.noun (its WordNet id). */
int32_t cfx_wordnet_offset(const cfx_wordnet *wn, int32_t s);
/* Non-zero when s has the form of a noun synset name, "<lemma>.n.<digits>". */
int cfx_wordnet_is_name(const char *s);
/* By name: the NN-th sense of the lemma in index.noun (case-insensitive). CFX_ENOTFOUND with a
 * message naming it when there is no such synset. */
cfx_status cfx_wordnet_synset(const cfx_wordnet *wn, const char *name, int32_t *out);
/* By word: the first noun sense of the first base form morphy finds (noun.exc, then the
 * detachment rules), as NLTK's synsets(word, 'n')[0]. Spaces count as underscores. */
cfx_status cfx_wordnet_word(const cfx_wordnet *wn, const char *word, int32_t *out);
/* A synset name when the string looks like one, else a word. */
cfx_status cfx_wordnet_lookup(const cfx_wordnet *wn, const char *concept, int32_t *out);
/* The parents of s (hypernyms sorted by name, then instance hypernyms sorted by name, as NLTK
 * returns them); *parents points into wn. Returns their number. */
int32_t cfx_wordnet_parents(const cfx_wordnet *wn, int32_t s, const int32_t **parents);
/* Edges on the shortest path between s and the root entity.n.01 over hypernym and hyponym edges
 * (as cfx_wordnet_distances; a path may step down to a shared child and up again). */
int32_t cfx_wordnet_depth(const cfx_wordnet *wn, int32_t s);
/* The concept path of s: the first root-to-s path of maximal length in NLTK's depth-first
 * order (Synset.hypernym_paths()). Writes it root first into path when cap is large enough
 * (path may be NULL) and returns its length (WordNet 3.0: at most 20). */
int32_t cfx_wordnet_concept_path(const cfx_wordnet *wn, int32_t s, int32_t *path, int32_t cap);
/* Every root-to-s path in NLTK's order, root first, concatenated into *flat with their lengths
 * in *lens. The caller frees *flat and *lens with cfx_free. */
cfx_status cfx_wordnet_paths(const cfx_wordnet *wn, int32_t s, int32_t **flat, int32_t **lens,
                             int32_t *npaths);
/* Shortest-path lengths from src to every synset over hypernym and hyponym edges (both kinds
 * of pointer, both directions, each edge of length one). dist has cfx_wordnet_count entries. */
cfx_status cfx_wordnet_distances(const cfx_wordnet *wn, int32_t src, int32_t *dist);

/* ================================================================= hungarian === */
/* The linear assignment problem on a rectangular nr x nc cost matrix (row-major): choose
 * min(nr, nc) pairs, no row or column twice, with the least total cost. An entry of +INFINITY
 * forbids that pair (as in scipy.optimize.linear_sum_assignment); NaN and -INFINITY are errors.
 * Shortest augmenting paths (Jonker-Volgenant, Crouse's rectangular form), O(min^2 max). */

/* Writes each row's column into col_of_row (nr entries; -1 for the rows left out when nr > nc)
 * and the total cost into *total (may be NULL). Returns CFX_ENOTFOUND ("infeasible") when the
 * forbidden pairs leave no complete assignment, CFX_EINVAL on NaN or -inf. Allocates scratch. */
cfx_status cfx_hungarian_solve(const double *cost, int nr, int nc, int *col_of_row, double *total);
/* The same without allocating: work is a caller-owned block of cfx_hungarian_work_size(nr, nc)
 * bytes, aligned for double (cfx_malloc's blocks are). For hot loops and worker threads. */
size_t cfx_hungarian_work_size(int nr, int nc);
cfx_status cfx_hungarian_solve_work(const double *cost, int nr, int nc, int *col_of_row,
                                    double *total, void *work);

/* =================================================================== concepts === */
/* Semantic edits between images annotated with concepts (V-CECE). A concept is a WordNet noun
 * synset name ("chair.n.01") or a plain word ("chairs", its first noun sense). Example:
 *
 *     cfx_wordnet *wn = cfx_wordnet_load(NULL);
 *     cfx_concepts *c = cfx_concepts_new(wn, NULL);            // the reference's cece costs
 *     cfx_concepts_data *d = cfx_concepts_data_load(c, "vg.json", "claude-3-haiku",
 *                                                  CFX_UNKNOWN_ERROR, NULL);
 *     cfx_nearest r;
 *     int32_t q = cfx_concepts_data_find(d, 11);
 *     cfx_concepts_nearest(d, &q, 1, NULL, &r);               // r.target, r.cost
 *     cfx_edit_set es;                                         // and the edits themselves
 *     ... cfx_concepts_edits(c, src, ns, dst, nd, &es); cfx_edit_set_deinit(&es);
 *     cfx_concepts_data_free(d); cfx_concepts_free(c); cfx_wordnet_free(wn);
 */

typedef enum {
    CFX_COST_CECE = 0, /* the reference code: concept = path synsets + word; sub |A^B|, ins |A| */
    CFX_COST_GRAPH = 1 /* the paper's prose: sub = shortest path, ins/del = distance to root */
} cfx_cost_model;

/* How the concepts left after pairing identical ones are matched. */
typedef enum {
    CFX_ASSIGN_OPTIMAL = 0,  /* the least total cost: the assignment weighs each pair against
                                deleting and inserting its concepts (the true minimum) */
    CFX_ASSIGN_REFERENCE = 1 /* the released V-CECE code: an assignment on substitution costs
                                alone (scipy's linear_sum_assignment), leftovers inserted or
                                deleted afterwards; never cheaper, sometimes dearer */
} cfx_assignment;

typedef struct cfx_cost_options {
    cfx_cost_model model; /* default (0): CFX_COST_CECE */
    /* 0 (default): no cap. > 0: a substitution dearer than this is not actionable; the edit set
     * then deletes the source concept and inserts the target instead. */
    int64_t max_sub;
    cfx_assignment assignment; /* default (0): CFX_ASSIGN_OPTIMAL */
} cfx_cost_options;

/* A vocabulary of concepts with their sets and all pairwise costs (kept as a triangle of
 * n(n+1)/2 int32, filled as concepts are added: about 2 MB for VG's 767 concepts). Adding is
 * not thread-safe; everything else is read-only and may run in parallel. */
typedef struct cfx_concepts cfx_concepts;

/* wn must outlive the result; opts NULL means the defaults. NULL on failure. */
cfx_concepts *cfx_concepts_new(const cfx_wordnet *wn, const cfx_cost_options *opts);
void cfx_concepts_free(cfx_concepts *c);
/* Interns a concept (spaces become underscores) and returns its id (0, 1, ... in order of
 * first appearance). CFX_ENOTFOUND with a message naming it for an unknown synset or word. */
cfx_status cfx_concepts_add(cfx_concepts *c, const char *concept, int32_t *id);
int32_t cfx_concepts_count(const cfx_concepts *c);
/* The concept as added, and its word (the part before the first dot); owned by c. */
const char *cfx_concepts_name(const cfx_concepts *c, int32_t id);
const char *cfx_concepts_word(const cfx_concepts *c, int32_t id);
int32_t cfx_concepts_synset(const cfx_concepts *c, int32_t id);
/* The concept's set (synset names and the word, in element order; strings owned by the
 * WordNet or by c): writes up to cap names, returns the set's size. */
int32_t cfx_concepts_set(const cfx_concepts *c, int32_t id, const char **names, int32_t cap);
/* Insertion (= deletion) cost, and the substitution cost before any cap. */
int64_t cfx_concepts_insert_cost(const cfx_concepts *c, int32_t a);
int64_t cfx_concepts_sub_cost(const cfx_concepts *c, int32_t a, int32_t b);

typedef enum { CFX_EDIT_INSERT, CFX_EDIT_DELETE, CFX_EDIT_SUBSTITUTE } cfx_edit_kind;
typedef struct cfx_edit {
    cfx_edit_kind kind;
    int32_t from, to; /* concept ids; from is -1 for an insertion, to is -1 for a deletion */
    int64_t cost;
} cfx_edit;
/* An owned list of edits; release with cfx_edit_set_deinit. */
typedef struct cfx_edit_set {
    int64_t cost; /* total cost */
    cfx_edit *edits;
    int32_t n;
} cfx_edit_set;
void cfx_edit_set_deinit(cfx_edit_set *e);

/* The edit set turning the multiset src into dst: identical concepts pair at cost 0, the rest
 * is a rectangular assignment, leftovers are deleted or inserted. With CFX_ASSIGN_OPTIMAL (the
 * default) the set is the cheapest; with CFX_ASSIGN_REFERENCE it is the released V-CECE code's.
 * Edits are listed substitutions first, then deletions, then insertions. */
cfx_status cfx_concepts_edits(const cfx_concepts *c, const int32_t *src, int32_t ns,
                              const int32_t *dst, int32_t nd, cfx_edit_set *out);

/* A dataset of images: id, concepts (a multiset) and one label each. */
typedef struct cfx_concepts_data cfx_concepts_data;
typedef enum {
    CFX_UNKNOWN_ERROR = 0, /* an unknown concept fails the load, naming it and its image */
    CFX_UNKNOWN_SKIP = 1   /* unknown concepts are dropped and counted */
} cfx_unknown_policy;

/* An empty dataset over the vocabulary c (which must outlive it). */
cfx_concepts_data *cfx_concepts_data_new(cfx_concepts *c);
/* Appends an image (concept ids of c; n may be 0). The label string is copied. Not to be
 * called while a search on d runs. */
cfx_status cfx_concepts_data_add(cfx_concepts_data *d, int64_t id, const int32_t *concepts,
                                 int32_t n, const char *label);
/* Reads {"images": [{"id": 11, "objects": ["chair.n.01", ...], "labels": {"key": "office"}},
 * ...]}, labelling each image by labels[label_key]. Adds the concepts to c. NULL on failure
 * with a message: malformed JSON (or text after the document) gives file, line and column; a
 * missing label key names the image and the keys it has; ids must be whole numbers within
 * +-2^53 and unique. *skipped (may be NULL) counts concepts dropped by
 * CFX_UNKNOWN_SKIP. The caller frees the result with cfx_concepts_data_free. */
cfx_concepts_data *cfx_concepts_data_load(cfx_concepts *c, const char *path, const char *label_key,
                                          cfx_unknown_policy unknown, int64_t *skipped);
void cfx_concepts_data_free(cfx_concepts_data *d);
int32_t cfx_concepts_data_count(const cfx_concepts_data *d);
int64_t cfx_concepts_data_id(const cfx_concepts_data *d, int32_t i);
const char *cfx_concepts_data_label(const cfx_concepts_data *d, int32_t i);
/* Image i's concepts, sorted by id (owned by d). */
const int32_t *cfx_concepts_data_image(const cfx_concepts_data *d, int32_t i, int32_t *n);
/* Image i's concepts in the order they were given (owned by d): the order in which
 * CFX_ASSIGN_REFERENCE matches them, as the released code did. */
const int32_t *cfx_concepts_data_listed(const cfx_concepts_data *d, int32_t i, int32_t *n);
/* The index of the first image with this id, -1 if none. */
int32_t cfx_concepts_data_find(const cfx_concepts_data *d, int64_t id);
/* How many images have no concepts (their edits are pure insertions or deletions). */
int32_t cfx_concepts_data_empty(const cfx_concepts_data *d);

/* Closest counterfactual of an image: the image with another label and the least edit cost,
 * ties going to the earlier image in the dataset. */
typedef struct cfx_nearest {
    int32_t query, target; /* image indices; target -1 when every image has the query's label */
    int64_t cost;          /* -1 when there is no target */
    int32_t candidates;    /* images with another label */
} cfx_nearest;
typedef struct cfx_nearest_options {
    const cfx_progress *progress; /* default NULL */
    int exhaustive;               /* default 0; 1 solves every candidate (for checking) */
    int64_t *solved;              /* if not NULL, receives the number of assignments solved */
    const int32_t *avoid;         /* NULL, or per query a label index (-1: none) the target must not
                                   * have either (the classifier's label, when it is not the data's) */
} cfx_nearest_options;
/* Searches for each of the nq query indices, in parallel over queries with cfx_get_threads()
 * threads; results do not depend on the thread count. opts NULL means the defaults. A search of
 * 16 or more queries (cece costs) first builds an inverted index of the images' set elements
 * inside d, under a lock, so concurrent searches on one dataset are safe; adding an image
 * drops it. Exact: the count bound only skips candidates that cannot win. */
cfx_status cfx_concepts_nearest(const cfx_concepts_data *d, const int32_t *queries, int32_t nq,
                                const cfx_nearest_options *opts, cfx_nearest *out);

/* Global importance of every concept over the images labelled `label` (one entry per concept
 * of the vocabulary in imp): insertions of c minus deletions of c plus substitutions that
 * bring c in minus substitutions that take c out, over each image's optimal edits to its
 * closest counterfactual. *nimages (may be NULL) gets the class's size. */
cfx_status cfx_concepts_importance(const cfx_concepts_data *d, const char *label,
                                   const cfx_progress *progress, double *imp, int32_t *nimages);

typedef enum {
    CFX_ORDER_LOCAL,       /* this image's edits, heuristic order: deletions, substitutions,
                              insertions, each cheapest first (a vision LLM may replace it) */
    CFX_ORDER_GLOBAL,      /* the class's edits by importance, those this image allows */
    CFX_ORDER_LOCAL_GLOBAL /* this image's edits ordered by the class's importance */
} cfx_order_mode;
/* The edits to apply to image `query`, in order. An edit's importance score is imp(to) for an
 * insertion, -imp(from) for a deletion, imp(to) - imp(from) for a substitution; higher first.
 * The caller owns *out (cfx_edit_set_deinit). */
cfx_status cfx_concepts_order(const cfx_concepts_data *d, int32_t query, cfx_order_mode mode,
                              const cfx_progress *progress, cfx_edit_set *out);

/* ================================================================ edit loop === */
/* V-CECE's loop on pixels: an image, its concepts (with boxes and masks), a black-box
 * classifier; the edits to the image's closest counterfactual are applied one a step by an
 * image editor, in the order of a mode, and the classifier is asked after every step until its
 * label flips, the edits run out, or a step cap. Classifiers, editors and planners are structs
 * of function pointers and user data, so other implementations (an LLM, an inpainting server)
 * plug in without changing the loop. Images are (3,H,W) floats in [0,1]. */

/* A classifier over a fixed class list. classify writes the class index to *label, or -1
 * when the answer is outside the list (then `answer`, of answer_cap bytes, holds it); scores
 * (num_classes, may be NULL) receive class probabilities when has_scores is set. A failure to
 * run at all returns an error with a message. */
typedef struct cfx_image_classifier {
    cfx_status (*classify)(void *user, const cfx_tensor *image, int *label, float *scores,
                           char *answer, size_t answer_cap);
    void (*free)(void *user); /* releases user; may be NULL */
    void *user;
    int num_classes;
    char **classes; /* (num_classes) owned copies */
    int has_scores;
    /* May be NULL: what the last classify call saw, as a JSON object the loop records with
     * the step (the LLM classifier's votes, dropped answers and stability); owned by the
     * classifier, valid until its next call; NULL when there is nothing to say. */
    const char *(*report)(void *user);
} cfx_image_classifier;
/* An ONNX classifier with one image input (1,3,H,W) and one output of num_classes scores
 * (probabilities when its last op is a Softmax, else logits). NULL with a message. */
cfx_image_classifier *cfx_image_classifier_onnx(const char *path, const char *const *classes,
                                                int num_classes);
/* Any program: command is a shell command in which {image} is replaced by the path of a PNG
 * of the image (quoted); its stdout, trimmed, is the label, matched without regard to case.
 * tmpdir holds the PNG (NULL: /tmp). NULL with a message (no {image} in the command). */
cfx_image_classifier *cfx_image_classifier_command(const char *command, const char *const *classes,
                                                   int num_classes, const char *tmpdir);
/* A vision LLM behind the OpenAI chat-completions API (o as for cfx_llm_new; its cache is not
 * used), asked V-CECE's classification prompt with the class list ("Valid classes are summer,
 * winter and only these, ...") and the image, `votes` times in fresh requests (0 reads as 7).
 * Answers are matched to the classes without regard to case, quotes, white space or a final
 * full stop; others are dropped. The label is the majority of the kept votes, ties to the class
 * answered first; -1 when every answer was dropped (`answer` then holds the first). report
 * gives {"votes": [...], "dropped": [...], "stability": share of kept votes that agree with
 * the label}. A request failing after its retries fails the call. NULL with a message. */
cfx_image_classifier *cfx_image_classifier_llm(const cfx_llm_options *o, int votes,
                                               const char *const *classes, int num_classes);
/* Frees the classifier (and its user data); accepts NULL. */
void cfx_image_classifier_free(cfx_image_classifier *c);

/* One edit for an editor: remove `from` (a DELETE), put `to` in (an INSERT), or both (a
 * SUBSTITUTE). mask (h*w bytes, non-zero inside) is the old concept's region, NULL for an
 * insertion; box (x0, y0, x1, y1, exclusive) is the old concept's box or the place to insert. */
typedef struct cfx_edit_request {
    cfx_edit_kind kind;
    const char *from, *to; /* concept names (NULL when absent) */
    const uint8_t *mask;
    int box[4];
    int64_t image_id; /* the image being edited (an editor may vary its choices by it) */
    int step;         /* 1 for the first edit */
} cfx_edit_request;
/* An editor returns the edited image as a new tensor (*out, owned by the caller; the loop
 * refuses one of another size) and, when it knows it, the inserted concept's region in
 * new_mask (h*w bytes) with *has_mask set. */
typedef struct cfx_image_editor {
    cfx_status (*edit)(void *user, const cfx_edit_request *req, const cfx_tensor *image,
                       cfx_tensor **out, uint8_t *new_mask, int *has_mask);
    void (*free)(void *user);
    void *user;
} cfx_image_editor;
/* The built-in editor (no model): removal inpaints the mask (dilated by 2 pixels) from its
 * surroundings by diffusion from the border inward; insertion pastes an exemplar of the concept
 * (the concept's box and mask cut from an image of the concept bank: the images of data, a
 * concepts JSON with boxes and masks, read from images/<file>) scaled into the box, opaque on
 * its mask with a one-pixel feathered rim; substitution does both. NULL with a message. */
cfx_image_editor *cfx_image_editor_builtin(const char *data, const char *images);
/* Editors behind HTTP, for an AUTOMATIC1111-compatible web UI at url ("http://host:7860").
 * replacer: POST url/replacer/replace (the Replacer extension, as V-CECE ran it): input_image
 * (base64 PNG), detection_prompt (the old concept's word, or `region` for an insertion),
 * positive_prompt (the new concept's word, or `background` for a removal), V-CECE's
 * negative_prompt, mask_blur 10, cfg_scale 10, denoise 1, steps 40, use_hires_fix true.
 * img2img: POST url/sdapi/v1/img2img with init_images, mask (base64 PNG of the concept's mask,
 * or the insertion's box, dilated by 2 pixels and blurred), prompt, negative_prompt,
 * denoising_strength 1, inpainting_fill 1, inpaint_full_res, mask_blur 10, steps 40,
 * cfg_scale 10, width and height. The reply's "image" (or "images"[0], base64 PNG or JPEG)
 * must have the input's size; a reply without one ("nothing detected"), a reply that is not
 * JSON, an image that does not decode or of another size is an error for that edit. NULL with
 * a message on a bad URL or options. */
typedef struct cfx_http_editor_options {
    double timeout;         /* seconds per attempt; 0 reads as 300 */
    int retries;            /* attempts after the first, on timeouts, connection errors, 5xx */
    double backoff;         /* seconds before the first retry, doubled after; 0 reads as 1 */
    const char *background; /* a removal's prompt; NULL: "empty background" */
    const char *region;     /* what an insertion paints over (Replacer); NULL: "background" */
} cfx_http_editor_options;
cfx_image_editor *cfx_image_editor_replacer(const char *url, const cfx_http_editor_options *o);
cfx_image_editor *cfx_image_editor_img2img(const char *url, const cfx_http_editor_options *o);
void cfx_image_editor_free(cfx_image_editor *e);
/* Fills the pixels where mask (h*w) is non-zero from the pixels around them: a pass from the
 * border inward sets each to the mean of its known neighbours, then Jacobi sweeps smooth the
 * fill. image is (c,h,w), changed in place. */
cfx_status cfx_image_inpaint(float *image, int c, int h, int w, const uint8_t *mask);

/* A planner picks the next of n remaining edits (local mode). regions[i] (h*w bytes) is the
 * region edit i touches: its old concept's mask, or the place an insertion would take. */
typedef struct cfx_edit_planner {
    cfx_status (*next)(void *user, const cfx_tensor *image, int current, const cfx_edit *edits,
                       const uint8_t *const *regions, int n, int *choice);
    void (*free)(void *user);
    void *user;
    /* May be NULL: what the last next call did as a JSON object the loop records with the step
     * (the LLM planner's answers, and whether it fell back); owned by the planner, valid until
     * its next call; NULL when there is nothing to say. */
    const char *(*report)(void *user);
} cfx_edit_planner;
/* The built-in planner: the edit whose region, inpainted, drops the classifier's score of the
 * current label most (or, for a classifier without scores, changes the label); ties go to the
 * earlier edit. The classifier must outlive the planner. */
cfx_edit_planner *cfx_edit_planner_builtin(cfx_image_classifier *classifier);
/* A vision LLM as the planner (o as for cfx_llm_new; its cache is not used): it is shown the
 * image, its current label and the n remaining edits, numbered, each as [action, concept,
 * where] (where: the region's place, "top left" ... "centre"), and answers with the next one.
 * An answer that names none (matched without regard to case, quotes or brackets) is asked
 * again once; then, or when a request fails, the built-in planner over classifier chooses.
 * report gives {"answers": [...], "fallback": bool, "error": "..." when a request failed}.
 * c (the edits' vocabulary) and classifier must outlive the planner. NULL with a message. */
cfx_edit_planner *cfx_edit_planner_llm(const cfx_llm_options *o, const cfx_concepts *c,
                                       cfx_image_classifier *classifier);
void cfx_edit_planner_free(cfx_edit_planner *p);

typedef struct cfx_edit_loop_options {
    const cfx_concepts_data *data; /* the concepts and labels (nearest counterfactuals) */
    const char *annotations;       /* the same JSON, read for files, boxes and masks */
    const char *images;            /* folder of the images (an image's "file", else <id>.png) */
    cfx_image_classifier *classifier;
    cfx_image_editor *editor;
    cfx_edit_planner *planner; /* local mode; NULL: the built-in planner */
    cfx_order_mode mode;
    const char *out;        /* the run folder: results.jsonl, steps/<id>/<k>.png */
    const int64_t *queries; /* image ids; NULL: every image */
    int32_t nqueries;
    const char *split; /* NULL, or only the images whose "split" is this */
    int32_t limit;     /* > 0: only the first limit images of the selection */
    int max_steps;     /* default 10 */
    int resume;        /* non-zero: keep the images already in results.jsonl */
    int away;          /* non-zero: when the classifier's original label is a data label other
                        * than the image's and the closest counterfactual has it, aim at the
                        * closest one with neither (a flip then means leaving the classifier's
                        * label, not reaching it) */
    cfx_progress progress;
    const struct cfx_edit_loop_shard *shard; /* images shared among processes; NULL: none */
} cfx_edit_loop_options;
/* The loop's images shared among processes (cfx-mpi's concepts edit), each running the loop
 * with the same options and out (a folder all of them see: each writes its images' steps).
 * Image i of the n to run (counted after those resume keeps) is run by the process whose
 * mine(user, i) is non-zero. The writer alone writes results.jsonl, every line in order: its own,
 * and those take(user, i, &line) returns (malloc'd; the loop frees it) for the others; the
 * other processes hand each line they make to give(user, i, line). The summary counts the
 * lines a process wrote or gave. */
typedef struct cfx_edit_loop_shard {
    int (*mine)(void *user, int32_t i);
    cfx_status (*take)(void *user, int32_t i, char **line);
    cfx_status (*give)(void *user, int32_t i, const char *line);
    int writer;
    void *user;
} cfx_edit_loop_shard;
typedef struct cfx_edit_loop_summary {
    int32_t images, done_before, flipped, failed; /* failed: images recorded with an error */
} cfx_edit_loop_summary;
/* Runs the loop over the queries and writes one JSON line per image to out/results.jsonl
 * (a new file; with resume, appended to): query, target, mode, source and target labels, cost,
 * labels (the classifier's after each step, the original first), agrees (its original label
 * is the data's), edits (action, from, to), steps, flipped, stop_reason ("flip", "exhausted",
 * "cap", or "error" with "error"), seconds (order, plan, edit, classify: wall time per phase),
 * min_edits when the annotations have it, and the step
 * images. A problem with one image (a concept WordNet lacks, no boxes or masks, an unreadable
 * image, an answer outside the class list, an editor's image of another size) is recorded for
 * that image and the run goes on. Lines are flushed and synced as they are written; with
 * resume, images already there are skipped and a torn last line is dropped. out must exist. */
cfx_status cfx_edit_loop_run(const cfx_edit_loop_options *o, cfx_edit_loop_summary *sum);
/* A copy of d (same vocabulary) labelled by the classifier instead: V-CECE searches the
 * counterfactuals among the labels of the classifier it explains. Each image is read through
 * the annotations from images. The caller frees *out. */
cfx_status cfx_edit_loop_relabel(const cfx_concepts_data *d, const char *annotations,
                                 const char *images, cfx_image_classifier *clf,
                                 const cfx_progress *progress, cfx_concepts_data **out);

/* =================================================================== loop_run === */
/* A run folder of cfx_edit_loop_run read back (results.jsonl; a torn last line is ignored), and
 * its realism metrics. Step 0 of a record is the original image; step k the image after edit k
 * (action "insert", "remove" or "replace"; from/to the concepts, NULL when none), with the
 * classifier's label after it. Strings and arrays are owned by the run. */
typedef struct cfx_loop_step {
    char *action, *from, *to; /* NULL for step 0 */
    char *label;              /* the classifier's label of this image; NULL when not recorded */
    char *image;              /* the step's PNG, relative to the run folder; NULL when none */
} cfx_loop_step;
typedef struct cfx_loop_record {
    int64_t query, target; /* image ids; target -1 when there is none */
    char *source_label, *target_label, *stop_reason, *error; /* NULL when absent */
    int steps, flipped, agrees, min_edits;                   /* min_edits -1 when unknown */
    int nsteps;                                              /* entries of step (steps + 1) */
    cfx_loop_step *step;
    /* An LLM classifier's labels ("votes"): the sum of their stabilities, and how many. */
    double stability;
    int nstability;
} cfx_loop_record;
typedef struct cfx_loop_run {
    char *dir, *name; /* the folder, and its last component (the run's name in tables) */
    char *mode;       /* local, global or local-global: the first record's */
    int32_t n;
    cfx_loop_record *rec;
} cfx_loop_run;
/* NULL with a message naming the file and line when dir has no readable results.jsonl or a
 * line is not a record of cfx concepts edit. Free with cfx_loop_run_free. */
cfx_loop_run *cfx_loop_run_open(const char *dir);
void cfx_loop_run_free(cfx_loop_run *r);

/* FID, CMMD and S3 of the loops that flipped (the counterfactual examples), V-CECE's realism
 * metrics after Jeanneret et al.: FID and CMMD (src/metrics) between the set of source images
 * (step 0) and the set of final images (the flipping step), and S3 the cosine similarity of
 * each source image's features and its counterfactual's (the paper's network is SimSiam),
 * summarised by cfx_cosine_stats. Each metric uses its own network when given (an ONNX feature
 * network as cfx_features_new takes it, labelled by its file name), else the fallback
 * classifier's feature tensor, labelled "classifier" as cfx_evaluate labels it; with neither
 * the metric is NaN and its label empty. All the run's images must have one size. Fewer than
 * 2 flipped loops: FID and CMMD are NaN (S3 has its count). */
typedef struct cfx_loop_metrics_options {
    const char *classifier, *classifier_features; /* ONNX classifier; tensor NULL: "features" */
    const char *fid_model, *fid_features;         /* or NULL */
    const char *cmmd_model, *cmmd_features;       /* or NULL */
    const char *s3_model, *s3_features;           /* or NULL */
    int64_t batch;                                /* images per forward pass; 0 reads as 32 */
} cfx_loop_metrics_options;
typedef struct cfx_loop_metrics {
    int64_t pairs; /* flipped loops: the (source, counterfactual) pairs measured */
    double fid, cmmd;
    cfx_cosine_summary s3;
    char fid_label[64], cmmd_label[64], s3_label[64]; /* "classifier", "inception", or "" */
} cfx_loop_metrics;
cfx_status cfx_loop_run_metrics(const cfx_loop_run *r, const cfx_loop_metrics_options *o,
                                cfx_loop_metrics *out);

/* ====================================================================== study === */
/* The human study of V-CECE (its Table 2): people see each flipped loop's source image and its
 * numbered steps (cfx_report_study_html), mark the step at which the label should change (or
 * none) and whether the final image is free of visible artifacts. Their answers are a CSV file
 * with the header participant,run,query,flip_step,artifact_free: run is a run's name, query an
 * image id, flip_step a step number from 1 or "none", artifact_free "yes" or "no". */
typedef struct cfx_study_answer {
    char *participant, *run;
    int64_t query;
    int flip_step; /* 0: none */
    int artifact_free;
} cfx_study_answer;
typedef struct cfx_study_answers {
    int32_t n;
    cfx_study_answer *a;
} cfx_study_answers;
/* NULL with "answers 'x.csv': line N: ..." on a malformed line. Free with cfx_study_free. */
cfx_study_answers *cfx_study_load(const char *path);
void cfx_study_free(cfx_study_answers *s);
/* Per run, over its flipped loops that have answers: the model's mean flip step (the loop's
 * steps), the people's mean flip step (over the answers that name a step), how many answers
 * said none, and the share of answers that found the final image free of artifacts. An answer
 * for a query the run has not flipped is an error naming it (the sheet shows only those). */
typedef struct cfx_study_row {
    int32_t loops, answers, none, artifact_free;
    double model_step, human_step; /* NaN when there is nothing to average */
} cfx_study_row;
cfx_status cfx_study_tally(const cfx_study_answers *s, const cfx_loop_run *r, cfx_study_row *out);

/* #########################################################################################
 * report (src/report/): figures as PNG and the HTML report
 * ###################################################################################### */

/* ===================================================================== canvas === */
/* An RGB drawing surface: 3 planes (R, G, B) of h x w bytes. Colours are 0xRRGGBB. Text is
 * DejaVu Sans (fonts-dejavu-core); without the font, text is skipped (has_text is 0). */
typedef struct cfx_canvas {
    int w, h;
    uint8_t *px;
} cfx_canvas;
cfx_canvas *cfx_canvas_new(int w, int h, uint32_t rgb);
void cfx_canvas_free(cfx_canvas *c);
void cfx_canvas_rect(cfx_canvas *c, int x, int y, int w, int h, uint32_t rgb);
void cfx_canvas_line(cfx_canvas *c, float x0, float y0, float x1, float y1, float width,
                     uint32_t rgb);
/* An image (ch,h,w) in [0,1], ch 1 or 3, at (x, y), each pixel a scale x scale block. */
void cfx_canvas_image(cfx_canvas *c, const float *chw, int ch, int h, int w, int x, int y,
                      int scale);
/* Text of pixel height size with its top at y; align 0 left of x, 1 centred, 2 right. Returns
 * its width. */
int cfx_canvas_text(cfx_canvas *c, int x, int y, float size, uint32_t rgb, int align,
                    const char *text);
int cfx_canvas_has_text(void);
cfx_status cfx_canvas_write_png(const cfx_canvas *c, const char *path);

/* ==================================================================== figures === */
/* The reliability diagram: accuracy per bin of rho against the diagonal, the gap to each bin's
 * mean shaded, with ECE, accuracy and mean rho in the title. */
cfx_status cfx_figure_reliability(const char *path, const cfx_calibration_bin *bins, int nbins,
                                  double ece, double accuracy, double mean_score);
/* A grid of images with a caption under each and a title over each column (a counterfactual
 * strip: rows of examples, columns of the original and each method, rho under each). Small
 * images are enlarged (nearest neighbour) to about 96 pixels a side. */
typedef struct cfx_figure_grid {
    const char *title; /* may be NULL */
    int rows, cols;
    int c, h, w;                   /* every image is (c, h, w) in [0, 1], c 1 or 3 */
    const char *const *col_titles; /* cols entries, may be NULL */
    const float *const *images;    /* rows * cols, row by row; a NULL entry leaves a blank */
    const char *const *captions;   /* rows * cols, may be NULL, as may any entry */
    const uint32_t *caption_rgb;   /* rows * cols colours 0xRRGGBB; NULL: dark grey */
} cfx_figure_grid;
cfx_status cfx_figure_image_grid(const char *path, const cfx_figure_grid *g);
/* A run's strips: dir/<cause>.png (dir/images.png without causes), the first rows images of
 * each cause, the original and then each method, rho under each (green where it passed). */
cfx_status cfx_figure_run_strips(const cfx_run *r, const char *dir, int rows);

/* ======================================================================= html === */
/* The run report: one self-contained HTML file (images embedded, no network access) with the
 * run's settings and bundle, the reliability diagram of a competency report folder
 * (`cfx competency report`), the success table per method and per method and cause, a success
 * chart per cause (inline SVG), a grid per cause (original and each method, rho under each,
 * green at or above the threshold; a click enlarges), and the run's explanations.jsonl beside
 * each row when there is one, with the image's competency map (RUN/maps/<index>.png). Light and
 * dark themes follow the system. Atomic. */
typedef struct cfx_report_options {
    const char *title;          /* NULL: "cfx counterfactual report" */
    const char *competency_dir; /* may be NULL */
    int rows_per_cause;         /* images per grid; 0: 12 */
} cfx_report_options;
cfx_status cfx_report_html(const cfx_run *run, const cfx_report_options *o, const char *path);

/* The report of runs of cfx concepts edit: one self-contained HTML page with a table per run
 * (success, mean edits beside the rule's minimum, FID, CMMD and S3 with their networks'
 * labels, the human study when given) and a strip per image: the source and each step's image
 * with its edit and the classifier's label, the flipping step marked. metrics and study may be
 * NULL (not shown), else one entry per run; strips: at most that many images per run (0: all).
 * Written atomically. */
cfx_status cfx_report_loop_html(const cfx_loop_run *const *runs, int nruns,
                                const cfx_loop_metrics *metrics, const cfx_study_row *study,
                                int strips, const char *path);
/* The human-study sheet: one self-contained HTML page (images inlined) showing each flipped
 * loop's source image and numbered steps with their edits, asking at which step the label
 * should change and whether the final image is free of visible artifacts, and saving the
 * answers as CSV in cfx_study_load's format (a button; the browser downloads the file).
 * limit: at most that many loops per run (0: all). Written atomically. */
cfx_status cfx_report_study_html(const cfx_loop_run *const *runs, int nruns, int limit,
                                 const char *path);

#ifdef __cplusplus
}
#endif
#endif /* CFX_H */
