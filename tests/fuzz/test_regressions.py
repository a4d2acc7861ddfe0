"""Minimal graphs that the graph fuzzer (`tests/fuzz/test_properties.py`,
`workloads/fuzz_graphs.py`) found running wrong or refused, written out by hand: each must now
give exactly the IR reference's integers in every layer."""

import numpy as np

from accelsim.config import load_config
from accelsim.ir.builder import GraphBuilder
from accelsim.runner import run_model


def _exact(graph, x, overrides=()):
    res = run_model(graph, load_config("edge", list(overrides)), x, check=True)
    assert res.check_ok, res.check_message
    return res


def _net(shape, seed=0, bits=5, signed=False):
    rng = np.random.default_rng(seed)
    b = GraphBuilder("regression", shape, rng)
    return b, b.quantize(bits, signed=signed), rng.standard_normal(shape)


def test_padded_one_column_input_is_not_merged_into_one_row():
    """Issue 15's seed 7 draw 16: a 1x1 conv on a 1-wide input padded on the left. The patch
    LOAD is 3 rows of one pixel; merging them into one 21-element row (fine without padding)
    put the left padding in front of the merged row instead of in front of each pixel."""
    b, x, inp = _net((2, 3, 1, 7))
    y = b.conv(x, 7, 1, padding=(0, 0, 1, 0), w_bits=4, bits=5)
    _exact(b.finish(y), inp)


def test_grouped_conv_reads_each_groups_own_input_channels():
    """A grouped (not depthwise) conv: group 1's input patch has the same position as group
    0's, and the patch was taken as still resident, so group 1 computed on group 0's
    channels."""
    b, x, inp = _net((1, 4, 4, 4), bits=3, signed=True)
    y = b.conv(x, 4, 1, padding=0, groups=2, w_bits=5, bits=8)
    _exact(b.finish(y), inp)
