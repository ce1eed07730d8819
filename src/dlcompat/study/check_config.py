"""The study config of a `dlcompat check`: the model file and images, every runtime the converter graph reaches from
the file's format, every variant of every converter on the way, and a short latency method.

Robustness is not planned (a check has no training data to attack with); nor are migrations by weight transfer
(there are no canonical weights of a model dlcompat did not build). Migration by converters is: onnx2torch and
onnx2tf are runtimes like the others here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dlcompat.converters.graph import converter, find_path
from dlcompat.errors import ConfigError
from dlcompat.runtimes.base import runtime_entry, runtime_names
from dlcompat.study.config import CheckSource, LatencySettings, StudyConfig

if TYPE_CHECKING:
    from dlcompat.frameworks.imported import ImportedModel

#: a first look at every runtime, as the quick preset measures it (at most 0.5 s of timed calls a row)
CHECK_LATENCY = LatencySettings(batch_size=1, warmup=5, warmup_time_s=0.02, min_repeats=36, min_time_s=0.1,
                                ci_level=0.95, max_ci_rel_width=0.10, max_time_s=0.5)


def reachable_converters(source_format: str, runtimes: list[str]) -> dict[str, list[str]]:
    """{converter: every variant} for the converters on the chains from `source_format` to each runtime's format."""
    out: dict[str, list[str]] = {}
    for name in runtimes:
        try:
            path = find_path(source_format, runtime_entry(name).accepts)
        except ConfigError:
            continue  # planned as an unavailable cell that says so
        for edge in path:
            out[edge.name] = list(converter(edge.name).variants)
    return out


def check_config(model: ImportedModel, images: Path, images_sha256: str, *, runtimes: list[str] | None = None,
                 scale: str | None = None, resize: bool = False, labels: Path | None = None,
                 limit: int | None = None, calibration_images: int = 32, threads: int = 1) -> StudyConfig:
    """The config `run_study` runs for a check of `model` on `images`."""
    chosen = runtimes or runtime_names()
    source = CheckSource(
        model=str(model.path.absolute()), model_sha256=model.sha256, format=model.format, kind=model.kind,
        model_name=model.name, input_layout=model.input_layout, input_shape=list(model.input_shape),
        num_classes=model.num_classes, images=str(images.absolute()), images_sha256=images_sha256, resize=resize,
        labels=str(labels.absolute()) if labels else None, limit=limit, scale=scale or "0-1",  # type: ignore[arg-type]
        scale_from="given" if scale else "default")
    return StudyConfig(
        check=source, name=f"check {model.name}",
        description=f"dlcompat check of {model.path.name} ({model.kind}) on {images.name}",
        datasets=[], models=[], frameworks=[], seeds=[0], runtimes=chosen,
        converters=reachable_converters(model.format, chosen), calibration_images=calibration_images,
        latency=CHECK_LATENCY, check_reproducibility=False,
        threads=threads)
