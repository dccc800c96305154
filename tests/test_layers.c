/* test_layers.c - the layer check (scripts/layers.py) on small trees made here: an upward
 * include, an upward linked symbol, a cycle inside a folder and a folder without a rank each
 * fail with the edge named; includes and symbols that point down pass; so does this tree. */
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Writes root/rel (making its folders) with the given text. */
static void put(const char *root, const char *rel, const char *text) {
    char path[1200], cmd[1400];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    CHECK_INT_EQ(system(cmd), 0);
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* A fresh tree under the test's temporary folder. */
static void tree(char *root, size_t n, const char *name) {
    snprintf(root, n, "%s/%s", cfx_test_tmpdir(), name);
    mkdir(root, 0777);
}

/* Compiles root/src/<rel>.c into root/build/src/<rel>.o. */
static void compile(const char *root, const char *rel) {
    char out[4096];
    int rc = cfx_test_sh(out, sizeof out,
                         "mkdir -p \"$(dirname '%s/build/src/%s')\" && cc -c '%s/src/%s.c' -o "
                         "'%s/build/src/%s.o' 2>&1",
                         root, rel, root, rel, root, rel);
    CHECK_MSG(rc == 0, "cc %s: %s", rel, out);
}

static int check(char *out, size_t n, const char *root, bool objects) {
    if (objects)
        return cfx_test_sh(
            out, n, "/usr/bin/python3 scripts/layers.py --root '%s' --objects '%s/build' 2>&1",
            root, root);
    return cfx_test_sh(out, n, "/usr/bin/python3 scripts/layers.py --root '%s' 2>&1", root);
}

CFX_TEST(layers, an_upward_include_fails_naming_the_edge) {
    char root[600], out[8192];
    tree(root, sizeof root, "upward_include");
    put(root, "src/engine/graph.h", "int graph(void);\n");
    put(root, "src/base/status.c",
        "/* base may not see the engine */\n#include \"engine/graph.h\"\n");
    CHECK_INT_EQ(check(out, sizeof out, root, false), 1);
    CHECK_MSG(strstr(out, "src/base/status.c:2 includes src/engine/graph.h: base (rank 0) may "
                          "not use engine (rank 1)") != NULL,
              "the edge is not named: %s", out);
}

CFX_TEST(layers, a_downward_include_passes) {
    char root[600], out[8192];
    tree(root, sizeof root, "downward_include");
    put(root, "src/base/base.h", "int base(void);\n");
    put(root, "src/engine/graph.c", "#include \"base/base.h\"\n");
    put(root, "cli/main.c", "#include \"engine/graph.c\"\n");
    CHECK_MSG(check(out, sizeof out, root, false) == 0, "a downward include failed: %s", out);
}

CFX_TEST(layers, an_upward_symbol_fails_naming_it) {
    char root[600], out[8192];
    tree(root, sizeof root, "upward_symbol");
    put(root, "src/base/alloc.c",
        "int engine_call(void);\nint alloc_call(void) { return engine_call(); }\n");
    put(root, "src/engine/blas.c", "int engine_call(void) { return 1; }\n");
    compile(root, "base/alloc");
    compile(root, "engine/blas");
    CHECK_INT_EQ(check(out, sizeof out, root, true), 1);
    CHECK_MSG(strstr(out, "src/base/alloc.o uses engine_call from src/engine/blas.o: base (rank "
                          "0) may not use engine (rank 1)") != NULL,
              "the edge is not named: %s", out);
    /* Without the objects only includes are read, and there are none. */
    CHECK_INT_EQ(check(out, sizeof out, root, false), 0);
}

CFX_TEST(layers, a_cycle_inside_a_folder_fails) {
    char root[600], out[8192];
    tree(root, sizeof root, "cycle");
    put(root, "src/data/dataset.c", "int folder(void);\nint dataset(void) { return folder(); }\n");
    put(root, "src/data/imagefolder.c",
        "int dataset(void);\nint folder(void) { return dataset(); }\n");
    put(root, "src/data/signs.c", "int dataset(void);\nint signs(void) { return dataset(); }\n");
    compile(root, "data/dataset");
    compile(root, "data/imagefolder");
    compile(root, "data/signs");
    CHECK_INT_EQ(check(out, sizeof out, root, true), 1);
    CHECK_MSG(strstr(out, "a cycle inside data: dataset -> imagefolder -> dataset") != NULL,
              "the cycle is not named: %s", out);
    CHECK_MSG(strstr(out, "src/data/imagefolder.o uses dataset from src/data/dataset.o") != NULL,
              "the cycle's edges are not named: %s", out);
    CHECK_MSG(strstr(out, "signs") == NULL, "a use without a cycle was blamed: %s", out);
}

CFX_TEST(layers, a_folder_without_a_rank_fails) {
    char root[600], out[8192];
    tree(root, sizeof root, "unranked");
    put(root, "src/base/base.h", "int base(void);\n");
    put(root, "src/widgets/knob.c", "#include \"base/base.h\"\n");
    CHECK_INT_EQ(check(out, sizeof out, root, false), 1);
    CHECK_MSG(strstr(out, "the folder 'widgets' has no rank") != NULL, "not named: %s", out);
}

CFX_TEST(layers, this_tree_keeps_the_order) {
    char out[16384];
    /* The includes here; make test also runs the check with this build's objects. */
    int rc = cfx_test_sh(out, sizeof out, "/usr/bin/python3 scripts/layers.py --root . 2>&1");
    CHECK_MSG(rc == 0, "scripts/layers.py on the tree: %s", out);
}
