"""Minimal graphs that the graph fuzzer (`tests/fuzz/test_properties.py`,
`workloads/fuzz_graphs.py`) found running wrong or refused, written out by hand: each must now
give exactly the IR reference's integers in every layer."""

import numpy as np
import pytest

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


def test_outputs_that_read_only_padding():
    """A 1x1 conv on a 3x1 input padded (0, 1, 2, 1): output row 3 and columns 0, 1 and 3
    read only padding (their value is rescale(bias)). With 512 bytes of ACC a tile is one
    output row of 4 pixels x 16 channels, so row 3's tile had nothing to load (a LOAD reads at
    least one element). That padding now sits in a DRAM copy of the input."""
    b, x, inp = _net((1, 3, 1, 2), bits=4)
    y = b.conv(x, 16, 1, padding=(0, 1, 2, 1), w_bits=3, bits=6, signed=True, relu=False)
    res = _exact(b.finish(y), inp, ["buffers.acc_bytes=512"])
    assert res.outputs[y].shape == (1, 4, 4, 16)


def test_padding_wider_than_the_load_pad_fields():
    """Padding 17 on top and 16 on the right exceeds the LOAD's 4-bit pad fields (15)."""
    b, x, inp = _net((1, 2, 2, 3), bits=3, signed=True)
    y = b.conv(x, 2, 3, padding=(17, 0, 0, 16), w_bits=4, bits=4)
    res = _exact(b.finish(y), inp)
    assert res.outputs[y].shape == (1, 17, 16, 2)


def test_different_vertical_and_horizontal_stride():
    """Stride (1, 3): the GEMM has one stride field, so tiles are one output row."""
    b, x, inp = _net((2, 5, 7, 2))
    y = b.conv(x, 3, (3, 2), stride=(1, 3), padding=(1, 1, 0, 1), w_bits=2, bits=3)
    _exact(b.finish(y), inp, ["matmul.rows=3", "buffers.inp_bytes=1024"])


def test_different_vertical_and_horizontal_dilation():
    """Dilation (2, 1) with stride (1, 2): one output pixel per tile, its taps gathered by the
    LOAD's strides, all padding in DRAM."""
    b, x, inp = _net((1, 5, 6, 3), bits=6, signed=True)
    y = b.conv(x, 4, 3, stride=(1, 2), dilation=(2, 1), padding=(2, 3, 1, 0), w_bits=1, bits=5)
    _exact(b.finish(y), inp)


def test_average_pool_with_padding_divides_by_the_elements_inside():
    """AvgPool 3x3 stride 1 pad 1 (ONNX count_include_pad=0): border outputs average 4 or 6
    elements. It was refused; now each border row / column is pooled over its clipped window
    with the multiplier of its own element count."""
    b, x, inp = _net((2, 4, 5, 3))
    y = b.avgpool(x, 3, 1, 1, bits=6)
    _exact(b.finish(y), inp, ["vector.lanes=3"])


def test_pooling_windows_wider_than_the_alu_fields():
    """A 17x3 max pool and a 16x17 average pool (the ALU's kh / kw fields hold 15): the max
    is taken over sub-windows combined with MAX, the average by one GAP per output pixel."""
    b, x, inp = _net((1, 9, 4, 2), bits=7, signed=True)
    m = b.maxpool(x, (17, 3), (1, 1), (8, 8, 1, 1))
    a = b.avgpool(x, (16, 17), (2, 3), (7, 8, 8, 8), bits=8)
    res = _exact(b.finish(m, a), inp)
    assert res.outputs[m].shape == (1, 9, 4, 2) and res.outputs[a].shape == (1, 5, 2, 2)


def test_pooling_with_different_strides_and_a_wide_plane():
    """A 2x3 max pool with stride (1, 2) (one ALU stride field: one output row per tile), and
    a global average pool over a 16x18 plane (its kh / kw fields were set to the plane)."""
    b, x, inp = _net((1, 16, 18, 2), bits=4)
    m = b.maxpool(x, (2, 3), (1, 2), (1, 0, 2, 2))
    gap = b.global_avgpool(x, bits=5)
    _exact(b.finish(m, gap), inp)


def test_concat_requantization_parameters_fit_a_small_param_buffer():
    """A requantized concat input of 6 channels with 96 bytes of PARAM: its 6 x 96 bits of
    parameters were loaded at once into a 384-bit PARAM slot."""
    b, x, inp = _net((1, 3, 4, 3), bits=6, signed=True)
    y = b.conv(x, 6, 1, w_bits=4, bits=4)
    z = b.concat([x, y], bits=6, signed=True)
    _exact(b.finish(z), inp, ["buffers.param_bytes=96", "matmul.cols=4"])


def test_channel_tiles_narrower_than_the_array_when_param_is_small():
    """A 5-output linear layer on a 32-column array with 96 bytes of 256-bit PARAM rows: a
    PARAM slot holds the parameters of 2 channels, and channel tiles were never narrower
    than the array (refused as not fitting)."""
    b, x, inp = _net((2, 7), bits=8, signed=True)
    y = b.linear(x, 5, w_bits=4, bits=6)
    overrides = ["matmul.cols=32", "buffers.row_bits=256", "buffers.param_bytes=96"]
    _exact(b.finish(y), inp, overrides)


def test_shrunk_one_pixel_average_pool_padded_on_the_right():
    """Hypothesis's minimal refused graph for padded average pooling: a 1x2 window over one
    pixel padded by one column on the right averages one element."""
    b, x, inp = _net((1, 1, 1, 1), bits=8)
    y = b.avgpool(x, (1, 2), 1, (0, 0, 0, 1), bits=8)
    _exact(b.finish(y), inp)


def test_shrunk_one_pixel_max_pool_seventeen_wide():
    """Hypothesis's minimal graph for a window wider than the ALU field: a 1x17 max pool over
    one pixel padded by 16 on the right (also past the LOAD's pad field)."""
    b, x, inp = _net((1, 1, 1, 1), bits=8)
    y = b.maxpool(x, (1, 17), 1, (0, 0, 0, 16))
    _exact(b.finish(y), inp)


def test_shrunk_one_pixel_conv_padded_sixteen_on_the_right():
    """Hypothesis's minimal graph for padding past the LOAD's 4-bit fields: a 1x1 conv on one
    pixel padded by 16 on the right; output columns 1..16 read only padding."""
    b, x, inp = _net((1, 1, 1, 1), bits=8)
    y = b.conv(x, 1, 1, padding=(0, 0, 0, 16), w_bits=8, bits=8, relu=False)
    res = _exact(b.finish(y), inp)
    assert res.outputs[y].shape == (1, 1, 17, 1)


def _sparse(c_in, convs, n_voxels=40, side=6, seed=0):
    """A SparseGraph: 8-bit signed input features of c_in channels, then one SparseConv per
    (c_out, kernel, stride, transposed, groups, group_coeffs) in `convs`, 8-bit unsigned, on
    n_voxels distinct random voxels of a side^3 box; returns (graph, (coords, features))."""
    from accelsim.ir.sparse_ops import SparseConv, SparseGraph, SparseQuantize, SparseTensor

    rng = np.random.default_rng(seed)
    tensors = {
        "features": SparseTensor("features", c_in, 32, "float", 1.0, 0, "s0"),
        "x": SparseTensor("x", c_in, 8, "signed", 0.25, 0, "s0"),
    }
    nodes, x, sets = [SparseQuantize(name="quant", inputs=("features",), output="x")], "x", ["s0"]
    for i, (c_out, k, stride, transposed, groups, coeffs) in enumerate(convs):
        src = tensors[x]
        coord_set = f"s{len(sets)}" if stride > 1 and not transposed else src.coord_set
        if transposed:
            coord_set = sets[-2]
        elif stride > 1:
            sets.append(coord_set)
        y = f"y{i}"
        tensors[y] = SparseTensor(y, c_out, 8, "unsigned", 0.5, 0, coord_set)
        w = rng.integers(-3, 4, (k**3, src.channels, c_out)).astype(np.int8)
        nodes.append(
            SparseConv(
                name=y,
                inputs=(x,),
                output=y,
                weight=w,
                w_bits=3,
                w_scale=0.05,
                stride=stride,
                transposed=transposed,
                groups=groups,
                group_coeffs=coeffs,
                relu=True,
            )  # fmt: skip
        )
        x = y
    g = SparseGraph("regression_sparse", tensors, nodes, "features", [x])
    cells = rng.choice(side**3, n_voxels, replace=False)
    coords = np.stack([np.zeros_like(cells), *np.unravel_index(cells, (side,) * 3)], axis=1)
    return g, (coords.astype(np.int32), rng.standard_normal((n_voxels, c_in)))


def test_sparse_group_coefficients_beyond_the_fields():
    """Shrunk by Hypothesis: G = 1 with coefficients (3, -1, 2); the SVG_MAP field gb got -1.
    Coefficients are taken mod G (here all 0), and 17 and 40 mod 5 fit the 4-bit fields."""
    g, x = _sparse(1, [(1, 2, 2, False, None, None)])
    _exact(g, x, ["svge.groups=1", "svge.group_coeffs=[3, -1, 2]"])
    g, x = _sparse(2, [(2, 3, 1, False, 5, (17, 5, 40))])
    _exact(g, x)


def test_sparse_window_padding_stops_at_the_tensor_end():
    """Hypothesis's shrunk case: two strided convs with G = 2. A window segment padded to
    whole rows ran past the last voxel, so the COORD LOAD read the next DRAM block as
    coordinates (here: the map has 8 pairs, the instruction says 6; elsewhere duplicate or
    negative coordinates)."""
    convs = [(1, 2, 2, False, 1, None), (1, 2, 2, False, None, None)]
    g, x = _sparse(1, convs, n_voxels=20, side=4, seed=4)
    _exact(g, x, ["svge.groups=2"])


def test_sparse_channel_tiles_fit_param_and_windows_slice_input_channels():
    """96 bytes of 256-bit PARAM rows hold the rescale parameters of 2 channels (a 3-channel
    tile overflowed its slot); 15-channel windows in 1 KB of 96-bit INP rows shared by 2
    engines do not fit even for one output voxel (refused before), so the conv takes 8 input
    channels at a time."""
    g, x = _sparse(2, [(3, 3, 1, False, None, None)])
    _exact(g, x, ["buffers.row_bits=256", "buffers.param_bytes=96"])
    g, x = _sparse(15, [(1, 3, 1, False, 2, None)], n_voxels=300, side=8)
    overrides = ["buffers.row_bits=96", "buffers.inp_bytes=1024", "svge.groups=6"]
    res = _exact(g, x, overrides)
    convs = [i for i in res.program.insns if i.op.name == "SVG_CONV"]
    assert {i.cin for i in convs} == {8, 7}


def test_linear_layers_reading_one_tensor_with_other_row_tiles():
    """From the 10,000-case run: two linear layers read the same [7, 12] tensor, the first in
    tiles of 5 rows, the second of 7. The input block's key named only its first row and
    channel, so the second layer took the resident 5-row block for its 7 rows."""
    b, x, inp = _net((7, 12), bits=3, signed=True)
    y1 = b.linear(x, 12, w_bits=5, bits=1)
    y2 = b.linear(x, 12, w_bits=5, bits=4)
    overrides = ["matmul.cols=3", "buffers.row_bits=64", "buffers.acc_bytes=512"]
    res = _exact(b.finish(y1, y2), inp, overrides)
    assert res.program.meta["plans"][y1] != res.program.meta["plans"][y2]


def test_matmul_operands_wider_than_the_macs_are_refused_by_name():
    """From the 10,000-case run: a MatMul's 7-bit second operand on MACs of at most 4 bits
    failed in the simulator without naming the node; the lowering now refuses it."""
    from accelsim.errors import HardwareLimitError
    from accelsim.ir.transformer_builder import TransformerBuilder

    rng = np.random.default_rng(0)
    b = TransformerBuilder("t", (3, 4), rng, calib_batch=3)
    x = b.quantize(4, signed=True)
    y = b.matmul(x, b.linear(x, 4, w_bits=4, bits=7), heads=2, transpose_b=True, bits=8)
    with pytest.raises(HardwareLimitError, match=r"'matmul1'.*matmul.max_bits = 4"):
        _exact(b.finish(y), rng.standard_normal((3, 4)), ["matmul.max_bits=4"])
