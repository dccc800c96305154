/* test_norm.c - batch norm (training and inference, rank 2 and 4), instance norm (rank 3 and 4)
 * and dropout: gradient checks, a PyTorch training step with the running statistics it
 * updates, instance norm against PyTorch's, and bad input. */
#include "gradcheck.h"
#include "ops_oracle.h"

#include <stdlib.h>

typedef struct {
    cfx_graph *g;
    int x, scale, bias, mean, var, y;
} bn_case;

/* x of the given shape (C = shape[1]) with a gradient, scale/bias params, running stats consts. */
static bn_case bn_make(int ndim, const int64_t *shape, bool training, float momentum) {
    bn_case b;
    int64_t c = shape[1];
    b.g = cfx_graph_new();
    b.x = cfx_graph_input(b.g, "x", ndim, shape);
    cfx_graph_requires_grad(b.g, b.x, 1);
    b.scale = cfx_graph_param(b.g, "scale", 1, &c);
    b.bias = cfx_graph_param(b.g, "bias", 1, &c);
    b.mean = cfx_graph_const(b.g, "mean", 1, &c, NULL);
    b.var = cfx_graph_const(b.g, "var", 1, &c, NULL);
    b.y = cfx_op_batch_norm(b.g, b.x, b.scale, b.bias, b.mean, b.var,
                            &(cfx_batch_norm_attr){.momentum = momentum});
    CHECK(b.y >= 0);
    CHECK_OK(cfx_graph_compile(b.g));
    cfx_graph_set_training(b.g, training);
    cfx_rng r;
    cfx_rng_init(&r, 31);
    cfx_tensor_fill_normal(cfx_graph_tensor(b.g, b.x), &r, 0.5f, 2.0f);
    cfx_tensor_fill_uniform(cfx_graph_tensor(b.g, b.scale), &r, 0.5f, 1.5f);
    cfx_tensor_fill_uniform(cfx_graph_tensor(b.g, b.bias), &r, -1.0f, 1.0f);
    cfx_tensor_fill_uniform(cfx_graph_tensor(b.g, b.mean), &r, -0.5f, 0.5f);
    cfx_tensor_fill_uniform(cfx_graph_tensor(b.g, b.var), &r, 0.5f, 2.0f);
    return b;
}

static const int64_t RANK2[2] = {6, 3}, RANK4[4] = {2, 3, 3, 2};

CFX_TEST(norm, batch_norm_gradients_training_and_inference) {
    for (int training = 0; training < 2; training++)
        for (int r4 = 0; r4 < 2; r4++) {
            bn_case b = bn_make(r4 ? 4 : 2, r4 ? RANK4 : RANK2, training, 0);
            if (CHECK_GRADS(b.g, b.y, NULL))
                printf("  (batch norm training %d rank %d)\n", training, r4 ? 4 : 2);
            cfx_graph_free(b.g);
        }
}

/* In training mode every channel of the output has mean bias and variance scale^2 (biased). */
CFX_TEST(norm, batch_norm_training_normalises_with_batch_statistics) {
    bn_case b = bn_make(4, RANK4, true, 0);
    CHECK_OK(cfx_graph_forward(b.g));
    const float *y = cfx_graph_tensor(b.g, b.y)->data;
    const float *sc = cfx_graph_tensor(b.g, b.scale)->data,
                *bi = cfx_graph_tensor(b.g, b.bias)->data;
    for (int c = 0; c < 3; c++) {
        double s = 0, q = 0;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 6; j++) s += y[(n * 3 + c) * 6 + j];
        double mu = s / 12;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 6; j++) q += pow(y[(n * 3 + c) * 6 + j] - mu, 2);
        CHECK_NEAR(mu, bi[c], 1e-5);
        CHECK_NEAR(q / 12, sc[c] * sc[c], 1e-3); /* eps 1e-5 shrinks it slightly */
    }
    cfx_graph_free(b.g);
}

CFX_TEST(norm, batch_norm_matches_torch_with_running_stats) {
    oracle o = {0};
    const int upd[] = {3, 4, -1};
    for (int training = 0; training < 2; training++)
        for (int r4 = 0; r4 < 2; r4++) {
            bn_case b = bn_make(r4 ? 4 : 2, r4 ? RANK4 : RANK2, training, 0.3f);
            int ins[5] = {b.x, b.scale, b.bias, b.mean, b.var};
            char attrs[64]; /* training, momentum, eps; the rank only labels the case */
            snprintf(attrs, sizeof attrs, "%d 0.3 1e-5 rank%d", training, r4 ? 4 : 2);
            ORACLE_ADD(&o, "batch_norm", attrs, b.g, b.y, ins, 5, upd);
            cfx_graph_free(b.g);
        }
    ORACLE_RUN(&o);
}

CFX_TEST(norm, batch_norm_errors) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, RANK4);
    int c3 = cfx_graph_param(g, "s", 1, (int64_t[]){3});
    int c4 = cfx_graph_const(g, "m", 1, (int64_t[]){4}, NULL);
    CHECK(cfx_op_batch_norm(g, x, c3, c3, c4, c3, NULL) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "mean (4) must be (3) for x (2, 3, 3, 2)"), "message: %s",
              cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 1, (int64_t[]){3});
    c3 = cfx_graph_param(g, "s", 1, (int64_t[]){3});
    CHECK(cfx_op_batch_norm(g, x, c3, c3, c3, c3, NULL) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "at least two"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 2, RANK2);
    c3 = cfx_graph_param(g, "s", 1, (int64_t[]){3});
    CHECK(cfx_op_batch_norm(g, x, c3, c3, c3, c3, &(cfx_batch_norm_attr){.momentum = 2}) < 0);
    CHECK(cfx_op_batch_norm(g, x, c3, c3, c3, -1, NULL) < 0);
    cfx_graph_free(g);
}

/* x (shape, C = shape[1]) with a gradient, scale and bias params, y = instance_norm(x). */
static cfx_graph *in_make(int ndim, const int64_t *shape, float eps, int *x, int *s, int *b,
                          int *y) {
    int64_t c = shape[1];
    cfx_graph *g = cfx_graph_new();
    *x = cfx_graph_input(g, "x", ndim, shape);
    cfx_graph_requires_grad(g, *x, 1);
    *s = cfx_graph_param(g, "scale", 1, &c);
    *b = cfx_graph_param(g, "bias", 1, &c);
    *y = cfx_op_instance_norm(g, *x, *s, *b, eps);
    CHECK(*y >= 0);
    CHECK_OK(cfx_graph_compile(g));
    cfx_rng r;
    cfx_rng_init(&r, 32);
    cfx_tensor_fill_normal(cfx_graph_tensor(g, *x), &r, 0.5f, 2.0f);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, *s), &r, 0.5f, 1.5f);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, *b), &r, -1.0f, 1.0f);
    return g;
}

static const int64_t IN3[3] = {2, 3, 7}, IN4[4] = {3, 2, 4, 5};

CFX_TEST(norm, instance_norm_gradients_and_torch) {
    oracle o = {0};
    for (int r4 = 0; r4 < 2; r4++) {
        int x, s, b, y;
        cfx_graph *g = in_make(r4 ? 4 : 3, r4 ? IN4 : IN3, 1e-3f, &x, &s, &b, &y);
        if (CHECK_GRADS(g, y, NULL)) printf("  (instance norm rank %d)\n", r4 ? 4 : 3);
        /* Training mode changes nothing: there are no running statistics. */
        CHECK_OK(cfx_graph_forward(g));
        const cfx_tensor *yt = cfx_graph_tensor(g, y);
        float *first = malloc((size_t)yt->numel * sizeof *first);
        memcpy(first, yt->data, (size_t)yt->numel * sizeof *first);
        cfx_graph_set_training(g, 1);
        CHECK_OK(cfx_graph_forward(g));
        CHECK_ARRAY_NEAR(cfx_graph_tensor(g, y)->data, first, yt->numel, 0, 0);
        free(first);
        char attrs[32];
        snprintf(attrs, sizeof attrs, "1e-3 rank%d", r4 ? 4 : 3);
        ORACLE_ADD(&o, "instance_norm", attrs, g, y, ((int[]){x, s, b}), 3, NULL);
        cfx_graph_free(g);
    }
    ORACLE_RUN(&o);
}

CFX_TEST(norm, instance_norm_errors) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, IN4);
    int c3 = cfx_graph_param(g, "s", 1, (int64_t[]){3});
    int c2 = cfx_graph_param(g, "b", 1, (int64_t[]){2});
    CHECK(cfx_op_instance_norm(g, x, c3, c2, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "scale (3) must be (2) for x (3, 2, 4, 5)"), "message: %s",
              cfx_last_error());
    CHECK(cfx_op_instance_norm(g, x, c2, c2, -1) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "eps must be positive"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 2, (int64_t[]){4, 3});
    c3 = cfx_graph_param(g, "s", 1, (int64_t[]){3});
    CHECK(cfx_op_instance_norm(g, x, c3, c3, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "spatial"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
}

static cfx_graph *dropout_graph(float p, int *x, int *y) {
    cfx_graph *g = cfx_graph_new();
    *x = cfx_graph_input(g, "x", 2, (int64_t[]){40, 50});
    cfx_graph_requires_grad(g, *x, 1);
    *y = cfx_op_dropout(g, *x, p);
    CHECK_OK(cfx_graph_compile(g));
    cfx_rng r;
    cfx_rng_init(&r, 4);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, *x), &r, 0.5f, 1.5f);
    return g;
}

CFX_TEST(norm, dropout_training_eval_and_gradients) {
    int x, y;
    cfx_graph *g = dropout_graph(0.3f, &x, &y);
    const float *xs = cfx_graph_tensor(g, x)->data, *ys = cfx_graph_tensor(g, y)->data;
    /* Eval mode: the identity, gradient one. */
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ARRAY_NEAR(ys, xs, 2000, 0, 0);
    CHECK_GRADS(g, y, NULL);
    /* Training: each element is dropped or scaled by 1/(1-p); about p are dropped. */
    cfx_graph_set_training(g, 1);
    cfx_graph_seed(g, 9);
    CHECK_OK(cfx_graph_forward(g));
    int dropped = 0, bad = 0;
    float first[2000];
    for (int i = 0; i < 2000; i++) {
        first[i] = ys[i];
        if (ys[i] == 0)
            dropped++;
        else if (fabsf(ys[i] - xs[i] / 0.7f) > 1e-6f)
            bad++;
    }
    CHECK_INT_EQ(bad, 0);
    CHECK_MSG(dropped > 520 && dropped < 680, "%d of 2000 dropped at p 0.3", dropped);
    /* The same seed gives the same mask; another seed another one. */
    cfx_graph_seed(g, 9);
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ARRAY_NEAR(ys, first, 2000, 0, 0);
    cfx_graph_seed(g, 10);
    CHECK_OK(cfx_graph_forward(g));
    int same = 0;
    for (int i = 0; i < 2000; i++) same += (ys[i] == 0) == (first[i] == 0);
    CHECK(same < 2000);
    /* Backward uses the mask of the last forward. */
    CHECK_OK(cfx_graph_backward(g, y, NULL));
    const float *dx = cfx_graph_grad(g, x);
    for (int i = 0; i < 2000; i++)
        if (dx[i] != (ys[i] == 0 ? 0.0f : 1 / 0.7f)) bad++;
    CHECK_INT_EQ(bad, 0);
    CHECK_GRADS(g, y, &(gradcheck_opts){.max_elems = 200}); /* reseeds: the mask repeats */
    cfx_graph_free(g);
    /* p = 1 drops everything; p = 0 keeps everything. */
    g = dropout_graph(1.0f, &x, &y);
    cfx_graph_set_training(g, 1);
    CHECK_OK(cfx_graph_forward(g));
    for (int i = 0; i < 2000; i++) bad += cfx_graph_tensor(g, y)->data[i] != 0;
    CHECK_INT_EQ(bad, 0);
    cfx_graph_free(g);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 1, (int64_t[]){3});
    CHECK(cfx_op_dropout(g, x, 1.5f) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "[0, 1]"), "message: %s", cfx_last_error());
    cfx_graph_free(g);
}
