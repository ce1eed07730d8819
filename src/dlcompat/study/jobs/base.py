"""What a job is, as the worker sees it: a function of its parameters and its inputs' outputs.

A job function has the signature ``run(ctx: JobContext) -> None``. It reads `ctx.params` and
`ctx.inputs` (the outputs of the jobs it depends on, by role), writes artifacts through
`ctx.artifacts`, records figures with `ctx.measure`, and sets `ctx.outputs` for the jobs after it.
Raising `Unavailable` records the cell as unavailable with the reason; any other exception records
it as failed with the error text. Either way the study goes on, except on the user's input: a `DataError`
(missing or corrupt data) or an `OutputError` (the output folder is full or read-only, or a write failed
with ENOSPC, EDQUOT or EROFS) stops it with that one sentence, and the job is not stored.

Standard library and NumPy only: this module loads in every toolchain environment.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dlcompat.errors import DataError, OutputError
from dlcompat.frameworks.base import Unavailable
from dlcompat.metrics.record import Measurement
from dlcompat.runtimes import parking
from dlcompat.store.artifacts import ArtifactStore, output_errno, output_error
from dlcompat.study.request import JobRequest

#: the fields of `params["cell"]` every measurement of a job inherits
CELL_FIELDS = ("dataset", "model", "framework", "seed", "target", "variant")


@dataclass
class JobContext:
    kind: str
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    artifacts: ArtifactStore
    threads: int = 1
    progress: Callable[[dict[str, Any]], None] = lambda _event: None
    outputs: dict[str, Any] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)

    @classmethod
    def from_request(cls, request: JobRequest, progress: Callable[[dict[str, Any]], None]) -> JobContext:
        """The context of the job `request` describes, its artifacts in the store at the request's root."""
        return cls(kind=request.kind, params=request.params, inputs=request.inputs,
                   artifacts=ArtifactStore(request.artifacts_root), threads=request.threads, progress=progress)

    @property
    def cell(self) -> dict[str, Any]:
        return self.params.get("cell", {})

    def measure(self, metric: str, value: float | None, unit: str = "", *, artifact: str = "",
                method: dict[str, Any] | None = None, **overrides: Any) -> None:
        """Record one figure of this job's cell (`overrides` may set target, variant, status, error)."""
        fields = {k: self.cell.get(k, "" if k != "seed" else None) for k in CELL_FIELDS}
        fields.update(overrides)
        self.measurements.append(
            Measurement(metric=metric, value=None if value is None else float(value), unit=unit,
                        artifact=artifact, method=method or {}, **fields)
        )


@dataclass
class JobOutcome:
    status: str  # ok | failed | unavailable
    error: str = ""
    detail: str = ""  # traceback, for the log; never shown as the finding itself
    outputs: dict[str, Any] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    duration_s: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    #: the job failed on the user's input (missing or corrupt data): the study stops with exit code 2
    user_error: bool = False
    #: the machinery failed, not the job (its worker or node was killed, retries ran out): not stored as a
    #: finding, so the next `dlcompat run` tries it again
    infrastructure: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "detail": self.detail,
            "outputs": self.outputs,
            "measurements": [m.to_dict() for m in self.measurements],
            "duration_s": self.duration_s,
            "environment": self.environment,
            "user_error": self.user_error,
            "infrastructure": self.infrastructure,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobOutcome:
        return cls(
            status=data["status"],
            error=data.get("error", ""),
            detail=data.get("detail", ""),
            outputs=data.get("outputs", {}),
            measurements=[Measurement.from_dict(m) for m in data.get("measurements", [])],
            duration_s=data.get("duration_s", 0.0),
            environment=data.get("environment", {}),
            user_error=data.get("user_error", False),
            infrastructure=data.get("infrastructure", False),
        )


def error_text(exc: BaseException) -> str:
    """One line naming the exception type and its message (the finding's error column)."""
    message = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {message}"


def run_job(fn: Callable[[JobContext], None], ctx: JobContext) -> JobOutcome:
    """Run a job function, turning every exception into a recorded outcome."""
    import time

    if ctx.kind != "transfer":  # only a transfer job may use the model the last evaluation left parked
        parking.release()
    start = time.perf_counter()
    user_error = False
    try:
        fn(ctx)
        status, error, detail = "ok", "", ""
    except (DataError, OutputError) as exc:  # the user's to fix: the study stops with this sentence
        status, error, detail, user_error = "failed", str(exc), traceback.format_exc(), True
    except Unavailable as exc:
        status, error, detail = "unavailable", str(exc), ""
    except Exception as exc:
        status, error, detail = "failed", error_text(exc), traceback.format_exc()
        code = output_errno(exc)  # a write outside the artifact store (a framework's own) hit a full disk
        if code is not None:
            error, user_error = str(output_error(ctx.artifacts.root, code)), True
    measurements = ctx.measurements
    if status != "ok":
        # the failure itself is a row, so the finding shows in the export and the report
        fields = {k: ctx.cell.get(k, "" if k != "seed" else None) for k in CELL_FIELDS}
        measurements = [*measurements, Measurement(metric=ctx.kind, value=None, status=status,  # type: ignore[arg-type]
                                                   error=error, **fields)]
    return JobOutcome(status=status, error=error, detail=detail, outputs=ctx.outputs,
                      measurements=measurements, duration_s=time.perf_counter() - start, user_error=user_error)
