"""The native runtime: a framework's own saved model, run by its adapter with its fastest idiom."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.frameworks.registry import make_adapter
from dlcompat.runtimes.base import Loader, Runner, require_tensors
from dlcompat.zoo.spec import ModelSpec


@dataclass(frozen=True)
class FrameworkModel:
    """A framework's model in memory, with the adapter that runs it."""

    adapter: Any
    model: Any


@dataclass(frozen=True)
class ModelFromFramework(Loader):
    """The spec's model of `framework`, read from its own saved file at `path` by an adapter with `threads` threads."""

    framework: str
    spec: ModelSpec
    path: Path
    threads: int = 1

    def __call__(self) -> FrameworkModel:
        adapter = make_adapter(self.framework, threads=self.threads)
        return FrameworkModel(adapter, adapter.load(self.spec, self.path))


class NativeRunner(Runner):
    """`options`: framework (registry name) and spec (the ModelSpec the file was saved from).

    Intermediate tensors are the adapter's `activations`: the spec's layer names, canonical layout
    ((N, C, H, W) or (N, F)).
    """

    name = "native"

    def loader(self) -> Loader:
        return ModelFromFramework(self.options["framework"], self.options["spec"], self.path, self.threads)

    def activate(self) -> None:
        super().activate()
        self.adapter, self.model = self.session.adapter, self.session.model

    def release(self, session: FrameworkModel) -> None:
        self.model = None

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        return self.adapter.predictor(self.model, x)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.predict(self.model, x)

    def tensor_names(self) -> list[str]:
        """The layers whose outputs the adapter taps (asked of it on one blank image)."""
        spec: ModelSpec = self.options["spec"]
        return list(self.adapter.activations(self.model, np.zeros((1, *spec.input_shape), np.float32)))

    def intermediates(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        require_tensors(self, names, self.tensor_names())
        return self.adapter.activations(self.model, x, names)

    def info(self) -> dict[str, Any]:
        return {
            "runtime": self.adapter.name,
            "version": self.adapter.version(),
            "threads": self.threads,
            **threads_in_effect(self.adapter),
            "delegate": "none",  # CPU builds only, for now: no accelerator ran
            "api": self.adapter.predict_api,
        }


def threads_in_effect(adapter: Any) -> dict[str, Any]:
    """The adapter's `threads_in_effect()`, or None for each where the framework's API failed to say."""
    try:
        return dict(adapter.threads_in_effect())
    except Exception as exc:  # a framework that changed its API must not lose the figure
        return {"intra_op_threads": None, "inter_op_threads": None, "threads_error": f"{type(exc).__name__}: {exc}"}
