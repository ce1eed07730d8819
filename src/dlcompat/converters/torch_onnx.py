"""Edge pytorch -> onnx: `torch.onnx.export`, with the dynamo exporter or the TorchScript one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcompat.frameworks.pytorch import PyTorchAdapter
from dlcompat.zoo.spec import ModelSpec


def convert(
    source: Path, target: Path, *, spec: ModelSpec, variant: str = "dynamo", threads: int = 1
) -> dict[str, Any]:
    adapter = PyTorchAdapter(threads=threads)
    model = adapter.load(spec, source)
    return adapter.export(model, spec, "onnx", target, variant=variant)
