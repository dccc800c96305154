"""PyTorch as the oracle for the op families in src/linear.c, reduce.c, norm.c and loss.c
(normalize: LPIPS's normalize_tensor).

Usage: ops_oracle.py <case folder>...

Each case folder holds op.txt ("<op> <attributes...>"), the op's inputs in<i>.npy and the
output gradient seed.npy, all written by tests/ops_oracle.h. For each case this script computes,
in float64, the output (out.npy), the gradient of sum(out * seed) with respect to every
differentiable input (grad<i>.npy), and for inputs the op updates in place (batch-norm running
statistics) their values afterwards (after<i>.npy). Starting torch is the slow part, hence
many cases per run.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def compute(op, attrs, ins):
    """Returns the op's output and {input index: tensor updated in place}."""
    after = {}

    def leaves(*idx):
        for i in idx:
            ins[i].requires_grad_(True)

    if op == "gemm":
        ta, tb, alpha, beta = int(attrs[0]), int(attrs[1]), float(attrs[2]), float(attrs[3])
        leaves(*range(len(ins)))
        a = ins[0].T if ta else ins[0]
        b = ins[1].T if tb else ins[1]
        out = alpha * (a @ b)
        if len(ins) > 2:
            out = out + beta * ins[2]
    elif op == "linear":
        leaves(*range(len(ins)))
        out = F.linear(ins[0], ins[1], ins[2] if len(ins) > 2 else None)
    elif op == "matmul":
        leaves(0, 1)
        out = torch.matmul(ins[0], ins[1])
    elif op == "reduce":
        kind, keep = attrs[0], attrs[1] == "1"
        dims = [int(a) for a in attrs[2:]] or list(range(ins[0].dim()))
        leaves(0)
        fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[kind]
        out = fn(ins[0], dim=dims, keepdim=keep)
    elif op == "softmax":
        leaves(0)
        out = F.softmax(ins[0], dim=int(attrs[0]))
    elif op == "log_softmax":
        leaves(0)
        out = F.log_softmax(ins[0], dim=int(attrs[0]))
    elif op == "cross_entropy":
        if ins[1].dim() == 1:
            leaves(0)
            out = F.cross_entropy(ins[0], ins[1].long(), reduction=attrs[0])
        else:
            leaves(0, 1)
            out = F.cross_entropy(ins[0], ins[1], reduction=attrs[0])
    elif op == "cosine":
        leaves(0, 1)
        out = F.cosine_similarity(ins[0], ins[1], dim=int(attrs[0]), eps=float(attrs[1]))
    elif op == "normalize":
        leaves(0)
        axis, eps = int(attrs[0]), float(attrs[1])
        # vector_norm's backward is 0 at a zero vector (the gradient's limit; torch.sqrt's
        # would be NaN there).
        out = ins[0] / (torch.linalg.vector_norm(ins[0], dim=axis, keepdim=True) + eps)
    elif op == "batch_norm":
        training, momentum, eps = attrs[0] == "1", float(attrs[1]), float(attrs[2])
        leaves(0, 1, 2)
        rm, rv = ins[3].clone(), ins[4].clone()
        out = F.batch_norm(ins[0], rm, rv, ins[1], ins[2], training=training,
                           momentum=momentum, eps=eps)
        after[3], after[4] = rm, rv
    elif op == "instance_norm":
        leaves(0, 1, 2)
        out = F.instance_norm(ins[0], weight=ins[1], bias=ins[2], eps=float(attrs[0]))
    else:
        sys.exit(f"ops_oracle.py: unknown op {op}")
    return out, after


def run(d):
    op, *attrs = open(f"{d}/op.txt").read().split()
    ins = []
    while os.path.exists(f"{d}/in{len(ins)}.npy"):
        ins.append(torch.from_numpy(np.load(f"{d}/in{len(ins)}.npy").astype(np.float64)))
    seed = torch.from_numpy(np.load(f"{d}/seed.npy").astype(np.float64))
    out, after = compute(op, attrs, ins)
    (out * seed.reshape(out.shape)).sum().backward()
    np.save(f"{d}/out.npy", out.detach().numpy().astype(np.float32))
    for i, t in enumerate(ins):
        if t.grad is not None:
            np.save(f"{d}/grad{i}.npy", t.grad.numpy().astype(np.float32))
    for i, t in after.items():
        np.save(f"{d}/after{i}.npy", t.numpy().astype(np.float32))


for case in sys.argv[1:]:
    run(case)
