/* checkpoint.c - the training checkpoint: parameters and optimizer state after an epoch, so
 * that a run that was stopped continues (`cfx train --resume`) to the same bits as one that
 * was not.
 *
 * A checkpoint is one binary file, written atomically after each epoch (little endian):
 *   "CFXCKPT2", u32 epochs done, u32 epochs of the run, u32 batch, u32 constant_lr, f32 lr,
 *   u64 seed, u64 fingerprint of the training data, u64 parameter count, u64 optimizer state
 *   count, parameters (float32), optimizer state (float32), f64 last loss, f64 last accuracy.
 * Everything is checked on reading: the counts (a checkpoint of another model is refused), the
 * epochs done against the run's (a corrupt count would run for ever), and the settings, which
 * must be this run's for the result to be the uninterrupted run's bytes. */
#include "learn/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#define MAGIC "CFXCKPT2"

uint64_t cfx__checkpoint_fingerprint(const cfx_tensor *images, const float *labels) {
    /* FNV-1a's constants over 64-bit words: a changed, added or reordered image changes it. */
    uint64_t h = 1469598103934665603u;
    const unsigned char *p = (const unsigned char *)images->data;
    size_t bytes = (size_t)images->numel * sizeof(float);
    for (int d = 0; d < images->ndim; d++) h = (h ^ (uint64_t)images->shape[d]) * 1099511628211u;
    for (size_t k = 0; k < bytes; k += 8) {
        uint64_t w = 0;
        memcpy(&w, p + k, bytes - k < 8 ? bytes - k : 8);
        h = (h ^ w) * 1099511628211u;
    }
    for (int64_t i = 0; labels && i < images->shape[0]; i++) {
        uint32_t w;
        memcpy(&w, &labels[i], 4);
        h = (h ^ w) * 1099511628211u;
    }
    return h;
}

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
        const uint32_t u[4] = {m->epoch, m->epochs, m->batch, m->constant_lr};
        fwrite(MAGIC, 1, 8, f.f);
        fwrite(u, sizeof u[0], 4, f.f);
        fwrite(&m->lr, sizeof m->lr, 1, f.f);
        fwrite(&m->seed, sizeof m->seed, 1, f.f);
        fwrite(&m->data, sizeof m->data, 1, f.f);
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

/* The first setting of file f that differs from this run's (want), named as the options say
 * it, into buf; false when all agree. */
static bool differs(const cfx__checkpoint_meta *f, const cfx__checkpoint_meta *want, char *buf,
                    size_t size) {
    if (f->epochs != want->epochs)
        snprintf(buf, size, "epochs %u, this run %u", f->epochs, want->epochs);
    else if (f->batch != want->batch)
        snprintf(buf, size, "batch %u, this run %u", f->batch, want->batch);
    else if (f->lr != want->lr)
        snprintf(buf, size, "learning rate %g, this run %g", (double)f->lr, (double)want->lr);
    else if (f->constant_lr != want->constant_lr)
        snprintf(buf, size, "a %s learning rate, this run a %s one",
                 f->constant_lr ? "constant" : "decaying",
                 want->constant_lr ? "constant" : "decaying");
    else if (f->seed != want->seed)
        snprintf(buf, size, "seed %" PRIu64 ", this run %" PRIu64, f->seed, want->seed);
    else if (f->data != want->data)
        snprintf(buf, size, "other training data (its images or labels differ from this run's)");
    else
        return false;
    return true;
}

/* Whether an optimizer step count stored as a float is one (floats are exact up to 2^24). */
static bool finite_count(float t) {
    return t >= 0 && t <= 16777216.0f && t == floorf(t);
}

/* The index of the first NaN or infinity in x[0, n), or n. */
static size_t first_not_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

cfx_status cfx__checkpoint_read(const char *path, cfx_graph *g, cfx_optim *opt,
                                cfx__checkpoint_meta *m) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return CFX_ENOTFOUND;
        return cfx_set_error(CFX_EIO, "checkpoint '%s': %s", path, strerror(errno));
    }
    size_t np, ns = cfx_optim_state_size(opt), bad;
    float *p = cfx_graph_params(g, &np);
    char magic[8] = {0}, why[160];
    uint64_t n64 = 0, s64 = 0;
    uint32_t u[4];
    cfx__checkpoint_meta file = {0};
    cfx_status s = CFX_OK;
    float *params = cfx_malloc((np ? np : 1) * sizeof(float));
    float *state = cfx_malloc((ns ? ns : 1) * sizeof(float));
    if (!params || !state) {
        s = CFX_ENOMEM;
    } else if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "CFXCKPT", 7) != 0) {
        s = cfx_set_error(CFX_EFORMAT, "checkpoint '%s' is not a cfx checkpoint", path);
    } else if (memcmp(magic, MAGIC, 8) != 0) {
        s = cfx_set_error(CFX_EFORMAT,
                          "checkpoint '%s' was written by an older cfx, without the run's "
                          "settings; delete it to train from the start",
                          path);
    } else if (fread(u, 4, 4, f) != 4 || fread(&file.lr, 4, 1, f) != 1 ||
               fread(&file.seed, 8, 1, f) != 1 || fread(&file.data, 8, 1, f) != 1 ||
               fread(&n64, 8, 1, f) != 1 || fread(&s64, 8, 1, f) != 1) {
        s = cfx_set_error(CFX_EFORMAT, "checkpoint '%s' is truncated", path);
    } else if (file.epoch = u[0], file.epochs = u[1], file.batch = u[2], file.constant_lr = u[3],
               file.epoch > file.epochs) {
        s = cfx_set_error(CFX_EFORMAT,
                          "checkpoint '%s' is corrupt: it has %u epochs done of a run of %u", path,
                          file.epoch, file.epochs);
    } else if (differs(&file, m, why, sizeof why)) {
        s = cfx_set_error(CFX_EINVAL,
                          "checkpoint '%s' was written by a run with %s; resume with the same "
                          "settings (the result is then the uninterrupted run's), or delete it "
                          "to train from the start",
                          path, why);
    } else if (n64 != np) {
        s = cfx_set_error(CFX_EFORMAT,
                          "checkpoint '%s' holds %llu parameters but this model has %zu; it was "
                          "written for another model (delete it or pick another --checkpoint)",
                          path, (unsigned long long)n64, np);
    } else if (s64 != ns) {
        s = cfx_set_error(CFX_EFORMAT,
                          "checkpoint '%s' holds %llu values of optimizer state but this "
                          "optimizer has %zu; it was written for another model or optimizer "
                          "(delete it or pick another --checkpoint)",
                          path, (unsigned long long)s64, ns);
    } else if (fread(params, sizeof(float), np, f) != np ||
               fread(state, sizeof(float), ns, f) != ns || fread(&m->loss, 8, 1, f) != 1 ||
               fread(&m->accuracy, 8, 1, f) != 1) {
        s = cfx_set_error(CFX_EFORMAT, "checkpoint '%s' is truncated", path);
    } else if (ns > 0 && !finite_count(state[0])) {
        /* cfx_optim_state_load converts it to an integer: -4e34 was undefined (fuzz_checkpoint). */
        s = cfx_set_error(CFX_EFORMAT,
                          "checkpoint '%s' is corrupt: its optimizer step count is %g, not a whole "
                          "number in 0..2^24",
                          path, (double)state[0]);
    } else if ((bad = first_not_finite(params, np)) < np ||
               (bad = np + first_not_finite(state, ns)) < np + ns) {
        /* Training refuses non-finite gradients, so cfx never writes NaN or Inf. */
        s = cfx_set_error(CFX_EFORMAT,
                          "checkpoint '%s' is corrupt: %s %zu is not finite (delete it to train "
                          "from the start)",
                          path, bad < np ? "parameter" : "optimizer state value",
                          bad < np ? bad : bad - np);
    } else {
        memcpy(p, params, np * sizeof(float));
        cfx_optim_state_load(opt, state);
        m->epoch = file.epoch;
    }
    fclose(f);
    cfx_free(params);
    cfx_free(state);
    return s;
}
