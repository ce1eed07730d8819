"""A study SIGKILLed at any instant resumes to exactly what an uninterrupted run stores (issue 22, item 2).

A tiny real study (PyTorch LeNet-1 on digits, ONNX Runtime and ONNX Runtime Web in headless Chromium,
FGSM transferred to every deployment) runs once without interruption: its duration T and its store are
the reference. Then rounds of the same study, each into a fresh output folder, are killed at seeded
instants drawn uniformly over [0, T] (seconds since the round began): in turn the driver, one of its
workers, a browser a worker started, and the driver's whole process group. A killed driver is followed
at once by the same `dlcompat run` command, as a user would; a killed worker or browser is the
driver's to recover from. After its instants a round runs to the end, and its store must equal the
reference's (job keys, statuses, outputs and every measurement but timings and memory), hold no
duplicate row and no corrupt artifact, and leave no temp file (artifact writes, worker and runner work
folders, Chromium profiles). An instant the study outlived goes to the next round. Four more instants
run into the session's throwaway PostgreSQL server (tests/store/conftest.py).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.store.conftest import postgres  # noqa: F401  (the session's throwaway PostgreSQL server)
from tests.study.kill_helpers import (
    STUDY,
    TARGETS,
    Kill,
    artifact_problems,
    find_victim,
    kill,
    launch,
    leftovers,
    log_tail,
    lost_jobs,
    referenced_artifacts,
    run_command,
    snapshot,
    wait_for,
)

from dlcompat.store.db import database_url

SEED = 22
SQLITE_INSTANTS = 20
POSTGRES_INSTANTS = 4
INSTANTS_PER_ROUND = 5
MAX_ROUNDS = 10


@dataclass
class Reference:
    duration_s: float
    store: dict[str, Any]
    config: Path


@dataclass
class Round:
    folder: Path
    out: Path
    tmp: Path
    database: str | None
    kills: list[Kill] = field(default_factory=list)
    invocations: int = 0
    elapsed_s: float = 0.0
    reruns: int = 0  # invocations after the last kill, for jobs lost to it


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Iterator[Reference]:
    """The study run once without interruption: its duration and what it stored."""
    folder = tmp_path_factory.mktemp("kill-reference")
    config = folder / "study.toml"
    config.write_text(STUDY)
    tmp = Path(tempfile.mkdtemp(prefix="kill-anywhere-"))
    try:
        start = time.monotonic()
        proc = launch(run_command(config, folder / "out", None), {**os.environ, "TMPDIR": str(tmp)}, folder / "log")
        assert wait_for(proc) == 0, log_tail(folder / "log")
        duration = time.monotonic() - start
        store = snapshot(database_url(folder / "out"))
        assert leftovers(folder / "out", tmp) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert {job[6] for job in store["jobs"].values()} >= {"ok", "failed", "unavailable"}
    yield Reference(duration, store, config)


def instants(count: int, seed: int) -> list[tuple[float, str]]:
    """`count` instants drawn uniformly over a run (as fractions of its duration), with the target each one kills
    (in turn)."""
    rng = random.Random(seed)
    return [(rng.uniform(0.0, 1.0), TARGETS[i % len(TARGETS)]) for i in range(count)]


def kill_round(ref: Reference, run: Round, planned: list[tuple[float, str]], duration_s: float,
               rng: random.Random) -> list[Any]:
    """Run the study from scratch, killing at each instant (sorted; a fraction of `duration_s`) its target; a killed
    driver is run again at once. Then run it to its end. Returns the instants the study outlived (they go to the
    next round)."""
    command = run_command(ref.config, run.out, run.database)
    env = {**os.environ, "TMPDIR": str(run.tmp)}
    log = run.folder / "log"
    start = time.monotonic()
    proc, run.invocations = launch(command, env, log), 1
    pending = sorted(planned)
    while pending:
        at, target = pending[0][0] * duration_s, pending[0][1]
        victim = None
        while proc.poll() is None:
            now = time.monotonic() - start
            if now >= at and (victim := find_victim(proc, target, rng)) is not None:
                break
            time.sleep(0.02 if now >= at else min(0.02, at - now))
        if victim is None:  # the study ended before the instant (or before a worker or browser showed up)
            assert proc.returncode == 0, log_tail(log)
            break
        what = kill(victim, target)
        run.kills.append(Kill(round(time.monotonic() - start, 2), target, victim.pid, what))
        pending.pop(0)
        if target in ("driver", "group"):
            run.kills[-1].landed = wait_for(proc, 30) == -signal.SIGKILL
            proc = launch(command, env, log)
            run.invocations += 1
    assert wait_for(proc) == 0, log_tail(log)
    for _ in range(3):  # a job whose retries the kills spent is not stored ("run again to retry"): as a user would
        if not lost_jobs(run.database or database_url(run.out)):
            break
        run.reruns += 1
        assert wait_for(launch(command, env, log)) == 0, log_tail(log)
    run.elapsed_s = time.monotonic() - start
    return pending


def check_round(ref: Reference, run: Round) -> None:
    """The round's store equals the reference's, without a duplicate, a corrupt artifact or a temp file left."""
    url = run.database or database_url(run.out)
    got = snapshot(url)
    context = f"round in {run.folder} with kills {run.kills}"
    assert got["duplicates"] == [], context
    assert sorted(got["jobs"]) == sorted(ref.store["jobs"]), context
    for key, job in ref.store["jobs"].items():
        assert got["jobs"][key] == job, f"{context}: job {job[3]}"
    extra = got["measurements"] - ref.store["measurements"]
    missing = ref.store["measurements"] - got["measurements"]
    assert not extra and not missing, f"{context}: extra {list(extra)[:3]}, missing {list(missing)[:3]}"
    root = run.out / "artifacts"
    assert artifact_problems(root) == [], context
    assert all((root / a).is_file() for a in referenced_artifacts(got)), context
    assert leftovers(run.out, run.tmp) == [], context


def kill_rounds(ref: Reference, planned: list[tuple[float, str]], base: Path, database: Any) -> list[Round]:
    """Rounds of `INSTANTS_PER_ROUND` instants until every instant has killed something; each round checked.

    An instant is a fraction of the study's duration: the reference run's, or that of the latest round that ran
    through without a kill (the machine got faster, so the instants left moved past the study's end)."""
    rng = random.Random(SEED)
    rounds: list[Round] = []
    duration_s = ref.duration_s
    queue = list(planned)
    while queue:
        assert len(rounds) < MAX_ROUNDS, f"instants still unused after {MAX_ROUNDS} rounds: {queue}"
        folder = base / f"round{len(rounds)}"
        folder.mkdir()
        tmp = Path(tempfile.mkdtemp(prefix="kill-anywhere-"))
        run = Round(folder, folder / "out", tmp, database(len(rounds)) if database else None)
        try:
            batch, queue = queue[:INSTANTS_PER_ROUND], queue[INSTANTS_PER_ROUND:]
            queue = kill_round(ref, run, batch, duration_s, rng) + queue
            check_round(ref, run)
            if not run.kills:
                duration_s = run.elapsed_s
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rounds.append(run)
    return rounds


def _report(rounds: list[Round], started: float) -> str:
    kills = [k for r in rounds for k in r.kills]
    kinds = {t: sum(k.target == t for k in kills) for t in TARGETS}
    late = sum(not k.landed for k in kills)
    invocations = sum(r.invocations + r.reruns for r in rounds)
    return (f"{len(kills)} kills {kinds} ({late} after the driver had ended) in {len(rounds)} rounds, "
            f"{invocations} invocations ({sum(r.reruns for r in rounds)} for lost jobs), "
            f"{time.monotonic() - started:.0f} s")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_seeded_instants_then_rerun_equals_an_uninterrupted_run(reference, tmp_path):
    started = time.monotonic()
    planned = instants(SQLITE_INSTANTS, SEED)
    rounds = kill_rounds(reference, planned, tmp_path, None)
    kills = [k for r in rounds for k in r.kills]
    print(f"reference {reference.duration_s:.1f} s; {_report(rounds, started)}")
    assert len(kills) == SQLITE_INSTANTS and {k.target for k in kills} == set(TARGETS)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_at_seeded_instants_into_postgres(reference, postgres, tmp_path):  # noqa: F811
    started = time.monotonic()
    planned = instants(POSTGRES_INSTANTS, SEED + 1)
    rounds = kill_rounds(reference, planned, tmp_path, lambda i: postgres.create_database(f"kill_anywhere_{i}"))
    print(f"postgres: {_report(rounds, started)}")
    assert sum(len(r.kills) for r in rounds) == POSTGRES_INSTANTS
