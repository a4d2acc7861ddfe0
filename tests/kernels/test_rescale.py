"""RESCALE kernel: Numba vs `_ref`, gemmlowp transcription, ties, clamps, quantize_multiplier."""

import math

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.kernels import rescale as R

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
IMPLS = [R.rescale, R.rescale_ref]
EDGE32 = [INT32_MIN, INT32_MIN + 1, -(2**30), -3, -1, 0, 1, 3, 2**30, INT32_MAX - 1, INT32_MAX]


# A straightforward transcription of gemmlowp / TFLite (Python ints, C semantics): the
# reference the rescale kernels are checked against, written apart from them.


def gl_srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul(int32 a, int32 b)."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    n = ab + nudge
    return n // 2**31 if n >= 0 else -((-n) // 2**31)  # C++ '/' truncates toward zero


def gl_rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT(int32 x, int exponent)."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def tfl_multiply_by_quantized_multiplier(x, qm, shift):
    """TFLite MultiplyByQuantizedMultiplier(x, quantized_multiplier, shift) (no left overflow)."""
    left, right = (shift, 0) if shift > 0 else (0, -shift)
    return gl_rdbpot(gl_srdhm(x * (1 << left), qm), right)


def tfl_quantize_multiplier(real):
    """TFLite QuantizeMultiplier(double) -> (quantized_multiplier, shift)."""
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    qf = round(q * 2**31) if q * 2**31 % 1 != 0.5 else math.floor(q * 2**31) + 1  # std::round
    if qf == 2**31:
        qf //= 2
        shift += 1
    return qf, shift


def test_srdhm_matches_gemmlowp_including_min_times_min():
    rng = np.random.default_rng(0)
    pairs = [(a, b) for a in EDGE32 for b in EDGE32]
    pairs += [tuple(p) for p in rng.integers(INT32_MIN, INT32_MAX, (2000, 2), endpoint=True)]
    a = np.array([p[0] for p in pairs], np.int64)
    b = np.array([p[1] for p in pairs], np.int64)
    expect = np.array([gl_srdhm(int(x), int(y)) for x, y in pairs], np.int64)
    np.testing.assert_array_equal(R.srdhm_ref(a, b, 32), expect)
    fast = np.array([R.srdhm_scalar(np.int64(x), np.int64(y), 32) for x, y in pairs], np.int64)
    np.testing.assert_array_equal(fast, expect)
    assert R.srdhm_ref(INT32_MIN, INT32_MIN) == INT32_MAX


def test_rounding_divide_by_pot_matches_gemmlowp():
    rng = np.random.default_rng(1)
    xs = EDGE32 + [-6, -5, -4, -2, 2, 4, 5, 6] + list(rng.integers(INT32_MIN, INT32_MAX, 500))
    for e in (0, 1, 2, 3, 7, 20, 31):
        expect = np.array([gl_rdbpot(int(x), e) for x in xs], np.int64)
        x = np.array(xs, np.int64)
        np.testing.assert_array_equal(R.rounding_divide_by_pot_ref(x, e), expect)
        np.testing.assert_array_equal(R.rshift_round_ref(x, e, "tflite"), expect)
        fast = [R.rshift_round_scalar(np.int64(v), e, 1) for v in xs]
        np.testing.assert_array_equal(np.array(fast, np.int64), expect)


@pytest.mark.parametrize("impl", IMPLS)
def test_tflite_mode_matches_tflite_transcription(impl):
    """rescale(mode="tflite") with TFLite's own multipliers equals MultiplyByQuantizedMultiplier
    + zero point, clamped (acc range chosen so TFLite's unsaturated left shift cannot overflow)."""
    rng = np.random.default_rng(2)
    reals = np.concatenate([rng.uniform(1e-6, 1.0, 6), [0.5, 1.0, 1.9, 7.5, 2.0**-20, 0.75]])
    acc = rng.integers(-(2**24), 2**24, (40, reals.size)).astype(np.int32)
    acc[:4] = rng.integers(-300, 300, (4, reals.size))
    bias = rng.integers(-5000, 5000, reals.size)
    mult, shift = R.quantize_multiplier(reals)
    tfl = [tfl_quantize_multiplier(float(r)) for r in reals]
    np.testing.assert_array_equal(mult, [m for m, _ in tfl])
    np.testing.assert_array_equal(31 - shift, [s for _, s in tfl])
    got = impl(acc, bias, mult, shift, zp=-7, bits=16, signed=True, mode="tflite")
    expect = np.empty(acc.shape, np.int64)
    for (i, c), x in np.ndenumerate(acc):
        v = tfl_multiply_by_quantized_multiplier(int(x) + int(bias[c]), *tfl[c]) - 7
        expect[i, c] = min(max(v, -(2**15)), 2**15 - 1)
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("mode", R.ROUND_MODES)
@pytest.mark.parametrize(
    "bits,signed", [(1, True), (2, False), (3, True), (4, False), (8, True), (8, False), (16, True)]
)
@pytest.mark.parametrize("mult_bits", [32, 16])
def test_rescale_matches_ref(mode, bits, signed, mult_bits):
    rng = np.random.default_rng(bits * 3 + mult_bits)
    n = 7
    acc = rng.integers(-(2**15), 2**15, (3, 5, n)).astype(np.int32)
    acc[0, 0] = [INT32_MIN, INT32_MAX, 0, -1, 1, INT32_MIN + 5, INT32_MAX - 5]
    mult, shift = R.quantize_multiplier(rng.uniform(1e-4, 0.2, n), mult_bits)
    mult[1], shift[1] = 0, 0  # zero multiplier
    lo = -(2 ** (bits - 1)) if signed else 0
    zp = lo + (1 << bits) // 3
    for relu, clip in ((False, (None, None)), (True, (None, None)), (True, (None, zp + 1))):
        kw = {
            "zp": zp,
            "bits": bits,
            "signed": signed,
            "mode": mode,
            "relu": relu,
            "clip_lo": clip[0],
            "clip_hi": clip[1],
            "mult_bits": mult_bits,
        }
        bias = rng.integers(-99, 99, n)
        got = R.rescale(acc, bias, mult, shift, **kw)
        np.testing.assert_array_equal(got, R.rescale_ref(acc, bias, mult, shift, **kw))
        assert got.dtype == (np.int32 if bits > 8 else np.int8 if signed else np.uint8)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "mode,expect",
    [  # x * 5 / 2 for x = -3..3: -7.5 -5 -2.5 0 2.5 5 7.5
        ("single", [-7, -5, -2, 0, 3, 5, 8]),  # half up
        ("rne", [-8, -5, -2, 0, 2, 5, 8]),  # half to even
        ("tflite", [-7, -5, -2, 0, 3, 5, 8]),  # SRDHM alone: half up (see docstring)
    ],
)
def test_ties_and_negative_values(impl, mode, expect):
    """mult = 5, shift = 1 puts every odd x on a tie. tflite with mult_bits = 8: e = 7 - 1 = 6,
    x1 = 64x, SRDHM_8(64x, 5) = trunc((320x + nudge) / 128), nudge 64 or -63: x = -1 gives
    trunc(-383/128) = -2, so SRDHM rounds ties up (toward +inf); no right shift follows."""
    acc = np.arange(-3, 4, dtype=np.int32)[:, None]
    got = impl(acc, 0, 5, 1, zp=0, bits=8, signed=True, mode=mode, mult_bits=8)
    np.testing.assert_array_equal(got[:, 0], expect)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "mode,expect",
    [  # x / 4 for x = -6..6: -1.5 -1.25 -1 -0.75 -0.5 -0.25 0 0.25 0.5 0.75 1 1.25 1.5
        ("single", [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2]),
        ("rne", [-2, -1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 1, 2]),
        ("tflite", [-2, -1, -1, -1, -1, 0, 0, 1, 1, 1, 1, 2, 2]),
    ],
)
@pytest.mark.parametrize("mult_bits", [8, 32])
def test_tflite_double_rounding(impl, mode, expect, mult_bits):
    """M = 1/4 as mult = 2**(B-2) (0.5 in Q(B-1)) and shift = B, so e = (B-1) - B = -1:
    SRDHM gives x/2 rounded half up, then RoundingDivideByPOT(., 1) halves again rounding half
    away from zero: x = 1 -> 1 -> 1 (exact 0.25), x = -2 -> -1 -> -1, x = -6 -> -3 -> -2."""
    acc = np.arange(-6, 7, dtype=np.int32)[:, None]
    mult, shift = 2 ** (mult_bits - 2), mult_bits
    got = impl(acc, 0, mult, shift, zp=0, bits=8, signed=True, mode=mode, mult_bits=mult_bits)
    np.testing.assert_array_equal(got[:, 0], expect)
    if mode == "tflite" and mult_bits == 32:
        tfl = [tfl_multiply_by_quantized_multiplier(x, 2**30, -1) for x in range(-6, 7)]
        np.testing.assert_array_equal(got[:, 0], tfl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", R.ROUND_MODES)
def test_edge_cases(impl, mode):
    acc = np.array([[-1000, 0, 1000, INT32_MAX]], np.int32)
    kw = {"bits": 8, "signed": True, "mode": mode}
    # zero multiplier: output is the zero point
    np.testing.assert_array_equal(impl(acc, 7, 0, 0, zp=3, **kw), [[3, 3, 3, 3]])
    if mode != "tflite":  # shift 0: exact product, clamped
        np.testing.assert_array_equal(impl(acc // 1000, 0, 3, 0, zp=1, **kw), [[-2, 1, 4, 128 - 1]])
    # relu clamps at zp, clip tightens both sides; the bias add saturates at INT32_MAX
    m, s = R.quantize_multiplier(0.01)
    np.testing.assert_array_equal(impl(acc, 0, m, s, zp=-5, relu=True, **kw), [[-5, -5, 5, 127]])
    np.testing.assert_array_equal(
        impl(acc, 0, m, s, zp=0, clip_lo=-4, clip_hi=6, **kw), [[-4, 0, 6, 6]]
    )
    big = impl(acc, INT32_MAX, m, s, zp=0, bits=32, signed=True, mode=mode)
    same = impl(acc, 0, m, s, zp=0, bits=32, signed=True, mode=mode)
    assert big[0, 3] == same[0, 3] == 21474836  # INT32_MAX + INT32_MAX saturates to INT32_MAX
    # unsigned output
    np.testing.assert_array_equal(
        impl(acc, 0, m, s, zp=128, bits=8, signed=False, mode=mode), [[118, 128, 138, 255]]
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_parameters_raise(impl):
    acc = np.zeros((2, 3), np.int32)
    with pytest.raises(AccelsimError, match="mode"):
        impl(acc, 0, 1, 1, zp=0, bits=8, signed=True, mode="nearest")
    with pytest.raises(AccelsimError, match=r"mult must be a scalar or have shape \(3,\)"):
        impl(acc, 0, [1, 2], 1, zp=0, bits=8, signed=True, mode="rne")
    with pytest.raises(AccelsimError, match="shift values must lie in"):
        impl(acc, 0, 1, 63, zp=0, bits=8, signed=True, mode="rne")
    with pytest.raises(AccelsimError, match="mult values must lie in"):
        impl(acc, 0, 2**15, 1, zp=0, bits=8, signed=True, mode="rne", mult_bits=16)
    with pytest.raises(AccelsimError, match="zero point"):
        impl(acc, 0, 1, 1, zp=200, bits=8, signed=True, mode="rne")
    with pytest.raises(AccelsimError, match="int32"):
        impl(acc.astype(np.int64) + 2**40, 0, 1, 1, zp=0, bits=8, signed=True, mode="rne")


@pytest.mark.parametrize("mult_bits", [32, 16, 8])
def test_quantize_multiplier(mult_bits):
    rng = np.random.default_rng(mult_bits)
    reals = np.concatenate([10.0 ** rng.uniform(-9, 0, 500), [0.5, 0.25, 1.0, 1.5, 3.0]])
    mult, shift = R.quantize_multiplier(reals, mult_bits)
    assert mult.shape == reals.shape and shift.shape == reals.shape
    assert np.all((mult >= 2 ** (mult_bits - 2)) & (mult < 2 ** (mult_bits - 1)))
    assert np.all((shift >= 0) & (shift <= 62))
    rel = np.abs(mult * np.exp2(-shift.astype(np.float64)) - reals) / reals
    assert rel.max() <= 2.0 ** -(mult_bits - 2)
    assert R.quantize_multiplier(0.5, mult_bits) == (2 ** (mult_bits - 2), mult_bits - 1)
    assert R.quantize_multiplier(0.0, mult_bits) == (0, 0)
    assert R.quantize_multiplier(1e-30, mult_bits) == (0, 0)  # below 2**-62: flushed to zero
    with pytest.raises(AccelsimError, match="too large"):
        R.quantize_multiplier(2.0**mult_bits, mult_bits)
    with pytest.raises(AccelsimError, match=">= 0"):
        R.quantize_multiplier(-0.1, mult_bits)


def test_count_mismatch():
    rng = np.random.default_rng(9)
    acc = rng.integers(-(2**14), 2**14, (200, 8)).astype(np.int32)
    reals = rng.uniform(1e-3, 0.05, 8)
    m32, s32 = R.quantize_multiplier(reals, 32)
    m16, s16 = R.quantize_multiplier(reals, 16)
    kw = {"zp": 0, "bits": 8, "signed": True}
    rne = R.rescale_ref(acc, 0, m32, s32, mode="rne", **kw)
    for mode in ("single", "tflite"):
        y = R.rescale_ref(acc, 0, m32, s32, mode=mode, **kw)
        assert R.count_mismatch(acc, 0, m32, s32, mode=mode, **kw) == np.count_nonzero(y != rne)
        y16 = R.rescale_ref(acc, 0, m16, s16, mode=mode, mult_bits=16, **kw)
        got = R.count_mismatch(
            acc, 0, m16, s16, mode=mode, mult_bits=16, ref_mult=m32, ref_shift=s32, **kw
        )
        assert got == np.count_nonzero(y16 != rne)
    assert R.count_mismatch(acc, 0, m32, s32, mode="rne", **kw) == 0
    # single and rne differ only on ties k + 1/2 with k even
    acc_t = np.array([[1], [3], [5], [-1], [-3]], np.int32)
    assert R.count_mismatch(acc_t, 0, 1, 1, mode="single", **kw) == 3  # 0.5, 2.5, -1.5
