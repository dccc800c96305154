/* util.c - error printing and JSON string output for the subcommands (options: opt.c). */
#include "cli.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

int cli_fail(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "cfx %s: ", cmd);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    } else {
        fputs(cfx_last_error(), stderr);
    }
    fputc('\n', stderr);
    return 1;
}

int cli_fail_status(const char *cmd, const char *what) {
    return cli_fail(cmd, "%s: %s", what, cfx_last_error());
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

bool cli_same_path(const char *a, const char *b) {
    if (!a || !b) return false;
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    while (lb > 1 && b[lb - 1] == '/') lb--;
    return la == lb && strncmp(a, b, la) == 0;
}
