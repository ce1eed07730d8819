"""The Ray executor against the local one: the same plan gives the same keys, statuses and measurements.

One small real study (digits, LeNet-1, PyTorch, ONNX Runtime) runs on the local executor with its
artifacts in a folder, and through `dlcompat run --executor ray` (no address: a local Ray instance of
its own) with its artifacts behind a `file://` fsspec URL, each Ray worker writing through its own
cache and uploading. Apart from timing and memory figures, every measurement must be equal and every
artifact must have the same content address.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.config import parse_config
from dlcompat.study.executors.ray import RayExecutor
from dlcompat.study.request import JobRequest
from dlcompat.study.runner import run_study

pytestmark = pytest.mark.timeout(300)

SMALL = """
name = "ray-equivalence"
models = ["lenet1"]
[data]
limit_train = 200
limit_test = 100
[train]
epochs = 2
[latency]
warmup = 1
min_repeats = 3
min_time_s = 0.0
"""

#: figures that depend on the machine's load, not on the computation
MACHINE_DEPENDENT = ("time", "latency", "first_inference", "rss", "load", "throughput", "memory", "repeats")


def measurements(folder, run_id):
    rows = ResultStore(database_url(folder)).rows(run_id)
    return {(r["job"], r["metric"], r["target"], r["variant"], str(r["method"].get("epoch", ""))): r for r in rows}


def test_local_and_ray_executors_give_the_same_results(tmp_path):
    config_file = tmp_path / "small.toml"
    config_file.write_text(SMALL)
    local = run_study(parse_config(SMALL), tmp_path / "local", executor="local", jobs=2)
    shared = (tmp_path / "shared").as_uri()
    env = {**os.environ, "DLCOMPAT_ARTIFACT_CACHE": str(tmp_path / "ray-cache")}
    on_ray = subprocess.run([sys.executable, "-m", "dlcompat.cli", "run", str(config_file), "--out",
                             str(tmp_path / "ray"), "--executor", "ray", "--artifacts", shared, "--quiet"],
                            capture_output=True, text=True, timeout=240, env=env)
    assert on_ray.returncode == 0, on_ray.stderr

    local_store, ray_store = ResultStore(database_url(tmp_path / "local")), ResultStore(database_url(tmp_path / "ray"))
    ray_run = ray_store.run("latest")
    assert ray_run["id"] == local.run_id and ray_run["summary"]["ok"] == local.ok == local.total == 9
    keys = local_store.run(local.run_id)["job_keys"]
    assert keys == ray_run["job_keys"]
    assert local_store.job_statuses(keys) == ray_store.job_statuses(keys)
    assert all(ray_store.job(k)["environment"]["ray"]["node_id"] for k in keys)  # each ran as a Ray task

    a, b = measurements(tmp_path / "local", local.run_id), measurements(tmp_path / "ray", ray_run["id"])
    assert set(a) == set(b)
    for key, row in a.items():
        assert row["artifact"] == b[key]["artifact"], key
        assert row["status"] == b[key]["status"], key
        if not any(word in row["metric"] for word in MACHINE_DEPENDENT):
            assert row["value"] == b[key]["value"], key

    # every artifact the Ray run refers to is whole on the shared root (a fresh reader checks its hash)
    reader = ArtifactStore(shared, cache=tmp_path / "reader-cache")
    referenced = {row["artifact"] for row in b.values() if row["artifact"]}
    assert referenced and all(reader.verify(rel) for rel in referenced)
    assert not list((tmp_path / "shared").rglob("*.part"))


def test_ray_options_follow_the_job():
    request = JobRequest(kind="fault", params={}, threads=2, gpus=1, memory_limit_mb=512, retries=3)
    assert RayExecutor.options(request) == {"num_cpus": 2, "num_gpus": 1.0, "max_retries": 3, "memory": 512 * 2**20}
    assert RayExecutor.options(JobRequest(kind="fault", params={})) == {"num_cpus": 1, "num_gpus": 0.0,
                                                                        "max_retries": 2}


def test_a_job_no_node_can_place_is_lost_not_stored(ray_cluster):
    executor = RayExecutor()
    try:
        request = JobRequest(kind="fault", env="main", threads=64, params={}, key="k" * 64)
        outcome = executor.submit(request, lambda _e: None).result(timeout=30)
    finally:
        executor.close()
    assert outcome.infrastructure and "no node of the Ray cluster offers" in outcome.error and "64 CPU" in outcome.error
