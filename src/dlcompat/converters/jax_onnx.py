"""Edge jax -> onnx: the Flax model into TensorFlow with jax2tf, then into ONNX with tf2onnx, two ways.

- ``tflite-tf2onnx``: jax2tf's SavedModel (as for the jax -> tflite edge), converted to an fp32 LiteRT
  flatbuffer by `tf.lite.TFLiteConverter`, which legalizes the StableHLO that jax2tf serializes into
  TensorFlow builtin ops; tf2onnx then converts that flatbuffer (`tf2onnx.convert.from_tflite`).
- ``tf2onnx``: jax2tf's `tf.function` straight into `tf2onnx.convert.from_function`, the path the
  tools document. jax2tf (jax 0.10) lowers *only* natively: the whole model becomes one
  ``XlaCallModule`` op carrying serialized StableHLO, and the ``native_serialization=False`` lowering
  to ordinary TensorFlow ops is gone (the argument is deprecated and ignored). tf2onnx 1.17 has no
  handler for ``XlaCallModule``, so this variant fails; its error is raised with tf2onnx's own message,
  and the study records it as a finding.

The input stays NHWC (the Flax adapter's layout) with a dynamic batch.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from dlcompat.converters.jax_tflite import save_as_tf, tf_function
from dlcompat.converters.tflite_variants import convert_via_saved_model
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.spec import ModelSpec

OPSET = 17
VARIANTS = ("tflite-tf2onnx", "tf2onnx")


class Tf2OnnxError(RuntimeError):
    """tf2onnx could not convert jax2tf's TensorFlow graph (the message names the ops it holds)."""


def _via_tflite(model: Any, spec: ModelSpec, target: Path) -> dict[str, Any]:
    import tf2onnx

    workdir = Path(tempfile.mkdtemp(prefix="dlcompat-jax-onnx-"))
    try:
        tflite = workdir / "model.tflite"
        facts = convert_via_saved_model(lambda folder: save_as_tf(model, spec, folder), tflite, "fp32", None)
        tf2onnx.convert.from_tflite(str(tflite), opset=OPSET, output_path=str(target))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"tool": "jax2tf SavedModel -> tf.lite.TFLiteConverter (fp32) -> tf2onnx (from_tflite)", **facts}


def _from_function(model: Any, spec: ModelSpec, target: Path) -> dict[str, Any]:
    import jax
    import tf2onnx

    call, signature = tf_function(model, spec)
    try:
        tf2onnx.convert.from_function(call, input_signature=signature, opset=OPSET, output_path=str(target))
    except Exception as exc:
        ops = sorted({op.type for op in call.get_concrete_function().graph.get_operations()}
                     - {"Placeholder", "Identity", "NoOp"})
        native = (f"; jax {jax.__version__} serialized the model natively, as StableHLO inside XlaCallModule"
                  if "XlaCallModule" in ops else "")
        raise Tf2OnnxError(f"tf2onnx {tf2onnx.__version__} cannot convert jax2tf's graph (TensorFlow ops: "
                           f"{', '.join(ops)}{native}): {type(exc).__name__}: {exc}") from exc
    return {"tool": "jax2tf tf.function -> tf2onnx (from_function)", "jax": jax.__version__,
            "jax2tf": "jax.experimental.jax2tf.convert (native serialization)"}


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "tflite-tf2onnx",
            threads: int = 1) -> dict[str, Any]:
    if variant not in VARIANTS:
        raise ValueError(f"jax.onnx has no variant {variant!r} ({', '.join(VARIANTS)})")
    import tensorflow as tf
    import tf2onnx

    adapter = make_adapter("jax", threads=threads)
    model = adapter.load(spec, source)
    facts = _via_tflite(model, spec, target) if variant == "tflite-tf2onnx" else _from_function(model, spec, target)
    return {**facts, "tool_version": f"tf2onnx {tf2onnx.__version__}, TensorFlow {tf.__version__}, "
                                     f"Flax {adapter.version()}", "opset": OPSET, "variant": variant,
            "input_layout": "NHWC"}
