"""Core ML's precisions, and its `.mlpackage` folder stored as one artifact (shared by the edges into coreml).

Variants (an ML Program, the format of Core ML 5 and later, iOS 15+):
- ``fp32``: weights and compute in float32.
- ``fp16``: weights and compute in float16 (coremltools' default for ML Programs).
- ``int8-weights``: the float16 program with its weights linearly quantized to int8 (symmetric, per
  channel; `coremltools.optimize.coreml.linear_quantize_weights`), dequantized on load.

An `.mlpackage` is a folder; the artifact store keeps files, so the edge writes it as an uncompressed zip
(``ZIP_STORED``: the archive's size is the package's, plus a few hundred bytes of headers).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

VARIANTS = ("fp32", "fp16", "int8-weights")
#: the oldest OS the packages target (ML Program features with range dimensions and int8 weights)
DEPLOYMENT_TARGET = "iOS17"


def check_variant(edge: str, variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"{edge} has no variant {variant!r} ({', '.join(VARIANTS)})")


def precision(variant: str) -> Any:
    import coremltools as ct

    return ct.precision.FLOAT32 if variant == "fp32" else ct.precision.FLOAT16


def finish(mlmodel: Any, variant: str, target: Path) -> dict[str, Any]:
    """Quantize the weights if the variant says so, save the package, zip it to `target`; the facts."""
    import coremltools as ct

    if variant == "int8-weights":
        op = ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                                        granularity="per_channel", weight_threshold=0)
        mlmodel = ct.optimize.coreml.linear_quantize_weights(mlmodel, ct.optimize.coreml.OptimizationConfig(op))
    workdir = Path(tempfile.mkdtemp(prefix="dlcompat-coreml-"))
    try:
        package = workdir / "model.mlpackage"
        mlmodel.save(str(package))
        files = sorted(p for p in package.rglob("*") if p.is_file())
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in files:
                archive.write(path, path.relative_to(workdir).as_posix())
        package_bytes = sum(p.stat().st_size for p in files)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"variant": variant, "coremltools": ct.__version__, "package": "mlprogram (.mlpackage, zipped)",
            "deployment_target": DEPLOYMENT_TARGET, "package_bytes": package_bytes,
            "compute_precision": "float32" if variant == "fp32" else "float16",
            "weights": {"fp32": "float32", "fp16": "float16", "int8-weights": "int8 (linear symmetric, per channel)"}[
                variant]}


def unpack(archive: Path, folder: Path) -> Path:
    """The `.mlpackage` folder of an archive written by `finish`, extracted under `folder`."""
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        if not names or any(n.startswith("/") or ".." in Path(n).parts for n in names):
            raise ValueError(f"{archive} is not a Core ML package archive written by dlcompat")
        zipped.extractall(folder)
    return folder / names[0].split("/", 1)[0]
