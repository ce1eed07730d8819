"""Ray executor: each job a Ray task on some node of a cluster, run there in a dlcompat worker of its env.

Scheduling stays in the runner, the one scheduler of every executor: it submits a job once the jobs it
reads from are stored, so the driver stores each result the moment it arrives (a killed study resumes
exactly), skips the dependents of a failed job, and needs no second copy of the plan's edges in Ray.
What a submitted job waits for is a free slot in the cluster, not its inputs, and `slots` follows the
cluster's CPUs, so the plan's independent jobs run in parallel across every node.

A job becomes one Ray task asking for its resources: CPUs = its thread budget, GPUs = the config's
`train_gpus` for training jobs, memory = its memory limit. The task does not run the job itself:
Ray's `runtime_env` cannot change the interpreter (toolchain environments may pin another Python, and
they do not contain Ray), so the task, running in the driver's own environment on its node, hands the
request to a dlcompat worker of the job's toolchain environment there — the same `WorkerPool` and
limits as the local executor, so time limits, memory limits and crashes become the same findings.
Workers are kept per Ray worker process and reused by the next task of their environment (importing
a framework costs seconds); a missing toolchain environment is built on the node on first use.

Faults. A dlcompat worker killed from outside is retried by the task on a fresh worker, exactly as
on the local executor; a dead Ray worker or a removed node is retried by Ray (`max_retries`) on the
nodes that remain. Both draw on one budget, the config's `retries` (the task learns from the relay
how many attempts came before it). A job's own failure comes back as an outcome and is never
retried. When the retries run out, the outcome is marked infrastructure: reported, not stored, and
retried by the next run. (Retrying a killed worker inside the task rather than through Ray's
`retry_exceptions` also keeps Ray from printing a notice per retry on the driver's terminal.)

Progress. A tiny actor on the driver's node relays each task's events (its start, epochs, retries)
to the runner's progress display, which is therefore the same as on the local executor. A task's
last call to the relay waits for its answer, and the driver hands a finished job's outcome over only
after draining the relay once more, so no event of a job arrives after its outcome.

Artifacts. With a URL root (`--artifacts s3://…`), the task fetches the job's inputs into the node's
cache, the worker works on that cache as a plain folder (no toolchain environment needs fsspec), and
the task uploads what the job wrote before it returns: the outcome reaches the driver, which alone
writes the results database, only once the job's artifacts are whole on the shared root.

What a cluster node needs: the driver's dlcompat checkout and main environment at the same paths
(`make setup`), with `ray start` run from that environment (`.venv/bin/ray start --address HEAD:6379`),
so Ray's workers run its interpreter; Python for any other toolchain environment the study uses
(built on demand under `$DLCOMPAT_ENVS_DIR`, or `dlcompat env sync` once per node); the artifact root
(`--artifacts`: an fsspec URL with its credentials, or a folder mounted at the same path everywhere);
and `--data-dir`, if given, at the same path (else datasets are downloaded on the node).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from dlcompat.envs.registry import envs_root, get_env, sync_env
from dlcompat.errors import UserError
from dlcompat.study.executors.base import Executor, ProgressSink
from dlcompat.study.executors.local import WorkerPool, failure, run_with_retries
from dlcompat.study.jobs.base import JobOutcome
from dlcompat.study.request import JobRequest

#: keep a local Ray instance small and quiet (set before Ray is imported; a user's own values win)
QUIET_RAY = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DISABLE_IMPORT_WARNING": "1",
    "RAY_DEDUP_LOGS": "0",
}
#: a local instance listens on the loopback interface only, with token authentication (said, not warned); its
#: task workers run at normal priority: Ray starts them at niceness 15 (`worker_niceness`), which a job's worker
#: inherits (its threads, Chromium), so every job would yield to Ray's own daemons and the driver, and its timings
#: would differ from the local executor's (a user's cluster: start its nodes with `RAY_worker_niceness=0`)
LOCAL_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_worker_niceness": "0"}
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20
_POLL_S = 0.2
_RESOURCES_TTL_S = 2.0


def quiet_ray(local: bool) -> None:
    for name, value in {**QUIET_RAY, **(LOCAL_RAY if local else {})}.items():
        os.environ.setdefault(name, value)


def local_cluster_token() -> None:
    """Make Ray's authentication token (~/.ray/auth_token) where token authentication is on and there is none.

    `ray.init` makes it for a local instance, but a cluster started node by node (`ray.cluster_utils.Cluster`, the
    tests' and benchmarks' harness) only reads it, and its first node fails on a machine where Ray never ran."""
    from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled

    ensure_token_if_auth_enabled(None, create_token_if_missing=True)


# --- on the node: what a task runs ------------------------------------------------------------------

_NODE_POOL: WorkerPool | None = None


def node_pool() -> WorkerPool:
    """This Ray worker process's dlcompat workers: one live at a time, reused by its next task of the same env."""
    global _NODE_POOL
    if _NODE_POOL is None:
        log_dir = Path(os.environ.get("DLCOMPAT_WORKER_LOGS", Path(tempfile.gettempdir()) / "dlcompat-ray-workers"))
        _NODE_POOL = WorkerPool(capacity=1, log_dir=log_dir)
        atexit.register(_NODE_POOL.close)
    return _NODE_POOL


def ensure_env(name: str) -> None:
    """Build toolchain environment `name` on this node if it is missing (once: other tasks wait for it)."""
    env = get_env(name)
    if env.exists():
        return
    root = envs_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.sync-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not env.exists():
            sync_env(name, root / f"{name}-sync.log")


def run_on_node(request: JobRequest, relay: Any, token: str) -> dict[str, Any]:
    """The Ray task: run `request` in a worker of its toolchain environment on this node; the outcome as a dict."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    placement = {"node_id": node, "host": socket.gethostname()}
    try:
        attempt = int(ray.get(relay.started.remote(token, node, placement["host"]), timeout=30))
    except Exception as exc:  # the relay is only for the display and the budget: never fail a job over it
        attempt, placement["relay_error"] = 1, f"{type(exc).__name__}: {str(exc)[:200]}"

    def progress(event: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            relay.push.remote(token, event)

    variables = {"DLCOMPAT_RAY_NODE": node}
    if "CUDA_VISIBLE_DEVICES" in os.environ:  # what Ray gave this task: part of the worker's identity
        variables["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    ensure_env(request.env)
    # what Ray's own retries of this task (a lost Ray worker or node) left of the job's budget
    budget = max(0, request.retries - (max(attempt, 1) - 1))
    # a GPU job gets a fresh worker, so no idle worker keeps holding GPU memory Ray gave to another task
    outcome = run_with_retries(node_pool(), request.replace(retries=budget), progress, variables,
                               reuse=not request.gpus)
    outcome.environment = {**outcome.environment, "ray": {**placement, "attempt": attempt}}
    with contextlib.suppress(Exception):  # an actor runs one caller's calls in order: every event is in before this
        ray.get(relay.push.remote(token, {"finished": attempt}), timeout=10)
    return outcome.to_dict()


class ProgressRelay:
    """An actor on the driver's node: tasks push events to it, the driver drains them every 0.2 s."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.attempts: dict[str, int] = {}

    def started(self, token: str, node: str, host: str) -> int:
        """A task began (again, after Ray retried it): its attempt number, from 1."""
        attempt = self.attempts.get(token, 0) + 1
        self.attempts[token] = attempt
        if attempt > 1:
            self.events.append((token, {"retry": attempt - 1, "reason": "its Ray worker or node was lost"}))
        self.events.append((token, {"started": attempt, "node": node, "host": host}))
        return attempt

    def push(self, token: str, event: dict[str, Any]) -> None:
        self.events.append((token, event))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        events, self.events = self.events, []
        return events


# --- on the driver ----------------------------------------------------------------------------------


class RayExecutor(Executor):
    """`address`: an existing cluster (`host:port`, `auto`); None starts a local Ray instance (stopped on close).

    If Ray is already initialised in this process (a test harness, a notebook), that connection is used
    and left open. `max_slots` caps the jobs in flight (default: the cluster's CPUs over the thread budget).
    """

    def __init__(self, address: str | None = None, max_slots: int | None = None, log_dir: Path | None = None,
                 init_options: dict[str, Any] | None = None) -> None:
        quiet_ray(local=address is None)
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
            if address is None:
                options.update(address="local", include_dashboard=False,
                               object_store_memory=LOCAL_OBJECT_STORE_BYTES)
                if log_dir is not None:  # the local instance's workers inherit this: logs beside the study
                    os.environ["DLCOMPAT_WORKER_LOGS"] = str(log_dir)
            else:
                options.update(address=address)
            try:
                ray.init(**{**options, **(init_options or {})})
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise UserError(f"cannot connect to {where} ({str(exc).strip().splitlines()[0][:200]}): start it "
                                "(`ray start --head` on its head node) or pass the right --address") from exc
            self._owns = True
        self.max_slots = max_slots
        self._threads_hint = 1
        self._resources: tuple[float, float, list[dict[str, float]]] = (0.0, 1.0, [])
        self._task = ray.remote(run_on_node)
        # pinned to the driver's node, which lives as long as the driver (a soft preference was seen to
        # land on another node, and to die with it); restarted there if its process dies
        here = ray.get_runtime_context().get_node_id()
        self._relay = ray.remote(ProgressRelay).options(
            num_cpus=0, max_restarts=-1, max_task_retries=-1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
        self._lock = threading.Lock()
        self._sinks: dict[str, ProgressSink] = {}
        self._refs: dict[str, Any] = {}
        self._finished: list[tuple[Future[Any], Future[JobOutcome], JobRequest, str]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="dlcompat-ray-progress", daemon=True)
        self._poller.start()

    # --- capacity -----------------------------------------------------------------------------------
    def _cluster(self) -> tuple[float, list[dict[str, float]]]:
        """(total CPUs, each live node's resources), refreshed every 2 s."""
        stamp, cpus, nodes = self._resources
        if time.monotonic() - stamp > _RESOURCES_TTL_S:
            nodes = [n["Resources"] for n in self._ray.nodes() if n.get("Alive")]
            cpus = sum(n.get("CPU", 0.0) for n in nodes)
            self._resources = (time.monotonic(), cpus, nodes)
        return cpus, nodes

    @property  # type: ignore[override]
    def slots(self) -> int:
        cpus, _ = self._cluster()
        slots = max(1, int(cpus // self._threads_hint))
        return min(slots, self.max_slots) if self.max_slots else slots

    @staticmethod
    def options(request: JobRequest) -> dict[str, Any]:
        """The Ray task options of a job: its resources and its retry policy."""
        opts: dict[str, Any] = {"num_cpus": max(1, request.threads), "num_gpus": float(request.gpus),
                                "max_retries": request.retries}
        if request.memory_limit_mb:
            opts["memory"] = int(request.memory_limit_mb * 2**20)
        return opts

    def _unplaceable(self, opts: dict[str, Any]) -> str:
        """Why no live node could ever run a task with these options ("" when one can)."""
        wants = {"CPU": opts["num_cpus"], "GPU": opts["num_gpus"], "memory": opts.get("memory", 0)}
        _, nodes = self._cluster()
        if any(all(node.get(k, 0.0) >= v for k, v in wants.items() if v) for node in nodes):
            return ""
        asked = ", ".join(f"{v:g} {k}" if k != "memory" else f"{v / 2**20:.0f} MB memory"
                          for k, v in wants.items() if v)
        return f"no node of the Ray cluster offers what this job asks for ({asked})"

    # --- jobs ---------------------------------------------------------------------------------------
    def submit(self, request: JobRequest, progress: ProgressSink) -> Future[JobOutcome]:
        future: Future[JobOutcome] = Future()
        opts = self.options(request)
        self._threads_hint = max(self._threads_hint, opts["num_cpus"])
        problem = self._unplaceable(opts)
        if problem:
            self._resources = (0.0, 1.0, [])  # look again next time: a node may have joined
            future.set_result(failure(request, problem, infrastructure=True))
            return future
        token = f"{(request.key or 'job')[:16]}-{uuid.uuid4().hex[:8]}"
        ref = self._task.options(**opts).remote(request, self._relay, token)
        with self._lock:
            self._sinks[token] = progress
            self._refs[token] = ref
        ref.future().add_done_callback(lambda done: self._finish(done, future, request, token))
        return future

    def _finish(self, done: Future[Any], future: Future[JobOutcome], request: JobRequest, token: str) -> None:
        """Ray's callback: the poller resolves the job after its next drain of the relay."""
        with self._lock:
            self._finished.append((done, future, request, token))
        self._wake.set()

    def _resolve(self, done: Future[Any], future: Future[JobOutcome], request: JobRequest, token: str) -> None:
        with self._lock:
            self._sinks.pop(token, None)
            self._refs.pop(token, None)
        try:
            outcome = JobOutcome.from_dict(done.result())
        except BaseException as exc:  # the job's own failures come back as outcomes: this is the machinery's
            outcome = failure(request, self._explain(exc, request), infrastructure=True)
        future.set_result(outcome)

    @staticmethod
    def _explain(exc: BaseException, request: JobRequest) -> str:
        retries = request.retries
        cause = getattr(exc, "cause", None) or exc
        first = (str(cause).strip().splitlines() or [""])[0][:300]
        return f"infrastructure fault, retries spent ({retries}): the Ray task failed: {type(cause).__name__}: {first}"

    def _poll(self) -> None:
        """Hand the tasks' events to their progress sinks, then the finished jobs' outcomes, until closed."""
        while not self._stop.is_set():
            self._wake.wait(_POLL_S)
            self._wake.clear()
            with self._lock:
                finished, self._finished = self._finished, []
            try:
                events = self._ray.get(self._relay.drain.remote(), timeout=10)
            except Exception:
                events = []
            for token, event in events:
                with self._lock:
                    sink = self._sinks.get(token)
                if sink is not None and "finished" not in event:
                    with contextlib.suppress(Exception):
                        sink(event)
            for item in finished:
                self._resolve(*item)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            refs = list(self._refs.values())
        for ref in refs:  # stop what still runs on the cluster (its dlcompat workers follow their Ray workers)
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            self._ray.kill(self._relay)
        self._poller.join(timeout=5)
        if self._owns:
            self._ray.shutdown()

