/* conv_direct.c - direct convolution kernels for small convolutions (batch-1 counterfactual
 * search), forward and backward data. At these sizes oneDNN's per-call overhead (primitive
 * execute, reorders, its scalar col2im) costs more than the arithmetic.
 *
 * Method: the "shifted flat view". A strided convolution is split into stride-1 pieces by phase:
 * tap (r, s) reads padded input row oh*sh + r*dh = (oh + ar)*sh + p with ar = r*dh / sh,
 * p = r*dh % sh (columns likewise with as, q), so copying each input plane into sh*sw zero-padded
 * phase planes P_pq[i][j] = in[i*sh + p - pt][j*sw + q - pl] turns every tap into a shift of one
 * phase plane. All planes share one row pitch Wp >= Wo + max(as), and an output pixel
 * (oh, ow) is the flat index m = oh*Wp + ow; then tap (r, s) contributes
 *     acc[m] += w[k][c][r][s] * P_pq[m + ar*Wp + as]
 * for every m in [0, (Ho-1)*Wp + Wo) at once: one long contiguous loop per tap and channel. The
 * columns ow >= Wo of that range are garbage (they read across a row end) and are dropped when
 * the accumulator is copied out.
 *
 * Backward data has two forms; both accumulate the padded data gradient in the same phase
 * planes and add their interior into din at the end (the phase split undone):
 *  - gather: phase plane (p, q)[i][j] = sum over k and the taps of that phase of
 *    w[k][c][r][s] * dout[k][i - ar][j - as], a stride-1 correlation of dout (zero padded by
 *    the largest ar above and as left) with that phase's taps: the forward kernel again.
 *  - contraction first, for few input channels: U[(c, r, s)] = sum over k of w[k][c][r][s] *
 *    dout[k] (a 1x1 convolution to Cg R S channels, the same micro-kernel), then each U plane
 *    is added into its phase plane at the tap's shift.
 * The one with fewer vector loads runs.
 *
 * The micro-kernel keeps a block of KB output channels x JB vectors of m in registers and walks
 * a table of (source offset, weight offset) pairs, one per input channel and tap: one vector
 * load feeds KB fused multiply-adds. We build without -march (portable binaries, SSE2 only), so
 * the micro-kernel exists per ISA (AVX-512, AVX2+FMA, and a generic 4-wide one written with GCC
 * vector extensions, which is SSE2 on x86) and is picked at run time by the CPU. target_clones
 * would not do here: the register blocking (KB, JB) and vector width differ per ISA, and with
 * -std=c11 GCC does not contract a*b+c into an FMA, so the FMAs are explicit intrinsics.
 *
 * At batch 1 the copies around the arithmetic (padding, phase split, dropping the garbage
 * columns) cost as much as the arithmetic when done row by row with memcpy and scalar loops
 * (a 7-float row is all call overhead), so they are 2-D row operations per ISA too: whole
 * vectors plus one masked vector per row with AVX-512 (except where that stalls, add_avx512),
 * and permutes for the stride-2 phase split. Every buffer is zeroed by one memset first. */
#include "engine/ops/conv.h"

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CFX_DIRECT_X86 1
#else
#define CFX_DIRECT_X86 0
#endif

/* Floats of zeros after every source plane: the last vector of a row-block may read up to one
 * vector (at most 16 floats) past the flat range, into columns that are dropped. */
#define SLACK 16

static int64_t round16(int64_t n) {
    return (n + 15) & ~(int64_t)15;
}

/* One term of the micro-kernel's sum: the source at src + j, the weight at w (+ kk * wks). */
typedef struct {
    int64_t src, w;
} tapoff;

/* ------------------------------------------------------------ micro-kernels --- */

/* dst[kk*dks + j] = sum over t < T of w[tp[t].w + kk*wks] * src[tp[t].src + j], for kk < KB
 * and j in [0, n) rounded up to a whole vector. */
typedef void (*mk_fn)(int64_t n, int64_t T, const tapoff *tp, const float *src, const float *w,
                      int64_t wks, float *dst, int64_t dks);

/* Per-ISA vector operations: P_vt, P_VL, P_load, P_store, P_set1, P_zero, P_fma, P_ATTR. */

/* Generic 4 floats: GCC vector extensions (SSE2 on x86, NEON on arm64). Loads and stores go
 * through memcpy because the sources are not vector-aligned. */
typedef float gen_vt __attribute__((vector_size(16)));
#define gen_VL 4
#define gen_ATTR
static inline gen_vt gen_load(const float *p) {
    gen_vt v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void gen_store(float *p, gen_vt v) {
    memcpy(p, &v, sizeof v);
}
static inline gen_vt gen_set1(float a) {
    return (gen_vt){a, a, a, a};
}
static inline gen_vt gen_zero(void) {
    return (gen_vt){0, 0, 0, 0};
}
static inline gen_vt gen_fma(gen_vt x, gen_vt a, gen_vt acc) {
    return acc + x * a;
}

#if CFX_DIRECT_X86
#define avx512_VL   16
#define avx512_ATTR __attribute__((target("avx512f")))
#define AVX512_INL  static inline __attribute__((always_inline, target("avx512f")))
typedef __m512 avx512_vt;
AVX512_INL __m512 avx512_load(const float *p) {
    return _mm512_loadu_ps(p);
}
AVX512_INL void avx512_store(float *p, __m512 v) {
    _mm512_storeu_ps(p, v);
}
AVX512_INL __m512 avx512_set1(float a) {
    return _mm512_set1_ps(a);
}
AVX512_INL __m512 avx512_zero(void) {
    return _mm512_setzero_ps();
}
AVX512_INL __m512 avx512_fma(__m512 x, __m512 a, __m512 acc) {
    return _mm512_fmadd_ps(x, a, acc);
}

#define avx2_VL   8
#define avx2_ATTR __attribute__((target("avx2,fma")))
#define AVX2_INL  static inline __attribute__((always_inline, target("avx2,fma")))
typedef __m256 avx2_vt;
AVX2_INL __m256 avx2_load(const float *p) {
    return _mm256_loadu_ps(p);
}
AVX2_INL void avx2_store(float *p, __m256 v) {
    _mm256_storeu_ps(p, v);
}
AVX2_INL __m256 avx2_set1(float a) {
    return _mm256_set1_ps(a);
}
AVX2_INL __m256 avx2_zero(void) {
    return _mm256_setzero_ps();
}
AVX2_INL __m256 avx2_fma(__m256 x, __m256 a, __m256 acc) {
    return _mm256_fmadd_ps(x, a, acc);
}
#endif

/* One block of KB output channels x JB vectors at flat index j. Constant KB and JB let GCC
 * unroll the loops and keep acc in registers. */
#define MK_BLOCK(P, KB, JB)                                                                        \
    do {                                                                                           \
        P##_vt acc[KB][JB];                                                                        \
        for (int kk = 0; kk < KB; kk++)                                                            \
            for (int u = 0; u < JB; u++) acc[kk][u] = P##_zero();                                  \
        for (int64_t t = 0; t < T; t++) {                                                          \
            const float *s = src + tp[t].src + j, *wt = w + tp[t].w;                               \
            P##_vt x[JB];                                                                          \
            for (int u = 0; u < JB; u++) x[u] = P##_load(s + u * P##_VL);                          \
            for (int kk = 0; kk < KB; kk++) {                                                      \
                P##_vt a = P##_set1(wt[kk * wks]);                                                 \
                for (int u = 0; u < JB; u++) acc[kk][u] = P##_fma(x[u], a, acc[kk][u]);            \
            }                                                                                      \
        }                                                                                          \
        for (int kk = 0; kk < KB; kk++)                                                            \
            for (int u = 0; u < JB; u++) P##_store(dst + kk * dks + j + u * P##_VL, acc[kk][u]);   \
    } while (0)

/* Blocks of JB vectors, then one block of the (up to JB) vectors left: with a single accumulator
 * per channel the sum over taps would wait on each FMA's latency (KB = 1: a third of the speed). */
#define MK_TAIL(P, KB, JB, L)                                                                      \
    if (JB >= L && left == L) MK_BLOCK(P, KB, (JB >= L ? L : 1));
#define DEFINE_MK(P, KB, JB)                                                                       \
    static P##_ATTR void mk_##P##_##KB(int64_t n, int64_t T, const tapoff *restrict tp,            \
                                       const float *restrict src, const float *restrict w,         \
                                       int64_t wks, float *restrict dst, int64_t dks) {            \
        int64_t j = 0;                                                                             \
        for (; j + JB * P##_VL <= n; j += JB * P##_VL) MK_BLOCK(P, KB, JB);                        \
        int64_t left = (n - j + P##_VL - 1) / P##_VL;                                              \
        MK_TAIL(P, KB, JB, 1)                                                                      \
        MK_TAIL(P, KB, JB, 2)                                                                      \
        MK_TAIL(P, KB, JB, 3)                                                                      \
        MK_TAIL(P, KB, JB, 4)                                                                      \
        MK_TAIL(P, KB, JB, 5)                                                                      \
        MK_TAIL(P, KB, JB, 6)                                                                      \
        MK_TAIL(P, KB, JB, 7)                                                                      \
        MK_TAIL(P, KB, JB, 8)                                                                      \
    }

/* Register budgets: 16 accumulators of 32 zmm registers for AVX-512; 8 of 16 for the others,
 * leaving room for the loaded vectors and the broadcast weight. */
DEFINE_MK(gen, 8, 1)
DEFINE_MK(gen, 4, 2)
DEFINE_MK(gen, 2, 4)
DEFINE_MK(gen, 1, 4)
#if CFX_DIRECT_X86
DEFINE_MK(avx512, 8, 2)
DEFINE_MK(avx512, 4, 4)
DEFINE_MK(avx512, 2, 8)
DEFINE_MK(avx512, 1, 8)
DEFINE_MK(avx2, 8, 1)
DEFINE_MK(avx2, 4, 2)
DEFINE_MK(avx2, 2, 4)
DEFINE_MK(avx2, 1, 4)
#endif

/* ---------------------------------------------------------- row operations --- */

/* 2-D operations on nr rows of nc floats, rows dp (destination) and sp (source) floats apart:
 *   copy    d = s
 *   bias    d = s + b
 *   add     d += s
 *   split2  d0[j] = s[2j], d1[j] = s[2j + 1] for the 2j, 2j + 1 < nc (rows of d0, d1 dp apart)
 *   merge2  d[2j] += s0[j], d[2j + 1] += s1[j] for the 2j, 2j + 1 < nc (rows of s0, s1 sp apart)
 */
typedef struct {
    void (*copy)(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr, int64_t nc);
    void (*bias)(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr, int64_t nc, float b);
    void (*add)(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr, int64_t nc);
    void (*split2)(float *d0, float *d1, int64_t dp, const float *s, int64_t sp, int64_t nr,
                   int64_t nc);
    void (*merge2)(float *d, int64_t dp, const float *s0, const float *s1, int64_t sp, int64_t nr,
                   int64_t nc);
} row_ops;

static void copy_c(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr, int64_t nc) {
    for (int64_t r = 0; r < nr; r++) memcpy(d + r * dp, s + r * sp, (size_t)nc * sizeof *d);
}

static void bias_c(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr, int64_t nc,
                   float b) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t j = 0; j < nc; j++) d[r * dp + j] = s[r * sp + j] + b;
}

static void add_c(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr, int64_t nc) {
    for (int64_t r = 0; r < nr; r++)
        for (int64_t j = 0; j < nc; j++) d[r * dp + j] += s[r * sp + j];
}

static void split2_c(float *d0, float *d1, int64_t dp, const float *s, int64_t sp, int64_t nr,
                     int64_t nc) {
    for (int64_t r = 0; r < nr; r++) {
        for (int64_t j = 0; 2 * j < nc; j++) d0[r * dp + j] = s[r * sp + 2 * j];
        for (int64_t j = 0; 2 * j + 1 < nc; j++) d1[r * dp + j] = s[r * sp + 2 * j + 1];
    }
}

static void merge2_c(float *d, int64_t dp, const float *s0, const float *s1, int64_t sp, int64_t nr,
                     int64_t nc) {
    for (int64_t r = 0; r < nr; r++) {
        for (int64_t j = 0; 2 * j < nc; j++) d[r * dp + 2 * j] += s0[r * sp + j];
        for (int64_t j = 0; 2 * j + 1 < nc; j++) d[r * dp + 2 * j + 1] += s1[r * sp + j];
    }
}

static const row_ops rows_c = {copy_c, bias_c, add_c, split2_c, merge2_c};

#if CFX_DIRECT_X86
#define AVX512_FN static __attribute__((target("avx512f")))

/* The first n (<= 16) lanes. */
AVX512_INL __mmask16 lanes(int64_t n) {
    return (__mmask16)((1u << n) - 1);
}

AVX512_FN void copy_avx512(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr,
                           int64_t nc) {
    __mmask16 m = lanes(nc & 15);
    for (int64_t r = 0; r < nr; r++, d += dp, s += sp) {
        int64_t j = 0;
        for (; j + 16 <= nc; j += 16) _mm512_storeu_ps(d + j, _mm512_loadu_ps(s + j));
        if (m) _mm512_mask_storeu_ps(d + j, m, _mm512_maskz_loadu_ps(m, s + j));
    }
}

AVX512_FN void bias_avx512(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr, int64_t nc,
                           float b) {
    __mmask16 m = lanes(nc & 15);
    __m512 bv = _mm512_set1_ps(b);
    for (int64_t r = 0; r < nr; r++, d += dp, s += sp) {
        int64_t j = 0;
        for (; j + 16 <= nc; j += 16)
            _mm512_storeu_ps(d + j, _mm512_add_ps(_mm512_loadu_ps(s + j), bv));
        if (m) _mm512_mask_storeu_ps(d + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, s + j), bv));
    }
}

/* Without masked loads and stores: a load that overlaps a masked store still in flight waits
 * for it to retire (the contraction-first form adds rows shifted by one column over rows just
 * written: with masked row tails its backward data on a 1->8 28x28 3x3 took 2.5 us, 1.8 us
 * without). */
AVX512_FN void add_avx512(float *d, int64_t dp, const float *s, int64_t sp, int64_t nr,
                          int64_t nc) {
    for (int64_t r = 0; r < nr; r++, d += dp, s += sp) {
        int64_t j = 0;
        for (; j + 16 <= nc; j += 16)
            _mm512_storeu_ps(d + j, _mm512_add_ps(_mm512_loadu_ps(d + j), _mm512_loadu_ps(s + j)));
        if (j + 8 <= nc) {
            _mm256_storeu_ps(d + j, _mm256_add_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(s + j)));
            j += 8;
        }
        if (j + 4 <= nc) {
            _mm_storeu_ps(d + j, _mm_add_ps(_mm_loadu_ps(d + j), _mm_loadu_ps(s + j)));
            j += 4;
        }
        for (; j < nc; j++) d[j] += s[j];
    }
}

/* 32 floats at a time: two loads, two permutes, two stores. */
AVX512_FN void split2_avx512(float *d0, float *d1, int64_t dp, const float *s, int64_t sp,
                             int64_t nr, int64_t nc) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int64_t full = nc & ~(int64_t)31, rest = nc - full;
    __mmask16 ma = lanes(CFX_MIN(rest, 16)), mb = lanes(CFX_MAX(rest - 16, 0));
    __mmask16 m0 = lanes((rest + 1) / 2), m1 = lanes(rest / 2);
    for (int64_t r = 0; r < nr; r++, d0 += dp, d1 += dp, s += sp) {
        int64_t x = 0;
        for (; x < full; x += 32) {
            __m512 a = _mm512_loadu_ps(s + x), b = _mm512_loadu_ps(s + x + 16);
            _mm512_storeu_ps(d0 + x / 2, _mm512_permutex2var_ps(a, ev, b));
            _mm512_storeu_ps(d1 + x / 2, _mm512_permutex2var_ps(a, od, b));
        }
        if (rest) {
            __m512 a = _mm512_maskz_loadu_ps(ma, s + x), b = _mm512_maskz_loadu_ps(mb, s + x + 16);
            _mm512_mask_storeu_ps(d0 + x / 2, m0, _mm512_permutex2var_ps(a, ev, b));
            if (m1) _mm512_mask_storeu_ps(d1 + x / 2, m1, _mm512_permutex2var_ps(a, od, b));
        }
    }
}

AVX512_FN void merge2_avx512(float *d, int64_t dp, const float *s0, const float *s1, int64_t sp,
                             int64_t nr, int64_t nc) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    int64_t full = nc & ~(int64_t)31, rest = nc - full;
    __mmask16 ma = lanes(CFX_MIN(rest, 16)), mb = lanes(CFX_MAX(rest - 16, 0));
    __mmask16 m0 = lanes((rest + 1) / 2), m1 = lanes(rest / 2);
    for (int64_t r = 0; r < nr; r++, d += dp, s0 += sp, s1 += sp) {
        int64_t x = 0;
        for (; x < full; x += 32) {
            __m512 e = _mm512_loadu_ps(s0 + x / 2), o = _mm512_loadu_ps(s1 + x / 2);
            _mm512_storeu_ps(
                d + x, _mm512_add_ps(_mm512_loadu_ps(d + x), _mm512_permutex2var_ps(e, lo, o)));
            _mm512_storeu_ps(d + x + 16, _mm512_add_ps(_mm512_loadu_ps(d + x + 16),
                                                       _mm512_permutex2var_ps(e, hi, o)));
        }
        if (rest) {
            __m512 e = _mm512_maskz_loadu_ps(m0, s0 + x / 2),
                   o = _mm512_maskz_loadu_ps(m1, s1 + x / 2);
            _mm512_mask_storeu_ps(
                d + x, ma,
                _mm512_add_ps(_mm512_maskz_loadu_ps(ma, d + x), _mm512_permutex2var_ps(e, lo, o)));
            if (mb)
                _mm512_mask_storeu_ps(d + x + 16, mb,
                                      _mm512_add_ps(_mm512_maskz_loadu_ps(mb, d + x + 16),
                                                    _mm512_permutex2var_ps(e, hi, o)));
        }
    }
}

static const row_ops rows_avx512 = {copy_avx512, bias_avx512, add_avx512, split2_avx512,
                                    merge2_avx512};
#endif

/* ---------------------------------------------------------- ISA selection --- */

/* The micro-kernels for KB = 8, 4, 2, 1 and the row operations of one ISA. */
typedef struct {
    mk_fn k[4];
    const row_ops *rows;
} isa_ops;

static const isa_ops isa_gen = {{mk_gen_8, mk_gen_4, mk_gen_2, mk_gen_1}, &rows_c};
#if CFX_DIRECT_X86
static const isa_ops isa_avx512 = {{mk_avx512_8, mk_avx512_4, mk_avx512_2, mk_avx512_1},
                                   &rows_avx512};
static const isa_ops isa_avx2 = {{mk_avx2_8, mk_avx2_4, mk_avx2_2, mk_avx2_1}, &rows_c};
#endif

/* Tests force a lower ISA (0 generic, 1 AVX2, 2 AVX-512; -1 the best the CPU has) and the
 * backward data form (0 gather, 1 contraction first; -1 by cost) so every variant is checked
 * on this machine. Declared here, not in conv.h: only tests use it. */
void cfx__conv_direct_force(int isa, int bwd_form);
static int forced_isa = -1, forced_bwd = -1;

void cfx__conv_direct_force(int isa, int bwd_form) {
    forced_isa = isa, forced_bwd = bwd_form;
}

bool cfx__conv_direct_preferred(void) {
#if CFX_DIRECT_X86
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

static const isa_ops *pick_isa(void) {
#if CFX_DIRECT_X86
    int best = __builtin_cpu_supports("avx512f")                                 ? 2
               : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1
                                                                                 : 0;
    int level = forced_isa >= 0 && forced_isa < best ? forced_isa : best;
    return level == 2 ? &isa_avx512 : level == 1 ? &isa_avx2 : &isa_gen;
#else
    return &isa_gen;
#endif
}

/* Channels go through the micro-kernels in blocks of 8, 4, 2, 1: the index into isa_ops.k of
 * the next block when left channels remain. */
static int block_of(int64_t left) {
    return left >= 8 ? 0 : left >= 4 ? 1 : left >= 2 ? 2 : 3;
}

/* Micro-kernel passes over n channels. */
static int64_t n_blocks(int64_t n) {
    return n / 8 + __builtin_popcountll((unsigned long long)(n & 7));
}

/* ----------------------------------------------------------------- geometry --- */

typedef struct {
    int64_t Cg, Kg, RS, HWi, HWo, nph;
    int64_t A, B; /* the largest ar = r dh / sh and as = s dw / sw */
    /* forward: phase planes Hp x Wp, PS floats apart; flat output range M, wide rows Mpad */
    int64_t Hp, Wp, PS, M, Mpad;
    /* backward data, gather form: dout planes HD x Wq, DS floats apart; phase planes of the
     * accumulator (pitch Wq) Mq floats apart */
    int64_t HD, Wq, DS, Mq;
    /* backward data, contraction first: U rows Mu apart; phase planes of the accumulator
     * (pitch Wu) ZS floats apart */
    int64_t Wu, Mu, ZS;
} dgeo;

static void derive(const cfx__conv_geom *g, dgeo *d) {
    d->Cg = g->Ci / g->G, d->Kg = g->Co / g->G, d->RS = g->R * g->S;
    d->HWi = g->Hi * g->Wi, d->HWo = g->Ho * g->Wo, d->nph = (int64_t)g->sh * g->sw;
    d->A = (g->R - 1) * g->dh / g->sh, d->B = (g->S - 1) * g->dw / g->sw;
    d->Hp = g->Ho + d->A, d->Wp = g->Wo + d->B;
    d->PS = round16(d->Hp * d->Wp + SLACK);
    d->M = (g->Ho - 1) * d->Wp + g->Wo;
    d->Mpad = round16(d->M);
    /* Backward: phase rows i < Ho + A and columns j < Wo + B are the only ones any dout reaches.
     * Gather: they read dout rows i - ar + A in [0, Ho + 2A), columns j - as + B in
     * [0, Wo + 2B); the kernel writes up to a vector past the last, (Ho + A - 1)*Wq + Wo + B. */
    d->HD = g->Ho + 2 * d->A, d->Wq = g->Wo + 2 * d->B;
    d->DS = round16(d->HD * d->Wq + SLACK);
    d->Mq = round16((g->Ho + d->A) * d->Wq + SLACK);
    /* Contraction first: U (oh, ow) lands at row oh + ar, column ow + as of a phase plane. */
    d->Wu = g->Wo + d->B;
    d->Mu = round16(d->HWo);
    d->ZS = round16((g->Ho + d->A) * d->Wu);
}

/* Nothing to compute (a zero extent somewhere); conv_geometry never makes one, but it is cheap
 * to be total. */
static bool empty(const cfx__conv_geom *g) {
    return g->N <= 0 || g->Ho <= 0 || g->Wo <= 0 || g->Hi <= 0 || g->Wi <= 0 || g->Co <= 0 ||
           g->Ci <= 0 || g->G <= 0 || g->R <= 0 || g->S <= 0;
}

/* Floats of the tap table for n entries, rounded to keep what follows 64-byte aligned. */
static int64_t tap_floats(int64_t n) {
    return round16(n * (int64_t)(sizeof(tapoff) / sizeof(float)));
}

size_t cfx__conv_direct_work(const cfx__conv_geom *g) {
    if (empty(g)) return 0;
    dgeo d;
    derive(g, &d);
    int64_t fwd = tap_floats(d.Cg * d.RS) + d.Cg * d.nph * d.PS + 8 * d.Mpad;
    int64_t gather = tap_floats(d.Kg * d.RS + d.nph) + d.Kg * d.DS + 8 * d.nph * d.Mq;
    int64_t contract = tap_floats(2 * d.Kg + d.RS) + 16 * d.Kg + 8 * d.Mu + d.Cg * d.nph * d.ZS;
    /* 16 floats to align the start to 64 bytes. Both backward forms fit, whichever runs. */
    return (size_t)(16 + CFX_MAX(fwd, CFX_MAX(gather, contract)));
}

static float *align64(float *p) {
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* The first y >= 0 with (y + pad) % st == p, and its phase row (y + pad) / st. */
static void first_of_phase(int64_t p, int64_t pad, int64_t st, int64_t *y, int64_t *i) {
    *y = ((p - pad) % st + st) % st;
    *i = (*y + pad) / st;
}

/* The image rows (or columns) y = y0, y0 + st, ... below H whose phase index i0, i0 + 1, ...
 * stays below n. */
static int64_t count_of_phase(int64_t y0, int64_t i0, int64_t st, int64_t H, int64_t n) {
    if (y0 >= H || i0 >= n) return 0;
    return CFX_MIN((H - y0 + st - 1) / st, n - i0);
}

/* Between an image plane (H x W, pads pt, pl) and its sh x sw phase planes (row pitch W2,
 * planes PS2 floats apart, rows i < nI and columns j < nJ), for phase row p: to_phase copies
 * the image in (phase planes zeroed before), else the phase planes are added into the image. */
static void phase_rows(const cfx__conv_geom *g, const row_ops *ro, float *img, float *ph,
                       int64_t W2, int64_t PS2, int64_t nI, int64_t nJ, bool to_phase) {
    int64_t sh = g->sh, sw = g->sw, Wi = g->Wi;
    /* Image columns x < nx have phase column (x + pl) / sw < nJ. */
    int64_t nx = CFX_MIN(Wi, sw * nJ - g->pl);
    if (nx <= 0) return;
    for (int64_t p = 0; p < sh; p++) {
        int64_t y0, i0;
        first_of_phase(p, g->pt, sh, &y0, &i0);
        int64_t nr = count_of_phase(y0, i0, sh, g->Hi, nI);
        if (!nr) continue;
        float *irow = img + y0 * Wi, *prow = ph + p * sw * PS2 + i0 * W2;
        if (sw == 1) {
            if (to_phase)
                ro->copy(prow + g->pl, W2, irow, sh * Wi, nr, nx);
            else
                ro->add(irow, sh * Wi, prow + g->pl, W2, nr, nx);
        } else if (sw == 2) {
            /* Image column 0 is in phase pl % 2 at column pl / 2, column 1 in the other. */
            float *a = prow + g->pl % 2 * PS2 + g->pl / 2;
            float *b = prow + (g->pl + 1) % 2 * PS2 + (g->pl + 1) / 2;
            if (to_phase)
                ro->split2(a, b, W2, irow, sh * Wi, nr, nx);
            else
                ro->merge2(irow, sh * Wi, a, b, W2, nr, nx);
        } else {
            for (int64_t r = 0; r < nr; r++)
                for (int64_t x = 0, xp = g->pl; x < nx; x++, xp++) {
                    float *e = prow + r * W2 + xp % sw * PS2 + xp / sw, *o = irow + r * sh * Wi + x;
                    if (to_phase)
                        *e = *o;
                    else
                        *o += *e;
                }
        }
    }
}

/* ------------------------------------------------------------------ forward --- */

void cfx__conv_direct_fwd(const cfx__conv_geom *g, const float *in, const float *w, const float *b,
                          float *out, float *work) {
    if (g->N <= 0 || g->Co <= 0 || g->Ho <= 0 || g->Wo <= 0) return;
    if (empty(g)) {
        /* No input channels or no input pixels: the sum is empty, out is the bias. */
        for (int64_t nk = 0; nk < g->N * g->Co; nk++)
            for (int64_t i = 0; i < g->Ho * g->Wo; i++)
                out[nk * g->Ho * g->Wo + i] = b ? b[nk % g->Co] : 0.0f;
        return;
    }
    dgeo d;
    derive(g, &d);
    const isa_ops *isa = pick_isa();
    float *base = align64(work);
    tapoff *tp = (tapoff *)base;
    float *planes = base + tap_floats(d.Cg * d.RS), *wide = planes + d.Cg * d.nph * d.PS;
    /* t = (c, r, s), the weight layout's own order, so the weight offset is t. The taps of
     * channel 0 first; the quotients and remainders step along without divisions, which at
     * these sizes would cost as much as a tenth of the arithmetic. */
    for (int64_t r = 0, ar = 0, pr = 0, t = 0; r < g->R; r++) {
        for (int64_t s = 0, as = 0, qs = 0; s < g->S; s++, t++) {
            tp[t] = (tapoff){(pr * g->sw + qs) * d.PS + ar * d.Wp + as, t};
            for (qs += g->dw; qs >= g->sw; qs -= g->sw) as++;
        }
        for (pr += g->dh; pr >= g->sh; pr -= g->sh) ar++;
    }
    for (int64_t c = 1; c < d.Cg; c++)
        for (int64_t t = 0; t < d.RS; t++)
            tp[c * d.RS + t] = (tapoff){tp[t].src + c * d.nph * d.PS, tp[t].w + c * d.RS};
    int64_t CgRS = d.Cg * d.RS;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->G; gr++) {
            const float *src = in + (n * g->Ci + gr * d.Cg) * d.HWi;
            memset(planes, 0, (size_t)(d.Cg * d.nph * d.PS) * sizeof *planes);
            /* phase_rows only reads the image in this direction. */
            for (int64_t c = 0; c < d.Cg; c++)
                phase_rows(g, isa->rows, (float *)(src + c * d.HWi), planes + c * d.nph * d.PS,
                           d.Wp, d.PS, d.Hp, d.Wp, true);
            for (int64_t k0 = 0; k0 < d.Kg;) {
                int bi = block_of(d.Kg - k0), kb = 8 >> bi;
                int64_t k = gr * d.Kg + k0;
                isa->k[bi](d.M, CgRS, tp, planes, w + k * CgRS, CgRS, wide, d.Mpad);
                /* Drop the garbage columns, add the bias. */
                for (int kk = 0; kk < kb; kk++)
                    isa->rows->bias(out + (n * g->Co + k + kk) * d.HWo, g->Wo, wide + kk * d.Mpad,
                                    d.Wp, g->Ho, g->Wo, b ? b[k + kk] : 0.0f);
                k0 += kb;
            }
        }
}

/* ------------------------------------------------------------ backward data --- */

/* Which backward data form: the one with fewer vector loads per dout-sized vector of output;
 * both do the same multiply-adds. Gather: a load per table entry (Kg R S of them) per pass over
 * the input channels. Contraction first: a load per k per pass over the Cg R S rows, and per
 * row the store of U and the shifted add (load, load, store). */
static bool use_contract(const dgeo *d) {
    if (forced_bwd >= 0) return forced_bwd == 1;
    return d->Kg * n_blocks(d->Cg * d->RS) + 4 * d->Cg * d->RS < d->Kg * d->RS * n_blocks(d->Cg);
}

/* The gather form's table: per phase, a header entry whose src is the count, then (src offset
 * into the padded dout planes, weight offset from w[0][c0]) for each output channel k and tap
 * of the phase. The taps of k = 0 are found with the quotients and remainders stepped along
 * (no divisions); the other k repeat them shifted. */
static void gather_taps(const cfx__conv_geom *g, const dgeo *d, tapoff *tp) {
    int64_t CgRS = d->Cg * d->RS;
    for (int64_t p = 0; p < g->sh; p++)
        for (int64_t q = 0; q < g->sw; q++) {
            tapoff *head = tp++;
            for (int64_t r = 0, ar = 0, pr = 0; r < g->R; r++) {
                if (pr == p)
                    for (int64_t s = 0, as = 0, qs = 0; s < g->S; s++) {
                        if (qs == q)
                            *tp++ = (tapoff){(d->A - ar) * d->Wq + d->B - as, r * g->S + s};
                        for (qs += g->dw; qs >= g->sw; qs -= g->sw) as++;
                    }
                for (pr += g->dh; pr >= g->sh; pr -= g->sh) ar++;
            }
            int64_t nt = tp - head - 1;
            for (int64_t k = 1; k < d->Kg; k++)
                for (int64_t t = 0; t < nt; t++, tp++)
                    *tp = (tapoff){head[1 + t].src + k * d->DS, head[1 + t].w + k * CgRS};
            *head = (tapoff){tp - head - 1, 0};
        }
}

/* The rows [*i0, *i1) and columns [*j0, *j1) of phase (p, q) that are inside din and that some
 * dout pixel reaches (i < Ho + A, j < Wo + B). False when there are none. */
static bool phase_box(const cfx__conv_geom *g, const dgeo *d, int64_t p, int64_t q, int64_t *i0,
                      int64_t *i1, int64_t *j0, int64_t *j1) {
    int64_t y0, x0;
    first_of_phase(p, g->pt, g->sh, &y0, i0);
    first_of_phase(q, g->pl, g->sw, &x0, j0);
    *i1 = *i0 + count_of_phase(y0, *i0, g->sh, g->Hi, g->Ho + d->A);
    *j1 = *j0 + count_of_phase(x0, *j0, g->sw, g->Wi, g->Wo + d->B);
    return *i0 < *i1 && *j0 < *j1;
}

static void bwd_gather(const cfx__conv_geom *g, const dgeo *d, const isa_ops *isa,
                       const float *dout, const float *w, float *din, float *base) {
    tapoff *tp = (tapoff *)base;
    float *D = base + tap_floats(d->Kg * d->RS + d->nph), *wide = D + d->Kg * d->DS;
    gather_taps(g, d, tp);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->G; gr++) {
            /* dout planes at rows A.., columns B.. of zeroed HD x Wq planes. */
            memset(D, 0, (size_t)(d->Kg * d->DS) * sizeof *D);
            for (int64_t k = 0; k < d->Kg; k++)
                isa->rows->copy(D + k * d->DS + d->A * d->Wq + d->B, d->Wq,
                                dout + (n * g->Co + gr * d->Kg + k) * d->HWo, g->Wo, g->Ho, g->Wo);
            const float *wg = w + gr * d->Kg * d->Cg * d->RS;
            for (int64_t c0 = 0; c0 < d->Cg;) {
                int bi = block_of(d->Cg - c0), cb = 8 >> bi;
                /* Every phase plane of cb channels (channel cc, phase ph at
                 * wide + (cc*nph + ph)*Mq), then their interior into din. */
                const tapoff *head = tp;
                for (int64_t p = 0; p < g->sh; p++)
                    for (int64_t q = 0; q < g->sw; q++, head += 1 + head->src) {
                        int64_t T = head->src, ph = p * g->sw + q, i0, i1, j0, j1;
                        if (!phase_box(g, d, p, q, &i0, &i1, &j0, &j1)) continue;
                        int64_t m0 = i0 * d->Wq + j0, M = (i1 - 1) * d->Wq + j1 - m0;
                        if (T)
                            isa->k[bi](M, T, head + 1, D + m0, wg + c0 * d->RS, d->RS,
                                       wide + ph * d->Mq + m0, d->nph * d->Mq);
                        else /* no tap lands in this phase */
                            for (int cc = 0; cc < cb; cc++)
                                memset(wide + (cc * d->nph + ph) * d->Mq, 0,
                                       (size_t)d->Mq * sizeof *wide);
                    }
                for (int cc = 0; cc < cb; cc++)
                    phase_rows(g, isa->rows, din + (n * g->Ci + gr * d->Cg + c0 + cc) * d->HWi,
                               wide + cc * d->nph * d->Mq, d->Wq, d->Mq, g->Ho + d->A, g->Wo + d->B,
                               false);
                c0 += cb;
            }
        }
}

/* Contraction first: U[(c, r, s)][m] = sum over k of w[k][c][r][s] * dout[k][m], a 1x1
 * convolution from Kg to Cg*R*S channels run by the same micro-kernel straight from dout, with KB
 * of those rows per pass, so one dout load feeds KB multiply-adds (the gather form with one input
 * channel needs a load per multiply-add). The last partial vector of each dout plane goes
 * through a zero-padded copy, as the kernel reads whole vectors. Each U row then adds, row by
 * row, into its phase plane of the padded accumulator Z at offset ar*Wu + as. */
static void bwd_contract(const cfx__conv_geom *g, const dgeo *d, const isa_ops *isa,
                         const float *dout, const float *w, float *din, float *base) {
    tapoff *tp = (tapoff *)base, *tt = tp + d->Kg, *zt = tt + d->Kg;
    float *tail = base + tap_floats(2 * d->Kg + d->RS), *U = tail + 16 * d->Kg, *Z = U + 8 * d->Mu;
    int64_t CgRS = d->Cg * d->RS, full = d->HWo & ~(int64_t)15, rest = d->HWo - full;
    for (int64_t k = 0; k < d->Kg; k++) {
        tp[k] = (tapoff){k * d->HWo, k * CgRS};
        tt[k] = (tapoff){k * 16, k * CgRS};
    }
    /* zt[r*S + s].src: where tap (r, s)'s rows start in a channel's phase planes. */
    for (int64_t r = 0, ar = 0, pr = 0, t = 0; r < g->R; r++) {
        for (int64_t s = 0, as = 0, qs = 0; s < g->S; s++, t++) {
            zt[t] = (tapoff){(pr * g->sw + qs) * d->ZS + ar * d->Wu + as, 0};
            for (qs += g->dw; qs >= g->sw; qs -= g->sw) as++;
        }
        for (pr += g->dh; pr >= g->sh; pr -= g->sh) ar++;
    }
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->G; gr++) {
            const float *dy = dout + (n * g->Co + gr * d->Kg) * d->HWo;
            if (rest) {
                memset(tail, 0, (size_t)(16 * d->Kg) * sizeof *tail);
                isa->rows->copy(tail, 16, dy + full, d->HWo, d->Kg, rest);
            }
            memset(Z, 0, (size_t)(d->Cg * d->nph * d->ZS) * sizeof *Z);
            const float *wg = w + gr * d->Kg * CgRS;
            for (int64_t row0 = 0, c = 0, t = 0; row0 < CgRS;) {
                int bi = block_of(CgRS - row0), kb = 8 >> bi;
                if (full) isa->k[bi](full, d->Kg, tp, dy, wg + row0, 1, U, d->Mu);
                if (rest) isa->k[bi](rest, d->Kg, tt, tail, wg + row0, 1, U + full, d->Mu);
                for (int kk = 0; kk < kb; kk++) {
                    isa->rows->add(Z + c * d->nph * d->ZS + zt[t].src, d->Wu, U + kk * d->Mu, g->Wo,
                                   g->Ho, g->Wo);
                    if (++t == d->RS) t = 0, c++;
                }
                row0 += kb;
            }
            for (int64_t c = 0; c < d->Cg; c++)
                phase_rows(g, isa->rows, din + (n * g->Ci + gr * d->Cg + c) * d->HWi,
                           Z + c * d->nph * d->ZS, d->Wu, d->ZS, g->Ho + d->A, g->Wo + d->B, false);
        }
}

void cfx__conv_direct_bwd_data(const cfx__conv_geom *g, const float *dout, const float *w,
                               float *din, float *work) {
    if (empty(g)) return;
    dgeo d;
    derive(g, &d);
    if (use_contract(&d))
        bwd_contract(g, &d, pick_isa(), dout, w, din, align64(work));
    else
        bwd_gather(g, &d, pick_isa(), dout, w, din, align64(work));
}
