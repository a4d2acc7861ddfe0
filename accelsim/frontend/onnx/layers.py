"""Conv, MatMul and Gemm on quantized operands, and the per-channel affine ops (bias Add,
Mul, Sub, Div, BatchNormalization) folded into them before their requantization.

A conv / linear on a machine tensor's float view and integer weights is an integer GEMM whose
real result is s_in * s_w[c] * acc: a `Pending` value holding the IR op. A following affine
(x * k[c] + o[c]) changes the weight step by |k| (negating weights where k < 0) and adds o to
a real offset that becomes the int32 bias at the requantization, with the fractional bits below
the accumulator unit that `accelsim.ir.fold.bias_frac` chooses. QLinearConv,
QLinearMatMul, QGemm, ConvInteger and MatMulInteger build the same value from their integers.
"""

from __future__ import annotations

import numpy as np

from accelsim.frontend.onnx.build import Builder, fail
from accelsim.frontend.onnx.quant_ops import const_array
from accelsim.frontend.onnx.reader import ONode
from accelsim.frontend.onnx.values import Act, Const, Host, Pending, QConst, flat_perm
from accelsim.ir.fold import scale_weighted
from accelsim.ir.ops import QuantConv2d, QuantLinear, infer_shape
from accelsim.numeric import storage_dtype


def _weight_ints(node: ONode, w: QConst, out_axis: int) -> tuple[np.ndarray, int, str, object]:
    """(integers with the zero point removed, w_bits, w_mode, w_scale per output channel)."""
    qp = w.qp
    out_axis %= w.q.ndim
    if qp.per_channel and qp.axis % w.q.ndim != out_axis:
        fail(
            node,
            f"per-channel weight scales along axis {qp.axis}: only the output-channel "
            f"axis ({out_axis}) can be rescaled after the integer sum",
        )
    zp = np.asarray(qp.zero_point, np.int64)
    if zp.size > 1:
        shape = [1] * w.q.ndim
        shape[out_axis] = zp.size
        zp = zp.reshape(shape)
    q = w.q.astype(np.int64) - zp
    if qp.mode == "bipolar":
        bits, mode = 1, "bipolar"
    elif not np.any(zp):
        bits, mode = qp.bits, qp.mode
    else:  # zero point removed: the smallest signed width holding the differences
        fits = (k for k in range(2, 9) if -(2 ** (k - 1)) <= q.min() and q.max() < 2 ** (k - 1))
        bits = next(fits, 0)
        mode = "signed"
    if not 1 <= bits <= 8:
        fail(node, f"weights need {qp.bits} bits; the matmul array multiplies 1..8-bit operands")
    scale = np.asarray(qp.scale, np.float64)
    return q, bits, mode, (float(scale) if scale.size == 1 else scale.reshape(-1))


def _input(b: Builder, node: ONode, x, integer: bool = False) -> Act:
    if isinstance(x, Host):
        fail(
            node,
            f"reads the float tensor {node.inputs[0]!r}, which no quantizer has "
            "quantized: the integer array needs a QuantizeLinear / Quant in front of it "
            "(a float model cannot run on the machine)",
        )
    if isinstance(x, Pending):
        fail(node, f"reads the unquantized result of {x.src!r}: a quantizer must come between")
    if not isinstance(x, Act) or x.real == integer:
        kind = "integer tensor" if integer else "quantized tensor's float view (DequantizeLinear)"
        fail(node, f"data input must be a machine {kind}, got {type(x).__name__}")
    x = b.settle(x, node)
    t = b.tensors[x.name]
    if np.ndim(t.scale):
        fail(node, f"input {x.name!r} has per-channel scales; the GEMM needs one input scale")
    return x


def _conv_geometry(node: ONode, in_hw, k_hw) -> dict:
    a = node.attrs
    stride = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    if tuple(a.get("kernel_shape", k_hw)) != tuple(k_hw):
        fail(node, f"kernel_shape {a['kernel_shape']} disagrees with the weights {k_hw}")
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in zip(in_hw, k_hw, stride, dil):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads.append((lo, total - lo))
        padding = (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    elif auto in ("NOTSET", "VALID"):
        p = tuple(a.get("pads", (0, 0, 0, 0))) if auto == "NOTSET" else (0, 0, 0, 0)
        if len(p) != 4:
            fail(node, f"pads {p}: only 2-D convolutions are supported")
        padding = (p[0], p[2], p[1], p[3])  # ONNX (top, left, bottom, right) -> IR order
    else:
        fail(node, f"auto_pad {auto!r} is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER)")
    return {"stride": stride, "dilation": dil, "padding": padding, "groups": a.get("group", 1)}


def weighted(b: Builder, node: ONode, x: Act, w: QConst, conv: bool, unit_real: bool = False):
    """Pending conv (`conv`, ONNX weights [Cout, Cin/g, KH, KW]) or linear (weights [K, N])
    on machine tensor x. unit_real: the real result is the integer sum itself (ConvInteger)."""
    t = b.tensors[x.name]
    s_in = float(t.scale)
    if conv:
        if w.q.ndim != 4 or len(t.shape) != 4:
            fail(node, "only 2-D convolutions (4-D input and weights) are supported")
        q, bits, mode, ws = _weight_ints(node, w, 0)
        weight = q.transpose(2, 3, 1, 0).astype(storage_dtype(bits, mode))
        geo = _conv_geometry(node, t.shape[1:3], q.shape[2:])
        op = QuantConv2d(
            name="",
            inputs=(x.name,),
            output="",
            weight=weight,
            w_bits=bits,
            w_mode=mode,
            w_scale=ws,
            **geo,
        )
        layout, chw = "nchw", None
    else:
        if w.q.ndim != 2 or len(t.shape) != 2:
            fail(node, f"needs a 2-D input and 2-D weights, got {t.shape} and {w.q.shape}")
        q, bits, mode, ws = _weight_ints(node, w, 1)
        if x.layout == "flat":
            q = q[flat_perm(x.chw)]
        op = QuantLinear(
            name="",
            inputs=(x.name,),
            output="",
            weight=q.astype(storage_dtype(bits, mode)),
            w_bits=bits,
            w_mode=mode,
            w_scale=ws,
        )
        layout, chw = "same", None
    if unit_real:  # real output = acc: the weight step is 1 / s_in
        op.w_scale = np.full(op.cout, 1.0 / s_in) if np.ndim(ws) else 1.0 / s_in
    try:
        shape = infer_shape(op, [t.shape])
    except (ValueError, IndexError) as e:
        fail(node, f"weights of shape {w.q.shape} do not fit input {t.shape}: {e}")
    if shape[-1] != op.cout or min(shape) < 1:
        fail(node, f"weights of shape {w.q.shape} do not fit input {t.shape}")
    return Pending(
        "weighted",
        op,
        shape,
        layout,
        node.name,
        chw=chw,
        s_in=s_in,
        offset=np.zeros(op.cout),
        integer=unit_real,
    )


def _per_channel(node: ONode, p: Pending, arr: np.ndarray, what: str) -> np.ndarray:
    """A constant broadcast against pending p's ONNX shape, as one value per channel."""
    arr = np.asarray(arr, np.float64)
    c = p.shape[-1]
    ndim = 4 if p.layout == "nchw" else 2
    if arr.ndim > ndim:
        fail(node, f"{what} of shape {arr.shape} has more axes than the tensor")
    full = arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)
    ok = all(d == 1 for i, d in enumerate(full.shape) if i != 1) and full.shape[1] in (1, c)
    if not ok:
        fail(node, f"{what} of shape {arr.shape} is not per-tensor or per-channel")
    return np.broadcast_to(full.reshape(-1), (c,)).astype(np.float64)


def affine(b: Builder, node: ONode, p: Pending, k=None, o=None) -> Pending:
    """Pending p followed by y = x * k + o (per channel): folded into the conv / linear."""
    if p.kind != "weighted":
        fail(
            node,
            f"cannot fold an elementwise {node.op} into the result of {p.src!r} "
            "(only into a conv / linear before its quantizer)",
        )
    if p.lo_r is not None or p.hi_r is not None:
        fail(node, f"{node.op} after a Relu / Clip on the result of {p.src!r} cannot be folded")
    if p.moves and ((k is not None and np.unique(k).size > 1) or o is not None):
        fail(node, f"per-channel {node.op} after a data movement cannot be folded")
    new = Pending(**{**p.__dict__, "moves": list(p.moves)})
    if k is not None:
        new.op = scale_weighted(p.op, k, node.where)
        new.offset = p.offset * k
    if o is not None:
        new.offset = new.offset + o
    new.integer = False
    return new


def conv(b: Builder, node: ONode, args):
    x, w = _input(b, node, args[0]), args[1]
    if not isinstance(w, QConst):
        fail(
            node,
            "weights must be quantized constants (DequantizeLinear or QONNX Quant of "
            "an initialiser); float weights cannot run on the integer array",
        )
    p = weighted(b, node, x, w, conv=True)
    return [_bias(node, p, args[2] if len(args) > 2 else None)]


def _bias(node: ONode, p: Pending, v) -> Pending:
    if v is None:
        return p
    arr = v.real() if isinstance(v, QConst) else const_array(node, v, "bias")
    arr = np.asarray(arr, np.float64).reshape(-1)
    if arr.size != p.shape[-1]:
        fail(node, f"bias has {arr.size} values, the layer has {p.shape[-1]} output channels")
    return affine(None, node, p, o=arr)


def matmul(b: Builder, node: ONode, args):
    x, w = args
    if not isinstance(w, QConst):
        fail(node, "the second operand must be quantized constant weights")
    return [weighted(b, node, _input(b, node, x), w, conv=False)]


def gemm(b: Builder, node: ONode, args):
    a = node.attrs
    if a.get("transA", 0):
        fail(node, "transA=1 is not supported")
    w = args[1]
    if not isinstance(w, QConst):
        fail(node, "B must be quantized constant weights")
    if a.get("transB", 0):
        qp = w.qp
        axis = None if qp.axis is None else 1 - qp.axis % 2
        w = QConst(w.q.T, type(qp)(qp.scale, qp.zero_point, qp.bits, qp.mode, axis, qp.lo, qp.hi))
    p = weighted(b, node, _input(b, node, args[0]), w, conv=False)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if alpha != 1.0:
        p = affine(b, node, p, k=np.full(p.shape[-1], alpha))
    if len(args) > 2 and args[2] is not None and beta != 0.0:
        c = args[2].real() if isinstance(args[2], QConst) else const_array(node, args[2], "C")
        p = affine(b, node, p, o=_per_channel(node, p, np.asarray(c) * beta, "C"))
    return [p]


def batchnorm(b: Builder, node: ONode, args):
    p = args[0]
    if not isinstance(p, Pending):
        fail(node, "BatchNormalization must follow a conv / linear (it is folded into it)")
    g, beta, mean, var = (
        np.asarray(const_array(node, v, "statistics"), np.float64).reshape(-1) for v in args[1:5]
    )
    if not all(a.size == p.shape[-1] for a in (g, beta, mean, var)):
        fail(node, f"statistics must have one value per channel ({p.shape[-1]})")
    std = np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
    k = g / std
    return [affine(b, node, p, k=k, o=beta - k * mean)]


def pending_arith(b: Builder, node: ONode, p: Pending, c, const_first: bool):
    """Add / Sub / Mul / Div of a pending result and a constant."""
    arr = c.real() if isinstance(c, QConst) else c.value
    if p.kind != "weighted" and node.op == "Mul" and np.size(arr) == 1 and float(arr) > 0:
        return Pending(**{**p.__dict__, "gain": p.gain * float(np.ravel(arr)[0])})
    v = _per_channel(node, p, arr, "constant")
    if node.op == "Add":
        return affine(b, node, p, o=v)
    if node.op == "Sub":
        return (
            affine(b, node, p, k=-np.ones_like(v), o=v) if const_first else affine(b, node, p, o=-v)
        )
    if node.op == "Mul":
        return affine(b, node, p, k=v)
    if node.op == "Div" and not const_first:
        return affine(b, node, p, k=1.0 / v)
    fail(node, f"{node.op} with a constant on the left cannot be folded")


def is_const(v) -> bool:
    return isinstance(v, (Const, QConst))
