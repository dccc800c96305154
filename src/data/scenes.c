/* scenes.c - scenes with known answers for concept-level counterfactuals (V-CECE).
 *
 * A scene is an RGB image of 1 to 4 distinct Fashion-MNIST items, one per cell of a 2x2 grid,
 * each placed with a box and a mask on a textured background. Every item is a concept with a
 * WordNet 3.0 noun synset, and the scene's class follows from a written rule over its concepts
 * (cfx_scenes_rule_text), so the least number of edits that changes a scene's class is known
 * exactly: cfx_scenes_min_edits finds it by breadth-first search over the 2^10 item sets, each
 * edit being one removal, insertion (while a cell is free) or replacement.
 *
 * Drawing one scene, all from one random stream:
 *   1. the background: two colours mixed by smooth value noise at two scales, plus grain;
 *   2. each item: a real 28x28 Fashion-MNIST image, resampled bilinearly to 75-95% of its
 *      cell at a random offset inside it, tinted with a random colour, and composited with the
 *      alpha min(1, 4 v) (v the item's grey level, so the garment covers the background and
 *      its faint edges blend); its mask is alpha >= 0.5 and its box the mask's bounding box. */
#include "data/dataset.h"

#include <math.h>

/* Fashion-MNIST class k as a WordNet 3.0 noun synset (NLTK names), each checked against the
 * gloss in data.noun:
 *   0 T-shirt/top  jersey.n.03    "a close-fitting pullover shirt" (lemmas jersey, T-shirt,
 *                                 tee_shirt; t-shirt's only sense)
 *   1 Trouser      trouser.n.01   "a garment extending from the waist to the knee or ankle"
 *   2 Pullover     pullover.n.01  "a sweater that is put on by pulling it over the head"
 *   3 Dress        dress.n.01     "a one-piece garment for a woman; has skirt and bodice"
 *   4 Coat         coat.n.01      "an outer garment that has sleeves and covers the body from
 *                                 shoulder down; worn outdoors"
 *   5 Sandal       sandal.n.01    "a shoe consisting of a sole fastened by straps to the foot"
 *   6 Shirt        shirt.n.01     "a garment worn on the upper half of the body"
 *   7 Sneaker      gym_shoe.n.01  "a canvas shoe with a pliable rubber sole" (sneaker.n.01 is
 *                                 the same synset; gym_shoe is its first lemma)
 *   8 Bag          bag.n.04       "a container used for carrying money and small personal
 *                                 items" (the handbag; bag.n.01 is any flexible container)
 *   9 Ankle boot   boot.n.01      "footwear that covers the whole foot and lower leg" (WordNet
 *                                 has no ankle-boot synset) */
const char *const cfx_scenes_synsets[CFX_SCENES_NUM_ITEMS] = {
    "jersey.n.03", "trouser.n.01", "pullover.n.01", "dress.n.01", "coat.n.01",
    "sandal.n.01", "shirt.n.01",   "gym_shoe.n.01", "bag.n.04",   "boot.n.01"};

const char *const cfx_scenes_classes[CFX_SCENES_NUM_CLASSES] = {"winter", "summer", "travel",
                                                                "casual"};

const char *const cfx_scenes_rule_text =
    "winter: boot.n.01 (an ankle boot)\n"
    "summer: no boot.n.01, and sandal.n.01\n"
    "travel: no boot.n.01, no sandal.n.01, and bag.n.04\n"
    "casual: everything else\n"
    "A scene holds 1 to 4 distinct items; one edit removes an item (while 2 or more remain),\n"
    "inserts one (while 3 or fewer are there) or replaces one by an item not in the scene.\n";

/* The rule asks only whether three items are there, each among the easiest for a small CNN to
 * tell apart in Fashion-MNIST (a first rule that counted warm clothes, coat, pullover and
 * boot, left the reference classifier at 61% test accuracy on 14,000 training scenes). */
enum { BOOT = 9, SANDAL = 5, BAG = 8 };

int cfx_scenes_rule(unsigned items) {
    if (items & 1u << BOOT) return 0;
    if (items & 1u << SANDAL) return 1;
    if (items & 1u << BAG) return 2;
    return 3;
}

static int popcount10(unsigned v) {
    int n = 0;
    for (int k = 0; k < CFX_SCENES_NUM_ITEMS; k++) n += (v >> k) & 1;
    return n;
}

int cfx_scenes_min_edits(unsigned items) {
    enum { NS = 1 << CFX_SCENES_NUM_ITEMS };
    int n0 = popcount10(items);
    if (n0 < 1 || n0 > CFX_SCENES_MAX_ITEMS || items >= NS) return -1;
    /* Breadth-first from the scene over valid item sets; the first set of another class is
     * at the least number of edits. */
    static _Thread_local int16_t dist[NS];
    static _Thread_local uint16_t queue[NS];
    for (int i = 0; i < NS; i++) dist[i] = -1;
    int head = 0, tail = 0, cls = cfx_scenes_rule(items);
    dist[items] = 0;
    queue[tail++] = (uint16_t)items;
    while (head < tail) {
        unsigned s = queue[head++];
        if (cfx_scenes_rule(s) != cls) return dist[s];
        int n = popcount10(s);
        for (int a = 0; a < CFX_SCENES_NUM_ITEMS; a++) {
            unsigned bit = 1u << a;
            unsigned next[1 + CFX_SCENES_NUM_ITEMS];
            int nn = 0;
            if ((s & bit) && n > 1) next[nn++] = s & ~bit;                    /* remove */
            if (!(s & bit) && n < CFX_SCENES_MAX_ITEMS) next[nn++] = s | bit; /* insert */
            if (s & bit)                                                      /* replace */
                for (int b = 0; b < CFX_SCENES_NUM_ITEMS; b++)
                    if (!(s & 1u << b)) next[nn++] = (s & ~bit) | 1u << b;
            for (int k = 0; k < nn; k++)
                if (dist[next[k]] < 0) {
                    dist[next[k]] = (int16_t)(dist[s] + 1);
                    queue[tail++] = (uint16_t)next[k];
                }
        }
    }
    return -1; /* every reachable set has the scene's class (not so for this rule) */
}

/* ------------------------------------------------------------------- drawing --- */

static float uni(cfx_rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)cfx_rng_uniform(r);
}

/* Smooth value noise on a g x g lattice (g <= 16), interpolated with smoothstep. */
typedef struct {
    float v[16 * 16];
    int g;
} noise;

static void noise_init(noise *n, cfx_rng *r, int g) {
    n->g = g;
    for (int i = 0; i < g * g; i++) n->v[i] = uni(r, 0, 1);
}

static float noise_at(const noise *n, float x, float y) { /* x, y in [0,1] */
    float fx = x * (float)(n->g - 1), fy = y * (float)(n->g - 1);
    int x0 = CFX_MIN((int)fx, n->g - 2), y0 = CFX_MIN((int)fy, n->g - 2);
    float tx = fx - (float)x0, ty = fy - (float)y0;
    tx = tx * tx * (3 - 2 * tx), ty = ty * ty * (3 - 2 * ty);
    const float *v = n->v + y0 * n->g + x0;
    return (v[0] * (1 - tx) + v[1] * tx) * (1 - ty) + (v[n->g] * (1 - tx) + v[n->g + 1] * tx) * ty;
}

/* A random colour with some saturation, each channel in [lo, hi]. */
static void colour(cfx_rng *r, float lo, float hi, float *c) {
    int strong = (int)cfx_rng_below(r, 3);
    for (int k = 0; k < 3; k++) c[k] = uni(r, lo, lo + 0.6f * (hi - lo));
    c[strong] = uni(r, lo + 0.5f * (hi - lo), hi);
}

/* Bilinear sample of a 28x28 uint8 image at (x, y) in pixel units (centres at i), 0 outside. */
static float sample28(const uint8_t *im, float x, float y) {
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float tx = x - (float)x0, ty = y - (float)y0, v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            if (xx < 0 || yy < 0 || xx > 27 || yy > 27) continue;
            v += (dx ? tx : 1 - tx) * (dy ? ty : 1 - ty) * (float)im[yy * 28 + xx];
        }
    return v / 255.0f;
}

cfx_status cfx__scenes_draw(int S, cfx_rng *r, int target, const uint8_t *items,
                            const int64_t *const *by_class, const int64_t *nby, uint8_t *img,
                            cfx__scene *sc) {
    /* The item set: rejection sampling of 1-4 distinct items until the rule gives the target
     * class (each class has many sets, so this ends after a few draws). */
    unsigned set = 0;
    for (int tries = 0;; tries++) {
        if (tries > 100000)
            return cfx_set_error(CFX_EINVAL, "scenes: no item set of class %d", target);
        int k = 1 + (int)cfx_rng_below(r, CFX_SCENES_MAX_ITEMS);
        set = 0;
        while (popcount10(set) < k) set |= 1u << cfx_rng_below(r, CFX_SCENES_NUM_ITEMS);
        if (cfx_scenes_rule(set) == target) break;
    }
    int64_t cells[4] = {0, 1, 2, 3};
    cfx_rng_shuffle(r, cells, 4);
    sc->n = 0;
    for (int k = 0; k < CFX_SCENES_NUM_ITEMS; k++)
        if (set & 1u << k) sc->item[sc->n++] = k;
    /* The order of items in the scene is random too (the cells are). */
    const size_t P = (size_t)S * (size_t)S;
    float *px = cfx_malloc(3 * P * sizeof *px);
    if (!px) return CFX_ENOMEM;
    /* 1. Background. */
    float c0[3], c1[3];
    colour(r, 0.25f, 0.85f, c0);
    colour(r, 0.15f, 0.75f, c1);
    noise coarse, fine;
    noise_init(&coarse, r, 4);
    noise_init(&fine, r, 12);
    float grain = uni(r, 0.01f, 0.04f);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float u = ((float)x + 0.5f) / (float)S, v = ((float)y + 0.5f) / (float)S;
            float t = 0.7f * noise_at(&coarse, u, v) + 0.3f * noise_at(&fine, u, v);
            float g = grain * (float)cfx_rng_normal(r);
            for (int c = 0; c < 3; c++)
                px[(size_t)c * P + (size_t)y * S + x] = c0[c] * (1 - t) + c1[c] * t + g;
        }
    /* 2. Items. */
    memset(sc->mask, 0, (size_t)CFX_SCENES_MAX_ITEMS * P);
    int half = S / 2;
    for (int i = 0; i < sc->n; i++) {
        int k = sc->item[i];
        const uint8_t *im = items + (size_t)by_class[k][cfx_rng_below(r, (uint64_t)nby[k])] * 784;
        int side = (int)lroundf((float)half * uni(r, 0.75f, 0.95f));
        int cx = (int)(cells[i] % 2) * half, cy = (int)(cells[i] / 2) * half;
        int x0 = cx + (int)cfx_rng_below(r, (uint64_t)(half - side + 1));
        int y0 = cy + (int)cfx_rng_below(r, (uint64_t)(half - side + 1));
        float tint[3];
        colour(r, 0.1f, 1.0f, tint);
        uint8_t *m = sc->mask + (size_t)i * P;
        int bx0 = S, by0 = S, bx1 = 0, by1 = 0;
        for (int y = y0; y < y0 + side; y++)
            for (int x = x0; x < x0 + side; x++) {
                float sx = ((float)(x - x0) + 0.5f) * 28.0f / (float)side - 0.5f;
                float sy = ((float)(y - y0) + 0.5f) * 28.0f / (float)side - 0.5f;
                float v = sample28(im, sx, sy), a = CFX_MIN(1.0f, 4 * v);
                for (int c = 0; c < 3; c++) {
                    float *p = px + (size_t)c * P + (size_t)y * S + x;
                    *p = a * tint[c] * (0.35f + 0.65f * v) + (1 - a) * *p;
                }
                if (a >= 0.5f) {
                    m[(size_t)y * S + x] = 1;
                    bx0 = CFX_MIN(bx0, x), by0 = CFX_MIN(by0, y);
                    bx1 = CFX_MAX(bx1, x + 1), by1 = CFX_MAX(by1, y + 1);
                }
            }
        if (bx1 <= bx0) { /* an item too faint for the threshold: its square is its mask */
            bx0 = x0, by0 = y0, bx1 = x0 + side, by1 = y0 + side;
            for (int y = by0; y < by1; y++) memset(m + (size_t)y * S + bx0, 1, (size_t)side);
        }
        sc->box[i][0] = bx0, sc->box[i][1] = by0, sc->box[i][2] = bx1, sc->box[i][3] = by1;
    }
    for (size_t i = 0; i < 3 * P; i++) {
        float v = px[i] < 0 ? 0 : px[i] > 1 ? 1 : px[i];
        img[i] = (uint8_t)lrintf(v * 255.0f);
    }
    cfx_free(px);
    sc->set = set;
    return CFX_OK;
}
