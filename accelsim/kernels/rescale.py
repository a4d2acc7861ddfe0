"""RESCALE unit datapath: int32 accumulators -> b-bit outputs with per-channel fixed-point scales.

Per output channel c (the last axis of `acc`), with integer multiplier ``mult_c >= 0`` and right
shift ``shift_c`` in 0..62, so that the real multiplier is ``M_c ~= mult_c * 2**-shift_c``, and
F = `frac` bias fractional bits (one per instruction, 0..`BIAS_FRAC_MAX`)::

    x   = sat_int32((acc << F) + bias_c)     # the bias adder saturates
    y   = clamp(zp + R(x; mult_c, shift_c + F), lo, hi)

With F = 0 this is the plain rescale R(acc + bias_c). With F > 0 the bias counts 2**-F
accumulator units (a folded float bias or batch-norm offset need not be a whole number of
them): the real result is M_c * (acc + bias_c * 2**-F), and the F extra fraction bits that the
shifted sum carries through the multiplier leave by F more bits of right shift, so there is
still exactly one rounding in ``single`` and ``rne``. Widths: acc is int32; ``acc << F`` and the
sign-extended int32 bias meet in a (32 + F)-bit adder whose sum saturates to int32 before the
(unchanged) 32 x B multiplier; the product stays below 2**62 in int64 and the total shift
shift_c + F is at most 62. The price of F is headroom: the accumulator must fit in 32 - F bits
or the sum saturates, so the front end picks F from the layer's accumulator bound
(`accelsim.ir.fold.bias_frac`). Every rounding mode and multiplier width applies R at the total
shift shift_c + F, exactly as it would for a real multiplier 2**F times smaller on an input
2**F times larger.

``lo, hi`` is the (bits, signed) output range tightened by a fused ReLU (lo >= zp) and an
optional clip [clip_lo, clip_hi]. ``R`` has three rounding modes:

- ``single``: one rounding, half up: ``(x*mult + 2**(shift-1)) >> shift`` in int64
  (``x*mult`` when shift == 0). Cheapest hardware: one multiplier, one adder, one shifter.
- ``rne``: the exact product ``x*mult / 2**shift`` rounded half to even, in integers. This is
  ONNX QLinear's float rounding whenever the float computation is exact; it is the reference
  the simulator counts mismatches against.
- ``tflite``: gemmlowp's two roundings, bit-exact with TFLite's MultiplyByQuantizedMultiplier
  generalised to a B = `mult_bits` multiplier (B = 32: Q31, B = 16: Q15)::

      e  = (B - 1) - shift                    # TFLite's exponent (left shift if > 0)
      x1 = sat_int32(x << max(e, 0))
      x2 = SRDHM_B(x1, mult)                  # saturating rounding doubling high multiply
      R  = RoundingDivideByPOT(x2, max(-e, 0))

  where ``SRDHM_B(a, b) = trunc((a*b + nudge) / 2**(B-1))``, nudge = 2**(B-2) if a*b >= 0 else
  1 - 2**(B-2), saturating to INT32_MAX when a == INT32_MIN and b == -2**(B-1) (for B = 32 this
  is gemmlowp's SaturatingRoundingDoublingHighMul), and ``RoundingDivideByPOT(v, t)`` rounds
  v / 2**t half away from zero. With B = 32 and mult in [2**30, 2**31) it is TFLite exactly.

`requantize_ref` / `requantize_scalar` are the one definition of R that quant.py and alu.py
reuse; `rshift_round_ref` / `rshift_round_scalar` are its rounding right shift.
"""

import numpy as np

from accelsim.errors import AccelsimError, HardwareLimitError
from accelsim.jit import lazy_njit
from accelsim.kernels.common import as_int32, output_range, per_channel
from accelsim.numeric import BIAS_FRAC_MAX, INT32_MAX, INT32_MIN, sign_mode, storage_dtype

ROUND_MODES = ("single", "tflite", "rne")
MODE_CODE = {"single": 0, "tflite": 1, "rne": 2}
MAX_SHIFT = 62  # largest right shift: x*mult stays below 2**62, so int64 never overflows


def mode_code(mode):
    """Integer code of a rounding mode for the Numba kernels; raises on an unknown mode."""
    if mode not in MODE_CODE:
        raise AccelsimError(f"rounding mode must be one of {ROUND_MODES}, got {mode!r}")
    return MODE_CODE[mode]


def check_frac(frac, shift):
    """Validate the bias fractional bits F (0..BIAS_FRAC_MAX) against the shifts (0..62): the
    total right shift shift_c + F must stay within MAX_SHIFT."""
    if isinstance(frac, bool) or not isinstance(frac, (int, np.integer)):
        raise AccelsimError(f"frac must be an integer in 0..{BIAS_FRAC_MAX}, got {frac!r}")
    if not 0 <= frac <= BIAS_FRAC_MAX:
        raise AccelsimError(f"frac must be an integer in 0..{BIAS_FRAC_MAX}, got {frac!r}")
    if shift.size and int(shift.max()) + frac > MAX_SHIFT:
        raise AccelsimError(
            f"shift + frac must be at most {MAX_SHIFT}, got {int(shift.max())} + {int(frac)}"
        )
    return int(frac)


def check_mult_bits(mult_bits):
    """Validate the rescale multiplier width B (8..32 bits, sign included)."""
    if not isinstance(mult_bits, (int, np.integer)) or not 8 <= mult_bits <= 32:
        raise AccelsimError(f"mult_bits must be an integer in 8..32, got {mult_bits!r}")
    return int(mult_bits)


def _trunc_div_pow2_ref(n, t):
    """C-style integer division n / 2**t truncating toward zero (int64 arrays)."""
    return np.where(n >= 0, n >> t, -((-n) >> t))


def rounding_divide_by_pot_ref(x, t):
    """gemmlowp RoundingDivideByPOT: x / 2**t rounded half away from zero (int64, t in 0..62)."""
    x = np.asarray(x, np.int64)
    t = np.asarray(t, np.int64)
    mask = (np.int64(1) << t) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> t) + (remainder > threshold)


def srdhm_ref(a, b, mult_bits=32):
    """Saturating rounding doubling high multiply of int32 `a` by B-bit `b` (int64 arrays).

    B = 32 is gemmlowp's SaturatingRoundingDoublingHighMul(int32, int32).
    """
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    overflow = (a == INT32_MIN) & (b == -(1 << (mult_bits - 1)))
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << (mult_bits - 2)), np.int64(1 - (1 << (mult_bits - 2))))
    high = _trunc_div_pow2_ref(ab + nudge, mult_bits - 1)
    return np.where(overflow, np.int64(INT32_MAX), high)


def rshift_round_ref(p, t, mode):
    """Round p / 2**t to an integer in `mode` (int64 arrays, t in 0..62; t == 0 returns p).

    single: half up (toward +inf); rne: half to even; tflite: half away from zero.
    """
    p = np.asarray(p, np.int64)
    t = np.broadcast_to(np.asarray(t, np.int64), p.shape)
    if mode == "single":
        half = np.where(t > 0, np.int64(1) << np.maximum(t - 1, 0), 0)
        return (p + half) >> t
    if mode == "tflite":
        return rounding_divide_by_pot_ref(p, t)
    if mode == "rne":
        q = p >> t  # floor
        rem = p - (q << t)  # in [0, 2**t)
        half = np.where(t > 0, np.int64(1) << np.maximum(t - 1, 0), 0)
        up = (t > 0) & ((rem > half) | ((rem == half) & ((q & 1) == 1)))
        return q + up
    raise AccelsimError(f"rounding mode must be one of {ROUND_MODES}, got {mode!r}")


def requantize_ref(x, mult, shift, mode, mult_bits=32):
    """R(x; mult, shift) of the module docstring on int64 arrays (x within int32)."""
    x = np.asarray(x, np.int64)
    mult = np.asarray(mult, np.int64)
    shift = np.asarray(shift, np.int64)
    if mode in ("single", "rne"):
        return rshift_round_ref(x * mult, shift, mode)
    if mode == "tflite":
        e = (mult_bits - 1) - shift
        x1 = np.clip(x << np.maximum(e, 0), INT32_MIN, INT32_MAX)
        return rounding_divide_by_pot_ref(srdhm_ref(x1, mult, mult_bits), np.maximum(-e, 0))
    raise AccelsimError(f"rounding mode must be one of {ROUND_MODES}, got {mode!r}")


@lazy_njit(cache=True)
def rshift_round_scalar(p, t, mode):
    """Numba twin of `rshift_round_ref` for one int64 value; mode is MODE_CODE[...]."""
    if t == 0:
        return p
    q = p >> t
    rem = p - (q << t)
    half = np.int64(1) << (t - 1)
    if mode == 0:
        return q + (1 if rem >= half else 0)
    if mode == 1:
        return q + (1 if (rem > half or (rem == half and p >= 0)) else 0)
    return q + (1 if (rem > half or (rem == half and (q & 1) == 1)) else 0)


@lazy_njit(cache=True)
def srdhm_scalar(a, b, mult_bits):
    """Numba twin of `srdhm_ref` for one int64 pair (a within int32, b within B bits)."""
    if a == INT32_MIN and b == -(np.int64(1) << (mult_bits - 1)):
        return np.int64(INT32_MAX)
    ab = a * b
    if ab >= 0:
        return (ab + (np.int64(1) << (mult_bits - 2))) >> (mult_bits - 1)
    n = ab + 1 - (np.int64(1) << (mult_bits - 2))
    return -((-n) >> (mult_bits - 1))


@lazy_njit(cache=True)
def requantize_scalar(x, mult, shift, mode, mult_bits):
    """Numba twin of `requantize_ref` for one int64 value; mode is MODE_CODE[...]."""
    if mode != 1:
        return rshift_round_scalar(x * mult, shift, mode)
    e = (mult_bits - 1) - shift
    if e > 0:
        x = min(max(x << e, np.int64(INT32_MIN)), np.int64(INT32_MAX))
    return rshift_round_scalar(srdhm_scalar(x, mult, mult_bits), max(-e, 0), 1)


@lazy_njit(cache=True)
def _rescale_kernel(acc, bias, mult, shift, frac, zp, lo, hi, mode, mult_bits, out):
    rows, n = acc.shape
    for r in range(rows):
        for c in range(n):
            x = (np.int64(acc[r, c]) << frac) + bias[c]
            x = min(max(x, np.int64(INT32_MIN)), np.int64(INT32_MAX))
            y = zp + requantize_scalar(x, mult[c], shift[c] + frac, mode, mult_bits)
            out[r, c] = min(max(y, lo), hi)


def _prepare(
    acc, bias, mult, shift, zp, bits, signed, mode, relu, clip_lo, clip_hi, mult_bits, frac
):
    acc = as_int32(acc, "acc")
    mode_code(mode)
    mult_bits = check_mult_bits(mult_bits)
    n = acc.shape[-1] if acc.ndim else 1
    bias = per_channel(bias, n, "bias", INT32_MIN, INT32_MAX)
    mult = per_channel(mult, n, "mult", 0, (1 << (mult_bits - 1)) - 1)
    shift = per_channel(shift, n, "shift", 0, MAX_SHIFT)
    frac = check_frac(frac, shift)
    lo, hi = output_range(bits, signed, int(zp), relu, clip_lo, clip_hi)
    return acc, bias, mult, shift, int(zp), lo, hi, mult_bits, frac


def rescale_ref(
    acc,
    bias,
    mult,
    shift,
    *,
    zp,
    bits,
    signed,
    mode,
    relu=False,
    clip_lo=None,
    clip_hi=None,
    mult_bits=32,
    frac=0,
):
    """NumPy definition of RESCALE (see module docstring).

    acc: int32 array [..., N] (last axis = output channel). bias (int32, in 2**-frac
    accumulator units), mult (0 <= mult < 2**(mult_bits-1)) and shift (0..62): scalars or
    length-N arrays. frac: bias fractional bits F, with shift + F <= 62. zp: output zero point.
    Returns int8/uint8 for bits <= 8 (by `signed`), int32 above; same shape as acc.
    """
    acc, bias, mult, shift, zp, lo, hi, mult_bits, frac = _prepare(
        acc, bias, mult, shift, zp, bits, signed, mode, relu, clip_lo, clip_hi, mult_bits, frac
    )
    # (acc << F) + bias in the (32 + F)-bit adder, saturated to the multiplier's int32 input
    x = np.clip((acc.astype(np.int64) << frac) + bias, INT32_MIN, INT32_MAX)
    y = zp + requantize_ref(x, mult, shift + frac, mode, mult_bits)
    return np.clip(y, lo, hi).astype(storage_dtype(bits, sign_mode(signed)))


def rescale(
    acc,
    bias,
    mult,
    shift,
    *,
    zp,
    bits,
    signed,
    mode,
    relu=False,
    clip_lo=None,
    clip_hi=None,
    mult_bits=32,
    frac=0,
):
    """Numba RESCALE; bit-exact with `rescale_ref` (same arguments and result)."""
    acc, bias, mult, shift, zp, lo, hi, mult_bits, frac = _prepare(
        acc, bias, mult, shift, zp, bits, signed, mode, relu, clip_lo, clip_hi, mult_bits, frac
    )
    acc2 = np.ascontiguousarray(acc.reshape(-1, bias.shape[0]) if acc.size else acc.reshape(0, 1))
    out = np.empty(acc2.shape, np.int32)
    _rescale_kernel(acc2, bias, mult, shift, frac, zp, lo, hi, MODE_CODE[mode], mult_bits, out)
    return out.reshape(acc.shape).astype(storage_dtype(bits, sign_mode(signed)))


def count_mismatch(
    acc,
    bias,
    mult,
    shift,
    *,
    zp,
    bits,
    signed,
    mode,
    relu=False,
    clip_lo=None,
    clip_hi=None,
    mult_bits=32,
    frac=0,
    ref_mult=None,
    ref_shift=None,
):
    """Number of outputs of `rescale(mode)` that differ from the `rne` reference.

    The reference uses (ref_mult, ref_shift) when given (e.g. the 32-bit multipliers of the same
    real scales, to measure the cost of a 16-bit rescale), else the same (mult, shift).
    """
    kw = {
        "zp": zp,
        "bits": bits,
        "signed": signed,
        "relu": relu,
        "clip_lo": clip_lo,
        "clip_hi": clip_hi,
        "frac": frac,
    }
    y = rescale(acc, bias, mult, shift, mode=mode, mult_bits=mult_bits, **kw)
    if ref_mult is None:
        ref_mult, ref_shift, ref_bits = mult, shift, mult_bits
    else:
        ref_bits = 32
    y_ref = rescale(acc, bias, ref_mult, ref_shift, mode="rne", mult_bits=ref_bits, **kw)
    return int(np.count_nonzero(y != y_ref))


def quantize_multiplier(real, mult_bits=32):
    """Fixed-point form (mult, shift) of real multiplier(s) >= 0, like TFLite QuantizeMultiplier.

    real ~= mult * 2**-shift with mult in [2**(mult_bits-2), 2**(mult_bits-1)) (normalised,
    rounded half up), shift = the total right shift in 0..62. real == 0, or real < 2**-62 after
    rounding, gives (0, 0). Vectorised: arrays in, int64 arrays of the same shape out; a Python
    scalar in gives Python ints out. Relative error <= 2**-(mult_bits-1).
    """
    mult_bits = check_mult_bits(mult_bits)
    r = np.asarray(real, np.float64)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise AccelsimError("real multipliers must be finite and >= 0")
    q, e = np.frexp(r)  # r = q * 2**e, q in [0.5, 1)
    m = np.floor(q * float(1 << (mult_bits - 1)) + 0.5).astype(np.int64)
    carry = m == (1 << (mult_bits - 1))
    m = np.where(carry, m >> 1, m)
    e = e.astype(np.int64) + carry
    shift = (mult_bits - 1) - e
    if np.any((shift < 0) & (r > 0)):
        raise HardwareLimitError(
            f"real multiplier too large for a {mult_bits}-bit multiplier with shift >= 0: "
            f"max {float(r.max())!r}",
            "rescale multiplier width",
        )
    zero = (r == 0) | (shift > MAX_SHIFT)
    m = np.where(zero, 0, m)
    shift = np.where(zero, 0, shift)
    if np.ndim(real) == 0 and not isinstance(real, np.ndarray):
        return int(m), int(shift)
    return m, shift


__all__ = [
    "ROUND_MODES",
    "check_frac",
    "count_mismatch",
    "quantize_multiplier",
    "requantize_ref",
    "requantize_scalar",
    "rescale",
    "rescale_ref",
    "rounding_divide_by_pot_ref",
    "rshift_round_ref",
    "rshift_round_scalar",
    "srdhm_ref",
    "srdhm_scalar",
]
