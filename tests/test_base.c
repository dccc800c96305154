/* test_base.c - status table, error messages, allocation hook, seeded rng, and the removal of
 * temporaries when a signal ends the program. */
#include "test.h"
#include "base/base.h"
#include "base/strmap.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

CFX_TEST(base, status_strings) {
    CHECK_STR_EQ(cfx_status_str(CFX_OK), "success");
    CHECK_STR_EQ(cfx_status_str(CFX_ESHAPE), "shape mismatch");
    CHECK_STR_EQ(cfx_status_str((cfx_status)-999), "unknown status");
}

CFX_TEST(base, error_message_and_context) {
    CHECK_INT_EQ(cfx_set_error(CFX_EIO, "cannot open '%s'", "m.onnx"), CFX_EIO);
    CHECK_INT_EQ(cfx_error_context(CFX_EIO, "load model"), CFX_EIO);
    CHECK_STR_EQ(cfx_last_error(), "load model: cannot open 'm.onnx'");
}

CFX_TEST(base, calloc_overflow_fails_with_message) {
    cfx_set_error(CFX_OK, "%s", "");
    void *p = cfx_calloc(SIZE_MAX / 2, 3);
    CHECK(p == NULL);
    CHECK(strstr(cfx_last_error(), "overflow") != NULL);
}

CFX_TEST(base, allocator_hook_counts_and_injects) {
    cfx_test_alloc_begin(0);
    void *a = cfx_malloc(10), *b = cfx_aligned_alloc(100);
    CHECK(((uintptr_t)b & 63) == 0);
    cfx_free(a);
    cfx_aligned_free(b);
    cfx_aligned_free(NULL);
    CHECK_INT_EQ(cfx_test_alloc_end(), 0);
    cfx_test_alloc_begin(2);
    void *c = cfx_malloc(8), *d = cfx_malloc(8);
    CHECK(c != NULL);
    CHECK(d == NULL);
    CHECK(strstr(cfx_last_error(), "out of memory") != NULL);
    cfx_free(c);
    CHECK_INT_EQ(cfx_test_alloc_end(), 0);
}

CFX_TEST(base, rng_is_seeded_and_uniform) {
    cfx_rng a, b;
    cfx_rng_init(&a, 7);
    cfx_rng_init(&b, 7);
    for (int i = 0; i < 100; i++) CHECK(cfx_rng_u64(&a) == cfx_rng_u64(&b));
    cfx_rng_init(&b, 8);
    CHECK(cfx_rng_u64(&a) != cfx_rng_u64(&b));
    /* Mean and variance of 200k draws: uniform 1/2 and 1/12, normal 0 and 1. */
    double su = 0, su2 = 0, sn = 0, sn2 = 0;
    int n = 200000, counts[7] = {0};
    for (int i = 0; i < n; i++) {
        double u = cfx_rng_uniform(&a), z = cfx_rng_normal(&a);
        CHECK(u >= 0 && u < 1);
        su += u, su2 += u * u, sn += z, sn2 += z * z;
        counts[cfx_rng_below(&a, 7)]++;
    }
    CHECK_NEAR(su / n, 0.5, 0.005);
    CHECK_NEAR(su2 / n - (su / n) * (su / n), 1.0 / 12, 0.002);
    CHECK_NEAR(sn / n, 0.0, 0.01);
    CHECK_NEAR(sn2 / n, 1.0, 0.02);
    for (int k = 0; k < 7; k++) CHECK_NEAR(counts[k] / (double)n, 1.0 / 7, 0.005);
}

CFX_TEST(base, rng_shuffle_is_permutation) {
    cfx_rng r;
    cfx_rng_init(&r, 1);
    int64_t a[50];
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) a[i] = i;
    cfx_rng_shuffle(&r, a, 50);
    int moved = 0;
    for (int i = 0; i < 50; i++) seen[a[i]]++, moved += a[i] != i;
    for (int i = 0; i < 50; i++) CHECK_INT_EQ(seen[i], 1);
    CHECK(moved > 40);
    cfx_rng s1, s2;
    cfx_rng_split(&r, 0, &s1);
    cfx_rng_split(&r, 1, &s2);
    CHECK(cfx_rng_u64(&s1) != cfx_rng_u64(&s2));
}

/* A child with the handlers installed, a note set, an atomic file open and a tracked folder of
 * files, sends itself SIGINT: it must print the note and die of that signal with neither
 * temporary left; a file committed before stays. */
CFX_TEST(base, a_signal_removes_the_temporaries_in_progress) {
    const char *dir = cfx_test_tmpdir();
    char kept[600], open_path[600], folder[600], inside[700];
    snprintf(kept, sizeof kept, "%s/kept.txt", dir);
    snprintf(open_path, sizeof open_path, "%s/open.txt", dir);
    snprintf(folder, sizeof folder, "%s/folder.tmp", dir);
    snprintf(inside, sizeof inside, "%s/a.npy", folder);
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        cfx_clean_up_on_signals();
        cfx_set_signal_note("resume with --resume");
        cfx_file done, busy;
        if (cfx_file_create(&done, kept) != CFX_OK || fputs("kept\n", done.f) < 0 ||
            cfx_file_commit(&done) != CFX_OK || mkdir(folder, 0777) != 0 ||
            cfx__tmp_track(folder, true) < 0)
            _exit(3);
        FILE *f = fopen(inside, "wb");
        if (!f || fputs("x", f) < 0 || fclose(f) != 0) _exit(4);
        if (cfx_file_create(&busy, open_path) != CFX_OK || fputs("half", busy.f) < 0) _exit(5);
        fflush(busy.f);
        raise(SIGINT);
        _exit(6); /* not reached: the handler re-raises with the default action */
    }
    close(fds[1]);
    char said[256] = "";
    size_t len = 0;
    for (ssize_t got;
         len < sizeof said - 1 && (got = read(fds[0], said + len, sizeof said - 1 - len)) > 0;)
        len += (size_t)got; /* to end of file: the child's death closes its end */
    said[len] = '\0';
    close(fds[0]);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "child status %d", st);
    CHECK_MSG(strcmp(said, "\nresume with --resume\n") == 0, "the note on stderr: '%s'", said);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", open_path, (long)pid);
    CHECK_MSG(access(tmp, F_OK) != 0, "%s is left", tmp);
    CHECK_MSG(access(folder, F_OK) != 0, "%s is left", folder);
    CHECK(access(open_path, F_OK) != 0);
    CHECK_MSG(access(kept, F_OK) == 0, "the committed %s is gone", kept);
    /* A signal the program was started ignoring (as under nohup) stays ignored. */
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGHUP, SIG_IGN);
        cfx_clean_up_on_signals();
        raise(SIGHUP);
        _exit(0);
    }
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "an ignored SIGHUP ended the child (%d)", st);
}

/* The string map against a brute-force list: 5000 keys put (some twice, overwriting), looked
 * up whole and as the prefix of a longer text, and absent keys; out of memory while growing
 * fails cleanly and leaves the map as it was. */
CFX_TEST(base, string_map_matches_a_list) {
    enum { N = 5000 };
    static char keys[N][16];
    cfx__strmap m = {0};
    CHECK_INT_EQ(cfx__strmap_get(&m, "x", 1), -1);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i * 7919 % 100003);
        CHECK_OK(cfx__strmap_put(&m, keys[i], i));
    }
    for (int i = 0; i < N; i += 3) CHECK_OK(cfx__strmap_put(&m, keys[i], -i - 10));
    CHECK_INT_EQ((long long)m.n, N);
    CHECK((m.cap & (m.cap - 1)) == 0 && m.cap >= 2 * m.n);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int32_t want = i % 3 == 0 ? -i - 10 : i;
        char text[32];
        snprintf(text, sizeof text, "%s.n.01", keys[i]); /* looked up inside a longer text */
        if (cfx__strmap_get(&m, keys[i], strlen(keys[i])) != want ||
            cfx__strmap_get(&m, text, strlen(keys[i])) != want)
            bad++;
    }
    CHECK_INT_EQ(bad, 0);
    CHECK_INT_EQ(cfx__strmap_get(&m, "k1", 1), -1); /* "k", a prefix of keys */
    CHECK_INT_EQ(cfx__strmap_get(&m, "absent", 6), -1);
    /* Growth that runs out of memory fails and keeps what was there. */
    cfx__strmap small = {0};
    CHECK_OK(cfx__strmap_put(&small, "a", 1));
    size_t cap = small.cap;
    for (size_t i = small.n; 2 * (i + 1) <= cap; i++) CHECK_OK(cfx__strmap_put(&small, keys[i], 2));
    for (long fail_at = 1; fail_at <= 2; fail_at++) { /* the keys' block, then the values' */
        cfx_test_alloc_begin(fail_at);
        CHECK_ERR(cfx__strmap_put(&small, "overflowing", 3), CFX_ENOMEM);
        CHECK_INT_EQ(cfx_test_alloc_end(), 0);
    }
    CHECK_INT_EQ(cfx__strmap_get(&small, "a", 1), 1);
    CHECK_INT_EQ((long long)small.cap, (long long)cap);
    cfx__strmap_deinit(&small);
    cfx__strmap_deinit(&m);
    CHECK(m.keys == NULL && m.cap == 0);
}

/* An atomic folder appears whole at commit, replaces a non-empty one only when forced, and
 * leaves nothing on abort; a trailing slash names the same folder. */
CFX_TEST(base, atomic_folder_commits_whole_or_nothing) {
    char out[600], file[700];
    snprintf(out, sizeof out, "%s/bundle", cfx_test_tmpdir());
    cfx_dir d;
    CHECK_OK(cfx_dir_create(&d, out, 0));
    CHECK(access(out, F_OK) != 0); /* nothing at the final path yet */
    snprintf(file, sizeof file, "%s/a.txt", d.tmp);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f) fputs("one", f), fclose(f);
    CHECK_OK(cfx_dir_commit(&d));
    snprintf(file, sizeof file, "%s/a.txt", out);
    CHECK(access(file, F_OK) == 0);
    /* Not empty: refused without force, and the old folder stays. */
    char slash[620];
    snprintf(slash, sizeof slash, "%s/", out);
    CHECK_ERR(cfx_dir_create(&d, slash, 0), CFX_EINVAL);
    CHECK(strstr(cfx_last_error(), "--force") != NULL);
    CHECK_OK(cfx_dir_create(&d, slash, 1));
    CHECK(strstr(d.tmp, "bundle.tmp.") != NULL && strstr(d.tmp, "/.tmp") == NULL);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s", d.tmp);
    cfx_dir_abort(&d);
    CHECK(access(tmp, F_OK) != 0);
    CHECK(access(file, F_OK) == 0);
    /* Forced and committed: the old folder's file is gone. */
    CHECK_OK(cfx_dir_create(&d, out, 1));
    CHECK_OK(cfx_dir_commit(&d));
    CHECK(access(file, F_OK) != 0);
    CHECK(access(out, F_OK) == 0);
    /* A file in the way is refused. */
    CHECK_ERR(cfx_dir_create(&d, "/etc/passwd", 1), CFX_EINVAL);
}

/* Issue 22: failing commands left partial outputs (the model written, then the grid failed).
 * A group of outputs is renamed into place only when every one is written; an abort, or a
 * failure inside a library call that writes two files (cfx_onnx_split), leaves none. */
CFX_TEST(base, outputs_are_committed_together_or_not_at_all) {
    const char *dir = cfx_test_tmpdir();
    char a[700], b[700], bad[700];
    snprintf(a, sizeof a, "%s/a.npy", dir);
    snprintf(b, sizeof b, "%s/b.npy", dir);
    snprintf(bad, sizeof bad, "%s/missing/c.npy", dir);
    cfx_tensor *t = cfx_tensor_new(1, (int64_t[]){3});
    cfx_outputs o;
    CHECK_OK(cfx_outputs_begin(&o));
    CHECK_OK(cfx_npy_write(a, t));
    CHECK(access(a, F_OK) != 0); /* written, not yet in place */
    cfx_tensor *back = cfx_npy_read(cfx_outputs_path(&o, a));
    CHECK_MSG(back && back->numel == 3, "%s", cfx_last_error());
    cfx_tensor_free(back);
    CHECK(cfx_npy_write(bad, t) != CFX_OK);
    cfx_outputs_abort(&o);
    CHECK(access(a, F_OK) != 0);
    /* Committed: both appear. */
    CHECK_OK(cfx_outputs_begin(&o));
    CHECK_OK(cfx_npy_write(a, t));
    CHECK_OK(cfx_npy_write(b, t));
    CHECK_OK(cfx_outputs_commit(&o));
    CHECK(access(a, F_OK) == 0 && access(b, F_OK) == 0);
    /* No temporary is left in the folder. */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls '%s' | grep tmp)\"", dir);
    CHECK_MSG(system(cmd) == 0, "a temporary was left in %s", dir);
    /* Outside a group, files commit one by one, as before. */
    remove(a);
    CHECK_OK(cfx_npy_write(a, t));
    CHECK(access(a, F_OK) == 0);
    cfx_tensor_free(t);
}

/* Issue 22: a temporary left by a process killed with SIGKILL (which no handler sees) was never
 * removed. The next output to the same path removes those of processes that no longer exist,
 * files and folders, and leaves a live process's alone. */
CFX_TEST(base, temporaries_of_dead_processes_are_swept) {
    const char *dir = cfx_test_tmpdir();
    fflush(stdout);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0); /* now no process has that pid (until it is reused) */
    char path[700], file_tmp[800], dir_tmp[800], live_tmp[800], inner[900], out[700];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    snprintf(file_tmp, sizeof file_tmp, "%s.tmp.%ld", path, (long)dead);
    snprintf(live_tmp, sizeof live_tmp, "%s.tmp.1", path); /* init is always alive */
    snprintf(out, sizeof out, "%s/folder", dir);
    snprintf(dir_tmp, sizeof dir_tmp, "%s.tmp.%ld", out, (long)dead);
    snprintf(inner, sizeof inner, "%s/half.npy", dir_tmp);
    const char *files[] = {file_tmp, live_tmp, inner};
    CHECK(mkdir(dir_tmp, 0700) == 0);
    for (int k = 0; k < 3; k++) {
        FILE *f = fopen(files[k], "w");
        CHECK(f != NULL);
        if (f) fputs("half-written", f), fclose(f);
    }
    cfx_tensor *t = cfx_tensor_new(1, (int64_t[]){3});
    CHECK_OK(cfx_npy_write(path, t));
    CHECK_MSG(access(file_tmp, F_OK) != 0, "%s was not swept", file_tmp);
    CHECK_MSG(access(live_tmp, F_OK) == 0, "%s (a live pid's) was removed", live_tmp);
    cfx_dir d;
    CHECK_OK(cfx_dir_create(&d, out, 0));
    CHECK_MSG(access(dir_tmp, F_OK) != 0, "%s was not swept", dir_tmp);
    cfx_dir_abort(&d);
    cfx_tensor_free(t);
}
