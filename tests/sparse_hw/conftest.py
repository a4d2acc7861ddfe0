"""Shared helpers for the sparse-engine tests: small random voxel sets and tiny graphs."""

import itertools

import numpy as np
import pytest

from accelsim.config import load_config


def random_coords(seed: int, n: int, extent: int = 8, batches: int = 1) -> np.ndarray:
    """n distinct voxels of a batches x extent**3 box, int32 [n, 4], canonical order."""
    rng = np.random.default_rng(seed)
    grid = np.array(list(itertools.product(range(batches), *[range(extent)] * 3)), np.int32)
    return grid[np.sort(rng.choice(len(grid), n, replace=False))]


def random_input(seed: int, n: int, channels: int = 4, **kw):
    """(coords, float features in metres-like units) for a sparse graph input."""
    coords = random_coords(seed, n, **kw)
    feats = np.random.default_rng(seed + 1).uniform(-8, 8, (n, channels))
    return coords, feats


@pytest.fixture
def edge():
    return load_config("edge")
