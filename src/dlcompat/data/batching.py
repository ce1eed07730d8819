"""The framework-neutral batch order, augmentation and pixel scaling that every framework adapter uses.

Every adapter draws its mini-batches from `batch_order`, so every framework sees the same images in
the same order for the same seed and epoch: a difference in the trained models is then the
framework's, not the data order's. When the training settings ask for augmentation, every adapter
passes each batch through `augment_batch`, whose randomness is a function of (seed, epoch, batch
number) alone, so the augmented batches are the same in every framework too. NumPy only.
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


#: the augmentations `augment_batch` knows ("none" leaves batches as they are)
AUGMENTATIONS = ("none", "crop-flip")
#: He et al. 2016 (CIFAR-10): "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the
#: padded image or its horizontal flip"
CROP_PADDING = 4
_AUGMENT_STREAM = 0xA5  # keeps augmentation's random stream apart from batch_order's


def augment_batch(images: np.ndarray, augmentation: str, *, seed: int, epoch: int, batch: int,
                  layout: str = "NHWC") -> np.ndarray:
    """Batch number `batch` of epoch `epoch` augmented (a new array; the input is left alone).

    ``crop-flip``: each image is zero-padded by `CROP_PADDING` pixels on every side, a window of its
    own size is cut at a uniformly random offset, and the window is flipped left-right with
    probability 1/2. The offsets (rows, then columns) and the flips come from
    ``np.random.default_rng([seed, epoch, batch, 0xA5])``: ``integers(0, 2 * pad + 1, (n, 2))``, then
    ``random(n) < 0.5``. `layout` is the images' layout, NHWC or NCHW; the dtype is kept.
    """
    if augmentation == "none":
        return images
    if augmentation != "crop-flip":
        raise ValueError(f"unknown augmentation {augmentation!r}: choose {', '.join(AUGMENTATIONS)}")
    if layout not in ("NHWC", "NCHW") or images.ndim != 4:
        raise ValueError(f"augment_batch expects a 4-d NHWC or NCHW batch, got {images.shape} as {layout}")
    nhwc = images if layout == "NHWC" else images.transpose(0, 2, 3, 1)
    n, h, w, _ = nhwc.shape
    pad = CROP_PADDING
    rng = np.random.default_rng([int(seed), int(epoch), int(batch), _AUGMENT_STREAM])
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    flips = rng.random(n) < 0.5
    padded = np.pad(nhwc, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    rows = offsets[:, :1] + np.arange(h)  # (n, h)
    cols = offsets[:, 1:] + np.arange(w)  # (n, w)
    cols = np.where(flips[:, None], cols[:, ::-1], cols)
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return np.ascontiguousarray(out if layout == "NHWC" else out.transpose(0, 3, 1, 2))
