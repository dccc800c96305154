/* checkpoint.c - the training checkpoint: parameters and optimizer state after an epoch, so
 * that a run that was stopped continues (`cfx train --resume`) to the same bits as one that
 * was not.
 *
 * A checkpoint is one binary file, written atomically after each epoch:
 *   "CFXCKPT1", u32 epochs done, u64 parameter count, u64 optimizer state count,
 *   parameters (float32), optimizer state (float32), f64 last loss, f64 last accuracy.
 * The counts are checked on reading, so a checkpoint of another model is refused with a message
 * instead of being read into the wrong parameters. */
#include "learn/checkpoint.h"

#include <errno.h>
#include <stdio.h>

cfx_status cfx__checkpoint_write(const char *path, cfx_graph *g, const cfx_optim *opt,
                                 const cfx__checkpoint_meta *m) {
    size_t np, ns = cfx_optim_state_size(opt);
    float *p = cfx_graph_params(g, &np);
    float *state = cfx_malloc(ns * sizeof(float));
    if (!state) return CFX_ENOMEM;
    cfx_optim_state_save(opt, state);
    cfx_file f;
    cfx_status s = cfx_file_create(&f, path);
    if (s == CFX_OK) {
        uint64_t n64 = np, s64 = ns;
        fwrite("CFXCKPT1", 1, 8, f.f);
        fwrite(&m->epoch, sizeof m->epoch, 1, f.f);
        fwrite(&n64, sizeof n64, 1, f.f);
        fwrite(&s64, sizeof s64, 1, f.f);
        fwrite(p, sizeof(float), np, f.f);
        fwrite(state, sizeof(float), ns, f.f);
        fwrite(&m->loss, sizeof m->loss, 1, f.f);
        fwrite(&m->accuracy, sizeof m->accuracy, 1, f.f);
        s = cfx_file_commit(&f);
    }
    cfx_free(state);
    return s == CFX_OK ? s : cfx_error_context(s, "checkpoint");
}

cfx_status cfx__checkpoint_read(const char *path, cfx_graph *g, cfx_optim *opt,
                                cfx__checkpoint_meta *m) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return CFX_ENOTFOUND;
        return cfx_set_error(CFX_EIO, "checkpoint '%s': %s", path, strerror(errno));
    }
    size_t np, ns = cfx_optim_state_size(opt);
    float *p = cfx_graph_params(g, &np);
    char magic[8];
    uint64_t n64 = 0, s64 = 0;
    cfx_status s = CFX_OK;
    float *params = cfx_malloc((np ? np : 1) * sizeof(float));
    float *state = cfx_malloc(ns * sizeof(float));
    if (!params || !state) {
        s = CFX_ENOMEM;
    } else if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "CFXCKPT1", 8) != 0 ||
               fread(&m->epoch, sizeof m->epoch, 1, f) != 1 || fread(&n64, 8, 1, f) != 1 ||
               fread(&s64, 8, 1, f) != 1) {
        s = cfx_set_error(CFX_EFORMAT, "checkpoint '%s' is not a cfx checkpoint or is truncated",
                          path);
    } else if (n64 != np || s64 != ns) {
        s = cfx_set_error(CFX_EFORMAT,
                          "checkpoint '%s' holds %llu parameters but this model has %zu; it was "
                          "written for another model (delete it or pick another --checkpoint)",
                          path, (unsigned long long)n64, np);
    } else if (fread(params, sizeof(float), np, f) != np ||
               fread(state, sizeof(float), ns, f) != ns || fread(&m->loss, 8, 1, f) != 1 ||
               fread(&m->accuracy, 8, 1, f) != 1) {
        s = cfx_set_error(CFX_EFORMAT, "checkpoint '%s' is truncated", path);
    } else {
        memcpy(p, params, np * sizeof(float));
        cfx_optim_state_load(opt, state);
    }
    fclose(f);
    cfx_free(params);
    cfx_free(state);
    return s;
}
