"""PyTorch side of bench/bench_competency.c: PaRCE's rho, and rho with its gradient with
respect to the image, on the models of a bundle. The ONNX files are run by the small interpreter
over torch.nn.functional in onnx_net.py, with their initializers as frozen tensors, so both
sides compute with the same weights.
Usage: competency_torch.py BUNDLE THREADS REPEATS -> lines "score_b1 images_per_s" etc."""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_net import Bundle  # noqa: E402

bundle, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
bun = Bundle(bundle)
rho = bun.rho

c, h, w = bun.shape
for batch in (1, 50):
    torch.manual_seed(1)
    x0 = torch.rand(batch, c, h, w)
    for mode in ("score", "grad"):
        iters = 200 if batch == 1 else 10

        def step():
            if mode == "score":
                with torch.no_grad():
                    rho(x0)
            else:
                x = x0.clone().requires_grad_(True)
                rho(x).sum().backward()

        for _ in range(20):
            step()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            times.append((time.perf_counter() - t0) / iters)
        print("%s_b%d %.1f" % (mode, batch, batch / sorted(times)[len(times) // 2]))
