"""The graph of model formats: converters are edges `format -> format`, and the planner finds paths through them.

An edge names the tool behind it and the toolchain environment it runs in; its `convert` function is
imported only inside that environment's worker.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcompat.errors import ConfigError

#: convert(source, target, spec, variant, threads) -> facts (tool, tool_version, input_layout, ...)
ConvertFn = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Converter:
    name: str
    source: str  # format
    target: str  # format
    env: str
    function: str  # "module:function"
    tool: str
    module: str  # the import that proves the tool is installed
    variants: tuple[str, ...] = ("",)
    suffix: str = ""
    #: variants that calibrate on training images: their convert job gets `calibration=` (float32 NHWC images)
    calibrated: tuple[str, ...] = ()

    def load(self) -> ConvertFn:
        module, fn = self.function.split(":")
        return getattr(importlib.import_module(module), fn)


_CONVERTERS: dict[str, Converter] = {}


def register_converter(converter: Converter) -> None:
    _CONVERTERS[converter.name] = converter


def _load_builtin() -> None:
    from dlcompat.converters import catalog  # noqa: F401  (registers the built-in edges)


def converter_names() -> list[str]:
    _load_builtin()
    return list(_CONVERTERS)


def converter(name: str) -> Converter:
    _load_builtin()
    if name not in _CONVERTERS:
        raise ConfigError(f"unknown converter {name!r}: choose one of {', '.join(_CONVERTERS)}")
    return _CONVERTERS[name]


def find_path(source: str, target: str) -> list[Converter]:
    """The shortest chain of converters from format `source` to `target` (breadth first; [] if equal)."""
    _load_builtin()
    if source == target:
        return []
    queue: deque[tuple[str, list[Converter]]] = deque([(source, [])])
    seen = {source}
    while queue:
        fmt, path = queue.popleft()
        for edge in _CONVERTERS.values():
            if edge.source == fmt and edge.target not in seen:
                if edge.target == target:
                    return [*path, edge]
                seen.add(edge.target)
                queue.append((edge.target, [*path, edge]))
    raise ConfigError(f"no converter path from {source} to {target}")


def convert_file(edge: Converter, source: Path, target: Path, **kwargs: Any) -> dict[str, Any]:
    return edge.load()(source, target, **kwargs)
