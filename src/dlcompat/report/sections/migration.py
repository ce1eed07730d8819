"""Migration: every trained model moved into every other framework, by weight transfer and by converters.

Answers the study's migration question (when a model moves from framework A to framework B, how many
predictions change, and why?) from the rows of the moves (study/plan.py `_plan_migrations`): the
`evaluate` and `compare` rows of a cell whose target is another framework, its `variant` the route
(`weight transfer`, or the converter chain and the runtime it lands in, `torch.onnx (dynamo) →
onnx2tf`), the `unavailable` rows of moves no converter makes, and the `convert` rows of the chain's
steps (time, size, tool and version). A conversion that failed leaves only its own row: the moves it
would have fed are recovered from the landing runtimes in the registry, and marked failed with its error.

`build(run)` is the whole section: one heatmap of label flips per dataset × model and
route (source × target), failed and unavailable cells marked with their error on hover, a table of
every move and the failures in full.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..charts import FONT, esc, figure_spec
from ..formatting import (
    MISSING,
    count,
    display_name,
    error_summary,
    format_value,
    human_bytes,
    join_words,
    percent,
    plural,
    scientific,
    significant,
    slug,
)
from ..model import Cell, Chart, Column, Section, Table
from ..tables import text_cell
from ..targets import (
    STEP_SEPARATOR,
    WEIGHT_TRANSFER,
    chain_prefixes,
    framework_names,
    is_migration,
    last_step,
    migration_landings,
)
from .base import RunData, SectionSpec
from .robustness import transfer_summary_table

Key = tuple[str, str, str, int | None, str, str]  # dataset, model, source, seed, target, variant
#: the route of a move that no converter makes (variant `converter` or `converter: onnx2torch`)
NO_CONVERTER = "no converter"
_FIGURES = ("accuracy", "source_accuracy", "accuracy_change", "label_flips", "label_flip_rate", "top5_agreement",
            "max_abs_logit_diff", "mean_abs_logit_diff", "p99_abs_logit_diff", "min_atol", "min_rtol")
_PROBLEM_METRICS = frozenset({"evaluate", "compare", "unavailable", "convert"})


@dataclass
class Move:
    """One model moved from its source framework into a target framework along one route."""

    key: Key
    figures: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    problem: Mapping[str, Any] | None = None
    steps: list[Mapping[str, Mapping[str, Any]]] = field(default_factory=list)  # each convert step's rows

    @property
    def source(self) -> str:
        return self.key[2]

    @property
    def target(self) -> str:
        return self.key[4]

    @property
    def variant(self) -> str:
        return self.key[5]

    @property
    def is_weight_transfer(self) -> bool:
        return self.variant == WEIGHT_TRANSFER

    @property
    def chain(self) -> str:
        """The converter chain without the runtime it lands in; NO_CONVERTER for a move no converter makes."""
        if self.is_weight_transfer:
            return WEIGHT_TRANSFER
        if STEP_SEPARATOR not in self.variant:
            return NO_CONVERTER
        return self.variant.rsplit(STEP_SEPARATOR, 1)[0]

    @property
    def landing(self) -> str:
        """The runtime that runs the converted model in the target framework (`onnx2tf`), or ''."""
        return last_step(self.variant) if STEP_SEPARATOR in self.variant else ""

    @property
    def status(self) -> str:
        if self.problem is not None and self.value("label_flips") is None:
            return str(self.problem["status"])
        return "ok"

    def value(self, metric: str) -> float | None:
        row = self.figures.get(metric)
        if row is None or row["status"] != "ok" or row["value"] is None or not math.isfinite(row["value"]):
            return None
        return float(row["value"])

    def step_value(self, metric: str) -> list[float]:
        return [float(rows[metric]["value"]) for rows in self.steps
                if metric in rows and rows[metric]["status"] == "ok" and rows[metric]["value"] is not None]

    @property
    def conversion_time(self) -> float | None:
        times = self.step_value("conversion_time")
        return sum(times) if times and len(times) == len(self.steps) else None

    @property
    def converted_size(self) -> float | None:
        if not self.steps:
            return None
        last = self.steps[-1].get("converted_size")
        return float(last["value"]) if last is not None and last["status"] == "ok" and last["value"] is not None \
            else None

    @property
    def tools(self) -> list[str]:
        """Each step's tool and version, as its convert rows recorded them (`torch.onnx (dynamo) 2.13.0`)."""
        out = []
        for rows in self.steps:
            method = next((r["method"] for r in rows.values() if r.get("method")), {})
            tool = str(method.get("tool") or method.get("converter") or "")
            if tool:
                version = method.get("tool_version")
                out.append(f"{tool} {version}" if version else tool)
        return out


def moves(rows: Sequence[Mapping[str, Any]]) -> list[Move]:
    """The run's moves between frameworks, each with its figures, its convert steps or why it could not be made."""
    found: dict[Key, Move] = {}
    converts: dict[tuple[str, str, str, int | None, str], dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for row in rows:
        if row["kind"] in ("convert", "migrate"):  # a route's steps: its converters and its weight transfer
            converts[(row["dataset"], row["model"], row["framework"], row["seed"], row["variant"])][row["metric"]] = row
            continue
        if not is_migration(row):
            continue
        key: Key = (row["dataset"], row["model"], row["framework"], row["seed"], row["target"], row["variant"])
        move = found.setdefault(key, Move(key))
        if row["status"] != "ok" and row["metric"] in _PROBLEM_METRICS:
            if move.problem is None or row["metric"] != "compare":  # the evaluation's reason wins
                move.problem = row
        elif row["metric"] in _FIGURES or row["status"] != "ok":
            move.figures[row["metric"]] = row
    for move in found.values():
        if move.is_weight_transfer or move.chain == NO_CONVERTER:
            continue
        where = move.key[:4]
        landing = [move.variant] if (*where, move.variant) in converts else []  # the landing edge's own step
        move.steps = [converts.get((*where, prefix), {}) for prefix in [*chain_prefixes(move.chain), *landing]]
        failed = next((r for rows in move.steps for r in rows.values() if r["status"] != "ok"), None)
        if failed is not None and move.problem is None and not move.figures:
            move.problem = failed
    _add_moves_a_failed_conversion_stopped(found, converts)
    order = {name: i for i, name in enumerate(framework_names_in_order())}
    return sorted(found.values(), key=lambda m: (m.key[0], m.key[1], order.get(m.source, 99), m.source,
                                                 -1 if m.key[3] is None else m.key[3], m.chain != WEIGHT_TRANSFER,
                                                 m.chain, order.get(m.target, 99), m.target))


def framework_names_in_order() -> list[str]:
    from dlcompat.frameworks.registry import framework_names as registered

    return list(registered())


def _add_moves_a_failed_conversion_stopped(found: dict[Key, Move], converts: Mapping[Any, Mapping[str, Any]]) -> None:
    """A failed conversion leaves no evaluate or compare rows for the moves after it (they were skipped):
    recover them from the landing runtimes that accept the format it was writing, where the run moved
    that model at all."""
    moved = {key[:4] for key in found}
    for (dataset, model, source, seed, variant), rows in converts.items():
        problem = next((r for r in rows.values() if r["status"] != "ok"), None)
        if problem is None or (dataset, model, source, seed) not in moved:
            continue
        for runtime, (leaves, framework) in migration_landings().items():
            if framework == source:
                continue
            if problem["target"] == leaves:  # a step before the landing failed: the route goes on to the runtime
                route = f"{variant}{STEP_SEPARATOR}{runtime}"
            elif last_step(variant) == runtime:  # the landing edge itself failed: its variant is the route
                route = variant
            else:
                continue
            key: Key = (dataset, model, source, seed, framework, route)
            if key not in found:
                found[key] = Move(key, problem=problem, steps=[dict(rows)])


# -- the heatmaps ---------------------------------------------------------------------------------------

#: zero flips is green; any flip runs from pale yellow to red, light enough for dark text on every cell
FLIP_COLORSCALE = [[0.0, "#dcefdc"], [1e-9, "#fff1c9"], [0.5, "#f7b267"], [1.0, "#e4664f"]]
#: the marked cells: unavailable (grey), the source itself (white), failed (red)
MARK_COLORSCALE = [[0.0, "#e6e8ec"], [0.5, "#ffffff"], [1.0, "#f4b6b6"]]
_MARK = {"unavailable": 0.0, "source": 0.5, "failed": 1.0}


def _hover(move: Move) -> str:
    """Plotly hover text (its own small markup: escaped text, <br> between lines)."""
    lines = [f"{display_name(move.source)} → {display_name(move.target)}",
             WEIGHT_TRANSFER if move.is_weight_transfer else move.variant]
    if move.status != "ok" and move.problem is not None:
        lines.append(f"{move.problem['status']} ({move.problem['kind']}): {error_summary(move.problem['error'])}")
    else:
        flips, rate = move.value("label_flips"), move.value("label_flip_rate")
        if flips is not None:
            lines.append(f"label flips: {count(flips)}" + (f" ({percent(rate)})" if rate is not None else ""))
        source, target = move.value("source_accuracy"), move.value("accuracy")
        if source is not None and target is not None:
            lines.append(f"accuracy: {percent(source)} → {percent(target)} ({(target - source) * 100:+.2f} pp)")
        for metric, label in (("top5_agreement", "top-5 agreement"), ("max_abs_logit_diff", "max |Δlogit|")):
            value = move.value(metric)
            if value is not None:
                lines.append(f"{label}: {percent(value) if metric == 'top5_agreement' else scientific(value)}")
    return "<br>".join(esc(line) for line in lines)


def _cell_of(group: list[Move]) -> tuple[float | None, float | None, str, str]:
    """(flips z, mark z, text, hover) of one heatmap cell from its moves (one per seed)."""
    hover = "<br>—<br>".join(_hover(m) for m in group)
    problems = [m for m in group if m.status != "ok"]
    if problems:
        status = "failed" if any(m.status == "failed" for m in problems) else "unavailable"
        return None, _MARK[status], ("failed" if status == "failed" else "n/a"), hover
    flips = [m.value("label_flips") for m in group]
    known = [f for f in flips if f is not None]
    if not known:
        return None, None, "not compared", hover
    mean = sum(known) / len(known)
    return mean, None, count(round(mean, 1)), hover


def heatmap(items: Sequence[Move], frameworks: Sequence[str], title_rows: str) -> dict[str, Any] | None:
    """Label flips, one row per source (and converter chain), one column per target framework.

    Two traces: the flips (a colour scale from zero, green, to the most flips, dark red), and over it the
    marked cells (failed red, unavailable grey, the source itself white), each with its error on hover.
    """
    if not items:
        return None
    sources = [f for f in frameworks if any(m.source == f for m in items)]
    targets = [f for f in frameworks if any(m.target == f for m in items) or f in sources]
    rows: list[tuple[str, str]] = []  # (source, chain)
    for source in sources:
        chains = sorted({m.chain for m in items if m.source == source and m.chain != NO_CONVERTER})
        rows += [(source, chain) for chain in chains] or [(source, NO_CONVERTER)]
    cells: dict[tuple[tuple[str, str], str], list[Move]] = defaultdict(list)
    for m in items:
        # a move no converter makes holds for every chain of its source
        for row in ([r for r in rows if r[0] == m.source] if m.chain == NO_CONVERTER else [(m.source, m.chain)]):
            cells[(row, m.target)].append(m)
    flips_z, marks_z, texts, hovers = [], [], [], []
    for row in rows:
        flips_row, marks_row, text_row, hover_row = [], [], [], []
        for target in targets:
            if target == row[0]:
                flips, mark, text, hover = None, _MARK["source"], "source", esc(f"{display_name(target)}: the source")
            elif (row, target) in cells:
                flips, mark, text, hover = _cell_of(cells[(row, target)])
            else:
                flips, mark, text, hover = None, None, "", esc("not planned in this run")
            flips_row.append(flips)
            marks_row.append(mark)
            text_row.append(esc(text))
            hover_row.append(hover)
        flips_z.append(flips_row)
        marks_z.append(marks_row)
        texts.append(text_row)
        hovers.append(hover_row)
    several_chains = any(chain not in (WEIGHT_TRANSFER, NO_CONVERTER) for _, chain in rows)
    y = [esc(display_name(source) + (f" · {chain}" if several_chains else "")) for source, chain in rows]
    x = [esc(display_name(t)) for t in targets]
    most = max((v for line in flips_z for v in line if v is not None), default=0.0)
    common = {"x": x, "y": y, "xgap": 2, "ygap": 2, "hoverongaps": False, "hoverinfo": "text",
              "texttemplate": "%{text}", "textfont": {"size": 12, "color": "#1d2430"}}
    data = [
        {"type": "heatmap", "name": "label flips", "z": flips_z, "text": texts, "hovertext": hovers,
         "colorscale": FLIP_COLORSCALE, "zmin": 0, "zmax": max(most, 1.0),
         "colorbar": {"title": {"text": "label flips"}, "thickness": 12}, **common},
        {"type": "heatmap", "name": "not compared", "z": marks_z, "text": texts, "hovertext": hovers,
         "colorscale": MARK_COLORSCALE, "zmin": 0, "zmax": 1, "showscale": False, **common},
    ]
    layout = {"height": 150 + 44 * len(rows),
              "margin": {"l": 16, "r": 16, "t": 16, "b": 48},
              "font": dict(FONT),
              "xaxis": {"title": {"text": "target framework"}, "side": "bottom", "automargin": True,
                        "type": "category"},
              "yaxis": {"title": {"text": esc(title_rows)}, "autorange": "reversed", "automargin": True,
                        "type": "category"},
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}
    return figure_spec(data, layout)


def heatmaps(items: Sequence[Move]) -> list[tuple[str, str, dict[str, Any]]]:
    """(chart id, title, figure) per dataset × model and route: weight transfer, then converters."""
    frameworks = framework_names_in_order()
    frameworks += sorted(({m.source for m in items} | {m.target for m in items}) - set(frameworks))
    groups = sorted({(m.key[0], m.key[1]) for m in items})
    several_datasets = len({g[0] for g in groups}) > 1
    several_seeds = len({m.key[3] for m in items}) > 1
    out = []
    for dataset, model in groups:
        mine = [m for m in items if m.key[0] == dataset and m.key[1] == model]
        name = f"{model} on {dataset}" if several_datasets else model
        seeds = " (mean over seeds)" if several_seeds else ""
        for route, title_rows, chosen in (
                ("weights", "source framework", [m for m in mine if m.is_weight_transfer]),
                ("converters", "source framework · converter chain", [m for m in mine if not m.is_weight_transfer])):
            figure = heatmap(chosen, frameworks, title_rows)
            if figure is not None:
                label = "weight transfer" if route == "weights" else "converter route"
                out.append((f"migration-{route}-{slug(dataset)}-{slug(model)}",
                            f"{name}: label flips by {label}, source × target{seeds}", figure))
    return out


# -- tables ---------------------------------------------------------------------------------------------


def _figure_cell(move: Move, metric: str) -> Cell:
    row = move.figures.get(metric)
    if row is None or row["status"] != "ok":
        problem = row if row is not None and row["status"] != "ok" else move.problem
        if problem is not None and move.status != "ok":
            status = str(problem["status"])
            return Cell(status, None, status=status, note=error_summary(problem["error"]))
        return Cell(MISSING)
    if row["value"] is None:
        return Cell(MISSING)
    if metric == "accuracy_change":
        return Cell(f"{row['value'] * 100:+.2f} pp", row["value"], status="inconsistent" if row["value"] else "")
    return Cell(format_value(row["value"], row["unit"], metric), row["value"])


def _flips_cell(move: Move) -> Cell:
    flips, rate = move.value("label_flips"), move.value("label_flip_rate")
    if flips is None:
        return _figure_cell(move, "label_flips")
    text = count(flips) + (f" ({percent(rate)})" if rate is not None else "")
    return Cell(text, flips, status="inconsistent" if flips > 0 else "")


def _status_cell(move: Move) -> Cell:
    if move.status == "ok":
        return Cell("ok", "ok")
    problem = move.problem or {}
    stage = {"convert": "conversion", "unavailable": "no route", "compare": "comparison"}.get(
        str(problem.get("kind", "")), "run")
    return Cell(f"{move.status} ({stage})", move.status, status=move.status,
                note=error_summary(str(problem.get("error", ""))))


def moves_table(items: Sequence[Move]) -> Table:
    several_datasets = len({m.key[0] for m in items}) > 1
    several_seeds = len({m.key[3] for m in items}) > 1
    columns = [*([Column("dataset", "dataset")] if several_datasets else []), Column("model", "model"),
               Column("source", "source"), Column("target", "target"),
               *([Column("seed", "seed", numeric=True)] if several_seeds else []),
               Column("route", "route"), Column("tools", "tools (versions)"),
               Column("source_accuracy", "source accuracy", numeric=True),
               Column("accuracy", "target accuracy", numeric=True),
               Column("accuracy_change", "accuracy change", numeric=True),
               Column("flips", "label flips (rate)", numeric=True),
               Column("top5_agreement", "top-5 agreement", numeric=True),
               Column("max_abs_logit_diff", "max |Δlogit|", numeric=True),
               Column("p99_abs_logit_diff", "p99 |Δlogit|", numeric=True),
               Column("min_atol", "smallest atol", numeric=True),
               Column("conversion_time", "conversion time", numeric=True),
               Column("size", "converted size", numeric=True), Column("status", "status")]
    table = Table("migration-moves", "Every move made or attempted: accuracy, label flips and logit differences "
                  "against the source", columns)
    for m in items:
        if m.status == "unavailable" and m.chain == NO_CONVERTER:
            continue  # no route exists: in the heatmap (grey) and the failures table
        time, size = m.conversion_time, m.converted_size
        table.rows.append({
            "dataset": text_cell(m.key[0]), "model": text_cell(m.key[1]),
            "source": text_cell(display_name(m.source)), "target": text_cell(display_name(m.target)),
            "seed": text_cell(m.key[3]),
            "route": text_cell(m.variant if m.chain != NO_CONVERTER else f"{NO_CONVERTER} ({m.variant})"),
            "tools": text_cell(", ".join(m.tools)),
            **{metric: _figure_cell(m, metric) for metric in ("source_accuracy", "accuracy", "accuracy_change",
                                                             "top5_agreement", "max_abs_logit_diff",
                                                             "p99_abs_logit_diff", "min_atol")},
            "flips": _flips_cell(m),
            "conversion_time": Cell(f"{significant(time)} s", time) if time is not None else Cell(MISSING),
            "size": Cell(human_bytes(size), size) if size is not None else Cell(MISSING),
            "status": _status_cell(m),
        })
    return table


def failures_table(items: Sequence[Move]) -> Table:
    """Every move that failed or could not be made, with its full error text."""
    table = Table("migration-failures", "Moves that failed or could not be made, with their error in full", [
        Column("model", "model"), Column("source", "source"), Column("target", "target"),
        Column("route", "route"), Column("status", "status"), Column("stage", "job"), Column("error", "error")])
    for m in items:
        if m.status == "ok" or m.problem is None:
            continue
        error = str(m.problem["error"]) or "(no error text recorded)"
        table.rows.append({
            "model": text_cell(m.key[1] if m.key[3] is None else f"{m.key[1]} (seed {m.key[3]})"),
            "source": text_cell(display_name(m.source)), "target": text_cell(display_name(m.target)),
            "route": text_cell(m.variant), "status": Cell(m.status, m.status, status=m.status),
            "stage": text_cell(m.problem["kind"]), "error": Cell(error, error)})
    return table


# -- the answer -----------------------------------------------------------------------------------------


def _label(m: Move) -> str:
    route = "weight transfer" if m.is_weight_transfer else m.variant
    return f"{m.key[1]} {display_name(m.source)} → {display_name(m.target)} ({route})"


def migration_answer(items: Sequence[Move]) -> str:
    if not items:
        return ("No model was moved between frameworks in this run: name at least two frameworks and set "
                "`migration = [\"weights\", \"converters\"]` in the study config to measure the migration matrix.")
    frameworks = {m.source for m in items} | {m.target for m in items}
    parts = [f"{plural(len(items), 'move')} between {len(frameworks)} frameworks."]
    for name, chosen in (("Weight transfer", [m for m in items if m.is_weight_transfer]),
                         ("Converters", [m for m in items if not m.is_weight_transfer and m.chain != NO_CONVERTER])):
        compared = [m for m in chosen if m.value("label_flips") is not None]
        if not compared:
            continue
        flipped = sorted((m for m in compared if (m.value("label_flips") or 0) > 0),
                         key=lambda m: -(m.value("label_flip_rate") or m.value("label_flips") or 0))
        diffs = [m.value("max_abs_logit_diff") for m in compared if m.value("max_abs_logit_diff") is not None]
        largest = f" (largest logit difference {scientific(max(diffs))})" if diffs else ""
        if not flipped:
            parts.append(f"{name} kept every label in all {plural(len(compared), 'compared move')}{largest}.")
            continue
        worst = flipped[0]
        rate = worst.value("label_flip_rate")
        parts.append(f"{name} changed labels in {len(flipped)} of {plural(len(compared), 'compared move')}{largest}; "
                     f"most of all {_label(worst)}: {count(worst.value('label_flips') or 0)} test images"
                     + (f" ({percent(rate)})." if rate is not None else "."))
    changes = [(m.value("accuracy_change"), m) for m in items if m.value("accuracy_change")]
    if changes:
        delta, m = max(changes, key=lambda item: abs(item[0] or 0.0))
        parts.append(f"The largest accuracy change: {(delta or 0) * 100:+.2f} points ({_label(m)}).")
    elif any(m.value("accuracy_change") is not None for m in items):
        parts.append("No move changed accuracy.")
    failed = [m for m in items if m.status == "failed"]
    if failed:
        parts.append(f"{plural(len(failed), 'move')} failed: "
                     f"{join_words(sorted({_label(m) for m in failed})[:3])}"
                     + (" and more" if len(failed) > 3 else "") + " (errors in full below).")
    missing = sorted({display_name(m.target) for m in items if m.status == "unavailable" and m.chain == NO_CONVERTER
                      and "no converter into" in str((m.problem or {}).get("error", ""))})
    if missing:
        parts.append(f"No converter exists into {join_words(missing, 'or')}; only weight transfer reaches "
                     f"{'it' if len(missing) == 1 else 'them'}.")
    other = [m for m in items if m.status == "unavailable" and not (
        m.chain == NO_CONVERTER and "no converter into" in str((m.problem or {}).get("error", "")))]
    if other:
        parts.append(f"{plural(len(other), 'other move')} could not be made here (hover a grey cell for why).")
    return " ".join(parts)


def build(run: RunData) -> Section:
    """The migration section; its answer says what to configure when the run moved nothing."""
    rows = run.rows
    items = moves(rows)
    found = [Chart(chart_id, title, figure) for chart_id, title, figure in heatmaps(items)]
    tables = [moves_table(items) if items else None, failures_table(items) if items else None,
              transfer_summary_table([r for r in rows if r["kind"] == "transfer" and r["target"] in framework_names()])]
    return Section(SPEC.id, SPEC.title, migration_answer(items),
                   tables=[t for t in tables if t is not None and t.rows], charts=found,
                   headline_sentences=3)  # the moves, then what weight transfer and converters did


SPEC = SectionSpec("migration", "Migration across frameworks", build, shows=is_migration)

__all__ = ["SPEC", "Move", "build", "failures_table", "heatmap", "heatmaps", "migration_answer", "moves", "moves_table"]
