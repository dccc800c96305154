/* edit_loop.c - V-CECE's loop on pixels (Dimitriou et al. 2025): edit an image concept by
 * concept until a black-box classifier's label flips.
 *
 * For each image: its closest counterfactual in the concept dataset (search.c) and the edits
 * to it, ordered by the mode (importance.c for global and local-global; for local, a planner
 * picks each next edit from the current image). One edit a step: a removal takes the first
 * object of that concept still in the image (its mask), an insertion goes to the free place
 * that overlaps the objects least (a square of the image's typical object size), a replacement
 * goes into a square around the old object's box. The editor returns the new image, the
 * classifier labels it, and the loop stops at the first label other than the original one
 * ("flip"), when the edits run out ("exhausted") or at the step cap ("cap"). A problem with one
 * image is recorded in its line with stop_reason "error", and the run goes on.
 *
 * The built-in planner is the sensitivity heuristic: the edit whose region, inpainted away,
 * lowers the current label's probability most is the edit the classifier leans on most.
 * A classifier or planner that reports on its calls (the LLM ones: votes and stability, answers
 * and fallbacks) has each report recorded beside the step, in "votes" (one per label) and
 * "planner" (one per planned step).
 *
 * Every image's record is one line of RUN/results.jsonl, written and flushed when the image is
 * done, after its step images (RUN/steps/<id>/<k>.png, 0 the original); resuming skips the
 * images already recorded and drops a torn last line, so a killed run loses at most the image
 * it was editing. Shared among processes (o->shard), each runs its images and the writer writes
 * every line in order. */
#include "concepts/concepts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_OBJECTS 256
#define MAX_CLASSES 1024

/* ------------------------------------------------------------ built-in planner --- */

static cfx_status planner_next(void *user, const cfx_tensor *image, int current,
                               const cfx_edit *edits, const uint8_t *const *regions, int n,
                               int *choice) {
    (void)edits;
    cfx_image_classifier *clf = user;
    float base[MAX_CLASSES], sc[MAX_CLASSES];
    char ans[256];
    int lab;
    *choice = 0;
    if (n <= 1) return CFX_OK;
    if (clf->num_classes > MAX_CLASSES || current < 0 || current >= clf->num_classes)
        return cfx_set_error(CFX_EINVAL, "planner: label %d of %d classes", current,
                             clf->num_classes);
    if (clf->has_scores) CFX_TRY(clf->classify(clf->user, image, &lab, base, ans, sizeof ans));
    cfx_tensor *t = cfx_tensor_new(3, image->shape);
    if (!t) return CFX_ENOMEM;
    int h = (int)image->shape[1], w = (int)image->shape[2];
    double best = -1e300;
    cfx_status st = CFX_OK;
    for (int i = 0; i < n && st == CFX_OK; i++) {
        memcpy(t->data, image->data, (size_t)image->numel * sizeof *t->data);
        st = cfx_image_inpaint(t->data, (int)image->shape[0], h, w, regions[i]);
        if (st == CFX_OK) st = clf->classify(clf->user, t, &lab, sc, ans, sizeof ans);
        if (st != CFX_OK) break;
        double drop = clf->has_scores ? (double)base[current] - sc[current] : (lab != current);
        if (drop > best) best = drop, *choice = i;
    }
    cfx_tensor_free(t);
    return st;
}

cfx_edit_planner *cfx_edit_planner_builtin(cfx_image_classifier *classifier) {
    if (!classifier) {
        cfx_set_error(CFX_EINVAL, "the built-in planner needs a classifier");
        return NULL;
    }
    cfx_edit_planner *p = cfx_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->next = planner_next;
    p->user = classifier;
    return p;
}

void cfx_edit_planner_free(cfx_edit_planner *p) {
    if (!p) return;
    if (p->free) p->free(p->user);
    cfx_free(p);
}

/* ---------------------------------------------------------------- one image --- */

/* The objects of the image being edited. */
typedef struct {
    int n;
    char *name[MAX_OBJECTS]; /* owned copies, spaces as underscores */
    int box[MAX_OBJECTS][4];
    uint8_t *mask[MAX_OBJECTS]; /* (h*w) owned */
} objects;

static void objects_clear(objects *s) {
    for (int k = 0; k < s->n; k++) cfx_free(s->name[k]), cfx_free(s->mask[k]);
    s->n = 0;
}

static cfx_status objects_add(objects *s, const char *name, const int box[4], uint8_t *mask) {
    if (s->n == MAX_OBJECTS) {
        cfx_free(mask);
        return cfx_set_error(CFX_EINVAL, "more than %d objects in one image", MAX_OBJECTS);
    }
    size_t n = strlen(name) + 1;
    char *c = cfx_malloc(n);
    if (!c) {
        cfx_free(mask);
        return CFX_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) c[i] = name[i] == ' ' ? '_' : name[i];
    s->name[s->n] = c;
    memcpy(s->box[s->n], box, sizeof s->box[0]);
    s->mask[s->n++] = mask;
    return CFX_OK;
}

static void objects_remove(objects *s, int k) {
    cfx_free(s->name[k]);
    cfx_free(s->mask[k]);
    for (int j = k; j + 1 < s->n; j++) {
        s->name[j] = s->name[j + 1];
        memcpy(s->box[j], s->box[j + 1], sizeof s->box[0]);
        s->mask[j] = s->mask[j + 1];
    }
    s->n--;
}

static int objects_find(const objects *s, const char *name) {
    for (int k = 0; k < s->n; k++)
        if (strcmp(s->name[k], name) == 0) return k;
    return -1;
}

/* The side x side square that overlaps the objects (each grown by 2 pixels) least, first in
 * raster order among equals, found with a summed-area table. */
static cfx_status free_place(const objects *s, int h, int w, int side, int box[4]) {
    side = CFX_MAX(4, CFX_MIN(side, CFX_MIN(h, w)));
    int64_t *sat = cfx_calloc((size_t)(h + 1) * (size_t)(w + 1), sizeof *sat);
    if (!sat) return CFX_ENOMEM;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int v = 0;
            for (int k = 0; k < s->n && !v; k++)
                for (int dy = -2; dy <= 2 && !v; dy++)
                    for (int dx = -2; dx <= 2 && !v; dx++) {
                        int yy = y + dy, xx = x + dx;
                        if (yy >= 0 && xx >= 0 && yy < h && xx < w)
                            v = s->mask[k][(size_t)yy * w + xx] != 0;
                    }
            sat[(size_t)(y + 1) * (w + 1) + x + 1] = v + sat[(size_t)y * (w + 1) + x + 1] +
                                                     sat[(size_t)(y + 1) * (w + 1) + x] -
                                                     sat[(size_t)y * (w + 1) + x];
        }
    int64_t best = INT64_MAX;
    for (int y = 0; y + side <= h; y++)
        for (int x = 0; x + side <= w; x++) {
            int64_t o = sat[(size_t)(y + side) * (w + 1) + x + side] -
                        sat[(size_t)y * (w + 1) + x + side] -
                        sat[(size_t)(y + side) * (w + 1) + x] + sat[(size_t)y * (w + 1) + x];
            if (o < best) best = o, box[0] = x, box[1] = y, box[2] = x + side, box[3] = y + side;
        }
    cfx_free(sat);
    return CFX_OK;
}

/* A square around box (side: its longer edge), kept inside the image. */
static void square_around(const int b[4], int h, int w, int out[4]) {
    int side = CFX_MIN(CFX_MAX(b[2] - b[0], b[3] - b[1]), CFX_MIN(h, w));
    int cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2;
    out[0] = CFX_MIN(CFX_MAX(cx - side / 2, 0), w - side);
    out[1] = CFX_MIN(CFX_MAX(cy - side / 2, 0), h - side);
    out[2] = out[0] + side, out[3] = out[1] + side;
}

static const char *action_word(cfx_edit_kind k) {
    return k == CFX_EDIT_INSERT ? "insert" : k == CFX_EDIT_DELETE ? "remove" : "replace";
}

static const char *mode_word(cfx_order_mode m) {
    return m == CFX_ORDER_LOCAL ? "local" : m == CFX_ORDER_GLOBAL ? "global" : "local-global";
}

/* What the loop keeps across images. */
typedef struct {
    const cfx_edit_loop_options *o;
    cfx__annots a;
    cfx_edit_planner *planner; /* o->planner or the built-in one */
    int own_planner;
    /* Global orders: each class's tally, computed when its first image comes. */
    double **imp;      /* (labels) NULL until computed */
    cfx_edit_set *cls; /* (labels) */
} loop;

/* The image's region for an edit: the object's mask, or the insertion place filled. */
static cfx_status edit_region(const objects *s, const cfx_concepts *c, const cfx_edit *e, int h,
                              int w, int side, uint8_t *region, int box[4], int *obj) {
    *obj = -1;
    if (e->kind != CFX_EDIT_INSERT) {
        *obj = objects_find(s, cfx_concepts_name(c, e->from));
        if (*obj < 0) return CFX_ENOTFOUND; /* no such object (left): the edit cannot apply */
        memcpy(region, s->mask[*obj], (size_t)h * (size_t)w);
        if (e->kind == CFX_EDIT_DELETE)
            memcpy(box, s->box[*obj], 4 * sizeof *box);
        else
            square_around(s->box[*obj], h, w, box);
        return CFX_OK;
    }
    CFX_TRY(free_place(s, h, w, side, box));
    memset(region, 0, (size_t)h * (size_t)w);
    for (int y = box[1]; y < box[3]; y++)
        memset(region + (size_t)y * w + box[0], 1, box[2] - box[0]);
    return CFX_OK;
}

/* Appends what a classifier or planner reported about its last call (a JSON object, or null
 * when it said nothing) to rec's array key, made on first use; nothing when it cannot report. */
static void add_report(cJSON *rec, const char *key, const char *(*report)(void *), void *user) {
    if (!report) return;
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!arr) arr = cJSON_AddArrayToObject(rec, key);
    const char *r = report(user);
    cJSON *j = r ? cJSON_Parse(r) : NULL;
    cJSON_AddItemToArray(arr, j ? j : cJSON_CreateNull());
}

/* Runs one image and fills its record; a returned error (other than out of memory) is the
 * image's, which the caller records. */
/* Sets or replaces rec's key to a number or a string. */
static void rec_set(cJSON *rec, const char *key, cJSON *v) {
    if (cJSON_GetObjectItemCaseSensitive(rec, key))
        cJSON_ReplaceItemInObjectCaseSensitive(rec, key, v);
    else
        cJSON_AddItemToObject(rec, key, v);
}

static cfx_status run_image(loop *L, int32_t q, cfx_nearest *nr, cJSON *rec) {
    const cfx_edit_loop_options *o = L->o;
    const cfx_concepts_data *d = o->data;
    const cfx_concepts *c = d->c;
    cfx_image_classifier *clf = o->classifier;
    int64_t id = d->id[q];
    int max_steps = o->max_steps > 0 ? o->max_steps : 10;
    cJSON *labels = cJSON_AddArrayToObject(rec, "labels");
    cJSON *jedits = cJSON_AddArrayToObject(rec, "edits");
    cJSON *jimages = cJSON_AddArrayToObject(rec, "images");
    objects s = {0};
    cfx_tensor *img = NULL;
    cfx_edit_set es = {0};
    uint8_t **regions = NULL, *newmask = NULL;
    bool *used = NULL;
    cfx_status st = CFX_OK;
    int steps = 0, flipped = 0, h = 0, w = 0;
    const char *stop = "exhausted";
    /* Seconds per phase (bench/loop.sh): ordering the edits, the planner's choices, the
     * editor, and the classifier on each image (the original's label included). */
    double t_order = 0, t_plan = 0, t_edit = 0, t_classify = 0, t0;
    char ans[256], path[4400];

    int32_t ai = cfx__annots_find(&L->a, id);
    if (ai < 0) {
        st = cfx_set_error(CFX_ENOTFOUND, "image %lld is not in '%s'", (long long)id,
                           o->annotations);
        goto done;
    }
    /* An image that lost concepts when the data was loaded (CFX_UNKNOWN_SKIP) cannot be
     * edited faithfully: name the concept WordNet lacks. */
    int32_t ncon;
    cfx_concepts_data_image(d, q, &ncon);
    if (ncon != cfx__annots_count(&L->a, ai)) {
        const char *bad = "?";
        for (int k = 0; k < cfx__annots_count(&L->a, ai); k++) {
            const char *name = cfx__annots_object(&L->a, ai, k);
            int32_t syn;
            if (name && cfx_wordnet_lookup(c->wn, name, &syn) != CFX_OK) {
                bad = name;
                break;
            }
        }
        st = cfx_set_error(CFX_ENOTFOUND,
                           "concept '%s' is not in WordNet 3.0, so this image is left out (name "
                           "a noun synset such as coat.n.01, or a noun)",
                           bad);
        goto done;
    }
    int mn = cfx__annots_int(&L->a, ai, "min_edits", -1);
    if (mn >= 0) cJSON_AddNumberToObject(rec, "min_edits", mn);
    if (!(img = cfx__annots_read_image(&L->a, ai, o->images))) {
        st = CFX_EIO;
        goto done;
    }
    h = (int)img->shape[1], w = (int)img->shape[2];
    /* The objects, each with its box and mask; their typical size places insertions. */
    int nobj = cfx__annots_count(&L->a, ai), sides[MAX_OBJECTS], side = CFX_MIN(h, w) / 2;
    for (int k = 0; k < nobj && st == CFX_OK; k++) {
        int box[4];
        uint8_t *m = cfx_malloc((size_t)h * (size_t)w);
        if (!m) {
            st = CFX_ENOMEM;
            break;
        }
        st = cfx__annots_region(&L->a, ai, k, h, w, box, m);
        if (st != CFX_OK) {
            cfx_free(m);
            break;
        }
        st = objects_add(&s, cfx__annots_object(&L->a, ai, k), box, m);
        if (st == CFX_OK && k < MAX_OBJECTS) sides[k] = CFX_MAX(box[2] - box[0], box[3] - box[1]);
    }
    if (st != CFX_OK) goto done;
    if (s.n) { /* the median object side */
        for (int i = 1; i < s.n; i++)
            for (int j = i; j > 0 && sides[j] < sides[j - 1]; j--) {
                int t = sides[j];
                sides[j] = sides[j - 1], sides[j - 1] = t;
            }
        side = sides[s.n / 2];
    }
    snprintf(path, sizeof path, "%s/steps/%lld", o->out, (long long)id);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        st = cfx_set_error(CFX_EIO, "cannot create '%s': %s", path, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof path, "%s/steps/%lld/0.png", o->out, (long long)id);
    if ((st = cfx_image_write_png(path, img)) != CFX_OK) goto done;
    cJSON_AddItemToArray(jimages, cJSON_CreateString(path + strlen(o->out) + 1));
    /* The original label. */
    int label0, lab;
    t0 = cfx_now();
    st = clf->classify(clf->user, img, &label0, NULL, ans, sizeof ans);
    t_classify += cfx_now() - t0;
    if (st != CFX_OK) goto done;
    add_report(rec, "votes", clf->report, clf->user);
    if (label0 < 0) {
        st = cfx_set_error(CFX_EINVAL,
                           "the classifier answered '%s', which is not one of its "
                           "classes",
                           ans);
        goto done;
    }
    cJSON_AddItemToArray(labels, cJSON_CreateString(clf->classes[label0]));
    /* Whether the classifier agrees with the data's label (on scenes: the rule's class). */
    cJSON_AddBoolToObject(rec, "agrees",
                          strcmp(clf->classes[label0], cfx_concepts_data_label(d, q)) == 0);
    /* Away from the classifier's label too: when it is another data label and the closest
     * counterfactual has it, the loop would edit toward what the classifier already says. */
    int32_t clab = cfx__intern_find(&d->labels, clf->classes[label0]);
    if (o->away && nr->target >= 0 && clab >= 0 && clab != d->label[q] &&
        d->label[nr->target] == clab) {
        cfx_nearest away;
        st = cfx_concepts_nearest(d, &q, 1, &(cfx_nearest_options){.avoid = &clab}, &away);
        if (st != CFX_OK) goto done;
        *nr = away;
        rec_set(rec, "target",
                away.target >= 0 ? cJSON_CreateNumber((double)d->id[away.target])
                                 : cJSON_CreateNull());
        if (away.target >= 0) {
            rec_set(rec, "target_label",
                    cJSON_CreateString(cfx_concepts_data_label(d, away.target)));
            rec_set(rec, "cost", cJSON_CreateNumber((double)away.cost));
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(rec, "target_label");
            cJSON_DeleteItemFromObjectCaseSensitive(rec, "cost");
        }
        cJSON_AddBoolToObject(rec, "away", 1);
    }
    if (nr->target < 0) {
        st = cfx_set_error(CFX_ENOTFOUND, "every image has the label '%s': no counterfactual",
                           cfx_concepts_data_label(d, q));
        goto done;
    }
    /* The plan. */
    t0 = cfx_now();
    if (o->mode == CFX_ORDER_LOCAL) {
        int32_t ns, nd;
        const int32_t *src = cfx_concepts_data_listed(d, q, &ns),
                      *dst = cfx_concepts_data_listed(d, nr->target, &nd);
        st = cfx_concepts_edits(c, src, ns, dst, nd, &es);
    } else {
        int32_t cl = d->label[q];
        if (!L->imp[cl]) {
            if (!(L->imp[cl] = cfx_malloc(((size_t)c->names.n + 1) * sizeof **L->imp))) {
                st = CFX_ENOMEM;
                goto done;
            }
            st = cfx__concepts_tally(d, cl, L->imp[cl],
                                     o->mode == CFX_ORDER_GLOBAL ? &L->cls[cl] : NULL);
            if (st != CFX_OK) {
                cfx_free(L->imp[cl]);
                L->imp[cl] = NULL;
                goto done;
            }
        }
        st =
            cfx__concepts_order_with(d, q, o->mode, NULL, L->imp[cl], &L->cls[cl], nr->target, &es);
    }
    t_order += cfx_now() - t0;
    if (st != CFX_OK) goto done;
    regions = cfx_calloc((size_t)es.n + 1, sizeof *regions);
    used = cfx_calloc((size_t)es.n + 1, sizeof *used);
    newmask = cfx_malloc((size_t)h * (size_t)w);
    if (!regions || !used || !newmask) {
        st = CFX_ENOMEM;
        goto done;
    }
    for (int i = 0; i < es.n && st == CFX_OK; i++)
        if (!(regions[i] = cfx_malloc((size_t)h * (size_t)w))) st = CFX_ENOMEM;
    if (st != CFX_OK) goto done;
    int boxes[1][4];
    for (;;) {
        /* The edits that still apply (an object to remove must still be there). */
        cfx_edit cand[256];
        int idx[256], nc = 0;
        for (int i = 0; i < es.n && nc < 256; i++) {
            if (used[i]) continue;
            int ob;
            cfx_status rs =
                edit_region(&s, c, &es.edits[i], h, w, side, regions[nc], boxes[0], &ob);
            if (rs == CFX_ENOTFOUND) {
                used[i] = true; /* cannot apply: its object is gone */
                continue;
            }
            if (rs != CFX_OK) {
                st = rs;
                break;
            }
            cand[nc] = es.edits[i], idx[nc++] = i;
        }
        if (st != CFX_OK) goto done;
        if (nc == 0) {
            stop = "exhausted";
            break;
        }
        if (steps >= max_steps) {
            stop = "cap";
            break;
        }
        int pick = 0;
        if (o->mode == CFX_ORDER_LOCAL) {
            t0 = cfx_now();
            st = L->planner->next(L->planner->user, img, label0, cand,
                                  (const uint8_t *const *)regions, nc, &pick);
            t_plan += cfx_now() - t0;
            if (st != CFX_OK) {
                cfx_error_context(st, "planner");
                goto done;
            }
            add_report(rec, "planner", L->planner->report, L->planner->user);
            if (pick < 0 || pick >= nc) {
                st = cfx_set_error(CFX_EINVAL, "the planner chose edit %d of %d", pick, nc);
                goto done;
            }
        }
        const cfx_edit *e = &cand[pick];
        used[idx[pick]] = true;
        int ob;
        cfx_edit_request req = {.kind = e->kind, .image_id = id, .step = steps + 1};
        if ((st = edit_region(&s, c, e, h, w, side, regions[0], req.box, &ob)) != CFX_OK) goto done;
        req.from = e->from >= 0 ? cfx_concepts_name(c, e->from) : NULL;
        req.to = e->to >= 0 ? cfx_concepts_name(c, e->to) : NULL;
        req.mask = ob >= 0 ? s.mask[ob] : NULL;
        cfx_tensor *out = NULL;
        int has_mask = 0;
        t0 = cfx_now();
        st = o->editor->edit(o->editor->user, &req, img, &out, newmask, &has_mask);
        t_edit += cfx_now() - t0;
        if (st != CFX_OK) {
            cfx_error_context(st, "editor, step %d (%s %s)", steps + 1, action_word(e->kind),
                              req.to ? req.to : req.from);
            goto done;
        }
        if (!out || out->ndim != 3 || out->shape[0] != 3 || out->shape[1] != h ||
            out->shape[2] != w) {
            st = cfx_set_error(CFX_ESHAPE,
                               "editor, step %d: it returned an image of another size than the "
                               "(3,%d,%d) it was given",
                               steps + 1, h, w);
            cfx_tensor_free(out);
            goto done;
        }
        cfx_tensor_free(img);
        img = out;
        steps++;
        /* The objects after the edit. */
        int place[4];
        memcpy(place, req.box, sizeof place);
        if (ob >= 0) objects_remove(&s, ob);
        if (req.to) {
            uint8_t *m = cfx_malloc((size_t)h * (size_t)w);
            if (!m) {
                st = CFX_ENOMEM;
                goto done;
            }
            if (has_mask) {
                memcpy(m, newmask, (size_t)h * (size_t)w);
            } else { /* the editor did not say: the place */
                memset(m, 0, (size_t)h * (size_t)w);
                for (int y = place[1]; y < place[3]; y++)
                    memset(m + (size_t)y * w + place[0], 1, place[2] - place[0]);
            }
            if ((st = objects_add(&s, req.to, place, m)) != CFX_OK) goto done;
        }
        cJSON *je = cJSON_CreateObject();
        cJSON_AddItemToArray(jedits, je);
        cJSON_AddStringToObject(je, "action", action_word(e->kind));
        if (req.from) cJSON_AddStringToObject(je, "from", req.from);
        if (req.to) cJSON_AddStringToObject(je, "to", req.to);
        snprintf(path, sizeof path, "%s/steps/%lld/%d.png", o->out, (long long)id, steps);
        if ((st = cfx_image_write_png(path, img)) != CFX_OK) goto done;
        cJSON_AddItemToArray(jimages, cJSON_CreateString(path + strlen(o->out) + 1));
        t0 = cfx_now();
        st = clf->classify(clf->user, img, &lab, NULL, ans, sizeof ans);
        t_classify += cfx_now() - t0;
        if (st != CFX_OK) goto done;
        add_report(rec, "votes", clf->report, clf->user);
        if (lab < 0) {
            st = cfx_set_error(CFX_EINVAL,
                               "step %d: the classifier answered '%s', which is not one of its "
                               "classes",
                               steps, ans);
            goto done;
        }
        cJSON_AddItemToArray(labels, cJSON_CreateString(clf->classes[lab]));
        if (lab != label0) {
            flipped = 1;
            stop = "flip";
            break;
        }
    }
done:
    cJSON_AddNumberToObject(rec, "steps", steps);
    cJSON *js = cJSON_AddObjectToObject(rec, "seconds");
    cJSON_AddNumberToObject(js, "order", t_order);
    cJSON_AddNumberToObject(js, "plan", t_plan);
    cJSON_AddNumberToObject(js, "edit", t_edit);
    cJSON_AddNumberToObject(js, "classify", t_classify);
    cJSON_AddBoolToObject(rec, "flipped", flipped);
    if (st != CFX_OK && st != CFX_ENOMEM) {
        cJSON_AddStringToObject(rec, "stop_reason", "error");
        cJSON_AddStringToObject(rec, "error", cfx_last_error());
    } else {
        cJSON_AddStringToObject(rec, "stop_reason", stop);
    }
    objects_clear(&s);
    cfx_tensor_free(img);
    if (regions)
        for (int i = 0; i < es.n; i++) cfx_free(regions[i]);
    cfx_edit_set_deinit(&es);
    cfx_free(regions);
    cfx_free(used);
    cfx_free(newmask);
    return st;
}

/* ------------------------------------------------------------------- relabel --- */

cfx_status cfx_edit_loop_relabel(const cfx_concepts_data *d, const char *annotations,
                                 const char *images, cfx_image_classifier *clf,
                                 const cfx_progress *progress, cfx_concepts_data **out) {
    *out = NULL;
    cfx__annots a;
    CFX_TRY(cfx__annots_load(&a, annotations));
    cfx_concepts_data *nd = cfx_concepts_data_new(d->c);
    cfx_status st = nd ? CFX_OK : cfx_set_error(CFX_ENOMEM, "out of memory");
    char ans[256];
    for (int32_t i = 0; i < d->n && st == CFX_OK; i++) {
        int32_t ai = cfx__annots_find(&a, d->id[i]), n, lab = -1;
        if (ai < 0) {
            st = cfx_set_error(CFX_ENOTFOUND, "image %lld is not in '%s'", (long long)d->id[i],
                               annotations);
            break;
        }
        cfx_tensor *img = cfx__annots_read_image(&a, ai, images);
        if (!img) {
            st = CFX_EIO;
            break;
        }
        st = clf->classify(clf->user, img, &lab, NULL, ans, sizeof ans);
        cfx_tensor_free(img);
        if (st == CFX_OK && lab < 0)
            st = cfx_set_error(CFX_EINVAL,
                               "image %lld: the classifier answered '%s', which is not one of "
                               "its classes",
                               (long long)d->id[i], ans);
        if (st != CFX_OK) break;
        const int32_t *con = cfx_concepts_data_image(d, i, &n);
        st = cfx_concepts_data_add(nd, d->id[i], con, n, clf->classes[lab]);
        if ((i + 1) % 64 == 0 || i + 1 == d->n)
            cfx_progress_report(progress, "label", i + 1, d->n, NULL);
    }
    cfx__annots_deinit(&a);
    if (st != CFX_OK) {
        cfx_concepts_data_free(nd);
        return cfx_error_context(st, "relabel with the classifier");
    }
    *out = nd;
    return CFX_OK;
}

/* ------------------------------------------------------------------- the run --- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The ids already in results.jsonl (sorted), dropping a torn last line from the file. */
static cfx_status read_done(const char *path, int64_t **ids, int32_t *n) {
    *ids = NULL;
    *n = 0;
    char *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0) return CFX_OK;
    CFX_TRY(cfx_file_read_all(path, &text, &len));
    size_t cap = 16, good = 0;
    *ids = cfx_malloc(cap * sizeof **ids);
    if (!*ids) {
        cfx_free(text);
        return CFX_ENOMEM;
    }
    for (size_t at = 0; at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break; /* torn: no newline */
        cJSON *j = cJSON_ParseWithLength(text + at, (size_t)(nl - (text + at)));
        const cJSON *qv = cJSON_GetObjectItemCaseSensitive(j, "query");
        if (!cJSON_IsNumber(qv)) {
            cJSON_Delete(j);
            break; /* a broken line: it and what follows are redone */
        }
        if ((size_t)*n == cap) {
            int64_t *g = cfx_realloc(*ids, 2 * cap * sizeof *g);
            if (!g) {
                cJSON_Delete(j);
                cfx_free(text);
                return CFX_ENOMEM;
            }
            *ids = g, cap *= 2;
        }
        (*ids)[(*n)++] = (int64_t)qv->valuedouble;
        cJSON_Delete(j);
        at = (size_t)(nl - text) + 1;
        good = at;
    }
    cfx_free(text);
    if (good < len && truncate(path, (off_t)good) != 0)
        return cfx_set_error(CFX_EIO, "cannot truncate the torn last line of '%s': %s", path,
                             strerror(errno));
    qsort(*ids, (size_t)*n, sizeof **ids, cmp_i64);
    return CFX_OK;
}

cfx_status cfx_edit_loop_run(const cfx_edit_loop_options *o, cfx_edit_loop_summary *sum) {
    if (sum) memset(sum, 0, sizeof *sum);
    if (!o || !o->data || !o->annotations || !o->images || !o->classifier || !o->editor || !o->out)
        return cfx_set_error(CFX_EINVAL, "edit loop: data, annotations, images, classifier, "
                                         "editor and out are required");
    const cfx_concepts_data *d = o->data;
    loop L = {.o = o, .planner = o->planner};
    char path[4200];
    int64_t *done_ids = NULL;
    int32_t ndone = 0, *qs = NULL, nq = 0;
    cfx_nearest *res = NULL;
    FILE *f = NULL;
    cfx_status st = cfx__annots_load(&L.a, o->annotations);
    if (st != CFX_OK) return st;
    int32_t nlab = d->labels.n;
    L.imp = cfx_calloc((size_t)nlab + 1, sizeof *L.imp);
    L.cls = cfx_calloc((size_t)nlab + 1, sizeof *L.cls);
    if (!L.imp || !L.cls) st = cfx_set_error(CFX_ENOMEM, "out of memory");
    if (!L.planner) {
        L.planner = cfx_edit_planner_builtin(o->classifier);
        L.own_planner = 1;
        if (!L.planner) st = CFX_ENOMEM;
    }
    snprintf(path, sizeof path, "%s/steps", o->out);
    if (st == CFX_OK && mkdir(path, 0777) != 0 && errno != EEXIST)
        st = cfx_set_error(CFX_EIO, "cannot create '%s': %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/results.jsonl", o->out);
    if (st == CFX_OK && o->resume) st = read_done(path, &done_ids, &ndone);
    /* The images to run, as dataset indices. */
    int32_t total = o->queries ? o->nqueries : d->n;
    qs = cfx_malloc(((size_t)total + 1) * sizeof *qs);
    res = cfx_malloc(((size_t)total + 1) * sizeof *res);
    if (st == CFX_OK && (!qs || !res)) st = cfx_set_error(CFX_ENOMEM, "out of memory");
    for (int32_t i = 0; i < total && st == CFX_OK; i++) {
        int32_t q = o->queries ? cfx_concepts_data_find(d, o->queries[i]) : i;
        if (q < 0) {
            st = cfx_set_error(CFX_ENOTFOUND, "no image has the id %lld", (long long)o->queries[i]);
            break;
        }
        int64_t id = d->id[q];
        if (o->split) { /* only the images of that split */
            int32_t ai = cfx__annots_find(&L.a, id);
            const char *sp = ai < 0 ? NULL : cfx__annots_str(&L.a, ai, "split");
            if (!sp || strcmp(sp, o->split) != 0) continue;
        }
        if (o->limit > 0 && nq + (sum ? sum->done_before : 0) >= o->limit) break;
        if (done_ids && bsearch(&id, done_ids, (size_t)ndone, sizeof id, cmp_i64)) {
            if (sum) sum->done_before++;
            continue;
        }
        qs[nq++] = q;
    }
    const cfx_edit_loop_shard *sh = o->shard;
    if (st == CFX_OK && nq && sh) { /* the nearest counterfactuals of this process's images */
        int32_t *mq = cfx_malloc((size_t)nq * sizeof *mq), m = 0;
        cfx_nearest *mres = cfx_malloc((size_t)nq * sizeof *mres);
        if (!mq || !mres) st = cfx_set_error(CFX_ENOMEM, "out of memory");
        for (int32_t i = 0; st == CFX_OK && i < nq; i++)
            if (sh->mine(sh->user, i)) mq[m++] = qs[i];
        if (st == CFX_OK && m) st = cfx_concepts_nearest(d, mq, m, NULL, mres);
        for (int32_t i = 0, k = 0; st == CFX_OK && i < nq; i++)
            if (sh->mine(sh->user, i)) res[i] = mres[k++];
        cfx_free(mq), cfx_free(mres);
    }
    if (st == CFX_OK && nq && !sh) st = cfx_concepts_nearest(d, qs, nq, NULL, res);
    if (st == CFX_OK && (!sh || sh->writer) && !(f = fopen(path, o->resume ? "a" : "w")))
        st = cfx_set_error(CFX_EIO, "cannot open '%s': %s", path, strerror(errno));
    int32_t flipped = 0;
    for (int32_t i = 0; i < nq && st == CFX_OK; i++) {
        if (sh && !sh->mine(sh->user, i)) { /* another process's image */
            char *given = NULL;
            if (!sh->writer) continue;
            if ((st = sh->take(sh->user, i, &given)) != CFX_OK) break;
            cJSON *j = cJSON_Parse(given);
            const cJSON *fl = cJSON_GetObjectItemCaseSensitive(j, "flipped");
            const cJSON *why = cJSON_GetObjectItemCaseSensitive(j, "stop_reason");
            flipped += cJSON_IsTrue(fl);
            if (sum)
                sum->images++, sum->flipped += cJSON_IsTrue(fl),
                    sum->failed += cJSON_IsString(why) && !strcmp(why->valuestring, "error");
            cJSON_Delete(j);
            fputs(given, f);
            fputc('\n', f);
            free(given);
            if (fflush(f) != 0 || fsync(fileno(f)) != 0)
                st = cfx_set_error(CFX_EIO, "cannot write '%s': %s", path, strerror(errno));
            char note[64];
            snprintf(note, sizeof note, "%d of %d flipped", flipped, i + 1);
            cfx_progress_report(&o->progress, "edit", i + 1, nq, note);
            continue;
        }
        cJSON *rec = cJSON_CreateObject();
        if (!rec) {
            st = cfx_set_error(CFX_ENOMEM, "out of memory");
            break;
        }
        int32_t q = qs[i];
        cJSON_AddNumberToObject(rec, "query", (double)d->id[q]);
        if (res[i].target >= 0)
            cJSON_AddNumberToObject(rec, "target", (double)d->id[res[i].target]);
        else
            cJSON_AddNullToObject(rec, "target");
        cJSON_AddStringToObject(rec, "mode", mode_word(o->mode));
        cJSON_AddStringToObject(rec, "source_label", cfx_concepts_data_label(d, q));
        if (res[i].target >= 0) {
            cJSON_AddStringToObject(rec, "target_label", cfx_concepts_data_label(d, res[i].target));
            cJSON_AddNumberToObject(rec, "cost", (double)res[i].cost);
        }
        cfx_status is = run_image(&L, q, &res[i], rec);
        if (is == CFX_ENOMEM) {
            cJSON_Delete(rec);
            st = cfx_set_error(CFX_ENOMEM, "out of memory");
            break;
        }
        const cJSON *fl = cJSON_GetObjectItemCaseSensitive(rec, "flipped");
        flipped += cJSON_IsTrue(fl);
        if (sum) sum->images++, sum->flipped += cJSON_IsTrue(fl), sum->failed += is != CFX_OK;
        char *line = cJSON_PrintUnformatted(rec);
        cJSON_Delete(rec);
        if (!line) {
            st = cfx_set_error(CFX_ENOMEM, "out of memory");
            break;
        }
        if (sh && !sh->writer) { /* the writer writes it */
            st = sh->give(sh->user, i, line);
            cJSON_free(line);
            continue;
        }
        fputs(line, f);
        fputc('\n', f);
        cJSON_free(line);
        if (fflush(f) != 0 || fsync(fileno(f)) != 0)
            st = cfx_set_error(CFX_EIO, "cannot write '%s': %s", path, strerror(errno));
        char note[64];
        snprintf(note, sizeof note, "%d of %d flipped", flipped, i + 1);
        cfx_progress_report(&o->progress, "edit", i + 1, nq, note);
    }
    if (f && fclose(f) != 0 && st == CFX_OK)
        st = cfx_set_error(CFX_EIO, "cannot write '%s': %s", path, strerror(errno));
    if (L.own_planner) cfx_edit_planner_free(L.planner);
    for (int32_t k = 0; k < nlab && L.imp && L.cls; k++) {
        cfx_free(L.imp[k]);
        cfx_edit_set_deinit(&L.cls[k]);
    }
    cfx_free(L.imp);
    cfx_free(L.cls);
    cfx__annots_deinit(&L.a);
    cfx_free(done_ids);
    cfx_free(qs);
    cfx_free(res);
    return st;
}
