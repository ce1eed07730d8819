"""The report's tables, as plain data both renderers share, so HTML and Markdown never disagree.

Every builder is a pure function of the normalised rows (see `rows.normalize_rows`) and, where it
needs it, the run's info. A `Table` is a list of columns and a list of rows, each row a dict from a
column key to a `Cell`: the text a reader sees, the value a sortable table sorts by, and a status
the HTML colours.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .finding_groups import FindingGroup, cell_label
from .findings import STATUS_ORDER
from .formatting import (
    MISSING,
    count,
    error_summary,
    format_value,
    percent,
)
from .rows import (
    CELL_METRICS,
    COMPARISON_METRICS,
    CONVERSION_METRICS,
    LATENCY_METRICS,
    TRAINING_METRICS,
    CellIndex,
    CellKey,
    has_several_seeds,
    is_job_problem,
    is_native,
    is_ok,
    is_other,
    is_training,
    job_problem,
    key_sort,
    ok_value,
)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False
    #: long text a reader opens on demand: the HTML folds a row's detail columns into one cell at its end
    detail: bool = False


@dataclass(frozen=True)
class Cell:
    """One table cell: `text` is shown, `sort` orders it (None sorts last), `status` styles it."""

    text: str
    sort: float | str | None = None
    status: str = ""
    note: str = ""


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Cell]] = field(default_factory=list)

    def records(self) -> list[dict[str, str]]:
        """The rows as column label -> shown text (what a reader sees, in column order)."""
        return [{c.label: row.get(c.key, EMPTY).text for c in self.columns} for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


EMPTY = Cell(MISSING)
KEY_LABELS: dict[str, str] = {
    "dataset": "dataset",
    "model": "model",
    "framework": "framework",
    "target": "target",
    "variant": "variant",
    "seed": "seed",
}
NATIVE_TARGET = "(native)"


# -- cells ------------------------------------------------------------------------------------------


def text_cell(text: Any) -> Cell:
    text = "" if text is None else str(text)
    return Cell(text or MISSING, text)


def problem_cell(row: Mapping[str, Any]) -> Cell:
    """Why a figure is missing: its status (`failed`, `unavailable`, ...) with the error's summary."""
    return Cell(row["status"], None, status=row["status"], note=error_summary(row["error"]))


def metric_cell(row: Mapping[str, Any] | None, problem: Mapping[str, Any] | None = None) -> Cell:
    """A measured value, or why there is none: the row's own failure, else its job's (`problem`)."""
    if row is None:
        return problem_cell(problem) if problem is not None else EMPTY
    if row["status"] != "ok":
        return problem_cell(row)
    if row["value"] is None:
        return EMPTY
    return Cell(format_value(row["value"], row["unit"], row["metric"]), row["value"])


def _key_cells(key: CellKey, fields: Sequence[str]) -> dict[str, Cell]:
    dataset, model, framework, target, variant, seed = key
    values = {"dataset": dataset, "model": model, "framework": framework, "target": target,
              "variant": variant, "seed": seed}
    cells = {name: text_cell(values[name]) for name in fields}
    if "target" in cells and is_native(framework, target):
        cells["target"] = Cell(f"{target} {NATIVE_TARGET}" if target else NATIVE_TARGET, "")
    return cells


def _key_columns(fields: Sequence[str]) -> list[Column]:
    return [Column(name, KEY_LABELS[name], numeric=name == "seed") for name in fields]


def _cell_fields(with_seed: bool) -> tuple[str, ...]:
    base = ("dataset", "model", "framework", "target", "variant")
    return (*base, "seed") if with_seed else base


def _flips_cell(metrics: Mapping[str, Mapping[str, Any]]) -> Cell:
    row = metrics.get("label_flips")
    if row is None or not is_ok(row):
        return metric_cell(row, job_problem(metrics))
    flips = row["value"]
    rate = ok_value(metrics, "label_flip_rate")
    text = count(flips) + (f" ({percent(rate)})" if rate is not None else "")
    return Cell(text, flips, status="inconsistent" if flips > 0 else "")


def is_conversion_only(metric: str) -> bool:
    return metric in CONVERSION_METRICS


# -- conversions ------------------------------------------------------------------------------------

_CONVERSION_METHOD_FIELDS: tuple[tuple[str, str], ...] = (
    ("converter", "converter"),
    ("tool", "tool"),
    ("tool_version", "tool version"),
)


def conversions_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per conversion: which converter and tool (and version) made it, how long it took, its size.

    A conversion job that failed as a whole is listed too, with its status.
    """
    conversion_rows = [row for row in rows if row["metric"] in CONVERSION_METRICS
                       or (is_job_problem(row) and row["kind"] == "convert")]
    with_seed = has_several_seeds(rows)
    index = CellIndex.build(conversion_rows, with_seed)
    fields = _cell_fields(with_seed)
    present = {row["metric"] for row in conversion_rows}
    figures = [(m, label) for m, label in (("conversion_time", "time"), ("converted_size", "size"))
               if m in present]
    table = Table("conversions", "Conversions", [
        *_key_columns(fields),
        *(Column(f"method.{k}", label) for k, label in _CONVERSION_METHOD_FIELDS),
        *(Column(m, label, numeric=True) for m, label in figures)])
    for key, metrics in index.items():
        row = _key_cells(key, fields)
        method = next((m["method"] for m in metrics.values() if m["method"]), {})
        for k, _ in _CONVERSION_METHOD_FIELDS:
            row[f"method.{k}"] = text_cell(_compact(method[k]) if method.get(k) not in (None, "") else "")
        problem = job_problem(metrics)
        for m, _ in figures:
            row[m] = metric_cell(metrics.get(m), problem)
        table.rows.append(row)
    return table


# -- latency ----------------------------------------------------------------------------------------

_LATENCY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("latency_min", "min"),
    ("latency_p10", "p10"),
    ("latency_p50", "p50"),
    ("latency_p90", "p90"),
    ("latency_p99", "p99"),
    ("latency_mean", "mean"),
    ("latency_std", "std"),
    ("first_inference", "first call"),
)
_LATENCY_METHOD_FIELDS: tuple[tuple[str, str], ...] = (
    ("api", "api"),
    ("batch_size", "batch"),
    ("repeats", "repeats"),
    ("threads", "threads"),
)


def latency_method(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The method of a cell's latency measurement (that of p50, else of any latency row)."""
    for metric in ("latency_p50", *LATENCY_METRICS):
        row = metrics.get(metric)
        if row is not None and row["method"]:
            return row["method"]
    return {}


def latency_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per cell with latency statistics and the essentials of how they were measured."""
    latency_rows = [row for row in rows if row["metric"] in LATENCY_METRICS and not is_training(row)]
    with_seed = has_several_seeds(rows)
    index = CellIndex.build(latency_rows, with_seed)
    problems = {index.key(row): row for row in rows
                if is_job_problem(row) and row["kind"] == "evaluate" and index.key(row) in index.cells}
    fields = _cell_fields(with_seed)
    present = {row["metric"] for row in latency_rows}
    stats = [(metric, label) for metric, label in _LATENCY_COLUMNS if metric in present]
    methods = [latency_method(metrics) for _, metrics in index.items()]
    method_fields = [(k, label) for k, label in _LATENCY_METHOD_FIELDS if any(k in m for m in methods)
                     or (k == "threads" and any("intra_op_threads" in m for m in methods))]
    table = Table("latency-stats", "Latency per cell", _key_columns(fields)
                  + [Column(metric, label, numeric=True) for metric, label in stats]
                  + [Column(f"method.{k}", label, numeric=k != "api", detail=True) for k, label in method_fields])
    for (key, metrics), method in zip(index.items(), methods, strict=True):
        row = _key_cells(key, fields)
        for metric, _ in stats:
            row[metric] = metric_cell(metrics.get(metric), problems.get(key))
        for k, _ in method_fields:
            value = method.get(k)
            if value is None and k == "threads":  # ONNX Runtime says intra_op_threads
                value = method.get("intra_op_threads")
            row[f"method.{k}"] = Cell(MISSING if value is None else _compact(value),
                                      value if isinstance(value, int | float | str) else None)
        table.rows.append(row)
    return table


# -- training ---------------------------------------------------------------------------------------


def training_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per trained dataset × model × framework (× seed); unknown training metrics get columns too.

    A training job that failed as a whole shows its status in every column.
    """
    train_rows = [row for row in rows if is_training(row)]
    with_seed = has_several_seeds(rows)
    index = CellIndex.build([{**row, "target": "", "variant": ""} for row in train_rows], with_seed)
    fields = ("dataset", "model", "framework", "seed") if with_seed else ("dataset", "model", "framework")
    present = {row["metric"] for row in train_rows if not is_job_problem(row)}
    known = [m for m in TRAINING_METRICS if m in present]
    extra = sorted(present - set(TRAINING_METRICS))
    labels = {"train_time": "train time", "train_time_per_epoch": "time / epoch",
              "final_train_loss": "final train loss", "val_accuracy": "val accuracy",
              "train_peak_rss": "peak RSS"}
    columns = [Column(m, labels.get(m) or m.replace("_", " "), numeric=True)
               for m in (*known, *extra)]
    table = Table("training", "Training", _key_columns(fields) + columns)
    for key, metrics in index.items():
        row = _key_cells(key, fields)
        problem = job_problem(metrics)
        for column in columns:
            row[column.key] = metric_cell(metrics.get(column.key), problem)
        if not columns and problem is not None:
            row["status"] = problem_cell(problem)
        table.rows.append(row)
    if not columns and any(job_problem(m) for _, m in index.items()):
        table.columns.append(Column("status", "status"))
    return table


def finding_groups_table(groups: Sequence[FindingGroup]) -> Table:
    """One row per group of findings (same status, tool, normalised error and layers): its cells in full, the
    versions involved and the artifacts to reproduce it; `#` numbers them G1, G2, ..."""
    table = Table("findings", "Findings, grouped by tool and error", [
        Column("id", "#"), Column("status", "status"), Column("tool", "tool"),
        Column("count", "cells", numeric=True), Column("pattern", "error (normalised)"),
        Column("layers", "layers / operators"), Column("cells", "which cells", detail=True),
        Column("error", "full error (first cell)", detail=True),
        Column("versions", "versions involved", detail=True), Column("artifacts", "artifacts", detail=True)])
    order = sorted(groups, key=lambda g: (STATUS_ORDER.get(g.status, 5), -len(g.members), g.tool))
    for number, group in enumerate(order, start=1):
        inconsistent = group.status == "inconsistent"
        cells = [cell_label(f) + (f": {f.error}" if inconsistent else "")
                 + (f" ({', '.join(f.metrics)})" if not inconsistent and not f.whole_job else "")
                 for f in group.members]
        error = "" if inconsistent else group.error
        table.rows.append({
            "id": Cell(f"G{number}", number),
            "status": Cell(group.status, STATUS_ORDER.get(group.status, 5), status=group.status),
            "tool": text_cell(group.tool),
            "count": Cell(str(len(group.members)), len(group.members)),
            "pattern": text_cell(group.pattern),
            "layers": text_cell(", ".join(group.layers)),
            "cells": Cell("\n".join(cells), len(cells)),
            "error": Cell(error or MISSING, error),
            "versions": text_cell("\n".join(group.versions)),
            "artifacts": text_cell("\n".join(group.artifacts)),
        })
    return table


# -- other metrics ----------------------------------------------------------------------------------


def other_metrics_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Measurements the report has no dedicated column for, one row each (nothing is dropped)."""
    other = [row for row in rows if is_other(row)]
    with_seed = has_several_seeds(rows)
    fields = _cell_fields(with_seed)
    table = Table("other-metrics", "Other measurements", [
        *_key_columns(fields),
        Column("metric", "metric"), Column("value", "value", numeric=True), Column("method", "method")])
    index = CellIndex(with_seed=with_seed)
    for row in sorted(other, key=lambda r: (key_sort(index.key(r)), r["metric"])):
        cells = _key_cells(index.key(row), fields)
        cells["metric"] = text_cell(row["metric"])
        cells["value"] = metric_cell(row)
        cells["method"] = text_cell(_compact(row["method"]) if row["method"] else "")
        table.rows.append(cells)
    return table


# -- run, environment and method --------------------------------------------------------------------


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _field_table(table_id: str, title: str, pairs: Iterable[tuple[str, Any]]) -> Table:
    table = Table(table_id, title, [Column("field", "field"), Column("value", "value")])
    for name, value in pairs:
        if value is None or value == "" or value == [] or value == {}:
            continue
        text = ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else _compact(value)
        table.rows.append({"field": text_cell(name), "value": Cell(text, value if isinstance(
            value, int | float) else text)})
    return table


def run_facts_table(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Table:
    """What was run: id, name, when, status, job counts and the axes the rows cover."""
    jobs = run.get("jobs") or {}
    pairs: list[tuple[str, Any]] = [
        ("run", run.get("id")),
        ("name", run.get("name")),
        ("created", run.get("created")),
        ("status", run.get("status")),
    ]
    if isinstance(jobs, Mapping):
        pairs += [(f"jobs {name}", value) for name, value in jobs.items()]
    pairs += [
        ("measurements", len(rows)),
        ("datasets", _distinct(rows, "dataset")),
        ("models", _distinct(rows, "model")),
        ("frameworks", _distinct(rows, "framework")),
        ("targets", _distinct(rows, "target")),
    ]
    return _field_table("run", "Run", pairs)


def _distinct(rows: Sequence[Mapping[str, Any]], column: str) -> list[str]:
    return sorted({str(row[column]) for row in rows if row[column] not in ("", None)})


ENVIRONMENT_LABELS: dict[str, str] = {
    "python": "Python",
    "platform": "platform",
    "cpu": "CPU",
    "cpu_count": "CPUs",
}


def seeds_of(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The run's recorded seeds, else the seeds its rows carry."""
    seeds = run.get("seeds")
    if seeds:
        return list(seeds) if isinstance(seeds, list | tuple) else [seeds]
    return sorted({row["seed"] for row in rows if row["seed"] is not None})


def environment_table(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Table:
    """Python, platform, CPU, threads, seeds, and any other scalar the environment recorded."""
    environment = run.get("environment") or {}
    pairs: list[tuple[str, Any]] = [(label, environment.get(key))
                                    for key, label in ENVIRONMENT_LABELS.items()]
    shown_elsewhere = {*ENVIRONMENT_LABELS, "packages", "threads", "seeds"}
    pairs += [(key, value) for key, value in environment.items()
              if key not in shown_elsewhere and not isinstance(value, Mapping)]
    pairs += [("threads", run.get("threads") or environment.get("threads")), ("seeds", seeds_of(run, rows))]
    return _field_table("environment-facts", "Environment", pairs)


def packages_table(run: Mapping[str, Any]) -> Table:
    packages = (run.get("environment") or {}).get("packages") or {}
    table = Table("packages", "Package versions",
                  [Column("package", "package"), Column("version", "version")])
    if isinstance(packages, Mapping):
        for name in sorted(packages, key=str.lower):
            table.rows.append({"package": text_cell(name), "version": text_cell(_compact(packages[name]))})
    return table


def method_family(metric: str) -> str:
    """Metrics measured together share a method: every `latency_*` is `latency`, and so on."""
    if metric.startswith("latency_") or metric in LATENCY_METRICS:
        return "latency"
    if metric in TRAINING_METRICS:
        return "training"
    if metric in COMPARISON_METRICS:
        return "comparison"
    if metric in CONVERSION_METRICS:
        return "conversion"
    return metric


#: A content-addressed artifact reference (store/artifacts.py): it is in the export's `artifact`
#: column and means nothing in a summary of methods.
_ARTIFACT_REFERENCE = re.compile(r"objects/[0-9a-f]{2}/[0-9a-f]{16,}[^/]*")
_EVALUATION_FAMILIES = frozenset({"accuracy", "load_time", "model_size", "peak_rss"})


def methods(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """Measurement family -> method field -> its distinct values (as compact text), in first-seen order.

    Fields that only reference artifacts are left out, and so is a field of another evaluation figure
    whose values repeat the latency family's (an evaluation records its runtime once per figure).
    """
    out: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        if not row["method"]:
            continue
        fields = out.setdefault(method_family(row["metric"]), {})
        for name, value in row["method"].items():
            values = fields.setdefault(str(name), [])
            text = _compact(value)
            if text not in values:
                values.append(text)
    latency = out.get("latency", {})
    for family, fields in out.items():
        for name in list(fields):
            values = fields[name]
            if all(_ARTIFACT_REFERENCE.fullmatch(v) for v in values) or (
                    family in _EVALUATION_FAMILIES and set(values) <= set(latency.get(name, ()))):
                del fields[name]
    order = {"latency": 0, "training": 1, "conversion": 2, "comparison": 3}
    return dict(sorted(((k, v) for k, v in out.items() if v), key=lambda item: (order.get(item[0], 9), item[0])))


def methods_table(rows: Sequence[Mapping[str, Any]], limit: int = 6) -> Table:
    table = Table("methods", "Measurement method", [
        Column("measurement", "measurement"), Column("field", "field"), Column("values", "value(s)")])
    for family, fields in methods(rows).items():
        for name, values in fields.items():
            shown = ", ".join(values[:limit]) + (f", … ({len(values)} values)" if len(values) > limit else "")
            table.rows.append({"measurement": text_cell(family), "field": text_cell(name),
                               "values": text_cell(shown)})
    return table


__all__ = [
    "CELL_METRICS",
    "EMPTY",
    "Cell",
    "Column",
    "Table",
    "environment_table",
    "finding_groups_table",
    "latency_table",
    "methods_table",
    "other_metrics_table",
    "packages_table",
    "run_facts_table",
    "training_table",
]
