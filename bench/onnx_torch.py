"""PyTorch side of bench/onnx.sh: exports torchvision resnet18 (random weights, seeded) and a
~50 MB fully connected net to OUTDIR, and prints PyTorch's median resnet18 forward time
(1x3x224x224, 1 thread) in seconds."""
import os
import sys
import time
import warnings

import torch
import torchvision

warnings.filterwarnings("ignore")
out = sys.argv[1]
torch.manual_seed(0)
torch.set_num_threads(1)
m = torchvision.models.resnet18(weights=None).eval()
x = torch.rand(1, 3, 224, 224)
torch.onnx.export(m, (x,), os.path.join(out, "resnet18.onnx"), input_names=["input"],
                  output_names=["logits"], opset_version=13)
big = torch.nn.Sequential(torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                          torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                          torch.nn.Linear(2048, 2048)).eval()  # 3 x 4M floats = 50 MB
torch.onnx.export(big, (torch.rand(1, 2048),), os.path.join(out, "big.onnx"),
                  input_names=["input"], output_names=["y"], opset_version=13)
with torch.no_grad():
    for _ in range(3):
        m(x)
    ts = []
    for _ in range(10):
        t0 = time.perf_counter()
        m(x)
        ts.append(time.perf_counter() - t0)
ts.sort()
print(f"{ts[len(ts) // 2]:.6f}")
