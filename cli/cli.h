/* cli.h - shared helpers of the cfx command-line program. Only the CLI prints or exits. */
#ifndef CFX_CLI_H
#define CFX_CLI_H

#include "cfx.h"
#include "opt.h"

#include <stdbool.h>
#include <stdio.h>

/* A runtime failure: prints "cfx <cmd>: <message>" (cfx_last_error() when fmt is NULL) and
 * returns 1, the exit code of a failure. Usage errors are cli_usage_error's (opt.h), exit 2. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a status failure: "cfx <cmd>: <what>: <cfx_last_error()>" and returns 1. */
int cli_fail_status(const char *cmd, const char *what);
/* Writes s as a JSON string literal (with quotes). */
void cli_json_str(FILE *f, const char *s);
/* Applies --threads; n <= 0 means all cores. */
void cli_set_threads(long long n);
/* path made absolute (realpath; a copy of path when that fails), for the files that record
 * where their inputs were. Free with free(). */
char *cli_absolute(const char *path);
/* The dataset folder a competency bundle was fitted on, as its bundle.json records it (NULL
 * when it does not). Free with free(). */
char *cli_bundle_dataset(const char *bundle);

/* Subcommands (one file each). */
int cmd_version(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_concepts(int argc, char **argv);
int cmd_concepts_loop(int argc, char **argv);     /* concepts edit|evaluate */
int cmd_concepts_evaluate(int argc, char **argv); /* cmd_concepts_evaluate.c */
int cmd_competency(int argc, char **argv);
int cmd_counterfactual(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_explain(int argc, char **argv);

#endif
