"""oracle_io.py - float32 arrays exchanged with the C tests (tests/oracle_io.h) as .npy files."""
import os
import sys

import numpy as np


def read(d, name):
    return np.load(os.path.join(d, name + ".npy")).astype(np.float32)


def write(d, name, a):
    np.save(os.path.join(d, name + ".npy"), np.ascontiguousarray(a, dtype=np.float32))


def cases(d):
    """Yields (name, {key: value}) from cases.txt lines 'name key=value ...'."""
    with open(os.path.join(d, "cases.txt")) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            yield parts[0], dict(p.split("=", 1) for p in parts[1:])


def run_cases(run):
    """An oracle's main: run(d, name, args) for each case of d/cases.txt, d the first argument."""
    d = sys.argv[1]
    for name, a in cases(d):
        run(d, name, a)


def ints(s):
    return [int(v) for v in s.split(",")]
