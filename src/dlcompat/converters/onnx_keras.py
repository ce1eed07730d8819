"""Edge onnx -> savedmodel: onnx2tf rebuilds an ONNX graph as a tf_keras model in NHWC, saved as a zipped SavedModel.

onnx2tf transposes the model to TensorFlow's layout, so the model takes NHWC images whatever the
ONNX file's layout was. The edge traces the model's inference call for NHWC images of any batch
(`tf.function` with an input signature: a model that does not take them fails here, with tf_keras's
own error) and saves it with `tf.saved_model.save` as the function `serve` (and the signature
`serving_default`), zipped: `tf.saved_model.load` reads it back with no custom objects and no
pickle, and runs the traced graph. Runs in the `onnx2tf` toolchain environment (Python 3.12).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from dlcompat.zoo.spec import ModelSpec

#: the saved function that runs the model on a batch of NHWC images
SERVE = "serve"


def to_keras(source: Path, workdir: Path) -> Any:
    """The ONNX file at `source` as onnx2tf's tf_keras model, converted in `workdir` (on a copy of the file:
    onnx2tf rewrites its input in place; what it writes lands in `workdir`/tf)."""
    import onnx2tf

    copy = workdir / "model.onnx"
    shutil.copyfile(source, copy)
    return onnx2tf.convert(input_onnx_file_path=str(copy), output_folder_path=str(workdir / "tf"),
                           non_verbose=True, tflite_backend="tf_converter")


def _zip_folder(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "", threads: int = 1) -> dict[str, Any]:
    if variant:
        raise ValueError(f"onnx2tf has no variant {variant!r}")
    import onnx2tf
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # a worker where TensorFlow already ran keeps its thread pools
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    workdir = Path(tempfile.mkdtemp(prefix="dlcompat-onnx2tf-"))
    try:
        model = to_keras(source, workdir)
        serve = tf.function(lambda images: model(images, training=False),
                            input_signature=[tf.TensorSpec([None, *spec.input_shape], tf.float32, name="images")])
        root = tf.Module()
        root.model = model
        setattr(root, SERVE, serve)
        tf.saved_model.save(root, str(workdir / "saved_model"),
                            signatures={"serving_default": serve.get_concrete_function()})
        _zip_folder(workdir / "saved_model", target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"tool": "onnx2tf (tf_keras model) + tf.saved_model.save", "tool_version": onnx2tf.__version__,
            "tensorflow": tf.__version__, "input_layout": "NHWC", "program": f"SavedModel, function {SERVE!r}"}
