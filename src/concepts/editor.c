/* editor.c - image editors for V-CECE's loop, and the annotations they work from.
 *
 * Annotations: a concepts JSON (data/vg_random.json's shape) whose images may also carry a
 * "file", a "size" [h, w], per object a box [x0, y0, x1, y1] (exclusive) and a mask (run
 * lengths over the image in row-major order, alternating outside and inside, starting
 * outside), as `cfx data scenes` writes them.
 *
 * The built-in editor needs no model, as V-CECE's released loop needed Stable Diffusion:
 * - remove: the object's mask, dilated by two pixels so that its anti-aliased rim goes too, is
 *   inpainted from its surroundings (cfx_image_inpaint: an onion-peel pass from the border
 *   inward that sets each pixel to the mean of its known neighbours, then Jacobi sweeps of the
 *   Laplace equation over the hole, which leave a smooth membrane between the border values);
 * - insert: an exemplar of the concept, cut with its mask from another annotated image (the
 *   concept bank), scaled to fit the place's box (aspect kept, centred) and composited opaque
 *   on its mask with a one-pixel feathered rim outside it (so the item keeps its contrast);
 * - replace: remove, then insert into the old object's box.
 * The exemplar is chosen by a hash of the image id, the step and the concept, so a run is
 * repeatable. */
#include "concepts/concepts.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- annotations --- */

void cfx__annots_deinit(cfx__annots *a) {
    cJSON_Delete(a->root);
    cfx_free(a->image);
    cfx_free(a->id);
    memset(a, 0, sizeof *a);
}

cfx_status cfx__annots_load(cfx__annots *a, const char *path) {
    memset(a, 0, sizeof *a);
    char *text = NULL;
    size_t len = 0;
    CFX_TRY(cfx_file_read_all(path, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    cfx_free(text);
    const cJSON *images = root ? cJSON_GetObjectItemCaseSensitive(root, "images") : NULL;
    if (!cJSON_IsArray(images)) {
        cJSON_Delete(root);
        return cfx_set_error(CFX_EFORMAT, "'%s': not JSON with an \"images\" array", path);
    }
    int n = cJSON_GetArraySize(images);
    a->root = root;
    a->image = cfx_malloc(((size_t)n + 1) * sizeof *a->image);
    a->id = cfx_malloc(((size_t)n + 1) * sizeof *a->id);
    if (!a->image || !a->id) {
        cfx__annots_deinit(a);
        return cfx_set_error(CFX_ENOMEM, "out of memory");
    }
    cJSON *im;
    cJSON_ArrayForEach(im, images) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(im, "id");
        if (!cJSON_IsNumber(id)) {
            cfx__annots_deinit(a);
            return cfx_set_error(CFX_EFORMAT, "'%s': image #%d has no numeric \"id\"", path, a->n);
        }
        a->image[a->n] = im;
        a->id[a->n++] = (int64_t)id->valuedouble;
    }
    return CFX_OK;
}

int32_t cfx__annots_find(const cfx__annots *a, int64_t id) {
    for (int32_t i = 0; i < a->n; i++)
        if (a->id[i] == id) return i;
    return -1;
}

static const cJSON *field(const cfx__annots *a, int32_t i, const char *key) {
    return cJSON_GetObjectItemCaseSensitive((const cJSON *)a->image[i], key);
}

int cfx__annots_count(const cfx__annots *a, int32_t i) {
    return cJSON_GetArraySize(field(a, i, "objects"));
}

const char *cfx__annots_object(const cfx__annots *a, int32_t i, int k) {
    return cJSON_GetStringValue(cJSON_GetArrayItem(field(a, i, "objects"), k));
}

const char *cfx__annots_file(const cfx__annots *a, int32_t i) {
    return cJSON_GetStringValue(field(a, i, "file"));
}

const char *cfx__annots_str(const cfx__annots *a, int32_t i, const char *key) {
    return cJSON_GetStringValue(field(a, i, key));
}

int cfx__annots_int(const cfx__annots *a, int32_t i, const char *key, int def) {
    const cJSON *v = field(a, i, key);
    return cJSON_IsNumber(v) ? v->valueint : def;
}

cfx_status cfx__annots_region(const cfx__annots *a, int32_t i, int k, int h, int w, int box[4],
                              uint8_t *mask) {
    const cJSON *boxes = field(a, i, "boxes"), *masks = field(a, i, "masks");
    const cJSON *b = cJSON_GetArrayItem(boxes, k), *m = cJSON_GetArrayItem(masks, k);
    long long id = (long long)a->id[i];
    if (!cJSON_IsArray(b) || !cJSON_IsArray(m))
        return cfx_set_error(CFX_ENOTFOUND,
                             "image %lld: object %d (%s) has no %s; the built-in editor needs "
                             "a box and a mask for every object (as `cfx data scenes` writes)",
                             id, k, cfx__annots_object(a, i, k) ? cfx__annots_object(a, i, k) : "?",
                             !cJSON_IsArray(b) ? "box" : "mask");
    for (int j = 0; j < 4; j++) {
        const cJSON *v = cJSON_GetArrayItem(b, j);
        box[j] = cJSON_IsNumber(v) ? v->valueint : -1;
    }
    if (box[0] < 0 || box[1] < 0 || box[2] > w || box[3] > h || box[0] >= box[2] ||
        box[1] >= box[3] || cJSON_GetArraySize(b) != 4)
        return cfx_set_error(CFX_EFORMAT, "image %lld: object %d's box is not inside %dx%d", id, k,
                             w, h);
    size_t at = 0, n = (size_t)h * (size_t)w;
    int inside = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, m) {
        double v = cJSON_IsNumber(r) ? r->valuedouble : -1;
        if (v < 0 || v > (double)(n - at))
            return cfx_set_error(CFX_EFORMAT,
                                 "image %lld: object %d's mask runs do not fit a %dx%d image", id,
                                 k, w, h);
        memset(mask + at, inside, (size_t)v);
        at += (size_t)v;
        inside = !inside;
    }
    if (at != n)
        return cfx_set_error(CFX_EFORMAT,
                             "image %lld: object %d's mask covers %zu pixels, not %dx%d", id, k, at,
                             w, h);
    return CFX_OK;
}

cfx_tensor *cfx__annots_read_image(const cfx__annots *a, int32_t i, const char *dir) {
    char path[4200];
    const char *file = cfx__annots_file(a, i);
    if (file)
        snprintf(path, sizeof path, "%s/%s", dir, file);
    else
        snprintf(path, sizeof path, "%s/%lld.png", dir, (long long)a->id[i]);
    cfx_tensor *t = cfx_image_read(path, 3);
    if (!t) cfx_error_context(CFX_EIO, "image %lld", (long long)a->id[i]);
    return t;
}

/* ------------------------------------------------------------------ inpainting --- */

cfx_status cfx_image_inpaint(float *image, int c, int h, int w, const uint8_t *mask) {
    size_t P = (size_t)h * (size_t)w;
    uint8_t *known = cfx_malloc(P);
    int32_t *front = cfx_malloc(P * sizeof *front);
    if (!known || !front) {
        cfx_free(known);
        cfx_free(front);
        return cfx_set_error(CFX_ENOMEM, "out of memory");
    }
    size_t unknown = 0;
    for (size_t p = 0; p < P; p++) known[p] = !mask[p], unknown += mask[p] != 0;
    if (unknown == P) { /* nothing to fill from: mid grey */
        for (size_t i = 0; i < (size_t)c * P; i++) image[i] = 0.5f;
        unknown = 0;
    }
    /* Onion peel: each pass fills the unknown pixels that touch a known one (8-neighbours)
     * with the mean of those, all from the state before the pass. */
    while (unknown > 0) {
        size_t nf = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t p = (size_t)y * w + x;
                if (known[p]) continue;
                float sum[4] = {0};
                int cnt = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = y + dy, xx = x + dx;
                        if (yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
                        size_t q = (size_t)yy * w + xx;
                        if (known[q] != 1) continue;
                        for (int ch = 0; ch < c && ch < 4; ch++) sum[ch] += image[ch * P + q];
                        cnt++;
                    }
                if (!cnt) continue;
                for (int ch = 0; ch < c && ch < 4; ch++) image[ch * P + p] = sum[ch] / (float)cnt;
                front[nf++] = (int32_t)p;
            }
        for (size_t k = 0; k < nf; k++) known[front[k]] = 2; /* filled in this pass */
        for (size_t k = 0; k < nf; k++) known[front[k]] = 1;
        unknown -= nf;
    }
    /* Jacobi sweeps of the Laplace equation over the hole (in place: Gauss-Seidel, which
     * converges faster and is as deterministic). */
    for (int it = 0; it < 30; it++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t p = (size_t)y * w + x;
                if (!mask[p]) continue;
                for (int ch = 0; ch < c; ch++) {
                    float *im = image + ch * P, s = 0;
                    int cnt = 0;
                    if (x > 0) s += im[p - 1], cnt++;
                    if (x < w - 1) s += im[p + 1], cnt++;
                    if (y > 0) s += im[p - (size_t)w], cnt++;
                    if (y < h - 1) s += im[p + (size_t)w], cnt++;
                    im[p] = s / (float)cnt;
                }
            }
    cfx_free(known);
    cfx_free(front);
    return CFX_OK;
}

/* Dilates a 0/1 mask by r pixels (square neighbourhood) into out. */
void cfx__mask_dilate(const uint8_t *m, int h, int w, int r, uint8_t *out) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = 0;
            for (int dy = -r; dy <= r && !v; dy++)
                for (int dx = -r; dx <= r && !v; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy >= 0 && xx >= 0 && yy < h && xx < w) v = m[(size_t)yy * w + xx] != 0;
                }
            out[(size_t)y * w + x] = v;
        }
}

/* ----------------------------------------------------------- built-in editor --- */

typedef struct {
    cfx__annots a;
    char *images;
} builtin;

static void builtin_free(void *user) {
    builtin *b = user;
    if (!b) return;
    cfx__annots_deinit(&b->a);
    cfx_free(b->images);
    cfx_free(b);
}

static uint64_t hash_str(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Pastes an exemplar of concept `to` into box of img (3,h,w); writes its region to new_mask. */
static cfx_status paste(const builtin *b, const cfx_edit_request *req, float *img, int h, int w,
                        uint8_t *new_mask) {
    /* The bank: every other annotated image with the concept and a box and mask for it. */
    int32_t cand = 0;
    for (int32_t i = 0; i < b->a.n; i++) {
        if (b->a.id[i] == req->image_id) continue;
        for (int k = 0; k < cfx__annots_count(&b->a, i); k++) {
            const char *o = cfx__annots_object(&b->a, i, k);
            if (o && strcmp(o, req->to) == 0) cand++;
        }
    }
    if (!cand)
        return cfx_set_error(CFX_ENOTFOUND,
                             "the concept bank has no exemplar of '%s' (no other image has it)",
                             req->to);
    uint64_t pick =
        hash_str(1469598103934665603ull ^ ((uint64_t)req->image_id * 31 + (uint64_t)req->step),
                 req->to) %
        (uint64_t)cand;
    int32_t ei = -1;
    int ek = -1;
    for (int32_t i = 0; i < b->a.n && ei < 0; i++) {
        if (b->a.id[i] == req->image_id) continue;
        for (int k = 0; k < cfx__annots_count(&b->a, i) && ei < 0; k++) {
            const char *o = cfx__annots_object(&b->a, i, k);
            if (o && strcmp(o, req->to) == 0 && pick-- == 0) ei = i, ek = k;
        }
    }
    cfx_tensor *ex = cfx__annots_read_image(&b->a, ei, b->images);
    if (!ex) return cfx_error_context(CFX_EIO, "concept bank");
    int eh = (int)ex->shape[1], ew = (int)ex->shape[2], ebox[4];
    size_t EP = (size_t)eh * (size_t)ew;
    float *alpha = cfx_malloc(EP * sizeof *alpha);
    uint8_t *em = cfx_malloc(EP);
    cfx_status st = alpha && em ? CFX_OK : cfx_set_error(CFX_ENOMEM, "out of memory");
    if (st == CFX_OK) st = cfx__annots_region(&b->a, ei, ek, eh, ew, ebox, em);
    if (st == CFX_OK) {
        /* Feathering outward only: opaque on the mask, and on the pixels just outside it the
         * mask box-blurred (3x3), at most a third along a straight edge. The mask already
         * holds the item's anti-aliased rim (cfx data scenes: alpha >= 0.5), so its pixels are
         * the item's own colours; blurring the mask itself, as this once did (twice, in and
         * out), left thin items such as a sandal's straps at half opacity and every edge half
         * blended with the new background, a faint, low-contrast paste. */
        for (int y = 0; y < eh; y++)
            for (int x = 0; x < ew; x++) {
                size_t p = (size_t)y * ew + x;
                float s = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = y + dy, xx = x + dx;
                        if (yy >= 0 && xx >= 0 && yy < eh && xx < ew) s += em[(size_t)yy * ew + xx];
                    }
                alpha[p] = em[p] ? 1.0f : s / 9.0f;
            }
        /* Fit the exemplar's box into the place, aspect kept, centred. */
        double bw = ebox[2] - ebox[0], bh = ebox[3] - ebox[1];
        double tw = req->box[2] - req->box[0], th = req->box[3] - req->box[1];
        double sc = fmin(tw / bw, th / bh);
        double ox = req->box[0] + (tw - bw * sc) / 2, oy = req->box[1] + (th - bh * sc) / 2;
        memset(new_mask, 0, (size_t)h * (size_t)w);
        size_t P = (size_t)h * (size_t)w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                /* Bilinear sample of the exemplar at this pixel's centre. */
                double sx = ebox[0] + ((double)x + 0.5 - ox) / sc - 0.5;
                double sy = ebox[1] + ((double)y + 0.5 - oy) / sc - 0.5;
                if (sx < ebox[0] - 1 || sy < ebox[1] - 1 || sx > ebox[2] || sy > ebox[3]) continue;
                int x0 = (int)floor(sx), y0 = (int)floor(sy);
                double fx = sx - x0, fy = sy - y0, a = 0, col[3] = {0, 0, 0};
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int xx = CFX_MIN(CFX_MAX(x0 + dx, 0), ew - 1);
                        int yy = CFX_MIN(CFX_MAX(y0 + dy, 0), eh - 1);
                        double wgt = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
                        size_t q = (size_t)yy * ew + xx;
                        a += wgt * alpha[q];
                        for (int ch = 0; ch < 3; ch++)
                            col[ch] += wgt * alpha[q] * ex->data[ch * EP + q];
                    }
                if (a <= 1e-6) continue;
                size_t p = (size_t)y * w + x;
                for (int ch = 0; ch < 3; ch++)
                    img[ch * P + p] = (float)(col[ch] + (1 - a) * img[ch * P + p]);
                new_mask[p] = a >= 0.5;
            }
    }
    cfx_tensor_free(ex);
    cfx_free(alpha);
    cfx_free(em);
    return st;
}

static cfx_status builtin_edit(void *user, const cfx_edit_request *req, const cfx_tensor *image,
                               cfx_tensor **out, uint8_t *new_mask, int *has_mask) {
    builtin *b = user;
    *out = NULL;
    *has_mask = 0;
    if (image->ndim != 3 || image->shape[0] != 3)
        return cfx_set_error(CFX_ESHAPE, "the built-in editor takes RGB images (3,H,W)");
    int h = (int)image->shape[1], w = (int)image->shape[2];
    if (req->kind != CFX_EDIT_INSERT && !req->mask)
        return cfx_set_error(CFX_EINVAL, "the built-in editor needs the mask of '%s' to remove",
                             req->from ? req->from : "?");
    if (req->kind != CFX_EDIT_DELETE &&
        (req->box[0] < 0 || req->box[1] < 0 || req->box[2] > w || req->box[3] > h ||
         req->box[0] >= req->box[2] || req->box[1] >= req->box[3]))
        return cfx_set_error(CFX_EINVAL, "the place for '%s' is not a box inside the image",
                             req->to ? req->to : "?");
    cfx_tensor *t = cfx_tensor_new(3, image->shape);
    uint8_t *grown = cfx_malloc((size_t)h * (size_t)w);
    if (!t || !grown) {
        cfx_tensor_free(t);
        cfx_free(grown);
        return cfx_set_error(CFX_ENOMEM, "out of memory");
    }
    memcpy(t->data, image->data, (size_t)image->numel * sizeof *t->data);
    cfx_status st = CFX_OK;
    if (req->kind != CFX_EDIT_INSERT) {
        cfx__mask_dilate(req->mask, h, w, 2, grown);
        st = cfx_image_inpaint(t->data, 3, h, w, grown);
    }
    if (st == CFX_OK && req->kind != CFX_EDIT_DELETE) {
        st = paste(b, req, t->data, h, w, new_mask);
        *has_mask = st == CFX_OK;
    }
    cfx_free(grown);
    if (st != CFX_OK) {
        cfx_tensor_free(t);
        return st;
    }
    *out = t;
    return CFX_OK;
}

cfx_image_editor *cfx_image_editor_builtin(const char *data, const char *images) {
    builtin *b = cfx_calloc(1, sizeof *b);
    cfx_image_editor *e = cfx_calloc(1, sizeof *e);
    if (!b || !e || !images || !(b->images = cfx_malloc(strlen(images) + 1))) {
        cfx_free(b);
        cfx_free(e);
        cfx_set_error(images ? CFX_ENOMEM : CFX_EINVAL,
                      images ? "out of memory" : "the built-in editor needs the images' folder");
        return NULL;
    }
    strcpy(b->images, images);
    if (cfx__annots_load(&b->a, data) != CFX_OK) {
        cfx_error_context(CFX_EIO, "built-in editor");
        cfx_free(b->images);
        cfx_free(b);
        cfx_free(e);
        return NULL;
    }
    e->user = b;
    e->edit = builtin_edit;
    e->free = builtin_free;
    return e;
}

void cfx_image_editor_free(cfx_image_editor *e) {
    if (!e) return;
    if (e->free) e->free(e->user);
    cfx_free(e);
}
