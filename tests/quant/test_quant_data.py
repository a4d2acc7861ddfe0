"""Offline data sets: shapes, ranges, a fixed stratified split, shift augmentation."""

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.quant.data import load_dataset, shift_augment, validation_split


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


def test_validation_split_holds_out_training_images_only(digits):
    """15% of each class of the 1,438 training images is held out (216 in all); the test split
    is never touched and the split is fixed by its seed."""
    val = validation_split(digits)
    assert val.name == "digits-val"
    assert len(val.x_test) == 216 and len(val.x_train) + len(val.x_test) == len(digits.x_train)
    both = np.concatenate([val.x_train, val.x_test])  # the training images, each once
    assert sorted(i.tobytes() for i in both) == sorted(i.tobytes() for i in digits.x_train)
    per_class = np.bincount(digits.y_train)  # stratified: 15% of each class, rounded
    np.testing.assert_array_equal(np.bincount(val.y_test), np.round(0.15 * per_class))
    np.testing.assert_array_equal(validation_split(digits).y_test, val.y_test)
