"""Exports torchvision's resnet18, mobilenet_v2 and squeezenet1_1 (untrained, seeded, eval mode,
symbolic batch) for bench/fuse.sh: NAME.onnx with PyTorch's own Conv+BatchNormalization folding,
NAME_bn.onnx with the BatchNormalizations kept (training=PRESERVE, no constant folding).

usage: fuse_export.py OUTDIR
"""
import sys
import warnings

import torch
import torchvision

warnings.filterwarnings("ignore")
torch.manual_seed(0)
out = sys.argv[1]
for name, ctor in [("resnet18", torchvision.models.resnet18),
                   ("mobilenet_v2", torchvision.models.mobilenet_v2),
                   ("squeezenet1_1", torchvision.models.squeezenet1_1)]:
    m = ctor(weights=None).eval()
    x = torch.rand(1, 3, 224, 224)
    for mode, suffix in [(torch.onnx.TrainingMode.EVAL, ""), (torch.onnx.TrainingMode.PRESERVE, "_bn")]:
        torch.onnx.export(m, (x,), f"{out}/{name}{suffix}.onnx", input_names=["input"],
                          output_names=["logits"], opset_version=13, training=mode,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=mode == torch.onnx.TrainingMode.EVAL)
