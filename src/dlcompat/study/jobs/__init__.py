"""Job kinds by name. Each maps to the module and function that run it, imported only inside the worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dlcompat.registry import Registry, resolve


@dataclass(frozen=True)
class JobKind:
    """A kind of job: the `"module:function"` that runs it, and its version (part of every job's key)."""

    name: str
    function: str
    #: bump it when the kind's results would change, so that the keys of jobs stored before miss
    version: int = 1


JOB_KINDS: Registry[JobKind] = Registry("job kind")
for _kind in (
    JobKind("dataset", "dlcompat.study.jobs.dataset:run"),
    JobKind("train", "dlcompat.study.jobs.train:run"),
    JobKind("convert", "dlcompat.study.jobs.convert:run"),
    JobKind("migrate", "dlcompat.study.jobs.migrate:run"),
    JobKind("evaluate", "dlcompat.study.jobs.evaluate:run"),
    JobKind("compare", "dlcompat.study.jobs.compare:run"),
    JobKind("probe", "dlcompat.study.jobs.probe:run"),
    JobKind("reproduce", "dlcompat.study.jobs.reproduce:run", version=2),
    JobKind("unavailable", "dlcompat.study.jobs.unavailable:run"),
    JobKind("attack", "dlcompat.study.jobs.attack:run"),
    JobKind("transfer", "dlcompat.study.jobs.transfer:run"),
    JobKind("noise_floor", "dlcompat.study.jobs.noise_floor:run"),
    JobKind("localize", "dlcompat.study.jobs.localize:run"),
    # dlcompat check: the user's images and model file, and the source's own noise floor
    JobKind("images", "dlcompat.study.jobs.images:run"),
    JobKind("import", "dlcompat.study.jobs.import_model:run"),
    JobKind("check_floor", "dlcompat.study.jobs.check_floor:run"),
    # fault injection for the executor tests only (segfault, hang, memory, ...); never planned
    JobKind("fault", "dlcompat.study.jobs.fault:run"),
):
    JOB_KINDS.register(_kind)


def job_function(kind: str) -> Callable[[Any], None]:
    return resolve(JOB_KINDS.get(kind).function)


def job_version(kind: str) -> int:
    return JOB_KINDS.get(kind).version
