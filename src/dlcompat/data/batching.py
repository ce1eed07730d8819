"""The framework-neutral batch order and pixel scaling that every framework adapter uses.

Every adapter draws its mini-batches from `batch_order`, so every framework sees the same images in
the same order for the same seed and epoch: a difference in the trained models is then the
framework's, not the data order's. NumPy only.
"""

from __future__ import annotations

import numpy as np


def batch_order(n: int, batch_size: int, epoch: int, seed: int) -> list[np.ndarray]:
    """The index batches of one epoch: ``np.random.default_rng([seed, epoch]).permutation(n)`` cut into
    consecutive batches of ``batch_size`` (the last one partial when ``batch_size`` does not divide ``n``).

    Deterministic in ``(n, batch_size, epoch, seed)``; each index in ``range(n)`` appears exactly once.
    Indices are int64. ``n=0`` gives no batches.
    """
    for label, value, low in (("n", n, 0), ("batch_size", batch_size, 1), ("epoch", epoch, 0),
                              ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"batch_order: {label} must be an integer >= {low}, got {value!r}")
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(int(n)).astype(np.int64)
    return [order[start:start + batch_size] for start in range(0, int(n), int(batch_size))]


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 images (any layout, NHWC at rest) -> float32 in [0, 1] (``x / 255``), same shape."""
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise ValueError(f"to_float expects uint8 images, got {getattr(x, 'dtype', type(x).__name__)}")
    return x.astype(np.float32) / np.float32(255.0)
