"""Local executor: long-lived worker processes, one pool per toolchain environment, `slots` jobs at a time.

Each worker is `python -m dlcompat.envs.worker` started with its environment's interpreter and a
thread budget, in its own process group. A job that runs past its time limit gets its worker killed
(the whole group) and is recorded as failed with that reason; a worker that dies (a segfault, the OOM
killer) is recorded the same way and replaced. Importing a framework costs seconds, so workers are
reused across jobs of the same environment instead of starting a fresh interpreter per job.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dlcompat.envs.registry import get_env
from dlcompat.study.executors.base import Executor, ProgressSink
from dlcompat.study.jobs.base import JobOutcome


class WorkerDied(Exception):
    pass


class Worker:
    """One child process speaking the JSON-lines protocol of `dlcompat.envs.worker`."""

    def __init__(self, env: str, threads: int, log_dir: Path) -> None:
        toolchain = get_env(env)
        self.env = env
        self.log_path = log_dir / f"worker-{env}-{time.time_ns()}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            [str(toolchain.interpreter()), "-m", "dlcompat.envs.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env=toolchain.worker_environ(threads), start_new_session=True, text=True, bufsize=1,
        )
        self._buffer = ""
        ready = self._read(deadline=time.monotonic() + 300)
        if ready.get("type") != "ready":
            raise WorkerDied(f"worker of environment {env} did not start: {ready}")

    def _read(self, deadline: float) -> dict[str, Any]:
        """The next protocol message, or WorkerDied / TimeoutError."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while "\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if not sel.select(timeout=min(remaining, 1.0)):
                    continue
                chunk = os.read(fd, 65536).decode("utf-8", errors="replace")
                if not chunk:
                    code = self.proc.wait()
                    raise WorkerDied(self._death(code))
                self._buffer += chunk
        line, self._buffer = self._buffer.split("\n", 1)
        return json.loads(line)

    def _death(self, code: int) -> str:
        reason = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        tail = self.log_tail()
        return f"worker process died ({reason})" + (f"; its last output: {tail}" if tail else "")

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])[-1000:]

    def run(self, request: dict[str, Any], progress: ProgressSink, timeout_s: float) -> JobOutcome:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._read(deadline)
            if message["type"] == "progress":
                progress(message["event"])
            elif message["type"] == "result":
                return JobOutcome.from_dict(message["outcome"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, kill: bool = False) -> None:
        if self.alive():
            if kill:
                _kill_group(self.proc)
            else:
                try:
                    assert self.proc.stdin is not None
                    self.proc.stdin.close()
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    _kill_group(self.proc)
        self._log.close()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class LocalExecutor(Executor):
    def __init__(self, slots: int = 1, log_dir: Path | None = None) -> None:
        self.slots = max(1, slots)
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="dlcompat-workers-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._idle: dict[tuple[str, int], list[Worker]] = {}
        self._all: list[Worker] = []
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="dlcompat-job")

    def _checkout(self, env: str, threads: int) -> Worker:
        with self._lock:
            pool = self._idle.setdefault((env, threads), [])
            while pool:
                worker = pool.pop()
                if worker.alive():
                    return worker
            # keep at most `slots` live workers: retire an idle one of another environment
            live = [w for w in self._all if w.alive()]
            if len(live) >= self.slots:
                for other in self._idle.values():
                    if other:
                        victim = other.pop()
                        victim.stop()
                        break
        worker = Worker(env, threads, self.log_dir)
        with self._lock:
            self._all.append(worker)
        return worker

    def _checkin(self, worker: Worker, threads: int) -> None:
        with self._lock:
            self._idle.setdefault((worker.env, threads), []).append(worker)

    def _run(self, request: dict[str, Any], progress: ProgressSink) -> JobOutcome:
        env, threads = request["env"], int(request.get("threads", 1))
        timeout_s = float(request.get("timeout_s", 1800))
        try:
            worker = self._checkout(env, threads)
        except WorkerDied as exc:
            return JobOutcome(status="failed", error=str(exc))
        try:
            outcome = worker.run(request, progress, timeout_s)
        except TimeoutError:
            worker.stop(kill=True)
            return JobOutcome(status="failed", error=f"timed out after {timeout_s:g} s (the job's time limit); "
                                                     "its worker was killed")
        except WorkerDied as exc:
            worker.stop()
            return JobOutcome(status="failed", error=str(exc))
        self._checkin(worker, threads)
        return outcome

    def submit(self, request: dict[str, Any], progress: ProgressSink) -> Future[JobOutcome]:
        return self._threads.submit(self._run, request, progress)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop(kill=True)
