"""NumPy, SciPy and PyTorch as the oracles for src/metrics/ (tests/test_metrics.c).

usage: metrics_oracle.py MODE DIR   reads the arrays cfx wrote in DIR and writes DIR/MODE.txt,
                                    lines "name value" (values printed with repr: full double)
  fid       a.npy, b.npy (n, d): pytorch-fid's calculate_frechet_distance on numpy.mean and
            numpy.cov (float64) with scipy.linalg.sqrtm, and the trace of sqrtm alone
  kid       a.npy, b.npy, idx_a.npy, idx_b.npy (subsets x m), seed.npy: draws the subsets again
            from the seed with an independent Python port of cfx's generator (xoshiro256**
            seeded by splitmix64, Lemire's bounded draw, partial Fisher-Yates), checks they equal
            the index lists cfx gave, and computes torch-fidelity's KID (polynomial kernel of
            degree 3, gamma 1/d, coef0 1, unbiased mmd2; numpy.mean and numpy.std) on them
  cmmd      a.npy, b.npy, opts.npy [sigma, scale]: google-research cmmd distance.py's mmd in
            NumPy float64
  cosine    a.npy, b.npy (n, d), mask.npy (n): torch.nn.functional.cosine_similarity in float64,
            then numpy.mean and numpy.std over the selected rows, and every row's value
  features  grey.npy (n, 1, 28, 28), rgb.npy (n, 3, 40, 40): exports a seeded PyTorch network
            (input 3x40x40) with torch.onnx.export as net.onnx, its feature tensor renamed
            "pool_features" (an inner tensor, not an output), and a grey-input twin
            grey_net.onnx; writes PyTorch's features of the images, grey ones resized with
            F.interpolate(bilinear, align_corners=False) and repeated to 3 channels
"""
import sys

import numpy as np

mode, d = sys.argv[1], sys.argv[2]


def load(name):
    return np.load(f"{d}/{name}.npy")


def report(values):
    with open(f"{d}/{mode}.txt", "w") as f:
        for k, v in values.items():
            f.write(f"{k} {float(v)!r}\n")


def fid():
    from scipy import linalg

    a, b = load("a").astype(np.float64), load("b").astype(np.float64)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # pytorch-fid's calculate_frechet_distance, as it is (eps 1e-6 offset when not finite).
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %g" % np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    tr = np.trace(covmean)
    report({"fid": diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr, "trace_sqrt": tr})


class Rng:
    """cfx_rng (src/base/rng.c), ported from its published definition."""

    M = (1 << 64) - 1

    def __init__(self, seed):
        x, self.s = seed, []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & self.M
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & Rng.M

    def u64(self):
        s = self.s
        result = (self.rotl((s[1] * 5) & self.M, 7) * 9) & self.M
        t = (s[1] << 17) & self.M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return result

    def below(self, n):
        m = self.u64() * n
        if (m & self.M) < n:
            t = ((1 << 64) - n) % n
            while (m & self.M) < t:
                m = self.u64() * n
        return m >> 64


def draw(rng, n, m):
    p = list(range(n))
    for j in range(m):
        k = j + rng.below(n - j)
        p[j], p[k] = p[k], p[j]
    return p[:m]


def kid():
    a, b = load("a").astype(np.float64), load("b").astype(np.float64)
    ia, ib = load("idx_a").astype(np.int64), load("idx_b").astype(np.int64)
    seed = int(load("seed")[0])
    subsets, m = ia.shape
    rng = Rng(seed)
    mine_a, mine_b = [], []
    for _ in range(subsets):
        mine_a.append(draw(rng, len(a), m))
        mine_b.append(draw(rng, len(b), m))
    same = np.array_equal(np.array(mine_a), ia) and np.array_equal(np.array(mine_b), ib)

    # torch-fidelity metric_kid.py: polynomial_kernel and mmd2(mmd_est="unbiased").
    def kernel(x, y):
        return (x @ y.T / x.shape[1] + 1) ** 3

    mmds = []
    for s in range(subsets):
        f1, f2 = a[mine_a[s]], b[mine_b[s]]
        kxx, kyy, kxy = kernel(f1, f1), kernel(f2, f2), kernel(f1, f2)
        kt_xx = kxx.sum() - np.diagonal(kxx).sum()
        kt_yy = kyy.sum() - np.diagonal(kyy).sum()
        mmds.append((kt_xx + kt_yy) / (m * (m - 1)) - 2 * kxy.sum() / (m * m))
    report({"mean": np.mean(mmds), "std": np.std(mmds), "subsets_equal": float(same)})


def cmmd():
    x, y = load("a").astype(np.float64), load("b").astype(np.float64)
    sigma, scale = load("opts").astype(np.float64)
    # distance.py's mmd, line by line, in float64.
    x_sq, y_sq = np.diag(x @ x.T), np.diag(y @ y.T)
    gamma = 1 / (2 * sigma**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * x @ x.T + x_sq[:, None] + x_sq[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * x @ y.T + x_sq[:, None] + y_sq[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * y @ y.T + y_sq[:, None] + y_sq[None, :])))
    report({"cmmd": scale * (k_xx + k_yy - 2 * k_xy)})


def cosine():
    import torch
    import torch.nn.functional as F

    a, b = load("a").astype(np.float64), load("b").astype(np.float64)
    mask = load("mask") != 0
    cos = F.cosine_similarity(torch.tensor(a), torch.tensor(b), dim=1, eps=1e-8).numpy()
    out = {"count": mask.sum()}
    if mask.any():
        out.update(mean=np.mean(cos[mask]), std=np.std(cos[mask]))
    out.update({f"cos{i}": c for i, c in enumerate(cos)})
    report(out)


def features():
    import warnings

    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    warnings.filterwarnings("ignore")
    torch.manual_seed(3)

    class Net(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.c1 = nn.Conv2d(cin, 6, 3, stride=2, padding=1)  # 40 -> 20
            self.c2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)  # 20 -> 10
            self.fc1 = nn.Linear(8 * 10 * 10, 24)
            self.fc2 = nn.Linear(24, 5)

        def feats(self, x):
            h = F.relu(self.c2(F.relu(self.c1(x))))
            return torch.tanh(self.fc1(h.flatten(1)))

        def forward(self, x):
            return self.fc2(self.feats(x))

    def export(net, cin, path):
        torch.onnx.export(net, torch.rand(2, cin, 40, 40), path, input_names=["x"],
                          output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=13)
        m = onnx.load(path)
        (tanh,) = [n for n in m.graph.node if n.op_type == "Tanh"]
        old = tanh.output[0]
        for n in m.graph.node:
            n.input[:] = ["pool_features" if i == old else i for i in n.input]
            n.output[:] = ["pool_features" if o == old else o for o in n.output]
        onnx.checker.check_model(m)
        onnx.save(m, path)

    net = Net(3).eval()
    export(net, 3, f"{d}/net.onnx")
    export(Net(1).eval(), 1, f"{d}/grey_net.onnx")
    grey = torch.tensor(load("grey"), dtype=torch.float64)
    rgb = torch.tensor(load("rgb"), dtype=torch.float64)
    x = F.interpolate(grey, size=(40, 40), mode="bilinear", align_corners=False)
    net = net.double()
    with torch.no_grad():
        fg = net.feats(x.repeat(1, 3, 1, 1)).numpy()
        fr = net.feats(rgb).numpy()
    np.save(f"{d}/feat_grey.npy", fg.astype(np.float32))
    np.save(f"{d}/feat_rgb.npy", fr.astype(np.float32))
    report({"dim": fg.shape[1]})


{"fid": fid, "kid": kid, "cmmd": cmmd, "cosine": cosine, "features": features}[mode]()
