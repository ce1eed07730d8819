"""A job worker's parked runner: the model an `evaluate` job loaded, kept for the `transfer` job of the same model.

The study runs a model's transfer job right after its evaluation, on the same worker where it can (the
runner submits it next, and the pool hands back the worker that just finished: `study/runner.py`), so the
transfer job takes the runner already active instead of loading the model again (for ONNX Runtime Web, a
page and its WebAssembly; for onnx2tf, unzipping and loading a SavedModel). At most one runner is parked,
only in a job worker (`DLCOMPAT_JOB_WORKER=1`), and every other job releases it before it starts
(`jobs/base.run_job`), so no job's memory figures carry another job's model.

Standard library only: the worker imports it for every job.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

_parked: tuple[str, Any] | None = None


def enabled() -> bool:
    return os.environ.get("DLCOMPAT_JOB_WORKER") == "1"


def park(key: str, runner: Any) -> bool:
    """Keep the active `runner` under `key` (a previous one is released); False where parking is off."""
    global _parked
    release()
    if not enabled():
        return False
    _parked = (key, runner)
    return True


def take(key: str) -> Any | None:
    """The parked runner of `key`, still usable, handed over (the caller deactivates it); else None, and
    whatever was parked is released."""
    global _parked
    if _parked is not None and _parked[0] == key and getattr(_parked[1], "reusable", lambda: True)():
        runner, _parked = _parked[1], None
        return runner
    release()
    return None


def release() -> None:
    """Deactivate the parked runner, if any."""
    global _parked
    parked, _parked = _parked, None
    if parked is not None:
        with contextlib.suppress(Exception):  # a runner that will not close must not fail the next job
            parked[1].deactivate()
