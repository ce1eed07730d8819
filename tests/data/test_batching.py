"""The shared batch order and pixel scaling."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.data.batching import batch_order, to_float


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
