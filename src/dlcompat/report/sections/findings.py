"""Findings: every failed, unavailable or inconsistent cell, grouped by tool and error (`finding_groups.py`), led by
the catalogue: one line per cause with its cells, the tool versions, its upstream status and, where the run's causes
were exported as reproducers (`dlcompat findings RUN --export DIR`, `report/reproducers.py`), the reproducer folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..finding_groups import FindingGroup, cell_label, group_findings
from ..findings import STATUS_ORDER
from ..formatting import MISSING, error_summary, join_words, plural
from ..model import Cell, Column, Section, Table
from ..reproducers import Reproducer, reproducers
from ..tables import text_cell
from .base import RunData, SectionSpec


def findings_answer(groups: Sequence[FindingGroup], shown: int = 1) -> str:
    """How many findings, in how many groups (same tool and error), the largest `shown` groups first (the table
    right after lists every group), and any layer or operator that more than one group names."""
    if not groups:
        return "Nothing failed, nothing was unavailable, and no moved or deployed model changed a prediction."
    cells = sum(len(g.members) for g in groups)
    by_status: dict[str, int] = {}
    for group in groups:
        by_status[group.status] = by_status.get(group.status, 0) + len(group.members)
    nouns = {"failed": "failed", "unavailable": "unavailable", "inconsistent": "changed predictions"}
    counts = [f"{n} {nouns.get(status, status)}" for status, n in by_status.items()]
    parts = [f"{plural(cells, 'finding')} in {plural(len(groups), 'group')} (same tool and same error, numbers "
             f"and names aside): {join_words(counts)}."]
    ranked = sorted(groups, key=lambda g: (STATUS_ORDER.get(g.status, 5), -len(g.members)))
    for group in ranked[:shown]:
        cells = plural(len(group.members), "cell")
        if group.status == "inconsistent":
            parts.append(f"{cells} changed predictions in {group.tool}.")
        else:
            summary = error_summary(group.error) if group.distinct_errors == 1 else group.pattern
            stop = "" if summary.endswith(".") else "."
            parts.append(f"{cells} {group.status} in {group.tool} — {summary}{stop}")
    if len(groups) > shown:
        more = len(groups) - shown
        parts.append(f"{plural(more, 'more group')} in the table below, each with its cells, the versions "
                     "involved and the artifacts to reproduce it.")
    tools_by_layer: dict[str, set[str]] = {}
    for group in groups:
        for layer in group.layers:
            tools_by_layer.setdefault(layer, set()).add(group.tool)
    shared = {layer: tools for layer, tools in tools_by_layer.items() if len(tools) > 1}
    for layer, tools in sorted(shared.items()):
        parts.append(f"{layer} appears in the errors of {join_words(sorted(tools))}.")
    return " ".join(parts)


def _reproducer_answer(groups: Sequence[FindingGroup], repros: Mapping[str, Reproducer], run_id: str) -> str:
    """How many causes have a reproducer folder, how many of those are 1-minimal, verified and known upstream."""
    if not repros:
        failed = sum(g.status == "failed" for g in groups)
        return (f" No reproducers were exported for this run: `dlcompat findings {run_id} --export DIR` writes one "
                f"per failed cause whose failing model is ONNX ({plural(failed, 'failed cause')} here)."
                if failed else "")
    minimal = sum(r.minimal for r in repros.values())
    known = sum(bool(r.upstream) for r in repros.values())
    verified = sum(r.verified.startswith("reproduces") for r in repros.values())
    return (f" {plural(len(repros), 'cause')} {'has' if len(repros) == 1 else 'have'} a reproducer folder: {minimal} "
            f"proven 1-minimal, {verified} verified in a fresh environment, {known} already known upstream.")


def finding_groups_table(groups: Sequence[FindingGroup], repros: Mapping[str, Reproducer] | None = None) -> Table:
    """The catalogue: one row per cause (same status, tool, normalised error and layers) with its cells, the
    versions involved, its upstream status and its reproducer folder where one was exported (`repros`, by id);
    then, folded, its cells in full, the first error and the artifacts; `#` numbers them G1, G2, ..."""
    repros = repros or {}
    table = Table("findings", "Catalogue of causes: one line per cause, its cells, versions, upstream, reproducer", [
        Column("id", "#"), Column("status", "status"), Column("tool", "tool"),
        Column("count", "cells", numeric=True), Column("pattern", "error (normalised)"),
        Column("upstream", "upstream"), Column("reproducer", "reproducer"),
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
            "upstream": text_cell(repros[f"G{number}"].status if f"G{number}" in repros else ""),
            "reproducer": text_cell(repros[f"G{number}"].line if f"G{number}" in repros else ""),
            "artifacts": text_cell("\n".join(group.artifacts)),
        })
    return table


def build(run: RunData) -> Section:
    """The findings section: how many, in which groups, the largest first; then every group in a table."""
    groups = group_findings(run.rows, run.info)
    repros = reproducers(run.info)
    table = finding_groups_table(groups, repros)
    answer = findings_answer(groups) + _reproducer_answer(groups, repros, str(run.info.get("id") or "RUN"))
    return Section(SPEC.id, SPEC.title, answer, tables=[table] if table.rows else [])


SPEC = SectionSpec("findings", "Findings", build)

__all__ = ["SPEC", "build", "finding_groups_table", "findings_answer"]
