"""SVG_MAP datapath: the hash map builder against its NumPy definition, pair for pair, on random
voxel sets and tile windows; both against the brute-force kernel map of the front end."""

import numpy as np
import pytest

from accelsim import sparse as sp
from accelsim.errors import SparseInputError
from accelsim.sparse.map_builder import tile_map, tile_map_ref
from tests.helpers import random_coords

IMPLS = [tile_map, tile_map_ref]

# name -> (kernel, stride, dilation, groups, coeffs, transposed)
GEOMETRIES = {
    "subm_k3": (3, 1, 1, 1, (1, 2, 3), False),
    "subm_k1": (1, 1, 1, 1, (1, 2, 3), False),
    "subm_k5": (5, 1, 1, 1, (1, 2, 3), False),
    "dilated_k3_d2": (3, 1, 2, 1, (1, 2, 3), False),
    "grouped_g2": (3, 1, 1, 2, (1, 2, 3), False),
    "grouped_g4": (3, 1, 1, 4, (1, 2, 3), False),
    "grouped_g8_coeffs": (3, 1, 1, 8, (3, 1, 2), False),
    "grouped_dilated": (3, 1, 2, 4, (1, 2, 3), False),
    "strided_k2_s2": (2, 2, 1, 1, (1, 2, 3), False),
    "strided_k3_s2": (3, 2, 1, 1, (1, 2, 3), False),
    "strided_k3_s3": (3, 3, 1, 1, (1, 2, 3), False),
    "transposed_k2_s2": (2, 2, 1, 1, (1, 2, 3), True),
    "transposed_k3_s2": (3, 2, 1, 1, (1, 2, 3), True),
}


def _voxel_sets(rng, geometry, n=160, extent=8):
    """(input coords, output coords) of a whole layer: outputs are the inputs (stride 1), the
    downsampled inputs (strided), or, transposed, the fine voxels of the coarse inputs."""
    _, stride, _, _, _, transposed = geometry
    fine = random_coords(rng, n, extent=extent, batches=2)
    if stride == 1:
        return fine, fine
    coarse = sp.downsample_coords(fine, stride)
    return (coarse, fine) if transposed else (fine, coarse)


@pytest.mark.parametrize("name", GEOMETRIES)
def test_hash_map_equals_definition(rng, name):
    """Whole voxel sets, then tile windows: a random output tile with a random input window
    that misses some of its neighbours, rows in shuffled order (as a window loaded in group
    order holds them)."""
    geo = GEOMETRIES[name]
    cin, cout = _voxel_sets(rng, geo)
    got = tile_map(cin, cout, *geo)
    assert got.dtype == np.int32 and got.shape[1] == 3 and got.shape[0] > 0
    np.testing.assert_array_equal(got, tile_map_ref(cin, cout, *geo))
    for _ in range(4):
        win = cin[rng.permutation(len(cin))[: rng.integers(1, len(cin) + 1)]]
        tile = cout[np.sort(rng.choice(len(cout), rng.integers(1, len(cout) + 1), replace=False))]
        np.testing.assert_array_equal(tile_map(win, tile, *geo), tile_map_ref(win, tile, *geo))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", GEOMETRIES)
def test_map_equals_front_end_kernel_map(rng, impl, name):
    """Over whole voxel sets the tile map is the front end's map (`kernel_map_ref`, brute force)."""
    kernel, stride, dilation, groups, coeffs, transposed = geo = GEOMETRIES[name]
    cin, cout = _voxel_sets(rng, geo, n=90, extent=7)
    ref = sp.kernel_map_ref(
        cin, kernel, stride, dilation, groups, coeffs, transposed, out_coords=cout
    )
    want = np.stack([ref.in_index, ref.out_index, ref.offset], axis=1)
    np.testing.assert_array_equal(impl(cin, cout, *geo), want)


@pytest.mark.parametrize("impl", IMPLS)
def test_pairs_by_hand(impl):
    """Inputs (0,1,1,1), (0,1,1,2), (0,5,5,5) and (1,1,1,2); outputs the first two. 3x3x3
    submanifold: offset k = 9*(dx+1) + 3*(dy+1) + (dz+1). Output 0 (z=1) sees input 0 at the
    centre (k 13) and input 1 at dz=+1 (k 14); output 1 (z=2) sees input 0 at dz=-1 (k 12) and
    itself (k 13). Input 2 is too far; input 3 is in batch 1. Order: by offset, then output."""
    cin = [[0, 1, 1, 1], [0, 1, 1, 2], [0, 5, 5, 5], [1, 1, 1, 2]]
    got = impl(cin, cin[:2], 3, 1, 1, 1, (1, 2, 3), False)
    np.testing.assert_array_equal(got, [[0, 1, 12], [0, 0, 13], [1, 1, 13], [1, 0, 14]])
    # G = 2, (1, 2, 3): groups of the two voxels are 6 % 2 = 0 and 9 % 2 = 1: only the centres
    got = impl(cin, cin[:2], 3, 1, 1, 2, (1, 2, 3), False)
    np.testing.assert_array_equal(got, [[0, 0, 13], [1, 1, 13]])


@pytest.mark.parametrize("impl", IMPLS)
def test_transposed_by_hand(impl):
    """k2 s2 transposed, taps rel = 0 or 1 per axis (offset k = 4*tx + 2*ty + tz): coarse voxel
    (0,1,1,1) feeds the fine voxels 2 + t per axis; (0,2,3,3) = 2*1 + (0,1,1) is offset 3 and
    (0,3,2,2) is offset 4; (0,4,2,2) has no coarse parent in the set."""
    coarse = [[0, 1, 1, 1]]
    fine = [[0, 2, 3, 3], [0, 3, 2, 2], [0, 4, 2, 2]]
    got = impl(coarse, fine, 2, 2, 1, 1, (1, 2, 3), True)
    np.testing.assert_array_equal(got, [[0, 0, 3], [0, 1, 4]])


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_tile_and_repeated_coordinates(impl):
    c = np.array([[0, 1, 1, 1], [0, 2, 1, 1]])
    assert impl(c, c[:0], 3, 1, 1, 1, (1, 2, 3), False).shape == (0, 3)
    with pytest.raises(SparseInputError, match=r"window: duplicate coordinate .* rows 0 and 2"):
        impl(np.vstack([c, c[:1]]), c, 3, 1, 1, 1, (1, 2, 3), False)
