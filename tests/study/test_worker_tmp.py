"""A worker's temp folder goes with the worker, however it ended.

Every worker has a TMPDIR of its own; ONNX Runtime writes a `.ses` file there when it is imported, browsers put
their profiles there. A worker SIGKILLed while idle used to be dropped from the pool without its folder being
removed (the seed of `test_kill_anywhere`'s intermittent leftover), and a process still writing into a folder
could make its removal fail silently. Real worker processes, real signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from dlcompat.study.executors.local import WORKER_TMP_PREFIX, WorkerPool, sweep_stale_worker_tmp


@pytest.fixture
def tmpdir_root(tmp_path, monkeypatch) -> Path:
    """Where this test's workers put their folders (tempfile's root for this process)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def _worker_folders(root: Path) -> list[Path]:
    return sorted(root.glob(f"{WORKER_TMP_PREFIX}*"))


def _sigkill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def test_a_worker_killed_while_idle_leaves_no_folder_once_the_pool_moves_on(tmpdir_root, tmp_path):
    pool = WorkerPool(capacity=2, log_dir=tmp_path / "logs")
    try:
        worker = pool.checkout("main", 1)
        pool.checkin(worker)
        (worker.tmp / ".ses").write_text("what onnxruntime writes on import\n")
        worker.proc.kill()
        worker.proc.wait()
        fresh = pool.checkout("main", 1)  # the dead one is found, dropped and its folder removed
        assert fresh is not worker and fresh.alive()
        assert not worker.tmp.exists()
        assert _worker_folders(tmpdir_root) == [fresh.tmp]
    finally:
        pool.close()
    assert _worker_folders(tmpdir_root) == []


def test_a_worker_killed_while_idle_leaves_no_folder_when_the_pool_closes(tmpdir_root, tmp_path):
    pool = WorkerPool(capacity=1, log_dir=tmp_path / "logs")
    worker = pool.checkout("main", 1)
    pool.checkin(worker)
    worker.proc.kill()
    worker.proc.wait()
    pool.close()
    assert _worker_folders(tmpdir_root) == []


def test_the_sweep_stops_a_dead_drivers_stragglers_still_writing_and_removes_their_folder(tmpdir_root):
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmpdir_root / f"{WORKER_TMP_PREFIX}{dead.pid}-straggler"
    folder.mkdir()
    # an orphan of a killed worker, in a session of its own, writing into the folder as fast as it can
    writer = subprocess.Popen(["bash", "-c", 'while true; do echo x > "$TMPDIR/.ses"; done'],
                              env={**os.environ, "TMPDIR": str(folder)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (folder / ".ses").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sweep_stale_worker_tmp() == 1
        assert writer.wait(timeout=10) == -signal.SIGKILL
        assert not folder.exists()
    finally:
        if writer.poll() is None:
            _sigkill_and_wait(writer.pid)
