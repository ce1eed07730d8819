"""What a row's target is: another framework (a migration), a runtime on a platform (a deployment), or a format.

The study writes one `target` column for all three (study/plan.py): the framework a model was moved
to, the runtime it was deployed on, or the format a conversion step wrote. The registries say which
is which; they are data, so asking imports no framework and no runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

#: the platforms of the Deployment section, in the order it shows them
DEPLOYMENT_PLATFORMS: tuple[str, ...] = ("server", "mobile", "web")
#: the jobs whose rows describe a model in its target (its conversion steps are `convert` rows)
CELL_KINDS = frozenset({"evaluate", "compare", "unavailable"})
#: where a variant names a browser backend: `torch.onnx (dynamo) · wasm`
BACKEND_SEPARATOR = " · "
#: between the steps of a converter chain: `torch.onnx (dynamo) → onnx2tf`
STEP_SEPARATOR = " → "
WEIGHT_TRANSFER = "weight transfer"


@lru_cache(maxsize=1)
def framework_names() -> frozenset[str]:
    from dlcompat.frameworks.registry import framework_names as registered

    return frozenset(registered())


@lru_cache(maxsize=1)
def runtime_platforms() -> dict[str, str]:
    """Runtime name -> its platform (server, mobile, web, migration)."""
    from dlcompat.runtimes.base import runtime_entry, runtime_names

    return {name: runtime_entry(name).platform for name in runtime_names()}


@lru_cache(maxsize=1)
def migration_landings() -> dict[str, tuple[str, str]]:
    """Migration runtime (a converter landing in a framework) -> (the format a route leaves for it, that framework):
    the source of its landing edge (the converter named as it, which writes the file it runs), else what it accepts."""
    from dlcompat.converters.graph import CONVERTERS
    from dlcompat.runtimes.base import runtime_entry, runtime_names

    edges = {edge.name: edge for edge in CONVERTERS}
    out = {}
    for name in runtime_names():
        entry, edge = runtime_entry(name), edges.get(name)
        if entry.framework:
            leaves = edge.source if edge is not None and edge.target == entry.accepts else entry.accepts
            out[name] = (leaves, entry.framework)
    return out


def is_framework(name: str) -> bool:
    return name in framework_names()


def is_migration(row: Mapping[str, Any]) -> bool:
    """A model moved into another framework (weight transfer or a converter route), or a move that could not be made."""
    return (row["kind"] in CELL_KINDS and row["target"] != row["framework"] and is_framework(row["target"]))


def platform_of(target: str) -> str:
    """The platform of a deployment runtime; `other` for a runtime the registry does not know."""
    platform = runtime_platforms().get(target, "")
    return platform if platform in DEPLOYMENT_PLATFORMS else "other"


def is_deployment(row: Mapping[str, Any]) -> bool:
    """A model run on a runtime other than its own framework (server, mobile or web), or one that could not be."""
    target = row["target"]
    return (row["kind"] in CELL_KINDS and bool(target) and target != row["framework"] and not is_framework(target)
            and runtime_platforms().get(target) != "migration")


def route_of(variant: str) -> str:
    """A variant without its browser backend: `torch.onnx (dynamo) · wasm` -> `torch.onnx (dynamo)`."""
    return variant.split(BACKEND_SEPARATOR, 1)[0]


def backend_of(variant: str) -> str:
    """The browser backend a variant names (`wasm`), or ''."""
    _, _, backend = variant.partition(BACKEND_SEPARATOR)
    return backend


def last_step(variant: str) -> str:
    """The last converter (or runtime) of a chain: `torch.onnx (dynamo) → onnx2tf` -> `onnx2tf`."""
    return route_of(variant).rsplit(STEP_SEPARATOR, 1)[-1]


def chain_prefixes(variant: str) -> list[str]:
    """The variants of the convert steps a chain went through, shortest first.

    A migration's variant ends in its landing runtime (`torch.onnx (dynamo) → onnx2tf`), which is no
    convert step; a deployment's variant is all convert steps (`keras.tflite (int8-full)`).
    """
    steps = route_of(variant).split(STEP_SEPARATOR)
    return [STEP_SEPARATOR.join(steps[:depth]) for depth in range(1, len(steps) + 1)]


__all__ = ["BACKEND_SEPARATOR", "CELL_KINDS", "DEPLOYMENT_PLATFORMS", "STEP_SEPARATOR", "WEIGHT_TRANSFER",
           "backend_of", "chain_prefixes", "framework_names", "is_deployment", "is_framework", "is_migration",
           "last_step", "migration_landings", "platform_of", "route_of", "runtime_platforms"]
