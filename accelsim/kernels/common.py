"""Argument checks shared by the integer datapath kernels.

Value ranges, storage dtypes and the int32 bounds are the machine's numeric facts, defined in
`accelsim.numeric`.
"""

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.jit import jit_loaded, lazy_njit
from accelsim.numeric import (
    ELEMENT_MAX_BITS,
    INT32_MAX,
    INT32_MIN,
    check_bits,
    sign_mode,
    value_range,
)


def output_range(bits, signed, zp=0, relu=False, clip_lo=None, clip_hi=None):
    """Inclusive (lo, hi) clamp range of a `bits`-bit output.

    The range of the output type, tightened by a fused ReLU (lo >= zp, the real zero) and by an
    optional clip [clip_lo, clip_hi] given in output integer units (ReLU6 and the like).
    """
    bits = check_bits(bits, ELEMENT_MAX_BITS, "output bits")
    lo, hi = value_range(bits, sign_mode(signed))
    if not lo <= zp <= hi:
        raise AccelsimError(f"zero point {zp} is outside the {bits}-bit output range [{lo}, {hi}]")
    if relu:
        lo = max(lo, int(zp))
    if clip_lo is not None:
        lo = max(lo, int(clip_lo))
    if clip_hi is not None:
        hi = min(hi, int(clip_hi))
    if lo > hi:
        raise AccelsimError(f"empty output range [{lo}, {hi}] after relu/clip")
    return lo, hi


@lazy_njit(cache=True)
def _minmax_kernel(x):
    lo = x[0]
    hi = x[0]
    for v in x:
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


def minmax(x):
    """(min, max) of a non-empty integer array as Python ints: in one compiled pass once Numba
    is loaded, else two NumPy reductions (a check never loads Numba on its own)."""
    if not jit_loaded():
        return int(x.min()), int(x.max())
    lo, hi = _minmax_kernel(x.reshape(-1))
    return int(lo), int(hi)


def as_int_array(x, name):
    """Return `x` as a numpy integer array; raise AccelsimError for float or object data."""
    x = np.asarray(x)
    if x.dtype.kind not in "iub":
        raise AccelsimError(f"{name} must be an integer array, got dtype {x.dtype}")
    return x


def check_operand(x, name, bits, mode):
    """Check that every value of integer array `x` fits `bits` bits in `mode`.

    Returns (lo, hi) = the actual min and max values of `x` as Python ints ((0, 0) when empty)
    so callers can bound products without another pass. Raises AccelsimError naming `name`.
    """
    x = as_int_array(x, name)
    lo_ok, hi_ok = value_range(bits, mode)
    if x.size == 0:
        return 0, 0
    lo, hi = minmax(x)
    if lo < lo_ok or hi > hi_ok:
        bad = lo if lo < lo_ok else hi
        idx = np.unravel_index(int(np.argmax(x == bad)), x.shape)
        raise AccelsimError(
            f"{name}[{', '.join(map(str, idx))}] = {bad} is outside the {bits}-bit {mode} "
            f"range [{lo_ok}, {hi_ok}]"
        )
    if mode == "bipolar" and np.any(x == 0):
        idx = np.unravel_index(int(np.argmax(x == 0)), x.shape)
        raise AccelsimError(
            f"{name}[{', '.join(map(str, idx))}] = 0 but bipolar values are -1 or +1"
        )
    return lo, hi


def as_int32(x, name):
    """Return integer array `x` as int32, checking that its values fit int32 (no silent wrap)."""
    x = as_int_array(x, name)
    if x.dtype == np.int32:
        return x
    lo, hi = minmax(x) if x.size else (0, 0)
    if lo < INT32_MIN or hi > INT32_MAX:
        raise AccelsimError(f"{name} has values outside the int32 range")
    return x.astype(np.int32)


def per_channel(p, n, name, lo, hi):
    """Broadcast a scalar or length-`n` integer parameter to an int64 array of length `n`.

    Values must lie in [lo, hi]; raises AccelsimError naming the parameter otherwise.
    """
    arr = as_int_array(p, name).astype(np.int64)
    if arr.ndim == 0:
        arr = np.full(n, arr, np.int64)
    elif arr.shape != (n,):
        raise AccelsimError(f"{name} must be a scalar or have shape ({n},), got {arr.shape}")
    a_lo, a_hi = minmax(arr) if n else (lo, hi)
    if a_lo < lo or a_hi > hi:
        raise AccelsimError(f"{name} values must lie in [{lo}, {hi}]")
    return np.ascontiguousarray(arr)


def pair(v, name):
    """Return an (int, int) pair from an int or a 2-sequence (stride, dilation, kernel size)."""
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    v = tuple(int(t) for t in v)
    if len(v) != 2 or min(v) < 1:
        raise AccelsimError(f"{name} must be a positive int or a pair of them, got {v}")
    return v
