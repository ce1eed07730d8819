"""What changed between two runs, and whether each change exceeds the measured noise (`dlcompat compare`).

Two runs (two versions of a framework or converter, or another seed) are matched measurement by
measurement on their identity: dataset, model, framework, target, variant, metric, and the seed when
both runs used the same seeds. When they used different seeds, the seed is set aside and each
identity's values are pooled over seeds (their mean is compared; their spread is the noise where both
runs have several).

Every matched pair ends up as one `Change`:

- `value`: both measured, the value differs; `noise.judge` says whether beyond noise (report/noise.py);
- `unchanged`: the same value (or the same failure with the same error);
- `status`: ok ↔ failed ↔ unavailable, with the error of the side that is not ok (a job that failed as
  a whole counts as the status of every figure it would have measured);
- `error`: failed in both, with a different error;
- `appeared` / `disappeared`: measured by one run only, with the error that kept the other from it
  when a job upstream of the cell failed (a failed conversion skips its evaluation).

`build_comparison_document` lays the changes out as the report's own sections (training, robustness,
migration, deployment, other: `document.section_of` says where a measurement belongs), each listing
only what changed, then the findings (status changes, new and missing measurements, with their
errors) and the environment (what differs between the runs, and the noise method of every metric).
`write_comparison` renders it with the report's own HTML and Markdown renderers.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import html, markdown
from .atomic import atomic_write_text
from .document import SECTION_IDS, Block, Document, Section, run_info, section_of
from .formatting import MISSING, error_summary, format_value, join_words, plural
from .noise import NOT_COMPARED, Noise, Side, judge, rule_for
from .rows import is_job_problem, is_native, normalize_rows
from .tables import Cell, Column, Table, text_cell

HTML_NAME = "compare.html"
MARKDOWN_NAME = "compare.md"

Identity = tuple[str, str, str, str, str, int | None, str]  # dataset, model, framework, target, variant, seed, metric
CellKey = tuple[str, str, str, str, str, int | None]
KEY_FIELDS: tuple[str, ...] = ("dataset", "model", "framework", "target", "variant", "seed")

#: the order in which a side's statuses decide its own when its seeds disagree
STATUS_PRECEDENCE: tuple[str, ...] = ("failed", "unavailable")

#: the titles of the report's sections that show measurements (`document.section_of` says which row goes where)
SECTION_TITLES: dict[str, str] = {
    "training": "Training across frameworks",
    "robustness": "Robustness across frameworks",
    "migration": "Migration across frameworks",
    "deployment": "Deployment: server, mobile and web",
    "other": "Other measurements",
}

#: how each kind of change is named in tables and the summary
KIND_LABELS: dict[str, str] = {
    "value": "changed", "unchanged": "unchanged", "status": "status changed", "error": "error changed",
    "appeared": "appeared", "disappeared": "disappeared",
}


# -- one run's rows, indexed -----------------------------------------------------------------------


def status_of(rows: Sequence[Mapping[str, Any]]) -> str:
    """A side's status: ok when every row is; else the first of failed, unavailable, other that occurs."""
    statuses = {r["status"] for r in rows}
    if statuses <= {"ok"}:
        return "ok"
    return next((s for s in STATUS_PRECEDENCE if s in statuses), sorted(statuses - {"ok"})[0])


def error_of(rows: Sequence[Mapping[str, Any]]) -> str:
    status = status_of(rows)
    return next((r["error"] for r in rows if r["status"] == status and r["error"]), "")


@dataclass
class IndexedRun:
    """One run's rows by identity and by cell (seed kept or set aside), and its failed jobs."""

    info: dict[str, Any]
    rows: list[dict[str, Any]]
    with_seed: bool
    measurements: dict[Identity, list[dict[str, Any]]] = field(default_factory=dict)
    cells: dict[CellKey, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, info: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], with_seed: bool) -> IndexedRun:
        run = cls(dict(info), [dict(r) for r in rows], with_seed)
        for row in run.rows:
            key = run.cell_key(row)
            run.measurements.setdefault((*key, row["metric"]), []).append(row)
            run.cells.setdefault(key, {}).setdefault(row["metric"], []).append(row)
            if is_job_problem(row):
                run.problems.append(row)
        return run

    def cell_key(self, row: Mapping[str, Any]) -> CellKey:
        return (row["dataset"], row["model"], row["framework"], row["target"], row["variant"],
                row["seed"] if self.with_seed else None)

    def side(self, identity: Identity) -> Side | None:
        rows = self.measurements.get(identity)
        return None if rows is None else Side(rows, self.cells.get(identity[:-1], {}))

    def cell_problem(self, cell: CellKey) -> Side | None:
        """The failed (or unavailable) job of a cell: the status of every figure it would have measured."""
        rows = [r for rows in self.cells.get(cell, {}).values() for r in rows if is_job_problem(r)]
        return Side(rows, self.cells.get(cell, {})) if rows else None

    def upstream_problem(self, cell: CellKey) -> dict[str, Any] | None:
        """A failed job of another cell that this one depends on (training, or the conversion that makes its
        variant), so that the cell has no rows at all; None when there is none."""
        dataset, model, framework, target, variant, seed = cell
        candidates = [r for r in self.problems
                      if (r["dataset"], r["model"], r["framework"]) == (dataset, model, framework)
                      and (seed is None or r["seed"] in (None, seed)) and r["target"] != target
                      and (not r["variant"] or variant.startswith(r["variant"]))]
        return max(candidates, key=lambda r: len(r["variant"]), default=None)

    @property
    def seeds(self) -> list[int]:
        return sorted({r["seed"] for r in self.rows if r["seed"] is not None})


# -- the changes -------------------------------------------------------------------------------------


@dataclass
class Change:
    """One identity compared: how it changed, both sides, and (for a value change) the verdict on noise."""

    identity: Identity
    kind: str  # value | unchanged | status | error | appeared | disappeared
    a: Side | None
    b: Side | None
    noise: Noise | None = None
    reason: str = ""  # why one side has no figure: the job upstream that failed, with its error

    @property
    def metric(self) -> str:
        return self.identity[-1]

    @property
    def cell(self) -> CellKey:
        return self.identity[:-1]  # type: ignore[return-value]

    @property
    def row(self) -> dict[str, Any]:
        """A representative row (B's when there is one): its kind, unit and method."""
        side = self.b or self.a
        assert side is not None
        return side.rows[0]

    @property
    def unit(self) -> str:
        return (self.b or self.a).unit if (self.b or self.a) else ""  # type: ignore[union-attr]

    @property
    def status_a(self) -> str:
        return status_of(self.a.rows) if self.a else "missing"

    @property
    def status_b(self) -> str:
        return status_of(self.b.rows) if self.b else "missing"

    @property
    def delta(self) -> float | None:
        if self.kind != "value" or self.a is None or self.b is None:
            return None
        va, vb = self.a.value, self.b.value
        return None if va is None or vb is None else vb - va

    @property
    def relative(self) -> float | None:
        delta = self.delta
        va = self.a.value if self.a else None
        if delta is None or va is None or va == 0 or not math.isfinite(delta):
            return None
        return delta / abs(va)

    @property
    def exceeds(self) -> bool:
        return self.noise is not None and self.noise.exceeds

    @property
    def label(self) -> str:
        if self.kind == "value" and self.noise is not None:
            return self.noise.label
        return KIND_LABELS[self.kind]


def _value_change(identity: Identity, a: Side, b: Side) -> Change:
    va, vb = a.value, b.value
    if va is None or vb is None:
        return Change(identity, "unchanged" if va is None and vb is None else "status", a, b)
    if va == vb:
        return Change(identity, "unchanged", a, b)
    return Change(identity, "value", a, b, judge(a, b))


def _one_sided(identity: Identity, present: IndexedRun, absent: IndexedRun, present_is_b: bool) -> Change | None:
    """An identity that only one run has: a status change when the other run's job for that cell failed,
    else appeared (or disappeared), with the failure upstream that explains it."""
    side = present.side(identity)
    assert side is not None
    cell = identity[:-1]
    if any(is_job_problem(r) for r in side.rows) and absent.cells.get(cell):  # type: ignore[arg-type]
        return None  # the other run measured this cell: the figures' own status changes say it
    problem = absent.cell_problem(cell)  # type: ignore[arg-type]
    if problem is not None:
        a, b = (problem, side) if present_is_b else (side, problem)
        return Change(identity, "status", a, b)
    upstream = absent.upstream_problem(cell)  # type: ignore[arg-type]
    reason = ""
    if upstream is not None:
        reason = (f"{upstream['kind'] or upstream['metric']} {upstream['status']} for {upstream['target']}"
                  f"{' ' + upstream['variant'] if upstream['variant'] else ''}: {error_summary(upstream['error'])}")
    a, b = (None, side) if present_is_b else (side, None)
    return Change(identity, "appeared" if present_is_b else "disappeared", a, b, reason=reason)


def match(a: IndexedRun, b: IndexedRun) -> list[Change]:
    """Every identity of either run as a change (unchanged ones included), in a stable order."""
    changes: list[Change] = []
    for identity in sorted(set(a.measurements) | set(b.measurements), key=_identity_sort):
        if identity[-1] in NOT_COMPARED:
            continue
        side_a, side_b = a.side(identity), b.side(identity)
        if side_a is None or side_b is None:
            change = (_one_sided(identity, b, a, present_is_b=True) if side_a is None
                      else _one_sided(identity, a, b, present_is_b=False))
            if change is not None:
                changes.append(change)
            continue
        status_a, status_b = status_of(side_a.rows), status_of(side_b.rows)
        if status_a != status_b:
            changes.append(Change(identity, "status", side_a, side_b))
        elif status_a != "ok":
            same = error_of(side_a.rows) == error_of(side_b.rows)
            changes.append(Change(identity, "unchanged" if same else "error", side_a, side_b))
        else:
            changes.append(_value_change(identity, side_a, side_b))
    return changes


def _identity_sort(identity: Identity) -> tuple[Any, ...]:
    dataset, model, framework, target, variant, seed, metric = identity
    return (dataset, model, framework, not is_native(framework, target), target, variant,
            -1 if seed is None else seed, metric)


@dataclass
class Comparison:
    """Two runs compared: their info, whether seeds were pooled, and every change."""

    a: IndexedRun
    b: IndexedRun
    pooled: bool
    changes: list[Change]

    def of_kind(self, *kinds: str) -> list[Change]:
        return [c for c in self.changes if c.kind in kinds]

    @property
    def beyond_noise(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "value" and c.exceeds]

    @property
    def within_noise(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "value" and not c.exceeds]

    def counts(self) -> dict[str, int]:
        """How many measurements changed in each way (the CLI's summary, the report's summary table)."""
        return {
            "compared": len(self.changes),
            "beyond noise": len(self.beyond_noise),
            "within noise": len(self.within_noise),
            "unchanged": len(self.of_kind("unchanged")),
            "appeared": len(self.of_kind("appeared")),
            "disappeared": len(self.of_kind("disappeared")),
            "status changed": len(self.of_kind("status")),
            "error changed": len(self.of_kind("error")),
        }

    def status_transitions(self) -> dict[str, int]:
        """`ok → failed` and the like, with how many measurements made each transition."""
        out: dict[str, int] = {}
        for change in self.of_kind("status"):
            key = f"{change.status_a} → {change.status_b}"
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def has_differences(self) -> bool:
        """Anything a reader must look at: a change beyond noise, a status change, a new or missing figure."""
        return bool(self.beyond_noise or self.of_kind("status", "error", "appeared", "disappeared"))


def compare_runs(run_a: Any, rows_a: Iterable[Any] | None, run_b: Any, rows_b: Iterable[Any] | None,
                 pool_seeds: bool | None = None) -> Comparison:
    """Match two runs' measurements and judge every change; `pool_seeds=None` pools only when the runs'
    seeds differ (set aside the seed, compare the mean over seeds)."""
    data_a, data_b = normalize_rows(rows_a), normalize_rows(rows_b)
    if pool_seeds is None:
        seeds_a = {r["seed"] for r in data_a if r["seed"] is not None}
        seeds_b = {r["seed"] for r in data_b if r["seed"] is not None}
        pool_seeds = seeds_a != seeds_b
    a = IndexedRun.build(run_info(run_a), data_a, with_seed=not pool_seeds)
    b = IndexedRun.build(run_info(run_b), data_b, with_seed=not pool_seeds)
    return Comparison(a, b, pool_seeds, match(a, b))


# -- sections ----------------------------------------------------------------------------------------


def _signed(text: str, value: float) -> str:
    return text if value < 0 or text.startswith(("+", "-")) else f"+{text}"


def format_delta(delta: float, unit: str, metric: str) -> str:
    """A change written for a reader: percentage points for fractions, else the unit's own way, signed."""
    if unit.strip().lower() in {"fraction", "ratio", "proportion"}:
        return f"{delta * 100:+.2f} pp"
    return _signed(format_value(delta, unit, metric), delta)


def _value_text(side: Side | None) -> str:
    if side is None:
        return MISSING
    status = status_of(side.rows)
    if status != "ok":
        return status
    value = side.value
    text = format_value(value, side.unit, side.metric)
    if len(side.measured) > 1:
        text += f" (mean of {len(side.measured)})"
    return text


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
            "a": Cell(_value_text(change.a), change.a.value),
            "b": Cell(_value_text(change.b), change.b.value),
            "delta": Cell(MISSING if delta is None else format_delta(delta, change.unit, change.metric), delta),
            "relative": Cell(MISSING if relative is None else f"{relative * 100:+.1f} %", relative),
            "noise": Cell(change.noise.text, change.noise.text, note=change.noise.method),
            "verdict": Cell(change.noise.label, int(change.exceeds),
                            status="inconsistent" if change.exceeds else ""),
        })
    return table


def _describe(change: Change) -> str:
    """`accuracy of lenet1 (pytorch → onnxruntime, torch.onnx (dynamo)): 12.00 % → 24.00 % (+12.00 pp)`."""
    _dataset, model, framework, target, variant, seed = change.cell
    where = framework if is_native(framework, target) else f"{framework} → {target}"
    if variant:
        where += f", {variant}"
    if seed is not None:
        where += f", seed {seed}"
    text = f"{change.metric} of {model} ({where})"
    if change.kind == "value" and change.delta is not None:
        delta = format_delta(change.delta, change.unit, change.metric)
        text += f": {_value_text(change.a)} → {_value_text(change.b)} ({delta})"
    elif change.kind in ("status", "error"):
        text += f": {change.status_a} → {change.status_b}"
    return text


def section_answer(changes: Sequence[Change], compared: int) -> str:
    beyond = [c for c in changes if c.exceeds]
    within = len(changes) - len(beyond)
    if not beyond:
        return (f"No measurement changed beyond noise; {plural(within, 'measurement')} of {compared:,} changed "
                "within noise.")
    listed = [_describe(c) for c in sorted(beyond, key=lambda c: -abs(c.relative or 0.0))[:3]]
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
    order = [*(i for i in SECTION_IDS if i in SECTION_TITLES), *sorted(set(by_section) - set(SECTION_IDS))]
    for section_id in order:
        changes = by_section.get(section_id)
        if changes:
            title = SECTION_TITLES.get(section_id, section_id.capitalize())
            sections.append(Section(section_id, title, section_answer(changes, compared[section_id]),
                                    tables=[value_changes_table(f"{section_id}-changes", f"{title}: changes",
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
        values = "; ".join(f"{c.metric} {_value_text(side(c))}" for c in members if status == "ok")
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


def headline(comparison: Comparison) -> str:
    """One line for a terminal: the counts that matter."""
    counts = comparison.counts()
    transitions = comparison.status_transitions()
    status = f" ({', '.join(f'{n} {t}' for t, n in transitions.items())})" if transitions else ""
    return (f"{counts['beyond noise']:,} changed beyond noise, {counts['within noise']:,} within noise, "
            f"{counts['unchanged']:,} unchanged; {counts['appeared']:,} appeared, {counts['disappeared']:,} "
            f"disappeared, {counts['status changed']:,} changed status{status}")


def describe(change: Change) -> str:
    """One change in words, as the report's answers list it."""
    return _describe(change)


def change_fields(change: Change) -> dict[str, str]:
    """One change as a terminal's table shows it: where, what, run A, run B, the change, the noise, the verdict.

    For a status change the noise is the error of the side that is not ok.
    """
    _dataset, model, framework, target, variant, seed = change.cell
    where = framework if is_native(framework, target) else f"{framework} → {target}"
    where += f", {variant}" if variant else ""
    where += f", seed {seed}" if seed is not None else ""
    delta = change.delta
    if change.noise is not None:
        noise = change.noise.text
    else:
        failing = change.b if change.b and status_of(change.b.rows) != "ok" else change.a
        noise = error_summary(error_of(failing.rows)) if failing else change.reason
    return {"measurement": f"{change.metric} of {model} ({where})", "a": _value_text(change.a),
            "b": _value_text(change.b),
            "change": "" if delta is None else format_delta(delta, change.unit, change.metric),
            "noise": noise, "verdict": change.label}


__all__ = ["HTML_NAME", "MARKDOWN_NAME", "Change", "Comparison", "IndexedRun", "build_comparison_document",
           "change_fields", "compare_runs", "describe", "format_delta", "headline", "match", "write_comparison"]
