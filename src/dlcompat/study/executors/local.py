"""Local executor: long-lived worker processes, one pool per toolchain environment, `slots` jobs at a time.

Each worker is `python -m dlcompat.study.executors.worker` started with its environment's interpreter and a
thread budget, in its own process group. Importing a framework costs seconds, so workers are reused
across jobs of the same environment instead of starting a fresh interpreter per job.

What can go wrong, and what becomes of the job (the same on the Ray executor, which runs its jobs
through this module's `WorkerPool` on each node):

- past its time limit: the worker (its whole group) is killed; a finding, "timed out after …";
- past its memory limit (resident memory of the worker and its children, sampled every 0.1 s): the
  worker is killed; a finding, "exceeded its memory limit …";
- the worker crashes (a segfault, an abort, any exit of its own): a finding naming the signal or code
  and where it crashed (faulthandler's fatal error and innermost frames, else the log's last lines);
- the worker is killed from outside (SIGKILL, SIGTERM, SIGHUP, SIGINT: the OOM killer, an operator, a
  node going away): an infrastructure fault, not the job's; the job runs again on a fresh worker, up
  to the request's `retries`; when they run out it is reported but not stored, so a re-run retries it.

A deterministic failure is thus recorded once and never retried; only the machinery is.

Each running job holds cores of its own, as many as its thread budget (`cores.claim_cores`, machine-wide
so Ray nodes on one host share the bookkeeping), and its worker's whole process tree is pinned to them:
a "one-thread" job cannot borrow another core for its helper threads and processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from dlcompat.envs.registry import get_env
from dlcompat.metrics.record import Measurement
from dlcompat.store.artifacts import ArtifactStore, artifact_refs, is_url
from dlcompat.study.executors.base import Executor, ProgressSink
from dlcompat.study.executors.cores import claim_cores, pin_process_tree
from dlcompat.study.jobs.base import CELL_FIELDS, JobOutcome, error_text
from dlcompat.study.request import JobRequest

#: deaths by these signals come from outside the job (OOM killer, operator, node shutdown): retried
EXTERNAL_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT})
_MEMORY_POLL_S = 0.1
#: each worker's temp folder (its TMPDIR, where its jobs' runners, converters and browsers put their work folders):
#: <prefix><pid of the process that owns its pool>-<random>; removed when the worker ends, and swept when a pool
#: starts if its owner is dead (a driver killed with SIGKILL cannot remove its workers' folders)
WORKER_TMP_PREFIX = "dlcompat-worker-"


class WorkerDied(Exception):
    """The worker process ended; `infrastructure` when something outside the job ended it."""

    def __init__(self, message: str, infrastructure: bool = False) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure


class MemoryLimitExceeded(Exception):
    def __init__(self, rss: int, limit: int) -> None:
        super().__init__(f"resident {rss / 2**20:.0f} MB > limit {limit / 2**20:.0f} MB")
        self.rss, self.limit = rss, limit


class InfrastructureFault(Exception):
    """The machinery failed, not the job: the job may run again (bounded by its request's `retries`)."""


def failure(request: JobRequest, error: str, infrastructure: bool = False) -> JobOutcome:
    """A failed outcome decided outside the job, with the row that makes the finding show in the export."""
    fields = {k: request.cell.get(k, "" if k != "seed" else None) for k in CELL_FIELDS}
    row = Measurement(metric=request.kind, value=None, status="failed", error=error, **fields)  # type: ignore[arg-type]
    return JobOutcome(status="failed", error=error, measurements=[row], infrastructure=infrastructure)


class Worker:
    """One child process speaking the JSON-lines protocol of `dlcompat.study.executors.worker`."""

    def __init__(self, env: str, threads: int, log_dir: Path, variables: dict[str, str] | None = None,
                 family: str = "") -> None:
        toolchain = get_env(env)
        self.env = env
        self.key = pool_key(env, threads, variables, family)
        self.log_path = log_dir / f"worker-{env}-{time.time_ns()}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{WORKER_TMP_PREFIX}{os.getpid()}-"))
        try:
            self.proc = subprocess.Popen(
                [str(toolchain.interpreter()), "-m", "dlcompat.study.executors.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                env={**toolchain.worker_environ(threads), "TMPDIR": str(self.tmp), **(variables or {})},
                start_new_session=True, text=True, bufsize=1,
            )
        except OSError as exc:
            self._log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise WorkerDied(f"cannot start a worker of environment {env}: {exc}") from exc
        self.cores: frozenset[int] | None = None  # what it is pinned to (None: every core)
        self._buffer = ""
        self._tree: dict[int, psutil.Process] = {}
        self._tree_read = 0.0
        try:
            ready = self._read(deadline=time.monotonic() + 300)
        except TimeoutError:
            self.stop(kill=True)
            raise WorkerDied(f"worker of environment {env} did not start within 300 s", infrastructure=True) from None
        except WorkerDied:  # it died while starting (killed from outside, say): what it left goes too
            self.stop()
            raise
        if ready.get("type") != "ready":
            self.stop(kill=True)
            raise WorkerDied(f"worker of environment {env} did not start: {ready}")

    def _read(self, deadline: float, memory_limit: int = 0) -> dict[str, Any]:
        """The next protocol message, or WorkerDied / TimeoutError / MemoryLimitExceeded."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        poll = _MEMORY_POLL_S if memory_limit else 1.0
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while "\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if memory_limit and (rss := self.resident_bytes()) > memory_limit:
                    raise MemoryLimitExceeded(rss, memory_limit)
                if not sel.select(timeout=min(remaining, poll)):
                    continue
                chunk = os.read(fd, 65536).decode("utf-8", errors="replace")
                if not chunk:
                    raise self._died()
                self._buffer += chunk
        line, self._buffer = self._buffer.split("\n", 1)
        return json.loads(line)

    def resident_bytes(self) -> int:
        """Resident memory of the worker and every process it started (0 once it is gone).

        Reading one process's RSS is cheap; finding its children scans every process of the machine, so
        the tree is looked up again once a second and its members' memory sampled each time.
        """
        try:
            if time.monotonic() - self._tree_read > 1.0 or not self._tree:
                root = self._tree.get(self.proc.pid) or psutil.Process(self.proc.pid)
                self._tree = {root.pid: root, **{c.pid: c for c in root.children(recursive=True)}}
                self._tree_read = time.monotonic()
        except psutil.Error:
            return 0
        total = 0
        for pid, proc in list(self._tree.items()):
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                self._tree.pop(pid, None)
        return total

    def _died(self) -> WorkerDied:
        code = self.proc.wait()
        external = code < 0 and -code in EXTERNAL_SIGNALS
        reason = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        crash = self.crash_report()
        tail = self.log_tail()
        message = f"worker process died ({reason})" + (f"; {crash}" if crash else
                                                          f"; its last output: {tail}" if tail else "")
        return WorkerDied(message, infrastructure=external)

    def crash_report(self) -> str:
        """`Fatal Python error: …; File …, line … in …`: what faulthandler wrote when the worker crashed."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        start = text.rfind("Fatal Python error:")
        if start < 0:
            return ""
        lines = [line.strip() for line in text[start:].splitlines() if line.strip()]
        frames = [line for line in lines if line.startswith("File ")][:3]  # innermost first
        return "; ".join([lines[0], *frames])[:1000]

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])[-1000:]

    def run(self, request: JobRequest, progress: ProgressSink, timeout_s: float,
            memory_limit: int = 0) -> JobOutcome:
        """Run one job; `memory_limit` in bytes (0: none). Raises TimeoutError, MemoryLimitExceeded, WorkerDied."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(request.to_json() + "\n")
            self.proc.stdin.flush()
        except OSError:  # it died while idle: not the job's doing
            died = self._died()
            raise WorkerDied(str(died), infrastructure=True) from None
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._read(deadline, memory_limit)
            if message["type"] == "progress":
                progress(message["event"])
            elif message["type"] == "result":
                return JobOutcome.from_dict(message["outcome"])

    def pin_to(self, cores: frozenset[int] | None) -> None:
        """Run this worker's process tree on `cores` (None: every core); a reused worker may hold another job's."""
        if cores != self.cores:
            pin_process_tree(self.proc.pid, cores)
            self.cores = cores

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, kill: bool = False) -> None:
        """End the worker (closing its stdin, or `kill`: SIGKILL), what it started, and remove its temp folder.
        Also for a worker that died (killed from outside, idle or busy): its children and its folder outlive it."""
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
        _remove_worker_tmp(self.tmp)  # what it started goes first, found by its TMPDIR (a group may be gone)
        self._log.close()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _remove_worker_tmp(folder: Path, attempts: int = 5) -> None:
    """Remove a worker's temp folder once nothing of the worker's runs: its browser (a session of its own) and any
    straggler go before the folder, and a removal a late writer raced is tried again."""
    for _ in range(attempts):
        _kill_tree(_processes_of(folder))
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.1)


def _kill_tree(procs: list[psutil.Process]) -> None:
    """SIGKILL these processes (a worker's descendants) if they still run, and wait for them."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    deadline = time.monotonic() + 10
    while procs and time.monotonic() < deadline:  # a zombie runs nothing: its reaper may be slow, or not ours
        procs = [p for p in procs if _running(p)]
        time.sleep(0.02 if procs else 0)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _processes_of(folder: Path) -> list[psutil.Process]:
    """What a worker whose temp folder is `folder` started, wherever it was re-parented: the processes with that
    TMPDIR, or naming the folder on their command line (Chromium's children, whose environment Chromium rewrites,
    carry their profile's path)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and (proc.environ().get("TMPDIR") == str(folder)
                                            or any(str(folder) in arg for arg in proc.cmdline())):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def sweep_stale_worker_tmp() -> int:
    """Remove the temp folders of workers whose pool's owner is dead (killed before it could remove them)."""
    removed = 0
    for entry in Path(tempfile.gettempdir()).glob(f"{WORKER_TMP_PREFIX}*"):
        owner = entry.name[len(WORKER_TMP_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not psutil.pid_exists(int(owner)):
            _remove_worker_tmp(entry)  # its workers go first, if they have not yet noticed their owner died
            removed += 1
    return removed


def pool_key(env: str, threads: int, variables: dict[str, str] | None = None, family: str = "") -> tuple[Any, ...]:
    """Workers are interchangeable when they share an environment, a thread budget, extra variables and the
    family of jobs they run (`study.worker_family`: a job's peak memory is measured in its worker)."""
    return (env, threads, tuple(sorted((variables or {}).items())), family)


class WorkerPool:
    """Live workers, reused by key; at most `capacity` alive, an idle one of another key retired for a new one."""

    def __init__(self, capacity: int, log_dir: Path) -> None:
        self.capacity = max(1, capacity)
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        sweep_stale_worker_tmp()
        self._idle: dict[tuple[Any, ...], list[Worker]] = {}
        self._all: list[Worker] = []
        self._returned: dict[int, float] = {}  # id(worker) -> when it last came back idle
        self._retiring: list[threading.Thread] = []  # workers being stopped to make room
        self._lock = threading.Lock()
        self.closed = False

    def checkout(self, env: str, threads: int, variables: dict[str, str] | None = None, family: str = "") -> Worker:
        victim = None
        with self._lock:
            if self.closed:
                raise WorkerDied("the executor is shutting down")
            pool = self._idle.setdefault(pool_key(env, threads, variables, family), [])
            found = None
            while pool and found is None:
                worker = pool.pop()
                found = worker if worker.alive() else None
            dead = [w for w in self._all if not w.alive()]  # killed while idle: what they left is removed below
            self._all = [w for w in self._all if w.alive()]
            if found is None and len(self._all) >= self.capacity:
                victim = self._least_recently_used()
        for worker in dead:
            worker.stop()
        if found is not None:
            return found
        if victim is not None:  # it ends beside the new one's start (a worker's exit can take seconds)
            retiring = threading.Thread(target=victim.stop, name="dlcompat-retire", daemon=True)
            retiring.start()
            with self._lock:
                self._retiring = [t for t in self._retiring if t.is_alive()] + [retiring]
        worker = Worker(env, threads, self.log_dir, variables, family)
        with self._lock:
            self._all.append(worker)
            if self.closed:  # closed while it started: it would outlive the pool
                self._all.remove(worker)
                worker.stop(kill=True)
                raise WorkerDied("the executor is shutting down")
        return worker

    def _least_recently_used(self) -> Worker | None:
        """Take the idle live worker that has waited longest out of the pool (to retire it), if any."""
        idle = [w for workers in self._idle.values() for w in workers if w in self._all]
        if not idle:
            return None
        victim = min(idle, key=lambda w: self._returned.get(id(w), 0.0))
        self._idle[victim.key].remove(victim)
        self._all.remove(victim)
        return victim

    def checkin(self, worker: Worker) -> None:
        with self._lock:
            self._idle.setdefault(worker.key, []).append(worker)
            self._returned[id(worker)] = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            workers, self._all, self._idle = self._all, [], {}
        for worker in workers:
            worker.stop(kill=True)
        for retiring in self._retiring:
            retiring.join()


def run_in_pool(pool: WorkerPool, request: JobRequest, progress: ProgressSink,
                variables: dict[str, str] | None = None, reuse: bool = True) -> JobOutcome:
    """Run one request on a worker of `pool`: the job's outcome, or a finding for a crash, a time or memory limit.

    With a URL artifact root (shared storage), the job's inputs are fetched into this machine's cache
    first, the worker works on the cache as a plain folder (so no toolchain environment needs fsspec),
    and the artifacts its outcome names are uploaded before the outcome goes back: the driver stores a
    job only once its artifacts are on the shared root.

    Raises InfrastructureFault when the worker was killed from outside: the caller decides about a retry.
    """
    root = request.artifacts_root
    if not is_url(root):
        return _run_on_worker(pool, request, progress, variables, reuse)
    try:
        shared = ArtifactStore(root)
        shared.fetch(artifact_refs(request.inputs))
    except Exception as exc:
        return failure(request, f"cannot fetch the job's inputs from {root}: {error_text(exc)}", infrastructure=True)
    outcome = _run_on_worker(pool, request.replace(artifacts_root=str(shared.root)), progress, variables, reuse)
    try:
        shared.publish(artifact_refs([outcome.outputs, [m.to_dict() for m in outcome.measurements]]))
    except Exception as exc:
        return failure(request, f"cannot upload the job's artifacts to {root}: {error_text(exc)}", infrastructure=True)
    return outcome


def _run_on_worker(pool: WorkerPool, request: JobRequest, progress: ProgressSink,
                   variables: dict[str, str] | None, reuse: bool) -> JobOutcome:
    """Run the request on cores of its own (`cores.claim_cores`, as many as its thread budget)."""
    with claim_cores(request.threads) as cores:
        return _run_on_cores(pool, request, progress, variables, reuse, cores)


def _run_on_cores(pool: WorkerPool, request: JobRequest, progress: ProgressSink,
                  variables: dict[str, str] | None, reuse: bool, cores: frozenset[int] | None) -> JobOutcome:
    timeout_s, limit_mb = request.timeout_s, request.memory_limit_mb
    try:
        worker = pool.checkout(request.env, request.threads, variables, request.family)
    except WorkerDied as exc:
        if exc.infrastructure:
            raise InfrastructureFault(str(exc)) from exc
        return failure(request, str(exc))
    worker.pin_to(cores)
    try:
        outcome = worker.run(request, progress, timeout_s, int(limit_mb * 2**20))
    except TimeoutError:
        worker.stop(kill=True)
        return failure(request, f"timed out after {timeout_s:g} s (the job's time limit); its worker was killed")
    except MemoryLimitExceeded as exc:
        worker.stop(kill=True)
        return failure(request, f"exceeded its memory limit of {limit_mb:g} MB ({exc}); its worker was killed")
    except WorkerDied as exc:
        worker.stop()
        if exc.infrastructure:
            raise InfrastructureFault(str(exc)) from exc
        return failure(request, str(exc))
    if reuse:
        pool.checkin(worker)
    else:
        worker.stop()
    if outcome.infrastructure:  # the worker says something outside the job ended it (its browser was killed)
        raise InfrastructureFault(outcome.error)
    return outcome


def run_with_retries(pool: WorkerPool, request: JobRequest, progress: ProgressSink,
                     variables: dict[str, str] | None = None, reuse: bool = True) -> JobOutcome:
    """`run_in_pool`, again on a fresh worker after each infrastructure fault, `retries` times at most."""
    retries = request.retries
    for attempt in range(retries + 1):
        try:
            return run_in_pool(pool, request, progress, variables, reuse)
        except InfrastructureFault as exc:
            if attempt == retries or pool.closed:
                return failure(request, f"infrastructure fault, retries spent: {exc}", infrastructure=True)
            progress({"retry": attempt + 1, "retries": retries, "reason": str(exc)})
    raise AssertionError("unreachable")


#: workers kept alive beyond the running ones when the study does not say how many kinds of worker it needs
#: (`idle_workers_for`); the one retired for a new one is the one idle longest
IDLE_WORKERS = 12
#: the memory budgeted per kept worker: the mean resident set of the quick study's workers (`peak_rss` of its
#: evaluate jobs: TensorFlow 850 MB, onnx2torch 730, ExecuTorch 380, JAX and PyTorch 340, PyTensor and Theano
#: 150, ONNX Runtime 120, LiteRT and the browser jobs' workers 70-90), rounded up
IDLE_WORKER_MB = 500


def idle_workers_for(kinds: int, slots: int, available_mb: float | None = None) -> int:
    """Idle workers to keep for a study whose jobs need `kinds` kinds of worker (`pool_key`s: toolchain
    environment x thread budget x family, about 18 in the quick study): one of each kind, so that a study moving
    between them never retires a worker only to start it again (re-importing its frameworks, restarting its
    browser), as far as the machine's available memory holds `IDLE_WORKER_MB` for each beyond the running ones."""
    if available_mb is None:
        available_mb = psutil.virtual_memory().available / 2**20
    affordable = int(available_mb // IDLE_WORKER_MB) - slots
    return max(0, min(kinds, affordable))


class LocalExecutor(Executor):
    def __init__(self, slots: int = 1, log_dir: Path | None = None, idle_workers: int = IDLE_WORKERS) -> None:
        self.slots = max(1, slots)
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="dlcompat-workers-"))
        self.pool = WorkerPool(self.slots + max(0, idle_workers), self.log_dir)
        self._threads = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="dlcompat-job")

    def submit(self, request: JobRequest, progress: ProgressSink) -> Future[JobOutcome]:
        return self._threads.submit(run_with_retries, self.pool, request, progress)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.pool.close()
