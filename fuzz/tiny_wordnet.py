"""Writes a small WordNet 3.0 noun database into a folder (the fuzz/fuzz_wordnet.c seed): the
first senses of a few words and their hypernym closure, taken from Debian's WordNet with their
own offsets, keeping only the hypernym pointers (@, @i) among them, with an index.noun entry for
each of their words and a noun.exc line.
usage: tiny_wordnet.py OUT [WORDNET_DIR]"""
import os
import sys

out = sys.argv[1]
src = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/wordnet"
lines = {}
with open(os.path.join(src, "data.noun")) as f:
    for line in f:
        if not line.startswith(" "):
            lines[int(line[:8])] = line
first = {}
with open(os.path.join(src, "index.noun")) as f:
    for line in f:
        if not line.startswith(" "):
            t = line.split()
            first[t[0]] = int(t[-int(t[2])])


def parse(line):
    t = line.split(" | ")[0].split()
    w = int(t[3], 16)
    words = [t[4 + 2 * i] for i in range(w)]
    p = 4 + 2 * w
    ptrs = [t[p + 1 + 4 * i: p + 5 + 4 * i] for i in range(int(t[p]))]
    return t, words, ptrs


keep, todo = set(), [first[w] for w in ("dog", "chair", "sandal", "bag", "person", "coat")]
while todo:
    o = todo.pop()
    if o in keep:
        continue
    keep.add(o)
    todo += [int(p[1]) for p in parse(lines[o])[2] if p[0] in ("@", "@i") and p[2] == "n"]
os.makedirs(out, exist_ok=True)
senses = {}
with open(os.path.join(out, "data.noun"), "w") as f:
    f.write("  cfx: a few synsets of WordNet 3.0 (Princeton University) for fuzzing\n")
    for o in sorted(keep):
        t, words, ptrs = parse(lines[o])
        ptrs = [p for p in ptrs if p[0] in ("@", "@i") and int(p[1]) in keep]
        head = t[:4 + 2 * len(words)]
        body = " ".join(head + ["%03d" % len(ptrs)] + [" ".join(p) for p in ptrs])
        f.write(body + " | " + lines[o].split(" | ", 1)[1])
        for w in words:
            senses.setdefault(w.lower(), []).append(o)
with open(os.path.join(out, "index.noun"), "w") as f:
    f.write("  cfx: the lemmas of data.noun\n")
    for w in sorted(senses):
        offs = senses[w]
        f.write("%s n %d 1 @ %d 0 %s  \n" % (w, len(offs), len(offs),
                                             " ".join("%08d" % o for o in offs)))
with open(os.path.join(out, "noun.exc"), "w") as f:
    f.write("dogs dog\npersons person\n")
print(len(keep), "synsets,", len(senses), "lemmas")
