/* llm.c - a client for vision language models behind the OpenAI chat-completions API, asking
 * the competency paper's questions (section 4.1 and appendix B) about low-competency images.
 *
 * A request is one system message (the dataset's description, the paper's B.1/B.2, then its
 * description of the competency estimator, B.3) and one user message with two parts: the
 * instruction (B.4 without a counterfactual, B.5 with one) and the image as a PNG data URI
 * (the image alone, or the original left and the counterfactual right on white, as the paper
 * shows them). The reply's text is choices[0].message.content.
 *
 * Answers are cached by the FNV-1a hash of the exact request body, which holds the model,
 * temperature, token limit, prompts and image bytes (and never the API key, which travels in a
 * header), in a JSON Lines file that is appended and flushed after each answer: a run killed
 * halfway keeps what it was told, and a re-run asks only what is missing. Requests run on a
 * few threads at once (the concurrency option); each has its own HTTP connection. */
#include "explain/explain.h"
#include "explain/http.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* The paper's appendix B, verbatim. */
static const char B2_SIGNS[] =
    "I trained a CNN for image classification from a dataset containing speed limit signs. The "
    "classifier learns to distinguish between seven (7) different speed limits: 30, 50, 60, 70, "
    "80, 100, and 120 km/hr.";
static const char B3_ESTIMATOR[] =
    "In addition to the classification model, I trained a reconstruction-based competency "
    "estimator that estimates the probability that the classifier's prediction is accurate for a "
    "given image.";
static const char B4_WITHOUT[] =
    "Here is an image for which the classifier is not confident. In a single sentence, explain "
    "what properties of the image itself might lead to the observed reduction in model "
    "confidence.";
static const char B5_WITH[] =
    "Here are two images side-by-side. The first (on the left) is the original image, for which "
    "my classifier is not confident. The second image (on the right) is a similar image, for "
    "which my model is more confident. In a single sentence, explain what properties of the "
    "original image might have led to the observed reduction in model confidence.";

typedef struct {
    uint64_t key;
    char *reply;
} entry;

struct cfx_llm {
    cfx_llm_options o;
    char *url, *model, *auth, *description, *cache_path; /* copies; auth holds the key */
    FILE *cache;                                         /* opened for appending on first use */
    entry *entries;
    int64_t n, cap, sent;
    pthread_mutex_t lock; /* guards the entries, the cache file and sent */
};

char *cfx_llm_dataset_description(const char *name, const char *const *classes, int nclasses) {
    if (name && !strcmp(name, "signs")) return cfx_strdup(B2_SIGNS);
    size_t cap = 400;
    for (int i = 0; classes && i < nclasses; i++) cap += strlen(classes[i] ? classes[i] : "") + 8;
    char *s = cfx_malloc(cap);
    if (!s) return NULL;
    size_t at = (size_t)snprintf(
        s, cap, "I trained a CNN for image classification from %s.",
        name && !strcmp(name, "fashion-mnist")
            ? "the Fashion-MNIST dataset, small grey photographs of clothing on a black background"
            : "a dataset of images");
    if (classes && nclasses > 0) {
        at += (size_t)snprintf(s + at, cap - at,
                               " The classifier learns to distinguish between %d different "
                               "classes: ",
                               nclasses);
        for (int i = 0; i < nclasses; i++)
            at += (size_t)snprintf(s + at, cap - at, "%s%s%s", i == 0 ? "" : ", ",
                                   i == nclasses - 1 && nclasses > 1 ? "and " : "",
                                   classes[i] ? classes[i] : "?");
        snprintf(s + at, cap - at, ".");
    }
    return s;
}

cfx_tensor *cfx_llm_side_by_side(const float *image, const float *cf, int c, int h, int w) {
    enum { PAD = 10 };
    if (!image || !cf || c < 1 || h < 1 || w < 1) {
        cfx_set_error(CFX_EINVAL, "side by side: no image, counterfactual or size");
        return NULL;
    }
    int H = h + 2 * PAD, W = 2 * w + 3 * PAD;
    cfx_tensor *t = cfx_tensor_new(3, (int64_t[]){c, H, W});
    if (!t) return NULL;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = 1.0f;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++) {
            float *row = t->data + ((int64_t)ch * H + PAD + y) * W;
            memcpy(row + PAD, image + ((int64_t)ch * h + y) * w, (size_t)w * sizeof(float));
            memcpy(row + 2 * PAD + w, cf + ((int64_t)ch * h + y) * w, (size_t)w * sizeof(float));
        }
    return t;
}

/* "data:image/png;base64,..." of a (c,h,w) image (cfx_free). */
static char *data_uri(const float *chw, int c, int h, int w) {
    unsigned char *png = NULL;
    size_t len = 0;
    if (cfx_image_encode_png(chw, c, h, w, &png, &len) != CFX_OK) return NULL;
    char *b = cfx__base64(png, len);
    cfx_free(png);
    if (!b) return NULL;
    static const char head[] = "data:image/png;base64,";
    char *s = cfx_malloc(sizeof head + strlen(b));
    if (s) memcpy(s, head, sizeof head - 1), strcpy(s + sizeof head - 1, b);
    cfx_free(b);
    return s;
}

/* The messages array of one image as cJSON (NULL on failure, with a message). */
static cJSON *messages(const char *description, const float *image, const float *cf, int c, int h,
                       int w, const char *assistant) {
    char *uri = NULL;
    if (cf) {
        cfx_tensor *pair = cfx_llm_side_by_side(image, cf, c, h, w);
        if (pair) uri = data_uri(pair->data, c, h + 20, 2 * w + 30);
        cfx_tensor_free(pair);
    } else
        uri = data_uri(image, c, h, w);
    if (!uri) {
        cfx_error_context(CFX_ENOMEM, "the image of a request");
        return NULL;
    }
    const char *desc = description ? description : "";
    char *system = cfx_malloc(strlen(desc) + sizeof B3_ESTIMATOR + 2);
    cJSON *m = cJSON_CreateArray(), *sys = cJSON_CreateObject(), *user = cJSON_CreateObject(),
          *parts = cJSON_CreateArray(), *text = cJSON_CreateObject(), *img = cJSON_CreateObject(),
          *iu = cJSON_CreateObject();
    bool ok = m && sys && user && parts && text && img && iu && system;
    if (ok) {
        sprintf(system, "%s%s%s", desc, *desc ? " " : "", B3_ESTIMATOR);
        cJSON_AddItemToArray(m, sys), sys = NULL;
        ok = cJSON_AddStringToObject(cJSON_GetArrayItem(m, 0), "role", "system") &&
             cJSON_AddStringToObject(cJSON_GetArrayItem(m, 0), "content", system);
        ok = ok && cJSON_AddStringToObject(text, "type", "text") &&
             cJSON_AddStringToObject(text, "text", cf ? B5_WITH : B4_WITHOUT);
        cJSON_AddItemToArray(parts, text), text = NULL;
        ok = ok && cJSON_AddStringToObject(iu, "url", uri);
        ok = ok && cJSON_AddStringToObject(img, "type", "image_url");
        cJSON_AddItemToObject(img, "image_url", iu), iu = NULL;
        cJSON_AddItemToArray(parts, img), img = NULL;
        ok = ok && cJSON_AddStringToObject(user, "role", "user");
        cJSON_AddItemToObject(user, "content", parts), parts = NULL;
        cJSON_AddItemToArray(m, user), user = NULL;
        if (ok && assistant) {
            cJSON *a = cJSON_CreateObject();
            ok = a && cJSON_AddStringToObject(a, "role", "assistant") &&
                 cJSON_AddStringToObject(a, "content", assistant);
            if (a) cJSON_AddItemToArray(m, a);
        }
    }
    cJSON_Delete(sys), cJSON_Delete(user), cJSON_Delete(parts), cJSON_Delete(text);
    cJSON_Delete(img), cJSON_Delete(iu);
    cfx_free(system), cfx_free(uri);
    if (!ok) {
        cJSON_Delete(m);
        cfx_set_error(CFX_ENOMEM, "build the chat messages: out of memory");
        return NULL;
    }
    return m;
}

/* cJSON allocates with malloc; the library hands out cfx_malloc'd strings. */
static char *print_json(cJSON *j) {
    char *p = j ? cJSON_PrintUnformatted(j) : NULL;
    char *s = p ? cfx_strdup(p) : NULL;
    cJSON_free(p);
    if (!s) cfx_set_error(CFX_ENOMEM, "print JSON: out of memory");
    return s;
}

char *cfx_llm_messages(const char *description, const float *image, const float *cf, int c, int h,
                       int w, const char *assistant) {
    if (!image || c < 1 || h < 1 || w < 1) {
        cfx_set_error(CFX_EINVAL, "chat messages: no image or size");
        return NULL;
    }
    cJSON *m = messages(description, image, cf, c, h, w, assistant);
    if (!m) return NULL;
    char *s = print_json(m);
    cJSON_Delete(m);
    return s;
}

char *cfx_llm_request(const cfx_llm *l, const float *image, const float *cf, int c, int h, int w) {
    if (!l || !image || c < 1 || h < 1 || w < 1) {
        cfx_set_error(CFX_EINVAL, "chat request: no client, image or size");
        return NULL;
    }
    cJSON *body = cJSON_CreateObject(), *m = messages(l->description, image, cf, c, h, w, NULL);
    char *s = NULL;
    if (body && m && cJSON_AddStringToObject(body, "model", l->model)) {
        cJSON_AddItemToObject(body, "messages", m), m = NULL;
        if (cJSON_AddNumberToObject(body, "temperature", l->o.temperature) &&
            cJSON_AddNumberToObject(body, "max_tokens", l->o.max_tokens))
            s = print_json(body);
    }
    if (!s && body) cfx_set_error(CFX_ENOMEM, "chat request: out of memory");
    cJSON_Delete(body), cJSON_Delete(m);
    return s;
}

/* Trims white space at both ends, in place. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

cfx_status cfx_llm_parse_reply(const char *body, char **text) {
    if (!text) return cfx_set_error(CFX_EINVAL, "parse reply: nowhere to put the text");
    *text = NULL;
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        int n = body ? (int)strcspn(body, "\n") : 0;
        return cfx_set_error(CFX_EFORMAT,
                             "the server's reply is not a JSON object: '%.*s%s' (is the URL an "
                             "OpenAI-compatible API, such as http://host:8080/v1?)",
                             CFX_MIN(n, 120), body ? body : "", n > 120 ? "..." : "");
    }
    cfx_status s = CFX_OK;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error"),
                *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0), "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (err && !cJSON_IsNull(err)) {
        const cJSON *em = cJSON_GetObjectItemCaseSensitive(err, "message");
        s = cfx_set_error(CFX_EFORMAT, "the server answered with an error: %.300s",
                          cJSON_IsString(em)    ? em->valuestring
                          : cJSON_IsString(err) ? err->valuestring
                                                : "(no message)");
    } else if (!cJSON_IsArray(choices) || cJSON_GetArraySize(choices) == 0)
        s = cfx_set_error(CFX_EFORMAT, "the server's reply has no choices (an empty answer)");
    else {
        /* The text: a string, or the text parts of an array of parts. */
        size_t cap = 1;
        const cJSON *p;
        if (cJSON_IsString(content))
            cap += strlen(content->valuestring);
        else if (cJSON_IsArray(content))
            cJSON_ArrayForEach(p, content) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
                if (cJSON_IsString(t)) cap += strlen(t->valuestring) + 1;
            }
        char *all = cfx_malloc(cap);
        if (!all)
            s = cfx_set_error(CFX_ENOMEM, "parse reply: out of memory");
        else {
            all[0] = '\0';
            if (cJSON_IsString(content))
                strcpy(all, content->valuestring);
            else if (cJSON_IsArray(content))
                cJSON_ArrayForEach(p, content) {
                    const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
                    if (!cJSON_IsString(t)) continue;
                    if (all[0]) strcat(all, " ");
                    strcat(all, t->valuestring);
                }
            char *t = trim(all);
            if (!*t) {
                s = cfx_set_error(CFX_EFORMAT,
                                  "the server's reply has no text in choices[0].message.content");
                cfx_free(all);
            } else {
                memmove(all, t, strlen(t) + 1);
                *text = all;
            }
        }
    }
    cJSON_Delete(j);
    return s;
}

static entry *lookup(const cfx_llm *l, uint64_t key) {
    for (int64_t i = 0; i < l->n; i++)
        if (l->entries[i].key == key) return &l->entries[i];
    return NULL;
}

/* Adds an answer (takes reply). */
static cfx_status remember(cfx_llm *l, uint64_t key, char *reply) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 64;
        entry *e = cfx_realloc(l->entries, (size_t)cap * sizeof *e);
        if (!e) {
            cfx_free(reply);
            return cfx_set_error(CFX_ENOMEM, "the answer cache: out of memory");
        }
        l->entries = e, l->cap = cap;
    }
    l->entries[l->n++] = (entry){key, reply};
    return CFX_OK;
}

/* Reads the cache file, when there is one. A line that does not parse (the torn last line of
 * a run that was killed) is skipped: its request is asked again. */
static cfx_status read_cache(cfx_llm *l) {
    FILE *probe = fopen(l->cache_path, "rb");
    if (!probe) return CFX_OK;
    fclose(probe);
    char *text = NULL;
    size_t size;
    CFX_TRY(cfx_file_read_all(l->cache_path, &text, &size));
    cfx_status s = CFX_OK;
    for (char *p = text, *nl; s == CFX_OK && p < text + size; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) nl = text + size;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "key"),
                    *r = cJSON_GetObjectItemCaseSensitive(j, "reply");
        char *end = NULL;
        uint64_t key = cJSON_IsString(k) ? strtoull(k->valuestring, &end, 16) : 0;
        if (cJSON_IsString(r) && end && *end == '\0' && strlen(k->valuestring) == 16 &&
            !lookup(l, key)) {
            char *copy = cfx_strdup(r->valuestring);
            s = copy ? remember(l, key, copy) : CFX_ENOMEM;
        }
        cJSON_Delete(j);
    }
    cfx_free(text);
    return s;
}

void cfx_llm_free(cfx_llm *l) {
    if (!l) return;
    if (l->cache) fclose(l->cache);
    for (int64_t i = 0; i < l->n; i++) cfx_free(l->entries[i].reply);
    cfx_free(l->entries);
    if (l->auth) memset(l->auth, 0, strlen(l->auth)); /* no key left behind in freed memory */
    cfx_free(l->url), cfx_free(l->model), cfx_free(l->auth), cfx_free(l->description);
    cfx_free(l->cache_path);
    pthread_mutex_destroy(&l->lock);
    cfx_free(l);
}

cfx_llm *cfx_llm_new(const cfx_llm_options *o) {
    if (!o || !o->url || !*o->url || !o->model || !*o->model) {
        cfx_set_error(CFX_EINVAL, "LLM client: needs the server's URL and a model name");
        return NULL;
    }
    if (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8)) {
        cfx_set_error(CFX_EINVAL, "LLM client: the URL must start with http:// or https:// "
                                  "(e.g. http://127.0.0.1:8080/v1)");
        return NULL;
    }
    if (o->max_tokens < 0 || o->timeout < 0 || o->retries < 0 || o->backoff < 0 ||
        o->concurrency < 0 || !(o->temperature >= 0 && o->temperature <= 2)) {
        cfx_set_error(CFX_EINVAL, "LLM client: temperature must be in 0..2 and the token limit, "
                                  "timeout, retries, backoff and concurrency not negative");
        return NULL;
    }
    if (o->api_key && strpbrk(o->api_key, "\r\n")) {
        cfx_set_error(CFX_EINVAL, "LLM client: the API key holds a line break");
        return NULL;
    }
    cfx_llm *l = cfx_calloc(1, sizeof *l);
    if (!l) return NULL;
    pthread_mutex_init(&l->lock, NULL);
    l->o = *o;
    if (!l->o.max_tokens) l->o.max_tokens = 128;
    if (!l->o.timeout) l->o.timeout = 60;
    if (!l->o.backoff) l->o.backoff = 1;
    if (!l->o.concurrency) l->o.concurrency = 2;
    size_t n = strlen(o->url);
    while (n && o->url[n - 1] == '/') n--;
    static const char tail[] = "/chat/completions";
    bool whole =
        n >= sizeof tail - 1 && !strncmp(o->url + n - (sizeof tail - 1), tail, sizeof tail - 1);
    l->url = cfx_malloc(n + sizeof tail);
    if (l->url) {
        memcpy(l->url, o->url, n);
        strcpy(l->url + n, whole ? "" : tail);
    }
    l->model = cfx_strdup(o->model);
    l->description = cfx_strdup(o->description ? o->description : "");
    if (o->api_key) {
        l->auth = cfx_malloc(strlen(o->api_key) + 32);
        if (l->auth) sprintf(l->auth, "Authorization: Bearer %s", o->api_key);
    }
    l->o.api_key = NULL, l->o.description = NULL, l->o.cache = NULL, l->o.url = NULL;
    l->o.model = NULL;
    if (o->cache) l->cache_path = cfx_strdup(o->cache);
    if (!l->url || !l->model || !l->description || (o->api_key && !l->auth) ||
        (o->cache && !l->cache_path)) {
        cfx_set_error(CFX_ENOMEM, "LLM client: out of memory");
        cfx_llm_free(l);
        return NULL;
    }
    if (l->cache_path && read_cache(l) != CFX_OK) {
        cfx_error_context(CFX_EIO, "LLM client: read the answer cache '%s'", l->cache_path);
        cfx_llm_free(l);
        return NULL;
    }
    return l;
}

int64_t cfx_llm_sent(const cfx_llm *l) {
    return l ? l->sent : 0;
}

typedef struct {
    cfx_llm *l;
    cfx_llm_job *jobs;
    int64_t n, next, done, failed;
    int c, h, w;
    const cfx_progress *progress;
} batch;

/* Appends one answer to the cache file and flushes it (under the lock). */
static cfx_status append(cfx_llm *l, uint64_t key, const char *reply) {
    if (!l->cache_path) return CFX_OK;
    if (!l->cache && !(l->cache = fopen(l->cache_path, "ab")))
        return cfx_set_error(CFX_EIO, "the answer cache '%s': cannot open it: %s", l->cache_path,
                             strerror(errno));
    cJSON *j = cJSON_CreateObject();
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, key);
    char *line = NULL;
    if (j && cJSON_AddStringToObject(j, "key", hex) &&
        cJSON_AddStringToObject(j, "model", l->model) && cJSON_AddStringToObject(j, "reply", reply))
        line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!line) return cfx_set_error(CFX_ENOMEM, "the answer cache: out of memory");
    bool ok = fprintf(l->cache, "%s\n", line) > 0 && fflush(l->cache) == 0;
    cJSON_free(line);
    return ok ? CFX_OK
              : cfx_set_error(CFX_EIO, "the answer cache '%s': cannot write: %s", l->cache_path,
                              strerror(errno));
}

/* Sends one request body and parses the answer into *text (cfx_free). Unless fresh, an answer
 * to the same body comes from the cache (*cached set) and a new one is kept there. Takes body. */
static cfx_status send_body(cfx_llm *l, char *body, int fresh, char **text, int *cached) {
    *text = NULL, *cached = 0;
    uint64_t key = cfx_fnv1a(CFX_FNV1A_INIT, body, strlen(body));
    pthread_mutex_lock(&l->lock);
    entry *e = fresh ? NULL : lookup(l, key);
    char *hit = e ? cfx_strdup(e->reply) : NULL;
    if (!e) l->sent++;
    pthread_mutex_unlock(&l->lock);
    if (e) {
        cfx_free(body);
        if (!hit) return cfx_set_error(CFX_ENOMEM, "out of memory");
        *text = hit, *cached = 1;
        return CFX_OK;
    }
    const char *headers[1] = {l->auth};
    cfx__http_request rq = {.url = l->url,
                            .body = body,
                            .body_len = strlen(body),
                            .headers = headers,
                            .nheaders = l->auth ? 1 : 0,
                            .timeout = l->o.timeout,
                            .retries = l->o.retries,
                            .backoff = l->o.backoff};
    cfx__http_reply rp;
    cfx_status s = cfx__http_post(&rq, &rp);
    cfx_free(body);
    char *t = NULL;
    if (s == CFX_OK) {
        s = cfx_llm_parse_reply(rp.body, &t);
        if (s != CFX_OK) cfx_error_context(s, "POST %s", l->url);
    }
    cfx__http_reply_deinit(&rp);
    if (s != CFX_OK) return s;
    if (!fresh) {
        char *keep = cfx_strdup(t);
        pthread_mutex_lock(&l->lock);
        s = keep ? remember(l, key, keep) : cfx_set_error(CFX_ENOMEM, "out of memory");
        if (s == CFX_OK) s = append(l, key, t);
        pthread_mutex_unlock(&l->lock);
        if (s != CFX_OK) {
            cfx_free(t);
            return s;
        }
    }
    *text = t;
    return CFX_OK;
}

/* One job: the body, the cache, the request, the answer. */
static cfx_status ask_one(batch *b, cfx_llm_job *job) {
    char *body = cfx_llm_request(b->l, job->image, job->cf, b->c, b->h, b->w);
    if (!body) return CFX_ENOMEM; /* with cfx_llm_request's message */
    return send_body(b->l, body, 0, &job->reply, &job->cached);
}

cfx_status cfx_llm_chat(cfx_llm *l, const char *system, const char *text, const float *image, int c,
                        int h, int w, int fresh, char **reply) {
    if (reply) *reply = NULL;
    if (!l || !text || !reply || (image && (c < 1 || h < 1 || w < 1)))
        return cfx_set_error(CFX_EINVAL, "chat: no client, text, reply or image size");
    char *uri = image ? data_uri(image, c, h, w) : NULL;
    if (image && !uri) return cfx_error_context(CFX_ENOMEM, "the image of a request");
    /* {"model", "messages": [system?, user: [text, image_url?]], "temperature", "max_tokens"} */
    cJSON *body = cJSON_CreateObject(), *m = cJSON_AddArrayToObject(body, "messages");
    bool ok = body && m && cJSON_AddStringToObject(body, "model", l->model);
    if (ok && system) {
        cJSON *sys = cJSON_CreateObject();
        cJSON_AddItemToArray(m, sys);
        ok = sys && cJSON_AddStringToObject(sys, "role", "system") &&
             cJSON_AddStringToObject(sys, "content", system);
    }
    cJSON *user = ok ? cJSON_CreateObject() : NULL;
    if (user) cJSON_AddItemToArray(m, user);
    cJSON *parts = user && cJSON_AddStringToObject(user, "role", "user")
                       ? cJSON_AddArrayToObject(user, "content")
                       : NULL;
    cJSON *tp = parts ? cJSON_CreateObject() : NULL;
    if (tp) cJSON_AddItemToArray(parts, tp);
    ok = tp && cJSON_AddStringToObject(tp, "type", "text") &&
         cJSON_AddStringToObject(tp, "text", text);
    if (ok && uri) {
        cJSON *ip = cJSON_CreateObject(), *iu = NULL;
        if (ip) cJSON_AddItemToArray(parts, ip);
        ok = ip && cJSON_AddStringToObject(ip, "type", "image_url") &&
             (iu = cJSON_AddObjectToObject(ip, "image_url")) &&
             cJSON_AddStringToObject(iu, "url", uri);
    }
    ok = ok && cJSON_AddNumberToObject(body, "temperature", l->o.temperature) &&
         cJSON_AddNumberToObject(body, "max_tokens", l->o.max_tokens);
    char *s = ok ? print_json(body) : NULL;
    cJSON_Delete(body);
    cfx_free(uri);
    if (!s) return cfx_set_error(CFX_ENOMEM, "chat request: out of memory");
    int cached;
    return send_body(l, s, fresh, reply, &cached);
}

static void *worker(void *arg) {
    batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->l->lock);
        int64_t i = b->next < b->n ? b->next++ : -1;
        pthread_mutex_unlock(&b->l->lock);
        if (i < 0) break;
        cfx_llm_job *job = &b->jobs[i];
        job->status = ask_one(b, job);
        if (job->status != CFX_OK) snprintf(job->error, sizeof job->error, "%s", cfx_last_error());
        pthread_mutex_lock(&b->l->lock);
        b->done++;
        b->failed += job->status != CFX_OK;
        if (b->progress) cfx_progress_report(b->progress, "ask the LLM", b->done, b->n, NULL);
        pthread_mutex_unlock(&b->l->lock);
    }
    return NULL;
}

cfx_status cfx_llm_ask(cfx_llm *l, cfx_llm_job *jobs, int64_t n, int c, int h, int w,
                       const cfx_progress *progress, int64_t *failed) {
    if (failed) *failed = 0;
    if (!l || (n > 0 && !jobs) || n < 0 || c < 1 || h < 1 || w < 1)
        return cfx_set_error(CFX_EINVAL, "ask the LLM: no client, jobs or image size");
    for (int64_t i = 0; i < n; i++) {
        if (!jobs[i].image)
            return cfx_set_error(CFX_EINVAL, "ask the LLM: job %lld has no image", (long long)i);
        jobs[i].status = CFX_OK, jobs[i].reply = NULL, jobs[i].error[0] = '\0';
        jobs[i].cached = 0;
    }
    batch b = {.l = l, .jobs = jobs, .n = n, .c = c, .h = h, .w = w, .progress = progress};
    int nt = (int)CFX_MIN((int64_t)l->o.concurrency, n), started = 0;
    pthread_t t[64];
    nt = CFX_MIN(nt, 64);
    for (; started < nt - 1; started++)
        if (pthread_create(&t[started], NULL, worker, &b) != 0) break;
    worker(&b); /* the calling thread is one of the workers */
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    if (failed) *failed = b.failed;
    return CFX_OK;
}
