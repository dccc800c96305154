/* font.c - checks that a TrueType file is safe to hand to stb_truetype for the glyphs cfx draws.
 *
 * stb_truetype trusts its input: every table offset, count and glyph index is read and followed
 * without a bounds check, a composite glyph may name itself (endless recursion), and a cmap
 * format it lacks is an assertion. A text file or a truncated font given as `cfx data signs
 * --font` crashed it. This module walks exactly the bytes stb will read for the given
 * characters, in the order and with the arithmetic stb uses (the font's first table of each
 * tag, the last Unicode cmap record, stb's binary search in a format 4 cmap, the loca offsets,
 * the outline parse of stbtt__GetGlyphShapeTT), and refuses the file, naming what is wrong,
 * when any of those reads would leave the file, when stb would assert, recurse without end or
 * overflow an int, or when an outline leaves its glyph's bounding box (the rasteriser writes
 * only inside the box it was given). Kerning tables are not checked: the caller does not use
 * them. Fonts with CFF outlines (OpenType 'OTTO') are refused: cfx reads TrueType outlines. */
#include "data/font.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    const uint8_t *d;
    uint64_t n; /* bytes in d */
    const char *path;
    uint64_t loca, glyf, hmtx;
    int64_t num_glyphs, loc_format, long_metrics;
} font;

static bool has(const font *f, uint64_t off, uint64_t len) {
    return off <= f->n && len <= f->n - off;
}
static uint32_t u16(const font *f, uint64_t off) {
    return (uint32_t)f->d[off] << 8 | f->d[off + 1];
}
static uint32_t u32(const font *f, uint64_t off) {
    return (uint32_t)f->d[off] << 24 | (uint32_t)f->d[off + 1] << 16 |
           (uint32_t)f->d[off + 2] << 8 | f->d[off + 3];
}

static cfx_status bad(const font *f, const char *what) {
    return cfx_set_error(CFX_EFORMAT, "'%s' is not a TrueType font cfx can read: %s", f->path,
                         what);
}

/* The offset of the first table with this tag (as stb's find_table), with at least min_len
 * bytes inside the file; 0 when absent. */
static cfx_status find_table(const font *f, uint64_t start, const char *tag, uint64_t min_len,
                             uint64_t *off) {
    uint64_t ntab = u16(f, start + 4);
    *off = 0;
    for (uint64_t i = 0; i < ntab; i++) {
        uint64_t rec = start + 12 + 16 * i;
        if (memcmp(f->d + rec, tag, 4) != 0) continue;
        uint64_t o = u32(f, rec + 8), len = u32(f, rec + 12);
        char msg[96];
        snprintf(msg, sizeof msg, "its '%s' table lies outside the file or is too short", tag);
        /* stb keeps offsets in ints: below 2^31, and 0 would read as "absent". */
        if (o == 0 || o >= (1u << 31) || len < min_len || !has(f, o, len)) return bad(f, msg);
        *off = o;
        return CFX_OK;
    }
    return CFX_OK;
}

/* Glyph index of character cp through the cmap subtable at map (stb_truetype's
 * stbtt_FindGlyphIndex, each read checked). */
static cfx_status glyph_index(const font *f, uint64_t map, uint32_t cp, int64_t *gi) {
    if (!has(f, map, 2)) return bad(f, "its character map lies outside the file");
    uint32_t format = u16(f, map);
    *gi = 0;
    if (format == 0) {
        if (!has(f, map, 6)) return bad(f, "its character map is truncated");
        int64_t bytes = u16(f, map + 2);
        if ((int64_t)cp < bytes - 6) {
            if (!has(f, map + 6 + cp, 1)) return bad(f, "its character map is truncated");
            *gi = f->d[map + 6 + cp];
        }
    } else if (format == 6) {
        if (!has(f, map, 10)) return bad(f, "its character map is truncated");
        uint32_t first = u16(f, map + 6), count = u16(f, map + 8);
        if (cp >= first && cp < first + count) {
            if (!has(f, map + 10 + (uint64_t)(cp - first) * 2, 2))
                return bad(f, "its character map is truncated");
            *gi = u16(f, map + 10 + (uint64_t)(cp - first) * 2);
        }
    } else if (format == 4) {
        if (!has(f, map, 14)) return bad(f, "its character map is truncated");
        /* stb's types: 16-bit fields, 32-bit offsets. */
        uint16_t segcount = (uint16_t)(u16(f, map + 6) >> 1),
                 range = (uint16_t)(u16(f, map + 8) >> 1), sel = (uint16_t)u16(f, map + 10),
                 shift = (uint16_t)(u16(f, map + 12) >> 1);
        uint32_t end_count = (uint32_t)map + 14, search = end_count;
        if (cp > 0xffff) return CFX_OK;
        if (!has(f, search + shift * 2u, 2)) return bad(f, "its format 4 character map is corrupt");
        if (cp >= u16(f, search + shift * 2u)) search += shift * 2u;
        search -= 2;
        for (; sel; sel--) {
            range >>= 1;
            if (!has(f, search + range * 2u, 2))
                return bad(f, "its format 4 character map is corrupt");
            if (cp > u16(f, search + range * 2u)) search += range * 2u;
        }
        search += 2;
        uint16_t item = (uint16_t)((search - end_count) >> 1);
        uint64_t starts = map + 14 + segcount * 2u + 2, deltas = map + 14 + segcount * 4u + 2,
                 offsets = map + 14 + segcount * 6u + 2;
        if (!has(f, starts + 2u * item, 2) || !has(f, end_count + 2u * item, 2) ||
            !has(f, deltas + 2u * item, 2) || !has(f, offsets + 2u * item, 2))
            return bad(f, "its format 4 character map is corrupt");
        uint32_t start = u16(f, starts + 2u * item), last = u16(f, end_count + 2u * item);
        if (cp < start || cp > last) return CFX_OK;
        uint32_t off = u16(f, offsets + 2u * item);
        if (off == 0) {
            *gi = (uint16_t)(cp + (int16_t)u16(f, deltas + 2u * item));
        } else {
            uint64_t at = off + (uint64_t)(cp - start) * 2 + offsets + 2u * item;
            if (!has(f, at, 2)) return bad(f, "its format 4 character map is corrupt");
            *gi = u16(f, at);
        }
    } else if (format == 12 || format == 13) {
        if (!has(f, map, 16)) return bad(f, "its character map is truncated");
        uint64_t ngroups = u32(f, map + 12);
        if (ngroups >= (1u << 27) || !has(f, map + 16, ngroups * 12))
            return bad(f, "its format 12 character map is truncated");
        int64_t lo = 0, hi = (int64_t)ngroups;
        while (lo < hi) {
            int64_t mid = lo + ((hi - lo) >> 1);
            uint64_t g = map + 16 + (uint64_t)mid * 12;
            uint32_t first = u32(f, g), last = u32(f, g + 4), glyph = u32(f, g + 8);
            if (cp < first) {
                hi = mid;
            } else if (cp > last) {
                lo = mid + 1;
            } else {
                *gi = format == 12 ? (int64_t)glyph + cp - first : glyph;
                break;
            }
        }
    } else {
        char msg[96];
        snprintf(msg, sizeof msg,
                 "its Unicode character map has format %u (stb reads 0, 4, 6, 12 "
                 "and 13)",
                 (unsigned)format);
        return bad(f, msg);
    }
    if (*gi < 0 || *gi >= f->num_glyphs)
        return bad(f, "its character map names a glyph it does not have");
    return CFX_OK;
}

/* An outline's extent in font units. */
typedef struct {
    double x0, y0, x1, y1;
} box;

/* Glyph gi's outline as stbtt__GetGlyphShapeTT parses it; *ext gets the extent of its points
 * (x0 > x1 when it has none). */
static cfx_status check_glyph(const font *f, int64_t gi, int depth, box *ext) {
    *ext = (box){1, 1, 0, 0};
    if (gi >= f->num_glyphs) return CFX_OK; /* stb draws nothing */
    if (depth > 8) return bad(f, "a composite glyph nests deeper than 8 (or contains itself)");
    uint64_t es = f->loc_format == 0 ? 2 : 4, at = f->loca + (uint64_t)gi * es;
    if (!has(f, at, 2 * es)) return bad(f, "its glyph locations (loca) are truncated");
    uint64_t g1 = f->glyf + (es == 2 ? 2 * (uint64_t)u16(f, at) : u32(f, at));
    uint64_t g2 = f->glyf + (es == 2 ? 2 * (uint64_t)u16(f, at + 2) : u32(f, at + 4));
    if (g1 == g2) return CFX_OK; /* an empty glyph */
    if (g1 >= (1u << 31) || !has(f, g1, 10)) return bad(f, "a glyph lies outside the file");
    int nc = (int16_t)u16(f, g1);
    box hdr = {(int16_t)u16(f, g1 + 2), (int16_t)u16(f, g1 + 4), (int16_t)u16(f, g1 + 6),
               (int16_t)u16(f, g1 + 8)};
    if (nc > 0) {
        uint64_t ends = g1 + 10;
        if (!has(f, ends, 2 * (uint64_t)nc + 2)) return bad(f, "a glyph's contours are truncated");
        for (int k = 1; k < nc; k++)
            if (u16(f, ends + 2 * k) <= u16(f, ends + 2 * (k - 1)))
                return bad(f, "a glyph's contour ends are not increasing");
        int64_t n = 1 + (int64_t)u16(f, ends + 2 * (uint64_t)(nc - 1));
        uint64_t p = ends + 2 * (uint64_t)nc + 2 + u16(f, ends + 2 * (uint64_t)nc);
        /* The flags, with their repeat counts; then the sizes of the x and y deltas. */
        uint8_t *flags = cfx_malloc((size_t)n);
        if (!flags) return CFX_ENOMEM;
        cfx_status s = CFX_OK;
        for (int64_t i = 0, repeat = 0; i < n && s == CFX_OK; i++) {
            if (repeat) {
                flags[i] = flags[i - 1], repeat--;
                continue;
            }
            if (!has(f, p, 1)) s = bad(f, "a glyph's point flags are truncated");
            if (s == CFX_OK) flags[i] = f->d[p++];
            if (s == CFX_OK && (flags[i] & 8)) {
                if (!has(f, p, 1)) s = bad(f, "a glyph's point flags are truncated");
                if (s == CFX_OK) repeat = f->d[p++];
            }
        }
        double lo[2] = {0, 0}, hi[2] = {0, 0};
        for (int axis = 0; axis < 2 && s == CFX_OK; axis++) {
            int short_bit = axis ? 4 : 2, same_bit = axis ? 32 : 16;
            int32_t v = 0;
            for (int64_t i = 0; i < n && s == CFX_OK; i++) {
                uint64_t len = (flags[i] & short_bit) ? 1 : (flags[i] & same_bit) ? 0 : 2;
                if (!has(f, p, len)) {
                    s = bad(f, "a glyph's point coordinates are truncated");
                    break;
                }
                if (len == 1) v += (flags[i] & same_bit) ? f->d[p] : -(int32_t)f->d[p];
                if (len == 2) v += (int16_t)u16(f, p);
                p += len;
                double c = (int16_t)v; /* stb keeps each coordinate as a 16-bit value */
                lo[axis] = i ? fmin(lo[axis], c) : c;
                hi[axis] = i ? fmax(hi[axis], c) : c;
            }
        }
        *ext = (box){lo[0], lo[1], hi[0], hi[1]};
        /* A contour that starts off the curve reads its next point: the last contour must not
         * be one such point (stb would read past its vertex array). */
        int64_t last_start = nc > 1 ? 1 + (int64_t)u16(f, ends + 2 * (uint64_t)(nc - 2)) : 0;
        if (s == CFX_OK && last_start == n - 1 && !(flags[n - 1] & 1))
            s = bad(f, "a glyph's last contour is a single off-curve point");
        cfx_free(flags);
        CFX_TRY(s);
    } else if (nc < 0) {
        uint64_t p = g1 + 10;
        for (int more = 1; more;) {
            if (!has(f, p, 4)) return bad(f, "a composite glyph is truncated");
            uint32_t fl = u16(f, p), comp = u16(f, p + 2);
            p += 4;
            if (!(fl & 2)) return bad(f, "a composite glyph places a part by matching points");
            double m[6] = {1, 0, 0, 1, 0, 0};
            uint64_t need = (fl & 1) ? 4 : 2;
            if (!has(f, p, need)) return bad(f, "a composite glyph is truncated");
            m[4] = (fl & 1) ? (int16_t)u16(f, p) : (int8_t)f->d[p];
            m[5] = (fl & 1) ? (int16_t)u16(f, p + 2) : (int8_t)f->d[p + 1];
            p += need;
            need = (fl & 8) ? 2 : (fl & 64) ? 4 : (fl & 128) ? 8 : 0;
            if (!has(f, p, need)) return bad(f, "a composite glyph is truncated");
            if (fl & 8) m[0] = m[3] = (int16_t)u16(f, p) / 16384.0;
            if (fl & 64)
                m[0] = (int16_t)u16(f, p) / 16384.0, m[3] = (int16_t)u16(f, p + 2) / 16384.0;
            if (fl & 128)
                for (int k = 0; k < 4; k++) m[k] = (int16_t)u16(f, p + 2 * k) / 16384.0;
            p += need;
            box part;
            CFX_TRY(check_glyph(f, comp, depth + 1, &part));
            if (part.x0 <= part.x1) { /* stb's transform: scale by the columns' lengths */
                double sx = sqrt(m[0] * m[0] + m[1] * m[1]), sy = sqrt(m[2] * m[2] + m[3] * m[3]);
                for (int k = 0; k < 4; k++) {
                    double x = k & 1 ? part.x1 : part.x0, y = k & 2 ? part.y1 : part.y0;
                    double tx = sx * (m[0] * x + m[2] * y + m[4]),
                           ty = sy * (m[1] * x + m[3] * y + m[5]);
                    if (ext->x0 > ext->x1) *ext = (box){tx, ty, tx, ty};
                    ext->x0 = fmin(ext->x0, tx), ext->x1 = fmax(ext->x1, tx);
                    ext->y0 = fmin(ext->y0, ty), ext->y1 = fmax(ext->y1, ty);
                }
            }
            more = fl & 32;
        }
    }
    /* The rasteriser is given the header's box: the outline must stay inside it. */
    if (ext->x0 <= ext->x1 && (ext->x0 < hdr.x0 - 1 || ext->x1 > hdr.x1 + 1 ||
                               ext->y0 < hdr.y0 - 1 || ext->y1 > hdr.y1 + 1))
        return bad(f, "a glyph's outline leaves its bounding box");
    return CFX_OK;
}

cfx_status cfx__font_check(const uint8_t *ttf, size_t size, const char *path, const char *chars) {
    font f = {.d = ttf, .n = size, .path = path};
    if (!has(&f, 0, 12)) return bad(&f, "it is shorter than a font header");
    uint64_t start = 0;
    if (memcmp(ttf, "ttcf", 4) == 0) { /* a collection: stb takes its first font */
        uint32_t version = u32(&f, 4);
        if (!has(&f, 0, 16) || (version != 0x10000 && version != 0x20000) || u32(&f, 8) < 1)
            return bad(&f, "its font collection header is corrupt");
        start = u32(&f, 12);
        if (start >= (1u << 31) || !has(&f, start, 12))
            return bad(&f, "its font collection header is corrupt");
    }
    const uint8_t *v = ttf + start;
    if (memcmp(v, "OTTO", 4) == 0)
        return bad(&f, "it has CFF (PostScript) outlines; use a TrueType (.ttf) font");
    if (memcmp(v, "\0\1\0\0", 4) != 0 && memcmp(v, "true", 4) != 0)
        return bad(&f, "it does not start with a TrueType signature");
    if (!has(&f, start + 12, 16 * (uint64_t)u16(&f, start + 4)))
        return bad(&f, "its table directory is truncated");
    uint64_t cmap, head, hhea, maxp;
    CFX_TRY(find_table(&f, start, "cmap", 4, &cmap));
    CFX_TRY(find_table(&f, start, "head", 54, &head));
    CFX_TRY(find_table(&f, start, "hhea", 36, &hhea));
    CFX_TRY(find_table(&f, start, "maxp", 6, &maxp));
    CFX_TRY(find_table(&f, start, "hmtx", 4, &f.hmtx));
    CFX_TRY(find_table(&f, start, "loca", 2, &f.loca));
    CFX_TRY(find_table(&f, start, "glyf", 10, &f.glyf));
    if (!cmap || !head || !hhea || !maxp || !f.hmtx || !f.loca || !f.glyf)
        return bad(&f, "it lacks one of the tables cmap, head, hhea, maxp, hmtx, loca, glyf");
    f.num_glyphs = u16(&f, maxp + 4);
    f.loc_format = u16(&f, head + 50);
    f.long_metrics = u16(&f, hhea + 34);
    if (f.num_glyphs < 1 || f.loc_format > 1)
        return bad(&f, "its glyph count or glyph location format is invalid");
    if (f.long_metrics < 1 || f.long_metrics > f.num_glyphs)
        return bad(&f, "its horizontal metrics count is invalid");
    if ((int16_t)u16(&f, hhea + 4) - (int16_t)u16(&f, hhea + 6) <= 0)
        return bad(&f, "its ascent is not above its descent");
    /* The Unicode map stb picks: the last Microsoft Unicode (3, 1 or 10) or Unicode (0, any)
     * record. */
    uint64_t nrec = u16(&f, cmap + 2), map = 0;
    if (!has(&f, cmap + 4, 8 * nrec)) return bad(&f, "its character map table is truncated");
    for (uint64_t i = 0; i < nrec; i++) {
        uint64_t rec = cmap + 4 + 8 * i;
        uint32_t platform = u16(&f, rec), encoding = u16(&f, rec + 2);
        if (platform == 0 || (platform == 3 && (encoding == 1 || encoding == 10))) {
            uint64_t off = u32(&f, rec + 4);
            if (off >= (1u << 31) || cmap + off >= (1u << 31))
                return bad(&f, "its character map lies outside the file");
            map = cmap + off;
        }
    }
    if (!map) return bad(&f, "it has no Unicode character map");
    for (const char *c = chars; *c; c++) {
        int64_t gi = 0;
        CFX_TRY(glyph_index(&f, map, (unsigned char)*c, &gi));
        /* The horizontal metrics stb reads for it. */
        uint64_t at = gi < f.long_metrics ? f.hmtx + 4 * (uint64_t)gi
                                          : f.hmtx + 4 * (uint64_t)f.long_metrics +
                                                2 * (uint64_t)(gi - f.long_metrics);
        if (!has(&f, f.hmtx + 4 * (uint64_t)(f.long_metrics - 1), 4) || !has(&f, at, 2))
            return bad(&f, "its horizontal metrics are truncated");
        box ext;
        CFX_TRY(check_glyph(&f, gi, 0, &ext));
    }
    return CFX_OK;
}
