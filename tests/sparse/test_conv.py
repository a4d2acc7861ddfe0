"""Sparse conv: compiled path == NumPy twin == dense integer reference, overflow, threads."""

import numba
import numpy as np
import pytest

from accelsim.errors import AccumulatorOverflow
from accelsim.sparse import (
    conv,
    conv_ref,
    dense_conv_ref,
    downsample_coords,
    kernel_map,
)
from accelsim.sparse.microkernel import acc_dot_f32, acc_dot_ref
from tests.helpers import random_coords, random_operand

# (kernel_size, stride, dilation, transposed)
OPS = {
    "subm_k1": (1, 1, 1, False),
    "subm_k3": (3, 1, 1, False),
    "subm_k3_d2": (3, 1, 2, False),
    "strided_k2": (2, 2, 1, False),
    "strided_k3": (3, 2, 1, False),
    "transposed_k2": (2, 2, 1, True),
    "transposed_k3": (3, 2, 1, True),
}


def _case(rng, op, groups, bits, c_in=5, c_out=4, mode="signed"):
    ks, s, d, tr = OPS[op]
    fine = random_coords(rng, 140, extent=6, batches=2)
    coords = downsample_coords(fine, s) if tr else fine
    out = fine if tr else None
    km = kernel_map(coords, ks, s, d, groups, transposed=tr, out_coords=out, cache=False)
    x = random_operand(rng, (coords.shape[0], c_in), bits, mode)
    w = random_operand(rng, (ks**3, c_in, c_out), bits)
    _, dense = dense_conv_ref(coords, x, w, ks, s, d, groups, transposed=tr, out_coords=out)
    return km, x, w, dense


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("groups", [1, 2, 4, 8])
@pytest.mark.parametrize("op", list(OPS))
def test_conv_equals_dense_reference(rng, op, groups, bits):
    km, x, w, dense = _case(rng, op, groups, bits)
    y = conv(x, w, km, a_bits=bits, w_bits=bits)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, dense)
    np.testing.assert_array_equal(conv_ref(x, w, km, a_bits=bits, w_bits=bits), dense)


@pytest.mark.parametrize("mode", ["unsigned", "bipolar"])
def test_conv_activation_modes(rng, mode):
    a_bits = 1 if mode == "bipolar" else 4  # bipolar values are 1-bit
    km, x, w, dense = _case(rng, "subm_k3", 2, 4, mode=mode)
    np.testing.assert_array_equal(conv(x, w, km, a_bits=a_bits, w_bits=4, a_mode=mode), dense)


def test_wide_operands_take_integer_path(rng):
    """12-bit operands, c_in = 5: 5 * 2048 * 2048 > 2**24, so the float32 path is not exact
    and the int32 kernel runs; 27 * 5 * 2**22 < 2**31 so no overflow is possible."""
    km, x, w, dense = _case(rng, "subm_k3", 1, 12)
    np.testing.assert_array_equal(conv(x, w, km, a_bits=12, w_bits=12), dense)


def test_overflow_detected_and_wrapped():
    """Two voxels 1 apart in x, c_in = 2, every operand 2**15 - 1 (16-bit): each product is
    p = 1073676289. Voxel 0 adds offset 13 (itself, 2 products: 2p = 2147352578 <= 2**31 - 1)
    then offset 22 (voxel 1 at dx = +1): 3p = 3221028867 overflows at input channel 0.
    Wrapped: 4p - 2**32 = -262140."""
    coords = np.array([[0, 0, 0, 0], [0, 1, 0, 0]], np.int32)
    km = kernel_map(coords, 3, cache=False)
    x = np.full((2, 2), 2**15 - 1, np.int32)
    w = np.full((27, 2, 1), 2**15 - 1, np.int32)
    for fn in (conv, conv_ref):
        with pytest.raises(
            AccumulatorOverflow, match="voxel 0, channel 0, after offset 22, input channel 0"
        ):
            fn(x, w, km, a_bits=16, w_bits=16)
    wrapped = 4 * (2**15 - 1) ** 2 - 2**32
    assert wrapped == -262140
    for fn in (conv, conv_ref):
        np.testing.assert_array_equal(
            fn(x, w, km, a_bits=16, w_bits=16, overflow="wrap"), [[wrapped], [wrapped]]
        )


def test_parallel_path_is_exact(rng):
    coords = random_coords(rng, 3000, extent=24, batches=1)
    km = kernel_map(coords, 3, cache=False)
    x = random_operand(rng, (3000, 24), 8)
    w = random_operand(rng, (27, 24, 72), 8)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = conv(x, w, km)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = conv(x, w, km)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, conv_ref(x, w, km))


@pytest.mark.parametrize("x_dtype", [np.int8, np.uint8, np.int32, np.float32])
@pytest.mark.parametrize("c_in,c_out", [(64, 64), (5, 3), (3, 96), (17, 120), (0, 16), (9, 7)])
def test_microkernel_equals_ref(rng, c_in, c_out, x_dtype):
    x = rng.integers(0 if x_dtype == np.uint8 else -128, 128, c_in).astype(x_dtype)
    w = rng.integers(-128, 128, (c_in, c_out)).astype(np.float32)
    acc = rng.integers(-1000, 1000, c_out).astype(np.int32)
    expected = acc_dot_ref(x, w, acc)
    acc_dot_f32(x, w, acc)
    np.testing.assert_array_equal(acc, expected)
