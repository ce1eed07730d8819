"""The child-process entry point: a long-lived worker that runs one job at a time in its environment.

Started by the local executor (and the Ray executor's tasks, through it) as
``python -m dlcompat.study.executors.worker`` with the interpreter of the job's toolchain environment.

Protocol (JSON lines): the driver writes one job request per line to the worker's stdin; the worker
answers on its *original* stdout, which it keeps for the protocol alone: fd 1 is pointed at stderr
before any job runs, so whatever a framework prints can never corrupt a message. Messages out:
``{"type": "ready", ...}`` once, then for each job any number of ``{"type": "progress", "event": {...}}``
and one ``{"type": "result", "outcome": {...}}``. A worker never writes the results database.

A worker never outlives the process that started it (the driver, or a Ray worker on a cluster node):
it runs in its own session, so a signal to its parent's process group does not reach it, and a
watcher thread ends it within a second of its parent's death, mid-job or not. The job's artifacts are
written atomically, so nothing half-written stays behind. Its time and memory limits are enforced from
outside, by the process that owns it (`dlcompat.study.executors.local.Worker`), which needs no GIL of
the worker's to notice a runaway job.

Imports the standard library, NumPy, dlcompat's NumPy-only core and the job's own module only (DESIGN.md).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from typing import IO, Any

from dlcompat.study.jobs import job_function
from dlcompat.study.jobs.base import JobContext, JobOutcome, error_text, run_job
from dlcompat.study.request import JobRequest
from dlcompat.versions import installed_version

#: modules whose versions a job's environment record names, when the job loaded them
_VERSIONED = ("numpy", "torch", "onnx", "onnxruntime", "onnxscript", "tensorflow", "keras", "jax", "flax",
              "theano", "pytensor", "ai_edge_litert", "executorch", "coremltools", "sklearn", "scipy")


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        module = sys.modules.get(name)
        if module is not None:
            out[name] = installed_version(name)
    return out


def _cpu_affinity() -> list[int] | None:
    """The cores this worker may run on (the executor pins a job's worker to cores of its own)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=str) + "\n")
    channel.flush()


def _browsers_killed_from_outside() -> list[str]:
    """Browsers of this worker killed by a signal from outside since the last call (none if no job used one)."""
    chromium = sys.modules.get("dlcompat.runtimes.browser.chromium")  # loaded by a browser runtime's job only
    return chromium.killed_from_outside(clear=True) if chromium is not None else []


def run_request(request: JobRequest, channel: IO[str]) -> JobOutcome:
    """Run one job here, its progress sent on `channel`; a job that cannot even load is a failed outcome."""
    _browsers_killed_from_outside()
    try:
        fn = job_function(request.kind)
        ctx = JobContext.from_request(request, lambda event: _send(channel, {"type": "progress", "event": event}))
    except Exception as exc:  # the job's module (or its artifact store) is not usable here: a finding
        return JobOutcome(status="failed", error=f"cannot load job {request.kind}: {error_text(exc)}")
    outcome = run_job(fn, ctx)
    killed = _browsers_killed_from_outside()
    if killed and outcome.status == "failed":  # not the job's failure: the executor runs it again
        outcome.infrastructure = True
        outcome.error = f"{killed[0]} during the job: {outcome.error}"
    return outcome


def serve(requests: IO[str], channel: IO[str]) -> None:
    _send(channel, {"type": "ready", "pid": os.getpid(), "python": platform.python_version(),
                    "executable": sys.executable})
    for line in requests:
        if not line.strip():
            continue
        request = JobRequest.from_json(line)
        outcome = run_request(request, channel)
        outcome.environment = {"python": platform.python_version(), "executable": sys.executable,
                               "platform": platform.platform(), "pid": os.getpid(), "threads": request.threads,
                               "cpu_affinity": _cpu_affinity(), "niceness": os.nice(0),
                               "packages": _versions()}
        _send(channel, {"type": "result", "outcome": outcome.to_dict()})


def _exit_with_parent(parent: int, interval_s: float = 1.0) -> None:
    """End this worker once the process that started it is gone (re-parented to init or a subreaper)."""
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent:
            os._exit(70)


def main() -> None:
    import faulthandler

    faulthandler.enable(all_threads=False)  # a crash leaves the job's Python stack in the log, and in the finding
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything printed by a framework goes to the worker's log, not the protocol
    sys.stdout = sys.stderr
    serve(sys.stdin, channel)


if __name__ == "__main__":
    main()
