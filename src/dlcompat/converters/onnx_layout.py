"""The layout of an ONNX model's image input: NHWC (a Keras or jax export) or NCHW (a PyTorch export)."""

from __future__ import annotations

from typing import Any

from dlcompat.zoo.spec import ModelSpec


def nhwc_inputs(model: Any, spec: ModelSpec) -> list[str]:
    """The names of the inputs of the ONNX `model` (an `onnx.ModelProto`) that are already NHWC images."""
    h, w, c = spec.input_shape
    out = []
    for value in model.graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if len(dims) == 4 and dims[1:] == [h, w, c] and dims[1] != c:
            out.append(value.name)
    return out


def input_layout(model: Any, spec: ModelSpec) -> str:
    """The layout of the ONNX `model`'s image input."""
    return "NHWC" if nhwc_inputs(model, spec) else "NCHW"
