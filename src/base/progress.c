/* progress.c - progress reporting for long work, and a ready-made bar on stderr. */
#include "base/base.h"

#include <stdio.h>
#include <unistd.h>

void cfx_progress_report(const cfx_progress *p, const char *label, int64_t done, int64_t total,
                         const char *note) {
    if (p && p->fn) p->fn(p->ctx, label, done, total, note);
}

static void format_secs(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7)
        snprintf(buf, n, "--:--");
    else if (s >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
    else
        snprintf(buf, n, "%02d:%02d", (int)s / 60, (int)s % 60);
}

/* One bar at a time: the state belongs to the label being drawn. Nothing is drawn for work that
 * ends within half a second. On a terminal the line is then redrawn at most ten times a second;
 * in a log file a line is written every 10%. */
void cfx_progress_stderr(void *ctx, const char *label, int64_t done, int64_t total,
                         const char *note) {
    static char cur_label[128];
    static double t0, last_draw;
    static int last_decile = -1, shown;
    (void)ctx;
    double now = cfx_now();
    if (!label) label = "";
    if (strncmp(cur_label, label, sizeof cur_label - 1) != 0 || done == 0) {
        snprintf(cur_label, sizeof cur_label, "%s", label);
        t0 = now;
        last_draw = 0;
        last_decile = -1;
        shown = 0;
    }
    int finished = total > 0 && done >= total;
    double elapsed = now - t0;
    if (!shown && elapsed < 0.5) return;
    shown = 1;
    /* Asked only now: a command under half a second (`concepts nearest --all` calls this once a
     * query) made a system call per update for nothing. */
    int tty = isatty(STDERR_FILENO);
    char el[32], eta[32];
    format_secs(el, sizeof el, elapsed);
    format_secs(eta, sizeof eta,
                done > 0 && total > 0 ? elapsed * (double)(total - done) / (double)done : -1);
    if (tty) {
        if (!finished && now - last_draw < 0.1) return;
        last_draw = now;
        char bar[31];
        int fill = total > 0 ? (int)(30 * done / total) : 0;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        if (total > 0)
            fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s<%s %s", label, bar, (long long)done,
                    (long long)total, el, eta, note ? note : "");
        else
            fprintf(stderr, "\r\033[K%s %lld %s %s", label, (long long)done, el, note ? note : "");
        if (finished) fputc('\n', stderr);
    } else {
        int decile = total > 0 ? (int)(10 * done / total) : -1;
        if (decile == last_decile && !finished) return;
        last_decile = decile;
        fprintf(stderr, "%s %lld/%lld elapsed %s eta %s %s\n", label, (long long)done,
                (long long)total, el, eta, note ? note : "");
    }
    fflush(stderr);
}
