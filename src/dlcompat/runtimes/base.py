"""Runtimes load a deployed artifact and run it (Polygraphy's habit: a runner with activate -> infer -> deactivate).

A runner never measures: `metrics.latency` times its `predictor`, and comparisons live in
`metrics.inconsistency`. Images arrive as float32 NHWC in [0, 1]; the runner converts them to the
artifact's own input layout once, before any clock starts.
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlcompat.errors import ConfigError


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """float32 NHWC -> the artifact's layout, contiguous."""
    if layout == "NCHW":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(x)


class Runner(ABC):
    name: ClassVar[str]

    def __init__(self, path: Path, *, input_layout: str = "NHWC", threads: int = 1, **options: Any) -> None:
        self.path = Path(path)
        self.input_layout = input_layout
        self.threads = threads
        self.options = options

    @abstractmethod
    def activate(self) -> None:
        """Load the artifact and create the session (timed by the caller as load time)."""

    @abstractmethod
    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        """A zero-argument call running one inference on `x`, inputs already placed."""

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """Logits for float32 NHWC images."""

    def deactivate(self) -> None:  # noqa: B027  (optional hook)
        """Release the session."""

    def reusable(self) -> bool:
        """Whether this active runner may serve another job's calls (`runtimes/parking.py`)."""
        return True

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Facts to record: runtime version, providers or delegates actually used, threads in effect."""

    def __enter__(self) -> Runner:
        try:
            self.activate()
        except BaseException:  # a failed load is a finding: what it made so far (temp folders, sessions) goes
            with contextlib.suppress(Exception):
                self.deactivate()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()


@dataclass(frozen=True)
class RuntimeEntry:
    name: str
    runner: str  # "module:Class"
    env: str
    accepts: str  # artifact format
    module: str  # the import that proves it is installed
    install: str
    platform: str  # server | mobile | web | framework
    description: str
    #: for a migration runtime (a converter that lands in another framework): that framework
    framework: str = ""
    #: ways to run it, each its own evaluation (a browser runtime's backends: "wasm", "webgpu", ...); "" for one
    variants: tuple[str, ...] = ("",)


_RUNTIMES: dict[str, RuntimeEntry] = {}


def register_runtime(entry: RuntimeEntry) -> None:
    _RUNTIMES[entry.name] = entry


def runtime_names(include_framework: bool = False) -> list[str]:
    """Runtimes a study config may name (the framework runtimes `native`/`weights` are the planner's own)."""
    _load_builtin()
    return [name for name, entry in _RUNTIMES.items() if include_framework or entry.platform != "framework"]


def runtime_entry(name: str) -> RuntimeEntry:
    _load_builtin()
    if name not in _RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r}: choose one of {', '.join(_RUNTIMES)}")
    return _RUNTIMES[name]


def runner_class(name: str) -> type[Runner]:
    module, cls = runtime_entry(name).runner.split(":")
    return getattr(importlib.import_module(module), cls)


def _load_builtin() -> None:
    from dlcompat.runtimes import catalog  # noqa: F401  (registers the built-in runtimes)
