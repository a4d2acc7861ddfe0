"""The ImageNet networks at 224x224, built once per test session (VGG-16 alone draws 138M
weights) and shared by the shape and SCALE-Sim tests."""

import pytest

from accelsim.ir.reference import JIT_ENABLED

# Without JIT the kernels' argument checks loop over every element in Python: calibrating a
# 224x224 network takes many minutes there, so the coverage job skips these tests.
needs_jit = pytest.mark.skipif(not JIT_ENABLED, reason="ImageNet builds are slow without JIT")


@pytest.fixture(scope="session")
def imagenet():
    """name -> the built-in network at 224x224, 8/8 bits, seed 0 (built on first use)."""
    from workloads import imagenet as nets

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = getattr(nets, name)()
        return cache[name]

    return get
