"""Inline executor: every job in the driver's own process, one at a time (for debugging with pdb)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.executors.base import Executor, ProgressSink
from dlcompat.study.jobs import job_function
from dlcompat.study.jobs.base import JobContext, JobOutcome, run_job


class InlineExecutor(Executor):
    slots = 1

    def submit(self, request: dict[str, Any], progress: ProgressSink) -> Future[JobOutcome]:
        future: Future[JobOutcome] = Future()
        ctx = JobContext(kind=request["kind"], params=request["params"], inputs=request["inputs"],
                         artifacts=ArtifactStore(request["artifacts_root"]), threads=request.get("threads", 1),
                         progress=progress)
        future.set_result(run_job(job_function(request["kind"]), ctx))
        return future
