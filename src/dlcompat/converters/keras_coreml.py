"""Edge tensorflow -> coreml: coremltools converts the Keras model's inference function (one concrete function).

coremltools' TensorFlow 2 frontend takes a single concrete function (a Keras SavedModel holds several),
so the edge traces ``model(x, training=False)`` with an NHWC float32 signature, batch 1 to `MAX_BATCH`.
The input keeps Keras' NHWC layout. Precisions as in `dlcompat.converters.coreml_package`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcompat.converters.coreml_package import DEPLOYMENT_TARGET, check_variant, finish, precision
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.spec import ModelSpec

MAX_BATCH = 256


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "fp32", threads: int = 1) -> dict[str, Any]:
    check_variant("keras.coreml", variant)
    adapter = make_adapter("tensorflow", threads=threads)
    model = adapter.load(spec, source)
    import coremltools as ct
    import tensorflow as tf

    h, w, c = spec.input_shape
    call = tf.function(lambda x: model(x, training=False),
                       input_signature=[tf.TensorSpec((None, h, w, c), tf.float32, name="input")])
    mlmodel = ct.convert([call.get_concrete_function()], source="tensorflow", convert_to="mlprogram",
                         compute_precision=precision(variant),
                         minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
                         inputs=[ct.TensorType(name="input", shape=(ct.RangeDim(1, MAX_BATCH, 1), h, w, c))])
    facts = finish(mlmodel, variant, target)
    return {"tool": "coremltools.convert (TensorFlow concrete function)", "tool_version": facts["coremltools"],
            "tensorflow": tf.__version__, "input_layout": "NHWC", "input_name": "input",
            "output_name": mlmodel.get_spec().description.output[0].name, **facts}
