/* test_resize.c - Resize: nearest and bilinear in every coordinate and rounding mode, up and
 * down, by size and by scale: values and input gradients against PyTorch, values against the
 * ONNX package's Resize reference for modes PyTorch lacks (tests/py/resize_oracle.py), gradient
 * checks, and errors for bad attributes. */
#include "gradcheck.h"
#include "oracle_io.h"

#define N CFX_RESIZE_NEAREST
#define B CFX_RESIZE_BILINEAR

static const oracle_case cases[] = {
    {"nn_floor_up",
     {2, 2, 4, 5},
     "oracle=torch mode=nearest coord=asymmetric nearest=floor size=8,13",
     true},
    {"nn_floor_down",
     {1, 2, 9, 7},
     "oracle=torch mode=nearest coord=asymmetric nearest=floor size=4,3",
     true},
    {"nn_exact_up",
     {1, 2, 4, 5},
     "oracle=torch mode=nearest coord=half_pixel nearest=round_prefer_ceil size=7,11",
     true},
    {"nn_exact_down",
     {1, 2, 9, 8},
     "oracle=torch mode=nearest coord=half_pixel nearest=round_prefer_ceil size=4,3",
     true},
    {"nn_scale",
     {1, 2, 6, 6},
     "oracle=torch mode=nearest coord=asymmetric nearest=floor scale=0.5,2",
     true},
    {"bl_half_up",
     {2, 2, 5, 4},
     "oracle=torch mode=bilinear coord=half_pixel nearest=floor size=9,11",
     true},
    {"bl_half_down",
     {1, 2, 9, 8},
     "oracle=torch mode=bilinear coord=half_pixel nearest=floor size=4,3",
     true},
    {"bl_align_up",
     {1, 2, 4, 5},
     "oracle=torch mode=bilinear coord=align_corners nearest=floor size=7,9",
     true},
    {"bl_align_down",
     {1, 2, 9, 8},
     "oracle=torch mode=bilinear coord=align_corners nearest=floor size=4,3",
     true},
    {"bl_pthalf_up",
     {1, 2, 4, 5},
     "oracle=torch mode=bilinear coord=pytorch_half_pixel nearest=floor size=6,10",
     true},
    {"bl_scale",
     {1, 2, 5, 6},
     "oracle=torch mode=bilinear coord=half_pixel nearest=floor scale=2,1.5",
     true},
    {"on_nn_prefer_floor",
     {1, 2, 4, 3},
     "oracle=onnx mode=nearest coord=asymmetric nearest=round_prefer_floor scale=2,2",
     false},
    {"on_nn_prefer_ceil",
     {1, 2, 4, 3},
     "oracle=onnx mode=nearest coord=asymmetric nearest=round_prefer_ceil scale=2,2",
     false},
    {"on_nn_half_floor",
     {1, 2, 4, 6},
     "oracle=onnx mode=nearest coord=half_pixel nearest=round_prefer_floor size=8,3",
     false},
    {"on_nn_align_ceil",
     {1, 2, 3, 5},
     "oracle=onnx mode=nearest coord=align_corners nearest=ceil size=5,9",
     false},
    {"on_bl_asym",
     {1, 2, 4, 6},
     "oracle=onnx mode=bilinear coord=asymmetric nearest=floor size=8,3",
     false},
    {"on_bl_pthalf_one",
     {1, 2, 4, 6},
     "oracle=onnx mode=bilinear coord=pytorch_half_pixel nearest=floor size=1,3",
     false},
};
static const cfx_resize_attr attrs[] = {
    {N, CFX_COORD_ASYMMETRIC, CFX_NEAREST_FLOOR, 8, 13, 0, 0},
    {N, CFX_COORD_ASYMMETRIC, CFX_NEAREST_FLOOR, 4, 3, 0, 0},
    {N, CFX_COORD_HALF_PIXEL, CFX_NEAREST_ROUND_PREFER_CEIL, 7, 11, 0, 0},
    {N, CFX_COORD_HALF_PIXEL, CFX_NEAREST_ROUND_PREFER_CEIL, 4, 3, 0, 0},
    {N, CFX_COORD_ASYMMETRIC, CFX_NEAREST_FLOOR, 0, 0, 0.5f, 2},
    {B, CFX_COORD_HALF_PIXEL, 0, 9, 11, 0, 0},
    {B, CFX_COORD_HALF_PIXEL, 0, 4, 3, 0, 0},
    {B, CFX_COORD_ALIGN_CORNERS, 0, 7, 9, 0, 0},
    {B, CFX_COORD_ALIGN_CORNERS, 0, 4, 3, 0, 0},
    {B, CFX_COORD_PYTORCH_HALF_PIXEL, 0, 6, 10, 0, 0},
    {B, CFX_COORD_HALF_PIXEL, 0, 0, 0, 2, 1.5f},
    {N, CFX_COORD_ASYMMETRIC, CFX_NEAREST_ROUND_PREFER_FLOOR, 0, 0, 2, 2},
    {N, CFX_COORD_ASYMMETRIC, CFX_NEAREST_ROUND_PREFER_CEIL, 0, 0, 2, 2},
    {N, CFX_COORD_HALF_PIXEL, CFX_NEAREST_ROUND_PREFER_FLOOR, 8, 3, 0, 0},
    {N, CFX_COORD_ALIGN_CORNERS, CFX_NEAREST_CEIL, 5, 9, 0, 0},
    {B, CFX_COORD_ASYMMETRIC, 0, 8, 3, 0, 0},
    {B, CFX_COORD_PYTORCH_HALF_PIXEL, 0, 1, 3, 0, 0},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static int build_resize(cfx_graph *g, int x, int i) {
    return cfx_op_resize(g, x, &attrs[i]);
}

CFX_TEST(resize, matches_oracles) {
    oracle_check_unary("resize_oracle.py", cases, NCASES, build_resize);
}

CFX_TEST(resize, gradcheck) {
    for (int i = 0; i < NCASES; i++) {
        cfx_graph *g = cfx_graph_new();
        int x = cfx_graph_input(g, "x", 4, cases[i].x);
        int y = cfx_op_resize(g, x, &attrs[i]);
        cfx_graph_requires_grad(g, x, 1);
        CHECK_OK(cfx_graph_compile(g));
        oracle_fill_distinct(cfx_graph_tensor(g, x), 3);
        if (CHECK_GRADS(g, y, &(gradcheck_opts){.max_elems = 100}))
            printf("  (%s)\n", cases[i].name);
        cfx_graph_free(g);
    }
}

static void bad_resize(const cfx_resize_attr *at, const char *want) {
    cfx_graph *g = cfx_graph_new();
    int x = cfx_graph_input(g, "x", 4, (int64_t[]){1, 1, 4, 4});
    CHECK(cfx_op_resize(g, x, at) < 0);
    CHECK_ERR(cfx_graph_compile(g), CFX_EINVAL);
    CHECK_MSG(strstr(cfx_last_error(), want) != NULL, "error '%s' does not mention '%s'",
              cfx_last_error(), want);
    cfx_graph_free(g);
}

CFX_TEST(resize, bad_input) {
    bad_resize(&(cfx_resize_attr){.mode = B}, "scale_h must be positive");
    bad_resize(&(cfx_resize_attr){.mode = B, .out_h = 3}, "both output sizes");
    bad_resize(&(cfx_resize_attr){.mode = B, .scale_h = 0.1f, .scale_w = 1}, "output length 0");
    bad_resize(&(cfx_resize_attr){.mode = (cfx_resize_mode)7, .out_h = 2, .out_w = 2},
               "unknown mode");
    bad_resize(&(cfx_resize_attr){.coord = (cfx_coord_mode)9, .out_h = 2, .out_w = 2},
               "coordinate mode");
    bad_resize(NULL, "NULL");
}
