"""The weight-transfer runtime: canonical weights from one framework loaded into another's native model.

This is the original study's "same weights" migration: the target framework builds the model from the
same spec and takes the source's canonical weights, exact by construction, so any difference in its
outputs is the target framework's numerics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.data.archives import check_zip
from dlcompat.errors import ModelFileError, one_line
from dlcompat.frameworks.registry import make_adapter
from dlcompat.runtimes.base import Loader
from dlcompat.runtimes.native import FrameworkModel, NativeRunner
from dlcompat.zoo.spec import ModelSpec


@dataclass(frozen=True)
class ModelFromWeights(Loader):
    """The spec's model of `framework`, built and given the canonical weights of the `.npz` at `path`."""

    framework: str
    spec: ModelSpec
    path: Path
    threads: int = 1

    def __call__(self) -> FrameworkModel:
        adapter = make_adapter(self.framework, threads=self.threads)
        try:
            check_zip(self.path)  # a zip bomb is refused before NumPy unpacks a member
            with np.load(self.path, allow_pickle=False) as npz:
                weights = {name: npz[name] for name in npz.files}
        except Exception as exc:  # NumPy and zipfile raise many kinds on a corrupt, pickled or foreign file
            raise ModelFileError(f"{self.path} is not a canonical weights file ({type(exc).__name__}: "
                                 f"{one_line(exc)}): re-run the training job") from exc
        model = adapter.build(self.spec, seed=0)
        adapter.set_weights(model, weights)
        return FrameworkModel(adapter, model)


class WeightsRunner(NativeRunner):
    """`options`: framework (the *target* framework) and spec; the path is a canonical weights `.npz`."""

    name = "weights"

    def loader(self) -> Loader:
        return ModelFromWeights(self.options["framework"], self.options["spec"], self.path, self.threads)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "route": "weight transfer (canonical weights into the spec's native model)"}
