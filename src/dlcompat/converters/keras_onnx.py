"""Edge tensorflow -> onnx, two ways: Keras 3's own `Model.export(format="onnx")`, and tf2onnx.

tf2onnx converts a `tf.function` of the model's inference call (with an NHWC float32 input signature
and a dynamic batch), which is how it is used on Keras 3 models, whose `from_keras` path expects Keras 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.spec import ModelSpec

OPSET = 17


def convert(
    source: Path, target: Path, *, spec: ModelSpec, variant: str = "keras", threads: int = 1
) -> dict[str, Any]:
    adapter = make_adapter("tensorflow", threads=threads)
    model = adapter.load(spec, source)
    if variant == "keras":
        return adapter.export(model, spec, "onnx", target, variant=variant)
    if variant == "tf2onnx":
        import tensorflow as tf
        import tf2onnx

        h, w, c = spec.input_shape
        signature = [tf.TensorSpec((None, h, w, c), tf.float32, name="input")]
        call = tf.function(lambda x: model(x, training=False), input_signature=signature)
        tf2onnx.convert.from_function(call, input_signature=signature, opset=OPSET, output_path=str(target))
        return {"tool": "tf2onnx (from_function)", "tool_version": tf2onnx.__version__,
                "tensorflow": tf.__version__, "opset": OPSET, "input_layout": "NHWC"}
    raise ValueError(f"keras.onnx has no variant {variant!r} (keras, tf2onnx)")
