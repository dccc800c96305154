/* keywords.c - the keyword rules that read a cause of low competency out of a sentence, as the
 * competency paper's authors read their language model's answers (section 4.2), and the
 * sentences a person would write for a known cause (the paper's appendix C: "The original
 * image is over-saturated."), for fine-tuning files.
 *
 * One table: each cause's word stems, matched case-insensitively anywhere in the text. The cause
 * whose stem comes first wins, since an answer names its main reason first ("The image is dark,
 * which lowers its contrast" is about brightness). Spatial's stems ("object", "shape") also
 * appear in answers about the other causes ("the object is too dark"), so they count only when
 * no other cause's stem appears. */
#include "explain/explain.h"

#include <ctype.h>
#include <stdio.h>

/* Stems per cause, in the order of cfx_cause; the README's "Explanations" lists the same. */
static const char *const stems[CFX_CAUSE_COUNT][16] = {
    [CFX_CAUSE_SPATIAL] = {"unfamiliar", "unusual", "unseen", "novel", "object", "content", "shape",
                           "region", "background", "occlu", "anomal", "out of place",
                           "different class", "not seen", NULL},
    [CFX_CAUSE_BRIGHTNESS] = {"bright", "dark", "dim", "lighting", "illuminat", "exposure",
                              "exposed", "luminance", "too light", NULL},
    [CFX_CAUSE_CONTRAST] = {"contrast", "washed out", "washed-out", "faded", "flat tones", NULL},
    [CFX_CAUSE_SATURATION] = {"saturat", "colorful", "colourful", "vivid", "vibrant",
                              "intense color", "intense colour", "colour intensity",
                              "color intensity", NULL},
    [CFX_CAUSE_NOISE] = {"nois", "grain", "speckl", "static", "random dots", NULL},
    [CFX_CAUSE_PIXELATION] = {"pixel", "blocky", "blocks", "low resolution", "low-resolution",
                              "jagged", "mosaic", NULL},
};

/* The first position of a stem in text, case aside, or -1. */
static long find(const char *text, const char *stem) {
    size_t n = strlen(stem);
    for (const char *p = text; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == stem[i]) i++;
        if (i == n) return p - text;
    }
    return -1;
}

cfx_cause cfx_explain_keyword_cause(const char *text) {
    if (!text) return CFX_CAUSE_NONE;
    cfx_cause best = CFX_CAUSE_NONE;
    long at = -1;
    for (int pass = 0; pass < 2 && best == CFX_CAUSE_NONE; pass++)
        for (int c = CFX_CAUSE_SPATIAL; c < CFX_CAUSE_COUNT; c++) {
            if ((c == CFX_CAUSE_SPATIAL) != (pass == 1)) continue;
            for (int k = 0; stems[c][k]; k++) {
                long p = find(text, stems[c][k]);
                if (p >= 0 && (at < 0 || p < at)) at = p, best = (cfx_cause)c;
            }
        }
    return best;
}

void cfx_explain_true_sentence(cfx_cause cause, const float *image, const float *reference, int c,
                               int h, int w, char *out, size_t cap) {
    if (!out || cap == 0) return;
    double a[CFX_STAT_COUNT], b[CFX_STAT_COUNT];
    /* The direction of a change, when both images can be measured: -1 less, 1 more, 0 unknown. */
    int dir[CFX_STAT_COUNT] = {0};
    if (image && reference && cfx_image_stats(image, c, h, w, a) == CFX_OK &&
        cfx_image_stats(reference, c, h, w, b) == CFX_OK)
        for (int s = 0; s < CFX_STAT_COUNT; s++) dir[s] = a[s] < b[s] ? -1 : a[s] > b[s];
    const char *than = "than the images the classifier was trained on";
    switch (cause) {
        case CFX_CAUSE_SPATIAL:
            snprintf(out, cap,
                     "The original image shows unfamiliar content that the classifier did not "
                     "see in training.");
            break;
        case CFX_CAUSE_BRIGHTNESS: {
            int d = dir[CFX_STAT_BRIGHTNESS];
            snprintf(out, cap, "The original image is %s %s.",
                     d < 0   ? "darker"
                     : d > 0 ? "brighter"
                             : "darker or brighter",
                     than);
            break;
        }
        case CFX_CAUSE_CONTRAST: {
            int d = dir[CFX_STAT_CONTRAST];
            snprintf(out, cap, "The original image has %s contrast %s.",
                     d < 0   ? "less"
                     : d > 0 ? "more"
                             : "an unusual",
                     d ? than : "compared with the images the classifier was trained on");
            break;
        }
        case CFX_CAUSE_SATURATION: {
            int d = dir[CFX_STAT_SATURATION];
            snprintf(out, cap, "The original image is %s.",
                     d < 0   ? "under-saturated"
                     : d > 0 ? "over-saturated"
                             : "over- or under-saturated");
            break;
        }
        case CFX_CAUSE_NOISE:
            snprintf(out, cap, "The original image is noisy.");
            break;
        case CFX_CAUSE_PIXELATION:
            snprintf(out, cap, "The original image is pixelated.");
            break;
        default:
            snprintf(out, cap, "The original image has no known cause of low competency.");
    }
}
