"""PyTorch side of bench/bench_train.c: the same classifier, Adam, batch 64, on the same
dataset folder's train split, one step = batch gather + forward + backward + Adam step.
Usage: train_torch.py DATA_DIR THREADS REPEATS -> "step_ms <median>"."""
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn

data, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(1)
m = json.load(open(f"{data}/manifest.json"))
x = torch.from_numpy(np.load(f"{data}/train_images.npy").astype(np.float32) / 255.0)
y = torch.from_numpy(np.load(f"{data}/train_labels.npy").astype(np.int64))
c, h, w = x.shape[1:]
h3, w3 = h, w
for _ in range(3):
    h3, w3 = (h3 + 1) // 2, (w3 + 1) // 2
model = nn.Sequential(
    nn.Conv2d(c, 32, 5, 2, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
    nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Flatten(),
    nn.Linear(64 * h3 * w3, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
    nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
    nn.Linear(256, len(m["classes"])))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
order = torch.randperm(len(x))
B, steps, cursor, times = 64, 100, 0, []
for k in range(-1, repeats):
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = order[cursor:cursor + B]
        if len(idx) < B:
            cursor, idx = 0, order[:B]
        cursor += B
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
    if k >= 0:
        times.append((time.perf_counter() - t0) / steps * 1e3)
print(f"step_ms {sorted(times)[len(times) // 2]:.4f}")
