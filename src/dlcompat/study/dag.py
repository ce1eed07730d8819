"""The study's DAG: a `Job` keyed by the hash of all it depends on, and the `Plan` that holds jobs in order.

A job's key covers its kind (and that kind's version), its parameters, the toolchain environment it
runs in (name and pinned requirements), and the keys of the jobs it reads from. Two jobs with the
same key are the same job: the plan holds it once, and a store that already has it never runs it
again. That is what makes a re-run free and a killed study resumable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlcompat.envs.registry import get_env
from dlcompat.study.jobs import job_version

if TYPE_CHECKING:  # the config needs pydantic, which a worker's environment may lack (jobs read this module)
    from dlcompat.study.config import StudyConfig


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Job:
    """One node of the plan: a job kind run with `params` in environment `env`, reading the outputs of `deps`."""

    kind: str
    env: str
    params: dict[str, Any]
    deps: dict[str, str]  # role -> key of the job whose outputs this one reads
    label: str
    #: settings that do not change the result (where data is read from, time limits): not hashed
    runtime: dict[str, Any] = field(default_factory=dict)
    #: roles whose upstream may have ended stored as failed or unavailable: the job runs anyway and gets
    #: {"upstream": {"status", "error", "label"}} for that role instead of its outputs (see the runner)
    tolerates: tuple[str, ...] = ()
    key: str = ""

    @property
    def threads(self) -> int:
        """The job's thread budget: its `threads` parameter (part of its key), 1 for a job that names none."""
        return int(self.params.get("threads", 1))

    def __post_init__(self) -> None:
        if not self.key:
            self.key = _digest({"kind": self.kind, "version": job_version(self.kind), "env": self.env,
                                "env_lock": get_env(self.env).lock_hash(), "params": self.params,
                                "deps": self.deps})


@dataclass
class Plan:
    """A study's jobs by key, in topological order (each after the jobs it reads from)."""

    config: StudyConfig
    jobs: dict[str, Job] = field(default_factory=dict)  # key -> job, in topological order

    def add(self, job: Job) -> str:
        missing = [k for k in job.deps.values() if k not in self.jobs]
        if missing:
            raise ValueError(f"job {job.label} depends on jobs not in the plan")
        self.jobs.setdefault(job.key, job)
        return job.key

    @property
    def run_id(self) -> str:
        """Stable id of this study: the same config (and code versions) gives the same run."""
        return _digest({"name": self.config.name, "jobs": sorted(self.jobs)})[:12]

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {k: [] for k in self.jobs}
        for key, job in self.jobs.items():
            for dep in job.deps.values():
                out[dep].append(key)
        return out

    def envs(self) -> set[str]:
        return {job.env for job in self.jobs.values()}

    def by_priority(self, keys: list[str]) -> list[str]:
        """`keys` with the jobs that unblock the most others first (every job downstream of a job, counted
        once), then in plan order: a train job starts before the evaluations of models already trained, so
        that both slots have work until the end instead of one waiting on a late training."""
        below: dict[str, set[str]] = {}
        dependents = self.dependents()
        for key in reversed(self.jobs):  # the plan is in topological order: dependents come later
            below[key] = set(dependents[key]).union(*(below[d] for d in dependents[key]))
        order = {key: i for i, key in enumerate(self.jobs)}
        return sorted(keys, key=lambda k: (-len(below[k]), order[k]))
