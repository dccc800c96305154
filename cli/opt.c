/* opt.c - the option parser of the cfx program (see opt.h). One table per leaf command gives
 * the parsing, the checks and the help text, so every command takes exact option names only,
 * words each failure the same way and exits 2 on any usage error. Values come from the next
 * argument or after '=' (--threads=4); "--" ends the options. */
#include "opt.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HELP_WIDTH 100 /* help wraps before this column */
#define NAME_WIDTH 20  /* "--name VALUE" longer than this puts its help on the next line */
#define MAX_OPTS   64  /* entries in one table */

_Noreturn void cli_usage_error(const char *path, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *sp = *path ? " " : "";
    fprintf(stderr, "cfx%s%s: %s (see cfx%s%s --help)\n", sp, path, msg, sp, path);
    exit(2);
}

/* "0..1024", "a number > 0", "one of local, global": what a value must be, for the message. */
static void describe(const cli_opt *o, char *buf, size_t size) {
    if (o->i && o->lo <= LLONG_MIN + 1 && o->hi == LLONG_MAX)
        snprintf(buf, size, "a whole number");
    else if (o->i)
        snprintf(buf, size, "%lld..%lld", o->lo, o->hi);
    else if (o->num && isinf(o->max))
        snprintf(buf, size, "a number > %g", o->min);
    else if (o->num)
        snprintf(buf, size, "a number in (%g, %g)", o->min, o->max);
    else {
        size_t len = (size_t)snprintf(buf, size, "one of");
        for (int k = 0; o->choices[k] && len < size; k++)
            len += (size_t)snprintf(buf + len, size - len, "%s %s", k ? "," : "", o->choices[k]);
    }
}

/* Stores the value v of a valued option, or exits saying what the value must be. */
static void take(const char *path, const cli_opt *o, const char *v) {
    char *end;
    errno = 0;
    if (o->str) {
        *o->str = v;
        return;
    } else if (o->i) {
        long long x = strtoll(v, &end, 10);
        if (!errno && end != v && !*end && x >= o->lo && x <= o->hi) {
            *o->i = x;
            return;
        }
    } else if (o->num) {
        double x = strtod(v, &end); /* rejects NaN and the infinities through the range */
        if (!errno && end != v && !*end && x > o->min && x < o->max && isfinite(x)) {
            *o->num = x;
            return;
        }
    } else {
        for (int k = 0; o->choices[k]; k++)
            if (strcmp(v, o->choices[k]) == 0) {
                *o->pick = k;
                return;
            }
    }
    char what[512];
    describe(o, what, sizeof what);
    cli_usage_error(path, "--%s must be %s", o->name, what);
}

/* Prints text from column col (where the cursor is), wrapped before HELP_WIDTH. */
static void wrap(const char *text, int col) {
    int x = col;
    for (const char *p = text; *p;) {
        int w = (int)strcspn(p, " ");
        if (x > col && x + 1 + w > HELP_WIDTH) {
            printf("\n%*s", col, "");
            x = col;
        } else if (x > col) {
            putchar(' ');
            x++;
        }
        printf("%.*s", w, p);
        x += w;
        for (p += w; *p == ' ';) p++;
    }
    putchar('\n');
}

/* One line (or more) of help: "  --name VALUE   help (default X)". */
static void help_line(const cli_opt *o, int col) {
    char left[128], text[1024], def[256] = "";
    if (o->positional)
        snprintf(left, sizeof left, "%s", o->name);
    else
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->value ? " " : "",
                 o->value ? o->value : "");
    if (o->required)
        snprintf(def, sizeof def, "required");
    else if (o->def)
        snprintf(def, sizeof def, "default %s", o->def);
    else if (o->i)
        snprintf(def, sizeof def, "default %lld", *o->i);
    else if (o->num)
        snprintf(def, sizeof def, "default %g", *o->num);
    else if (o->str && *o->str)
        snprintf(def, sizeof def, "default %s", *o->str);
    else if (o->pick && *o->pick >= 0)
        snprintf(def, sizeof def, "default %s", o->choices[*o->pick]);
    snprintf(text, sizeof text, "%s%s%s%s", o->help, def[0] ? " (" : "", def, def[0] ? ")" : "");
    int len = printf("  %s", left);
    if (len + 2 > col)
        printf("\n%*s", col, "");
    else
        printf("%*s", col - len, "");
    wrap(text, col);
}

/* The help of a leaf, generated from its table, on stdout. */
static void help(const char *path, const char *about, const cli_opt *opts, size_t n) {
    int width = 10, optional = 0, positionals = 0;
    printf("usage: cfx %s", path);
    for (size_t k = 0; k < n; k++)
        if (opts[k].positional) {
            printf(opts[k].required ? " %s%s" : " [%s%s]", opts[k].name, opts[k].list ? "..." : "");
            positionals++;
        }
    for (size_t k = 0; k < n; k++) {
        const cli_opt *o = &opts[k];
        int w = (int)strlen(o->name) + (o->positional ? 0 : 2) +
                (o->value ? (int)strlen(o->value) + 1 : 0);
        if (w > width && w <= NAME_WIDTH) width = w;
        if (!o->positional && o->required) printf(" --%s %s", o->name, o->value);
        optional += !o->positional && !o->required;
    }
    printf("%s\n\n%s\n", optional ? " [options]" : "", about);
    if (positionals) printf("arguments:\n");
    for (size_t k = 0; k < n; k++)
        if (opts[k].positional) help_line(&opts[k], width + 4);
    printf("%soptions:\n", positionals ? "\n" : "");
    for (size_t k = 0; k < n; k++)
        if (!opts[k].positional) help_line(&opts[k], width + 4);
    /* Shown like a positional: its name as it stands. */
    help_line(&(cli_opt){"-h, --help", NULL, "print this help", .positional = true}, width + 4);
}

/* ------------------------------------------------------------- outputs and inputs --- */

/* The table cli_parse took last, for cli_check_output, and the outputs checked so far. */
static struct {
    const char *path;
    const cli_opt *opts;
    size_t n;
    bool given[MAX_OPTS];
    int force;
    const char *outs[16];
    char out_names[16][48];
    int nouts;
} last;

/* A runtime failure found before the work: "cfx <path>: <message>", exit 1. */
_Noreturn static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cfx %s: %s\n", last.path, msg);
    exit(1);
}

/* "--out" or "OUT", as the user wrote the entry. */
static void entry_name(const cli_opt *o, char *buf, size_t size) {
    snprintf(buf, size, "%s%s", o->positional ? "" : "--", o->name);
}

bool cli_same_path(const char *a, const char *b) {
    if (!a || !b) return false;
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    while (lb > 1 && b[lb - 1] == '/') lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

/* Whether path names something inside the folder dir (both existing; links resolved). */
static bool inside(const char *path, const char *dir) {
    char *rp = realpath(path, NULL), *rd = realpath(dir, NULL);
    size_t n = rd ? strlen(rd) : 0;
    bool in = rp && rd && strncmp(rp, rd, n) == 0 && (rp[n] == '/' || (n == 1 && rd[0] == '/')) &&
              strcmp(rp, rd) != 0;
    free(rp);
    free(rd);
    return in;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool dir_empty(const char *path) {
    DIR *d = opendir(path);
    bool empty = d != NULL;
    for (struct dirent *e; empty && (e = readdir(d));)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    if (d) closedir(d);
    return empty;
}

/* Checks one output against the inputs of the last table, the outputs checked before it, and
 * the file system (see opt.h). */
static void check_output(const char *what, const char *file, int role) {
    struct stat st;
    bool exists = stat(file, &st) == 0;
    for (size_t k = 0; k < last.n; k++) {
        const cli_opt *o = &last.opts[k];
        if (o->role != CLI_IN) continue; /* given or a default */
        char in_name[48];
        entry_name(o, in_name, sizeof in_name);
        int m = o->list ? o->list->n : 1;
        for (int j = 0; j < m; j++) {
            const char *in = o->list ? o->list->items[j] : *o->str;
            if (!in) continue;
            if (cli_same_path(file, in))
                cli_usage_error(last.path,
                                "%s '%s' is also the input %s; an output must not "
                                "replace an input",
                                what, file, in_name);
            if (role != CLI_OUT_DIR && exists && is_dir(in) && inside(file, in))
                cli_usage_error(last.path, "%s '%s' is a file of the input %s '%s'", what, file,
                                in_name, in);
            if (role == CLI_OUT_DIR && exists && inside(in, file))
                cli_usage_error(last.path,
                                "%s '%s' holds the input %s '%s' (replacing it would delete the "
                                "input)",
                                what, file, in_name, in);
        }
    }
    for (int k = 0; k < last.nouts; k++)
        if (cli_same_path(file, last.outs[k]))
            cli_usage_error(last.path, "%s and %s are the same file '%s'", last.out_names[k], what,
                            file);
    if (last.nouts < 16) {
        last.outs[last.nouts] = file;
        snprintf(last.out_names[last.nouts++], sizeof last.out_names[0], "%s", what);
    }
    /* The folder it goes into exists and takes files; what is there already may be replaced. */
    size_t len = strlen(file);
    while (len > 1 && file[len - 1] == '/') len--; /* "out/" names the folder out */
    if (role != CLI_OUT_DIR && len < strlen(file))
        fail("%s '%s' ends in '/', but it is a file (give its name)", what, file);
    char parent[4200];
    snprintf(parent, sizeof parent, "%.*s", (int)len, file);
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    if (!is_dir(parent))
        fail("cannot write %s '%s': the folder '%s' does not exist", what, file, parent);
    if (access(parent, W_OK | X_OK) != 0)
        fail("cannot write %s '%s': the folder '%s' is not writable", what, file, parent);
    if (!exists) return;
    if (role == CLI_OUT_DIR) {
        if (!S_ISDIR(st.st_mode)) fail("'%s' exists and is not a folder", file);
        if (!last.force && !dir_empty(file))
            fail("'%s' exists and is not empty (use --force to replace it)", file);
    } else {
        if (S_ISDIR(st.st_mode)) fail("%s '%s' is a folder; give a file name", what, file);
        if (role == CLI_OUT && !last.force) fail("'%s' exists (use --force to replace it)", file);
    }
}

void cli_check_output(const char *what, const char *file, int role) {
    if (file) check_output(what, file, role);
}

/* Every output of the table just parsed. */
static void check_table_outputs(const char *path, const cli_opt *opts, size_t n,
                                const bool *given) {
    last.path = path, last.opts = opts, last.n = n, last.force = 0, last.nouts = 0;
    bool outputs = false, has_force = false;
    for (size_t k = 0; k < n; k++) {
        last.given[k] = given[k];
        if (opts[k].flag && strcmp(opts[k].name, "force") == 0)
            has_force = true, last.force = *opts[k].flag;
        outputs |= opts[k].role == CLI_OUT || opts[k].role == CLI_OUT_DIR;
    }
    if (outputs && !has_force) {
        fprintf(stderr, "cfx %s: a table with outputs has no CLI_OPT_FORCE\n", path);
        abort(); /* a broken table, not a user's mistake */
    }
    for (size_t k = 0; k < n; k++) {
        const cli_opt *o = &opts[k];
        if (o->role == CLI_NONE || o->role == CLI_IN || !o->str || !*o->str) continue;
        size_t len = strlen(*o->str);
        if (o->role == CLI_OUT_DIR && len > 1 && (*o->str)[len - 1] == '/') {
            /* "out/" names the folder out (a copy, kept until the program ends) */
            char *trimmed = strdup(*o->str);
            if (!trimmed) fail("out of memory");
            while (len > 1 && trimmed[len - 1] == '/') trimmed[--len] = '\0';
            *o->str = trimmed;
        }
        char name[48];
        entry_name(o, name, sizeof name);
        check_output(name, *o->str, o->role);
    }
}

/* The arrays of the list positionals: the parser's, freed when the program ends (opt.h), so a
 * command that returns early leaks nothing. */
static const char **owned_lists[8];

static void free_lists(void) {
    for (size_t i = 0; i < sizeof owned_lists / sizeof *owned_lists; i++) {
        free(owned_lists[i]);
        owned_lists[i] = NULL;
    }
}

/* was (NULL for a new array) became now. */
static void own_list(const char **was, const char **now) {
    static bool registered;
    if (!registered) registered = atexit(free_lists) == 0;
    for (size_t i = 0; i < sizeof owned_lists / sizeof *owned_lists; i++)
        if (owned_lists[i] == was) {
            owned_lists[i] = now;
            return;
        }
}

void cli_parse(const char *path, const char *about, const cli_opt *opts, size_t n, int argc,
               char **argv) {
    bool given[MAX_OPTS] = {0};
    size_t next_positional = 0; /* opts[next_positional..] are searched for the next one */
    if (n > MAX_OPTS) {
        fprintf(stderr, "cfx %s: %zu options are more than the parser's %d\n", path, n, MAX_OPTS);
        abort(); /* a broken table, not a user's mistake */
    }
    int options_end = 0; /* after "--", every argument is positional */
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        if (!options_end && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            help(path, about, opts, n);
            exit(0);
        }
        if (!options_end && strcmp(a, "--") == 0) {
            options_end = 1;
            continue;
        }
        if (options_end || a[0] != '-' || a[1] == '\0') {
            while (next_positional < n && !opts[next_positional].positional) next_positional++;
            if (next_positional == n) cli_usage_error(path, "unexpected argument '%s'", a);
            given[next_positional] = true;
            cli_list *l = opts[next_positional].list;
            if (l) { /* takes this and every later bare argument */
                const char **items = realloc(l->items, (size_t)(l->n + 1) * sizeof *items);
                if (!items) cli_usage_error(path, "out of memory");
                items[l->n++] = a;
                own_list(l->items, items);
                l->items = items;
                continue;
            }
            *opts[next_positional++].str = a;
            continue;
        }
        /* An option: exactly a name of the table, --name or --name=value. */
        const char *name = a + 2, *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        size_t j = 0;
        while (a[1] == '-' && j < n &&
               (opts[j].positional || strlen(opts[j].name) != len ||
                strncmp(opts[j].name, name, len) != 0))
            j++;
        if (a[1] != '-' || j == n)
            cli_usage_error(path, "unknown option %.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        const cli_opt *o = &opts[j];
        given[j] = true;
        if (o->flag) {
            if (eq) cli_usage_error(path, "--%s takes no value", o->name);
            *o->flag = 1;
            continue;
        }
        /* The next argument is the value, unless there is none or it is another option. */
        const char *v = eq ? eq + 1 : NULL;
        if (!eq && k + 1 < argc && strncmp(argv[k + 1], "--", 2) != 0) v = argv[++k];
        if (!v) cli_usage_error(path, "--%s needs a value", o->name);
        take(path, o, v);
    }
    for (size_t k = 0; k < n; k++)
        if (opts[k].required && !given[k])
            cli_usage_error(path, opts[k].positional ? "%s is required" : "--%s is required",
                            opts[k].name);
    check_table_outputs(path, opts, n, given);
}

int cli_dispatch(const char *path, const char *about, const cli_command *cmds, size_t n, int argc,
                 char **argv) {
    const char *sp = *path ? " " : "";
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        FILE *f = argc < 2 ? stderr : stdout; /* no command is a usage error */
        int width = 0;
        for (size_t k = 0; k < n; k++)
            if ((int)strlen(cmds[k].name) > width) width = (int)strlen(cmds[k].name);
        fprintf(f, "usage: cfx%s%s <command> [options]\n\n%s\ncommands:\n", sp, path, about);
        for (size_t k = 0; k < n; k++)
            fprintf(f, "  %-*s   %s\n", width, cmds[k].name, cmds[k].help);
        fprintf(f, "\n`cfx%s%s <command> --help` describes a command's options.\n", sp, path);
        return argc < 2 ? 2 : 0;
    }
    for (size_t k = 0; k < n; k++)
        if (strcmp(argv[1], cmds[k].name) == 0) return cmds[k].fn(argc - 1, argv + 1);
    if (argv[1][0] == '-') cli_usage_error(path, "unknown option %s", argv[1]);
    cli_usage_error(path, "unknown command '%s'", argv[1]);
}
