"""A job request: everything an executor needs to run one planned job, built once by the runner.

The runner turns a planned `Job` and its inputs' outputs into a `JobRequest` (`runner.job_request`); the
inline, local and Ray executors and the worker read its fields, so no executor restates a default. To a
worker it travels as one JSON line (`to_json`, `from_json`): the keys of the dict are the field names.

Standard library only: the worker reads it in every toolchain environment.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

#: retries of an infrastructure fault (a killed worker, a lost Ray node) when nothing says otherwise (also the
#: study config's default `retries`)
DEFAULT_RETRIES = 2
#: a job's time limit in seconds when nothing says otherwise (also the study config's default `timeout_s`)
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class JobRequest:
    """One job to run: what it is (kind, params, inputs), where it runs (env, threads) and its limits."""

    kind: str
    params: dict[str, Any]
    #: the outputs of the jobs it reads from, by role
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the artifact store's root: a folder, or an fsspec URL every node can reach
    artifacts_root: str = ""
    env: str = "main"
    #: the job's thread budget: its worker's thread settings, and the cores it claims
    threads: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: resident memory limit of its worker in MB (0: none)
    memory_limit_mb: float = 0.0
    retries: int = DEFAULT_RETRIES
    #: GPUs a Ray task of this job asks for
    gpus: float = 0.0
    key: str = ""
    label: str = ""
    #: the jobs it may share a worker process with (`study.worker_family`); "" for any
    family: str = ""

    @property
    def cell(self) -> dict[str, Any]:
        return self.params.get("cell", {})

    def replace(self, **changes: Any) -> JobRequest:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRequest:
        """The request a dict of its fields describes (missing ones take their defaults, unknown ones are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, line: str) -> JobRequest:
        return cls.from_dict(json.loads(line))
