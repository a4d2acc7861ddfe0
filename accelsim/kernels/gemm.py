"""MATMUL unit datapath: exact low-bit integer GEMM with an int32 accumulator, and im2col.

``gemm(a, w, acc)`` returns ``acc + a @ w`` as int32 [M, N] for a [M, K] and w [K, N] holding
1..8-bit signed, unsigned or bipolar values at their real value. The accumulator of element
(m, n) is modelled as adding the products in k order, ``s_0 = acc[m, n]``,
``s_{k+1} = s_k + a[m, k] * w[k, n]``. If any s_k leaves the int32 range, ``overflow="error"``
raises AccumulatorOverflow (first such element in row-major order, with its k and exact value)
and ``overflow="wrap"`` returns the sum mod 2**32 as a two's-complement int32 adder would.

Fast path (bit-exact). "error" mode first checks the cheap bound |a|max*|w|max*K + |acc|max <
2**31: if it holds nothing can overflow. Only when it fails is a per-element bound
|acc| + |a| @ |w| computed and, for just the elements whose bound exceeds int32, the partial
sums replayed in k order in int64. The sum itself is then computed exactly mod 2**32 (so it is
also right for "wrap"): small tiles (M*N*K <= SMALL_GEMM_MACS) by a one-thread Numba kernel
with int32 accumulators once Numba is loaded; larger ones (and small ones before that) by
float32 BLAS on K-blocks small enough that every partial sum has magnitude <= 2**24 (every
float32 sum is then an exact integer), each block converted to int32 and the blocks summed in
wrapping int32. So a large GEMM never needs Numba (start-up of a model build).

Dense conv is implicit GEMM: `im2col(patch, ...)` turns one NHWC input patch [ih, iw, cin]
(already padded) into [oh*ow, kh*kw*cin] with K ordered (kh, kw, cin), cin fastest: one strided
copy per kernel tap.
"""

import threading

import numpy as np

from accelsim.errors import AccelsimError, AccumulatorOverflow
from accelsim.jit import jit_loaded, lazy_njit
from accelsim.kernels.common import as_int32, as_int_array, check_operand, minmax, pair
from accelsim.numeric import INT32_MAX, INT32_MIN, MAC_MAX_BITS, check_bits

EXACT_F32 = 2**24  # every integer of magnitude <= 2**24 is exact in float32
OVERFLOW_MODES = ("error", "wrap")
SMALL_GEMM_MACS = 1 << 22  # up to this many MACs one Numba thread beats waking BLAS threads


def _check_gemm_args(a, w, acc, a_bits, w_bits, a_mode, w_mode, overflow):
    a = as_int_array(a, "a")
    w = as_int_array(w, "w")
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise AccelsimError(f"gemm needs a [M, K] and w [K, N], got {a.shape} and {w.shape}")
    for name, bits in (("a_bits", a_bits), ("w_bits", w_bits)):
        check_bits(bits, MAC_MAX_BITS, f"gemm {name}")
    if overflow not in OVERFLOW_MODES:
        raise AccelsimError(f"gemm overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    a_lo, a_hi = check_operand(a, "a", a_bits, a_mode)
    w_lo, w_hi = check_operand(w, "w", w_bits, w_mode)
    shape = (a.shape[0], w.shape[1])
    if acc is None:
        acc = np.zeros(shape, np.int32)
    else:
        acc = as_int32(acc, "acc")
        if acc.shape != shape:
            raise AccelsimError(f"gemm acc must have shape {shape}, got {acc.shape}")
    amax = max(-a_lo, a_hi)
    wmax = max(-w_lo, w_hi)
    return a, w, acc, amax, wmax


def _overflow_message(m, n, k, value):
    return (
        f"int32 accumulator overflow at element ({m}, {n}) after adding k={k}: "
        f"partial sum {value} is outside [{INT32_MIN}, {INT32_MAX}]"
    )


def gemm_ref(a, w, acc=None, *, a_bits, w_bits, a_mode="signed", w_mode="signed", overflow="error"):
    """NumPy definition of GEMM: acc + a @ w as int32 [M, N], summed in k order in int64.

    Same arguments and result as `gemm`; every partial sum is checked (see module docstring).
    """
    a, w, acc, _, _ = _check_gemm_args(a, w, acc, a_bits, w_bits, a_mode, w_mode, overflow)
    s = acc.astype(np.int64)
    first_k = np.full(s.shape, -1, np.int64)
    first_v = np.zeros(s.shape, np.int64)
    a64, w64 = a.astype(np.int64), w.astype(np.int64)
    for k in range(a.shape[1]):
        s += a64[:, k, None] * w64[None, k, :]
        new = (first_k < 0) & ((s < INT32_MIN) | (s > INT32_MAX))
        first_k[new] = k
        first_v[new] = s[new]
    if overflow == "error" and np.any(first_k >= 0):
        m, n = np.argwhere(first_k >= 0)[0]
        raise AccumulatorOverflow(_overflow_message(m, n, first_k[m, n], first_v[m, n]))
    return (((s - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN).astype(np.int32)


_WORKSPACE = threading.local()  # reused float32 buffers: fresh pages cost as much as the copy
WORKSPACE_MAX_ELEMS = 1 << 24  # larger operands get fresh buffers, so idle memory stays bounded


def _buffer(name, shape):
    n = int(np.prod(shape))
    if n > WORKSPACE_MAX_ELEMS:
        return np.empty(shape, np.float32)
    buf = getattr(_WORKSPACE, name, None)
    if buf is None or buf.size < n:
        buf = np.empty(max(n, 1 << 16), np.float32)
        setattr(_WORKSPACE, name, buf)
    return buf[:n].reshape(shape)


@lazy_njit(cache=True)
def _gemm_int32(a, wt, out):
    """out += a @ wt.T with int32 accumulators (wrap mod 2**32, so the order of the additions
    does not matter), one thread; for small tiles, where waking BLAS threads costs more than
    the arithmetic. wt is w transposed ([N, K], contiguous): each output element is a dot
    product along k, computed for 2 rows x 2 columns at a time so that every loaded a and w
    value is used twice. The explicit int32 casts keep the products and sums 32 bits wide
    (Numba widens integer arithmetic to int64 otherwise, at half the vector width)."""
    M, K = a.shape
    N = wt.shape[0]
    for i0 in range(0, M, 2):
        i1 = min(i0 + 1, M - 1)
        for j0 in range(0, N, 2):
            j1 = min(j0 + 1, N - 1)
            s00 = np.int32(0)
            s01 = np.int32(0)
            s10 = np.int32(0)
            s11 = np.int32(0)
            for k in range(K):
                x0 = np.int32(a[i0, k])
                x1 = np.int32(a[i1, k])
                y0 = np.int32(wt[j0, k])
                y1 = np.int32(wt[j1, k])
                s00 = np.int32(s00 + np.int32(x0 * y0))
                s01 = np.int32(s01 + np.int32(x0 * y1))
                s10 = np.int32(s10 + np.int32(x1 * y0))
                s11 = np.int32(s11 + np.int32(x1 * y1))
            out[i0, j0] = np.int32(out[i0, j0] + s00)
            if j1 != j0:
                out[i0, j1] = np.int32(out[i0, j1] + s01)
            if i1 != i0:
                out[i1, j0] = np.int32(out[i1, j0] + s10)
                if j1 != j0:
                    out[i1, j1] = np.int32(out[i1, j1] + s11)


def _blocked_sum(a, w, max_abs_product, out):
    """out += a @ w, exact mod 2**32 (out int32) or exact (out int64), by float32 K-blocks."""
    M, K = a.shape
    N = w.shape[1]
    if out is None:
        out = np.zeros((M, N), np.int32)
    if K == 0 or max_abs_product == 0:
        return out
    kb = max(1, EXACT_F32 // max_abs_product)
    a32 = _buffer("a", a.shape)
    w32 = _buffer("w", w.shape)
    part = _buffer("part", (M, N))
    np.copyto(a32, a)
    np.copyto(w32, w)
    for k0 in range(0, K, kb):
        np.matmul(a32[:, k0 : k0 + kb], w32[k0 : k0 + kb], out=part)
        if out.dtype == np.int32:  # |part| <= 2**24: exact in int32; the int32 sum wraps
            out += part.astype(np.int32)
        else:
            out += part.astype(out.dtype)
    return out


@lazy_njit(cache=True)
def _first_overflow(a, wt, acc, rows, cols):
    """Replay s_k in k order for the listed elements; return (index, k, value) of the first
    element that leaves int32, or (-1, -1, 0)."""
    K = a.shape[1]
    for i in range(rows.shape[0]):
        m, n = rows[i], cols[i]
        s = np.int64(acc[m, n])
        for k in range(K):
            s += np.int64(a[m, k]) * np.int64(wt[n, k])
            if s < INT32_MIN or s > INT32_MAX:
                return i, k, s
    return -1, -1, np.int64(0)


def gemm(a, w, acc=None, *, a_bits, w_bits, a_mode="signed", w_mode="signed", overflow="error"):
    """Exact integer GEMM of the matmul unit: int32 [M, N] = acc + a @ w.

    a: [M, K], w: [K, N] integer arrays (int8/uint8 storage) holding `a_bits`/`w_bits`-bit values
    (1..8) in mode "signed", "unsigned" or "bipolar" (+-1). acc: int32 [M, N] or None (zeros).
    overflow: "error" raises AccumulatorOverflow if any partial sum leaves int32; "wrap" wraps
    mod 2**32. Raises AccelsimError naming the operand when a value is out of range.
    """
    acc_given = acc is not None
    a, w, acc, amax, wmax = _check_gemm_args(a, w, acc, a_bits, w_bits, a_mode, w_mode, overflow)
    K = a.shape[1]
    acc_lo, acc_hi = minmax(acc) if acc_given and acc.size else (0, 0)
    acc_max = max(-acc_lo, acc_hi)
    if overflow == "error" and amax * wmax * K + acc_max > INT32_MAX:
        # Per-element bound: every partial sum of (m, n) lies within |acc| + (|a| @ |w|)[m, n].
        bound = np.abs(acc.astype(np.int64))
        _blocked_sum(np.abs(a.astype(np.int16)), np.abs(w.astype(np.int16)), amax * wmax, bound)
        rows, cols = np.nonzero(bound > INT32_MAX)
        if rows.size:
            wt = np.ascontiguousarray(w.T)
            i, k, value = _first_overflow(a, wt, acc, rows.astype(np.int64), cols.astype(np.int64))
            if i >= 0:
                raise AccumulatorOverflow(_overflow_message(rows[i], cols[i], k, value))
    M, N = acc.shape
    if M * N * K <= SMALL_GEMM_MACS and jit_loaded():
        out = acc.copy() if acc_given else np.zeros((M, N), np.int32)
        with np.errstate(over="ignore"):  # int32 wraps; matters only under NUMBA_DISABLE_JIT
            _gemm_int32(a, np.ascontiguousarray(w.T), out)
        return out
    return _blocked_sum(a, w, amax * wmax, acc.copy() if acc_given else None)


def _conv_out_shape(patch, kh, kw, stride, dilation):
    patch = as_int_array(patch, "patch")
    if patch.ndim != 3:
        raise AccelsimError(f"im2col patch must be [ih, iw, cin], got shape {patch.shape}")
    kh, kw = pair((kh, kw), "kernel size")
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    ih, iw, _ = patch.shape
    oh = (ih - dh * (kh - 1) - 1) // sh + 1
    ow = (iw - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise AccelsimError(
            f"im2col patch {ih}x{iw} is smaller than the dilated {kh}x{kw} kernel (dilation "
            f"{dh}x{dw})"
        )
    return patch, kh, kw, sh, sw, dh, dw, oh, ow


def im2col_ref(patch, kh, kw, stride=1, dilation=1):
    """NumPy definition of im2col: [ih, iw, cin] -> [oh*ow, kh*kw*cin], K ordered (kh, kw, cin).

    Row p = oy*ow + ox holds patch[oy*sh + i*dh, ox*sw + j*dw, :] for i < kh, j < kw. The patch
    is already padded (LOAD pads); stride and dilation are ints or (h, w) pairs.
    """
    patch, kh, kw, sh, sw, dh, dw, oh, ow = _conv_out_shape(patch, kh, kw, stride, dilation)
    rows = []
    for oy in range(oh):
        for ox in range(ow):
            taps = [
                patch[oy * sh + i * dh, ox * sw + j * dw, :] for i in range(kh) for j in range(kw)
            ]
            rows.append(np.concatenate(taps))
    return np.stack(rows).astype(patch.dtype)


def im2col(patch, kh, kw, stride=1, dilation=1):
    """im2col by one strided copy per kernel tap; bit-exact with `im2col_ref` (same arguments,
    same dtype out)."""
    patch, kh, kw, sh, sw, dh, dw, oh, ow = _conv_out_shape(patch, kh, kw, stride, dilation)
    out = np.empty((oh, ow, kh, kw, patch.shape[2]), patch.dtype)
    for i in range(kh):
        for j in range(kw):
            y, x = i * dh, j * dw
            out[:, :, i, j] = patch[y : y + (oh - 1) * sh + 1 : sh, x : x + (ow - 1) * sw + 1 : sw]
    return out.reshape(oh * ow, kh * kw * patch.shape[2])


def gemm_conv(
    patch,
    w,
    acc=None,
    *,
    kh,
    kw,
    stride=1,
    dilation=1,
    a_bits,
    w_bits,
    a_mode="signed",
    w_mode="signed",
    overflow="error",
):
    """Implicit-GEMM conv of one NHWC patch: gemm(im2col(patch, ...), w, acc) -> int32 [oh*ow, N].

    w: [kh*kw*cin, N] with K ordered (kh, kw, cin). Other arguments as in `gemm` / `im2col`.
    """
    cols = im2col(patch, kh, kw, stride, dilation)
    return gemm(
        cols, w, acc, a_bits=a_bits, w_bits=w_bits, a_mode=a_mode, w_mode=w_mode, overflow=overflow
    )


__all__ = ["gemm", "gemm_conv", "gemm_ref", "im2col", "im2col_ref"]
