"""Migration into TensorFlow through ONNX: the SavedModel the `onnx2tf` edge wrote (`converters/onnx_keras.py`), run
in TensorFlow.

The loader unzips the SavedModel into a working folder the session holds and loads it with
`tf.saved_model.load` (no custom objects, no pickle); the runner calls its traced function, which
takes NHWC images (onnx2tf's layout) of any batch. Intermediate tensors are unavailable: the
SavedModel keeps only the traced inference graph, not onnx2tf's tf_keras layers. Runs in the
`onnx2tf` toolchain environment (Python 3.12).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlcompat.converters.onnx_keras import SERVE
from dlcompat.runtimes.base import Loader, Runner


@dataclass(frozen=True)
class LoadedSavedModel:
    """A loaded SavedModel, its inference function, and the working folder it was unzipped into."""

    model: Any
    call: Callable[[Any], Any]
    workdir: Path


@dataclass(frozen=True)
class SavedModelFromZip(Loader):
    """The zipped SavedModel at `path`, unzipped and loaded; TensorFlow's intra-op threads set to `threads`
    (inter-op: 1)."""

    path: Path
    threads: int = 1

    def __call__(self) -> LoadedSavedModel:
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # a worker where TensorFlow already ran keeps its thread pools
            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        workdir = Path(tempfile.mkdtemp(prefix="dlcompat-onnx2tf-"))
        try:
            with zipfile.ZipFile(self.path) as archive:
                archive.extractall(workdir)
            model = tf.saved_model.load(str(workdir))
        except BaseException:  # a model TensorFlow cannot load: its working folder goes with the failure
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return LoadedSavedModel(model, getattr(model, SERVE), workdir)


class OnnxToTfRunner(Runner):
    name = "onnx2tf"
    no_intermediates: ClassVar[str] = ("the SavedModel keeps only the traced inference graph, not onnx2tf's "
                                       "tf_keras layers")

    def loader(self) -> SavedModelFromZip:
        return SavedModelFromZip(self.path, self.threads)

    def activate(self) -> None:
        import tensorflow as tf

        self.tf = tf
        super().activate()
        self.call = self.session.call

    def release(self, session: LoadedSavedModel) -> None:
        self.call = None
        shutil.rmtree(session.workdir, ignore_errors=True)

    def _input(self, x: np.ndarray) -> Any:
        return self.tf.constant(np.ascontiguousarray(x))  # NHWC: onnx2tf's own layout

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        xt, call = self._input(x), self.call
        return lambda: call(xt)

    def infer(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        out = [np.asarray(self.call(self._input(x[i : i + batch_size]))) for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def info(self) -> dict[str, Any]:
        import onnx2tf

        return {"runtime": "onnx2tf", "version": onnx2tf.__version__, "tensorflow": self.tf.__version__,
                "intra_op_threads": self.tf.config.threading.get_intra_op_parallelism_threads(),
                "api": f"tf.saved_model.load(SavedModel).{SERVE}(images)",
                "input_layout": "NHWC (onnx2tf transposes)"}
