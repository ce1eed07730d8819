"""The report's opening: what the run covered, how its jobs ended, whether moved models kept their labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..findings import DIVERGED, findings
from ..formatting import as_int, display_name, join_words, plural
from ..model import Section, Table
from ..rows import CellIndex, distinct, has_several_seeds, is_cell_metric, is_native, ok_value
from ..tables import field_table
from ..targets import CELL_KINDS, is_deployment, is_migration
from .base import RunData, SectionSpec


def _where(framework: str, target: str, variant: str) -> str:
    name = display_name(framework) if is_native(framework, target) else display_name(target)
    return f"{name} [{variant}]" if variant else name


def summary_answer(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """What the run covered, how its jobs ended, whether moved models kept their labels, how many cells failed."""
    name = run.get("name") or run.get("id") or "This run"
    if not rows:
        return f"Run {name} recorded no measurements."
    models = [str(m) for m in distinct(rows, "model")]
    datasets = [str(d) for d in distinct(rows, "dataset")]
    frameworks = [display_name(str(f)) for f in distinct(rows, "framework")]
    # Where models were run (runtimes), not the formats conversions passed through on the way.
    moved = [r for r in rows if r["target"] and not is_native(r["framework"], r["target"])
             and r["kind"] in CELL_KINDS and r["status"] == "ok"]
    into = sorted({display_name(r["target"]) for r in moved if is_migration(r)})
    deployed = sorted({display_name(r["target"]) for r in moved if is_deployment(r)})
    sentence = f"Run {name} covered {plural(len(models), 'model')}"
    if models:
        sentence += f" ({join_words(models)})"
    if datasets:
        sentence += f" on {join_words(datasets)}"
    if frameworks and "[check]" in str(run.get("config_toml") or ""):  # a check trains nothing: a user's file
        sentence += f", given as a {join_words(frameworks)} file"
    elif frameworks:
        sentence += f", trained in {join_words(frameworks)}"
    if into:
        sentence += f", moved into {join_words(into)}"
    if deployed:
        sentence += f"{',' if into else ''} and deployed to {join_words(deployed)}"
    parts = [sentence + "."]
    jobs = run.get("jobs") or {}
    total = as_int(jobs.get("total")) if isinstance(jobs, Mapping) else None
    if isinstance(jobs, Mapping) and total:
        text = f"{jobs.get('ok', 0)} of {plural(total, 'job')} succeeded"
        labels = (("failed", "failed"), ("unavailable", "were unavailable"),
                  ("skipped", "were skipped after a failure upstream"), ("cached", "came from the cache"))
        extras = [f"{jobs[k]} {label}" for k, label in labels if jobs.get(k)]
        parts.append(text + (f"; {join_words(extras)}" if extras else "") + ".")
    parts.append(_agreement_sentence(rows))
    problems = [f for f in findings(rows) if f.status not in ("inconsistent", DIVERGED)]  # measured, not failed
    if problems:
        parts.append(f"{plural(len(problems), 'cell')} failed or could not run; "
                     f"{'it is' if len(problems) == 1 else 'they are'} listed under Findings.")
    return " ".join(p for p in parts if p)


def _agreement_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    with_seed = has_several_seeds(rows)
    index = CellIndex.build([r for r in rows if is_cell_metric(r)], with_seed)
    compared = [(key, m) for key, m in index.items() if ok_value(m, "label_flips") is not None]
    if not compared:
        return ""
    flipped = [(key, m) for key, m in compared if (ok_value(m, "label_flips") or 0) > 0]
    if not flipped:
        noun = {1: "the one comparison", 2: "both comparisons"}.get(len(compared), f"all {len(compared)} comparisons")
        return f"Every moved model predicted the same label as its source on every test image ({noun})."
    key, metrics = max(flipped, key=lambda item: ok_value(item[1], "label_flips") or 0)
    images = plural(int(ok_value(metrics, "label_flips") or 0), "test image")
    where = f"{key[1]} on {_where(key[2], key[3], key[4])}"
    if len(flipped) == 1:
        return f"1 of {plural(len(compared), 'comparison')} changed predictions: {where} ({images})."
    return f"{len(flipped)} of {plural(len(compared), 'comparison')} changed predictions, most of all " \
           f"{where} ({images})."


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
    return field_table("run", "Run", pairs)


def _distinct(rows: Sequence[Mapping[str, Any]], column: str) -> list[str]:
    return sorted({str(row[column]) for row in rows if row[column] not in ("", None)})


def build(run: RunData) -> Section:
    """The summary: the run in a few sentences, and its facts (id, jobs, what its rows cover)."""
    facts = run_facts_table(run.info, run.rows)
    return Section(SPEC.id, SPEC.title, summary_answer(run.info, run.rows), tables=[facts] if facts.rows else [],
                   headline_sentences=3)


SPEC = SectionSpec("summary", "Summary", build)

__all__ = ["SPEC", "build", "run_facts_table", "summary_answer"]
