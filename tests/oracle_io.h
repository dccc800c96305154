/* oracle_io.h - float32 arrays exchanged with the Python oracles in tests/py (oracle_io.py) as
 * .npy files, and the unary-op check the conv, pool and resize tests share. */
#ifndef CFX_ORACLE_IO_H
#define CFX_ORACLE_IO_H

#include "test.h"

#include <stdlib.h>

/* Writes name.npy (float32) through src/npy.c, the format every oracle exchange uses. */
static inline bool oracle_write(const char *dir, const char *name, int ndim, const int64_t *shape,
                                const float *data) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    cfx_tensor t = {.data = (float *)data, .ndim = ndim, .numel = 1};
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i], t.numel *= shape[i];
    return cfx_npy_write(path, &t) == CFX_OK;
}

/* For failure messages: whether the exchange directory still exists. */
static inline const char *oracle_dir_state(const char *dir) {
    FILE *f = fopen(dir, "r");
    if (f) fclose(f);
    return f ? "exists" : "was removed";
}

/* Reads name.npy into a malloc'd array of exactly n floats (NULL when missing or another size). */
static inline float *oracle_read(const char *dir, const char *name, int64_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    cfx_tensor *t = cfx_npy_read(path);
    float *data = t && t->numel == n ? malloc((size_t)n * sizeof *data) : NULL;
    if (data) memcpy(data, t->data, (size_t)n * sizeof *data);
    cfx_tensor_free(t);
    return data;
}

/* One single-input op case for oracle_check_unary: build adds the op to g on input x. */
typedef struct {
    const char *name;
    int64_t x[4];
    const char *args; /* "key=value ..." for the oracle's cases.txt */
    bool check_dx;    /* the oracle gives the input gradient too */
} oracle_case;

/* x values distinct and well apart (a shuffled ramp), so a max never flips under the small
 * perturbations of a gradient check. */
static inline void oracle_fill_distinct(cfx_tensor *t, uint64_t seed) {
    cfx_rng r;
    cfx_rng_init(&r, seed);
    int64_t *perm = malloc((size_t)t->numel * sizeof *perm);
    for (int64_t i = 0; i < t->numel; i++) perm[i] = i;
    cfx_rng_shuffle(&r, perm, t->numel);
    for (int64_t i = 0; i < t->numel; i++)
        t->data[i] = (float)perm[i] / (float)t->numel * 2.0f - 1.0f;
    free(perm);
}

/* For every case: builds y = op(x) with x requiring a gradient, runs forward and backward with a
 * random output gradient, and (one Python call for all cases) compares y and, where the oracle
 * has it, dx with tests/py/<script>, within 1e-4 relative + 1e-5 absolute. */
static inline void oracle_check_unary(const char *script, const oracle_case *cs, int n,
                                      int (*build)(cfx_graph *g, int x, int i)) {
    const char *dir = cfx_test_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    cfx_graph **gs = calloc((size_t)n, sizeof *gs);
    int *ys = calloc((size_t)n, sizeof *ys);
    for (int i = 0; i < n; i++) {
        cfx_graph *g = cfx_graph_new();
        int x = cfx_graph_input(g, "x", 4, cs[i].x);
        int y = build(g, x, i);
        cfx_graph_requires_grad(g, x, 1);
        cfx_status s = cfx_graph_compile(g);
        CHECK_MSG(s == CFX_OK, "%s: compile: %s", cs[i].name, cfx_last_error());
        if (s != CFX_OK) {
            cfx_graph_free(g);
            continue;
        }
        oracle_fill_distinct(cfx_graph_tensor(g, x), 40 + (uint64_t)i);
        cfx_tensor *yt = cfx_graph_tensor(g, y);
        float *dy = malloc((size_t)yt->numel * sizeof *dy);
        cfx_rng r;
        cfx_rng_init(&r, 77 + (uint64_t)i);
        for (int64_t k = 0; k < yt->numel; k++) dy[k] = (float)(2 * cfx_rng_uniform(&r) - 1);
        CHECK_OK(cfx_graph_forward(g));
        CHECK_OK(cfx_graph_backward(g, y, dy));
        char nm[160];
        snprintf(nm, sizeof nm, "%s_x", cs[i].name);
        CHECK(oracle_write(dir, nm, 4, cs[i].x, cfx_graph_tensor(g, x)->data));
        snprintf(nm, sizeof nm, "%s_dy", cs[i].name);
        CHECK(oracle_write(dir, nm, 4, yt->shape, dy));
        free(dy);
        fprintf(f, "%s %s\n", cs[i].name, cs[i].args);
        gs[i] = g, ys[i] = y;
    }
    fclose(f);
    int rc = cfx_test_python(script, dir);
    CHECK_MSG(rc == 0, "%s exited with %d", script, rc);
    for (int i = 0; i < n; i++) {
        if (!gs[i]) continue;
        for (int k = 0; k < 2 && rc == 0; k++) {
            if (k == 1 && !cs[i].check_dx) continue;
            char nm[160];
            snprintf(nm, sizeof nm, "%s_%s", cs[i].name, k ? "dx" : "y");
            const cfx_tensor *t = cfx_graph_tensor(gs[i], k ? 0 : ys[i]);
            const float *got = k ? cfx_graph_grad(gs[i], 0) : t->data;
            float *want = oracle_read(dir, nm, t->numel);
            CHECK_MSG(want != NULL, "oracle output %s missing or of another size (%s %s)", nm, dir,
                      oracle_dir_state(dir));
            if (want && !CHECK_ARRAY_NEAR(got, want, (size_t)t->numel, 1e-4, 1e-5))
                printf("  (case %s, %s)\n", cs[i].name, k ? "dx" : "y");
            free(want);
        }
        cfx_graph_free(gs[i]);
    }
    free(gs);
    free(ys);
}

#endif
