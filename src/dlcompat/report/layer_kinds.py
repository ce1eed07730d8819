"""The kind of a canonical layer (`conv2` of LeNet-5 is a convolution), so that one fault in one kind of layer is
one cause whichever model and layer index it hit (`finding_groups`: a converter that mis-handles every batch norm
is one group, not one per batch norm).

Read from the model zoo's spec (layer names do not depend on the input shape, so any shape builds it); a model the
zoo does not know is named by its layer's name without its digits (`fc3` -> `fc`).
"""

from __future__ import annotations

import re
from functools import lru_cache

#: the localisation's name of the output when only the output was compared (`metrics.noise.LOGITS`)
OUTPUT = "logits"
_KIND_NAMES = {"Conv2D": "convolution", "Dense": "dense", "BatchNorm": "batch norm", "MaxPool": "max pooling",
               "AvgPool": "average pooling", "GlobalAvgPool": "global average pooling", "Flatten": "flatten",
               "Dropout": "dropout", "Residual": "residual add"}
_DIGITS = re.compile(r"\d+")


@lru_cache(maxsize=64)
def _spec_kinds(model: str) -> dict[str, str]:
    """Layer name -> kind for a zoo model; empty for a model the zoo does not know."""
    from dlcompat.zoo.registry import build_spec, model_names

    if model not in model_names():
        return {}
    try:
        spec = build_spec(model, (32, 32, 3), 10)
    except (ValueError, KeyError, TypeError):
        return {}
    out = {}
    for layer in spec.iter_layers():
        name = type(layer).__name__
        out[layer.name] = str(getattr(layer, "fn", "activation")) if name == "Activation" else _KIND_NAMES.get(
            name, name.lower())
    return out


def layer_kind(model: str, layer: str | None) -> str:
    """`convolution`, `batch norm`, `relu`, `dense`, ..., `output` for the logits; `unknown` without a layer."""
    if not layer:
        return "unknown"
    if layer == OUTPUT:
        return "output"
    kind = _spec_kinds(model).get(layer)
    if kind:
        return kind
    return _DIGITS.sub("", layer.rsplit(".", 1)[-1]).strip("_") or layer


__all__ = ["OUTPUT", "layer_kind"]
