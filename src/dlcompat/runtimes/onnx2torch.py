"""Migration into PyTorch through ONNX: onnx2torch turns the ONNX graph into a `torch.fx.GraphModule`.

The conversion happens when the runner activates (it is part of the load time); the module then runs
with PyTorch's fastest idiom, a forward under `torch.inference_mode()`. Runs in the `onnx2torch`
toolchain environment (torch 2.14.1 + torchvision 0.29.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlcompat.runtimes.base import Runner, to_layout


class OnnxToTorchRunner(Runner):
    name = "onnx2torch"

    def activate(self) -> None:
        import onnx
        import torch
        from onnx2torch import convert

        torch.set_num_threads(self.threads)
        self.torch = torch
        self.module = convert(onnx.load(str(self.path))).eval()

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

    def deactivate(self) -> None:
        self.module = None

    def info(self) -> dict[str, Any]:
        import onnx2torch

        return {"runtime": "onnx2torch", "version": getattr(onnx2torch, "__version__", "1.5.15"),
                "torch": self.torch.__version__, "threads": self.threads,
                "intra_op_threads": self.torch.get_num_threads(),
                "inter_op_threads": self.torch.get_num_interop_threads(), "delegate": "none",
                "api": "onnx2torch.convert(model) forward under torch.inference_mode()"}
