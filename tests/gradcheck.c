/* gradcheck.c - central-difference gradient checks for any graph. The loss is a random
 * projection sum(out * W) accumulated in double, so every output element is exercised. */
#include "gradcheck.h"

#include <stdlib.h>

static double project(cfx_graph *g, int out, const float *w) {
    cfx_graph_seed(g, 1234);
    if (cfx_graph_forward(g) != CFX_OK) return NAN;
    const cfx_tensor *t = cfx_graph_tensor(g, out);
    double s = 0;
    for (int64_t i = 0; i < t->numel; i++) s += (double)t->data[i] * w[i];
    return s;
}

int gradcheck_at(const char *file, int line, cfx_graph *g, int out, const gradcheck_opts *o) {
    gradcheck_opts d = o ? *o : (gradcheck_opts){0};
    double eps = d.eps > 0 ? d.eps : 1e-3, rtol = d.rtol > 0 ? d.rtol : 2e-2;
    double atol = d.atol > 0 ? d.atol : 2e-3;
    int max_elems = d.max_elems > 0 ? d.max_elems : 48;
    cfx_rng rng;
    cfx_rng_init(&rng, d.seed + 99);
    cfx_graph_seed(g, 1234);
    if (cfx_graph_forward(g) != CFX_OK) {
        cfx_test_fail(file, line, "gradcheck: forward failed: %s", cfx_last_error());
        return 1;
    }
    const cfx_tensor *ot = cfx_graph_tensor(g, out);
    float *w = malloc((size_t)ot->numel * sizeof *w);
    for (int64_t i = 0; i < ot->numel; i++) w[i] = (float)(2 * cfx_rng_uniform(&rng) - 1);
    if (cfx_graph_backward(g, out, w) != CFX_OK) {
        cfx_test_fail(file, line, "gradcheck: backward failed: %s", cfx_last_error());
        free(w);
        return 1;
    }
    int failures = 0, checked = 0;
    for (int v = 0; v < cfx_graph_num_values(g); v++) {
        cfx_value_kind k = cfx_graph_value_kind(g, v);
        const float *grad = cfx_graph_grad(g, v);
        if ((k != CFX_VALUE_INPUT && k != CFX_VALUE_PARAM) || !grad) continue;
        cfx_tensor *t = cfx_graph_tensor(g, v);
        /* Copy the analytic gradient: the numeric passes below rerun the graph. */
        float *an = malloc((size_t)t->numel * sizeof *an);
        memcpy(an, grad, (size_t)t->numel * sizeof *an);
        int64_t n = t->numel < max_elems ? t->numel : max_elems;
        int64_t worst = -1;
        double worst_excess = 0, worst_num = 0;
        for (int64_t s = 0; s < n; s++) {
            int64_t i =
                t->numel <= max_elems ? s : (int64_t)cfx_rng_below(&rng, (uint64_t)t->numel);
            float orig = t->data[i];
            t->data[i] = (float)(orig + eps);
            double lp = project(g, out, w);
            t->data[i] = (float)(orig - eps);
            double lm = project(g, out, w);
            t->data[i] = orig;
            double num = (lp - lm) / (2 * eps), a = an[i];
            double lim = atol + rtol * fmax(fabs(num), fabs(a));
            double excess = isfinite(a) && isfinite(num) ? fabs(num - a) - lim : INFINITY;
            if (excess > 0 && (worst < 0 || excess > worst_excess)) {
                worst = i, worst_excess = excess, worst_num = num;
            }
        }
        checked++;
        if (worst >= 0) {
            const char *name = cfx_graph_value_name(g, v);
            cfx_test_fail(file, line,
                          "gradcheck: value %d (%s): worst element [%lld]: analytic %.6g, "
                          "numeric %.6g",
                          v, name ? name : "unnamed", (long long)worst, (double)an[worst],
                          worst_num);
            failures++;
        }
        free(an);
    }
    project(g, out, w); /* leave the graph's outputs as they were */
    free(w);
    if (!checked) {
        cfx_test_fail(file, line,
                      "gradcheck: nothing to check (no input or parameter has a gradient)");
        return 1;
    }
    return failures;
}

void gradcheck_fill(cfx_graph *g, int x, uint64_t seed, float param_scale) {
    cfx_rng r;
    cfx_rng_init(&r, seed);
    cfx_tensor_fill_uniform(cfx_graph_tensor(g, x), &r, -1, 1);
    size_t np;
    float *p = cfx_graph_params(g, &np);
    for (size_t i = 0; i < np; i++) p[i] = param_scale * (float)cfx_rng_normal(&r);
}
