"""Constant folding at import: an ONNX node whose inputs are all constants (shape arithmetic
such as Brevitas's Shape -> Gather -> Unsqueeze -> Concat -> Reshape, weight transposes,
Constant nodes) is evaluated once with the `onnx` package's reference evaluator, so the machine
graph never contains it."""

from __future__ import annotations

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.frontend.onnx.reader import ONode


def constant_value(node: ONode) -> np.ndarray:
    """The value of a Constant node (attribute value, value_float(s), value_int(s))."""
    a = node.attrs
    for key, dtype in (
        ("value", None),
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in a:
            return np.asarray(a[key], dtype=dtype)
    raise ModelFormatError(f"{node.where}: Constant without a supported value attribute")


def evaluate(node: ONode, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    """Run one default-domain node on constant inputs (None = absent optional input)."""
    if node.op == "Constant":
        return [constant_value(node)]
    if node.op == "Identity":
        return [arrays[0]]
    from onnx import helper, numpy_helper  # noqa: PLC0415
    from onnx.reference import ReferenceEvaluator  # noqa: PLC0415

    feeds, inits = {}, []
    for name, a in zip(node.inputs, arrays):
        if name and a is not None:
            inits.append(numpy_helper.from_array(np.asarray(a), name))
    outs = [helper.make_empty_tensor_value_info(o) for o in node.outputs if o]
    graph = helper.make_graph([node.proto], "fold", [], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        res = ReferenceEvaluator(model).run(None, feeds)
    except Exception as e:  # the node is malformed for its constant inputs
        raise ModelFormatError(
            f"{node.where}: constant folding failed: {type(e).__name__}: {e}"
        ) from None
    return [np.asarray(r) for r in res]
