"""Quantizers: ONNX QuantizeLinear / DequantizeLinear (QDQ) and QONNX Quant / BipolarQuant.

A quantizer on constant floats makes integer weights (`QConst`), computed in float32 exactly
as the reference executors do. On the host input it becomes the machine's input Quantize; on
the unquantized result of a conv, linear, add, pool or concat it becomes that op's
requantization; on a machine tensor's float view it is an identity or a requantization.
ONNX types map to (bits, mode): int8 / uint8 / int16 / uint16 / int4 / uint4 / int2 / uint2.
"""

from __future__ import annotations

import numpy as np

from accelsim.frontend.onnx.build import Builder, fail
from accelsim.frontend.onnx.reader import ONode
from accelsim.frontend.onnx.values import Act, Const, Host, Pending, QConst, QParams
from accelsim.numeric import value_range

_F32 = np.float32
# ONNX TensorProto element type -> (bits, mode) of the integers it holds
ONNX_INT_TYPES = {
    3: (8, "signed"),
    2: (8, "unsigned"),
    5: (16, "signed"),
    4: (16, "unsigned"),
    22: (4, "signed"),
    21: (4, "unsigned"),
    26: (2, "signed"),
    25: (2, "unsigned"),
    6: (32, "signed"),
}
_NP_INT_TYPES = {"int8": 3, "uint8": 2, "int16": 5, "uint16": 4, "int32": 6}
QONNX_ROUNDING = ("ROUND", "HALF_EVEN")  # activation rounding the machine does (rne)


def const_array(node: ONode, v, what: str) -> np.ndarray:
    """The array of constant input `v`, or an error naming the node and input."""
    if not isinstance(v, Const):
        fail(node, f"{what} must be a constant (initialiser or folded), got a computed tensor")
    return v.value


def int_type(b: Builder, node: ONode, name: str, arr: np.ndarray) -> tuple[int, str]:
    """(bits, mode) of integer constant `name`: its declared ONNX type, else its dtype."""
    code = b.model.elem_types.get(name, _NP_INT_TYPES.get(arr.dtype.name))
    if code not in ONNX_INT_TYPES:
        fail(
            node,
            f"{name!r} has type {arr.dtype}; supported integer types: int8, uint8, "
            "int16, uint16, int4, uint4, int2, uint2 (int32 for biases)",
        )
    return ONNX_INT_TYPES[code]


def _scale(node: ONode, arr: np.ndarray) -> float | np.ndarray:
    s = np.asarray(arr, np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        fail(node, "quantization scale must be finite and > 0")
    return float(s.reshape(-1)[0]) if s.size == 1 else s


def qdq_params(b: Builder, node: ONode, args) -> QParams:
    """QParams of a QuantizeLinear / DequantizeLinear node (opsets 10..21+)."""
    if node.attrs.get("block_size", 0):
        fail(node, "blocked quantization (block_size) is not supported")
    scale = _scale(node, const_array(node, args[1], "scale"))
    axis = node.attrs.get("axis", 1)
    if len(args) > 2 and args[2] is not None:
        zp = const_array(node, args[2], "zero point")
        bits, mode = int_type(b, node, node.inputs[2], zp)
    else:
        code = node.attrs.get("output_dtype", 2)  # default uint8 (opset 21 output_dtype)
        if code not in ONNX_INT_TYPES:
            fail(node, f"output_dtype {code} is not an integer type")
        zp, (bits, mode) = np.zeros(1, np.int64), ONNX_INT_TYPES[code]
    zp = np.asarray(zp).astype(np.int64)
    if np.size(scale) > 1 and zp.size not in (1, np.size(scale)):
        fail(node, "zero point and scale sizes differ")
    zp_v = int(zp.reshape(-1)[0]) if zp.size == 1 else zp
    return QParams(scale, zp_v, bits, mode, axis if np.size(scale) > 1 else None)


def quantize_const(w: np.ndarray, qp: QParams, rounding=np.rint) -> np.ndarray:
    """Integers of constant floats w: clamp(round(w / scale + zp)) in float32 (ONNX / QONNX)."""
    w = np.asarray(w, _F32)
    ndim = w.ndim
    s = np.asarray(qp.scale, _F32)
    zp = np.asarray(qp.zero_point, _F32)
    if s.size > 1:
        shape = [1] * ndim
        shape[qp.axis % ndim] = s.size
        s = s.reshape(shape)
        zp = zp.reshape(shape) if zp.size > 1 else zp
    lo, hi = qp.qrange
    if qp.mode == "bipolar":
        return np.where(w >= 0, 1, -1).astype(np.int64)
    return np.clip(rounding(w / s + zp), lo, hi).astype(np.int64)


def quantize(b: Builder, node: ONode, x, qp: QParams, real: bool):
    """Apply quantizer `qp` to value `x` (the shared step of QuantizeLinear and Quant)."""
    out = node.outputs[0]
    if isinstance(x, Const):
        return QConst(quantize_const(x.value, qp), qp)
    if isinstance(x, Host):
        return b.quantize_host(x, qp, out, node, real)
    if isinstance(x, Pending):
        if x.gain != 1.0:
            fail(node, f"a Mul by {x.gain} after {x.src!r} is only supported before a Trunc")
        return b.materialize(x, qp, out, node, real)
    if isinstance(x, Act) and x.real:
        return b.requantize(x, qp, out, node, real)
    fail(node, "input must be a float tensor (got integers or quantized constants)")


def quantize_linear(b: Builder, node: ONode, args):
    if node.attrs.get("saturate", 1) != 1:
        fail(node, "saturate=0 applies to float8 outputs only, which are not supported")
    return [quantize(b, node, args[0], qdq_params(b, node, args), real=False)]


def _same(qa: QParams, qb: QParams) -> bool:
    """Same type and, element for element (a scalar matches a constant array), scale and
    zero point."""

    def eq(a, b) -> bool:
        a, b = np.ravel(a), np.ravel(b)
        return (a.size == b.size or 1 in (a.size, b.size)) and bool(np.all(a == b))

    return (
        (qa.bits, qa.mode) == (qb.bits, qb.mode)
        and eq(np.asarray(qa.scale, _F32), np.asarray(qb.scale, _F32))
        and eq(qa.zero_point, qb.zero_point)
    )


def dequantize_linear(b: Builder, node: ONode, args):
    x = args[0]
    if isinstance(x, Const):
        qp = qdq_params(b, node, args)
        bits, mode = int_type(b, node, node.inputs[0], x.value)
        qp = QParams(qp.scale, qp.zero_point, bits, mode, qp.axis)
        return [QConst(x.value.astype(np.int64), qp)]
    qp = qdq_params(b, node, args)
    if isinstance(x, QConst):
        if not _same(qp, x.qp):
            fail(node, "dequantizes constant integers with other parameters than quantized them")
        return [x]
    if isinstance(x, Act) and not x.real:
        t = b.tensors[x.name]
        mine = QParams(t.scale, t.zero_point, qp.bits, t.mode)  # t may be narrower than its type
        if not _same(QParams(qp.scale, qp.zero_point, qp.bits, qp.mode), mine):
            fail(node, f"scale / zero point differ from those that quantized {node.inputs[0]!r}")
        return [Act(x.name, True, x.layout, x.chw)]
    fail(node, "input must be the integer output of a QuantizeLinear or an integer constant")


def _qonnx_params(b: Builder, node: ONode, args) -> tuple[QParams, object]:
    scale = const_array(node, args[1], "scale")
    zp = const_array(node, args[2], "zero point")
    bw = const_array(node, args[3], "bit width")
    if bw.size != 1 or float(bw.reshape(-1)[0]) != int(bw.reshape(-1)[0]):
        fail(node, f"bit width must be one integer, got {bw.reshape(-1)[:4]}")
    bits = int(bw.reshape(-1)[0])
    if not 1 <= bits <= 16:
        fail(node, f"bit width {bits} outside 1..16")
    if np.any(np.asarray(zp) != np.rint(zp)):
        fail(node, "zero point must be an integer")
    signed, narrow = bool(node.attrs.get("signed", 1)), bool(node.attrs.get("narrow", 0))
    mode = "signed" if signed else "unsigned"
    if bits == 1 and signed:
        mode = "bipolar"  # as qonnx executes a 1-bit signed Quant
    lo, hi = value_range(bits, mode)
    if narrow and mode == "signed":
        lo += 1
    elif narrow and mode == "unsigned":
        hi -= 1
    s = np.asarray(scale, np.float64)
    axis = None
    if s.size > 1:
        axes = [i for i, d in enumerate(s.shape) if d > 1]
        if len(axes) != 1:
            fail(node, f"scale of shape {s.shape} is not per-tensor or per-channel")
        axis = axes[0] - s.ndim  # counted from the end: scale broadcasts against the input
    zpv = np.asarray(zp, np.float64).reshape(-1)
    zp_out = int(zpv[0]) if zpv.size == 1 else zpv.astype(np.int64)
    qp = QParams(_scale(node, s.reshape(-1) if s.size > 1 else s), zp_out, bits, mode, axis, lo, hi)
    return qp, node.attrs.get("rounding_mode", "ROUND")


def qonnx_quant(b: Builder, node: ONode, args):
    qp, rmode = _qonnx_params(b, node, args)
    x = args[0]
    if isinstance(x, Const):
        w = np.asarray(x.value, _F32)
        if qp.axis is not None:  # scale came with broadcast shape: axis from the end
            qp = QParams(qp.scale, qp.zero_point, qp.bits, qp.mode, qp.axis % w.ndim, qp.lo, qp.hi)
        return [QConst(quantize_const(w, qp, rounding_fn(node, rmode)), qp)]
    if rmode.upper() not in QONNX_ROUNDING:
        fail(
            node,
            f"rounding_mode {rmode!r} on an activation: the machine rounds half to even "
            f"(supported: {', '.join(QONNX_ROUNDING)})",
        )
    if qp.mode == "bipolar":
        fail(
            node,
            "1-bit (bipolar) activations are not supported: the rescale unit has no bipolar output",
        )
    if qp.axis is not None:
        shape = _value_ndim(b, x)
        qp = QParams(qp.scale, qp.zero_point, qp.bits, qp.mode, qp.axis % shape, qp.lo, qp.hi)
    return [quantize(b, node, x, qp, real=True)]


def _value_ndim(b: Builder, x) -> int:
    if isinstance(x, (Act, Host)):
        return len(b.tensors[x.name].shape)
    if isinstance(x, Pending):
        return len(x.shape)
    return 4


def rounding_fn(node: ONode, mode: str):
    """NumPy rounding of a QONNX rounding_mode (as qonnx executes it)."""
    m = mode.upper()
    table = {
        "ROUND": np.round,
        "HALF_EVEN": np.round,
        "CEIL": np.ceil,
        "FLOOR": np.floor,
        "DOWN": np.fix,
        "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),
        "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
        "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5),
    }
    if m not in table:
        fail(node, f"unknown rounding_mode {mode!r} (known: {', '.join(table)})")
    return table[m]


def bipolar_quant(b: Builder, node: ONode, args):
    x = args[0]
    scale = _scale(node, const_array(node, args[1], "scale"))
    if not isinstance(x, Const):
        fail(
            node,
            "BipolarQuant on activations is not supported: the rescale unit has no "
            "bipolar output (supported on constant weights)",
        )
    if np.size(scale) > 1:
        fail(node, "BipolarQuant with a per-channel scale is not supported")
    qp = QParams(scale, 0, 1, "bipolar")
    return [QConst(quantize_const(x.value, qp), qp)]


TRUNC_ROUNDING = {"FLOOR": "floor", "CEIL": "ceil", "ROUND": "round", "HALF_EVEN": "round"}


def qonnx_trunc(b: Builder, node: ONode, args):
    """QONNX Trunc (v1: x, scale, zp, in_bits, out_bits; v2: ..., out_scale, out_bits): the
    integers q = round(x / scale + zp) lose in_bits - out_bits low bits (rounding_mode, FLOOR
    by default). v1 keeps scale and zero point; v2 uses out_scale and zp / 2**shift."""
    from accelsim.ir.ops import Trunc  # noqa: PLC0415

    x = args[0]
    scale = _scale(node, const_array(node, args[1], "scale"))
    zp = np.ravel(const_array(node, args[2], "zero point"))
    ints = [_int_const(node, args[i], name) for i, name in ((3, "input bit width"),)]
    v2 = len(args) >= 6
    out_bits = _int_const(node, args[5 if v2 else 4], "output bit width")
    if np.size(scale) > 1 or zp.size != 1 or zp[0] != np.rint(zp[0]):
        fail(node, "per-tensor scale and an integer zero point are supported")
    zp = int(zp[0])
    rnd = TRUNC_ROUNDING.get(str(node.attrs.get("rounding_mode", "FLOOR")).upper())
    if rnd is None:
        fail(
            node,
            f"rounding_mode {node.attrs['rounding_mode']!r}; supported: "
            f"{', '.join(TRUNC_ROUNDING)}",
        )
    if v2:
        out_scale = _scale(node, const_array(node, args[4], "output scale"))
        shift = int(np.rint(np.log2(float(out_scale) / float(scale))))
    else:
        out_scale, shift = scale, ints[0] - out_bits
    if shift < 0 or (v2 and zp % (1 << shift)):
        fail(node, f"truncation by {shift} bits with zero point {zp} is not supported")
    if isinstance(x, Pending):
        src_mode = _pending_mode(b, x)
        qp = QParams(float(scale) / x.gain, zp, ints[0], src_mode)
        x = b.materialize(
            Pending(**{**x.__dict__, "gain": 1.0}), qp, f"{node.outputs[0]}/in", node, real=True
        )
    if not isinstance(x, Act) or not x.real:
        fail(node, "input must be a quantized tensor or the result of a pool / conv")
    x = b.settle(x, node)
    t = b.tensors[x.name]
    if _F32(t.scale) * np.float32(1) != _F32(scale) and not isinstance(args[0], Pending):
        fail(node, f"scale {scale} differs from that of its input {x.name!r} ({t.scale})")
    mode = t.mode
    if v2:
        mode = "signed" if node.attrs.get("signed", 1) else "unsigned"
    out_zp = zp if not v2 else zp >> shift
    qp = QParams(out_scale, out_zp, out_bits, mode)
    name = b.new_tensor(node.outputs[0], t.shape, qp, x.layout, node.where)
    b.add(
        Trunc(name=b.node_name(node.name), inputs=(x.name,), output=name, shift=shift, rounding=rnd)
    )
    act = Act(name, True, x.layout, x.chw)
    lo, hi = qp.qrange
    if v2 and node.attrs.get("narrow", 0):
        lo, hi = (lo + 1, hi) if mode == "signed" else (lo, hi - 1)
        act = b.clip(act, lo, hi, node)
    return [act]


def _int_const(node: ONode, v, what: str) -> int:
    a = np.ravel(const_array(node, v, what))
    if a.size != 1 or a[0] != np.rint(a[0]):
        fail(node, f"{what} must be one integer")
    return int(a[0])


def _pending_mode(b: Builder, p: Pending) -> str:
    """signed unless every input of the pending op is unsigned (then its result is >= 0)."""
    ins = [b.tensors[i] for i in getattr(p.op, "inputs", ())]
    return (
        "unsigned"
        if ins and all(t.mode == "unsigned" and t.zero_point == 0 for t in ins)
        else "signed"
    )
