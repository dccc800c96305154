/* html.c - the run report: one self-contained HTML file (images embedded as data URIs, no
 * network access, no external files) with the run's settings and bundle, the calibration
 * diagram of a competency report, the success table per method and per method and cause, a
 * success chart per cause as inline SVG, and a grid per cause (rows: examples; columns: the
 * original and each method; rho under every image, green at or above the threshold, red
 * below; a click enlarges an image). Light and dark themes follow the system setting; the
 * grids scroll sideways on a narrow screen. */
#include "report/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void cfx__report_base64(FILE *f, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        fputc(b64[(v >> 18) & 63], f);
        fputc(b64[(v >> 12) & 63], f);
        fputc(i + 1 < n ? b64[(v >> 6) & 63] : '=', f);
        fputc(i + 2 < n ? b64[v & 63] : '=', f);
    }
}

/* Text for HTML: &, <, >, " escaped. */
void cfx__report_text(FILE *f, const char *s) {
    for (; s && *s; s++) switch (*s) {
            case '&':
                fputs("&amp;", f);
                break;
            case '<':
                fputs("&lt;", f);
                break;
            case '>':
                fputs("&gt;", f);
                break;
            case '"':
                fputs("&quot;", f);
                break;
            default:
                fputc(*s, f);
        }
}

static cfx_status put_image(FILE *f, const float *chw, int c, int h, int w, const char *alt,
                            const char *cls) {
    unsigned char *png = NULL;
    size_t len = 0;
    CFX_TRY(cfx_image_encode_png(chw, c, h, w, &png, &len));
    fprintf(f, "<img class=\"%s\" alt=\"", cls);
    cfx__report_text(f, alt);
    fputs("\" src=\"data:image/png;base64,", f);
    cfx__report_base64(f, png, len);
    fputs("\">", f);
    cfx_free(png);
    return CFX_OK;
}

const char *const cfx__report_style =
    "<style>\n"
    ":root{--bg:#fff;--fg:#1d1f21;--muted:#5f6368;--line:#d9dce1;--card:#f6f7f9;"
    "--ok:#1e7b34;--bad:#c0392b;--bar1:#3b6fb6;}\n"
    "@media (prefers-color-scheme:dark){:root{--bg:#16181c;--fg:#e6e6e6;--muted:#a0a4ab;"
    "--line:#33373e;--card:#1f2227;--ok:#5cc27a;--bad:#ff7b6b;--bar1:#7aa7e8;}}\n"
    "body{margin:0 auto;max-width:1100px;padding:16px;background:var(--bg);color:var(--fg);"
    "font:15px/1.45 system-ui,-apple-system,'DejaVu Sans',sans-serif;}\n"
    "h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px "
    "solid var(--line);padding-bottom:.2em}\n"
    ".muted{color:var(--muted)}.ok{color:var(--ok)}.bad{color:var(--bad)}\n"
    ".scroll{overflow-x:auto}\n"
    "table{border-collapse:collapse;margin:.5em 0}th,td{padding:4px 8px;border-bottom:1px solid "
    "var(--line);text-align:right;vertical-align:top}th{text-align:center}"
    "td.l,th.l{text-align:left}\n"
    "table.grid td{text-align:center;border:none;padding:3px}"
    "table.grid td.expl{text-align:left;max-width:22em;font-size:.9em}\n"
    "img.cell{width:84px;height:auto;image-rendering:pixelated;cursor:zoom-in;display:block;"
    "margin:0 auto;border:1px solid var(--line)}\n"
    "img.fig{max-width:100%;height:auto;background:#fff}\n"
    ".cap{font-size:.85em;font-variant-numeric:tabular-nums}\n"
    "#zoom{display:none;position:fixed;inset:0;background:rgba(0,0,0,.8);align-items:center;"
    "justify-content:center;cursor:zoom-out}#zoom img{width:min(80vw,80vh);"
    "image-rendering:pixelated}\n"
    "svg text{fill:var(--fg);font-size:12px}svg .axis{stroke:var(--line)}\n"
    "</style>\n";

/* Method colours of the chart, readable on both themes. */
static const char *const colours[CFX_RUN_METHODS] = {"#3b6fb6", "#e08a1e", "#5a9e3a",
                                                     "#b04aa8", "#2aa6a6", "#8c6d3a"};

static bool in_cause(const cfx_run *r, int64_t i, const char *cause) {
    return !cause || !strcmp(r->cause[i], cause);
}

static void summary_table(FILE *f, const cfx_run *r, const char *const *cause, int ncause) {
    fputs("<div class=\"scroll\"><table><tr><th class=\"l\">method</th>", f);
    if (r->cause) fputs("<th class=\"l\">cause</th>", f);
    fputs("<th>images</th><th>success</th><th>rho before</th><th>rho after</th><th>steps</th>"
          "<th>seconds / image</th></tr>\n",
          f);
    for (int k = 0; k < CFX_RUN_METHODS; k++) {
        if (!r->has[k]) continue;
        for (int c = -1; c < (r->cause ? ncause : 0); c++) {
            cfx_run_tally t = cfx_run_tally_of(r, k, c < 0 ? NULL : cause[c]);
            if (!t.n) continue;
            fprintf(f, "<tr><td class=\"l\">%s%s%s</td>", c < 0 ? "<b>" : "",
                    cfx_run_method_name(k), c < 0 ? "</b>" : "");
            if (r->cause) {
                fputs("<td class=\"l\">", f);
                cfx__report_text(f, c < 0 ? "all" : cause[c]);
                fputs("</td>", f);
            }
            fprintf(f,
                    "<td>%lld</td><td>%.1f%%</td><td>%.3f</td><td>%.3f</td><td>%.1f</td>"
                    "<td>%.4f</td></tr>\n",
                    (long long)t.n, 100.0 * (double)t.success / (double)t.n, t.rho_before,
                    t.rho_after, t.steps, t.seconds);
        }
    }
    fputs("</table></div>\n", f);
}

/* RUN/metrics.json (cfx evaluate), when present: the similarity and realism columns, each
 * distribution metric under the name of its network. */
static void metrics_table(FILE *f, const cfx_run *r) {
    char path[4200], *text = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/metrics.json", r->dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        fputs("<p class=\"muted\">No metrics yet: <code>cfx evaluate RUN</code> adds feature and "
              "latent similarity, FID, KID and CMMD here.</p>\n",
              f);
        return;
    }
    fclose(probe);
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return;
    cJSON *j = cJSON_Parse(text);
    cfx_free(text);
    const cJSON *nets = cJSON_GetObjectItemCaseSensitive(j, "networks"),
                *rows = cJSON_GetObjectItemCaseSensitive(j, "rows");
    const cJSON *fid = cJSON_GetObjectItemCaseSensitive(nets, "fid"),
                *cmmd = cJSON_GetObjectItemCaseSensitive(nets, "cmmd"),
                *lpips = cJSON_GetObjectItemCaseSensitive(nets, "lpips");
    if (!cJSON_IsArray(rows) || !cJSON_IsString(fid) || !cJSON_IsString(cmmd) ||
        !cJSON_IsString(lpips)) {
        fputs("<p class=\"bad\">metrics.json is not cfx evaluate's; run it again.</p>\n", f);
        cJSON_Delete(j);
        return;
    }
    fputs("<h3>Similarity and realism</h3>\n<p>LPIPS and the cosine similarities are over the "
          "successful counterfactuals; FID, KID and CMMD compare all of a group's counterfactuals "
          "with the "
          "calibration images, on the network named in brackets.</p>\n",
          f);
    fputs("<div class=\"scroll\"><table><tr><th class=\"l\">method</th><th "
          "class=\"l\">cause</th><th>",
          f);
    cfx__report_text(f, lpips->valuestring);
    fputs("</th><th>feature cos[classifier]</th><th>latent cos</th>", f);
    fputs("<th>FID[", f);
    cfx__report_text(f, fid->valuestring);
    fputs("]</th><th>KID[", f);
    cfx__report_text(f, fid->valuestring);
    fputs("]</th><th>CMMD[", f);
    cfx__report_text(f, cmmd->valuestring);
    fputs("]</th></tr>\n", f);
    static const char *const keys[] = {
        "lpips", "feature_similarity", "latent_similarity", "fid", "kid", "cmmd"};
    static const char *const fmts[] = {"%.4f", "%.4f", "%.4f", "%.4g", "%.4g", "%.4g"};
    for (const cJSON *w = rows->child; w; w = w->next) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(w, "method"),
                    *c = cJSON_GetObjectItemCaseSensitive(w, "cause");
        fputs("<tr><td class=\"l\">", f);
        cfx__report_text(f, cJSON_IsString(m) ? m->valuestring : "?");
        fputs("</td><td class=\"l\">", f);
        cfx__report_text(f, cJSON_IsString(c) ? c->valuestring : "all");
        fputs("</td>", f);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(w, keys[k]);
            fputs("<td>", f);
            if (cJSON_IsNumber(v))
                fprintf(f, fmts[k], v->valuedouble);
            else
                fputs("none", f);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div>\n", f);
    cJSON_Delete(j);
}

/* Grouped bars: success rate per cause (groups) and method (bars). */
static void success_chart(FILE *f, const cfx_run *r, const char *const *cause, int ncause) {
    int nm = 0;
    for (int k = 0; k < CFX_RUN_METHODS; k++) nm += r->has[k];
    const int bar = 14, gap = 18, left = 40, top = 10, plot = 160;
    int width = left + ncause * (nm * bar + gap) + 10, height = top + plot + 40 + 20;
    fprintf(f,
            "<div class=\"scroll\"><svg role=\"img\" aria-label=\"success rate per cause and "
            "method\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n",
            width, height, width, height);
    for (int t = 0; t <= 4; t++) {
        int y = top + plot - t * plot / 4;
        fprintf(f,
                "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/><text x=\"%d\" "
                "y=\"%d\" text-anchor=\"end\">%d%%</text>\n",
                left, width - 10, y, y, left - 4, y + 4, t * 25);
    }
    for (int c = 0; c < ncause; c++) {
        int x0 = left + gap / 2 + c * (nm * bar + gap), j = 0;
        for (int k = 0; k < CFX_RUN_METHODS; k++) {
            if (!r->has[k]) continue;
            cfx_run_tally t = cfx_run_tally_of(r, k, cause[c]);
            double rate = t.n ? (double)t.success / (double)t.n : 0;
            int64_t n = t.n;
            int hgt = (int)lrint(rate * plot);
            fprintf(f,
                    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>%s: "
                    "%.1f%% of %lld</title></rect>\n",
                    x0 + j * bar, top + plot - hgt, bar - 2, hgt, colours[k],
                    cfx_run_method_name(k), 100 * rate, (long long)n);
            j++;
        }
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", x0 + nm * bar / 2,
                top + plot + 16);
        cfx__report_text(f, cause[c] ? cause[c] : "all images");
        fputs("</text>\n", f);
    }
    int x = left;
    for (int k = 0; k < CFX_RUN_METHODS; k++) {
        if (!r->has[k]) continue;
        fprintf(f,
                "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" "
                "y=\"%d\">%s</text>\n",
                x, top + plot + 30, colours[k], x + 14, top + plot + 39, cfx_run_method_name(k));
        x += 70;
    }
    fputs("</svg></div>\n", f);
}

/* explanations.jsonl (cfx explain), when present: the first sentence given for each image. */
static char **read_explanations(const cfx_run *r) {
    char path[4200], *text = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/explanations.jsonl", r->dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) return NULL;
    fclose(probe);
    if (cfx_file_read_all(path, &text, &size) != CFX_OK) return NULL;
    char **s = cfx_calloc((size_t)r->n, sizeof *s);
    for (char *p = text, *nl; s && p < text + size; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) nl = text + size;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(j, "index"),
                    *t = cJSON_GetObjectItemCaseSensitive(j, "sentence");
        if (cJSON_IsNumber(i) && cJSON_IsString(t) && i->valuedouble >= 0 &&
            i->valuedouble < (double)r->n && !s[(int64_t)i->valuedouble])
            s[(int64_t)i->valuedouble] = cfx_strdup(t->valuestring);
        cJSON_Delete(j);
    }
    cfx_free(text);
    return s;
}

/* The competency map cfx explain wrote for image i (RUN/maps/<i>.png), embedded; nothing when
 * there is none. */
static void put_map(FILE *f, const cfx_run *r, int64_t i) {
    char path[4200], *data = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/maps/%lld.png", r->dir, (long long)i);
    FILE *probe = fopen(path, "rb");
    if (!probe) return;
    fclose(probe);
    if (cfx_file_read_all(path, &data, &size) != CFX_OK) return;
    fprintf(f,
            "<img class=\"cell\" alt=\"image %lld, competency map\" src=\"data:image/png;base64,",
            (long long)i);
    cfx__report_base64(f, (const unsigned char *)data, size);
    fputs("\"><br>", f);
    cfx_free(data);
}

static cfx_status grid(FILE *f, const cfx_run *r, const char *cause, int rows, char *const *expl) {
    const int64_t img = (int64_t)r->c * r->h * r->w;
    fputs("<div class=\"scroll\"><table class=\"grid\"><tr><th>original</th>", f);
    for (int k = 0; k < CFX_RUN_METHODS; k++)
        if (r->has[k]) fprintf(f, "<th>%s</th>", cfx_run_method_name(k));
    if (expl) fputs("<th class=\"l\">explanation (and competency map)</th>", f);
    fputs("</tr>\n", f);
    int shown = 0;
    char alt[160];
    for (int64_t i = 0; i < r->n && shown < rows; i++) {
        if (!in_cause(r, i, cause)) continue;
        shown++;
        const cfx_run_result *first = NULL;
        for (int k = 0; k < CFX_RUN_METHODS && !first; k++)
            if (r->has[k] && r->results[k * r->n + i].present) first = &r->results[k * r->n + i];
        double rho0 = first ? first->rho_before : NAN;
        snprintf(alt, sizeof alt, "image %lld, original, rho %.3f", (long long)i, rho0);
        fputs("<tr><td>", f);
        CFX_TRY(put_image(f, r->images->data + i * img, r->c, r->h, r->w, alt, "cell"));
        fprintf(f, "<div class=\"cap %s\">%.3f</div></td>", rho0 >= r->threshold ? "ok" : "bad",
                rho0);
        for (int k = 0; k < CFX_RUN_METHODS; k++) {
            if (!r->has[k]) continue;
            const cfx_run_result *e = &r->results[k * r->n + i];
            fputs("<td>", f);
            if (e->present) {
                snprintf(alt, sizeof alt, "image %lld, %s, rho %.3f", (long long)i,
                         cfx_run_method_name(k), e->rho_after);
                CFX_TRY(put_image(f, r->counterfactuals[k]->data + i * img, r->c, r->h, r->w, alt,
                                  "cell"));
                fprintf(f, "<div class=\"cap %s\">%.3f%s%s</div>", e->success ? "ok" : "bad",
                        e->rho_after, k == CFX_RUN_BEST && e->winner >= 0 ? " " : "",
                        k == CFX_RUN_BEST && e->winner >= 0 ? cfx_run_method_name(e->winner) : "");
            }
            fputs("</td>", f);
        }
        if (expl) {
            fputs("<td class=\"expl\">", f);
            put_map(f, r, i);
            cfx__report_text(f, expl[i] ? expl[i] : "");
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div>\n", f);
    return CFX_OK;
}

/* A competency report's reliability.png, embedded; false when there is none. */
static bool calibration_figure(FILE *f, const char *dir) {
    char path[4200], *data = NULL;
    size_t size;
    snprintf(path, sizeof path, "%s/reliability.png", dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) return false;
    fclose(probe);
    if (cfx_file_read_all(path, &data, &size) != CFX_OK) return false;
    fputs("<img class=\"fig\" alt=\"reliability diagram of rho on the test split\" "
          "src=\"data:image/png;base64,",
          f);
    cfx__report_base64(f, (const unsigned char *)data, size);
    fputs("\">\n", f);
    cfx_free(data);
    return true;
}

cfx_status cfx_report_html(const cfx_run *r, const cfx_report_options *o, const char *path) {
    cfx_report_options d = o ? *o : (cfx_report_options){0};
    if (!r) return cfx_set_error(CFX_EINVAL, "report: no run");
    int rows = d.rows_per_cause > 0 ? d.rows_per_cause : 12;
    const char *cause[64] = {NULL};
    int ncause = r->cause ? cfx_run_causes(r, cause, 64) : 1;
    char **expl = read_explanations(r);
    cfx_file af;
    cfx_status s = cfx_file_create(&af, path);
    if (s != CFX_OK) goto done;
    FILE *f = af.f;
    const char *title = d.title ? d.title : "cfx counterfactual report";
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"color-scheme\" content=\"light dark\">\n<title>",
          f);
    cfx__report_text(f, title);
    fputs("</title>\n", f);
    fputs(cfx__report_style, f);
    fputs("</head><body>\n<h1>", f);
    cfx__report_text(f, title);
    fputs("</h1>\n<p class=\"muted\">run <code>", f);
    cfx__report_text(f, r->dir);
    fputs("</code>", f);
    if (!r->complete) fputs(" <b class=\"bad\">(incomplete: resume it)</b>", f);
    fputs("<br>bundle <code>", f);
    cfx__report_text(f, r->bundle ? r->bundle : "?");
    fprintf(f,
            "</code> (fingerprint %s) &middot; %lld images of %d&times;%d&times;%d &middot; "
            "threshold %.3g &middot; image distance %s</p>\n",
            r->bundle_fingerprint, (long long)r->n, r->c, r->h, r->w, r->threshold, r->distance);

    /* Settings, as run.json records them. */
    fputs("<h2>Settings</h2>\n<table>", f);
    cJSON *j = cJSON_Parse(r->run_json);
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(j, "settings");
    for (const cJSON *e = set ? set->child : NULL; e; e = e->next) {
        char *v = cJSON_IsString(e) ? NULL : cJSON_PrintUnformatted(e);
        fputs("<tr><td class=\"l\">", f);
        cfx__report_text(f, e->string);
        fputs("</td><td class=\"l\">", f);
        cfx__report_text(f, v ? v : e->valuestring);
        fputs("</td></tr>", f);
        cJSON_free(v);
    }
    cJSON_Delete(j);
    fputs("</table>\n", f);

    fputs("<h2>Calibration</h2>\n", f);
    if (!d.competency_dir || !calibration_figure(f, d.competency_dir))
        fputs("<p class=\"muted\">No competency report was given: <code>cfx competency report "
              "--bundle B --data D --out DIR</code> makes one, and <code>cfx report RUN "
              "--competency DIR</code> shows its reliability diagram here.</p>\n",
              f);

    fputs("<h2>Results</h2>\n<p>Success: rho of the counterfactual at or above the threshold. "
          "Steps and seconds are per image (seconds: wall time, set-up included).</p>\n",
          f);
    summary_table(f, r, cause, ncause);
    metrics_table(f, r);
    fputs("<h3>Success rate per cause</h3>\n", f);
    success_chart(f, r, cause, ncause);

    for (int c = 0; c < ncause && s == CFX_OK; c++) {
        fputs("<h2>", f);
        cfx__report_text(f, cause[c] ? cause[c] : "Images");
        fprintf(f,
                "</h2>\n<p class=\"muted\">Up to %d images; rho under each (green: at or "
                "above %.2f). Click an image to enlarge it.</p>\n",
                rows, r->threshold);
        s = grid(f, r, cause[c], rows, expl);
    }
    fputs("<div id=\"zoom\" onclick=\"this.style.display='none'\"><img alt=\"\"></div>\n"
          "<script>document.querySelectorAll('img.cell').forEach(function(i){i.onclick="
          "function(){var z=document.getElementById('zoom');z.firstChild.src=i.src;"
          "z.firstChild.alt=i.alt;z.style.display='flex';};});</script>\n</body></html>\n",
          f);
    if (s == CFX_OK)
        s = cfx_file_commit(&af);
    else
        cfx_file_abort(&af);
done:
    for (int64_t i = 0; expl && i < r->n; i++) cfx_free(expl[i]);
    cfx_free(expl);
    return s;
}
