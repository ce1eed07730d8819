"""Migration into TensorFlow through ONNX: the model onnx2tf rebuilds (`converters/onnx_keras.py`), run in TensorFlow.

The loader converts (part of the load time) in a working folder the session holds; the converted
model takes NHWC images whatever the ONNX file's layout was, and the runner runs it as a compiled
`tf.function`. Intermediate tensors are the outputs of the converted model's layers (tf_keras layer
names, which onnx2tf takes from the TensorFlow ops it emits), read through a second functional model
on the same layers. Runs in the `onnx2tf` toolchain environment (Python 3.12).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.converters.onnx_keras import to_keras
from dlcompat.runtimes.base import Loader, Runner, require_tensors


@dataclass(frozen=True)
class ConvertedModel:
    """onnx2tf's tf_keras model, its compiled call, and the working folder of the conversion."""

    model: Any
    call: Callable[[Any], Any]
    workdir: Path


@dataclass(frozen=True)
class KerasFromOnnx(Loader):
    """The ONNX file at `path` converted by onnx2tf into a tf_keras model under `tf.function`, TensorFlow's
    intra-op threads set to `threads` (inter-op: 1)."""

    path: Path
    threads: int = 1

    def __call__(self) -> ConvertedModel:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(self.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        workdir = Path(tempfile.mkdtemp(prefix="dlcompat-onnx2tf-"))
        try:
            model = to_keras(self.path, workdir)
        except BaseException:  # a model onnx2tf cannot rebuild: its working folder goes with the failure
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return ConvertedModel(model, tf.function(lambda x: model(x, training=False)), workdir)


class OnnxToTfRunner(Runner):
    name = "onnx2tf"

    def loader(self) -> KerasFromOnnx:
        return KerasFromOnnx(self.path, self.threads)

    def activate(self) -> None:
        import tensorflow as tf

        self.tf = tf
        super().activate()
        self.model, self.call = self.session.model, self.session.call
        self._taps: dict[tuple[str, ...], Callable[[Any], Any]] = {}

    def release(self, session: ConvertedModel) -> None:
        self.model = None
        self._taps = {}
        shutil.rmtree(session.workdir, ignore_errors=True)

    def _input(self, x: np.ndarray) -> Any:
        return self.tf.constant(np.ascontiguousarray(x))  # NHWC: onnx2tf's own layout

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        xt, call = self._input(x), self.call
        return lambda: call(xt)

    def infer(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        out = [np.asarray(self.call(self._input(x[i : i + batch_size]))) for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def tensor_names(self) -> list[str]:
        """The converted model's layers with one output tensor (tf_keras names, model order; inputs left out)."""
        return [layer.name for layer in self.model.layers
                if type(layer).__name__ != "InputLayer" and not isinstance(layer.output, list | tuple)]

    def intermediates(self, x: np.ndarray, names: list[str], batch_size: int = 256) -> dict[str, np.ndarray]:
        """The named layers' outputs (NHWC where 4-D: onnx2tf's layout), from a functional model on those layers."""
        key = tuple(names)
        if key not in self._taps:
            import tf_keras

            require_tensors(self, names, self.tensor_names())
            taps = tf_keras.Model(self.model.inputs, [self.model.get_layer(name).output for name in key])
            self._taps[key] = self.tf.function(lambda t: taps(t, training=False))
        parts = [self._taps[key](self._input(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        parts = [part if isinstance(part, list | tuple) else [part] for part in parts]
        return {name: np.concatenate([np.asarray(part[n]) for part in parts]) for n, name in enumerate(key)}

    def info(self) -> dict[str, Any]:
        import onnx2tf

        return {"runtime": "onnx2tf", "version": onnx2tf.__version__, "tensorflow": self.tf.__version__,
                "intra_op_threads": self.tf.config.threading.get_intra_op_parallelism_threads(),
                "api": "onnx2tf.convert(...) model under tf.function", "input_layout": "NHWC (onnx2tf transposes)"}
