"""Work statistics of a kernel map split into parts (voxel groups or spatial tiles).

The sparse voxel group engine hands each part of the output voxels to one engine, so the
layer time depends on how evenly pairs spread over parts and on how many input voxels a part
must read from outside itself (its halo). Definitions, for a partition given as one part id
per input voxel (`part_in`) and per output voxel (`part_out`):

- pairs of part q: pairs whose OUTPUT voxel is in q (the engine computing q does them);
- imbalance: max over parts of pairs / mean pairs per part (1.0 is perfectly even; the mean
  counts empty parts too, as an idle engine still costs time);
- halo fraction: pairs whose input voxel is in a different part than their output voxel,
  divided by all pairs (0 for a voxel-group map, where the group rule removes such pairs);
- halo voxels of part q: distinct input voxels outside q read by q's pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import SparseInputError
from accelsim.sparse.kmap import KernelMap
from accelsim.sparse.tensor import group_of


@dataclass(frozen=True)
class GroupStats:
    """Per-part work of a kernel map; see the module docstring for definitions."""

    pairs_per_part: np.ndarray  # int64 [parts]
    pairs_per_part_offset: np.ndarray  # int64 [parts, K**3]: P_k of each part's GEMMs
    voxels_per_part: np.ndarray  # int64 [parts] output voxels
    halo_voxels_per_part: np.ndarray  # int64 [parts]
    imbalance: float  # max / mean of pairs_per_part
    halo_fraction: float  # cross-part pairs / all pairs

    @property
    def parts(self) -> int:
        """Number of parts (groups or tiles)."""
        return int(self.pairs_per_part.shape[0])


def group_stats(kmap: KernelMap, part_in, part_out, parts: int | None = None) -> GroupStats:
    """Pairs, imbalance and halo of `kmap` for the partition (part_in [n_in], part_out [n_out]).

    parts: number of parts (default: largest id + 1).
    """
    pin = np.asarray(part_in, dtype=np.int64)
    pout = np.asarray(part_out, dtype=np.int64)
    if pin.shape != (kmap.n_in,) or pout.shape != (kmap.n_out,):
        raise SparseInputError(
            f"part ids: expected part_in [{kmap.n_in}] and part_out [{kmap.n_out}], "
            f"got {pin.shape} and {pout.shape}"
        )
    if (pin < 0).any() or (pout < 0).any():
        raise SparseInputError("part ids: expected non-negative part numbers")
    n_parts = int(max(pin.max(initial=0), pout.max(initial=0)) + 1) if parts is None else parts
    q_out = pout[kmap.out_index]
    q_in = pin[kmap.in_index]
    n_k = kmap.kernel_volume
    per_offset = np.bincount(q_out * n_k + kmap.offset, minlength=n_parts * n_k)
    per_offset = per_offset.astype(np.int64).reshape(n_parts, n_k)
    pairs = per_offset.sum(axis=1)
    voxels = np.bincount(pout, minlength=n_parts).astype(np.int64)
    cross = q_in != q_out
    halo_keys = np.unique(q_out[cross] * kmap.n_in + kmap.in_index[cross])
    halo = np.bincount(halo_keys // max(kmap.n_in, 1), minlength=n_parts).astype(np.int64)
    mean = pairs.sum() / n_parts
    return GroupStats(
        pairs,
        per_offset,
        voxels,
        halo,
        float(pairs.max() / mean) if mean else 1.0,
        float(cross.mean()) if cross.size else 0.0,
    )


def voxel_group_stats(kmap: KernelMap, in_coords) -> GroupStats:
    """`group_stats` with the kmap's own voxel groups `(a*x + b*y + c*z) mod G` as parts."""
    pin = group_of(in_coords, kmap.groups, kmap.group_coeffs)
    pout = group_of(kmap.out_coords, kmap.groups, kmap.group_coeffs)
    return group_stats(kmap, pin, pout, kmap.groups)


def group_stats_ref(kmap: KernelMap, part_in, part_out, parts: int) -> GroupStats:
    """Twin of `group_stats`, one pair at a time."""
    per_offset = np.zeros((parts, kmap.kernel_volume), dtype=np.int64)
    voxels = np.zeros(parts, dtype=np.int64)
    halo_sets = [set() for _ in range(parts)]
    cross = 0
    for o in range(kmap.n_out):
        voxels[part_out[o]] += 1
    for i, o, k in zip(kmap.in_index.tolist(), kmap.out_index.tolist(), kmap.offset.tolist()):
        per_offset[part_out[o], k] += 1
        if part_in[i] != part_out[o]:
            cross += 1
            halo_sets[part_out[o]].add(i)
    halo = np.array([len(h) for h in halo_sets], dtype=np.int64)
    pairs = per_offset.sum(axis=1)
    mean = pairs.sum() / parts
    return GroupStats(
        pairs,
        per_offset,
        voxels,
        halo,
        float(pairs.max() / mean) if mean else 1.0,
        cross / kmap.n_pairs if kmap.n_pairs else 0.0,
    )
