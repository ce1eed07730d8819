"""The scikit-learn digits, upsampled to MNIST's 28x28 frame: the offline default dataset.

scikit-learn ships the 1,797 8x8 images (values 0..16) of the UCI "Optical Recognition of Handwritten
Digits" test set inside its wheel, so this dataset never downloads. To let the LeNets apply unchanged,
each image is scaled to 0..255, enlarged bilinearly x3 to 24x24 (``scipy.ndimage.zoom``, order 1) and
padded with 2 zero pixels on each side to 28x28, like MNIST's 20x20 digit in its 28x28 frame.

It has no official test split, so a fixed, stratified 20% is held out as the test split, chosen with a
constant seed (not ``split_seed``): the test set never changes. scikit-learn and SciPy are imported
only when the dataset is loaded, so this module imports with NumPy alone.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from dlcompat.data.registry import SourceArrays, register_dataset
from dlcompat.errors import DataError

TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 20180920  # constant on purpose: the held-out test set is part of the dataset's definition
SCALE = 3
PAD = 2
CLASSES = tuple(str(i) for i in range(10))
SOURCE = ("scikit-learn load_digits (1,797 8x8 images, 0..16) scaled to 0..255, bilinear x3 "
          "(scipy.ndimage.zoom order=1) to 24x24 + 2px zero pad to 28x28; fixed stratified 20% test split "
          f"(seed {TEST_SPLIT_SEED})")


@register_dataset(
    "digits",
    input_shape=(28, 28, 1),
    class_names=CLASSES,
    description="scikit-learn's embedded 8x8 handwritten digits (1,797 images), upsampled to 28x28; "
                "a fixed stratified 20% is the test split; never downloads",
    citation="E. Alpaydin, C. Kaynak, Optical Recognition of Handwritten Digits, UCI Machine Learning "
             "Repository, 1998, https://doi.org/10.24432/C50P49",
    downloadable=False,
)
def load_digits_dataset(data_dir: Path, download: bool) -> SourceArrays:
    """The digits' train and test splits, each in the original order (``data_dir`` is not used)."""
    x, y = upsampled_digits()
    test = stratified_test_mask(y)
    return SourceArrays(x[~test], y[~test], x[test], y[test], CLASSES, SOURCE)


@functools.lru_cache(maxsize=1)
def upsampled_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 (N, 28, 28, 1) and int64 labels, in scikit-learn's order (read-only)."""
    try:
        from scipy import ndimage
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError("the digits dataset needs scikit-learn and SciPy, which are not installed here: "
                        "install them (pip install 'dlcompat[driver]'), or use mnist or cifar10 with "
                        "--data-dir") from exc
    bunch = load_digits()
    scaled = np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)
    big = np.stack([ndimage.zoom(image, SCALE, order=1) for image in scaled])
    big = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    x = np.pad(big, ((0, 0), (PAD, PAD), (PAD, PAD)))[..., np.newaxis]
    y = np.asarray(bunch.target, dtype=np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def stratified_test_mask(y: np.ndarray) -> np.ndarray:
    """Boolean mask of the fixed test images: ``round(20%)`` of each class, chosen with a constant seed."""
    rng = np.random.default_rng(TEST_SPLIT_SEED)
    mask = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        mask[rng.permutation(members)[: round(TEST_FRACTION * len(members))]] = True
    return mask
