"""A runner whose load fails releases what it made so far (a failed load is a finding, not a leak).

Both jobs that load a runner (`evaluate`, `transfer`) run here for real on real MNIST, with the runtime
replaced by one whose activation fails after its loader made a working folder.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from dlcompat.data.registry import save_npz
from dlcompat.runtimes.base import Loader, Runner
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.attack_plan import adversarial_role
from dlcompat.study.jobs import common, evaluate, transfer
from dlcompat.study.jobs.base import JobContext, run_job

CELL = {"dataset": "mnist", "model": "lenet5", "framework": "keras", "seed": 0, "target": "onnx2tf", "variant": ""}


class FolderLoader(Loader):
    """Makes a working folder and hands it back as the session, as onnx2tf's loader does."""

    def __call__(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="dlcompat-test-runner-"))
        HalfLoadingRunner.made.append(folder)
        return folder


class HalfLoadingRunner(Runner):
    """Its loader makes a working folder; then, like a conversion that fails, its activation raises."""

    name = "half-loading"
    made: ClassVar[list[Path]] = []  # the working folders it made, for the test to check

    def loader(self) -> Loader:
        return FolderLoader()

    def activate(self) -> None:
        super().activate()
        raise RuntimeError("conversion failed")

    def release(self, session: Path) -> None:
        shutil.rmtree(session)

    def predictor(self, x: np.ndarray):
        raise AssertionError("never reached")

    def infer(self, x: np.ndarray) -> np.ndarray:
        raise AssertionError("never reached")

    def info(self) -> dict:
        return {}


def test_a_failed_activate_is_deactivated(tmp_path: Path) -> None:
    HalfLoadingRunner.made = []
    runner = HalfLoadingRunner(tmp_path / "model.onnx")
    with pytest.raises(RuntimeError, match="conversion failed"), runner:
        pass
    assert len(HalfLoadingRunner.made) == 1 and not HalfLoadingRunner.made[0].exists()
    assert not runner.is_active


def test_the_loader_runs_once_per_activation_and_deactivate_may_run_twice(tmp_path: Path) -> None:
    class Counting(HalfLoadingRunner):
        def activate(self) -> None:
            Runner.activate(self)

    HalfLoadingRunner.made = []
    runner = Counting(tmp_path / "model.onnx")
    with runner:
        with pytest.raises(RuntimeError, match="already active"):
            runner.activate()
        folder = runner.session
        assert folder.is_dir() and HalfLoadingRunner.made == [folder]
    runner.deactivate()
    assert not folder.exists() and runner.session is None


@pytest.mark.parametrize("job", ["evaluate", "transfer"])
def test_a_job_whose_runner_fails_to_load_records_the_failure_and_leaves_no_working_folder(
        job, mnist_small, tmp_path: Path, monkeypatch) -> None:
    store = ArtifactStore(tmp_path / "store")
    with store.writing(".npz") as tmp:
        save_npz(mnist_small, tmp)
        data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(mnist_small.input_shape),
                "num_classes": mnist_small.num_classes}
    model = {"artifact": store.put_bytes(b"an ONNX file the runtime cannot rebuild", ".onnx"), "input_layout": "NHWC"}
    module = {"evaluate": evaluate, "transfer": transfer}[job]
    monkeypatch.setattr(common, "runner_class", lambda _runtime: HalfLoadingRunner)  # both jobs load through it
    HalfLoadingRunner.made = []
    params = {"cell": CELL, "runtime": "onnx2tf"}
    inputs = {"data": data, "model": model}
    if job == "transfer":  # one set to transfer: never opened, since the target model does not load
        params["attacks"] = ["fgsm"]
        inputs[adversarial_role("fgsm")] = {"sets": [{"artifact": "unused.npz", "variant": "fgsm", "epsilon": 0.1}]}
    outcome = run_job(module.run, JobContext(job, params, inputs, store))
    assert outcome.status == "failed" and "conversion failed" in outcome.error
    assert len(HalfLoadingRunner.made) == 1 and not HalfLoadingRunner.made[0].exists()
