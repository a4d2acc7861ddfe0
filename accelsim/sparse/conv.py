"""Sparse convolution datapath (SVG_CONV): exact integer gather - GEMM - scatter into int32.

`out[o] = sum over pairs (i, o, k) of features[i] @ weights[k]`, weights [K**3, c_in, c_out].
The result is the int32 accumulator a dense GEMM of the same operands would hold; RESCALE to
the output bit width is a separate step (`accelsim.kernels.rescale`).

Overflow follows the dense GEMM: the exact sum of each output is computed; if it does not fit
int32, overflow="error" raises `AccumulatorOverflow` and overflow="wrap" keeps it modulo 2**32
(two's complement wrap, the value an int32 adder chain would hold in any order).

The compiled path is output-stationary: output voxels are cut into tiles, one tile per task,
and each tile walks the offsets (so one offset's weights stay in L1) and adds each neighbour's
`x @ W[k]` into the tile's accumulator rows. Tiles own their output rows, so any number of
threads (`numba.set_num_threads`) gives the same integers with no write conflicts.
Per pair, `x @ W[k]` runs in float32 when it is exact (c_in * max|x| * max|w| < 2**24, so
every partial sum is an exactly representable integer) and is then added into int32 or int64;
otherwise in integer arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from accelsim.errors import AccumulatorOverflow, SparseInputError
from accelsim.sparse.kmap import KernelMap
from accelsim.sparse.microkernel import dot_rows_f32

TILE_VOXELS = 256  # output voxels per task: 256 rows x 64 ch x 4 B = 64 KiB, fits L2
FLOAT_EXACT = 2**24  # float32 holds every integer of magnitude <= 2**24 exactly
MODES = ("signed", "unsigned", "bipolar")


def operand_range(bits: int, mode: str) -> tuple[int, int]:
    """Integer range (lo, hi) of a `bits`-wide operand in mode signed/unsigned/bipolar."""
    if mode == "bipolar":
        return -1, 1
    if mode == "signed":
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if mode == "unsigned":
        return 0, 2**bits - 1
    raise SparseInputError(f"mode: expected one of {MODES}, got {mode!r}")


def _check_operand(arr, name, bits, mode):
    a = np.asarray(arr)
    if a.dtype.kind not in "iu":
        raise SparseInputError(f"{name}: expected integer values, got dtype {a.dtype}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
        raise SparseInputError(f"{name}: bit width must be an integer in 1..16, got {bits!r}")
    lo, hi = operand_range(bits, mode)
    if a.size:
        amin, amax = int(a.min()), int(a.max())
        if amin < lo or amax > hi or (mode == "bipolar" and (a == 0).any()):
            raise SparseInputError(
                f"{name}: values span [{amin}, {amax}], outside {mode} {bits}-bit range [{lo}, {hi}]"
                + (" (bipolar values are -1 or +1)" if mode == "bipolar" else "")
            )
        return a, max(abs(amin), abs(amax))
    return a, 0


def _check_args(features, weights, kmap, a_bits, w_bits, a_mode, w_mode, overflow):
    if not isinstance(kmap, KernelMap):
        raise SparseInputError(f"kmap: expected a KernelMap from kernel_map(), got {type(kmap)}")
    if overflow not in ("error", "wrap"):
        raise SparseInputError(f"overflow: expected 'error' or 'wrap', got {overflow!r}")
    x, xmax = _check_operand(features, "features", a_bits, a_mode)
    w, wmax = _check_operand(weights, "weights", w_bits, w_mode)
    if x.ndim != 2 or x.shape[0] != kmap.n_in:
        raise SparseInputError(
            f"features: expected [{kmap.n_in}, c_in] (one row per input voxel of the kernel map), "
            f"got shape {tuple(x.shape)}"
        )
    if w.ndim != 3 or w.shape[0] != kmap.kernel_volume or w.shape[1] != x.shape[1]:
        raise SparseInputError(
            f"weights: expected [{kmap.kernel_volume}, {x.shape[1]}, c_out] "
            f"(offsets, c_in, c_out), got shape {tuple(w.shape)}"
        )
    return x, w, xmax, wmax


def _finish(acc64, overflow):
    lo, hi = -(2**31), 2**31 - 1
    if acc64.dtype == np.int32:
        return acc64
    if acc64.size and (acc64.min() < lo or acc64.max() > hi):
        if overflow == "error":
            row, ch = np.argwhere((acc64 < lo) | (acc64 > hi))[0]
            raise AccumulatorOverflow(
                f"sparse conv: int32 accumulator overflow at output voxel {row}, channel {ch} "
                f"(exact sum {int(acc64[row, ch])}); lower the bit widths or use overflow='wrap'"
            )
    return acc64.astype(np.int32)  # astype wraps modulo 2**32


def conv(features, weights, kmap: KernelMap, *, a_bits=8, w_bits=8, a_mode="signed",
         w_mode="signed", overflow="error") -> np.ndarray:
    """Sparse conv over `kmap`: int32 accumulators [n_out, c_out] (compiled, multi-threaded).

    features: integer [n_in, c_in] at `a_bits` (mode signed/unsigned/bipolar); weights:
    integer [K**3, c_in, c_out] at `w_bits`. Raises `SparseInputError` for shapes or values
    that do not match, `AccumulatorOverflow` on overflow unless overflow="wrap".
    """
    x, w, xmax, wmax = _check_args(features, weights, kmap, a_bits, w_bits, a_mode, w_mode,
                                   overflow)
    c_in, c_out = w.shape[1], w.shape[2]
    bound = kmap.kernel_volume * c_in * xmax * wmax  # largest |sum| any output can reach
    acc_type = np.int32 if bound <= 2**31 - 1 else np.int64
    out = np.zeros((kmap.n_out, c_out), dtype=acc_type)
    nbr = kmap.neighbors
    if c_in * xmax * wmax <= FLOAT_EXACT:
        _conv_f32(x.astype(np.float32), np.ascontiguousarray(w, dtype=np.float32), nbr, out,
                  TILE_VOXELS)
    else:
        _conv_int(x.astype(np.int64), w.astype(np.int64), nbr, out, TILE_VOXELS)
    return _finish(out, overflow)


def conv_ref(features, weights, kmap: KernelMap, *, a_bits=8, w_bits=8, a_mode="signed",
             w_mode="signed", overflow="error") -> np.ndarray:
    """NumPy twin of `conv`: per offset, gather the input rows, int64 GEMM, scatter-add."""
    x, w, _, _ = _check_args(features, weights, kmap, a_bits, w_bits, a_mode, w_mode, overflow)
    acc = np.zeros((kmap.n_out, w.shape[2]), dtype=np.int64)
    for k in range(kmap.kernel_volume):
        s, e = kmap.offset_start[k], kmap.offset_start[k + 1]
        gathered = x[kmap.in_index[s:e]].astype(np.int64)
        np.add.at(acc, kmap.out_index[s:e], gathered @ w[k].astype(np.int64))
    if acc.size and (acc.min() < -(2**31) or acc.max() > 2**31 - 1):
        return _finish(acc, overflow)
    return acc.astype(np.int32)


@njit(cache=True, parallel=True)
def _conv_f32(x, w, nbr, out, tile):
    n_k, n = nbr.shape
    c_out = w.shape[2]
    for t in prange((n + tile - 1) // tile):
        o0 = t * tile
        o1 = min(n, o0 + tile)
        tmp = np.empty(c_out, dtype=np.float32)
        for k in range(n_k):
            for o in range(o0, o1):
                i = nbr[k, o]
                if i >= 0:
                    dot_rows_f32(x[i], w[k], tmp)
                    for co in range(c_out):
                        out[o, co] += np.int64(tmp[co])


@njit(cache=True, parallel=True)
def _conv_int(x, w, nbr, out, tile):
    n_k, n = nbr.shape
    c_in, c_out = w.shape[1], w.shape[2]
    for t in prange((n + tile - 1) // tile):
        o0 = t * tile
        o1 = min(n, o0 + tile)
        for k in range(n_k):
            for o in range(o0, o1):
                i = nbr[k, o]
                if i >= 0:
                    for ci in range(c_in):
                        a = x[i, ci]
                        for co in range(c_out):
                            out[o, co] += a * w[k, ci, co]
