"""Fixtures for the sparse tests."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fixed-seed generator per test."""
    return np.random.default_rng(1234)
