"""Joins files into one multi-file fuzz input (fuzz/fuzz.h's CFX_FUZZ_SEP), or splits one back.

usage: pack.py OUT FILE...      OUT = FILE1 SEP FILE2 SEP ... (a missing FILE is an empty part)
       pack.py --split IN DIR NAME...   writes IN's parts to DIR/NAME... (to look at a crash)
"""
import os
import sys

SEP = b"\n--cfx-fuzz-file--\n"

if sys.argv[1] == "--split":
    data = open(sys.argv[2], "rb").read()
    for name, part in zip(sys.argv[4:], data.split(SEP)):
        with open(os.path.join(sys.argv[3], name), "wb") as f:
            f.write(part)
    sys.exit(0)
parts = [open(p, "rb").read() if os.path.exists(p) else b"" for p in sys.argv[2:]]
with open(sys.argv[1], "wb") as f:
    f.write(SEP.join(parts))
