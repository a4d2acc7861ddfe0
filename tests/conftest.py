"""Fixtures shared by every test: the `edge` preset and a fixed-seed random generator.

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


@pytest.fixture
def rng():
    """A fixed-seed generator per test."""
    return np.random.default_rng(1234)
