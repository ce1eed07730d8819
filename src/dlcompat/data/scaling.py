"""How a model wants its pixels: the input scalings `dlcompat check` offers (`--scale`), applied to images in [0, 1].

The study's own models take float32 images in [0, 1] (`batching.to_float`). A model from elsewhere may take raw
0-255 values, values in [-1, 1] (Keras' `preprocess_input` mode "tf": MobileNet, Inception) or ImageNet's
per-channel standardisation (mode "torch": torchvision's models). The scaling is applied to the images before any
runtime sees them, the same for every route, so it is part of the measured model's input and never of a hop.
"""

from __future__ import annotations

import numpy as np

#: ImageNet's channel means and standard deviations (RGB, of images in [0, 1]), as torchvision and Keras use them
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: --scale value -> what it means
SCALES = {
    "0-1": "x / 255: float32 in [0, 1] (dlcompat's own models)",
    "0-255": "x as float32 in [0, 255] (models that rescale inside, e.g. Keras EfficientNet)",
    "symmetric": "x / 127.5 - 1: float32 in [-1, 1] (Keras preprocess_input mode 'tf', e.g. MobileNetV2)",
    "imagenet": "(x / 255 - mean) / std per channel, ImageNet's mean and std (torchvision's models)",
}


def scale_images(x01: np.ndarray, scale: str) -> np.ndarray:
    """float32 NHWC images in [0, 1] -> the model's input under `scale` (a key of `SCALES`)."""
    x01 = np.asarray(x01, dtype=np.float32)
    if scale == "0-1":
        return x01
    if scale == "0-255":
        return x01 * np.float32(255.0)
    if scale == "symmetric":
        return x01 * np.float32(2.0) - np.float32(1.0)
    if scale == "imagenet":
        if x01.shape[-1] != 3:
            raise ValueError(f"ImageNet scaling takes 3-channel images, not {x01.shape[-1]}")
        mean, std = np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD)
        return ((x01 - mean) / std).astype(np.float32)
    raise ValueError(f"unknown input scale {scale!r}; choose from {', '.join(SCALES)}")
