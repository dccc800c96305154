/* test_scenes_clf.c - the conv-pool classifier (`cfx train classifier --arch conv-pool`): it
 * trains on a few scenes, exports to ONNX, and the exported model gives PyTorch's
 * probabilities (tests/py/scenes_clf_oracle.py runs it from its initializers with PyTorch's
 * conv2d, instance_norm, amax and linear) and cfx's own when imported again; and a run
 * stopped and resumed from its checkpoint ends with the uninterrupted run's bits. */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

CFX_TEST(scenes_clf, conv_pool_trains_exports_and_matches_torch) {
    char tmp[600], dir[700], path[800];
    snprintf(tmp, sizeof tmp, "%s", cfx_test_tmpdir()); /* a new folder at every call */
    snprintf(dir, sizeof dir, "%s/scenes", tmp);
    cfx_scenes_options so = {.size = 32, .count = 200};
    if (cfx_data_prepare_scenes(&(cfx_data_options){.out = dir, .seed = 5}, &so) != CFX_OK) {
        cfx_test_skip("no scenes (Fashion-MNIST from dataset-fashion-mnist?): %s",
                      cfx_last_error());
        return;
    }
    cfx_dataset *train = cfx_dataset_load(dir, "train"), *test = cfx_dataset_load(dir, "test");
    CHECK_MSG(train && test, "%s", cfx_last_error());
    if (!train || !test) return;
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "input", 4, (int64_t[]){1, 3, 32, 32});
    cfx_rng r;
    cfx_rng_init(&r, 1);
    cfx_classifier_ids ids;
    CHECK_OK(cfx_model_classifier_conv_pool(g, x, 4, &r, &ids));
    /* 5 convolutions, 5 instance norms, the linear layer: the same count at any image size. */
    CHECK_INT_EQ((long long)cfx_graph_num_params(g), 280644);
    float *labels = malloc((size_t)train->n * sizeof *labels);
    for (int64_t i = 0; i < train->n; i++) labels[i] = (float)train->labels[i];
    cfx_train_result res;
    cfx_train_options o = {.epochs = 8, .batch = 20, .lr = 3e-3f, .seed = 2};
    CHECK_OK(cfx_train_classifier(g, x, ids.probs, train->images, labels, &o, &res));
    free(labels);
    /* Chance is ln 4 = 1.386 on the balanced classes. */
    CHECK_MSG(res.loss < 1.0, "training loss %.3f after %d epochs", res.loss, res.epochs_done);
    snprintf(path, sizeof path, "%s/model.onnx", tmp);
    CHECK_OK(cfx_onnx_save(g, path, &ids.probs, 1));
    /* cfx's probabilities of 16 test scenes, from the trained graph and from the file. */
    enum { N = 16 };
    int64_t per = 3 * 32 * 32;
    cfx_tensor *xs = cfx_tensor_new(4, (int64_t[]){N, 3, 32, 32});
    memcpy(xs->data, test->images->data, (size_t)(N * per) * sizeof(float));
    CHECK_OK(cfx_graph_set_batch(g, N));
    CHECK_OK(cfx_graph_replan(g));
    memcpy(cfx_graph_tensor(g, x)->data, xs->data, (size_t)(N * per) * sizeof(float));
    CHECK_OK(cfx_graph_forward(g));
    const float *mine = cfx_graph_tensor(g, ids.probs)->data;
    cfx_graph *h = cfx_onnx_load(path, &(cfx_onnx_options){.batch = N});
    CHECK_MSG(h != NULL, "%s", cfx_last_error());
    if (h) {
        int hx = cfx_graph_find(h, "input"), hy = cfx_graph_find(h, "probs");
        CHECK(hx >= 0 && hy >= 0);
        CHECK_OK(cfx_graph_compile(h));
        memcpy(cfx_graph_tensor(h, hx)->data, xs->data, (size_t)(N * per) * sizeof(float));
        CHECK_OK(cfx_graph_forward(h));
        CHECK_ARRAY_NEAR(cfx_graph_tensor(h, hy)->data, mine, N * 4, 1e-5, 1e-6);
    }
    snprintf(path, sizeof path, "%s/x.npy", tmp);
    CHECK_OK(cfx_npy_write(path, xs));
    int rc = cfx_test_python("scenes_clf_oracle.py", tmp);
    CHECK_MSG(rc == 0, "scenes_clf_oracle.py exited with %d", rc);
    snprintf(path, sizeof path, "%s/probs.npy", tmp);
    cfx_tensor *want = rc == 0 ? cfx_npy_read(path) : NULL;
    CHECK(rc != 0 || (want && want->numel == N * 4));
    if (want && want->numel == N * 4) CHECK_ARRAY_NEAR(mine, want->data, N * 4, 1e-4, 1e-5);
    /* For the record (140 training scenes are too few to ask for more than the loss). */
    int right = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int k = 1; k < 4; k++)
            if (mine[i * 4 + k] > mine[i * 4 + best]) best = k;
        right += best == test->labels[i];
    }
    printf("  conv-pool: training loss %.3f, %d of %d test scenes right\n", res.loss, right, N);
    cfx_tensor_free(want);
    cfx_tensor_free(xs);
    cfx_graph_free(h);
    cfx_graph_free(g);
    cfx_dataset_free(train);
    cfx_dataset_free(test);
}

/* Instance normalisation keeps no running statistics: everything conv-pool learns is in its
 * parameters, so a run stopped after an epoch and resumed from the checkpoint ends with the
 * uninterrupted run's bits. */
static cfx_graph *tiny_conv_pool(int *x, int *y) {
    cfx_graph *g = cfx_graph_new();
    *x = cfx_graph_input(g, "input", 4, (int64_t[]){1, 3, 16, 16});
    cfx_rng r;
    cfx_rng_init(&r, 3);
    cfx_classifier_ids ids;
    CHECK_OK(cfx_model_classifier_conv_pool(g, *x, 3, &r, &ids));
    *y = ids.probs;
    return g;
}

CFX_TEST(scenes_clf, conv_pool_resumes_to_the_same_bits) {
    enum { N = 24 };
    cfx_tensor *im = cfx_tensor_new(4, (int64_t[]){N, 3, 16, 16});
    cfx_rng r;
    cfx_rng_init(&r, 9);
    cfx_tensor_fill_uniform(im, &r, 0, 1);
    float labels[N];
    for (int i = 0; i < N; i++) labels[i] = (float)(i % 3);
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/cp.ckpt", cfx_test_tmpdir());
    cfx_train_options o = {.epochs = 2, .batch = 8, .lr = 3e-3f, .seed = 4};
    int x, y;
    cfx_train_result res;
    cfx_graph *a = tiny_conv_pool(&x, &y);
    CHECK_OK(cfx_train_classifier(a, x, y, im, labels, &o, &res));
    cfx_graph *b = tiny_conv_pool(&x, &y);
    o.checkpoint = ckpt;
    o.stop_after = 1;
    CHECK_OK(cfx_train_classifier(b, x, y, im, labels, &o, &res));
    CHECK_INT_EQ(res.epochs_done, 1);
    cfx_graph_free(b);
    b = tiny_conv_pool(&x, &y);
    o.stop_after = 0;
    o.resume = 1;
    CHECK_OK(cfx_train_classifier(b, x, y, im, labels, &o, &res));
    CHECK_INT_EQ(res.resumed_from, 1);
    size_t na, nb;
    const float *pa = cfx_graph_params(a, &na), *pb = cfx_graph_params(b, &nb);
    CHECK(na == nb && na == cfx_graph_num_params(a));
    CHECK_MSG(na == nb && memcmp(pa, pb, na * sizeof *pa) == 0,
              "resumed parameters differ from the uninterrupted run's");
    cfx_graph_free(a);
    cfx_graph_free(b);
    cfx_tensor_free(im);
}
