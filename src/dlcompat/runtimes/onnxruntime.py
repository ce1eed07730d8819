"""ONNX Runtime runner: an `InferenceSession` on the CPU execution provider with a fixed thread budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlcompat.errors import ModelFileError
from dlcompat.runtimes.base import Runner, to_layout


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def activate(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelFileError(f"{self.path} is not a loadable ONNX model ({exc}): re-export it") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        feed = {self.input_name: to_layout(x, self.input_layout)}
        run = self.session.run
        outputs = [self.output_name]
        return lambda: run(outputs, feed)

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: to_layout(x, self.input_layout)})[0]
        return np.asarray(out, dtype=np.float32)

    def deactivate(self) -> None:
        self.session = None

    def info(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "runtime": "onnxruntime",
            "version": ort.__version__,
            "providers": self.session.get_providers() if self.session else [],
            "intra_op_threads": self.threads,
            "inter_op_threads": 1,
            "api": "InferenceSession.run",
        }
