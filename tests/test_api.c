/* test_api.c - public functions given NULL or nonsense: an error with a message (or a NULL
 * result with one), never a crash. Void functions do nothing. */
#include "test.h"

/* A constructor that must fail: NULL with a message. */
#define CHECK_NULL_MSG(expr)                                                                       \
    do {                                                                                           \
        cfx_set_error(CFX_OK, "%s", "");                                                           \
        const void *p_ = (expr);                                                                   \
        CHECK_MSG(p_ == NULL, "%s did not fail", #expr);                                           \
        CHECK_MSG(cfx_last_error()[0] != '\0', "%s failed without a message", #expr);              \
    } while (0)

CFX_TEST(api, explain_null_arguments_are_errors_not_crashes) {
    double stats[CFX_STAT_COUNT];
    float map[4];
    CHECK_ERR(cfx_image_stats(NULL, 1, 3, 3, stats), CFX_EINVAL);
    CHECK_ERR(cfx_competency_map(NULL, NULL, NULL, 1, 2, 2, map), CFX_EINVAL);
    CHECK_NULL_MSG(cfx_competency_map_render(NULL, NULL, 1, 2, 2, 1));
    int region[4] = {-1, -1, -1, -1};
    cfx_competency_map_region(NULL, 2, 3, region);
    CHECK(region[0] == 0 && region[1] == 0 && region[2] == 3 && region[3] == 2);
    cfx_competency_map_region(map, 2, 2, NULL);
    CHECK_NULL_MSG(cfx_explainer_new(NULL, NULL, NULL, NULL));
    cfx_explainer_free(NULL);
    CHECK_INT_EQ(cfx_explainer_samples(NULL, CFX_CAUSE_NOISE), 0);
    cfx_explanation ex;
    CHECK_ERR(cfx_explain_image(NULL, NULL, NULL, -1, NULL, 0, 0, &ex), CFX_EINVAL);
    CHECK_STR_EQ(cfx_stat_name(CFX_STAT_COUNT), "?");
}

CFX_TEST(api, null_arguments_are_errors_not_crashes) {
    CHECK_NULL_MSG(cfx_tensor_new(2, NULL));
    CHECK_ERR(cfx_tensor_copy(NULL, NULL), CFX_EINVAL);
    cfx_tensor_free(NULL);
    cfx_tensor_fill(NULL, 1);
    cfx_tensor_fill_uniform(NULL, NULL, 0, 1);
    cfx_tensor_fill_normal(NULL, NULL, 0, 1);
    CHECK_INT_EQ(cfx_tensor_find_nonfinite(NULL), -1);
    CHECK_INT_EQ(cfx_tensor_same_shape(NULL, NULL), 0);

    CHECK_ERR(cfx_graph_compile(NULL), CFX_EINVAL);
    CHECK_ERR(cfx_graph_forward(NULL), CFX_EINVAL);
    CHECK_ERR(cfx_graph_backward(NULL, 0, NULL), CFX_EINVAL);
    CHECK_ERR(cfx_graph_set_batch(NULL, 1), CFX_EINVAL);
    CHECK_ERR(cfx_graph_requires_grad(NULL, 0, 1), CFX_EINVAL);
    CHECK_INT_EQ(cfx_graph_find(NULL, "x"), -1);
    CHECK(cfx_op_conv2d(NULL, 0, 1, -1, NULL) < 0);
    CHECK(cfx_op_normalize(NULL, 0, 1, 0) < 0);
    CHECK_NULL_MSG(cfx_distance_new(NULL, CFX_CF_DISTANCE_L2, NULL, 1));
    CHECK_ERR(cfx_distance_run(NULL, NULL, NULL, NULL), CFX_EINVAL);
    CHECK_STR_EQ(cfx_distance_label(NULL), "?");
    CHECK_STR_EQ(cfx_cf_distance_label(NULL), "?");
    cfx_distance_free(NULL);
    /* Builders on a real graph with NULL attributes or lists refuse them. */
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 4, 4});
    /* NULL convolution attributes are the defaults (stride 1, no padding). */
    int y = cfx_op_conv2d(g, x, x, -1, NULL);
    CHECK(y >= 0 && cfx_graph_tensor(g, y)->numel == 1);
    CHECK(cfx_op_gemm(g, x, x, -1, NULL) < 0);
    CHECK(cfx_op_max_pool2d(g, x, NULL) < 0);
    CHECK(cfx_op_resize(g, x, NULL) < 0);
    CHECK(cfx_op_concat(g, NULL, 2, 0) < 0);
    CHECK(cfx_op_reshape(g, x, 1, NULL) < 0);
    CHECK(cfx_op_transpose(g, x, NULL) < 0);
    CHECK(cfx_op_pad(g, x, NULL, CFX_PAD_CONSTANT, 0) < 0);
    CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
    cfx_graph_free(g);

    CHECK_ERR(cfx_model_classifier(NULL, 0, 2, NULL, NULL), CFX_ESHAPE);
    CHECK_ERR(cfx_train_classifier(NULL, 0, 1, NULL, NULL, NULL, NULL), CFX_EINVAL);
    CHECK_ERR(cfx_optim_step(NULL, NULL, NULL), CFX_EINVAL);
    cfx_optim_reset(NULL);
    cfx_optim_set_lr(NULL, 1);
    cfx_optim_free(NULL);

    CHECK_NULL_MSG(cfx_npy_read(NULL));
    CHECK_ERR(cfx_npy_write(NULL, NULL), CFX_EINVAL);
    CHECK_NULL_MSG(cfx_onnx_load(NULL, NULL));
    CHECK_NULL_MSG(cfx_onnx_info_load(NULL));
    CHECK_NULL_MSG(cfx_idx_read(NULL));
    CHECK_NULL_MSG(cfx_image_read(NULL, 0));
    CHECK_NULL_MSG(cfx_dataset_load(NULL, NULL));
    CHECK_NULL_MSG(cfx_imagefolder_load(NULL, 0, 0, 0));
    CHECK_NULL_MSG(cfx_wordnet_load("/nonexistent"));
    cfx_dataset_free(NULL);
    cfx_wordnet_free(NULL);
}
