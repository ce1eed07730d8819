"""Migration onnx -> TensorFlow: onnx2tf rebuilds an ONNX graph as a tf_keras model, in memory, in NHWC.

Not a file edge of the conversion graph (the file edge of onnx2tf is `onnx_tflite`): the `onnx2tf` runtime
converts when it loads (`runtimes/onnx2tf.KerasFromOnnx`, so the conversion counts in the load time) and
runs the model. onnx2tf transposes the model to TensorFlow's layout, so the model takes NHWC images
whatever the ONNX file's layout was. Runs in the `onnx2tf` toolchain environment (Python 3.12).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def to_keras(source: Path, workdir: Path) -> Any:
    """The ONNX file at `source` as onnx2tf's tf_keras model, converted in `workdir` (on a copy of the file:
    onnx2tf rewrites its input in place; what it writes lands in `workdir`/tf)."""
    import onnx2tf

    copy = workdir / "model.onnx"
    shutil.copyfile(source, copy)
    return onnx2tf.convert(input_onnx_file_path=str(copy), output_folder_path=str(workdir / "tf"),
                           non_verbose=True, tflite_backend="tf_converter")
