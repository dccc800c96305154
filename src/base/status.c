/* status.c - status codes and the thread-local error message (libuv-style table). */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define CFX__ERRMSG_SIZE 1024
static _Thread_local char errmsg[CFX__ERRMSG_SIZE];

const char *cfx_status_str(cfx_status s) {
    switch (s) {
#define CFX__STATUS_CASE(name, code, msg)                                                          \
    case CFX_##name:                                                                               \
        return msg;
        CFX_STATUS_MAP(CFX__STATUS_CASE)
#undef CFX__STATUS_CASE
    }
    return "unknown status";
}

const char *cfx_last_error(void) {
    return errmsg;
}

cfx_status cfx_set_error(cfx_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return code;
}

cfx_status cfx_error_context(cfx_status code, const char *fmt, ...) {
    char prefix[CFX__ERRMSG_SIZE], old[CFX__ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errmsg, sizeof old);
    if (old[0] == '\0') snprintf(old, sizeof old, "%s", cfx_status_str(code));
    /* A message that already opens with this context keeps one copy of it (a layer and its
     * caller both saying "load model" read "load model: load model: ..."). */
    size_t n = strlen(prefix);
    if (strncmp(old, prefix, n) == 0 && old[n] == ':' && old[n + 1] == ' ') {
        memcpy(errmsg, old, sizeof errmsg);
        return code;
    }
    snprintf(errmsg, sizeof errmsg, "%.500s: %.500s", prefix, old);
    return code;
}

void cfx__assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "cfx: internal error: %s:%d: assertion '%s' failed\n", file, line, cond);
    abort();
}
