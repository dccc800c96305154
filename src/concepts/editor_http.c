/* editor_http.c - image editors behind HTTP for V-CECE's loop: the AUTOMATIC1111 web UI's
 * Replacer extension, as the paper ran it, and the web UI's own /sdapi/v1/img2img with a mask.
 *
 * Replacer (POST URL/replacer/replace) finds what to paint over by a detection prompt, so it is
 * sent words only: detection_prompt is the old concept (or, for an insertion, a region such as
 * "background"), positive_prompt the new concept (or a background description for a removal),
 * and V-CECE's settings: its negative prompt, mask_blur 10, cfg_scale 10, denoise 1, steps 40,
 * use_hires_fix true; the rest stays the extension's defaults. img2img (POST
 * URL/sdapi/v1/img2img) is sent the mask itself: the concept's mask (or the insertion's place)
 * dilated and blurred, as a grey PNG, with the same prompts and settings.
 *
 * The reply's image (Replacer's "image", or the first of "images"; base64 of a PNG or JPEG,
 * with or without a data URI head) is decoded and must have the input's size. A reply without
 * an image is "nothing detected" (Replacer found no such object) and an error for that image,
 * as are a reply that is not JSON and an image that does not decode. Requests are retried on
 * timeouts, connection errors and 5xx statuses (explain/http.c). */
#include "concepts/concepts.h"
#include "explain/http.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

/* V-CECE's negative prompt (DESIGN, "Concepts"). */
static const char NEGATIVE[] = "cartoon, unrealistic proportions, blurry edges, low detail, "
                               "overexposed lighting, distorted shapes";

typedef enum { REPLACER, IMG2IMG } http_kind;

typedef struct {
    http_kind kind;
    char *url; /* the endpoint */
    char *background, *region;
    cfx_http_editor_options o;
} http_editor;

static void http_free(void *user) {
    http_editor *e = user;
    if (!e) return;
    cfx_free(e->url), cfx_free(e->background), cfx_free(e->region);
    cfx_free(e);
}

/* The word of a concept: "ankle_boot.n.01" -> "ankle boot". */
static void concept_word(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s", name ? name : "");
    char *dot = strchr(out, '.');
    if (dot) *dot = '\0';
    for (char *p = out; *p; p++)
        if (*p == '_') *p = ' ';
}

/* base64 of a PNG of a (c,h,w) image (cfx_free); NULL with a message. */
static char *png_b64(const float *chw, int c, int h, int w) {
    unsigned char *png = NULL;
    size_t len = 0;
    if (cfx_image_encode_png(chw, c, h, w, &png, &len) != CFX_OK) return NULL;
    char *b = cfx__base64(png, len);
    cfx_free(png);
    if (!b) cfx_set_error(CFX_ENOMEM, "out of memory");
    return b;
}

/* The inpainting mask of img2img as a grey (1,h,w) image: the region dilated by 2 pixels (so
 * an anti-aliased rim goes too) and box-blurred over 5x5 (a soft edge). */
static char *mask_b64(const uint8_t *region, int h, int w) {
    size_t P = (size_t)h * (size_t)w;
    uint8_t *grown = cfx_malloc(P);
    float *m = cfx_malloc(P * sizeof *m);
    char *b = NULL;
    if (grown && m) {
        cfx__mask_dilate(region, h, w, 2, grown);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int s = 0, n = 0;
                for (int dy = -2; dy <= 2; dy++)
                    for (int dx = -2; dx <= 2; dx++) {
                        int yy = y + dy, xx = x + dx;
                        if (yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
                        s += grown[(size_t)yy * w + xx], n++;
                    }
                m[(size_t)y * w + x] = (float)s / (float)n;
            }
        b = png_b64(m, 1, h, w);
    } else {
        cfx_set_error(CFX_ENOMEM, "out of memory");
    }
    cfx_free(grown);
    cfx_free(m);
    return b;
}

/* The request body of one edit (cfx_free); NULL with a message. */
static char *request_body(const http_editor *e, const cfx_edit_request *req,
                          const cfx_tensor *image) {
    int h = (int)image->shape[1], w = (int)image->shape[2];
    char from[256], to[256];
    concept_word(req->from, from, sizeof from);
    concept_word(req->to, to, sizeof to);
    /* What goes away (the old concept, or the place of an insertion) and what comes in (the
     * new concept, or the background for a removal). */
    const char *away = req->kind == CFX_EDIT_INSERT ? e->region : from;
    const char *in = req->kind == CFX_EDIT_DELETE ? e->background : to;
    char *img = png_b64(image->data, 3, h, w), *mask = NULL;
    if (!img) return NULL;
    cJSON *j = cJSON_CreateObject();
    bool ok = j != NULL;
    if (e->kind == REPLACER) {
        ok = ok && cJSON_AddStringToObject(j, "input_image", img) &&
             cJSON_AddStringToObject(j, "detection_prompt", away) &&
             cJSON_AddStringToObject(j, "positive_prompt", in) &&
             cJSON_AddStringToObject(j, "negative_prompt", NEGATIVE) &&
             cJSON_AddNumberToObject(j, "mask_blur", 10) &&
             cJSON_AddNumberToObject(j, "cfg_scale", 10) &&
             cJSON_AddNumberToObject(j, "denoise", 1) && cJSON_AddNumberToObject(j, "steps", 40) &&
             cJSON_AddBoolToObject(j, "use_hires_fix", 1);
    } else {
        /* The region: the old concept's mask, or the insertion's place (its box). */
        size_t P = (size_t)h * (size_t)w;
        uint8_t *region = cfx_calloc(P, 1);
        if (region) {
            if (req->mask)
                for (size_t p = 0; p < P; p++) region[p] = req->mask[p] != 0;
            if (!req->mask || req->kind == CFX_EDIT_SUBSTITUTE)
                for (int y = CFX_MAX(req->box[1], 0); y < CFX_MIN(req->box[3], h); y++)
                    for (int x = CFX_MAX(req->box[0], 0); x < CFX_MIN(req->box[2], w); x++)
                        region[(size_t)y * w + x] = 1;
            mask = mask_b64(region, h, w);
        } else {
            cfx_set_error(CFX_ENOMEM, "out of memory");
        }
        cfx_free(region);
        cJSON *inits = ok && mask ? cJSON_AddArrayToObject(j, "init_images") : NULL;
        ok = inits != NULL;
        if (ok) cJSON_AddItemToArray(inits, cJSON_CreateString(img));
        ok = ok && cJSON_GetArraySize(inits) == 1 && cJSON_AddStringToObject(j, "mask", mask) &&
             cJSON_AddStringToObject(j, "prompt", in) &&
             cJSON_AddStringToObject(j, "negative_prompt", NEGATIVE) &&
             cJSON_AddNumberToObject(j, "denoising_strength", 1) &&
             cJSON_AddNumberToObject(j, "inpainting_fill", 1) &&
             cJSON_AddBoolToObject(j, "inpaint_full_res", 1) &&
             cJSON_AddNumberToObject(j, "mask_blur", 10) &&
             cJSON_AddNumberToObject(j, "steps", 40) &&
             cJSON_AddNumberToObject(j, "cfg_scale", 10) &&
             cJSON_AddNumberToObject(j, "width", w) && cJSON_AddNumberToObject(j, "height", h);
    }
    char *p = ok ? cJSON_PrintUnformatted(j) : NULL;
    char *s = p ? cfx_strdup(p) : NULL;
    cJSON_free(p);
    cJSON_Delete(j);
    cfx_free(img);
    cfx_free(mask);
    if (!s) cfx_set_error(CFX_ENOMEM, "build the request: out of memory");
    return s;
}

/* The image of a reply body, decoded; NULL with a message. */
static cfx_tensor *reply_image(const http_editor *e, const char *body, cfx_status *st) {
    *st = CFX_EFORMAT;
    cJSON *j = cJSON_Parse(body);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        int n = (int)strcspn(body, "\n");
        cfx_set_error(CFX_EFORMAT, "the server's reply is not a JSON object: '%.*s%s'",
                      CFX_MIN(n, 120), body, n > 120 ? "..." : "");
        return NULL;
    }
    const cJSON *im = cJSON_GetObjectItemCaseSensitive(j, "image");
    if (!cJSON_IsString(im))
        im = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "images"), 0);
    if (!cJSON_IsString(im) || !im->valuestring[0]) {
        /* Nothing detected, or an error the server described. */
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(j, "detail");
        if (!cJSON_IsString(why)) why = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (!cJSON_IsString(why)) why = cJSON_GetObjectItemCaseSensitive(j, "message");
        cfx_set_error(CFX_ENOTFOUND, "the server returned no image%s%.300s%s",
                      cJSON_IsString(why) ? " (" : "", cJSON_IsString(why) ? why->valuestring : "",
                      cJSON_IsString(why) ? ")" : "");
        *st = CFX_ENOTFOUND;
        if (e->kind == REPLACER) cfx_error_context(CFX_ENOTFOUND, "nothing detected?");
        cJSON_Delete(j);
        return NULL;
    }
    const char *b = im->valuestring, *comma = strstr(b, ";base64,");
    if (!strncmp(b, "data:", 5) && comma) b = comma + 8;
    unsigned char *bytes = NULL;
    size_t len = 0;
    cfx_tensor *t = NULL;
    if (cfx__base64_decode(b, strlen(b), &bytes, &len) == CFX_OK)
        t = cfx_image_decode(bytes, len, 3, "the editor's image");
    else
        cfx_error_context(CFX_EFORMAT, "the editor's image");
    cfx_free(bytes);
    cJSON_Delete(j);
    if (t) *st = CFX_OK;
    return t;
}

static cfx_status http_edit(void *user, const cfx_edit_request *req, const cfx_tensor *image,
                            cfx_tensor **out, uint8_t *new_mask, int *has_mask) {
    (void)new_mask;
    http_editor *e = user;
    *out = NULL;
    *has_mask = 0;
    const char *name = e->kind == REPLACER ? "Replacer" : "img2img";
    if (image->ndim != 3 || image->shape[0] != 3)
        return cfx_set_error(CFX_ESHAPE, "the %s editor takes RGB images (3,H,W)", name);
    int h = (int)image->shape[1], w = (int)image->shape[2];
    char *body = request_body(e, req, image);
    if (!body) return cfx_error_context(CFX_ENOMEM, "%s request", name);
    cfx__http_request rq = {.url = e->url,
                            .body = body,
                            .body_len = strlen(body),
                            .timeout = e->o.timeout,
                            .retries = e->o.retries,
                            .backoff = e->o.backoff};
    cfx__http_reply rp;
    cfx_status st = cfx__http_post(&rq, &rp);
    cfx_free(body);
    cfx_tensor *t = NULL;
    if (st == CFX_OK) t = reply_image(e, rp.body, &st);
    cfx__http_reply_deinit(&rp);
    if (st != CFX_OK) return cfx_error_context(st, "%s editor", name);
    if (t->shape[1] != h || t->shape[2] != w) {
        st = cfx_set_error(CFX_ESHAPE,
                           "%s editor: the server returned a %lldx%lld image, expected %dx%d "
                           "(the input's size; set the server to keep the input's resolution)",
                           name, (long long)t->shape[2], (long long)t->shape[1], w, h);
        cfx_tensor_free(t);
        return st;
    }
    *out = t;
    return CFX_OK;
}

static cfx_image_editor *http_new(http_kind kind, const char *url,
                                  const cfx_http_editor_options *o) {
    const char *path = kind == REPLACER ? "/replacer/replace" : "/sdapi/v1/img2img";
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        cfx_set_error(CFX_EINVAL,
                      "the %s editor's URL '%s' must start with http:// or https:// (the web "
                      "UI's address, e.g. http://127.0.0.1:7860)",
                      kind == REPLACER ? "Replacer" : "img2img", url ? url : "");
        return NULL;
    }
    cfx_http_editor_options opt = o ? *o : (cfx_http_editor_options){0};
    if (opt.timeout < 0 || opt.retries < 0 || opt.backoff < 0) {
        cfx_set_error(CFX_EINVAL, "HTTP editor: timeout, retries and backoff must not be negative");
        return NULL;
    }
    if (!opt.timeout) opt.timeout = 300;
    if (!opt.backoff) opt.backoff = 1;
    http_editor *e = cfx_calloc(1, sizeof *e);
    cfx_image_editor *ed = cfx_calloc(1, sizeof *ed);
    size_t n = strlen(url);
    while (n && url[n - 1] == '/') n--;
    if (e) {
        e->kind = kind;
        e->o = opt;
        e->url = cfx_malloc(n + strlen(path) + 1);
        if (e->url) memcpy(e->url, url, n), strcpy(e->url + n, path);
        e->background = cfx_strdup(opt.background ? opt.background : "empty background");
        e->region = cfx_strdup(opt.region ? opt.region : "background");
        e->o.background = e->o.region = NULL;
    }
    if (!e || !ed || !e->url || !e->background || !e->region) {
        http_free(e);
        cfx_free(ed);
        cfx_set_error(CFX_ENOMEM, "out of memory");
        return NULL;
    }
    ed->user = e;
    ed->edit = http_edit;
    ed->free = http_free;
    return ed;
}

cfx_image_editor *cfx_image_editor_replacer(const char *url, const cfx_http_editor_options *o) {
    return http_new(REPLACER, url, o);
}

cfx_image_editor *cfx_image_editor_img2img(const char *url, const cfx_http_editor_options *o) {
    return http_new(IMG2IMG, url, o);
}
