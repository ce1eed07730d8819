"""The report as data: its sections, each with an answer, tables, charts and text blocks.

`build_document(run, rows)` is the one place that decides what the report says; `html.py` and
`markdown.py` only lay it out, so the two never disagree. A section also says what it opens with: its
headline (the answer's first sentences, or its own `opening`) and its lead, the one chart or table that
carries the answer; the HTML folds everything else. Markdown has no charts: every number a
chart shows is also in a table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlcompat import __version__

from . import deployment, finding_groups, migration, narrative, robustness, tables, training
from .environment import environment_section, toolchains
from .rows import CURVE_METRICS, REPRODUCIBILITY_METRICS, is_native, is_other, is_training, normalize_rows
from .tables import Table
from .targets import is_deployment, is_migration


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


#: where one sentence of an answer ends and the next begins (answers are written by narrative.py and the sections;
#: a sentence may start with a model's lower-case name)
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!e\.g\.)(?<!i\.e\.)\s+(?=[A-Za-z0-9(\"'])")
#: how many sentences of its answer a section opens with; the HTML folds the rest
HEADLINE_SENTENCES = 2


def split_answer(answer: str, sentences: int = HEADLINE_SENTENCES) -> tuple[str, str]:
    """(the answer's first `sentences` sentences, the rest): the headline a reader sees first, then the detail."""
    parts = _SENTENCE_END.split(answer.strip())
    return " ".join(parts[:sentences]), " ".join(parts[sentences:])


@dataclass
class Section:
    id: str
    title: str
    answer: str
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    #: the id of the chart or table that carries the answer; by default the first chart, else the first table
    lead_id: str = ""
    #: the sentence or two the section opens with, where its answer's first two would not do (the HTML then
    #: folds the whole answer after it)
    opening: str = ""
    #: how many of the answer's sentences the section opens with (without an `opening`)
    headline_sentences: int = HEADLINE_SENTENCES

    @property
    def has_data(self) -> bool:
        """False when the section is only its one-line answer (nothing measured)."""
        return bool(self.tables or self.charts or self.blocks)

    @property
    def headline(self) -> str:
        """What the section opens with: its `opening`, else its answer's first sentences."""
        return self.opening or split_answer(self.answer, self.headline_sentences)[0]

    @property
    def answer_detail(self) -> str:
        """The rest of the answer ('' when the headline says it all): all of it after an `opening`."""
        return self.answer if self.opening else split_answer(self.answer, self.headline_sentences)[1]

    @property
    def lead(self) -> Chart | Table | None:
        """The one chart or table shown right after the answer (the HTML folds the others)."""
        items: list[Chart | Table] = [*self.charts, *self.tables]
        chosen = next((item for item in items if item.id == self.lead_id), None) if self.lead_id else None
        return chosen or (items[0] if items else None)

    def is_lead(self, item: Chart | Table) -> bool:
        return item is self.lead


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]
    generator: str = f"dlcompat {__version__}"

    def section(self, section_id: str) -> Section:
        return next(s for s in self.sections if s.id == section_id)


#: The ids of the sections every report has, in order: a summary, then one per research question
#: ("other" appears before "findings" only when the run measured something no section shows).
SECTION_IDS: tuple[str, ...] = ("summary", "training", "robustness", "migration", "deployment", "findings",
                                "environment")


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
    `job_environments` (job key -> (toolchain environment, what the job recorded), as the store gives it)
    becomes `toolchains` (each environment's Python and every package its jobs recorded) and `job_env`.
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
    if info.get("job_environments") and not info.get("toolchains"):
        info["toolchains"], info["job_env"] = toolchains(info["job_environments"])
    return info


def _tables(*candidates: Table) -> list[Table]:
    return [table for table in candidates if table.rows]


def _charts(*candidates: tuple[str, str, dict[str, Any] | None]) -> list[Chart]:
    return [Chart(chart_id, title, figure) for chart_id, title, figure in candidates if figure is not None]


def section_of(row: Mapping[str, Any]) -> str:
    """The id of the section that shows a (normalised) row: one per research question, else `other`."""
    if robustness.is_robustness(row):
        return "robustness"
    if (is_training(row) or row["metric"] in CURVE_METRICS or row["metric"] in REPRODUCIBILITY_METRICS
            or (row["kind"] == "evaluate" and is_native(row["framework"], row["target"]))):
        return "training"
    if is_migration(row):
        return "migration"
    if is_deployment(row) or row["kind"] == "convert":
        return "deployment"
    return "other"


def build_document(run: Any, rows: Iterable[Any] | None) -> Document:
    """Everything the report shows, from the run's info and its tidy measurement rows."""
    info = run_info(run)
    data = normalize_rows(rows)
    name = str(info.get("name") or info.get("id") or "unnamed run")
    subtitle_parts = [f"run {info['id']}" if info.get("id") else "",
                      f"created {info['created']}" if info.get("created") else "",
                      f"status {info['status']}" if info.get("status") else ""]
    subtitle = ", ".join(p for p in subtitle_parts if p)
    groups = finding_groups.group_findings(data, info)
    sections = [
        Section("summary", "Summary", narrative.summary_answer(info, data),
                tables=_tables(tables.run_facts_table(info, data)), headline_sentences=3),
        training.training_section(data),
        robustness.robustness_section(data) or Section("robustness", "Robustness across frameworks",
                                                       robustness.robustness_answer(data)),
        migration.migration_section(data),
        deployment.deployment_section(data),
    ]
    core = [r for r in data if not robustness.is_robustness(r)]  # attack rows have their own section
    if any(is_other(r) for r in core):
        sections.append(Section(
            "other", "Other measurements",
            "Measurements this report has no dedicated view for yet, listed one per row.",
            tables=_tables(tables.other_metrics_table(core))))
    sections += [
        Section("findings", "Findings", narrative.findings_answer(groups),
                tables=_tables(tables.finding_groups_table(groups))),
        environment_section(info, data),
    ]
    return Document(title=f"dlcompat report: {name}", subtitle=subtitle, sections=sections)


__all__ = ["SECTION_IDS", "Block", "Chart", "Document", "Section", "build_document", "run_info", "section_of",
           "split_answer"]
