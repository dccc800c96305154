"""oracle_io.py - float32 arrays exchanged with the C tests (tests/oracle_io.h): int32 ndim,
int64 shape[ndim], float32 data, little-endian."""
import os

import numpy as np


def read(d, name):
    with open(os.path.join(d, name + ".bin"), "rb") as f:
        nd = int(np.frombuffer(f.read(4), "<i4")[0])
        shape = tuple(int(v) for v in np.frombuffer(f.read(8 * nd), "<i8"))
        return np.frombuffer(f.read(), "<f4").reshape(shape).copy()


def write(d, name, a):
    a = np.ascontiguousarray(a, dtype="<f4")
    with open(os.path.join(d, name + ".bin"), "wb") as f:
        f.write(np.array([a.ndim], "<i4").tobytes())
        f.write(np.array(a.shape, "<i8").tobytes())
        f.write(a.tobytes())


def cases(d):
    """Yields (name, {key: value}) from cases.txt lines 'name key=value ...'."""
    with open(os.path.join(d, "cases.txt")) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            yield parts[0], dict(p.split("=", 1) for p in parts[1:])


def ints(s):
    return [int(v) for v in s.split(",")]
