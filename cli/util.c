/* util.c - error printing and JSON string output for the subcommands (options: opt.c). */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

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
