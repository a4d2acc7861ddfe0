"""Shared helpers for unit tests: a memory with tiles placed by hand, and standalone units."""

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.memory import Memory
from accelsim.stats import Recorder


@pytest.fixture
def edge():
    return load_config("edge")


def make_mem(cfg, dram_size=0):
    return Memory(cfg, np.zeros(dram_size, np.int32))


def standalone(cls, cfg):
    """A unit with no SimPy process, for calling cycles/profile/run directly."""
    unit = cls(None, cfg, Recorder(1))
    return unit
