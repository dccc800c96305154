/* cmd_report.c - `cfx report RUN`: the run folder of `cfx counterfactual` as one self-contained
 * HTML page (src/report/html.c). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int cmd_report(int argc, char **argv) {
    const char *cmd = "report";
    const char *run = NULL, *out = NULL, *competency = NULL, *title = NULL;
    long long rows = 12;
    int json = 0, force = 0;
    const cli_opt opts[] = {
        {"RUN", NULL, "a run folder written by cfx counterfactual", .str = &run, .required = true,
         .positional = true},
        {"out", "FILE", "the HTML file to write", .str = &out, .def = "RUN/report.html",
         .role = CLI_OUT},
        {"competency", "DIR",
         "a folder written by cfx competency report, whose reliability diagram is shown",
         .str = &competency},
        {"title", "TEXT", "the page's title", .str = &title, .def = "cfx counterfactual report"},
        {"rows", "N", "images shown per cause", .i = &rows, .lo = 1, .hi = 100000},
        CLI_OPT_FORCE(&force),
        CLI_OPT_JSON(&json),
    };
    cli_parse(cmd,
              "Writes one self-contained HTML page for a run: settings, the calibration diagram\n"
              "(with --competency), the success table per method and cause, a success chart and\n"
              "a grid of counterfactuals per cause with rho under each image. It opens from the\n"
              "file, with no network access. The grids also go to RUN/figures/<cause>.png.\n",
              opts, CLI_LEN(opts), argc, argv);
    static char path[4200], figures[4200]; /* cli_check_output keeps them */
    if (!out) {
        snprintf(path, sizeof path, "%s/report.html", run);
        out = path;
        cli_check_output("the report", out, CLI_OUT);
    }
    snprintf(figures, sizeof figures, "%s/figures", run);
    cli_check_output("the figures", figures, CLI_OUT_DIR);
    cfx_run *r = cfx_run_open(run);
    if (!r) return cli_fail(cmd, NULL);
    cfx_report_options o = {
        .title = title, .competency_dir = competency, .rows_per_cause = (int)rows};
    /* The grids as PNG figures for papers first, then the page (atomic), so a failure leaves
     * no report that claims a finished run. */
    cfx_status s = CFX_OK;
    if (mkdir(figures, 0755) != 0 && errno != EEXIST)
        s = cfx_set_error(CFX_EIO, "mkdir '%s': %s", figures, strerror(errno));
    if (s == CFX_OK) s = cfx_figure_run_strips(r, figures, (int)rows);
    if (s == CFX_OK) s = cfx_report_html(r, &o, out);
    cfx_run_free(r);
    if (s != CFX_OK) return cli_fail(cmd, NULL);
    if (json) {
        printf("{\"out\": ");
        cli_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("wrote %s and %s/<cause>.png\n", out, figures);
    }
    return 0;
}
