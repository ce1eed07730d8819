"""The model zoo: architectures register themselves by name (timm's habit) and are built for a dataset's shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dlcompat.registry import Registry
from dlcompat.zoo.spec import ModelSpec

SpecBuilder = Callable[[tuple[int, int, int], int], ModelSpec]


@dataclass(frozen=True)
class ZooEntry:
    """One architecture: the function building its spec for a dataset's shape, and how to describe and cite it."""

    name: str
    build: SpecBuilder
    summary: str
    reference: str


#: the built-in architectures register themselves from their modules
MODELS: Registry[ZooEntry] = Registry("model", builtins=("dlcompat.zoo.lenet", "dlcompat.zoo.resnet",
                                                         "dlcompat.zoo.vgg"))


def register_model(name: str, summary: str, reference: str) -> Callable[[SpecBuilder], SpecBuilder]:
    def decorate(build: SpecBuilder) -> SpecBuilder:
        MODELS.register(ZooEntry(name, build, summary, reference))
        return build

    return decorate


def model_names() -> list[str]:
    return sorted(MODELS.names())


def model_entry(name: str) -> ZooEntry:
    return MODELS.get(name)


def build_spec(name: str, input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    """The spec of model `name` for images of `input_shape` (H, W, C) and `num_classes` outputs."""
    return model_entry(name).build(tuple(input_shape), num_classes)
