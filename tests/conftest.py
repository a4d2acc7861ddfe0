"""Fixtures shared by every test: the `edge` preset, a fixed-seed random generator and the
ImageNet networks (built once per session).

Plain helpers that tests call with arguments (random voxel sets, random operands, a memory with
tiles placed by hand, a unit without a SimPy process) are in `tests/helpers.py`; hand-written
instruction streams are in `tests/programs.py`.
"""

import numpy as np
import pytest

from accelsim.config import load_config


@pytest.fixture
def edge():
    """The `edge` preset: 16x16 Bit Fusion array, 500 MHz, LPDDR4-class DRAM."""
    return load_config("edge")


@pytest.fixture(scope="session")
def imagenet():
    """name -> the built-in ImageNet network at 224x224, 8/8 bits, seed 0, built on first use
    and shared by every test of the session (VGG-16 alone draws 138M weights)."""
    from workloads import imagenet as nets

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = getattr(nets, name)()
        return cache[name]

    return get


@pytest.fixture
def rng():
    """A fixed-seed generator per test."""
    return np.random.default_rng(1234)
