"""Integer parameters derived from step sizes: the one place both the reference and lowering get
them, so the simulated hardware and `run_reference` use identical integers.

- `rescale_params(op, graph)`: conv / linear. Per output channel c the real multiplier
  M_c = s_in * s_w[c] / s_out[c] becomes (mult_c, shift_c) by `quantize_multiplier`, and the
  input zero point is folded into the bias: bias'_c = bias_c - zp_in * sum_k w[k, c] * 2**F
  (the input is padded with zp_in, i.e. real zero, so padding contributes nothing). F = the
  op's `bias_frac_bits`, RESCALE's `frac`; where some shift_c + F would pass the rescale's
  62-bit shifter (an output step 2**(F + B - 63) times the accumulator unit or coarser), F is
  lowered to fit and the bias rounded half to even to the coarser grid.
- `pool_params(op, graph)`: AvgPool / GlobalAvgPool. The sum S of (x - zp_in) over the c
  in-bounds elements of a window (padding not counted) is rescaled with M = s_in / (s_out * c).
- `add_params(op, graph)`: Add. y = clamp(zp + RS((a - za)*ma + (b - zb)*mb; t)), where
  ma ~ s_a/s_o * 2**t and mb ~ s_b/s_o * 2**t share the shift t of the larger multiplier
  (per-tensor scales only).
- `concat_params(op, graph)`: per Concat input, None when it already has the output's
  quantization, else the rescale that maps it there (acc = x, bias = -zp_in).

Conv / linear / concat multipliers are int64 arrays with one entry per channel (last axis);
add multipliers are ints (per-tensor scales); average-pool multipliers are tables indexed by
the window's element count (ints for global pooling).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError, HardwareLimitError, ModelFormatError
from accelsim.ir.graph import Graph, TensorInfo
from accelsim.ir.ops import AvgPool, Concat, GlobalAvgPool, QuantConv2d, QuantLinear
from accelsim.kernels.alu import add_multipliers, avgpool_multipliers
from accelsim.kernels.rescale import MAX_SHIFT, quantize_multiplier, rshift_round_ref
from accelsim.numeric import INT32_MAX, INT32_MIN


@dataclass(frozen=True)
class RescaleParams:
    """Arguments of `accelsim.kernels.rescale.rescale_ref` for one op (besides acc and mode).

    bias, mult, shift: int64 arrays [C] (bias fits int32, in 2**-frac accumulator units).
    zp, bits, signed: output tensor. relu, clip_lo, clip_hi: fused activation (integers in the
    output domain, or None). pad_value: the integer the op's input is padded with (the input
    zero point). frac: the bias fractional bits F (RESCALE's `frac` field).
    """

    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    zp: int
    bits: int
    signed: bool
    relu: bool = False
    clip_lo: int | None = None
    clip_hi: int | None = None
    pad_value: int = 0
    frac: int = 0

    @functools.cached_property
    def dram_words(self) -> np.ndarray:
        """The [C, 3] int64 rows (bias, multiplier, shift) RESCALE reads from DRAM (made once:
        a prepared graph is lowered on many configurations)."""
        return np.stack([self.bias, self.mult, self.shift], axis=1).astype(np.int64)

    def kwargs(self) -> dict:
        """Keyword arguments for rescale_ref / rescale (add `mode` and `mult_bits`)."""
        return {
            "zp": self.zp,
            "bits": self.bits,
            "signed": self.signed,
            "relu": self.relu,
            "clip_lo": self.clip_lo,
            "clip_hi": self.clip_hi,
            "frac": self.frac,
        }


@dataclass(frozen=True)
class AddParams:
    """Integers of a residual add: y = clamp(zp + RS((a - za)*ma + (b - zb)*mb; t)).

    Per-tensor: ma, mb, t are ints. za, zb: input zero points; zp, bits, signed: output.
    `kwargs()` gives the keyword arguments of `accelsim.kernels.alu.add_ref` (add `mode`).
    """

    ma: int
    mb: int
    t: int
    za: int
    zb: int
    zp: int
    bits: int
    signed: bool
    relu: bool = False

    def kwargs(self) -> dict:
        """Keyword arguments for alu.add_ref / alu.add (add `mode`)."""
        return {
            "za": self.za,
            "ma": self.ma,
            "zb": self.zb,
            "mb": self.mb,
            "t": self.t,
            "zp": self.zp,
            "bits": self.bits,
            "signed": self.signed,
            "relu": self.relu,
        }


def _fixed_point(real: np.ndarray, mult_bits: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        m, s = quantize_multiplier(np.asarray(real, np.float64), mult_bits)
    except HardwareLimitError as e:  # a real multiplier too large for the multiplier width
        raise HardwareLimitError(f"{what}: {e}", e.limit) from None
    except AccelsimError as e:
        raise ModelFormatError(f"{what}: {e}") from None
    return np.asarray(m, np.int64), np.asarray(s, np.int64)


def _check_bias(bias: np.ndarray, what: str) -> np.ndarray:
    if bias.size and (int(bias.min()) < INT32_MIN or int(bias.max()) > INT32_MAX):
        raise ModelFormatError(f"{what}: bias with the zero point folded in overflows int32")
    return bias.astype(np.int64)


def _per_channel(t: TensorInfo, c: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(t.scale, np.float64), (c,)).astype(np.float64)


def rescale_params(
    op: QuantConv2d | QuantLinear, graph: Graph, mult_bits: int = 32
) -> RescaleParams:
    """Per-channel rescale integers of a conv or linear op (see module docstring)."""
    src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    c = op.cout
    real = float(src.scale) * op.w_scale_per_channel() / _per_channel(dst, c)
    mult, shift = _fixed_point(real, mult_bits, f"node {op.name!r}")
    frac = int(op.bias_frac_bits)
    bias = op.bias_or_zeros().astype(np.int64)
    fit = min(frac, MAX_SHIFT - int(shift.max())) if c else frac
    if fit < frac:  # the total shift shift_c + F must stay within the shifter
        bias, frac = rshift_round_ref(bias, frac - fit, "rne"), fit
    if src.zero_point:  # the weight sums cost a pass over every weight: only when needed
        wsum = op.weight.reshape(-1, c).sum(axis=0, dtype=np.int64)
        bias = bias - ((src.zero_point * wsum) << frac)
    return RescaleParams(
        bias=_check_bias(bias, f"node {op.name!r}"),
        mult=mult,
        shift=shift,
        zp=dst.zero_point,
        bits=dst.bits,
        signed=dst.mode == "signed",
        relu=bool(op.relu),
        clip_lo=op.clip_lo,
        clip_hi=op.clip_hi,
        pad_value=src.zero_point,
        frac=frac,
    )


@dataclass(frozen=True)
class PoolParams:
    """Integers of an average pool: y = clamp(zp + R(sum over the c in-bounds elements of
    (x - zp_in); mult[c], shift[c])) (see `accelsim.kernels.pool`).

    mult, shift: int64 arrays of length KH*KW + 1 indexed by the window's in-bounds count c
    (AvgPool), or ints (GlobalAvgPool: every window holds H*W elements).
    """

    mult: np.ndarray | int
    shift: np.ndarray | int
    zp_in: int
    zp: int
    bits: int
    signed: bool

    def kwargs(self) -> dict:
        """Keyword arguments for pool.avgpool_ref / global_avgpool_ref (add mode, mult_bits)."""
        return {
            "mult": self.mult,
            "shift": self.shift,
            "zp_in": self.zp_in,
            "zp": self.zp,
            "bits": self.bits,
            "signed": self.signed,
        }


def pool_params(op: AvgPool | GlobalAvgPool, graph: Graph, mult_bits: int = 32) -> PoolParams:
    """Average-pool integers from M = s_in / s_out: multipliers ~ M / c for c summed elements
    (padding is not counted), by `accelsim.kernels.pool.avgpool_multipliers`."""
    src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.output]
    ratio = float(src.scale) / float(dst.scale)
    what = f"node {op.name!r}"
    if isinstance(op, GlobalAvgPool):
        _, h, w, _ = src.shape
        m, s = _fixed_point(np.float64(ratio / (h * w)), mult_bits, what)
        mult, shift = int(m), int(s)
    else:
        try:
            mult, shift = avgpool_multipliers(op.kernel[0], op.kernel[1], ratio, mult_bits)
        except HardwareLimitError as e:  # multiplier too large for the width
            raise HardwareLimitError(f"{what}: {e}", e.limit) from None
        except AccelsimError as e:
            raise ModelFormatError(f"{what}: {e}") from None
    return PoolParams(
        mult=mult,
        shift=shift,
        zp_in=src.zero_point,
        zp=dst.zero_point,
        bits=dst.bits,
        signed=dst.mode == "signed",
    )


@functools.lru_cache(maxsize=4096)
def _add_multipliers(real_a: float, real_b: float, mult_bits: int) -> tuple[int, int, int]:
    """`add_multipliers`, remembered: a pure function of the two ratios (lowering a network
    on many configurations asks for the same ones again)."""
    return add_multipliers(real_a, real_b, mult_bits)


def add_params(op, graph: Graph, mult_bits: int = 32) -> AddParams:
    """Integers of a residual Add: (ma, mb, t) from s_a/s_out and s_b/s_out by
    `accelsim.kernels.alu.add_multipliers` (the larger ratio gets a normalised multiplier)."""
    a, b = (graph.tensors[i] for i in op.inputs)
    dst = graph.tensors[op.output]
    so = float(dst.scale)
    try:
        ma, mb, t = _add_multipliers(float(a.scale) / so, float(b.scale) / so, mult_bits)
    except HardwareLimitError as e:  # a real multiplier too large for the multiplier width
        raise HardwareLimitError(f"node {op.name!r}: {e}", e.limit) from None
    return AddParams(
        ma=int(ma),
        mb=int(mb),
        t=int(t),
        za=a.zero_point,
        zb=b.zero_point,
        zp=dst.zero_point,
        bits=dst.bits,
        signed=dst.mode == "signed",
        relu=bool(op.relu),
    )


def trunc_params(op, graph: Graph) -> AddParams:
    """ALU ADD integers of a Trunc, reading its input as both operands a = b = x:
    v = (x - za) + (x - zb) rounded by 2**(shift + 1), with za + zb = 2**shift - 1 for floor
    (v is odd, so v / 2**(shift+1) = x / 2**shift - 1/2 + 2**-(shift+1) is never a tie and
    every rounding mode gives floor(x / 2**shift)), -(2**shift - 1) for ceil, 0 for round
    (ties follow the machine's mode). shift 0 is a copy (za = zb = 0, t = 1: v / 2 = x)."""
    dst = graph.tensors[op.output]
    k = op.shift
    total = {"floor": (1 << k) - 1, "ceil": 1 - (1 << k), "round": 0}[op.rounding] if k else 0
    za = total // 2 + (total % 2)  # za + zb = total
    return AddParams(
        ma=1,
        mb=1,
        t=k + 1,
        za=za,
        zb=total - za,
        zp=0,
        bits=dst.bits,
        signed=dst.mode == "signed",
    )


def concat_params(op: Concat, graph: Graph, mult_bits: int = 32) -> list[RescaleParams | None]:
    """Per input: None if it has the output's quantization (a copy), else its rescale."""
    dst = graph.tensors[op.output]
    out = []
    for name in op.inputs:
        src = graph.tensors[name]
        same = (src.bits, src.mode, src.zero_point) == (dst.bits, dst.mode, dst.zero_point)
        if same and np.array_equal(np.asarray(src.scale), np.asarray(dst.scale)):
            out.append(None)
            continue
        c = src.channels
        mult, shift = _fixed_point(
            _per_channel(src, c) / float(dst.scale), mult_bits, f"node {op.name!r} input {name!r}"
        )
        out.append(
            RescaleParams(
                bias=np.full(c, -src.zero_point, np.int64),
                mult=mult,
                shift=shift,
                zp=dst.zero_point,
                bits=dst.bits,
                signed=dst.mode == "signed",
                pad_value=src.zero_point,
            )
        )
    return out
