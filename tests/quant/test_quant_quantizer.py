"""LSQ quantizer: integer ranges, forward, straight-through and step-size gradients by hand."""

import numpy as np
import pytest

from accelsim.quant.quantizer import LsqQuantizer, q_range, weight_mode


@pytest.mark.parametrize(
    "bits, mode, expected",
    [
        (2, "unsigned", (0, 3)),
        (8, "unsigned", (0, 255)),
        (3, "signed", (4, 3)),
        (8, "signed", (128, 127)),
        (2, "symmetric", (1, 1)),
        (4, "symmetric", (7, 7)),
        (1, "bipolar", (1, 1)),
    ],
)
def test_q_range(bits, mode, expected):
    assert q_range(bits, mode) == expected


def test_q_range_rejects_bad_input():
    with pytest.raises(ValueError):
        q_range(1, "signed")
    with pytest.raises(ValueError):
        q_range(2, "bipolar")
    with pytest.raises(ValueError):
        q_range(4, "float")


def test_weight_mode():
    assert weight_mode(1) == "bipolar"
    assert weight_mode(2) == "symmetric"  # ternary {-1, 0, +1}
    assert weight_mode(8) == "symmetric"


def _quantizer(bits, mode, kind, v, step, per_channel=False):
    q = LsqQuantizer(bits, mode, kind, per_channel)
    q.init_step(v)
    q.step.value = np.asarray(step, dtype=np.float64).reshape(-1).copy()
    q.step.grad = np.zeros_like(q.step.value)
    return q


def test_unsigned_forward_and_gradients_by_hand():
    """2-bit unsigned, s = 0.5: v/s = [-0.6, 0.4, 0.52, 1.48, 3.2, 4.0]
    -> codes [0, 0, 1, 1, 3, 3]; inside = [F, T, T, T, F, F];
    step grad per element = [0 (=-Q_N), -0.4, 0.48, -0.48, 3, 3] -> sum 5.6,
    times g = 1/sqrt(N*Q_P) = 1/sqrt(6*3) for N = 6 elements per sample."""
    v = np.array([[-0.3, 0.2, 0.26, 0.74, 1.6, 2.0]])
    q = _quantizer(2, "unsigned", "act", v, 0.5)
    y = q.forward(v, train=True)
    np.testing.assert_allclose(y, [[0, 0, 0.5, 0.5, 1.5, 1.5]])
    dv = q.backward(np.ones_like(v))
    np.testing.assert_array_equal(dv, [[0, 1, 1, 1, 0, 0]])
    np.testing.assert_allclose(q.step.grad, [5.6 / np.sqrt(18)])


def test_signed_lower_clip_gives_minus_qn():
    """3-bit signed (Q_N=4, Q_P=3), s=1, v=[-5.2, 2.5, -0.5, 1.5]: codes [-4, 2, -0, 2];
    step grad elements [-4, -0.5, 0.5, 0.5] with dy = [1, 2, 1, 1] -> -4 - 1 + 0.5 + 0.5 = -4,
    times g = 1/sqrt(4*3)."""
    v = np.array([[-5.2, 2.5, -0.5, 1.5]])
    q = _quantizer(3, "signed", "act", v, 1.0)
    y = q.forward(v, train=True)
    np.testing.assert_allclose(y, [[-4, 2, 0, 2]])  # round half to even: 2.5 -> 2, 1.5 -> 2
    dv = q.backward(np.array([[1.0, 2.0, 1.0, 1.0]]))
    np.testing.assert_array_equal(dv, [[0, 2, 1, 1]])
    np.testing.assert_allclose(q.step.grad, [-4 / np.sqrt(12)])


def test_ternary_weights():
    """2-bit weights are ternary: codes in {-1, 0, 1}."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((20, 3))
    q = LsqQuantizer(2, weight_mode(2), "weight")
    codes = q.int_codes(w)
    assert set(np.unique(codes)) <= {-1, 0, 1}
    assert set(np.unique(codes)) == {-1, 0, 1}


def test_bipolar_forward_and_gradients_by_hand():
    """s = 1, v = [-0.5, 0, 0.3, 2]: codes [-1, +1, +1, +1] (sign(0) = +1); inside |v/s| <= 1
    = [T, T, T, F]; step grad elements [-1+0.5, 1-0, 1-0.3, 1] = [-0.5, 1, 0.7, 1] -> 2.2,
    times g = 1/sqrt(4 weights * Q_P=1) = 0.5 -> 1.1."""
    v = np.array([[-0.5], [0.0], [0.3], [2.0]])
    q = _quantizer(1, "bipolar", "weight", v, 1.0)
    y = q.forward(v, train=True)
    np.testing.assert_allclose(y[:, 0], [-1, 1, 1, 1])
    dv = q.backward(np.ones_like(v))
    np.testing.assert_array_equal(dv[:, 0], [1, 1, 1, 0])
    np.testing.assert_allclose(q.step.grad, [1.1])


def test_step_init():
    """LSQ init s = 2*mean|v|/sqrt(Q_P); bipolar s = mean|v|; per channel over all but last axis."""
    v = np.array([[1.0, -4.0], [-3.0, 8.0]])
    q = LsqQuantizer(4, "symmetric", "weight")
    q.init_step(v)
    np.testing.assert_allclose(q.step.value, [2 * 4.0 / np.sqrt(7)])
    np.testing.assert_allclose(q.grad_scale, 1 / np.sqrt(4 * 7))
    qc = LsqQuantizer(4, "symmetric", "weight", per_channel=True)
    qc.init_step(v)
    np.testing.assert_allclose(qc.step.value, [2 * 2.0 / np.sqrt(7), 2 * 6.0 / np.sqrt(7)])
    np.testing.assert_allclose(qc.grad_scale, 1 / np.sqrt(2 * 7))
    qb = LsqQuantizer(1, "bipolar", "weight", per_channel=True)
    qb.init_step(v)
    np.testing.assert_allclose(qb.step.value, [2.0, 6.0])


def test_per_channel_step_grad_sums_per_channel():
    """Per-channel steps [1, 2] on a 2x2 weight: v/s = [[0.4, 0.5], [3.0, -10]] (Q=7):
    channel 0: (0 - 0.4) + (3 - 3.0) = -0.4; channel 1: (0 - 0.5) + (-7) = -7.5; g = 1/sqrt(2*7)."""
    v = np.array([[0.4, 1.0], [3.0, -20.0]])
    q = _quantizer(4, "symmetric", "weight", v, [1.0, 2.0], per_channel=True)
    np.testing.assert_allclose(q.forward(v, train=True), [[0, 0], [3, -14]])
    q.backward(np.ones_like(v))
    np.testing.assert_allclose(q.step.grad, np.array([-0.4, -7.5]) / np.sqrt(14))


def test_set_bits_reinitialises_on_next_forward():
    v = np.linspace(-1, 1, 12).reshape(3, 4)
    q = LsqQuantizer(8, "symmetric", "weight")
    q.forward(v)
    s8 = q.step.value.copy()
    q.set_bits(2, "symmetric")
    q.forward(v)
    np.testing.assert_allclose(q.step.value, s8 * np.sqrt(127) / np.sqrt(1))
    assert q.int_codes(v).min() == -1 and q.int_codes(v).max() == 1
