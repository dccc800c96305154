/* conv.c - 2-D convolution and transposed convolution (ONNX Conv / ConvTranspose), forward and
 * backward, with stride, asymmetric padding, dilation, groups (depthwise included) and bias.
 *
 * Both ops reduce to three kernels on one "conv geometry": in (N,Ci,Hi,Wi) * w (Co,Ci/G,R,S) ->
 * out (N,Co,Ho,Wo):
 *   fwd      out  = conv(in, w)            (Conv forward; ConvTranspose backward to x)
 *   bwd_data din += conv^T(dout, w)        (Conv backward to x; ConvTranspose forward)
 *   bwd_w    dw  += corr(in, dout)         (both ops' weight gradients)
 * A transposed convolution x (N,C,H,W), w (C,K/G,R,S) -> y (N,K,P,Q) is exactly the data
 * gradient of the convolution y -> x with the same weight tensor, so it reuses the geometry with
 * in = y and out = x.
 *
 * Two implementations share that interface. The reference one is im2col + cfx_blas_sgemm per
 * image and group (col2im for the data gradient); it handles every configuration and is what
 * the tests compare the fast path to. The fast one is oneDNN (src/conv_dnnl.c): primitives built
 * once per shape in prepare, blocked layouts chosen by oneDNN with reorders at the op boundary.
 * conv_dispatch() is the one place that picks between them. */
#include "engine/ops/conv.h"
#include "engine/blas.h"

#include <omp.h>

/* ------------------------------------------------------------------ geometry --- */

static void normalize(const cfx_conv2d_attr *at, int st[2], int pd[4], int dl[2], int *groups) {
    for (int i = 0; i < 2; i++) {
        st[i] = at->stride[i] ? at->stride[i] : 1;
        dl[i] = at->dilation[i] ? at->dilation[i] : 1;
    }
    for (int i = 0; i < 4; i++) pd[i] = at->pad[i];
    *groups = at->groups ? at->groups : 1;
}

/* Strides, dilations and padding larger than these are no convolution anyone runs; the bounds
 * keep every size computed from them inside int64_t. */
#define MAX_STRIDE (1 << 16)
#define MAX_PAD    (1 << 24)

static cfx_status check_attr(const cfx_conv2d_attr *at, bool transposed) {
    for (int i = 0; i < 2; i++) {
        if (at->stride[i] < 0 || at->stride[i] > MAX_STRIDE)
            return cfx_set_error(CFX_EINVAL, "stride must be 1..%d, got (%d, %d)", MAX_STRIDE,
                                 at->stride[0], at->stride[1]);
        if (at->dilation[i] < 0 || at->dilation[i] > MAX_STRIDE)
            return cfx_set_error(CFX_EINVAL, "dilation must be 1..%d, got (%d, %d)", MAX_STRIDE,
                                 at->dilation[0], at->dilation[1]);
        if (at->output_padding[i] < 0 || (!transposed && at->output_padding[i] != 0))
            return cfx_set_error(CFX_EINVAL,
                                 "output_padding (%d, %d) is only valid (>= 0) for ConvTranspose",
                                 at->output_padding[0], at->output_padding[1]);
    }
    for (int i = 0; i < 4; i++)
        if (at->pad[i] < 0 || at->pad[i] > MAX_PAD)
            return cfx_set_error(CFX_EINVAL, "padding must be 0..%d, got (%d, %d, %d, %d)", MAX_PAD,
                                 at->pad[0], at->pad[1], at->pad[2], at->pad[3]);
    if (at->groups < 0) return cfx_set_error(CFX_EINVAL, "groups must be >= 1, got %d", at->groups);
    return CFX_OK;
}

/* What Conv and ConvTranspose check alike: both inputs there, the attributes, 4-D shapes; then
 * the strides, padding, dilation and groups with their defaults, into g. */
static cfx_status common_geometry(const cfx__op_args *a, bool transposed, cfx__conv_geom *g) {
    const cfx_tensor *x = a->in[0], *w = a->in[1];
    const cfx_conv2d_attr *at = a->attr;
    char xs[96], ws[96];
    if (!x || !w) return cfx_set_error(CFX_EINVAL, "needs an input and a weight");
    CFX_TRY(check_attr(at, transposed));
    if (x->ndim != 4 || w->ndim != 4)
        return cfx_set_error(CFX_ESHAPE, "input %s and weight %s must both be 4-D (N,C,H,W), %s",
                             cfx__shape_fmt(x, xs, sizeof xs), cfx__shape_fmt(w, ws, sizeof ws),
                             transposed ? "(C,K/groups,R,S)" : "(K,C/groups,R,S)");
    int st[2], pd[4], dl[2], G;
    normalize(at, st, pd, dl, &G);
    g->sh = st[0], g->sw = st[1], g->pt = pd[0], g->pl = pd[1], g->pb = pd[2], g->pr = pd[3];
    g->dh = dl[0], g->dw = dl[1], g->G = G;
    return CFX_OK;
}

/* Conv: x (N,C,H,W), w (K,C/G,R,S) -> y (N,K,P,Q). */
static cfx_status conv_geometry(const cfx__op_args *a, cfx__conv_geom *g) {
    const cfx_tensor *x = a->in[0], *w = a->in[1], *b = a->nin > 2 ? a->in[2] : NULL;
    char xs[96], ws[96], bs[96];
    CFX_TRY(common_geometry(a, false, g));
    int G = g->G;
    g->N = x->shape[0], g->Ci = x->shape[1], g->Hi = x->shape[2], g->Wi = x->shape[3];
    g->Co = w->shape[0], g->R = w->shape[2], g->S = w->shape[3];
    if (g->Ci % G || g->Co % G)
        return cfx_set_error(CFX_EINVAL,
                             "groups %d must divide input channels %lld and output channels %lld",
                             G, (long long)g->Ci, (long long)g->Co);
    if (w->shape[1] * G != g->Ci)
        return cfx_set_error(
            CFX_ESHAPE,
            "channel mismatch: input %s has %lld channels but weight %s with groups %d "
            "expects %lld",
            cfx__shape_fmt(x, xs, sizeof xs), (long long)g->Ci, cfx__shape_fmt(w, ws, sizeof ws), G,
            (long long)(w->shape[1] * G));
    if (b && (b->ndim != 1 || b->shape[0] != g->Co))
        return cfx_set_error(CFX_ESHAPE, "bias %s must be (%lld) for weight %s",
                             cfx__shape_fmt(b, bs, sizeof bs), (long long)g->Co,
                             cfx__shape_fmt(w, ws, sizeof ws));
    int64_t eh = (g->R - 1) * g->dh + 1, ew = (g->S - 1) * g->dw + 1;
    int64_t ph = g->Hi + g->pt + g->pb, pw = g->Wi + g->pl + g->pr;
    if (eh > ph || ew > pw)
        return cfx_set_error(CFX_ESHAPE,
                             "kernel %lldx%lld (dilated %lldx%lld) is larger than the padded input "
                             "%lldx%lld of %s",
                             (long long)g->R, (long long)g->S, (long long)eh, (long long)ew,
                             (long long)ph, (long long)pw, cfx__shape_fmt(x, xs, sizeof xs));
    g->Ho = (ph - eh) / g->sh + 1;
    g->Wo = (pw - ew) / g->sw + 1;
    return CFX_OK;
}

/* ConvTranspose: x (N,C,H,W), w (C,K/G,R,S) -> y (N,K,P,Q), seen as the conv y -> x. */
static cfx_status convt_geometry(const cfx__op_args *a, cfx__conv_geom *g) {
    const cfx_tensor *x = a->in[0], *w = a->in[1], *b = a->nin > 2 ? a->in[2] : NULL;
    const cfx_conv2d_attr *at = a->attr;
    char xs[96], ws[96], bs[96];
    CFX_TRY(common_geometry(a, true, g));
    int G = g->G, st[2] = {g->sh, g->sw}, dl[2] = {g->dh, g->dw};
    int pd[4] = {g->pt, g->pl, g->pb, g->pr};
    int64_t C = x->shape[1];
    if (w->shape[0] != C)
        return cfx_set_error(CFX_ESHAPE,
                             "channel mismatch: input %s has %lld channels but weight %s has %lld "
                             "(ConvTranspose weight is (C_in, K/groups, R, S))",
                             cfx__shape_fmt(x, xs, sizeof xs), (long long)C,
                             cfx__shape_fmt(w, ws, sizeof ws), (long long)w->shape[0]);
    if (C % G)
        return cfx_set_error(CFX_EINVAL, "groups %d must divide input channels %lld", G,
                             (long long)C);
    int64_t K = w->shape[1] * G;
    if (b && (b->ndim != 1 || b->shape[0] != K))
        return cfx_set_error(CFX_ESHAPE, "bias %s must be (%lld) for weight %s with groups %d",
                             cfx__shape_fmt(b, bs, sizeof bs), (long long)K,
                             cfx__shape_fmt(w, ws, sizeof ws), G);
    for (int i = 0; i < 2; i++)
        if (at->output_padding[i] >= CFX_MAX(st[i], dl[i]))
            return cfx_set_error(CFX_EINVAL,
                                 "output_padding (%d, %d) must be smaller than stride or dilation",
                                 at->output_padding[0], at->output_padding[1]);
    int64_t R = w->shape[2], S = w->shape[3];
    int64_t P =
        (x->shape[2] - 1) * st[0] - pd[0] - pd[2] + dl[0] * (R - 1) + at->output_padding[0] + 1;
    int64_t Q =
        (x->shape[3] - 1) * st[1] - pd[1] - pd[3] + dl[1] * (S - 1) + at->output_padding[1] + 1;
    if (P < 1 || Q < 1)
        return cfx_set_error(CFX_ESHAPE, "output would be %lldx%lld for input %s, weight %s",
                             (long long)P, (long long)Q, cfx__shape_fmt(x, xs, sizeof xs),
                             cfx__shape_fmt(w, ws, sizeof ws));
    /* The conv y (N,K,P,Q) -> x (N,C,H,W) with weight (C, K/G, R, S). Ho, Wo are set explicitly:
     * with output_padding >= stride the last rows of y feed no x. */
    g->N = x->shape[0], g->Ci = K, g->Hi = P, g->Wi = Q;
    g->Co = C, g->Ho = x->shape[2], g->Wo = x->shape[3], g->R = R, g->S = S;
    g->opad_h = at->output_padding[0], g->opad_w = at->output_padding[1];
    return CFX_OK;
}

/* ------------------------------------------------------------- reference path --- */

static bool is_pointwise(const cfx__conv_geom *g) {
    return g->R == 1 && g->S == 1 && g->sh == 1 && g->sw == 1 && !g->pt && !g->pl && !g->pb &&
           !g->pr && g->Ho == g->Hi && g->Wo == g->Wi;
}

/* The output, the input and one im2col matrix must be tensors cfx can hold (at most 2^40
 * elements): huge padding or strides would otherwise overflow the sizes computed from them. */
static cfx_status check_sizes(const cfx__conv_geom *g) {
    int64_t n;
    CFX_TRY(cfx_tensor_check_shape(4, (int64_t[]){g->N, g->Co, g->Ho, g->Wo}, &n));
    CFX_TRY(cfx_tensor_check_shape(4, (int64_t[]){g->N, g->Ci, g->Hi, g->Wi}, &n));
    return cfx_tensor_check_shape(5, (int64_t[]){g->Ci / g->G, g->R, g->S, g->Ho, g->Wo}, &n);
}

/* Floats of one im2col matrix (one image, one group): (Ci/G R S) x (Ho Wo). */
static size_t col_floats(const cfx__conv_geom *g) {
    return is_pointwise(g) ? 0 : (size_t)(g->Ci / g->G * g->R * g->S * g->Ho * g->Wo);
}

/* The output columns ow in [*lo, *hi) whose input column ow*stride - pad + off lies in [0, W). */
static void valid_range(int64_t n_out, int64_t stride, int64_t start, int64_t W, int64_t *lo,
                        int64_t *hi) {
    /* iw = ow*stride + start; need 0 <= iw < W. */
    int64_t l = start >= 0 ? 0 : (-start + stride - 1) / stride;
    int64_t h = W - start <= 0 ? 0 : (W - start + stride - 1) / stride;
    *lo = CFX_MIN(l, n_out);
    *hi = CFX_MAX(*lo, CFX_MIN(h, n_out));
}

/* src (Cg,Hi,Wi) -> col (Cg R S, Ho Wo), zeros where the window reads padding. im2col and
 * col2im stay serial: the GEMMs around them run on OpenBLAS's own (pthread) threads, and
 * alternating those with OpenMP regions makes the two pools spin against each other (batch 64,
 * 2 threads on 2 busy cores: 3.1 s per step with parallel im2col, 0.22 s without). */
static void im2col(const cfx__conv_geom *g, const float *src, float *col) {
    int64_t Cg = g->Ci / g->G, rows = Cg * g->R * g->S, HW = g->Ho * g->Wo;
    for (int64_t row = 0; row < rows; row++) {
        int64_t c = row / (g->R * g->S), r = row / g->S % g->R, s = row % g->S;
        const float *plane = src + c * g->Hi * g->Wi;
        float *dst = col + row * HW;
        int64_t lo, hi, ws = s * g->dw - g->pl;
        valid_range(g->Wo, g->sw, ws, g->Wi, &lo, &hi);
        for (int64_t oh = 0; oh < g->Ho; oh++) {
            int64_t ih = oh * g->sh - g->pt + r * g->dh;
            float *d = dst + oh * g->Wo;
            if (ih < 0 || ih >= g->Hi) {
                memset(d, 0, (size_t)g->Wo * sizeof *d);
                continue;
            }
            const float *srow = plane + ih * g->Wi + ws;
            for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0;
            if (g->sw == 1)
                memcpy(d + lo, srow + lo, (size_t)(hi - lo) * sizeof *d);
            else
                for (int64_t ow = lo; ow < hi; ow++) d[ow] = srow[ow * g->sw];
            for (int64_t ow = hi; ow < g->Wo; ow++) d[ow] = 0;
        }
    }
}

/* dst (Cg,Hi,Wi) += col2im(col), the (r, s) rows of a channel added in a fixed order. */
static void col2im_add(const cfx__conv_geom *g, const float *col, float *dst) {
    int64_t Cg = g->Ci / g->G, HW = g->Ho * g->Wo;
    for (int64_t c = 0; c < Cg; c++) {
        float *plane = dst + c * g->Hi * g->Wi;
        for (int64_t r = 0; r < g->R; r++)
            for (int64_t s = 0; s < g->S; s++) {
                const float *src = col + ((c * g->R + r) * g->S + s) * HW;
                int64_t lo, hi, ws = s * g->dw - g->pl;
                valid_range(g->Wo, g->sw, ws, g->Wi, &lo, &hi);
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    int64_t ih = oh * g->sh - g->pt + r * g->dh;
                    if (ih < 0 || ih >= g->Hi) continue;
                    float *drow = plane + ih * g->Wi + ws;
                    const float *srow = src + oh * g->Wo;
                    for (int64_t ow = lo; ow < hi; ow++) drow[ow * g->sw] += srow[ow];
                }
            }
    }
}

/* in (N,Ci,Hi,Wi), w (Co,Ci/G,R,S) -> out (N,Co,Ho,Wo); out = beta out + conv. */
void cfx__conv_ref_fwd(const cfx__conv_geom *g, const float *in, const float *w, float *out,
                       float beta, float *col) {
    int64_t Cg = g->Ci / g->G, Kg = g->Co / g->G, RS = g->R * g->S, HWi = g->Hi * g->Wi,
            HWo = g->Ho * g->Wo;
    bool pw = is_pointwise(g);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->G; gr++) {
            const float *src = in + (n * g->Ci + gr * Cg) * HWi;
            if (!pw) im2col(g, src, col);
            cfx_blas_sgemm(0, 0, Kg, HWo, Cg * RS, 1.0f, w + gr * Kg * Cg * RS, Cg * RS,
                           pw ? src : col, HWo, beta, out + (n * g->Co + gr * Kg) * HWo, HWo);
        }
}

/* dout (N,Co,Ho,Wo), w (Co,Ci/G,R,S) -> din (N,Ci,Hi,Wi) += conv^T. */
void cfx__conv_ref_bwd_data(const cfx__conv_geom *g, const float *dout, const float *w, float *din,
                            float *col) {
    int64_t Cg = g->Ci / g->G, Kg = g->Co / g->G, RS = g->R * g->S, HWi = g->Hi * g->Wi,
            HWo = g->Ho * g->Wo;
    bool pw = is_pointwise(g);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->G; gr++) {
            float *dst = din + (n * g->Ci + gr * Cg) * HWi;
            const float *dy = dout + (n * g->Co + gr * Kg) * HWo;
            const float *wg = w + gr * Kg * Cg * RS;
            if (pw) {
                cfx_blas_sgemm(1, 0, Cg, HWo, Kg, 1.0f, wg, Cg, dy, HWo, 1.0f, dst, HWo);
                continue;
            }
            cfx_blas_sgemm(1, 0, Cg * RS, HWo, Kg, 1.0f, wg, Cg * RS, dy, HWo, 0.0f, col, HWo);
            col2im_add(g, col, dst);
        }
}

/* in (N,Ci,Hi,Wi), dout (N,Co,Ho,Wo) -> dw (Co,Ci/G,R,S) += sum over images. */
void cfx__conv_ref_bwd_w(const cfx__conv_geom *g, const float *in, const float *dout, float *dw,
                         float *col) {
    int64_t Cg = g->Ci / g->G, Kg = g->Co / g->G, RS = g->R * g->S, HWi = g->Hi * g->Wi,
            HWo = g->Ho * g->Wo;
    bool pw = is_pointwise(g);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->G; gr++) {
            const float *src = in + (n * g->Ci + gr * Cg) * HWi;
            if (!pw) im2col(g, src, col);
            cfx_blas_sgemm(0, 1, Kg, Cg * RS, HWo, 1.0f, dout + (n * g->Co + gr * Kg) * HWo, HWo,
                           pw ? src : col, HWo, 1.0f, dw + gr * Kg * Cg * RS, Cg * RS);
        }
}

/* Rows [lo, hi) of y viewed as (N*K, HW): each row += its channel's bias. */
static void bias_fwd_rows(float *restrict y, const float *restrict b, int64_t K, int64_t HW,
                          int64_t lo, int64_t hi) {
    for (int64_t nk = lo; nk < hi; nk++) {
        float v = b[nk % K], *p = y + nk * HW;
        for (int64_t i = 0; i < HW; i++) p[i] += v;
    }
}

/* y (N,K,HW) += b (K). */
static void bias_fwd(float *y, const float *b, int64_t N, int64_t K, int64_t HW) {
    CFX_PARALLEL_RANGE(N * K, N * K * HW > 65536, bias_fwd_rows(y, b, K, HW, lo, hi));
}

/* Channels [lo, hi) of db += the sum of dy over images and pixels. */
static void bias_bwd_channels(const float *restrict dy, float *restrict db, int64_t N, int64_t K,
                              int64_t HW, int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; k++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) {
            const float *p = dy + (n * K + k) * HW;
            float part = 0;
            for (int64_t i = 0; i < HW; i++) part += p[i];
            s += part;
        }
        db[k] += (float)s;
    }
}

/* db (K) += sum of dy (N,K,HW) over images and pixels. */
static void bias_bwd(const float *dy, float *db, int64_t N, int64_t K, int64_t HW) {
    CFX_PARALLEL_RANGE(K, N * K * HW > 65536, bias_bwd_channels(dy, db, N, K, HW, lo, hi));
}

/* ------------------------------------------------------------------- dispatch --- */

static cfx__conv_path forced = CFX__CONV_PATH_AUTO;

void cfx__conv_force_path(cfx__conv_path path) {
    forced = path;
}

static _Atomic long long direct_runs;

long long cfx__conv_direct_runs(void) {
    return direct_runs;
}

static _Atomic long long direct_split_runs;

long long cfx__conv_direct_split_runs(void) {
    return direct_split_runs;
}

/* The one place that chooses the implementation for a geometry. Measured on this machine
 * (AMD EPYC, 2 cores shared with other jobs, AVX-512; oneDNN 2.6.3), 1 thread, best of 5, ms
 * per forward + backward (to x only for the batch-1 cases, to x, w, b otherwise), 3x3 pad 1:
 *                               reference  oneDNN blocked  oneDNN plain dx
 *     b1  1->32 28x28 (to x)      0.042        0.060           0.024
 *     b1  3->16 32x32 (to x)      0.054        0.045           0.040
 *     b1 32->64 14x14 (to x)      0.252        0.103           0.136
 *     b8  3->16 32x32             0.736        0.420           0.385
 *     b64 32->32 28x28           74.5         25.7            44.0
 *     b64 depthwise 32 28x28     59.2          7.4            22.9
 * oneDNN's blocked backward data pads a small input channel count to a block of 16; with a plain
 * NCHW data gradient it picks its GEMM kernel instead, which wins below about 6 input channels
 * (backward data of b1 Cx28x28 -> 32, us, blocked vs plain: C=1 93 vs 34, C=4 100 vs 73, C=6
 * 100 vs 102, C=8 101 vs 129). So: oneDNN everywhere, with the plain data gradient when an
 * ungrouped conv has at most 4 input channels; the reference only when oneDNN is missing or
 * rejects the geometry (prepare then keeps it) or when forced. Below a million multiply-adds per
 * forward pass the op runs on one thread whatever cfx_set_threads says: b1 1->32 28x28 forward +
 * backward took 0.307 ms at 2 threads (fork/join on two busy cores) and 0.025 ms on one.
 * Below CFX__CONV_DIRECT_MACS (2 million) the direct kernels run it: at batch 1 the reference
 * classifier's 32 -> 64 3x3 stride-2 convolution on 16x16 and the decoder's 64 -> 32 transposed
 * one to 16x16 (1.2 million each) took 156 and 162 us forward + data gradient direct against
 * 155 and 223 on oneDNN (best of 6 runs of 300 on a busy machine; medians 172 and 191 against
 * 212 and 276).
 * The layers that touch an image's few channels go to the direct kernels at any batch size
 * when their data gradient is wanted (a counterfactual search differentiates to the image):
 * the first convolution of a classifier or encoder (at most 4 input channels) and the last
 * transposed convolution of a decoder (at most 4 output channels). There oneDNN pads the
 * channels to its block (or runs a GEMM on a thin matrix) and the reference's col2im is scalar:
 * at batch 50, one thread, the reference classifier's 3 -> 32 5x5 stride-2 convolution on
 * 32x32 took 2.2 + 11.3 ms forward + data gradient on oneDNN and 3.0 + 2.9 direct; the decoder's
 * 32 -> 3 transposed one 5.2 + 4.6 ms on the reference path and 3.5 + 1.7 direct (best of 5
 * runs on a busy machine). Without the data gradient (scoring) oneDNN's forward is the faster
 * one and stays. need_dx: the op's input gradient is computed. */
static cfx__conv_path conv_dispatch(const cfx__conv_geom *g, bool transposed, bool need_dx,
                                    bool *one_thread) {
    /* Multiply-adds of one forward pass. */
    double macs = (double)g->N * g->Co * g->Ho * g->Wo * (g->Ci / g->G) * g->R * g->S;
    *one_thread = macs < 1e6;
    if (forced != CFX__CONV_PATH_AUTO) return forced;
    /* A transposed convolution is the data gradient of a convolution, and the direct kernels
     * have that too: its forward runs on their backward data, its data gradient on their
     * forward. */
    bool direct = cfx__conv_direct_preferred();
    if (macs < CFX__CONV_DIRECT_MACS && direct) return CFX__CONV_PATH_DIRECT;
    /* In geometry terms a transposed convolution's output channels are Ci. */
    bool few_image_channels = g->G == 1 && g->Ci <= 4;
    if (direct && few_image_channels && (transposed || need_dx)) return CFX__CONV_PATH_DIRECT;
    if (!cfx__conv_dnnl_available()) return CFX__CONV_PATH_REF;
    /* A transposed convolution to a few channels (an image decoder's last layer) runs 2.7x
     * faster as col2im + GEMM than on oneDNN 2.6's deconvolution (32 -> 3 channels, 5x5 stride
     * 2, 16 -> 32 pixels, batch 50: 2.4 ms against 6.6, one thread). */
    if (transposed && few_image_channels) return CFX__CONV_PATH_REF;
    int64_t in_channels = transposed ? g->Co : g->Ci;
    if (g->G == 1 && in_channels <= 4) return CFX__CONV_PATH_DNNL_PLAIN_DX;
    return CFX__CONV_PATH_DNNL;
}

/* The oneDNN path a convolution the dispatch gave the direct kernels takes when the graph
 * holds its input or output in NHWC (conv_blocked_ok): as conv_dispatch picks among oneDNN's. */
static cfx__conv_path held_path(const cfx__conv_geom *g) {
    if (forced != CFX__CONV_PATH_AUTO || !cfx__conv_dnnl_available()) return CFX__CONV_PATH_DIRECT;
    return g->G == 1 && g->Ci <= 4 ? CFX__CONV_PATH_DNNL_PLAIN_DX : CFX__CONV_PATH_DNNL;
}

/* ------------------------------------------------------------------------ ops --- */

typedef struct {
    cfx__conv_geom geom;
    cfx__conv_dnnl *dn; /* NULL: reference path (or direct) */
    bool direct;        /* CFX__CONV_PATH_DIRECT */
    /* Direct on several threads: the batch is split into at most nparts slices, one a thread;
     * the first works in the graph's work buffer, the others in parts_work (part_floats each). */
    int nparts;
    float *parts_work;
    size_t part_floats;
    /* A fused Add (cfx__op_args.sum) is added here, after oneDNN's forward, not by its sum
     * post-op (see prepare_common); the fused ReLU then too. */
    bool sum_here;
} conv_prim;

/* The direct kernels on images [lo, hi) of the batch, on work. fwd: src is the geometry's
 * input (N,Ci,Hi,Wi), dst its output, overwritten. Otherwise the data gradient: src is dout
 * (N,Co,Ho,Wo), dst din, added into. */
static void direct_slice(const cfx__conv_geom *g, bool fwd, const float *src, const float *w,
                         const float *b, float *dst, float *work, int64_t lo, int64_t hi) {
    if (hi <= lo) return;
    cfx__conv_geom s = *g;
    s.N = hi - lo;
    int64_t xs = g->Ci * g->Hi * g->Wi, ys = g->Co * g->Ho * g->Wo;
    if (fwd)
        cfx__conv_direct_fwd(&s, src + lo * xs, w, b, dst + lo * ys, work);
    else
        cfx__conv_direct_bwd_data(&s, src + lo * ys, w, dst + lo * xs, work);
}

/* direct_slice over the batch, split among the threads (at most nparts) when the op has part
 * buffers. Each image is computed whole by one thread, so the result does not depend on the
 * split. */
static void direct_run(const conv_prim *p, bool fwd, const float *src, const float *w,
                       const float *b, float *dst, float *work) {
    const cfx__conv_geom *g = &p->geom;
    int parts = CFX_MIN(p->nparts, omp_get_max_threads());
    if (parts <= 1) {
        direct_slice(g, fwd, src, w, b, dst, work, 0, g->N);
        return;
    }
    direct_split_runs++;
#pragma omp parallel num_threads(parts)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        float *wk = t == 0 ? work : p->parts_work + (size_t)(t - 1) * p->part_floats;
        direct_slice(g, fwd, src, w, b, dst, wk, g->N * t / T, g->N * (t + 1) / T);
    }
}

/* The output shape, and the work buffer of whichever path the dispatch will take: im2col's
 * column matrix, or the direct kernels' padded copies. A transposed convolution's output is
 * the input of the convolution its geometry describes. */
static cfx_status infer(const cfx__op_args *a, cfx__op_shape *s, bool transposed) {
    cfx__conv_geom g = {0};
    CFX_TRY(transposed ? convt_geometry(a, &g) : conv_geometry(a, &g));
    CFX_TRY(check_sizes(&g));
    s->ndim = 4;
    s->shape[0] = g.N;
    s->shape[1] = transposed ? g.Ci : g.Co;
    s->shape[2] = transposed ? g.Hi : g.Ho;
    s->shape[3] = transposed ? g.Wi : g.Wo;
    size_t work = col_floats(&g);
    bool one_thread;
    /* Whether the data gradient will be wanted is known at prepare: room for either path. */
    if (conv_dispatch(&g, transposed, true, &one_thread) == CFX__CONV_PATH_DIRECT)
        work = CFX_MAX(work, cfx__conv_direct_work(&g));
    s->work_bytes = work * sizeof(float);
    return CFX_OK;
}

static cfx_status conv_infer(const cfx__op_args *a, cfx__op_shape *s) {
    return infer(a, s, false);
}

static cfx_status convt_infer(const cfx__op_args *a, cfx__op_shape *s) {
    return infer(a, s, true);
}

static cfx_status prepare_common(const cfx__op_args *a, void **prim, bool transposed) {
    conv_prim *p = cfx_calloc(1, sizeof *p);
    if (!p) return CFX_ENOMEM;
    cfx_status st = transposed ? convt_geometry(a, &p->geom) : conv_geometry(a, &p->geom);
    if (st != CFX_OK) {
        cfx_free(p);
        return st;
    }
    bool has_bias = a->nin > 2 && a->in[2];
    /* A geometry oneDNN rejects keeps the reference path; that is not an error. */
    bool one_thread;
    cfx__conv_path path = conv_dispatch(&p->geom, transposed, a->din[0] != NULL, &one_thread);
    if (path == CFX__CONV_PATH_DIRECT && (a->blocked_in0 || a->blocked_out))
        path = held_path(&p->geom);
    p->direct = path == CFX__CONV_PATH_DIRECT;
    /* The direct kernels on a batch big enough to share: a work buffer per extra thread. */
    int nthr = omp_get_max_threads();
    if (p->direct && !one_thread && nthr > 1 && p->geom.N > 1) {
        p->nparts = (int)CFX_MIN((int64_t)nthr, p->geom.N);
        p->part_floats = cfx__conv_direct_work(&p->geom);
        p->parts_work =
            cfx_malloc((size_t)(p->nparts - 1) * p->part_floats * sizeof *p->parts_work);
        if (!p->parts_work) {
            cfx_free(p);
            return CFX_ENOMEM;
        }
    }
    cfx__conv_dnnl_opts o = {
        .transposed = transposed,
        .bias = has_bias,
        .need_dx = a->din[0] != NULL,
        .need_dw = a->din[1] != NULL || (has_bias && a->din[2] != NULL),
        .plain_dx = path == CFX__CONV_PATH_DNNL_PLAIN_DX,
        .one_thread = one_thread,
        .blocked_x = a->blocked_in0,
        .blocked_y = a->blocked_out,
        .c16_x = a->c16_in0,
        .c16_y = a->c16_out,
        .relu = a->relu,
        .clip = a->clip,
        .clip_lo = a->clip_lo,
        .clip_hi = a->clip_hi,
        .sum = a->sum != NULL,
        .const_w = a->in_const[1],
    };
    /* With the output held in NHWC the sum post-op would need no reorder, but oneDNN's kernel
     * with it rounds differently from the unfused graph, and a pre-activation within that of 0
     * then crosses the ReLU: resnet18's input gradient (batch 1) moved by 0.027 relative in
     * 19274 of its 150528 elements. Added after the convolution (sum_here) the fused graph is
     * the unfused one to the bit. */
    if (o.sum && a->blocked_out) {
        o.sum = o.relu = false;
        p->sum_here = true;
    }
    if (path != CFX__CONV_PATH_REF && !p->direct) p->dn = cfx__conv_dnnl_new(&p->geom, &o);
    /* oneDNN's sum post-op needs the summand in the primitive's own layout: where that is not
     * NCHW (NHWC on the AVX-512 machine measured), loading it is one more transposing reorder,
     * which cost more than the Add it saves (mobilenet_v2 at batch 32: 132 reorders a pass
     * against 121 unfused, and more time). Then the forward is made without the post-ops and
     * the sum (and ReLU) is added in one pass over the NCHW output. */
    if (p->dn && o.sum && !cfx__conv_dnnl_dst_plain(p->dn)) {
        cfx__conv_dnnl_free(p->dn);
        o.sum = o.relu = false;
        p->dn = cfx__conv_dnnl_new(&p->geom, &o);
        p->sum_here = true;
    }
    /* conv_blocked_ok promised oneDNN for a blocked input or output: the other paths read NCHW. */
    if ((a->blocked_in0 || a->blocked_out) && !p->dn) {
        cfx_free(p);
        return cfx_set_error(CFX_EUNSUPPORTED,
                             "oneDNN rejected the blocked layout planned for this convolution");
    }
    *prim = p;
    return CFX_OK;
}

/* cfx__op_def.blocked_ok: an undilated convolution on oneDNN, on a CPU where oneDNN prefers
 * NHWC for inference and nChw16c for training. One the dispatch sends to the direct kernels
 * (small, at batch 1) runs on oneDNN instead when it is held in NHWC (held_path): mobilenet_v2
 * at batch 1 took 14-18 ms CPU a pass so against 19-22 with those on the direct kernels and
 * reorders around them. An input taken held needs oneDNN's own data gradient, not its
 * plain-NCHW GEMM one. */
static bool conv_blocked_ok(const cfx__op_args *a, bool in0, bool out) {
    cfx__conv_geom g = {0};
    if (!cfx__conv_dnnl_nhwc() || conv_geometry(a, &g) != CFX_OK || g.dh != 1 || g.dw != 1)
        return false;
    /* nChw16c (a region a gradient goes through): an ungrouped or a depthwise convolution, which
     * oneDNN's training kernels take in it (jit:avx512_core, jit_dw); other groups might land on
     * its reference kernels. */
    bool depthwise = g.G == g.Ci && g.G == g.Co;
    if (((in0 && a->c16_in0) || (out && a->c16_out)) && g.G != 1 && !depthwise) return false;
    bool one_thread;
    cfx__conv_path path = conv_dispatch(&g, false, a->din[0] != NULL, &one_thread);
    /* Only where no gradient flows: the direct kernels were chosen for their data gradient
     * (counterfactual search), and keeping them keeps a training graph's numbers. */
    bool c16 = (in0 && a->c16_in0) || (out && a->c16_out);
    if (path == CFX__CONV_PATH_DIRECT && !c16) path = held_path(&g);
    if (in0 && path != CFX__CONV_PATH_DNNL) return false;
    return !out || path == CFX__CONV_PATH_DNNL || path == CFX__CONV_PATH_DNNL_PLAIN_DX;
}

static cfx_status conv_prepare(const cfx__op_args *a, void **prim) {
    return prepare_common(a, prim, false);
}

static cfx_status convt_prepare(const cfx__op_args *a, void **prim) {
    return prepare_common(a, prim, true);
}

static void conv_release(void *prim) {
    conv_prim *p = prim;
    if (!p) return;
    cfx__conv_dnnl_free(p->dn);
    cfx_free(p->parts_work);
    cfx_free(p);
}

static const float *bias_of(const cfx__op_args *a) {
    return a->nin > 2 && a->in[2] ? a->in[2]->data : NULL;
}

/* y += sum, then y = max(0, y) with a fused ReLU: the fused Add (and ReLU) in one pass. */
static void add_sum_relu(const cfx__op_args *a) {
    float *y = a->out->data;
    const float *r = a->sum;
    if (a->relu)
        for (int64_t i = 0; i < a->out->numel; i++) {
            float v = y[i] + r[i];
            y[i] = v > 0 ? v : 0.0f;
        }
    else
        for (int64_t i = 0; i < a->out->numel; i++) y[i] += r[i];
}

/* y = min(max(y, lo), hi): a fused Clip (cfx__op_args.clip) on the paths without oneDNN's
 * post-op; the expression is the Clip op's own. */
static void clip_out(const cfx__op_args *a) {
    float *y = a->out->data, lo = a->clip_lo, hi = a->clip_hi;
    for (int64_t i = 0; i < a->out->numel; i++) y[i] = y[i] < lo ? lo : (y[i] > hi ? hi : y[i]);
}

// x (N,C,H,W), w (K,C/G,R,S), b (K) -> y (N,K,P,Q)
static void conv_forward(const cfx__op_args *a) {
    const conv_prim *p = a->prim;
    const cfx__conv_geom *g = &p->geom;
    const float *b = bias_of(a);
    if (p->direct) {
        direct_run(p, true, a->in[0]->data, a->in[1]->data, b, a->out->data, a->work);
        direct_runs++;
    } else {
        /* oneDNN applies a fused Add and ReLU itself (post-ops), unless sum_here. */
        if (p->dn && cfx__conv_dnnl_fwd(p->dn, a->in[0]->data, a->in[1]->data, b,
                                        p->sum_here ? NULL : a->sum, a->out->data)) {
            if (p->sum_here) add_sum_relu(a);
            return;
        }
        cfx__conv_ref_fwd(g, a->in[0]->data, a->in[1]->data, a->out->data, 0.0f, a->work);
        if (b) bias_fwd(a->out->data, b, g->N, g->Co, g->Ho * g->Wo);
    }
    if (a->sum) {
        add_sum_relu(a);
        return;
    }
    if (a->relu) cfx__relu_rows(a->out->data, g->N * g->Co, g->Ho * g->Wo, g->Ho * g->Wo);
    if (a->clip) clip_out(a);
}

/* The reference kernels only add: a gradient buffer the graph left unzeroed (din_fresh) is
 * zeroed here first. */
static void zero_fresh(const cfx__op_args *a, int i, size_t n) {
    if (a->din[i] && a->din_fresh[i]) memset(a->din[i], 0, n * sizeof(float));
}

/* The weight and bias gradients of Conv and ConvTranspose. Run before the data gradient: the
 * oneDNN path then reuses its blocked dy for it. */
static void weight_grads(const cfx__op_args *a, bool transposed) {
    const conv_prim *p = a->prim;
    const cfx__conv_geom *g = &p->geom;
    float *db = a->nin > 2 ? a->din[2] : NULL;
    if (!a->din[1] && !db) return;
    if (p->dn && cfx__conv_dnnl_bwd_w(p->dn, a->in[0]->data, a->dout, a->din[1], db,
                                      a->din_fresh[1], a->nin > 2 && a->din_fresh[2]))
        return;
    /* In conv terms a ConvTranspose's dout is the conv input and its x the conv output. */
    const float *cin = transposed ? a->dout : a->in[0]->data;
    const float *cout = transposed ? a->in[0]->data : a->dout;
    int64_t K = transposed ? g->Ci : g->Co, HW = transposed ? g->Hi * g->Wi : g->Ho * g->Wo;
    zero_fresh(a, 1, (size_t)a->in[1]->numel);
    if (a->nin > 2) zero_fresh(a, 2, (size_t)K);
    if (a->din[1]) cfx__conv_ref_bwd_w(g, cin, cout, a->din[1], a->work);
    if (db) bias_bwd(a->dout, db, g->N, K, HW);
}

static void conv_backward(const cfx__op_args *a) {
    const conv_prim *p = a->prim;
    const cfx__conv_geom *g = &p->geom;
    weight_grads(a, false);
    if (a->din[0] && !(p->dn && cfx__conv_dnnl_bwd_data(p->dn, a->dout, a->in[1]->data, a->din[0],
                                                        a->din_fresh[0]))) {
        zero_fresh(a, 0, (size_t)a->in[0]->numel);
        if (p->direct) {
            direct_run(p, false, a->dout, a->in[1]->data, NULL, a->din[0], a->work);
            direct_runs++;
        } else {
            cfx__conv_ref_bwd_data(g, a->dout, a->in[1]->data, a->din[0], a->work);
        }
    }
}

// x (N,C,H,W), w (C,K/G,R,S), b (K) -> y (N,K,P,Q)
static void convt_forward(const cfx__op_args *a) {
    const conv_prim *p = a->prim;
    const cfx__conv_geom *g = &p->geom;
    const float *b = bias_of(a);
    /* oneDNN's deconvolution runs without the bias (conv_dnnl.c): it is added here. */
    if (p->dn &&
        cfx__conv_dnnl_fwd(p->dn, a->in[0]->data, a->in[1]->data, NULL, NULL, a->out->data)) {
        if (b) bias_fwd(a->out->data, b, g->N, g->Ci, g->Hi * g->Wi);
        return;
    }
    memset(a->out->data, 0, (size_t)a->out->numel * sizeof(float));
    if (p->direct) {
        direct_run(p, false, a->in[0]->data, a->in[1]->data, NULL, a->out->data, a->work);
        direct_runs++;
    } else {
        cfx__conv_ref_bwd_data(g, a->in[0]->data, a->in[1]->data, a->out->data, a->work);
    }
    if (b) bias_fwd(a->out->data, b, g->N, g->Ci, g->Hi * g->Wi);
    if (a->relu) cfx__relu_rows(a->out->data, g->N * g->Ci, g->Hi * g->Wi, g->Hi * g->Wi);
}

static void convt_backward(const cfx__op_args *a) {
    const conv_prim *p = a->prim;
    const cfx__conv_geom *g = &p->geom;
    weight_grads(a, true);
    if (!a->din[0] || (p->dn && cfx__conv_dnnl_bwd_data(p->dn, a->dout, a->in[1]->data, a->din[0],
                                                        a->din_fresh[0])))
        return;
    if (p->direct && a->din_fresh[0]) { /* the direct forward overwrites: only a fresh dx */
        direct_run(p, true, a->dout, a->in[1]->data, NULL, a->din[0], a->work);
        direct_runs++;
    } else {
        cfx__conv_ref_fwd(g, a->dout, a->in[1]->data, a->din[0], a->din_fresh[0] ? 0.0f : 1.0f,
                          a->work);
    }
}

static const cfx__op_def conv_def = {"Conv",
                                     sizeof(cfx_conv2d_attr),
                                     conv_infer,
                                     conv_prepare,
                                     conv_release,
                                     conv_forward,
                                     conv_backward,
                                     .assigns_grads = true,
                                     .blocked_ok = conv_blocked_ok,
                                     .fuses_relu = true,
                                     .fuses_clip = true,
                                     .fuses_sum = true};
/* ConvTranspose fuses no ReLU: oneDNN 2.6's deconvolution with an eltwise post-op ran 5x
 * slower than without it and a separate ReLU (25 ms against 5 at batch 50, 64 -> 32 channels,
 * 8 -> 16 pixels, one thread), so the ReLU stays its own op. */
static const cfx__op_def convt_def = {
    "ConvTranspose", sizeof(cfx_conv2d_attr), convt_infer,    convt_prepare,
    conv_release,    convt_forward,           convt_backward, .assigns_grads = true};

static int add_conv(cfx_graph *g, const cfx__op_def *def, int x, int w, int b,
                    const cfx_conv2d_attr *attr) {
    cfx_conv2d_attr at = attr ? *attr : (cfx_conv2d_attr){0};
    if (b < 0) return cfx__graph_add(g, def, (int[]){x, w}, 2, &at);
    return cfx__graph_add(g, def, (int[]){x, w, b}, 3, &at);
}

int cfx_op_conv2d(cfx_graph *g, int x, int w, int b, const cfx_conv2d_attr *attr) {
    return add_conv(g, &conv_def, x, w, b, attr);
}

int cfx_op_conv_transpose2d(cfx_graph *g, int x, int w, int b, const cfx_conv2d_attr *attr) {
    return add_conv(g, &convt_def, x, w, b, attr);
}
