"""The four LiteRT (TFLite) variants, as settings of TensorFlow's `TFLiteConverter`, shared by every edge into tflite.

- ``fp32``: the float model as is.
- ``fp16``: weights stored as float16 (dequantized to float32 at load; activations stay float32).
- ``int8-dynamic``: dynamic-range quantization: int8 weights, activations quantized on the fly per call.
- ``int8-full``: full-integer quantization: int8 weights *and* activations, ranges calibrated on a
  representative dataset drawn from the training split, int8 input and output tensors (the model carries
  their scale and zero point; `dlcompat.runtimes.litert` reads them from it).

`convert_saved_model` converts a TensorFlow SavedModel (the common ground of Keras and jax2tf) with them;
`convert_via_saved_model` has an edge write that SavedModel into a temporary folder first.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS = ("fp32", "fp16", "int8-dynamic", "int8-full")
#: the variants that calibrate on training images
CALIBRATED = ("int8-full",)


def check_variant(edge: str, variant: str, calibration: np.ndarray | None) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"{edge} has no variant {variant!r} ({', '.join(VARIANTS)})")
    if variant in CALIBRATED and (calibration is None or len(calibration) == 0):
        raise ValueError(f"{edge} ({variant}) needs calibration images from the training split (calibration=...)")


def representative_dataset(calibration: np.ndarray) -> Iterator[list[np.ndarray]]:
    """One image per step, float32 NHWC, as the converter's calibrator wants them."""
    for image in calibration:
        yield [np.ascontiguousarray(image[None], dtype=np.float32)]


def configure(converter: Any, variant: str, calibration: np.ndarray | None) -> dict[str, Any]:
    """Set `converter` (a `tf.lite.TFLiteConverter`) up for `variant`; return the facts to record."""
    import tensorflow as tf

    facts: dict[str, Any] = {"variant": variant, "input_dtype": "float32", "output_dtype": "float32"}
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        facts["weights"] = "float16"
    elif variant == "int8-dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        facts["weights"] = "int8 (dynamic-range: activations quantized per call)"
    elif variant == "int8-full":
        assert calibration is not None
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: representative_dataset(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        facts.update(weights="int8", activations="int8", input_dtype="int8", output_dtype="int8",
                     calibration_images=len(calibration), calibration_split="train")
    else:
        facts["weights"] = "float32"
    return facts


def convert_saved_model(saved_model: Path, target: Path, variant: str,
                        calibration: np.ndarray | None) -> dict[str, Any]:
    """A SavedModel directory -> a `.tflite` file of `variant`; the facts of the conversion."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    facts = configure(converter, variant, calibration)
    Path(target).write_bytes(converter.convert())
    return {**facts, "tflite_converter": f"tf.lite.TFLiteConverter.from_saved_model (TensorFlow {tf.__version__})"}


def convert_via_saved_model(save: Callable[[Path], dict[str, Any] | None], target: Path, variant: str,
                            calibration: np.ndarray | None) -> dict[str, Any]:
    """`save(folder)` writes a SavedModel (returning facts of its own, or None) into a temporary folder, which
    `convert_saved_model` converts to `target` and which is removed afterwards; the facts of both."""
    workdir = Path(tempfile.mkdtemp(prefix="dlcompat-saved-model-"))
    try:
        facts = dict(save(workdir / "saved_model") or {})
        facts.update(convert_saved_model(workdir / "saved_model", target, variant, calibration))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return facts
