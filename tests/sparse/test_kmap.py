"""Kernel maps: hash kernel vs brute-force twin, offset numbering, groups, cache, inverse."""

import numpy as np
import pytest

from accelsim.sparse import (
    downsample_coords,
    group_offsets,
    kernel_map,
    kernel_map_ref,
    tap_offsets,
)
from tests.helpers import random_coords

FIELDS = (
    "in_index",
    "out_index",
    "offset",
    "pairs_per_offset",
    "offset_start",
    "out_coords",
    "neighbors",
)
# (kernel_size, stride, dilation, transposed): every conv the engine runs
GEOMETRIES = [
    (1, 1, 1, False),
    (3, 1, 1, False),
    (3, 1, 2, False),
    (2, 2, 1, False),
    (3, 2, 1, False),
    (2, 2, 1, True),
    (3, 2, 1, True),
]


def _maps(coords, ks, s, d, g, tr):
    if tr:
        coarse = downsample_coords(coords, s)
        args = {"transposed": True, "out_coords": coords}
        return (
            kernel_map(coarse, ks, s, d, g, cache=False, **args),
            kernel_map_ref(coarse, ks, s, d, g, **args),
        )
    return kernel_map(coords, ks, s, d, g, cache=False), kernel_map_ref(coords, ks, s, d, g)


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
@pytest.mark.parametrize("ks,s,d,tr", GEOMETRIES)
def test_kernel_map_equals_brute_force(rng, ks, s, d, tr, groups):
    coords = random_coords(rng, 150, extent=6, batches=2)
    fast, ref = _maps(coords, ks, s, d, groups, tr)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)
    assert fast.n_pairs == int(fast.pairs_per_offset.sum())
    assert np.all(np.diff(fast.offset) >= 0)  # sorted by offset


@pytest.mark.parametrize("groups,kept", [(1, 27), (2, 15), (4, 7), (8, 3)])
def test_group_rule_keeps_27_15_7_3_offsets(groups, kept):
    assert len(group_offsets(3, 1, groups, (1, 2, 3))) == kept
    # on a full 5x5x5 block every allowed offset occurs and no other
    full = np.array([(0, x, y, z) for x in range(5) for y in range(5) for z in range(5)], np.int32)
    km = kernel_map(full, 3, groups=groups, cache=False)
    np.testing.assert_array_equal(np.flatnonzero(km.pairs_per_offset), group_offsets(3, 1, groups))


def test_offsets_numbered_row_major_from_minus_r():
    d = tap_offsets(3)
    np.testing.assert_array_equal(d[0], [-1, -1, -1])
    np.testing.assert_array_equal(d[13], [0, 0, 0])
    np.testing.assert_array_equal(d[22], [1, 0, 0])  # (tx, ty, tz) = (2, 1, 1) -> 2*9 + 3 + 1
    coords = np.array([[0, 0, 0, 0], [0, 1, 0, 0]], np.int32)
    km = kernel_map(coords, 3, cache=False)
    pairs = set(zip(km.in_index.tolist(), km.out_index.tolist(), km.offset.tolist()))
    assert pairs == {(0, 0, 13), (1, 1, 13), (1, 0, 22), (0, 1, 4)}  # in = out + d[k]


def test_strided_output_is_unique_floor():
    coords = np.array([[0, 0, 0, 0], [0, 1, 1, 1], [0, 2, 0, 3], [1, 3, 3, 3]], np.int32)
    km = kernel_map(coords, 2, 2, cache=False)
    np.testing.assert_array_equal(km.out_coords, [[0, 0, 0, 0], [0, 1, 0, 1], [1, 1, 1, 1]])
    np.testing.assert_array_equal(km.pairs_per_offset.sum(), 4)  # k=2, s=2: one pair per input


def test_transposed_map_is_inverse_of_strided(rng):
    fine = random_coords(rng, 120, extent=6, batches=2)
    down = kernel_map(fine, 3, 2, cache=False)
    up = kernel_map(down.out_coords, 3, 2, transposed=True, out_coords=fine, cache=False)
    fwd = set(zip(down.in_index.tolist(), down.out_index.tolist(), down.offset.tolist()))
    inv = set(zip(up.out_index.tolist(), up.in_index.tolist(), up.offset.tolist()))
    assert fwd == inv and len(fwd) == up.n_pairs


def test_cache_by_coordinate_content(rng):
    coords = random_coords(rng, 80, extent=6, batches=2)
    a = kernel_map(coords, 3, groups=2)
    assert kernel_map(coords.copy(), 3, groups=2) is a
    assert kernel_map(coords, 3, groups=4) is not a
    assert kernel_map(coords, 3, groups=2, cache=False) is not a
    assert not a.in_index.flags.writeable


@pytest.mark.parametrize("ks,d,groups", [(3, 1, 1), (3, 2, 4), (5, 1, 2), (1, 1, 1)])
def test_unsorted_coords_submanifold(rng, ks, d, groups):
    """The submanifold path sorts voxels into columns internally; row numbers must not move."""
    coords = random_coords(rng, 160, extent=7, batches=2)[rng.permutation(160)]
    fast = kernel_map(coords, ks, 1, d, groups, cache=False)
    ref = kernel_map_ref(coords, ks, 1, d, groups)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)
