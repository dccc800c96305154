"""NumPy as the oracle for src/explain/ (tests/test_explain.c).

usage: explain_oracle.py MODE DIR   reads the arrays cfx wrote in DIR and writes DIR/MODE.npy
  stats     images.npy (n, c, h, w): the statistics of each image, (n, 12) float64, in the order
            of cfx_stat: brightness, contrast, dark, light, black, white, shadows, highlights,
            saturation, noise, noise_median, blockiness (definitions in include/cfx.h, written here independently
            with NumPy's own reductions: np.std, np.percentile(method="inverted_cdf"),
            np.median, and array comparisons for the blockiness)
  map       grad.npy, image.npy, cf.npy (c, h, w), and flags.npy [with_cf]: the competency
            map (h, w)
"""
import sys

import numpy as np

TOL = 0.5 / 255


def luminance(x):
    x = x.astype(np.float64)
    if x.shape[0] == 1:
        return x[0]
    return 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]


def blockiness(x):
    x = x.astype(np.float64)
    counted = same = 0
    for axis in (2, 1):  # columns (neighbours along w), then rows
        n = x.shape[axis]
        for i in range(n - 1):
            a = np.take(x, i, axis=axis)
            b = np.take(x, i + 1, axis=axis)
            const_a = np.all(np.abs(a - a.reshape(a.shape[0], -1)[:, :1].reshape(-1, 1)) < TOL)
            const_b = np.all(np.abs(b - b.reshape(b.shape[0], -1)[:, :1].reshape(-1, 1)) < TOL)
            if const_a and const_b:
                continue
            counted += 1
            same += bool(np.all(np.abs(a - b) < TOL))
    return same / counted if counted else 0.0


def stats(x):
    lum = luminance(x)
    xd = x.astype(np.float64)
    sat = 0.0 if x.shape[0] == 1 else float(np.mean(xd.max(axis=0) - xd.min(axis=0)))
    nb = 0.25 * (xd[:, :-2, 1:-1] + xd[:, 2:, 1:-1] + xd[:, 1:-1, :-2] + xd[:, 1:-1, 2:])
    res = xd[:, 1:-1, 1:-1] - nb
    return [
        lum.mean(),
        lum.std(),
        np.percentile(lum, 2, method="inverted_cdf"),
        np.percentile(lum, 98, method="inverted_cdf"),
        np.mean(lum <= TOL),
        np.mean(lum >= 1 - TOL),
        np.mean(lum <= 0.1),
        np.mean(lum >= 0.9),
        sat,
        np.sqrt(np.mean(res**2)),
        np.median(np.abs(res)),
        blockiness(x),
    ]


def box(v):
    h, w = v.shape
    p = np.pad(v, 1, mode="edge")
    return sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


def scaled(v):
    v = box(v)
    return v / v.max() if v.max() > 0 else v * 0


def comp_map(grad, image, cf, with_cf):
    g = scaled(np.abs(grad.astype(np.float64)).sum(axis=0))
    if not with_cf:
        return g
    d = scaled(np.abs(cf.astype(np.float64) - image.astype(np.float64)).sum(axis=0))
    return 0.5 * g + 0.5 * d


def main():
    mode, d = sys.argv[1], sys.argv[2]
    if mode == "stats":
        images = np.load(f"{d}/images.npy")
        out = np.array([stats(x) for x in images], dtype=np.float64)
    elif mode == "map":
        flags = np.load(f"{d}/flags.npy")
        out = comp_map(np.load(f"{d}/grad.npy"), np.load(f"{d}/image.npy"),
                       np.load(f"{d}/cf.npy"), bool(flags[0]))
    else:
        sys.exit(f"unknown mode {mode}")
    np.save(f"{d}/{mode}.npy", out)


if __name__ == "__main__":
    main()
