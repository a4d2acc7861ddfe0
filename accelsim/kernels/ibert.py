"""VECTOR unit datapath for a transformer's nonlinearities, in integers only, after I-BERT.

Source: S. Kim, A. Gholami, Z. Yao, M. W. Mahoney and K. Keutzer, "I-BERT: Integer-only BERT
Quantization", ICML 2021. The paper removes floats from softmax, GELU and layer norm: exp is
split into a power of two (a shift) and exp on (-ln 2, 0], which a second-order polynomial
approximates; erf (in GELU) is a clipped second-order polynomial; the standard deviation is an
integer square root found by Newton's iteration. The paper's constants are used here:

- exp(p) ~= 0.3585 * (p + 1.353)^2 + 0.344 for p in (-ln 2, 0];
- erf(u) ~= sgn(u) * (1 - 0.2888 * (min(|u|, 1.769) - 1.769)^2).

The integer definitions below are this simulator's, written for a hardware datapath: every
intermediate has a stated bound (int64 throughout, never overflowing), every rounding is a
floor (`>>`, `//` on the value written) or the rescale unit's rounding. The integer constants
for a given input scale (q_ln2, q_b, q_c, the pre-shift k, the output multipliers) are made by
`accelsim.ir.transformer_params`; each op takes them as plain integers.

softmax, along the last axis (one row of c < 2^16 elements; output unsigned, scale 2^-bits)::

    d = (x - max(row)) >> k                   # k: pre-shift chosen so that e < 2^16
    d = max(d, -30 * q_ln2)                   # beyond 30 ln 2 below the max, e is 0 anyway
    z = (-d) // q_ln2 ; p = d + z * q_ln2     # d = p - z * q_ln2 with p in (-q_ln2, 0]
    e = ((p + q_b)^2 + q_c) >> z              # exp(d * S') ~= e * 0.3585 * S'^2, S' = S * 2^k
    y = min((e * (2^48 // sum(e))) >> (48 - bits), 2^bits - 1)

gelu, elementwise (x with zero point zx, scale S; T = S' / sqrt(2), S' = S * 2^k)::

    q = (x - zx) >> k                         # k: pre-shift chosen so that |G| < 2^31
    P = q_c - (min(|q|, q_b) - q_b)^2         # erf(q * T) ~= sgn(q) * P / q_c
    G = sat_int32(q * (sgn(q) * P + q_c))     # GELU(q * S') ~= G * S' / (2 q_c)
    y = clamp(zp + R(G; m, t))                # R: the rescale unit's (rounding mode, mult_bits)

layer norm, along the last axis (one row of c elements, |x| <= 2^16)::

    mu  = (2 * sum(x) + c) // (2 * c)         # the mean, rounded half up
    d   = x - mu
    std = isqrt(sum(d^2))                     # sqrt(c) * the standard deviation; |d| <= std
    y1  = (d * (2^31 // max(std, 1))) >> 1    # d / std * 2^30, |y1| <= 2^30
    y   = clamp(zp + o_c + RS(y1 * g_c; t))   # RS: rounding right shift of the rescale mode

isqrt(n) (I-BERT's Newton iteration on integers): x = 2^ceil(bitlen(n) / 2), then repeat
x' = (x + n // x) >> 1 while x' < x. It returns floor(sqrt(n)) after at most ISQRT_DIVISIONS
divisions for n < 2^62 (tests/kernels/test_ibert.py checks the bound); the vector unit's cost
charges that many.
"""

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.jit import lazy_njit
from accelsim.kernels.common import as_int_array, minmax, output_range, per_channel
from accelsim.kernels.rescale import (
    MAX_SHIFT,
    check_mult_bits,
    mode_code,
    requantize_ref,
    requantize_scalar,
    rshift_round_ref,
    rshift_round_scalar,
)
from accelsim.numeric import INT32_MAX, INT32_MIN, sign_mode, storage_dtype

EXP_MAX_Z = 30  # largest power-of-two shift of i-exp (more is below 2^-30 of the row max)
EXP_MAX_BITS = 16  # i-exp values are below 2^16 (I-BERT requantizes them to 16 bits too)
SOFTMAX_FRAC_BITS = 48  # 2^48 // sum(e): at least 16 fraction bits for rows of < 2^16
LN_FRAC_BITS = 31  # layer norm: 2^31 // std, halved: |y1| <= 2^30
ROW_MAX = 1 << 16  # elements per row of softmax / layer norm (the ALU's 16-bit c field)
X_MAX = 1 << 16  # |x| bound of the inputs (tensors of at most 16 bits)
ISQRT_DIVISIONS = 7  # most divisions isqrt needs for n < 2^62
GELU_QB_MAX = 1 << 16  # |q_b| bound of gelu (keeps (min(|q|, q_b) - q_b)^2 below 2^32)
GELU_QC_MAX = (1 << 31) - 1  # q_c bound of gelu (an int32 PARAM word; q * (P + q_c) < 2^50)


def _rows(x, what):
    x = as_int_array(x, f"{what} x")
    if x.ndim == 0 or x.shape[-1] < 1 or x.shape[-1] >= ROW_MAX:
        raise AccelsimError(f"{what}: rows must hold 1..{ROW_MAX - 1} elements, got {x.shape}")
    if x.size:
        lo, hi = minmax(x)
        if lo < -X_MAX or hi > X_MAX:
            raise AccelsimError(f"{what}: inputs must lie in [-2^16, 2^16], got [{lo}, {hi}]")
    return x


def _check_int(v, name, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise AccelsimError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
    return int(v)


def isqrt_steps(n: int) -> tuple[int, int]:
    """(floor(sqrt(n)), divisions used) by I-BERT's integer Newton iteration, n in [0, 2^62)."""
    n = _check_int(n, "isqrt n", 0, (1 << 62) - 1)
    if n == 0:
        return 0, 0
    x, divisions = 1 << ((n.bit_length() + 1) // 2), 0
    while True:
        y = (x + n // x) >> 1
        divisions += 1
        if y >= x:
            return x, divisions
        x = y


@lazy_njit(cache=True)
def _isqrt(n):
    if n == 0:
        return np.int64(0)
    b = 0
    while (np.int64(1) << b) <= n:  # bit length (n < 2^62)
        b += 1
    x = np.int64(1) << ((b + 1) // 2)
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


def _prepare_softmax(x, shift, q_ln2, q_b, q_c, bits):
    x = _rows(x, "softmax")
    shift = _check_int(shift, "softmax shift", 0, 31)
    q_ln2 = _check_int(q_ln2, "softmax q_ln2", 1, 1 << 20)
    q_b = _check_int(q_b, "softmax q_b", 0, 1 << 20)
    q_c = _check_int(q_c, "softmax q_c", 0, 1 << 20)
    bits = _check_int(bits, "softmax bits", 1, 16)
    peak = max(q_b, q_ln2 - 1 - q_b) ** 2 + q_c  # largest (p + q_b)^2 + q_c for p in (-q_ln2, 0]
    if peak >= 1 << EXP_MAX_BITS or q_b * q_b + q_c < 1:
        raise AccelsimError(
            f"softmax constants q_ln2={q_ln2}, q_b={q_b}, q_c={q_c} give exp values outside "
            f"1..2^{EXP_MAX_BITS} - 1"
        )
    return x, shift, q_ln2, q_b, q_c, bits


def softmax_ref(x, *, shift, q_ln2, q_b, q_c, bits):
    """NumPy definition of the integer softmax along the last axis (module docstring).

    x: integer array [..., c]; returns the unsigned `bits`-bit probabilities (scale 2^-bits)
    in the storage dtype of that width, same shape."""
    x, shift, q_ln2, q_b, q_c, bits = _prepare_softmax(x, shift, q_ln2, q_b, q_c, bits)
    v = x.astype(np.int64)
    d = (v - v.max(axis=-1, keepdims=True)) >> shift
    d = np.maximum(d, -EXP_MAX_Z * q_ln2)
    z = (-d) // q_ln2
    p = d + z * q_ln2
    e = ((p + q_b) ** 2 + q_c) >> z
    factor = (np.int64(1) << SOFTMAX_FRAC_BITS) // e.sum(axis=-1, keepdims=True)
    y = np.minimum((e * factor) >> (SOFTMAX_FRAC_BITS - bits), (1 << bits) - 1)
    return y.astype(storage_dtype(bits, "unsigned"))


@lazy_njit(cache=True)
def _softmax_kernel(x, shift, q_ln2, q_b, q_c, bits, out):
    rows, c = x.shape
    e = np.empty(c, np.int64)
    top = (np.int64(1) << bits) - 1
    for r in range(rows):
        m = x[r, 0]
        for j in range(1, c):
            m = max(m, x[r, j])
        total = np.int64(0)
        for j in range(c):
            d = max((np.int64(x[r, j]) - m) >> shift, -EXP_MAX_Z * q_ln2)
            z = (-d) // q_ln2
            p = d + z * q_ln2
            e[j] = ((p + q_b) * (p + q_b) + q_c) >> z
            total += e[j]
        factor = (np.int64(1) << SOFTMAX_FRAC_BITS) // total
        for j in range(c):
            out[r, j] = min((e[j] * factor) >> (SOFTMAX_FRAC_BITS - bits), top)


def softmax(x, *, shift, q_ln2, q_b, q_c, bits):
    """Numba integer softmax; bit-exact with `softmax_ref` (same arguments and result)."""
    x, shift, q_ln2, q_b, q_c, bits = _prepare_softmax(x, shift, q_ln2, q_b, q_c, bits)
    x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).astype(np.int64))
    out = np.empty(x2.shape, np.int64)
    _softmax_kernel(x2, shift, q_ln2, q_b, q_c, bits, out)
    return out.reshape(x.shape).astype(storage_dtype(bits, "unsigned"))


def _prepare_gelu(x, zx, shift, q_b, q_c, mult, t, zp, bits, signed, mode, mult_bits):
    x = as_int_array(x, "gelu x")
    if x.size:
        lo, hi = minmax(x)
        if lo < -X_MAX or hi > X_MAX:
            raise AccelsimError(f"gelu: inputs must lie in [-2^16, 2^16], got [{lo}, {hi}]")
    mult_bits = check_mult_bits(mult_bits)
    mode_code(mode)
    vals = (
        _check_int(zx, "gelu zx", -X_MAX, X_MAX),
        _check_int(shift, "gelu shift", 0, 31),
        _check_int(q_b, "gelu q_b", 0, GELU_QB_MAX),
        _check_int(q_c, "gelu q_c", 0, GELU_QC_MAX),
        _check_int(mult, "gelu mult", 0, (1 << (mult_bits - 1)) - 1),
        _check_int(t, "gelu t", 0, MAX_SHIFT),
    )
    return (x, *vals, *output_range(bits, signed, int(zp)), mult_bits)


def gelu_ref(x, *, zx, shift, q_b, q_c, mult, t, zp, bits, signed, mode, mult_bits=32):
    """NumPy definition of the integer GELU (module docstring); R is
    `accelsim.kernels.rescale.requantize_ref` in `mode` with a `mult_bits` multiplier."""
    x, zx, shift, q_b, q_c, mult, t, lo, hi, mult_bits = _prepare_gelu(
        x, zx, shift, q_b, q_c, mult, t, zp, bits, signed, mode, mult_bits
    )
    q = (x.astype(np.int64) - zx) >> shift
    p = q_c - (np.minimum(np.abs(q), q_b) - q_b) ** 2
    g = np.clip(q * (np.sign(q) * p + q_c), INT32_MIN, INT32_MAX)
    y = int(zp) + requantize_ref(g, mult, t, mode, mult_bits)
    return np.clip(y, lo, hi).astype(storage_dtype(bits, sign_mode(signed)))


@lazy_njit(cache=True)
def _gelu_kernel(x, zx, shift, q_b, q_c, mult, t, zp, lo, hi, mode, mult_bits, out):
    for i in range(x.shape[0]):
        q = (np.int64(x[i]) - zx) >> shift
        a = min(abs(q), q_b) - q_b
        p = q_c - a * a
        s = np.int64(1) if q > 0 else (np.int64(-1) if q < 0 else np.int64(0))
        g = min(max(q * (s * p + q_c), np.int64(INT32_MIN)), np.int64(INT32_MAX))
        out[i] = min(max(zp + requantize_scalar(g, mult, t, mode, mult_bits), lo), hi)


def gelu(x, *, zx, shift, q_b, q_c, mult, t, zp, bits, signed, mode, mult_bits=32):
    """Numba integer GELU; bit-exact with `gelu_ref` (same arguments and result)."""
    x, zx, shift, q_b, q_c, mult, t, lo, hi, mult_bits = _prepare_gelu(
        x, zx, shift, q_b, q_c, mult, t, zp, bits, signed, mode, mult_bits
    )
    out = np.empty(x.size, np.int64)
    args = (zx, shift, q_b, q_c, mult, t, int(zp), lo, hi, mode_code(mode), mult_bits)
    _gelu_kernel(x.reshape(-1).astype(np.int64), *args, out)
    return out.reshape(x.shape).astype(storage_dtype(bits, sign_mode(signed)))


def _prepare_layernorm(x, gain, offset, t, zp, bits, signed, mode):
    x = _rows(x, "layernorm")
    c = x.shape[-1]
    gain = per_channel(gain, c, "layernorm gain", INT32_MIN + 1, INT32_MAX)
    offset = per_channel(offset, c, "layernorm offset", INT32_MIN, INT32_MAX)
    mode_code(mode)
    t = _check_int(t, "layernorm t", 0, MAX_SHIFT)
    return x, gain, offset, t, *output_range(bits, signed, int(zp))


def layernorm_ref(x, *, gain, offset, t, zp, bits, signed, mode):
    """NumPy definition of the integer layer norm along the last axis (module docstring).

    gain (|g_c| < 2^31), offset (int32): scalars or one per channel; t: the common shift."""
    x, gain, offset, t, lo, hi = _prepare_layernorm(x, gain, offset, t, zp, bits, signed, mode)
    v = x.astype(np.int64)
    c = v.shape[-1]
    mu = (2 * v.sum(axis=-1, keepdims=True) + c) // (2 * c)
    d = v - mu
    var = (d * d).sum(axis=-1)
    std = np.array([isqrt_ref(int(n)) for n in var.reshape(-1)], np.int64)
    factor = (np.int64(1) << LN_FRAC_BITS) // np.maximum(std, 1).reshape(var.shape + (1,))
    y1 = (d * factor) >> 1
    y = int(zp) + offset + rshift_round_ref(y1 * gain, t, mode)
    return np.clip(y, lo, hi).astype(storage_dtype(bits, sign_mode(signed)))


@lazy_njit(cache=True)
def _layernorm_kernel(x, gain, offset, t, zp, lo, hi, mode, out):
    rows, c = x.shape
    for r in range(rows):
        s = np.int64(0)
        for j in range(c):
            s += x[r, j]
        mu = (2 * s + c) // (2 * c)
        var = np.int64(0)
        for j in range(c):
            d = x[r, j] - mu
            var += d * d
        factor = (np.int64(1) << LN_FRAC_BITS) // max(_isqrt(var), np.int64(1))
        for j in range(c):
            y1 = ((x[r, j] - mu) * factor) >> 1
            y = zp + offset[j] + rshift_round_scalar(y1 * gain[j], t, mode)
            out[r, j] = min(max(y, lo), hi)


def layernorm(x, *, gain, offset, t, zp, bits, signed, mode):
    """Numba integer layer norm; bit-exact with `layernorm_ref` (same arguments and result)."""
    x, gain, offset, t, lo, hi = _prepare_layernorm(x, gain, offset, t, zp, bits, signed, mode)
    x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).astype(np.int64))
    out = np.empty(x2.shape, np.int64)
    _layernorm_kernel(x2, gain, offset, t, int(zp), lo, hi, mode_code(mode), out)
    return out.reshape(x.shape).astype(storage_dtype(bits, sign_mode(signed)))


def isqrt_ref(n: int) -> int:
    """NumPy-side definition of the integer square root: `isqrt_steps(n)[0]`."""
    return isqrt_steps(n)[0]


def isqrt(n: int) -> int:
    """Numba integer square root; equal to `isqrt_ref(n)`."""
    return int(_isqrt(np.int64(_check_int(n, "isqrt n", 0, (1 << 62) - 1))))


__all__ = [
    "ISQRT_DIVISIONS",
    "gelu",
    "gelu_ref",
    "isqrt",
    "isqrt_ref",
    "isqrt_steps",
    "layernorm",
    "layernorm_ref",
    "softmax",
    "softmax_ref",
]
