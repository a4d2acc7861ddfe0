"""ONNX model -> IR graph: walk the nodes in topological order and give every ONNX value its
meaning (`values`), building machine and host nodes on the way (`build.Builder`).

Supported ops are listed in `SUPPORTED` (default domain), `CONTRIB` (com.microsoft) and
`QONNX` (onnx.brevitas / qonnx.custom_op.general); anything else raises one ModelFormatError
naming the op type, the node and the supported list. A node whose inputs are all constants is
folded (`consts`), whatever its type.
"""

from __future__ import annotations

from accelsim.errors import ModelFormatError
from accelsim.frontend.onnx import layers, qoperator, quant_ops, vector
from accelsim.frontend.onnx.build import Builder, fail
from accelsim.frontend.onnx.consts import evaluate
from accelsim.frontend.onnx.reader import QONNX_DOMAINS, OModel, ONode
from accelsim.frontend.onnx.values import Const
from accelsim.ir.graph import Graph
from accelsim.ir.host_ops import HOST_UNARY_OPS

SUPPORTED = {
    "QuantizeLinear": quant_ops.quantize_linear,
    "DequantizeLinear": quant_ops.dequantize_linear,
    "Conv": layers.conv,
    "MatMul": layers.matmul,
    "Gemm": layers.gemm,
    "BatchNormalization": layers.batchnorm,
    "Add": vector.add,
    "Sub": vector.add,
    "Mul": vector.add,
    "Div": vector.add,
    "MaxPool": vector.pool,
    "AveragePool": vector.pool,
    "GlobalAveragePool": vector.pool,
    "ReduceMean": vector.pool,
    "Relu": vector.relu_clip,
    "Clip": vector.relu_clip,
    "Concat": vector.concat,
    "Flatten": vector.reshape,
    "Reshape": vector.reshape,
    "Squeeze": vector.reshape,
    "Unsqueeze": vector.reshape,
    "Transpose": vector.transpose,
    "Shape": vector.shape,
    "Identity": vector.passthrough,
    "Dropout": vector.passthrough,
    "Cast": vector.passthrough,
    "Resize": vector.movement,
    "DepthToSpace": vector.movement,
    "Softmax": vector.host_unary,
    "QLinearConv": qoperator.qlinear_conv,
    "QLinearMatMul": qoperator.qlinear_matmul,
    "ConvInteger": qoperator.integer_op,
    "MatMulInteger": qoperator.integer_op,
} | {op: vector.host_unary for op in HOST_UNARY_OPS if op not in ("Relu", "Identity")}
CONTRIB = {"QLinearAdd": qoperator.qlinear_add, "QGemm": qoperator.qgemm}
QONNX = {
    "Quant": quant_ops.qonnx_quant,
    "BipolarQuant": quant_ops.bipolar_quant,
    "Trunc": quant_ops.qonnx_trunc,
}


def handler(node: ONode):
    """The function importing `node`, or None when its op is unsupported."""
    if node.domain in QONNX_DOMAINS:
        return QONNX.get(node.op)
    if node.domain == "com.microsoft":
        return CONTRIB.get(node.op)
    return SUPPORTED.get(node.op)


def supported_list(node: ONode) -> str:
    if node.domain in QONNX_DOMAINS:
        return ", ".join(sorted(QONNX))
    if node.domain == "com.microsoft":
        return ", ".join(sorted(CONTRIB))
    return ", ".join(sorted(SUPPORTED))


def convert(model: OModel) -> Graph:
    """Build the IR graph of a parsed ONNX model (validated)."""
    b = Builder(model)
    for name, arr in model.consts.items():
        b.values[name] = Const(arr)
    for node in model.nodes:
        args = [b.values[i] if i else None for i in node.inputs]
        outs = _step(b, node, args)
        if len(outs) < len([o for o in node.outputs if o]):
            fail(node, "optional outputs are not supported")
        for name, v in zip(node.outputs, outs):
            if name:
                b.values[name] = v
    graph = b.finish()
    try:
        graph.validate()
    except ModelFormatError as e:
        raise ModelFormatError(f"{model.source}: {e}") from None
    except (ValueError, IndexError, TypeError) as e:  # a wrong-typed attribute of a node
        raise ModelFormatError(f"{model.source}: malformed graph ({e})") from None
    return graph


def _step(b: Builder, node: ONode, args) -> list:
    present = [a for a in args if a is not None]
    fn = handler(node)
    foldable = node.domain in ("", "ai.onnx") and node.op not in (
        "QuantizeLinear",
        "DequantizeLinear",
    )
    if (
        foldable
        and all(isinstance(a, Const) for a in present)
        and (present or node.op == "Constant")
    ):
        arrays = [a.value if a is not None else None for a in args]
        return [Const(v) for v in evaluate(node, arrays, b.model.opset)]
    if fn is None:
        kind = "QONNX op" if node.domain in QONNX_DOMAINS else "op"
        dom = f" in domain {node.domain!r}" if node.domain else ""
        raise ModelFormatError(
            f"{b.model.source}: {kind} type {node.op!r}{dom} (node {node.name!r}) is not "
            f"supported; supported: {supported_list(node)}"
        )
    try:
        return fn(b, node, args)
    except ModelFormatError as e:
        msg = str(e)
        raise ModelFormatError(
            msg if msg.startswith(b.model.source) else f"{b.model.source}: {msg}"
        ) from None
    except (KeyError, ValueError, IndexError, TypeError, ArithmeticError) as e:
        # a hostile or broken node: a missing attribute, a wrong-typed value, a bad shape
        raise ModelFormatError(
            f"{b.model.source}: {node.where}: malformed node ({type(e).__name__}: {e})"
        ) from None
