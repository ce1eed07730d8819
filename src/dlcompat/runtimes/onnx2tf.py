"""Migration into TensorFlow through ONNX: onnx2tf rebuilds the graph as a Keras (tf_keras) model.

onnx2tf transposes the model to TensorFlow's NHWC layout, so the converted model takes NHWC images
whatever the ONNX file's layout was. The conversion happens when the runner activates (part of the
load time), on a copy of the ONNX file (onnx2tf rewrites its input in place), and the model then runs
as a compiled `tf.function`. Runs in the `onnx2tf` toolchain environment (Python 3.12).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.runtimes.base import Runner


class OnnxToTfRunner(Runner):
    name = "onnx2tf"

    def activate(self) -> None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(self.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import onnx2tf

        self.tf = tf
        self.workdir = Path(tempfile.mkdtemp(prefix="dlcompat-onnx2tf-"))
        source = self.workdir / "model.onnx"
        shutil.copyfile(self.path, source)
        self.model = onnx2tf.convert(input_onnx_file_path=str(source), output_folder_path=str(self.workdir / "tf"),
                                     non_verbose=True, tflite_backend="tf_converter")
        self.call = tf.function(lambda x: self.model(x, training=False))

    def _input(self, x: np.ndarray) -> Any:
        return self.tf.constant(np.ascontiguousarray(x))  # NHWC: onnx2tf's own layout

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        xt, call = self._input(x), self.call
        return lambda: call(xt)

    def infer(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        out = [np.asarray(self.call(self._input(x[i : i + batch_size]))) for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def deactivate(self) -> None:
        self.model = None
        shutil.rmtree(getattr(self, "workdir", ""), ignore_errors=True)

    def info(self) -> dict[str, Any]:
        import onnx2tf

        return {"runtime": "onnx2tf", "version": onnx2tf.__version__, "tensorflow": self.tf.__version__,
                "intra_op_threads": self.tf.config.threading.get_intra_op_parallelism_threads(),
                "api": "onnx2tf.convert(...) model under tf.function", "input_layout": "NHWC (onnx2tf transposes)"}
