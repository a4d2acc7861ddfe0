"""Helpers for the sparse tests: random small sparse tensors and operands."""

import itertools

import numpy as np


def random_coords(rng, n, extent=6, batches=2):
    """n distinct voxels drawn from a batches x extent**3 box, int32 [n, 4]."""
    grid = np.array(list(itertools.product(range(batches), *[range(extent)] * 3)), np.int32)
    return grid[np.sort(rng.choice(len(grid), n, replace=False))]


def random_operand(rng, shape, bits, mode="signed"):
    """Random integers of a `bits`-wide operand in the given mode, int8/uint8 or int32."""
    if mode == "bipolar":
        return rng.choice(np.array([-1, 1], np.int8), size=shape)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if mode == "signed" else (0, 2**bits)
    dtype = (np.int8 if mode == "signed" else np.uint8) if bits <= 8 else np.int32
    return rng.integers(lo, hi, size=shape).astype(dtype)
