/* file.c - atomic file and folder output (write a temporary, rename it into place), the removal
 * of such temporaries when a signal ends the program, and whole-file reads. */
#include "base/base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------- temporaries in progress --- */

/* The temporaries being written, for the signal handler: a fixed table, since the handler may
 * only read memory and make async-signal-safe calls (unlink, rmdir, open, getdents64). A slot's
 * path is written before its state is set, and the handler reads the path only when the state
 * says it is complete. More temporaries at once than slots go untracked (a signal then leaves
 * them, as it did before the table). */
enum { TMP_FREE, TMP_FILE, TMP_DIR, TMP_SLOTS = 16, TMP_PATH = 4096 };
static char tmp_path[TMP_SLOTS][TMP_PATH];
static _Atomic int tmp_state[TMP_SLOTS];
static pthread_mutex_t tmp_lock = PTHREAD_MUTEX_INITIALIZER;

int cfx__tmp_track(const char *path, bool dir) {
    if (strlen(path) >= TMP_PATH) return -1;
    pthread_mutex_lock(&tmp_lock);
    int slot = -1;
    for (int i = 0; i < TMP_SLOTS && slot < 0; i++)
        if (atomic_load(&tmp_state[i]) == TMP_FREE) slot = i;
    if (slot >= 0) {
        strcpy(tmp_path[slot], path);
        atomic_store(&tmp_state[slot], dir ? TMP_DIR : TMP_FILE);
    }
    pthread_mutex_unlock(&tmp_lock);
    return slot;
}

void cfx__tmp_untrack(int slot) {
    if (slot >= 0 && slot < TMP_SLOTS) atomic_store(&tmp_state[slot], TMP_FREE);
}

/* Removes a folder of files (the dataset writer's folders hold no sub-folders) with
 * async-signal-safe calls only: the raw getdents64 system call in place of readdir. */
static void remove_flat_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        char buf[4096];
        long n;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
            for (long off = 0; off < n;) {
                const struct dirent64 *e = (const struct dirent64 *)(buf + off);
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                    unlinkat(fd, e->d_name, 0);
                off += e->d_reclen;
            }
        close(fd);
    }
    rmdir(path);
}

/* The note the handler prints; note_len is set after the text is in place, so a signal in
 * between prints the old note or none. */
static char note_text[1024];
static _Atomic size_t note_len;

void cfx_set_signal_note(const char *note) {
    atomic_store(&note_len, 0);
    size_t n = note ? strlen(note) : 0;
    if (n > sizeof note_text - 1) n = sizeof note_text - 1;
    if (n) memcpy(note_text, note, n);
    atomic_store(&note_len, n);
}

static void on_signal(int sig) {
    size_t n = atomic_load(&note_len);
    if (n) { /* after a progress bar's line, if any */
        ssize_t w = write(2, "\n", 1);
        w = write(2, note_text, n);
        w = write(2, "\n", 1);
        (void)w;
    }
    for (int i = 0; i < TMP_SLOTS; i++) {
        int st = atomic_load(&tmp_state[i]);
        if (st == TMP_FILE) unlink(tmp_path[i]);
        if (st == TMP_DIR) remove_flat_dir(tmp_path[i]);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A signal the program was started ignoring (nohup's SIGHUP, SIGINT for a background job of a
 * script) stays ignored. */
void cfx_clean_up_on_signals(void) {
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa, old;
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (size_t j = 0; j < sizeof sigs / sizeof sigs[0]; j++) sigaddset(&sa.sa_mask, sigs[j]);
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ------------------------------------------------------------------ atomic output --- */

static void remove_tree(const char *path);

/* Removes the temporaries "<name>.tmp.<pid>" of path that a process left when it was killed
 * with no chance to clean up (SIGKILL, a power cut): those of processes that no longer exist.
 * A temporary of a live process (another cfx writing the same output) is left alone. */
static void sweep_dead(const char *path) {
    char dir[4200];
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    else
        snprintf(dir, sizeof dir, ".");
    size_t blen = strlen(base);
    if (!blen) return;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0) continue;
        char *end;
        long pid = strtol(n + blen + 5, &end, 10);
        if (end == n + blen + 5 || *end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours) */
        char full[8400];
        snprintf(full, sizeof full, "%s/%s", dir, n);
        remove_tree(full);
    }
    if (d) closedir(d);
}

/* The group of outputs open on this thread (cfx_outputs_begin), and how many cfx_dir folders
 * are being filled: files written into a folder's temporary are the folder's, not the group's. */
static _Thread_local cfx_outputs *group;
static _Thread_local int dirs_open;

/* Keeps a written, closed temporary in the group instead of renaming it (the group owns tmp
 * and path from here). */
static cfx_status group_add(cfx_outputs *g, char *path, char *tmp, int slot) {
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->path[i], path) == 0) { /* written again: the same temporary, replaced */
            cfx__tmp_untrack(g->slot[i]);
            cfx_free(g->path[i]), cfx_free(g->tmp[i]);
            g->path[i] = path, g->tmp[i] = tmp, g->slot[i] = slot;
            return CFX_OK;
        }
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 8;
        char **p = cfx_realloc(g->path, (size_t)cap * sizeof *p);
        if (p) g->path = p;
        char **t = p ? cfx_realloc(g->tmp, (size_t)cap * sizeof *t) : NULL;
        if (t) g->tmp = t;
        int *sl = t ? cfx_realloc(g->slot, (size_t)cap * sizeof *sl) : NULL;
        if (!sl) return CFX_ENOMEM;
        g->slot = sl, g->cap = cap;
    }
    g->path[g->n] = path, g->tmp[g->n] = tmp, g->slot[g->n] = slot;
    g->n++;
    return CFX_OK;
}

cfx_status cfx_outputs_begin(cfx_outputs *o) {
    memset(o, 0, sizeof *o);
    if (group) { /* inside another group: its owner commits or aborts */
        o->joined = 1;
        return CFX_OK;
    }
    group = o;
    return CFX_OK;
}

static void outputs_release(cfx_outputs *o) {
    for (int i = 0; i < o->n; i++) {
        cfx__tmp_untrack(o->slot[i]);
        cfx_free(o->path[i]), cfx_free(o->tmp[i]);
    }
    cfx_free(o->path), cfx_free(o->tmp), cfx_free(o->slot);
    if (group == o) group = NULL;
    memset(o, 0, sizeof *o);
}

cfx_status cfx_outputs_commit(cfx_outputs *o) {
    if (o->joined) return CFX_OK;
    if (group == o) group = NULL; /* what follows writes nothing more into it */
    /* Every output is complete before the first is renamed: a failure up to here left none. */
    cfx_status s = CFX_OK;
    for (int i = 0; i < o->n; i++)
        if (s == CFX_OK && rename(o->tmp[i], o->path[i]) != 0)
            s = cfx_set_error(CFX_EIO, "cannot write '%s': %s", o->path[i], strerror(errno));
        else if (s != CFX_OK)
            remove(o->tmp[i]);
    outputs_release(o);
    return s;
}

void cfx_outputs_abort(cfx_outputs *o) {
    if (!o || o->joined) return;
    for (int i = 0; i < o->n; i++) remove(o->tmp[i]);
    outputs_release(o);
}

const char *cfx_outputs_path(const cfx_outputs *o, const char *path) {
    const cfx_outputs *g = o && o->joined ? group : o;
    for (int i = 0; g && i < g->n; i++)
        if (strcmp(g->path[i], path) == 0) return g->tmp[i];
    return path;
}

cfx_status cfx_file_create(cfx_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    af->slot = -1;
    if (!path || !*path) return cfx_set_error(CFX_EINVAL, "output path is empty");
    size_t n = strlen(path) + 32;
    af->path = cfx_strdup(path);
    af->tmp = cfx_malloc(n);
    if (!af->path || !af->tmp) {
        cfx_free(af->path);
        cfx_free(af->tmp);
        return CFX_ENOMEM;
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    if (!dirs_open) sweep_dead(path); /* (a folder being filled is new: nothing to sweep) */
    af->slot = cfx__tmp_track(af->tmp, false);
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        cfx__tmp_untrack(af->slot);
        cfx_status s = cfx_set_error(CFX_EIO, "cannot write '%s': %s", path, strerror(errno));
        cfx_free(af->path);
        cfx_free(af->tmp);
        af->path = af->tmp = NULL;
        return s;
    }
    return CFX_OK;
}

static void release(cfx_file *af) {
    if (af->tmp) cfx__tmp_untrack(af->slot); /* a zeroed cfx_file has no slot of its own */
    af->slot = -1;
    cfx_free(af->path);
    cfx_free(af->tmp);
    af->path = af->tmp = NULL;
    af->f = NULL;
}

cfx_status cfx_file_commit(cfx_file *af) {
    if (!af->f) return cfx_set_error(CFX_EINVAL, "commit: file is not open");
    int bad = ferror(af->f);
    int err = bad ? EIO : 0;
    if (fclose(af->f) != 0 && !bad) bad = 1, err = errno;
    af->f = NULL;
    if (!bad && group && !dirs_open) { /* the group renames it, with the others */
        cfx_status s = group_add(group, af->path, af->tmp, af->slot);
        if (s == CFX_OK) {
            af->path = af->tmp = NULL, af->slot = -1;
            return CFX_OK;
        }
        remove(af->tmp);
        release(af);
        return s;
    }
    if (!bad && rename(af->tmp, af->path) != 0) bad = 1, err = errno;
    if (bad) {
        cfx_status s = cfx_set_error(CFX_EIO, "cannot write '%s': %s", af->path, strerror(err));
        remove(af->tmp);
        release(af);
        return s;
    }
    release(af);
    return CFX_OK;
}

void cfx_file_abort(cfx_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp) remove(af->tmp);
    release(af);
}

cfx_status cfx_file_read_all(const char *path, char **data, size_t *size) {
    if (!path || !data) return cfx_set_error(CFX_EINVAL, "read file: NULL path or output");
    *data = NULL;
    if (size) *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cfx_set_error(CFX_EIO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = cfx_malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *nb = cfx_realloc(buf, cap * 2);
        if (!nb) cfx_free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return CFX_ENOMEM;
    if (bad) {
        cfx_free(buf);
        return cfx_set_error(CFX_EIO, "cannot read '%s'", path);
    }
    buf[n] = '\0';
    *data = buf;
    if (size) *size = n;
    return CFX_OK;
}

/* ---------------------------------------------------------------- atomic folders --- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Removes a folder and everything under it, or a file (no symlinks are followed). */
static void remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool dir_is_empty(const char *path) {
    DIR *dir = opendir(path);
    if (!dir) return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(dir)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = false;
    closedir(dir);
    return empty;
}

cfx_status cfx_dir_create(cfx_dir *d, const char *path, int force) {
    memset(d, 0, sizeof *d);
    d->slot = -1;
    if (!path || !*path) return cfx_set_error(CFX_EINVAL, "no output folder given");
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return cfx_set_error(CFX_EINVAL, "'%s' exists and is not a folder", path);
        if (!force && !dir_is_empty(path))
            return cfx_set_error(CFX_EINVAL,
                                 "'%s' exists and is not empty (use --force to replace it)", path);
    }
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* "out/" names the folder out */
    d->path = cfx_malloc(n + 1);
    d->tmp = cfx_malloc(n + 32);
    if (!d->path || !d->tmp) { /* (nothing made yet: the names are not even filled in) */
        cfx_free(d->path), cfx_free(d->tmp);
        d->path = d->tmp = NULL;
        return CFX_ENOMEM;
    }
    memcpy(d->path, path, n);
    d->path[n] = '\0';
    snprintf(d->tmp, n + 32, "%s.tmp.%ld", d->path, (long)getpid());
    remove_tree(d->tmp);
    sweep_dead(d->path);
    d->slot = cfx__tmp_track(d->tmp, true);
    if (mkdir(d->tmp, 0777) != 0) {
        cfx_status s = cfx_set_error(CFX_EIO, "cannot create '%s': %s", d->tmp, strerror(errno));
        cfx__tmp_untrack(d->slot);
        d->slot = -1;
        cfx_free(d->tmp), d->tmp = NULL;
        cfx_dir_abort(d);
        return s;
    }
    dirs_open++;
    return CFX_OK;
}

cfx_status cfx_dir_commit(cfx_dir *d) {
    /* Replace an existing folder only now: move it aside, move the new one in, delete the old. */
    size_t n = strlen(d->path) + 32;
    char *old = cfx_malloc(n);
    if (!old) return CFX_ENOMEM;
    snprintf(old, n, "%s.old.%ld", d->path, (long)getpid());
    struct stat st;
    bool had = stat(d->path, &st) == 0;
    cfx_status s = CFX_OK;
    if (had && rename(d->path, old) != 0) {
        s = cfx_set_error(CFX_EIO, "cannot replace '%s': %s", d->path, strerror(errno));
    } else if (rename(d->tmp, d->path) != 0) {
        s = cfx_set_error(CFX_EIO, "cannot rename '%s' to '%s': %s", d->tmp, d->path,
                          strerror(errno));
        if (had) rename(old, d->path);
    } else {
        if (had) remove_tree(old);
        cfx__tmp_untrack(d->slot);
        d->slot = -1;
        cfx_free(d->tmp), d->tmp = NULL;
        cfx_free(d->path), d->path = NULL;
        dirs_open--;
    }
    cfx_free(old);
    return s;
}

void cfx_dir_abort(cfx_dir *d) {
    if (d->tmp) remove_tree(d->tmp), dirs_open--;
    cfx__tmp_untrack(d->slot);
    d->slot = -1;
    cfx_free(d->tmp), d->tmp = NULL;
    cfx_free(d->path), d->path = NULL;
}

CFX_NO_COVERAGE uint64_t cfx_fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}
