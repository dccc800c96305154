"""Pillow as an independent PNG/JPEG codec for src/image.c. Reads the PNG cfx wrote and saves its
pixels as .npy (uint8, C,H,W); writes images cfx must read: RGBA and grey+alpha PNGs, a 16-bit
grey PNG, and a JPEG, each with the pixels Pillow decodes from it."""
import sys

import numpy as np
from PIL import Image

src, out = sys.argv[1], sys.argv[2]
a = np.asarray(Image.open(src))
a = a[:, :, None] if a.ndim == 2 else a
np.save(out + "/pil_of_cfx.npy", np.ascontiguousarray(a.transpose(2, 0, 1)))

rng = np.random.default_rng(3)
rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
Image.fromarray(rgba, "RGBA").save(out + "/rgba.png")
np.save(out + "/rgba.npy", np.ascontiguousarray(rgba[:, :, :3].transpose(2, 0, 1)))
la = rng.integers(0, 256, (9, 11, 2), dtype=np.uint8)
Image.fromarray(la, "LA").save(out + "/la.png")
np.save(out + "/la.npy", np.ascontiguousarray(la[None, :, :, 0]))
g16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
Image.fromarray(g16.astype(np.int32), "I").convert("I;16").save(out + "/g16.png")
np.save(out + "/g16.npy", np.ascontiguousarray(np.asarray(Image.open(out + "/g16.png"))[None]))
# A smooth picture so that JPEG decoders agree within a few levels.
y, x = np.mgrid[0:32, 0:48]
smooth = np.stack([x * 5, y * 7, (x + y) * 3], axis=2).astype(np.uint8)
Image.fromarray(smooth, "RGB").save(out + "/smooth.jpg", quality=95)
dec = np.asarray(Image.open(out + "/smooth.jpg").convert("RGB"))
np.save(out + "/smooth.npy", np.ascontiguousarray(dec.transpose(2, 0, 1)))
# Progressive: Huffman tables between the scans (cfx checks them before stb reads them).
Image.fromarray(smooth, "RGB").save(out + "/progressive.jpg", quality=95, progressive=True)
dec = np.asarray(Image.open(out + "/progressive.jpg").convert("RGB"))
np.save(out + "/progressive.npy", np.ascontiguousarray(dec.transpose(2, 0, 1)))
