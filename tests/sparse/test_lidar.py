"""Procedural LiDAR scenes: size and determinism (generation time is reported by
benchmarks/bench_sparse.py, not asserted here)."""

import numba
import numpy as np
import pytest

from accelsim.sparse import check_sparse
from workloads.lidar import generate_scene


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="ray cast takes minutes as plain Python")
def test_scene_size_and_determinism():
    coords, feats = generate_scene(0)
    assert 80_000 <= coords.shape[0] <= 110_000
    check_sparse(coords, feats)  # unique, non-negative, matching lengths
    assert coords.dtype == np.int32 and feats.shape == (coords.shape[0], 4)
    again, _ = generate_scene(0)
    np.testing.assert_array_equal(coords, again)
    other, _ = generate_scene(1)
    assert 80_000 <= other.shape[0] <= 110_000 and not np.array_equal(coords[:100], other[:100])
