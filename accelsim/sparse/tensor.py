"""Sparse tensors of the voxel group engine: validation, coordinate packing and voxel groups.

A sparse tensor is a pair (coords, features): `coords` is int32 [n, 4] holding
(batch, x, y, z) of each active voxel, `features` is [n, c] with one row per voxel. Coordinates
are non-negative integers and unique. The hardware stores them in the COORD buffer; here they
are numpy arrays.

Coordinates are packed into one int64 key per voxel, `((b*SX + x)*SY + y)*SZ + z`, with the
extents `S` taken from the data plus a margin, so that every kernel probe stays inside the
packed box and a neighbour's key never aliases another voxel's.
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import SparseInputError
from accelsim.numeric import INT32_MAX

KEY_LIMIT = 2**62  # packed keys must stay below this (int64 with headroom for probes)


def check_coords(coords, name: str = "coords") -> np.ndarray:
    """Validate a coordinate array and return it as a C-contiguous int32 [n, 4] array.

    Raises `SparseInputError` for a wrong shape, an empty set, non-integer, NaN or negative
    values, values above int32 range, or duplicate rows (naming the first duplicate).
    Integral floats are accepted and converted.
    """
    arr = np.asarray(coords)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise SparseInputError(
            f"{name}: expected an integer array of shape [n, 4] (batch, x, y, z), "
            f"got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise SparseInputError(f"{name}: empty input, the sparse tensor has no active voxels")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.floor(arr))
        if bad.any():
            row = int(np.argwhere(bad)[0, 0])
            raise SparseInputError(
                f"{name}: non-integer coordinate {arr[row].tolist()} at row {row}; "
                "coordinates must be integer voxel indices"
            )
    elif arr.dtype.kind not in "iu":
        raise SparseInputError(f"{name}: coordinates must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" or arr.dtype.kind == "f":
        neg = arr < 0
        if neg.any():
            row = int(np.argwhere(neg)[0, 0])
            raise SparseInputError(
                f"{name}: negative coordinate {arr[row].tolist()} at row {row}; "
                "shift the scene so that (batch, x, y, z) are all >= 0"
            )
    if arr.max() > INT32_MAX:
        raise SparseInputError(f"{name}: coordinate {arr.max()} does not fit in int32")
    return np.ascontiguousarray(arr, dtype=np.int32)


def check_features(features, n_voxels: int, name: str = "features") -> np.ndarray:
    """Validate a feature array [n, c] against the voxel count; returns it as an array."""
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise SparseInputError(
            f"{name}: expected shape [n, c] (one row per voxel), got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] != n_voxels:
        raise SparseInputError(
            f"{name}: coords have {n_voxels} rows but features have {arr.shape[0]}; "
            "each active voxel needs exactly one feature row"
        )
    return arr


def check_sparse(coords, features, name: str = "sparse tensor"):
    """Validate a sparse tensor; returns (coords int32 [n,4], features [n,c]).

    Checks everything `check_coords` checks, the feature shape, and that no coordinate
    appears twice.
    """
    c = check_coords(coords, f"{name} coords")
    f = check_features(features, c.shape[0], f"{name} features")
    check_unique(c, f"{name} coords")
    return c, f


def check_groups(groups, group_coeffs=(1, 2, 3)) -> tuple[int, tuple[int, int, int]]:
    """Validate a voxel group count G >= 1 and three integer group coefficients (a, b, c)."""
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise SparseInputError(
            f"groups: expected an integer voxel group count >= 1, got {groups!r}"
        )
    coeffs = tuple(group_coeffs)
    if len(coeffs) != 3 or not all(isinstance(v, (int, np.integer)) for v in coeffs):
        raise SparseInputError(
            f"group_coeffs: expected three integers (a, b, c), got {group_coeffs!r}"
        )
    return int(groups), tuple(int(v) for v in coeffs)


def group_of(coords, groups: int, group_coeffs=(1, 2, 3)) -> np.ndarray:
    """Voxel group of each voxel: `g = (a*x + b*y + c*z) mod G`, int32 [n] in [0, G).

    The batch index does not enter the group; (a, b, c) = `group_coeffs`.
    """
    groups, (a, b, c) = check_groups(groups, group_coeffs)
    xyz = np.asarray(coords, dtype=np.int64)[:, 1:4]
    return ((a * xyz[:, 0] + b * xyz[:, 1] + c * xyz[:, 2]) % groups).astype(np.int32)


def packing(coords_list, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Packing box covering all coordinate arrays in `coords_list`, widened by `margin`.

    Returns (shift int64 [4], extent int64 [4]): a coordinate v packs as
    `pack(v + shift)` with per-axis extents `extent`; probes up to `margin` voxels outside
    the data stay inside the box. Raises `SparseInputError` if the box needs more than 62 bits.
    """
    hi = np.max([np.asarray(c).max(axis=0) for c in coords_list], axis=0).astype(np.int64)
    shift = np.array([0, margin, margin, margin], dtype=np.int64)
    extent = hi + 1 + 2 * shift
    total = 1
    for e in extent.tolist():
        total *= int(e)
    if total >= KEY_LIMIT:
        raise SparseInputError(
            f"coords: coordinate extent {hi.tolist()} is too large to pack into 62 bits"
        )
    return shift, extent


def pack(coords, shift: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Pack coordinates [n, 4] into int64 keys within the box from `packing`."""
    c = np.asarray(coords, dtype=np.int64) + shift
    return ((c[:, 0] * extent[1] + c[:, 1]) * extent[2] + c[:, 2]) * extent[3] + c[:, 3]


def check_unique(coords: np.ndarray, name: str = "coords") -> None:
    """Raise `SparseInputError` naming the first duplicated coordinate, if any."""
    shift, extent = packing([coords], 0)
    keys = pack(coords, shift, extent)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if dup.size:
        r0, r1 = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise SparseInputError(
            f"{name}: duplicate coordinate {coords[r1].tolist()} at rows {r0} and {r1}; "
            "each active voxel must appear once"
        )
