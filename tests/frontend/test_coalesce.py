"""`coalesce`: the DMA block with contiguous rows merged is the same elements in the same
order, in rows no longer than the d2 field holds, and never moves more DRAM bytes."""

import numpy as np
import pytest

from accelsim.frontend.emit import MAX_D2, coalesce, dma_bytes


def addresses(d0, d1, d2, s0, s1) -> np.ndarray:
    """DRAM element addresses of a block, in the order the DMA moves them (the definition)."""
    i, j, k = np.meshgrid(np.arange(d0), np.arange(d1), np.arange(d2), indexing="ij")
    return (i * s0 + j * s1 + k).ravel()


CASES = [
    (1, 4608, 16, 0, 16),  # layer4 3x3x512 weights, 16 channels: 73,728 elements
    (1, 9, 16, 0, 16),  # short: one row
    (1, 65537, 1, 0, 1),  # a prime count of one-element rows: they stay as they are
    (1, 70007, 1, 0, 1),  # 7 x 73 x 137 elements: 7 rows of 10,001
    (3, 4608, 16, 80000, 16),  # three separate contiguous runs
    (5000, 1, 20, 20, 0),  # rows along d0: 100,000 contiguous elements
    (7, 5, 3, 40, 3),  # not contiguous across d0
    (2, 3, 4, 12, 5),  # gaps between d1 rows
]


@pytest.mark.parametrize("block", CASES)
def test_same_elements_in_order(block):
    merged = coalesce(*block)
    assert merged[2] <= MAX_D2 or merged[2] == block[2]
    np.testing.assert_array_equal(addresses(*merged), addresses(*block))
    for bits in (1, 2, 3, 4, 8):
        assert dma_bytes(*merged[:3], bits) <= dma_bytes(*block[:3], bits)


def test_long_runs_split_into_few_rows():
    """73,728 contiguous weights: the largest divisor of 4,608 rows with q * 16 <= 65,535 is
    q = 2,304, so 2 rows of 36,864 elements (before: 4,608 rows of 16, one burst each)."""
    assert coalesce(1, 4608, 16, 0, 16)[:3] == (1, 2, 36864)
    assert coalesce(5000, 1, 20, 20, 0)[:3] == (2, 1, 50000)  # 2 x 2,500 rows of 20


def test_padded_rows_merge_only_within_a_row():
    """With left / right padding nothing merges: the pads sit between the d2 runs."""
    assert coalesce(2, 3, 4, 12, 4, (0, 0, 1, 0)) == (2, 3, 4, 12, 4)
    # top / bottom padding keeps d0 rows but a row's d1 runs still merge
    assert coalesce(2, 3, 4, 12, 4, (1, 0, 0, 0)) == (2, 1, 12, 12, 12)


def test_prime_run_stays():
    assert coalesce(1, 65537, 1, 0, 1) == (1, 65537, 1, 0, 1)
    assert coalesce(1, 70007, 1, 0, 1)[:3] == (1, 7, 10001)
