"""Integer parameters of the transformer ops from their step sizes: the one place both the
reference and lowering get them (like `accelsim.ir.params` for the other ops).

- `matmul_params`: the per-tensor rescale of a MatMul, M = alpha * s_a * s_b / s_out, laid out
  per output channel as `rescale_params` does (no bias: both zero points are 0).
- `softmax_params`: I-BERT's i-exp constants for an input step S (`accelsim.kernels.ibert`):
  q_ln2 = floor(ln 2 / S'), q_b = floor(1.353 / S'), q_c = floor(0.344 / (0.3585 S'^2)) with
  S' = S * 2^k and the smallest pre-shift k that keeps every exp value below 2^16.
- `gelu_params`: I-BERT's i-erf constants for T = S' / sqrt(2): q_b = floor(1.769 / T),
  q_c = floor(1 / (0.2888 T^2)), with the smallest pre-shift k that keeps |G| < 2^31 over the
  input's integer range; the output multiplier (m, t) ~= S' / (2 q_c s_out).
- `layernorm_params`: per channel, the gain g_c ~= gamma_c * sqrt(c) / (2^30 s_out) * 2^t (one
  shift t for all channels, the largest gain normalised to the multiplier width) and the
  offset o_c = round(beta_c / s_out).
Constants too coarse or too large for the datapath raise ModelFormatError naming the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError, ModelFormatError
from accelsim.ir.graph import Graph
from accelsim.ir.params import RescaleParams
from accelsim.ir.transformer_ops import Gelu, LayerNorm, MatMul, Softmax
from accelsim.kernels import ibert
from accelsim.kernels.rescale import quantize_multiplier
from accelsim.numeric import INT32_MAX

EXP_A, EXP_B, EXP_C = 0.3585, 1.353, 0.344  # I-BERT: exp(p) ~= a (p + b)^2 + c on (-ln 2, 0]
ERF_A, ERF_B = 0.2888, 1.769  # I-BERT: erf(u) ~= sgn(u) (1 - a (min(|u|, b) - b)^2)
MAX_PRESHIFT = 31  # largest input pre-shift k of softmax and GELU


@dataclass(frozen=True)
class SoftmaxParams:
    """i-exp constants and the output width of a Softmax (`kwargs()`: `ibert.softmax_ref`)."""

    shift: int
    q_ln2: int
    q_b: int
    q_c: int
    bits: int

    def kwargs(self) -> dict:
        return dict(shift=self.shift, q_ln2=self.q_ln2, q_b=self.q_b, q_c=self.q_c, bits=self.bits)

    def words(self) -> list[int]:
        """The ALU's PARAM words [k, q_ln2, q_b, q_c] (`accelsim.units.vector`)."""
        return [self.shift, self.q_ln2, self.q_b, self.q_c]


@dataclass(frozen=True)
class GeluParams:
    """i-erf constants, output multiplier and output quantization of a Gelu
    (`kwargs()`: `ibert.gelu_ref`, add `mode` and `mult_bits`)."""

    zx: int
    shift: int
    q_b: int
    q_c: int
    mult: int
    t: int
    zp: int
    bits: int
    signed: bool

    def kwargs(self) -> dict:
        keys = ("zx", "shift", "q_b", "q_c", "mult", "t", "zp", "bits", "signed")
        return {k: getattr(self, k) for k in keys}

    def words(self) -> list[int]:
        """The ALU's PARAM words [k, q_b, q_c, m, t, zx]."""
        return [self.shift, self.q_b, self.q_c, self.mult, self.t, self.zx]


@dataclass(frozen=True)
class LayerNormParams:
    """Per-channel gains and offsets, the common shift and the output quantization of a
    LayerNorm (`kwargs()`: `ibert.layernorm_ref`, add `mode`)."""

    gain: np.ndarray
    offset: np.ndarray
    t: int
    zp: int
    bits: int
    signed: bool

    def kwargs(self) -> dict:
        keys = ("gain", "offset", "t", "zp", "bits", "signed")
        return {k: getattr(self, k) for k in keys}

    def words(self) -> list[int]:
        """The ALU's PARAM words [t, g_0..g_c-1, o_0..o_c-1]."""
        return [self.t, *self.gain.tolist(), *self.offset.tolist()]


def _fail(op, msg: str):
    raise ModelFormatError(f"node {op.name!r} ({type(op).__name__}): {msg}")


def _multiplier(op, real: float, mult_bits: int) -> tuple[int, int]:
    try:
        return quantize_multiplier(float(real), mult_bits)
    except AccelsimError as exc:  # too large for the multiplier width
        _fail(op, str(exc))


def matmul_params(op: MatMul, graph: Graph, mult_bits: int = 32) -> RescaleParams:
    """The rescale of a MatMul: one multiplier for every output channel, bias 0."""
    a, b = (graph.tensors[i] for i in op.inputs)
    dst = graph.tensors[op.output]
    c = dst.channels
    real = op.alpha * float(a.scale) * float(b.scale) / float(dst.scale)
    mult, shift = _multiplier(op, real, mult_bits)
    return RescaleParams(
        bias=np.zeros(c, np.int64),
        mult=np.full(c, mult, np.int64),
        shift=np.full(c, shift, np.int64),
        zp=dst.zero_point,
        bits=dst.bits,
        signed=dst.mode == "signed",
    )


def exp_constants(scale: float) -> tuple[int, int, int, int]:
    """(k, q_ln2, q_b, q_c) of I-BERT's i-exp for input step `scale` (< ln 2): the smallest
    pre-shift k whose constants keep every exp value below 2^16 (module docstring)."""
    if not 0 < scale < math.log(2):
        raise AccelsimError(f"input step {scale} must lie in (0, ln 2) for the integer exp")
    for k in range(MAX_PRESHIFT + 1):
        s = scale * 2.0**k
        q_ln2 = int(math.log(2) / s)
        q_b, q_c = int(EXP_B / s), int(EXP_C / (EXP_A * s * s))
        if q_ln2 >= 1 and max(q_b, q_ln2 - 1 - q_b) ** 2 + q_c < 1 << ibert.EXP_MAX_BITS:
            return k, q_ln2, q_b, q_c
    raise AccelsimError(f"no pre-shift fits the integer exp for input step {scale}")


def erf_constants(scale: float, lo: int, hi: int) -> tuple[int, int, int]:
    """(k, q_b, q_c) of the integer GELU for input step `scale` and input values x - zx in
    [lo, hi]: the smallest pre-shift k that keeps |G| < 2^31 (module docstring)."""
    for k in range(MAX_PRESHIFT + 1):
        tt = scale * 2.0**k / math.sqrt(2.0)
        q_b, q_c = int(ERF_B / tt), int(1.0 / (ERF_A * tt * tt))
        if q_c < 1:
            raise AccelsimError(f"input step {scale} is too coarse for the integer erf")
        q_max = max(abs(lo >> k), abs(hi >> k))
        g_max = q_max * (q_c + max(q_c, q_b * q_b - q_c))
        if g_max <= INT32_MAX and q_b <= ibert.GELU_QB_MAX and q_c <= ibert.GELU_QC_MAX:
            return k, q_b, q_c
    raise AccelsimError(f"no pre-shift fits the integer GELU for input step {scale}")


def softmax_params(op: Softmax, graph: Graph) -> SoftmaxParams:
    """i-exp constants for the input step (module docstring)."""
    try:
        k, q_ln2, q_b, q_c = exp_constants(float(graph.tensors[op.inputs[0]].scale))
    except AccelsimError as exc:
        _fail(op, str(exc))
    return SoftmaxParams(k, q_ln2, q_b, q_c, graph.tensors[op.output].bits)


def gelu_params(op: Gelu, graph: Graph, mult_bits: int = 32) -> GeluParams:
    """i-erf constants for the input step and range, and the output multiplier."""
    src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    lo, hi = (v - src.zero_point for v in src.qrange)
    try:
        k, q_b, q_c = erf_constants(float(src.scale), lo, hi)
    except AccelsimError as exc:
        _fail(op, str(exc))
    real = float(src.scale) * 2.0**k / (2 * q_c) / float(dst.scale)
    mult, t = _multiplier(op, real, mult_bits)
    return GeluParams(
        src.zero_point, k, q_b, q_c, mult, t, dst.zero_point, dst.bits, dst.mode == "signed"
    )


def norm_constants(gamma, beta, s_out: float, mult_bits: int = 32):
    """(gain, offset, t) of the integer layer norm: per-channel gains g_c ~= gamma_c *
    sqrt(c) / (2^30 s_out) * 2^t with one shift t (the largest normalised to `mult_bits`),
    offsets o_c = round(beta_c / s_out) (module docstring)."""
    gamma, beta = np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
    ratio = gamma * math.sqrt(gamma.size) / (2.0**30 * s_out)
    _, t = quantize_multiplier(float(np.max(np.abs(ratio))), mult_bits)
    offset = np.floor(beta / s_out + 0.5)
    if np.any(np.abs(offset) > INT32_MAX):
        raise AccelsimError("beta / output step does not fit int32")
    gain = np.floor(ratio * 2.0**t + 0.5).astype(np.int64)
    return gain, offset.astype(np.int64), int(t)


def layernorm_params(op: LayerNorm, graph: Graph, mult_bits: int = 32) -> LayerNormParams:
    """Integer gains (one shift) and offsets of a LayerNorm (module docstring)."""
    dst = graph.tensors[op.output]
    try:
        gain, offset, t = norm_constants(op.gamma, op.beta, float(dst.scale), mult_bits)
    except AccelsimError as exc:
        _fail(op, str(exc))
    return LayerNormParams(gain, offset, t, dst.zero_point, dst.bits, dst.mode == "signed")
