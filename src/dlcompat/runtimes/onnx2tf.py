"""Migration into TensorFlow through ONNX: the SavedModel the `onnx2tf` edge wrote (`converters/onnx_keras.py`), run
in TensorFlow.

The loader unzips the SavedModel into a working folder the session holds and loads it with
`tf.saved_model.load` (no custom objects, no pickle); the runner calls its traced function, which
takes NHWC images (onnx2tf's layout) of any batch. Intermediate tensors come from that traced graph
itself: the function pruned to fetch the asked operations' outputs (`WrappedFunction.prune`, the same
graph, weights and kernels; names are the graph's tensor names, e.g. ``model/tf.nn.relu/Relu:0``,
TensorFlow's NHWC layout); `graph_nodes` hands the graph itself to `findings.tfjs_graph` for alignment. Runs in
the `onnx2tf` toolchain environment (Python 3.12).
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
from dlcompat.runtimes.base import Loader, Runner, require_tensors


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


#: graph operations that compute nothing per image (weights, their reads, the input, control)
_NOT_COMPUTED = ("Const", "ReadVariableOp", "Placeholder", "NoOp", "VarHandleOp", "Identity", "Shape")


class OnnxToTfRunner(Runner):
    name = "onnx2tf"
    no_intermediates: ClassVar[str] = "the SavedModel's traced function has no graph to prune"

    def loader(self) -> SavedModelFromZip:
        return SavedModelFromZip(self.path, self.threads)

    def activate(self) -> None:
        import tensorflow as tf

        self.tf = tf
        super().activate()
        self.call = self.session.call

    def release(self, session: LoadedSavedModel) -> None:
        self.call, self._pruned = None, {}
        shutil.rmtree(session.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ intermediate tensors

    def _graph(self) -> Any:
        """The traced graph of the inference function (its one concrete function: it has an input signature)."""
        from dlcompat.frameworks.base import Unavailable

        functions = list(getattr(self.call, "concrete_functions", []) or [])
        if len(functions) != 1:
            raise Unavailable(f"{self.name}: {self.no_intermediates} ({len(functions)} traced functions)")
        return functions[0].graph

    def graph_nodes(self) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], str, set[str]]:
        """The traced graph as `findings.tfjs_graph.graph_def_graph` reads it: its GraphDef's nodes as JSON
        (`json_format.MessageToDict`, as TF.js's `model.json` holds them), the values of its constants and captured
        tensors (onnx2tf's weights) by node name, its input's and its outputs' node names."""
        from google.protobuf import json_format

        graph = self._graph()
        function = self.call.concrete_functions[0]
        values = {op.name: self.tf.make_ndarray(op.get_attr("value")) for op in graph.get_operations()
                  if op.type == "Const"}
        for outer, inner in zip(function.captured_inputs, graph.internal_captures, strict=False):
            with contextlib.suppress(AttributeError, TypeError, ValueError):  # a resource handle: no value
                values[inner.op.name] = np.asarray(outer.numpy())
        topology = json_format.MessageToDict(graph.as_graph_def()).get("node", [])
        return topology, values, graph.inputs[0].op.name, {t.op.name for t in graph.outputs}

    def tensor_names(self) -> list[str]:
        """The first output of each operation the graph computes per image (batch dimension unknown), graph order."""
        graph = self._graph()
        return [op.outputs[0].name for op in graph.get_operations()
                if op.type not in _NOT_COMPUTED and op.outputs and op.outputs[0].shape.rank
                and op.outputs[0].shape[0] is None]

    def intermediates(self, x: np.ndarray, names: list[str], batch_size: int = 256) -> dict[str, np.ndarray]:
        """The named tensors, from the traced function pruned to fetch them (float32, NHWC); an operation's name
        stands for its first output (``model/tf.nn.relu/Relu`` for ``model/tf.nn.relu/Relu:0``)."""
        asked = names
        names = [name if ":" in name else f"{name}:0" for name in asked]
        require_tensors(self, names, self.tensor_names())
        key = tuple(names)
        if key not in getattr(self, "_pruned", {}):
            from tensorflow.python.eager import wrap_function  # the only public-ish pruning of a traced graph

            graph = self._graph()
            wrapped = wrap_function.WrappedFunction(graph, variable_holder=wrap_function.VariableHolder(
                share_variables=True))
            self._pruned = {**getattr(self, "_pruned", {}), key: wrapped.prune(
                feeds=[graph.inputs[0]], fetches=[graph.get_tensor_by_name(name) for name in names])}
        pruned = self._pruned[key]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for start in range(0, len(x), batch_size):
            for name, value in zip(names, pruned(self._input(x[start : start + batch_size])), strict=True):
                parts[name].append(np.asarray(value, dtype=np.float32))
        return {given: np.concatenate(parts[name]) for given, name in zip(asked, names, strict=True)}

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
