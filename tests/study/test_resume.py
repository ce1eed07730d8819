"""A study killed with SIGKILL resumes: nothing lost, nothing duplicated, no corrupt artifact."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.config import parse_config
from dlcompat.study.plan import build_plan

CONFIG = """
name = "resume"
models = ["lenet1", "lenet5"]
seeds = [0, 1, 2]
[data]
limit_train = 600
limit_test = 200
[train]
epochs = 3
[latency]
warmup = 2
min_repeats = 20
min_time_s = 0.05
"""


def _stored_jobs(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("select count(*) from jobs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_sigkill_mid_study_then_rerun_completes_exactly_once(tmp_path):
    config = tmp_path / "study.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    total = len(build_plan(parse_config(CONFIG)).jobs)
    cmd = [sys.executable, "-m", "dlcompat.cli", "run", str(config), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "results.sqlite"
    deadline = time.monotonic() + 240
    while _stored_jobs(db) < total // 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # driver and its workers, mid-job
    proc.wait()
    done_before = _stored_jobs(db)
    assert 0 < done_before < total

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
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
    artifacts = ArtifactStore(out / "artifacts")
    referenced = {r["artifact"] for r in store.rows(run["id"]) if r["artifact"]}
    assert referenced and all(artifacts.verify(a) for a in referenced)
    assert list((out / "artifacts" / "tmp").iterdir()) == []
