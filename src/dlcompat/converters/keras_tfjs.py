"""Edge tensorflow -> tfjs: a Keras `.keras` file to a TensorFlow.js graph model, in the `tfjs` environment.

The path, and why (the choice this edge records in its facts):

1. The `.keras` file loads with `keras.saving.load_model` in the `tfjs` environment, whose Keras is
   3.15.1 like the main environment's (tensorflowjs 4.22 pins TensorFlow 2.19, not Keras).
2. Keras 3 exports it as a TensorFlow SavedModel (`Model.export(format="tf_saved_model")`, TF 2.19).
3. tensorflowjs 4.22 converts the SavedModel to a *graph model* (`tf_saved_model_conversion_v2`), with
   the variant's weight quantization (none, uint8, uint16, float16: `quantization_dtype_map`).

Not the layers-model paths: tensorflowjs's Keras 3 path (`keras_keras` input) copies the Keras 3
config as it is, which TensorFlow.js 4.22 cannot read ("An InputLayer should be passed either a
`batchInputShape` or an `inputShape`", tensorflow/tfjs#8494); its `save_keras_model` path needs a
tf_keras (Keras 2) model. A graph model carries the TF graph itself, as the ONNX path does.

The artifact is one file: a zip (stored, fixed timestamps, so the same model gives the same bytes) of
the model folder, `model.json` and its weight shards; the browser runner unpacks it and serves it.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from dlcompat.frameworks.base import Unavailable
from dlcompat.zoo.spec import ModelSpec

#: variant -> tensorflowjs's quantization_dtype_map (True: every weight)
QUANTIZATION = {"none": None, "uint8": {"uint8": True}, "uint16": {"uint16": True}, "float16": {"float16": True}}


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "none", threads: int = 1) -> dict[str, Any]:
    if variant not in QUANTIZATION:
        raise Unavailable(f"unknown tfjs quantization {variant!r} ({', '.join(QUANTIZATION)})")
    import keras
    import tensorflow as tf
    import tensorflowjs
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="dlcompat-tfjs-"))
    try:
        keras_file = work / "model.keras"  # load_model wants the suffix; the store names files by hash
        shutil.copyfile(source, keras_file)
        model = keras.saving.load_model(keras_file, compile=False)
        model.export(str(work / "saved_model"), format="tf_saved_model", verbose=False)
        tf_saved_model_conversion_v2.convert_tf_saved_model(
            str(work / "saved_model"), str(work / "tfjs"), quantization_dtype_map=QUANTIZATION[variant])
        zip_folder(work / "tfjs", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "tool": "keras Model.export(tf_saved_model) + tensorflowjs tf_saved_model -> tfjs_graph_model",
        "tool_version": f"tensorflowjs {tensorflowjs.__version__}, tensorflow {tf.__version__}, "
                        f"keras {keras.__version__}",
        "input_layout": "NHWC",
        "model_kind": "graph-model",
        "quantization": variant,
    }


def zip_folder(folder: Path, target: Path) -> None:
    """Zip `folder`'s files (sorted, stored, fixed timestamps): the same files give the same bytes."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(file.relative_to(folder).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, file.read_bytes())
