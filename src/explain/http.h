/* http.h - a small HTTP client over libcurl (src/explain/http.c), which it loads with dlopen on
 * the first request; not part of the public API.
 * The LLM client POSTs chat requests with it, and the V-CECE editors (src/concepts/) POST JSON
 * to image-editing servers, so it knows nothing of either. */
#ifndef CFX_EXPLAIN_HTTP_H
#define CFX_EXPLAIN_HTTP_H

#include "base/base.h"

typedef struct cfx__http_request {
    const char *url;
    const char *body; /* the JSON body, body_len bytes */
    size_t body_len;
    /* Extra header lines ("Authorization: Bearer ..."); Content-Type: application/json is
     * always sent. Headers never appear in an error message. */
    const char *const *headers;
    int nheaders;
    double timeout; /* seconds for a whole attempt (connect, send, reply); <= 0: 60 */
    int retries;    /* attempts after the first, on timeouts, connection errors and 5xx */
    double backoff; /* seconds before the first retry, doubled for each next one; < 0: 0 */
} cfx__http_request;

typedef struct cfx__http_reply {
    long status;  /* the last attempt's HTTP status, 0 when none came */
    char *body;   /* its body, NUL-terminated (cfx_free; cfx__http_reply_deinit) */
    size_t len;   /* bytes of body without the NUL */
    int attempts; /* requests sent */
} cfx__http_reply;

/* POSTs the body, retrying as the request says. CFX_OK with a 2xx status; otherwise
 * CFX_ETIMEOUT (every attempt timed out on the last one), CFX_ENET (connection errors, a
 * reply cut short, a 4xx or 5xx status), CFX_EINVAL (a bad URL) or CFX_ENOTFOUND (libcurl
 * cannot be loaded), with a message that names the URL (without any user:password part) and
 * what failed. out holds the last reply either way and is the caller's to deinit. Thread-safe: each
 * call has its own connection. */
cfx_status cfx__http_post(const cfx__http_request *r, cfx__http_reply *out);
/* Whether libcurl loads from soname (NULL: libcurl.so.4, what cfx__http_post loads) with every
 * function cfx__http_post calls: CFX_OK, or CFX_ENOTFOUND with a message naming the library
 * and the Debian package to install, which is also cfx__http_post's error when it fails. */
cfx_status cfx__http_check_library(const char *soname);
void cfx__http_reply_deinit(cfx__http_reply *r);

/* base64 of n bytes (RFC 4648, with padding) as a new NUL-terminated string (cfx_free). */
char *cfx__base64(const unsigned char *p, size_t n);
/* The bytes of n characters of base64 (standard or URL-safe alphabet; padding and white space
 * skipped) into *out (cfx_free), *len of them; CFX_EFORMAT naming the first bad character. */
cfx_status cfx__base64_decode(const char *s, size_t n, unsigned char **out, size_t *len);

#endif
