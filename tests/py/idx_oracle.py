"""gzip + NumPy as the oracle for src/idx.c: parses an IDX file independently of cfx and saves
it as .npy (uint8 data as uint8, anything else as float32), plus fixtures cfx must refuse."""
import gzip
import struct
import sys

import numpy as np

src, out = sys.argv[1], sys.argv[2]
raw = gzip.open(src, "rb").read() if src.endswith(".gz") else open(src, "rb").read()
zero, code, ndim = struct.unpack(">HBB", raw[:4])
assert zero == 0
dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
types = {8: ">u1", 9: ">i1", 11: ">i2", 12: ">i4", 13: ">f4", 14: ">f8"}
a = np.frombuffer(raw[4 + 4 * ndim :], dtype=types[code]).reshape(dims)
np.save(out + "/oracle.npy", a if code == 8 else a.astype(np.float32))

# Big-endian fixtures of other element types, written by NumPy, that cfx must read back.
v = np.array([[-3, 0, 7], [250, -128, 12345]])
for code, t in [(11, ">i2"), (12, ">i4"), (13, ">f4"), (14, ">f8")]:
    with open(f"{out}/t{code}.idx", "wb") as f:
        f.write(struct.pack(">HBBII", 0, code, 2, 2, 3) + v.astype(t).tobytes())
