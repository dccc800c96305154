/* test_train.c - layer initialisation, the reference architectures, and training: it learns,
 * it is deterministic, resuming from a checkpoint gives the same bytes, bad input is refused. */
#include "learn/checkpoint.h"
#include "learn/trainer.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

CFX_TEST(train, layer_init_follows_pytorch_bounds) {
    cfx_graph *g = cfx_graph_new();
    cfx_rng r;
    cfx_rng_init(&r, 1);
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 16, 8, 8});
    int y = cfx_layer_conv2d(g, x, "c", 32, 3, 1, 1, &r);
    CHECK(y >= 0);
    const cfx_tensor *w = cfx_graph_tensor(g, cfx_graph_find(g, "c.weight"));
    double bound = 1.0 / sqrt(16.0 * 9), s2 = 0, mx = 0;
    for (int64_t i = 0; i < w->numel; i++) {
        s2 += (double)w->data[i] * w->data[i];
        mx = fmax(mx, fabs(w->data[i]));
    }
    CHECK(mx <= bound);
    CHECK(mx > 0.95 * bound);
    /* Uniform in +-b has standard deviation b / sqrt(3). */
    CHECK_NEAR(sqrt(s2 / (double)w->numel), bound / sqrt(3.0), 0.05 * bound);
    int t = cfx_layer_conv_transpose2d(g, y, "t", 4, 3, 2, 1, 1, &r);
    CHECK_INT_EQ(cfx_graph_tensor(g, t)->shape[2], 16);
    CHECK(cfx_layer_linear(g, x, "l", 3, &r) < 0); /* a 4-d input is refused by name */
    CHECK(strstr(cfx_last_error(), "l: expects a 2-d input") != NULL);
    cfx_graph_free(g);
}

CFX_TEST(train, reference_architectures_fit_the_image_size) {
    int64_t sizes[][3] = {{1, 28, 28}, {3, 32, 32}, {3, 64, 64}};
    for (int k = 0; k < 3; k++) {
        cfx_rng r;
        cfx_rng_init(&r, 2);
        cfx_graph *g = cfx_graph_new();
        int x = cfx_graph_input(g, "x", 4, (int64_t[]){2, sizes[k][0], sizes[k][1], sizes[k][2]});
        cfx_classifier_ids c;
        CHECK_OK(cfx_model_classifier(g, x, 7, &r, &c));
        CHECK_INT_EQ(cfx_graph_tensor(g, c.probs)->shape[1], 7);
        CHECK_INT_EQ(cfx_graph_tensor(g, c.features)->shape[1], 256);
        cfx_autoencoder_ids a;
        CHECK_OK(cfx_model_autoencoder(g, x, 256, &r, &a));
        CHECK(cfx_tensor_same_shape(cfx_graph_tensor(g, x), cfx_graph_tensor(g, a.reconstruction)));
        CHECK_INT_EQ(cfx_graph_tensor(g, a.latent)->shape[1], 256);
        CHECK_OK(cfx_graph_compile(g));
        cfx_graph_free(g);
    }
}

/* Two classes a classifier must look at: a bright square in the top-left or bottom-right
 * corner, over noise. */
static cfx_tensor *toy_images(int64_t n, float *labels, uint64_t seed) {
    cfx_tensor *t = cfx_tensor_new(4, (int64_t[]){n, 1, 28, 28});
    cfx_rng r;
    cfx_rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % 2);
        labels[i] = (float)c;
        float *im = t->data + i * 784;
        for (int p = 0; p < 784; p++) im[p] = 0.3f * (float)cfx_rng_uniform(&r);
        int oy = c ? 16 : 2, ox = c ? 16 : 2;
        oy += (int)cfx_rng_below(&r, 6), ox += (int)cfx_rng_below(&r, 6);
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 6; x++) im[(oy + y) * 28 + ox + x] = 1.0f;
    }
    return t;
}

static cfx_status train_toy(const cfx_tensor *im, const float *labels, int epochs, int stop_after,
                            const char *ckpt, int resume, float *params_out, double *acc) {
    cfx_rng r;
    cfx_rng_init(&r, 3);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    cfx_classifier_ids c;
    cfx_status s = cfx_model_classifier(g, x, 2, &r, &c);
    cfx_train_result res;
    if (s == CFX_OK)
        s = cfx_train_classifier(g, x, c.probs, im, labels,
                                 &(cfx_train_options){.epochs = epochs,
                                                      .stop_after = stop_after,
                                                      .batch = 32,
                                                      .seed = 9,
                                                      .checkpoint = ckpt,
                                                      .resume = resume},
                                 &res);
    if (s == CFX_OK) {
        size_t n;
        const float *p = cfx_graph_params(g, &n);
        memcpy(params_out, p, n * sizeof(float));
        s = cfx_eval_classifier(g, x, c.probs, im, labels, 2, 100, NULL, acc);
    }
    cfx_graph_free(g);
    return s;
}

CFX_TEST(train, classifier_learns_deterministically_and_resumes) {
    float labels[256];
    cfx_tensor *im = toy_images(256, labels, 4);
    size_t np = 1024 * 512 + 512 + 512 * 512 + 512 + 512 * 256 + 256 + 256 * 256 + 256 + 256 * 2 +
                2 + 32 * 25 + 32 + 64 * 32 * 9 + 64 + 64 * 64 * 9 + 64;
    float *a = malloc(np * 4), *b = malloc(np * 4), *c = malloc(np * 4);
    double acc_a, acc_b, acc_c;
    CHECK_OK(train_toy(im, labels, 3, 0, NULL, 0, a, &acc_a));
    CHECK_MSG(acc_a > 0.95, "accuracy after 3 epochs: %.3f", acc_a);
    CHECK_OK(train_toy(im, labels, 3, 0, NULL, 0, b, &acc_b));
    CHECK(memcmp(a, b, np * 4) == 0);
    /* Interrupted after one epoch (with a checkpoint), then resumed: the same bytes as straight
     * through, learning-rate schedule included. */
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.bin", cfx_test_tmpdir());
    CHECK_OK(train_toy(im, labels, 3, 1, ckpt, 0, c, &acc_c));
    CHECK(memcmp(a, c, np * 4) != 0); /* one epoch is not three */
    CHECK_OK(train_toy(im, labels, 3, 0, ckpt, 1, c, &acc_c));
    CHECK(memcmp(a, c, np * 4) == 0);
    CHECK_NEAR(acc_c, acc_a, 0);
    free(a), free(b), free(c);
    cfx_tensor_free(im);
}

CFX_TEST(train, autoencoder_loss_falls) {
    float labels[128];
    cfx_tensor *im = toy_images(128, labels, 5);
    cfx_rng r;
    cfx_rng_init(&r, 6);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    cfx_autoencoder_ids a;
    CHECK_OK(cfx_model_autoencoder(g, x, 32, &r, &a));
    cfx_train_result r1, r2;
    CHECK_OK(cfx_train_autoencoder(g, x, a.reconstruction, im,
                                   &(cfx_train_options){.epochs = 1, .batch = 16}, &r1));
    double before;
    CHECK_OK(cfx_eval_autoencoder(g, x, a.reconstruction, im, 50, &before));
    cfx_graph_free(g);
    g = cfx_graph_new();
    cfx_rng_init(&r, 6);
    x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    CHECK_OK(cfx_model_autoencoder(g, x, 32, &r, &a));
    CHECK_OK(cfx_train_autoencoder(g, x, a.reconstruction, im,
                                   &(cfx_train_options){.epochs = 6, .batch = 16}, &r2));
    double after;
    CHECK_OK(cfx_eval_autoencoder(g, x, a.reconstruction, im, 50, &after));
    CHECK_MSG(after < 0.8 * before, "reconstruction error %.5f after 6 epochs vs %.5f after 1",
              after, before);
    CHECK(r2.loss < r1.loss);
    cfx_graph_free(g);
    cfx_tensor_free(im);
}

CFX_TEST(train, bad_input_is_refused) {
    float labels[64];
    cfx_tensor *im = toy_images(64, labels, 7);
    labels[5] = 2; /* not a class of a 2-class model */
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    cfx_classifier_ids c;
    CHECK_OK(cfx_model_classifier(g, x, 2, &r, &c));
    cfx_train_result res;
    CHECK_ERR(cfx_train_classifier(g, x, c.logits, im, labels, NULL, &res), CFX_EINVAL);
    CHECK(strstr(cfx_last_error(), "label 5") != NULL);
    cfx_graph_free(g);
    /* Wrong image size for the model. */
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 3, 32, 32});
    CHECK_OK(cfx_model_classifier(g, x, 2, &r, &c));
    labels[5] = 1;
    CHECK_ERR(cfx_train_classifier(g, x, c.logits, im, labels, NULL, &res), CFX_ESHAPE);
    CHECK(strstr(cfx_last_error(), "do not fit") != NULL);
    cfx_graph_free(g);
    /* A checkpoint of the first format, which did not record the run's settings. */
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/other.bin", cfx_test_tmpdir());
    FILE *f = fopen(ckpt, "wb");
    fwrite("CFXCKPT1\1\0\0\0\5\0\0\0\0\0\0\0\3\0\0\0\0\0\0\0", 1, 28, f);
    fclose(f);
    g = cfx_graph_new();
    x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    CHECK_OK(cfx_model_classifier(g, x, 2, &r, &c));
    CHECK_ERR(cfx_train_classifier(
                  g, x, c.logits, im, labels,
                  &(cfx_train_options){.epochs = 1, .checkpoint = ckpt, .resume = 1}, &res),
              CFX_EFORMAT);
    CHECK(strstr(cfx_last_error(), "older cfx") != NULL);
    cfx_graph_free(g);
    cfx_tensor_free(im);
}

/* A trainer for the reference classifier (2 classes) on 1x28x28 images at batch 16, at most
 * max_lanes lanes; the same initial parameters for the same seed. */
static cfx_trainer *toy_trainer(cfx_graph **g, int max_lanes, uint64_t seed) {
    cfx_rng r;
    cfx_rng_init(&r, seed);
    *g = cfx_graph_new();
    int x = cfx_graph_input(*g, "x", 4, (int64_t[]){1, 1, 28, 28});
    cfx_classifier_ids c;
    if (cfx_model_classifier(*g, x, 2, &r, &c) != CFX_OK) return NULL;
    cfx__trainer_max_lanes(max_lanes);
    cfx_trainer *t = cfx_trainer_classifier(*g, x, c.probs, 16, 1e-3f);
    cfx__trainer_max_lanes(-1);
    return t;
}

/* On two threads the batch is split into two lanes, each a copy of the graph on one thread. The
 * oracle is the same step on one graph: loss and gradient agree to rounding (the lanes sum in
 * another order); training twice gives the same bytes; a NaN in the second lane's slice stops
 * the step with that thread's message, parameters untouched. */
CFX_TEST(train, lanes_match_the_whole_batch) {
    float labels[64];
    cfx_tensor *im = toy_images(64, labels, 11);
    int64_t rows[16];
    for (int i = 0; i < 16; i++) rows[i] = (i * 7) % 64;
    cfx_set_threads(2);
    cfx_graph *ga, *gb;
    cfx_trainer *a = toy_trainer(&ga, -1, 5), *b = toy_trainer(&gb, 1, 5);
    CHECK(a && b);
    CHECK_INT_EQ(cfx_trainer_lanes(a), 2);
    CHECK_INT_EQ(cfx_trainer_lanes(b), 1);
    size_t np = cfx_graph_num_params(ga);
    float *da = malloc(np * 4), *db = malloc(np * 4);
    double la, lb;
    CHECK_OK(cfx__trainer_gradient(a, im, labels, rows, &la, da));
    CHECK_OK(cfx__trainer_gradient(b, im, labels, rows, &lb, db));
    CHECK_NEAR(la, lb, 1e-6 * fabs(lb));
    double num = 0, den = 0, worst = 0;
    for (size_t i = 0; i < np; i++) {
        double d = (double)da[i] - db[i];
        num += d * d, den += (double)db[i] * db[i];
        worst = fmax(worst, fabs(d));
    }
    CHECK_MSG(sqrt(num / den) < 1e-5, "gradients differ: relative %.3g, worst element %.3g",
              sqrt(num / den), worst);
    CHECK(den > 0);
    /* Steps are deterministic on lanes. */
    cfx_graph *gc;
    cfx_trainer *c = toy_trainer(&gc, -1, 5);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 16; i++) rows[i] = (i * 5 + 16 * k) % 64;
        int64_t ra, rc;
        CHECK_OK(cfx_trainer_step(a, im, labels, rows, &la, &ra));
        CHECK_OK(cfx_trainer_step(c, im, labels, rows, &lb, &rc));
        CHECK(la == lb && ra == rc);
    }
    CHECK(memcmp(cfx_graph_params(ga, NULL), cfx_graph_params(gc, NULL), np * 4) == 0);
    /* A NaN in row 9, which the second lane (rows 8..15) trains on. */
    memcpy(da, cfx_graph_params(ga, NULL), np * 4);
    im->data[rows[9] * 784 + 100] = NAN;
    CHECK_ERR(cfx_trainer_step(a, im, labels, rows, NULL, NULL), CFX_ENUMERIC);
    /* The loss or (when a ReLU made the NaN 0) the gradient, from the second lane's thread. */
    CHECK_MSG(strstr(cfx_last_error(), "nan") && strstr(cfx_last_error(), "check the"), "%s",
              cfx_last_error());
    CHECK(memcmp(da, cfx_graph_params(ga, NULL), np * 4) == 0);
    rows[3] = 64;
    CHECK_ERR(cfx_trainer_step(a, im, labels, rows, NULL, NULL), CFX_EINVAL);
    CHECK(strstr(cfx_last_error(), "row 64") != NULL);
    cfx_trainer_free(a), cfx_trainer_free(b), cfx_trainer_free(c);
    cfx_graph_free(ga), cfx_graph_free(gb), cfx_graph_free(gc);
    free(da), free(db);
    cfx_tensor_free(im);
    cfx_set_threads(1);
}

/* A 3-class classifier on 1x28x28 images for head_matches_the_whole_batch: kind 0 the reference
 * classifier (its 5 fully connected layers are the head, the convolutions the trunk); kind 1 an
 * MLP on the flattened image, one layer without a bias and two layers with no ReLU between
 * (the whole network is the head; nothing flows back into the lanes). */
static cfx_trainer *head_trainer(cfx_graph **g, int kind, int max_lanes, bool head) {
    cfx_rng r;
    cfx_rng_init(&r, 7);
    *g = cfx_graph_new();
    int x = cfx_graph_input(*g, "x", 4, (int64_t[]){1, 1, 28, 28}), out;
    if (kind == 0) {
        cfx_classifier_ids c;
        if (cfx_model_classifier(*g, x, 3, &r, &c) != CFX_OK) return NULL;
        out = c.logits;
    } else {
        int w = cfx_graph_param(*g, "w0", 2, (int64_t[]){32, 784});
        cfx_tensor_fill_normal(cfx_graph_tensor(*g, w), &r, 0.0f, 0.05f);
        int h = cfx_op_relu(*g, cfx_op_linear(*g, cfx_op_flatten(*g, x, 1), w, -1));
        h = cfx_layer_linear(*g, h, "fc1", 16, &r);
        out = cfx_layer_linear(*g, h, "fc2", 3, &r);
    }
    cfx__trainer_max_lanes(max_lanes);
    cfx__trainer_use_head(head);
    cfx_trainer *t = cfx_trainer_classifier(*g, x, out, 16, 1e-3f);
    cfx__trainer_max_lanes(-1);
    cfx__trainer_use_head(true);
    return t;
}

/* On several threads a classifier's fully connected head runs on the whole batch, each thread
 * owning rows of every layer (cfx_trainer's step_head). The oracle is the same step on one graph:
 * the loss and gradient agree to rounding, and three Adam steps move the parameters the same
 * way to rounding; the head's steps are deterministic. On 2 and 3 threads (3: three lanes summed,
 * rows split three ways), for both kinds of head, and with the head turned off (plain lanes). */
CFX_TEST(train, head_matches_the_whole_batch) {
    float labels[64];
    cfx_tensor *im = toy_images(64, labels, 12);
    for (int i = 0; i < 64; i++) labels[i] = (float)(i % 3 == 2 ? 2 : (int)labels[i]);
    int64_t rows[16];
    for (int kind = 0; kind < 2; kind++)
        for (int threads = 2; threads <= 3; threads++)
            for (int head = 1; head >= (kind == 0 ? 0 : 1); head--) {
                cfx_set_threads(threads);
                cfx_graph *ga, *gb, *gc;
                cfx_trainer *a = head_trainer(&ga, kind, -1, head),
                            *b = head_trainer(&gb, kind, 1, head),
                            *c = head_trainer(&gc, kind, -1, head);
                CHECK(a && b && c);
                CHECK_INT_EQ(cfx_trainer_lanes(a), threads);
                CHECK_INT_EQ(cfx__trainer_head_layers(a), head ? (kind == 0 ? 5 : 3) : 0);
                CHECK_INT_EQ(cfx__trainer_head_layers(b), 0);
                size_t np = cfx_graph_num_params(ga);
                float *da = malloc(np * 4), *db = malloc(np * 4);
                for (int i = 0; i < 16; i++) rows[i] = (i * 7 + 3) % 64;
                double la, lb;
                CHECK_OK(cfx__trainer_gradient(a, im, labels, rows, &la, da));
                CHECK_OK(cfx__trainer_gradient(b, im, labels, rows, &lb, db));
                CHECK_NEAR(la, lb, 1e-6 * fabs(lb));
                double num = 0, den = 0;
                for (size_t i = 0; i < np; i++) {
                    double d = (double)da[i] - db[i];
                    num += d * d, den += (double)db[i] * db[i];
                }
                CHECK_MSG(den > 0 && sqrt(num / den) < 1e-5,
                          "kind %d, %d threads, head %d: gradients differ by %.3g", kind, threads,
                          head, sqrt(num / den));
                memcpy(db, cfx_graph_params(gb, NULL), np * 4); /* the parameters before */
                for (int k = 0; k < 3; k++) {
                    for (int i = 0; i < 16; i++) rows[i] = (i * 5 + 16 * k) % 64;
                    int64_t ra, rb, rc;
                    double lc;
                    CHECK_OK(cfx_trainer_step(a, im, labels, rows, &la, &ra));
                    CHECK_OK(cfx_trainer_step(b, im, labels, rows, &lb, &rb));
                    CHECK_OK(cfx_trainer_step(c, im, labels, rows, &lc, &rc));
                    CHECK(ra == rb && ra == rc && la == lc);
                    CHECK_NEAR(la, lb, 1e-5 * fabs(lb));
                }
                /* Adam moves a parameter whose gradient is rounding noise by about lr either
                 * way, so the steps are compared as a whole: the difference against the size of
                 * the move. */
                const float *pa = cfx_graph_params(ga, NULL), *pb = cfx_graph_params(gb, NULL);
                num = den = 0;
                for (size_t i = 0; i < np; i++) {
                    double d = (double)pa[i] - pb[i], m = (double)pb[i] - db[i];
                    num += d * d, den += m * m;
                }
                CHECK_MSG(den > 0 && sqrt(num / den) < 1e-3,
                          "kind %d, %d threads, head %d: the steps differ by %.3g of their size",
                          kind, threads, head, sqrt(num / den));
                CHECK(memcmp(pa, cfx_graph_params(gc, NULL), np * 4) == 0);
                cfx_trainer_free(a), cfx_trainer_free(b), cfx_trainer_free(c);
                cfx_graph_free(ga), cfx_graph_free(gb), cfx_graph_free(gc);
                free(da), free(db);
            }
    cfx_tensor_free(im);
    cfx_set_threads(1);
}

/* A head whose weight gradient overflows while the loss stays finite (a pixel near FLT_MAX
 * under tiny first-layer weights, large later ones): the step fails with the error the one-graph
 * step gives, naming the same element, on 2 and 3 threads, and leaves the parameters as they
 * were. The head checks its gradient in chunks, made by whichever thread is free. */
CFX_TEST(train, head_gradient_overflow_names_the_element) {
    float labels[64];
    cfx_tensor *im = toy_images(64, labels, 12);
    for (int i = 0; i < 64; i++) labels[i] = (float)(i % 3 == 2 ? 2 : (int)labels[i]);
    int64_t rows[16];
    for (int i = 0; i < 16; i++) rows[i] = (i * 7 + 3) % 64;
    im->data[rows[5] * 784 + 300] = 3e38f;
    for (int threads = 2; threads <= 3; threads++) {
        cfx_set_threads(threads);
        cfx_graph *ga, *gb;
        cfx_trainer *a = head_trainer(&ga, 1, -1, true), *b = head_trainer(&gb, 1, 1, true);
        CHECK(a && b);
        CHECK_INT_EQ(cfx__trainer_head_layers(a), 3);
        for (int i = 0; i < 2; i++) {
            cfx_graph *g = i ? gb : ga;
            size_t np;
            float *p = cfx_graph_params(g, &np);
            for (size_t j = 0; j < 32 * 784; j++) p[j] *= 1e-30f; /* w0 comes first */
            for (size_t j = 32 * 784; j < np; j++) p[j] *= 1e3f;
        }
        size_t np = cfx_graph_num_params(ga);
        float *before = malloc(np * 4);
        memcpy(before, cfx_graph_params(ga, NULL), np * 4);
        CHECK_ERR(cfx_trainer_step(b, im, labels, rows, NULL, NULL), CFX_ENUMERIC);
        char want[256];
        snprintf(want, sizeof want, "%s", cfx_last_error());
        CHECK_MSG(strstr(want, "gradient element") && strstr(want, "inf"), "%s", want);
        CHECK_ERR(cfx_trainer_step(a, im, labels, rows, NULL, NULL), CFX_ENUMERIC);
        CHECK_MSG(strcmp(cfx_last_error(), want) == 0, "%d threads: '%s', one graph: '%s'", threads,
                  cfx_last_error(), want);
        CHECK(memcmp(before, cfx_graph_params(ga, NULL), np * 4) == 0);
        free(before);
        cfx_trainer_free(a), cfx_trainer_free(b);
        cfx_graph_free(ga), cfx_graph_free(gb);
    }
    cfx_tensor_free(im);
    cfx_set_threads(1);
}

/* Graphs whose ops mix the images of a batch train whole: batch statistics, a softmax over the
 * batch; too small a batch does too. */
CFX_TEST(train, graphs_that_mix_the_batch_train_whole) {
    cfx_set_threads(2);
    for (int k = 0; k < 4; k++) {
        cfx_graph *g = cfx_graph_new();
        int64_t B = k == 3 ? 3 : 8;
        int x = cfx_graph_input(g, "x", 2, (int64_t[]){B, 6});
        int w = cfx_graph_param(g, "w", 2, (int64_t[]){4, 6});
        int h = cfx_op_linear(g, x, w, -1);
        if (k == 0) {
            int ch[4];
            for (int i = 0; i < 4; i++)
                ch[i] = i < 2 ? cfx_graph_param(g, NULL, 1, (int64_t[]){4})
                              : cfx_graph_const(g, NULL, 1, (int64_t[]){4}, NULL);
            h = cfx_op_batch_norm(g, h, ch[0], ch[1], ch[2], ch[3], NULL);
        } else if (k == 1) {
            h = cfx_op_softmax(g, h, 0);
        }
        cfx_trainer *t = cfx_trainer_classifier(g, x, h, (int)B, 1e-3f);
        CHECK_MSG(t != NULL, "%s", cfx_last_error());
        CHECK_MSG(cfx_trainer_lanes(t) == (k == 2 ? 2 : 1), "case %d: %d lanes", k,
                  cfx_trainer_lanes(t));
        cfx_trainer_free(t);
        cfx_graph_free(g);
    }
    cfx_set_threads(1);
}

/* Issue 22: a classifier evaluated as an autoencoder read past the end of its (N, classes)
 * output as if it were a reconstruction of the (N,C,H,W) input, and reported "MSE -nan". */
CFX_TEST(train, eval_autoencoder_refuses_a_model_that_does_not_reconstruct) {
    float labels[8];
    cfx_tensor *im = toy_images(8, labels, 3);
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    cfx_classifier_ids c;
    CHECK_OK(cfx_model_classifier(g, x, 2, &r, &c));
    CHECK_OK(cfx_graph_compile(g));
    double mse = -1;
    CHECK_ERR(cfx_eval_autoencoder(g, x, c.probs, im, 4, &mse), CFX_ESHAPE);
    CHECK_MSG(strstr(cfx_last_error(), "(4, 2)") && strstr(cfx_last_error(), "(4, 1, 28, 28)"),
              "the message names neither shape: %s", cfx_last_error());
    CHECK_NEAR(mse, -1, 0); /* untouched */
    cfx_graph_free(g);
    cfx_tensor_free(im);
}

/* Trains the reference classifier for `classes` classes (seed 3) with the options o; the
 * status, and the result in *res. */
static cfx_status train_with_options(const cfx_tensor *im, const float *labels, int classes,
                                     const cfx_train_options *o, cfx_train_result *res) {
    cfx_rng r;
    cfx_rng_init(&r, 3);
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 28, 28});
    cfx_classifier_ids c;
    cfx_status s = cfx_model_classifier(g, x, classes, &r, &c);
    if (s == CFX_OK) s = cfx_train_classifier(g, x, c.probs, im, labels, o, res);
    cfx_graph_free(g);
    return s;
}

/* Overwrites 4 bytes of a file at offset at. */
static void patch_u32(const char *path, long at, uint32_t v) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, at, SEEK_SET);
    fwrite(&v, 4, 1, f);
    fclose(f);
}

/* Issue 22: a checkpoint's epoch count was trusted (0x80000000 ran about 2^31 epochs), and a
 * checkpoint did not record the run's settings, so --resume with another batch, learning rate,
 * seed, dataset or epoch count silently broke "the same bytes as an uninterrupted run". */
CFX_TEST(train, resume_refuses_a_corrupt_count_or_other_settings) {
    float labels[64];
    cfx_tensor *im = toy_images(64, labels, 11);
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", cfx_test_tmpdir());
    cfx_train_options o = {
        .epochs = 3, .stop_after = 1, .batch = 32, .seed = 9, .lr = 1e-3f, .checkpoint = ckpt};
    cfx_train_result res;
    CHECK_OK(train_with_options(im, labels, 2, &o, &res));
    o.stop_after = 1, o.resume = 1;
    /* The same settings resume (one more epoch, as asked). */
    o.stop_after = 2;
    CHECK_OK(train_with_options(im, labels, 2, &o, &res));
    CHECK_INT_EQ(res.resumed_from, 1);
    CHECK_INT_EQ(res.epochs_done, 2);
    /* A checkpoint that claims more epochs than the run has: corrupt. */
    patch_u32(ckpt, 8, 5);
    o.stop_after = 0;
    cfx_status s = train_with_options(im, labels, 2, &o, &res);
    CHECK_MSG(s == CFX_EFORMAT && strstr(cfx_last_error(), "corrupt") &&
                  strstr(cfx_last_error(), "run.ckpt"),
              "5 of 3 epochs: %s, %s (epochs done %d)", cfx_status_str(s), cfx_last_error(),
              res.epochs_done);
    if (s == CFX_EFORMAT) { /* (before the check this would run for about 2^31 epochs) */
        patch_u32(ckpt, 8, 0x80000000u);
        CHECK_ERR(train_with_options(im, labels, 2, &o, &res), CFX_EFORMAT);
    }
    patch_u32(ckpt, 8, 2);
    /* Each setting, changed on resuming, is refused by name. */
    struct {
        cfx_train_options o;
        int change_data;
        const char *want;
    } cases[] = {
        {o, 0, NULL},
        {o, 0, "batch 32, this run 16"},
        {o, 0, "learning rate 0.001, this run 0.002"},
        {o, 0, "seed 9, this run 10"},
        {o, 0, "epochs 3, this run 4"},
        {o, 0, "a decaying learning rate, this run a constant one"},
        {o, 1, "other training data"},
    };
    cases[1].o.batch = 16, cases[2].o.lr = 2e-3f, cases[3].o.seed = 10, cases[4].o.epochs = 4;
    cases[5].o.constant_lr = 1;
    for (size_t k = 1; k < sizeof cases / sizeof cases[0]; k++) {
        float keep = im->data[100];
        if (cases[k].change_data) im->data[100] = keep + 0.25f;
        s = train_with_options(im, labels, 2, &cases[k].o, &res);
        im->data[100] = keep;
        CHECK_MSG(s == CFX_EINVAL && strstr(cfx_last_error(), cases[k].want),
                  "wanted '%s', got %s: %s", cases[k].want, cfx_status_str(s), cfx_last_error());
    }
    /* Another model (3 classes, so more parameters), and a changed optimizer state count (the
     * message said "holds N parameters but this model has N"). */
    CHECK_ERR(train_with_options(im, labels, 3, &o, &res), CFX_EFORMAT);
    CHECK(strstr(cfx_last_error(), "parameters but this model has") != NULL);
    patch_u32(ckpt, 52, 7);
    CHECK_ERR(train_with_options(im, labels, 2, &o, &res), CFX_EFORMAT);
    CHECK_MSG(strstr(cfx_last_error(), "values of optimizer state") != NULL, "%s",
              cfx_last_error());
    cfx_tensor_free(im);
}

/* Found by fuzzing (fuzz/fuzz_checkpoint.c, tests/data/fuzz-regressions/checkpoint/): the
 * optimizer's step count is stored as a float and was converted to an integer unchecked (-4e34:
 * undefined behaviour), and NaN weights were restored as they came. Both are refused as corrupt,
 * naming the file; a valid checkpoint still restores its step count and weights. */
CFX_TEST(train, checkpoint_with_a_bad_step_count_or_nan_is_corrupt) {
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_graph *g = cfx_graph_new();
    int y = cfx_layer_linear(g, cfx_graph_input(g, "x", 2, (int64_t[]){1, 4}), "fc", 3, &r);
    CHECK_OK(cfx_graph_set_output(g, y, NULL));
    CHECK_OK(cfx_graph_compile(g));
    size_t np;
    float *p = cfx_graph_params(g, &np);
    cfx_optim *opt = cfx_optim_adam(np, NULL);
    float grad[15] = {0.5f};
    CHECK_INT_EQ(np, 15);
    for (int k = 0; k < 3; k++) CHECK_OK(cfx_optim_step(opt, p, grad));
    const float p0 = p[0];
    char path[600];
    snprintf(path, sizeof path, "%s/tiny.ckpt", cfx_test_tmpdir());
    const cfx__checkpoint_meta settings = {.epochs = 3, .batch = 8, .lr = 1e-3f, .seed = 5};
    cfx__checkpoint_meta m = settings;
    m.epoch = 1;
    CHECK_OK(cfx__checkpoint_write(path, g, opt, &m));
    /* The header is 60 bytes; then the parameters, then the state (step count first). */
    const long step_at = 60 + 4 * (long)np;
    const float bad[] = {-4.15384e34f, NAN, 2.5f, 1e30f, -1};
    for (int k = 0; k < 6; k++) {
        FILE *f = fopen(path, "r+b");
        float v = k < 5 ? bad[k] : 3;
        fseek(f, step_at, SEEK_SET);
        fwrite(&v, 4, 1, f);
        fclose(f);
        p[0] = 7, m = settings;
        cfx_status s = cfx__checkpoint_read(path, g, opt, &m);
        if (k < 5)
            CHECK_MSG(s == CFX_EFORMAT && strstr(cfx_last_error(), "step count") &&
                          strstr(cfx_last_error(), path),
                      "step count %g: %s, %s", (double)v, cfx_status_str(s), cfx_last_error());
        else
            CHECK_MSG(s == CFX_OK && p[0] == p0 && m.epoch == 1, "%s", cfx_last_error());
    }
    /* A NaN weight. */
    FILE *f = fopen(path, "r+b");
    float nan = NAN;
    fseek(f, 60 + 4 * 2, SEEK_SET);
    fwrite(&nan, 4, 1, f);
    fclose(f);
    m = settings;
    CHECK_ERR(cfx__checkpoint_read(path, g, opt, &m), CFX_EFORMAT);
    CHECK_MSG(strstr(cfx_last_error(), "parameter 2 is not finite"), "%s", cfx_last_error());
    cfx_optim_free(opt);
    cfx_graph_free(g);
}
