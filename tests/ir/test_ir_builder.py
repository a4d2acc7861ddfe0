"""GraphBuilder calibration rules and re-declaring a graph for another input size."""

import numpy as np
import pytest

from accelsim.errors import ModelFormatError
from accelsim.ir import QuantConv2d, run_reference
from accelsim.ir.builder import GraphBuilder, calib_step, lsq_step, with_input_shape


def test_lsq_and_calibration_steps():
    v = np.array([-2.0, -1.0, 1.0, 2.0])
    assert lsq_step(v, 4, "signed") == pytest.approx(2 * 1.5 / np.sqrt(7))
    assert lsq_step(np.zeros(3), 4, "signed") == 1.0  # no signal: a harmless unit step
    rng = np.random.default_rng(0)
    g = rng.standard_normal(100_000)
    # 2 bits: the LSQ step (coarse, balanced); 8 bits: the 99.9th percentile over Qp
    assert calib_step(g, 2, "signed") == pytest.approx(lsq_step(g, 2, "signed"))
    assert calib_step(g, 8, "signed") == pytest.approx(np.percentile(np.abs(g), 99.9) / 127)


def test_builder_weights_fit_their_bits_and_channels_are_alive():
    b = GraphBuilder("t", (1, 9, 9, 3), np.random.default_rng(1))
    x = b.quantize(8, signed=False)
    y = b.conv(x, 6, 3, w_bits=2, bits=4, relu=True)
    z = b.conv(y, 4, 1, w_bits=1, bits=8, signed=True, relu=False)  # bipolar weights
    g = b.finish(z)
    c1, c2 = g.node(y), g.node(z)
    assert c1.weight.min() >= -2 and c1.weight.max() <= 1 and c1.w_mode == "signed"
    assert c2.w_mode == "bipolar" and set(np.unique(c2.weight)) <= {-1, 1}
    assert g.tensors[x].zero_point > 0  # asymmetric unsigned input
    env = b.values
    for c in range(6):  # BN-style bias centring: every ReLU channel fires somewhere
        assert env[y][..., c].max() > 0
    assert env[y].shape[0] == 8  # calibrated on a batch of 8


def test_with_input_shape_redeclares_and_rejects_flatten_change():
    b = GraphBuilder("t", (1, 8, 8, 2), np.random.default_rng(2))
    x = b.conv(b.quantize(), 4, 3, stride=2)
    g = b.finish(b.global_avgpool(x))
    big = with_input_shape(g, (2, 20, 20, 2))
    assert big.tensors[x].shape == (2, 10, 10, 4)
    assert isinstance(big.node(x), QuantConv2d) and big.node(x) is g.node(x)  # weights shared
    env = run_reference(big, np.random.default_rng(0).standard_normal((2, 20, 20, 2)))
    assert env[big.outputs[0]].shape == (2, 1, 1, 4)
    b = GraphBuilder("t", (1, 4, 4, 2), np.random.default_rng(3))
    g = b.finish(b.linear(b.flatten(b.quantize()), 3))
    with pytest.raises(ModelFormatError, match="node 'fc1'.*features"):
        with_input_shape(g, (1, 5, 5, 2))


class _FixedDraws:
    """A stand-in for the builder's Generator: the same normal draws at any precision."""

    def __init__(self, normal):
        self.normal = normal

    def standard_normal(self, shape, dtype=np.float64):
        return self.normal[: np.prod(shape)].reshape(shape).astype(dtype)

    def uniform(self, lo, hi, n):
        return np.linspace(lo, hi, n)


def test_float32_weights_follow_the_same_lsq_rule():
    """weight_dtype=float32 (vectorised steps) and float64 (column by column) give the same
    per-channel steps 2*mean|w|/sqrt(Qp) to float32 precision, and the same integers except
    where rounding to float32 moves a weight across a rounding boundary."""
    normal = np.random.default_rng(4).standard_normal(64 * 48)
    x = np.random.default_rng(5).standard_normal((2, 64))
    built = {}
    for dt in (np.float64, np.float32):
        b = GraphBuilder("t", (2, 64), _FixedDraws(normal), calib_x=x, weight_dtype=dt)
        built[dt] = b.finish(b.linear(b.quantize(), 48, w_bits=4, name="fc")).node("fc")
    w64, w32 = built[np.float64], built[np.float32]
    np.testing.assert_allclose(w32.w_scale, w64.w_scale, rtol=1e-6)
    assert w32.weight.min() >= -8 and w32.weight.max() <= 7 and len(np.unique(w32.weight)) > 8
    assert np.mean(w32.weight == w64.weight) > 0.999


def test_resize_input_tiles_calibration_values():
    """A conv built at 4x4, then the graph grows to 10x10 and a Linear is sized for it."""
    b = GraphBuilder("t", (1, 4, 4, 2), np.random.default_rng(5), calib_batch=2)
    x = b.conv(b.quantize(), 3, 3, name="c")
    small = b.values[x].copy()
    b.resize_input((1, 10, 10, 2))
    assert b.graph.tensors[x].shape == (1, 10, 10, 3)
    assert b.values[x].shape == (2, 10, 10, 3)
    np.testing.assert_array_equal(b.values[x][:, 4:8, 4:8], small)  # periodic copies
    g = b.finish(b.linear(b.flatten(x), 5, name="fc"))
    assert g.node("fc").weight.shape == (300, 5)
    env = run_reference(g, np.random.default_rng(0).standard_normal((1, 10, 10, 2)))
    assert env["fc"].shape == (1, 5)
    with pytest.raises(ValueError, match="cannot tile"):
        b.resize_input((1, 12, 12, 2))  # the flattened Linear input cannot grow
