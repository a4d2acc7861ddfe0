"""Build transformer graphs: `GraphBuilder` plus attention matmuls and the I-BERT integer
nonlinearities, each calibrated on the float values of its calibration input.

The float functions here (`softmax_float`, `gelu_float`, `layernorm_float`) are the exact
functions the integer ops approximate; calibration uses them to choose output step sizes, and
the tests measure the integer ops' error against them.
"""

from __future__ import annotations

import math

import numpy as np

from accelsim.ir.builder import GraphBuilder
from accelsim.ir.transformer_ops import Gelu, LayerNorm, MatMul, Softmax, head

_ERF = np.frompyfunc(math.erf, 1, 1)


def softmax_float(x: np.ndarray) -> np.ndarray:
    """softmax along the last axis, in float64."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu_float(x: np.ndarray) -> np.ndarray:
    """GELU x * (1 + erf(x / sqrt 2)) / 2, in float64."""
    return x * (1.0 + _ERF(x / math.sqrt(2.0)).astype(np.float64)) / 2.0


def layernorm_float(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """gamma * (x - mean) / std + beta along the last axis (population std, no epsilon)."""
    d = x - x.mean(axis=-1, keepdims=True)
    std = np.sqrt((d * d).mean(axis=-1, keepdims=True))
    return gamma * d / np.where(std > 0, std, 1.0) + beta


class TransformerBuilder(GraphBuilder):
    """A `GraphBuilder` that also adds `MatMul` (two activations, per head), `Softmax`,
    `Gelu` and `LayerNorm` nodes; every method returns the new tensor's name."""

    def _real(self, x: str) -> np.ndarray:
        t = self.graph.tensors[x]
        return float(t.scale) * (self.values[x].astype(np.float64) - t.zero_point)

    def matmul(
        self,
        a: str,
        b: str,
        *,
        heads: int,
        transpose_b: bool = False,
        concat_heads: bool = False,
        alpha: float = 1.0,
        bits: int = 8,
        signed: bool = True,
        name: str | None = None,
    ) -> str:
        """MatMul of activations a and b per head (see `accelsim.ir.transformer_ops.MatMul`);
        the output step is calibrated on alpha * A_h . B_h in float."""
        name = self._name("matmul", name)
        op = MatMul(
            name=name,
            inputs=(a, b),
            output=name,
            heads=heads,
            transpose_b=transpose_b,
            concat_heads=concat_heads,
            alpha=float(alpha),
        )
        ra, rb = self._real(a), self._real(b)
        per_head = []
        spec = "mk,nk->mn" if transpose_b else "mk,kn->mn"  # small: einsum beats BLAS threads
        for h in range(heads):
            per_head.append(alpha * np.einsum(spec, head(ra, h, heads), head(rb, h, heads)))
        real = np.concatenate(per_head, axis=1) if concat_heads else np.stack(per_head)
        mode = "signed" if signed else "unsigned"
        scale, zp = self._quant(real, bits, mode, relu=False)
        return self._add_node(op, bits, mode, scale, zp)

    def softmax(self, x: str, *, bits: int = 8, name: str | None = None) -> str:
        """Softmax along the last axis to unsigned `bits`-bit probabilities (scale 2^-bits)."""
        name = self._name("softmax", name)
        op = Softmax(name=name, inputs=(x,), output=name)
        return self._add_node(op, bits, "unsigned", 2.0**-bits, 0)

    def gelu(self, x: str, *, bits: int = 8, signed: bool = False, name: str | None = None) -> str:
        """GELU; output step (and zero point if unsigned) calibrated on the float GELU."""
        name = self._name("gelu", name)
        mode = "signed" if signed else "unsigned"
        scale, zp = self._quant(gelu_float(self._real(x)), bits, mode, relu=False)
        return self._add_node(Gelu(name=name, inputs=(x,), output=name), bits, mode, scale, zp)

    def layernorm(
        self,
        x: str,
        *,
        bits: int = 8,
        signed: bool = True,
        gamma: np.ndarray | None = None,
        beta: np.ndarray | None = None,
        name: str | None = None,
    ) -> str:
        """Layer norm along the last axis; gamma and beta default to random draws around 1
        and 0 (as trained layer norms end up), the output step calibrated on the float result."""
        name = self._name("layernorm", name)
        c = self.graph.tensors[x].channels
        if gamma is None:
            gamma = self.rng.uniform(0.5, 1.5, c)
        if beta is None:
            beta = self.rng.normal(0.0, 0.1, c)
        gamma, beta = np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
        op = LayerNorm(name=name, inputs=(x,), output=name, gamma=gamma, beta=beta)
        mode = "signed" if signed else "unsigned"
        real = layernorm_float(self._real(x), gamma, beta)
        scale, zp = self._quant(real, bits, mode, relu=False)
        return self._add_node(op, bits, mode, scale, zp)
