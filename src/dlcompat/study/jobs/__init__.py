"""Job kinds by name. Each maps to the module and function that run it, imported only inside the worker."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: job kind -> "module:function"; bump a kind's version when its results would change, so old keys miss
JOB_KINDS: dict[str, tuple[str, int]] = {
    "dataset": ("dlcompat.study.jobs.dataset:run", 1),
    "train": ("dlcompat.study.jobs.train:run", 1),
    "convert": ("dlcompat.study.jobs.convert:run", 1),
    "evaluate": ("dlcompat.study.jobs.evaluate:run", 1),
    "compare": ("dlcompat.study.jobs.compare:run", 1),
    "probe": ("dlcompat.study.jobs.probe:run", 1),
    "reproduce": ("dlcompat.study.jobs.reproduce:run", 2),
    "unavailable": ("dlcompat.study.jobs.unavailable:run", 1),
    "attack": ("dlcompat.study.jobs.attack:run", 1),
    "transfer": ("dlcompat.study.jobs.transfer:run", 1),
    # fault injection for the executor tests only (segfault, hang, memory, ...); never planned
    "fault": ("dlcompat.study.jobs.fault:run", 1),
}


def job_function(kind: str) -> Callable[[Any], None]:
    target, _version = JOB_KINDS[kind]
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)


def job_version(kind: str) -> int:
    return JOB_KINDS[kind][1]
