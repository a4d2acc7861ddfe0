"""Procedural LiDAR scenes: size, determinism, speed."""

import time

import numba
import numpy as np
import pytest

from accelsim.sparse import check_sparse
from workloads.lidar import generate_scene


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="ray cast takes minutes as plain Python")
def test_scene_size_determinism_and_speed():
    generate_scene(0)  # warm the Numba cache
    start = time.perf_counter()
    coords, feats = generate_scene(0)
    elapsed_s = time.perf_counter() - start
    assert 80_000 <= coords.shape[0] <= 110_000
    assert elapsed_s < 3.0  # about 0.5 s on 2 cores; generous for loaded CI machines
    check_sparse(coords, feats)  # unique, non-negative, matching lengths
    assert coords.dtype == np.int32 and feats.shape == (coords.shape[0], 4)
    again, _ = generate_scene(0)
    np.testing.assert_array_equal(coords, again)
    other, _ = generate_scene(1)
    assert 80_000 <= other.shape[0] <= 110_000 and not np.array_equal(coords[:100], other[:100])
