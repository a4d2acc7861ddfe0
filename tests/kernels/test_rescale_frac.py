"""RESCALE with bias fractional bits F: x = sat_int32((acc << F) + bias), y = R(x; m, sh + F).

Numba twin vs `_ref` over every rounding mode and both multiplier widths, the definition
written out with Python integers (exact rationals for single / rne, the TFLite transcription
for tflite), hand-worked ties, the int32 saturation of the shifted sum, and bad F values."""

from fractions import Fraction

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.kernels import rescale as R
from accelsim.numeric import BIAS_FRAC_MAX
from tests.kernels.test_rescale import gl_rdbpot, gl_srdhm

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
IMPLS = [R.rescale, R.rescale_ref]


def _case(rng, n, frac, mult_bits):
    """acc of up to 31 - F bits (and a few that saturate), biases over all of int32."""
    acc = rng.integers(-(2 ** (31 - frac)), 2 ** (31 - frac), (9, n)).astype(np.int32)
    acc[0] = rng.integers(INT32_MIN, INT32_MAX, n)  # (acc << F) + bias saturates
    acc[1] = [0, 1, -1, 2 ** (31 - frac) - 1, -(2 ** (31 - frac)), 3][:n]
    bias = rng.integers(INT32_MIN, INT32_MAX, n)
    bias[:3] = [0, (1 << frac) - 1 if frac else 0, -(1 << frac) if frac else 0]
    mult, shift = R.quantize_multiplier(rng.uniform(1e-3, 0.9, n), mult_bits)
    shift = np.minimum(shift, R.MAX_SHIFT - frac)
    return acc, bias, mult, shift


@pytest.mark.parametrize("mode", R.ROUND_MODES)
@pytest.mark.parametrize("mult_bits", [32, 16])
@pytest.mark.parametrize("frac", [1, 7, BIAS_FRAC_MAX])
def test_numba_matches_ref(mode, mult_bits, frac):
    rng = np.random.default_rng(frac * 64 + mult_bits)
    acc, bias, mult, shift = _case(rng, 6, frac, mult_bits)
    kw = {"zp": 3, "bits": 16, "signed": True, "mode": mode, "mult_bits": mult_bits}
    got = R.rescale(acc, bias, mult, shift, frac=frac, **kw)
    np.testing.assert_array_equal(got, R.rescale_ref(acc, bias, mult, shift, frac=frac, **kw))
    assert got.dtype == np.int32


def _written_out(a, b, m, sh, frac, mode, mult_bits):
    """The module docstring's meaning with Python integers (output unclamped)."""
    x = min(max((a << frac) + b, INT32_MIN), INT32_MAX)
    t = sh + frac
    if mode == "tflite":  # gemmlowp at B bits: left shift (saturating), SRDHM, RDBPOT
        e = (mult_bits - 1) - t
        x1 = min(max(x << max(e, 0), INT32_MIN), INT32_MAX)
        high = gl_srdhm(x1, m << (32 - mult_bits))  # a B-bit Q(B-1) multiplier as Q31
        return gl_rdbpot(high, max(-e, 0))
    v = Fraction(x * m, 2**t)
    fl = v.numerator // v.denominator
    rem = v - fl
    if mode == "single":
        return fl + (rem >= Fraction(1, 2))
    return fl + (rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", R.ROUND_MODES)
@pytest.mark.parametrize("mult_bits", [32, 16])
def test_definition_written_out(impl, mode, mult_bits):
    """Every element against `_written_out`. For tflite the B-bit multiplier is fed to the
    32-bit transcription as m * 2**(32 - B): SRDHM_B(x, m) = SRDHM_32(x, m << (32 - B))."""
    rng = np.random.default_rng(mult_bits + len(mode))
    for frac in (0, 3, 11, BIAS_FRAC_MAX):
        acc, bias, mult, shift = _case(rng, 6, frac, mult_bits)
        got = impl(
            acc, bias, mult, shift, zp=0, bits=32, signed=True, mode=mode, mult_bits=mult_bits,
            frac=frac,
        )  # fmt: skip
        for (i, c), a in np.ndenumerate(acc):
            want = _written_out(int(a), int(bias[c]), int(mult[c]), int(shift[c]), frac, mode,
                                mult_bits)  # fmt: skip
            assert got[i, c] == min(max(want, INT32_MIN), INT32_MAX), (frac, i, c)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "mode,expect",
    [  # acc + 1/2 for acc = -3..3: -2.5 -1.5 -0.5 0.5 1.5 2.5 3.5, every one a tie
        ("single", [-2, -1, 0, 1, 2, 3, 4]),  # half up
        ("rne", [-2, -2, 0, 0, 2, 2, 4]),  # half to even
        ("tflite", [-2, -1, 0, 1, 2, 3, 4]),  # SRDHM alone: half up
    ],
)
def test_half_unit_bias_ties(impl, mode, expect):
    """Bias 1 with F = 1 is half an accumulator unit; M = 1 as mult = 1, shift = 0, so
    R((2 acc + 1) * 1, 0 + 1) = acc + 1/2 in every mode. tflite (mult_bits = 8): e = 7 - 1 = 6,
    x1 = 64 (2 acc + 1), SRDHM_8(x1, 1) = trunc((x1 + nudge) / 128), nudge 64 or -63: acc = -1
    gives trunc((-64 - 63) / 128) = 0, acc = 0 gives 128 / 128 = 1. A whole-unit bias cannot
    place these outputs on the other side: bias 0 gives acc, bias 1 (F = 0) acc + 1."""
    acc = np.arange(-3, 4, dtype=np.int32)[:, None]
    kw = {"zp": 0, "bits": 8, "signed": True, "mode": mode, "mult_bits": 8}
    got = impl(acc, 1, 1, 0, frac=1, **kw)
    np.testing.assert_array_equal(got[:, 0], expect)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", ["single", "rne"])
def test_whole_bias_with_fraction_bits_is_the_plain_rescale(impl, mode):
    """single and rne round once, so a bias b << F at F fractional bits is b at F = 0 whenever
    (acc << F) + (b << F) does not saturate: the product is exactly 2**F times larger and the
    shift F larger."""
    rng = np.random.default_rng(5)
    mult, shift = R.quantize_multiplier(rng.uniform(1e-3, 0.9, 5))
    acc = rng.integers(-(2**15), 2**15, (50, 5)).astype(np.int32)
    bias = rng.integers(-(2**15), 2**15, 5)
    kw = {"zp": 0, "bits": 16, "signed": True, "mode": mode}
    plain = impl(acc, bias, mult, shift, **kw)
    np.testing.assert_array_equal(impl(acc, bias << 15, mult, shift, frac=15, **kw), plain)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", R.ROUND_MODES)
def test_shifted_sum_saturates_to_int32(impl, mode):
    """acc = -(2**16) - 5 at F = 15 is -(2**31) - 5 * 2**15 + bias: below int32, so the
    multiplier sees INT32_MIN, exactly as a plain rescale of INT32_MIN at shift sh + 15."""
    m, s = R.quantize_multiplier(2.0**-3)
    acc = np.array([[-(2**16) - 5, 2**16 + 5, 100]], np.int32)
    kw = {"zp": 0, "bits": 32, "signed": True, "mode": mode}
    got = impl(acc, 7, m, s, frac=15, **kw)
    sat = np.array([[INT32_MIN, INT32_MAX, (100 << 15) + 7]], np.int32)
    np.testing.assert_array_equal(got, impl(sat, 0, m, s + 15, **kw))
    assert got[0, 0] == -(2**31) // 2**18  # INT32_MIN / 2**15 * 2**-3, exact


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_fraction_bits_raise(impl):
    acc = np.zeros((2, 3), np.int32)
    kw = {"zp": 0, "bits": 8, "signed": True, "mode": "rne"}
    for frac in (-1, BIAS_FRAC_MAX + 1, True, 1.5):
        with pytest.raises(AccelsimError, match=f"frac must be an integer in 0..{BIAS_FRAC_MAX}"):
            impl(acc, 0, 1, 1, frac=frac, **kw)
    with pytest.raises(AccelsimError, match="shift \\+ frac must be at most 62, got 60 \\+ 3"):
        impl(acc, 0, 1, [1, 60, 2], frac=3, **kw)
    assert impl(acc, 0, 1, [1, 60, 2], frac=2, **kw).shape == (2, 3)  # 60 + 2 = 62 is legal


def test_count_mismatch_with_fraction_bits():
    """single vs rne on the ties of test_half_unit_bias_ties: -1.5, 0.5 and 2.5 differ."""
    acc = np.arange(-3, 4, dtype=np.int32)[:, None]
    kw = {"zp": 0, "bits": 8, "signed": True, "frac": 1}
    assert R.count_mismatch(acc, 1, 1, 0, mode="single", **kw) == 3
    assert R.count_mismatch(acc, 0, 1, 0, mode="single", **kw) == 0  # bias 0: no ties
