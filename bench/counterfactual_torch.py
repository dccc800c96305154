"""counterfactual_torch.py - the competency paper's five counterfactual methods in PyTorch, as its
code runs them, on a competency bundle (weights from the bundle's ONNX files through
onnx_net.py's interpreter, the calibration from its parce.json). It is the peer of
bench/bench_counterfactual.c and, imported, the oracle of the fidelity test
(tests/py/cf_fidelity_oracle.py), so the benchmark and the test run the same loops.

  IGD   minimise -rho(X') + gamma D(X, X') over the pixels, from X' = X; D = L2 (the
        per-image norm of X' - X) or L1 (the mean of |X' - X|)
  FGD   minimise -rho(X') - gamma cos(f(X), f(X')) over the pixels (f: the feature tensor)
  LGD   minimise -rho(decode(z')) - gamma cos(z, z') over the latent, from z' = z = encode(X)
  Reco  X' = decode(encode(X))
  LNN   the calibration latent with rho > threshold nearest to encode(X) in L1, decoded

The gradient methods run torch.optim.Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8) on the batch
tensor with the objective summed over the batch, with cfx's iteration (src/counterfactual/
gradient.c): forward; rho is tested (rho >= threshold); images that pass stop (per image) or
all stop once every image has passed (per batch); after max_iter updates all stop; otherwise
backward and one Adam step. Under the per-image rule a stopped image is put back after each step
(its moments move, but it is never read again), so every image still running has been updated at
every step and follows exactly plain Adam on its own pixels. The L2 distance is
torch.linalg.vector_norm, whose gradient at X' = X is 0 (the literal sqrt(sum d^2) would give
NaN on the first step, where d = 0).

Usage (the benchmark; medians of REPEATS runs):
  counterfactual_torch.py steps BUNDLE THREADS REPEATS STEPS
      IGD, FGD and LGD for STEPS updates (threshold 1, which no image reaches) and Reco and LNN,
      at batch 1 and 50, on uniform random images: lines "METHOD BATCH s_per_image s_per_step -
      cpu_s_per_image cpu_s_per_step" (wall and process CPU seconds; "-" where not applicable,
      the third field being bench_counterfactual.c's FLOP count); also LNN among 9,164
      candidates (the calibration codes repeated), as "lnn9164"
  counterfactual_torch.py candidates BUNDLE
      the number of LNN's candidates (calibration images with rho above the threshold)
  counterfactual_torch.py examples BUNDLE IMAGES.npy THREADS STOP
      IGD, FGD and LGD at the reference settings (100 updates at most, threshold of the bundle)
      on the images, batches of 50, STOP per-batch or per-image: lines "METHOD s_per_image
      success_rate mean_steps"
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_net import Bundle  # noqa: E402

GRADIENT = ("igd", "fgd", "lgd")


def gradient_method(bun, method, x, gamma=0.1, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                    max_iter=100, threshold=None, stop="per-image", distance="l2"):
    """IGD, FGD or LGD on a batch x (N,C,H,W): returns X' and the records (rho_before,
    rho_after, steps: the updates each image received)."""
    thr = bun.threshold if threshold is None else threshold
    n = x.shape[0]
    with torch.no_grad():
        rho0, z, f = bun.rho_parts(x, features=method == "fgd")
    if method == "lgd":
        var, ref = z.clone().requires_grad_(True), z.flatten(1)
    else:
        var, ref = x.clone().requires_grad_(True), (x if method == "igd" else f)
    opt = torch.optim.Adam([var], lr=lr, betas=betas, eps=eps)
    active = torch.ones(n, dtype=torch.bool)
    steps = torch.zeros(n, dtype=torch.int64)
    rho_after = torch.empty(n)
    it = 0
    while True:
        image = bun.dec(var) if method == "lgd" else var
        rho, _, fx = bun.rho_parts(image, features=method == "fgd")
        passed = rho.detach() >= thr
        done = (passed.all().expand(n) if stop == "per-batch" else passed) | (it >= max_iter)
        newly = active & done
        steps[newly], rho_after[newly] = it, rho.detach()[newly]
        active &= ~done
        if not active.any():
            break
        if method == "igd":
            d = var - ref
            term = (torch.linalg.vector_norm(d, dim=tuple(range(1, d.dim()))) if distance == "l2"
                    else d.abs().flatten(1).mean(dim=1))
            objective = -rho + gamma * term
        else:
            other = fx if method == "fgd" else var.flatten(1)
            objective = -rho - gamma * F.cosine_similarity(ref, other, dim=1, eps=1e-8)
        opt.zero_grad()
        objective.sum().backward()
        frozen = var.detach()[~active].clone()
        opt.step()
        with torch.no_grad():
            var[~active] = frozen
        it += 1
    return image.detach(), {"rho_before": rho0, "rho_after": rho_after, "steps": steps}


def reco(bun, x):
    """Reco: decode(encode(X)) and the records."""
    with torch.no_grad():
        rho0, z, _ = bun.rho_parts(x)
        out = bun.dec(z)
        return out, {"rho_before": rho0, "rho_after": bun.rho(out),
                     "steps": torch.zeros(x.shape[0], dtype=torch.int64)}


REF_CANDIDATES = 9164  # the reference's LNN candidate count (issue 18)


class Lnn:
    """LNN's candidates: the calibration latents whose rho is above the threshold (or, with
    tile, the calibration latents repeated to that many rows, all eligible)."""

    def __init__(self, bun, threshold=None, tile=None):
        thr = bun.threshold if threshold is None else threshold
        lat, sc = bun.calibration()
        if tile:
            lat = lat[torch.arange(tile) % lat.shape[0]]
            sc = torch.ones(tile)
        self.rows = torch.nonzero(sc > thr).flatten()
        self.cand = lat[self.rows]

    def __call__(self, bun, x):
        """X', the records and the calibration rows chosen. The distances are formed as the
        reference forms them: a (batch, candidates, latent) tensor of differences."""
        with torch.no_grad():
            rho0, z, _ = bun.rho_parts(x)
            d = (z.flatten(1)[:, None, :] - self.cand[None]).abs().sum(dim=2)
            best = d.argmin(dim=1)
            out = bun.dec(self.cand[best].reshape(z.shape))
            return out, {"rho_before": rho0, "rho_after": bun.rho(out),
                         "steps": torch.zeros(x.shape[0], dtype=torch.int64),
                         "neighbour": self.rows[best]}


def median(v):
    return sorted(v)[len(v) // 2]


def bench_steps(bun, threads, repeats, steps):
    torch.set_num_threads(threads)
    lnn, big = Lnn(bun), Lnn(bun, tile=REF_CANDIDATES)
    for batch in (1, 50):
        torch.manual_seed(1)
        x = torch.rand((batch,) + bun.shape)
        for method in GRADIENT + ("reco", "lnn", "lnn%d" % REF_CANDIDATES):
            def run():
                if method in GRADIENT:
                    _, rec = gradient_method(bun, method, x, max_iter=steps, threshold=1.0,
                                             stop="per-batch")
                    if not bool((rec["steps"] == steps).all()):
                        raise SystemExit("counterfactual_torch.py: an image reached rho 1")
                elif method == "reco":
                    reco(bun, x)
                elif method == "lnn":
                    lnn(bun, x)
                else:
                    big(bun, x)
            # LNN and Reco are fast: several calls per timed run, as in bench_counterfactual.c.
            calls = 1 if method in GRADIENT else (20 if batch == 1 else 4)
            run()
            times, cpus = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    run()
                times.append((time.perf_counter() - t0) / calls)
                cpus.append((time.process_time() - c0) / calls)
            t, c = median(times), median(cpus)
            if method in GRADIENT:
                print("%s %d %.6g %.6g - %.6g %.6g" % (method, batch, t / batch, t / steps,
                                                       c / batch, c / steps), flush=True)
            else:
                print("%s %d %.6g - - %.6g -" % (method, batch, t / batch, c / batch), flush=True)


def bench_examples(bun, images, threads, stop):
    torch.set_num_threads(threads)
    x = torch.from_numpy(np.load(images).astype(np.float32))
    for method in GRADIENT:
        t0, succ, steps = time.perf_counter(), 0, 0
        for first in range(0, x.shape[0], 50):
            _, rec = gradient_method(bun, method, x[first:first + 50], stop=stop)
            succ += int((rec["rho_after"] >= bun.threshold).sum())
            steps += int(rec["steps"].sum())
        t = time.perf_counter() - t0
        n = x.shape[0]
        print("%s %.6g %.4f %.2f" % (method, t / n, succ / n, steps / n), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "steps" and len(sys.argv) == 6:
        bench_steps(Bundle(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "candidates" and len(sys.argv) == 3:
        print(Lnn(Bundle(sys.argv[2])).cand.shape[0])
    elif mode == "examples" and len(sys.argv) == 6:
        bench_examples(Bundle(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        raise SystemExit(__doc__)
