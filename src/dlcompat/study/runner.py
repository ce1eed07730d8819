"""The study runner: plan, skip what the store has, run the rest on an executor, write each result once.

The runner is the single writer of the results database. Jobs whose key is stored are not run again;
a job whose upstream failed is skipped (not stored, so it runs once its upstream succeeds) unless it
tolerates that upstream's failure (`Job.tolerates`, e.g. a transfer job and one of its attacks); every
finished job is stored with its measurements in one transaction the moment it completes.

The runner is the one scheduler of every executor: it submits a job once its inputs are stored, up to
the executor's `slots` at a time, so a Ray cluster runs the plan's independent jobs in parallel while
the driver keeps the store exact. A job the machinery lost (its worker or node killed, retries spent)
is reported, not stored: the next run tries it again. While it works the driver records which jobs
run and refreshes a heartbeat, for `dlcompat status` in another terminal.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dlcompat import __version__
from dlcompat.converters.graph import converter
from dlcompat.envs.registry import get_env, probe_modules, sync_env, sync_envs
from dlcompat.errors import ConfigError, DataError, FrameworkUnavailableError
from dlcompat.frameworks.registry import framework_entry
from dlcompat.runtimes.base import runtime_entry
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.check_plan import build_check_plan
from dlcompat.study.config import StudyConfig, config_to_toml
from dlcompat.study.dag import Job, Plan
from dlcompat.study.executors.base import Executor
from dlcompat.study.jobs.base import JobOutcome
from dlcompat.study.plan import build_plan, planned_frameworks
from dlcompat.study.progress import ProgressView
from dlcompat.study.request import JobRequest
from dlcompat.study.worker_family import worker_family


@dataclass
class RunSummary:
    run_id: str
    out_dir: str
    database: str
    total: int = 0
    cached: int = 0
    ran: int = 0
    ok: int = 0
    failed: int = 0
    unavailable: int = 0
    skipped: int = 0
    #: jobs lost to infrastructure faults after their retries (not stored: a re-run tries them again)
    lost: int = 0
    duration_s: float = 0.0
    #: one line per job of this invocation that did not end ok (`label: status: error`), and per job lost
    findings: list[str] = field(default_factory=list)

    #: what marks a finding line as a lost job's (see `execute_plan`)
    LOST_MARK: ClassVar[str] = ": not stored, run again to retry: "

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self) -> str:
        """`run 3f2a9c1b: 412 jobs, 0 from the store, 412 run (380 ok, 12 failed, 20 unavailable), 5 skipped after
        a failure, in 61.2 s`: this invocation's jobs by how they ended."""
        lost = f", {self.lost} lost to infrastructure faults" if self.lost else ""
        return (f"run {self.run_id}: {self.total} jobs, {self.cached} from the store, {self.ran} run ({self.ok} ok, "
                f"{self.failed} failed, {self.unavailable} unavailable), {self.skipped} skipped after a failure"
                f"{lost}, in {self.duration_s:.1f} s")

    def lost_findings(self) -> list[str]:
        """The finding lines of jobs lost to infrastructure faults: they are not in the store, so only here."""
        return [line for line in self.findings if self.LOST_MARK in line]


def resolve_frameworks(config: StudyConfig, log: Path | None = None,
                       say: Callable[[str], None] = lambda _m: None) -> dict[str, str]:
    """Check each framework the study trains; return {framework: reason} for those not usable here.

    A framework named explicitly must be installed (else FrameworkUnavailableError: exit 2); with
    `frameworks = ["all"]`, one that is not becomes a recorded `unavailable` finding instead.
    Missing toolchain environments are built on demand.
    """
    explicit = config.frameworks != ["all"]
    unavailable: dict[str, str] = {}
    for name in planned_frameworks(config):
        entry = framework_entry(name)
        try:
            if not get_env(entry.env).exists():
                say(f"building toolchain environment {entry.env!r} for {name} (once; log: {log})")
                sync_env(entry.env, log)
            if probe_modules(entry.env, [entry.module]).get(entry.module) is None:
                raise FrameworkUnavailableError(
                    f"framework {name!r} needs the Python module {entry.module!r}, which is not installed in "
                    f"environment {entry.env!r}: {entry.install}")
        except FrameworkUnavailableError as exc:
            if explicit:
                raise
            unavailable[name] = str(exc)
    return unavailable


def requirements(config: StudyConfig) -> list[tuple[str, str, str, str]]:
    """(what, env, module, how to install) for every converter and runtime the config names."""
    needs = []
    for name in config.runtimes:
        rt = runtime_entry(name)
        needs.append((f"runtime {name!r}", rt.env, rt.module, rt.install))
    for name in config.converters:
        edge = converter(name)
        needs.append((f"converter {name!r}", edge.env, edge.module, f"`dlcompat env sync {edge.env}`"))
    return needs


def needed_envs(config: StudyConfig) -> list[str]:
    """The toolchain environments a study's frameworks, converters and runtimes run in (known before planning)."""
    envs = [framework_entry(name).env for name in planned_frameworks(config)]
    return sorted({*envs, *(env for _, env, _, _ in requirements(config))})


def preflight(config: StudyConfig, plan: Plan, log: Path | None = None,
              say: Callable[[str], None] = lambda _m: None) -> None:
    """Build missing toolchain environments, then make sure each converter and runtime is installed."""
    failed = sync_envs(sorted(plan.envs()), log, say)
    if failed:
        name, error = next(iter(failed.items()))
        raise FrameworkUnavailableError(error if name in error else f"environment {name!r}: {error}")
    by_env: dict[str, list[tuple[str, str, str]]] = {}
    for what, env, module, install in requirements(config):
        by_env.setdefault(env, []).append((what, module, install))
    for env, needs in by_env.items():
        versions = probe_modules(env, [m for _, m, _ in needs])
        for what, module, install in needs:
            if versions.get(module) is None:
                raise FrameworkUnavailableError(
                    f"{what} needs the Python module {module!r}, which is not installed in environment "
                    f"{env!r}: {install}"
                )


def run_environment(config: StudyConfig) -> dict[str, Any]:
    """What a reader needs to judge and reproduce the run: machine, interpreter, versions, threads, seeds."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    modules = ["torch", "onnx", "onnxruntime", "onnxscript", "numpy", "sklearn", "sqlalchemy", "pydantic"]
    return {
        "dlcompat": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "packages": {m: v for m, v in probe_modules("main", modules).items() if v},
        "threads": config.threads,
        "seeds": config.seeds,
        "latency_method": config.latency.model_dump(),
        "blas": blas_libraries(),
    }


def blas_libraries() -> str:
    """The BLAS libraries NumPy loaded (threadpoolctl reads them from the process), and the one that PyTensor
    and Theano link their C code against (`blas__ldflags`, the system's OpenBLAS)."""
    from threadpoolctl import threadpool_info

    loaded = [f"{lib['internal_api']} {lib.get('version') or ''} ({Path(lib['filepath']).name}, "
              f"{lib.get('num_threads')} threads)" for lib in threadpool_info() if lib.get("user_api") == "blas"]
    core = os.environ.get("OPENBLAS_CORETYPE")
    return "; ".join([*(loaded or ["NumPy: no BLAS library found loaded"]),
                      "PyTensor and Theano: -lopenblas (Debian's libopenblas)",
                      *([f"OPENBLAS_CORETYPE={core}"] if core else [])])


#: job kinds that train, and so get the config's `train_gpus` on Ray
TRAINING_KINDS = ("train", "reproduce")
#: seconds between the driver's heartbeats in the results database
HEARTBEAT_S = 5.0


def job_request(job: Job, inputs: dict[str, dict[str, Any]], artifacts: ArtifactStore,
                config: StudyConfig) -> JobRequest:
    """What an executor needs to run a job; limits come from the job's runtime settings (its time limit among
    them), else the config."""
    limits: dict[str, Any] = {"memory_limit_mb": config.memory_limit_mb, "retries": config.retries,
                              "gpus": config.train_gpus if job.kind in TRAINING_KINDS else 0.0}
    limits.update({k: v for k, v in job.runtime.items() if k in (*limits, "timeout_s")})
    params = {**job.params, **{k: v for k, v in job.runtime.items() if k == "data_dir"}}
    return JobRequest(kind=job.kind, params=params, inputs=inputs, artifacts_root=artifacts.location, env=job.env,
                      threads=job.threads, key=job.key, label=job.label, family=worker_family(job.kind, job.params),
                      **limits)


#: how a job ends without being stored: its dependents cannot run, whatever they tolerate
NOT_STORED = ("skipped", "lost")


def _blocked(job: Job, status: dict[str, str | None]) -> bool:
    """Whether a job whose upstream jobs have all finished must be skipped: an upstream did not end ok, and
    the job does not tolerate that (`Job.tolerates`: a stored failed or unavailable upstream of that role)."""
    return any(status[dep] != "ok" and (role not in job.tolerates or status[dep] in NOT_STORED)
               for role, dep in job.deps.items())


def _upstream(store: ResultStore, key: str, outcome: str) -> dict[str, Any]:
    """What a job gets for a tolerated upstream that did not end ok: how it ended, and why."""
    record = store.job(key) or {}
    return {"upstream": {"status": outcome, "error": record.get("error", ""), "label": record.get("label", "")}}


def _followers(plan: Plan, keys: list[str]) -> dict[str, list[str]]:
    """{job: the jobs among `keys` that follow it}: a job that reads what another just loaded (a transfer job, its
    model's evaluation: `runtimes/parking.py`) goes next once that one ends ok, so that the pool most likely hands
    it the same worker, with the model still loaded."""
    out: dict[str, list[str]] = {}
    for key in keys:
        if plan.jobs[key].runtime.get("follows"):
            out.setdefault(plan.jobs[key].runtime["follows"], []).append(key)
    return out


def _promote(pending: list[str], keys: list[str]) -> None:
    """Move `keys` that are still pending to the front of `pending`."""
    for key in keys:
        if key in pending:
            pending.remove(key)
            pending.insert(0, key)


def execute_plan(plan: Plan, store: ResultStore, artifacts: ArtifactStore, executor: Executor,
                 view: ProgressView, summary: RunSummary) -> None:
    jobs = plan.jobs
    done = store.finished_keys(list(jobs))
    status = store.job_statuses(list(done))
    summary.total, summary.cached = len(jobs), len(done)
    view.start(len(jobs), len(done))
    pending = plan.by_priority([k for k in jobs if k not in done])
    followers = _followers(plan, pending)
    running: dict[Future[JobOutcome], str] = {}
    last_beat = time.monotonic()
    outputs_cache: dict[str, dict[str, Any]] = {}

    def outputs_of(key: str) -> dict[str, Any]:
        if key not in outputs_cache:
            outputs_cache[key] = store.job(key)["outputs"]  # type: ignore[index]
        return outputs_cache[key]

    while pending or running:
        progressed = False
        for key in list(pending):
            job = jobs[key]
            dep_status = [status.get(d) for d in job.deps.values()]
            if any(s is None for s in dep_status):
                continue  # an upstream job has not finished yet
            pending.remove(key)
            progressed = True
            if _blocked(job, status):
                summary.skipped += 1
                status[key] = "skipped"
                view.job_done(job.label, "skipped")
                continue
            if len(running) >= executor.slots:
                pending.insert(0, key)
                break
            inputs = {role: outputs_of(dep) if status[dep] == "ok" else _upstream(store, dep, status[dep])
                      for role, dep in job.deps.items()}
            task = view.job_started(job.label)
            store.job_started(summary.run_id, key, job.label, job.kind)
            request = job_request(job, inputs, artifacts, plan.config)
            running[executor.submit(request, lambda e, t=task: view.job_event(t, e))] = key
        if not running:
            if pending and not progressed:
                raise RuntimeError("the plan has a cycle or a job whose dependency is missing")
            continue
        finished, _ = wait(list(running), timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
        if time.monotonic() - last_beat >= HEARTBEAT_S:
            store.heartbeat(summary.run_id)
            last_beat = time.monotonic()
        for future in finished:
            key = running.pop(future)
            job = jobs[key]
            outcome = future.result()
            if outcome.user_error:  # bad input, not a finding: stop, store nothing, say what to do
                raise DataError(outcome.error)
            if outcome.infrastructure:  # the machinery's fault, not the job's: not stored, the next run retries
                store.job_stopped(summary.run_id, key)
                status[key] = "lost"
                summary.lost += 1
                summary.findings.append(f"{job.label}: not stored, run again to retry: {outcome.error[:300]}")
                view.job_done(job.label, "lost")
                continue
            store.record_job(summary.run_id, key, job.kind, job.env, job.label, job.params, job.deps, outcome)
            status[key] = outcome.status
            if outcome.status == "ok":
                _promote(pending, followers.get(key, []))
            summary.ran += 1
            setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
            if outcome.status != "ok":
                summary.findings.append(f"{job.label}: {outcome.status}: {outcome.error.splitlines()[0][:300]}")
            view.job_done(job.label, outcome.status)


def worker_kinds(plan: Plan, store: ResultStore) -> int:
    """How many kinds of worker (`executors.local.pool_key`) the plan's jobs not yet stored need."""
    stored = store.finished_keys(list(plan.jobs))
    return len({(job.env, job.threads, worker_family(job.kind, job.params))
                for key, job in plan.jobs.items() if key not in stored})


def default_local_slots(threads: int) -> int:
    """Jobs at once on this machine by default: as many as its cores hold at `threads` each. Each running job
    claims cores of its own (executors/cores.py), so no two jobs' figures share a core."""
    from dlcompat.study.executors.cores import available_cores

    return max(1, len(available_cores()) // max(1, threads))


def make_executor(name: str, jobs: int | None, log_dir: Path, address: str | None = None,
                  threads: int = 1, worker_kinds: int | None = None) -> Executor:
    """`jobs`: jobs at once (local: default one per `threads` cores; Ray: default every CPU of the cluster);
    `worker_kinds`: how many kinds of worker the study's jobs need (local: one of each is kept while memory allows)."""
    if address and name != "ray":
        raise ConfigError("--address names a Ray cluster: use it with --executor ray")
    if name == "inline":
        from dlcompat.study.executors.inline import InlineExecutor

        return InlineExecutor()
    if name == "ray":
        from dlcompat.study.executors.ray import RayExecutor

        return RayExecutor(address=address, max_slots=jobs, log_dir=log_dir)
    from dlcompat.study.executors.local import IDLE_WORKERS, LocalExecutor, idle_workers_for

    slots = jobs or default_local_slots(threads)
    idle = IDLE_WORKERS if worker_kinds is None else idle_workers_for(worker_kinds, slots)
    return LocalExecutor(slots=slots, log_dir=log_dir, idle_workers=idle)


def run_study(config: StudyConfig, out_dir: Path, *, data_dir: str | None = None, executor: str = "local",
              jobs: int | None = None, view: ProgressView | None = None, database: str | None = None,
              address: str | None = None, artifacts: str | None = None) -> RunSummary:
    """Run a study. `artifacts`: a folder or fsspec URL every node can reach (default OUT/artifacts);
    `address`: an existing Ray cluster (with executor "ray"; none starts a local Ray instance)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    view = view or ProgressView(enabled=False)
    log = out_dir / "env-sync.log"
    sync_envs(needed_envs(config), log, view.say)  # every missing one at once; a failure is judged below
    unavailable = resolve_frameworks(config, log, view.say)
    plan = build_check_plan(config) if config.check is not None else build_plan(config, data_dir, unavailable)
    preflight(config, plan, log, view.say)
    url = database or database_url(out_dir)
    store = ResultStore(url)
    artifact_store = ArtifactStore(artifacts or out_dir / "artifacts")
    artifact_store.clean_tmp()
    if executor == "ray" and address and artifact_store.remote is None:
        view.say(f"note: artifacts go to {artifact_store.location}, a folder of this machine: every node of the "
                 "cluster must see it at that path (a shared mount), else pass --artifacts s3://… or another URL")
    summary = RunSummary(run_id=plan.run_id, out_dir=str(out_dir), database=url)
    store.start_run(plan.run_id, config.name, config_to_toml(config), run_environment(config), list(plan.jobs))
    start = time.perf_counter()
    final = "interrupted"
    try:
        with make_executor(executor, jobs, out_dir / "logs", address, config.threads,
                           worker_kinds(plan, store)) as ex, view:
            store.heartbeat(plan.run_id, executor=f"{executor} {address}" if address else executor)
            execute_plan(plan, store, artifact_store, ex, view, summary)
        final = "complete"
    finally:
        summary.duration_s = time.perf_counter() - start
        store.finish_run(plan.run_id, final, summary.to_dict())
    return summary
