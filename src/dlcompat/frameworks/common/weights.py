"""The checks every adapter's `set_weights` makes on canonical weights, with one set of messages. NumPy only."""

from __future__ import annotations

import numpy as np

from dlcompat.zoo.spec import ModelSpec


def checked_weights(spec: ModelSpec, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`spec`'s canonical weights taken from `weights`: float32 C-contiguous copies, in `spec.weight_shapes()`
    order. Raises ValueError, before anything is set, when one is missing or has another shape; other
    entries of `weights` are ignored."""
    expected = spec.weight_shapes()
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ValueError(f"weights are missing {', '.join(missing[:5])}")
    out = {}
    for name, shape in expected.items():
        value = np.array(weights[name], dtype=np.float32, order="C", copy=True)
        if value.shape != shape:
            raise ValueError(f"weight {name} has shape {value.shape}, the spec says {shape}")
        out[name] = value
    return out
