"""QUANT unit datapath: wide integers (or float model inputs) -> b-bit activations.

Integer path: ``y = clamp(zp + R(x; mult, shift), lo, hi)`` with R exactly the rescale unit's
rounding (`accelsim.kernels.rescale`, modes single / tflite / rne) and ``mult * 2**-shift ~=
1/s`` for the step size s, given as a fixed-point pair (see `quantize_multiplier`). It is the
rescale datapath with zero bias and no ReLU, so it calls that datapath rather than repeating it.

Float path (model inputs): ``y = clamp(round_half_even(x / scale) + zp, lo, hi)``, the ONNX
QuantizeLinear rule; the division is done in x's float type (float32 input -> float32 divide,
as ONNX does), rounding and clamping are then exact.
"""

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.jit import lazy_njit
from accelsim.kernels.common import output_range
from accelsim.kernels.rescale import rescale, rescale_ref
from accelsim.numeric import sign_mode, storage_dtype


def quant_ref(x, mult, shift, *, zp, bits, signed, mode, mult_bits=32):
    """NumPy definition of QUANT on integers: clamp(zp + R(x; mult, shift)).

    x: int32 array [..., C]; mult, shift: scalars or length-C arrays (as in rescale). Returns
    int8/uint8 for bits <= 8 (by `signed`), int32 above.
    """
    return rescale_ref(
        x, 0, mult, shift, zp=zp, bits=bits, signed=signed, mode=mode, mult_bits=mult_bits
    )


def quant(x, mult, shift, *, zp, bits, signed, mode, mult_bits=32):
    """Numba QUANT on integers; bit-exact with `quant_ref` (same arguments and result)."""
    return rescale(
        x, 0, mult, shift, zp=zp, bits=bits, signed=signed, mode=mode, mult_bits=mult_bits
    )


def _prepare_float(x, scale, zp, bits, signed):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise AccelsimError(f"quantize_float input must be a float array, got dtype {x.dtype}")
    fdt = np.float64 if x.dtype == np.float64 else np.float32
    x = x.astype(fdt, copy=False)
    if np.isnan(x).any():
        raise AccelsimError("quantize_float input contains NaN")
    scale = np.asarray(scale, fdt)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise AccelsimError("quantize_float scale must be finite and > 0")
    if scale.ndim and scale.shape != (x.shape[-1],):
        raise AccelsimError(f"quantize_float scale must be a scalar or [C={x.shape[-1]}]")
    lo, hi = output_range(bits, signed, int(zp))
    return x, scale, int(zp), lo, hi


def quantize_float_ref(x, scale, zp, bits, signed):
    """NumPy definition of float -> b-bit: clamp(round_half_even(x / scale) + zp, lo, hi).

    x: float array [..., C]; scale > 0: scalar or length-C array; zp: integer zero point.
    Returns int8/uint8 for bits <= 8 (by `signed`), int32 above.
    """
    x, scale, zp, lo, hi = _prepare_float(x, scale, zp, bits, signed)
    q = np.rint(x / scale)  # np.rint rounds half to even
    y = np.clip(q, lo - zp, hi - zp).astype(np.int64) + zp
    return y.astype(storage_dtype(bits, sign_mode(signed)))


@lazy_njit(cache=True)
def _quantize_float_kernel(x, scale, zp, lo, hi, out):
    rows, c = x.shape
    for r in range(rows):
        for j in range(c):
            q = np.rint(x[r, j] / scale[j])
            q = min(max(q, lo - zp), hi - zp)
            out[r, j] = np.int64(q) + zp


def quantize_float(x, scale, zp, bits, signed):
    """Numba float -> b-bit; bit-exact with `quantize_float_ref` (same arguments and result)."""
    x, scale, zp, lo, hi = _prepare_float(x, scale, zp, bits, signed)
    c = x.shape[-1] if x.ndim else 1
    x2 = np.ascontiguousarray(x.reshape(-1, c) if x.size else x.reshape(0, 1))
    scale = np.ascontiguousarray(np.broadcast_to(scale, (x2.shape[1],)))
    out = np.empty(x2.shape, np.int32)
    _quantize_float_kernel(x2, scale, zp, lo, hi, out)
    return out.reshape(x.shape).astype(storage_dtype(bits, sign_mode(signed)))


__all__ = ["quant", "quant_ref", "quantize_float", "quantize_float_ref"]
