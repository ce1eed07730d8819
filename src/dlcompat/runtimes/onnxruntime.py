"""ONNX Runtime runner: an `InferenceSession` on the CPU execution provider with a fixed thread budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlcompat.errors import ModelFileError, one_line
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
            raise ModelFileError(f"{self.path} is not a loadable ONNX model ({one_line(exc)}): re-export it") from exc
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
        """Threads as the session reports its options (0 would mean ORT's default, one per physical core)."""
        import onnxruntime as ort

        session = getattr(self, "session", None)
        options = session.get_session_options() if session else None
        return {
            "runtime": "onnxruntime",
            "version": ort.__version__,
            "providers": session.get_providers() if session else [],
            "threads": self.threads,
            "intra_op_threads": options.intra_op_num_threads if options else None,
            "inter_op_threads": options.inter_op_num_threads if options else None,
            "execution_mode": str(options.execution_mode).rsplit(".", 1)[-1] if options else None,
            "delegate": "none",  # CPUExecutionProvider only: no accelerator ran
            "api": "InferenceSession.run",
        }
