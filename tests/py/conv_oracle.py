"""conv_oracle.py DIR - PyTorch values and gradients for the cases in DIR/cases.txt.

For each case NAME it reads NAME_x, NAME_w, optional NAME_b and NAME_dy, runs
torch.nn.functional.conv2d or conv_transpose2d (kind=conv|convt) and writes NAME_y, NAME_dx,
NAME_dw and NAME_db. Asymmetric padding: conv pads x explicitly; conv_transpose runs unpadded and
crops (pad removes rows/columns of the full output). Computation is in float64 so the oracle's
own rounding does not count against cfx."""

import torch
import torch.nn.functional as F

import oracle_io as io


def run(d, name, a):
    x = torch.tensor(io.read(d, name + "_x"), dtype=torch.float64, requires_grad=True)
    w = torch.tensor(io.read(d, name + "_w"), dtype=torch.float64, requires_grad=True)
    b = None
    if a["bias"] == "1":
        b = torch.tensor(io.read(d, name + "_b"), dtype=torch.float64, requires_grad=True)
    dy = torch.tensor(io.read(d, name + "_dy"), dtype=torch.float64)
    st, pad, dil = io.ints(a["stride"]), io.ints(a["pad"]), io.ints(a["dil"])
    groups, opad = int(a["groups"]), io.ints(a["opad"])
    t, l, bo, r = pad
    if a["kind"] == "conv":
        xp = F.pad(x, (l, r, t, bo))
        y = F.conv2d(xp, w, b, stride=st, dilation=dil, groups=groups)
    else:
        full = F.conv_transpose2d(x, w, b, stride=st, output_padding=opad, dilation=dil,
                                  groups=groups)
        P = full.shape[2] - t - bo
        Q = full.shape[3] - l - r
        y = full[:, :, t:t + P, l:l + Q]
    y.backward(dy)
    io.write(d, name + "_y", y.detach().numpy())
    io.write(d, name + "_dx", x.grad.numpy())
    io.write(d, name + "_dw", w.grad.numpy())
    if b is not None:
        io.write(d, name + "_db", b.grad.numpy())


if __name__ == "__main__":
    io.run_cases(run)
