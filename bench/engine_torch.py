"""PyTorch side of bench/bench_engine.c: the same two CNNs at batch 1, forward and backward to
the input image (parameters frozen, as in a counterfactual search).
Usage: engine_torch.py THREADS REPEATS -> "name median_ms" lines."""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

threads, repeats = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(1)

ref = nn.Sequential(
    nn.Conv2d(1, 32, 5, 2, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
    nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Flatten(),
    nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
    nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
    nn.Linear(256, 10), nn.Softmax(dim=1))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.bn = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.fc = nn.Conv2d(8, 16, 3, 2, 1), nn.Linear(144, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.c1(x))), 2)
        x = F.avg_pool2d(F.relu(self.c2(x)), 2)
        return F.softmax(self.fc(x.flatten(1)), dim=1)


def bench(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(1, 1, 28, 28, requires_grad=True)
    seed = torch.zeros(1, 10)
    seed[0, 0] = 1
    iters, times = 200, []
    for _ in range(50):
        x.grad = None
        model(x).backward(seed)
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            x.grad = None
            model(x).backward(seed)
        times.append((time.perf_counter() - t0) / iters * 1e3)
    return sorted(times)[len(times) // 2]


print(f"ref {bench(ref):.4f}")
print(f"tiny {bench(Tiny()):.4f}")
