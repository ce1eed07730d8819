"""The Ray executor on a real multi-node cluster (Ray's own harness, three nodes, loopback: conftest.py).

- a node removed mid-study: its jobs run again on the nodes that remain, and the study completes;
- a Ray worker process killed mid-job: Ray runs the task again;
- the driver of `dlcompat run --executor ray --address …` killed with SIGKILL: `dlcompat status` says
  the run stopped, and the same command resumes it from the store, with no finished job run again, no
  row stored twice and no half-written artifact on the shared (fsspec) root.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.config import parse_config
from dlcompat.study.dag import Job, Plan
from dlcompat.study.plan import build_plan
from dlcompat.study.runner import RunSummary, execute_plan, make_executor

pytestmark = pytest.mark.timeout(300)

def sleep_plan(markers: Path, count: int, seconds: float) -> Plan:
    plan = Plan(parse_config('name = "cluster"'))
    for i in range(count):
        cell = {"dataset": "none", "model": f"m{i}", "framework": "fault", "seed": 0, "target": "fault", "variant": ""}
        params = {"cell": cell, "fault": "sleep", "seconds": seconds, "name": f"job{i}", "marker_dir": str(markers),
                  "value": i}
        plan.add(Job("fault", "main", params, {}, f"sleep {i}", runtime={"timeout_s": 120}))
    return plan


def markers_of(markers: Path) -> list[tuple[str, int, str]]:
    """(job name, worker pid, Ray node id) of every attempt so far."""
    out = []
    for marker in markers.iterdir():
        try:
            pid, node = marker.read_text().split()
        except ValueError:
            continue
        out.append((marker.name.split(".")[0], int(pid), node))
    return out


def test_a_removed_node_and_a_killed_ray_worker_cost_only_a_retry(ray_cluster, tmp_path):
    harness, workers = ray_cluster
    doomed_node = workers[1]
    markers = tmp_path / "markers"
    markers.mkdir()
    plan = sleep_plan(markers, count=6, seconds=4)
    store = ResultStore(f"sqlite:///{tmp_path / 'results.sqlite'}")
    summary = RunSummary(run_id=plan.run_id, out_dir=str(tmp_path), database=store.url)
    store.start_run(plan.run_id, "cluster", "", {}, list(plan.jobs))
    faults: dict[str, object] = {}

    def inject() -> None:
        deadline = time.monotonic() + 120
        while len(faults) < 2 and time.monotonic() < deadline:
            for name, pid, node in markers_of(markers):
                if "removed" not in faults and node == doomed_node.node_id:
                    faults["removed"] = (name, pid)
                    harness.remove_node(doomed_node)  # its raylet, its Ray workers, and with them their jobs
                elif "killed" not in faults and "removed" in faults and name != faults["removed"][0]:
                    try:  # the Ray worker running this job's task: the parent of the job's dlcompat worker
                        ray_worker = psutil.Process(pid).parent()
                        if ray_worker is None or not ray_worker.cmdline()[0].startswith("ray::"):
                            continue
                        faults["killed"] = (name, pid, ray_worker.pid)
                        ray_worker.kill()
                    except (psutil.Error, IndexError):
                        continue
            time.sleep(0.05)

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    start = time.perf_counter()
    with make_executor("ray", None, tmp_path / "logs") as executor:
        assert executor.slots == 3
        execute_plan(plan, store, ArtifactStore(tmp_path / "artifacts"), executor, _quiet_view(), summary)
    injector.join()
    seconds = time.perf_counter() - start

    assert set(faults) == {"removed", "killed"}, faults
    assert (summary.ok, summary.failed, summary.lost) == (6, 0, 0)
    by_name = {job.params["name"]: store.job(key) for key, job in plan.jobs.items()}
    attempts = {name: [(pid, node) for n, pid, node in markers_of(markers) if n == name] for name in by_name}
    for fault in ("removed", "killed"):
        name, pid = faults[fault][:2]
        ray = by_name[name]["environment"]["ray"]
        assert len(attempts[name]) == 2 and ray["node_id"] != doomed_node.node_id, (fault, ray, attempts[name])
        assert ray["attempt"] == 2, (fault, ray)  # Ray ran the task again (not a retry inside the task)
        assert by_name[name]["environment"]["pid"] != pid
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # no orphan
    assert all(r["environment"]["ray"]["node_id"] != doomed_node.node_id for r in by_name.values())
    assert sorted(len(a) for a in attempts.values()) == [1, 1, 1, 1, 2, 2]  # the others ran once
    print(f"\n6 jobs of 4 s on 3 → 2 nodes, a node removed and a Ray worker killed: {seconds:.1f} s")


def _quiet_view():
    from dlcompat.study.progress import ProgressView

    return ProgressView(enabled=False)


RESUME = """
name = "ray-resume"
models = ["lenet1"]
seeds = [0, 1]
check_reproducibility = false
[data]
limit_train = 200
limit_test = 100
[train]
epochs = 1
[latency]
warmup = 1
min_repeats = 3
min_time_s = 0.0
"""


def _stored_jobs(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("select count(*) from jobs").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_sigkill_of_the_driver_then_rerun_resumes_on_the_cluster(ray_cluster, tmp_path):
    harness, _ = ray_cluster
    config = tmp_path / "study.toml"
    config.write_text(RESUME)
    out, shared = tmp_path / "out", (tmp_path / "shared").as_uri()
    total = len(build_plan(parse_config(RESUME)).jobs)
    env = {**os.environ, "DLCOMPAT_ARTIFACT_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "dlcompat.cli", "run", str(config), "--out", str(out), "--quiet",
           "--executor", "ray", "--address", harness.address, "--artifacts", shared]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    db = out / "results.sqlite"
    deadline = time.monotonic() + 180
    while _stored_jobs(db) < total // 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished (or failed) before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _stored_jobs(db)
    assert 0 < done_before < total

    status = subprocess.run([sys.executable, "-m", "dlcompat.cli", "status", "--out", str(out), "--json"],
                            capture_output=True, text=True, timeout=60)
    state = json.loads(status.stdout)
    assert state["state"] == "stopped" and "run the same `dlcompat run` again" in state["detail"]
    assert state["jobs"]["pending"] == total - done_before and state["driver"]["executor"].startswith("ray ")

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert rerun.returncode == 0, rerun.stderr

    store = ResultStore(database_url(out))
    run = store.run("latest")
    assert run["status"] == "complete" and run["summary"]["cached"] == done_before
    assert run["summary"]["ran"] == total - done_before and run["summary"]["failed"] == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*), count(distinct key) from jobs").fetchone() == (total, total)
        dupes = conn.execute("select count(*) from (select job_key, metric, target, variant, method, count(*) c "
                             "from measurements group by 1, 2, 3, 4, 5 having c > 1)").fetchone()[0]
        assert dupes == 0
        assert conn.execute("select count(*) from running").fetchone()[0] == 0
    reader = ArtifactStore(shared, cache=tmp_path / "reader-cache")
    referenced = {r["artifact"] for r in store.rows(run["id"]) if r["artifact"]}
    assert referenced and all(reader.verify(a) for a in referenced)
    assert not [p for p in (tmp_path / "shared" / "objects").rglob("*") if p.name.endswith(".part")]
    final = json.loads(subprocess.run([sys.executable, "-m", "dlcompat.cli", "status", "--out", str(out), "--json"],
                                      capture_output=True, text=True, timeout=60).stdout)
    assert final["state"] == "complete" and final["jobs"]["pending"] == 0 and final["running"] == []
