"""A route from a trained model to a runtime: at most one weight transfer into another framework, then a converter
chain (`converters.graph.find_path`).

A framework with no converter of its own to a format still reaches it the way Guo et al. deployed their Theano and
Torch models: its canonical weights move, exactly, into a framework that has the converter (Theano → Keras →
LiteRT, PyTensor → PyTorch → ExecuTorch, PyTorch → Keras → TensorFlow.js). A direct converter chain is always
preferred; otherwise the shortest chain from any other framework, ties to the framework registered first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dlcompat.converters.graph import Converter, find_path
from dlcompat.errors import ConfigError


@dataclass(frozen=True)
class Route:
    """`via`: the framework the model's weights move into first ("": none); `path`: the converters after it."""

    via: str
    path: tuple[Converter, ...]

    @property
    def first_step(self) -> str:
        """How a route's description starts ("" for a direct chain)."""
        return weight_transfer_step(self.via) if self.via else ""


def weight_transfer_step(framework: str) -> str:
    """A weight transfer into `framework`, as a route's description writes it."""
    return f"weights → {framework}"


def find_route(framework: str, fmt: str, frameworks: Iterable[str] = ()) -> Route:
    """The route from a model of `framework` to format `fmt`: the converter chain from the framework itself, or else
    from the first of `frameworks` (those its weights may move into) with the shortest chain. ConfigError says so
    when there is none."""
    try:
        return Route("", tuple(find_path(framework, fmt)))
    except ConfigError as direct:
        best: Route | None = None
        for other in frameworks:
            if other == framework:
                continue
            try:
                path = tuple(find_path(other, fmt))
            except ConfigError:
                continue
            if best is None or len(path) < len(best.path):
                best = Route(other, path)
        if best is None:
            raise ConfigError(f"{direct}, nor from any framework its weights can move into") from None
        return best
