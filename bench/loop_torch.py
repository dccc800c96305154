"""NumPy/PyTorch side of bench/loop.sh: the V-CECE loop's pixel phases on the same inputs as
bench_loop (the first N test scenes and each of their objects).

usage: loop_torch.py SCENES CLASSIFIER.onnx N OUTDIR
- Removal: the object's mask dilated by 2 pixels (square neighbourhood), then a NumPy port of
  cfx_image_inpaint (src/concepts/editor.c): onion-peel passes, each filling the unknown pixels
  that touch a known one with the mean of those (vectorised per pass, the state before the pass),
  then 30 in-place Gauss-Seidel sweeps of the Laplace equation over the hole in raster order (a
  loop over the hole's pixels, as the algorithm is sequential), float32 like cfx.
- Classification: the reference classifier rebuilt in PyTorch from the ONNX file's initializers
  (conv 5x5/2, 3x3/2, 3x3/2 with ReLU, fc 512-512-256-256-C with ReLU, softmax), one image a call.
Checks both against cfx's outputs in OUTDIR (inpainted.npy, probs.npy) and prints the worst
differences and the medians (seconds per call, 1 thread, after a warm-up pass):
"inpaint_median S", "classify_median S", "inpaint_maxdiff D", "probs_maxdiff D"."""
import json
import sys
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from PIL import Image

scenes, model, want, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)


def decode_rle(rle, n):
    m, at, inside = np.zeros(n, np.uint8), 0, False
    for length in rle:
        if inside:
            m[at : at + length] = 1
        at += length
        inside = not inside
    return m


def dilate(m, r):
    h, w = m.shape
    p = np.pad(m, r)
    o = np.zeros_like(m)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            o |= p[dy : dy + h, dx : dx + w]
    return o


def inpaint(img, mask):
    c, h, w = img.shape
    img = img.copy()
    known = (mask == 0).astype(np.float32)
    if not known.any():
        img[:] = 0.5
        known[:] = 1
    while (known == 0).any():
        kp = np.pad(known, 1)
        ip = np.pad(img * known, ((0, 0), (1, 1), (1, 1)))
        cnt = sum(kp[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
        s = sum(ip[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
        front = (known == 0) & (cnt > 0)
        img[:, front] = (s[:, front] / cnt[front]).astype(np.float32)
        known[front] = 1
    ys, xs = np.nonzero(mask)
    for _ in range(30):
        for y, x in zip(ys.tolist(), xs.tolist()):
            s, n = np.zeros(c, np.float32), 0
            if x > 0:
                s += img[:, y, x - 1]
                n += 1
            if x < w - 1:
                s += img[:, y, x + 1]
                n += 1
            if y > 0:
                s += img[:, y - 1, x]
                n += 1
            if y < h - 1:
                s += img[:, y + 1, x]
                n += 1
            img[:, y, x] = s / np.float32(n)
    return img


class Net(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.convs = torch.nn.ModuleList()
        for i, k in ((1, 5), (2, 3), (3, 3)):
            wt = w[f"conv{i}.weight"]
            conv = torch.nn.Conv2d(wt.shape[1], wt.shape[0], k, stride=2, padding=k // 2)
            conv.weight.data, conv.bias.data = torch.from_numpy(wt), torch.from_numpy(w[f"conv{i}.bias"])
            self.convs.append(conv)
        self.fcs = torch.nn.ModuleList()
        for i in range(1, 6):
            wt = w[f"fc{i}.weight"]
            fc = torch.nn.Linear(wt.shape[1], wt.shape[0])
            fc.weight.data, fc.bias.data = torch.from_numpy(wt), torch.from_numpy(w[f"fc{i}.bias"])
            self.fcs.append(fc)

    def forward(self, x):
        for c in self.convs:
            x = torch.relu(c(x))
        x = x.flatten(1)
        for fc in self.fcs[:-1]:
            x = torch.relu(fc(x))
        return torch.softmax(self.fcs[-1](x), 1)


data = json.load(open(f"{scenes}/concepts.json"))
imgs, masks, owner = [], [], []
for im in data["images"]:
    if im.get("split") != "test" or len(imgs) == want:
        continue
    a = np.asarray(Image.open(f"{scenes}/{im['file']}").convert("RGB"), np.float32) / np.float32(255)
    a = a.transpose(2, 0, 1).copy()
    h, w = a.shape[1:]
    for rle in im["masks"]:
        masks.append(dilate(decode_rle(rle, h * w).reshape(h, w), 2))
        owner.append(len(imgs))
    imgs.append(a)

ref = np.load(f"{out}/inpainted.npy")
ts, worst = [], 0.0
for rep in range(2):  # the first pass warms up
    ts = []
    for k, m in enumerate(masks):
        t0 = time.perf_counter()
        r = inpaint(imgs[owner[k]], m)
        ts.append(time.perf_counter() - t0)
        worst = max(worst, float(np.abs(r - ref[k]).max()))
print(f"inpaint_median {np.median(ts):.9f}")
print(f"inpaint_maxdiff {worst:.3g}")

w = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in onnx.load(model).graph.initializer}
net = Net(w).eval()
probs = np.load(f"{out}/probs.npy")
worst = 0.0
with torch.no_grad():
    for rep in range(2):
        ts = []
        for i, a in enumerate(imgs):
            x = torch.from_numpy(a)[None]
            t0 = time.perf_counter()
            p = net(x)
            ts.append(time.perf_counter() - t0)
            worst = max(worst, float(np.abs(p.numpy()[0] - probs[i]).max()))
print(f"classify_median {np.median(ts):.9f}")
print(f"probs_maxdiff {worst:.3g}")
