/* opt.h - the one option parser of the cfx program, in the spirit of git's parse-options.
 *
 * A leaf command (`cfx model check`) declares its options as a table and hands it to cli_parse,
 * which fills the variables the entries point to, generates --help from the same table (with
 * the values they hold before as defaults), and rejects anything the table does not name:
 *
 *     const char *file = NULL;
 *     long long batch = 1, threads = 1;
 *     int json = 0;
 *     const cli_opt opts[] = {
 *         {"FILE", NULL, "an ONNX model", .str = &file, .required = true, .positional = true},
 *         {"batch", "N", "size of a symbolic batch dimension", .i = &batch, .lo = 1, .hi = 4096},
 *         CLI_OPT_THREADS(&threads),
 *         CLI_OPT_JSON(&json),
 *     };
 *     cli_parse("model check", "Loads the model, runs a forward and a backward ...\n", opts,
 *               CLI_LEN(opts), argc, argv);
 *
 * What an entry takes follows from the one destination it sets: .flag (an int set to 1 by
 * --name), .str (a string: --name VALUE), .i (a whole number in lo..hi), .num (a finite number
 * strictly between min and max) or .pick (the index of VALUE in the NULL-terminated .choices).
 * An entry with .positional takes a bare argument instead of --name (.str), or, as the last
 * positional with .list, every remaining bare argument ("INPUT...").
 *
 * Paths carry a role (.role): CLI_IN for what a command reads, CLI_OUT for a file it writes,
 * CLI_OUT_DIR for a folder it writes whole, CLI_WORK for a file it keeps rewriting (a
 * checkpoint). After parsing, cli_parse checks them the same way for every command, before any
 * work (cli_check_outputs, also for outputs a command derives itself):
 *     an output that is an input, or an existing file inside an input folder, or a folder
 *     that holds an input, or the same path as another output    usage error, exit 2
 *     a file output that exists without --force; a folder output that is not empty without
 *     --force; an output whose folder does not exist or cannot be written   "cfx <path>:
 *     <message>" on one line, exit 1
 * A table with an output must have CLI_OPT_FORCE.
 *
 * Every usage error prints one line, "cfx <path>: <what> (see cfx <path> --help)", and exits 2:
 *     --x needs a value         unknown option --x          unexpected argument 'x'
 *     --threads must be 0..1024 --lr must be a number > 0   --mode must be one of a, b, c
 *     --data is required        FILE is required            --json takes no value
 * -h and --help print the help on stdout and exit 0. Runtime failures are cli_fail's, exit 1.
 */
#ifndef CFX_CLI_OPT_H
#define CFX_CLI_OPT_H

#include <stdbool.h>
#include <stddef.h>

#define CLI_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The arguments a variadic positional took, in order (items point into argv; the array is the
 * parser's and lives until the program ends). */
typedef struct {
    const char **items;
    int n;
} cli_list;

/* What a path option is to its command (cli_parse checks outputs against inputs). */
enum { CLI_NONE, CLI_IN, CLI_OUT, CLI_OUT_DIR, CLI_WORK };

typedef struct {
    const char *name;  /* "out" for --out; a positional's name as help shows it, "FILE" */
    const char *value; /* what help calls the value: "DIR", "N" (NULL for a flag) */
    const char *help;  /* one sentence or two; help wraps it */
    /* The destination, exactly one of these. Whatever it holds before cli_parse is the default
     * that help shows, unless def says it in words. */
    int *flag;
    const char **str;
    long long *i;
    double *num;
    int *pick;
    cli_list *list;             /* a positional that takes every remaining bare argument */
    long long lo, hi;           /* .i: the accepted range */
    double min, max;            /* .num: the open interval (min, max); max may be INFINITY */
    const char *const *choices; /* .pick: the accepted words, NULL-terminated */
    const char *def;            /* the default in words, for help ("all cores") */
    bool required;              /* a .str entry that must be given (its destination starts NULL) */
    bool positional;
    int role; /* a path's: CLI_IN, CLI_OUT, CLI_OUT_DIR or CLI_WORK (.str or .list) */
} cli_opt;

/* Shared definitions, the same for every command that has them. */
#define CLI_OPT_THREADS(p)                                                                         \
    { "threads", "N", "threads, 0 for all cores", .i = (p), .lo = 0, .hi = 1024 }
#define CLI_OPT_SEED(p, help)                                                                      \
    { "seed", "N", help, .i = (p), .lo = 0, .hi = 1LL << 53 }
#define CLI_OPT_JSON(p)                                                                            \
    { "json", NULL, "print one JSON object instead of the summary", .flag = (p) }
#define CLI_OPT_FORCE(p)                                                                           \
    {                                                                                              \
        "force", NULL, "replace outputs that exist (a folder even when it is not empty)",          \
            .flag = (p)                                                                            \
    }
#define CLI_OPT_OUT(p, value, help)                                                                \
    { "out", value, help, .str = (p), .required = true, .role = CLI_OUT }
#define CLI_OPT_OUT_DIR(p, value, help)                                                            \
    { "out", value, help, .str = (p), .required = true, .role = CLI_OUT_DIR }

/* Parses argv[1..argc-1] (argv[0] is the leaf's name) against the table. Returns when every
 * argument was taken and every required entry given; prints help and exits 0 on -h or --help;
 * prints one line and exits 2 on a usage error. path is the command after "cfx", such as
 * "data signs"; about is the paragraph help shows under the usage line. */
void cli_parse(const char *path, const char *about, const cli_opt *opts, size_t n, int argc,
               char **argv);

/* Whether two paths name the same file or folder (both existing), or are the same string
 * once trailing slashes are dropped. */
bool cli_same_path(const char *a, const char *b);

/* Checks outputs a command derives itself (train's encoder.onnx beside --out) as cli_parse
 * checked the table's, against the inputs and --force of the table it parsed last (call it
 * while that table is in scope, and with a path that lives until the program ends); role is
 * CLI_OUT, CLI_OUT_DIR or CLI_WORK; what names the output in messages ("the encoder"). Exits
 * as cli_parse does on a failure. */
void cli_check_output(const char *what, const char *file, int role);

/* A usage error found after parsing ("--vjp and --grad-out go together"): prints
 * "cfx <path>: <message> (see cfx <path> --help)" and exits 2. */
_Noreturn void cli_usage_error(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A command of a group: argv[0] is its name; returns the exit code. */
typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} cli_command;

/* Runs the command argv[1] of the group path ("" for cfx itself). -h and --help list the
 * commands on stdout (exit 0); no command lists them on stderr (exit 2); an unknown one is a
 * usage error: "cfx <path>: unknown command 'x'" (exit 2). */
int cli_dispatch(const char *path, const char *about, const cli_command *cmds, size_t n, int argc,
                 char **argv);

#endif
