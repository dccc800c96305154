"""conv_torch.py - PyTorch peer of bench_conv: 3x3 conv (pad 1, bias) forward + backward to the
input, weights and bias, in float32 on the CPU with mkldnn enabled, timed in the contiguous
(NCHW) and channels_last layouts; prints one line per case and layout:
"torch CASE THREADS LAYOUT MEDIAN_MS MIN_MS". Usage: conv_torch.py --threads N [--reps R] CASE...
with CASE "B,C,K,H,W" or "small" (1x1x28x28 -> 32, forward + backward to the input only)."""
import argparse
import time

import torch
import torch.nn.functional as F


def time_case(name, B, C, K, H, W, small, layout, reps):
    torch.manual_seed(1)
    x = torch.rand(B, C, H, W) * 2 - 1
    w = (torch.rand(K, C, 3, 3) * 2 - 1) * 0.1
    b = torch.zeros(K)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w.requires_grad_(not small)
    b.requires_grad_(not small)

    def step():
        x.grad = None
        w.grad = None
        b.grad = None
        y = F.conv2d(x, w, b, padding=1)
        y.backward(torch.ones_like(y))

    t0 = time.perf_counter()
    warm = 0
    while warm < 2 or time.perf_counter() - t0 < 0.2:
        step()
        warm += 1
    per = (time.perf_counter() - t0) / warm
    iters = int(0.2 / per) + 1
    ts = []
    for _ in range(reps):
        s = time.perf_counter()
        for _ in range(iters):
            step()
        ts.append((time.perf_counter() - s) / iters * 1e3)
    ts.sort()
    print(f"torch {name} {torch.get_num_threads()} {layout} {ts[len(ts) // 2]:.4f} {ts[0]:.4f}",
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("cases", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.backends.mkldnn.enabled = True
    for c in a.cases:
        for layout in ("contiguous", "channels_last"):
            if c == "small":
                time_case(c, 1, 1, 32, 28, 28, True, layout, a.reps)
            else:
                B, C, K, H, W = (int(v) for v in c.split(","))
                time_case(c, B, C, K, H, W, False, layout, a.reps)


if __name__ == "__main__":
    main()
