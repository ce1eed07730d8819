"""The report as data: its sections, each with an answer, tables, charts and text blocks.

`build_document(run, rows)` is the one place that decides what the report says; `html.py` and
`markdown.py` only lay it out, so the two never disagree. Markdown has no charts: every number a
chart shows is also in a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlcompat import __version__

from . import charts, deployment, narrative, robustness, tables, training
from .rows import is_other, is_training, normalize_rows
from .tables import Table


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    figure: dict[str, Any]


@dataclass(frozen=True)
class Block:
    """Preformatted text shown as it is (the study's TOML config)."""

    id: str
    title: str
    text: str
    language: str = ""


@dataclass
class Section:
    id: str
    title: str
    answer: str
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        """False when the section is only its one-line answer (nothing measured)."""
        return bool(self.tables or self.charts or self.blocks)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]
    generator: str = f"dlcompat {__version__}"

    def section(self, section_id: str) -> Section:
        return next(s for s in self.sections if s.id == section_id)


#: The ids of the sections every report has, in order ("other" appears only when needed).
SECTION_IDS: tuple[str, ...] = ("summary", "training", "accuracy", "latency", "findings", "environment")


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    for method in ("model_dump", "to_dict", "_asdict"):
        if callable(getattr(value, method, None)):
            return dict(getattr(value, method)())
    if hasattr(value, "__dict__"):
        return dict(vars(value))
    return None


def run_info(run: Any) -> dict[str, Any]:
    """The run's info as a dict of the expected shapes, whatever it was given.

    Accepts a dict, a pydantic model, a dataclass or None; `environment`, its `packages` and `jobs`
    become dicts, `seeds` a list and `config_toml` text, so nothing downstream trips on a surprise.
    """
    info = _as_dict(run) or {}
    environment = _as_dict(info.get("environment"))
    if environment is None:
        environment = {"description": str(info.get("environment"))}
    packages = environment.get("packages")
    if isinstance(packages, list | tuple):
        packages = {str(name): "" for name in packages}
    environment["packages"] = _as_dict(packages) or {}
    info["environment"] = environment
    info["jobs"] = _as_dict(info.get("jobs")) or {}
    seeds = info.get("seeds")
    info["seeds"] = [] if seeds is None else list(seeds) if isinstance(seeds, list | tuple) else [seeds]
    config = info.get("config_toml")
    info["config_toml"] = "" if config is None else str(config)
    return info


def _tables(*candidates: Table) -> list[Table]:
    return [table for table in candidates if table.rows]


def _charts(*candidates: tuple[str, str, dict[str, Any] | None]) -> list[Chart]:
    return [Chart(chart_id, title, figure) for chart_id, title, figure in candidates if figure is not None]


def build_document(run: Any, rows: Iterable[Any] | None) -> Document:
    """Everything the report shows, from the run's info and its tidy measurement rows."""
    info = run_info(run)
    data = normalize_rows(rows)
    name = str(info.get("name") or info.get("id") or "unnamed run")
    subtitle_parts = [f"run {info['id']}" if info.get("id") else "",
                      f"created {info['created']}" if info.get("created") else "",
                      f"status {info['status']}" if info.get("status") else ""]
    subtitle = ", ".join(p for p in subtitle_parts if p)
    core = [r for r in data if not robustness.is_robustness(r)]  # attack rows have their own section

    sections = [
        Section("summary", "Summary", narrative.summary_answer(info, data),
                tables=_tables(tables.run_facts_table(info, data))),
        Section("training", "Training across frameworks",
                " ".join(t for t in (narrative.training_answer(data), training.training_verdict_answer(data)) if t),
                charts=_charts(("learning-curves", "Learning curves (mean over seeds)",
                                training.learning_curves_chart(data))),
                tables=_tables(training.framework_accuracy_table(data), training.framework_verdict_table(data),
                               tables.training_table(data) if any(is_training(r) for r in data)
                               else tables.Table("training", "Training", []))),
        Section("accuracy", "Accuracy & inconsistency per target", narrative.accuracy_answer(core),
                charts=_charts(("accuracy", "Accuracy per cell", charts.accuracy_chart(core)),
                               ("label-flips", "Label flips against the source framework",
                                charts.label_flips_chart(core))),
                tables=_tables(tables.cells_table(core), tables.conversions_table(core))),
        Section("latency", "Latency", narrative.latency_answer(data),
                charts=_charts(("latency", "Median latency, p10–p90 error bars", charts.latency_chart(data))),
                tables=_tables(tables.latency_table(data))),
    ]
    mobile = deployment.deployment_section(core)  # mobile deployments: size against accuracy per precision
    if mobile is not None:
        sections.append(mobile)
    robust = robustness.robustness_section(data)
    if robust is not None:
        sections.append(robust)
    if any(is_other(r) for r in core):
        sections.append(Section(
            "other", "Other measurements",
            "Measurements this report has no dedicated view for yet, listed one per row.",
            tables=_tables(tables.other_metrics_table(core))))
    sections += [
        Section("findings", "Findings", narrative.findings_answer(data),
                tables=_tables(tables.findings_table(data))),
        Section("environment", "Environment & method", narrative.environment_answer(info, data),
                tables=_tables(tables.environment_table(info, data), tables.packages_table(info),
                               tables.methods_table(data)),
                blocks=[Block("config", "Study configuration", str(info["config_toml"]).rstrip("\n"), "toml")]
                if info.get("config_toml") else []),
    ]
    return Document(title=f"dlcompat report: {name}", subtitle=subtitle, sections=sections)


__all__ = ["SECTION_IDS", "Block", "Chart", "Document", "Section", "build_document", "run_info"]
