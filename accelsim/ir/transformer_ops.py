"""Op nodes of a transformer encoder: matmuls between two activations (attention, per head)
and the I-BERT integer nonlinearities (softmax, GELU, layer norm) that run on the vector ALU.

Head layouts. A 2-D tensor [R, H*X] holds its heads side by side in the features (head h is
columns h*X:(h+1)*X, a linear layer's layout); a 3-D tensor [H, R, X] holds them one after the
other (head-major). `MatMul` reads either and writes either (`concat_heads`).

The integer meaning of every op is its reference in `accelsim.ir.reference`, which calls the
datapath definitions (`accelsim.kernels.gemm`, `accelsim.kernels.ibert`) with the integers
of `accelsim.ir.transformer_params`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.ir.base import Op, check_int_input, check_shape, fail, tensor
from accelsim.ir.graph import Graph, TensorInfo
from accelsim.numeric import MAC_MAX_BITS


def head(x: np.ndarray, h: int, heads: int) -> np.ndarray:
    """Head `h` of array `x`: x[h] of a 3-D [H, R, X] array, or columns h*X:(h+1)*X of a 2-D
    [R, H*X] array."""
    if x.ndim == 3:
        return x[h]
    width = x.shape[1] // heads
    return x[:, h * width : (h + 1) * width]


def head_shape(shape: tuple[int, ...], heads: int) -> tuple[int, int]:
    """(rows, columns) of one head of a tensor of `shape` (see `head`)."""
    if len(shape) == 3:
        return shape[1], shape[2]
    return shape[0], shape[1] // heads


def _check_quant(node, t: TensorInfo, what: str) -> None:
    if np.ndim(t.scale) != 0:
        fail(node, f"{what} {t.name!r} must have a per-tensor scale")
    if t.mode == "bipolar":
        fail(node, f"{what} {t.name!r} must be signed or unsigned")


@dataclass(kw_only=True)
class MatMul(Op):
    """Per head h of `heads`: acc_h = A_h . B_h (B_h^T if `transpose_b`) in int32, then one
    per-tensor rescale to the output with M = alpha * s_a * s_b / s_out (alpha: a real factor,
    such as attention's 1/sqrt(d)).

    A is [M, H*K] or [H, M, K]; B is [N, H*K] with `transpose_b` (attention scores: Q . K^T),
    else [K, H*N] (context: P . V). The output is [H, M, N], or [M, H*N] with `concat_heads`.
    Both inputs are matmul operands (at most MAC_MAX_BITS bits) with zero point 0: the
    hardware cannot fold a zero point of a second activation into a constant bias."""

    heads: int = 1
    transpose_b: bool = False
    concat_heads: bool = False
    alpha: float = 1.0
    N_INPUTS = 2

    def gemm_shape(self, graph: Graph) -> tuple[int, int, int]:
        """(M, K, N) of one head's GEMM."""
        return self._mkn(tensor(graph, self.inputs[0]).shape, tensor(graph, self.inputs[1]).shape)

    def _mkn(self, a_shape, b_shape) -> tuple[int, int, int]:
        m, k = head_shape(tuple(a_shape), self.heads)
        rows, cols = head_shape(tuple(b_shape), self.heads)
        return (m, k, rows) if self.transpose_b else (m, k, cols)

    def out_shape(self, in_shapes) -> tuple[int, ...]:
        """Output shape for the two input shapes."""
        m, _, n = self._mkn(in_shapes[0], in_shapes[1])
        return (m, self.heads * n) if self.concat_heads else (self.heads, m, n)

    def macs(self, graph: Graph) -> int:
        """Multiply-accumulates of all heads."""
        m, k, n = self.gemm_shape(graph)
        return self.heads * m * k * n

    def check(self, graph: Graph) -> None:
        super().check(graph)
        for f in ("transpose_b", "concat_heads"):
            if not isinstance(getattr(self, f), bool):
                fail(self, f"{f} must be true or false, got {getattr(self, f)!r}")
        if isinstance(self.heads, bool) or not isinstance(self.heads, (int, np.integer)):
            fail(self, f"heads must be a positive integer, got {self.heads!r}")
        real = isinstance(self.alpha, (int, float)) and not isinstance(self.alpha, bool)
        if self.heads < 1 or not (real and np.isfinite(self.alpha) and self.alpha > 0):
            fail(self, f"heads must be >= 1 and alpha a real > 0, got {self.heads}, {self.alpha!r}")
        a, b = (tensor(graph, i) for i in self.inputs)
        for what, t in (("input", a), ("second input", b)):
            if t.is_float or len(t.shape) not in (2, 3):
                fail(self, f"{what} {t.name!r} must be a quantized 2-D or 3-D tensor")
            _check_quant(self, t, what)
            if t.bits > MAC_MAX_BITS or t.zero_point != 0:
                fail(
                    self,
                    f"{what} {t.name!r} must have at most {MAC_MAX_BITS} bits and zero point 0, "
                    f"got {t.bits} bits, zero point {t.zero_point}",
                )
            if (len(t.shape) == 3 and t.shape[0] != self.heads) or (
                len(t.shape) == 2 and t.shape[1] % self.heads
            ):
                fail(self, f"{what} {t.name!r} of shape {t.shape} does not hold {self.heads} heads")
        (_, k_a), (rows, cols) = head_shape(a.shape, self.heads), head_shape(b.shape, self.heads)
        if (cols if self.transpose_b else rows) != k_a:
            fail(self, f"heads of {a.shape} and {b.shape} do not chain (transpose_b "
                       f"{self.transpose_b})")  # fmt: skip
        out = tensor(graph, self.output)
        if out.is_float:
            fail(self, f"output {out.name!r} must be quantized")
        _check_quant(self, out, "output")
        check_shape(self, graph, self.out_shape([a.shape, b.shape]))


def _check_row_op(node, graph: Graph) -> tuple[TensorInfo, TensorInfo]:
    src = tensor(graph, node.inputs[0])
    check_int_input(node, graph, src.name, len(src.shape))
    _check_quant(node, src, "input")
    dst = tensor(graph, node.output)
    if dst.is_float:
        fail(node, f"output {dst.name!r} must be quantized")
    _check_quant(node, dst, "output")
    check_shape(node, graph, src.shape)
    return src, dst


@dataclass(kw_only=True)
class Softmax(Op):
    """Softmax along the last axis by I-BERT's integer exp (`accelsim.kernels.ibert`). The
    output is unsigned with zero point 0 and scale 2^-bits: probabilities in [0, 1)."""

    def check(self, graph: Graph) -> None:
        super().check(graph)
        _, dst = _check_row_op(self, graph)
        if dst.mode != "unsigned" or dst.zero_point != 0 or dst.scale != 2.0**-dst.bits:
            fail(
                self,
                f"output {dst.name!r} must be unsigned, zero point 0, scale 2^-bits "
                f"(= {2.0**-dst.bits}), got {dst.mode}, {dst.zero_point}, {dst.scale}",
            )


@dataclass(kw_only=True)
class Gelu(Op):
    """GELU, x * (1 + erf(x / sqrt 2)) / 2, by I-BERT's integer erf, requantized to the output
    tensor."""

    def check(self, graph: Graph) -> None:
        super().check(graph)
        _check_row_op(self, graph)


@dataclass(kw_only=True)
class LayerNorm(Op):
    """Layer norm along the last axis, gamma * (x - mean) / std + beta, with I-BERT's integer
    square root (no epsilon: a constant row gives beta); gamma and beta are float arrays, one
    per channel, folded into integer gains and offsets (`transformer_params`)."""

    gamma: np.ndarray
    beta: np.ndarray

    def check(self, graph: Graph) -> None:
        super().check(graph)
        src, _ = _check_row_op(self, graph)
        c = src.channels
        for f in ("gamma", "beta"):
            a = getattr(self, f)
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.shape != (c,):
                fail(self, f"{f} must be a float array of shape ({c},)")
            if not np.all(np.isfinite(a)):
                fail(self, f"{f} must be finite")
