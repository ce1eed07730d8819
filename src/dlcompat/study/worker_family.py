"""Which jobs may share a worker process: a job's *family*.

Workers are long-lived processes (`executors/local.py`), and a job's peak resident set (`metrics.memory`) is
measured inside one: the kernel's high-water mark, reset at the job's start to what the process holds then. A
worker that ran a TensorFlow job before a PyTensor one still holds TensorFlow's gigabyte, and the PyTensor
model's figure would carry it. So the jobs whose memory is measured, `train` and `evaluate`, and the jobs that
follow them onto the same framework or loaded model (`reproduce`, `transfer`), share workers only with jobs of
their own family: the framework a model runs in (a framework runtime: native, weight transfer), all the web
runtimes together (their models run in the browser's processes, not the worker's), or else the runtime. Every
other job (convert, attack, compare, dataset) runs in the `general` workers, which may import anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlcompat.runtimes.base import runtime_entry

#: the family of jobs that measure no memory
GENERAL = "general"
#: jobs that measure memory, or follow such a job onto its worker
_FRAMEWORK_JOBS = frozenset({"train", "reproduce"})
_RUNTIME_JOBS = frozenset({"evaluate", "transfer"})


def worker_family(kind: str, params: Mapping[str, Any]) -> str:
    """The family of a job of `kind` with `params` (see the module's docstring)."""
    cell = params.get("cell") or {}
    if kind in _FRAMEWORK_JOBS:
        return str(cell.get("framework") or GENERAL)
    if kind not in _RUNTIME_JOBS or not params.get("runtime"):
        return GENERAL
    platform = runtime_entry(str(params["runtime"])).platform
    if platform == "framework":
        return str(cell.get("target") or GENERAL)
    return platform if platform == "web" else str(params["runtime"])
