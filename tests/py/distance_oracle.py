"""PyTorch as the oracle for src/counterfactual/distance.c, in float64.

Every mode reads DIR/x.npy and DIR/y.npy (image batches (N,C,H,W) in [0, 1]) and DIR/w.npy (N
weights), and writes DIR/d.npy (the distance of each pair) and DIR/grad.npy (the gradient of
sum_i w_i D(x_i, y_i) with respect to y).

usage: distance_oracle.py ssim DIR             1 - SSIM as pytorch_msssim 1.0's ssim() with
                                               data_range 1 (its code, restated below)
       distance_oracle.py lpips DIR            the LPIPS formula without heads on the feature
                                               maps of DIR/classifier.onnx: its weights read
                                               with the onnx module, its nodes run with
                                               torch.nn.functional, the maps chosen by the rule
                                               in include/cfx.h read here on the ONNX graph
       distance_oracle.py model DIR KIND       writes DIR/lpips.onnx, a small LPIPS-shaped
                                               network (two convolutions, normalisation,
                                               non-negative 1x1 heads, spatial mean, sum)
                                               exported with two inputs by torch.onnx.export,
                                               and its distance on the images as cfx prepares
                                               them (x * 2 - 1, grey to 3 channels, bilinear
                                               resize). KIND: fixed (3 channels at the images'
                                               size), fixed16 (3 channels at 16x16), dynamic
                                               (3 channels, any size: images resized to 32x32)
"""
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore")
torch.set_default_dtype(torch.float64)


def load(d, name):
    return torch.from_numpy(np.load(f"{d}/{name}.npy").astype(np.float64))


def save(d, name, t):
    np.save(f"{d}/{name}.npy", t.detach().numpy().astype(np.float32))


# ------------------------------------------------------------------------------- SSIM ---
def fspecial_gauss_1d(size, sigma):
    coords = torch.arange(size, dtype=torch.float64)
    coords -= size // 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return g.unsqueeze(0).unsqueeze(0)


def gaussian_filter(inp, win):
    """pytorch_msssim 1.0: a 1-D valid convolution along each spatial side that is at least
    as long as the window; a shorter side is skipped."""
    c = inp.shape[1]
    out = inp
    for i, s in enumerate(inp.shape[2:]):
        if s >= win.shape[-1]:
            out = F.conv2d(out, weight=win.transpose(2 + i, -1), stride=1, padding=0, groups=c)
    return out


def ssim_per_image(x, y, data_range=1.0, win_size=11, win_sigma=1.5, k=(0.01, 0.03)):
    win = fspecial_gauss_1d(win_size, win_sigma).repeat([x.shape[1]] + [1] * 3)
    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
    mu1, mu2 = gaussian_filter(x, win), gaussian_filter(y, win)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = gaussian_filter(x * x, win) - mu1_sq
    sigma2_sq = gaussian_filter(y * y, win) - mu2_sq
    sigma12 = gaussian_filter(x * y, win) - mu1_mu2
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return torch.flatten(ssim_map, 2).mean(-1).mean(1)  # per channel, then over channels


# ------------------------------------------------------------------------------ LPIPS ---
def normalize_tensor(f, eps=1e-10):
    # LPIPS's normalize_tensor; vector_norm's backward is 0 at a zero vector (torch.sqrt's is
    # NaN there), which is the gradient's limit.
    return f / (torch.linalg.vector_norm(f, dim=1, keepdim=True) + eps)


def lpips_formula(f0, f1):
    """sum over layers of the spatial mean of sum over channels of squared differences."""
    total = 0
    for a, b in zip(f0, f1):
        diff = (normalize_tensor(a) - normalize_tensor(b)) ** 2
        total = total + diff.sum(dim=1).mean(dim=(1, 2))
    return total


def onnx_feature_maps(path):
    """The classifier's nodes, weights, and the tensors the built-in LPIPS compares: per Conv,
    its output, past a BatchNormalization that is its only reader, then past an activation
    that is the only reader."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).astype(np.float64))
               for t in m.graph.initializer}
    readers = {}
    for n in m.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    acts = {"Relu", "LeakyRelu", "Tanh", "Sigmoid", "Clip"}
    maps = []
    for n in m.graph.node:
        if n.op_type != "Conv":
            continue
        t = n.output[0]
        r = readers.get(t, [])
        if len(r) == 1 and r[0].op_type == "BatchNormalization":
            t = r[0].output[0]
            r = readers.get(t, [])
        if len(r) == 1 and r[0].op_type in acts:
            t = r[0].output[0]
        maps.append(t)
    return m, weights, maps


def attr(node, name, default):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def run_convs(m, weights, x, want):
    """Runs the graph's nodes on x until every tensor in want is known."""
    env = {m.graph.input[0].name: x}
    env.update(weights)
    for n in m.graph.node:
        if all(t in env for t in want):
            break
        ins = [env.get(i) for i in n.input]
        if n.op_type == "Conv":
            pads = attr(n, "pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3], pads
            out = F.conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None,
                           stride=tuple(attr(n, "strides", [1, 1])), padding=(pads[0], pads[1]),
                           dilation=tuple(attr(n, "dilations", [1, 1])),
                           groups=attr(n, "group", 1))
        elif n.op_type == "BatchNormalization":
            out = F.batch_norm(ins[0], ins[3], ins[4], ins[1], ins[2], training=False,
                               eps=attr(n, "epsilon", 1e-5))
        elif n.op_type == "Relu":
            out = F.relu(ins[0])
        elif n.op_type == "Tanh":
            out = torch.tanh(ins[0])
        elif n.op_type == "Sigmoid":
            out = torch.sigmoid(ins[0])
        elif n.op_type == "LeakyRelu":
            out = F.leaky_relu(ins[0], attr(n, "alpha", 0.01))
        else:
            sys.exit(f"distance_oracle.py: op {n.op_type} before the feature maps")
        env[n.output[0]] = out
    return [env[t] for t in want]


# ---------------------------------------------------------------------- LPIPS model ---
class TinyLpips(nn.Module):
    """LPIPS's shape: features, normalize_tensor, squared difference, a non-negative 1x1 head
    per layer, spatial mean, sum over layers; output (N, 1, 1, 1) like lpips.LPIPS."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 5, 3, stride=2, padding=1)
        self.h1 = nn.Conv2d(4, 1, 1, bias=False)
        self.h2 = nn.Conv2d(5, 1, 1, bias=False)
        with torch.no_grad():
            for h in (self.h1, self.h2):
                h.weight.abs_()

    def features(self, x):
        f1 = F.leaky_relu(self.c1(x), 0.2)
        return [f1, F.leaky_relu(self.c2(f1), 0.2)]

    def forward(self, in0, in1):
        total = 0
        for a, b, h in zip(self.features(in0), self.features(in1), (self.h1, self.h2)):
            n0 = a / (torch.sqrt(torch.sum(a ** 2, dim=1, keepdim=True)) + 1e-10)
            n1 = b / (torch.sqrt(torch.sum(b ** 2, dim=1, keepdim=True)) + 1e-10)
            total = total + h((n0 - n1) ** 2).mean([2, 3], keepdim=True)
        return total


def model_mode(d, kind, x, y):
    torch.manual_seed(5)
    net = TinyLpips().eval()
    h, w = x.shape[2], x.shape[3]
    size = (16, 16) if kind == "fixed16" else (h, w)
    ex = torch.rand(2, 3, *size, dtype=torch.float32)
    dyn = {"in0": {0: "batch"}, "in1": {0: "batch"}, "distance": {0: "batch"}}
    if kind == "dynamic":
        for k in ("in0", "in1"):
            dyn[k].update({2: "height", 3: "width"})
    torch.onnx.export(net.float(), (ex, ex), f"{d}/lpips.onnx", input_names=["in0", "in1"],
                      output_names=["distance"], dynamic_axes=dyn, opset_version=13)
    net.double()

    def prepare(v):
        v = v * 2 - 1
        if v.shape[1] == 1:
            v = v.repeat(1, 3, 1, 1)
        target = (16, 16) if kind == "fixed16" else (max(h, 32), max(w, 32)) \
            if kind == "dynamic" else (h, w)
        if tuple(v.shape[2:]) != target:
            v = F.interpolate(v, size=target, mode="bilinear", align_corners=False)
        return v

    return net(prepare(x), prepare(y)).reshape(-1)


def main():
    mode, d = sys.argv[1], sys.argv[2]
    x, y, w = load(d, "x"), load(d, "y").requires_grad_(True), load(d, "w")
    if mode == "ssim":
        dist = 1 - ssim_per_image(x, y)
    elif mode == "lpips":
        m, weights, maps = onnx_feature_maps(f"{d}/classifier.onnx")
        print(f"  (oracle: the feature maps {maps})")
        dist = lpips_formula(run_convs(m, weights, x, maps), run_convs(m, weights, y, maps))
    elif mode == "model":
        dist = model_mode(d, sys.argv[3], x, y)
    else:
        sys.exit(f"distance_oracle.py: unknown mode {mode}")
    (dist * w).sum().backward()
    save(d, "d", dist)
    save(d, "grad", y.grad)


main()
