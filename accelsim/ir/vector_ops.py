"""Ops that run on the vector ALU: ReLU / clip, residual add, pooling, flatten, concat; and
nearest-neighbour upsampling, a DMA copy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.ir.base import (
    Op,
    check_int_input,
    check_shape,
    fail,
    ints,
    same_quant,
    tensor,
    window_out,
)
from accelsim.ir.graph import Graph, TensorInfo


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
        src = tensor(graph, self.inputs[0])
        if src.is_float or not same_quant(src, tensor(graph, self.output)):
            fail(self, f"output must have the same quantization as input {src.name!r}")
        qlo, qhi = src.qrange
        if not (
            isinstance(self.lo, (int, np.integer))
            and isinstance(self.hi, (int, np.integer))
            and qlo <= self.lo <= self.hi <= qhi
        ):
            fail(self, f"need integers {qlo} <= lo <= hi <= {qhi}, got {self.lo!r}, {self.hi!r}")
        check_shape(self, graph, src.shape)


@dataclass(kw_only=True)
class Add(Op):
    """Residual add of two quantized tensors with their own scales: the real sum is requantized
    to the output tensor (see `accelsim.ir.params.add_params`); optional fused ReLU."""

    relu: bool = False
    N_INPUTS = 2

    def check(self, graph: Graph) -> None:
        super().check(graph)
        if not isinstance(self.relu, bool):
            fail(self, f"relu must be true or false, got {self.relu!r}")
        a = check_int_input(self, graph, self.inputs[0], len(tensor(graph, self.output).shape))
        b = check_int_input(self, graph, self.inputs[1], len(a.shape))
        if a.shape != b.shape:
            fail(self, f"input shapes differ: {a.shape} and {b.shape}")
        out = tensor(graph, self.output)
        if out.is_float or out.mode == "bipolar":
            fail(self, f"output {out.name!r} must be signed or unsigned")
        if any(np.ndim(t.scale) for t in (a, b, out)):
            fail(self, "inputs and output must have per-tensor scales")
        check_shape(self, graph, a.shape)


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
        return (
            n,
            window_out(h, self.kernel[0], self.stride[0], pt, pb),
            window_out(w, self.kernel[1], self.stride[1], pl, pr),
            c,
        )

    def _check_window(self, graph: Graph) -> TensorInfo:
        super().check(graph)
        t = check_int_input(self, graph, self.inputs[0], 4)
        self.kernel = ints(self, self.kernel, 2, "kernel", 1)
        self.stride = ints(self, self.stride, 2, "stride", 1)
        self.padding = ints(self, self.padding, 4, "padding", 0)
        if max(self.padding[:2]) >= self.kernel[0] or max(self.padding[2:]) >= self.kernel[1]:
            fail(self, f"padding {self.padding} must be smaller than kernel {self.kernel}")
        o = self.out_shape(t.shape)
        if o[1] < 1 or o[2] < 1:
            fail(self, f"window {self.kernel} does not fit input {t.shape}")
        check_shape(self, graph, o)
        return t

    def check(self, graph: Graph) -> None:
        t = self._check_window(graph)
        if not same_quant(t, tensor(graph, self.output)):
            fail(self, f"output must have the same quantization as input {t.name!r}")


def _check_pool_quant(node, src: TensorInfo, dst: TensorInfo) -> None:
    if dst.is_float or dst.mode == "bipolar":
        fail(node, f"output {dst.name!r} must be signed or unsigned")
    if np.ndim(src.scale) or np.ndim(dst.scale):
        fail(node, "input and output must have per-tensor scales")


@dataclass(kw_only=True)
class AvgPool(MaxPool):
    """Average over KHxKW windows: the sum of the c in-bounds elements (padding is not
    counted, ONNX count_include_pad=0) times a multiplier ~ s_in / (s_out * c), requantized
    to the output tensor (see `accelsim.ir.params.pool_params`)."""

    def check(self, graph: Graph) -> None:
        t = self._check_window(graph)
        _check_pool_quant(self, t, tensor(graph, self.output))


@dataclass(kw_only=True)
class GlobalAvgPool(Op):
    """Mean over H and W: NHWC [N, H, W, C] -> [N, 1, 1, C], requantized like AvgPool."""

    def check(self, graph: Graph) -> None:
        super().check(graph)
        t = check_int_input(self, graph, self.inputs[0], 4)
        _check_pool_quant(self, t, tensor(graph, self.output))
        check_shape(self, graph, (t.shape[0], 1, 1, t.shape[3]))


@dataclass(kw_only=True)
class Flatten(Op):
    """NHWC [N, H, W, C] -> [N, H*W*C] (C fastest). Same quantization (per-tensor scale)."""

    def check(self, graph: Graph) -> None:
        super().check(graph)
        t = tensor(graph, self.inputs[0])
        if t.is_float or np.ndim(t.scale) != 0:
            fail(self, f"input {t.name!r} must be quantized with a per-tensor scale")
        if not same_quant(t, tensor(graph, self.output)):
            fail(self, f"output must have the same quantization as input {t.name!r}")
        check_shape(self, graph, (t.shape[0], int(np.prod(t.shape[1:]))))


@dataclass(kw_only=True)
class Concat(Op):
    """Concatenate along channels (last axis); inputs whose quantization differs from the
    output are requantized to it (see `accelsim.ir.params.concat_params`)."""

    N_INPUTS = None

    def check(self, graph: Graph) -> None:
        super().check(graph)
        ts = [tensor(graph, i) for i in self.inputs]
        out = tensor(graph, self.output)
        if any(t.is_float for t in ts) or out.is_float or out.mode == "bipolar":
            fail(self, "inputs and output must be quantized (output signed or unsigned)")
        if any(t.shape[:-1] != ts[0].shape[:-1] for t in ts):
            fail(self, f"inputs differ in shapes other than channels: {[t.shape for t in ts]}")
        if np.ndim(out.scale) != 0:
            fail(self, f"output {out.name!r} must have a per-tensor scale")
        check_shape(self, graph, ts[0].shape[:-1] + (sum(t.shape[-1] for t in ts),))


@dataclass(kw_only=True)
class Upsample(Op):
    """Nearest-neighbour upsampling by whole factors: NHWC [N, H, W, C] ->
    [N, H*fh, W*fw, C] with y[n, i, j, c] = x[n, i // fh, j // fw, c] (ONNX Resize, mode
    nearest, integer scales). Same quantization; the DMA writes each input tile fh*fw times
    with output strides, so no unit computes anything."""

    factors: tuple[int, int]

    def check(self, graph: Graph) -> None:
        super().check(graph)
        t = check_int_input(self, graph, self.inputs[0], 4)
        self.factors = ints(self, self.factors, 2, "factors", 1)
        if not same_quant(t, tensor(graph, self.output)):
            fail(self, f"output must have the same quantization as input {t.name!r}")
        n, h, w, c = t.shape
        check_shape(self, graph, (n, h * self.factors[0], w * self.factors[1], c))


TRUNC_ROUNDING = ("floor", "ceil", "round")


@dataclass(kw_only=True)
class Trunc(Op):
    """Drop `shift` low bits of an integer tensor: y = clamp(rnd(x / 2**shift)) with rnd
    floor, ceil or round (the machine's rounding mode), as QONNX Trunc (Brevitas's truncating
    average pool). The vector ALU's ADD computes it exactly with x as both operands (see
    `accelsim.ir.params.trunc_params`); the output keeps its own quantization."""

    shift: int
    rounding: str = "floor"

    def check(self, graph: Graph) -> None:
        super().check(graph)
        t = check_int_input(self, graph, self.inputs[0], len(tensor(graph, self.output).shape))
        out = tensor(graph, self.output)
        if out.is_float or out.mode == "bipolar":
            fail(self, f"output {out.name!r} must be signed or unsigned")
        if not isinstance(self.shift, (int, np.integer)) or not 0 <= self.shift <= 30:
            fail(self, f"shift must be an integer in 0..30, got {self.shift!r}")
        if self.rounding not in TRUNC_ROUNDING:
            fail(self, f"rounding must be one of {TRUNC_ROUNDING}, got {self.rounding!r}")
        check_shape(self, graph, t.shape)
