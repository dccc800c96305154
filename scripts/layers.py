#!/usr/bin/python3
"""The layer check: libcfx's folders form a stack, and code may only use what is below it.

Usage: scripts/layers.py [--root DIR] [--objects BUILD]

Each folder of src/ (and cli/) has a rank in LAYERS below. Two kinds of edge are checked:
- an #include "..." from a file in one folder of a header in another;
- a symbol that an object file of one folder uses (nm: undefined) and an object file of another
  defines (with --objects, the build folder holding src/ and cli/ objects).
An edge to a folder of higher rank fails, naming the edge. Inside one folder, modules (a .c file
and its object) may use each other's symbols, but not in a cycle: the cycle is named. include/cfx.h, the
public header, and the generated ONNX schema (build/gen, part of engine/onnx) may be used by
all. A file in a folder that has no rank fails too, so a new folder is placed in the table.

Exit status: 0 when the tree keeps the order, 1 when an edge breaks it, 2 on usage errors.
"""
import os
import re
import subprocess
import sys

# Lowest first. A folder may use the folders above it in this list, and only those.
LAYERS = [
    "base",            # status, allocation, logging, rng, progress, threads, files, string map
    "engine",          # tensors, every GEMM, the oneDNN engine handle, the graph
    "engine/ops",      # the op families
    "engine/onnx",     # ONNX import and export
    "learn",           # optimizers, layers, checkpoints, the trainer, evaluation
    "data",            # npy, IDX, images, image folders, dataset folders, signs
    "competency",      # PaRCE
    "counterfactual",  # the five methods
    "metrics",         # LPIPS, FID, KID, CMMD
    "explain",         # explanations in words, competency maps, LLM client
    "concepts",        # V-CECE: WordNet, assignment, costs, search, importance
    "report",          # tables, figures, the HTML report
    "cli",             # the cfx program
]
RANK = {name: i for i, name in enumerate(LAYERS)}


def folder_of(root, path):
    """The layer folder of a file under root (src/<folder>/..., cli/...), or None for files
    that belong to no layer (include/, build/gen)."""
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep)
    if parts[0] == "cli":
        return "cli"
    if parts[0] == "build" or parts[0] == "include":
        return None
    if parts[0] != "src" or len(parts) < 3:
        return "src" if parts[0] == "src" else None
    # The deepest folder in the table that holds the file.
    for depth in range(len(parts) - 2, 0, -1):
        name = "/".join(parts[1 : 1 + depth])
        if name in RANK:
            return name
    return "/".join(parts[1:-1])


def module_of(path):
    return os.path.splitext(os.path.basename(path))[0]


def rank_error(what, src_folder, dst_folder):
    for f in (src_folder, dst_folder):
        if f not in RANK:
            return "%s: the folder '%s' has no rank (add it to LAYERS in scripts/layers.py)" % (
                what, f)
    if RANK[dst_folder] > RANK[src_folder]:
        return "%s: %s (rank %d) may not use %s (rank %d)" % (
            what, src_folder, RANK[src_folder], dst_folder, RANK[dst_folder])
    return None


def sources(root):
    for top in ("src", "cli"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.join(d, f)


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def include_edges(root):
    """(file, header, line number) for every quoted include that resolves to a file."""
    for path in sources(root):
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                for base in (os.path.dirname(path), os.path.join(root, "src"),
                             os.path.join(root, "include")):
                    cand = os.path.normpath(os.path.join(base, m.group(1)))
                    if os.path.isfile(cand):
                        yield path, cand, n
                        break


def symbol_edges(root, objects):
    """(object, defining object, symbols) for every object that uses symbols of another. Only
    objects of sources that still exist count (a build folder keeps those of moved files)."""
    objs = []
    for top in ("src", "cli", "gen"):
        for d, _, files in os.walk(os.path.join(objects, top)):
            for f in sorted(files):
                o = os.path.join(d, f)
                src = os.path.join(root, os.path.relpath(o, objects))[:-2] + ".c"
                if f.endswith(".o") and (top == "gen" or os.path.isfile(src)):
                    objs.append(o)
    defined, undefined = {}, {}
    for o in objs:
        out = subprocess.run(["nm", "-g", o], capture_output=True, text=True, check=True).stdout
        undefined[o] = []
        for line in out.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == "U":
                undefined[o].append(fields[1])
            elif len(fields) == 3 and fields[1] in "TDBRVWGSC":
                defined.setdefault(fields[2], o)
    for o in objs:
        used = {}
        for sym in undefined[o]:
            d = defined.get(sym)
            if d is not None and d != o:
                used.setdefault(d, []).append(sym)
        for d in sorted(used):
            yield o, d, used[d]


def object_folder(root, objects, obj):
    rel = os.path.relpath(obj, objects)
    if rel.startswith("gen" + os.sep):
        return "engine/onnx"
    return folder_of(root, os.path.join(root, rel))


def find_cycle(edges):
    """A cycle in a directed graph {node: {node: why}} as a list of nodes, or None."""
    colour, stack = {}, []

    def visit(n):
        colour[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, {})):
            if colour.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in colour:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        colour[n] = 2
        return None

    for n in sorted(edges):
        if n not in colour:
            c = visit(n)
            if c:
                return c
    return None


def main(argv):
    root, objects = ".", None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("--root", "--objects") and args:
            if a == "--root":
                root = args.pop(0)
            else:
                objects = args.pop(0)
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            print("layers.py: unknown argument '%s' (see --help)" % a, file=sys.stderr)
            return 2
    if objects is not None and not os.path.isdir(objects):
        print("layers.py: no build folder '%s' (run make first)" % objects, file=sys.stderr)
        return 2

    errors = []
    inner = {}  # folder -> {module: {module: why}}, for the cycle check inside a folder

    def edge(what, src_path, dst_path, src_folder, dst_folder, symbol):
        if dst_folder is None or src_folder is None:
            return
        if src_folder != dst_folder:
            err = rank_error(what, src_folder, dst_folder)
            if err:
                errors.append(err)
            return
        if not symbol:
            return  # a folder's private header may declare several of its modules
        a, b = module_of(src_path), module_of(dst_path)
        if a != b:
            inner.setdefault(src_folder, {}).setdefault(a, {}).setdefault(b, what)

    for path, header, n in include_edges(root):
        what = "%s:%d includes %s" % (os.path.relpath(path, root), n,
                                      os.path.relpath(header, root))
        edge(what, path, header, folder_of(root, path), folder_of(root, header), False)
    if objects is not None:
        for o, d, syms in symbol_edges(root, objects):
            what = "%s uses %s from %s" % (os.path.relpath(o, objects), ", ".join(syms[:3]) +
                                           (" and %d more" % (len(syms) - 3) if len(syms) > 3
                                            else ""), os.path.relpath(d, objects))
            edge(what, o, d, object_folder(root, objects, o), object_folder(root, objects, d), True)
    for folder in sorted(inner):
        cyc = find_cycle(inner[folder])
        if cyc:
            steps = [inner[folder][a][b] for a, b in zip(cyc, cyc[1:])]
            errors.append("a cycle inside %s: %s" % (folder, " -> ".join(cyc)) +
                          "".join("\n    %s" % s for s in steps))
    for e in errors:
        print("layers: " + e, file=sys.stderr)
    if errors:
        print("layers: %d edge(s) break the order of scripts/layers.py" % len(errors),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
