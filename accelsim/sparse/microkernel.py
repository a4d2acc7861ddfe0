"""Inner product of one gathered input row with one offset's weight matrix (float32).

`dot_rows_f32(x, w, out)` sets `out[:] = x @ w` for x [c_in] and w [c_in, c_out] (C order).
It is the MAC array's work for one kernel-map pair. Operands are small integers, so every
partial sum is exact in float32 when c_in * max|x| * max|w| <= 2**24 (the caller checks).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def dot_rows_f32(x, w, out):
    """out[co] = sum_ci x[ci] * w[ci, co], four input channels per step."""
    c_in, c_out = w.shape
    out[:] = 0
    ci = 0
    while ci + 4 <= c_in:
        a0, a1, a2, a3 = x[ci], x[ci + 1], x[ci + 2], x[ci + 3]
        for co in range(c_out):
            out[co] += a0 * w[ci, co] + a1 * w[ci + 1, co] + a2 * w[ci + 2, co] + a3 * w[ci + 3, co]
        ci += 4
    while ci < c_in:
        a = x[ci]
        for co in range(c_out):
            out[co] += a * w[ci, co]
        ci += 1


def dot_rows_f32_ref(x, w) -> np.ndarray:
    """NumPy twin of `dot_rows_f32` (in int64, the exact value)."""
    return np.asarray(x, dtype=np.int64) @ np.asarray(w, dtype=np.int64)
