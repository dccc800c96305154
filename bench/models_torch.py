"""models_torch.py - the PyTorch peer of bench/models.sh, and its model maker and output judge.

  export DIR               torchvision resnet18, mobilenet_v2 and squeezenet1_1 (random weights,
                           seed 0) to DIR/NAME.onnx (batch dimension symbolic) and DIR/NAME.pt
  input DIR NAME           DIR/NAME.in.npy and .in.f32: a batch of 2 uniform [0, 1) inputs
                           (seed 1) for the agreement check, and DIR/NAME.shape (one sample's
                           shape, "3,224,224")
  run DIR NAME             PyTorch's output on DIR/NAME.in.npy to DIR/NAME.torch.npy
  time DIR NAME B T R W    W untimed then R timed forward passes on a batch of B with T threads;
                           prints {"median_s", "cpu_median_s"} (wall and process CPU time a pass)
  compare DIR NAME         max abs difference of cfx's and ORT's outputs from PyTorch's, and the
                           largest |output| for scale, as "cfx_vs_torch ort_vs_torch cfx_vs_ort max"

A torchvision model runs as its nn.Module; a model that cfx made (classifier, autoencoder) runs
through bench/onnx_net.py's Net, which executes its ONNX nodes with torch.nn.functional on the
same weights (what the module that produced such a model would run).
"""
import json
import os
import sys
import time
import warnings

import numpy as np
import onnx
import torch

warnings.filterwarnings("ignore")
TORCHVISION = ("resnet18", "mobilenet_v2", "squeezenet1_1")


def tv_model(name):
    import torchvision

    return getattr(torchvision.models, name)(weights=None).eval()


def load(d, name):
    if name in TORCHVISION:
        m = tv_model(name)
        m.load_state_dict(torch.load(os.path.join(d, name + ".pt")))
        return m
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from onnx_net import Net

    return Net(os.path.join(d, name + ".onnx"))


def sample_shape(d, name):
    m = onnx.load(os.path.join(d, name + ".onnx"), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    i = [i for i in m.graph.input if i.name not in inits][0]
    return [x.dim_value for x in i.type.tensor_type.shape.dim][1:]


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "export":
        for name in TORCHVISION:
            torch.manual_seed(0)
            m = tv_model(name)
            torch.save(m.state_dict(), os.path.join(d, name + ".pt"))
            torch.onnx.export(m, (torch.rand(1, 3, 224, 224),), os.path.join(d, name + ".onnx"),
                              input_names=["input"], output_names=["logits"], opset_version=13,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        return
    name = sys.argv[3]
    if cmd == "input":
        shape = sample_shape(d, name)
        x = np.random.default_rng(1).random([2] + shape, dtype=np.float32)
        np.save(os.path.join(d, name + ".in.npy"), x)
        x.tofile(os.path.join(d, name + ".in.f32"))
        with open(os.path.join(d, name + ".shape"), "w") as f:
            f.write(",".join(str(s) for s in shape) + "\n")
    elif cmd == "run":
        x = torch.from_numpy(np.load(os.path.join(d, name + ".in.npy")))
        with torch.no_grad():
            y = load(d, name)(x)
        np.save(os.path.join(d, name + ".torch.npy"), y.numpy())
    elif cmd == "time":
        b, t, runs, warm = (int(v) for v in sys.argv[4:8])
        torch.set_num_threads(t)
        m = load(d, name)
        x = torch.rand([b] + sample_shape(d, name), generator=torch.Generator().manual_seed(0))
        wall, cpu = [], []
        with torch.no_grad():
            for r in range(-warm, runs):
                t0, c0 = time.perf_counter(), time.process_time()
                m(x)
                if r >= 0:
                    wall.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
        print(json.dumps({"median_s": float(np.median(wall)), "cpu_median_s": float(np.median(cpu))}))
    elif cmd == "compare":
        ref = np.load(os.path.join(d, name + ".torch.npy")).astype(np.float64)
        c = np.load(os.path.join(d, name + ".cfx.npy")).astype(np.float64).reshape(ref.shape)
        o = np.fromfile(os.path.join(d, name + ".ort.f32"), dtype=np.float32).astype(np.float64)
        o = o.reshape(ref.shape)
        print("%.3g %.3g %.3g %.3g" % (np.abs(c - ref).max(), np.abs(o - ref).max(),
                                       np.abs(c - o).max(), np.abs(ref).max()))
    else:
        sys.exit("models_torch.py: unknown command '%s'" % cmd)


if __name__ == "__main__":
    main()
