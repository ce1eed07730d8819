"""Two runs matched measurement by measurement, each pair one `Change` (see the package's docstring)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlcompat.report.formatting import error_summary
from dlcompat.report.rows import is_job_problem, is_native, normalize_rows
from dlcompat.report.run import run_info

from .floor import LocalisationKey, localisation_key, localisation_rows
from .noise import NOT_COMPARED, Noise, Side, judge

Identity = tuple[str, str, str, str, str, int | None, str]  # dataset, model, framework, target, variant, seed, metric
CellKey = tuple[str, str, str, str, str, int | None]

#: the order in which a side's statuses decide its own when its seeds disagree
STATUS_PRECEDENCE: tuple[str, ...] = ("failed", "unavailable")

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
    #: each localised artifact's rows: the measured noise floor of every cell that runs it (`floor.py`)
    localisations: dict[LocalisationKey, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def build(cls, info: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], with_seed: bool) -> IndexedRun:
        run = cls(dict(info), [dict(r) for r in rows], with_seed)
        run.localisations = localisation_rows(run.rows, with_seed)
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
        if rows is None:
            return None
        return Side(rows, self.cells.get(identity[:-1], {}),
                    self.localisations.get(localisation_key(rows[0], self.with_seed), []))

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


__all__ = ["Change", "Comparison", "IndexedRun", "compare_runs", "error_of", "match", "status_of"]
