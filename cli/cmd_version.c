/* cmd_version.c - `cfx version`: the version and thread count. */
#include "cli.h"

#include <string.h>

int cmd_version(int argc, char **argv) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: cfx version [--json]\n\nPrints the version of cfx.\n");
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_fail("version", "unknown option '%s' (see cfx version --help)", argv[i]);
        }
    }
    if (json)
        printf("{\"version\": \"%s\", \"threads\": %d}\n", CFX_VERSION, cfx_get_threads());
    else
        printf("cfx %s (%d threads)\n", CFX_VERSION, cfx_get_threads());
    return 0;
}
