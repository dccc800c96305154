/* main.c - `cfx <command> [options]`: dispatches to one file per subcommand. */
#include "cli.h"

#include <string.h>

static const struct {
    const char *name;
    cli_fn fn;
    const char *help;
} commands[] = {
    {"data", cmd_data, "write Fashion-MNIST, generated signs or an image folder as a dataset"},
    {"train", cmd_train, "train a classifier or an autoencoder on a dataset folder"},
    {"eval", cmd_eval, "evaluate a classifier or an autoencoder on a dataset split"},
    {"model", cmd_model, "inspect, check and run ONNX models; split an autoencoder"},
    {"concepts", cmd_concepts,
     "semantic edits over WordNet: costs, closest counterfactuals, importance"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: cfx <command> [options]\n\n"
               "Explains image classifiers with counterfactual images.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`cfx <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv) {
    cfx_clean_up_on_signals(); /* an interrupted command leaves no temporaries behind */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return cmd_version(1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "cfx: unknown command '%s' (see cfx --help)\n", argv[1]);
    return 2;
}
