/* loop_html.c - the pages of V-CECE's loop (src/concepts/edit_loop.c): the report of runs of
 * `cfx concepts edit` (a table per run and a strip of steps per image: the source, each edit's
 * image with the edit and the classifier's label, the flipping step marked) and the human-study
 * sheet of the paper's survey (appendix D): each flipped loop's source and numbered steps, two
 * questions, and a button that saves the answers as CSV in the browser (a Blob downloaded
 * through a link; the same text also appears in a box to copy). Both pages are self-contained:
 * the step PNGs are inlined as data URIs byte for byte, no script or style is fetched. */
#include "report/report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The run's step image as an <img>; a missing file is an error naming it. */
static cfx_status put_png(FILE *f, const cfx_loop_run *r, const char *rel, const char *alt,
                          const char *cls) {
    char path[4400], *png = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s", r->dir, rel);
    if (cfx_file_read_all(path, &png, &len) != CFX_OK)
        return cfx_error_context(CFX_EIO, "run '%s': step image", r->dir);
    fprintf(f, "<img class=\"%s\" alt=\"", cls);
    cfx__report_text(f, alt);
    fputs("\" src=\"data:image/png;base64,", f);
    cfx__report_base64(f, (const unsigned char *)png, len);
    fputs("\">", f);
    cfx_free(png);
    return CFX_OK;
}

/* "remove coat", "insert sandal", "replace coat by sandal". */
static void edit_text(char *buf, size_t size, const cfx_loop_step *s) {
    if (s->from && s->to)
        snprintf(buf, size, "%s %s by %s", s->action, s->from, s->to);
    else
        snprintf(buf, size, "%s %s", s->action, s->from ? s->from : s->to ? s->to : "?");
}

static void put_num(FILE *f, double v, const char *fmt) {
    if (isnan(v))
        fputs("<td>-</td>", f);
    else {
        fputs("<td>", f);
        fprintf(f, fmt, v);
        fputs("</td>", f);
    }
}

static void runs_table(FILE *f, const cfx_loop_run *const *runs, int nruns,
                       const cfx_loop_metrics *m, const cfx_study_row *study) {
    fputs("<div class=\"scroll\"><table><tr><th class=\"l\">run</th><th>mode</th><th>images</th>"
          "<th>flipped</th><th>success</th><th>mean edits</th><th>rule min</th>",
          f);
    if (m) {
        fputs("<th>FID[", f);
        cfx__report_text(f, m[0].fid_label[0] ? m[0].fid_label : "-");
        fputs("]</th><th>CMMD[", f);
        cfx__report_text(f, m[0].cmmd_label[0] ? m[0].cmmd_label : "-");
        fputs("]</th><th>S3[", f);
        cfx__report_text(f, m[0].s3_label[0] ? m[0].s3_label : "-");
        fputs("]</th>", f);
    }
    if (study)
        fputs("<th>answers</th><th>model flip step</th><th>human flip step</th>"
              "<th>visually correct</th>",
              f);
    fputs("</tr>\n", f);
    for (int i = 0; i < nruns; i++) {
        const cfx_loop_run *r = runs[i];
        int flipped = 0, with_min = 0;
        double edits = 0, mn = 0;
        for (int32_t k = 0; k < r->n; k++)
            if (r->rec[k].flipped) {
                flipped++, edits += r->rec[k].steps;
                if (r->rec[k].min_edits >= 0) with_min++, mn += r->rec[k].min_edits;
            }
        fputs("<tr><td class=\"l\">", f);
        cfx__report_text(f, r->name);
        fputs("</td><td>", f);
        cfx__report_text(f, r->mode);
        fprintf(f, "</td><td>%d</td><td>%d</td>", (int)r->n, flipped);
        put_num(f, r->n ? 100.0 * flipped / r->n : NAN, "%.1f%%");
        put_num(f, flipped ? edits / flipped : NAN, "%.2f");
        put_num(f, with_min ? mn / with_min : NAN, "%.2f");
        if (m) {
            put_num(f, m[i].fid, "%.3f");
            put_num(f, m[i].cmmd, "%.3f");
            put_num(f, m[i].s3.mean, "%.4f");
        }
        if (study) {
            fprintf(f, "<td>%d</td>", (int)study[i].answers);
            put_num(f, study[i].model_step, "%.2f");
            put_num(f, study[i].human_step, "%.2f");
            put_num(f, study[i].answers ? 100.0 * study[i].artifact_free / study[i].answers : NAN,
                    "%.1f%%");
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div>\n", f);
}

/* One image's strip: a row of cells, the source first. */
static cfx_status strip(FILE *f, const cfx_loop_run *r, const cfx_loop_record *rec) {
    fprintf(f, "<div class=\"strip\"><p><b>image %lld</b> ", (long long)rec->query);
    if (rec->target >= 0) {
        fprintf(f, "&rarr; nearest %lld (data: ", (long long)rec->target);
        cfx__report_text(f, rec->source_label);
        fputs(" &rarr; ", f);
        cfx__report_text(f, rec->target_label);
        fputs(")", f);
    }
    if (rec->flipped)
        fprintf(f, " &middot; <span class=\"ok\">flipped at step %d</span>", rec->steps);
    else {
        fputs(" &middot; <span class=\"bad\">", f);
        cfx__report_text(f, rec->stop_reason);
        if (rec->error) fputs(": ", f), cfx__report_text(f, rec->error);
        fputs("</span>", f);
    }
    fputs("</p><div class=\"scroll\"><table class=\"grid\"><tr>", f);
    cfx_status s = CFX_OK;
    for (int k = 0; k < rec->nsteps && s == CFX_OK; k++) {
        const cfx_loop_step *st = &rec->step[k];
        bool flip = rec->flipped && k == rec->nsteps - 1;
        char what[512];
        if (k == 0)
            snprintf(what, sizeof what, "source");
        else
            edit_text(what, sizeof what, st);
        fprintf(f, "<td class=\"%s\">", flip ? "step flip" : "step");
        if (st->image) {
            char alt[600];
            snprintf(alt, sizeof alt, "image %lld, step %d: %s", (long long)rec->query, k, what);
            s = put_png(f, r, st->image, alt, "cell");
        }
        fprintf(f, "<div class=\"cap\">%d. ", k);
        cfx__report_text(f, what);
        fputs("<br><span class=\"", f);
        fputs(k > 0 && st->label && rec->step[0].label && strcmp(st->label, rec->step[0].label)
                  ? "bad"
                  : "muted",
              f);
        fputs("\">", f);
        cfx__report_text(f, st->label ? st->label : "?");
        fputs(flip ? "</span> <b>flip</b></div></td>" : "</span></div></td>", f);
    }
    fputs("</tr></table></div></div>\n", f);
    return s;
}

static const char *const loop_style =
    "<style>body{max-width:1500px}td.step{vertical-align:top;max-width:110px}td.step.flip "
    "img.cell{border:3px solid "
    "var(--ok)}td.step.flip{background:var(--card)}.strip p{margin:.8em 0 .2em}</style>\n";

static const char *const zoom =
    "<div id=\"zoom\" onclick=\"this.style.display='none'\"><img alt=\"\"></div>\n"
    "<script>document.querySelectorAll('img.cell').forEach(function(i){i.onclick="
    "function(){var z=document.getElementById('zoom');z.firstChild.src=i.src;"
    "z.firstChild.alt=i.alt;z.style.display='flex';};});</script>\n";

cfx_status cfx_report_loop_html(const cfx_loop_run *const *runs, int nruns,
                                const cfx_loop_metrics *metrics, const cfx_study_row *study,
                                int strips, const char *path) {
    cfx_file af;
    CFX_TRY(cfx_file_create(&af, path));
    FILE *f = af.f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta "
          "name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>cfx concepts "
          "report</title>\n",
          f);
    fputs(cfx__report_style, f);
    fputs(loop_style, f);
    fputs("</head><body>\n<h1>cfx concepts report</h1>\n<p class=\"muted\">Runs of <code>cfx "
          "concepts edit</code>: each image edited concept by concept toward its nearest "
          "counterfactual until the classifier's label flips.</p>\n<h2>Runs</h2>\n",
          f);
    runs_table(f, runs, nruns, metrics, study);
    fputs("<p class=\"muted\">Success: the share of loops whose label flipped. Mean edits: over "
          "those; rule min: the least number of edits that changes the class by the data's "
          "rule, over the same loops.",
          f);
    if (metrics)
        fputs(" FID and CMMD compare the flipped loops' source images with their final images; "
              "S3 is the mean cosine similarity of each pair's features. The network is in "
              "brackets: <code>classifier</code> is the classifier's own feature tensor, not "
              "Inception, CLIP or SimSiam.",
              f);
    if (study)
        fputs(" Human study: the mean step at which people said the label should change (over "
              "the answers that named one) beside the model's, and the share of final images "
              "they found free of visible artifacts.",
              f);
    fputs("</p>\n", f);
    cfx_status s = CFX_OK;
    for (int i = 0; i < nruns && s == CFX_OK; i++) {
        const cfx_loop_run *r = runs[i];
        fputs("<h2>", f);
        cfx__report_text(f, r->name);
        fputs(" <span class=\"muted\">(", f);
        cfx__report_text(f, r->mode);
        fputs(")</span></h2>\n", f);
        int shown = strips > 0 && strips < r->n ? strips : (int)r->n;
        fprintf(f,
                "<p class=\"muted\">%d of %d images. Under each step: its edit and the "
                "classifier's label (red when it differs from the source's); the flipping step "
                "is framed. Click an image to enlarge it.</p>\n",
                shown, (int)r->n);
        for (int k = 0; k < shown && s == CFX_OK; k++) s = strip(f, r, &r->rec[k]);
    }
    fputs(zoom, f);
    fputs("</body></html>\n", f);
    if (s == CFX_OK) return cfx_file_commit(&af);
    cfx_file_abort(&af);
    return s;
}

/* ------------------------------------------------------------------ the sheet --- */

/* The script of the sheet: the answers as CSV (cfx_study_load's format), shown and saved. */
static const char *const study_script =
    "<script>\n"
    "function q(s){s=String(s);return /[\",\\n]/.test(s)?'\"'+s.replace(/\"/g,'\"\"')+'\"':s;}\n"
    "function answers(){var who=document.getElementById('participant').value.trim();"
    "var rows=['participant,run,query,flip_step,artifact_free'],missing=0;\n"
    " document.querySelectorAll('section.item').forEach(function(s){"
    "var f=s.querySelector('input[name=\"'+s.id+'-flip\"]:checked'),"
    "a=s.querySelector('input[name=\"'+s.id+'-clean\"]:checked');"
    "if(!f||!a){missing++;return;}"
    "rows.push([q(who),q(s.dataset.run),s.dataset.query,f.value,a.value].join(','));});\n"
    " return {csv:rows.join('\\n')+'\\n',missing:missing};}\n"
    "function save(){var r=answers(),out=document.getElementById('csv');out.value=r.csv;"
    "var m=document.getElementById('status');"
    "m.textContent=r.missing?r.missing+' sequences are not answered yet; they are left out.':"
    "'All sequences answered.';"
    "var b=new Blob([r.csv],{type:'text/csv'}),a=document.createElement('a');"
    "a.href=URL.createObjectURL(b);a.download='answers.csv';document.body.appendChild(a);"
    "a.click();a.remove();}\n"
    "</script>\n";

cfx_status cfx_report_study_html(const cfx_loop_run *const *runs, int nruns, int limit,
                                 const char *path) {
    cfx_file af;
    CFX_TRY(cfx_file_create(&af, path));
    FILE *f = af.f;
    fputs(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta "
        "name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>Counterfactual "
        "study</title>\n",
        f);
    fputs(cfx__report_style, f);
    fputs("<style>section.item{border:1px solid var(--line);border-radius:6px;padding:8px "
          "12px;margin:14px 0}fieldset{border:none;padding:2px 0;margin:0}label{margin-right:"
          "1em;white-space:nowrap}textarea{width:100%;height:8em}td.step{vertical-align:top;"
          "max-width:110px}</style>\n",
          f);
    fputs("</head><body>\n<h1>Which edit should change the label?</h1>\n<p>Each sequence below "
          "starts from a source image (step 0) and changes it one edit at a time. For each "
          "sequence, pick the first step at which you think the image belongs to the other "
          "class (or <i>none</i> if no step gets there), and say whether the last image is free "
          "of visible artifacts (smears, seams, objects cut off). Then press <b>Save "
          "answers</b>: your browser saves <code>answers.csv</code>; send that file back.</p>\n"
          "<p><label>Your name or initials: <input id=\"participant\" type=\"text\"></label></p>\n",
          f);
    cfx_status s = CFX_OK;
    int item = 0;
    for (int i = 0; i < nruns && s == CFX_OK; i++) {
        const cfx_loop_run *r = runs[i];
        int shown = 0;
        for (int32_t k = 0; k < r->n && s == CFX_OK; k++) {
            const cfx_loop_record *rec = &r->rec[k];
            if (!rec->flipped || (limit > 0 && shown >= limit)) continue;
            shown++, item++;
            fprintf(f, "<section class=\"item\" id=\"s%d\" data-run=\"", item);
            cfx__report_text(f, r->name);
            fprintf(f, "\" data-query=\"%lld\">\n<h2>Sequence %d</h2>\n<p>", (long long)rec->query,
                    item);
            if (rec->source_label && rec->target_label) {
                fputs("From <b>", f);
                cfx__report_text(f, rec->source_label);
                fputs("</b> toward <b>", f);
                cfx__report_text(f, rec->target_label);
                fputs("</b>.", f);
            }
            fputs("</p><div class=\"scroll\"><table class=\"grid\"><tr>", f);
            for (int j = 0; j < rec->nsteps && s == CFX_OK; j++) {
                char what[512];
                if (j == 0)
                    snprintf(what, sizeof what, "source");
                else
                    edit_text(what, sizeof what, &rec->step[j]);
                fputs("<td class=\"step\">", f);
                if (rec->step[j].image) s = put_png(f, r, rec->step[j].image, what, "cell");
                fprintf(f, "<div class=\"cap\">%d. ", j);
                cfx__report_text(f, what);
                fputs("</div></td>", f);
            }
            fprintf(f, "</tr></table></div>\n<fieldset><legend>At which step should the label "
                       "change?</legend>");
            for (int j = 1; j <= rec->steps; j++)
                fprintf(f,
                        "<label><input type=\"radio\" name=\"s%d-flip\" value=\"%d\"> %d</label>",
                        item, j, j);
            fprintf(f,
                    "<label><input type=\"radio\" name=\"s%d-flip\" value=\"none\"> "
                    "none</label></fieldset>\n<fieldset><legend>Is the last image free of "
                    "visible artifacts?</legend><label><input type=\"radio\" name=\"s%d-clean\" "
                    "value=\"yes\"> yes</label><label><input type=\"radio\" name=\"s%d-clean\" "
                    "value=\"no\"> no</label></fieldset>\n</section>\n",
                    item, item, item);
        }
    }
    if (item == 0)
        fputs("<p class=\"bad\">No loop of these runs flipped its label: there is nothing to "
              "ask.</p>\n",
              f);
    fputs("<p><button id=\"save\" type=\"button\" onclick=\"save()\">Save answers</button> <span "
          "id=\"status\" class=\"muted\"></span></p>\n<p class=\"muted\">If the download is "
          "blocked, copy the answers from this box into a file named answers.csv:</p>\n"
          "<textarea id=\"csv\" readonly></textarea>\n",
          f);
    fputs(zoom, f);
    fputs(study_script, f);
    fputs("</body></html>\n", f);
    if (s == CFX_OK) return cfx_file_commit(&af);
    cfx_file_abort(&af);
    return s;
}
