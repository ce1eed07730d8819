"""Core ML runner: an ML Program (`.mlpackage`) run by Core ML through coremltools' `MLModel.predict`.

Core ML itself is part of Apple's operating systems: coremltools converts models on any platform, but
runs them only on macOS. Elsewhere the loader raises `Unavailable`, so the evaluation is recorded as
unavailable with the reason (never failed), while the convert job has already recorded whether the
conversion succeeded and the package's size. On macOS the package runs on the CPU only
(`ComputeUnit.CPU_ONLY`), comparable with the other mobile rows; Core ML picks its own thread count.
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.converters.coreml_package import unpack
from dlcompat.frameworks.base import Unavailable
from dlcompat.runtimes.base import Loader, Runner, to_layout

_BATCH = 256


@dataclass(frozen=True)
class CoreMLModel:
    """A Core ML model and the folder its package was unpacked into."""

    model: Any
    workdir: Path


@dataclass(frozen=True)
class ModelFromPackage(Loader):
    """The zipped `.mlpackage` at `path`, unpacked to a temporary folder and opened on the CPU only (macOS only)."""

    path: Path

    def __call__(self) -> CoreMLModel:
        if sys.platform != "darwin":
            raise Unavailable(f"Core ML prediction needs macOS (Core ML is part of Apple's operating systems; this is "
                              f"{platform.system()}): the conversion and the package's size are recorded by the "
                              "convert job")
        import coremltools as ct

        workdir = Path(tempfile.mkdtemp(prefix="dlcompat-coreml-run-"))
        try:
            package = unpack(self.path, workdir)
            return CoreMLModel(ct.models.MLModel(str(package), compute_units=ct.ComputeUnit.CPU_ONLY), workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise


class CoreMLRunner(Runner):
    name = "coreml"
    no_intermediates = ("Core ML's MLModel.predict returns only the outputs the package declares, and dlcompat does "
                        "not rewrite packages to declare more")

    def loader(self) -> ModelFromPackage:
        return ModelFromPackage(self.path)

    def activate(self) -> None:
        super().activate()
        self.model = self.session.model
        description = self.model.get_spec().description
        self.input_name, self.output_name = description.input[0].name, description.output[0].name

    def _feed(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {self.input_name: to_layout(x, self.input_layout).astype(np.float32, copy=False)}

    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        feed, predict, name = self._feed(x), self.model.predict, self.output_name
        return lambda: predict(feed)[name]

    def infer(self, x: np.ndarray, batch_size: int = _BATCH) -> np.ndarray:
        out = [np.asarray(self.model.predict(self._feed(x[i : i + batch_size]))[self.output_name])
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def release(self, session: CoreMLModel) -> None:
        self.model = None
        shutil.rmtree(session.workdir, ignore_errors=True)

    def info(self) -> dict[str, Any]:
        import coremltools as ct

        return {"runtime": "coreml", "version": ct.__version__, "api": "coremltools MLModel.predict",
                "compute_units": "CPU_ONLY", "threads": self.threads, "delegate": "none (Core ML CPU)",
                "macos": platform.mac_ver()[0]}
