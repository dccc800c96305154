"""Hand-made ONNX files for the error tests of src/onnx.c, and onnx.checker for exported ones.

usage: onnx_models.py make OUTDIR     writes bad_ops.onnx (LSTM and NonZero nodes) and
                                      external.onnx whose weights sit in a file that is removed
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
