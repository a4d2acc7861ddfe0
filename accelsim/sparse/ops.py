"""Elementwise and layout ops on sparse tensors: ReLU, Add, Concat, voxelisation, BEV collapse.

These run on the vector unit (ReLU, Add), in the front end (Concat is a channel layout) or on
the host (voxelisation of raw points). Each has a plain NumPy `_ref` twin written the slow,
obvious way, used by the tests as the definition.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import SparseInputError
from accelsim.sparse.tensor import check_coords, check_features, check_sparse, pack, packing


def relu(features, zero_point: int = 0) -> np.ndarray:
    """Sparse ReLU: `max(x, zero_point)` per element (the quantized zero is `zero_point`)."""
    f = np.asarray(features)
    return np.maximum(f, np.asarray(zero_point, dtype=f.dtype))


def relu_ref(features, zero_point: int = 0) -> np.ndarray:
    """Twin of `relu`, element by element."""
    f = np.array(features)
    flat = f.reshape(-1)
    for i in range(flat.size):
        flat[i] = max(flat[i], zero_point)
    return f


def align(coords_a, coords_b) -> np.ndarray:
    """Row permutation p with `coords_b[p] == coords_a`; both must hold the same voxel set.

    Raises `SparseInputError` if the sets differ (naming one voxel present on one side only).
    """
    a = check_coords(coords_a, "coords_a")
    b = check_coords(coords_b, "coords_b")
    if a.shape == b.shape and np.array_equal(a, b):
        return np.arange(a.shape[0])
    shift, extent = packing([a, b], 0)
    ka, kb = pack(a, shift, extent), pack(b, shift, extent)
    order = np.argsort(kb, kind="stable")
    pos = np.searchsorted(kb[order], ka)
    pos = np.minimum(pos, kb.size - 1)
    found = kb[order][pos] == ka
    if not found.all() or a.shape[0] != b.shape[0]:
        row = int(np.flatnonzero(~found)[0]) if not found.all() else 0
        raise SparseInputError(
            f"coords_b: sparse tensors have different active voxels (e.g. {a[row].tolist()} "
            f"of coords_a, {a.shape[0]} vs {b.shape[0]} voxels); Add and Concat need the same set"
        )
    return order[pos]


def add(coords_a, feats_a, coords_b, feats_b) -> np.ndarray:
    """Sparse Add of two tensors on the same voxel set, in the row order of `coords_a`.

    Returns int32 (integer inputs) or the promoted dtype; a residual add before RESCALE.
    """
    ca, fa = check_sparse(coords_a, feats_a, "input a")
    cb, fb = check_sparse(coords_b, feats_b, "input b")
    if fa.shape[1] != fb.shape[1]:
        raise SparseInputError(
            f"feats_b: Add needs equal channels, got {fa.shape[1]} and {fb.shape[1]}"
        )
    p = align(ca, cb)
    dt = np.int32 if fa.dtype.kind in "iu" and fb.dtype.kind in "iu" else np.result_type(fa, fb)
    return fa.astype(dt) + fb[p].astype(dt)


def add_ref(coords_a, feats_a, coords_b, feats_b) -> np.ndarray:
    """Twin of `add` with a dictionary lookup per voxel."""
    where = {tuple(c): i for i, c in enumerate(np.asarray(coords_b).tolist())}
    fa, fb = np.asarray(feats_a), np.asarray(feats_b)
    dt = np.int32 if fa.dtype.kind in "iu" and fb.dtype.kind in "iu" else np.result_type(fa, fb)
    out = np.zeros(fa.shape, dtype=dt)
    for i, c in enumerate(np.asarray(coords_a).tolist()):
        out[i] = fa[i].astype(dt) + fb[where[tuple(c)]].astype(dt)
    return out


def concat(coords_a, feats_a, coords_b, feats_b) -> np.ndarray:
    """Channel concatenation [n, ca + cb] of two tensors on the same voxel set (order of a)."""
    ca, fa = check_sparse(coords_a, feats_a, "input a")
    cb, fb = check_sparse(coords_b, feats_b, "input b")
    p = align(ca, cb)
    return np.concatenate([fa, fb[p].astype(fa.dtype)], axis=1)


def concat_ref(coords_a, feats_a, coords_b, feats_b) -> np.ndarray:
    """Twin of `concat` with a dictionary lookup per voxel."""
    where = {tuple(c): i for i, c in enumerate(np.asarray(coords_b).tolist())}
    fa, fb = np.asarray(feats_a), np.asarray(feats_b)
    rows = [
        np.concatenate([fa[i], fb[where[tuple(c)]].astype(fa.dtype)])
        for i, c in enumerate(np.asarray(coords_a).tolist())
    ]
    return np.array(rows, dtype=fa.dtype)


def _voxel_index(points_xyz, voxel_size, origin):
    pts = np.asarray(points_xyz, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] == 0:
        raise SparseInputError(
            f"points_xyz: expected a non-empty float array [n, 3], got shape {tuple(pts.shape)}"
        )
    if not np.isfinite(pts).all():
        raise SparseInputError("points_xyz: points must be finite (found NaN or inf)")
    vs = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    if not (vs > 0).all():
        raise SparseInputError(f"voxel_size: expected > 0 metres, got {voxel_size!r}")
    idx = np.floor((pts - np.asarray(origin, dtype=np.float64)) / vs)
    if (idx < 0).any():
        row = int(np.argwhere(idx < 0)[0, 0])
        raise SparseInputError(
            f"points_xyz: point {pts[row].tolist()} (row {row}) lies below origin {origin}; "
            "crop the points or move the origin"
        )
    return idx.astype(np.int64)


def voxelize(
    points_xyz, voxel_size, *, origin=(0.0, 0.0, 0.0), batch_index=0, values=None, reduce="mean"
):
    """Voxelise points (metres) into a sparse tensor.

    Voxel of a point: `floor((p - origin) / voxel_size)`. Returns (coords int32 [n, 4] sorted
    by (batch, x, y, z), features): with reduce="mean" the per-voxel mean of `values`
    ([m, c], default the points themselves) as float64; with reduce="count" the number of
    points per voxel as int32 [n, 1].
    """
    idx = _voxel_index(points_xyz, voxel_size, origin)
    coords = np.empty((idx.shape[0], 4), dtype=np.int64)
    coords[:, 0] = batch_index
    coords[:, 1:] = idx
    coords = check_coords(coords, "voxel coords")
    shift, extent = packing([coords], 0)
    _, first, inverse, counts = np.unique(
        pack(coords, shift, extent), return_index=True, return_inverse=True, return_counts=True
    )
    out = coords[first]
    if reduce == "count":
        return out, counts.astype(np.int32)[:, None]
    if reduce != "mean":
        raise SparseInputError(f"reduce: expected 'mean' or 'count', got {reduce!r}")
    vals = np.asarray(points_xyz if values is None else values, dtype=np.float64)
    vals = check_features(vals, idx.shape[0], "values")
    sums = np.zeros((out.shape[0], vals.shape[1]))
    np.add.at(sums, inverse.ravel(), vals)
    return out, sums / counts[:, None]


def voxelize_ref(
    points_xyz, voxel_size, *, origin=(0.0, 0.0, 0.0), batch_index=0, values=None, reduce="mean"
):
    """Twin of `voxelize` with a Python dictionary of voxels."""
    idx = _voxel_index(points_xyz, voxel_size, origin)
    vals = np.asarray(points_xyz if values is None else values, dtype=np.float64)
    acc: dict = {}
    for row, v in enumerate(idx.tolist()):
        key = (batch_index, *v)
        s, n = acc.get(key, (0.0, 0))
        acc[key] = (s + vals[row], n + 1)
    keys = sorted(acc)
    coords = np.array(keys, dtype=np.int32)
    if reduce == "count":
        return coords, np.array([[acc[k][1]] for k in keys], dtype=np.int32)
    return coords, np.array([acc[k][0] / acc[k][1] for k in keys])


def check_bev_grid(coords, shape) -> None:
    """Raise SparseInputError unless shape = (batch, X, Y, Z) >= 1 holds every voxel of
    `coords` (int32 [n, 4])."""
    if len(shape) != 4 or min(shape) < 1:
        raise SparseInputError(f"shape: expected (batch, X, Y, Z) >= 1, got {shape!r}")
    over = coords >= np.asarray(shape)
    if over.any():
        row = int(np.argwhere(over)[0, 0])
        raise SparseInputError(f"coords: voxel {coords[row].tolist()} lies outside grid {shape}")


def to_bev(coords, feats, shape) -> np.ndarray:
    """Sparse-to-dense bird's-eye-view collapse for detection heads.

    shape = (batch, X, Y, Z) grid. Returns a dense NHWC map [batch, X, Y, C*Z] of the features'
    dtype, zero where no voxel is active; channel `c*Z + z` holds channel c of height z (the
    order of SECOND's HeightCompression, which reshapes [N, C, D, H, W] to [N, C*D, H, W]).
    """
    c, f = check_sparse(coords, feats, "bev input")
    check_bev_grid(c, tuple(shape))
    b, nx, ny, nz = shape
    grid = np.zeros((b, nx, ny, f.shape[1], nz), dtype=f.dtype)
    grid[c[:, 0], c[:, 1], c[:, 2], :, c[:, 3]] = f
    return grid.reshape(b, nx, ny, f.shape[1] * nz)


def to_bev_ref(coords, feats, shape) -> np.ndarray:
    """Twin of `to_bev`, one voxel and channel at a time."""
    c, f = np.asarray(coords), np.asarray(feats)
    b, nx, ny, nz = shape
    out = np.zeros((b, nx, ny, f.shape[1] * nz), dtype=f.dtype)
    for row in range(c.shape[0]):
        bi, x, y, z = c[row].tolist()
        for ch in range(f.shape[1]):
            out[bi, x, y, ch * nz + z] = f[row, ch]
    return out
