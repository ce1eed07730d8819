"""Executors run one job request and hand back its outcome as a future; the runner does the scheduling.

A request (`dlcompat.study.request.JobRequest`: kind, params, inputs, artifacts root, env, threads,
limits) is built once by the runner and is the same on every executor, so inline, local-process and
Ray execution give the same results for a plan.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from dlcompat.study.jobs.base import JobOutcome
from dlcompat.study.request import JobRequest

ProgressSink = Callable[[dict[str, Any]], None]


class Executor(ABC):
    #: how many jobs may run at once
    slots: int = 1

    @abstractmethod
    def submit(self, request: JobRequest, progress: ProgressSink) -> Future[JobOutcome]: ...

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Stop every worker (always called, also after an error or Ctrl-C)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
