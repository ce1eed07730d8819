"""The calibration set of post-training quantization: a seeded sample of the TRAINING split, never the test split.

A full-integer converter (LiteRT int8, ExecuTorch's XNNPACK quantizer) runs the model on these images to
choose the activations' ranges; drawing them from the test split would let the quantized model see the
images it is then scored on. NumPy only: the convert job builds the set in every toolchain environment.
"""

from __future__ import annotations

import numpy as np

from dlcompat.data.batching import to_float
from dlcompat.data.registry import Dataset


def calibration_images(dataset: Dataset, count: int, seed: int = 0) -> np.ndarray:
    """`count` training images (all of them if fewer), float32 NHWC in [0, 1], chosen without replacement.

    Deterministic in (training split, count, seed); the images keep the split's order.
    """
    if count < 1:
        raise ValueError(f"calibration needs at least one image, got count={count}")
    n = len(dataset.train.x)
    if n == 0:
        raise ValueError("the training split is empty: no calibration images to draw")
    picked = np.sort(np.random.default_rng([int(seed), 0xCA11B]).choice(n, size=min(count, n), replace=False))
    return to_float(dataset.train.x[picked])
