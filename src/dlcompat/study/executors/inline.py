"""Inline executor: every job in the driver's own process, one at a time (for debugging with pdb)."""

from __future__ import annotations

from concurrent.futures import Future

from dlcompat.study.executors.base import Executor, ProgressSink
from dlcompat.study.jobs import job_function
from dlcompat.study.jobs.base import JobContext, JobOutcome, run_job
from dlcompat.study.request import JobRequest


class InlineExecutor(Executor):
    slots = 1

    def submit(self, request: JobRequest, progress: ProgressSink) -> Future[JobOutcome]:
        future: Future[JobOutcome] = Future()
        future.set_result(run_job(job_function(request.kind), JobContext.from_request(request, progress)))
        return future
