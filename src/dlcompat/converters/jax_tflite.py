"""Edge jax -> tflite: the Flax model through jax2tf into a TensorFlow SavedModel, then `TFLiteConverter`.

`jax2tf.convert` turns the model's inference call (parameters closed over, so they land in the graph as
constants) into a TensorFlow function with a polymorphic batch; a `tf.Module` saves it as a SavedModel
that the converter takes like Keras'. The variants are those of `dlcompat.converters.tflite_variants`.
The input stays NHWC, the Flax adapter's own layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.converters.tflite_variants import check_variant, convert_via_saved_model
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.spec import ModelSpec


def tf_function(model: Any, spec: ModelSpec) -> tuple[Any, list[Any]]:
    """The Flax model's inference call through jax2tf as a `tf.function` with a polymorphic batch (input `images`,
    NHWC), and its input signature."""
    import tensorflow as tf
    from flax import nnx
    from jax.experimental import jax2tf

    graphdef, state = nnx.split(model)

    def forward(x: Any) -> Any:
        return nnx.merge(graphdef, state)(x)

    h, w, c = spec.input_shape
    signature = [tf.TensorSpec((None, h, w, c), tf.float32, name="images")]
    call = tf.function(jax2tf.convert(forward, polymorphic_shapes=[f"(b, {h}, {w}, {c})"], with_gradient=False),
                       input_signature=signature, autograph=False)
    return call, signature


def save_as_tf(model: Any, spec: ModelSpec, path: Path) -> dict[str, Any]:
    """The Flax model's inference call as a TensorFlow SavedModel (signature `serving_default`, input `images`)."""
    import jax
    import tensorflow as tf

    module = tf.Module()
    module.forward, _ = tf_function(model, spec)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.forward.get_concrete_function()})
    return {"jax": jax.__version__, "jax2tf": "jax.experimental.jax2tf.convert (native serialization)"}


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "fp32", threads: int = 1,
            calibration: np.ndarray | None = None) -> dict[str, Any]:
    check_variant("jax.tflite", variant, calibration)
    adapter = make_adapter("jax", threads=threads)
    model = adapter.load(spec, source)
    facts = convert_via_saved_model(lambda folder: save_as_tf(model, spec, folder), target, variant, calibration)
    return {"tool": "jax2tf + tf.lite.TFLiteConverter", "tool_version": adapter.version(), "input_layout": "NHWC",
            **facts}
