"""Table building blocks every section shares: cells from rows, the key columns of a cell, field tables,
and the per-cell tables of latency and conversions.

Every builder is a pure function of the normalised rows (see `rows.normalize_rows`). The tables that
belong to one section live in that section's module (`sections/`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .formatting import MISSING, error_summary, format_value
from .model import EMPTY, Cell, Column, Table
from .rows import (
    CONVERSION_METRICS,
    LATENCY_METRICS,
    CellIndex,
    CellKey,
    has_several_seeds,
    is_job_problem,
    is_native,
    is_training,
    job_problem,
)

KEY_LABELS: dict[str, str] = {
    "dataset": "dataset",
    "model": "model",
    "framework": "framework",
    "target": "target",
    "variant": "variant",
    "seed": "seed",
}
NATIVE_TARGET = "(native)"


# -- cells -----------------------------------------------------------------------------------------


def text_cell(text: Any) -> Cell:
    """A cell showing `text` as it is (MISSING when empty), sorted by it."""
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


def key_cells(key: CellKey, fields: Sequence[str]) -> dict[str, Cell]:
    """The cells that name a cell's `fields` (its native target marked `(native)`)."""
    dataset, model, framework, target, variant, seed = key
    values = {"dataset": dataset, "model": model, "framework": framework, "target": target,
              "variant": variant, "seed": seed}
    cells = {name: text_cell(values[name]) for name in fields}
    if "target" in cells and is_native(framework, target):
        cells["target"] = Cell(f"{target} {NATIVE_TARGET}" if target else NATIVE_TARGET, "")
    return cells


def key_columns(fields: Sequence[str]) -> list[Column]:
    """The columns of `key_cells`."""
    return [Column(name, KEY_LABELS[name], numeric=name == "seed") for name in fields]


def cell_fields(with_seed: bool) -> tuple[str, ...]:
    """The fields that name a cell: dataset, model, framework, target, variant (and seed)."""
    base = ("dataset", "model", "framework", "target", "variant")
    return (*base, "seed") if with_seed else base


# -- conversions -----------------------------------------------------------------------------------

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
    fields = cell_fields(with_seed)
    present = {row["metric"] for row in conversion_rows}
    figures = [(m, label) for m, label in (("conversion_time", "time"), ("converted_size", "size"))
               if m in present]
    table = Table("conversions", "Conversions", [
        *key_columns(fields),
        *(Column(f"method.{k}", label) for k, label in _CONVERSION_METHOD_FIELDS),
        *(Column(m, label, numeric=True) for m, label in figures)])
    for key, metrics in index.items():
        row = key_cells(key, fields)
        method = next((m["method"] for m in metrics.values() if m["method"]), {})
        for k, _ in _CONVERSION_METHOD_FIELDS:
            row[f"method.{k}"] = text_cell(compact(method[k]) if method.get(k) not in (None, "") else "")
        problem = job_problem(metrics)
        for m, _ in figures:
            row[m] = metric_cell(metrics.get(m), problem)
        table.rows.append(row)
    return table


# -- latency ---------------------------------------------------------------------------------------

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
    fields = cell_fields(with_seed)
    present = {row["metric"] for row in latency_rows}
    stats = [(metric, label) for metric, label in _LATENCY_COLUMNS if metric in present]
    methods = [latency_method(metrics) for _, metrics in index.items()]
    method_fields = [(k, label) for k, label in _LATENCY_METHOD_FIELDS if any(k in m for m in methods)
                     or (k == "threads" and any("intra_op_threads" in m for m in methods))]
    table = Table("latency-stats", "Latency per cell", key_columns(fields)
                  + [Column(metric, label, numeric=True) for metric, label in stats]
                  + [Column(f"method.{k}", label, numeric=k != "api", detail=True) for k, label in method_fields])
    for (key, metrics), method in zip(index.items(), methods, strict=True):
        row = key_cells(key, fields)
        for metric, _ in stats:
            row[metric] = metric_cell(metrics.get(metric), problems.get(key))
        for k, _ in method_fields:
            value = method.get(k)
            if value is None and k == "threads":  # ONNX Runtime says intra_op_threads
                value = method.get("intra_op_threads")
            row[f"method.{k}"] = Cell(MISSING if value is None else compact(value),
                                      value if isinstance(value, int | float | str) else None)
        table.rows.append(row)
    return table


# -- fields ----------------------------------------------------------------------------------------


def compact(value: Any) -> str:
    """A value as one line of text: a string as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def field_table(table_id: str, title: str, pairs: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of (field, value) pairs; empty values are left out, lists joined with commas."""
    table = Table(table_id, title, [Column("field", "field"), Column("value", "value")])
    for name, value in pairs:
        if value is None or value == "" or value == [] or value == {}:
            continue
        text = ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else compact(value)
        table.rows.append({"field": text_cell(name), "value": Cell(text, value if isinstance(
            value, int | float) else text)})
    return table


__all__ = ["cell_fields", "compact", "conversions_table", "field_table", "key_cells", "key_columns", "latency_method",
           "latency_table", "metric_cell", "problem_cell", "text_cell"]
