"""Kernel maps of sparse 3D convolution (the SVG_MAP datapath).

A kernel map lists every (input voxel, output voxel, kernel offset) triple of a sparse conv, in
the `(in_index, out_index, offset)` form of spconv and TorchSparse. Geometry, per axis, for a
kernel of size K, stride s, dilation D and padding p (default `D*((K-1)//2)`):

    input = output*s - p + D*t,   kernel tap t in 0..K-1

Offsets are numbered row-major over the taps (tx, ty, tz), so for an odd kernel with the
default padding offset 0 is (dx, dy, dz) = (-r, -r, -r) and the centre is (K**3 - 1) / 2.

- submanifold (stride 1): the output voxels are the input voxels;
- strided (s > 1): the output voxels are the unique `floor(input/s)` (MinkowskiEngine's rule;
  for K=2, s=2 it equals spconv's), batch kept;
- transposed: the inverse of a strided map. `coords` are the coarse voxels, `out_coords` the
  fine ones; a pair (coarse c, fine f, t) exists when `f = c*s - p + D*t`.

With `groups=G` a pair is kept only if its input and output voxels lie in the same voxel group
`(a*x + b*y + c*z) mod G`. Pairs are sorted by offset, then by output index, so one offset's
pairs are one contiguous gather-GEMM-scatter. Maps are built with open-addressing hash tables
of packed coordinates (`kernel_map`, kernels in `hashing.py`: per-voxel probes in general,
(batch, x, y) column probes for submanifold maps), with a brute-force twin
(`kernel_map_ref`), and are cached per coordinate set and geometry.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from accelsim.errors import SparseInputError
from accelsim.jit import lazy_njit, prange
from accelsim.sparse.hashing import build_table, probe_columns, probe_voxels
from accelsim.sparse.tensor import (
    check_coords,
    check_groups,
    check_unique,
    group_of,
    pack,
    packing,
)

CACHE_ENTRIES = 32  # kernel maps kept in the per-process LRU cache
_CACHE: OrderedDict = OrderedDict()


@dataclass(frozen=True, eq=False)
class KernelMap:
    """A kernel map: pairs sorted by (offset, out_index), plus the output voxel set.

    Arrays are read-only (maps are cached and shared). `neighbors[k, o]` is the input index
    feeding output o through offset k, or -1 (the output-stationary view of the same map).
    """

    in_index: np.ndarray  # int32 [P] input voxel (row of the input features)
    out_index: np.ndarray  # int32 [P] output voxel (row of out_coords)
    offset: np.ndarray  # int32 [P] kernel offset number, row-major over taps
    pairs_per_offset: np.ndarray  # int64 [K**3]
    offset_start: np.ndarray  # int64 [K**3 + 1], pairs of offset k are [start[k], start[k+1])
    out_coords: np.ndarray  # int32 [n_out, 4]
    neighbors: np.ndarray  # int32 [K**3, n_out]
    n_in: int
    kernel_size: int
    stride: int
    dilation: int
    padding: int
    groups: int
    group_coeffs: tuple
    transposed: bool

    @property
    def n_pairs(self) -> int:
        """Number of (input, output, offset) pairs = gathers = scatters of one conv."""
        return int(self.in_index.shape[0])

    @property
    def n_out(self) -> int:
        """Number of output voxels."""
        return int(self.out_coords.shape[0])

    @property
    def kernel_volume(self) -> int:
        """Number of kernel offsets, K**3."""
        return self.kernel_size**3

    def macs(self, c_in: int, c_out: int) -> int:
        """Multiply-accumulates of a conv over this map: pairs * c_in * c_out."""
        return self.n_pairs * c_in * c_out


def tap_offsets(kernel_size: int, dilation: int = 1, padding: int | None = None) -> np.ndarray:
    """Spatial offset `D*t - p` of each kernel offset number: int64 [K**3, 3] (dx, dy, dz)."""
    pad = dilation * ((kernel_size - 1) // 2) if padding is None else padding
    t = np.arange(kernel_size, dtype=np.int64) * dilation - pad
    gx, gy, gz = np.meshgrid(t, t, t, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)


def group_offsets(kernel_size=3, dilation=1, groups=1, group_coeffs=(1, 2, 3)) -> np.ndarray:
    """Offset numbers a submanifold group conv can ever keep: `a*dx + b*dy + c*dz = 0 mod G`.

    For a 3x3x3 kernel and coefficients (1, 2, 3) that is 27, 15, 7, 3 offsets for
    G = 1, 2, 4, 8 (an input and its output are in the same group exactly when their
    coordinate difference satisfies the rule, independent of position).
    """
    groups, (a, b, c) = check_groups(groups, group_coeffs)
    d = tap_offsets(kernel_size, dilation)
    return np.flatnonzero((a * d[:, 0] + b * d[:, 1] + c * d[:, 2]) % groups == 0)


def _check_geometry(kernel_size, stride, dilation, padding):
    for name, v, lo in (
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("dilation", dilation, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise SparseInputError(f"{name}: expected an integer >= {lo}, got {v!r}")
    pad = dilation * ((kernel_size - 1) // 2) if padding is None else padding
    if not isinstance(pad, (int, np.integer)) or pad < 0:
        raise SparseInputError(f"padding: expected an integer >= 0, got {padding!r}")
    return int(pad)


def downsample_coords(coords: np.ndarray, stride: int) -> np.ndarray:
    """Output voxels of a strided conv: unique `floor(xyz / stride)`, batch kept, sorted."""
    out = coords.astype(np.int32, copy=True)
    out[:, 1:] //= stride
    shift, extent = packing([out], 0)
    _, first = np.unique(pack(out, shift, extent), return_index=True)
    return np.ascontiguousarray(out[first])


def _digest(arr: np.ndarray) -> bytes:
    return hashlib.blake2b(arr.tobytes(), digest_size=16).digest() + str(arr.shape).encode()


def kernel_map(
    coords,
    kernel_size=3,
    stride=1,
    dilation=1,
    groups=1,
    group_coeffs=(1, 2, 3),
    transposed=False,
    *,
    padding=None,
    out_coords=None,
    cache=True,
) -> KernelMap:
    """Build (or fetch from cache) the kernel map of a sparse conv over `coords`.

    coords: int32 [n, 4] (batch, x, y, z) input voxels. kernel_size, stride, dilation, padding
    in voxels (see the module docstring for the geometry). groups: voxel group count G >= 1;
    group_coeffs: (a, b, c) of the group rule. transposed: build the inverse of the strided
    map; then `out_coords` (the fine voxels) is required. out_coords may also override the
    output set of a regular conv. Raises `SparseInputError` for bad coordinates or arguments.
    """
    cin = check_coords(coords, "coords")
    pad = _check_geometry(kernel_size, stride, dilation, padding)
    groups, coeffs = check_groups(groups, group_coeffs)
    cout = None if out_coords is None else check_coords(out_coords, "out_coords")
    if transposed and cout is None:
        raise SparseInputError("out_coords: a transposed conv needs the fine output voxels")
    key = None
    if cache:
        key = (
            _digest(cin),
            None if cout is None else _digest(cout),
            int(kernel_size),
            int(stride),
            int(dilation),
            pad,
            groups,
            coeffs,
            bool(transposed),
        )
    if cache and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    kmap = _build(
        cin,
        cout,
        int(kernel_size),
        int(stride),
        int(dilation),
        pad,
        groups,
        coeffs,
        bool(transposed),
        _pairs_hash,
    )
    if cache:
        _CACHE[key] = kmap
        while len(_CACHE) > CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return kmap


def kernel_map_ref(
    coords,
    kernel_size=3,
    stride=1,
    dilation=1,
    groups=1,
    group_coeffs=(1, 2, 3),
    transposed=False,
    *,
    padding=None,
    out_coords=None,
) -> KernelMap:
    """Brute-force twin of `kernel_map`: compares every probe with every input voxel.

    O(n_out * n_in * K**3) time and memory: for small test tensors only. Never cached.
    """
    cin = check_coords(coords, "coords")
    pad = _check_geometry(kernel_size, stride, dilation, padding)
    groups, coeffs = check_groups(groups, group_coeffs)
    cout = None if out_coords is None else check_coords(out_coords, "out_coords")
    if transposed and cout is None:
        raise SparseInputError("out_coords: a transposed conv needs the fine output voxels")
    return _build(
        cin,
        cout,
        int(kernel_size),
        int(stride),
        int(dilation),
        pad,
        groups,
        coeffs,
        bool(transposed),
        _pairs_brute,
    )


def _build(cin, cout, ksize, stride, dilation, pad, groups, coeffs, transposed, pairs_fn):
    rel = tap_offsets(ksize, dilation, pad)
    if transposed:
        # probe from each fine voxel's candidate coarse parents: coarse = (fine + p - D*t) / s
        # is awkward, so build the forward map fine -> coarse and swap its roles.
        src, dst = cout, cin
    else:
        src = cin
        dst = cout if cout is not None else (cin if stride == 1 else downsample_coords(cin, stride))
    nbr = pairs_fn(src, dst, stride, rel, groups, coeffs)  # [K, n_dst] rows of src, or -1
    n_k = rel.shape[0]
    if transposed:
        # each fine voxel feeds at most one coarse voxel per offset (the tap fixes its
        # position modulo the stride), so the inverse is again one entry per (offset, output)
        nbr = _invert_kernel(nbr, cin.shape[0], cout.shape[0])  # [K, n_fine] coarse rows
        out = cout
    else:
        out = dst
    counts = (nbr >= 0).sum(axis=1).astype(np.int64)
    start = np.zeros(n_k + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    in_idx, out_idx, off = _fill_pairs(nbr, start)
    arrays = [in_idx, out_idx, off, counts, start, out, nbr]
    for a in arrays:
        a.setflags(write=False)
    return KernelMap(
        in_idx,
        out_idx,
        off,
        counts,
        start,
        out,
        nbr,
        int(cin.shape[0]),
        ksize,
        stride,
        dilation,
        pad,
        groups,
        coeffs,
        transposed,
    )


def _duplicate_error(src, r0, r1):
    r0, r1 = sorted((int(r0), int(r1)))
    return SparseInputError(
        f"coords: duplicate coordinate {src[r1].tolist()} at rows {r0} and {r1}; "
        "each active voxel must appear once"
    )


def _pairs_hash(src, dst, stride, rel, groups, coeffs):
    if src is dst and stride == 1 and bool((rel == -rel[::-1]).all()):
        return _pairs_columns(src, rel, groups, coeffs)
    shift, extent = packing([src], 0)
    table, dup = build_table(pack(src, shift, extent))
    if dup[0] >= 0:
        raise _duplicate_error(src, dup[0], dup[1])
    hi = src.max(axis=0).astype(np.int64)
    gsrc = group_of(src, groups, coeffs) if groups > 1 else np.zeros(1, np.int32)
    gdst = group_of(dst, groups, coeffs) if groups > 1 else gsrc
    return probe_voxels(dst, stride, rel, table, hi, extent, gsrc, gdst, groups, False)


def _pairs_columns(src, rel, groups, coeffs):
    """Submanifold map by column hashing (see `hashing.probe_columns`)."""
    shift, extent = packing([src], 0)
    keys = pack(src, shift, extent)
    if keys.size > 1 and not (keys[1:] > keys[:-1]).all():
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        dup = np.flatnonzero(sk[1:] == sk[:-1])
        if dup.size:
            raise _duplicate_error(src, order[dup[0]], order[dup[0] + 1])
    else:
        order = np.arange(keys.size)
    sc = src[order].astype(np.int64)
    col_key = (sc[:, 0] * extent[1] + sc[:, 1]) * extent[2] + sc[:, 2]
    starts = np.flatnonzero(np.concatenate(([True], col_key[1:] != col_key[:-1])))
    col_first = np.append(starts, keys.size).astype(np.int64)
    table, _ = build_table(col_key[starts])
    hi = src.max(axis=0).astype(np.int64)
    ksize = round(rel.shape[0] ** (1 / 3))
    dilation = int(rel[1, 2] - rel[0, 2]) if ksize > 1 else 1
    gsrc = group_of(src, groups, coeffs) if groups > 1 else np.zeros(1, np.int32)
    return probe_columns(
        sc, order.astype(np.int64), col_first, table, hi, extent, ksize, dilation, groups, gsrc
    )


def _pairs_brute(src, dst, stride, rel, groups, coeffs):
    check_unique(src, "coords")
    gsrc = group_of(src, groups, coeffs)
    gdst = group_of(dst, groups, coeffs)
    nbr = np.full((rel.shape[0], dst.shape[0]), -1, dtype=np.int32)
    for k in range(rel.shape[0]):
        q = dst.astype(np.int64)
        q[:, 1:] = q[:, 1:] * stride + rel[k]
        eq = (q[:, None, :] == src[None, :, :].astype(np.int64)).all(axis=2)
        eq &= gsrc[None, :] == gdst[:, None]
        o, i = np.nonzero(eq)
        nbr[k, o] = i
    return nbr


@lazy_njit(cache=True)
def _invert_kernel(nbr, n_coarse, n_fine):
    n_k = nbr.shape[0]
    inv = np.full((n_k, n_fine), -1, dtype=np.int32)
    for k in range(n_k):
        for c in range(n_coarse):
            f = nbr[k, c]
            if f >= 0:
                inv[k, f] = c
    return inv


@lazy_njit(cache=True, parallel=True)
def _fill_pairs(nbr, start):
    n_k, n = nbr.shape
    total = start[n_k]
    in_idx = np.empty(total, dtype=np.int32)
    out_idx = np.empty(total, dtype=np.int32)
    off = np.empty(total, dtype=np.int32)
    for k in prange(n_k):
        p = start[k]
        for o in range(n):
            i = nbr[k, o]
            if i >= 0:
                in_idx[p] = i
                out_idx[p] = o
                off[p] = k
                p += 1
    return in_idx, out_idx, off
