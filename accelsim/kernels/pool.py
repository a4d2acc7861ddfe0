"""VECTOR unit pooling windows on NHWC integer activations (re-exported by `alu`).

Windows: output (oy, ox) covers input rows oy*sh - pad_top + [0, kh) and columns
ox*sw - pad_left + [0, kw); only in-bounds elements take part. ``pad`` is an int or the ONNX
order (top, left, bottom, right); every pad must be smaller than the kernel so that each
window holds at least one real element. Output size: oh = (H + top + bottom - kh) // sh + 1.

- maxpool: max of the in-bounds elements (padding never wins). Same dtype out.
- avgpool: ``y = clamp(zp + R(S; mult[c], shift[c]))`` with S = sat_int32(sum (x - zp_in)) over
  the c in-bounds elements (padding is not counted) and R the rescale unit's rounding
  (`accelsim.kernels.rescale.requantize_ref`). mult/shift are scalars (used for every window) or
  arrays of length kh*kw + 1 indexed by c; `avgpool_multipliers` makes them from scale / c.
- global_avgpool: one window over the whole H x W plane, output [N, 1, 1, C].
Input [N, H, W, C] or [H, W, C] (output keeps the same rank).
"""

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.jit import lazy_njit
from accelsim.kernels.common import as_int_array, output_range, pair, per_channel
from accelsim.kernels.rescale import (
    MAX_SHIFT,
    check_mult_bits,
    mode_code,
    quantize_multiplier,
    requantize_ref,
    requantize_scalar,
)
from accelsim.numeric import INT32_MAX, INT32_MIN, sign_mode, storage_dtype


def _geometry(x, kh, kw, stride, pad):
    x = as_int_array(x, "pool input")
    if x.ndim not in (3, 4):
        raise AccelsimError(f"pool input must be NHWC [N,H,W,C] or [H,W,C], got {x.shape}")
    x4 = x if x.ndim == 4 else x[None]
    kh, kw = pair((kh, kw), "pool kernel size")
    sh, sw = pair(stride, "pool stride")
    pads = (int(pad),) * 4 if isinstance(pad, (int, np.integer)) else tuple(int(p) for p in pad)
    if len(pads) != 4 or min(pads) < 0:
        raise AccelsimError(f"pool pad must be an int or (top, left, bottom, right), got {pad}")
    pt, pl, pb, pr = pads
    if max(pt, pb) >= kh or max(pl, pr) >= kw:
        raise AccelsimError(f"pool pads {pads} must be smaller than the {kh}x{kw} kernel")
    _, h, w, _ = x4.shape
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise AccelsimError(f"pool input {h}x{w} is smaller than the {kh}x{kw} window")
    return x, x4, (kh, kw, sh, sw, pt, pl, oh, ow)


def _window(g, h, w, oy, ox):
    kh, kw, sh, sw, pt, pl, _, _ = g
    y0, x0 = oy * sh - pt, ox * sw - pl
    return max(y0, 0), min(y0 + kh, h), max(x0, 0), min(x0 + kw, w)


def maxpool_ref(x, kh, kw, stride=1, pad=0):
    """NumPy definition of max pooling over in-bounds window elements (see module docstring)."""
    x, x4, g = _geometry(x, kh, kw, stride, pad)
    n, h, w, c = x4.shape
    out = np.empty((n, g[6], g[7], c), x.dtype)
    for oy in range(g[6]):
        for ox in range(g[7]):
            r0, r1, c0, c1 = _window(g, h, w, oy, ox)
            out[:, oy, ox, :] = x4[:, r0:r1, c0:c1, :].max(axis=(1, 2))
    return out if x.ndim == 4 else out[0]


@lazy_njit(cache=True)
def _maxpool_kernel(x, kh, kw, sh, sw, pt, pl, out):
    n, h, w, c = x.shape
    _, oh, ow, _ = out.shape
    for b in range(n):
        for oy in range(oh):
            y0 = oy * sh - pt
            r0, r1 = max(y0, 0), min(y0 + kh, h)
            for ox in range(ow):
                x0 = ox * sw - pl
                c0, c1 = max(x0, 0), min(x0 + kw, w)
                for ch in range(c):
                    out[b, oy, ox, ch] = x[b, r0, c0, ch]
                for r in range(r0, r1):
                    for q in range(c0, c1):
                        for ch in range(c):
                            out[b, oy, ox, ch] = max(out[b, oy, ox, ch], x[b, r, q, ch])


def maxpool(x, kh, kw, stride=1, pad=0):
    """Numba max pooling; bit-exact with `maxpool_ref` (same arguments and result)."""
    x, x4, g = _geometry(x, kh, kw, stride, pad)
    out = np.empty((x4.shape[0], g[6], g[7], x4.shape[3]), x.dtype)
    _maxpool_kernel(np.ascontiguousarray(x4), *g[:6], out)
    return out if x.ndim == 4 else out[0]


def _avg_params(kh, kw, mult, shift, zp_in, zp, bits, signed, mode, mult_bits):
    mult_bits = check_mult_bits(mult_bits)
    n = kh * kw + 1
    mult = per_channel(mult, n, "avgpool mult", 0, (1 << (mult_bits - 1)) - 1)
    shift = per_channel(shift, n, "avgpool shift", 0, MAX_SHIFT)
    lo, hi = output_range(bits, signed, int(zp))
    return mult, shift, int(zp_in), int(zp), lo, hi, mode_code(mode), mult_bits


def avgpool_ref(
    x, kh, kw, stride=1, pad=0, *, mult, shift, zp_in=0, zp, bits, signed, mode, mult_bits=32
):
    """NumPy definition of average pooling (see module docstring). Returns int8/uint8 for
    bits <= 8 (by `signed`), int32 above."""
    x, x4, g = _geometry(x, kh, kw, stride, pad)
    mult, shift, zp_in, zp, lo, hi, _, mult_bits = _avg_params(
        g[0], g[1], mult, shift, zp_in, zp, bits, signed, mode, mult_bits
    )
    n, h, w, c = x4.shape
    out = np.empty((n, g[6], g[7], c), np.int64)
    for oy in range(g[6]):
        for ox in range(g[7]):
            r0, r1, c0, c1 = _window(g, h, w, oy, ox)
            win = x4[:, r0:r1, c0:c1, :].astype(np.int64) - zp_in
            s = np.clip(win.sum(axis=(1, 2)), INT32_MIN, INT32_MAX)
            cnt = (r1 - r0) * (c1 - c0)
            out[:, oy, ox, :] = zp + requantize_ref(s, mult[cnt], shift[cnt], mode, mult_bits)
    out = np.clip(out, lo, hi).astype(storage_dtype(bits, sign_mode(signed)))
    return out if x.ndim == 4 else out[0]


@lazy_njit(cache=True)
def _avgpool_kernel(x, kh, kw, sh, sw, pt, pl, mult, shift, zp_in, zp, lo, hi, mode, mb, out):
    n, h, w, c = x.shape
    _, oh, ow, _ = out.shape
    acc = np.empty(c, np.int64)
    for b in range(n):
        for oy in range(oh):
            y0 = oy * sh - pt
            r0, r1 = max(y0, 0), min(y0 + kh, h)
            for ox in range(ow):
                x0 = ox * sw - pl
                c0, c1 = max(x0, 0), min(x0 + kw, w)
                cnt = (r1 - r0) * (c1 - c0)
                acc[:] = -zp_in * cnt
                for r in range(r0, r1):
                    for q in range(c0, c1):
                        for ch in range(c):
                            acc[ch] += x[b, r, q, ch]
                for ch in range(c):
                    s = min(max(acc[ch], np.int64(INT32_MIN)), np.int64(INT32_MAX))
                    y = zp + requantize_scalar(s, mult[cnt], shift[cnt], mode, mb)
                    out[b, oy, ox, ch] = min(max(y, lo), hi)


def avgpool(
    x, kh, kw, stride=1, pad=0, *, mult, shift, zp_in=0, zp, bits, signed, mode, mult_bits=32
):
    """Numba average pooling; bit-exact with `avgpool_ref` (same arguments and result)."""
    x, x4, g = _geometry(x, kh, kw, stride, pad)
    mult, shift, zp_in, zp, lo, hi, code, mult_bits = _avg_params(
        g[0], g[1], mult, shift, zp_in, zp, bits, signed, mode, mult_bits
    )
    out = np.empty((x4.shape[0], g[6], g[7], x4.shape[3]), np.int32)
    _avgpool_kernel(
        np.ascontiguousarray(x4), *g[:6], mult, shift, zp_in, zp, lo, hi, code, mult_bits, out
    )
    out = out.astype(storage_dtype(bits, sign_mode(signed)))
    return out if x.ndim == 4 else out[0]


def avgpool_multipliers(kh, kw, scale=1.0, mult_bits=32):
    """(mult, shift) int64 arrays of length kh*kw + 1: entry c ~= scale / c, entry 0 = (0, 0).

    scale = s_in / s_out (1.0 when input and output share a scale).
    """
    counts = np.arange(1, kh * kw + 1, dtype=np.float64)
    m, s = quantize_multiplier(float(scale) / counts, mult_bits)
    return np.concatenate([[0], m]).astype(np.int64), np.concatenate([[0], s]).astype(np.int64)


def _global_kw(x):
    x = as_int_array(x, "global_avgpool input")
    if x.ndim not in (3, 4):
        raise AccelsimError(f"global_avgpool input must be NHWC or HWC, got {x.shape}")
    return x.shape[-3], x.shape[-2]


def global_avgpool_ref(x, *, mult, shift, zp_in=0, zp, bits, signed, mode, mult_bits=32):
    """NumPy definition of global average pooling: avgpool_ref with an H x W window.

    mult/shift: scalars (~= scale / (H*W)) or length H*W + 1 arrays. Output [N,1,1,C].
    """
    h, w = _global_kw(x)
    return avgpool_ref(
        x,
        h,
        w,
        1,
        0,
        mult=mult,
        shift=shift,
        zp_in=zp_in,
        zp=zp,
        bits=bits,
        signed=signed,
        mode=mode,
        mult_bits=mult_bits,
    )


def global_avgpool(x, *, mult, shift, zp_in=0, zp, bits, signed, mode, mult_bits=32):
    """Numba global average pooling; bit-exact with `global_avgpool_ref`."""
    h, w = _global_kw(x)
    return avgpool(
        x,
        h,
        w,
        1,
        0,
        mult=mult,
        shift=shift,
        zp_in=zp_in,
        zp=zp,
        bits=bits,
        signed=signed,
        mode=mode,
        mult_bits=mult_bits,
    )


__all__ = [
    "avgpool",
    "avgpool_multipliers",
    "avgpool_ref",
    "global_avgpool",
    "global_avgpool_ref",
    "maxpool",
    "maxpool_ref",
]
