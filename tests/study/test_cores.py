"""Cores of their own per job: machine-wide claims, and a worker's whole process tree pinned to them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import wait
from pathlib import Path

import pytest

from dlcompat.study.executors import cores as cores_module
from dlcompat.study.executors.cores import available_cores, claim_cores, pin_process_tree
from dlcompat.study.executors.local import LocalExecutor
from dlcompat.study.request import JobRequest

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only"),
    pytest.mark.skipif(len(available_cores()) < 2, reason="needs at least 2 cores"),
    pytest.mark.timeout(120),
]


@pytest.fixture(autouse=True)
def private_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Claims in a folder of this test's own, so other studies on the machine do not hold its cores."""
    folder = tmp_path / "locks"
    folder.mkdir()
    monkeypatch.setattr(cores_module, "lock_dir", lambda: folder)
    monkeypatch.delenv(cores_module.PIN_VARIABLE, raising=False)
    return folder


def test_claims_hand_out_distinct_cores_and_release_them() -> None:
    cpus = available_cores()
    with claim_cores(1) as first, claim_cores(1) as second:
        assert first and second and len(first) == len(second) == 1
        assert first != second and first | second <= set(cpus)
        if len(cpus) == 2:
            with claim_cores(1) as third:
                assert third is None  # every core is held: run unpinned
    with claim_cores(1) as again:
        assert again == first  # released on leaving the block


def test_every_core_or_none_is_no_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    with claim_cores(len(available_cores())) as everything:
        assert everything is None
    monkeypatch.setenv(cores_module.PIN_VARIABLE, "0")
    with claim_cores(1) as disabled:
        assert disabled is None


def test_no_lock_folder_means_running_unpinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A temp directory where no lock file can be made: the job still runs, on every core."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setattr(cores_module, "lock_dir", lambda: blocked)
    with claim_cores(1) as got:
        assert got is None


def test_a_claim_holds_across_processes(private_locks: Path) -> None:
    """Another process (another driver, a Ray node on this host) holding a core: this one gets another."""
    script = textwrap.dedent(f"""
        import fcntl, os, sys
        fd = os.open({str(private_locks / f"cpu{available_cores()[0]}.lock")!r}, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("held", flush=True)
        sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with claim_cores(1) as got:
            assert got is not None and available_cores()[0] not in got
    finally:
        holder.communicate("")
    with claim_cores(1) as freed:  # the holder exited: the kernel released its lock
        assert freed == {available_cores()[0]}


def _masks(pid: int) -> list[set[int]]:
    """The affinity of every thread of `pid` and of every process below it."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return [os.sched_getaffinity(int(tid)) for p in procs for tid in os.listdir(f"/proc/{p.pid}/task")]


def test_pin_process_tree_reaches_threads_and_children_and_unpins() -> None:
    script = textwrap.dedent("""
        import subprocess, sys, threading, time
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("ready", flush=True)
        sys.stdin.read()
        child.kill()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        core = frozenset({available_cores()[-1]})
        assert pin_process_tree(proc.pid, core) >= 3  # main thread, its sleeper thread, the child
        masks = _masks(proc.pid)
        assert len(masks) >= 3 and all(m == core for m in masks)
        pin_process_tree(proc.pid, None)
        assert all(m == set(available_cores()) for m in _masks(proc.pid))
    finally:
        proc.communicate("")


def test_two_jobs_at_once_run_on_cores_of_their_own(tmp_path: Path) -> None:
    """The local executor, 2 slots: two jobs submitted together each run on one core, not the same one.

    (Each claims its core before its worker starts and holds it to its end, so the two claims overlap.)"""
    executor = LocalExecutor(slots=2, log_dir=tmp_path / "logs")

    def request(name: str) -> JobRequest:
        cell = {"dataset": "none", "model": name, "framework": "fault", "seed": 0, "target": "fault", "variant": ""}
        return JobRequest(kind="fault", env="main", threads=1, key=name * 8, inputs={},
                          artifacts_root=str(tmp_path / "artifacts"), timeout_s=60,
                          params={"cell": cell, "fault": "sleep", "seconds": 2.0, "name": name})

    def progress(event: dict) -> None:
        pass

    try:
        futures = [executor.submit(request(name), progress) for name in ("a", "b")]
        done, _ = wait(futures, timeout=90)
        assert len(done) == 2
        outcomes = [f.result() for f in futures]
    finally:
        executor.close()
    assert [o.status for o in outcomes] == ["ok", "ok"], [o.error for o in outcomes]
    affinities = [tuple(o.environment["cpu_affinity"]) for o in outcomes]
    assert all(len(a) == 1 for a in affinities) and affinities[0] != affinities[1]
