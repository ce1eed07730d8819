"""Measurements no other section shows (a metric newer than the report), one per row, so nothing is dropped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..model import Column, Section, Table
from ..rows import CellIndex, has_several_seeds, is_other, key_sort
from ..tables import cell_fields, compact, key_cells, key_columns, metric_cell, text_cell
from .base import RunData, SectionSpec
from .check import CHECK_METRICS
from .localisation import accounts_for as is_localisation
from .robustness import is_robustness


def other_metrics_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Measurements the report has no dedicated column for, one row each (nothing is dropped)."""
    other = [row for row in rows if is_other(row)]
    with_seed = has_several_seeds(rows)
    fields = cell_fields(with_seed)
    table = Table("other-metrics", "Other measurements", [
        *key_columns(fields),
        Column("metric", "metric"), Column("value", "value", numeric=True), Column("method", "method")])
    index = CellIndex(with_seed=with_seed)
    for row in sorted(other, key=lambda r: (key_sort(index.key(r)), r["metric"])):
        cells = key_cells(index.key(row), fields)
        cells["metric"] = text_cell(row["metric"])
        cells["value"] = metric_cell(row)
        cells["method"] = text_cell(compact(row["method"]) if row["method"] else "")
        table.rows.append(cells)
    return table


def build(run: RunData) -> Section | None:
    """The section, or None when every measurement has a section of its own (attack rows always do)."""
    core = [r for r in run.rows if not is_robustness(r) and not is_localisation(r) and r["metric"] not in CHECK_METRICS]
    if not any(is_other(r) for r in core):
        return None
    table = other_metrics_table(core)
    return Section(SPEC.id, SPEC.title, "Measurements this report has no dedicated view for yet, listed one per row.",
                   tables=[table] if table.rows else [])


SPEC = SectionSpec("other", "Other measurements", build, always=False)

__all__ = ["SPEC", "build", "other_metrics_table"]
