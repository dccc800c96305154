/* fuzz.h - what the libFuzzer targets of fuzz/ share: one-time setup (one thread, errors kept
 * quiet), a per-process temporary folder that inputs are written into (most parsers read files),
 * and the split of one input into several files for parsers that read a folder.
 *
 * A multi-file input is the files' bytes joined by CFX_FUZZ_SEP; part k is written to the k-th
 * name the target gives, and names past the last part are removed, so a mutation that drops a
 * separator also tests a missing file. fuzz/pack.py joins files the same way for the seeds. */
#ifndef CFX_FUZZ_H
#define CFX_FUZZ_H

#include "cfx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CFX_FUZZ_SEP "\n--cfx-fuzz-file--\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[64];

static inline void fuzz_quiet(cfx_log_level level, const char *msg, void *ctx) {
    (void)level, (void)msg, (void)ctx;
}

static inline void fuzz_cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (fuzz_dir[0] && system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

/* Once per process: one thread, no log lines, and the temporary folder (removed at exit). */
static inline void fuzz_init(void) {
    if (fuzz_dir[0]) return;
    cfx_set_threads(1);
    cfx_log_set(CFX_LOG_ERROR, fuzz_quiet, NULL);
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/cfx-fuzz-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fuzz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_cleanup);
}

/* fuzz_dir/name, in a static buffer per slot (0..9). */
static inline const char *fuzz_path(int slot, const char *name) {
    static char paths[10][200];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir, name);
    return paths[slot];
}

/* Writes size bytes to fuzz_dir/name; the path. */
static inline const char *fuzz_write(int slot, const char *name, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(slot, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

/* Splits data at CFX_FUZZ_SEP into the files names[0..n); returns the number of parts written
 * (files beyond them are removed). */
static inline int fuzz_write_parts(const uint8_t *data, size_t size, const char *const *names,
                                   int n) {
    const size_t sep = sizeof CFX_FUZZ_SEP - 1;
    int k = 0;
    for (size_t at = 0; k < n;) {
        const uint8_t *end = memmem(data + at, size - at, CFX_FUZZ_SEP, sep);
        size_t len = end ? (size_t)(end - (data + at)) : size - at;
        fuzz_write(k, names[k], data + at, len);
        k++;
        if (!end) break;
        at += len + sep;
    }
    for (int j = k; j < n; j++) unlink(fuzz_path(j, names[j]));
    return k;
}

#endif
