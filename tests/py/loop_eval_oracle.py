"""NumPy, SciPy and PyTorch as the oracles for the concepts loop's evaluation
(src/concepts/loop_run.c, study.c; tests/test_concepts_eval.c).

usage: loop_eval_oracle.py metrics RUN W1 B1 W2 B2 OUT
    Reads RUN/results.jsonl itself (Python's json), takes the loops that flipped, decodes their
    source (step 0) and final PNGs with Pillow, and runs the test's network in NumPy float64:
    features = W1 x + B1 (x the image flattened CHW in [0, 1]), logits = W2 relu(features) + B2.
    On the features and on the logits it writes to OUT, lines "name value" (repr, full double):
    pytorch-fid's FID (numpy.cov, scipy.linalg.sqrtm), google-research cmmd's MMD (sigma 10,
    scale 1000), and torch.nn.functional.cosine_similarity's mean and population deviation
    (S3), plus the number of pairs.
usage: loop_eval_oracle.py table2 RUN ANSWERS.csv OUT
    Python's csv module on the answers, the run's flipped loops from results.jsonl: per the
    run's name (the folder's last component), the model's mean flip step over the answered
    flipped loops, the people's mean flip step over the answers naming one, the count of
    "none" and the share of "yes".
"""
import csv
import json
import os
import sys

import numpy as np


def records(run):
    out = []
    with open(os.path.join(run, "results.jsonl"), encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a torn last line
            out.append(json.loads(line))
    return out


def fid(a, b):
    from scipy import linalg

    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def cmmd(x, y, sigma=10.0, scale=1000.0):
    # distance.py of google-research/cmmd, in float64.
    gamma = 1 / (2 * sigma**2)
    xx, yy, xy = x @ x.T, y @ y.T, x @ y.T
    xn, yn = np.diag(xx), np.diag(yy)
    k_xx = np.mean(np.exp(-gamma * (-2 * xx + xn[:, None] + xn[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * yy + yn[:, None] + yn[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * xy + xn[:, None] + yn[None, :])))
    return scale * (k_xx + k_yy - 2 * k_xy)


def s3(a, b):
    import torch

    c = torch.nn.functional.cosine_similarity(
        torch.from_numpy(a), torch.from_numpy(b), dim=1, eps=1e-8
    ).numpy()
    return c.mean(), c.std()


def metrics(run, w1, b1, w2, b2, out):
    from PIL import Image

    w1, b1, w2, b2 = (np.load(p).astype(np.float64) for p in (w1, b1, w2, b2))
    src, dst = [], []
    for r in records(run):
        if not r["flipped"]:
            continue
        for side, k in ((src, 0), (dst, -1)):
            im = Image.open(os.path.join(run, r["images"][k])).convert("RGB")
            side.append((np.asarray(im, dtype=np.float64) / 255.0).transpose(2, 0, 1).ravel())
    src, dst = np.array(src), np.array(dst)
    feats = [x @ w1.T + b1 for x in (src, dst)]
    logits = [np.maximum(f, 0) @ w2.T + b2 for f in feats]
    with open(out, "w") as f:
        f.write(f"pairs {len(src)}\n")
        for name, (a, b) in (("features", feats), ("logits", logits)):
            m, sd = s3(a, b)
            for k, v in (("fid", fid(a, b)), ("cmmd", cmmd(a, b)), ("s3", m), ("s3_std", sd)):
                f.write(f"{name}_{k} {float(v)!r}\n")


def table2(run, answers, out):
    name = os.path.basename(os.path.normpath(run))
    steps = {r["query"]: r["steps"] for r in records(run) if r["flipped"]}
    rows = [r for r in csv.DictReader(open(answers, newline="", encoding="utf-8")) if r["run"] == name]
    answered = {int(r["query"]) for r in rows}
    model = [steps[q] for q in steps if q in answered]
    human = [int(r["flip_step"]) for r in rows if r["flip_step"] != "none"]
    with open(out, "w") as f:
        f.write(f"answers {len(rows)}\n")
        f.write(f"model_step {float(np.mean(model)) if model else float('nan')!r}\n")
        f.write(f"human_step {float(np.mean(human)) if human else float('nan')!r}\n")
        f.write(f"none {sum(r['flip_step'] == 'none' for r in rows)}\n")
        f.write(f"visually_correct {sum(r['artifact_free'] == 'yes' for r in rows) / max(len(rows), 1)!r}\n")


if __name__ == "__main__":
    if sys.argv[1] == "metrics":
        metrics(*sys.argv[2:8])
    else:
        table2(*sys.argv[2:5])
