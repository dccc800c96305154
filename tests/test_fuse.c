/* test_fuse.c - graph optimisation (cfx_graph_fusions): BatchNormalization folded into Conv at
 * a frozen import, Conv + Add + Relu, Conv + Relu and Gemm + Relu fused at plan, and the
 * activations held in NHWC (inference) or nChw16c (with a gradient) between convolutions
 * (graph.c, plan_layouts). The optimised graph's output and input gradient must equal the
 * unoptimised graph's (cfx_onnx_options.no_fuse and cfx_graph_enable_fusion(g, 0)) within 1e-5
 * relative, and PyTorch's (the oracle, tests/py/onnx_oracle.py) within the ONNX suite's
 * tolerance; the fusion counts say the fusions happened (and that a Conv whose output has a
 * second reader keeps its BN), and the plan's layout marks that the torchvision nets run
 * without a layout conversion between convolutions. */
#include "engine/graph.h"
#include "engine/ops/conv.h"
#include "gradcheck.h"
#include "test.h"

#include <stdlib.h>

/* Runs tests/py/onnx_oracle.py KIND into a fresh folder; false (with a failure) on error. */
static bool oracle(const char *kind, char *dir, size_t size) {
    snprintf(dir, size, "%s", cfx_test_tmpdir());
    char args[600];
    snprintf(args, sizeof args, "%s '%s'", kind, dir);
    int rc = cfx_test_python("onnx_oracle.py", args);
    CHECK_MSG(rc == 0, "onnx_oracle.py %s exited with %d", kind, rc);
    return rc == 0;
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs((double)a[i]) > m ? fabs((double)a[i]) : m;
    return m;
}

/* max |a-b| / max |b|: the relative error in the max norm (float rounding makes elements near
 * 0 differ by more than 1e-5 of themselves whatever the order of the sums). */
static double max_rel(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - b[i]);
        if (r > worst) worst = r;
    }
    return worst / max_abs(b, n);
}

/* One run of dir/model.onnx on x: the output "logits" and the input gradient of sum(y * w),
 * copied into *y and *gx (malloc'd); the fusion counts into *f. fold: BatchNormalization folded
 * at import; fuse: fusions at plan. */
static bool run(const char *dir, bool fold, bool fuse, const cfx_tensor *x, const cfx_tensor *w,
                float **y, float **gx, cfx_graph_fusions *f) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    cfx_onnx_options o = {.batch = x->shape[0], .frozen = 1, .no_fuse = !fold};
    cfx_graph *g = cfx_onnx_load(path, &o);
    CHECK_MSG(g != NULL, "load %s: %s", path, cfx_last_error());
    if (!g) return false;
    bool ok = false;
    int in = cfx_graph_find(g, "input"), out = cfx_graph_find(g, "logits");
    CHECK(in >= 0 && out >= 0);
    if (in < 0 || out < 0) goto done;
    CHECK_OK(cfx_graph_enable_fusion(g, fuse));
    CHECK_OK(cfx_graph_requires_grad(g, in, 1));
    CHECK_OK(cfx_graph_compile(g));
    cfx_tensor *tx = cfx_graph_tensor(g, in), *ty = cfx_graph_tensor(g, out);
    CHECK_INT_EQ(tx->numel, x->numel);
    if (tx->numel != x->numel) goto done;
    memcpy(tx->data, x->data, (size_t)x->numel * sizeof(float));
    CHECK_OK(cfx_graph_forward(g));
    float *seed = malloc((size_t)ty->numel * sizeof *seed);
    for (int64_t i = 0; i < ty->numel; i++) seed[i] = w->data[i % w->numel];
    CHECK_OK(cfx_graph_backward(g, out, seed));
    free(seed);
    *y = malloc((size_t)ty->numel * sizeof **y);
    *gx = malloc((size_t)tx->numel * sizeof **gx);
    memcpy(*y, ty->data, (size_t)ty->numel * sizeof **y);
    memcpy(*gx, cfx_graph_grad(g, in), (size_t)tx->numel * sizeof **gx);
    *f = cfx_graph_fusion_counts(g);
    CHECK_INT_EQ(g->clips_fused, 0); /* a Clip's gradient reads its input */
    ok = true;
done:
    cfx_graph_free(g);
    return ok;
}

/* The forward pass alone (no gradient: the held layout is NHWC, and the clips Clips after a
 * Conv are fused into it) of dir/model.onnx on x, with every optimisation (fuse) or none; the
 * output into *y (malloc'd). With all_held, every Conv
 * but the one reading the image must take its input held and every Conv make its output held
 * (no reorder between convolutions), where oneDNN prefers NHWC. */
static bool forward_only(const char *dir, bool fuse, bool all_held, int clips, const cfx_tensor *x,
                         float **y) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    cfx_onnx_options o = {.batch = x->shape[0], .frozen = 1, .no_fuse = !fuse};
    cfx_graph *g = cfx_onnx_load(path, &o);
    CHECK_MSG(g != NULL, "load %s: %s", path, cfx_last_error());
    if (!g) return false;
    int in = cfx_graph_find(g, "input"), out = cfx_graph_find(g, "logits");
    bool ok = in >= 0 && out >= 0;
    CHECK(ok);
    CHECK_OK(cfx_graph_enable_fusion(g, fuse));
    ok = ok && cfx_graph_compile(g) == CFX_OK;
    if (ok) {
        memcpy(cfx_graph_tensor(g, in)->data, x->data, (size_t)x->numel * sizeof(float));
        CHECK_OK(cfx_graph_forward(g));
        cfx_tensor *ty = cfx_graph_tensor(g, out);
        *y = malloc((size_t)ty->numel * sizeof **y);
        memcpy(*y, ty->data, (size_t)ty->numel * sizeof **y);
        int convs = 0, in_held = 0, out_held = 0, c16 = 0;
        for (int i = 0; i < g->nnodes; i++) {
            const cfx__node *n = &g->nodes[i];
            c16 += n->c16_in0 || n->c16_out;
            if (strcmp(n->op->name, "Conv") || n->in[0] == in) continue;
            convs++;
            in_held += n->blocked_in0;
            out_held += n->blocked_out;
        }
        CHECK_INT_EQ(c16, 0); /* nothing takes a gradient */
        /* No gradient: every Clip after a Conv is fused into it. */
        CHECK_INT_EQ(g->clips_fused, fuse ? clips : 0);
        if (!fuse) CHECK_INT_EQ(in_held + out_held + g->held_values, 0);
        if (all_held && fuse && cfx__conv_dnnl_nhwc()) {
            CHECK(convs > 0);
            CHECK_INT_EQ(in_held, convs);
            CHECK_INT_EQ(out_held, convs);
            printf("  %d convolutions, %d values held in NHWC\n", convs + 1, g->held_values);
        }
    }
    cfx_graph_free(g);
    return ok;
}

/* Inference (NHWC) with and without the plan's optimisations, BatchNormalizations folded both
 * times: the same output within tol relative. Held in NHWC, oneDNN runs other kernels than in
 * the unoptimised graph (whose reorders let it pick per convolution), and small ones on oneDNN
 * instead of the direct kernels, which round differently: mobilenet_v2's 17 ReLU6 layers carry
 * that to 1.7e-5 of its output (cfx unoptimised is itself 3.6e-5 from PyTorch). */
static void compare_forward(const char *dir, const cfx_tensor *x, size_t ny, bool all_held,
                            int clips, double tol) {
    float *a = NULL, *b = NULL;
    if (forward_only(dir, true, all_held, clips, x, &a) &&
        forward_only(dir, false, false, clips, x, &b)) {
        double r = max_rel(a, b, ny);
        CHECK(max_abs(b, ny) > 1e-3);
        CHECK_MSG(r <= tol, "held NHWC changes the output by %.3g relative", r);
        printf("  inference, optimised vs not: max rel error %.2g\n", r);
    }
    free(a), free(b);
}

/* Fused against unfused against PyTorch for oracle model KIND; want: the fusions expected.
 * Outputs must agree within ytol (relative, max norm), input gradients within gtol, and the
 * input gradients of the graph with folded BatchNormalizations, with and without the plan's
 * fusions (which keep every gradient exact), within 1e-5. */
static void compare_held(const char *kind, cfx_graph_fusions want, double ytol, double gtol,
                         bool all_held, int clips) {
    char dir[512];
    if (!oracle(kind, dir, sizeof dir)) return;
    cfx_tensor *x = cfx_test_npy(dir, "x"), *y = cfx_test_npy(dir, "y");
    cfx_tensor *w = cfx_test_npy(dir, "w"), *gx = cfx_test_npy(dir, "gx");
    float *fy = NULL, *fg = NULL, *uy = NULL, *ug = NULL, *py = NULL, *pg = NULL;
    cfx_graph_fusions ff = {0}, uf = {0}, pf = {0};
    if (!x || !y || !w || !gx) goto out;
    if (!run(dir, true, true, x, w, &fy, &fg, &ff) ||
        !run(dir, false, false, x, w, &uy, &ug, &uf) || !run(dir, true, false, x, w, &py, &pg, &pf))
        goto out;
    CHECK_INT_EQ(pf.bn_into_conv, want.bn_into_conv);
    double rp = max_rel(fg, pg, (size_t)x->numel);
    CHECK_MSG(rp <= 1e-5, "%s: plan fusions change the input gradient by %.3g relative", kind, rp);
    CHECK_INT_EQ(ff.bn_into_conv, want.bn_into_conv);
    CHECK_INT_EQ(ff.conv_add_relu, want.conv_add_relu);
    CHECK_INT_EQ(ff.conv_add, want.conv_add);
    CHECK_INT_EQ(ff.conv_relu, want.conv_relu);
    CHECK_INT_EQ(ff.gemm_relu, want.gemm_relu);
    /* Unfused: nothing fused at all. */
    CHECK(uf.bn_into_conv + uf.conv_add_relu + uf.conv_add + uf.conv_relu + uf.gemm_relu == 0);
    size_t ny = (size_t)y->numel, nx = (size_t)x->numel;
    CHECK(max_abs(y->data, ny) > 1e-3 && max_abs(gx->data, nx) > 1e-3); /* tests that can fail */
    double ry = max_rel(fy, uy, ny), rg = max_rel(fg, ug, nx);
    CHECK_MSG(ry <= ytol, "%s: fused output differs from unfused by %.3g relative", kind, ry);
    CHECK_MSG(rg <= gtol, "%s: fused input gradient differs from unfused by %.3g relative", kind,
              rg);
    CHECK(max_rel(fy, y->data, ny) <= 10 * ytol);
    CHECK(max_rel(fg, gx->data, nx) <= 10 * gtol);
    printf("  %s: fused vs unfused max rel error output %.2g, input gradient %.2g (plan fusions "
           "alone %.2g); vs PyTorch %.2g, %.2g (unfused %.2g, %.2g)\n",
           kind, ry, rg, rp, max_rel(fy, y->data, ny), max_rel(fg, gx->data, nx),
           max_rel(uy, y->data, ny), max_rel(ug, gx->data, nx));
    compare_forward(dir, x, ny, all_held, clips, ytol);
out:
    free(fy), free(fg), free(uy), free(ug), free(py), free(pg);
    cfx_tensor_free(x);
    cfx_tensor_free(y);
    cfx_tensor_free(w);
    cfx_tensor_free(gx);
}

static void compare_tol(const char *kind, cfx_graph_fusions want, double ytol, double gtol) {
    compare_held(kind, want, ytol, gtol, false, 0);
}

static void compare(const char *kind, cfx_graph_fusions want) {
    compare_tol(kind, want, 1e-5, 1e-5);
}

CFX_TEST(fuse, bn_conv_relu_gemm_relu) {
    compare("fuse_bn", (cfx_graph_fusions){.bn_into_conv = 2, .conv_relu = 1, .gemm_relu = 1});
}

/* The downsampling block's Add is fused into the downsampling Conv (made after the main path,
 * whose output is then the summand), the identity block's into its second Conv. */
CFX_TEST(fuse, residual_conv_add_relu) {
    compare("fuse_res", (cfx_graph_fusions){
                            .bn_into_conv = 5, .conv_add_relu = 2, .conv_add = 1, .conv_relu = 3});
}

CFX_TEST(fuse, bn_not_folded_when_conv_output_has_another_reader) {
    compare("fuse_shared", (cfx_graph_fusions){.bn_into_conv = 1});
}

CFX_TEST(fuse, torchvision_nets) {
    if (cfx_test_fast()) {
        cfx_test_skip("CFX_TEST_FAST: torchvision nets are slow under sanitizers");
        return;
    }
    /* Folding a BatchNormalization rounds the Conv's output differently (about 1e-7 of it),
     * which moves the few pre-activations within that of 0 across a ReLU's or ReLU6's kink, or
     * changes a max pool's winner: resnet18's input gradient then differs by 0.0028 of its
     * largest element in 216-240 of 150528 elements, in PyTorch too (fuse_conv_bn_eval on the
     * same net and input gives 0.00279), and mobilenet's 17 ReLU6 layers move its output by 2e-5
     * (cfx unfused is 3.6e-5 from PyTorch, fused 1.4e-5). The plan's fusions alone stay within
     * 1e-5 (checked in compare_tol). */
    compare_held("resnet18",
                 (cfx_graph_fusions){.bn_into_conv = 20, .conv_add_relu = 8, .conv_relu = 9}, 1e-5,
                 5e-3, true, 0);
    compare_held("mobilenet", (cfx_graph_fusions){.bn_into_conv = 52, .conv_add = 10}, 5e-5, 1e-5,
                 true, 35);
    compare_held("squeezenet", (cfx_graph_fusions){.conv_relu = 26}, 1e-5, 1e-5, true, 0);
}

/* A trainable import keeps its BatchNormalization (training would change what it computes),
 * and fusing at plan keeps parameter gradients exact. */
CFX_TEST(fuse, trainable_import_keeps_bn_and_exact_param_grads) {
    char dir[512], path[600];
    if (!oracle("fuse_res", dir, sizeof dir)) return;
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    float *grads[2] = {NULL, NULL};
    size_t np = 0;
    for (int fuse = 0; fuse < 2; fuse++) {
        cfx_graph *g = cfx_onnx_load(path, &(cfx_onnx_options){.batch = 2});
        CHECK(g != NULL);
        if (!g) return;
        int in = cfx_graph_find(g, "input"), out = cfx_graph_find(g, "logits");
        CHECK_OK(cfx_graph_enable_fusion(g, fuse));
        CHECK_OK(cfx_graph_compile(g));
        cfx_graph_fusions f = cfx_graph_fusion_counts(g);
        CHECK_INT_EQ(f.bn_into_conv, 0);
        CHECK_INT_EQ(f.conv_add, fuse ? 1 : 0);
        cfx_rng rng;
        cfx_rng_init(&rng, 7);
        cfx_tensor_fill_uniform(cfx_graph_tensor(g, in), &rng, 0, 1);
        CHECK_OK(cfx_graph_forward(g));
        CHECK_OK(cfx_graph_backward(g, out, NULL));
        const float *pg = cfx_graph_param_grads(g, &np);
        grads[fuse] = malloc(np * sizeof(float));
        memcpy(grads[fuse], pg, np * sizeof(float));
        cfx_graph_free(g);
    }
    CHECK(max_abs(grads[0], np) > 1e-3);
    double r = max_rel(grads[1], grads[0], np);
    CHECK_MSG(r <= 1e-5, "parameter gradients differ by %.3g relative", r);
    free(grads[0]), free(grads[1]);
}

/* A graph built by a test below, run once with the plan's optimisations and once without: its
 * output and, with a gradient, the input gradient of sum(y) (malloc'd copies). */
typedef struct {
    float *y, *gx;
    int64_t ny, nx;
} kept_run;

/* Compiles g with or without the plan's fusions, and with or without gradients (for the
 * parameters and the input x); without, as a frozen import, whose weights are constants. */
static void compile_for(cfx_graph *g, int x, int fuse, int grad) {
    CHECK_OK(cfx_graph_enable_fusion(g, fuse));
    CHECK_OK(cfx_graph_enable_param_grads(g, grad));
    if (grad) CHECK_OK(cfx_graph_requires_grad(g, x, 1));
    CHECK_OK(cfx_graph_compile(g));
}

/* After a forward: copies y, and with grad (after the backward) x's gradient, into r. */
static void keep_run(cfx_graph *g, int x, int y, int grad, kept_run *r) {
    r->ny = cfx_graph_tensor(g, y)->numel;
    r->y = malloc((size_t)r->ny * sizeof(float));
    memcpy(r->y, cfx_graph_tensor(g, y)->data, (size_t)r->ny * sizeof(float));
    if (grad) {
        CHECK_OK(cfx_graph_backward(g, y, NULL));
        r->nx = cfx_graph_tensor(g, x)->numel;
        r->gx = malloc((size_t)r->nx * sizeof(float));
        memcpy(r->gx, cfx_graph_grad(g, x), (size_t)r->nx * sizeof(float));
    }
}

/* The optimised run (r[1]) gives the unoptimised one's output and input gradient within 1e-5
 * relative (a failed check otherwise, and false); both are freed. */
static bool same_runs(kept_run r[2], int grad) {
    bool same = CHECK_ARRAY_NEAR(r[1].y, r[0].y, (size_t)r[0].ny, 1e-5, 1e-6) &&
                (!grad || CHECK_ARRAY_NEAR(r[1].gx, r[0].gx, (size_t)r[0].nx, 1e-5, 1e-6));
    for (int k = 0; k < 2; k++) free(r[k].y), free(r[k].gx);
    return same;
}

/* Conv + Clip (ReLU6) fused where no gradient flows, on every convolution path (oneDNN's clip
 * post-op, and the direct kernels and the reference clipping after): the unfused graph's output
 * within 1e-5, with the clip's bounds hit on both sides. With the input's
 * gradient asked for, nothing is fused and the gradient is the unfused one's. */
CFX_TEST(fuse, conv_clip_without_gradient) {
    static const cfx__conv_path paths[] = {CFX__CONV_PATH_AUTO, CFX__CONV_PATH_REF,
                                           CFX__CONV_PATH_DNNL, CFX__CONV_PATH_DIRECT};
    for (int p = 0; p < 4; p++)
        for (int grad = 0; grad < 2; grad++) {
            kept_run runs[2] = {{0}};
            int lo_hits = 0, hi_hits = 0;
            for (int fuse = 0; fuse < 2; fuse++) {
                cfx__conv_force_path(paths[p]);
                cfx_graph *g = cfx_graph_new();
                int x = cfx_graph_input(g, "x", 4, (int64_t[]){2, 16, 10, 10});
                int h = cfx_op_conv2d(g, x, cfx_graph_param(g, "w", 4, (int64_t[]){16, 16, 3, 3}),
                                      cfx_graph_param(g, "b", 1, (int64_t[]){16}),
                                      &(cfx_conv2d_attr){.pad = {1, 1, 1, 1}});
                int c = cfx_op_clip(g, h, 0.0f, 0.5f);
                int y = cfx_op_conv2d(g, c, cfx_graph_param(g, "w2", 4, (int64_t[]){4, 16, 1, 1}),
                                      -1, NULL);
                CHECK_OK(cfx_graph_set_output(g, y, "y"));
                compile_for(g, x, fuse, grad);
                cfx__conv_force_path(CFX__CONV_PATH_AUTO);
                gradcheck_fill(g, x, 61, 0.3f);
                CHECK_OK(cfx_graph_forward(g));
                CHECK_INT_EQ(g->clips_fused, fuse && !grad ? 1 : 0);
                CHECK_INT_EQ(cfx_graph_fusion_counts(g).conv_clip, g->clips_fused);
                const cfx_tensor *ct = cfx_graph_tensor(g, c);
                for (int64_t i = 0; !fuse && i < ct->numel; i++)
                    lo_hits += ct->data[i] == 0.0f, hi_hits += ct->data[i] == 0.5f;
                keep_run(g, x, y, grad, &runs[fuse]);
                cfx_graph_free(g);
            }
            CHECK(lo_hits > 0 && hi_hits > 0); /* both bounds clip something */
            /* Not to the bit: optimised, the second Conv reads the clipped value in the held
             * layout, on another oneDNN kernel. */
            if (!same_runs(runs, grad)) printf("  (path %d, gradient %d)\n", (int)paths[p], grad);
        }
}

/* The plan's layout regions on a residual block: r (read by a Conv and the Add) and the Add's
 * and ReLU's outputs are one region between convolutions, held in NHWC without a gradient and
 * in nChw16c with one; the graph's output and input stay NCHW; marking r an output brings the
 * whole region back to NCHW. Every variant gives the unoptimised graph's output (and input
 * gradient) within 1e-5. */
CFX_TEST(fuse, residual_region_held_between_convolutions) {
    for (int grad = 0; grad < 2; grad++)
        for (int public_r = 0; public_r < 2; public_r++) {
            kept_run runs[2] = {{0}};
            for (int fuse = 0; fuse < 2; fuse++) {
                cfx_graph *g = cfx_graph_new();
                const cfx_conv2d_attr same = {.pad = {1, 1, 1, 1}};
                /* Big enough for oneDNN (the direct kernels take small ones where a gradient
                 * flows, and do not read held layouts). */
                int x = cfx_graph_input(g, "x", 4, (int64_t[]){8, 8, 16, 16});
                int h = cfx_op_conv2d(g, x, cfx_graph_param(g, "w1", 4, (int64_t[]){32, 8, 3, 3}),
                                      cfx_graph_param(g, "b1", 1, (int64_t[]){32}), &same);
                int r = cfx_op_relu(g, h);
                int h2 = cfx_op_conv2d(g, r, cfx_graph_param(g, "w2", 4, (int64_t[]){32, 32, 3, 3}),
                                       -1, &same);
                int s = cfx_op_relu(g, cfx_op_add(g, h2, r));
                int y = cfx_op_conv2d(g, s, cfx_graph_param(g, "w3", 4, (int64_t[]){16, 32, 3, 3}),
                                      -1, &same);
                CHECK_OK(cfx_graph_set_output(g, y, "y"));
                if (public_r) CHECK_OK(cfx_graph_set_output(g, r, "r"));
                compile_for(g, x, fuse, grad);
                gradcheck_fill(g, x, 71, 0.2f);
                CHECK_OK(cfx_graph_forward(g));
                const cfx__node *c1 = &g->nodes[g->values[h].producer];
                const cfx__node *c2 = &g->nodes[g->values[h2].producer];
                const cfx__node *c3 = &g->nodes[g->values[y].producer];
                bool held = fuse && !public_r && cfx__conv_dnnl_nhwc();
                CHECK_INT_EQ(c1->blocked_in0, 0); /* the graph's input */
                CHECK_INT_EQ(c1->blocked_out, held);
                CHECK_INT_EQ(c2->blocked_in0, held);
                CHECK_INT_EQ(c2->blocked_out, held);
                CHECK_INT_EQ(c3->blocked_in0, held);
                CHECK_INT_EQ(c3->blocked_out, 0); /* the graph's output */
                CHECK_INT_EQ(c2->c16_in0, held && grad);
                CHECK_INT_EQ(g->held_values > 0, held);
                keep_run(g, x, y, grad, &runs[fuse]);
                cfx_graph_free(g);
            }
            if (!same_runs(runs, grad)) printf("  (gradient %d, r an output %d)\n", grad, public_r);
        }
}
