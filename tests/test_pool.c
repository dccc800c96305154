/* test_pool.c - MaxPool, AveragePool, GlobalAveragePool: output sizes (ceil_mode rules),
 * gradient checks over the attribute combinations, values and input gradients against PyTorch
 * (tests/py/pool_oracle.py), and errors for bad attributes. */
#include "gradcheck.h"
#include "oracle_io.h"

typedef struct {
    bool is_max;
    cfx_pool2d_attr at;
} pool_case;

/* cases[i] and pools[i] go together; the oracle arguments repeat the attributes. */
static const oracle_case cases[] = {
    {"max_k2s2", {2, 3, 6, 6}, "kind=max k=2,2 s=2,2 pad=0,0,0,0 dil=1,1 ceil=0 cip=0", true},
    {"max_k3s2_p1_ceil",
     {2, 2, 7, 8},
     "kind=max k=3,3 s=2,2 pad=1,1,1,1 dil=1,1 ceil=1 cip=0",
     true},
    {"max_dil2", {1, 2, 9, 9}, "kind=max k=3,3 s=1,1 pad=1,1,1,1 dil=2,2 ceil=0 cip=0", true},
    {"max_asym", {1, 2, 5, 6}, "kind=max k=2,3 s=2,1 pad=0,1,1,0 dil=1,1 ceil=0 cip=0", true},
    {"max_ceil_drop", {1, 1, 5, 5}, "kind=max k=2,2 s=2,2 pad=1,1,1,1 dil=1,1 ceil=1 cip=0", true},
    {"max_ceil_nopad", {1, 2, 8, 7}, "kind=max k=3,3 s=2,2 pad=0,0,0,0 dil=1,1 ceil=1 cip=0", true},
    {"avg_k2s2", {2, 3, 6, 6}, "kind=avg k=2,2 s=2,2 pad=0,0,0,0 dil=1,1 ceil=0 cip=0", true},
    {"avg_p1_cip", {2, 2, 7, 8}, "kind=avg k=3,3 s=2,2 pad=1,1,1,1 dil=1,1 ceil=0 cip=1", true},
    {"avg_p1_nocip", {2, 2, 7, 8}, "kind=avg k=3,3 s=2,2 pad=1,1,1,1 dil=1,1 ceil=0 cip=0", true},
    {"avg_ceil_cip", {1, 2, 7, 8}, "kind=avg k=3,3 s=2,2 pad=1,1,1,1 dil=1,1 ceil=1 cip=1", true},
    {"avg_ceil_nocip", {1, 2, 7, 8}, "kind=avg k=3,3 s=2,2 pad=1,1,1,1 dil=1,1 ceil=1 cip=0", true},
    {"avg_ceil_drop_cip",
     {1, 1, 5, 5},
     "kind=avg k=2,2 s=2,2 pad=1,1,1,1 dil=1,1 ceil=1 cip=1",
     true},
    {"avg_asym_cip", {1, 2, 5, 6}, "kind=avg k=2,3 s=1,2 pad=1,0,0,1 dil=1,1 ceil=0 cip=1", true},
    {"avg_asym_nocip", {1, 2, 5, 6}, "kind=avg k=2,3 s=1,2 pad=1,0,0,1 dil=1,1 ceil=0 cip=0", true},
    {"gap", {2, 3, 5, 4}, "kind=gap", true},
};
static const pool_case pools[] = {
    {true, {.kernel = {2, 2}}},
    {true, {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1, 1, 1}, .ceil_mode = 1}},
    {true, {.kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1, 1, 1}, .dilation = {2, 2}}},
    {true, {.kernel = {2, 3}, .stride = {2, 1}, .pad = {0, 1, 1, 0}}},
    {true, {.kernel = {2, 2}, .stride = {2, 2}, .pad = {1, 1, 1, 1}, .ceil_mode = 1}},
    {true, {.kernel = {3, 3}, .stride = {2, 2}, .ceil_mode = 1}},
    {false, {.kernel = {2, 2}, .stride = {2, 2}}},
    {false, {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1, 1, 1}, .count_include_pad = 1}},
    {false, {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1, 1, 1}}},
    {false,
     {.kernel = {3, 3},
      .stride = {2, 2},
      .pad = {1, 1, 1, 1},
      .ceil_mode = 1,
      .count_include_pad = 1}},
    {false, {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1, 1, 1}, .ceil_mode = 1}},
    {false,
     {.kernel = {2, 2},
      .stride = {2, 2},
      .pad = {1, 1, 1, 1},
      .ceil_mode = 1,
      .count_include_pad = 1}},
    {false, {.kernel = {2, 3}, .stride = {1, 2}, .pad = {1, 0, 0, 1}, .count_include_pad = 1}},
    {false, {.kernel = {2, 3}, .stride = {1, 2}, .pad = {1, 0, 0, 1}}},
    {false, {.kernel = {0, 0}}}, /* global */
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static int build_pool(cfx_graph *g, int x, int i) {
    if (i == NCASES - 1) return cfx_op_global_avg_pool(g, x);
    return pools[i].is_max ? cfx_op_max_pool2d(g, x, &pools[i].at)
                           : cfx_op_avg_pool2d(g, x, &pools[i].at);
}

CFX_TEST(pool, matches_pytorch) {
    oracle_check_unary("pool_oracle.py", cases, NCASES, build_pool);
}

static void gradcheck_pool(const int64_t *xs, bool is_max, const cfx_pool2d_attr *at,
                           const char *what) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, xs);
    int y = is_max ? cfx_op_max_pool2d(g, x, at)
            : at   ? cfx_op_avg_pool2d(g, x, at)
                   : cfx_op_global_avg_pool(g, x);
    cfx_graph_requires_grad(g, x, 1);
    CHECK_OK(cfx_graph_compile(g));
    oracle_fill_distinct(cfx_graph_tensor(g, x), 5);
    if (CHECK_GRADS(g, y, &(gradcheck_opts){.max_elems = 200})) printf("  (%s)\n", what);
    cfx_graph_free(g);
}

CFX_TEST(pool, gradcheck) {
    for (int i = 0; i < NCASES - 1; i++)
        gradcheck_pool(cases[i].x, pools[i].is_max, &pools[i].at, cases[i].name);
    gradcheck_pool(cases[NCASES - 1].x, false, NULL, "global");
    /* Asymmetric padding with ceil_mode, which the PyTorch oracle cannot express. */
    cfx_pool2d_attr at = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 0, 0, 1}, .ceil_mode = 1};
    gradcheck_pool((int64_t[]){1, 2, 8, 7}, true, &at, "max asym ceil");
    gradcheck_pool((int64_t[]){1, 2, 8, 7}, false, &at, "avg asym ceil");
    at.count_include_pad = 1;
    gradcheck_pool((int64_t[]){1, 2, 8, 7}, false, &at, "avg asym ceil cip");
}

static int64_t out_h(int64_t H, const cfx_pool2d_attr *at) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, H, H});
    int y = cfx_op_max_pool2d(g, x, at);
    int64_t r = y >= 0 ? cfx_graph_tensor(g, y)->shape[2] : -1;
    cfx_graph_free(g);
    return r;
}

/* Output sizes, including the ceil_mode rule that drops a last window starting in the end
 * padding (values from torch.nn.functional.max_pool2d). */
CFX_TEST(pool, output_sizes) {
    CHECK_INT_EQ(
        out_h(5, &(cfx_pool2d_attr){.kernel = {2, 2}, .pad = {1, 1, 1, 1}, .ceil_mode = 1}), 3);
    CHECK_INT_EQ(out_h(5, &(cfx_pool2d_attr){.kernel = {2, 2}, .pad = {1, 1, 1, 1}}), 3);
    CHECK_INT_EQ(out_h(6, &(cfx_pool2d_attr){.kernel = {3, 3}, .stride = {2, 2}, .ceil_mode = 1}),
                 3);
    CHECK_INT_EQ(out_h(6, &(cfx_pool2d_attr){.kernel = {3, 3}, .stride = {2, 2}}), 2);
    CHECK_INT_EQ(out_h(7, &(cfx_pool2d_attr){.kernel = {2, 2}, .stride = {3, 3}, .ceil_mode = 1}),
                 3);
    CHECK_INT_EQ(
        out_h(9, &(cfx_pool2d_attr){.kernel = {3, 3}, .dilation = {2, 2}, .stride = {1, 1}}), 5);
}

static void bad_pool(bool is_max, const int64_t *xs, const cfx_pool2d_attr *at, const char *want) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", xs[0], xs + 1);
    int y = is_max ? cfx_op_max_pool2d(g, x, at) : cfx_op_avg_pool2d(g, x, at);
    CHECK(y < 0);
    CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), want) != NULL, "error '%s' does not mention '%s'",
              cfx_last_error(), want);
    cfx_graph_free(g);
}

CFX_TEST(pool, bad_input) {
    int64_t x4[5] = {4, 1, 2, 5, 5}, x3[4] = {3, 2, 5, 5};
    bad_pool(true, x4, &(cfx_pool2d_attr){.kernel = {0, 2}}, "kernel must be positive");
    bad_pool(true, x4, &(cfx_pool2d_attr){.kernel = {6, 2}}, "larger than the padded input");
    bad_pool(true, x4, &(cfx_pool2d_attr){.kernel = {2, 2}, .stride = {-1, 1}}, "stride");
    bad_pool(true, x4, &(cfx_pool2d_attr){.kernel = {2, 2}, .pad = {2, 0, 0, 0}},
             "smaller than the kernel");
    bad_pool(false, x4, &(cfx_pool2d_attr){.kernel = {2, 2}, .dilation = {2, 2}}, "dilation");
    bad_pool(false, x3, &(cfx_pool2d_attr){.kernel = {2, 2}}, "4-D");
    bad_pool(true, x4, NULL, "kernel is required");
}

/* Ties send the gradient to the first maximum of the window (in row-major window order), a
 * larger value beats earlier ties, and a NaN wins and keeps its place (as PyTorch with one NaN);
 * the same on the row-vectorised interior path (windows that fit) and on the clipped border
 * path (padding). */
CFX_TEST(pool, max_ties_go_to_the_first_and_nan_wins) {
    for (int padded = 0; padded < 2; padded++) {
        cfx_graph *g = cfx_graph_new();
        int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 4, 8});
        cfx_pool2d_attr at = {.kernel = {2, 2}, .stride = {2, 2}};
        if (padded) at.pad[1] = at.pad[3] = 1; /* columns -1 and 8: border windows at both ends */
        int y = cfx_op_max_pool2d(g, x, &at);
        cfx_graph_requires_grad(g, x, 1);
        CHECK_OK(cfx_graph_compile(g));
        float *xs = cfx_graph_tensor(g, x)->data;
        for (int i = 0; i < 32; i++) xs[i] = 1.0f; /* every window a tie */
        xs[8 + 5] = NAN;                           /* row 1, column 5 */
        xs[8 + 2] = 2.0f;                          /* row 1, column 2: beats the ties */
        CHECK_OK(cfx_graph_forward(g));
        CHECK_OK(cfx_graph_backward(g, y, NULL));
        const cfx_tensor *yt = cfx_graph_tensor(g, y);
        const float *dx = cfx_graph_grad(g, x);
        int pl = padded, Q = padded ? 5 : 4;
        CHECK_INT_EQ(yt->shape[3], Q);
        float want_dx[32] = {0};
        for (int oh = 0; oh < 2; oh++)
            for (int ow = 0; ow < Q; ow++) {
                /* The window's taps in order; the winner by hand: NaN, else 2, else the first. */
                int winner = -1;
                float want_y = 1.0f;
                for (int r = 0; r < 2 && winner < 0; r++)
                    for (int c = 0; c < 2; c++) {
                        int ih = 2 * oh + r, iw = 2 * ow - pl + c;
                        if (iw < 0 || iw >= 8) continue;
                        if (ih * 8 + iw == 8 + 5) winner = ih * 8 + iw, want_y = NAN;
                    }
                for (int r = 0; r < 2 && winner < 0; r++)
                    for (int c = 0; c < 2; c++) {
                        int ih = 2 * oh + r, iw = 2 * ow - pl + c;
                        if (iw >= 0 && iw < 8 && ih * 8 + iw == 8 + 2) winner = 8 + 2, want_y = 2;
                    }
                for (int r = 0; r < 2 && winner < 0; r++)
                    for (int c = 0; c < 2 && winner < 0; c++) {
                        int iw = 2 * ow - pl + c;
                        if (iw >= 0 && iw < 8) winner = (2 * oh + r) * 8 + iw;
                    }
                want_dx[winner] += 1.0f;
                float got = yt->data[oh * Q + ow];
                CHECK_MSG(isnan(want_y) ? isnan(got) : got == want_y,
                          "padded %d: y[%d][%d] = %g, want %g", padded, oh, ow, (double)got,
                          (double)want_y);
            }
        if (!CHECK_ARRAY_NEAR(dx, want_dx, 32, 0, 0)) printf("  (padded %d)\n", padded);
        cfx_graph_free(g);
    }
}
