"""VECTOR unit datapath: elementwise integer ops and pooling windows on NHWC activations.

Rounding uses the rescale unit's definitions (`accelsim.kernels.rescale`), modes single (half
up), tflite (half away from zero) and rne (half to even):

- ``add``: ``y = clamp(zp + RS((a - za)*ma + (b - zb)*mb; t))`` where RS(v; t) is the rounding
  right shift v / 2**t of the mode, with one common shift t. The front end turns the input
  scales into integers: ma ~= (s_a/s_out) * 2**t, mb ~= (s_b/s_out) * 2**t
  (`add_multipliers`). The sum is exact in int64.
- ``maximum`` / ``minimum`` / ``clip``: elementwise, exact.
- ``shift``: ``y = clamp(RS(x; n))`` for n > 0 (rounding right shift, half up by default),
  ``clamp(x << -n)`` for n < 0 (saturating left shift).
- ``maxpool``: max over the window's in-bounds elements; padding never wins (it is skipped).
- ``avgpool``: ``y = clamp(zp + R(sum_window (x - zp_in); mult[c], shift[c]))`` where c is the
  window's in-bounds element count (padding is not counted, as TFLite and ONNX's default
  count_include_pad=0) and R is the rescale unit's R; (mult[c], shift[c]) ~= scale / c
  (`avgpool_multipliers`). ``global_avgpool`` is the whole-plane window.

Tensors: ints at their real value; outputs int8/uint8 up to 8 bits, int32 above.
"""

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.jit import lazy_njit
from accelsim.kernels.common import as_int_array, output_range
from accelsim.kernels.pool import (  # pooling windows live in pool.py; re-exported here
    avgpool,
    avgpool_multipliers,
    avgpool_ref,
    global_avgpool,
    global_avgpool_ref,
    maxpool,
    maxpool_ref,
)
from accelsim.kernels.rescale import (
    MAX_SHIFT,
    mode_code,
    quantize_multiplier,
    rshift_round_ref,
    rshift_round_scalar,
)
from accelsim.numeric import sign_mode, storage_dtype

MAX_ADD_MULT = 2**31  # |ma|, |mb| < 2**31 keeps (a - za)*ma + (b - zb)*mb exact in int64


def _same_shape(a, b, op):
    a, b = as_int_array(a, f"{op} a"), as_int_array(b, f"{op} b")
    if a.shape != b.shape:
        raise AccelsimError(f"{op}: operand shapes differ: {a.shape} vs {b.shape}")
    return a, b


def _check_shift(t, name, lo=0):
    if not isinstance(t, (int, np.integer)) or not lo <= t <= MAX_SHIFT:
        raise AccelsimError(f"{name} must be an integer in {lo}..{MAX_SHIFT}, got {t!r}")
    return int(t)


def _prepare_add(a, b, za, ma, zb, mb, t, zp, bits, signed, mode, relu):
    a, b = _same_shape(a, b, "add")
    for name, m in (("ma", ma), ("mb", mb)):
        if not isinstance(m, (int, np.integer)) or abs(int(m)) >= MAX_ADD_MULT:
            raise AccelsimError(f"add {name} must be an integer with |{name}| < 2**31, got {m!r}")
    mode_code(mode)
    lo, hi = output_range(bits, signed, int(zp), relu)
    return a, b, int(za), int(ma), int(zb), int(mb), _check_shift(t, "add shift t"), lo, hi


def add_ref(a, b, *, za, ma, zb, mb, t, zp, bits, signed, mode, relu=False):
    """NumPy definition of the quantized add: clamp(zp + RS((a-za)*ma + (b-zb)*mb; t))."""
    a, b, za, ma, zb, mb, t, lo, hi = _prepare_add(
        a, b, za, ma, zb, mb, t, zp, bits, signed, mode, relu
    )
    v = (a.astype(np.int64) - za) * ma + (b.astype(np.int64) - zb) * mb
    y = int(zp) + rshift_round_ref(v, t, mode)
    return np.clip(y, lo, hi).astype(storage_dtype(bits, sign_mode(signed)))


@lazy_njit(cache=True)
def _add_kernel(a, b, za, ma, zb, mb, t, zp, lo, hi, mode, out):
    for i in range(a.shape[0]):
        v = (np.int64(a[i]) - za) * ma + (np.int64(b[i]) - zb) * mb
        out[i] = min(max(zp + rshift_round_scalar(v, t, mode), lo), hi)


def add(a, b, *, za, ma, zb, mb, t, zp, bits, signed, mode, relu=False):
    """Numba quantized add; bit-exact with `add_ref` (same arguments and result)."""
    a, b, za, ma, zb, mb, t, lo, hi = _prepare_add(
        a, b, za, ma, zb, mb, t, zp, bits, signed, mode, relu
    )
    out = np.empty(a.size, np.int32)
    _add_kernel(a.ravel(), b.ravel(), za, ma, zb, mb, t, int(zp), lo, hi, mode_code(mode), out)
    return out.reshape(a.shape).astype(storage_dtype(bits, sign_mode(signed)))


def add_multipliers(real_a, real_b, mult_bits=16):
    """(ma, mb, t) for `add` from real ratios s_a/s_out and s_b/s_out (>= 0).

    t is chosen so the larger ratio gets a normalised `mult_bits` multiplier; the smaller uses
    the same t and is rounded half up (it may be less precise, or 0 if negligible).
    """
    big = max(float(real_a), float(real_b))
    if big == 0:
        return 0, 0, 0
    _, t = quantize_multiplier(big, mult_bits)
    ma = int(np.floor(float(real_a) * 2.0**t + 0.5))
    mb = int(np.floor(float(real_b) * 2.0**t + 0.5))
    return ma, mb, int(t)


def maximum_ref(a, b):
    """Elementwise max of two same-shape integer tensors (result in their common dtype)."""
    a, b = _same_shape(a, b, "maximum")
    return np.maximum(a, b)


def minimum_ref(a, b):
    """Elementwise min of two same-shape integer tensors (result in their common dtype)."""
    a, b = _same_shape(a, b, "minimum")
    return np.minimum(a, b)


@lazy_njit(cache=True)
def _minmax_kernel(a, b, take_max, out):
    for i in range(a.shape[0]):
        if take_max:
            out[i] = max(a[i], b[i])
        else:
            out[i] = min(a[i], b[i])


def _minmax(a, b, take_max, op):
    a, b = _same_shape(a, b, op)
    dt = np.result_type(a.dtype, b.dtype)
    out = np.empty(a.size, dt)
    _minmax_kernel(a.ravel().astype(dt), b.ravel().astype(dt), take_max, out)
    return out.reshape(a.shape)


def maximum(a, b):
    """Numba elementwise max; bit-exact with `maximum_ref`."""
    return _minmax(a, b, True, "maximum")


def minimum(a, b):
    """Numba elementwise min; bit-exact with `minimum_ref`."""
    return _minmax(a, b, False, "minimum")


def clip_ref(x, lo, hi):
    """Clamp integer tensor x to [lo, hi] (same dtype as x; lo <= hi within x's dtype)."""
    x = as_int_array(x, "clip x")
    info = np.iinfo(x.dtype)
    if not info.min <= int(lo) <= int(hi) <= info.max:
        raise AccelsimError(f"clip bounds [{lo}, {hi}] invalid for dtype {x.dtype}")
    return np.clip(x, int(lo), int(hi)).astype(x.dtype)


@lazy_njit(cache=True)
def _clip_kernel(x, lo, hi, out):
    for i in range(x.shape[0]):
        out[i] = min(max(np.int64(x[i]), lo), hi)


def clip(x, lo, hi):
    """Numba clamp; bit-exact with `clip_ref`."""
    x = as_int_array(x, "clip x")
    clip_ref(x[:0], lo, hi)  # validates bounds only
    out = np.empty(x.size, x.dtype)
    _clip_kernel(x.ravel(), int(lo), int(hi), out)
    return out.reshape(x.shape)


def _prepare_shift(x, n, bits, signed, mode):
    x = as_int_array(x, "shift x")
    if not isinstance(n, (int, np.integer)) or not -31 <= n <= MAX_SHIFT:
        raise AccelsimError(f"shift amount must be an integer in -31..62, got {n!r}")
    mode_code(mode)
    lo, hi = output_range(bits, signed)
    return x, int(n), lo, hi


def shift_ref(x, n, *, bits, signed, mode="single"):
    """NumPy definition of the shift op: clamp(RS(x; n)) for n >= 0, clamp(x << -n) for n < 0.

    n in -31..62. Left shifts saturate to the (bits, signed) output range (x is first clamped
    to +-2**31, which cannot change a saturated result, so x << 31 stays exact in int64).
    """
    x, n, lo, hi = _prepare_shift(x, n, bits, signed, mode)
    x64 = x.astype(np.int64)
    y = rshift_round_ref(x64, n, mode) if n >= 0 else np.clip(x64, -(2**31), 2**31) << -n
    return np.clip(y, lo, hi).astype(storage_dtype(bits, sign_mode(signed)))


@lazy_njit(cache=True)
def _shift_kernel(x, n, lo, hi, mode, out):
    for i in range(x.shape[0]):
        v = np.int64(x[i])
        if n >= 0:
            v = rshift_round_scalar(v, n, mode)
        else:
            v = min(max(v, -(np.int64(1) << 31)), np.int64(1) << 31) << -n
        out[i] = min(max(v, lo), hi)


def shift(x, n, *, bits, signed, mode="single"):
    """Numba shift op; bit-exact with `shift_ref` (same arguments and result)."""
    x, n, lo, hi = _prepare_shift(x, n, bits, signed, mode)
    out = np.empty(x.size, np.int32)
    _shift_kernel(x.ravel(), n, lo, hi, mode_code(mode), out)
    return out.reshape(x.shape).astype(storage_dtype(bits, sign_mode(signed)))


__all__ = [
    "add",
    "add_multipliers",
    "add_ref",
    "avgpool",
    "avgpool_multipliers",
    "avgpool_ref",
    "clip",
    "clip_ref",
    "global_avgpool",
    "global_avgpool_ref",
    "maximum",
    "maximum_ref",
    "maxpool",
    "maxpool_ref",
    "minimum",
    "minimum_ref",
    "shift",
    "shift_ref",
]
