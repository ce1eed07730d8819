"""The comparison as a report: the report's own sections, each with only what changed, in `compare.html`/`.md`.

`build_comparison_document` lays the changes out as the report's sections (training, robustness,
migration, deployment, other: `report.sections.section_of` says where a measurement belongs), each
listing only what changed, then the findings (status changes, new and missing measurements, with their
errors) and the environment (what differs between the runs, and the noise method of every metric).
`write_comparison` renders it with the report's own HTML and Markdown renderers.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dlcompat.report import html, markdown
from dlcompat.report.atomic import atomic_write_text
from dlcompat.report.formatting import MISSING, error_summary, join_words, plural
from dlcompat.report.model import Block, Cell, Column, Document, Section, Table
from dlcompat.report.rows import is_native
from dlcompat.report.sections import SECTIONS, section_of
from dlcompat.report.tables import text_cell

from .changes import Change, Comparison, error_of, status_of
from .noise import NOT_COMPARED, Side, rule_for
from .text import describe, format_delta, value_text

HTML_NAME = "compare.html"
MARKDOWN_NAME = "compare.md"


# -- the measurement sections: what changed in each ------------------------------------------------------


def _target_text(framework: str, target: str) -> str:
    return f"{target} (native)" if is_native(framework, target) and target else target or "(native)"


def _key_cells(change: Change, with_seed: bool) -> dict[str, Cell]:
    dataset, model, framework, target, variant, seed = change.cell
    cells = {"dataset": text_cell(dataset), "model": text_cell(model), "framework": text_cell(framework),
             "target": text_cell(_target_text(framework, target)), "variant": text_cell(variant),
             "metric": text_cell(change.metric)}
    if with_seed:
        cells["seed"] = Cell(MISSING if seed is None else str(seed), seed)
    return cells


def _key_columns(with_seed: bool) -> list[Column]:
    columns = [Column(name, name) for name in ("dataset", "model", "framework", "target", "variant")]
    if with_seed:
        columns.append(Column("seed", "seed", numeric=True))
    return [*columns, Column("metric", "metric")]


def value_changes_table(table_id: str, title: str, changes: Sequence[Change], with_seed: bool) -> Table:
    """Each value change: both values, the change (absolute and relative), the noise and the verdict."""
    table = Table(table_id, title, [*_key_columns(with_seed), Column("a", "run A", numeric=True),
                                    Column("b", "run B", numeric=True), Column("delta", "change", numeric=True),
                                    Column("relative", "change %", numeric=True), Column("noise", "noise"),
                                    Column("verdict", "verdict")])
    for change in sorted(changes, key=lambda c: (not c.exceeds, -abs(c.relative or 0.0))):
        assert change.a is not None and change.b is not None and change.noise is not None
        delta, relative = change.delta, change.relative
        table.rows.append({
            **_key_cells(change, with_seed),
            "a": Cell(value_text(change.a), change.a.value),
            "b": Cell(value_text(change.b), change.b.value),
            "delta": Cell(MISSING if delta is None else format_delta(delta, change.unit, change.metric), delta),
            "relative": Cell(MISSING if relative is None else f"{relative * 100:+.1f} %", relative),
            "noise": Cell(change.noise.text, change.noise.text, note=change.noise.method),
            "verdict": Cell(change.noise.label, int(change.exceeds),
                            status="inconsistent" if change.exceeds else ""),
        })
    return table


def section_answer(changes: Sequence[Change], compared: int) -> str:
    beyond = [c for c in changes if c.exceeds]
    within = len(changes) - len(beyond)
    if not beyond:
        return (f"No measurement changed beyond noise; {plural(within, 'measurement')} of {compared:,} changed "
                "within noise.")
    listed = [describe(c) for c in sorted(beyond, key=lambda c: -abs(c.relative or 0.0))[:3]]
    more = f" and {len(beyond) - 3:,} more" if len(beyond) > 3 else ""
    return (f"{plural(len(beyond), 'measurement')} of {compared:,} changed beyond noise: {'; '.join(listed)}{more}. "
            f"{within:,} changed within noise.")


def value_sections(comparison: Comparison) -> list[Section]:
    """The report's measurement sections, each with only the values that changed (and only when any did)."""
    by_section: dict[str, list[Change]] = {}
    compared: dict[str, int] = {}
    for change in comparison.changes:
        if change.a is None or change.b is None:
            continue
        section = section_of(change.row)
        compared[section] = compared.get(section, 0) + 1
        if change.kind == "value":
            by_section.setdefault(section, []).append(change)
    with_seed = not comparison.pooled and len(set(comparison.a.seeds) | set(comparison.b.seeds)) > 1
    sections = []
    for spec in SECTIONS:
        changes = by_section.get(spec.id)
        if changes:
            sections.append(Section(spec.id, spec.title, section_answer(changes, compared[spec.id]),
                                    tables=[value_changes_table(f"{spec.id}-changes", f"{spec.title}: changes",
                                                                changes, with_seed)]))
    return sections


# -- findings: status changes, new and missing figures -------------------------------------------------


def _grouped(changes: Sequence[Change], key: Any) -> list[tuple[Change, list[str]]]:
    """Changes of one cell that share a status and an error, as (the first change, their metrics)."""
    groups: dict[Any, tuple[Change, list[str]]] = {}
    for change in changes:
        groups.setdefault(key(change), (change, []))[1].append(change.metric)
    return list(groups.values())


def _metrics_text(metrics: list[str], limit: int = 8) -> str:
    shown = ", ".join(metrics[:limit])
    return f"{shown} and {len(metrics) - limit} more" if len(metrics) > limit else shown


def _error_cell(text: str) -> Cell:
    return Cell(text or MISSING, text, note=error_summary(text))


def status_table(changes: Sequence[Change], with_seed: bool) -> Table:
    """Each cell whose status changed (its figures grouped): before, after, and each side's error."""
    table = Table("status-changes", "Status changes", [
        *_key_columns(with_seed)[:-1], Column("metrics", "measurements"), Column("a", "run A"), Column("b", "run B"),
        Column("error_a", "error in run A"), Column("error_b", "error in run B")])
    groups = _grouped(changes, lambda c: (c.cell, c.status_a, c.status_b, error_of(c.a.rows) if c.a else "",
                                          error_of(c.b.rows) if c.b else ""))
    for change, metrics in groups:
        cells = _key_cells(change, with_seed)
        cells.pop("metric")
        table.rows.append({
            **cells, "metrics": Cell(_metrics_text(metrics), len(metrics)),
            "a": Cell(change.status_a, change.status_a, status=change.status_a if change.status_a != "ok" else ""),
            "b": Cell(change.status_b, change.status_b, status=change.status_b if change.status_b != "ok" else ""),
            "error_a": _error_cell(error_of(change.a.rows) if change.a else ""),
            "error_b": _error_cell(error_of(change.b.rows) if change.b else ""),
        })
    return table


def presence_table(table_id: str, title: str, changes: Sequence[Change], with_seed: bool) -> Table:
    """Figures only one run has (grouped by cell): their values or status, and the error that explains them."""
    table = Table(table_id, title, [*_key_columns(with_seed)[:-1], Column("metrics", "measurements"),
                                    Column("status", "status"), Column("values", "values"), Column("error", "error")])
    def side(change: Change) -> Side:
        found = change.b or change.a
        assert found is not None
        return found

    groups = _grouped(changes, lambda c: (c.cell, status_of(side(c).rows), error_of(side(c).rows), c.reason))
    for change, metrics in groups:
        present = side(change)
        status = status_of(present.rows)
        cells = _key_cells(change, with_seed)
        cells.pop("metric")
        members = [c for c in changes if c.cell == change.cell and status_of(side(c).rows) == status
                   and c.reason == change.reason]
        values = "; ".join(f"{c.metric} {value_text(side(c))}" for c in members if status == "ok")
        error = error_of(present.rows)
        if change.reason:
            error = f"{'not in run B' if change.kind == 'disappeared' else 'not in run A'}: {change.reason}" + (
                f"\n{error}" if error else "")
        table.rows.append({**cells, "metrics": Cell(_metrics_text(metrics), len(metrics)),
                           "status": Cell(status, status, status=status if status != "ok" else ""),
                           "values": Cell(values or MISSING, values), "error": _error_cell(error)})
    return table


def findings_answer(comparison: Comparison) -> str:
    counts = comparison.counts()
    parts = [f"{count:,} measurements {name}" for name, count in counts.items()
             if name in ("status changed", "error changed", "appeared", "disappeared") and count]
    if not parts:
        return "No measurement changed status, and both runs measured the same figures."
    transitions = ", ".join(f"{n:,} {t}" for t, n in comparison.status_transitions().items())
    text = f"{join_words(parts)}."
    if transitions:
        text += f" Status changes: {transitions}."
    return text


def findings_section(comparison: Comparison, with_seed: bool) -> Section:
    tables = [status_table(comparison.of_kind("status"), with_seed),
              status_table(comparison.of_kind("error"), with_seed),
              presence_table("appeared", "New in run B", comparison.of_kind("appeared"), with_seed),
              presence_table("disappeared", "Missing from run B", comparison.of_kind("disappeared"), with_seed)]
    tables[1].id, tables[1].title = "error-changes", "Failed in both runs, with a different error"
    return Section("findings", "Findings", findings_answer(comparison), tables=[t for t in tables if t.rows])


# -- summary and environment ----------------------------------------------------------------------------


def _run_label(info: Mapping[str, Any]) -> str:
    name, run_id = info.get("name") or "", info.get("id") or ""
    return f"{name} ({run_id})" if name and run_id else str(name or run_id or "unnamed run")


def runs_table(comparison: Comparison) -> Table:
    table = Table("runs", "Runs compared", [Column("field", "field"), Column("a", "run A"), Column("b", "run B")])
    a, b = comparison.a, comparison.b

    def add(name: str, value_a: Any, value_b: Any) -> None:
        texts = [", ".join(map(str, v)) if isinstance(v, list | tuple) else ("" if v is None else str(v))
                 for v in (value_a, value_b)]
        if any(texts):
            table.rows.append({"field": text_cell(name), "a": text_cell(texts[0]), "b": text_cell(texts[1])})

    for key in ("id", "name", "created", "status", "source"):
        add(key, a.info.get(key), b.info.get(key))
    add("seeds", a.seeds, b.seeds)
    add("measurements", len(a.rows), len(b.rows))
    return table


def counts_table(comparison: Comparison) -> Table:
    table = Table("change-counts", "Measurements by change", [Column("change", "change"),
                                                               Column("count", "measurements", numeric=True)])
    for name, number in comparison.counts().items():
        table.rows.append({"change": text_cell(name), "count": Cell(f"{number:,}", number)})
    for transition, number in comparison.status_transitions().items():
        table.rows.append({"change": text_cell(f"status {transition}"), "count": Cell(f"{number:,}", number)})
    return table


def summary_answer(comparison: Comparison) -> str:
    counts = comparison.counts()
    seeds = ("the seeds differ, so each measurement is pooled over its run's seeds" if comparison.pooled
             else "matched seed by seed")
    text = (f"Run B {_run_label(comparison.b.info)} against run A {_run_label(comparison.a.info)} ({seeds}): "
            f"{counts['compared']:,} measurements compared, {counts['beyond noise']:,} changed beyond noise, "
            f"{counts['within noise']:,} within noise, {counts['unchanged']:,} unchanged; "
            f"{counts['appeared']:,} appeared, {counts['disappeared']:,} disappeared, "
            f"{counts['status changed']:,} changed status.")
    if not comparison.has_differences:
        text += " Nothing changed beyond noise."
    return text


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple):
        return {prefix: ", ".join(map(str, value))}
    return {prefix: "" if value is None else str(value)}


def _environment_fields(info: Mapping[str, Any]) -> dict[str, str]:
    """The run's environment (machine, versions, threads, seeds, latency method) and, where recorded, each
    toolchain environment's own (`toolchains`: Python and packages per environment), flattened."""
    fields = _flatten(info.get("environment") or {})
    toolchains = info.get("toolchains")
    if isinstance(toolchains, Mapping):
        fields.update(_flatten(toolchains, "toolchains"))
    return fields


def tool_versions(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Which version of each framework, converter and runtime the run's measurements name (in their method)."""
    found: dict[str, set[str]] = {}
    for row in rows:
        method = row["method"]
        for key, name in (("framework_version", row["framework"]), ("tool_version", method.get("tool")),
                          ("version", method.get("runtime") or row["target"])):
            version = method.get(key)
            if version and name:
                found.setdefault(str(name), set()).add(str(version))
    return {name: ", ".join(sorted(versions)) for name, versions in sorted(found.items())}


def differences_table(table_id: str, title: str, a: Mapping[str, str], b: Mapping[str, str],
                      label: str = "field") -> Table:
    """The keys whose values differ between the runs (absent on one side included)."""
    table = Table(table_id, title, [Column("field", label), Column("a", "run A"), Column("b", "run B")])
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            table.rows.append({"field": text_cell(key), "a": text_cell(a.get(key, "")), "b": text_cell(b.get(key, ""))})
    return table


def methods_table(comparison: Comparison) -> Table:
    """The noise rule of every metric this comparison judged, the methods it applied, and what it left out."""
    table = Table("noise-methods", "Noise, per metric", [Column("metric", "metric"), Column("rule", "rule"),
                                                          Column("applied", "applied"),
                                                          Column("count", "measurements", numeric=True)])
    used: dict[str, tuple[str, dict[str, int]]] = {}
    for change in comparison.changes:
        if change.kind == "value" and change.noise is not None:
            description, applied = used.setdefault(change.metric,
                                                   (rule_for(change.metric, change.unit).description, {}))
            applied[change.noise.method] = applied.get(change.noise.method, 0) + 1
    for metric, (description, applied) in sorted(used.items()):
        number = sum(applied.values())
        table.rows.append({"metric": text_cell(metric), "rule": text_cell(description),
                           "applied": text_cell("; ".join(f"{m} ({n:,})" for m, n in applied.items())),
                           "count": Cell(f"{number:,}", number)})
    metrics = {r["metric"] for r in (*comparison.a.rows, *comparison.b.rows)}
    for metric, why in NOT_COMPARED.items():
        if metric in metrics:
            table.rows.append({"metric": text_cell(metric), "rule": text_cell(f"not compared: {why}"),
                               "applied": text_cell(""), "count": Cell(MISSING, None)})
    return table


def environment_section(comparison: Comparison) -> Section:
    a, b = comparison.a, comparison.b
    environment = differences_table("environment-differences", "Environment differences",
                                    _environment_fields(a.info), _environment_fields(b.info))
    versions = differences_table("version-differences", "Tool versions that differ (from the measurements' methods)",
                                 tool_versions(a.rows), tool_versions(b.rows), label="tool")
    config_a, config_b = str(a.info.get("config_toml") or ""), str(b.info.get("config_toml") or "")
    diff = "\n".join(difflib.unified_diff(config_a.splitlines(), config_b.splitlines(), "run A", "run B",
                                          lineterm=""))
    config = "differ (the diff is below)" if diff else "are identical"
    answer = (f"Between the runs, {plural(len(environment), 'environment field')} and "
              f"{plural(len(versions), 'tool version')} differ; the study configurations {config}. A change is "
              "within noise when it is no larger than the measurement varies by chance: each metric's rule, and "
              "the method it applied, are listed below.")
    return Section("environment", "Environment and method", answer,
                   tables=[t for t in (environment, versions) if t.rows] + [methods_table(comparison)],
                   blocks=[Block("config-diff", "Study configuration, run A → run B", diff, "diff")] if diff else [])


# -- the document ------------------------------------------------------------------------------------------


def build_comparison_document(comparison: Comparison) -> Document:
    """The comparison as the report's sections: summary, each measurement section with what changed,
    findings (status changes, new and missing figures), environment and method."""
    with_seed = not comparison.pooled and len(set(comparison.a.seeds) | set(comparison.b.seeds)) > 1
    a, b = comparison.a.info, comparison.b.info
    names = [str(a.get("name") or a.get("id") or "run A"), str(b.get("name") or b.get("id") or "run B")]
    title = f"dlcompat compare: {names[0]}" if names[0] == names[1] else f"dlcompat compare: {names[0]} → {names[1]}"
    subtitle = f"run A {a.get('id') or '?'} → run B {b.get('id') or '?'}"
    sections = [Section("summary", "Summary", summary_answer(comparison),
                        tables=[runs_table(comparison), counts_table(comparison)]),
                *value_sections(comparison),
                findings_section(comparison, with_seed),
                environment_section(comparison)]
    return Document(title=title, subtitle=subtitle, sections=sections)


def write_comparison(comparison: Comparison, out_dir: Path) -> tuple[Path, Path]:
    """Build the comparison's document once and write `compare.html` and `compare.md` into `out_dir`."""
    document = build_comparison_document(comparison)
    out_dir = Path(out_dir)
    html_path = atomic_write_text(out_dir / HTML_NAME, html.render_document(document))
    markdown_path = atomic_write_text(out_dir / MARKDOWN_NAME, markdown.render_document(document))
    return html_path, markdown_path


__all__ = ["HTML_NAME", "MARKDOWN_NAME", "build_comparison_document", "write_comparison"]
