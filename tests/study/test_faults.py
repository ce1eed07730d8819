"""Faults, on the local and the Ray executor (the session's cluster) alike, with real processes and signals.

One plan of fault-injection jobs (`dlcompat.study.jobs.fault`) per executor: a segfault, a hang past
its time limit, a run past its memory limit and an exception are findings, recorded once and never
retried; a worker killed with SIGKILL mid-job is retried and the job completes; one killed on every
attempt is lost after its retries (reported, not stored, so a re-run tries it again); the dependents
of a failed job are skipped; and the study goes on to the end.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore
from dlcompat.study.config import parse_config
from dlcompat.study.dag import Job, Plan
from dlcompat.study.progress import ProgressView
from dlcompat.study.runner import RunSummary, execute_plan, make_executor
from dlcompat.study.status import study_state

pytestmark = pytest.mark.timeout(240)


class RecordingView(ProgressView):
    """The real display (disabled), also keeping every event a job sent, by label."""

    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.labels: dict[int, str] = {}
        self.events: dict[str, list[dict]] = {}

    def job_started(self, label):
        task = super().job_started(label)
        self.labels[task] = label
        return task

    def job_event(self, task, event):
        self.events.setdefault(self.labels[task], []).append(event)
        super().job_event(task, event)


def fault_plan(markers: Path) -> Plan:
    plan = Plan(parse_config('name = "faults"'))

    def add(name: str, fault: str, deps: dict | None = None, **runtime_and_params) -> str:
        runtime = {k: runtime_and_params.pop(k) for k in ("timeout_s", "memory_limit_mb", "retries")
                   if k in runtime_and_params}
        cell = {"dataset": "none", "model": name, "framework": "fault", "seed": 0, "target": "fault", "variant": ""}
        params = {"cell": cell, "fault": fault, "name": name, "marker_dir": str(markers), **runtime_and_params}
        return plan.add(Job("fault", "main", params, deps or {}, f"fault {name}", runtime={"timeout_s": 60, **runtime}))

    ok = add("ok", "none", value=1)
    add("after-ok", "none", {"up": ok}, value=2)
    segv = add("segv", "segfault")
    add("after-segv", "none", {"up": segv})
    add("hang", "hang", timeout_s=3)
    add("memory", "memory", memory_limit_mb=250, mb=1000, hold_s=20)  # held: a slow watchdog still sees it
    add("raise", "raise")
    add("killed", "sleep", seconds=3, value=3)  # its worker is killed once: retried
    add("doomed", "sleep", seconds=30, retries=1)  # its worker is killed on every attempt: lost
    return plan


def kill_workers(markers: Path, stop: threading.Event, store: ResultStore, run_id: str, seen: dict) -> None:
    """SIGKILL the worker of `killed` once and of `doomed` every time, as the OOM killer or an operator would."""
    killed: set[str] = set()
    while not stop.is_set():
        for marker in markers.glob("*.*"):
            name = marker.name.split(".")[0]
            if marker.name in killed or name not in ("killed", "doomed"):
                continue
            if name == "killed" and any(k.startswith("killed.") for k in killed):
                continue
            try:
                pid = int(marker.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            seen.setdefault("running", [r["label"] for r in study_state(store, run_id)["running"]])
            os.kill(pid, signal.SIGKILL)
            killed.add(marker.name)
        time.sleep(0.05)


def run_fault_plan(executor: str, tmp: Path):
    markers = tmp / "markers"
    markers.mkdir()
    plan = fault_plan(markers)
    store = ResultStore(f"sqlite:///{tmp / 'results.sqlite'}")
    summary = RunSummary(run_id=plan.run_id, out_dir=str(tmp), database=store.url)
    store.start_run(plan.run_id, "faults", "", {}, list(plan.jobs))
    view, seen, stop = RecordingView(), {}, threading.Event()
    killer = threading.Thread(target=kill_workers, args=(markers, stop, store, plan.run_id, seen), daemon=True)
    killer.start()
    start = time.perf_counter()
    try:
        with make_executor(executor, 2, tmp / "logs") as ex, view:
            execute_plan(plan, store, ArtifactStore(tmp / "artifacts"), ex, view, summary)
    finally:
        stop.set()
        killer.join()
    store.finish_run(plan.run_id, "complete", summary.to_dict())
    by_label = {job.label: store.job(key) for key, job in plan.jobs.items()}
    attempts = {}
    for marker in markers.iterdir():
        attempts[marker.name.split(".")[0]] = attempts.get(marker.name.split(".")[0], 0) + 1
    return summary, by_label, attempts, view.events, seen, time.perf_counter() - start, store, plan


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_faults_are_findings_and_infrastructure_faults_are_retried(executor, tmp_path, request):
    if executor == "ray":
        request.getfixturevalue("ray_cluster")  # the session's Ray cluster (conftest.py)
    summary, jobs, attempts, events, seen, seconds, store, plan = run_fault_plan(executor, tmp_path)
    status = {label: (row["status"] if row else None) for label, row in jobs.items()}
    assert status == {"fault ok": "ok", "fault after-ok": "ok", "fault segv": "failed", "fault after-segv": None,
                      "fault hang": "failed", "fault memory": "failed", "fault raise": "failed",
                      "fault killed": "ok", "fault doomed": None}
    assert "signal SIGSEGV" in jobs["fault segv"]["error"] and "fault.py" in jobs["fault segv"]["error"]
    assert "timed out after 3 s" in jobs["fault hang"]["error"]
    assert "exceeded its memory limit of 250 MB" in jobs["fault memory"]["error"]
    assert "RuntimeError: deliberate failure" in jobs["fault raise"]["error"]
    # a finding is recorded once and never retried; the killed job ran twice, the doomed one 1 + 1 retry
    assert attempts == {"ok": 1, "after-ok": 1, "segv": 1, "hang": 1, "memory": 1, "raise": 1, "killed": 2,
                        "doomed": 2}
    assert any("retry" in e and "SIGKILL" in e.get("reason", "") for e in events["fault killed"])
    assert (summary.ok, summary.failed, summary.skipped, summary.lost) == (3, 4, 1, 1)
    assert any("fault doomed: not stored" in f and "retries spent" in f for f in summary.findings)
    # the failure is a row of the export, like a job's own exception
    rows = store.rows(plan.run_id)
    assert {r["model"] for r in rows if r["status"] == "failed"} == {"segv", "hang", "memory", "raise"}
    # `dlcompat status` saw the job running, and sees the run's final state
    assert "fault killed" in seen["running"] or "fault doomed" in seen["running"]
    state = study_state(store, plan.run_id)
    assert state["jobs"] == {"total": 9, "ok": 3, "failed": 4, "unavailable": 0, "pending": 2}
    assert state["running"] == [] and state["state"] == "complete"
    print(f"\n{executor}: fault plan in {seconds:.1f} s")
