"""pool_oracle.py DIR - PyTorch values and input gradients for the pooling cases in DIR/cases.txt.

Each case NAME reads NAME_x and NAME_dy and writes NAME_y and NAME_dx. kind=max|avg|gap;
symmetric padding goes to PyTorch directly; asymmetric padding (not combined with ceil_mode,
whose output size would change) pads explicitly: -inf for max, and for average the window sum
over a zero-padded input divided by the window count (count_include_pad: the full kernel;
otherwise the number of input pixels, from a padded mask). Computation is in float64."""

import torch
import torch.nn.functional as F

import oracle_io as io


def run(d, name, a):
    x = torch.tensor(io.read(d, name + "_x"), dtype=torch.float64, requires_grad=True)
    dy = torch.tensor(io.read(d, name + "_dy"), dtype=torch.float64)
    kind = a["kind"]
    if kind == "gap":
        y = F.adaptive_avg_pool2d(x, 1)
    else:
        k, s, dil = io.ints(a["k"]), io.ints(a["s"]), io.ints(a["dil"])
        t, l, b, r = io.ints(a["pad"])
        ceil, cip = a["ceil"] == "1", a["cip"] == "1"
        if t == b and l == r:
            if kind == "max":
                y = F.max_pool2d(x, k, s, (t, l), dil, ceil_mode=ceil)
            else:
                y = F.avg_pool2d(x, k, s, (t, l), ceil_mode=ceil, count_include_pad=cip)
        else:
            assert not ceil, "asymmetric padding with ceil_mode has no PyTorch equivalent"
            if kind == "max":
                y = F.max_pool2d(F.pad(x, (l, r, t, b), value=float("-inf")), k, s, 0, dil)
            else:
                area = k[0] * k[1]
                total = F.avg_pool2d(F.pad(x, (l, r, t, b)), k, s) * area
                if cip:
                    y = total / area
                else:
                    ones = torch.ones_like(x)
                    y = total / (F.avg_pool2d(F.pad(ones, (l, r, t, b)), k, s) * area)
    y.backward(dy)
    io.write(d, name + "_y", y.detach().numpy())
    io.write(d, name + "_dx", x.grad.numpy())


if __name__ == "__main__":
    io.run_cases(run)
