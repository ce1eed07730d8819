"""The shared batch order, augmentation and pixel scaling."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.data.batching import CROP_PADDING, augment_batch, batch_order, to_float


def test_batch_order_is_deterministic_and_covers_every_index_once() -> None:
    batches = batch_order(103, 10, epoch=2, seed=7)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    joined = np.concatenate(batches)
    assert joined.dtype == np.int64 and np.array_equal(np.sort(joined), np.arange(103))
    assert np.array_equal(joined, np.random.default_rng([7, 2]).permutation(103))
    again = batch_order(103, 10, epoch=2, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_epochs_and_seeds_change_the_order() -> None:
    base = np.concatenate(batch_order(1000, 64, epoch=0, seed=0))
    assert not np.array_equal(base, np.concatenate(batch_order(1000, 64, epoch=1, seed=0)))
    assert not np.array_equal(base, np.concatenate(batch_order(1000, 64, epoch=0, seed=1)))


def test_batch_order_edge_cases() -> None:
    assert batch_order(0, 32, 0, 0) == []
    assert [len(b) for b in batch_order(5, 32, 0, 0)] == [5]
    assert [len(b) for b in batch_order(64, 32, 0, 0)] == [32, 32]
    for args in ((10, 0, 0, 0), (-1, 4, 0, 0), (10, 4, -1, 0), (10, 4, 0, -3), (10, 2.5, 0, 0)):
        with pytest.raises(ValueError):
            batch_order(*args)


def test_to_float_scales_uint8_to_unit_float32() -> None:
    x = np.array([[[[0], [128], [255]]]], dtype=np.uint8)
    y = to_float(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert y.min() == 0.0 and y.max() == 1.0 and y[0, 0, 1, 0] == np.float32(128) / np.float32(255)
    with pytest.raises(ValueError, match="uint8"):
        to_float(y)


@pytest.fixture(scope="module")
def cifar_batch(shared_data_dir) -> np.ndarray:
    from dlcompat.data.registry import load_dataset

    data = load_dataset("cifar10", shared_data_dir, limit_train=200, limit_test=1, download=False)
    return to_float(data.train.x)


def _windows(image: np.ndarray) -> dict[tuple[int, int, bool], np.ndarray]:
    """Every crop-flip the augmentation may make of one NHWC image: (row, column offset, flipped) -> window."""
    h, w, _ = image.shape
    pad = CROP_PADDING
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    out = {}
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[dy:dy + h, dx:dx + w]
            out[(dy, dx, False)], out[(dy, dx, True)] = window, window[:, ::-1]
    return out


def test_crop_flip_gives_a_padded_window_of_each_image_possibly_mirrored(cifar_batch) -> None:
    got = augment_batch(cifar_batch, "crop-flip", seed=3, epoch=1, batch=7)
    assert got.shape == cifar_batch.shape and got.dtype == np.float32
    assert got is not cifar_batch and not np.array_equal(got, cifar_batch)
    chosen = []
    for image, augmented in zip(cifar_batch, got, strict=True):
        matches = [key for key, window in _windows(image).items() if np.array_equal(window, augmented)]
        assert matches, "an augmented image is no window of its padded original"
        chosen.append(matches[0])
    offsets = {(dy, dx) for dy, dx, _ in chosen}
    flipped = np.mean([flip for _, _, flip in chosen])
    assert len(offsets) > 40  # of 81 offsets, over 200 images: uniform, not fixed
    assert 0.35 < flipped < 0.65
    assert {dy for dy, _ in offsets} == set(range(2 * CROP_PADDING + 1))


def test_crop_flip_is_a_function_of_seed_epoch_and_batch_number(cifar_batch) -> None:
    x = cifar_batch[:32]
    first = augment_batch(x, "crop-flip", seed=0, epoch=2, batch=5)
    assert np.array_equal(first, augment_batch(x.copy(), "crop-flip", seed=0, epoch=2, batch=5))
    for other in ({"seed": 1, "epoch": 2, "batch": 5}, {"seed": 0, "epoch": 3, "batch": 5},
                  {"seed": 0, "epoch": 2, "batch": 6}):
        assert not np.array_equal(first, augment_batch(x, "crop-flip", **other))
    nchw = augment_batch(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "crop-flip", seed=0, epoch=2, batch=5,
                         layout="NCHW")
    assert np.array_equal(nchw.transpose(0, 2, 3, 1), first)  # the same batch whatever the framework's layout


def test_no_augmentation_and_bad_arguments(cifar_batch) -> None:
    x = cifar_batch[:4]
    assert augment_batch(x, "none", seed=0, epoch=0, batch=0) is x
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_batch(x, "cutout", seed=0, epoch=0, batch=0)
    with pytest.raises(ValueError, match="NHWC or NCHW"):
        augment_batch(x, "crop-flip", seed=0, epoch=0, batch=0, layout="HWC")
