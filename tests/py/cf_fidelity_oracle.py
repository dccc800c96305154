"""PyTorch as the oracle for the counterfactual methods (tests/test_cf_fidelity.c): the loops of
bench/counterfactual_torch.py, run on the bundle cfx wrote from models PyTorch exported.

usage: cf_fidelity_oracle.py export DIR   exports a seeded classifier (3x16x16, conv, a tensor
                                          renamed "features", ends in Softmax, 4 classes), an
                                          encoder and a decoder (conv; linear, reshape,
                                          transposed conv, sigmoid) with torch.onnx.export into
                                          DIR, and writes 40 labelled calibration images and 8
                                          images to explain (x.npy)
       cf_fidelity_oracle.py run DIR      reads DIR/bundle (written by cfx from those models) and
                                          x.npy, and writes what PyTorch's loops give: for igd,
                                          fgd and lgd, 10 updates at a threshold no image
                                          reaches, per image and per batch (<m>_<stop>.npy);
                                          reco.npy; lnn.npy and lnn_rows.npy at the threshold in
                                          lnn_threshold.npy
       cf_fidelity_oracle.py stops DIR    at lr 1e-2, for igd, fgd and lgd: picks a threshold
                                          that some images reach within 10 updates and others
                                          do not, and both images of some batch of 2 reach
                                          together, as far as possible from every rho along
                                          the way (so float rounding cannot flip a decision), and
                                          writes X' and the steps per image (batches of 2) and
                                          per batch (batches of 2) at it: stop_<m>.npy holds
                                          [threshold, margin]
"""
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import counterfactual_torch as cft  # noqa: E402
from onnx_net import Bundle  # noqa: E402
import oracle_io  # noqa: E402

warnings.filterwarnings("ignore")
mode, out = sys.argv[1], sys.argv[2]
N, CALIB, STEPS = 8, 40, 10


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(6 * 8 * 8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        feat = F.relu(self.fc1(F.relu(self.c1(x)).flatten(1)))
        return F.softmax(self.fc2(feat), dim=1)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 8 * 8, 8)

    def forward(self, x):
        return self.fc(F.relu(self.c1(x)).flatten(1))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 6 * 8 * 8)
        self.d1 = nn.ConvTranspose2d(6, 3, 3, stride=2, padding=1, output_padding=1)

    def forward(self, z):
        return torch.sigmoid(self.d1(F.relu(self.fc(z)).view(-1, 6, 8, 8)))


def export(model, x, path, inp, outp):
    torch.onnx.export(model, x, path, input_names=[inp], output_names=[outp],
                      dynamic_axes={inp: {0: "batch"}, outp: {0: "batch"}}, opset_version=13)


def name_features(path):
    """Renames the input of the classifier's last Gemm (the penultimate ReLU's output) to
    "features" everywhere in the graph."""
    m = onnx.load(path)
    gemms = [n for n in m.graph.node if n.op_type == "Gemm"]
    old = gemms[-1].input[0]
    for n in m.graph.node:
        n.input[:] = ["features" if i == old else i for i in n.input]
        n.output[:] = ["features" if o == old else o for o in n.output]
    onnx.checker.check_model(m)
    onnx.save(m, path)


def images(n):
    """Images that differ from one another as photographs do: a colour per image and channel,
    a horizontal gradient and noise."""
    colour = torch.rand(n, 3, 1, 1)
    ramp = torch.linspace(-0.3, 0.3, 16).view(1, 1, 1, 16) * torch.randn(n, 1, 1, 1)
    return (colour + ramp + 0.15 * torch.randn(n, 3, 16, 16)).clamp(0, 1)


if mode == "export":
    torch.manual_seed(2)
    clf, enc, dec = Classifier().eval(), Encoder().eval(), Decoder().eval()
    with torch.no_grad():
        # Scaled so that the classifier tells the images apart (all four classes are
        # predicted) and is confident on some: rho spans (0, 1). Decodings differ per image.
        clf.c1.weight.mul_(2), clf.fc1.weight.mul_(2), clf.fc2.weight.mul_(24)
        clf.fc2.bias.zero_()
        dec.fc.weight.mul_(3)
    calib = images(CALIB)
    export(clf, calib[:2], out + "/classifier.onnx", "x", "probs")
    name_features(out + "/classifier.onnx")
    export(enc, calib[:2], out + "/encoder.onnx", "x", "latent")
    export(dec, torch.zeros(2, 8), out + "/decoder.onnx", "latent", "recon")
    # Labels: the classifier's own predictions, every fifth moved to the next class, so the
    # calibration sees an accuracy near 80%.
    with torch.no_grad():
        labels = clf(calib).argmax(dim=1).numpy()
    labels[::5] = (labels[::5] + 1) % 4
    oracle_io.write(out, "calib_images", calib.numpy())
    oracle_io.write(out, "calib_labels", labels)
    oracle_io.write(out, "x", images(N).numpy())
    sys.exit(0)

torch.set_num_threads(1)
bun = Bundle(out + "/bundle")
x = torch.from_numpy(oracle_io.read(out, "x"))

if mode == "run":
    for m in cft.GRADIENT:
        for stop in ("per-image", "per-batch"):
            xp, rec = cft.gradient_method(bun, m, x, max_iter=STEPS, threshold=0.999, stop=stop)
            assert bool((rec["steps"] == STEPS).all()), (m, stop, rec["steps"])
            oracle_io.write(out, "%s_%s" % (m, stop), xp.numpy())
            oracle_io.write(out, "%s_%s_rho" % (m, stop), rec["rho_after"].numpy())
    xp, rec = cft.reco(bun, x)
    oracle_io.write(out, "reco", xp.numpy())
    oracle_io.write(out, "reco_rho", rec["rho_after"].numpy())
    thr = float(oracle_io.read(out, "lnn_threshold")[0])
    lnn = cft.Lnn(bun, thr)
    xp, rec = lnn(bun, x)
    oracle_io.write(out, "lnn", xp.numpy())
    oracle_io.write(out, "lnn_rows", rec["neighbour"].numpy())
    # The runner-up's distance minus the winner's, per image: how clear each choice was.
    with torch.no_grad():
        z = bun.enc(x).flatten(1)
        d = (z[:, None, :] - lnn.cand[None]).abs().sum(dim=2).double()
        two = d.topk(min(2, d.shape[1]), dim=1, largest=False).values
        gap = (two[:, 1] - two[:, 0]) if two.shape[1] > 1 else torch.full((N,), np.inf)
    oracle_io.write(out, "lnn_gap", gap.numpy())
    sys.exit(0)

if mode == "stops":
    lr = 1e-2
    for m in cft.GRADIENT:
        # rho along the way with no stopping: trajectory[i, t] is rho of image i after t updates
        # (per image, an image's path up to its stop does not depend on the others).
        traj = np.zeros((N, STEPS + 1))
        for t in range(STEPS + 1):
            _, rec = cft.gradient_method(bun, m, x, lr=lr, max_iter=t, threshold=0.999,
                                         stop="per-batch")
            traj[:, t] = rec["rho_after"].numpy()
        best = None
        v = np.sort(traj.ravel())
        for thr in (v[:-1] + v[1:]) / 2:
            first = [next((t for t in range(STEPS + 1) if traj[i, t] >= thr), None)
                     for i in range(N)]
            early = sum(1 for f in first if f is not None and 0 < f < STEPS)
            never = sum(1 for f in first if f is None)
            # Per batch (pairs), a pair stops at the first update where both pass together.
            pairs = sum(1 for b in range(0, N, 2)
                        if any((traj[b:b + 2, t] >= thr).all() for t in range(1, STEPS)))
            if early < 2 or never < 1 or pairs < 1:
                continue
            margin = np.abs(traj - thr).min()
            if best is None or margin > best[1]:
                best = (thr, margin)
        if best is None:
            raise SystemExit("cf_fidelity_oracle.py: no threshold splits the %s paths" % m)
        thr = best[0]
        oracle_io.write(out, "stop_" + m, np.array(best))
        for stop in ("per-image", "per-batch"):
            xs, steps = [], []
            for b in range(0, N, 2):
                xp, rec = cft.gradient_method(bun, m, x[b:b + 2], lr=lr, max_iter=STEPS,
                                              threshold=thr, stop=stop)
                xs.append(xp.numpy())
                steps.append(rec["steps"].numpy())
            oracle_io.write(out, "stop_%s_%s" % (m, stop), np.concatenate(xs))
            oracle_io.write(out, "stop_%s_%s_steps" % (m, stop), np.concatenate(steps))
    sys.exit(0)

raise SystemExit(__doc__)
