/* http.c - POST a JSON body and read the reply, over libcurl, with a total timeout per attempt
 * and retries with exponential backoff on what a later attempt may fix: timeouts, connection
 * errors, replies cut short and 5xx statuses. A 4xx is the request's fault, so it is not
 * retried. Each call has its own easy handle, so calls from several threads never share a
 * connection; curl_global_init, which is not thread-safe, runs once under pthread_once. Error
 * messages name the URL, with any user:password part replaced, and never a header: the caller
 * puts API keys there.
 *
 * libcurl is opened with dlopen on the first request, not linked: linked, it and the 30
 * libraries it needs (TLS, Kerberos, LDAP, SSH, ...) were mapped and relocated at the start of
 * every cfx process, 12 M instructions and 4-7 ms before main, though only the LLM and the
 * V-CECE editors make requests. <curl/curl.h> still gives the types and constants. */
#include "explain/http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

/* The runtime library of Debian's libcurl4-openssl-dev, which the build compiles against. */
#define CURL_SONAME  "libcurl.so.4"
#define CURL_PACKAGE "libcurl4"

/* The libcurl functions this file calls, resolved from the library. */
typedef struct {
    __typeof__(curl_global_init) *global_init;
    __typeof__(curl_easy_init) *easy_init;
    __typeof__(curl_easy_setopt) *easy_setopt;
    __typeof__(curl_easy_perform) *easy_perform;
    __typeof__(curl_easy_getinfo) *easy_getinfo;
    __typeof__(curl_easy_cleanup) *easy_cleanup;
    __typeof__(curl_easy_strerror) *easy_strerror;
    __typeof__(curl_slist_append) *slist_append;
    __typeof__(curl_slist_free_all) *slist_free_all;
} curl_api;

/* Replies larger than this are refused: a chat reply is a few kilobytes. */
#define MAX_REPLY ((size_t)64 << 20)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static curl_api curl;
static cfx_status global_status;
static char global_error[600];

static cfx_status open_curl(const char *soname, curl_api *api) {
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        return cfx_set_error(CFX_ENOTFOUND,
                             "cannot load libcurl (%s); install Debian's %s: apt-get install %s",
                             dlerror(), CURL_PACKAGE, CURL_PACKAGE);
    }
    /* dlsym gives a void *; copied, not cast, into the function pointer, as ISO C wants. */
#define RESOLVE(field, name)                                                                       \
    do {                                                                                           \
        void *f = dlsym(h, name);                                                                  \
        if (!f) {                                                                                  \
            dlclose(h);                                                                            \
            return cfx_set_error(CFX_ENOTFOUND, "%s has no %s; install Debian's %s", soname, name, \
                                 CURL_PACKAGE);                                                    \
        }                                                                                          \
        memcpy(&api->field, &f, sizeof f);                                                         \
    } while (0)
    RESOLVE(global_init, "curl_global_init");
    RESOLVE(easy_init, "curl_easy_init");
    RESOLVE(easy_setopt, "curl_easy_setopt");
    RESOLVE(easy_perform, "curl_easy_perform");
    RESOLVE(easy_getinfo, "curl_easy_getinfo");
    RESOLVE(easy_cleanup, "curl_easy_cleanup");
    RESOLVE(easy_strerror, "curl_easy_strerror");
    RESOLVE(slist_append, "curl_slist_append");
    RESOLVE(slist_free_all, "curl_slist_free_all");
#undef RESOLVE
    /* The library stays loaded for the life of the process. */
    return CFX_OK;
}

cfx_status cfx__http_check_library(const char *soname) {
    curl_api api;
    return open_curl(soname ? soname : CURL_SONAME, &api);
}

static void global_init(void) {
    global_status = open_curl(CURL_SONAME, &curl);
    if (global_status == CFX_OK) {
        CURLcode c = curl.global_init(CURL_GLOBAL_DEFAULT);
        if (c != CURLE_OK)
            global_status =
                cfx_set_error(CFX_ENET, "curl_global_init failed: %s", curl.easy_strerror(c));
    }
    if (global_status != CFX_OK)
        snprintf(global_error, sizeof global_error, "%s", cfx_last_error());
}

void cfx__http_reply_deinit(cfx__http_reply *r) {
    if (!r) return;
    cfx_free(r->body);
    memset(r, 0, sizeof *r);
}

/* The URL as messages show it: user:password@ becomes ***@ when the URL carries credentials. */
static void shown_url(const char *url, char *out, size_t cap) {
    const char *start = strstr(url, "://");
    start = start ? start + 3 : url;
    const char *end = start + strcspn(start, "/?#"),
               *at = memchr(start, '@', (size_t)(end - start));
    if (at)
        snprintf(out, cap, "%.*s***%s", (int)(start - url), url, at);
    else
        snprintf(out, cap, "%s", url);
}

typedef struct {
    char *data;
    size_t len, cap;
    bool too_big, no_memory;
} buffer;

static size_t on_data(char *p, size_t size, size_t n, void *user) {
    buffer *b = user;
    size_t add = size * n;
    if (b->len + add + 1 > MAX_REPLY) {
        b->too_big = true;
        return 0;
    }
    if (b->len + add + 1 > b->cap) {
        size_t cap = CFX_MAX(b->cap * 2, b->len + add + 1);
        cap = CFX_MAX(cap, (size_t)4096);
        char *d = cfx_realloc(b->data, cap);
        if (!d) {
            b->no_memory = true;
            return 0;
        }
        b->data = d, b->cap = cap;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static void sleep_seconds(double s) {
    if (s <= 0) return;
    struct timespec t = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&t, &t) != 0) {
    }
}

/* Whether an attempt that failed in transport may succeed when repeated. */
static bool transient(CURLcode c) {
    switch (c) {
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_OUT_OF_MEMORY:
        case CURLE_WRITE_ERROR: /* our buffer refused the reply: too big or no memory */
        case CURLE_BAD_FUNCTION_ARGUMENT:
            return false;
        default:
            return true;
    }
}

char *cfx__base64(const unsigned char *p, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = cfx_malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = A[v >> 18], *o++ = A[v >> 12 & 63], *o++ = A[v >> 6 & 63], *o++ = A[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        *o++ = A[v >> 18], *o++ = A[v >> 12 & 63];
        *o++ = i + 1 < n ? A[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

cfx_status cfx__base64_decode(const char *s, size_t n, unsigned char **out, size_t *len) {
    *out = NULL, *len = 0;
    unsigned char *o = cfx_malloc(n / 4 * 3 + 4);
    if (!o) return cfx_set_error(CFX_ENOMEM, "base64: out of memory");
    unsigned v = 0;
    int bits = 0, pad = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int d = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '+' || ch == '-' ? 62
                : ch == '/' || ch == '_' ? 63
                                         : -1;
        if (ch == '=') {
            pad++;
            continue;
        }
        if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') continue;
        if (d < 0 || pad) {
            cfx_free(o);
            return cfx_set_error(CFX_EFORMAT, "not base64: '%c' at byte %zu", ch, i);
        }
        v = (v << 6 | (unsigned)d) & 0xffffff, bits += 6;
        if (bits >= 8) bits -= 8, o[k++] = (unsigned char)(v >> bits & 0xff);
    }
    *out = o, *len = k;
    return CFX_OK;
}

cfx_status cfx__http_post(const cfx__http_request *r, cfx__http_reply *out) {
    if (!out) return cfx_set_error(CFX_EINVAL, "http: no reply to fill");
    memset(out, 0, sizeof *out);
    if (!r || !r->url || !r->body) return cfx_set_error(CFX_EINVAL, "http: no URL or body");
    char url[512];
    shown_url(r->url, url, sizeof url);
    if (strncmp(r->url, "http://", 7) && strncmp(r->url, "https://", 8))
        return cfx_set_error(CFX_EINVAL, "POST %s: the URL must start with http:// or https://",
                             url);
    pthread_once(&once, global_init);
    if (global_status != CFX_OK)
        return cfx_set_error(global_status, "POST %s: %s", url, global_error);
    CURL *h = curl.easy_init();
    struct curl_slist *hdr = curl.slist_append(NULL, "Content-Type: application/json");
    /* Without this, curl waits up to a second for "100 Continue" before bodies over 1 MB. */
    struct curl_slist *more = hdr ? curl.slist_append(hdr, "Expect:") : NULL;
    for (int i = 0; more && i < r->nheaders; i++) more = curl.slist_append(more, r->headers[i]);
    if (!h || !more) {
        curl.slist_free_all(more ? more : hdr);
        curl.easy_cleanup(h);
        return cfx_set_error(CFX_ENOMEM, "POST %s: out of memory", url);
    }
    hdr = more;
    double timeout = r->timeout > 0 ? r->timeout : 60;
    char why[CURL_ERROR_SIZE];
    buffer b = {0};
    curl.easy_setopt(h, CURLOPT_URL, r->url);
    curl.easy_setopt(h, CURLOPT_POST, 1L);
    curl.easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
    curl.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl.easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl.easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl.easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl.easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM for timeouts: we may be threaded */
    curl.easy_setopt(h, CURLOPT_ERRORBUFFER, why);
    curl.easy_setopt(h, CURLOPT_USERAGENT, "cfx");
    cfx_status s = CFX_OK;
    double wait = r->backoff > 0 ? r->backoff : 0;
    for (int attempt = 0;; attempt++) {
        b.len = 0, b.too_big = b.no_memory = false;
        if (b.data) b.data[0] = '\0';
        why[0] = '\0';
        CURLcode c = curl.easy_perform(h);
        out->attempts = attempt + 1;
        out->status = 0;
        bool again;
        if (c == CURLE_OK) {
            curl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
            if (out->status >= 200 && out->status < 300) {
                s = CFX_OK;
                break;
            }
            /* The first line of the body says what the server did not like. */
            int show = (int)strcspn(b.data ? b.data : "", "\n");
            s = cfx_set_error(CFX_ENET, "POST %s: the server answered HTTP %ld%s%.*s%s", url,
                              out->status, show ? ": " : "", CFX_MIN(show, 300),
                              b.data ? b.data : "", show > 300 ? "..." : "");
            again = out->status >= 500;
        } else if (b.too_big || b.no_memory) {
            s = cfx_set_error(b.no_memory ? CFX_ENOMEM : CFX_ENET, "POST %s: %s", url,
                              b.no_memory ? "out of memory for the reply"
                                          : "the reply is larger than 64 MiB");
            again = false;
        } else {
            const char *what = why[0] ? why : curl.easy_strerror(c);
            if (c == CURLE_OPERATION_TIMEDOUT)
                s = cfx_set_error(CFX_ETIMEOUT, "POST %s: no complete reply within %g s (%s)", url,
                                  timeout, what);
            else
                s = cfx_set_error(c == CURLE_URL_MALFORMAT ? CFX_EINVAL : CFX_ENET, "POST %s: %s",
                                  url, what);
            again = transient(c);
        }
        if (!again || attempt >= r->retries) {
            if (attempt > 0) {
                char m[1200];
                snprintf(m, sizeof m, "%s", cfx_last_error());
                cfx_set_error(s, "%s (after %d attempts)", m, attempt + 1);
            }
            break;
        }
        sleep_seconds(CFX_MIN(wait, 30.0));
        wait *= 2;
    }
    out->body = b.data, out->len = b.len;
    if (!out->body && (out->body = cfx_malloc(1))) out->body[0] = '\0';
    curl.slist_free_all(hdr);
    curl.easy_cleanup(h);
    return s;
}
