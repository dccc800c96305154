/* test_loss.c - cosine similarity, LPIPS's normalisation, L1/MSE/L2 and cross-entropy (hard and
 * soft targets) under every reduction: gradient checks, hand-computed values, PyTorch values
 * and gradients, bad labels and bad shapes. */
#include "gradcheck.h"
#include "ops_oracle.h"

static int grad_input(cfx_graph *g, const char *name, int ndim, const int64_t *shape) {
    int x = cfx_graph_input(g, name, ndim, shape);
    cfx_graph_requires_grad(g, x, 1);
    return x;
}

static void fill(cfx_graph *g, int x, uint64_t seed, float lo, float hi) {
    cfx_rng r;
    cfx_rng_init(&r, seed);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &r, lo, hi);
}

/* a, b of the given shape, cosine along axis. */
static cfx_graph *cos_graph(int ndim, const int64_t *shape, int axis, float eps, int *ins, int *y) {
    cfx_graph *g = cfx_graph_new();
    ins[0] = grad_input(g, "a", ndim, shape);
    ins[1] = grad_input(g, "b", ndim, shape);
    *y = cfx_op_cosine_similarity(g, ins[0], ins[1], axis, eps);
    CHECK(*y >= 0);
    CHECK_OK(cfx_graph_compile(g));
    fill(g, ins[0], 1, -1, 1);
    fill(g, ins[1], 2, -1, 1);
    return g;
}

CFX_TEST(loss, cosine_gradients_and_values) {
    int ins[2], y;
    int axes[] = {0, 1, -1};
    for (int a = 0; a < 3; a++) {
        cfx_graph *g = cos_graph(3, (int64_t[]){3, 4, 5}, axes[a], 0, ins, &y);
        CHECK_INT_EQ(cfx_graph_tensor(g, y)->ndim, 2);
        if (CHECK_GRADS(g, y, NULL)) printf("  (cosine axis %d)\n", axes[a]);
        cfx_graph_free(g);
    }
    /* Values: parallel, orthogonal, opposite; and a norm below eps, clamped on its own:
     * (0.01, 0) . (1, 0) / (max(0.01, 0.1) max(1, 0.1)) = 0.1, and with both norms below eps
     * (0.05, 0) . (0.05, 0) / (0.1 0.1) = 0.25, which torch 1.13 gives too (clamping the
     * product of the norms instead would give 0.0025 / 0.1 = 0.025). */
    cfx_graph *g = cos_graph(2, (int64_t[]){5, 2}, 1, 0.1f, ins, &y);
    memcpy(cfx_graph_tensor(g, ins[0])->data, (float[]){1, 2, 1, 0, 3, -1, 0.01f, 0, 0.05f, 0},
           10 * sizeof(float));
    memcpy(cfx_graph_tensor(g, ins[1])->data, (float[]){2, 4, 0, 5, -6, 2, 1, 0, 0.05f, 0},
           10 * sizeof(float));
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, y)->data, ((float[]){1, 0, -1, 0.1f, 0.25f}), 5, 1e-6,
                     1e-7);
    /* The clamped norm is a constant: d/da of the last row is b / (eps |b|) = (10, 0). */
    CHECK_OK(cfx_graph_backward(g, y, NULL));
    CHECK_NEAR(cfx_graph_grad(g, ins[0])[6], 10, 1e-4);
    CHECK_NEAR(cfx_graph_grad(g, ins[0])[7], 0, 1e-6);
    cfx_graph_free(g);
    /* Gradient check with some vectors inside the clamp (their norms stay below eps). */
    g = cos_graph(2, (int64_t[]){3, 4}, 1, 0.5f, ins, &y);
    fill(g, ins[0], 5, -0.05f, 0.05f);
    CHECK_GRADS(g, y, &(gradcheck_opts){.eps = 1e-4});
    cfx_graph_free(g);
}

/* x of the given shape normalised along axis. */
static cfx_graph *normalize_graph(int ndim, const int64_t *shape, int axis, float eps, int *x,
                                  int *y) {
    cfx_graph *g = cfx_graph_new();
    *x = grad_input(g, "x", ndim, shape);
    *y = cfx_op_normalize(g, *x, axis, eps);
    CHECK(*y >= 0);
    CHECK_OK(cfx_graph_compile(g));
    fill(g, *x, 8, -1, 1);
    return g;
}

CFX_TEST(loss, normalize_gradients_values_and_zero_vectors) {
    int x, y;
    int axes[] = {0, 1, -1};
    for (int a = 0; a < 3; a++) {
        cfx_graph *g = normalize_graph(3, (int64_t[]){3, 4, 5}, axes[a], 0, &x, &y);
        CHECK_INT_EQ(cfx_graph_tensor(g, y)->numel, 60);
        if (CHECK_GRADS(g, y, NULL)) printf("  (normalize axis %d)\n", axes[a]);
        cfx_graph_free(g);
    }
    /* Values: (3, 4) / (5 + eps); a zero vector stays 0 and its gradient is g / eps (the
     * limit), where sqrt's would be NaN; eps large enough to see. */
    cfx_graph *g = normalize_graph(2, (int64_t[]){2, 2}, 1, 0.5f, &x, &y);
    memcpy(cfx_graph_tensor(g, x)->data, (float[]){3, 4, 0, 0}, 4 * sizeof(float));
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, y)->data, ((float[]){3 / 5.5f, 4 / 5.5f, 0, 0}), 4, 1e-6,
                     0);
    CHECK_OK(cfx_graph_backward(g, y, (float[]){1, 0, 2, -1}));
    const float *dx = cfx_graph_grad(g, x);
    /* Row 0: dx = g / s - x (x . g) / (r s^2) with r = 5, s = 5.5, g = (1, 0). */
    CHECK_NEAR(dx[0], 1 / 5.5 - 3 * 3 / (5 * 5.5 * 5.5), 1e-6);
    CHECK_NEAR(dx[1], -4 * 3 / (5 * 5.5 * 5.5), 1e-6);
    CHECK_NEAR(dx[2], 2 / 0.5, 1e-6);
    CHECK_NEAR(dx[3], -1 / 0.5, 1e-6);
    cfx_graph_free(g);
    /* The default eps is LPIPS's 1e-10: a zero vector's gradient is g * 1e10. */
    g = normalize_graph(2, (int64_t[]){1, 3}, 1, 0, &x, &y);
    memset(cfx_graph_tensor(g, x)->data, 0, 3 * sizeof(float));
    CHECK_OK(cfx_graph_forward(g));
    CHECK_OK(cfx_graph_backward(g, y, (float[]){1, 2, 3}));
    CHECK_NEAR(cfx_graph_grad(g, x)[1] / 2e10, 1, 1e-6);
    cfx_graph_free(g);
    /* Bad axis and eps. */
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 2, (int64_t[]){2, 3});
    CHECK(cfx_op_normalize(g, x, 2, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "axis 2"), "%s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 2, (int64_t[]){2, 3});
    CHECK(cfx_op_normalize(g, x, 1, -1) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "eps"), "%s", cfx_last_error());
    cfx_graph_free(g);
}

typedef struct {
    cfx_graph *g;
    int ins[2], y;
} case_graph;

static case_graph loss_graph(cfx_loss_kind kind, cfx_reduction red) {
    case_graph c;
    c.g = cfx_graph_new();
    int64_t s[3] = {3, 2, 4};
    c.ins[0] = grad_input(c.g, "a", 3, s);
    c.ins[1] = grad_input(c.g, "b", 3, s);
    c.y = cfx_op_loss(c.g, c.ins[0], c.ins[1], kind, red);
    CHECK(c.y >= 0);
    CHECK_OK(cfx_graph_compile(c.g));
    fill(c.g, c.ins[0], 3, -1, 1);
    fill(c.g, c.ins[1], 4, -1, 1);
    return c;
}

CFX_TEST(loss, pairwise_losses_gradients_every_reduction) {
    const char *kinds[] = {"L1", "MSE", "L2"}, *reds[] = {"mean", "sum", "none"};
    for (int k = 0; k < 3; k++)
        for (int r = 0; r < 3; r++) {
            case_graph c = loss_graph((cfx_loss_kind)k, (cfx_reduction)r);
            CHECK_INT_EQ(cfx_graph_tensor(c.g, c.y)->ndim, r == CFX_REDUCTION_NONE ? 1 : 0);
            if (CHECK_GRADS(c.g, c.y, NULL))
                printf("  (loss %s, reduction %s)\n", kinds[k], reds[r]);
            cfx_graph_free(c.g);
        }
}

CFX_TEST(loss, pairwise_loss_values) {
    cfx_graph *g = cfx_graph_new();
    int a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 2});
    int b = cfx_graph_input(g, "b", 2, (int64_t[]){2, 2});
    int l1 = cfx_op_loss(g, a, b, CFX_LOSS_L1, CFX_REDUCTION_NONE);
    int mse = cfx_op_loss(g, a, b, CFX_LOSS_MSE, CFX_REDUCTION_MEAN);
    int l2 = cfx_op_loss(g, a, b, CFX_LOSS_L2, CFX_REDUCTION_SUM);
    CHECK_OK(cfx_graph_compile(g));
    /* Differences (3, -4) and (1, 0). */
    memcpy(cfx_graph_tensor(g, a)->data, (float[]){3, 0, 2, 5}, 4 * sizeof(float));
    memcpy(cfx_graph_tensor(g, b)->data, (float[]){0, 4, 1, 5}, 4 * sizeof(float));
    CHECK_OK(cfx_graph_forward(g));
    CHECK_ARRAY_NEAR(cfx_graph_tensor(g, l1)->data, ((float[]){3.5f, 0.5f}), 2, 1e-7, 0);
    CHECK_NEAR(cfx_graph_tensor(g, mse)->data[0], (12.5 + 0.5) / 2, 1e-6);
    CHECK_NEAR(cfx_graph_tensor(g, l2)->data[0], 5 + 1, 1e-6);
    cfx_graph_free(g);
}

/* logits (4,5) with hard (4) or soft (4,5) targets. */
static case_graph ce_graph(bool soft, cfx_reduction red) {
    case_graph c;
    c.g = cfx_graph_new();
    c.ins[0] = grad_input(c.g, "logits", 2, (int64_t[]){4, 5});
    if (soft) {
        c.ins[1] = grad_input(c.g, "target", 2, (int64_t[]){4, 5});
    } else {
        c.ins[1] = cfx_graph_input(c.g, "target", 1, (int64_t[]){4});
    }
    c.y = cfx_op_cross_entropy(c.g, c.ins[0], c.ins[1], red);
    CHECK(c.y >= 0);
    CHECK_OK(cfx_graph_compile(c.g));
    fill(c.g, c.ins[0], 6, -3, 3);
    float *t = cfx_graph_tensor(c.g, c.ins[1])->data;
    if (soft) {
        /* Rows of positive weights normalised to 1. */
        fill(c.g, c.ins[1], 7, 0.1f, 1);
        for (int i = 0; i < 4; i++) {
            float s = 0;
            for (int k = 0; k < 5; k++) s += t[i * 5 + k];
            for (int k = 0; k < 5; k++) t[i * 5 + k] /= s;
        }
    } else {
        memcpy(t, (float[]){2, 0, 4, 2}, 4 * sizeof(float));
    }
    return c;
}

CFX_TEST(loss, cross_entropy_gradients_hard_and_soft) {
    const char *reds[] = {"mean", "sum", "none"};
    for (int soft = 0; soft < 2; soft++)
        for (int r = 0; r < 3; r++) {
            case_graph c = ce_graph(soft, (cfx_reduction)r);
            if (CHECK_GRADS(c.g, c.y, NULL))
                printf("  (cross-entropy %s, reduction %s)\n", soft ? "soft" : "hard", reds[r]);
            cfx_graph_free(c.g);
        }
}

/* One-hot soft targets give the hard loss; huge logits stay finite. */
CFX_TEST(loss, cross_entropy_values) {
    case_graph h = ce_graph(false, CFX_REDUCTION_NONE), s = ce_graph(true, CFX_REDUCTION_NONE);
    float *zh = cfx_graph_tensor(h.g, h.ins[0])->data, *zs = cfx_graph_tensor(s.g, s.ins[0])->data;
    float *ts = cfx_graph_tensor(s.g, s.ins[1])->data;
    const float *th = cfx_graph_tensor(h.g, h.ins[1])->data;
    zh[0] = 500, zh[1] = -500; /* row 0: target 2 */
    memcpy(zs, zh, 20 * sizeof(float));
    memset(ts, 0, 20 * sizeof(float));
    for (int i = 0; i < 4; i++) ts[i * 5 + (int)th[i]] = 1;
    CHECK_OK(cfx_graph_forward(h.g));
    CHECK_OK(cfx_graph_forward(s.g));
    const float *lh = cfx_graph_tensor(h.g, h.y)->data;
    CHECK_ARRAY_NEAR(lh, cfx_graph_tensor(s.g, s.y)->data, 4, 1e-6, 1e-6);
    CHECK_NEAR(lh[0], 500 - zh[2], 1e-3);
    for (int i = 1; i < 4; i++) {
        double sum = 0;
        for (int k = 0; k < 5; k++) sum += exp(zh[i * 5 + k]);
        CHECK_NEAR(lh[i], log(sum) - zh[i * 5 + (int)th[i]], 1e-5);
    }
    cfx_graph_free(h.g);
    cfx_graph_free(s.g);
}

/* A label that is not an integer class in [0, C) makes that sample's loss (and the mean) NaN. */
CFX_TEST(loss, cross_entropy_bad_labels_give_nan) {
    float bad[] = {5, -1, 1.5f, NAN};
    for (int b = 0; b < 4; b++) {
        case_graph c = ce_graph(false, CFX_REDUCTION_NONE);
        cfx_graph_tensor(c.g, c.ins[1])->data[1] = bad[b];
        CHECK_OK(cfx_graph_forward(c.g));
        const float *l = cfx_graph_tensor(c.g, c.y)->data;
        CHECK_MSG(isnan(l[1]) && isfinite(l[0]) && isfinite(l[2]), "label %g: losses %g %g %g",
                  bad[b], l[0], l[1], l[2]);
        CHECK_OK(cfx_graph_backward(c.g, c.y, NULL));
        CHECK(isnan(cfx_graph_grad(c.g, c.ins[0])[5]) &&
              isfinite(cfx_graph_grad(c.g, c.ins[0])[0]));
        cfx_graph_free(c.g);
    }
    case_graph c = ce_graph(false, CFX_REDUCTION_MEAN);
    cfx_graph_tensor(c.g, c.ins[1])->data[3] = 5;
    CHECK_OK(cfx_graph_forward(c.g));
    CHECK(isnan(cfx_graph_tensor(c.g, c.y)->data[0]));
    cfx_graph_free(c.g);
}

CFX_TEST(loss, values_and_gradients_match_torch) {
    oracle o = {0};
    for (int soft = 0; soft < 2; soft++)
        for (int r = 0; r < 3; r++) {
            const char *reds[] = {"mean", "sum", "none"};
            case_graph c = ce_graph(soft, (cfx_reduction)r);
            char attrs[32];
            snprintf(attrs, sizeof attrs, "%s %s", reds[r], soft ? "soft" : "hard");
            ORACLE_ADD(&o, "cross_entropy", attrs, c.g, c.y, c.ins, 2, NULL);
            cfx_graph_free(c.g);
        }
    int ins[2], y;
    cfx_graph *g = cos_graph(2, (int64_t[]){4, 6}, 1, 0, ins, &y);
    ORACLE_ADD(&o, "cosine", "1 1e-8", g, y, ins, 2, NULL);
    cfx_graph_free(g);
    g = cos_graph(3, (int64_t[]){3, 4, 5}, 0, 0, ins, &y);
    ORACLE_ADD(&o, "cosine", "0 1e-8", g, y, ins, 2, NULL);
    cfx_graph_free(g);
    /* normalize along channels of an image batch, one position's vector all zeros */
    int x;
    g = normalize_graph(4, (int64_t[]){2, 5, 3, 4}, 1, 0, &x, &y);
    for (int c = 0; c < 5; c++) cfx_graph_tensor(g, x)->data[c * 12 + 7] = 0;
    ORACLE_ADD(&o, "normalize", "1 1e-10", g, y, &x, 1, NULL);
    cfx_graph_free(g);
    g = normalize_graph(3, (int64_t[]){4, 3, 2}, -1, 0.1f, &x, &y);
    ORACLE_ADD(&o, "normalize", "-1 0.1", g, y, &x, 1, NULL);
    cfx_graph_free(g);
    ORACLE_RUN(&o);
}

CFX_TEST(loss, shape_and_attribute_errors) {
    cfx_graph *g = cfx_graph_new();
    int a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 3});
    int b = cfx_graph_input(g, "b", 2, (int64_t[]){3, 2});
    CHECK(cfx_op_cosine_similarity(g, a, b, 1, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "(2, 3) and (3, 2)"), "%s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 3});
    CHECK(cfx_op_cosine_similarity(g, a, a, 2, 0) < 0);
    CHECK_MSG(strstr(cfx_last_error(), "axis 2"), "%s", cfx_last_error());
    cfx_graph_free(g);
    g = cfx_graph_new();
    a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 3});
    b = cfx_graph_input(g, "b", 2, (int64_t[]){2, 4});
    CHECK(cfx_op_loss(g, a, b, CFX_LOSS_MSE, CFX_REDUCTION_MEAN) < 0);
    cfx_graph_free(g);
    g = cfx_graph_new();
    a = cfx_graph_input(g, "a", 2, (int64_t[]){2, 3});
    CHECK(cfx_op_loss(g, a, a, (cfx_loss_kind)9, CFX_REDUCTION_MEAN) < 0);
    CHECK(cfx_op_loss(g, a, a, CFX_LOSS_L1, (cfx_reduction)9) < 0);
    cfx_graph_free(g);
    struct {
        int nz, nt;
        int64_t z[3], t[2];
        const char *msg;
    } bad[] = {{2, 1, {4, 5}, {5}, "class indices (N) or probabilities (N,C)"},
               {2, 2, {4, 5}, {4, 4}, "targets (4, 4)"},
               {3, 1, {4, 5, 2}, {4}, "must be (N,C)"}};
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        g = cfx_graph_new();
        a = cfx_graph_input(g, "z", bad[c].nz, bad[c].z);
        b = cfx_graph_input(g, "t", bad[c].nt, bad[c].t);
        CHECK(cfx_op_cross_entropy(g, a, b, CFX_REDUCTION_MEAN) < 0);
        CHECK_MSG(strstr(cfx_last_error(), bad[c].msg), "case %zu: %s", c, cfx_last_error());
        CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
        cfx_graph_free(g);
    }
}
