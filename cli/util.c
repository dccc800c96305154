/* util.c - error printing and JSON string output for the subcommands (options: opt.c). */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

/* Whether msg opens with "<word>: " for a word of the command ("train" of "train classifier"),
 * which the line's "cfx train classifier: " already says; the length to skip, or 0. */
static size_t said(const char *cmd, const char *msg) {
    for (const char *w = cmd; *w;) {
        size_t n = strcspn(w, " ");
        if (n && strncmp(msg, w, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') return n + 2;
        w += n;
        while (*w == ' ') w++;
    }
    return 0;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    char msg[2048];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    } else {
        snprintf(msg, sizeof msg, "%s", cfx_last_error());
    }
    fprintf(stderr, "cfx %s: %s\n", cmd, msg + said(cmd, msg));
    return 1;
}

int cli_fail_status(const char *cmd, const char *what) {
    const char *m = cfx_last_error();
    size_t n = strlen(what);
    if (strncmp(m, what, n) == 0 && m[n] == ':' && m[n + 1] == ' ') /* said once */
        return cli_fail(cmd, "%s", m);
    return cli_fail(cmd, "%s: %s", what, m);
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void cli_set_threads(long long n) {
    cfx_set_threads((int)n);
}
