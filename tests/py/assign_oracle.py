"""assign_oracle.py IN OUT - scipy's linear_sum_assignment on the matrices test_hungarian.c writes.

IN has one matrix per line: "nr nc v00 v01 ..." (row-major, "inf" forbids a pair). OUT gets one
line per matrix: the optimal total cost, or "infeasible" when scipy raises ValueError.
"""
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment

with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for line in f:
        tok = line.split()
        nr, nc = int(tok[0]), int(tok[1])
        c = np.array([float(t) for t in tok[2:]], dtype=np.float64).reshape(nr, nc)
        try:
            r, k = linear_sum_assignment(c)
            out.write("%.17g\n" % c[r, k].sum())
        except ValueError:
            out.write("infeasible\n")
