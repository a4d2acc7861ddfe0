"""Op nodes of the quantized graph IR, with their integer parameters and shape rules.

Every op is a dataclass with `name`, `inputs` (tensor names) and `output` (one tensor name),
plus its own parameters. `check(graph)` raises ModelFormatError naming the node when the
parameters or the declared output disagree with the inputs. Array-valued fields (weights,
biases, per-channel scales, batch-norm statistics) are numpy arrays; everything else is plain
JSON-friendly data, so `accelsim.frontend.native` can save any op generically.

Layouts: activations NHWC. Conv weights [KH, KW, Cin/groups, Cout] (so
`weight.reshape(KH*KW*Cin/groups, Cout)` is the [K, N] GEMM matrix with K ordered
(kh, kw, cin), cin fastest). Linear weights [K, N]. Integer clip bounds (`clip_lo`, `clip_hi`,
`Clip.lo/hi`) are in the output tensor's integer domain (zero point included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.ir.base import (
    Op,
    check_int_input,
    check_shape,
    fail,
    ints,
    tensor,
    window_out,
)
from accelsim.ir.graph import Graph, TensorInfo, check_int_array
from accelsim.ir.host_ops import HOST_OP_TYPES, HostOp
from accelsim.ir.transformer_ops import Gelu, LayerNorm, MatMul, Softmax
from accelsim.ir.vector_ops import (
    Add,
    AvgPool,
    Clip,
    Concat,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    Trunc,
    Upsample,
)
from accelsim.numeric import BIAS_FRAC_MAX, MAC_MAX_BITS, MODES

__all__ = [
    "OP_TYPES",
    "Add",
    "AvgPool",
    "BatchNorm",
    "Clip",
    "Concat",
    "Flatten",
    "Gelu",
    "GlobalAvgPool",
    "LayerNorm",
    "MatMul",
    "MaxPool",
    "Op",
    "QuantConv2d",
    "QuantLinear",
    "Quantize",
    "Softmax",
    "Trunc",
    "Upsample",
    "infer_shape",
    "window_out",
]


@dataclass(kw_only=True)
class Quantize(Op):
    """Float input -> integers of the output tensor: q = clamp(round(x / scale) + zp).

    The input is the float graph input or the output of host pre-processing (`host_ops`)."""

    def check(self, graph: Graph) -> None:
        super().check(graph)
        src, dst = tensor(graph, self.inputs[0]), tensor(graph, self.output)
        prod = graph.producer(src.name)
        if not src.is_float or not (src.name == graph.input or isinstance(prod, HostOp)):
            fail(
                self,
                f"input {src.name!r} must be the float graph input {graph.input!r} "
                "or a float tensor computed on the host",
            )
        if dst.is_float or dst.mode == "bipolar":
            fail(self, f"output {dst.name!r} must be a signed or unsigned quantized tensor")
        check_shape(self, graph, src.shape)


@dataclass(kw_only=True)
class _Weighted(Op):
    """Shared fields of QuantConv2d and QuantLinear (integer weights, int32 bias, fused act).

    `bias` counts 2**-bias_frac_bits accumulator units (s_in * w_scale[c]): 0 fractional bits
    (the default, and every whole-unit bias) is the plain int32 bias; an imported float bias or
    folded batch-norm offset may carry up to `BIAS_FRAC_MAX` bits below the unit, which RESCALE
    adds before its rounding (`accelsim.kernels.rescale`, field `frac`)."""

    weight: np.ndarray
    w_bits: int = 8
    w_mode: str = "signed"
    w_scale: float | np.ndarray = 1.0
    bias: np.ndarray | None = None
    relu: bool = False
    clip_lo: int | None = None
    clip_hi: int | None = None
    bias_frac_bits: int = 0

    @property
    def cout(self) -> int:
        """Number of output channels (N of the GEMM)."""
        return int(self.weight.shape[-1])

    def w_scale_per_channel(self) -> np.ndarray:
        """Weight step size as a float64 array of length `cout`."""
        return np.broadcast_to(np.asarray(self.w_scale, np.float64), (self.cout,)).copy()

    def bias_or_zeros(self) -> np.ndarray:
        """The int32 bias (in 2**-bias_frac_bits accumulator units s_in*s_w_c), zeros if
        absent."""
        if self.bias is None:
            return np.zeros(self.cout, np.int32)
        return self.bias

    def _check_weights(self, graph: Graph, wdim: int) -> None:
        if not isinstance(self.weight, np.ndarray) or self.weight.ndim != wdim:
            fail(self, f"weight must be a {wdim}-D integer array")
        if self.w_mode not in MODES:
            fail(self, f"w_mode must be one of {', '.join(MODES)}, got {self.w_mode!r}")
        if not isinstance(self.w_bits, int) or not 1 <= self.w_bits <= MAC_MAX_BITS:
            fail(self, f"w_bits must be an integer in 1..{MAC_MAX_BITS}, got {self.w_bits!r}")
        if not isinstance(self.relu, bool):
            fail(self, f"relu must be true or false, got {self.relu!r}")
        check_int_array(self.weight, self.w_bits, self.w_mode, f"node {self.name!r}: weight")
        ws = np.asarray(self.w_scale, dtype=np.float64)
        if ws.ndim not in (0, 1) or (ws.ndim == 1 and ws.shape != (self.cout,)):
            fail(self, f"w_scale must be a float or {self.cout} values, got shape {ws.shape}")
        if not np.all(np.isfinite(ws)) or np.any(ws <= 0):
            fail(self, "w_scale must be finite and > 0")
        f = self.bias_frac_bits
        is_int = isinstance(f, (int, np.integer)) and not isinstance(f, bool)
        if not is_int or not 0 <= f <= BIAS_FRAC_MAX:
            fail(self, f"bias_frac_bits must be an integer in 0..{BIAS_FRAC_MAX}, got {f!r}")
        if self.bias is not None:
            if not isinstance(self.bias, np.ndarray) or self.bias.dtype != np.int32:
                fail(self, "bias must be an int32 array")
            if self.bias.shape != (self.cout,):
                fail(self, f"bias must have shape ({self.cout},), got {self.bias.shape}")
        out = tensor(graph, self.output)
        if out.is_float:  # only legal as the pre-batch-norm tensor
            cons = graph.consumers(self.output)
            if len(cons) != 1 or type(cons[0]).__name__ != "BatchNorm":
                fail(self, f"float output {out.name!r} must feed exactly one BatchNorm")
            if self.relu or self.clip_lo is not None or self.clip_hi is not None:
                fail(self, "a conv/linear followed by BatchNorm cannot have a fused activation")
        elif out.mode == "bipolar":
            fail(self, f"output {out.name!r}: bipolar outputs are not supported by rescale")
        else:
            lo, hi = out.qrange
            for what, v in (("clip_lo", self.clip_lo), ("clip_hi", self.clip_hi)):
                if v is not None and (not isinstance(v, (int, np.integer)) or not lo <= v <= hi):
                    fail(self, f"{what} must be an integer in [{lo}, {hi}], got {v!r}")

    def _check_input(self, graph: Graph, ndim: int) -> TensorInfo:
        t = check_int_input(self, graph, self.inputs[0], ndim)
        if np.ndim(t.scale) != 0:
            fail(self, f"input {t.name!r} must have a per-tensor scale")
        if t.bits > MAC_MAX_BITS:
            fail(
                self,
                f"input {t.name!r} has {t.bits} bits; matmul operands have at most {MAC_MAX_BITS}",
            )
        return t


@dataclass(kw_only=True)
class QuantConv2d(_Weighted):
    """2-D convolution on integers, then per-channel rescale to the output tensor.

    acc[n,oh,ow,c] = sum over (kh, kw, ci) of (x_padded - zp_in) * weight (+ bias[c]), where the
    input is padded with its zero point (real 0). Then
    y = rescale(acc, M_c = s_in * w_scale[c] / s_out[c]) with fused ReLU / clip.
    padding is (top, bottom, left, right); groups = Cin gives depthwise.
    """

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        for f in ("stride", "padding", "dilation"):
            v = getattr(self, f)
            if isinstance(v, list):
                setattr(self, f, tuple(v))

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """NHWC output shape for NHWC input shape."""
        n, h, w, _ = in_shape
        kh, kw = self.weight.shape[:2]
        pt, pb, pl, pr = self.padding
        oh = window_out(h, kh, self.stride[0], pt, pb, self.dilation[0])
        ow = window_out(w, kw, self.stride[1], pl, pr, self.dilation[1])
        return (n, oh, ow, self.cout)

    def gemm_shape(self, graph: Graph) -> tuple[int, int, int]:
        """(M, K, N) of the implicit GEMM of one group: M = N*OH*OW, K = KH*KW*Cin/groups,
        N = Cout/groups."""
        n, oh, ow, _ = self.out_shape(tensor(graph, self.inputs[0]).shape)
        kh, kw, cin_g, cout = self.weight.shape
        return n * oh * ow, kh * kw * cin_g, cout // self.groups

    def macs(self, graph: Graph) -> int:
        """Multiply-accumulates of the whole layer."""
        m, k, n = self.gemm_shape(graph)
        return m * k * n * self.groups

    def check(self, graph: Graph) -> None:
        super().check(graph)
        self._check_weights(graph, 4)
        t = self._check_input(graph, 4)
        self.stride = ints(self, self.stride, 2, "stride", 1)
        self.padding = ints(self, self.padding, 4, "padding", 0)
        self.dilation = ints(self, self.dilation, 2, "dilation", 1)
        if not isinstance(self.groups, (int, np.integer)) or self.groups < 1:
            fail(self, f"groups must be a positive integer, got {self.groups!r}")
        kh, kw, cin_g, cout = self.weight.shape
        cin = t.shape[3]
        if cin % self.groups or cout % self.groups or cin // self.groups != cin_g:
            fail(
                self,
                f"weight shape {self.weight.shape} does not fit input channels {cin} "
                f"with groups {self.groups} (expected [KH, KW, {cin}/groups, Cout])",
            )
        oshape = self.out_shape(t.shape)
        if oshape[1] < 1 or oshape[2] < 1:
            fail(self, f"kernel {kh}x{kw} does not fit input {t.shape} with this padding")
        check_shape(self, graph, oshape)


@dataclass(kw_only=True)
class QuantLinear(_Weighted):
    """Fully connected layer: x [M, K] @ weight [K, N] (+ bias), then per-channel rescale."""

    def gemm_shape(self, graph: Graph) -> tuple[int, int, int]:
        """(M, K, N) of the GEMM."""
        m = tensor(graph, self.inputs[0]).shape[0]
        return m, int(self.weight.shape[0]), self.cout

    def macs(self, graph: Graph) -> int:
        """Multiply-accumulates of the layer."""
        m, k, n = self.gemm_shape(graph)
        return m * k * n

    def check(self, graph: Graph) -> None:
        super().check(graph)
        self._check_weights(graph, 2)
        t = self._check_input(graph, 2)
        if t.shape[1] != self.weight.shape[0]:
            fail(
                self,
                f"input {t.name!r} has {t.shape[1]} features, weight expects "
                f"{self.weight.shape[0]}",
            )
        check_shape(self, graph, (t.shape[0], self.cout))


@dataclass(kw_only=True)
class BatchNorm(Op):
    """Float batch norm on the (float) output of a conv/linear; removed by `fold_batchnorm`.

    y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel, then quantized to the output.
    """

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def check(self, graph: Graph) -> None:
        super().check(graph)
        src, dst = tensor(graph, self.inputs[0]), tensor(graph, self.output)
        prod = graph.producer(src.name)
        if not src.is_float or not isinstance(prod, (QuantConv2d, QuantLinear)):
            fail(self, f"input {src.name!r} must be the float output of a conv or linear")
        c = src.channels
        for f in ("gamma", "beta", "mean", "var"):
            a = getattr(self, f)
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.shape != (c,):
                fail(self, f"{f} must be a float array of shape ({c},)")
        eps_ok = isinstance(self.eps, (int, float)) and not isinstance(self.eps, bool)
        if np.any(self.var < 0) or not eps_ok or not self.eps > 0:
            fail(self, "var must be >= 0 and eps > 0")
        if dst.is_float or dst.mode == "bipolar":
            fail(self, f"output {dst.name!r} must be a signed or unsigned quantized tensor")
        check_shape(self, graph, src.shape)


def infer_shape(op: Op, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Output shape of `op` for the given input shapes (no parameter checks)."""
    first = tuple(in_shapes[0])
    if isinstance(op, (QuantConv2d, MaxPool)):  # AvgPool is a MaxPool subclass
        return op.out_shape(first)
    if isinstance(op, QuantLinear):
        return (first[0], op.cout)
    if isinstance(op, GlobalAvgPool):
        return (first[0], 1, 1, first[3])
    if isinstance(op, Flatten):
        return (first[0], int(np.prod(first[1:])))
    if isinstance(op, Concat):
        return first[:-1] + (sum(s[-1] for s in in_shapes),)
    if isinstance(op, Upsample):
        n, h, w, c = first
        return (n, h * op.factors[0], w * op.factors[1], c)
    if isinstance(op, MatMul):
        return op.out_shape(in_shapes)
    return first  # Quantize, BatchNorm, Clip, Add, Softmax, Gelu, LayerNorm


OP_TYPES = {
    cls.__name__: cls
    for cls in (
        Quantize,
        QuantConv2d,
        QuantLinear,
        BatchNorm,
        Clip,
        Add,
        MaxPool,
        AvgPool,
        GlobalAvgPool,
        Flatten,
        Concat,
        Upsample,
        Trunc,
        MatMul,
        Softmax,
        Gelu,
        LayerNorm,
    )
} | HOST_OP_TYPES
