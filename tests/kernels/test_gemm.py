"""GEMM / im2col kernels: the fast paths against their NumPy `_ref` definitions, bit for bit."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError, AccumulatorOverflow
from accelsim.kernels import gemm as G
from tests.helpers import random_operand

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
IMPLS = [G.gemm, G.gemm_ref]


@pytest.fixture(params=["numba_small", "blas_blocked"])
def fast_path(request, monkeypatch):
    """Run `gemm` through the one-thread Numba kernel or (threshold 0) the BLAS K-block path."""
    if request.param == "blas_blocked":
        monkeypatch.setattr(G, "SMALL_GEMM_MACS", 0)
    return request.param


def wrap32(x):
    return ((np.asarray(x, np.int64) - INT32_MIN) % 2**32 + INT32_MIN).astype(np.int32)


CASES = [(b, m) for b in (1, 2, 3, 4, 8) for m in ("signed", "unsigned")] + [(1, "bipolar")]


@pytest.mark.parametrize("a_bits,a_mode", CASES)
@pytest.mark.parametrize(
    "w_bits,w_mode", [(1, "bipolar"), (2, "signed"), (4, "unsigned"), (8, "signed")]
)
def test_gemm_matches_ref(fast_path, a_bits, a_mode, w_bits, w_mode):
    rng = np.random.default_rng(a_bits * 10 + w_bits)
    a = random_operand(rng, (13, 37), a_bits, a_mode)
    w = random_operand(rng, (37, 11), w_bits, w_mode)
    acc = rng.integers(-(2**20), 2**20, (13, 11)).astype(np.int32)
    kw = {"a_bits": a_bits, "w_bits": w_bits, "a_mode": a_mode, "w_mode": w_mode}
    for acc_in in (None, acc):
        got = G.gemm(a, w, acc_in, **kw)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, G.gemm_ref(a, w, acc_in, **kw))
    expect = acc + a.astype(np.int64) @ w.astype(np.int64)
    np.testing.assert_array_equal(G.gemm(a, w, acc, **kw), expect)


def test_gemm_several_k_blocks(fast_path):
    """K = 2100 > 1024: int8 products up to 2**14 need three float32 blocks of 1024."""
    rng = np.random.default_rng(5)
    a = random_operand(rng, (9, 2100), 8, "signed")
    w = random_operand(rng, (2100, 7), 8, "signed")
    a[0, :] = -128
    w[:, 0] = -128  # element (0, 0) = 2100 * 16384, the largest partial sums possible
    np.testing.assert_array_equal(
        G.gemm(a, w, a_bits=8, w_bits=8), a.astype(np.int64) @ w.astype(np.int64)
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_partial_sum_overflow_is_detected_even_if_final_fits(fast_path, impl):
    """acc = 2**31 - 100; products +16129 then -16129: s_1 = 2**31 + 16029 overflows although
    the final sum (= acc) fits. "wrap" returns acc, as a wrapping adder ends where it started."""
    a = np.array([[127, 127], [0, 0]], np.int8)
    w = np.array([[127, 1], [-127, 1]], np.int8)
    acc = np.array([[INT32_MAX - 99, 5], [7, 8]], np.int32)
    with pytest.raises(
        AccumulatorOverflow, match=r"\(0, 0\) after adding k=0: partial sum 2147499677"
    ):
        impl(a, w, acc, a_bits=8, w_bits=8)
    expect = np.array([[INT32_MAX - 99, 5 + 254], [7, 8]], np.int32)
    np.testing.assert_array_equal(impl(a, w, acc, a_bits=8, w_bits=8, overflow="wrap"), expect)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("sign", [1, -1])
def test_final_overflow_wraps_exactly(fast_path, impl, sign):
    rng = np.random.default_rng(7)
    a = np.full((3, 64), 127, np.int8)
    w = np.full((64, 5), 127 * sign, np.int8)
    acc = (sign * rng.integers(2**31 - 2**20, 2**31 - 1, (3, 5))).astype(np.int32)
    acc[1] = 0  # row 1 stays in range
    exact = acc.astype(np.int64) + a.astype(np.int64) @ w.astype(np.int64)
    np.testing.assert_array_equal(
        impl(a, w, acc, a_bits=8, w_bits=8, overflow="wrap"), wrap32(exact)
    )
    first = exact[0, 0]
    with pytest.raises(AccumulatorOverflow, match=r"element \(0, 0\)") as err:
        impl(a, w, acc, a_bits=8, w_bits=8)
    partial = [int(acc[0, 0]) + (k + 1) * 127 * 127 * sign for k in range(64)]
    k = next(k for k in range(64) if not INT32_MIN <= partial[k] <= INT32_MAX)
    assert f"k={k}:" in str(err.value) and abs(first) > 2**31 - 1


def test_overflow_from_long_k_without_acc():
    """Unsigned 8-bit, K = 33026: 33025 * 65025 = 2147450625 fits, the last product makes
    2147515650 > 2**31 - 1 (column 1, whose last weight is 0, stays in range). Fast path only:
    the k-ordered reference would take seconds here."""
    a = np.full((1, 33026), 255, np.uint8)
    w = np.full((33026, 2), 255, np.uint8)
    w[-1, 1] = 0
    kw = {"a_bits": 8, "w_bits": 8, "a_mode": "unsigned", "w_mode": "unsigned"}
    with pytest.raises(
        AccumulatorOverflow, match=r"\(0, 0\) after adding k=33025: partial sum 2147515650"
    ):
        G.gemm(a, w, **kw)
    np.testing.assert_array_equal(
        G.gemm(a, w, overflow="wrap", **kw), wrap32([[2147515650, 2147450625]])
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_operand_range_errors_name_the_operand(impl):
    a = np.array([[1, 8]], np.int8)
    w = np.ones((2, 1), np.int8)
    with pytest.raises(AccelsimError, match=r"a\[0, 1\] = 8 is outside the 4-bit signed"):
        impl(a, w, a_bits=4, w_bits=4)
    with pytest.raises(AccelsimError, match=r"w\[1, 0\] = 0 but bipolar"):
        impl(w.T.copy(), np.array([[1], [0]], np.int8), a_bits=4, w_bits=1, w_mode="bipolar")
    with pytest.raises(AccelsimError, match="a must be an integer array"):
        impl(a.astype(np.float32), w, a_bits=4, w_bits=4)
    with pytest.raises(AccelsimError, match="1..8"):
        impl(a, w, a_bits=9, w_bits=4)
    with pytest.raises(AccelsimError, match=r"\[M, K\]"):
        impl(a, w.T, a_bits=4, w_bits=4)
    a[0, 1] = 7
    with pytest.raises(AccelsimError, match="acc must have shape"):
        impl(a, w, np.zeros((2, 2), np.int32), a_bits=4, w_bits=4)
    with pytest.raises(AccelsimError, match="overflow must be"):
        impl(a, w, a_bits=4, w_bits=4, overflow="saturate")


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_k_returns_acc(impl):
    acc = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = impl(np.zeros((2, 0), np.int8), np.zeros((0, 3), np.int8), acc, a_bits=8, w_bits=8)
    np.testing.assert_array_equal(out, acc)


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2), ((2, 1), (1, 2))])
def test_im2col_matches_ref(stride, dilation):
    rng = np.random.default_rng(3)
    patch = rng.integers(-8, 8, (9, 10, 3)).astype(np.int8)
    got = G.im2col(patch, 3, 2, stride, dilation)
    np.testing.assert_array_equal(got, G.im2col_ref(patch, 3, 2, stride, dilation))
    assert got.dtype == np.int8


def test_gemm_conv_equals_direct_convolution():
    """K ordered (kh, kw, cin): compare with a direct NHWC convolution loop."""
    rng = np.random.default_rng(4)
    kh, kw, cin, cout, s, d = 3, 2, 4, 5, 2, 1
    patch = rng.integers(0, 16, (11, 8, cin)).astype(np.uint8)
    wk = rng.integers(-8, 8, (kh, kw, cin, cout)).astype(np.int8)
    got = G.gemm_conv(
        patch,
        wk.reshape(-1, cout),
        kh=kh,
        kw=kw,
        stride=s,
        dilation=d,
        a_bits=4,
        w_bits=4,
        a_mode="unsigned",
    )
    oh, ow = (11 - kh) // s + 1, (8 - kw) // s + 1
    direct = np.zeros((oh, ow, cout), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            win = patch[oy * s : oy * s + kh, ox * s : ox * s + kw, :].astype(np.int64)
            direct[oy, ox] = np.einsum("ijc,ijco->o", win, wk.astype(np.int64))
    np.testing.assert_array_equal(got, direct.reshape(oh * ow, cout))


def test_im2col_rejects_small_patch():
    with pytest.raises(AccelsimError, match="smaller than the dilated"):
        G.im2col(np.zeros((2, 5, 1), np.int8), 2, 2, 1, 2)
