"""A transfer job takes the runner its model's evaluation left loaded on the same worker, with the same figures.

A tiny real study (PyTorch LeNet-1 on real digits, ONNX Runtime and a weight transfer to Keras, FGSM with
transfer) runs twice: in local worker processes, where each transfer job follows its evaluation on the worker
that still holds the model, and inline, where nothing is parked. Every transfer figure must agree.
"""

from __future__ import annotations

import json

import pytest

from dlcompat.runtimes import parking
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.config import parse_config
from dlcompat.study.runner import run_study

TINY = """
name = "tiny-parking"
models = ["lenet1"]
frameworks = ["pytorch", "tensorflow"]
migration = ["weights"]
runtimes = ["onnxruntime"]
check_reproducibility = false
[data]
limit_train = 300
limit_test = 60
[train]
epochs = 2
[latency]
warmup = 1
warmup_time_s = 0.0
min_repeats = 3
min_time_s = 0.0
max_time_s = 0.5
[attacks]
methods = ["fgsm"]
epsilons = [0.1]
images = 30
"""


def _transfers(out, executor: str) -> tuple[dict, list[dict]]:
    summary = run_study(parse_config(TINY), out, executor=executor, jobs=1)
    assert summary.failed == 0 and summary.skipped == 0, summary.findings
    store = ResultStore(database_url(out))
    rows = {(r["framework"], r["target"], r["variant"], r["metric"]): r["value"]
            for r in store.rows(summary.run_id) if r["kind"] == "transfer"}
    jobs = [store.job(key) for key in store.run(summary.run_id)["job_keys"]]
    return rows, [j for j in jobs if j["kind"] == "transfer"]


@pytest.mark.slow
def test_transfer_jobs_reuse_the_evaluated_model_and_compute_the_same(tmp_path):
    local, local_jobs = _transfers(tmp_path / "local", "local")
    inline, inline_jobs = _transfers(tmp_path / "inline", "inline")
    assert local_jobs and all(job["outputs"]["runner_reused"] for job in local_jobs), \
        json.dumps([(j["label"], j["outputs"].get("runner_reused")) for j in local_jobs])
    assert not any(job["outputs"]["runner_reused"] for job in inline_jobs)  # the driver process parks nothing
    assert local and local == inline


class _Runner:
    def __init__(self) -> None:
        self.active = True

    def deactivate(self) -> None:
        self.active = False


def test_only_the_same_key_takes_a_parked_runner_and_anything_else_releases_it(monkeypatch):
    monkeypatch.setenv("DLCOMPAT_JOB_WORKER", "1")
    first, second = _Runner(), _Runner()
    assert parking.park("a", first)
    assert parking.take("a") is first and first.active  # handed over, still active
    assert parking.park("a", second)
    assert parking.take("b") is None and not second.active  # another model: released
    monkeypatch.delenv("DLCOMPAT_JOB_WORKER")
    assert not parking.park("a", _Runner())  # outside a job worker nothing is kept
