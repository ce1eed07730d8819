"""The tidy measurement row: the one contract between jobs, the store, the report and the export.

Every figure dlcompat produces is one `Measurement`. Later capabilities add rows, never columns:
`target` is the framework or runtime a model was moved to, `variant` a precision, quantization,
exporter or attack setting, `status` one of ok / failed / unavailable, and `method` holds how the
figure was measured (warm-up, repetitions, spread, threads, ...) as a JSON-able dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "failed", "unavailable"]
STATUSES: tuple[str, ...] = ("ok", "failed", "unavailable")

#: Column order of the tidy export. Stable: later issues add rows, not columns.
COLUMNS: tuple[str, ...] = (
    "run",
    "job",
    "kind",
    "dataset",
    "model",
    "framework",
    "seed",
    "target",
    "variant",
    "metric",
    "value",
    "unit",
    "status",
    "error",
    "artifact",
    "method",
)


@dataclass
class Measurement:
    """One measured figure (or one recorded failure) of one study cell."""

    dataset: str
    model: str
    framework: str
    metric: str
    value: float | None
    unit: str = ""
    target: str = ""
    variant: str = ""
    seed: int | None = None
    status: Status = "ok"
    error: str = ""
    artifact: str = ""
    method: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)
