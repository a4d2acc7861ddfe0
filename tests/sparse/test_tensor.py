"""Bad sparse inputs give one clear SparseInputError (no other exception type)."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError, SparseInputError
from accelsim.sparse import check_sparse, conv, group_of, kernel_map, kernel_map_ref

GOOD = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 2, 1]], np.int32)


@pytest.mark.parametrize("build", [kernel_map, kernel_map_ref])
@pytest.mark.parametrize(
    "coords,match",
    [
        (
            np.array([[0, 1, 2, 3], [0, 4, 4, 4], [0, 1, 2, 3]]),
            r"duplicate coordinate \[0, 1, 2, 3\] at rows 0 and 2",
        ),
        (np.array([[0, 1, -2, 3]]), r"negative coordinate \[0, 1, -2, 3\] at row 0"),
        (np.array([[0, 1.5, 2, 3]]), "non-integer coordinate"),
        (np.array([[0, np.nan, 2, 3]]), "non-integer coordinate"),
        (np.zeros((0, 4), np.int32), "empty input"),
        (np.zeros((3, 3), np.int32), r"shape \[n, 4\]"),
        (np.array([["a", "b", "c", "d"]]), "must be integers"),
    ],
)
def test_bad_coordinates(build, coords, match):
    with pytest.raises(SparseInputError, match=match):
        build(coords, 3)


def test_integral_float_coordinates_accepted():
    km = kernel_map(GOOD.astype(np.float64), 3, cache=False)
    assert km.n_out == 3


@pytest.mark.parametrize("groups", [0, -1, 1.5, True])
def test_bad_group_count(groups):
    with pytest.raises(SparseInputError, match="group count >= 1"):
        kernel_map(GOOD, 3, groups=groups)
    with pytest.raises(SparseInputError, match="group count >= 1"):
        group_of(GOOD, groups)


def test_length_mismatch():
    with pytest.raises(SparseInputError, match="coords have 3 rows but features have 2"):
        check_sparse(GOOD, np.zeros((2, 4), np.int8))
    km = kernel_map(GOOD, 3, cache=False)
    with pytest.raises(SparseInputError, match=r"features: expected \[3, c_in\]"):
        conv(np.zeros((2, 4), np.int8), np.zeros((27, 4, 2), np.int8), km)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel_size": 0}, "kernel_size"),
        ({"stride": 0}, "stride"),
        ({"dilation": -1}, "dilation"),
        ({"transposed": True}, "out_coords"),
        ({"group_coeffs": (1, 2)}, "group_coeffs"),
    ],
)
def test_bad_geometry(kwargs, match):
    with pytest.raises(SparseInputError, match=match):
        kernel_map(GOOD, **kwargs)


def test_conv_operand_checks():
    km = kernel_map(GOOD, 3, cache=False)
    x = np.full((3, 2), 9, np.int8)
    w = np.ones((27, 2, 2), np.int8)
    with pytest.raises(SparseInputError, match=r"outside signed 4-bit range \[-8, 7\]"):
        conv(x, w, km, a_bits=4, w_bits=4)
    with pytest.raises(SparseInputError, match=r"weights: expected \[27, 2, c_out\]"):
        conv(x, np.ones((9, 2, 2), np.int8), km)
    with pytest.raises(SparseInputError, match="integer values"):
        conv(x.astype(np.float32), w, km)
    with pytest.raises(SparseInputError, match="bipolar"):
        conv(np.zeros((3, 2), np.int8), w, km, a_bits=1, a_mode="bipolar")
    assert issubclass(SparseInputError, AccelsimError)
