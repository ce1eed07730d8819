"""The model zoo: architectures register themselves by name (timm's habit) and are built for a dataset's shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dlcompat.errors import ConfigError
from dlcompat.zoo.spec import ModelSpec

SpecBuilder = Callable[[tuple[int, int, int], int], ModelSpec]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    build: SpecBuilder
    summary: str
    reference: str


_MODELS: dict[str, ZooEntry] = {}


def register_model(name: str, summary: str, reference: str) -> Callable[[SpecBuilder], SpecBuilder]:
    def decorate(build: SpecBuilder) -> SpecBuilder:
        _MODELS[name] = ZooEntry(name, build, summary, reference)
        return build

    return decorate


def _load_builtin() -> None:
    from dlcompat.zoo import lenet, resnet, vgg  # noqa: F401  (modules register themselves)


def model_names() -> list[str]:
    _load_builtin()
    return sorted(_MODELS)


def model_entry(name: str) -> ZooEntry:
    _load_builtin()
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def build_spec(name: str, input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    """The spec of model `name` for images of `input_shape` (H, W, C) and `num_classes` outputs."""
    return model_entry(name).build(tuple(input_shape), num_classes)
