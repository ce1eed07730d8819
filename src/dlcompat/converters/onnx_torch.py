"""Edge onnx -> pt2: onnx2torch rebuilds an ONNX graph as a `torch.fx.GraphModule`, saved as a torch.export program.

onnx2torch's module has no safe file of its own (torch.save would pickle it), so the edge exports it
with `torch.export` (dynamic batch) and writes the program with `torch.export.save`: a zip of the
graph and its weights that `torch.export.load` reads without unpickling code. The program computes
what the module computes (the same ATen ops, not decomposed); its input keeps the ONNX file's layout.

Where torch.export cannot export onnx2torch's module (its Slice and Reshape read shape tensors as
data, as in a Keras export's flatten), the edge keeps the old path for that model only: the artifact
is a zip of the ONNX file and the export's error (`DEFERRED_ONNX`, `EXPORT_ERROR`), the `onnx2torch`
runtime converts it when it loads, and the facts record the error. Runs in the `onnx2torch`
toolchain environment.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from dlcompat.converters.onnx_layout import input_layout
from dlcompat.versions import installed_version
from dlcompat.zoo.spec import ModelSpec

#: the members of an artifact whose module torch.export could not export: the ONNX file, and why
DEFERRED_ONNX, EXPORT_ERROR = "onnx2torch/model.onnx", "onnx2torch/torch_export_error.txt"
#: the largest batch the exported program accepts
MAX_BATCH = 4096


def to_torch(source: Path | bytes) -> Any:
    """The ONNX model (a file, or its bytes) as onnx2torch's `GraphModule`, in eval mode."""
    import onnx
    from onnx2torch import convert as onnx2torch_convert

    model = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(str(source))
    return onnx2torch_convert(model).eval()


def is_deferred(path: Path) -> bool:
    """Whether the artifact at `path` holds the ONNX file itself (torch.export failed on its module)."""
    with zipfile.ZipFile(path) as archive:
        return DEFERRED_ONNX in archive.namelist()


def deferred_onnx(path: Path) -> bytes:
    """The ONNX file an artifact kept because torch.export failed on its module."""
    with zipfile.ZipFile(path) as archive:
        return archive.read(DEFERRED_ONNX)


def _export(module: Any, layout: str, spec: ModelSpec, target: Path) -> None:
    """`module` exported with a dynamic batch and saved as a torch.export archive at `target`."""
    import torch

    h, w, c = spec.input_shape
    example = torch.zeros((2, h, w, c) if layout == "NHWC" else (2, c, h, w))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, target)


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "", threads: int = 1) -> dict[str, Any]:
    if variant:
        raise ValueError(f"onnx2torch has no variant {variant!r}")
    import onnx
    import torch

    torch.set_num_threads(threads)
    layout = input_layout(onnx.load(str(source)), spec)
    module = to_torch(source)  # a model onnx2torch cannot rebuild fails here: the edge's finding
    facts: dict[str, Any] = {"tool": "onnx2torch.convert + torch.export.save", "tool_version":
                             f"onnx2torch {installed_version('onnx2torch')}, torch {torch.__version__}",
                             "torch": torch.__version__, "input_layout": layout, "max_batch": MAX_BATCH}
    try:
        _export(module, layout, spec, target)
    except Exception as exc:  # torch.export's failures have no common type
        error = f"{type(exc).__name__}: {exc}"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(source, DEFERRED_ONNX)
            archive.writestr(EXPORT_ERROR, error)
        return {**facts, "program": "deferred: the ONNX file, converted by onnx2torch when loaded",
                "torch_export_error": error.splitlines()[0][:2000]}
    return {**facts, "program": "torch.export (ExportedProgram, dynamic batch)"}
