"""Offline data sets: shapes, ranges, a fixed stratified split, shift augmentation."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.quant.data import load_dataset, shift_augment


def test_digits_split_is_fixed_and_disjoint():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape[1:] == (8, 8, 1) and a.x_train.dtype == np.float32
    assert len(a.x_train) + len(a.x_test) == 1797
    assert abs(len(a.x_test) - 0.2 * 1797) < 10
    np.testing.assert_array_equal(a.y_test, b.y_test)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert np.bincount(a.y_test).min() >= 35  # stratified: about 36 per class


def test_mnist_shapes():
    d = load_dataset("mnist")
    assert d.x_train.shape == (4000, 28, 28, 1) and d.x_test.shape == (1000, 28, 28, 1)
    assert d.x_train.max() == 1.0


def test_unknown_dataset():
    with pytest.raises(AccelsimError, match="dataset"):
        load_dataset("cifar")


def test_shift_augment_moves_pixels_and_fills_zero():
    x = np.zeros((50, 5, 5, 1), dtype=np.float32)
    x[:, 2, 2, 0] = 1.0
    y = shift_augment(x, 1, np.random.default_rng(0))
    assert np.all(y.sum(axis=(1, 2, 3)) == 1.0)  # the centre pixel moves by at most 1
    pos = np.argwhere(y[..., 0] == 1.0)[:, 1:]
    assert np.all(np.abs(pos - 2) <= 1) and len(np.unique(pos, axis=0)) == 9
