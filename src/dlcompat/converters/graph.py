"""The graph of model formats: converters are edges `format -> format`, and the planner finds paths through them.

A format is a framework's own file (named as the framework) or one of the registered deployment formats
(`FORMATS`: ONNX, LiteRT flatbuffers, ...). An edge names the tool behind it and the toolchain environment it
runs in; its `convert` function is imported only inside that environment's worker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcompat.errors import ConfigError
from dlcompat.registry import Registry, resolve

#: convert(source, target, spec, variant, threads) -> facts (tool, tool_version, input_layout, ...)
ConvertFn = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class ModelFormat:
    """A file format models are deployed in (a framework's own file is a format too, named as the framework)."""

    name: str
    title: str  # how the report writes it, e.g. "TensorFlow Lite"


@dataclass(frozen=True)
class Converter:
    """One edge of the graph: a tool that turns a model file of format `source` into one of format `target`."""

    name: str
    source: str  # format
    target: str  # format
    env: str
    function: str  # "module:function"
    tool: str
    module: str  # the import that proves the tool is installed (its installed version is the tool's)
    variants: tuple[str, ...] = ("",)
    suffix: str = ""
    #: variants that calibrate on training images: their convert job gets `calibration=` (float32 NHWC images)
    calibrated: tuple[str, ...] = ()

    def load(self) -> ConvertFn:
        return resolve(self.function)


#: the built-in formats and edges are registered by `dlcompat.converters.catalog`
FORMATS: Registry[ModelFormat] = Registry("model format", builtins=("dlcompat.converters.catalog",))
CONVERTERS: Registry[Converter] = Registry("converter", builtins=("dlcompat.converters.catalog",))
register_format = FORMATS.register
register_converter = CONVERTERS.register


def converter_names() -> list[str]:
    return CONVERTERS.names()


def converter(name: str) -> Converter:
    return CONVERTERS.get(name)


def find_path(source: str, target: str) -> list[Converter]:
    """The shortest chain of converters from format `source` to `target` (breadth first; [] if equal)."""
    if source == target:
        return []
    queue: deque[tuple[str, list[Converter]]] = deque([(source, [])])
    seen = {source}
    while queue:
        fmt, path = queue.popleft()
        for edge in CONVERTERS:
            if edge.source == fmt and edge.target not in seen:
                if edge.target == target:
                    return [*path, edge]
                seen.add(edge.target)
                queue.append((edge.target, [*path, edge]))
    raise ConfigError(f"no converter path from {source} to {target}")


def convert_file(edge: Converter, source: Path, target: Path, **kwargs: Any) -> dict[str, Any]:
    return edge.load()(source, target, **kwargs)
