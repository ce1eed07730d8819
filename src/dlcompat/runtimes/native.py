"""The native runtime: a framework's own saved model, run by its adapter with its fastest idiom."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlcompat.frameworks.registry import make_adapter
from dlcompat.runtimes.base import Runner
from dlcompat.zoo.spec import ModelSpec


class NativeRunner(Runner):
    """`options`: framework (registry name) and spec (the ModelSpec the file was saved from)."""

    name = "native"

    def activate(self) -> None:
        self.adapter = make_adapter(self.options["framework"], threads=self.threads)
        self.spec: ModelSpec = self.options["spec"]
        self.model = self.adapter.load(self.spec, self.path)

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        return self.adapter.predictor(self.model, x)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.predict(self.model, x)

    def deactivate(self) -> None:
        self.model = None

    def info(self) -> dict[str, Any]:
        return {
            "runtime": self.adapter.name,
            "version": self.adapter.version(),
            "threads": self.threads,
            "api": self.adapter.predict_api,
        }
