"""SciPy and NumPy as the oracles for src/competency/calibration.c: the AUROC as the Mann-Whitney
U statistic over the product of the sample sizes, and the expected calibration error over
equal-width bins of [0, 1] (the last one closed).
usage: calibration_oracle.py DIR   reads pos.npy, neg.npy, score.npy, correct.npy; writes
                                  out.npy = [auroc, ece, then per bin: count, mean, accuracy]"""
import sys

import numpy as np
from scipy.stats import mannwhitneyu

d = sys.argv[1]
pos, neg = np.load(d + "/pos.npy").astype(np.float64), np.load(d + "/neg.npy").astype(np.float64)
score, correct = np.load(d + "/score.npy").astype(np.float64), np.load(d + "/correct.npy")
u = mannwhitneyu(pos, neg, alternative="two-sided").statistic
auroc = u / (len(pos) * len(neg))
bins = 10
idx = np.minimum((np.clip(score, 0, 1) * bins).astype(int), bins - 1)
ece, rows = 0.0, []
for b in range(bins):
    m = idx == b
    n = int(m.sum())
    if n == 0:
        rows += [0, 0, 0]
        continue
    conf, acc = score[m].mean(), correct[m].mean()
    ece += n / len(score) * abs(acc - conf)
    rows += [n, conf, acc]
np.save(d + "/out.npy", np.array([auroc, ece] + rows, dtype=np.float32))
