"""resize_oracle.py DIR - values (and input gradients) for the Resize cases in DIR/cases.txt.

Each case NAME reads NAME_x and NAME_dy. With oracle=torch it runs
torch.nn.functional.interpolate (float64) and writes NAME_y and NAME_dx; the mapping from ONNX
attributes is: nearest + asymmetric + floor = 'nearest', nearest + half_pixel +
round_prefer_ceil = 'nearest-exact', bilinear + half_pixel / pytorch_half_pixel (output > 1) =
'bilinear' align_corners=False, bilinear + align_corners = align_corners=True. Scales are passed
as scale_factor with recompute_scale_factor=False, so PyTorch uses 1/scale as ONNX does. With
oracle=onnx (modes PyTorch lacks) it writes NAME_y from the ONNX package's own Resize reference
(onnx.backend.test.case.node.resize.interpolate_nd); gradients are then left to gradcheck."""

import numpy as np
import torch
import torch.nn.functional as F

import oracle_io as io


def run(d, name, a):
    xn = io.read(d, name + "_x")
    mode, coord, nearest = a["mode"], a["coord"], a["nearest"]
    size = io.ints(a["size"]) if "size" in a else None
    scale = [float(v) for v in a["scale"].split(",")] if "scale" in a else None
    if a["oracle"] == "onnx":
        from onnx.backend.test.case.node.resize import interpolate_nd, linear_coeffs, nearest_coeffs

        if mode == "nearest":
            coeffs = lambda r: nearest_coeffs(r, mode=nearest)  # noqa: E731
        else:
            coeffs = linear_coeffs
        kw = dict(coordinate_transformation_mode=coord)
        if size:
            y = interpolate_nd(xn, coeffs, output_size=[xn.shape[0], xn.shape[1]] + size, **kw)
        else:
            y = interpolate_nd(xn, coeffs, scale_factors=np.array([1.0, 1.0] + scale), **kw)
        io.write(d, name + "_y", y)
        return
    x = torch.tensor(xn, dtype=torch.float64, requires_grad=True)
    dy = torch.tensor(io.read(d, name + "_dy"), dtype=torch.float64)
    kw = dict(size=size) if size else dict(scale_factor=scale, recompute_scale_factor=False)
    if mode == "nearest":
        tmode = "nearest" if coord == "asymmetric" else "nearest-exact"
        y = F.interpolate(x, mode=tmode, **kw)
    else:
        y = F.interpolate(x, mode="bilinear", align_corners=coord == "align_corners", **kw)
    y.backward(dy)
    io.write(d, name + "_y", y.detach().numpy())
    io.write(d, name + "_dx", x.grad.numpy())


if __name__ == "__main__":
    io.run_cases(run)
