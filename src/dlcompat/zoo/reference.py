"""A spec's meaning, executed: the float64 NumPy forward pass of a `ModelSpec` from its canonical weights.

This is the reference a derived model is judged against. It has no framework, no fused kernel and no layout
choice of its own: float64 arithmetic in the canonical NCHW layout (`zoo.spec`), one layer at a time, so every
named layer's output is available under the layer's name. It follows the spec's definitions exactly:
explicit symmetric zero padding, floor-mode pooling windows, batch norm with the running statistics
(inference), dropout as the identity, and a residual block's output taken after its activation.

`forward(spec, weights, x)` takes images as the study stores them, NHWC in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlcompat.zoo.spec import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
    ModelSpec,
    Residual,
)

#: images per chunk: keeps the im2col copy of the largest zoo layer (VGG-16 on 32x32) under about 200 MB
CHUNK = 32


def forward(spec: ModelSpec, weights: Mapping[str, np.ndarray], x_nhwc: np.ndarray,
            keep: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(logits, {layer name: its output}) in float64; outputs are (N, C, H, W) or (N, features).

    With `keep=False` only the logits are computed and the dict is empty (less memory for long inputs)."""
    w = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
    x = np.asarray(x_nhwc, dtype=np.float64)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(spec.input_shape):
        raise ValueError(f"{spec.name} takes images of shape (N, {', '.join(map(str, spec.input_shape))}); "
                         f"got {x.shape}")
    logits, outputs = [], {}
    for start in range(0, len(x), CHUNK):
        seen: dict[str, np.ndarray] = {}
        out = _run(spec.layers, x[start:start + CHUNK].transpose(0, 3, 1, 2), w, seen)
        logits.append(out)
        if keep:
            for name, value in seen.items():
                outputs.setdefault(name, []).append(value)
    joined = {name: np.concatenate(parts) for name, parts in outputs.items()}
    return np.concatenate(logits) if logits else np.zeros((0, spec.num_classes)), joined


def _run(layers: tuple[Layer, ...], x: np.ndarray, w: Mapping[str, np.ndarray],
         seen: dict[str, np.ndarray]) -> np.ndarray:
    for layer in layers:
        x = _step(layer, x, w, seen)
        seen[layer.name] = x
    return x


def _step(layer: Layer, x: np.ndarray, w: Mapping[str, np.ndarray], seen: dict[str, np.ndarray]) -> np.ndarray:
    if isinstance(layer, Conv2D):
        return conv2d(x, w[f"{layer.name}.weight"], w.get(f"{layer.name}.bias"), layer.stride, layer.padding)
    if isinstance(layer, BatchNorm):
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        p = {k: w[f"{layer.name}.{k}"].reshape(shape) for k in ("gamma", "beta", "mean", "var")}
        return p["gamma"] * (x - p["mean"]) / np.sqrt(p["var"] + layer.eps) + p["beta"]
    if isinstance(layer, Activation):
        return activation(x, layer.fn)
    if isinstance(layer, (MaxPool, AvgPool)):
        windows = _windows(x, layer.size, layer.stride or layer.size)
        return windows.max(axis=(-2, -1)) if isinstance(layer, MaxPool) else windows.mean(axis=(-2, -1))
    if isinstance(layer, GlobalAvgPool):
        return x.mean(axis=(2, 3))
    if isinstance(layer, Flatten):
        return x.reshape(len(x), -1)  # channel-major (C, H, W), the canonical order
    if isinstance(layer, Dense):
        out = x @ w[f"{layer.name}.weight"].T
        bias = w.get(f"{layer.name}.bias")
        return out if bias is None else out + bias
    if isinstance(layer, Dropout):
        return x
    if isinstance(layer, Residual):
        body = _run(layer.body, x, w, seen)
        shortcut = _run(layer.shortcut, x, w, seen) if layer.shortcut else x
        return activation(body + shortcut, layer.activation)
    raise TypeError(f"unknown layer type {type(layer).__name__}")


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int, padding: int) -> np.ndarray:
    """NCHW cross-correlation with symmetric zero padding (the canonical Conv2D), by im2col and a matrix product."""
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = weight.shape[-1]
    windows = _windows(x, k, stride)  # (N, C, Ho, Wo, k, k)
    n, c, ho, wo = windows.shape[:4]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)
    out = cols @ weight.reshape(len(weight), -1).T  # (N*Ho*Wo, O)
    if bias is not None:
        out += bias
    return out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


def fold_batch_norm(weight: np.ndarray, bias: np.ndarray, weights: Mapping[str, np.ndarray], norm: str,
                    eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight, bias, factor) of a convolution or dense layer with the batch norm `norm` that follows it folded in
    (float64): factor = gamma / sqrt(var + eps) per output channel, weight x factor, (bias - mean) x factor + beta;
    what a converter that folds batch norms stores."""
    gamma, beta, mean, var = (np.asarray(weights[f"{norm}.{k}"], np.float64) for k in ("gamma", "beta", "mean", "var"))
    factor = gamma / np.sqrt(var + eps)
    return weight * factor.reshape((-1,) + (1,) * (weight.ndim - 1)), (bias - mean) * factor + beta, factor


def _windows(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    """(N, C, Ho, Wo, size, size) views of floor-mode windows."""
    return sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]


def activation(x: np.ndarray, fn: str) -> np.ndarray:
    if fn == "relu":
        return np.maximum(x, 0.0)
    if fn == "tanh":
        return np.tanh(x)
    if fn == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    raise ValueError(f"unknown activation {fn!r}")
