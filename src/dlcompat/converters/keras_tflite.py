"""Edge tensorflow -> tflite: the Keras model exported as a SavedModel, then TensorFlow's `TFLiteConverter`.

Keras 3's `Model.export(format="tf_saved_model")` writes the inference function with a dynamic batch
and its weights frozen in, which the converter (and its int8 calibrator) takes as is. The variants are
those of `dlcompat.converters.tflite_variants`. The model keeps Keras' NHWC input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.converters.tflite_variants import check_variant, convert_via_saved_model
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.spec import ModelSpec


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "fp32", threads: int = 1,
            calibration: np.ndarray | None = None) -> dict[str, Any]:
    check_variant("keras.tflite", variant, calibration)
    adapter = make_adapter("tensorflow", threads=threads)
    model = adapter.load(spec, source)
    facts = convert_via_saved_model(lambda folder: model.export(str(folder), format="tf_saved_model", verbose=False),
                                    target, variant, calibration)
    import keras

    return {"tool": "keras Model.export(format='tf_saved_model') + tf.lite.TFLiteConverter",
            "tool_version": adapter.version(), "keras": keras.__version__, "input_layout": "NHWC", **facts}
