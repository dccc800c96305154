"""PyTorch side of the engine parity test (tests/test_parity.c).

Builds a small CNN (conv, batch norm, relu, max pool, avg pool, linear, softmax) and a small conv
autoencoder (conv, linear, conv-transpose, nearest upsample, sigmoid) with seeded weights, and
writes the weights, inputs, outputs, weight gradients and input gradients of sum(out * W) as
.npy files, plus five Adam steps on the CNN's input image."""
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

out = sys.argv[1]
torch.manual_seed(0)
torch.set_num_threads(1)


def save(name, t):
    np.save(f"{out}/{name}.npy", t.detach().numpy().astype(np.float32))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 3 * 3, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.c1(x))), 2)       # (N,8,14,14)
        x = F.avg_pool2d(F.relu(self.c2(x)), 2)                # (N,16,7,7) -> (N,16,3,3)
        return F.softmax(self.fc(x.flatten(1)), dim=1)


class AE(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)      # 16 -> 8
        self.e2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)     # 8 -> 4
        self.el = nn.Linear(16 * 4 * 4, 32)
        self.dl = nn.Linear(32, 16 * 4 * 4)
        self.d1 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)  # 4 -> 8
        self.d2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        z = self.el(F.relu(self.e2(F.relu(self.e1(x)))).flatten(1))
        h = self.dl(z).reshape(-1, 16, 4, 4)
        h = F.interpolate(F.relu(self.d1(h)), scale_factor=2, mode="nearest")  # 8 -> 16
        return torch.sigmoid(self.d2(h))


def run(prefix, model, x):
    for name, p in model.named_parameters():
        save(f"{prefix}_{name}", p)
    for name, b in model.named_buffers():
        if b.dtype == torch.float32:
            save(f"{prefix}_{name}", b)
    x = x.clone().requires_grad_(True)
    y = model(x)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    save(f"{prefix}_x", x)
    save(f"{prefix}_W", w)
    save(f"{prefix}_y", y)
    save(f"{prefix}_dx", x.grad)
    for name, p in model.named_parameters():
        save(f"{prefix}_d_{name}", p.grad)
    for name, b in model.named_buffers():
        if b.dtype == torch.float32:
            save(f"{prefix}_after_{name}", b)


cnn = CNN()
with torch.no_grad():  # non-trivial running statistics for the eval-mode run
    cnn.bn.running_mean.uniform_(-0.5, 0.5)
    cnn.bn.running_var.uniform_(0.5, 2.0)
    cnn.bn.weight.uniform_(0.5, 1.5)
    cnn.bn.bias.uniform_(-0.5, 0.5)
run("cnn", cnn.train(), torch.rand(4, 1, 28, 28))
run("ae", AE(), torch.rand(2, 1, 16, 16))

# Five Adam steps on the input image of the eval-mode CNN: minimise sum(softmax * W).
cnn.eval()
for p in cnn.parameters():
    p.requires_grad_(False)
x = torch.rand(1, 1, 28, 28)
w = torch.randn(1, 10)
save("adam_x0", x)
save("adam_W", w)
save("adam_rm", cnn.bn.running_mean)
save("adam_rv", cnn.bn.running_var)
x = x.clone().requires_grad_(True)
opt = torch.optim.Adam([x], lr=0.01)
for _ in range(5):
    opt.zero_grad()
    (cnn(x) * w).sum().backward()
    opt.step()
save("adam_x5", x)
