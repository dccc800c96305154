"""PyTorch as the oracle for `cfx train classifier --arch conv-pool`: reads the ONNX model cfx
wrote, checks its structure (five Conv, each followed by InstanceNormalization and Relu, then
ReduceMax over the spatial axes, Gemm and Softmax), runs it with PyTorch's own ops from its
initializers, and writes the probabilities.

usage: scenes_clf_oracle.py DIR   (DIR/model.onnx and DIR/x.npy in; DIR/probs.npy out)
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

d = sys.argv[1]
m = onnx.load(os.path.join(d, "model.onnx"))
onnx.checker.check_model(m)
ops = [n.op_type for n in m.graph.node]
want = ["Conv", "InstanceNormalization", "Relu"] * 5 + ["ReduceMax", "Gemm", "Softmax"]
if ops != want:
    sys.exit(f"scenes_clf_oracle.py: the graph's ops are {ops}, expected {want}")
vals = {t.name: torch.from_numpy(numpy_helper.to_array(t).astype(np.float64))
        for t in m.graph.initializer}
vals[m.graph.input[0].name] = torch.from_numpy(np.load(os.path.join(d, "x.npy"))).double()


def attr(n, name, default=None):
    for a in n.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


for n in m.graph.node:
    i = [vals[k] for k in n.input if k]
    if n.op_type == "Conv":
        p = attr(n, "pads")
        assert p[0] == p[2] and p[1] == p[3], p
        y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, stride=attr(n, "strides"),
                     padding=(p[0], p[1]))
    elif n.op_type == "InstanceNormalization":
        y = F.instance_norm(i[0], weight=i[1], bias=i[2], eps=attr(n, "epsilon"))
    elif n.op_type == "Relu":
        y = F.relu(i[0])
    elif n.op_type == "ReduceMax":
        y = torch.amax(i[0], dim=attr(n, "axes"), keepdim=bool(attr(n, "keepdims", 1)))
    elif n.op_type == "Gemm":
        assert attr(n, "transB") == 1 and attr(n, "alpha", 1.0) == 1 and attr(n, "beta", 1.0) == 1
        y = F.linear(i[0], i[1], i[2])
    elif n.op_type == "Softmax":
        y = F.softmax(i[0], dim=attr(n, "axis"))
    vals[n.output[0]] = y
np.save(os.path.join(d, "probs.npy"), vals[m.graph.output[0].name].numpy().astype(np.float32))
