"""NumPy/SciPy and PyTorch as the oracles for src/competency/parce.c.

usage: competency_oracle.py formula DIR   reads probs.npy (N,K), loss.npy (N) and params.npy
                                         ([scale, z, mu_0..mu_K-1, sigma_0..sigma_K-1]) and
                                         writes rho.npy and indist.npy (the formula, in float64)
       competency_oracle.py torch DIR     exports a seeded PyTorch classifier (3x32x32 input,
                                         Softmax output "probs", 4 classes) and autoencoder (one
                                         file, outputs "recon" and "latent") with
                                         torch.onnx.export, makes 40 calibration images with
                                         labels, and writes what PyTorch computes from them: the
                                         per-class mean and population deviation of the
                                         reconstruction loss, the accuracy, z on the reference
                                         grid, and every image's rho at that z.
"""
import sys
import warnings

import numpy as np
from scipy.stats import norm


def rho_of(probs, loss, mu, sigma, scale, z):
    t = (loss[:, None] - scale * mu[None, :]) / sigma[None, :] - z
    indist = (probs * norm.cdf(-t)).sum(axis=1)
    return probs.max(axis=1) * indist, indist


mode, out = sys.argv[1], sys.argv[2]
if mode == "formula":
    probs = np.load(out + "/probs.npy").astype(np.float64)
    loss = np.load(out + "/loss.npy").astype(np.float64)
    params = np.load(out + "/params.npy").astype(np.float64)
    k = probs.shape[1]
    scale, z, mu, sigma = params[0], params[1], params[2:2 + k], params[2 + k:2 + 2 * k]
    rho, indist = rho_of(probs, loss, mu, sigma, scale, z)
    np.save(out + "/rho_oracle.npy", rho)
    np.save(out + "/indist_oracle.npy", indist)
    sys.exit(0)

import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore")
torch.manual_seed(1)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(8 * 8 * 8, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.c1(x))))
        feat = F.relu(self.fc1(x.flatten(1)))
        return F.softmax(self.fc2(feat), dim=1)


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(8 * 16 * 16, 16)
        self.fc2 = nn.Linear(16, 8 * 16 * 16)
        self.d1 = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        latent = self.fc1(F.relu(self.c1(x)).flatten(1))
        h = F.relu(self.fc2(latent)).view(-1, 8, 16, 16)
        return torch.sigmoid(self.d1(h)), latent


clf, ae = Classifier().eval(), Autoencoder().eval()
x = torch.rand(40, 3, 32, 32)
labels = np.repeat(np.arange(4), 10).astype(np.uint8)
dyn = {"x": {0: "batch"}}
torch.onnx.export(clf, x[:2], out + "/classifier.onnx", input_names=["x"], output_names=["probs"],
                  dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}}, opset_version=13)
torch.onnx.export(ae, x[:2], out + "/autoencoder.onnx", input_names=["x"],
                  output_names=["recon", "latent"],
                  dynamic_axes={"x": {0: "batch"}, "recon": {0: "batch"}, "latent": {0: "batch"}},
                  opset_version=13)
with torch.no_grad():
    probs = clf(x).double().numpy()
    recon, _ = ae(x)
    loss = ((x - recon) ** 2).mean(dim=(1, 2, 3)).double().numpy()
mu = np.array([loss[labels == c].mean() for c in range(4)])
sigma = np.array([loss[labels == c].std() for c in range(4)])  # population deviation (ddof 0)
acc = float((probs.argmax(axis=1) == labels).mean())
gaps = [abs(rho_of(probs, loss, mu, sigma, 2.0, 0.05 * g)[0].mean() - acc) for g in range(100)]
z = 0.05 * int(np.argmin(gaps))
rho, _ = rho_of(probs, loss, mu, sigma, 2.0, z)
np.save(out + "/calib_images.npy", x.numpy())
np.save(out + "/calib_labels.npy", labels)
np.save(out + "/mu.npy", mu)
np.save(out + "/sigma.npy", sigma)
np.save(out + "/rho.npy", rho)
np.save(out + "/fit.npy", np.array([z, acc]))
