"""Pillow as the oracle for src/data/corrupt.c: the competency paper's image operations as its
reference code ran them (ImageEnhance Brightness, Contrast, Color; nearest-neighbour resize down
and back up), on seeded random 8-bit images. Writes in_<k>.npy (uint8, C,H,W) and, per case,
<cause>_<k>_<i>.npy with Pillow's result; cases.txt lists "cause k i factor" per line."""
import sys

import numpy as np
from PIL import Image, ImageEnhance

out = sys.argv[1]
rng = np.random.default_rng(11)
images = [
    rng.integers(0, 256, (3, 32, 32), dtype=np.uint8),
    rng.integers(0, 256, (1, 28, 28), dtype=np.uint8),
    rng.integers(0, 256, (3, 13, 17), dtype=np.uint8),
    # a dim, low-contrast picture, where rounding of the mean and clipping matter
    (rng.integers(0, 40, (3, 24, 20)) + 100).astype(np.uint8),
]
factors = {
    "brightness": [0.25, 0.5, 2, 3, 4, 5, 0, 0.7, 1.0, 1.3],
    "contrast": [0.25, 0.5, 2, 3, 4, 5, 0, 0.7, 1.0, 1.3],
    "saturation": [0, 2, 4, 8, 12, 16, 0.5, 1.0],
    "pixelation": [2, 3, 4, 5, 8, 12, 13],
}


def pil(a):
    return Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0),
                           "L" if a.shape[0] == 1 else "RGB")


def back(im):
    a = np.asarray(im)
    return np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))


lines = []
for k, a in enumerate(images):
    np.save("%s/in_%d.npy" % (out, k), a)
    im = pil(a)
    for cause, fs in factors.items():
        if cause == "saturation" and a.shape[0] != 3:
            continue
        for i, f in enumerate(fs):
            if cause == "brightness":
                r = ImageEnhance.Brightness(im).enhance(f)
            elif cause == "contrast":
                r = ImageEnhance.Contrast(im).enhance(f)
            elif cause == "saturation":
                r = ImageEnhance.Color(im).enhance(f)
            else:
                if f > min(im.size):
                    continue
                small = im.resize((im.size[0] // f, im.size[1] // f), Image.NEAREST)
                r = small.resize(im.size, Image.NEAREST)
            np.save("%s/%s_%d_%d.npy" % (out, cause, k, i), back(r))
            lines.append("%s %d %d %r" % (cause, k, i, float(f)))
open(out + "/cases.txt", "w").write("\n".join(lines) + "\n")
