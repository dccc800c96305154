/* main.c - `cfx <command> [options]`: dispatches to one file per subcommand. */
#include "cli.h"

#include <string.h>

static const cli_command commands[] = {
    {"data", cmd_data, "write Fashion-MNIST, generated signs or an image folder as a dataset"},
    {"train", cmd_train, "train a classifier or an autoencoder on a dataset folder"},
    {"eval", cmd_eval, "evaluate a classifier or an autoencoder on a dataset split"},
    {"model", cmd_model, "inspect, check and run ONNX models; split an autoencoder"},
    {"competency", cmd_competency,
     "how far predictions can be trusted (PaRCE); examples per cause"},
    {"counterfactual", cmd_counterfactual,
     "high-competency counterfactuals of low-competency images (IGD, FGD, Reco, LGD, LNN)"},
    {"evaluate", cmd_evaluate, "metrics of a run: success, similarity, FID, KID, CMMD"},
    {"explain", cmd_explain,
     "why competency is low on each image of a run, in words, with competency maps"},
    {"report", cmd_report, "a run folder as one self-contained HTML page"},
    {"concepts", cmd_concepts,
     "semantic edits over WordNet: costs, closest counterfactuals, importance"},
    {"version", cmd_version, "print the version"},
};

int main(int argc, char **argv) {
    cfx_clean_up_on_signals(); /* an interrupted command leaves no temporaries behind */
    char help[] = "--help";    /* `cfx help` is `cfx --help` */
    if (argc > 1 && strcmp(argv[1], "help") == 0) argv[1] = help;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) return cmd_version(1, argv + 1);
    return cli_dispatch("", "Explains image classifiers with counterfactual images.\n", commands,
                        CLI_LEN(commands), argc, argv);
}
