"""The run's measurement rows as the report reads them: normalised, classified and indexed by cell.

A *cell* is one dataset × model × framework × target × variant (× seed, when the run has several
seeds). Its measurements come from several jobs (evaluate, compare, ...), so the report joins them
here, once, for every table, chart and sentence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlcompat.metrics.record import COLUMNS

from .formatting import display_name

TRAINING_METRICS: tuple[str, ...] = (
    "train_time",
    "train_time_per_epoch",
    "final_train_loss",
    "val_accuracy",
    "train_peak_rss",
)
LATENCY_METRICS: tuple[str, ...] = (
    "latency_p10",
    "latency_p50",
    "latency_p90",
    "latency_p99",
    "latency_mean",
    "latency_std",
    "latency_min",
    "latency_median_ci_low",
    "latency_median_ci_high",
    "latency_p50_per_image",
    "first_inference",
)
#: what a deployed model costs to start: the browser's own start, download and initialisation of the model
LOAD_METRICS: tuple[str, ...] = (
    "load_time",
    "browser_start_time",
    "model_download_time",
    "model_init_time",
    "runtime_init_time",
    "model_size_served",
)
MEMORY_METRICS: tuple[str, ...] = ("peak_rss", "peak_rss_load", "peak_rss_inference")
CONVERSION_METRICS: tuple[str, ...] = ("conversion_time", "converted_size")
#: per-epoch learning curves (method.epoch says which epoch) and the reproduce job's figures: shown by
#: the Training section's own chart and tables (report/sections/training.py), never as table columns
CURVE_METRICS: tuple[str, ...] = ("epoch_time", "epoch_train_loss", "epoch_val_accuracy")
REPRODUCIBILITY_METRICS: tuple[str, ...] = ("bit_reproducible", "reproduce_max_weight_diff", "reproduce_label_flips")
COMPARISON_METRICS: tuple[str, ...] = (
    "label_flips",
    "label_flip_rate",
    "max_abs_logit_diff",
    "mean_abs_logit_diff",
    "p99_abs_logit_diff",
    "top5_agreement",
    "min_atol",
    "min_rtol",
    "source_accuracy",
    "accuracy_change",
)
#: Metrics of an evaluated (and compared) model that the cells table has a column for.
CELL_METRICS: tuple[str, ...] = (
    "accuracy",
    "model_size",
    *LOAD_METRICS,
    *MEMORY_METRICS,
    *LATENCY_METRICS,
    *COMPARISON_METRICS,
    *CONVERSION_METRICS,
)
TRAIN_KINDS = frozenset({"train"})
PROBLEM_STATUSES: tuple[str, ...] = ("failed", "unavailable")

CellKey = tuple[str, str, str, str, str, int | None]


def _as_mapping(row: Any) -> Mapping[str, Any]:
    if isinstance(row, Mapping):
        return row
    for method in ("to_dict", "model_dump"):
        if callable(getattr(row, method, None)):
            return getattr(row, method)()
    return vars(row)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _method(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"text": value}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {}


def _value(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _seed(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def normalize_row(row: Any) -> dict[str, Any]:
    """One row with exactly the COLUMNS keys and their types; missing fields get neutral defaults."""
    data = _as_mapping(row)
    out: dict[str, Any] = {}
    for column in COLUMNS:
        raw = data.get(column)
        if column == "value":
            out[column] = _value(raw)
        elif column == "seed":
            out[column] = _seed(raw)
        elif column == "method":
            out[column] = _method(raw)
        elif column == "status":
            out[column] = _text(raw) or "ok"
        else:
            out[column] = _text(raw)
    return out


def normalize_rows(rows: Iterable[Any] | None) -> list[dict[str, Any]]:
    """Every row normalised (see `normalize_row`); `None` is an empty run."""
    return [normalize_row(row) for row in rows or ()]


def is_job_problem(row: Mapping[str, Any]) -> bool:
    """The row a job leaves when it failed (or was unavailable) as a whole: its metric is its kind.

    Such a row carries the error of every figure the job would have measured; the report shows it as
    a finding and as the status of those figures, never as a metric of its own.
    """
    return (row["status"] != "ok" and row["value"] is None and bool(row["kind"])
            and row["metric"] == row["kind"])


def is_training(row: Mapping[str, Any]) -> bool:
    if row["metric"] in CURVE_METRICS or row["metric"] in REPRODUCIBILITY_METRICS:
        return False
    return row["metric"] in TRAINING_METRICS or row["kind"] in TRAIN_KINDS


def is_cell_metric(row: Mapping[str, Any]) -> bool:
    return not is_training(row) and row["metric"] in CELL_METRICS


def is_other(row: Mapping[str, Any]) -> bool:
    """A metric the report has no dedicated column for (a feature newer than the report)."""
    return (not is_training(row) and not is_job_problem(row) and row["metric"] not in CELL_METRICS
            and row["metric"] not in CURVE_METRICS and row["metric"] not in REPRODUCIBILITY_METRICS)


def job_problem(metrics: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The job-failure row among a cell's rows, if a job of that cell failed as a whole."""
    return next((row for row in metrics.values() if is_job_problem(row)), None)


def is_ok(row: Mapping[str, Any] | None) -> bool:
    return row is not None and row["status"] == "ok" and row["value"] is not None


def is_native(framework: str, target: str) -> bool:
    """The model evaluated in the framework that trained it (no target, or the target is itself)."""
    return not target or target == framework


def target_label(framework: str, target: str, variant: str = "") -> str:
    """How a chart legend names where a model ran: `ONNX Runtime · torch.onnx (dynamo)`."""
    label = f"{display_name(framework)} (native)" if is_native(framework, target) else display_name(target)
    return f"{label} · {variant}" if variant else label


def has_several_seeds(rows: Iterable[Mapping[str, Any]]) -> bool:
    return len({row["seed"] for row in rows if row["seed"] is not None}) > 1


def distinct(rows: Iterable[Mapping[str, Any]], column: str) -> list[Any]:
    """The distinct non-empty values of a column, sorted."""
    values = {row[column] for row in rows if row[column] not in ("", None)}
    return sorted(values, key=lambda v: (str(type(v)), v))


def key_sort(key: CellKey) -> tuple[Any, ...]:
    dataset, model, framework, target, variant, seed = key
    return (dataset, model, framework, not is_native(framework, target), target, variant,
            -1 if seed is None else seed)


def _prefer(current: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Of two rows for the same cell and metric, a measured one wins over a failure; else the later."""
    if current is None:
        return new
    if is_ok(current) and not is_ok(new):
        return current
    return new


@dataclass
class CellIndex:
    """Rows grouped by cell key, then by metric (one row per metric; a measured row wins)."""

    with_seed: bool
    cells: dict[CellKey, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def build(cls, rows: Iterable[Mapping[str, Any]], with_seed: bool) -> CellIndex:
        index = cls(with_seed=with_seed)
        for row in rows:
            key = index.key(row)
            metrics = index.cells.setdefault(key, {})
            metrics[row["metric"]] = _prefer(metrics.get(row["metric"]), dict(row))
        index.cells = dict(sorted(index.cells.items(), key=lambda item: key_sort(item[0])))
        return index

    def key(self, row: Mapping[str, Any]) -> CellKey:
        return (row["dataset"], row["model"], row["framework"], row["target"], row["variant"],
                row["seed"] if self.with_seed else None)

    def items(self) -> Iterable[tuple[CellKey, dict[str, dict[str, Any]]]]:
        return self.cells.items()

    def __len__(self) -> int:
        return len(self.cells)


def ok_value(metrics: Mapping[str, Mapping[str, Any]], metric: str) -> float | None:
    """The value of a metric in a cell when it was measured and is finite, else None.

    (Tables still show an infinite value as measured; sentences and charts leave it out.)
    """
    row = metrics.get(metric)
    if row is None or not is_ok(row) or not math.isfinite(row["value"]):
        return None
    return row["value"]
