"""Migration into PyTorch through ONNX: the program the `onnx2torch` edge wrote (`converters/onnx_torch.py`), run
in PyTorch.

The loader reads the torch.export archive (`torch.export.load`, no unpickling) and takes its module;
an artifact whose module torch.export could not export holds the ONNX file instead, which the loader
converts with onnx2torch (that model's old path: its conversion is part of the load time). The runner
runs the module with PyTorch's fastest idiom, a forward under `torch.inference_mode()`. Intermediate
tensors are the results of the module's graph nodes (fx node names: the exported program's, or those
onnx2torch derives from the ONNX node names), recorded by an `fx.Interpreter` run apart from the
forward. Runs in the `onnx2torch` toolchain environment (torch 2.14.1 + torchvision 0.29.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.converters.onnx_torch import deferred_onnx, is_deferred, to_torch
from dlcompat.runtimes.base import Loader, Runner, require_tensors, to_layout

#: the fx node kinds that compute a tensor (placeholders and the output node do not)
_COMPUTING = ("call_module", "call_function", "call_method")


@dataclass(frozen=True)
class ProgramModule(Loader):
    """The module of the program at `path` (a torch.export archive, or the ONNX file onnx2torch converts
    where torch.export failed) as a `GraphModule`; torch's intra-op threads set to `threads`."""

    path: Path
    threads: int = 1

    def __call__(self) -> Any:
        import torch

        torch.set_num_threads(self.threads)
        if is_deferred(self.path):
            return to_torch(deferred_onnx(self.path))
        return torch.export.load(self.path).module()


def record_nodes(module: Any, x: Any, names: set[str]) -> dict[str, Any]:
    """The results of `module`'s graph nodes named in `names`, from one run of `x` through an fx Interpreter."""
    import torch.fx

    seen: dict[str, Any] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node: Any) -> Any:
            result = super().run_node(node)
            if node.name in names:
                seen[node.name] = result
            return result

    Recorder(module).run(x)
    return seen


class OnnxToTorchRunner(Runner):
    name = "onnx2torch"

    def loader(self) -> ProgramModule:
        return ProgramModule(self.path, self.threads)

    def activate(self) -> None:
        import torch

        self.torch = torch
        super().activate()
        self.module = self.session

    def release(self, session: Any) -> None:
        self.module = None

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        torch, module = self.torch, self.module
        xt = torch.from_numpy(to_layout(x, self.input_layout))

        def forward() -> Any:
            with torch.inference_mode():
                return module(xt)

        return forward

    def infer(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        out = []
        with self.torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xt = self.torch.from_numpy(to_layout(x[i : i + batch_size], self.input_layout))
                out.append(self.module(xt).numpy())
        return np.concatenate(out).astype(np.float32)

    def tensor_names(self) -> list[str]:
        """The module's computing graph nodes (fx names, graph order); of an exported program's, those whose value
        is a tensor (its nodes carry their values' metadata: the input guards compute none)."""
        nodes = [node for node in self.module.graph.nodes if node.op in _COMPUTING]
        if any("val" in node.meta for node in nodes):
            nodes = [node for node in nodes if isinstance(node.meta.get("val"), self.torch.Tensor)]
        return [node.name for node in nodes]

    def intermediates(self, x: np.ndarray, names: list[str], batch_size: int = 256) -> dict[str, np.ndarray]:
        require_tensors(self, names, self.tensor_names())
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        with self.torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xt = self.torch.from_numpy(to_layout(x[i : i + batch_size], self.input_layout))
                seen = record_nodes(self.module, xt, set(names))
                for name in names:
                    parts[name].append(np.asarray(seen[name].numpy()))
        return {name: np.concatenate(values) for name, values in parts.items()}

    def info(self) -> dict[str, Any]:
        import onnx2torch

        return {"runtime": "onnx2torch", "version": getattr(onnx2torch, "__version__", "1.5.15"),
                "torch": self.torch.__version__, "threads": self.threads,
                "intra_op_threads": self.torch.get_num_threads(),
                "inter_op_threads": self.torch.get_num_interop_threads(), "delegate": "none",
                "api": ("onnx2torch.convert(model) at load (torch.export failed)" if is_deferred(self.path)
                        else "torch.export.load(program).module()") + " forward under torch.inference_mode()"}
