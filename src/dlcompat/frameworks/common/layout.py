"""The layout plan of an NHWC framework: canonical weights and activations <-> the framework's own layout.

The canonical layout (`dlcompat.zoo.spec`) is PyTorch's: OIHW conv kernels, (out, in) dense kernels,
NCHW feature maps, and a `Flatten` that flattens channel-major, (C, H, W). A framework that computes
in NHWC (Keras, Flax) keeps HWIO conv kernels and (in, out) dense kernels, and one rule decides
where its flatten order differs from the canonical one:

- a `Flatten` of a feature map flattens in NHWC order, (H, W, C), when its output reaches a `Dense`
  through element-wise layers only (activations, dropout, batch norm, a `Flatten` of features) in the
  same sequence: the idiomatic reshape, with that dense layer's kernel rows, and the batch norms' features
  on the way, permuted from the canonical order;
- any other `Flatten` of a feature map (one that feeds a residual block, or ends the model) transposes
  to channel-major first, so that its consumers see the canonical order.

`NHWCLayout` is computed from the spec alone; the adapters build their models from `flattens_nhwc` and
translate at their boundary only (`to_native`, `to_canonical`, `activation_to_canonical`). NumPy only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from dlcompat.zoo import spec as zs

#: layers that keep the order of the features they are given
_ELEMENT_WISE = (zs.Activation, zs.Dropout, zs.BatchNorm, zs.Flatten)

CHW = tuple[int, int, int]


@dataclass(frozen=True)
class NHWCLayout:
    """Where an NHWC model of a spec holds features in NHWC-flatten order rather than channel-major."""

    #: layer -> (C, H, W) of the feature map it flattened: its output is in (H, W, C) order
    nhwc_outputs: dict[str, CHW]
    #: dense layer -> (C, H, W) of its NHWC-flattened input: its kernel rows are permuted
    dense_rows: dict[str, CHW]
    #: batch norm over NHWC-flattened features -> (C, H, W): its parameters and statistics are permuted
    norm_features: dict[str, CHW]

    def flattens_nhwc(self, flatten: str) -> bool:
        """Whether the `Flatten` layer named `flatten` flattens in NHWC order (else channel-major)."""
        return flatten in self.nhwc_outputs

    @staticmethod
    def native_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
        """The NHWC framework's shape of a canonical weight of `shape` (a permutation keeps the shape)."""
        if len(shape) == 4:  # OIHW -> HWIO
            o, i, kh, kw = shape
            return (kh, kw, i, o)
        if len(shape) == 2:  # (out, in) -> (in, out)
            return (shape[1], shape[0])
        return shape

    def to_native(self, name: str, value: np.ndarray) -> np.ndarray:
        """Canonical weight `name` (``layer.param``) in the NHWC framework's layout."""
        layer = name.rsplit(".", 1)[0]
        if value.ndim == 4:  # OIHW -> HWIO
            return value.transpose(2, 3, 1, 0)
        if value.ndim == 2:  # (out, in) -> (in, out), rows in NHWC-flatten order where the input is
            if layer in self.dense_rows:
                c, h, w = self.dense_rows[layer]
                return value.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
            return value.T
        if layer in self.norm_features:
            c, h, w = self.norm_features[layer]
            return value.reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
        return value

    def to_canonical(self, name: str, value: np.ndarray) -> np.ndarray:
        """The inverse of `to_native`: weight `name` from the NHWC framework's layout to the canonical one."""
        layer = name.rsplit(".", 1)[0]
        if value.ndim == 4:  # HWIO -> OIHW
            return value.transpose(3, 2, 0, 1)
        if value.ndim == 2:
            if layer in self.dense_rows:
                c, h, w = self.dense_rows[layer]
                return value.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(-1, c * h * w)
            return value.T
        if layer in self.norm_features:
            c, h, w = self.norm_features[layer]
            return value.reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
        return value

    def activation_to_canonical(self, name: str, value: np.ndarray) -> np.ndarray:
        """Layer `name`'s output for a batch, from NHWC (or NHWC-flatten order) to NCHW (or channel-major)."""
        if value.ndim == 4:
            return value.transpose(0, 3, 1, 2)
        if name in self.nhwc_outputs:
            c, h, w = self.nhwc_outputs[name]
            return value.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(len(value), -1)
        return value


@functools.cache
def nhwc_layout(spec: zs.ModelSpec) -> NHWCLayout:
    """The layout plan of `spec` for an NHWC framework (see the module's rule)."""
    outputs = spec.output_shapes()
    layout = NHWCLayout({}, {}, {})

    def walk(layers: tuple[zs.Layer, ...], shape: tuple[int, ...]) -> None:
        for i, layer in enumerate(layers):
            if isinstance(layer, zs.Flatten) and len(shape) == 3:
                _plan_flatten(layout, layers, i, (shape[0], shape[1], shape[2]))
            if isinstance(layer, zs.Residual):
                walk(layer.body, shape)
                walk(layer.shortcut, shape)
            shape = outputs[layer.name]

    h, w, c = spec.input_shape
    walk(spec.layers, (c, h, w))
    return layout


def _plan_flatten(layout: NHWCLayout, layers: tuple[zs.Layer, ...], i: int, chw: CHW) -> None:
    """Record the Flatten `layers[i]` of a (C, H, W) map as NHWC if a Dense follows through element-wise layers."""
    j = i + 1
    while j < len(layers) and isinstance(layers[j], _ELEMENT_WISE):
        j += 1
    if j == len(layers) or not isinstance(layers[j], zs.Dense):
        return
    for layer in layers[i:j]:
        layout.nhwc_outputs[layer.name] = chw
        if isinstance(layer, zs.BatchNorm):
            layout.norm_features[layer.name] = chw
    layout.dense_rows[layers[j].name] = chw
