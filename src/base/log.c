/* log.c - leveled messages to a callback; stderr by default. The library never writes stdout. */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>

static void log_stderr(cfx_log_level level, const char *msg, void *ctx) {
    static const char *names[] = {"error", "warning", "info", "debug"};
    (void)ctx;
    fprintf(stderr, "cfx: %s: %s\n", names[level], msg);
}

static cfx_log_level max_level = CFX_LOG_WARN;
static cfx_log_fn log_fn = log_stderr;
static void *log_ctx;

void cfx_log_set(cfx_log_level level, cfx_log_fn fn, void *ctx) {
    max_level = level;
    log_fn = fn ? fn : log_stderr;
    log_ctx = ctx;
}

void cfx_log(cfx_log_level level, const char *fmt, ...) {
    if (level > max_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_ctx);
}
