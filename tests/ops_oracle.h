/* ops_oracle.h - compares ops' outputs and gradients with PyTorch (tests/py/ops_oracle.py).
 *
 * Header-only so that each op family's test file can use it. Starting Python with torch takes
 * seconds, so cases are batched: oracle_add runs one compiled graph forward and backward (with
 * a random output gradient) and saves its inputs and cfx's results in a case folder;
 * oracle_run asks PyTorch (in float64) for all cases at once and compares everything within
 * 1e-4 relative + 1e-5 absolute, printing each case's worst relative error. */
#ifndef CFX_OPS_ORACLE_H
#define CFX_OPS_ORACLE_H

#include "test.h"

#include <unistd.h>

#define ORACLE_MAX_CASES 16

typedef struct oracle {
    int n;
    char dirs[ORACLE_MAX_CASES][512];
    char labels[ORACLE_MAX_CASES][128];
    int nin[ORACLE_MAX_CASES];
    bool grads[ORACLE_MAX_CASES][8];   /* cfx has a gradient for input i */
    bool updated[ORACLE_MAX_CASES][8]; /* the op changes input i in place */
    bool broken;
} oracle;

static inline bool oracle_save(const char *dir, const char *name, int i, const cfx_tensor *t) {
    char path[700];
    if (i >= 0)
        snprintf(path, sizeof path, "%s/%s%d.npy", dir, name, i);
    else
        snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    return cfx_npy_write(path, t) == CFX_OK;
}

/* Adds a case: op and attrs name an ops_oracle.py computation on output out of the compiled
 * graph g whose inputs, in the op's order, are ins[0..nin) (-1 for an absent optional input
 * ends the list early); updated lists inputs the op changes in place (-1 ends it; NULL for
 * none). Runs forward and backward now; g may be freed afterwards. */
static inline void oracle_add_at(const char *file, int line, oracle *o, const char *op,
                                 const char *attrs, cfx_graph *g, int out, const int *ins, int nin,
                                 const int *updated) {
    if (o->n >= ORACLE_MAX_CASES || nin > 8) {
        cfx_test_fail(file, line, "oracle: more than %d cases or 8 inputs", ORACLE_MAX_CASES);
        o->broken = true;
        return;
    }
    int k = o->n++;
    const char *dir = cfx_test_tmpdir();
    snprintf(o->dirs[k], sizeof o->dirs[k], "%s", dir);
    snprintf(o->labels[k], sizeof o->labels[k], "%s %s", op, attrs);
    while (nin > 0 && ins[nin - 1] < 0) nin--;
    o->nin[k] = nin;
    bool ok = true;
    for (int i = 0; i < nin; i++) ok &= oracle_save(dir, "in", i, cfx_graph_tensor(g, ins[i]));
    const cfx_tensor *ot = cfx_graph_tensor(g, out);
    cfx_tensor *seed = cfx_tensor_new(ot->ndim, ot->shape);
    cfx_rng r;
    cfx_rng_init(&r, 77 + (uint64_t)k);
    cfx_tensor_fill_uniform(seed, &r, -1.0f, 1.0f);
    ok &= oracle_save(dir, "seed", -1, seed);
    cfx_status st = cfx_graph_forward(g);
    if (st == CFX_OK) st = cfx_graph_backward(g, out, seed->data);
    cfx_tensor_free(seed);
    if (st != CFX_OK || !ok) {
        cfx_test_fail(file, line, "oracle: %s: %s", o->labels[k], cfx_last_error());
        o->broken = true;
        return;
    }
    oracle_save(dir, "cfx_out", -1, ot);
    for (int i = 0; i < nin; i++) {
        const cfx_tensor *t = cfx_graph_tensor(g, ins[i]);
        const float *gr = cfx_graph_grad(g, ins[i]);
        o->grads[k][i] = gr != NULL;
        o->updated[k][i] = false;
        if (gr) {
            cfx_tensor gt = *t;
            gt.data = (float *)gr;
            oracle_save(dir, "cfx_grad", i, &gt);
        }
    }
    for (int j = 0; updated && updated[j] >= 0; j++) {
        o->updated[k][updated[j]] = true;
        oracle_save(dir, "cfx_after", updated[j], cfx_graph_tensor(g, ins[updated[j]]));
    }
    char path[700];
    snprintf(path, sizeof path, "%s/op.txt", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s %s\n", op, attrs);
        fclose(f);
    }
}
#define ORACLE_ADD(o, op, attrs, g, out, ins, nin, updated)                                        \
    oracle_add_at(__FILE__, __LINE__, (o), (op), (attrs), (g), (out), (ins), (nin), (updated))

/* Compares <dir>/<a>.npy (cfx) with <dir>/<b>.npy (torch). */
static inline void oracle_cmp(const char *file, int line, const char *label, const char *dir,
                              const char *a, const char *b, double *worst) {
    char pa[700], pb[700], what[256];
    snprintf(pa, sizeof pa, "%s/%s.npy", dir, a);
    snprintf(pb, sizeof pb, "%s/%s.npy", dir, b);
    cfx_tensor *x = cfx_npy_read(pa), *y = x ? cfx_npy_read(pb) : NULL;
    if (!x || !y) {
        cfx_test_fail(file, line, "oracle %s: %s", label, cfx_last_error());
        *worst = INFINITY;
    } else if (x->numel != y->numel) {
        cfx_test_fail(file, line, "oracle %s: %s has %lld elements, torch %lld", label, b,
                      (long long)x->numel, (long long)y->numel);
        *worst = INFINITY;
    } else {
        snprintf(what, sizeof what, "%s: %s (cfx vs torch)", label, b);
        cfx_test_arrays_near(file, line, what, x->data, y->data, (size_t)x->numel, 1e-4, 1e-5);
        for (int64_t i = 0; i < x->numel; i++) {
            double e = fabs((double)x->data[i] - y->data[i]) / fmax(fabs((double)y->data[i]), 1e-3);
            if (!(e <= *worst)) *worst = e;
        }
    }
    cfx_tensor_free(x);
    cfx_tensor_free(y);
}

/* Runs PyTorch on every case added and compares. Returns the worst relative error. */
static inline double oracle_run_at(const char *file, int line, oracle *o) {
    if (o->broken || o->n == 0) return INFINITY;
    char args[ORACLE_MAX_CASES * 520] = "", path[700];
    for (int k = 0; k < o->n; k++) {
        strcat(args, " ");
        strcat(args, o->dirs[k]);
    }
    int rc = cfx_test_python("ops_oracle.py", args);
    if (rc != 0) {
        cfx_test_fail(file, line, "oracle: ops_oracle.py exited with %d", rc);
        return INFINITY;
    }
    double all = 0;
    for (int k = 0; k < o->n; k++) {
        double worst = 0;
        const char *d = o->dirs[k];
        oracle_cmp(file, line, o->labels[k], d, "cfx_out", "out", &worst);
        for (int i = 0; i < o->nin[k]; i++) {
            char a[32], b[32];
            snprintf(b, sizeof b, "grad%d", i);
            snprintf(path, sizeof path, "%s/%s.npy", d, b);
            if (o->grads[k][i]) {
                if (access(path, F_OK) != 0) {
                    cfx_test_fail(file, line,
                                  "oracle %s: cfx has a gradient for input %d, torch "
                                  "none",
                                  o->labels[k], i);
                    worst = INFINITY;
                } else {
                    snprintf(a, sizeof a, "cfx_grad%d", i);
                    oracle_cmp(file, line, o->labels[k], d, a, b, &worst);
                }
            }
            if (o->updated[k][i]) {
                snprintf(a, sizeof a, "cfx_after%d", i);
                snprintf(b, sizeof b, "after%d", i);
                oracle_cmp(file, line, o->labels[k], d, a, b, &worst);
            }
        }
        printf("  vs torch: %-34s worst relative error %.2g\n", o->labels[k], worst);
        if (!(worst <= all)) all = worst;
    }
    return all;
}
#define ORACLE_RUN(o) oracle_run_at(__FILE__, __LINE__, (o))

#endif
