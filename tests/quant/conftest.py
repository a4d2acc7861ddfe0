"""Fixtures shared by the training tests."""

import numpy as np
import pytest

from accelsim.quant.data import load_dataset
from accelsim.quant.layers import BatchNorm


@pytest.fixture(scope="session")
def digits():
    """The digits split (1,438 train / 359 test images)."""
    return load_dataset("digits")


def _randomise_bn(model, seed):
    """Give every BN non-trivial statistics (one negative gamma) as if trained."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, BatchNorm):
            c = m.gamma.value.size
            m.gamma.value = rng.uniform(0.5, 1.5, c).astype(np.float32)
            m.gamma.value[0] = -0.7
            m.beta.value = rng.normal(0, 0.2, c).astype(np.float32)
            m.running_mean = rng.normal(0, 0.5, c)
            m.running_var = rng.uniform(0.5, 2.0, c)


@pytest.fixture
def randomise_bn():
    """`randomise_bn(model, seed)`: trained-looking BN statistics, one gamma negative."""
    return _randomise_bn
