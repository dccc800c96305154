"""PyTorch side of bench/bench_competency.c: PaRCE's rho, and rho with its gradient with
respect to the image, on the models of a bundle. The ONNX files are run by a small interpreter
over torch.nn.functional (the ops the built-in models use), with their initializers as frozen
tensors, so both sides compute with the same weights.
Usage: competency_torch.py BUNDLE THREADS REPEATS -> lines "score_b1 images_per_s" etc."""
import json
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

bundle, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Net:
    """Runs an ONNX graph of Conv, ConvTranspose, Gemm, MatMul, Add, Relu, Sigmoid, Softmax,
    Flatten, Reshape, Constant with torch ops."""

    def __init__(self, path):
        m = onnx.load(path)
        self.g = m.graph
        self.w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in self.g.initializer}
        self.input = [i.name for i in self.g.input if i.name not in self.w][0]
        self.output = self.g.output[0].name

    def __call__(self, x):
        v = dict(self.w)
        v[self.input] = x
        for n in self.g.node:
            a, ins = attrs(n), [v[i] if i else None for i in n.input]
            op = n.op_type
            if op == "Conv" or op == "ConvTranspose":
                p = a.get("pads", [0, 0, 0, 0])
                kw = dict(stride=a.get("strides", [1, 1]), padding=(p[0], p[1]),
                          dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
                b = ins[2] if len(ins) > 2 else None
                if op == "Conv":
                    y = F.conv2d(ins[0], ins[1], b, **kw)
                else:
                    y = F.conv_transpose2d(ins[0], ins[1], b, output_padding=a.get("output_padding", [0, 0]), **kw)
            elif op == "Gemm":
                A, B = ins[0], ins[1]
                if a.get("transA", 0): A = A.t()
                if a.get("transB", 0): B = B.t()
                y = a.get("alpha", 1.0) * (A @ B)
                if len(ins) > 2 and ins[2] is not None: y = y + a.get("beta", 1.0) * ins[2]
            elif op == "MatMul": y = ins[0] @ ins[1]
            elif op == "Add": y = ins[0] + ins[1]
            elif op == "Relu": y = F.relu(ins[0])
            elif op == "Sigmoid": y = torch.sigmoid(ins[0])
            elif op == "Softmax": y = F.softmax(ins[0], dim=a.get("axis", -1))
            elif op == "Flatten": y = ins[0].flatten(a.get("axis", 1))
            elif op == "Reshape":
                shape = [int(s) for s in ins[1].tolist()]
                shape = [x.shape[0] if s == 0 and k == 0 else s for k, s in enumerate(shape)]
                y = ins[0].reshape(shape)
            elif op == "Constant": y = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
            else: raise SystemExit("competency_torch.py: op %s is not in the interpreter" % op)
            v[n.output[0]] = y
        return v[self.output]


meta = json.load(open(bundle + "/bundle.json"))
p = json.load(open(bundle + "/parce.json"))
clf, enc, dec = (Net(bundle + "/" + f) for f in ("classifier.onnx", "encoder.onnx", "decoder.onnx"))
mu, sigma = torch.tensor(p["mu"], dtype=torch.float32), torch.tensor(p["sigma"], dtype=torch.float32)
a, b = 1 / sigma, -(p["loss_scale"] * mu) / sigma - p["z"]
probs_out = meta["classifier_output"] == "probs"


def rho(x):
    out = clf(x)
    probs = out if probs_out else F.softmax(out, dim=1)
    loss = ((x - dec(enc(x))) ** 2).mean(dim=(1, 2, 3))
    indist = (probs * torch.special.ndtr(-(loss[:, None] * a + b))).sum(dim=1)
    return probs.max(dim=1).values * indist


c, h, w = meta["image_shape"]
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
