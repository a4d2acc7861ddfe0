"""VECTOR unit kernels (add, max/min, clip, shift, pooling): Numba vs `_ref`, hand cases."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.kernels import alu as A
from accelsim.kernels.rescale import ROUND_MODES
from tests.helpers import random_operand

BITS = [(1, False), (2, True), (3, True), (4, False), (8, True), (8, False)]


@pytest.mark.parametrize("mode", ROUND_MODES)
@pytest.mark.parametrize("bits,signed", BITS)
def test_add_matches_ref(mode, bits, signed):
    rng = np.random.default_rng(bits)
    kind = "signed" if signed else "unsigned"
    a = random_operand(rng, (2, 5, 6, 3), bits, kind)
    b = random_operand(rng, (2, 5, 6, 3), bits, kind)
    ma, mb, t = A.add_multipliers(0.61, 0.35, mult_bits=16)
    zp = 0 if signed else 1
    for relu in (False, True):
        kw = {
            "za": 1,
            "ma": ma,
            "zb": -1,
            "mb": mb,
            "t": t,
            "zp": zp,
            "bits": bits,
            "signed": signed,
            "mode": mode,
        }
        got = A.add(a, b, relu=relu, **kw)
        np.testing.assert_array_equal(got, A.add_ref(a, b, relu=relu, **kw))
        assert got.dtype == a.dtype


@pytest.mark.parametrize("impl", [A.add, A.add_ref])
@pytest.mark.parametrize(
    "mode,expect", [("single", [-1, 0, 1, 2]), ("rne", [-2, 0, 0, 2]), ("tflite", [-2, -1, 1, 2])]
)
def test_add_ties(impl, mode, expect):
    """(a + b) / 2 with ma = mb = 1, t = 1: sums -3, -1, 1, 3 are all ties."""
    a = np.array([-2, -1, 0, 1], np.int8)
    b = np.array([-1, 0, 1, 2], np.int8)
    got = impl(a, b, za=0, ma=1, zb=0, mb=1, t=1, zp=0, bits=8, signed=True, mode=mode)
    np.testing.assert_array_equal(got, expect)


def test_add_multipliers_and_errors():
    ma, mb, t = A.add_multipliers(0.75, 0.25, mult_bits=16)
    assert (ma, mb, t) == (24576, 8192, 15)  # 0.75 * 2**15, 0.25 * 2**15
    assert A.add_multipliers(0, 0) == (0, 0, 0)
    x = np.zeros(3, np.int8)
    with pytest.raises(AccelsimError, match="shapes differ"):
        A.add(x, x[:2], za=0, ma=1, zb=0, mb=1, t=0, zp=0, bits=8, signed=True, mode="rne")
    with pytest.raises(AccelsimError, match="ma"):
        A.add(x, x, za=0, ma=2**31, zb=0, mb=1, t=0, zp=0, bits=8, signed=True, mode="rne")


@pytest.mark.parametrize("bits,signed", BITS)
def test_elementwise_match_ref(bits, signed):
    rng = np.random.default_rng(bits + 7)
    kind = "signed" if signed else "unsigned"
    a = random_operand(rng, (4, 9), bits, kind)
    b = random_operand(rng, (4, 9), bits, kind)
    np.testing.assert_array_equal(A.maximum(a, b), A.maximum_ref(a, b))
    np.testing.assert_array_equal(A.minimum(a, b), A.minimum_ref(a, b))
    np.testing.assert_array_equal(A.maximum(a, b), np.maximum(a, b))
    lo = -1 if signed else 1
    np.testing.assert_array_equal(A.clip(a, lo, lo + 1), A.clip_ref(a, lo, lo + 1))
    np.testing.assert_array_equal(A.clip(a, lo, lo + 1), np.clip(a, lo, lo + 1))
    for mode in ROUND_MODES:
        for n in (-31, -2, 0, 1, 3):
            kw = {"bits": bits, "signed": signed, "mode": mode}
            np.testing.assert_array_equal(A.shift(a, n, **kw), A.shift_ref(a, n, **kw))


@pytest.mark.parametrize("impl", [A.shift, A.shift_ref])
def test_shift_hand_cases(impl):
    x = np.array([-6, -5, -3, -1, 1, 3, 5, 6, 100], np.int8)
    np.testing.assert_array_equal(impl(x, 1, bits=8, signed=True), [-3, -2, -1, 0, 1, 2, 3, 3, 50])
    np.testing.assert_array_equal(
        impl(x, -2, bits=8, signed=True), [-24, -20, -12, -4, 4, 12, 20, 24, 127]
    )
    np.testing.assert_array_equal(impl(x, -31, bits=8, signed=False), [0] * 4 + [255] * 5)
    with pytest.raises(AccelsimError, match="-31..62"):
        impl(x, -32, bits=8, signed=True)


def test_clip_errors():
    with pytest.raises(AccelsimError, match="clip bounds"):
        A.clip(np.zeros(2, np.uint8), -1, 3)
    with pytest.raises(AccelsimError, match="clip bounds"):
        A.clip_ref(np.zeros(2, np.int8), 3, 2)


POOL_GEOMS = [(2, 2, 2, 0), (3, 3, 1, 1), (3, 3, 2, 1), (3, 2, (2, 1), (1, 0, 2, 1))]


@pytest.mark.parametrize("kh,kw,stride,pad", POOL_GEOMS)
def test_maxpool_matches_ref(kh, kw, stride, pad):
    rng = np.random.default_rng(kh * kw)
    x = random_operand(rng, (2, 7, 8, 3), 8, "signed")
    got = A.maxpool(x, kh, kw, stride, pad)
    np.testing.assert_array_equal(got, A.maxpool_ref(x, kh, kw, stride, pad))
    np.testing.assert_array_equal(A.maxpool(x[0], kh, kw, stride, pad), got[0])


@pytest.mark.parametrize("impl", [A.maxpool, A.maxpool_ref])
def test_maxpool_padding_never_wins(impl):
    """All-negative 3x3 input, 2x2 windows, stride 2, pad 1 on every side: the corner windows
    hold one real element each; a zero pad would wrongly win all of them."""
    x = -np.arange(1, 10, dtype=np.int8).reshape(1, 3, 3, 1)  # -1 .. -9
    got = impl(x, 2, 2, 2, 1)
    np.testing.assert_array_equal(got[0, :, :, 0], [[-1, -2], [-4, -5]])


@pytest.mark.parametrize("mode", ROUND_MODES)
@pytest.mark.parametrize("kh,kw,stride,pad", POOL_GEOMS)
@pytest.mark.parametrize("mult_bits", [32, 16])
def test_avgpool_matches_ref(mode, kh, kw, stride, pad, mult_bits):
    rng = np.random.default_rng(kh + kw)
    x = random_operand(rng, (2, 7, 8, 3), 8, "unsigned")
    mult, shift = A.avgpool_multipliers(kh, kw, scale=0.8, mult_bits=mult_bits)
    kw_ = {
        "mult": mult,
        "shift": shift,
        "zp_in": 3,
        "zp": 5,
        "bits": 8,
        "signed": False,
        "mode": mode,
        "mult_bits": mult_bits,
    }
    got = A.avgpool(x, kh, kw, stride, pad, **kw_)
    np.testing.assert_array_equal(got, A.avgpool_ref(x, kh, kw, stride, pad, **kw_))


@pytest.mark.parametrize("impl", [A.avgpool, A.avgpool_ref])
@pytest.mark.parametrize(
    "mode,expect",
    [("single", [[-3, -1], [2, 3]]), ("rne", [[-3, -2], [2, 3]]), ("tflite", [[-3, -1], [2, 3]])],
)
def test_avgpool_hand_case(impl, mode, expect):
    """x = 1..9 (3x3), 2x2 windows, stride 2, pad (top 0, left 0, bottom 1, right 1): windows
    [1,2,4,5] (c = 4), [3,6] (c = 2), [7,8] (c = 2), [9] (c = 1). With zp_in = 6 the sums are
    -12, -3, 3, 3, divided by c: -3, -1.5, 1.5, 3. (mult, shift) = (2**30, 30 + log2 c) is 1/c
    exactly. Ties: single -> up, rne -> even; tflite (32-bit): c = 2 has e = 0, SRDHM(-3, 2**30)
    = trunc((-3*2**30 + 1 - 2**30) / 2**31) = -1 and SRDHM(3, 2**30) = 2 (ties up)."""
    x = np.arange(1, 10, dtype=np.uint8).reshape(3, 3, 1)
    mult = np.array([0, 2**30, 2**30, 0, 2**30])  # entries for counts 1, 2, 4
    shift = np.array([0, 30, 31, 0, 32])
    got = impl(
        x,
        2,
        2,
        2,
        (0, 0, 1, 1),
        mult=mult,
        shift=shift,
        zp_in=6,
        zp=0,
        bits=8,
        signed=True,
        mode=mode,
    )
    np.testing.assert_array_equal(got[:, :, 0], expect)


@pytest.mark.parametrize("mode", ROUND_MODES)
def test_global_avgpool(mode):
    rng = np.random.default_rng(3)
    x = random_operand(rng, (2, 5, 4, 6), 4, "signed")
    m, s = A.avgpool_multipliers(5, 4, scale=1.0)
    kw = {
        "mult": m[20],
        "shift": s[20],
        "zp_in": 0,
        "zp": 0,
        "bits": 4,
        "signed": True,
        "mode": mode,
    }
    got = A.global_avgpool(x, **kw)
    assert got.shape == (2, 1, 1, 6)
    np.testing.assert_array_equal(got, A.global_avgpool_ref(x, **kw))
    mean = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    assert np.abs(got - mean).max() <= 0.5 + 1e-9


def test_pool_errors():
    x = np.zeros((1, 4, 4, 1), np.int8)
    with pytest.raises(AccelsimError, match="smaller than the 2x2 kernel"):
        A.maxpool(x, 2, 2, 1, 2)
    with pytest.raises(AccelsimError, match="NHWC"):
        A.maxpool(x[0, 0], 2, 2)
    with pytest.raises(AccelsimError, match="smaller than the 5x5 window"):
        A.maxpool(x, 5, 5)
    with pytest.raises(AccelsimError, match=r"avgpool mult must be a scalar or have shape \(5,\)"):
        A.avgpool(x, 2, 2, mult=[1, 2], shift=1, zp=0, bits=8, signed=True, mode="rne")
