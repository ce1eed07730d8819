"""A runner whose load fails releases what it made so far (a failed load is a finding, not a leak).

Both jobs that load a runner (`evaluate`, `transfer`) run here for real on real MNIST, with the runtime
replaced by one that fails as onnx2tf does on a model it cannot rebuild: after making its working folder.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from dlcompat.data.registry import save_npz
from dlcompat.runtimes.base import Runner
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.attack_plan import adversarial_role
from dlcompat.study.jobs import common, evaluate, transfer
from dlcompat.study.jobs.base import JobContext, run_job

CELL = {"dataset": "mnist", "model": "lenet5", "framework": "keras", "seed": 0, "target": "onnx2tf", "variant": ""}


class HalfLoadingRunner(Runner):
    """Makes a working folder, as onnx2tf's runner does, then fails to convert."""

    name = "half-loading"
    made: ClassVar[list[Path]] = []  # the working folders it made, for the test to check

    def activate(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dlcompat-test-runner-"))
        HalfLoadingRunner.made.append(self.workdir)
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
