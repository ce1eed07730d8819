"""The scikit-learn digits upsampled to 28x28: shape, classes, and the fixed test split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from dlcompat.data import digits
from dlcompat.data.registry import load_dataset


@pytest.fixture(scope="module")
def digits_all():
    return load_dataset("digits", val_fraction=0.0)


def test_digits_are_28x28_uint8_with_10_classes(digits_all) -> None:
    ds = digits_all
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10 and ds.class_names == tuple("0123456789")
    assert ds.train.x.dtype == np.uint8 and ds.train.y.dtype == np.int64
    assert len(ds.train) + len(ds.test) == 1797 and len(ds.test) == 359
    assert ds.train.x.max() == 255 and ds.train.x.min() == 0
    # The 2-pixel frame is empty, like MNIST's.
    frame = np.ones((28, 28), dtype=bool)
    frame[2:26, 2:26] = False
    assert not ds.train.x[:, frame].any() and not ds.test.x[:, frame].any()
    assert "load_digits" in ds.source


def test_digits_pixels_are_the_scaled_originals(digits_all) -> None:
    original = load_digits()
    test_idx = np.flatnonzero(digits.stratified_test_mask(original.target))
    for position in (0, 100, 358):
        image = original.images[test_idx[position]] * 255 / 16
        x = digits_all.test.x[position, :, :, 0]
        assert digits_all.test.y[position] == original.target[test_idx[position]]
        # Bilinear x3 with aligned corners: the corners of the 24x24 block are the 8x8 corners exactly.
        assert x[2, 2] == round(image[0, 0]) and x[25, 25] == round(image[7, 7])
        assert x[2, 25] == round(image[0, 7]) and x[25, 2] == round(image[7, 0])


def test_the_test_split_is_fixed_and_stratified(digits_all) -> None:
    other = load_dataset("digits", split_seed=5, val_fraction=0.25, limit_test=None)
    assert np.array_equal(other.test.x, digits_all.test.x) and np.array_equal(other.test.y, digits_all.test.y)
    counts = np.bincount(load_digits().target)
    assert np.bincount(digits_all.test.y).tolist() == [round(0.2 * c) for c in counts]
    assert len(other.val) == round(0.25 * 1438) and len(other.train) == 1438 - len(other.val)


def test_digits_never_touch_the_data_dir(tmp_path) -> None:
    ds = load_dataset("digits", tmp_path / "nowhere", limit_train=50, limit_test=20, download=False)
    assert (len(ds.train), len(ds.test)) == (50, 20)
    assert not (tmp_path / "nowhere").exists()
