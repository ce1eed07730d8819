"""Test weights that exercise every convention: random parameters and non-trivial batch-norm statistics."""

from __future__ import annotations

import numpy as np

from dlcompat.zoo.spec import ModelSpec, init_weights


def random_weights(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """init_weights, plus random biases, BN scale/shift and running statistics far from identity."""
    rng = np.random.default_rng(seed + 1000)
    weights = init_weights(spec, seed)
    for name, value in weights.items():
        param = name.rsplit(".", 1)[1]
        if param in ("bias", "beta", "mean"):
            weights[name] = rng.normal(0.0, 0.1, value.shape).astype(np.float32)
        elif param == "gamma":
            weights[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif param == "var":
            weights[name] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
    return weights
