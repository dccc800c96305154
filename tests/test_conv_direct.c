/* test_conv_direct.c - the direct convolution kernels (src/conv_direct.c) against the im2col
 * reference kernels of conv.c on many geometries: the batch-1 shapes they are meant for, and
 * seeded random ones over batch, groups (depthwise too), strides, asymmetric padding, dilation,
 * non-square kernels and images, and the geometries transposed convolutions produce. Every
 * geometry runs with each ISA variant of the micro-kernel this CPU can execute. */
#include "engine/ops/conv.h"
#include "test.h"

#include <stdlib.h>

/* Defined in conv_direct.c for tests. isa: 0 generic, 1 AVX2, 2 AVX-512 (capped at what the
 * CPU has), -1 the best; bwd_form: 0 gather, 1 contraction first, -1 chosen by cost. */
void cfx__conv_direct_force(int isa, int bwd_form);

/* Floats the work buffer gets beyond what cfx__conv_direct_work asks for, filled with a
 * pattern that must survive. */
#define GUARD 64
static const uint32_t guard_bits = 0x7fc0dead; /* a NaN */

static float *random_array(size_t n, cfx_rng *r, float lo, float hi) {
    float *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = lo + (hi - lo) * (float)cfx_rng_uniform(r);
    return d;
}

static float *copy_array(const float *a, size_t n) {
    float *d = malloc((n ? n : 1) * sizeof *d);
    memcpy(d, a, n * sizeof *d);
    return d;
}

static void fill_nan(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) memcpy(p + i, &guard_bits, sizeof guard_bits);
}

static bool guard_intact(const float *p) {
    for (int i = 0; i < GUARD; i++)
        if (memcmp(p + i, &guard_bits, sizeof guard_bits) != 0) return false;
    return true;
}

static void describe(const cfx__conv_geom *g, char *buf, size_t n) {
    snprintf(buf, n,
             "N%lld %lld->%lld G%d in %lldx%lld out %lldx%lld k %lldx%lld s %d,%d pad %d,%d,%d,%d "
             "dil %d,%d",
             (long long)g->N, (long long)g->Ci, (long long)g->Co, g->G, (long long)g->Hi,
             (long long)g->Wi, (long long)g->Ho, (long long)g->Wo, (long long)g->R, (long long)g->S,
             g->sh, g->sw, g->pt, g->pl, g->pb, g->pr, g->dh, g->dw);
}

/* Forward (with and without bias) and backward data (both forms) of g, direct vs reference,
 * with every ISA level. Returns false on a mismatch. */
static bool check_geom(const cfx__conv_geom *g, uint64_t seed) {
    cfx_rng r;
    cfx_rng_init(&r, seed);
    int64_t Cg = g->Ci / g->G;
    size_t nin = (size_t)(g->N * g->Ci * g->Hi * g->Wi),
           nout = (size_t)(g->N * g->Co * g->Ho * g->Wo), nw = (size_t)(g->Co * Cg * g->R * g->S),
           ncol = (size_t)(Cg * g->R * g->S * g->Ho * g->Wo);
    float *in = random_array(nin, &r, -1, 1), *w = random_array(nw, &r, -0.5f, 0.5f);
    float *b = random_array((size_t)g->Co, &r, -0.5f, 0.5f);
    float *dout = random_array(nout, &r, -1, 1), *din0 = random_array(nin, &r, -1, 1);
    float *col = malloc((ncol ? ncol : 1) * sizeof *col);
    /* Reference: out = conv + b; din = din0 + conv^T (bwd_data adds). */
    float *out_ref = malloc((nout ? nout : 1) * sizeof *out_ref);
    float *out_nob = malloc((nout ? nout : 1) * sizeof *out_nob);
    cfx__conv_ref_fwd(g, in, w, out_nob, 0.0f, col);
    for (size_t i = 0; i < nout; i++)
        out_ref[i] = out_nob[i] + b[i / (size_t)(g->Ho * g->Wo) % (size_t)g->Co];
    float *din_ref = copy_array(din0, nin);
    cfx__conv_ref_bwd_data(g, dout, w, din_ref, col);

    size_t nwork = cfx__conv_direct_work(g);
    /* One float in, so the work pointer is not 64-byte aligned: the kernels align it. */
    float *buf = malloc((nwork + 1 + GUARD) * sizeof *buf), *work = buf + 1;
    float *out = malloc((nout ? nout : 1) * sizeof *out);
    float *din = malloc((nin ? nin : 1) * sizeof *din);
    bool ok = true;
    char desc[256];
    describe(g, desc, sizeof desc);
    for (int run = 0; run < 6 && ok; run++) {
        int level = 2 - run / 2, form = run % 2;
        cfx__conv_direct_force(level, form);
        /* NaN everywhere the kernels must overwrite or not depend on. */
        fill_nan(buf, nwork + 1 + GUARD);
        fill_nan(out, nout);
        cfx__conv_direct_fwd(g, in, w, b, out, work);
        ok = CHECK_ARRAY_NEAR(out, out_ref, nout, 1e-4, 1e-5) && ok;
        fill_nan(out, nout);
        cfx__conv_direct_fwd(g, in, w, NULL, out, work);
        ok = CHECK_ARRAY_NEAR(out, out_nob, nout, 1e-4, 1e-5) && ok;
        memcpy(din, din0, nin * sizeof *din);
        fill_nan(buf, nwork + 1 + GUARD);
        cfx__conv_direct_bwd_data(g, dout, w, din, work);
        ok = CHECK_ARRAY_NEAR(din, din_ref, nin, 1e-4, 1e-5) && ok;
        CHECK_MSG(guard_intact(work + nwork), "%s: wrote past the %zu floats of work", desc, nwork);
        if (!ok) printf("  (geometry %s, ISA level %d, backward form %d)\n", desc, level, form);
    }
    cfx__conv_direct_force(-1, -1);
    free(in), free(w), free(b), free(dout), free(din0), free(col), free(out_ref), free(out_nob);
    free(din_ref), free(buf), free(out), free(din);
    return ok;
}

/* A conv geometry the way conv.c's conv_geometry builds it; false when the (dilated) kernel
 * does not fit the padded input, which conv_geometry rejects. */
static bool make_conv(cfx__conv_geom *g, int64_t N, int64_t Ci, int64_t Co, int G, int64_t Hi,
                      int64_t Wi, int64_t R, int64_t S, int sh, int sw, int pt, int pl, int pb,
                      int pr, int dh, int dw) {
    *g = (cfx__conv_geom){.N = N,
                          .Ci = Ci,
                          .Hi = Hi,
                          .Wi = Wi,
                          .Co = Co,
                          .R = R,
                          .S = S,
                          .sh = sh,
                          .sw = sw,
                          .pt = pt,
                          .pl = pl,
                          .pb = pb,
                          .pr = pr,
                          .dh = dh,
                          .dw = dw,
                          .G = G};
    int64_t eh = (R - 1) * dh + 1, ew = (S - 1) * dw + 1, ph = Hi + pt + pb, pw = Wi + pl + pr;
    if (eh > ph || ew > pw) return false;
    g->Ho = (ph - eh) / sh + 1, g->Wo = (pw - ew) / sw + 1;
    return true;
}

/* The conv geometry of a ConvTranspose x (N,C,H,W), w (C,K/G,R,S) as conv.c's convt_geometry
 * builds it: in = y (K channels, P x Q), out = x. With output_padding the last rows and columns
 * of y feed no x. */
static bool make_convt(cfx__conv_geom *g, int64_t N, int64_t C, int64_t K, int G, int64_t H,
                       int64_t W, int64_t R, int64_t S, int sh, int sw, int pt, int pl, int pb,
                       int pr, int dh, int dw, int oph, int opw) {
    int64_t P = (H - 1) * sh - pt - pb + dh * (R - 1) + oph + 1;
    int64_t Q = (W - 1) * sw - pl - pr + dw * (S - 1) + opw + 1;
    if (P < 1 || Q < 1) return false;
    /* The forward conv over y (its dilated kernel always fits the padded P x Q), with x's size
     * given rather than derived: output_padding past the stride leaves rows that feed no x. */
    if (!make_conv(g, N, K, C, G, P, Q, R, S, sh, sw, pt, pl, pb, pr, dh, dw)) return false;
    g->Ho = H, g->Wo = W, g->opad_h = oph, g->opad_w = opw;
    return true;
}

static int rnd(cfx_rng *r, int lo, int hi) {
    return lo + (int)cfx_rng_below(r, (uint64_t)(hi - lo + 1));
}

/* Channels: groups 1..3 or depthwise (G = Ci), Ci and Co in 1..17. */
static void random_channels(cfx_rng *r, int64_t *Ci, int64_t *Co, int *G) {
    if (cfx_rng_below(r, 4) == 0) {
        *G = rnd(r, 1, 8);
        *Ci = *G, *Co = *G * rnd(r, 1, 17 / *G);
        return;
    }
    *G = rnd(r, 1, 3);
    *Ci = *G * rnd(r, 1, 17 / *G), *Co = *G * rnd(r, 1, 17 / *G);
}

/* The shapes the kernels are for: the MNIST classifier's convolutions at batch 1. */
CFX_TEST(conv_direct, batch1_shapes) {
    cfx__conv_geom g;
    CHECK(make_conv(&g, 1, 1, 8, 1, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1));
    check_geom(&g, 1);
    CHECK(make_conv(&g, 1, 1, 32, 1, 28, 28, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1));
    CHECK_INT_EQ(g.Ho, 14);
    check_geom(&g, 2);
    CHECK(make_conv(&g, 1, 8, 16, 1, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1));
    CHECK_INT_EQ(g.Ho, 7);
    check_geom(&g, 3);
}

/* Hand-picked corners: pointwise, a kernel as large as the padded input, padding larger than
 * the kernel, a 1x1 input, stride larger than the kernel (phases no tap reads), long rows (more
 * than 32 floats, for the vector loops of the row operations), stride 2 with odd and even left
 * padding. */
CFX_TEST(conv_direct, corners) {
    static const int c[][16] = {
        /* N Ci Co G Hi Wi R S sh sw pt pl pb pr dh dw */
        {2, 5, 3, 1, 4, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},
        {1, 3, 4, 1, 5, 5, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1},
        {1, 2, 3, 1, 3, 4, 2, 2, 1, 1, 4, 3, 5, 2, 1, 1},
        {1, 1, 2, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 2, 2, 1, 9, 9, 1, 1, 3, 3, 0, 0, 0, 0, 1, 1},
        {1, 2, 2, 1, 10, 11, 2, 1, 3, 2, 1, 0, 0, 1, 3, 1},
        {1, 3, 5, 1, 3, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 17, 17, 1, 6, 5, 3, 2, 2, 1, 1, 0, 2, 1, 2, 2},
        {3, 16, 16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 1, 1, 1, 2, 40, 1, 20, 1, 1, 0, 0, 0, 0, 1, 1},
        {1, 2, 3, 1, 5, 75, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
        {2, 1, 4, 1, 6, 66, 2, 4, 1, 2, 0, 2, 1, 0, 1, 2},
        {1, 1, 3, 1, 4, 35, 1, 3, 3, 2, 0, 3, 0, 0, 1, 1},
    };
    for (int i = 0; i < (int)(sizeof c / sizeof c[0]); i++) {
        const int *v = c[i];
        cfx__conv_geom g;
        CHECK_MSG(make_conv(&g, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
                            v[11], v[12], v[13], v[14], v[15]),
                  "corner %d is not a valid geometry", i);
        check_geom(&g, 100 + (uint64_t)i);
    }
}

CFX_TEST(conv_direct, random_conv) {
    cfx_rng r;
    cfx_rng_init(&r, 2024);
    int want = cfx_test_fast() ? 80 : 400, done = 0, failed = 0;
    while (done < want && failed < 3) {
        int64_t Ci, Co;
        int G;
        random_channels(&r, &Ci, &Co, &G);
        cfx__conv_geom g;
        if (!make_conv(&g, rnd(&r, 1, 3), Ci, Co, G, rnd(&r, 1, 20), rnd(&r, 1, 20), rnd(&r, 1, 5),
                       rnd(&r, 1, 5), rnd(&r, 1, 3), rnd(&r, 1, 3), rnd(&r, 0, 3), rnd(&r, 0, 3),
                       rnd(&r, 0, 3), rnd(&r, 0, 3), rnd(&r, 1, 2), rnd(&r, 1, 2)))
            continue;
        failed += !check_geom(&g, 1000 + (uint64_t)done);
        done++;
    }
}

/* Transposed convolutions' geometries: Ho, Wo given, not derived, and output_padding up to
 * max(stride, dilation) - 1 leaves input rows that feed no output. */
CFX_TEST(conv_direct, random_convt) {
    cfx_rng r;
    cfx_rng_init(&r, 77);
    int want = cfx_test_fast() ? 40 : 200, done = 0, failed = 0;
    while (done < want && failed < 3) {
        int64_t Ci, Co;
        int G;
        random_channels(&r, &Ci, &Co, &G);
        int sh = rnd(&r, 1, 3), sw = rnd(&r, 1, 3), dh = rnd(&r, 1, 2), dw = rnd(&r, 1, 2);
        cfx__conv_geom g;
        if (!make_convt(&g, rnd(&r, 1, 3), Co, Ci, G, rnd(&r, 1, 9), rnd(&r, 1, 9), rnd(&r, 1, 4),
                        rnd(&r, 1, 4), sh, sw, rnd(&r, 0, 2), rnd(&r, 0, 2), rnd(&r, 0, 2),
                        rnd(&r, 0, 2), dh, dw, rnd(&r, 0, CFX_MAX(sh, dh) - 1),
                        rnd(&r, 0, CFX_MAX(sw, dw) - 1)))
            continue;
        failed += !check_geom(&g, 5000 + (uint64_t)done);
        done++;
    }
}
