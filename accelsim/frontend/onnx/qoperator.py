"""ONNX QOperator ops: QLinearConv, QLinearMatMul, QLinearAdd, QGemm (integer in, integer out,
requantized with their own scales) and ConvInteger / MatMulInteger (int32 out, followed by the
float Cast / Mul / Add that a quantizer ends).

Each reads the integers of a machine tensor; its input scale and zero point must be those the
tensor was quantized with (the IR keeps one quantization per tensor).
"""

from __future__ import annotations

import warnings

import numpy as np

from accelsim.frontend.onnx.build import Builder, fail
from accelsim.frontend.onnx.layers import _input, affine, weighted
from accelsim.frontend.onnx.quant_ops import const_array, int_type, qdq_params
from accelsim.frontend.onnx.reader import ONode
from accelsim.frontend.onnx.values import Act, Pending, QConst, QParams

_F32 = np.float32


def _params(b: Builder, node: ONode, args, i: int, name_i: int) -> QParams:
    """QParams from (scale, zero point) inputs i, i+1 (zero point's type gives the width)."""
    sub = ONode(
        node.name,
        node.op,
        node.domain,
        [
            node.inputs[name_i],
            node.inputs[i],
            node.inputs[i + 1] if i + 1 < len(node.inputs) else "",
        ],
        [],
        {"axis": 0},
    )
    vals = [None, args[i], args[i + 1] if i + 1 < len(args) else None]
    qp = qdq_params(b, sub, vals)
    return qp


def _check_input(b: Builder, node: ONode, x, qp: QParams) -> Act:
    x = _input(b, node, x, integer=True)
    t = b.tensors[x.name]
    if _F32(t.scale) != _F32(np.ravel(qp.scale)[0]) or t.zero_point != int(
        np.ravel(qp.zero_point)[0]
    ):
        fail(node, f"input scale / zero point differ from those of {x.name!r}")
    return x


def _weights(b: Builder, node: ONode, v, qp: QParams, axis: int) -> QConst:
    w = const_array(node, v, "weights")
    bits, mode = int_type(b, node, node.inputs[3 if node.op != "MatMulInteger" else 1], w)
    ax = axis if qp.per_channel else None
    return QConst(w.astype(np.int64), QParams(qp.scale, qp.zero_point, bits, mode, ax))


def _out(b: Builder, node: ONode, p: Pending, args, i: int):
    qp = _params(b, node, args, i, 0)
    return b.materialize(
        p, QParams(qp.scale, qp.zero_point, qp.bits, qp.mode), node.outputs[0], node, real=False
    )


def _int_bias(node: ONode, p: Pending, v, unit: np.ndarray) -> Pending:
    """int32 bias in accumulator units (scale s_x * s_w[c]) added as a real offset."""
    if v is None:
        return p
    bias = const_array(node, v, "bias").astype(np.float64).reshape(-1)
    if bias.size != p.shape[-1]:
        fail(node, f"bias has {bias.size} values, the layer has {p.shape[-1]} outputs")
    return affine(None, node, p, o=bias * unit)


def qlinear_conv(b: Builder, node: ONode, args):
    xq = _params(b, node, args, 1, 0)
    x = _check_input(b, node, args[0], xq)
    wq = _params(b, node, args, 4, 3)
    p = weighted(b, node, x, _weights(b, node, args[3], wq, 0), conv=True)
    unit = float(np.ravel(xq.scale)[0]) * np.broadcast_to(np.asarray(wq.scale), (p.shape[-1],))
    p = _int_bias(node, p, args[8] if len(args) > 8 else None, unit)
    return [_out(b, node, p, args, 6)]


def qlinear_matmul(b: Builder, node: ONode, args):
    aq = _params(b, node, args, 1, 0)
    x = _check_input(b, node, args[0], aq)
    bq = _params(b, node, args, 4, 3)
    p = weighted(b, node, x, _weights(b, node, args[3], bq, 1), conv=False)
    return [_out(b, node, p, args, 6)]


def qgemm(b: Builder, node: ONode, args):
    a = node.attrs
    if a.get("transA", 0):
        fail(node, "transA=1 is not supported")
    aq = _params(b, node, args, 1, 0)
    x = _check_input(b, node, args[0], aq)
    bq = _params(b, node, args, 4, 3)
    w = _weights(b, node, args[3], bq, 0 if a.get("transB", 0) else 1)
    if a.get("transB", 0):
        ax = None if w.qp.axis is None else 1
        w = QConst(w.q.T, QParams(w.qp.scale, w.qp.zero_point, w.qp.bits, w.qp.mode, ax))
    p = weighted(b, node, x, w, conv=False)
    alpha = float(a.get("alpha", 1.0))
    unit = (
        alpha
        * float(np.ravel(aq.scale)[0])
        * np.broadcast_to(np.asarray(bq.scale, np.float64), (p.shape[-1],))
    )
    if alpha != 1.0:
        p = affine(b, node, p, k=np.full(p.shape[-1], alpha))
    p = _int_bias(node, p, args[6] if len(args) > 6 else None, unit)
    if len(args) > 7 and args[7] is not None:
        return [_out(b, node, p, args, 7)]
    return [p]  # float output: a later quantizer must requantize it


def qlinear_add(b: Builder, node: ONode, args):
    from accelsim.frontend.onnx.vector import add  # noqa: PLC0415 (shared with float Add)

    xs = []
    for i in (0, 3):
        qp = _params(b, node, args, i + 1, i)
        x = _check_input(b, node, args[i], qp)
        xs.append(Act(x.name, True, x.layout, x.chw))
    sub = ONode(node.name, "Add", "", node.inputs[:1] + node.inputs[3:4], node.outputs)
    (p,) = add(b, sub, xs)
    zp = int(np.ravel(_params(b, node, args, 6, 0).zero_point)[0])
    if zp % 2:
        warnings.warn(
            f"{node.where}: onnxruntime's QLinearAdd rounds half to even after adding the odd "
            f"output zero point {zp}; the machine (like QuantizeLinear) adds it after rounding, "
            "so outputs exactly halfway between two levels differ by one",
            stacklevel=2,
        )
    return [_out(b, node, p, args, 6)]


def integer_op(b: Builder, node: ONode, args):
    """ConvInteger / MatMulInteger: the int32 sum of (x - x_zp) * (w - w_zp)."""
    x = _input(b, node, args[0], integer=True)
    t = b.tensors[x.name]
    zps = [args[i] if len(args) > i else None for i in (2, 3)]
    xzp = 0 if zps[0] is None else int(np.ravel(const_array(node, zps[0], "x_zero_point"))[0])
    if xzp != t.zero_point:
        fail(node, f"x_zero_point {xzp} differs from the zero point {t.zero_point} of {x.name!r}")
    w = const_array(node, args[1], "weights")
    wzp = np.zeros(1, np.int64) if zps[1] is None else const_array(node, zps[1], "w_zero_point")
    bits, mode = int_type(b, node, node.inputs[1], w)
    conv = node.op == "ConvInteger"
    axis = (0 if conv else 1) if np.size(wzp) > 1 else None
    scale = np.ones(np.size(wzp)) if np.size(wzp) > 1 else 1.0
    zp = np.asarray(wzp, np.int64).reshape(-1)
    qp = QParams(scale, zp if zp.size > 1 else int(zp[0]), bits, mode, axis)
    return [weighted(b, node, x, QConst(w.astype(np.int64), qp), conv=conv, unit_real=True)]
