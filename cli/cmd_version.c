/* cmd_version.c - `cfx version`: the version and thread count. */
#include "cli.h"

int cmd_version(int argc, char **argv) {
    int json = 0;
    const cli_opt opts[] = {CLI_OPT_JSON(&json)};
    cli_parse("version", "Prints the version of cfx and the number of threads it runs on.\n", opts,
              CLI_LEN(opts), argc, argv);
    if (json)
        printf("{\"version\": \"%s\", \"threads\": %d}\n", CFX_VERSION, cfx_get_threads());
    else
        printf("cfx %s (%d threads)\n", CFX_VERSION, cfx_get_threads());
    return 0;
}
