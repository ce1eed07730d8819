"""Migration onnx -> PyTorch: onnx2torch rebuilds an ONNX graph as a `torch.fx.GraphModule`, in memory.

Not a file edge of the conversion graph (a `GraphModule` has no safe file format: torch.save would pickle
it): the `onnx2torch` runtime converts when it loads (`runtimes/onnx2torch.ModuleFromOnnx`, so the
conversion counts in the load time) and runs the module. Runs in the `onnx2torch` toolchain environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def to_torch(source: Path) -> Any:
    """The ONNX file at `source` as onnx2torch's `GraphModule`, in eval mode."""
    import onnx
    from onnx2torch import convert

    return convert(onnx.load(str(source))).eval()
