"""I-BERT integer softmax, GELU and layer norm: Numba vs `_ref` (exact), hand-worked cases,
the integer square root and its division bound, and the argument checks."""

import math

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.ir.transformer_params import erf_constants, exp_constants, norm_constants
from accelsim.kernels import ibert as I
from accelsim.kernels.rescale import ROUND_MODES, quantize_multiplier

SOFTMAX = [I.softmax, I.softmax_ref]
GELU = [I.gelu, I.gelu_ref]
LAYERNORM = [I.layernorm, I.layernorm_ref]


def _softmax_kw(scale, bits):
    k, q_ln2, q_b, q_c = exp_constants(scale)
    return dict(shift=k, q_ln2=q_ln2, q_b=q_b, q_c=q_c, bits=bits)


def _gelu_kw(scale, s_out, lo, hi, *, zx=0, zp=0, bits=8, signed=True, mode="single", mb=32):
    k, q_b, q_c = erf_constants(scale, lo - zx, hi - zx)
    mult, t = quantize_multiplier(scale * 2**k / (2 * q_c) / s_out, mb)
    return dict(zx=zx, shift=k, q_b=q_b, q_c=q_c, mult=mult, t=t, zp=zp, bits=bits,
                signed=signed, mode=mode, mult_bits=mb)  # fmt: skip


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("scale", [12 / 32767, 0.01, 0.3])
def test_softmax_matches_ref(scale, bits):
    rng = np.random.default_rng(bits)
    x = rng.integers(-32768, 32768, (3, 7, 33)).astype(np.int32)
    x[0, 0] = x[0, 0, 0]  # a constant row
    kw = _softmax_kw(scale, bits)
    got = I.softmax(x, **kw)
    np.testing.assert_array_equal(got, I.softmax_ref(x, **kw))
    assert got.dtype == (np.uint8 if bits <= 8 else np.int32)
    assert got.max() <= 2**bits - 1


@pytest.mark.parametrize("impl", SOFTMAX)
def test_softmax_by_hand(impl):
    """q_ln2 = 100, q_b = 195, q_c = 96, k = 0. A row of four equal values: every d = 0, so
    z = p = 0 and e = 195^2 + 96 = 38121; factor = 2^48 // (4 * 38121) = 1845931223 and
    e * factor = 2^46 - 25681 (the division's floor), so at 8 bits each y is
    (2^46 - 25681) >> 40 = 63, not 64. Row [0, -1000]: the second element has z = 10,
    p = 0, e = 38121 >> 10 = 37; sum 38158, factor = 2^48 // 38158 = 7376565247 and
    y = [(38121 * factor) >> 40, (37 * factor) >> 40] = [255, 0].
    Saturation: q_ln2 = 92, q_b = 180, q_c = 368 make e = 180^2 + 368 = 2^15 at the row max;
    row [0, -5000]: d is clamped to -30 * 92 (z = 30) and e = 2^15 >> 30 = 0, so the sum is
    2^15, factor = 2^33 and the first y = 2^48 >> 40 = 256 saturates to 255."""
    kw = dict(shift=0, q_ln2=100, q_b=195, q_c=96, bits=8)
    assert 2**48 // (4 * 38121) == 1845931223 and 38121 * 1845931223 == 2**46 - 25681
    np.testing.assert_array_equal(impl(np.full((1, 4), 7), **kw), [[63] * 4])
    assert 2**48 // 38158 == 7376565247 and (38121 * 7376565247) >> 40 == 255
    np.testing.assert_array_equal(impl(np.array([[0, -1000]]), **kw), [[255, 0]])
    kw = dict(shift=0, q_ln2=92, q_b=180, q_c=368, bits=8)
    np.testing.assert_array_equal(impl(np.array([[0, -5000]]), **kw), [[255, 0]])
    np.testing.assert_array_equal(impl(np.array([[-9, -9]]), **kw), [[128, 128]])


@pytest.mark.parametrize("mode", ROUND_MODES)
@pytest.mark.parametrize("mb", [16, 32])
@pytest.mark.parametrize(
    "in_bits,signed,zx", [(16, True, 0), (8, True, 0), (8, False, 100), (4, False, 3)]
)
def test_gelu_matches_ref(mode, mb, in_bits, signed, zx):
    rng = np.random.default_rng(in_bits)
    lo, hi = (-(2 ** (in_bits - 1)), 2 ** (in_bits - 1) - 1) if signed else (0, 2**in_bits - 1)
    x = rng.integers(lo, hi + 1, (5, 40))
    x[0, :2] = lo, hi
    for scale, bits, out_signed, zp in ((6 / (hi - lo), 8, False, 20), (0.4, 16, True, -3)):
        kw = _gelu_kw(scale, 0.02, lo, hi, zx=zx, zp=zp, bits=bits, signed=out_signed,
                      mode=mode, mb=mb)  # fmt: skip
        np.testing.assert_array_equal(I.gelu(x, **kw), I.gelu_ref(x, **kw))


@pytest.mark.parametrize("impl", GELU)
def test_gelu_by_hand(impl):
    """q_b = 10, q_c = 150, k = 0, zx = 2, m = 1, t = 0: q = x - 2. q = 20 >= q_b: P = q_c,
    G = 20 * 300 = 6000 (GELU(x) = x). q = -20: G = -20 * (-150 + 150) = 0. q = 3:
    P = 150 - (3 - 10)^2 = 101, G = 3 * 251 = 753. q = -3: G = -3 * (-101 + 150) = -147.
    q = 0: G = 0. The output clamps to 16-bit signed."""
    kw = dict(zx=2, shift=0, q_b=10, q_c=150, mult=1, t=0, zp=0, bits=16, signed=True,
              mode="single")  # fmt: skip
    got = impl(np.array([22, -18, 5, -1, 2]), **kw)
    np.testing.assert_array_equal(got, [6000, 0, 753, -147, 0])


@pytest.mark.parametrize("mode", ROUND_MODES)
@pytest.mark.parametrize("c", [1, 2, 7, 768])
def test_layernorm_matches_ref(mode, c):
    rng = np.random.default_rng(c)
    x = rng.integers(-32768, 32768, (6, c))
    x[1] = 5  # constant row: std 0
    x[2, :] = [65536] + [-65536] * (c - 1)  # the widest inputs
    gain = rng.integers(-(2**20), 2**20, c)
    offset = rng.integers(-50, 50, c)
    kw = dict(gain=gain, offset=offset, t=23, zp=3, bits=8, signed=True, mode=mode)
    np.testing.assert_array_equal(I.layernorm(x, **kw), I.layernorm_ref(x, **kw))


@pytest.mark.parametrize("impl", LAYERNORM)
def test_layernorm_by_hand(impl):
    """Row [3, 1] (c = 2): sum 4, mu = (8 + 2) // 4 = 2, d = [1, -1], sum d^2 = 2,
    std = isqrt(2) = 1, factor = 2^31, y1 = [2^30, -2^30]. Gains [3, 1], shift 30, offsets
    [10, 0], zp 1: y = [1 + 10 + 3, 1 + 0 - 1] = [14, 0]. Row [5, 5]: d = 0, y = zp + o_c."""
    kw = dict(gain=[3, 1], offset=[10, 0], t=30, zp=1, bits=8, signed=True, mode="single")
    np.testing.assert_array_equal(impl(np.array([[3, 1], [5, 5]]), **kw), [[14, 0], [11, 1]])


def _isqrt_cases():
    """Per bit length b: the lowest values (the start 2^ceil(b/2) is farthest from the root
    there), the highest, squares and their neighbours."""
    cases = [0, 1, 2, 3]
    for b in range(2, 63):
        lo, hi = 1 << (b - 1), (1 << b) - 1
        r = math.isqrt(lo) + 1
        cases += [
            *range(lo, lo + 64),
            *range(max(lo, hi - 16), hi + 1),
            r * r - 1,
            r * r,
            r * r + 1,
        ]
    return cases


def test_isqrt_is_floor_sqrt_within_the_division_bound():
    """isqrt(n) == floor(sqrt(n)) for the cases; no case needs more than ISQRT_DIVISIONS = 7
    divisions, and some (b = 51) need exactly 7, so the unit's cost charges the worst case."""
    worst = 0
    for n in _isqrt_cases():
        root, divisions = I.isqrt_steps(n)
        assert root == math.isqrt(n) == I.isqrt(n) == I.isqrt_ref(n)
        worst = max(worst, divisions)
    assert worst == I.ISQRT_DIVISIONS


def test_argument_checks():
    kw = _softmax_kw(0.01, 8)
    with pytest.raises(AccelsimError, match="inputs must lie"):
        I.softmax(np.array([[2**17, 0]]), **kw)
    with pytest.raises(AccelsimError, match="exp values"):
        I.softmax_ref(np.zeros((1, 3), np.int32), shift=0, q_ln2=300, q_b=600, q_c=9, bits=8)
    with pytest.raises(AccelsimError, match="softmax bits"):
        I.softmax(np.zeros((1, 3), np.int32), **{**kw, "bits": 17})
    with pytest.raises(AccelsimError, match="gelu q_c"):
        I.gelu(np.zeros(3, np.int32), **{**_gelu_kw(0.01, 0.1, -99, 99), "q_c": 2**31})
    with pytest.raises(AccelsimError, match="layernorm gain"):
        I.layernorm(np.zeros((1, 2), np.int32), gain=[2**31, 0], offset=0, t=0, zp=0, bits=8,
                    signed=True, mode="rne")  # fmt: skip
    with pytest.raises(AccelsimError, match="must lie in"):
        exp_constants(0.7)
    with pytest.raises(AccelsimError, match="too coarse"):
        erf_constants(3.0, -1, 1)
    assert norm_constants([1.0, -2.0], [0.0, 0.5], 0.1)[1].tolist() == [0, 5]
