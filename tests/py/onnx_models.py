"""Hand-made ONNX files for the error tests of src/onnx.c, and onnx.checker for exported ones.

usage: onnx_models.py make OUTDIR     writes bad_ops.onnx (LSTM and NonZero nodes) and
                                      external.onnx whose weights sit in a file that is removed
       onnx_models.py hostile OUTDIR  writes OUTDIR/model/*.onnx, each wrong in one way that a
                                      hostile file can be (issue 22), and the files they point at
       onnx_models.py check FILE      onnx.checker.check_model(full_check=True) on FILE
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

cmd, arg = sys.argv[1], sys.argv[2]
if cmd == "check":
    m = onnx.load(arg)
    onnx.checker.check_model(m, full_check=True)
    print("checker ok:", arg, [n.op_type for n in m.graph.node][:8], "...")
    sys.exit(0)


def save(graph, path):
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def external(name, location, shape=(4, 3)):
    """A float initializer of ones whose data is external, at location (as written)."""
    t = numpy_helper.from_array(np.ones(shape, np.float32), name)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(4 * int(np.prod(shape))))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


if cmd == "hostile":
    mdir = os.path.join(arg, "model")
    os.makedirs(os.path.join(mdir, "weights"), exist_ok=True)
    ones = np.ones((4, 3), np.float32).tobytes()
    # Weights files: one beside the model (allowed), one a folder up and one absolute (both
    # outside the model's folder), and a link inside the folder that points outside.
    for p in ("weights/w.data", "../outside.data"):
        with open(os.path.join(mdir, p), "wb") as f:
            f.write(ones)
    os.symlink(os.path.abspath(os.path.join(arg, "outside.data")), os.path.join(mdir, "link.data"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    mm = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    for name, loc in (("ext_inside", "weights/w.data"), ("ext_up", "../outside.data"),
                      ("ext_abs", os.path.abspath(os.path.join(arg, "outside.data"))),
                      ("ext_link", "link.data")):
        save(helper.make_graph(mm, name, [x], [y], [external("W", loc)]),
             os.path.join(mdir, name + ".onnx"))
    # A node whose output is its own input: a Cast of a folded shape, and an Identity of x.
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    yo = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    shape = numpy_helper.from_array(np.array([1, 64], np.int64), "shape")
    save(helper.make_graph([helper.make_node("Cast", ["shape"], ["shape"], name="cast", to=7),
                            helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
                           "ssa_cast", [xi], [yo], [shape]), os.path.join(mdir, "ssa_cast.onnx"))
    save(helper.make_graph([helper.make_node("Identity", ["x"], ["x"], name="ident"),
                            helper.make_node("Relu", ["x"], ["y"], name="relu")],
                           "ssa_identity", [xi], [yo]), os.path.join(mdir, "ssa_identity.onnx"))
    # A Reshape whose target's product overflows int64 to exactly x's 64 elements:
    # (2^62 + 1) * 64 = 2^68 + 64.
    big = numpy_helper.from_array(np.array([2 ** 62 + 1, 64], np.int64), "big")
    save(helper.make_graph([helper.make_node("Reshape", ["x", "big"], ["y"], name="reshape")],
                           "reshape_overflow", [xi], [yo], [big]),
         os.path.join(mdir, "reshape_overflow.onnx"))
    # The same Reshape of a constant (folded at import): the product overflowed there too.
    c64 = numpy_helper.from_array(np.ones((1, 64), np.float32), "c")
    save(helper.make_graph([helper.make_node("Reshape", ["c", "big"], ["y"], name="reshape")],
                           "reshape_fold_overflow", [xi], [yo], [c64, big]),
         os.path.join(mdir, "reshape_fold_overflow.onnx"))
    # An int64 shape initializer whose raw data is 3 bytes short of its 2 elements, read by a
    # Reshape, and cast to float (which tries it as a constant, then as a graph value).
    cut = numpy_helper.from_array(np.array([1, 64], np.int64), "shape")
    cut.raw_data = cut.raw_data[:13]
    save(helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
                           "cut_shape", [xi], [yo], [cut]), os.path.join(mdir, "cut_shape.onnx"))
    save(helper.make_graph([helper.make_node("Cast", ["shape"], ["y"], name="cast", to=1)],
                           "cut_cast", [xi], [yo], [cut]), os.path.join(mdir, "cut_cast.onnx"))
    # Conv attributes a valid model cannot have.
    xc = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    wc = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "W")
    for name, attrs in (("conv_stride0", {"strides": [0, 1]}),
                        ("conv_dilation0", {"dilations": [1, 0]}),
                        ("conv_group0", {"group": 0}),
                        ("conv_kernel", {"kernel_shape": [5, 5]}),
                        ("conv_pads", {"pads": [2 ** 30, 2 ** 30, 2 ** 30, 2 ** 30]}),
                        ("conv_pads_neg", {"pads": [-1, 0, 0, 0]}),
                        ("conv_ok", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})):
        save(helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], name="conv",
                                                 **attrs)], name, [xc], [yo], [wc]),
             os.path.join(mdir, name + ".onnx"))
    # A 4 x 2^27 weight (2 GiB) with 48 bytes of data, external and raw: refused before the
    # 2 GiB are allocated (found by fuzzing).
    huge = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 2 ** 27])
    huge_raw = TensorProto()
    huge_raw.CopyFrom(huge)
    huge_raw.raw_data = ones
    huge.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "weights/w.data"), ("offset", "0")):
        e = huge.external_data.add()
        e.key, e.value = k, v
    for name, t in (("huge_external", huge), ("huge_raw", huge_raw)):
        save(helper.make_graph(mm, name, [x], [y], [t]), os.path.join(mdir, name + ".onnx"))
    # An input with a zero dimension (not a symbolic one).
    xz = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 0, 4])
    save(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "zero_dim",
                           [xz], [yo]), os.path.join(mdir, "zero_dim.onnx"))
    sys.exit(0)

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
         helper.make_node("NonZero", ["r"], ["nz"], name="nonzero0"),
         helper.make_node("Cast", ["nz"], ["y0"], name="cast0", to=TensorProto.FLOAT),
         helper.make_node("LSTM", ["y0", "W", "R"], ["y"], name="lstm0", hidden_size=2)]
w = numpy_helper.from_array(np.zeros((1, 8, 4), np.float32), "W")
r = numpy_helper.from_array(np.zeros((1, 8, 2), np.float32), "R")
g = helper.make_graph(nodes, "bad", [x], [y], [w, r])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
          os.path.join(arg, "bad_ops.onnx"))

wt = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "ext", [x],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [wt])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
onnx.save(m, os.path.join(arg, "external.onnx"), save_as_external_data=True,
          all_tensors_to_one_file=True, location="external.data", size_threshold=0)
os.remove(os.path.join(arg, "external.data"))
