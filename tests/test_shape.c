/* test_shape.c - Flatten, Reshape (views), Transpose, Concat, Slice and Pad: values against
 * hand-worked ONNX semantics, gradient checks for every code path, and bad input. */
#include "gradcheck.h"

/* The 0..n-1 ramp. */
static void ramp(cfx_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)i;
}

static void fill(cfx_graph *g, int x) {
    cfx_rng r;
    cfx_rng_init(&r, 17);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &r, -1.0f, 1.0f);
}

static int grad_input(cfx_graph *g, int ndim, const int64_t *shape) {
    int x = cfx_graph_input(g, "x", ndim, shape);
    cfx_graph_requires_grad(g, x, 1);
    return x;
}

static void check_shape(const cfx_tensor *t, int ndim, const int64_t *want) {
    CHECK_INT_EQ(t->ndim, ndim);
    for (int d = 0; d < ndim && d < t->ndim; d++) CHECK_INT_EQ(t->shape[d], want[d]);
}

CFX_TEST(shape, flatten_and_reshape_are_views) {
    cfx_graph *g = cfx_graph_new();
    int64_t xs[4] = {2, 3, 4, 5};
    int x = grad_input(g, 4, xs);
    int f0 = cfx_op_flatten(g, x, 0), f2 = cfx_op_flatten(g, x, 2), fm = cfx_op_flatten(g, x, -1);
    int f4 = cfx_op_flatten(g, x, 4);
    int r = cfx_op_reshape(g, x, 3, (int64_t[]){0, -1, 10});
    int r2 = cfx_op_reshape(g, cfx_op_relu(g, r), 2, (int64_t[]){-1, 5}); /* a view of a node */
    /* A consumer after the views, so their gradients are exercised through the graph. */
    int w = cfx_graph_param(g, "w", 2, (int64_t[]){24, 5});
    int y = cfx_op_add(g, cfx_op_mul(g, r2, w), cfx_op_reshape(g, f2, 2, (int64_t[]){24, 5}));
    CHECK_OK(cfx_graph_compile(g));
    check_shape(cfx_graph_tensor(g, f0), 2, (int64_t[]){1, 120});
    check_shape(cfx_graph_tensor(g, f2), 2, (int64_t[]){6, 20});
    check_shape(cfx_graph_tensor(g, fm), 2, (int64_t[]){24, 5});
    check_shape(cfx_graph_tensor(g, f4), 2, (int64_t[]){120, 1});
    check_shape(cfx_graph_tensor(g, r), 3, (int64_t[]){2, 6, 10});
    check_shape(cfx_graph_tensor(g, r2), 2, (int64_t[]){24, 5});
    CHECK(cfx_graph_tensor(g, f2)->data == cfx_graph_tensor(g, x)->data);
    CHECK(cfx_graph_tensor(g, r)->data == cfx_graph_tensor(g, x)->data);
    CHECK_STR_EQ(cfx_graph_value_op(g, r), "Reshape");
    fill(g, x);
    cfx_tensor_fill(cfx_graph_tensor(g, w), 0.5f);
    CHECK_GRADS(g, y, NULL);
    /* Backward straight from a view seeds the input's own gradient. */
    CHECK_OK(cfx_graph_forward(g));
    CHECK_OK(cfx_graph_backward(g, f0, NULL));
    const float *dx = cfx_graph_grad(g, x);
    int bad = 0;
    for (int i = 0; i < 120; i++) bad += dx[i] != 1.0f;
    CHECK_INT_EQ(bad, 0);
    cfx_graph_free(g);
    /* A new batch size flows through 0 and -1, and the view follows the new storage. */
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 4, xs);
    r = cfx_op_reshape(g, x, 3, (int64_t[]){0, -1, 10});
    CHECK_OK(cfx_graph_compile(g));
    CHECK_OK(cfx_graph_reshape_input(g, x, 4, (int64_t[]){4, 3, 4, 5}));
    CHECK_OK(cfx_graph_forward(g));
    check_shape(cfx_graph_tensor(g, r), 3, (int64_t[]){4, 6, 10});
    CHECK(cfx_graph_tensor(g, r)->data == cfx_graph_tensor(g, x)->data);
    cfx_graph_free(g);
}

CFX_TEST(shape, reshape_and_flatten_errors) {
    struct {
        int nd;
        int64_t s[3];
        const char *msg;
    } bad[] = {{2, {7, -1}, "cannot be reshaped"},
               {2, {4, 4}, "cannot be reshaped to (4, 4)"},
               {2, {-1, -1}, "more than one -1"},
               {2, {-2, 12}, "negative"},
               {3, {0, 0, 0}, "does not have"}};
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        cfx_graph *g = cfx_graph_new();
        int x = cfx_graph_input(g, "x", 2, (int64_t[]){4, 6});
        CHECK(cfx_op_reshape(g, x, bad[c].nd, bad[c].s) < 0);
        CHECK_MSG(strstr(cfx_last_error(), bad[c].msg), "case %zu: %s", c, cfx_last_error());
        CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
        cfx_graph_free(g);
    }
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 2, (int64_t[]){4, 6});
    CHECK(cfx_op_flatten(g, x, 3) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "axis 3"), "%s", cfx_last_error());
    cfx_graph_free(g);
    /* A replan that breaks a reshape reports it. */
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 2, (int64_t[]){4, 6});
    CHECK(cfx_op_reshape(g, x, 2, (int64_t[]){8, 3}) >= 0);
    CHECK_OK(cfx_graph_compile(g));
    CHECK_OK(cfx_graph_reshape_input(g, x, 2, (int64_t[]){5, 6}));
    CHECK_ERR(cfx_graph_forward(g), CFX_ESHAPE);
    cfx_graph_free(g);
}

CFX_TEST(shape, transpose_values_gradients_and_errors) {
    int perms[][4] = {{0, 2, 1}, {2, 0, 1}, {1, 2, 0}};
    for (int p = 0; p < 3; p++) {
        cfx_graph *g = cfx_graph_new();
        int x = grad_input(g, 3, (int64_t[]){2, 3, 4});
        int y = cfx_op_transpose(g, x, perms[p]);
        CHECK_OK(cfx_graph_compile(g));
        ramp(cfx_graph_tensor(g, x));
        CHECK_OK(cfx_graph_forward(g));
        const cfx_tensor *t = cfx_graph_tensor(g, y);
        int64_t is[3] = {12, 4, 1};
        int bad = 0;
        for (int64_t i = 0; i < t->shape[0]; i++)
            for (int64_t j = 0; j < t->shape[1]; j++)
                for (int64_t k = 0; k < t->shape[2]; k++) {
                    float want =
                        (float)(i * is[perms[p][0]] + j * is[perms[p][1]] + k * is[perms[p][2]]);
                    bad += t->data[(i * t->shape[1] + j) * t->shape[2] + k] != want;
                }
        CHECK_INT_EQ(bad, 0);
        fill(g, x);
        CHECK_GRADS(g, y, NULL);
        cfx_graph_free(g);
    }
    /* No permutation reverses the axes (ONNX default); 4-D too. */
    cfx_graph *g = cfx_graph_new();
    int x = grad_input(g, 4, (int64_t[]){2, 3, 4, 5});
    int y = cfx_op_transpose(g, x, NULL);
    int y2 = cfx_op_transpose(g, x, (int[]){3, 1, 0, 2});
    int s =
        cfx_op_add(g, cfx_op_reduce(g, y, CFX_REDUCE_SUM, (int[]){0, 1}, 2, 0),
                   cfx_op_reduce(g, cfx_op_mul(g, y2, y2), CFX_REDUCE_MAX, (int[]){0, 3}, 2, 0));
    CHECK_OK(cfx_graph_compile(g));
    check_shape(cfx_graph_tensor(g, y), 4, (int64_t[]){5, 4, 3, 2});
    check_shape(cfx_graph_tensor(g, y2), 4, (int64_t[]){5, 3, 2, 4});
    fill(g, x);
    CHECK_GRADS(g, s, NULL);
    cfx_graph_free(g);
    int badp[][3] = {{0, 0, 1}, {0, 1, 3}, {-1, 0, 1}};
    for (int p = 0; p < 3; p++) {
        g = cfx_graph_new();
        x = cfx_graph_input(g, "x", 3, (int64_t[]){2, 3, 4});
        CHECK(cfx_op_transpose(g, x, badp[p]) < 0);
        CHECK_MSG(strstr(cfx_last_error(), "not a permutation"), "%s", cfx_last_error());
        cfx_graph_free(g);
    }
}

CFX_TEST(shape, concat_values_gradients_and_errors) {
    int axes[] = {0, 1, 2, -1};
    for (int a = 0; a < 4; a++) {
        int ax = axes[a] < 0 ? axes[a] + 3 : axes[a];
        cfx_graph *g = cfx_graph_new();
        int xs[3];
        for (int i = 0; i < 3; i++) {
            int64_t s[3] = {2, 3, 2};
            s[ax] = i + 1;
            xs[i] = cfx_graph_input(g, i == 0 ? "a" : i == 1 ? "b" : "c", 3, s);
            cfx_graph_requires_grad(g, xs[i], 1);
        }
        int y = cfx_op_concat(g, xs, 3, axes[a]);
        CHECK_OK(cfx_graph_compile(g));
        const cfx_tensor *t = cfx_graph_tensor(g, y);
        CHECK_INT_EQ(t->shape[ax], 6);
        /* Values: input i's elements are 100 i + their index; check where they land. */
        for (int i = 0; i < 3; i++) {
            cfx_tensor *in = cfx_graph_tensor(g, xs[i]);
            for (int64_t k = 0; k < in->numel; k++) in->data[k] = (float)(100 * i + k);
        }
        CHECK_OK(cfx_graph_forward(g));
        int bad = 0;
        for (int64_t o = 0; o < t->numel; o++) {
            int64_t c[3] = {o / (t->shape[1] * t->shape[2]), (o / t->shape[2]) % t->shape[1],
                            o % t->shape[2]};
            int i = 0;
            int64_t off = c[ax];
            while (off >= i + 1) off -= ++i; /* input i has size i + 1 on the axis */
            const cfx_tensor *in = cfx_graph_tensor(g, xs[i]);
            c[ax] = off;
            int64_t k = (c[0] * in->shape[1] + c[1]) * in->shape[2] + c[2];
            bad += t->data[o] != (float)(100 * i + k);
        }
        CHECK_INT_EQ(bad, 0);
        for (int i = 0; i < 3; i++) fill(g, xs[i]);
        CHECK_GRADS(g, y, NULL);
        cfx_graph_free(g);
    }
    cfx_graph *g = cfx_graph_new();
    int a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 3});
    int b = cfx_graph_input(g, "b", 2, (int64_t[]){3, 3});
    CHECK(cfx_op_concat(g, (int[]){a, b}, 2, 1) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "(2, 3) and (3, 3) differ outside axis 1"), "%s",
              cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 3});
    CHECK(cfx_op_concat(g, (int[]){a, a}, 2, 2) < 0);
    CHECK(cfx_op_concat(g, (int[]){a, a, a, a, a, a, a, a, a}, 9, 0) < 0);
    cfx_graph_free(g);
}

/* 1-D slices of 0..9 with their expected values (ONNX = Python slicing here). */
CFX_TEST(shape, slice_values_clamping_and_negative_steps) {
    struct {
        int64_t start, end, step;
        int n;
        float want[10];
    } cases[] = {
        {2, 8, 3, 2, {2, 5}},        {-3, INT64_MAX, 1, 3, {7, 8, 9}},
        {8, 1, -3, 3, {8, 5, 2}},    {INT64_MAX, INT64_MIN, -1, 10, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
        {-1, -4, -1, 3, {9, 8, 7}},  {-100, 3, 1, 3, {0, 1, 2}},
        {5, -100, -2, 3, {5, 3, 1}}, {0, 10, 4, 3, {0, 4, 8}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cfx_graph *g = cfx_graph_new();
        int x = grad_input(g, 1, (int64_t[]){10});
        int y = cfx_op_slice(g, x, 1, (int[]){0}, &cases[c].start, &cases[c].end, &cases[c].step);
        CHECK_OK(cfx_graph_compile(g));
        ramp(cfx_graph_tensor(g, x));
        CHECK_OK(cfx_graph_forward(g));
        const cfx_tensor *t = cfx_graph_tensor(g, y);
        CHECK_MSG(t->numel == cases[c].n, "case %zu: %lld elements", c, (long long)t->numel);
        if (t->numel == cases[c].n)
            CHECK_ARRAY_NEAR(t->data, cases[c].want, (size_t)cases[c].n, 0, 0);
        /* The gradient is 1 on every selected element. */
        CHECK_OK(cfx_graph_backward(g, y, NULL));
        const float *dx = cfx_graph_grad(g, x);
        float sum = 0;
        for (int i = 0; i < 10; i++) sum += dx[i];
        CHECK_NEAR(sum, cases[c].n, 0);
        for (int i = 0; i < cases[c].n; i++) CHECK_NEAR(dx[(int)cases[c].want[i]], 1, 0);
        cfx_graph_free(g);
    }
}

CFX_TEST(shape, slice_gradients_and_errors) {
    struct {
        int naxes, axes[3];
        int64_t starts[3], ends[3], steps[3];
        int64_t want[3];
    } cases[] = {
        {2, {0, 2}, {2, -1}, {-100, 0}, {-1, -2}, {3, 4, 2}},
        {1, {-2}, {1}, {3}, {1}, {3, 2, 5}},
        {3, {2, 1, 0}, {0, 3, 0}, {5, 0, 3}, {2, -2, 2}, {2, 2, 3}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cfx_graph *g = cfx_graph_new();
        int x = grad_input(g, 3, (int64_t[]){3, 4, 5});
        int y = cfx_op_slice(g, x, cases[c].naxes, cases[c].axes, cases[c].starts, cases[c].ends,
                             cases[c].steps);
        CHECK_OK(cfx_graph_compile(g));
        check_shape(cfx_graph_tensor(g, y), 3, cases[c].want);
        fill(g, x);
        if (CHECK_GRADS(g, y, NULL)) printf("  (slice case %zu)\n", c);
        cfx_graph_free(g);
    }
    /* Steps default to 1 and axes to 0..naxes-1. */
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 2, (int64_t[]){4, 6});
    int y = cfx_op_slice(g, x, 2, NULL, (int64_t[]){1, 2}, (int64_t[]){3, 6}, NULL);
    CHECK_OK(cfx_graph_compile(g));
    check_shape(cfx_graph_tensor(g, y), 2, (int64_t[]){2, 4});
    cfx_graph_free(g);
    struct {
        int axis;
        int64_t start, end, step;
        const char *msg;
    } bad[] = {{0, 20, 30, 1, "is empty"},
               {0, 2, 2, 1, "is empty"},
               {0, 1, 3, 0, "step"},
               {2, 0, 1, 1, "out of range"}};
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        g = cfx_graph_new();
        x = cfx_graph_input(g, "x", 2, (int64_t[]){4, 6});
        CHECK(cfx_op_slice(g, x, 1, &bad[c].axis, &bad[c].start, &bad[c].end, &bad[c].step) < 0);
        CHECK_MSG(strstr(cfx_last_error(), bad[c].msg), "case %zu: %s", c, cfx_last_error());
        cfx_graph_free(g);
    }
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 2, (int64_t[]){4, 6});
    CHECK(cfx_op_slice(g, x, 2, (int[]){1, -1}, (int64_t[]){0, 0}, (int64_t[]){2, 2}, NULL) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "repeated"), "%s", cfx_last_error());
    cfx_graph_free(g);
}

CFX_TEST(shape, pad_values_modes_and_crops) {
    struct {
        cfx_pad_mode mode;
        int64_t lo, hi;
        int n;
        float want[8];
    } cases[] = {
        {CFX_PAD_CONSTANT, 2, 1, 7, {9, 9, 1, 2, 3, 4, 9}},
        {CFX_PAD_REFLECT, 2, 1, 7, {3, 2, 1, 2, 3, 4, 3}},
        {CFX_PAD_EDGE, 2, 1, 7, {1, 1, 1, 2, 3, 4, 4}},
        {CFX_PAD_REFLECT, -1, 2, 5, {2, 3, 4, 3, 2}},
        {CFX_PAD_CONSTANT, -1, -2, 1, {2}},
        {CFX_PAD_EDGE, 3, -3, 4, {1, 1, 1, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cfx_graph *g = cfx_graph_new();
        int x = grad_input(g, 1, (int64_t[]){4});
        int y = cfx_op_pad(g, x, (int64_t[]){cases[c].lo, cases[c].hi}, cases[c].mode, 9.0f);
        CHECK_OK(cfx_graph_compile(g));
        memcpy(cfx_graph_tensor(g, x)->data, (float[]){1, 2, 3, 4}, 4 * sizeof(float));
        CHECK_OK(cfx_graph_forward(g));
        const cfx_tensor *t = cfx_graph_tensor(g, y);
        CHECK_MSG(t->numel == cases[c].n, "case %zu: %lld elements", c, (long long)t->numel);
        if (t->numel == cases[c].n)
            CHECK_ARRAY_NEAR(t->data, cases[c].want, (size_t)cases[c].n, 0, 0);
        cfx_graph_free(g);
    }
}

CFX_TEST(shape, pad_gradients_and_errors) {
    const char *names[] = {"constant", "reflect", "edge"};
    int64_t pads[][6] = {{1, 0, 2, 0, 2, 1}, {0, -1, 2, 1, 1, -2}, {-1, 2, 0, 0, -1, 3}};
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++) {
            cfx_graph *g = cfx_graph_new();
            int x = grad_input(g, 3, (int64_t[]){3, 4, 5});
            int y = cfx_op_pad(g, x, pads[p], (cfx_pad_mode)m, 0.5f);
            CHECK_OK(cfx_graph_compile(g));
            fill(g, x);
            if (CHECK_GRADS(g, y, &(gradcheck_opts){.max_elems = 60}))
                printf("  (pad %s case %d)\n", names[m], p);
            cfx_graph_free(g);
        }
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 2, (int64_t[]){3, 4});
    CHECK(cfx_op_pad(g, x, (int64_t[]){0, 4, 0, 0}, CFX_PAD_REFLECT, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "below its size"), "%s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 2, (int64_t[]){3, 4});
    CHECK(cfx_op_pad(g, x, (int64_t[]){-2, 0, -1, 0}, CFX_PAD_CONSTANT, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "leave nothing"), "%s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 2, (int64_t[]){3, 4});
    CHECK(cfx_op_pad(g, x, (int64_t[]){0, 0, 0, 0}, (cfx_pad_mode)5, 0) < 0);
    cfx_graph_free(g);
}
