"""QUANT kernels: integer path (rescale's R with zero bias) and float input path vs `_ref`."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.kernels import quant as Q
from accelsim.kernels.rescale import ROUND_MODES, quantize_multiplier, rescale_ref

FLOAT_IMPLS = [Q.quantize_float, Q.quantize_float_ref]


@pytest.mark.parametrize("mode", ROUND_MODES)
@pytest.mark.parametrize(
    "bits,signed", [(1, False), (2, True), (3, False), (4, True), (8, True), (8, False)]
)
def test_quant_matches_ref_and_rescale(mode, bits, signed):
    rng = np.random.default_rng(bits)
    x = rng.integers(-(2**20), 2**20, (6, 4, 3)).astype(np.int32)
    x[0, 0] = [-(2**31), 2**31 - 1, 0]
    mult, shift = quantize_multiplier(rng.uniform(1e-6, 1e-3, 3))
    zp = 0 if not signed else -1
    kw = {"zp": zp, "bits": bits, "signed": signed, "mode": mode}
    got = Q.quant(x, mult, shift, **kw)
    np.testing.assert_array_equal(got, Q.quant_ref(x, mult, shift, **kw))
    np.testing.assert_array_equal(got, rescale_ref(x, 0, mult, shift, **kw))


def test_quant_ties_per_mode():
    """x / 2 for x = -3..3 (mult 1, shift 1): single half up, rne half even."""
    x = np.arange(-3, 4, dtype=np.int32)
    single = Q.quant(x, 1, 1, zp=0, bits=8, signed=True, mode="single")
    rne = Q.quant(x, 1, 1, zp=0, bits=8, signed=True, mode="rne")
    np.testing.assert_array_equal(single, [-1, -1, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(rne, [-2, -1, 0, 0, 0, 1, 2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits,signed", [(2, True), (4, False), (8, True), (8, False)])
def test_quantize_float_matches_ref(dtype, bits, signed):
    rng = np.random.default_rng(bits)
    x = (rng.standard_normal((50, 4)) * 3).astype(dtype)
    scale = np.array([0.05, 0.1, 0.37, 1.3], dtype)
    zp = 1 if signed else 3
    for s in (scale, dtype(0.0731)):
        got = Q.quantize_float(x, s, zp, bits, signed)
        ref = Q.quantize_float_ref(x, s, zp, bits, signed)
        np.testing.assert_array_equal(got, ref)
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        onnx = np.clip(np.rint(x / s) + zp, lo, hi)  # ONNX QuantizeLinear, division in x's type
        np.testing.assert_array_equal(got, onnx)


@pytest.mark.parametrize("impl", FLOAT_IMPLS)
def test_quantize_float_ties_saturation_and_errors(impl):
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1e30, -np.inf, np.inf], np.float32)
    np.testing.assert_array_equal(impl(x, 1.0, 0, 8, True), [-2, -2, 0, 0, 2, 2, 127, -128, 127])
    np.testing.assert_array_equal(impl(x, 0.5, 10, 4, False), [5, 7, 9, 11, 13, 15, 15, 0, 15])
    with pytest.raises(AccelsimError, match="NaN"):
        impl(np.array([np.nan], np.float32), 1.0, 0, 8, True)
    with pytest.raises(AccelsimError, match="scale"):
        impl(x, 0.0, 0, 8, True)
    with pytest.raises(AccelsimError, match="float array"):
        impl(np.array([1, 2], np.int32), 1.0, 0, 8, True)
