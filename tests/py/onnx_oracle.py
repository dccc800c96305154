"""PyTorch as the oracle for src/onnx.c: exports a seeded model with torch.onnx.export and writes
an input, PyTorch's output and the input gradient of sum(output * w) as .npy files.

usage: onnx_oracle.py KIND OUTDIR   (KIND: cnn, ae, mobilenet, squeezenet, resnet18, and the
small graphs of tests/test_fuse.c: fuse_bn, fuse_res, fuse_shared)
Writes OUTDIR/model.onnx, x.npy, y.npy, w.npy, gx.npy, and for cnn and ae also an
intermediate tensor's value (feat.npy: the classifier's penultimate features, the autoencoder's
latent code) with its ONNX name in extra.txt.
"""
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

kind, out = sys.argv[1], sys.argv[2]
warnings.filterwarnings("ignore")
torch.manual_seed(0)
np.random.seed(0)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=1, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.max_pool2d(F.relu(self.b2(self.c2(x))), 2, ceil_mode=True)
        x = x.view(x.size(0), -1)  # Shape -> Gather -> Unsqueeze -> Concat -> Reshape
        feat = F.relu(self.fc1(x))
        return self.fc2(self.drop(feat)), feat


class AE(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.e2 = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.d1 = nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1)
        self.d2 = nn.Conv2d(8, 8, 3, padding=1)
        self.d3 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        z = torch.tanh(self.e2(F.leaky_relu(self.e1(x), 0.2)))
        h = F.relu(self.d1(z))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = F.interpolate(F.relu(self.d2(h)), size=(16, 16), mode="bilinear", align_corners=False)
        return torch.sigmoid(self.d3(h)), z


class FuseBN(nn.Module):
    """Conv + BN + ReLU, Conv (no bias) + BN, then Gemm + ReLU and a Gemm."""
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16)
        self.fc1, self.fc2 = nn.Linear(16 * 4 * 4, 32), nn.Linear(32, 5)

    def forward(self, x):
        x = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class FuseRes(nn.Module):
    """Two residual blocks as resnet's: one with a downsampling branch computed after the main
    path (as torchvision orders it), one with the identity; and a Conv + Add with no ReLU."""
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a1, self.an1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16)
        self.a2, self.an2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.ds, self.dsn = nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16)
        self.b1, self.bn1 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.b2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.c = nn.Conv2d(16, 16, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.stem(x))
        h = self.an2(self.a2(F.relu(self.an1(self.a1(x)))))
        x = F.relu(h + self.dsn(self.ds(x)))
        h = self.bn2(self.b2(F.relu(self.bn1(self.b1(x)))))
        x = F.relu(h + x)
        x = self.c(x) + x
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class FuseShared(nn.Module):
    """A Conv whose output the BN and a Sigmoid both read (the BN must not be folded), and a
    Conv + BN that may be."""
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)

    def forward(self, x):
        y = self.c1(x)
        h = F.relu(self.b1(y)) * torch.sigmoid(y)
        return self.b2(self.c2(h)).mean(dim=(2, 3))


def randomize_bn(m, x):
    """Random affine batch-norm weights, and running statistics measured on random batches
    (as training would leave them), so the signal and its gradient keep their scale through
    deep nets instead of fading."""
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    for mod in bns:
        mod.weight.data.uniform_(0.5, 1.5)
        mod.bias.data.uniform_(-0.2, 0.2)
        mod.momentum = None
    if bns:
        m.train()
        with torch.no_grad():
            for _ in range(2):
                m(torch.rand((4,) + tuple(x.shape[1:])))


extra = None
dynamic = None
if kind == "cnn":
    model, x = CNN(), torch.rand(2, 3, 16, 16)
    dynamic = {"input": {0: "batch"}, "logits": {0: "batch"}}
    names = ["logits"]
elif kind == "ae":
    model, x = AE(), torch.rand(2, 1, 16, 16)
    names = ["recon"]
elif kind in ("mobilenet", "squeezenet", "resnet18"):
    import torchvision
    ctor = {"mobilenet": torchvision.models.mobilenet_v2,
            "squeezenet": torchvision.models.squeezenet1_1,
            "resnet18": torchvision.models.resnet18}[kind]
    model = ctor(weights=None, num_classes=10)
    size = 224 if kind == "resnet18" else 64
    x = torch.rand(1, 3, size, size)
    names = ["logits"]
elif kind in ("fuse_bn", "fuse_res", "fuse_shared"):
    model = {"fuse_bn": FuseBN, "fuse_res": FuseRes, "fuse_shared": FuseShared}[kind]()
    x = torch.rand(2, 3, 8, 8)
    names = ["logits"]
else:
    sys.exit(f"unknown kind {kind}")
randomize_bn(model, x)
model.eval()

path = os.path.join(out, "model.onnx")
torch.onnx.export(model, (x,), path, input_names=["input"], output_names=names,
                  opset_version=13, training=torch.onnx.TrainingMode.PRESERVE,
                  dynamic_axes=dynamic, do_constant_folding=True)

xg = x.clone().requires_grad_(True)
outs = model(xg)
y = outs[0] if isinstance(outs, tuple) else outs
names = names[:1]
w = torch.randn(y.shape[1:])
(y * w).sum().backward()
np.save(os.path.join(out, "x.npy"), x.numpy())
np.save(os.path.join(out, "y.npy"), y.detach().numpy())
np.save(os.path.join(out, "w.npy"), w.numpy())
np.save(os.path.join(out, "gx.npy"), xg.grad.numpy())
if isinstance(outs, tuple):
    np.save(os.path.join(out, "feat.npy"), outs[1].detach().numpy())
    # The name of that intermediate tensor in the graph: the input of the last Gemm (cnn),
    # the output of the Tanh (ae).
    import onnx
    m = onnx.load(path)
    if kind == "cnn":
        inner = [n for n in m.graph.node if n.op_type == "Gemm"][-1].input[0]
    else:
        inner = [n for n in m.graph.node if n.op_type == "Tanh"][0].output[0]
    with open(os.path.join(out, "extra.txt"), "w") as f:
        f.write(inner)
