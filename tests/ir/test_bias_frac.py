"""Bias fractional bits in the IR: the importer's choice of F (`fold.bias_frac`), the folded
RESCALE parameters (`params.rescale_params`), the node check, and the machine equal to the IR
reference with F > 0 in every rounding mode and multiplier width (dense and sparse convs)."""

import itertools

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.errors import ModelFormatError
from accelsim.ir import (
    Graph,
    QuantConv2d,
    Quantize,
    QuantLinear,
    TensorInfo,
    rescale_params,
    run_reference,
)
from accelsim.ir.fold import acc_bounds, add_offset, bias_frac
from accelsim.numeric import BIAS_FRAC_MAX, INT32_MAX, INT32_MIN
from accelsim.runner import run_model
from tests.helpers import random_input, with_fractional_biases
from workloads.dense import small_cnn
from workloads.sparse_nets import sparse_tiny


def _linear(weight, bias=None, frac=0):
    return QuantLinear(
        name="fc",
        inputs=("x",),
        output="y",
        weight=np.asarray(weight, np.int8),
        w_bits=8,
        w_scale=0.5,
        bias=bias,
        bias_frac_bits=frac,
    )


def _graph(op, src, out_scale, validate=True):
    """A graph input -> Quantize -> `op` ("x" has src's quantization, "y" 8-bit signed)."""
    k = op.weight.shape[0]
    src = TensorInfo("x", (1, k), src.bits, src.mode, src.scale, src.zero_point)
    tensors = {
        "input": TensorInfo("input", (1, k), 32, "float"),
        "x": src,
        "y": TensorInfo("y", (1, op.cout), 8, "signed", out_scale, 0),
    }
    g = Graph("t", tensors, [Quantize(name="q", inputs=("input",), output="x"), op], "input", ["y"])
    if validate:
        g.validate()
    return g


def test_acc_bounds_are_the_extremes_over_every_input():
    """2-bit unsigned input with zero point 1 (x - zp in -1..2), three inputs: all 64 inputs
    enumerated give the same least and greatest sum of (x - zp) * w per channel."""
    w = np.array([[3, -2], [-1, 4], [2, -5]])
    src = TensorInfo("x", (1, 3), 2, "unsigned", 0.25, 1)
    lo, hi = acc_bounds(_linear(w), src)
    sums = [(np.array(x) - 1) @ w for x in itertools.product(range(4), repeat=3)]
    np.testing.assert_array_equal(lo, np.min(sums, axis=0))
    np.testing.assert_array_equal(hi, np.max(sums, axis=0))


def test_fraction_bits_follow_the_bias_precision():
    """Whole units (to float32 precision) keep F = 0; k / 8 needs F = 3; 0.1 is no dyadic
    fraction, so a small layer takes every bit the field has (BIAS_FRAC_MAX = 15). F is the
    smallest F within half the finest step 2**-16: 0.3 alone gets 14, as
    |rint(0.3 * 2**14) - 0.3 * 2**14| = 0.2 <= 2**14 * 2**-16."""
    op = _linear([[3, -2], [-1, 4], [2, -5]])
    src = TensorInfo("x", (1, 3), 8, "signed", 0.25, 0)
    f, b = bias_frac(op, np.array([3.0, -7.0]) * (1 + 2.0**-24), src)
    assert f == 0 and b.tolist() == [3, -7]
    f, b = bias_frac(op, np.array([0.375, -1.125]), src)
    assert f == 3 and b.tolist() == [3, -9]
    f, b = bias_frac(op, np.array([0.1, -1.7]), src)
    assert f == BIAS_FRAC_MAX
    np.testing.assert_array_equal(b, np.rint(np.array([0.1, -1.7]) * 2**BIAS_FRAC_MAX))
    assert bias_frac(op, np.array([0.3]), src)[0] == 14


def test_fraction_bits_stop_where_the_adder_could_saturate():
    """8-bit x 8-bit, 512 inputs of weight -128: acc reaches 512 * 128 * 128 = 2**23, so
    with bias 0.3 units (rint(0.3 * 2**F)) (acc << F) + bias fits int32 for F = 7
    (2**30 + 38) and not for F = 8 (2**31 + 77 > INT32_MAX)."""
    op = _linear(np.full((512, 1), -128))
    src = TensorInfo("x", (1, 512), 8, "signed", 0.25, 0)
    lo, hi = acc_bounds(op, src)
    assert (int(lo[0]), int(hi[0])) == (-(2**23) + 2**16, 2**23)
    f, b = bias_frac(op, np.array([0.3]), src)
    assert f == 7
    assert (hi[0] << 7) + b[0] <= INT32_MAX and (lo[0] << 7) + b[0] >= INT32_MIN
    assert b[0] == 38 and (hi[0] << 8) + np.rint(0.3 * 2**8) > INT32_MAX


def test_add_offset_without_the_input_keeps_whole_units():
    """The native BatchNorm fold (no input tensor given) rounds to whole units as before; with
    the input it keeps the fraction."""
    op = _linear([[3, -2], [-1, 4], [2, -5]], bias=np.array([1, 2], np.int32))
    src = TensorInfo("x", (1, 3), 8, "signed", 0.25, 0)
    whole = add_offset(op, np.array([0.3, 0.1]) * 0.125, 0.25, "t")
    assert whole.bias_frac_bits == 0 and whole.bias.tolist() == [1, 2]  # 0.3 and 0.1 round to 0
    fine = add_offset(op, np.array([0.25, 0.125]) * 0.125, 0.25, "t", src=src)
    assert fine.bias_frac_bits == 3 and fine.bias.tolist() == [10, 17]  # 1.25, 2.125 units


def test_rescale_params_fold_the_zero_point_at_the_fraction():
    """bias'_c = bias_c - zp_in * sum_k w[k, c] * 2**F with F = 4 and zp_in = 3."""
    w = np.array([[3, -2], [-1, 4], [2, -5]])
    op = _linear(w, bias=np.array([5, -9], np.int32), frac=4)
    g = _graph(op, TensorInfo("x", (1, 3), 8, "unsigned", 0.25, 3), 0.5)
    rp = rescale_params(op, g)
    assert rp.frac == 4 and rp.kwargs()["frac"] == 4
    assert rp.bias.tolist() == [5 - 3 * 4 * 16, -9 - 3 * (-3) * 16]


def test_rescale_params_lower_the_fraction_to_fit_the_shifter():
    """M = 0.25 * 0.5 / 2**23 = 2**-26 is mult 2**30 with shift 56 at 32 bits: only 62 - 56 = 6
    of the op's 8 fraction bits fit, so the bias drops 2 bits rounding half to even:
    6 / 4 = 1.5 -> 2, 10 / 4 = 2.5 -> 2, -6 / 4 = -1.5 -> -2. At 16 bits the shift is 40
    and all 8 bits stay."""
    op = _linear(np.ones((2, 3)), bias=np.array([6, 10, -6], np.int32), frac=8)
    g = _graph(op, TensorInfo("x", (1, 2), 8, "signed", 0.25, 0), 2.0**23)
    rp = rescale_params(op, g, 32)
    assert (int(rp.mult[0]), int(rp.shift[0]), rp.frac) == (2**30, 56, 6)
    assert rp.bias.tolist() == [2, 2, -2]
    rp16 = rescale_params(op, g, 16)
    assert (int(rp16.shift[0]), rp16.frac, rp16.bias.tolist()) == (40, 8, [6, 10, -6])


def test_bias_fraction_bits_are_checked():
    op = _linear([[1]], frac=BIAS_FRAC_MAX + 1)
    g = _graph(op, TensorInfo("x", (1, 1), 8, "signed", 0.25, 0), 0.5, validate=False)
    with pytest.raises(ModelFormatError, match=r"node 'fc'.*bias_frac_bits must be an integer"):
        g.validate()


@pytest.mark.parametrize(
    "mode,mult_bits", [("single", 32), ("tflite", 32), ("rne", 32), ("rne", 16), ("tflite", 16)]
)
def test_machine_equals_reference_with_fraction_bits(mode, mult_bits):
    """small_cnn with fractional biases on every conv / linear: the simulated machine equals the
    IR reference on every layer, every output element was rescaled once with its layer's F
    (rescale_bias_frac_bits = sum of elements x F), and whole-unit biases would give other
    outputs on this input."""
    g = with_fractional_biases(small_cnn(4, 4, seed=1, input_hw=8), seed=2)
    weighted = [n for n in g.nodes if isinstance(n, (QuantConv2d, QuantLinear))]
    assert all(n.bias_frac_bits > 0 for n in weighted)
    cfg = load_config("edge", [f"rescale.round_mode={mode}", f"rescale.mult_bits={mult_bits}"])
    x = np.random.default_rng(3).standard_normal(g.tensors[g.input].shape)
    res = run_model(g, cfg, x, check=True)
    assert res.check_ok, res.check_message
    want = sum(int(np.prod(g.tensors[n.output].shape)) * n.bias_frac_bits for n in weighted)
    assert res.stats.total("rescale_bias_frac_bits") == want
    coarse = small_cnn(4, 4, seed=1, input_hw=8)
    for i, n in enumerate(coarse.nodes):
        if isinstance(n, (QuantConv2d, QuantLinear)):
            f = g.nodes[i]
            n.bias = np.rint(f.bias / 2.0**f.bias_frac_bits).astype(np.int32)
    a = run_reference(coarse, x, round_mode=mode, mult_bits=mult_bits)
    b = run_reference(g, x, round_mode=mode, mult_bits=mult_bits)
    assert any(np.any(a[k] != b[k]) for k in ("conv1", "dwconv", "pwconv", "conv3"))


def test_sparse_conv_with_fraction_bits(edge):
    """A sparse conv's F reaches its RESCALEs too: simulated equals the sparse reference."""
    g = sparse_tiny(8, 8, seed=0, channels=4)
    stem = next(n for n in g.nodes if n.name == "stem")
    rng = np.random.default_rng(4)
    stem.bias = stem.bias_or_zeros().astype(np.int64) * 64 + rng.integers(-32, 32, stem.cout)
    stem.bias, stem.bias_frac_bits = stem.bias.astype(np.int32), 6
    g.validate()
    res = run_model(g, edge, random_input(3, 60, extent=6), check=True)
    assert res.check_ok, res.check_message
    assert res.stats.total("rescale_bias_frac_bits") == 6 * res.outputs["stem"].size
