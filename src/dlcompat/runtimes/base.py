"""Runtimes load a deployed artifact and run it (Polygraphy's habit: a lazy loader builds the session, a
runner with activate -> infer -> deactivate runs it).

A runner never measures: `metrics.latency` times its `predictor`, and comparisons live in
`metrics.inconsistency`. Images arrive as float32 NHWC in [0, 1]; the runner converts them to the
artifact's own input layout once, before any clock starts. Where the runtime allows it, a runner also
hands back intermediate tensors by their names in the artifact (`Runner.intermediates`), for locating
where two formats of one model diverge.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlcompat.frameworks.base import Unavailable
from dlcompat.registry import Registry, resolve


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """float32 NHWC -> the artifact's layout, contiguous."""
    if layout == "NCHW":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(x)


class Loader(ABC):
    """A lazy callable that builds a runtime's session (Polygraphy's loaders).

    Making a loader reads nothing; each call loads the artifact and returns a new session (an
    `InferenceSession`, an interpreter, a page), and a call that fails releases what it made so far.
    """

    @abstractmethod
    def __call__(self) -> Any:
        """A new session of the artifact."""


class Runner(ABC):
    """Runs one artifact: `activate` calls its loader once, `infer` runs the session, `deactivate` releases it.

    Subclasses say which loader builds their session (`loader`), how to run it (`predictor`, `infer`) and
    what to record (`info`); the base class keeps the life cycle. A runner that can hand back intermediate
    tensors overrides `tensor_names` and `intermediates`; the others say why not in `no_intermediates`.
    """

    name: ClassVar[str]
    #: one sentence: why this runtime cannot hand back intermediate tensors
    no_intermediates: ClassVar[str] = "this runtime does not expose the tensors between its input and its output"

    def __init__(self, path: Path, *, input_layout: str = "NHWC", threads: int = 1, **options: Any) -> None:
        self.path = Path(path)
        self.input_layout = input_layout
        self.threads = threads
        self.options = options
        #: what the loader built, while active; None otherwise
        self.session: Any = None

    @abstractmethod
    def loader(self) -> Loader:
        """The loader of this runner's session, from the artifact path and the options (nothing loads yet)."""

    # ------------------------------------------------------------------ life cycle

    @property
    def is_active(self) -> bool:
        return self.session is not None

    def activate(self) -> None:
        """Load the artifact and create the session (timed by the caller as load time)."""
        if self.is_active:
            raise RuntimeError(f"{self.name} runner is already active: deactivate it first")
        self.session = self.loader()()

    def deactivate(self) -> None:
        """Release the session; safe to call twice, and after a failed `activate`."""
        session, self.session = self.session, None
        if session is not None:
            self.release(session)

    def release(self, session: Any) -> None:  # noqa: B027  (optional hook)
        """Free what `session` holds beyond memory (temporary folders, processes)."""

    def reusable(self) -> bool:
        """Whether this active runner may serve another job's calls (`runtimes/parking.py`)."""
        return True

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

    # ------------------------------------------------------------------ running

    @abstractmethod
    def predictor(self, x: np.ndarray) -> Callable[[], Any]:
        """A zero-argument call running one inference on `x`, inputs already placed."""

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """Logits for float32 NHWC images."""

    def tensor_names(self) -> list[str]:
        """Names of the intermediate tensors `intermediates` can hand back, in the runtime's own naming."""
        raise Unavailable(f"{self.name}: {self.no_intermediates}")

    def intermediates(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The named intermediate tensors for float32 NHWC images: real values (dequantized where the runtime
        quantizes) in the runtime's own layout.

        Computed apart from `infer` and `predictor` (a model copy, a second interpreter), so logits and
        timings stay those of the deployed artifact; names are the runtime's own (`tensor_names`), never mapped.
        """
        raise Unavailable(f"{self.name}: {self.no_intermediates}")

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Facts to record: runtime version, providers or delegates actually used, threads in effect."""


def require_tensors(runner: Runner, names: list[str], known: Iterable[str]) -> None:
    """Check that `runner` has every tensor in `names` (`known`: its `tensor_names()`); `KeyError` naming those
    it lacks."""
    missing = sorted(set(names) - set(known))
    if missing:
        raise KeyError(f"{runner.name} has no tensor {', '.join(map(repr, missing[:5]))}: see tensor_names()")


@dataclass(frozen=True)
class RuntimeEntry:
    """One runtime: its runner, its environment, what it accepts, and the facts the planner and the report read."""

    name: str
    title: str  # how the report writes it, e.g. "ONNX Runtime"
    runner: str  # "module:Class"
    env: str  # "" for a framework runtime: it runs in the environment of the framework whose adapter it uses
    accepts: str  # the model format it runs ("" for `native`: the framework's own file)
    module: str  # the import that proves it is installed
    #: the module whose installed version stands for the runtime ("" where it is not a Python package's)
    package: str
    install: str
    platform: str  # server | mobile | web | migration | framework
    description: str
    #: for a migration runtime (a converter that lands in another framework): that framework
    framework: str = ""
    #: ways to run it, each its own evaluation (a browser runtime's backends: "wasm", "webgpu", ...); "" for one
    variants: tuple[str, ...] = ("",)


#: the built-in runtimes are registered by `dlcompat.runtimes.catalog`
RUNTIMES: Registry[RuntimeEntry] = Registry("runtime", builtins=("dlcompat.runtimes.catalog",))
register_runtime = RUNTIMES.register


def runtime_names(include_framework: bool = False) -> list[str]:
    """Runtimes a study config may name (the framework runtimes `native`/`weights` are the planner's own)."""
    return [entry.name for entry in RUNTIMES if include_framework or entry.platform != "framework"]


def runtime_entry(name: str) -> RuntimeEntry:
    return RUNTIMES.get(name)


def runner_class(name: str) -> type[Runner]:
    return resolve(runtime_entry(name).runner)
