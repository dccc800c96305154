"""onnx_net.py - the PyTorch peers' view of a competency bundle: a small interpreter that runs
an ONNX graph with torch.nn.functional (its initializers as frozen tensors, so PyTorch computes
with the very weights cfx reads), and PaRCE's rho on top of a bundle's three networks, as
src/competency/parce.c builds it. Shared by competency_torch.py, counterfactual_torch.py and
the counterfactual fidelity test (tests/py/cf_fidelity_oracle.py)."""
import json
import os

import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Net:
    """Runs an ONNX graph of Conv, ConvTranspose, Gemm, MatMul, Add, Mul, Relu, Sigmoid, Tanh,
    Softmax, Flatten, Reshape, Identity and Constant with torch ops. Calling it on x returns
    the graph's first output, or, with names, a list of those tensors (any value of the graph:
    a classifier's "features" as well as its output)."""

    def __init__(self, path):
        m = onnx.load(path)
        self.g = m.graph
        self.w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in self.g.initializer}
        self.input = [i.name for i in self.g.input if i.name not in self.w][0]
        self.output = self.g.output[0].name
        self.has = {o for n in self.g.node for o in n.output} | {self.input}

    def __call__(self, x, names=None):
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
                    y = F.conv_transpose2d(ins[0], ins[1], b,
                                           output_padding=a.get("output_padding", [0, 0]), **kw)
            elif op == "Gemm":
                A, B = ins[0], ins[1]
                if a.get("transA", 0): A = A.t()
                if a.get("transB", 0): B = B.t()
                y = a.get("alpha", 1.0) * (A @ B)
                if len(ins) > 2 and ins[2] is not None: y = y + a.get("beta", 1.0) * ins[2]
            elif op == "MatMul": y = ins[0] @ ins[1]
            elif op == "Add": y = ins[0] + ins[1]
            elif op == "Mul": y = ins[0] * ins[1]
            elif op == "Relu": y = F.relu(ins[0])
            elif op == "Sigmoid": y = torch.sigmoid(ins[0])
            elif op == "Tanh": y = torch.tanh(ins[0])
            elif op == "Softmax": y = F.softmax(ins[0], dim=a.get("axis", -1))
            elif op == "Flatten": y = ins[0].flatten(a.get("axis", 1))
            elif op == "Identity": y = ins[0]
            elif op == "Reshape":
                # ONNX: 0 copies the input's dimension (the batch, in these models).
                shape = [int(s) for s in ins[1].tolist()]
                shape = [ins[0].shape[k] if s == 0 else s for k, s in enumerate(shape)]
                y = ins[0].reshape(shape)
            elif op == "Constant": y = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
            else: raise SystemExit("onnx_net.py: op %s is not in the interpreter" % op)
            v[n.output[0]] = y
        if names is None:
            return v[self.output]
        return [v[k] for k in names]


class Bundle:
    """A competency bundle (src/competency/bundle.c): the three networks, the calibration of
    parce.json with PaRCE's constants a = 1 / sigma, b = -(s mu) / sigma - z computed in
    double and rounded to float (as parce.c does), and, on demand, LNN's candidates."""

    def __init__(self, path):
        self.path = path
        self.meta = json.load(open(os.path.join(path, "bundle.json")))
        p = json.load(open(os.path.join(path, "parce.json")))
        self.clf, self.enc, self.dec = (Net(os.path.join(path, f))
                                        for f in ("classifier.onnx", "encoder.onnx", "decoder.onnx"))
        mu = torch.tensor(p["mu"], dtype=torch.float64)
        sigma = torch.tensor(p["sigma"], dtype=torch.float64)
        self.a = (1 / sigma).float()
        self.b = (-(p["loss_scale"] * mu) / sigma - p["z"]).float()
        self.threshold = p["threshold"]
        self.probs_out = self.meta["classifier_output"] == "probs"
        self.features = self.meta["features"]
        self.shape = tuple(self.meta["image_shape"])

    def rho_parts(self, x, features=False):
        """rho(x), encode(x) and (when asked) the classifier's feature tensor, flattened."""
        if features:
            out, f = self.clf(x, [self.clf.output, self.features])
            f = f.flatten(1)
        else:
            out, f = self.clf(x), None
        probs = out if self.probs_out else F.softmax(out, dim=1)
        z = self.enc(x)
        loss = ((x - self.dec(z)) ** 2).mean(dim=tuple(range(1, x.dim())))
        indist = (probs * torch.special.ndtr(-(loss[:, None] * self.a + self.b))).sum(dim=1)
        return probs.max(dim=1).values * indist, z, f

    def rho(self, x):
        return self.rho_parts(x)[0]

    def calibration(self):
        """The calibration images' latent codes (N, latent) and their rho (N)."""
        import numpy as np
        lat = np.load(os.path.join(self.path, "calib_latents.npy"))
        sc = np.load(os.path.join(self.path, "calib_scores.npy"))
        return torch.from_numpy(lat.astype("float32")), torch.from_numpy(sc.astype("float32"))
