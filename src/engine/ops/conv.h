/* conv.h - private interface between conv.c (ops, reference kernels, dispatch) and conv_dnnl.c
 * (the oneDNN fast path). */
#ifndef CFX_CONV_H
#define CFX_CONV_H

#include "engine/graph.h"

/* One convolution in conv terms: in (N,Ci,Hi,Wi) * w (Co,Ci/G,R,S) -> out (N,Co,Ho,Wo).
 * A transposed convolution x -> y is stored as the conv y -> x (in = y, out = x), with its
 * output_padding in opad_*. */
typedef struct cfx__conv_geom {
    int64_t N, Ci, Hi, Wi, Co, Ho, Wo, R, S;
    int sh, sw, pt, pl, pb, pr, dh, dw, G;
    int opad_h, opad_w;
} cfx__conv_geom;

/* Reference kernels (im2col / col2im + cfx_blas_sgemm). col has room for one im2col matrix,
 * (Ci/G R S) x (Ho Wo) floats. */
void cfx__conv_ref_fwd(const cfx__conv_geom *g, const float *in, const float *w, float *out,
                       float beta, float *col);
void cfx__conv_ref_bwd_data(const cfx__conv_geom *g, const float *dout, const float *w, float *din,
                            float *col);
void cfx__conv_ref_bwd_w(const cfx__conv_geom *g, const float *in, const float *dout, float *dw,
                         float *col);
/* Direct kernels for small convolutions (src/conv_direct.c): every tap is one contiguous
 * multiply-add over a zero-padded, phase-split copy of the input, without oneDNN's per-call
 * overhead. Correct for every geometry, fast for small batch-1 ones. work holds
 * cfx__conv_direct_work(g) floats (any alignment) and serves both directions. */
/* True when this CPU runs the direct kernels' AVX-512 code, the only one that beats oneDNN
 * (AVX2 is about 2x and the generic code 4x slower). */
bool cfx__conv_direct_preferred(void);
/* Floats of scratch the direct kernels need for geometry g. */
size_t cfx__conv_direct_work(const cfx__conv_geom *g);
/* out = conv(in, w) + b (b may be NULL): overwrites out. */
void cfx__conv_direct_fwd(const cfx__conv_geom *g, const float *in, const float *w, const float *b,
                          float *out, float *work);
/* din += conv^T(dout, w): ADDS into din (the engine's backward contract). */
void cfx__conv_direct_bwd_data(const cfx__conv_geom *g, const float *dout, const float *w,
                               float *din, float *work);
/* The implementations conv.c can pick (conv_dispatch): the reference, oneDNN with blocked
 * layouts for every tensor, or oneDNN with a plain NCHW data gradient (its GEMM-based backward
 * data). Tests and benchmarks can force one for graphs prepared afterwards; AUTO restores the
 * dispatch. */
typedef enum {
    CFX__CONV_PATH_AUTO = -1,
    CFX__CONV_PATH_REF = 0,
    CFX__CONV_PATH_DNNL = 1,
    CFX__CONV_PATH_DNNL_PLAIN_DX = 2,
    CFX__CONV_PATH_DIRECT =
        3 /* direct forward and data gradient; weight gradient by the reference */
} cfx__conv_path;
void cfx__conv_force_path(cfx__conv_path path);
/* Convolutions of fewer multiply-adds per forward pass take the direct kernels (conv.c,
 * conv_dispatch) on a CPU where they are preferred. */
#define CFX__CONV_DIRECT_MACS 2e6
/* Direct-kernel calls (forward or data gradient) in this process: tests check the path taken. */
long long cfx__conv_direct_runs(void);
/* Of those, the ones split by batch among several threads. */
long long cfx__conv_direct_split_runs(void);

/* The oneDNN path. The op's own view: x is the op input, y its output (for a transposed conv
 * x (N,C,H,W) -> y (N,K,P,Q)). new returns NULL when oneDNN is missing or rejects the geometry.
 * The run functions return false when they did nothing (the caller then uses the reference);
 * backward ones ADD into dx, dw, db, or store where their fresh flag is set (din_fresh). */
typedef struct cfx__conv_dnnl cfx__conv_dnnl;
bool cfx__conv_dnnl_available(void);
/* True when oneDNN runs its AVX-512 kernels here, which prefer NHWC activations (brgconv):
 * then the engine holds values between convolutions in NHWC (cfx__op_def.blocked_ok). */
bool cfx__conv_dnnl_nhwc(void);
/* What a oneDNN convolution is built for. */
typedef struct cfx__conv_dnnl_opts {
    bool transposed;       /* a ConvTranspose */
    bool bias;             /* with a bias input */
    bool need_dx, need_dw; /* backward data / weights (and bias) will run */
    bool plain_dx;         /* backward data in NCHW by oneDNN's GEMM-based kernel */
    bool one_thread;       /* build and run with OpenMP set to one thread */
    /* The op's x / y (and their gradients) are held in NHWC, the layout the engine plans
     * between convolutions (cfx__op_def.blocked_ok), instead of NCHW. */
    bool blocked_x, blocked_y;
    bool c16_x, c16_y; /* that held layout is nChw16c (cfx__op_args.c16_in0 / c16_out) */
    bool relu;         /* the forward applies max(0, .) to y (a fused ReLU, cfx__op_args.relu) */
    bool clip; /* the forward clips y to [clip_lo, clip_hi] (a fused Clip, cfx__op_args.clip) */
    float clip_lo, clip_hi;
    bool sum; /* the forward adds an NCHW summand to y before the ReLU (cfx__op_args.sum) */
    /* The weights are a constant (cfx__op_args.in_const): their reorder into oneDNN's layout is
     * kept from one pass to the next while the buffer is the same, not redone per pass (at batch
     * 1 it was about a tenth of resnet18's forward). */
    bool const_w;
} cfx__conv_dnnl_opts;
cfx__conv_dnnl *cfx__conv_dnnl_new(const cfx__conv_geom *g, const cfx__conv_dnnl_opts *o);
void cfx__conv_dnnl_free(cfx__conv_dnnl *d);
/* b: a Conv's bias, applied by oneDNN; a ConvTranspose's forward is built without one (its
 * caller adds the bias). sum: the summand of an op built with opts.sum (y may be it), else
 * NULL. */
bool cfx__conv_dnnl_fwd(cfx__conv_dnnl *d, const float *x, const float *w, const float *b,
                        const float *sum, float *y);
bool cfx__conv_dnnl_bwd_data(cfx__conv_dnnl *d, const float *dy, const float *w, float *dx,
                             bool fresh);
/* Whether the forward writes y in place, with no reorder from oneDNN's own layout. */
bool cfx__conv_dnnl_dst_plain(const cfx__conv_dnnl *d);
/* Passes the oneDNN path has run in this process (tests check that it is taken). */
long long cfx__conv_dnnl_runs(void);
/* Primitives built in this process on oneDNN's reference kernels (ref:any), hundreds of times
 * slower than its JIT ones: tests check that a shape does not land there. */
long long cfx__conv_dnnl_ref_steps(void);
/* Whether ops built afterwards split their batch among threads (on by default; tests compare
 * both ways). */
void cfx__conv_dnnl_split(bool on);
/* Passes run split by batch in this process. */
long long cfx__conv_dnnl_split_runs(void);
bool cfx__conv_dnnl_bwd_w(cfx__conv_dnnl *d, const float *x, const float *dy, float *dw, float *db,
                          bool fresh_dw, bool fresh_db);

#endif
