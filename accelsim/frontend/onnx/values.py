"""What an ONNX value is while a model is imported: a constant, quantized constant integers
(weights), a machine tensor (or its dequantized float view), a float tensor on the host, or the
unquantized float result of an integer op that the next quantizer will requantize.

Layouts: the machine keeps feature maps NHWC. An ONNX NCHW tensor [N, C, H, W] is the machine
tensor [N, H, W, C] ("nchw"); an ONNX flatten [N, C*H*W] of one is the machine's flatten
[N, H*W*C] ("flat", features reordered); anything else has the same shape ("same").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accelsim.numeric import value_range


@dataclass(frozen=True)
class QParams:
    """Quantization of one ONNX tensor: real = scale * (q - zero_point), q in [lo, hi].

    scale: float, or float64 array along `axis` (per channel). zero_point: int or int array.
    lo / hi: the integer range (narrower than the type's for QONNX narrow range).
    """

    scale: float | np.ndarray
    zero_point: int | np.ndarray
    bits: int
    mode: str
    axis: int | None = None
    lo: int | None = None
    hi: int | None = None

    @property
    def qrange(self) -> tuple[int, int]:
        lo, hi = value_range(self.bits, self.mode)
        return (lo if self.lo is None else self.lo, hi if self.hi is None else self.hi)

    @property
    def per_channel(self) -> bool:
        return np.ndim(self.scale) > 0 and np.size(self.scale) > 1


@dataclass
class Const:
    """A constant array (initialiser, Constant node or folded subgraph), ONNX layout."""

    value: np.ndarray


@dataclass
class QConst:
    """Constant integers with their quantization (a DequantizeLinear of an initialiser, or a
    QONNX Quant of float weights): real = scale * (q - zp), `q` int64 in ONNX layout."""

    q: np.ndarray
    qp: QParams

    def real(self) -> np.ndarray:
        return _along(self.qp.scale, self.qp.axis, self.q.ndim) * (
            self.q - _along(self.qp.zero_point, self.qp.axis, self.q.ndim)
        )


def _along(v, axis, ndim):
    v = np.asarray(v)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape)


@dataclass
class Act:
    """A machine tensor: IR tensor `name`. `real` is True when the ONNX value is its
    dequantized float view (after DequantizeLinear or a QONNX Quant), False for the integers
    themselves. `lo_r`, `hi_r`: a clamp in real units still to apply (Relu / Clip on the view).
    """

    name: str
    real: bool
    layout: str
    chw: tuple[int, int, int] | None = None
    lo_r: float | None = None
    hi_r: float | None = None


@dataclass
class Host:
    """A float (or integer) tensor computed on the host, ONNX layout: IR tensor `name`.
    `post` is True once it derives from a machine output (host epilogue)."""

    name: str
    post: bool = False


@dataclass
class Pending:
    """The unquantized float result of an integer op, waiting for its quantizer.

    kind: "weighted" (conv / linear: `op` is an IR QuantConv2d / QuantLinear whose real output
    is s_in * w_scale * (acc + bias), plus `offset` per channel still to fold), "add",
    "pool", "concat" (IR op with its inputs set). `shape` is the IR output shape, `layout` /
    `chw` the ONNX view of it. lo_r / hi_r: real clamp (Relu / Clip) to fuse. `moves`: host
    data-movement ops (per-tensor elementwise ops commute with them) applied after the
    quantizer, in the host epilogue. `src`: the ONNX node that produced it, for messages.
    `gain`: a constant factor on a non-weighted result (Brevitas's AveragePool * k*k before
    a Trunc), which only the integer Trunc can absorb.
    """

    kind: str
    op: object
    shape: tuple[int, ...]
    layout: str
    src: str
    chw: tuple[int, int, int] | None = None
    s_in: float = 1.0
    offset: np.ndarray | None = None
    lo_r: float | None = None
    hi_r: float | None = None
    moves: list = field(default_factory=list)
    integer: bool = False
    gain: float = 1.0  # a positive factor on a pool / add result, absorbed by a Trunc


def onnx_shape(shape: tuple[int, ...], layout: str, chw=None) -> tuple[int, ...]:
    """ONNX shape of a machine tensor of IR shape `shape` in `layout`."""
    if layout == "nchw":
        n, h, w, c = shape
        return (n, c, h, w)
    if layout == "flat":
        c, h, w = chw
        return (shape[0], c * h * w)
    return tuple(shape)


def flat_perm(chw: tuple[int, int, int]) -> np.ndarray:
    """For each machine flatten index (h, w, c order), the ONNX flatten index (c, h, w)."""
    c, h, w = chw
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
