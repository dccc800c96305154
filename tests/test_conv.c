/* test_conv.c - Conv and ConvTranspose: gradient checks over the attribute combinations,
 * values and gradients against PyTorch (tests/py/conv_oracle.py), the oneDNN path against the
 * im2col reference, determinism, and errors for bad shapes and attributes. */
#include "engine/ops/conv.h"
#include "gradcheck.h"
#include "oracle_io.h"

#include <stdlib.h>

typedef struct {
    const char *name;
    bool transposed, bias;
    int64_t x[4], w[4];
    cfx_conv2d_attr at;
} conv_case;

static const conv_case cases[] = {
    {"basic", false, true, {2, 3, 7, 6}, {4, 3, 3, 3}, {.pad = {1, 1, 1, 1}}},
    {"stride2_asym",
     false,
     true,
     {2, 3, 9, 8},
     {4, 3, 3, 2},
     {.stride = {2, 2}, .pad = {1, 0, 2, 1}}},
    {"dilation2",
     false,
     false,
     {1, 2, 9, 9},
     {3, 2, 3, 3},
     {.pad = {2, 2, 2, 2}, .dilation = {2, 2}}},
    {"groups2",
     false,
     true,
     {2, 4, 6, 6},
     {6, 2, 3, 3},
     {.stride = {1, 2}, .pad = {1, 1, 1, 1}, .groups = 2}},
    {"depthwise", false, true, {2, 4, 7, 7}, {4, 1, 3, 3}, {.pad = {1, 1, 1, 1}, .groups = 4}},
    {"pointwise", false, true, {2, 5, 4, 4}, {3, 5, 1, 1}, {.groups = 1}},
    {"wide_stride",
     false,
     false,
     {1, 3, 8, 11},
     {2, 3, 2, 3},
     {.stride = {2, 3}, .dilation = {1, 2}}},
    {"single_channel", false, true, {1, 1, 10, 10}, {8, 1, 3, 3}, {.pad = {1, 1, 1, 1}}},
    {"t_basic",
     true,
     true,
     {2, 4, 5, 5},
     {4, 3, 3, 3},
     {.stride = {2, 2}, .pad = {1, 1, 1, 1}, .output_padding = {1, 1}}},
    {"t_groups_dil_asym",
     true,
     false,
     {1, 4, 4, 5},
     {4, 2, 3, 3},
     {.pad = {1, 0, 2, 1}, .dilation = {2, 2}, .groups = 2}},
    {"t_depthwise", true, true, {2, 3, 4, 4}, {3, 1, 3, 3}, {.stride = {2, 2}, .groups = 3}},
    {"t_opad_dilation",
     true,
     true,
     {1, 2, 4, 4},
     {2, 3, 3, 3},
     {.dilation = {2, 2}, .output_padding = {1, 1}}},
    {"t_stride3_asym",
     true,
     true,
     {2, 3, 3, 4},
     {3, 2, 2, 3},
     {.stride = {3, 2}, .pad = {0, 1, 1, 0}, .output_padding = {2, 1}}},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

typedef struct {
    cfx_graph *g;
    int x, w, b, y;
} conv_graph;

/* Builds the case with x requiring a gradient, fills x, w, b from seed. */
static bool build(const conv_case *c, conv_graph *cg, uint64_t seed) {
    cg->g = cfx_graph_new();
    cg->x = cfx_graph_input(cg->g, "x", 4, c->x);
    cg->w = cfx_graph_param(cg->g, "w", 4, c->w);
    int64_t nb = c->transposed ? c->w[1] * (c->at.groups ? c->at.groups : 1) : c->w[0];
    cg->b = c->bias ? cfx_graph_param(cg->g, "b", 1, &nb) : -1;
    cg->y = c->transposed ? cfx_op_conv_transpose2d(cg->g, cg->x, cg->w, cg->b, &c->at)
                          : cfx_op_conv2d(cg->g, cg->x, cg->w, cg->b, &c->at);
    cfx_graph_requires_grad(cg->g, cg->x, 1);
    cfx_status s = cfx_graph_compile(cg->g);
    CHECK_MSG(s == CFX_OK, "%s: compile: %s", c->name, cfx_last_error());
    if (s != CFX_OK) {
        cfx_graph_free(cg->g);
        cg->g = NULL;
        return false;
    }
    cfx_rng r;
    cfx_rng_init(&r, seed);
    cfx_tensor_fill_uniform(cfx_graph_tensor(cg->g, cg->x), &r, -1, 1);
    cfx_tensor_fill_uniform(cfx_graph_tensor(cg->g, cg->w), &r, -0.5f, 0.5f);
    if (cg->b >= 0) cfx_tensor_fill_uniform(cfx_graph_tensor(cg->g, cg->b), &r, -0.5f, 0.5f);
    return true;
}

static float *random_seed(int64_t n, uint64_t seed) {
    float *d = malloc((size_t)n * sizeof *d);
    cfx_rng r;
    cfx_rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++) d[i] = (float)(2 * cfx_rng_uniform(&r) - 1);
    return d;
}

static void gradcheck_all(cfx__conv_path path) {
    cfx__conv_force_path(path);
    for (int i = 0; i < NCASES; i++) {
        conv_graph cg;
        if (build(&cases[i], &cg, 100 + i) &&
            CHECK_GRADS(cg.g, cg.y, &(gradcheck_opts){.seed = (uint64_t)i}))
            printf("  (case %s, path %d)\n", cases[i].name, (int)path);
        cfx_graph_free(cg.g);
    }
    cfx__conv_force_path(CFX__CONV_PATH_AUTO);
}

CFX_TEST(conv, gradcheck_reference) {
    gradcheck_all(CFX__CONV_PATH_REF);
}

/* The dispatch's choice: the direct kernels for these small convolutions where the CPU has
 * AVX-512, oneDNN for the transposed ones. */
CFX_TEST(conv, gradcheck_fast) {
    gradcheck_all(CFX__CONV_PATH_AUTO);
}

CFX_TEST(conv, gradcheck_dnnl) {
    gradcheck_all(CFX__CONV_PATH_DNNL);
}

/* Forced where the CPU lacks AVX-512 too (its AVX2 or generic code then runs). */
CFX_TEST(conv, gradcheck_direct) {
    gradcheck_all(CFX__CONV_PATH_DIRECT);
}

/* Values and x, w, b gradients of every case against PyTorch (float64) within 1e-4 relative. */
CFX_TEST(conv, matches_pytorch) {
    const char *dir = cfx_test_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    conv_graph gs[NCASES];
    for (int i = 0; i < NCASES; i++) {
        const conv_case *c = &cases[i];
        conv_graph *cg = &gs[i];
        if (!build(c, cg, 200 + i)) continue;
        cfx_tensor *y = cfx_graph_tensor(cg->g, cg->y);
        float *dy = random_seed(y->numel, 300 + i);
        long long before = cfx__conv_dnnl_runs(), before_direct = cfx__conv_direct_runs();
        CHECK_OK(cfx_graph_forward(cg->g));
        CHECK_OK(cfx_graph_backward(cg->g, cg->y, dy));
        /* Every case takes a fast path: the direct kernels (forward and data gradient) for a
         * small convolution, transposed or not, on an AVX-512 CPU, else oneDNN (three steps),
         * except output_padding >= stride, which oneDNN rejects (its deconvolution would need
         * a negative end padding), and a transposed convolution to at most 4 channels, which
         * the reference (col2im + GEMM) runs faster. */
        long long dn = cfx__conv_dnnl_runs() - before, di = cfx__conv_direct_runs() - before_direct;
        int groups = c->at.groups ? c->at.groups : 1;
        bool few = c->transposed && groups == 1 && c->w[1] <= 4;
        bool want_direct = cfx__conv_direct_preferred();
        long long want_dn = want_direct || few || strcmp(c->name, "t_opad_dilation") == 0 ? 0 : 3;
        CHECK_MSG(dn == want_dn && di == (want_direct ? 2 : 0),
                  "%s: %lld oneDNN steps and %lld direct ones, expected %lld and %d", c->name, dn,
                  di, want_dn, want_direct ? 2 : 0);
        char nm[128];
        const cfx_tensor *x = cfx_graph_tensor(cg->g, cg->x), *w = cfx_graph_tensor(cg->g, cg->w);
        snprintf(nm, sizeof nm, "%s_x", c->name);
        CHECK(oracle_write(dir, nm, 4, x->shape, x->data));
        snprintf(nm, sizeof nm, "%s_w", c->name);
        CHECK(oracle_write(dir, nm, 4, w->shape, w->data));
        if (cg->b >= 0) {
            const cfx_tensor *b = cfx_graph_tensor(cg->g, cg->b);
            snprintf(nm, sizeof nm, "%s_b", c->name);
            CHECK(oracle_write(dir, nm, 1, b->shape, b->data));
        }
        snprintf(nm, sizeof nm, "%s_dy", c->name);
        CHECK(oracle_write(dir, nm, 4, y->shape, dy));
        free(dy);
        const cfx_conv2d_attr *a = &c->at;
        fprintf(f,
                "%s kind=%s bias=%d stride=%d,%d pad=%d,%d,%d,%d dil=%d,%d groups=%d opad=%d,%d\n",
                c->name, c->transposed ? "convt" : "conv", c->bias, a->stride[0] ? a->stride[0] : 1,
                a->stride[1] ? a->stride[1] : 1, a->pad[0], a->pad[1], a->pad[2], a->pad[3],
                a->dilation[0] ? a->dilation[0] : 1, a->dilation[1] ? a->dilation[1] : 1,
                a->groups ? a->groups : 1, a->output_padding[0], a->output_padding[1]);
    }
    fclose(f);
    int rc = cfx_test_python("conv_oracle.py", dir);
    CHECK_MSG(rc == 0, "conv_oracle.py exited with %d", rc);
    for (int i = 0; i < NCASES; i++) {
        const conv_case *c = &cases[i];
        conv_graph *cg = &gs[i];
        if (!cg->g) continue;
        struct {
            const char *suffix;
            int id;
            const float *got;
        } outs[4] = {{"y", cg->y, cfx_graph_tensor(cg->g, cg->y)->data},
                     {"dx", cg->x, cfx_graph_grad(cg->g, cg->x)},
                     {"dw", cg->w, cfx_graph_grad(cg->g, cg->w)},
                     {"db", cg->b, cg->b >= 0 ? cfx_graph_grad(cg->g, cg->b) : NULL}};
        for (int k = 0; k < 4 && rc == 0; k++) {
            if (outs[k].id < 0) continue;
            char nm[128];
            snprintf(nm, sizeof nm, "%s_%s", c->name, outs[k].suffix);
            int64_t n = cfx_graph_tensor(cg->g, outs[k].id)->numel;
            float *want = oracle_read(dir, nm, n);
            CHECK_MSG(want != NULL, "oracle output %s missing (%s %s)", nm, dir,
                      oracle_dir_state(dir));
            if (want && !CHECK_ARRAY_NEAR(outs[k].got, want, (size_t)n, 1e-4, 1e-5))
                printf("  (case %s, %s)\n", c->name, outs[k].suffix);
            free(want);
        }
        cfx_graph_free(cg->g);
    }
}

/* Each oneDNN variant (and the default dispatch) agrees with the reference on values and all
 * gradients, and runs the same twice. Larger shapes than the gradchecks, so blocked layouts are
 * exercised. */
CFX_TEST(conv, fast_matches_reference) {
    static const conv_case big[] = {
        {"c32", false, true, {3, 32, 12, 10}, {32, 32, 3, 3}, {.pad = {1, 1, 1, 1}}},
        {"c16_s2",
         false,
         true,
         {2, 16, 13, 13},
         {24, 16, 3, 3},
         {.stride = {2, 2}, .pad = {1, 0, 1, 2}}},
        {"dw32", false, true, {2, 32, 9, 9}, {32, 1, 3, 3}, {.pad = {1, 1, 1, 1}, .groups = 32}},
        {"c1", false, true, {1, 1, 28, 28}, {32, 1, 3, 3}, {.pad = {1, 1, 1, 1}}},
        {"t16", true, true, {2, 16, 7, 7}, {16, 8, 4, 4}, {.stride = {2, 2}, .pad = {1, 1, 1, 1}}},
    };
    static const cfx__conv_path paths[] = {CFX__CONV_PATH_AUTO, CFX__CONV_PATH_DNNL,
                                           CFX__CONV_PATH_DNNL_PLAIN_DX, CFX__CONV_PATH_DIRECT};
    enum { NPATHS = sizeof paths / sizeof paths[0] };
    for (int t = 0; t < (int)(sizeof big / sizeof big[0]) * NPATHS; t++) {
        int i = t / NPATHS;
        cfx__conv_path path = paths[t % NPATHS];
        const conv_case *c = &big[i];
        conv_graph ref, fast;
        cfx__conv_force_path(CFX__CONV_PATH_REF);
        bool ok = build(c, &ref, 7 + i);
        cfx__conv_force_path(path);
        ok = build(c, &fast, 7 + i) && ok;
        cfx__conv_force_path(CFX__CONV_PATH_AUTO);
        if (ok) {
            int64_t n = cfx_graph_tensor(ref.g, ref.y)->numel;
            float *dy = random_seed(n, 9 + i);
            int ids[4] = {ref.y, ref.x, ref.w, ref.b};
            long long before = cfx__conv_dnnl_runs();
            long long before_direct = cfx__conv_direct_runs();
            CHECK_OK(cfx_graph_forward(ref.g));
            CHECK_OK(cfx_graph_backward(ref.g, ref.y, dy));
            CHECK_INT_EQ(cfx__conv_dnnl_runs(), before);
            CHECK_OK(cfx_graph_forward(fast.g));
            CHECK_OK(cfx_graph_backward(fast.g, ref.y, dy));
            /* Forward, backward data and backward weights all ran on oneDNN, or (forced, and
             * the automatic choice for a small convolution on an AVX-512 CPU) forward and
             * backward data on the direct kernels. A transposed convolution's multiply-adds
             * are counted over its input, the output of the convolution it reverses; one to at
             * most 4 channels runs on the reference unless forced. */
            int64_t over = cfx_graph_tensor(ref.g, c->transposed ? ref.x : ref.y)->numel;
            bool small = (double)over * c->w[1] * c->w[2] * c->w[3] < CFX__CONV_DIRECT_MACS;
            int groups = c->at.groups ? c->at.groups : 1;
            bool few = c->transposed && groups == 1 && c->w[1] <= 4;
            bool direct = path == CFX__CONV_PATH_DIRECT ||
                          (path == CFX__CONV_PATH_AUTO && small && cfx__conv_direct_preferred());
            bool on_ref = !direct && path == CFX__CONV_PATH_AUTO && few;
            CHECK_INT_EQ(cfx__conv_dnnl_runs(), before + (direct || on_ref ? 0 : 3));
            CHECK_INT_EQ(cfx__conv_direct_runs(), before_direct + (direct ? 2 : 0));
            for (int k = 0; k < 4; k++) {
                if (ids[k] < 0) continue;
                const float *a =
                    k ? cfx_graph_grad(fast.g, ids[k]) : cfx_graph_tensor(fast.g, ids[k])->data;
                const float *b =
                    k ? cfx_graph_grad(ref.g, ids[k]) : cfx_graph_tensor(ref.g, ids[k])->data;
                size_t m = (size_t)cfx_graph_tensor(ref.g, ids[k])->numel;
                if (!CHECK_ARRAY_NEAR(a, b, m, 1e-4, 1e-5))
                    printf("  (case %s, path %d, tensor %d)\n", c->name, (int)path, k);
            }
            /* Same threads, same input: bitwise the same result. */
            size_t m = (size_t)cfx_graph_tensor(fast.g, fast.w)->numel;
            float *first = malloc(m * sizeof *first);
            memcpy(first, cfx_graph_grad(fast.g, fast.w), m * sizeof *first);
            CHECK_OK(cfx_graph_forward(fast.g));
            CHECK_OK(cfx_graph_backward(fast.g, fast.y, dy));
            CHECK_MSG(memcmp(first, cfx_graph_grad(fast.g, fast.w), m * sizeof *first) == 0,
                      "%s: weight gradient differs between two identical runs", c->name);
            free(first);
            free(dy);
        }
        cfx_graph_free(ref.g);
        cfx_graph_free(fast.g);
    }
}

/* A batch change replans and re-prepares; the output follows. */
CFX_TEST(conv, reshape_batch) {
    const conv_case *c = &cases[0];
    conv_graph cg;
    if (!build(c, &cg, 1)) return;
    CHECK_OK(cfx_graph_reshape_input(cg.g, cg.x, 4, (int64_t[]){5, 3, 7, 6}));
    cfx_rng r;
    cfx_rng_init(&r, 3);
    CHECK_OK(cfx_graph_forward(cg.g));
    cfx_tensor_fill_uniform(cfx_graph_tensor(cg.g, cg.x), &r, -1, 1);
    CHECK_OK(cfx_graph_forward(cg.g));
    CHECK_INT_EQ(cfx_graph_tensor(cg.g, cg.y)->shape[0], 5);
    CHECK_OK(cfx_graph_backward(cg.g, cg.y, NULL));
    cfx_graph_free(cg.g);
}

static cfx_status try_conv(bool transposed, const int64_t *xs, const int64_t *ws,
                           const cfx_conv2d_attr *at, const char *want) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, xs), w = cfx_graph_param(g, "w", 4, ws);
    int y = transposed ? cfx_op_conv_transpose2d(g, x, w, -1, at) : cfx_op_conv2d(g, x, w, -1, at);
    cfx_status s = cfx_graph_compile(g);
    CHECK(y < 0);
    CHECK_MSG(strstr(cfx_last_error(), want) != NULL, "error '%s' does not mention '%s'",
              cfx_last_error(), want);
    cfx_graph_free(g);
    return s;
}

CFX_TEST(conv, bad_input) {
    int64_t x[4] = {1, 4, 5, 5};
    CHECK_ERR(try_conv(false, x, (int64_t[]){2, 3, 3, 3}, NULL, "channel mismatch"), CFX_EINVAL);
    CHECK_ERR(try_conv(false, x, (int64_t[]){3, 4, 3, 3}, &(cfx_conv2d_attr){.groups = 3},
                       "groups 3 must divide"),
              CFX_EINVAL);
    CHECK_ERR(try_conv(false, x, (int64_t[]){2, 4, 7, 3}, NULL, "larger than the padded input"),
              CFX_EINVAL);
    CHECK_ERR(try_conv(false, x, (int64_t[]){2, 4, 3, 3}, &(cfx_conv2d_attr){.stride = {-1, 1}},
                       "stride"),
              CFX_EINVAL);
    CHECK_ERR(try_conv(false, x, (int64_t[]){2, 4, 3, 3}, &(cfx_conv2d_attr){.pad = {0, -1, 0, 0}},
                       "padding"),
              CFX_EINVAL);
    CHECK_ERR(try_conv(false, (int64_t[]){1, 4, 5, 1}, (int64_t[]){2, 4, 3, 3}, NULL, "larger"),
              CFX_EINVAL);
    CHECK_ERR(try_conv(false, x, (int64_t[]){2, 4, 3, 3},
                       &(cfx_conv2d_attr){.output_padding = {1, 0}}, "output_padding"),
              CFX_EINVAL);
    CHECK_ERR(try_conv(true, x, (int64_t[]){3, 2, 3, 3}, NULL, "channel mismatch"), CFX_EINVAL);
    CHECK_ERR(try_conv(true, x, (int64_t[]){4, 2, 3, 3}, &(cfx_conv2d_attr){.groups = 3},
                       "groups 3 must divide"),
              CFX_EINVAL);
    CHECK_ERR(try_conv(true, x, (int64_t[]){4, 2, 3, 3},
                       &(cfx_conv2d_attr){.stride = {2, 2}, .output_padding = {2, 0}},
                       "output_padding"),
              CFX_EINVAL);
    /* A bias of the wrong length. */
    cfx_graph *g = cfx_graph_new();
    int xi = cfx_graph_input(g, "x", 4, x), w = cfx_graph_param(g, "w", 4, (int64_t[]){2, 4, 3, 3});
    int b = cfx_graph_param(g, "b", 1, (int64_t[]){3});
    CHECK(cfx_op_conv2d(g, xi, w, b, NULL) < 0);
    CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
    CHECK(strstr(cfx_last_error(), "bias") != NULL);
    cfx_graph_free(g);
}

/* cfx_set_threads reaches oneDNN: after a change the primitives are rebuilt for the new count
 * (still on oneDNN), the result stays within rounding of the 1-thread one, and two runs at the
 * same count are bitwise equal. */
CFX_TEST(conv, thread_count_change) {
    const conv_case c = {"c32",           false,          true,
                         {4, 32, 10, 10}, {32, 32, 3, 3}, {.pad = {1, 1, 1, 1}}};
    conv_graph cg;
    int before_threads = cfx_get_threads();
    cfx_set_threads(1);
    if (!build(&c, &cg, 5)) return;
    size_t n = (size_t)cfx_graph_tensor(cg.g, cg.w)->numel;
    float *one = malloc(n * sizeof *one), *two = malloc(n * sizeof *two);
    CHECK_OK(cfx_graph_forward(cg.g));
    CHECK_OK(cfx_graph_backward(cg.g, cg.y, NULL));
    memcpy(one, cfx_graph_grad(cg.g, cg.w), n * sizeof *one);
    cfx_set_threads(2);
    long long runs = cfx__conv_dnnl_runs();
    CHECK_OK(cfx_graph_forward(cg.g));
    CHECK_OK(cfx_graph_backward(cg.g, cg.y, NULL));
    CHECK_INT_EQ(cfx__conv_dnnl_runs(), runs + 3);
    memcpy(two, cfx_graph_grad(cg.g, cg.w), n * sizeof *two);
    CHECK_ARRAY_NEAR(two, one, n, 1e-5, 1e-5);
    CHECK_OK(cfx_graph_forward(cg.g));
    CHECK_OK(cfx_graph_backward(cg.g, cg.y, NULL));
    CHECK(memcmp(two, cfx_graph_grad(cg.g, cg.w), n * sizeof *two) == 0);
    free(one);
    free(two);
    cfx_graph_free(cg.g);
    cfx_set_threads(before_threads);
}

/* A second backward after one forward (two losses on one graph) gives the same gradients: the
 * oneDNN path's saved blocked x is dropped once backward data overwrites it. */
CFX_TEST(conv, backward_twice) {
    const conv_case c = {"c32", false, true, {3, 32, 9, 9}, {32, 32, 3, 3}, {.pad = {1, 1, 1, 1}}};
    conv_graph cg;
    if (!build(&c, &cg, 11)) return;
    size_t nw = (size_t)cfx_graph_tensor(cg.g, cg.w)->numel;
    size_t nx = (size_t)cfx_graph_tensor(cg.g, cg.x)->numel;
    float *dw = malloc(nw * sizeof *dw), *dx = malloc(nx * sizeof *dx);
    CHECK_OK(cfx_graph_forward(cg.g));
    CHECK_OK(cfx_graph_backward(cg.g, cg.y, NULL));
    memcpy(dw, cfx_graph_grad(cg.g, cg.w), nw * sizeof *dw);
    memcpy(dx, cfx_graph_grad(cg.g, cg.x), nx * sizeof *dx);
    CHECK_OK(cfx_graph_backward(cg.g, cg.y, NULL));
    CHECK_ARRAY_NEAR(cfx_graph_grad(cg.g, cg.w), dw, nw, 0, 0);
    CHECK_ARRAY_NEAR(cfx_graph_grad(cg.g, cg.x), dx, nx, 0, 0);
    free(dw);
    free(dx);
    cfx_graph_free(cg.g);
}

/* Between two convolutions on oneDNN (Conv -> Relu -> Conv, batch large enough for oneDNN) the
 * engine keeps the activations in oneDNN's blocked layout. Outputs, input gradient and every
 * parameter gradient must equal the all-NCHW reference path's, and marking the middle value as
 * an output must bring it back to NCHW (and still give the same numbers). */
CFX_TEST(conv, blocked_chain_matches_reference) {
    cfx_graph *gs[3];
    int xs[3], ys[3], mids[3];
    for (int v = 0; v < 3; v++) {
        cfx__conv_force_path(v == 0 ? CFX__CONV_PATH_REF : CFX__CONV_PATH_AUTO);
        cfx_graph *g = gs[v] = cfx_graph_new();
        int x = xs[v] = cfx_graph_input(g, "x", 4, (int64_t[]){16, 16, 12, 12});
        int h = cfx_op_conv2d(g, x, cfx_graph_param(g, "w1", 4, (int64_t[]){32, 16, 3, 3}),
                              cfx_graph_param(g, "b1", 1, (int64_t[]){32}),
                              &(cfx_conv2d_attr){.pad = {1, 1, 1, 1}});
        int r = mids[v] = cfx_op_relu(g, h);
        h = cfx_op_conv2d(g, r, cfx_graph_param(g, "w2", 4, (int64_t[]){16, 32, 3, 3}),
                          cfx_graph_param(g, "b2", 1, (int64_t[]){16}),
                          &(cfx_conv2d_attr){.stride = {2, 2}, .pad = {1, 1, 1, 1}});
        ys[v] = cfx_op_tanh(g, h);
        cfx_graph_requires_grad(g, x, 1);
        if (v == 2) CHECK_OK(cfx_graph_set_output(g, r, "middle"));
        CHECK_OK(cfx_graph_compile(g));
        gradcheck_fill(g, x, 21, 0.1f);
        CHECK_OK(cfx_graph_forward(g));
        int64_t n = cfx_graph_tensor(g, ys[v])->numel;
        float *dy = random_seed(n, 22);
        CHECK_OK(cfx_graph_backward(g, ys[v], dy));
        free(dy);
    }
    cfx__conv_force_path(CFX__CONV_PATH_AUTO);
    /* The chain was planned where oneDNN prefers NHWC, and not with the middle an output. */
    bool nhwc = cfx__conv_dnnl_nhwc();
    CHECK_INT_EQ(gs[1]->nodes[0].blocked_out, nhwc);
    CHECK_INT_EQ(gs[1]->nodes[2].blocked_in0, nhwc);
    CHECK_INT_EQ(gs[2]->nodes[0].blocked_out, 0);
    for (int v = 1; v < 3; v++) {
        size_t n = (size_t)cfx_graph_tensor(gs[0], ys[0])->numel;
        if (!CHECK_ARRAY_NEAR(cfx_graph_tensor(gs[v], ys[v])->data,
                              cfx_graph_tensor(gs[0], ys[0])->data, n, 1e-4, 1e-5))
            printf("  (output, graph %d)\n", v);
        n = (size_t)cfx_graph_tensor(gs[0], xs[0])->numel;
        if (!CHECK_ARRAY_NEAR(cfx_graph_grad(gs[v], xs[v]), cfx_graph_grad(gs[0], xs[0]), n, 1e-4,
                              1e-5))
            printf("  (input gradient, graph %d)\n", v);
        size_t np;
        cfx_graph_params(gs[0], &np);
        if (!CHECK_ARRAY_NEAR(cfx_graph_param_grads(gs[v], NULL),
                              cfx_graph_param_grads(gs[0], NULL), np, 1e-4, 1e-5))
            printf("  (parameter gradients, graph %d)\n", v);
    }
    size_t nm = (size_t)cfx_graph_tensor(gs[0], mids[0])->numel;
    CHECK_ARRAY_NEAR(cfx_graph_tensor(gs[2], mids[2])->data, cfx_graph_tensor(gs[0], mids[0])->data,
                     nm, 1e-4, 1e-5);
    /* Marked after compile: the next run replans and the middle reads as NCHW too. */
    CHECK_OK(cfx_graph_set_output(gs[1], mids[1], "middle"));
    CHECK_OK(cfx_graph_forward(gs[1]));
    CHECK_INT_EQ(gs[1]->nodes[0].blocked_out, 0);
    CHECK_ARRAY_NEAR(cfx_graph_tensor(gs[1], mids[1])->data, cfx_graph_tensor(gs[0], mids[0])->data,
                     nm, 1e-4, 1e-5);
    for (int v = 0; v < 3; v++) cfx_graph_free(gs[v]);
}

/* The first layer of the reference classifier on 3x32x32 images (3 -> 32 channels, 5x5 stride 2)
 * followed by another convolution, at batch 50, differentiated to the input (what IGD and FGD
 * do): its dy is blocked between the two convolutions, where oneDNN 2.6 has only a reference
 * kernel for the GEMM-based data gradient (500 times slower). No reference kernel is built, and
 * the input gradient is the im2col reference's. */
CFX_TEST(conv, first_layer_input_gradient_avoids_reference_kernels) {
    cfx_graph *gs[2];
    int xs[2];
    long long before = cfx__conv_dnnl_ref_steps();
    for (int v = 0; v < 2; v++) {
        cfx__conv_force_path(v == 0 ? CFX__CONV_PATH_REF : CFX__CONV_PATH_AUTO);
        cfx_graph *g = gs[v] = cfx_graph_new();
        int x = xs[v] = cfx_graph_input(g, "x", 4, (int64_t[]){50, 3, 32, 32});
        int h = cfx_op_conv2d(g, x, cfx_graph_param(g, "w1", 4, (int64_t[]){32, 3, 5, 5}),
                              cfx_graph_param(g, "b1", 1, (int64_t[]){32}),
                              &(cfx_conv2d_attr){.stride = {2, 2}, .pad = {2, 2, 2, 2}});
        h = cfx_op_conv2d(g, cfx_op_relu(g, h),
                          cfx_graph_param(g, "w2", 4, (int64_t[]){64, 32, 3, 3}),
                          cfx_graph_param(g, "b2", 1, (int64_t[]){64}),
                          &(cfx_conv2d_attr){.stride = {2, 2}, .pad = {1, 1, 1, 1}});
        int y = cfx_op_tanh(g, h);
        cfx_graph_requires_grad(g, x, 1);
        cfx_graph_enable_param_grads(g, 0);
        CHECK_OK(cfx_graph_compile(g));
        gradcheck_fill(g, x, 31, 0.1f);
        CHECK_OK(cfx_graph_forward(g));
        float *dy = random_seed(cfx_graph_tensor(g, y)->numel, 32);
        CHECK_OK(cfx_graph_backward(g, y, dy));
        free(dy);
    }
    cfx__conv_force_path(CFX__CONV_PATH_AUTO);
    CHECK_INT_EQ(cfx__conv_dnnl_ref_steps() - before, 0);
    CHECK_ARRAY_NEAR(cfx_graph_grad(gs[1], xs[1]), cfx_graph_grad(gs[0], xs[0]),
                     (size_t)cfx_graph_tensor(gs[0], xs[0])->numel, 1e-4, 1e-5);
    for (int v = 0; v < 2; v++) cfx_graph_free(gs[v]);
}

/* The layers next to an image's few channels take the direct kernels at any batch when the
 * input gradient is wanted (conv_dispatch): a 3 -> 32 5x5 stride-2 convolution and a 32 -> 3
 * transposed one at batch 50, forward and both backward passes, on 1 thread and split over 2,
 * against the reference path. Each image is computed whole by one thread, so the output and
 * the input gradient are the same bits on 1 and 2 threads. Without the input gradient the
 * convolution stays on oneDNN (its forward is faster there) and the transposed one is direct. */
CFX_TEST(conv, few_channel_layers_take_the_direct_kernels_at_any_batch) {
    if (!cfx__conv_direct_preferred() || !cfx__conv_dnnl_available()) {
        cfx_test_skip("the direct kernels are preferred on AVX-512 CPUs with oneDNN only");
        return;
    }
    enum { REF, ONE, TWO, SCORE, NG };
    cfx_graph *gs[NG];
    int xs[NG], ys[NG];
    for (int v = 0; v < NG; v++) {
        cfx__conv_force_path(v == REF ? CFX__CONV_PATH_REF : CFX__CONV_PATH_AUTO);
        cfx_set_threads(v == TWO ? 2 : 1);
        cfx_graph *g = gs[v] = cfx_graph_new();
        int x = xs[v] = cfx_graph_input(g, "x", 4, (int64_t[]){50, 3, 32, 32});
        int h = cfx_op_conv2d(g, x, cfx_graph_param(g, "w1", 4, (int64_t[]){32, 3, 5, 5}),
                              cfx_graph_param(g, "b1", 1, (int64_t[]){32}),
                              &(cfx_conv2d_attr){.stride = {2, 2}, .pad = {2, 2, 2, 2}});
        ys[v] = cfx_op_conv_transpose2d(
            g, cfx_op_tanh(g, h), cfx_graph_param(g, "w2", 4, (int64_t[]){32, 3, 5, 5}),
            cfx_graph_param(g, "b2", 1, (int64_t[]){3}),
            &(cfx_conv2d_attr){.stride = {2, 2}, .pad = {2, 2, 2, 2}, .output_padding = {1, 1}});
        if (v != SCORE) cfx_graph_requires_grad(g, x, 1);
        CHECK_OK(cfx_graph_compile(g));
        gradcheck_fill(g, x, 51, 0.2f);
        long long direct = cfx__conv_direct_runs(), dn = cfx__conv_dnnl_runs();
        long long split = cfx__conv_direct_split_runs();
        CHECK_OK(cfx_graph_forward(g));
        float *dy = random_seed(cfx_graph_tensor(g, ys[v])->numel, 52);
        CHECK_OK(cfx_graph_backward(g, ys[v], dy));
        free(dy);
        /* Forward and data gradient of both on the direct kernels (weight gradients on the
         * reference), each split on 2 threads. Scoring: the convolution's forward and weight
         * gradient on oneDNN; the transposed one's forward and data gradient (wanted for the
         * convolution's weight gradient) direct. */
        long long want_direct = v == REF ? 0 : v == SCORE ? 2 : 4;
        CHECK_MSG(cfx__conv_direct_runs() - direct == want_direct,
                  "graph %d: %lld direct passes, expected %lld", v,
                  cfx__conv_direct_runs() - direct, want_direct);
        CHECK_INT_EQ(cfx__conv_direct_split_runs() - split, v == TWO ? 4 : 0);
        CHECK_INT_EQ(cfx__conv_dnnl_runs() - dn, v == SCORE ? 2 : 0);
    }
    cfx__conv_force_path(CFX__CONV_PATH_AUTO);
    cfx_set_threads(1);
    for (int v = ONE; v < NG; v++) {
        size_t n = (size_t)cfx_graph_tensor(gs[REF], ys[REF])->numel;
        if (!CHECK_ARRAY_NEAR(cfx_graph_tensor(gs[v], ys[v])->data,
                              cfx_graph_tensor(gs[REF], ys[REF])->data, n, 1e-4, 1e-5))
            printf("  (output, graph %d)\n", v);
        size_t np;
        cfx_graph_params(gs[REF], &np);
        if (!CHECK_ARRAY_NEAR(cfx_graph_param_grads(gs[v], NULL),
                              cfx_graph_param_grads(gs[REF], NULL), np, 1e-4, 1e-4))
            printf("  (parameter gradients, graph %d)\n", v);
        if (v == SCORE) continue;
        n = (size_t)cfx_graph_tensor(gs[REF], xs[REF])->numel;
        if (!CHECK_ARRAY_NEAR(cfx_graph_grad(gs[v], xs[v]), cfx_graph_grad(gs[REF], xs[REF]), n,
                              1e-4, 1e-5))
            printf("  (input gradient, graph %d)\n", v);
    }
    size_t ny = (size_t)cfx_graph_tensor(gs[ONE], ys[ONE])->numel,
           nx = (size_t)cfx_graph_tensor(gs[ONE], xs[ONE])->numel;
    CHECK(memcmp(cfx_graph_tensor(gs[ONE], ys[ONE])->data, cfx_graph_tensor(gs[TWO], ys[TWO])->data,
                 ny * sizeof(float)) == 0);
    CHECK(memcmp(cfx_graph_grad(gs[ONE], xs[ONE]), cfx_graph_grad(gs[TWO], xs[TWO]),
                 nx * sizeof(float)) == 0);
    for (int v = 0; v < NG; v++) cfx_graph_free(gs[v]);
}

/* Two convolutions sharing their input, weights and bias: the first backward to reach each
 * gradient stores it (oneDNN: a reorder without the sum, or the primitive writing in place when
 * the layouts agree), the second adds (a sum reorder). On every path, against central
 * differences. */
CFX_TEST(conv, shared_input_and_weights_accumulate_on_every_path) {
    static const cfx__conv_path paths[] = {CFX__CONV_PATH_DNNL, CFX__CONV_PATH_DNNL_PLAIN_DX,
                                           CFX__CONV_PATH_DIRECT, CFX__CONV_PATH_REF};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        cfx__conv_force_path(paths[p]);
        cfx_graph *g = cfx_graph_new();
        int x = cfx_graph_input(g, "x", 4, (int64_t[]){2, 3, 6, 5});
        int w = cfx_graph_param(g, "w", 4, (int64_t[]){4, 3, 3, 3});
        int b = cfx_graph_param(g, "b", 1, (int64_t[]){4});
        int y1 = cfx_op_conv2d(g, x, w, b, &(cfx_conv2d_attr){.pad = {1, 1, 1, 1}});
        int y2 = cfx_op_conv2d(g, cfx_op_tanh(g, x), w, b, &(cfx_conv2d_attr){.pad = {1, 1, 1, 1}});
        int y = cfx_op_mul(g, y1, y2);
        cfx_graph_requires_grad(g, x, 1);
        CHECK_OK(cfx_graph_compile(g));
        gradcheck_fill(g, x, 31, 0.3f);
        for (int pass = 0; pass < 2; pass++)
            if (CHECK_GRADS(g, y, &(gradcheck_opts){.seed = 3}))
                printf("  (path %d)\n", (int)paths[p]);
        cfx_graph_free(g);
    }
    cfx__conv_force_path(CFX__CONV_PATH_AUTO);
}

/* Split among threads by batch (src/conv_dnnl.c): on 2 threads, a batch of 9 (slices of 4 and
 * 5 images; every convolution above the direct kernels' size) through a blocked chain, weights
 * shared by two convolutions (the second adds to the first's weight gradient, each summing its
 * slices) and a transposed convolution must give the reference path's output, input gradient and
 * parameter gradients, with the split taken on every oneDNN pass, and the same as oneDNN without
 * the split. */
CFX_TEST(conv, batch_split_matches_reference) {
    enum { REF, SPLIT, NOSPLIT, NG };
    cfx_graph *gs[NG];
    int xs[NG], ys[NG];
    for (int v = 0; v < NG; v++) {
        cfx__conv_force_path(v == REF ? CFX__CONV_PATH_REF : CFX__CONV_PATH_AUTO);
        cfx__conv_dnnl_split(v != NOSPLIT);
        cfx_set_threads(v == REF ? 1 : 2);
        cfx_graph *g = gs[v] = cfx_graph_new();
        int x = xs[v] = cfx_graph_input(g, "x", 4, (int64_t[]){9, 16, 12, 12});
        int w1 = cfx_graph_param(g, "w1", 4, (int64_t[]){32, 16, 3, 3});
        int b1 = cfx_graph_param(g, "b1", 1, (int64_t[]){32});
        int w2 = cfx_graph_param(g, "w2", 4, (int64_t[]){32, 32, 3, 3});
        int b2 = cfx_graph_param(g, "b2", 1, (int64_t[]){32});
        const cfx_conv2d_attr same = {.pad = {1, 1, 1, 1}},
                              half = {.stride = {2, 2}, .pad = {1, 1, 1, 1}};
        int branch[2];
        for (int i = 0; i < 2; i++) {
            int in = i ? cfx_op_tanh(g, x) : x;
            int h = cfx_op_relu(g, cfx_op_conv2d(g, in, w1, b1, &same));
            branch[i] = cfx_op_conv2d(g, h, w2, b2, &half);
        }
        int s = cfx_op_add(g, branch[0], branch[1]);
        int wt = cfx_graph_param(g, "wt", 4, (int64_t[]){32, 16, 4, 4});
        ys[v] =
            cfx_op_conv_transpose2d(g, s, wt, cfx_graph_param(g, "bt", 1, (int64_t[]){16}), &half);
        cfx_graph_requires_grad(g, x, 1);
        CHECK_OK(cfx_graph_compile(g));
        gradcheck_fill(g, x, 41, 0.2f);
        long long runs = cfx__conv_dnnl_runs(), split = cfx__conv_dnnl_split_runs();
        CHECK_OK(cfx_graph_forward(g));
        int64_t n = cfx_graph_tensor(g, ys[v])->numel;
        float *dy = random_seed(n, 42);
        CHECK_OK(cfx_graph_backward(g, ys[v], dy));
        free(dy);
        /* Five convolutions, each forward, weight and data gradient. */
        long long passes = cfx__conv_dnnl_runs() - runs;
        CHECK_INT_EQ(passes, v == REF ? 0 : 15);
        CHECK_INT_EQ(cfx__conv_dnnl_split_runs() - split, v == SPLIT ? passes : 0);
    }
    cfx__conv_force_path(CFX__CONV_PATH_AUTO);
    cfx__conv_dnnl_split(true);
    cfx_set_threads(1);
    for (int v = SPLIT; v < NG; v++) {
        size_t n = (size_t)cfx_graph_tensor(gs[REF], ys[REF])->numel;
        if (!CHECK_ARRAY_NEAR(cfx_graph_tensor(gs[v], ys[v])->data,
                              cfx_graph_tensor(gs[REF], ys[REF])->data, n, 1e-4, 1e-4))
            printf("  (output, graph %d)\n", v);
        n = (size_t)cfx_graph_tensor(gs[REF], xs[REF])->numel;
        if (!CHECK_ARRAY_NEAR(cfx_graph_grad(gs[v], xs[v]), cfx_graph_grad(gs[REF], xs[REF]), n,
                              1e-4, 1e-4))
            printf("  (input gradient, graph %d)\n", v);
        size_t np;
        cfx_graph_params(gs[REF], &np);
        if (!CHECK_ARRAY_NEAR(cfx_graph_param_grads(gs[v], NULL),
                              cfx_graph_param_grads(gs[REF], NULL), np, 1e-4, 1e-4))
            printf("  (parameter gradients, graph %d)\n", v);
    }
    for (int v = 0; v < NG; v++) cfx_graph_free(gs[v]);
}
