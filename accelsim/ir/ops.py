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

from accelsim.errors import ModelFormatError
from accelsim.ir.graph import Graph, TensorInfo, check_int_array


def _fail(node, msg: str):
    raise ModelFormatError(f"node {node.name!r} ({type(node).__name__}): {msg}")


def _ints(node, value, n: int, what: str, lo: int) -> tuple[int, ...]:
    """Check `value` is a sequence of n ints >= lo; return it as a tuple."""
    ok = isinstance(value, (tuple, list)) and len(value) == n
    ok = ok and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    if not ok or any(v < lo for v in value):
        _fail(node, f"{what} must be {n} integers >= {lo}, got {value!r}")
    return tuple(int(v) for v in value)


def _tensor(graph: Graph, name: str) -> TensorInfo:
    return graph.tensors[name]


def _same_quant(a: TensorInfo, b: TensorInfo) -> bool:
    return (a.bits == b.bits and a.mode == b.mode and a.zero_point == b.zero_point
            and np.array_equal(np.asarray(a.scale), np.asarray(b.scale)))


def _check_shape(node, graph: Graph, expected: tuple[int, ...]) -> None:
    got = _tensor(graph, node.output).shape
    if tuple(got) != tuple(expected):
        _fail(node, f"output {node.output!r} declared with shape {got}, expected {expected}")


def _check_int_input(node, graph: Graph, name: str, ndim: int) -> TensorInfo:
    t = _tensor(graph, name)
    if t.is_float:
        _fail(node, f"input {name!r} must be a quantized integer tensor, got float")
    if len(t.shape) != ndim:
        _fail(node, f"input {name!r} must have {ndim} dimensions, got shape {t.shape}")
    return t


def window_out(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dil: int = 1) -> int:
    """Output length of a sliding window along one axis."""
    return (size + pad_lo + pad_hi - dil * (k - 1) - 1) // stride + 1


@dataclass(kw_only=True)
class Op:
    """Base of all nodes: a name, input tensor names and one output tensor name."""

    name: str
    inputs: tuple[str, ...]
    output: str
    N_INPUTS = 1  # number of inputs; None = one or more

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)

    def check(self, graph: Graph) -> None:
        """Raise ModelFormatError naming this node if it disagrees with its tensors."""
        if self.N_INPUTS is not None and len(self.inputs) != self.N_INPUTS:
            _fail(self, f"takes {self.N_INPUTS} input(s), got {len(self.inputs)}")
        if not self.inputs:
            _fail(self, "needs at least one input")


@dataclass(kw_only=True)
class Quantize(Op):
    """Float input -> integers of the output tensor: q = clamp(round(x / scale) + zp)."""

    def check(self, graph: Graph) -> None:
        super().check(graph)
        src, dst = _tensor(graph, self.inputs[0]), _tensor(graph, self.output)
        if not src.is_float:
            _fail(self, f"input {src.name!r} must be the float graph input")
        if dst.is_float or dst.mode == "bipolar":
            _fail(self, f"output {dst.name!r} must be a signed or unsigned quantized tensor")
        _check_shape(self, graph, src.shape)


@dataclass(kw_only=True)
class _Weighted(Op):
    """Shared fields of QuantConv2d and QuantLinear (integer weights, int32 bias, fused act)."""

    weight: np.ndarray
    w_bits: int = 8
    w_mode: str = "signed"
    w_scale: float | np.ndarray = 1.0
    bias: np.ndarray | None = None
    relu: bool = False
    clip_lo: int | None = None
    clip_hi: int | None = None

    @property
    def cout(self) -> int:
        """Number of output channels (N of the GEMM)."""
        return int(self.weight.shape[-1])

    def w_scale_per_channel(self) -> np.ndarray:
        """Weight step size as a float64 array of length `cout`."""
        return np.broadcast_to(np.asarray(self.w_scale, np.float64), (self.cout,)).copy()

    def bias_or_zeros(self) -> np.ndarray:
        """The int32 bias (in accumulator units s_in*s_w_c), zeros if absent."""
        if self.bias is None:
            return np.zeros(self.cout, np.int32)
        return self.bias

    def _check_weights(self, graph: Graph, wdim: int) -> None:
        if not isinstance(self.weight, np.ndarray) or self.weight.ndim != wdim:
            _fail(self, f"weight must be a {wdim}-D integer array")
        if self.w_mode not in ("signed", "unsigned", "bipolar"):
            _fail(self, f"w_mode must be signed, unsigned or bipolar, got {self.w_mode!r}")
        if not isinstance(self.w_bits, int) or not 1 <= self.w_bits <= 16:
            _fail(self, f"w_bits must be an integer in 1..16, got {self.w_bits!r}")
        check_int_array(self.weight, self.w_bits, self.w_mode, f"node {self.name!r}: weight")
        ws = np.asarray(self.w_scale, dtype=np.float64)
        if ws.ndim not in (0, 1) or (ws.ndim == 1 and ws.shape != (self.cout,)):
            _fail(self, f"w_scale must be a float or {self.cout} values, got shape {ws.shape}")
        if not np.all(np.isfinite(ws)) or np.any(ws <= 0):
            _fail(self, "w_scale must be finite and > 0")
        if self.bias is not None:
            if not isinstance(self.bias, np.ndarray) or self.bias.dtype != np.int32:
                _fail(self, "bias must be an int32 array")
            if self.bias.shape != (self.cout,):
                _fail(self, f"bias must have shape ({self.cout},), got {self.bias.shape}")
        out = _tensor(graph, self.output)
        if out.is_float:  # only legal as the pre-batch-norm tensor
            cons = graph.consumers(self.output)
            if len(cons) != 1 or type(cons[0]).__name__ != "BatchNorm":
                _fail(self, f"float output {out.name!r} must feed exactly one BatchNorm")
            if self.relu or self.clip_lo is not None or self.clip_hi is not None:
                _fail(self, "a conv/linear followed by BatchNorm cannot have a fused activation")
        elif out.mode == "bipolar":
            _fail(self, f"output {out.name!r}: bipolar outputs are not supported by rescale")
        else:
            lo, hi = out.qrange
            for what, v in (("clip_lo", self.clip_lo), ("clip_hi", self.clip_hi)):
                if v is not None and (not isinstance(v, (int, np.integer)) or not lo <= v <= hi):
                    _fail(self, f"{what} must be an integer in [{lo}, {hi}], got {v!r}")

    def _check_input(self, graph: Graph, ndim: int) -> TensorInfo:
        t = _check_int_input(self, graph, self.inputs[0], ndim)
        if np.ndim(t.scale) != 0:
            _fail(self, f"input {t.name!r} must have a per-tensor scale")
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
        n, oh, ow, _ = self.out_shape(_tensor(graph, self.inputs[0]).shape)
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
        self.stride = _ints(self, self.stride, 2, "stride", 1)
        self.padding = _ints(self, self.padding, 4, "padding", 0)
        self.dilation = _ints(self, self.dilation, 2, "dilation", 1)
        if not isinstance(self.groups, (int, np.integer)) or self.groups < 1:
            _fail(self, f"groups must be a positive integer, got {self.groups!r}")
        kh, kw, cin_g, cout = self.weight.shape
        cin = t.shape[3]
        if cin % self.groups or cout % self.groups or cin // self.groups != cin_g:
            _fail(self, f"weight shape {self.weight.shape} does not fit input channels {cin} "
                        f"with groups {self.groups} (expected [KH, KW, {cin}/groups, Cout])")
        oshape = self.out_shape(t.shape)
        if oshape[1] < 1 or oshape[2] < 1:
            _fail(self, f"kernel {kh}x{kw} does not fit input {t.shape} with this padding")
        _check_shape(self, graph, oshape)


@dataclass(kw_only=True)
class QuantLinear(_Weighted):
    """Fully connected layer: x [M, K] @ weight [K, N] (+ bias), then per-channel rescale."""

    def gemm_shape(self, graph: Graph) -> tuple[int, int, int]:
        """(M, K, N) of the GEMM."""
        m = _tensor(graph, self.inputs[0]).shape[0]
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
            _fail(self, f"input {t.name!r} has {t.shape[1]} features, weight expects "
                        f"{self.weight.shape[0]}")
        _check_shape(self, graph, (t.shape[0], self.cout))


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
        src, dst = _tensor(graph, self.inputs[0]), _tensor(graph, self.output)
        prod = graph.producer(src.name)
        if not src.is_float or not isinstance(prod, (QuantConv2d, QuantLinear)):
            _fail(self, f"input {src.name!r} must be the float output of a conv or linear")
        c = src.channels
        for f in ("gamma", "beta", "mean", "var"):
            a = getattr(self, f)
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.shape != (c,):
                _fail(self, f"{f} must be a float array of shape ({c},)")
        if np.any(self.var < 0) or not float(self.eps) > 0:
            _fail(self, "var must be >= 0 and eps > 0")
        if dst.is_float or dst.mode == "bipolar":
            _fail(self, f"output {dst.name!r} must be a signed or unsigned quantized tensor")
        _check_shape(self, graph, src.shape)


@dataclass(kw_only=True)
class Clip(Op):
    """ReLU / ReLU6 / clip on a quantized tensor: y = min(max(x, lo), hi), same quantization.

    kind is "relu", "relu6" or "clip" (documentation only); lo / hi are integers in the
    tensor's domain (ReLU: lo = zero point).
    """

    lo: int
    hi: int
    kind: str = "clip"

    def check(self, graph: Graph) -> None:
        super().check(graph)
        src = _tensor(graph, self.inputs[0])
        if src.is_float or not _same_quant(src, _tensor(graph, self.output)):
            _fail(self, f"output must have the same quantization as input {src.name!r}")
        qlo, qhi = src.qrange
        if not (isinstance(self.lo, (int, np.integer)) and isinstance(self.hi, (int, np.integer))
                and qlo <= self.lo <= self.hi <= qhi):
            _fail(self, f"need integers {qlo} <= lo <= hi <= {qhi}, got {self.lo!r}, {self.hi!r}")
        _check_shape(self, graph, src.shape)


@dataclass(kw_only=True)
class Add(Op):
    """Residual add of two quantized tensors with their own scales: the real sum is requantized
    to the output tensor (see `accelsim.ir.params.add_params`); optional fused ReLU."""

    relu: bool = False
    N_INPUTS = 2

    def check(self, graph: Graph) -> None:
        super().check(graph)
        a = _check_int_input(self, graph, self.inputs[0], len(_tensor(graph, self.output).shape))
        b = _check_int_input(self, graph, self.inputs[1], len(a.shape))
        if a.shape != b.shape:
            _fail(self, f"input shapes differ: {a.shape} and {b.shape}")
        out = _tensor(graph, self.output)
        if out.is_float or out.mode == "bipolar":
            _fail(self, f"output {out.name!r} must be signed or unsigned")
        if any(np.ndim(t.scale) for t in (a, b, out)):
            _fail(self, "inputs and output must have per-tensor scales")
        _check_shape(self, graph, a.shape)


@dataclass(kw_only=True)
class MaxPool(Op):
    """Max over windows; padding never wins (padded with the lowest value). Same quantization."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """NHWC output shape."""
        n, h, w, c = in_shape
        pt, pb, pl, pr = self.padding
        return (n, window_out(h, self.kernel[0], self.stride[0], pt, pb),
                window_out(w, self.kernel[1], self.stride[1], pl, pr), c)

    def _check_window(self, graph: Graph) -> TensorInfo:
        super().check(graph)
        t = _check_int_input(self, graph, self.inputs[0], 4)
        self.kernel = _ints(self, self.kernel, 2, "kernel", 1)
        self.stride = _ints(self, self.stride, 2, "stride", 1)
        self.padding = _ints(self, self.padding, 4, "padding", 0)
        if max(self.padding[:2]) >= self.kernel[0] or max(self.padding[2:]) >= self.kernel[1]:
            _fail(self, f"padding {self.padding} must be smaller than kernel {self.kernel}")
        o = self.out_shape(t.shape)
        if o[1] < 1 or o[2] < 1:
            _fail(self, f"window {self.kernel} does not fit input {t.shape}")
        _check_shape(self, graph, o)
        return t

    def check(self, graph: Graph) -> None:
        t = self._check_window(graph)
        if not _same_quant(t, _tensor(graph, self.output)):
            _fail(self, f"output must have the same quantization as input {t.name!r}")


def _check_pool_quant(node, src: TensorInfo, dst: TensorInfo) -> None:
    if dst.is_float or dst.mode == "bipolar":
        _fail(node, f"output {dst.name!r} must be signed or unsigned")
    if np.ndim(src.scale) or np.ndim(dst.scale):
        _fail(node, "input and output must have per-tensor scales")


@dataclass(kw_only=True)
class AvgPool(MaxPool):
    """Average over KHxKW windows: the sum of the c in-bounds elements (padding is not
    counted, ONNX count_include_pad=0) times a multiplier ~ s_in / (s_out * c), requantized
    to the output tensor (see `accelsim.ir.params.pool_params`)."""

    def check(self, graph: Graph) -> None:
        t = self._check_window(graph)
        _check_pool_quant(self, t, _tensor(graph, self.output))


@dataclass(kw_only=True)
class GlobalAvgPool(Op):
    """Mean over H and W: NHWC [N, H, W, C] -> [N, 1, 1, C], requantized like AvgPool."""

    def check(self, graph: Graph) -> None:
        super().check(graph)
        t = _check_int_input(self, graph, self.inputs[0], 4)
        _check_pool_quant(self, t, _tensor(graph, self.output))
        _check_shape(self, graph, (t.shape[0], 1, 1, t.shape[3]))


@dataclass(kw_only=True)
class Flatten(Op):
    """NHWC [N, H, W, C] -> [N, H*W*C] (C fastest). Same quantization (per-tensor scale)."""

    def check(self, graph: Graph) -> None:
        super().check(graph)
        t = _tensor(graph, self.inputs[0])
        if t.is_float or np.ndim(t.scale) != 0:
            _fail(self, f"input {t.name!r} must be quantized with a per-tensor scale")
        if not _same_quant(t, _tensor(graph, self.output)):
            _fail(self, f"output must have the same quantization as input {t.name!r}")
        _check_shape(self, graph, (t.shape[0], int(np.prod(t.shape[1:]))))


@dataclass(kw_only=True)
class Concat(Op):
    """Concatenate along channels (last axis); inputs whose quantization differs from the
    output are requantized to it (see `accelsim.ir.params.concat_params`)."""

    N_INPUTS = None

    def check(self, graph: Graph) -> None:
        super().check(graph)
        ts = [_tensor(graph, i) for i in self.inputs]
        out = _tensor(graph, self.output)
        if any(t.is_float for t in ts) or out.is_float or out.mode == "bipolar":
            _fail(self, "inputs and output must be quantized (output signed or unsigned)")
        if any(t.shape[:-1] != ts[0].shape[:-1] for t in ts):
            _fail(self, f"inputs differ in shapes other than channels: {[t.shape for t in ts]}")
        if np.ndim(out.scale) != 0:
            _fail(self, f"output {out.name!r} must have a per-tensor scale")
        _check_shape(self, graph, ts[0].shape[:-1] + (sum(t.shape[-1] for t in ts),))


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
    return first  # Quantize, BatchNorm, Clip, Add


OP_TYPES = {cls.__name__: cls for cls in (Quantize, QuantConv2d, QuantLinear, BatchNorm, Clip,
                                           Add, MaxPool, AvgPool, GlobalAvgPool, Flatten, Concat)}
