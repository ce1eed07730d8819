"""Jobs whose memory is measured share a worker only with jobs of their own family.

A worker is a long-lived process; a PyTensor model's peak resident set measured in a worker that imported
TensorFlow for an earlier job would carry TensorFlow's gigabyte. The family rule (`study.worker_family`) and the
local executor's pool, on real worker processes running real jobs.
"""

from __future__ import annotations

import pytest

from dlcompat.study.config import load_preset
from dlcompat.study.executors.local import LocalExecutor
from dlcompat.study.plan import build_plan
from dlcompat.study.request import JobRequest
from dlcompat.study.worker_family import GENERAL, worker_family


def _cell(framework: str, target: str) -> dict:
    return {"dataset": "digits", "model": "lenet1", "framework": framework, "seed": 0, "target": target,
            "variant": ""}


@pytest.mark.parametrize(("kind", "params", "family"), [
    ("train", {"cell": _cell("pytensor", "pytensor")}, "pytensor"),
    ("reproduce", {"cell": _cell("jax", "jax")}, "jax"),
    ("evaluate", {"cell": _cell("pytorch", "pytorch"), "runtime": "native"}, "pytorch"),
    ("evaluate", {"cell": _cell("pytorch", "tensorflow"), "runtime": "weights"}, "tensorflow"),
    ("transfer", {"cell": _cell("jax", "pytensor"), "runtime": "weights"}, "pytensor"),
    ("evaluate", {"cell": _cell("pytorch", "ortweb"), "runtime": "ortweb"}, "web"),
    ("transfer", {"cell": _cell("tensorflow", "tfjs"), "runtime": "tfjs"}, "web"),
    ("evaluate", {"cell": _cell("pytorch", "litert"), "runtime": "litert"}, "litert"),
    ("convert", {"cell": _cell("pytorch", "onnx"), "converter": "torch.onnx"}, GENERAL),
    ("attack", {"cell": _cell("pytorch", "pytorch"), "attack": "fgsm"}, GENERAL),
    ("compare", {"cell": _cell("pytorch", "onnxruntime")}, GENERAL),
])
def test_a_jobs_family(kind, params, family):
    assert worker_family(kind, params) == family


def test_every_job_of_the_quick_study_has_a_family_and_measured_jobs_never_share_the_general_workers():
    plan = build_plan(load_preset("quick"))
    families = {job.key: worker_family(job.kind, job.params) for job in plan.jobs.values()}
    measured = [job for job in plan.jobs.values() if job.kind in ("train", "evaluate")]
    assert measured and all(families[job.key] != GENERAL for job in measured)
    assert {"pytorch", "tensorflow", "jax", "pytensor", "web", "onnxruntime"} <= set(families.values())


def _pid(executor: LocalExecutor, family: str) -> int:
    request = JobRequest(kind="fault", env="main", threads=1, timeout_s=60, family=family,
                         params={"fault": "none", "value": 1.0})
    outcome = executor.submit(request, lambda _e: None).result(timeout=120)
    assert outcome.status == "ok", outcome.error
    return outcome.environment["pid"]


def test_the_pool_keeps_families_apart_and_reuses_a_familys_worker(tmp_path):
    with LocalExecutor(slots=1, log_dir=tmp_path / "logs") as executor:
        tensorflow = _pid(executor, "tensorflow")
        pytensor = _pid(executor, "pytensor")
        assert pytensor != tensorflow
        assert _pid(executor, "tensorflow") == tensorflow
        assert _pid(executor, "pytensor") == pytensor


def test_the_pool_keeps_one_idle_worker_of_each_kind_the_study_needs_as_far_as_memory_holds():
    from dlcompat.study.executors.local import IDLE_WORKER_MB, idle_workers_for

    plenty = 100 * IDLE_WORKER_MB
    assert idle_workers_for(18, slots=2, available_mb=plenty) == 18
    assert idle_workers_for(1, slots=2, available_mb=plenty) == 1
    assert idle_workers_for(18, slots=2, available_mb=10 * IDLE_WORKER_MB) == 8  # 2 running, 8 idle fit
    assert idle_workers_for(18, slots=2, available_mb=IDLE_WORKER_MB) == 0


def test_the_quick_study_needs_a_worker_kind_per_environment_and_family(tmp_path):
    from dlcompat.store.db import ResultStore
    from dlcompat.study.runner import worker_kinds

    plan = build_plan(load_preset("quick"))
    store = ResultStore(f"sqlite:///{tmp_path / 'results.sqlite'}")
    kinds = {(job.env, job.threads, worker_family(job.kind, job.params)) for job in plan.jobs.values()}
    assert worker_kinds(plan, store) == len(kinds) > len(plan.envs())
