/* features.c - the feature vectors FID, KID and CMMD compare, from the classifier's own feature
 * tensor (through a competency) or from a network the user brings as an ONNX file, with a
 * label that names which one in every table (DESIGN.md, "Metrics": never print a number under
 * a name it is not).
 *
 * A user network takes RGB images in [0, 1] at its own input size. The images cfx has (grey or
 * RGB, of the dataset's size) go through two graph ops in front of the imported network, in
 * the same graph: Resize, bilinear with half-pixel centres (ONNX's default coordinate mode,
 * which is PyTorch's F.interpolate(mode="bilinear", align_corners=False) without antialiasing:
 * how pytorch-fid brings images to Inception's 299 x 299), skipped when the sizes already
 * agree; then a grey image repeated to three channels (Concat; after the resize, which works
 * per channel, so it resizes one channel instead of three). Only the nodes the feature tensor
 * needs are imported, so a classifier head after it costs nothing. */
#include "metrics/metrics.h"

#include <math.h>
#include <stdio.h>
#include <strings.h>

struct cfx_features {
    cfx_competency *competency; /* not owned */
    cfx_graph *g;               /* a user network */
    int in, out;
    int c, h, w;
    int64_t batch, dim;
    char *label, *model;
};

void cfx_features_free(cfx_features *f) {
    if (!f) return;
    cfx_graph_free(f->g);
    cfx_free(f->label);
    cfx_free(f->model);
    cfx_free(f);
}

const char *cfx_features_label(const cfx_features *f) {
    return f->label;
}

int64_t cfx_features_dim(const cfx_features *f) {
    return f->dim;
}

/* The file name without its folder and a final ".onnx": "inception" for "m/inception.onnx". */
static char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    size_t n = strlen(s);
    if (n > 5 && strcasecmp(s + n - 5, ".onnx") == 0) n -= 5;
    char *out = cfx_malloc(n + 1);
    if (out) memcpy(out, s, n), out[n] = 0;
    return out;
}

/* The network's image size, checked: one input (N, 3, H, W) with fixed C, H and W. */
static cfx_status model_input(const char *path, int *h, int *w) {
    cfx_onnx_info *info = cfx_onnx_info_load(path);
    if (!info) return cfx_error_context(CFX_EFORMAT, "feature model '%s'", path);
    cfx_status s = CFX_OK;
    const cfx_onnx_tensor_info *in = info->n_inputs == 1 ? &info->inputs[0] : NULL;
    if (!in) {
        s = cfx_set_error(CFX_ESHAPE,
                          "feature model '%s' has %d inputs; a feature network takes one "
                          "input, a batch of RGB images",
                          path, info->n_inputs);
    } else if (in->ndim != 4 || in->shape[1] != 3 || in->shape[2] < 1 || in->shape[3] < 1) {
        char buf[96];
        cfx_tensor_shape_str(in->ndim, in->shape, buf, sizeof buf);
        s = cfx_set_error(CFX_ESHAPE,
                          "feature model '%s': its input '%s' %s is not a batch of RGB images "
                          "(N, 3, H, W) with fixed H and W; FID and CMMD networks take RGB "
                          "images in [0, 1] (cfx repeats grey images to 3 channels itself)",
                          path, in->name ? in->name : "?", buf);
    } else if (in->shape[2] > INT32_MAX || in->shape[3] > INT32_MAX) {
        s = cfx_set_error(CFX_ESHAPE, "feature model '%s': its input size is too large", path);
    } else {
        *h = (int)in->shape[2], *w = (int)in->shape[3];
    }
    cfx_onnx_info_free(info);
    return s;
}

/* The graph: image (batch, c, h, w) -> resize to the network's H x W -> 3 channels -> the
 * network up to its feature tensor. */
static cfx_status build(cfx_features *f, const char *tensor) {
    int mh = 0, mw = 0;
    CFX_TRY(model_input(f->model, &mh, &mw));
    cfx_graph *g = f->g = cfx_graph_new();
    if (!g) return CFX_ENOMEM;
    f->in = cfx_graph_input(g, "image", 4, (int64_t[]){f->batch, f->c, f->h, f->w});
    int x = f->in;
    if (mh != f->h || mw != f->w) {
        cfx_resize_attr r = {
            .mode = CFX_RESIZE_BILINEAR, .coord = CFX_COORD_HALF_PIXEL, .out_h = mh, .out_w = mw};
        x = cfx_op_resize(g, x, &r);
    }
    if (f->c == 1) x = cfx_op_concat(g, (int[]){x, x, x}, 3, 1);
    if (x < 0) return cfx_error_context(CFX_EINVAL, "feature model '%s'", f->model);
    const char *extra[1] = {tensor};
    cfx_onnx_options o = {.batch = f->batch,
                          .frozen = 1,
                          .extra_outputs = extra,
                          .n_extra_outputs = 1,
                          .outputs_only = 1,
                          .prefix = "net/"};
    int outs[4], n = 0;
    if (cfx_onnx_import(g, f->model, &o, (int[]){x}, 1, outs, 4, &n) != CFX_OK)
        return cfx_error_context(CFX_EFORMAT, "feature model '%s' (features '%s')", f->model,
                                 tensor);
    char name[512];
    snprintf(name, sizeof name, "net/%s", tensor);
    f->out = cfx_graph_find(g, name);
    if (f->out < 0)
        return cfx_set_error(CFX_ENOTFOUND, "feature model '%s' has no tensor named '%s'", f->model,
                             tensor);
    CFX_TRY(cfx_graph_set_output(g, f->out, "features"));
    if (cfx_graph_compile(g) != CFX_OK)
        return cfx_error_context(CFX_ESHAPE, "feature model '%s' on images (%d, %d, %d)", f->model,
                                 f->c, f->h, f->w);
    const cfx_tensor *t = cfx_graph_tensor(g, f->out);
    if (t->shape[0] != f->batch) {
        char buf[96];
        cfx_tensor_shape_str(t->ndim, t->shape, buf, sizeof buf);
        return cfx_set_error(CFX_ESHAPE,
                             "feature model '%s': the tensor '%s' %s is not one row per image "
                             "of the batch of %lld",
                             f->model, tensor, buf, (long long)f->batch);
    }
    f->dim = t->numel / f->batch;
    return CFX_OK;
}

cfx_features *cfx_features_new(const cfx_features_spec *spec) {
    if (!spec || (!spec->competency == !spec->model)) {
        cfx_set_error(CFX_EINVAL, "features: give either a competency (the classifier's own "
                                  "features) or a feature model, not both or neither");
        return NULL;
    }
    if (spec->model && (!spec->tensor || !spec->tensor[0])) {
        cfx_set_error(CFX_EINVAL,
                      "feature model '%s': name its feature tensor (--fid-features NAME)",
                      spec->model);
        return NULL;
    }
    if (spec->model && ((spec->c != 1 && spec->c != 3) || spec->h < 1 || spec->w < 1)) {
        cfx_set_error(CFX_EINVAL,
                      "feature model '%s': the images must be given as (C, H, W) with C 1 or "
                      "3, got (%d, %d, %d)",
                      spec->model, spec->c, spec->h, spec->w);
        return NULL;
    }
    cfx_features *f = cfx_calloc(1, sizeof *f);
    if (!f) return NULL;
    cfx_status s = CFX_OK;
    if (spec->competency) {
        cfx_competency_shape sh;
        cfx_competency_shape_of(spec->competency, &sh);
        f->competency = spec->competency;
        f->c = sh.c, f->h = sh.h, f->w = sh.w;
        f->dim = sh.feature_dim;
        f->label = cfx_strdup(spec->label ? spec->label : "classifier");
    } else {
        f->c = spec->c, f->h = spec->h, f->w = spec->w;
        f->batch = spec->batch > 0 ? spec->batch : 32;
        f->model = cfx_strdup(spec->model);
        f->label = spec->label ? cfx_strdup(spec->label) : base_name(spec->model);
        s = f->model ? build(f, spec->tensor) : CFX_ENOMEM;
    }
    if (s == CFX_OK && !f->label) s = CFX_ENOMEM;
    if (s != CFX_OK) {
        cfx_features_free(f);
        return NULL;
    }
    return f;
}

/* Runs the user network over n images in batches, features into out (n x dim). */
static cfx_status run_model(cfx_features *f, const cfx_tensor *images, float *out) {
    const int64_t n = images->shape[0], per = (int64_t)f->c * f->h * f->w;
    for (int64_t first = 0; first < n; first += f->batch) {
        int64_t m = CFX_MIN(f->batch, n - first);
        if (cfx_graph_tensor(f->g, f->in)->shape[0] != m) CFX_TRY(cfx_graph_set_batch(f->g, m));
        CFX_TRY(cfx_graph_replan(f->g));
        memcpy(cfx_graph_tensor(f->g, f->in)->data, images->data + first * per,
               (size_t)(m * per) * sizeof(float));
        CFX_TRY(cfx_graph_forward(f->g));
        memcpy(out + first * f->dim, cfx_graph_tensor(f->g, f->out)->data,
               (size_t)(m * f->dim) * sizeof(float));
    }
    return CFX_OK;
}

cfx_status cfx_features_run(cfx_features *f, const cfx_tensor *images, cfx_tensor *out) {
    char want[64], got[96] = "none";
    snprintf(want, sizeof want, "(N, %d, %d, %d)", f->c, f->h, f->w);
    if (images) cfx_tensor_shape_str(images->ndim, images->shape, got, sizeof got);
    if (!images || images->ndim != 4 || images->shape[1] != f->c || images->shape[2] != f->h ||
        images->shape[3] != f->w)
        return cfx_set_error(CFX_ESHAPE, "features [%s]: images %s are not %s", f->label, got,
                             want);
    const int64_t n = images->shape[0];
    if (!out || out->ndim != 2 || out->shape[0] != n || out->shape[1] != f->dim) {
        char os[96] = "none";
        if (out) cfx_tensor_shape_str(out->ndim, out->shape, os, sizeof os);
        return cfx_set_error(CFX_ESHAPE, "features [%s]: the output %s is not (%lld, %lld)",
                             f->label, os, (long long)n, (long long)f->dim);
    }
    int64_t bad = cfx_tensor_find_nonfinite(images);
    if (bad >= 0)
        return cfx_set_error(CFX_ENUMERIC, "features [%s]: image %lld holds a non-finite pixel",
                             f->label, (long long)(bad / (images->numel / n)));
    cfx_status s = f->competency
                       ? cfx_competency_score(f->competency, images,
                                              &(cfx_competency_scores){.features = out->data}, NULL)
                       : run_model(f, images, out->data);
    if (s != CFX_OK) return cfx_error_context(s, "features [%s]", f->label);
    bad = cfx_tensor_find_nonfinite(out);
    if (bad >= 0)
        return cfx_set_error(CFX_ENUMERIC,
                             "features [%s]: image %lld gave a non-finite feature (%lld); check "
                             "the network's weights",
                             f->label, (long long)(bad / f->dim), (long long)(bad % f->dim));
    return CFX_OK;
}
