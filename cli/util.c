/* util.c - error printing, number parsing and JSON string output for the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

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

bool cli_parse_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi,
                   long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_fail(cmd, "%s takes a whole number from %lld to %lld, not '%s'", flag, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_double(const char *cmd, const char *flag, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) {
        cli_fail(cmd, "%s takes a number, not '%s'", flag, s);
        return false;
    }
    *out = v;
    return true;
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
