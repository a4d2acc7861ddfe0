"""SCALE-Sim's compute-cycle formulas and the JIT mark of the ImageNet tests (the networks
themselves come from the session fixture `imagenet` of tests/conftest.py)."""

import math

import pytest

from accelsim.ir.reference import JIT_ENABLED

# Without JIT the kernels' argument checks loop over every element in Python: calibrating a
# 224x224 network takes many minutes there, so the coverage job skips these tests.
needs_jit = pytest.mark.skipif(not JIT_ENABLED, reason="ImageNet builds are slow without JIT")


SCALESIM_ARRAY = 32  # rows R = columns C of the scalesim32 preset


def scalesim_cycles(dataflow: str, m: int, k: int, n: int, r: int = SCALESIM_ARRAY) -> int:
    """SCALE-Sim's compute cycles of one (M x K) . (K x N) GEMM on an r x r array
    (DESIGN.md "Cost model", written out here independently of `accelsim.units.matmul`):
    OS ceil(M/R) ceil(N/C) (K + R + C - 2), WS ceil(K/R) ceil(N/C) (M + 2R + C - 2),
    IS ceil(K/R) ceil(M/C) (N + 2R + C - 2)."""
    c = r
    if dataflow == "os":
        return math.ceil(m / r) * math.ceil(n / c) * (k + r + c - 2)
    if dataflow == "ws":
        return math.ceil(k / r) * math.ceil(n / c) * (m + 2 * r + c - 2)
    if dataflow == "is":
        return math.ceil(k / r) * math.ceil(m / c) * (n + 2 * r + c - 2)
    raise ValueError(dataflow)
