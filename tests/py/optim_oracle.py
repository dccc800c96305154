"""torch.optim as the oracle for src/optim.c: ten steps on f(x) = sum(sin(x) * w)."""
import sys

import numpy as np
import torch

out = sys.argv[1]
rng = np.random.default_rng(0)
x0 = rng.normal(size=200).astype(np.float32)
w = rng.normal(size=200).astype(np.float32)
np.save(f"{out}/x0.npy", x0)
np.save(f"{out}/w.npy", w)
runs = {
    "adam": lambda p: torch.optim.Adam([p], lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
    "adam_default": lambda p: torch.optim.Adam([p]),
    "sgd": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True),
    "sgd_plain": lambda p: torch.optim.SGD([p], lr=0.1),
}
for name, make in runs.items():
    p = torch.tensor(x0, requires_grad=True)
    opt = make(p)
    for _ in range(10):
        opt.zero_grad()
        (torch.sin(p) * torch.from_numpy(w)).sum().backward()
        opt.step()
    np.save(f"{out}/{name}.npy", p.detach().numpy())
