"""Edge tensorflow -> onnx: Keras 3's own `Model.export(format="onnx")`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.spec import ModelSpec


def convert(
    source: Path, target: Path, *, spec: ModelSpec, variant: str = "keras", threads: int = 1
) -> dict[str, Any]:
    adapter = make_adapter("tensorflow", threads=threads)
    model = adapter.load(spec, source)
    return adapter.export(model, spec, "onnx", target, variant=variant)
