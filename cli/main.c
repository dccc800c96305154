/* main.c - `cfx <command> [options]`: dispatches to one file per subcommand. */
#include "cli.h"
#include "mpi.h"

#include <stdio.h>
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
     "why competency is low on each image of a run, in words (measured, or a vision LLM with "
     "--llm), with competency maps; explain score, explain export-finetune"},
    {"report", cmd_report, "a run folder as one self-contained HTML page"},
    {"concepts", cmd_concepts,
     "semantic edits over WordNet: costs, closest counterfactuals, importance"},
    {"version", cmd_version, "print the version"},
};

/* Under mpirun, the commands that share their work among the ranks (and `version`); any other
 * would run whole on every rank, over the same files. */
static bool sharded(int argc, char **argv) {
    const char *const ok[] = {"version",           "--version",        "counterfactual",
                              "competency score",  "evaluate",         "train classifier",
                              "train autoencoder", "concepts nearest", "concepts edit"};
    /* explain RUN, not explain score or export-finetune */
    if (argc > 2 && !strcmp(argv[1], "explain"))
        return strcmp(argv[2], "score") && strcmp(argv[2], "export-finetune");
    for (size_t k = 0; k < CLI_LEN(ok); k++) {
        size_t n = strcspn(ok[k], " ");
        if (argc > 1 && strlen(argv[1]) == n && !strncmp(argv[1], ok[k], n) &&
            (!ok[k][n] || (argc > 2 && !strcmp(argv[2], ok[k] + n + 1))))
            return true;
    }
    return false;
}

int main(int argc, char **argv) {
    cli_mpi_init(&argc, &argv); /* one rank, or every rank of an MPI job agreeing */
    if (cli_mpi_size() > 1 && !sharded(argc, argv)) {
        if (cli_mpi_rank() == 0)
            fprintf(stderr,
                    "cfx: under mpirun only `cfx competency score`, `cfx counterfactual`, `cfx "
                    "evaluate`, `cfx train`, `cfx explain` and `cfx concepts nearest|edit` share "
                    "their work among the "
                    "ranks so far; run this "
                    "command with one rank\n");
        return 2;
    }
    cfx_clean_up_on_signals(); /* an interrupted command leaves no temporaries behind */
    char help[] = "--help";    /* `cfx help` is `cfx --help` */
    if (argc > 1 && strcmp(argv[1], "help") == 0) argv[1] = help;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) return cmd_version(1, argv + 1);
    return cli_dispatch("", "Explains image classifiers with counterfactual images.\n", commands,
                        CLI_LEN(commands), argc, argv);
}
