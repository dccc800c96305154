"""Independent check of a folder written by `cfx data scenes`: the class of every scene by the
rule written out again here, the least number of edits that changes it by enumerating every item
set (the distance between two sets of distinct items, with sizes kept in 1..4, is
max(|A-B|, |B-A|): replace pairs, then insert or delete the rest), masks decoded from their run
lengths (disjoint, their bounding boxes the boxes), every PNG (Pillow) equal to its row of the
dataset's .npy files, and the classes balanced. Prints one line per problem; exit 1 if any."""
import itertools
import json
import sys

import numpy as np
from PIL import Image

ITEMS = ["jersey.n.03", "trouser.n.01", "pullover.n.01", "dress.n.01", "coat.n.01",
         "sandal.n.01", "shirt.n.01", "gym_shoe.n.01", "bag.n.04", "boot.n.01"]


def rule(s):
    if "boot.n.01" in s:
        return "winter"
    if "sandal.n.01" in s:
        return "summer"
    if "bag.n.04" in s:
        return "travel"
    return "casual"


ALL = [frozenset(c) for k in range(1, 5) for c in itertools.combinations(ITEMS, k)]


def min_edits(a):
    return min(max(len(a - b), len(b - a)) for b in ALL if rule(b) != rule(a))


d = sys.argv[1]
cj = json.load(open(d + "/concepts.json"))
man = json.load(open(d + "/manifest.json"))
bad = []
rows = {}
for split in ("train", "calib", "test"):
    x = np.load(d + "/%s_images.npy" % split)
    y = np.load(d + "/%s_labels.npy" % split)
    rows[split] = (x, y, 0)
    counts = np.bincount(y, minlength=4)
    if counts.max() - counts.min() > 1:
        bad.append("%s: classes not balanced: %s" % (split, counts.tolist()))
seen = {"train": 0, "calib": 0, "test": 0}
for im in cj["images"]:
    objs = im["objects"]
    s = frozenset(objs)
    i = im["id"]
    if len(s) != len(objs) or not 1 <= len(s) <= 4 or not s <= set(ITEMS):
        bad.append("%d: objects %s" % (i, objs))
        continue
    if im["labels"]["rule"] != rule(s):
        bad.append("%d: label %s, rule says %s" % (i, im["labels"]["rule"], rule(s)))
    if im["min_edits"] != min_edits(s):
        bad.append("%d: min_edits %d, enumeration says %d" % (i, im["min_edits"], min_edits(s)))
    h, w = im["size"]
    union = np.zeros(h * w, np.int32)
    for box, runs in zip(im["boxes"], im["masks"]):
        if sum(runs) != h * w:
            bad.append("%d: runs sum to %d, not %d" % (i, sum(runs), h * w))
            continue
        m = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.int32)
        union += m
        ys, xs = np.nonzero(m.reshape(h, w))
        if [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] != box:
            bad.append("%d: box %s, mask bounds %s" % (i, box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]))
    if union.max() > 1:
        bad.append("%d: masks overlap" % i)
    split = im["split"]
    x, y, _ = rows[split]
    r = seen[split]
    seen[split] += 1
    png = np.asarray(Image.open(d + "/" + im["file"]).convert("RGB")).transpose(2, 0, 1)
    if not np.array_equal(png, x[r]):
        bad.append("%d: PNG differs from %s row %d" % (i, split, r))
    if man["classes"][y[r]] != im["labels"]["rule"]:
        bad.append("%d: npy label %s, json %s" % (i, man["classes"][y[r]], im["labels"]["rule"]))
for split in seen:
    if seen[split] != len(rows[split][1]):
        bad.append("%s: %d scenes in the json, %d in the npy" % (split, seen[split], len(rows[split][1])))
for b in bad[:20]:
    print(b)
print("scenes_oracle: %d scenes, %d problems" % (len(cj["images"]), len(bad)))
sys.exit(1 if bad else 0)
