/* conv_dnnl.c - the oneDNN fast path of conv.c: convolution and deconvolution primitives for
 * forward, backward data and backward weights, built once per shape (at graph prepare).
 *
 * The graph's tensors are plain NCHW (weights OIHW for Conv, IOHW for ConvTranspose, as
 * PyTorch and ONNX store them). Each primitive is created with format_tag_any, so oneDNN picks
 * its fastest (blocked, e.g. nChw8c on AVX2) layout; where that differs from the plain one, a
 * reorder primitive converts at the op boundary into a buffer owned here. Where the graph
 * holds a tensor in oneDNN's own layout between convolutions (NHWC for inference, nChw16c with a
 * gradient: graph.c, plan_layouts), the primitive is made for that layout and no reorder runs
 * for it. Backward results are ADDED into the graph's gradients: those outputs always go
 * through a reorder with a sum post-op (dst = dst + src), which doubles as the layout
 * conversion.
 *
 * Everything a call needs is allocated at build time: the blocked buffers, and one scratchpad
 * shared by the three primitives (scratchpad_mode_user), so a call only sets data handles and
 * executes. The engine is the process's one (engine/dnnl.c). oneDNN here runs on OpenMP
 * and fixes its thread count when a primitive is created, so primitives remember
 * omp_get_max_threads() and are rebuilt when cfx_set_threads changed it; for a given thread
 * count the results are deterministic (oneDNN's reductions are statically partitioned). Ops
 * the dispatch marks one_thread (tiny ones, where forking costs more than the work) build and
 * run with OpenMP set to one thread for the duration of the call. On several threads a big
 * enough batch is split instead: one one-thread op per thread on its slice of the images
 * (split_batch). */
#include "engine/ops/conv.h"

#include "engine/dnnl.h"

#include <dnnl.h>
#include <omp.h>

bool cfx__conv_dnnl_available(void) {
    return cfx__dnnl_engine() != NULL;
}

bool cfx__conv_dnnl_nhwc(void) {
    if (!cfx__conv_dnnl_available()) return false;
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

enum { ARG_IN, ARG_OUT, ARG_ACC }; /* read, overwritten, accumulated into */

/* One argument of a primitive: the caller's plain buffer and what the primitive uses. */
typedef struct {
    int id;                   /* DNNL_ARG_* */
    int dir;                  /* ARG_IN, ARG_OUT, ARG_ACC */
    dnnl_memory_t user;       /* plain layout, data handle set per call */
    dnnl_memory_t inner;      /* the primitive's layout (== user when no reorder) */
    dnnl_primitive_t reorder; /* user -> inner (ARG_IN) or inner -> user (ARG_OUT/ACC) */
    dnnl_primitive_t store;   /* ARG_ACC: inner -> user without the sum, for a fresh buffer */
    dnnl_primitive_t load;    /* forward dst with a fused sum: user -> inner, the summand in */
    bool keep;                /* ARG_IN of constant weights (opts.const_w): reordered once */
    const void *kept;         /* the buffer whose reorder inner holds, or NULL */
    bool same;                /* ARG_ACC: user has the primitive's layout: a fresh buffer is
                               * written by the primitive itself, no reorder */
    void *buf;                /* storage of inner when it is separate */
} dn_arg;

typedef struct {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dn_arg args[4];
    int nargs;
    dnnl_memory_t scratch;
} dn_step;

struct cfx__conv_dnnl {
    cfx__conv_geom g;
    cfx__conv_dnnl_opts o;
    int nthr;
    dnnl_stream_t stream;
    dn_step fwd, bwd_d, bwd_w;
    void *scratch_buf;
    size_t scratch_bytes;
    void *xbuf, *ybuf; /* blocked x-shaped and y-shaped storage shared by the three steps */
    /* Reorders done once per pass: the blocked x of the last forward (for backward weights)
     * and the blocked dy of backward data (for backward weights), with the buffers they came
     * from. NULL when not available. */
    const void *x_saved, *dy_saved;
    /* Batch split (split_batch): nparts one-thread ops over consecutive slices of the batch,
     * part p from image first[p]. The weight gradients of parts 1.. go to dw_part / db_part
     * (one weight-sized and one bias-sized block each) and are added to part 0's. */
    int nparts;
    cfx__conv_dnnl **parts;
    int64_t *first;
    float *dw_part, *db_part;
};

#define DN_TRY(call)                                                                               \
    do {                                                                                           \
        if ((call) != dnnl_success) return false;                                                  \
    } while (0)

static bool arg_init(dn_arg *a, int id, int dir, const dnnl_memory_desc_t *user_md,
                     const dnnl_primitive_desc_t pd) {
    dnnl_engine_t engine = cfx__dnnl_engine();
    a->id = id;
    a->dir = dir;
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, id);
    if (!want || want->ndims == 0) return false;
    DN_TRY(dnnl_memory_create(&a->user, user_md, engine, DNNL_MEMORY_NONE));
    a->same = dnnl_memory_desc_equal(user_md, want);
    if (dir != ARG_ACC && a->same) {
        a->inner = a->user;
        return true;
    }
    size_t bytes = dnnl_memory_desc_get_size(want);
    a->buf = cfx_aligned_alloc(bytes ? bytes : 64);
    if (!a->buf) return false;
    DN_TRY(dnnl_memory_create(&a->inner, want, engine, a->buf));
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    if (dir == ARG_ACC) {
        DN_TRY(dnnl_primitive_attr_create(&attr));
        DN_TRY(dnnl_post_ops_create(&ops));
        dnnl_post_ops_append_sum(ops, 1.0f);
        dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_status_t s =
        dir == ARG_IN
            ? dnnl_reorder_primitive_desc_create(&rpd, user_md, engine, want, engine, attr)
            : dnnl_reorder_primitive_desc_create(&rpd, want, engine, user_md, engine, attr);
    if (s == dnnl_success) s = dnnl_primitive_create(&a->reorder, rpd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    rpd = NULL;
    if (s == dnnl_success && dir == ARG_ACC) {
        s = dnnl_reorder_primitive_desc_create(&rpd, want, engine, user_md, engine, NULL);
        if (s == dnnl_success) s = dnnl_primitive_create(&a->store, rpd);
        if (rpd) dnnl_primitive_desc_destroy(rpd);
    }
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return s == dnnl_success;
}

static void arg_free(dn_arg *a) {
    if (a->reorder) dnnl_primitive_destroy(a->reorder);
    if (a->store) dnnl_primitive_destroy(a->store);
    if (a->load) dnnl_primitive_destroy(a->load);
    if (a->inner && a->inner != a->user) dnnl_memory_destroy(a->inner);
    if (a->user) dnnl_memory_destroy(a->user);
    cfx_aligned_free(a->buf);
    memset(a, 0, sizeof *a);
}

static void step_free(dn_step *s) {
    for (int i = 0; i < s->nargs; i++) arg_free(&s->args[i]);
    if (s->scratch) dnnl_memory_destroy(s->scratch);
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->pd) dnnl_primitive_desc_destroy(s->pd);
    memset(s, 0, sizeof *s);
}

static _Atomic long long runs, ref_steps;

/* Creates the primitive from its descriptor and records its scratchpad need. */
static bool step_create(cfx__conv_dnnl *d, dn_step *s, const void *desc,
                        const dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint) {
    dnnl_engine_t engine = cfx__dnnl_engine();
    DN_TRY(dnnl_primitive_desc_create(&s->pd, desc, attr, engine, hint));
    DN_TRY(dnnl_primitive_create(&s->prim, s->pd));
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(s->pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
        impl && strncmp(impl, "ref", 3) == 0)
        ref_steps++;
    const dnnl_memory_desc_t *sm = dnnl_primitive_desc_query_md(s->pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = sm ? dnnl_memory_desc_get_size(sm) : 0;
    if (bytes > d->scratch_bytes) d->scratch_bytes = bytes;
    return true;
}

/* After every step exists: one scratchpad buffer for all of them. */
static bool scratch_bind(cfx__conv_dnnl *d) {
    if (!d->scratch_bytes) return true;
    d->scratch_buf = cfx_aligned_alloc(d->scratch_bytes);
    if (!d->scratch_buf) return false;
    dn_step *steps[3] = {&d->fwd, &d->bwd_d, &d->bwd_w};
    for (int i = 0; i < 3; i++) {
        if (!steps[i]->pd) continue;
        const dnnl_memory_desc_t *sm =
            dnnl_primitive_desc_query_md(steps[i]->pd, dnnl_query_scratchpad_md, 0);
        if (sm && dnnl_memory_desc_get_size(sm))
            DN_TRY(dnnl_memory_create(&steps[i]->scratch, sm, cfx__dnnl_engine(), d->scratch_buf));
    }
    return true;
}

/* The blocked copies of x-shaped tensors (forward src, backward-weights src, backward-data
 * diff_src) share one buffer, and so do the y-shaped ones (forward dst and both diff_dst). Their
 * lifetimes do not overlap in the order the op runs them: forward writes x's copy (kept for
 * backward weights) and y's; backward runs weights first (x's copy, then dy's), then data (which
 * reuses dy's copy and only then overwrites x's with dx). */
static bool share_role(dn_arg *const *args, int n, void **buf) {
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        if (args[i] && args[i]->buf) {
            const dnnl_memory_desc_t *md;
            DN_TRY(dnnl_memory_get_memory_desc(args[i]->inner, &md));
            bytes = CFX_MAX(bytes, dnnl_memory_desc_get_size(md));
        }
    if (!bytes) return true;
    *buf = cfx_aligned_alloc(bytes);
    if (!*buf) return false;
    for (int i = 0; i < n; i++)
        if (args[i] && args[i]->buf) {
            DN_TRY(dnnl_memory_set_data_handle(args[i]->inner, *buf));
            cfx_aligned_free(args[i]->buf);
            args[i]->buf = NULL;
        }
    return true;
}

static bool share_buffers(cfx__conv_dnnl *d) {
    dn_arg *xs[3] = {&d->fwd.args[0], d->bwd_w.prim ? &d->bwd_w.args[0] : NULL,
                     d->bwd_d.prim ? &d->bwd_d.args[2] : NULL};
    dn_arg *ys[3] = {&d->fwd.args[2], d->bwd_d.prim ? &d->bwd_d.args[0] : NULL,
                     d->bwd_w.prim ? &d->bwd_w.args[1] : NULL};
    return share_role(xs, 3, &d->xbuf) && share_role(ys, 3, &d->ybuf);
}

static void release_all(cfx__conv_dnnl *d) {
    for (int p = 0; p < d->nparts; p++) cfx__conv_dnnl_free(d->parts[p]);
    cfx_free(d->parts), cfx_free(d->first);
    cfx_aligned_free(d->dw_part), cfx_aligned_free(d->db_part);
    d->parts = NULL, d->first = NULL, d->dw_part = d->db_part = NULL, d->nparts = 0;
    d->x_saved = d->dy_saved = NULL;
    step_free(&d->fwd);
    step_free(&d->bwd_d);
    step_free(&d->bwd_w);
    cfx_aligned_free(d->scratch_buf);
    cfx_aligned_free(d->xbuf);
    cfx_aligned_free(d->ybuf);
    d->scratch_buf = d->xbuf = d->ybuf = NULL;
    d->scratch_bytes = 0;
}

/* Builds every primitive the op needs (for the current thread count). */
static bool build_steps(cfx__conv_dnnl *d) {
    const cfx__conv_geom *g = &d->g;
    /* The op's own x and y (for ConvTranspose, x is the conv "output" of the geometry). */
    dnnl_dims_t xd, yd, wd, bd, st = {g->sh, g->sw}, dl = {g->dh - 1, g->dw - 1};
    dnnl_dims_t pl = {g->pt, g->pl}, pr = {g->pb, g->pr};
    int64_t G = g->G, OC;
    if (!d->o.transposed) {
        xd[0] = g->N, xd[1] = g->Ci, xd[2] = g->Hi, xd[3] = g->Wi;
        yd[0] = g->N, yd[1] = g->Co, yd[2] = g->Ho, yd[3] = g->Wo;
        OC = g->Co;
    } else {
        xd[0] = g->N, xd[1] = g->Co, xd[2] = g->Ho, xd[3] = g->Wo;
        yd[0] = g->N, yd[1] = g->Ci, yd[2] = g->Hi, yd[3] = g->Wi;
        OC = g->Ci;
        /* Deconvolution sizes its output from the padding: output_padding is negative end pad. */
        pr[0] = g->pb - g->opad_h, pr[1] = g->pr - g->opad_w;
    }
    int64_t IC = xd[1];
    int wnd = G > 1 ? 5 : 4;
    if (G > 1)
        wd[0] = G, wd[1] = OC / G, wd[2] = IC / G, wd[3] = g->R, wd[4] = g->S;
    else
        wd[0] = OC, wd[1] = IC, wd[2] = g->R, wd[3] = g->S;
    bd[0] = OC;
    dnnl_format_tag_t wtag =
        d->o.transposed ? (G > 1 ? dnnl_giohw : dnnl_iohw) : (G > 1 ? dnnl_goihw : dnnl_oihw);
    dnnl_memory_desc_t x_u, y_u, w_u, b_u, x_a, y_a, w_a;
    /* A tensor the graph holds in NHWC or nChw16c (blocked_x, blocked_y; c16_x, c16_y) is given
     * to the primitives in that very layout, so no reorder is made for it. */
    dnnl_format_tag_t xt = !d->o.blocked_x ? dnnl_nchw : d->o.c16_x ? dnnl_aBcd16b : dnnl_acdb;
    dnnl_format_tag_t yt = !d->o.blocked_y ? dnnl_nchw : d->o.c16_y ? dnnl_aBcd16b : dnnl_acdb;
    DN_TRY(dnnl_memory_desc_init_by_tag(&x_u, 4, xd, dnnl_f32, xt));
    DN_TRY(dnnl_memory_desc_init_by_tag(&y_u, 4, yd, dnnl_f32, yt));
    DN_TRY(dnnl_memory_desc_init_by_tag(&w_u, wnd, wd, dnnl_f32, wtag));
    DN_TRY(dnnl_memory_desc_init_by_tag(&b_u, 1, bd, dnnl_f32, dnnl_a));
    if (d->o.blocked_x)
        x_a = x_u;
    else
        DN_TRY(dnnl_memory_desc_init_by_tag(&x_a, 4, xd, dnnl_f32, dnnl_format_tag_any));
    if (d->o.blocked_y)
        y_a = y_u;
    else
        DN_TRY(dnnl_memory_desc_init_by_tag(&y_a, 4, yd, dnnl_f32, dnnl_format_tag_any));
    DN_TRY(dnnl_memory_desc_init_by_tag(&w_a, wnd, wd, dnnl_f32, dnnl_format_tag_any));
    const dnnl_memory_desc_t *bias = d->o.bias ? &b_u : NULL;
    /* oneDNN 2.6's deconvolution forward with a bias ran 2.5-3x slower than without it (its
     * bias pass after the data-gradient kernel: batch 50, 64 -> 32 channels, 8 -> 16 pixels,
     * 5.5 ms against 1.9, one thread), so a transposed convolution's forward is made without
     * and conv.c adds the bias. */
    const dnnl_memory_desc_t *fwd_bias = d->o.transposed ? NULL : bias;
    dnnl_primitive_attr_t attr;
    DN_TRY(dnnl_primitive_attr_create(&attr));
    bool ok =
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    bool train = d->o.need_dx || d->o.need_dw;
    dnnl_prop_kind_t prop = train ? dnnl_forward_training : dnnl_forward_inference;
    dnnl_convolution_desc_t fd, bdd, bwd;
    if (!d->o.transposed) {
        ok = ok && dnnl_dilated_convolution_forward_desc_init(&fd, prop, dnnl_convolution_direct,
                                                              &x_a, &w_a, bias, &y_a, st, dl, pl,
                                                              pr) == dnnl_success;
        ok = ok && dnnl_dilated_convolution_backward_data_desc_init(
                       &bdd, dnnl_convolution_direct, d->o.plain_dx ? &x_u : &x_a, &w_a, &y_a, st,
                       dl, pl, pr) == dnnl_success;
        ok = ok && dnnl_dilated_convolution_backward_weights_desc_init(
                       &bwd, dnnl_convolution_direct, &x_a, &w_a, bias, &y_a, st, dl, pl, pr) ==
                       dnnl_success;
    } else {
        ok = ok && dnnl_dilated_deconvolution_forward_desc_init(
                       &fd, prop, dnnl_deconvolution_direct, &x_a, &w_a, fwd_bias, &y_a, st, dl, pl,
                       pr) == dnnl_success;
        ok = ok && dnnl_dilated_deconvolution_backward_data_desc_init(
                       &bdd, dnnl_deconvolution_direct, d->o.plain_dx ? &x_u : &x_a, &w_a, &y_a, st,
                       dl, pl, pr) == dnnl_success;
        ok = ok && dnnl_dilated_deconvolution_backward_weights_desc_init(
                       &bwd, dnnl_deconvolution_direct, &x_a, &w_a, bias, &y_a, st, dl, pl, pr) ==
                       dnnl_success;
    }
    /* A fused Add (cfx__conv_dnnl_opts.sum) is a sum post-op of the forward primitive (dst =
     * conv + dst, dst loaded with the summand first), a fused ReLU or Clip an eltwise one after
     * it (oneDNN's clip is min(max(x, lo), hi), as cfx's). */
    dnnl_primitive_attr_t fattr = NULL;
    dnnl_post_ops_t relu = NULL;
    if (ok && (d->o.relu || d->o.sum || d->o.clip))
        ok =
            dnnl_primitive_attr_clone(&fattr, attr) == dnnl_success &&
            dnnl_post_ops_create(&relu) == dnnl_success &&
            (!d->o.sum || dnnl_post_ops_append_sum(relu, 1.0f) == dnnl_success) &&
            (!d->o.relu || dnnl_post_ops_append_eltwise(relu, 1.0f, dnnl_eltwise_relu, 0.0f,
                                                        0.0f) == dnnl_success) &&
            (!d->o.clip || dnnl_post_ops_append_eltwise(relu, 1.0f, dnnl_eltwise_clip, d->o.clip_lo,
                                                        d->o.clip_hi) == dnnl_success) &&
            dnnl_primitive_attr_set_post_ops(fattr, relu) == dnnl_success;
    ok = ok && step_create(d, &d->fwd, &fd, fattr ? fattr : attr, NULL);
    if (relu) dnnl_post_ops_destroy(relu);
    if (fattr) dnnl_primitive_attr_destroy(fattr);
    if (ok) {
        dn_step *s = &d->fwd;
        ok = arg_init(&s->args[s->nargs++], DNNL_ARG_SRC, ARG_IN, &x_u, s->pd) &&
             arg_init(&s->args[s->nargs++], DNNL_ARG_WEIGHTS, ARG_IN, &w_u, s->pd) &&
             arg_init(&s->args[s->nargs++], DNNL_ARG_DST, ARG_OUT, &y_u, s->pd) &&
             (!fwd_bias || arg_init(&s->args[s->nargs++], DNNL_ARG_BIAS, ARG_IN, &b_u, s->pd));
        s->args[1].keep = d->o.const_w;
        dn_arg *dst = &s->args[2];
        if (ok && d->o.sum && dst->reorder) {
            dnnl_primitive_desc_t rpd = NULL;
            const dnnl_memory_desc_t *want =
                dnnl_primitive_desc_query_md(s->pd, dnnl_query_exec_arg_md, DNNL_ARG_DST);
            ok = want &&
                 dnnl_reorder_primitive_desc_create(&rpd, &y_u, cfx__dnnl_engine(), want,
                                                    cfx__dnnl_engine(), NULL) == dnnl_success &&
                 dnnl_primitive_create(&dst->load, rpd) == dnnl_success;
            if (rpd) dnnl_primitive_desc_destroy(rpd);
        }
    }
    if (ok && d->o.need_dx) {
        dn_step *s = &d->bwd_d;
        ok = step_create(d, s, &bdd, attr, d->fwd.pd);
        /* The GEMM-based data gradient (plain_dx) reads a plain dy; with dy blocked between
         * two convolutions oneDNN 2.6 falls back to its reference kernel for it, 500 times
         * slower (a 3-channel first layer, 5x5 stride 2, at batch 50). Then the step is made
         * again without plain_dx, for the JIT kernel in the blocked layout. */
        const char *impl = NULL;
        if (ok && d->o.plain_dx &&
            dnnl_primitive_desc_query(s->pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
            impl && strncmp(impl, "ref", 3) == 0) {
            step_free(s);
            ref_steps--; /* replaced below */
            ok = (d->o.transposed
                      ? dnnl_dilated_deconvolution_backward_data_desc_init(
                            &bdd, dnnl_deconvolution_direct, &x_a, &w_a, &y_a, st, dl, pl, pr)
                      : dnnl_dilated_convolution_backward_data_desc_init(
                            &bdd, dnnl_convolution_direct, &x_a, &w_a, &y_a, st, dl, pl, pr)) ==
                     dnnl_success &&
                 step_create(d, s, &bdd, attr, d->fwd.pd);
        }
        ok = ok && arg_init(&s->args[s->nargs++], DNNL_ARG_DIFF_DST, ARG_IN, &y_u, s->pd) &&
             arg_init(&s->args[s->nargs++], DNNL_ARG_WEIGHTS, ARG_IN, &w_u, s->pd) &&
             arg_init(&s->args[s->nargs++], DNNL_ARG_DIFF_SRC, ARG_ACC, &x_u, s->pd);
        if (ok) s->args[1].keep = d->o.const_w;
    }
    if (ok && d->o.need_dw) {
        dn_step *s = &d->bwd_w;
        ok = step_create(d, s, &bwd, attr, d->fwd.pd) &&
             arg_init(&s->args[s->nargs++], DNNL_ARG_SRC, ARG_IN, &x_u, s->pd) &&
             arg_init(&s->args[s->nargs++], DNNL_ARG_DIFF_DST, ARG_IN, &y_u, s->pd) &&
             arg_init(&s->args[s->nargs++], DNNL_ARG_DIFF_WEIGHTS, ARG_ACC, &w_u, s->pd) &&
             (!d->o.bias ||
              arg_init(&s->args[s->nargs++], DNNL_ARG_DIFF_BIAS, ARG_ACC, &b_u, s->pd));
    }
    dnnl_primitive_attr_destroy(attr);
    return ok && scratch_bind(d) && share_buffers(d);
}

static bool split_enabled = true;

void cfx__conv_dnnl_split(bool on) {
    split_enabled = on;
}

/* Several threads share a convolution by splitting its batch: each runs a one-thread
 * primitive on its own slice of images (and weight gradients are summed after), instead of
 * oneDNN dividing every primitive among them. oneDNN's own split of the backward passes scaled
 * poorly here: on 2 threads, for the reference classifier's 32->64 3x3 stride-2 convolution at
 * batch 64 (DNNL_VERBOSE, us per call), backward data took 518-531 and backward weights 413-440,
 * against 772 and 731 on one thread; split by batch, each thread's half took 421 and 394. Its
 * forward was a little worse split (328 against 298-313), but the training step as a whole was
 * the same with the forward left to oneDNN, and 9% faster (4.85 against 5.35 ms, bench_train)
 * than without the split. Each thread also keeps its own slice of the activations in its cache
 * from one op to the next, as the elementwise ops split their ranges the same way. A batch of
 * fewer than two images a thread stays with oneDNN. */
static bool split_batch(const cfx__conv_dnnl *d, int nthr) {
    return split_enabled && !d->o.one_thread && nthr > 1 && d->g.N >= 2 * (int64_t)nthr;
}

static cfx__conv_dnnl *conv_new(const cfx__conv_geom *g, const cfx__conv_dnnl_opts *o);

/* Floats of one image of x (or of y): what a slice of the batch is offset by. */
static int64_t image_floats(const cfx__conv_dnnl *d, bool x) {
    const cfx__conv_geom *g = &d->g;
    bool in = x != d->o.transposed; /* the geometry's input side */
    /* NCHW, NHWC and nChw16c (channels a multiple of 16) hold an image in the same c * hw
     * floats, the batch outermost. */
    return in ? g->Ci * g->Hi * g->Wi : g->Co * g->Ho * g->Wo;
}

/* Floats of the weights (and their gradient) and of the bias. */
static int64_t weight_floats(const cfx__conv_dnnl *d) {
    const cfx__conv_geom *g = &d->g;
    return g->Co * (g->Ci / g->G) * g->R * g->S;
}

static int64_t bias_floats(const cfx__conv_dnnl *d) {
    return d->o.transposed ? d->g.Ci : d->g.Co;
}

static bool build_parts(cfx__conv_dnnl *d, int nthr) {
    const cfx__conv_geom *g = &d->g;
    int64_t wn = weight_floats(d), bn = bias_floats(d);
    d->parts = cfx_calloc((size_t)nthr, sizeof *d->parts);
    d->first = cfx_calloc((size_t)nthr + 1, sizeof *d->first);
    if (!d->parts || !d->first) return false;
    d->nparts = nthr;
    if (d->o.need_dw) {
        d->dw_part = cfx_aligned_alloc((size_t)(nthr - 1) * (size_t)wn * sizeof(float));
        d->db_part = cfx_aligned_alloc((size_t)(nthr - 1) * (size_t)bn * sizeof(float));
        if (!d->dw_part || !d->db_part) return false;
    }
    for (int p = 0; p <= nthr; p++) d->first[p] = g->N * p / nthr;
    for (int p = 0; p < nthr; p++) {
        cfx__conv_geom gp = *g;
        gp.N = d->first[p + 1] - d->first[p];
        cfx__conv_dnnl_opts op = d->o;
        op.one_thread = true;
        d->parts[p] = conv_new(&gp, &op);
        if (!d->parts[p]) return false;
    }
    return true;
}

/* A one-thread op builds (and runs) its primitives with OpenMP at one thread; nthr remembers the
 * caller's count either way, which is what a rebuild is keyed on. */
static bool build(cfx__conv_dnnl *d) {
    int nthr = omp_get_max_threads();
    d->nthr = nthr;
    if (split_batch(d, nthr)) return build_parts(d, nthr);
    if (d->o.one_thread) omp_set_num_threads(1);
    bool ok = build_steps(d);
    if (d->o.one_thread) omp_set_num_threads(nthr);
    return ok;
}

cfx__conv_dnnl *cfx__conv_dnnl_new(const cfx__conv_geom *g, const cfx__conv_dnnl_opts *o) {
    if (!cfx__conv_dnnl_available()) return NULL;
    return conv_new(g, o);
}

static cfx__conv_dnnl *conv_new(const cfx__conv_geom *g, const cfx__conv_dnnl_opts *o) {
    cfx__conv_dnnl *d = cfx_calloc(1, sizeof *d);
    if (!d) return NULL;
    d->g = *g;
    d->o = *o;
    if (dnnl_stream_create(&d->stream, cfx__dnnl_engine(), dnnl_stream_default_flags) !=
            dnnl_success ||
        !build(d)) {
        cfx__conv_dnnl_free(d);
        return NULL;
    }
    return d;
}

void cfx__conv_dnnl_free(cfx__conv_dnnl *d) {
    if (!d) return;
    release_all(d);
    if (d->stream) dnnl_stream_destroy(d->stream);
    cfx_free(d);
}

static bool same_md(const_dnnl_memory_t a, const_dnnl_memory_t b) {
    const dnnl_memory_desc_t *ma, *mb;
    return dnnl_memory_get_memory_desc(a, &ma) == dnnl_success &&
           dnnl_memory_get_memory_desc(b, &mb) == dnnl_success && dnnl_memory_desc_equal(ma, mb);
}

/* Rebuilds the primitives when the OpenMP thread count changed since they were made. */
static bool threads_ok(cfx__conv_dnnl *d) {
    if (d->nthr == omp_get_max_threads()) return true;
    release_all(d);
    if (build(d)) return true;
    release_all(d);
    return false;
}

bool cfx__conv_dnnl_dst_plain(const cfx__conv_dnnl *d) {
    for (int p = 0; p < d->nparts; p++)
        if (!cfx__conv_dnnl_dst_plain(d->parts[p])) return false;
    return d->nparts || !d->fwd.args[2].reorder;
}

long long cfx__conv_dnnl_runs(void) {
    return runs;
}

long long cfx__conv_dnnl_ref_steps(void) {
    return ref_steps;
}

/* Runs one step: reorders in, the primitive, reorders out. ptrs[i] is the caller's buffer for
 * args[i]; a NULL output is computed but not delivered; an accumulated output whose fresh[i] is
 * set is stored instead (the graph's din_fresh). sum (forward with a fused Add only) is loaded
 * into the output first, for the sum post-op. */
static bool run_steps(cfx__conv_dnnl *d, dn_step *s, void *const *ptrs, const dnnl_memory_t *reuse,
                      const bool *fresh, const float *sum) {
    if (!s->prim) return false;
    dnnl_exec_arg_t ea[6];
    int n = 0;
    for (int i = 0; i < s->nargs; i++) {
        dn_arg *a = &s->args[i];
        if (sum && a->dir == ARG_OUT && a->load) {
            DN_TRY(dnnl_memory_set_data_handle_v2(a->user, (void *)sum, d->stream));
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, a->user}, {DNNL_ARG_TO, a->inner}};
            DN_TRY(dnnl_primitive_execute(a->load, d->stream, 2, ra));
        } else if (sum && a->dir == ARG_OUT && ptrs[i] != sum) {
            const dnnl_memory_desc_t *md;
            DN_TRY(dnnl_memory_get_memory_desc(a->user, &md));
            memcpy(ptrs[i], sum, dnnl_memory_desc_get_size(md));
        }
        if (ptrs[i]) DN_TRY(dnnl_memory_set_data_handle_v2(a->user, ptrs[i], d->stream));
        if (reuse && reuse[i]) {
            ea[n++] = (dnnl_exec_arg_t){a->id, reuse[i]};
            continue;
        }
        if (a->dir == ARG_ACC && a->same && fresh && fresh[i] && ptrs[i]) {
            ea[n++] = (dnnl_exec_arg_t){a->id, a->user};
            continue;
        }
        if (a->dir == ARG_IN && a->reorder && !(a->keep && a->kept && a->kept == ptrs[i])) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, a->user}, {DNNL_ARG_TO, a->inner}};
            DN_TRY(dnnl_primitive_execute(a->reorder, d->stream, 2, ra));
            a->kept = a->keep ? ptrs[i] : NULL;
        }
        ea[n++] = (dnnl_exec_arg_t){a->id, a->inner};
    }
    if (s->scratch) ea[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};
    DN_TRY(dnnl_primitive_execute(s->prim, d->stream, n, ea));
    for (int i = 0; i < s->nargs; i++) {
        dn_arg *a = &s->args[i];
        if (a->dir == ARG_IN || !a->reorder || !ptrs[i]) continue;
        if (a->dir == ARG_ACC && a->same && fresh && fresh[i]) continue; /* written in place */
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, a->inner}, {DNNL_ARG_TO, a->user}};
        bool store = fresh && fresh[i] && a->store;
        DN_TRY(dnnl_primitive_execute(store ? a->store : a->reorder, d->stream, 2, ra));
    }
    DN_TRY(dnnl_stream_wait(d->stream));
    return true;
}

static bool run(cfx__conv_dnnl *d, dn_step *s, void *const *ptrs, const dnnl_memory_t *reuse,
                const bool *fresh, const float *sum) {
    if (!d->o.one_thread) return run_steps(d, s, ptrs, reuse, fresh, sum);
    int nthr = omp_get_max_threads();
    omp_set_num_threads(1);
    bool ok = run_steps(d, s, ptrs, reuse, fresh, sum);
    omp_set_num_threads(nthr);
    return ok;
}

/* The three passes on one op's own primitives (a whole op, or one part of a split one). */
static bool fwd_one(cfx__conv_dnnl *d, const float *x, const float *w, const float *b,
                    const float *sum, float *y) {
    void *p[4] = {(void *)x, (void *)w, y, (void *)b};
    bool ok = run(d, &d->fwd, p, NULL, NULL, d->o.sum ? sum : NULL);
    d->x_saved = ok ? x : NULL;
    return ok;
}

static bool bwd_data_one(cfx__conv_dnnl *d, const float *dy, const float *w, float *dx,
                         bool fresh) {
    void *p[3] = {(void *)dy, (void *)w, dx};
    /* Reuse the blocked dy that backward weights made, when the layouts agree. */
    dnnl_memory_t reuse[3] = {0};
    const dn_arg *wdy = &d->bwd_w.args[1], *bdy = &d->bwd_d.args[0];
    if (d->dy_saved == dy && wdy->reorder && bdy->reorder && same_md(wdy->inner, bdy->inner))
        reuse[0] = wdy->inner;
    d->dy_saved = NULL;
    d->x_saved = NULL; /* diff_src overwrites the blocked copy of x */
    return run(d, &d->bwd_d, p, reuse, (const bool[3]){false, false, fresh}, NULL);
}

static bool bwd_w_one(cfx__conv_dnnl *d, const float *x, const float *dy, float *dw, float *db,
                      bool fresh_dw, bool fresh_db) {
    void *p[4] = {(void *)x, (void *)dy, dw, db};
    /* Reuse the blocked x of the forward pass when it came from the same buffer and has the
     * layout this primitive wants. */
    dnnl_memory_t reuse[4] = {0};
    const dn_arg *fx = &d->fwd.args[0], *wx = &d->bwd_w.args[0];
    if (d->x_saved == x && fx->reorder && wx->reorder && same_md(fx->inner, wx->inner))
        reuse[0] = fx->inner;
    bool ok = run(d, &d->bwd_w, p, reuse, (const bool[4]){false, false, fresh_dw, fresh_db}, NULL);
    d->dy_saved = ok ? dy : NULL;
    return ok;
}

/* A split op: part p's slices of x and y start first[p] images in. Each thread runs its own
 * parts (one each, unless OpenMP gives fewer threads, e.g. inside another parallel region). */
enum { PASS_FWD, PASS_BWD_DATA, PASS_BWD_W };

typedef struct {
    const float *x, *w, *b, *dy, *sum;
    float *y, *dx, *dw, *db;
    bool fresh_dx, fresh_dw, fresh_db;
} pass_args;

static bool run_part(cfx__conv_dnnl *d, int pass, int p, const pass_args *a) {
    cfx__conv_dnnl *q = d->parts[p];
    int64_t xo = d->first[p] * image_floats(d, true), yo = d->first[p] * image_floats(d, false);
    if (pass == PASS_FWD)
        return fwd_one(q, a->x + xo, a->w, a->b, a->sum ? a->sum + yo : NULL, a->y + yo);
    if (pass == PASS_BWD_DATA) return bwd_data_one(q, a->dy + yo, a->w, a->dx + xo, a->fresh_dx);
    /* Part 0 delivers into the caller's gradients, the others into their own blocks. */
    int64_t wn = weight_floats(d), bn = bias_floats(d);
    float *dw = !a->dw ? NULL : p ? d->dw_part + (p - 1) * wn : a->dw;
    float *db = !a->db ? NULL : p ? d->db_part + (p - 1) * bn : a->db;
    return bwd_w_one(q, a->x + xo, a->dy + yo, dw, db, p ? true : a->fresh_dw,
                     p ? true : a->fresh_db);
}

/* dst[i] += the nparts - 1 blocks of src (n floats each), in part order, for i in [lo, hi). */
static void add_parts(float *dst, const float *src, int nblocks, int64_t n, int64_t lo,
                      int64_t hi) {
    for (int q = 0; q < nblocks; q++)
        for (int64_t i = lo; i < hi; i++) dst[i] += src[q * n + i];
}

static _Atomic long long split_runs;

long long cfx__conv_dnnl_split_runs(void) {
    return split_runs;
}

static bool run_split(cfx__conv_dnnl *d, int pass, const pass_args *a) {
    split_runs++;
    int64_t wn = weight_floats(d), bn = bias_floats(d);
    int ok = 1;
#pragma omp parallel num_threads(d->nparts) reduction(& : ok)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        for (int p = t; p < d->nparts; p += T) ok &= run_part(d, pass, p, a);
        if (pass == PASS_BWD_W) {
#pragma omp barrier
            if (a->dw)
                add_parts(a->dw, d->dw_part, d->nparts - 1, wn, wn * t / T, wn * (t + 1) / T);
            if (a->db)
                add_parts(a->db, d->db_part, d->nparts - 1, bn, bn * t / T, bn * (t + 1) / T);
        }
    }
    return ok;
}

// x, w, b (+ sum) -> y (overwritten)
bool cfx__conv_dnnl_fwd(cfx__conv_dnnl *d, const float *x, const float *w, const float *b,
                        const float *sum, float *y) {
    if (!threads_ok(d)) return false;
    bool ok = d->nparts
                  ? run_split(d, PASS_FWD, &(pass_args){.x = x, .w = w, .b = b, .sum = sum, .y = y})
                  : fwd_one(d, x, w, b, sum, y);
    runs += ok;
    return ok;
}

// dy, w -> dx (+=, or = when fresh)
bool cfx__conv_dnnl_bwd_data(cfx__conv_dnnl *d, const float *dy, const float *w, float *dx,
                             bool fresh) {
    if (!threads_ok(d)) return false;
    bool ok = d->nparts ? run_split(d, PASS_BWD_DATA,
                                    &(pass_args){.dy = dy, .w = w, .dx = dx, .fresh_dx = fresh})
                        : bwd_data_one(d, dy, w, dx, fresh);
    runs += ok;
    return ok;
}

// x, dy -> dw (+=), db (+=); = where fresh
bool cfx__conv_dnnl_bwd_w(cfx__conv_dnnl *d, const float *x, const float *dy, float *dw, float *db,
                          bool fresh_dw, bool fresh_db) {
    if (!threads_ok(d)) return false;
    bool ok = d->nparts ? run_split(d, PASS_BWD_W,
                                    &(pass_args){.x = x,
                                                 .dy = dy,
                                                 .dw = dw,
                                                 .db = db,
                                                 .fresh_dw = fresh_dw,
                                                 .fresh_db = fresh_db})
                        : bwd_w_one(d, x, dy, dw, db, fresh_dw, fresh_db);
    runs += ok;
    return ok;
}
