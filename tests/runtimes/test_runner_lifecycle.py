"""A runner whose load fails releases what it made so far (a failed load is a finding, not a leak)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from dlcompat.runtimes.base import Runner


class HalfLoadingRunner(Runner):
    """Makes a working folder, as onnx2tf's runner does, then fails to convert."""

    name = "half-loading"

    def activate(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dlcompat-test-runner-"))
        raise RuntimeError("conversion failed")

    def deactivate(self) -> None:
        shutil.rmtree(self.workdir)

    def predictor(self, x: np.ndarray):
        raise AssertionError("never reached")

    def infer(self, x: np.ndarray) -> np.ndarray:
        raise AssertionError("never reached")

    def info(self) -> dict:
        return {}


def test_a_failed_activate_is_deactivated(tmp_path: Path) -> None:
    runner = HalfLoadingRunner(tmp_path / "model.onnx")
    with pytest.raises(RuntimeError, match="conversion failed"), runner:
        pass
    assert not runner.workdir.exists()
