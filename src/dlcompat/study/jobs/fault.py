"""Job `fault`: FAULT INJECTION FOR TESTS ONLY. The planner never plans it; tests build plans of it by hand.

It misbehaves on purpose so the executors' fault handling can be tested on real worker processes:
``params["fault"]`` is one of

- ``none``: record ``params["value"]`` as the measurement ``fault_value`` and finish;
- ``sleep``: the same after ``params["seconds"]`` (a job to kill from outside while it runs);
- ``raise``: raise RuntimeError (an ordinary failing job);
- ``segfault``: crash the interpreter with SIGSEGV, as a broken native extension would;
- ``hang``: sleep far past any time limit;
- ``memory``: allocate (and touch) ``params["mb"]`` MB in 16 MB steps, hold it ``params["hold_s"]``
  seconds (default 0), then finish.

If it gets to its end, it reads the artifact its input ``up`` names (``outputs["read"]``), or passes on
what it was told of a failed ``up`` it tolerates (``outputs["upstream"]``), and with
``params["write"]`` stores that text as an artifact (``outputs["artifact"]``); ``outputs["root_seen"]``
is the artifact root it was given. With ``params["marker_dir"]`` set, the job first writes
``<marker_dir>/<name>.<pid>`` holding its worker's pid and the Ray node it runs on
(``DLCOMPAT_RAY_NODE``, empty off Ray), so a test can find the process to kill or the node to remove.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from dlcompat.study.jobs.base import JobContext


def run(ctx: JobContext) -> None:
    p = ctx.params
    if p.get("marker_dir"):
        marker = Path(p["marker_dir"]) / f"{p.get('name', 'fault')}.{os.getpid()}"
        marker.write_text(f"{os.getpid()} {os.environ.get('DLCOMPAT_RAY_NODE', '')}")
    fault = p.get("fault", "none")
    if fault == "sleep":
        time.sleep(float(p.get("seconds", 1.0)))
    elif fault == "raise":
        raise RuntimeError("deliberate failure (fault injection)")
    elif fault == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)  # the signal is delivered before this ends
    elif fault == "hang":
        time.sleep(float(p.get("seconds", 3600.0)))
    elif fault == "memory":
        held = []
        for _ in range(int(p.get("mb", 1024)) // 16):
            held.append(np.ones(16 * 2**20, dtype=np.uint8))
            time.sleep(0.02)
        time.sleep(float(p.get("hold_s", 0.0)))
    elif fault != "none":
        raise ValueError(f"unknown fault {fault!r}")
    if "upstream" in ctx.inputs.get("up", {}):  # a failed upstream the job tolerates (`Job.tolerates`)
        ctx.outputs["upstream"] = ctx.inputs["up"]["upstream"]
    if "artifact" in ctx.inputs.get("up", {}):
        ctx.outputs["read"] = ctx.artifacts.path(ctx.inputs["up"]["artifact"]).read_text()
    if p.get("write"):
        ctx.outputs["artifact"] = ctx.artifacts.put_bytes(str(p["write"]).encode(), ".txt")
    ctx.outputs.update(value=p.get("value", 0), root_seen=ctx.artifacts.location)
    ctx.measure("fault_value", p.get("value", 0), "", method={"fault": fault})
