"""Sparse ReLU / Add / Concat / voxelisation / BEV collapse / group statistics vs their twins."""

import numpy as np
import pytest

from accelsim.errors import SparseInputError
from accelsim.sparse import (
    add,
    add_ref,
    concat,
    concat_ref,
    group_stats,
    group_stats_ref,
    kernel_map,
    relu,
    relu_ref,
    to_bev,
    to_bev_ref,
    voxel_group_stats,
    voxelize,
    voxelize_ref,
)
from tests.helpers import random_coords, random_operand


def test_relu(rng):
    x = random_operand(rng, (50, 6), 8)
    np.testing.assert_array_equal(relu(x), relu_ref(x))
    np.testing.assert_array_equal(relu(x, zero_point=3), relu_ref(x, zero_point=3))
    assert relu(x).dtype == x.dtype


def test_add_and_concat_align_permuted_coords(rng):
    coords = random_coords(rng, 60, extent=6, batches=2)
    perm = rng.permutation(60)
    a, b = random_operand(rng, (60, 4), 8), random_operand(rng, (60, 4), 8)
    got = add(coords, a, coords[perm], b[perm])
    np.testing.assert_array_equal(got, a.astype(np.int32) + b)
    np.testing.assert_array_equal(got, add_ref(coords, a, coords[perm], b[perm]))
    cat = concat(coords, a, coords[perm], b[perm, :3])
    np.testing.assert_array_equal(cat, np.concatenate([a, b[:, :3]], axis=1))
    np.testing.assert_array_equal(cat, concat_ref(coords, a, coords[perm], b[perm, :3]))


def test_add_needs_same_voxels(rng):
    coords = random_coords(rng, 20, extent=6, batches=2)
    other = coords.copy()
    other[0, 1] += 100
    f = np.zeros((20, 2), np.int8)
    with pytest.raises(SparseInputError, match="different active voxels"):
        add(coords, f, other, f)


@pytest.mark.parametrize("reduce", ["mean", "count"])
def test_voxelize(rng, reduce):
    pts = rng.uniform(0, 1.0, (400, 3))
    vals = rng.normal(size=(400, 2))
    c1, f1 = voxelize(pts, 0.25, values=vals, reduce=reduce, batch_index=1)
    c2, f2 = voxelize_ref(pts, 0.25, values=vals, reduce=reduce, batch_index=1)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_allclose(f1, f2, rtol=1e-12)  # float means: summation order differs
    assert c1.dtype == np.int32 and (c1[:, 0] == 1).all()
    if reduce == "count":
        assert f1.sum() == 400


def test_voxelize_rejects_points_below_origin():
    with pytest.raises(SparseInputError, match="below origin"):
        voxelize(np.array([[0.1, -0.2, 0.0]]), 0.05)


def test_to_bev_channel_order(rng):
    coords = random_coords(rng, 40, extent=4, batches=2)
    f = random_operand(rng, (40, 3), 8)
    bev = to_bev(coords, f, (2, 4, 4, 4))
    np.testing.assert_array_equal(bev, to_bev_ref(coords, f, (2, 4, 4, 4)))
    b, x, y, z = coords[0]
    np.testing.assert_array_equal(bev[b, x, y, [0 * 4 + z, 1 * 4 + z, 2 * 4 + z]], f[0])
    with pytest.raises(SparseInputError, match="outside grid"):
        to_bev(coords, f, (2, 4, 4, 3))


def test_group_stats(rng):
    coords = random_coords(rng, 200, extent=8, batches=2)
    km = kernel_map(coords, 3, cache=False)
    n = 5
    part = rng.integers(0, n, len(coords))  # any partition: spatial tiles, engines, ...
    got, ref = group_stats(km, part, part, n), group_stats_ref(km, part, part, n)
    np.testing.assert_array_equal(got.pairs_per_part, ref.pairs_per_part)
    np.testing.assert_array_equal(got.pairs_per_part_offset, ref.pairs_per_part_offset)
    np.testing.assert_array_equal(got.halo_voxels_per_part, ref.halo_voxels_per_part)
    np.testing.assert_array_equal(got.voxels_per_part, ref.voxels_per_part)
    assert got.imbalance == ref.imbalance and got.halo_fraction == ref.halo_fraction
    assert 0 < got.halo_fraction < 1
    grouped = voxel_group_stats(kernel_map(coords, 3, groups=4, cache=False), coords)
    assert grouped.parts == 4 and grouped.halo_fraction == 0.0
