"""Machinery of tests/study/test_kill_anywhere.py: start `dlcompat run` as a subprocess, find and SIGKILL one of
its processes (the driver, a worker, a browser, the driver's process group), and read back what the store holds.

Every invocation gets a temp folder of its test's own (TMPDIR), so that what the study's processes leave
behind there can be told apart from what the rest of the machine writes to /tmp.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import select

from dlcompat.store.artifacts import ARTIFACT_PATH
from dlcompat.store.db import ResultStore, jobs, measurements

#: a study of one model in one framework, deployed to a server runtime and to a browser (ONNX Runtime Web's four
#: backends: the GPU ones end as an unavailable cell and a failed one), with one attack transferred to each
STUDY = """
name = "kill-anywhere"
models = ["lenet1"]
frameworks = ["pytorch"]
seeds = [0]
runtimes = ["onnxruntime", "ortweb"]
check_reproducibility = false
[converters]
"torch.onnx" = ["torchscript"]
[data]
limit_train = 600
limit_test = 100
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
images = 20
transfer = true
"""
#: what the kill cycle hits, in turn
TARGETS = ("driver", "worker", "browser", "group")
#: measurements that are timings or memory: they differ from one run to the next
TIMING_UNITS = ("s", "ms")
#: keys of a job's outputs and a measurement's method that tell how long something took, or whether the job found
#: its worker's browser or model already loaded (which a killed worker changes): not results
VOLATILE_KEY = re.compile(r"_s$|time|reused")
#: seconds an invocation may take (a study with every kill of a round behind it)
INVOCATION_LIMIT_S = 300


@dataclass
class Kill:
    at_s: float  # seconds since the round began, when the signal went
    target: str
    pid: int
    what: str  # the victim's command, shortened
    landed: bool = True  # False: the driver had ended by itself when the signal went


def launch(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`dlcompat run …` in a session of its own (its process group is the driver's pid), output to `log`."""
    with log.open("ab") as sink:
        sink.write(f"\n--- {' '.join(command[-6:])}\n".encode())
        sink.flush()
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def run_command(config: Path, out: Path, database: str | None) -> list[str]:
    return [sys.executable, "-m", "dlcompat.cli", "run", str(config), "--out", str(out), "--quiet",
            *(["--database", database] if database else [])]


def _workers(driver: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in driver.children(recursive=False):
        try:
            if "dlcompat.study.executors.worker" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def _browsers(driver: psutil.Process) -> list[psutil.Process]:
    """The browser processes (not their renderers) that the driver's workers started."""
    found = []
    for worker in _workers(driver):
        try:
            children = worker.children(recursive=False)
        except psutil.Error:
            continue
        for child in children:
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            if cmdline and "chromium" in Path(cmdline[0]).name and any("--user-data-dir" in a for a in cmdline):
                found.append(child)
    return found


def find_victim(proc: subprocess.Popen[bytes], target: str, rng: random.Random) -> psutil.Process | None:
    """The process to kill for `target` now (None: there is none at this moment)."""
    try:
        driver = psutil.Process(proc.pid)
        if target in ("driver", "group"):
            return driver
        candidates = _workers(driver) if target == "worker" else _browsers(driver)
    except psutil.Error:
        return None
    return rng.choice(sorted(candidates, key=lambda p: p.pid)) if candidates else None


def kill(victim: psutil.Process, target: str) -> str:
    """SIGKILL the victim (its whole process group for "group"); what it was, shortened."""
    try:
        what = " ".join(victim.cmdline()[:3])[-80:]
    except psutil.Error:
        what = "?"
    try:
        if target == "group":
            os.killpg(victim.pid, signal.SIGKILL)
        else:
            victim.send_signal(signal.SIGKILL)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    return what


def log_tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


# --------------------------------------------------------------------------------------------- the store


def _stable(text: str | None) -> str:
    """A JSON text without its volatile keys (`VOLATILE_KEY`), at any depth."""
    def strip(data: Any) -> Any:
        if isinstance(data, dict):
            return {k: strip(v) for k, v in data.items() if not VOLATILE_KEY.search(k)}
        if isinstance(data, list):
            return [strip(v) for v in data]
        return data

    return json.dumps(strip(json.loads(text or "null")), sort_keys=True)


def _timing(unit: str | None, metric: str) -> bool:
    return unit in TIMING_UNITS or "rss" in metric


def snapshot(url: str) -> dict[str, Any]:
    """What a finished study stored, timings and memory aside: its jobs, and its measurements as a multiset."""
    store = ResultStore(url)
    with store.engine.connect() as conn:
        job_rows = conn.execute(select(jobs.c.key, jobs.c.kind, jobs.c.env, jobs.c.label, jobs.c.params,
                                       jobs.c.deps, jobs.c.status, jobs.c.error, jobs.c.outputs)).all()
        rows = conn.execute(select(measurements)).mappings().all()
    stored = {row[0]: (*row[:8], _stable(row[8])) for row in job_rows}
    counted: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        if row["metric"].startswith("latency"):  # which latency figures exist depends on the timings (a CI needs
            continue  # enough calls in the time allowed)
        timing = _timing(row["unit"], row["metric"])
        counted[(row["job_key"], row["dataset"], row["model"], row["framework"], row["seed"], row["target"],
                 row["variant"], row["metric"], row["unit"], row["status"], row["error"], row["artifact"],
                 None if timing else row["value"], None if timing else _stable(row["method"]))] += 1
    keys = Counter((row["job_key"], row["metric"], row["target"], row["variant"], row["method"]) for row in rows)
    store.engine.dispose()
    return {"jobs": stored, "measurements": counted, "duplicates": sorted(k for k, n in keys.items() if n > 1)}


def lost_jobs(url: str) -> int:
    """How many jobs the latest invocation lost to infrastructure faults (their retries spent: not stored)."""
    store = ResultStore(url)
    try:
        return int(store.run("latest")["summary"].get("lost", 0))
    finally:
        store.engine.dispose()


def artifact_problems(root: Path) -> list[str]:
    """Every file under objects/ whose bytes do not hash to its name, or whose name is not an artifact's."""
    problems = []
    for path in sorted((root / "objects").rglob("*")):
        if path.is_dir():
            continue
        relative = path.relative_to(root).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not ARTIFACT_PATH.match(relative) or path.parent.name + path.name.split(".", 1)[0] != digest:
            problems.append(f"{relative} (sha256 {digest})")
    return problems


def referenced_artifacts(snap: dict[str, Any]) -> set[str]:
    """Artifacts the stored jobs name (in their outputs) and their measurements point at."""
    found = {m[11] for m in snap["measurements"] if m[11]}
    for job in snap["jobs"].values():
        found |= {v for v in _strings(json.loads(job[8] or "{}")) if ARTIFACT_PATH.match(v)}
    return found


def _strings(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return []


def leftovers(out: Path, tmpdir: Path) -> list[str]:
    """Temp files a finished study must not leave: artifact writes in progress, worker and runner work folders,
    Chromium profiles (everything in the invocations' TMPDIR but the machine-wide core claims)."""
    found = [str(p) for p in (out / "artifacts" / "tmp").iterdir()]
    for entry in sorted(tmpdir.iterdir()):
        if not entry.name.startswith("dlcompat-cores-"):
            found += [str(entry), *(str(p) for p in sorted(entry.rglob("*"))[:5])]
    found += [str(p) for p in tmpdir.rglob("dlcompat-chromium-*")]
    return found


def wait_for(proc: subprocess.Popen[bytes], limit_s: float = INVOCATION_LIMIT_S) -> int:
    try:
        return proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
