"""ONNX Runtime: a loader building an `InferenceSession` on the CPU execution provider with a fixed thread budget,
and the runner that runs it.

Intermediate tensors come from a second session, built on a copy of the model whose graph outputs
also name the requested values; the deployed model's session, which `infer` and the latency use, is
never altered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.errors import ModelFileError, one_line
from dlcompat.runtimes.base import Loader, Runner, require_tensors, to_layout


@dataclass(frozen=True)
class SessionFromOnnx(Loader):
    """An `InferenceSession` of the ONNX file at `path`, on the CPU provider, sequential, `threads` intra-op threads;
    with `extra_outputs`, of a copy of the model that also outputs those values (after its own outputs)."""

    path: Path
    threads: int = 1
    extra_outputs: tuple[str, ...] = ()
    #: False: no graph optimisation (ORT_DISABLE_ALL: no fusions, no layout changes), one honest re-execution of a
    #: noise floor (`study/jobs/check_floor.py`)
    optimized: bool = True

    def __call__(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not self.optimized:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            model = with_outputs(self.path, self.extra_outputs) if self.extra_outputs else str(self.path)
            return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelFileError(f"{self.path} is not a loadable ONNX model ({one_line(exc)}): re-export it") from exc



def with_outputs(path: Path, extra_outputs: tuple[str, ...]) -> bytes:
    """The ONNX model at `path`, serialized, with `extra_outputs` added to its graph outputs (typed by shape
    inference): what ONNX Runtime and ONNX Runtime Web run to hand back intermediate tensors."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    typed = {info.name: info for info in (*graph.value_info, *graph.input, *graph.output)}
    present = {output.name for output in graph.output}
    for name in extra_outputs:
        if name not in present:
            graph.output.append(typed[name] if name in typed else onnx.ValueInfoProto(name=name))
    return model.SerializeToString()


def onnx_value_names(path: Path) -> list[str]:
    """The values the nodes of the ONNX file's main graph compute, in graph order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [name for node in graph.node for name in node.output if name]


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def loader(self) -> SessionFromOnnx:
        """`kernels="reference"` (an option): the session without graph optimisations."""
        return SessionFromOnnx(self.path, self.threads, optimized=self.options.get("kernels") != "reference")

    def activate(self) -> None:
        super().activate()
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self._tap_sessions: dict[tuple[str, ...], Any] = {}

    def release(self, session: Any) -> None:
        self._tap_sessions = {}

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        feed = {self.input_name: to_layout(x, self.input_layout)}
        run = self.session.run
        outputs = [self.output_name]
        return lambda: run(outputs, feed)

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: to_layout(x, self.input_layout)})[0]
        return np.asarray(out, dtype=np.float32)

    def tensor_names(self) -> list[str]:
        """The values the graph's nodes compute (ONNX value names, graph order)."""
        return onnx_value_names(self.path)

    def intermediates(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The named values, from a session of a model copy that outputs them (built once per set of names)."""
        key = tuple(names)
        if key not in self._tap_sessions:
            require_tensors(self, names, self.tensor_names())
            self._tap_sessions[key] = SessionFromOnnx(self.path, self.threads, extra_outputs=key)()
        out = self._tap_sessions[key].run(list(key), {self.input_name: to_layout(x, self.input_layout)})
        return {name: np.asarray(value) for name, value in zip(key, out, strict=True)}

    def info(self) -> dict[str, Any]:
        """Threads as the session reports its options (0 would mean ORT's default, one per physical core)."""
        import onnxruntime as ort

        session = self.session
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
