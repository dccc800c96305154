"""concepts_ref.py - an independent Python implementation of V-CECE's cost model (cece costs).

Usage: concepts_ref.py DATA.json LABEL_KEY OUT.tsv [--queries N] [--time] [--reference]
Writes "query_id<TAB>target_id<TAB>cost" for the closest counterfactual of each image (the first
N images with --queries): the image with another label and the least edit cost, ties to the
earlier image. Plain and simple: NLTK for the concept sets (first longest hypernym path plus
the word), the symmetric difference for substitutions, the set size for insertions and
deletions, identical concepts paired first, scipy's linear_sum_assignment on the square matrix
with dummy rows and columns for the rest, and every candidate solved (no pruning). With --time, prints the search's seconds on
stderr (loading WordNet and building the cost table excluded). Shares nothing with the C code.

With --reference, the edit cost is the released V-CECE code's instead: identical concepts
paired first (each source concept, in the image's order, takes the first untaken identical
target concept), then scipy's linear_sum_assignment on the rectangular matrix of substitution
costs alone (rows: the source's leftover concepts, columns: the target's, each in the order the
image lists them, which decides scipy's choice among equally cheap assignments), and whatever
it leaves unmatched deleted or inserted at its set size.
"""
import json
import os
import sys
import time
import warnings
from collections import Counter

import numpy as np
from scipy.optimize import linear_sum_assignment

warnings.simplefilter("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wn_nltk  # noqa: E402


BIG = 1e9  # a forbidden pair in the augmented matrix (never needed: the matrix is feasible)


def edit_cost(p, q, sub, size):
    """Optimal edit cost from multiset p to multiset q (Counters of concept indices).

    Identical concepts pair first at cost 0. The rest is the textbook bipartite edit distance
    (Riesen and Bunke; the paper's "dummy nodes"): a square (n+m) x (n+m) assignment whose
    top-left block holds the substitutions, the top-right diagonal the deletions, the
    bottom-left diagonal the insertions and the bottom-right block zeros.
    """
    rest_p = list((p - q).elements())
    rest_q = list((q - p).elements())
    n, m = len(rest_p), len(rest_q)
    if n == 0 or m == 0:
        return int(size[rest_p].sum() + size[rest_q].sum())
    c = np.zeros((n + m, n + m))
    c[:n, :m] = sub[np.ix_(rest_p, rest_q)]
    c[:n, m:] = BIG
    c[n:, :m] = BIG
    c[np.arange(n), m + np.arange(n)] = size[rest_p]
    c[n + np.arange(m), np.arange(m)] = size[rest_q]
    r, k = linear_sum_assignment(c)
    return int(round(c[r, k].sum()))


def unmatched(a, b):
    """The items of list a left after each takes the first untaken identical item of b, in
    a's order."""
    taken = [False] * len(b)
    rest = []
    for x in a:
        j = next((j for j, y in enumerate(b) if y == x and not taken[j]), None)
        if j is None:
            rest.append(x)
        else:
            taken[j] = True
    return rest


def reference_cost(p, q, sub, size):
    """The released code's matching: rectangular assignment on substitutions, then leftovers.
    p and q are the images' concept lists as the file gives them."""
    rest_p = unmatched(p, q)
    rest_q = unmatched(q, p)
    if not rest_p or not rest_q:
        return int(size[rest_p].sum() + size[rest_q].sum())
    c = sub[np.ix_(rest_p, rest_q)]
    r, k = linear_sum_assignment(c)
    left_p = [rest_p[i] for i in sorted(set(range(len(rest_p))) - set(r))]
    left_q = [rest_q[j] for j in sorted(set(range(len(rest_q))) - set(k))]
    return int(c[r, k].sum() + size[left_p].sum() + size[left_q].sum())


def main():
    path, key, out = sys.argv[1], sys.argv[2], sys.argv[3]
    nq = int(sys.argv[sys.argv.index("--queries") + 1]) if "--queries" in sys.argv else None
    images = json.load(open(path))["images"]
    wn, tmp = wn_nltk.open_wordnet()
    names = sorted({o.replace(" ", "_") for im in images for o in im["objects"]})
    index = {n: i for i, n in enumerate(names)}
    sets = [set(wn_nltk.concept_set(wn, n)) for n in names]
    elements = sorted(set().union(*sets))
    eindex = {e: i for i, e in enumerate(elements)}
    inc = np.zeros((len(names), len(elements)), dtype=np.int64)
    for i, s in enumerate(sets):
        inc[i, [eindex[e] for e in s]] = 1
    size = inc.sum(axis=1)
    # |A ^ B| = |A| + |B| - 2 |A n B|, for every pair of concepts at once.
    sub = size[:, None] + size[None, :] - 2 * (inc @ inc.T)
    bags = [Counter(index[o.replace(" ", "_")] for o in im["objects"]) for im in images]
    if "--reference" in sys.argv:
        bags = [[index[o.replace(" ", "_")] for o in im["objects"]] for im in images]
    cost_of = reference_cost if "--reference" in sys.argv else edit_cost
    labels = [im["labels"][key] for im in images]
    t0, c0 = time.perf_counter(), time.process_time()
    rows = []
    for qi in range(len(images) if nq is None else nq):
        best, best_j = None, -1
        for j in range(len(images)):
            if labels[j] == labels[qi]:
                continue
            cost = cost_of(bags[qi], bags[j], sub, size)
            if best is None or cost < best:
                best, best_j = cost, j
        rows.append((images[qi]["id"], images[best_j]["id"] if best_j >= 0 else -1,
                     best if best is not None else -1))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if "--time" in sys.argv:
        print("%.6f %.6f" % (elapsed, cpu), file=sys.stderr)
    with open(out, "w") as f:
        for r in rows:
            f.write("%d\t%d\t%d\n" % r)


if __name__ == "__main__":
    main()
