"""Sparse convolution datapath (SVG_CONV): exact integer gather - GEMM - scatter into int32.

`out[o] = sum over pairs (i, o, k) of features[i] @ weights[k]`, weights [K**3, c_in, c_out].
The result is the int32 accumulator a dense GEMM of the same operands would hold; RESCALE to
the output bit width is a separate step (`accelsim.kernels.rescale`).

Overflow follows the dense GEMM (`accelsim.kernels.gemm`): the accumulator of output (o, co)
adds its products in hardware order, offset by offset (ascending k) and within an offset input
channel by channel. If any partial sum leaves int32, overflow="error" raises
`AccumulatorOverflow` naming the first such element (row-major) and overflow="wrap" returns
the sum modulo 2**32, the value a two's-complement int32 adder holds in any order.

The compiled path is output-stationary: output voxels are cut into tiles, one tile per task,
and each tile walks the offsets (so one offset's weights stay in L1) and adds each neighbour's
`x @ W[k]` into the tile's accumulator rows. Tiles own their output rows, so any number of
threads (`numba.set_num_threads`) gives the same integers with no write conflicts.
When K**3 * c_in * max|x| * max|w| < 2**31 nothing can overflow and the accumulators are int32;
each pair's `x @ W[k]` then runs in float32 (exact when c_in * max|x| * max|w| <= 2**24: every
partial sum is an exactly representable integer) in a register-blocked kernel
(`microkernel.py`), or in int32 otherwise. Beyond that bound the sums are taken in int64 and
only outputs whose own bound |x| @ |w| exceeds int32 have their partial sums replayed.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError, AccumulatorOverflow, SparseInputError
from accelsim.jit import lazy_attr, lazy_njit, prange
from accelsim.numeric import INT32_MAX, INT32_MIN, TENSOR_MAX_BITS, check_bits, value_range
from accelsim.sparse.kmap import KernelMap

# the int8 dot-product microkernel is a Numba intrinsic: imported when the conv first compiles
acc_dot_f32 = lazy_attr("accelsim.sparse.microkernel", "acc_dot_f32")

TILE_VOXELS = 256  # output voxels per task: 256 rows x 64 ch x 4 B = 64 KiB, fits L2
FLOAT_EXACT = 2**24  # float32 holds every integer of magnitude <= 2**24 exactly


def _check_operand(arr, name, bits, mode):
    """(array, max |value|) of an operand; activations and weights here are tensors of up to
    TENSOR_MAX_BITS (wider than the array's MACs, so the reference covers every tensor)."""
    a = np.asarray(arr)
    if a.dtype.kind not in "iu":
        raise SparseInputError(f"{name}: expected integer values, got dtype {a.dtype}")
    try:
        lo, hi = value_range(check_bits(bits, TENSOR_MAX_BITS, "bit width"), mode)
    except AccelsimError as exc:
        raise SparseInputError(f"{name}: {exc}") from None
    if a.size:
        amin, amax = int(a.min()), int(a.max())
        if amin < lo or amax > hi or (mode == "bipolar" and (a == 0).any()):
            raise SparseInputError(
                f"{name}: values span [{amin}, {amax}], outside {mode} {bits}-bit range "
                f"[{lo}, {hi}]" + (" (bipolar values are -1 or +1)" if mode == "bipolar" else "")
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


def _overflow_message(o, co, k, ci, value):
    return (
        f"sparse conv: int32 accumulator overflow at output voxel {o}, channel {co}, after "
        f"offset {k}, input channel {ci} (partial sum {value}); lower the bit widths or use "
        "overflow='wrap'"
    )


def conv(
    features,
    weights,
    kmap: KernelMap,
    *,
    a_bits=8,
    w_bits=8,
    a_mode="signed",
    w_mode="signed",
    overflow="error",
) -> np.ndarray:
    """Sparse conv over `kmap`: int32 accumulators [n_out, c_out] (compiled, multi-threaded).

    features: integer [n_in, c_in] at `a_bits` (mode signed/unsigned/bipolar); weights:
    integer [K**3, c_in, c_out] at `w_bits`. Raises `SparseInputError` for shapes or values
    that do not match, `AccumulatorOverflow` on overflow unless overflow="wrap".
    """
    x, w, xmax, wmax = _check_args(
        features, weights, kmap, a_bits, w_bits, a_mode, w_mode, overflow
    )
    c_in, c_out = w.shape[1], w.shape[2]
    nbr = kmap.neighbors
    if kmap.kernel_volume * c_in * xmax * wmax <= INT32_MAX:
        out = np.zeros((kmap.n_out, c_out), dtype=np.int32)
        if c_in * xmax * wmax <= FLOAT_EXACT:
            _conv_f32(
                np.ascontiguousarray(x),  # any integer dtype: the kernel converts on load
                np.ascontiguousarray(w, dtype=np.float32),
                nbr,
                out,
                TILE_VOXELS,
            )
        else:
            _conv_int(x.astype(np.int32), w.astype(np.int32), nbr, out, TILE_VOXELS)
        return out
    x64, w64 = x.astype(np.int64), w.astype(np.int64)
    out = np.zeros((kmap.n_out, c_out), dtype=np.int64)
    _conv_int(x64, w64, nbr, out, TILE_VOXELS)
    if overflow == "error":
        bound = np.zeros_like(out)
        _conv_int(np.abs(x64), np.abs(w64), nbr, bound, TILE_VOXELS)
        rows, cols = np.nonzero(bound > INT32_MAX)
        if rows.size:
            hit = _first_overflow(x64, w64, nbr, rows.astype(np.int64), cols.astype(np.int64))
            if hit[0] >= 0:
                raise AccumulatorOverflow(_overflow_message(rows[hit[0]], cols[hit[0]], *hit[1:]))
    return out.astype(np.int32)  # modulo 2**32: the wrapped int32 value


def conv_ref(
    features,
    weights,
    kmap: KernelMap,
    *,
    a_bits=8,
    w_bits=8,
    a_mode="signed",
    w_mode="signed",
    overflow="error",
) -> np.ndarray:
    """NumPy twin of `conv`: per offset, gather the input rows, int64 GEMM, scatter-add;
    partial sums checked per output in hardware order (offset, then input channel)."""
    x, w, _, _ = _check_args(features, weights, kmap, a_bits, w_bits, a_mode, w_mode, overflow)
    x, w = x.astype(np.int64), w.astype(np.int64)
    acc = np.zeros((kmap.n_out, w.shape[2]), dtype=np.int64)
    for k in range(kmap.kernel_volume):
        s, e = kmap.offset_start[k], kmap.offset_start[k + 1]
        np.add.at(acc, kmap.out_index[s:e], x[kmap.in_index[s:e]] @ w[k])
    if overflow == "error":
        for o in range(kmap.n_out):
            sel = np.flatnonzero(kmap.out_index == o)  # pairs sorted by offset already
            prods = x[kmap.in_index[sel]][:, :, None] * w[kmap.offset[sel]]  # [p, c_in, c_out]
            partial = np.cumsum(prods.reshape(-1, w.shape[2]), axis=0)
            bad = (partial < -INT32_MAX - 1) | (partial > INT32_MAX)
            bad_cols = np.flatnonzero(bad.any(axis=0))
            if bad_cols.size:
                co = int(bad_cols[0])
                step = int(np.flatnonzero(bad[:, co])[0])
                k = int(kmap.offset[sel[step // w.shape[1]]])
                raise AccumulatorOverflow(
                    _overflow_message(o, co, k, step % w.shape[1], int(partial[step, co]))
                )
    return acc.astype(np.int32)


@lazy_njit(cache=True, parallel=True)
def _conv_f32(x, w, nbr, out, tile):
    n_k, n = nbr.shape
    for t in prange((n + tile - 1) // tile):
        for k in range(n_k):
            for o in range(t * tile, min(n, t * tile + tile)):
                i = nbr[k, o]
                if i >= 0:
                    acc_dot_f32(x[i], w[k], out[o])


@lazy_njit(cache=True, parallel=True)
def _conv_int(x, w, nbr, out, tile):
    n_k, n = nbr.shape
    c_in, c_out = w.shape[1], w.shape[2]
    for t in prange((n + tile - 1) // tile):
        for k in range(n_k):
            for o in range(t * tile, min(n, t * tile + tile)):
                i = nbr[k, o]
                if i >= 0:
                    for ci in range(c_in):
                        a = x[i, ci]
                        for co in range(c_out):
                            out[o, co] += a * w[k, ci, co]


@lazy_njit(cache=True)
def _first_overflow(x, w, nbr, rows, cols):
    """Replay partial sums of outputs (rows[j], cols[j]) in hardware order; returns
    (j, offset, input channel, value) of the first to leave int32, or j = -1."""
    lo, hi = INT32_MIN, INT32_MAX
    for j in range(rows.shape[0]):
        o, co = rows[j], cols[j]
        s = 0
        for k in range(nbr.shape[0]):
            i = nbr[k, o]
            if i >= 0:
                for ci in range(x.shape[1]):
                    s += x[i, ci] * w[k, ci, co]
                    if s < lo or s > hi:
                        return np.array([j, k, ci, s])
    return np.array([-1, 0, 0, 0])
