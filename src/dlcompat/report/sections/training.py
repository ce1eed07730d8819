"""Training across frameworks: accuracy over seeds with its interval, pairwise verdicts, curves, reproducibility.

Answers the study's first question (does the same model, trained the same way, come out the same in
each framework?) from the tidy rows: the native `accuracy` of each seed's model, the `epoch_*`
curves of the train jobs, and the `bit_reproducible` rows of the reproduce jobs.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlcompat.metrics.statistics import compare_seeds, summarize

from .. import charts
from ..formatting import MISSING, display_name, format_value, join_words, percent, plural, significant
from ..model import Cell, Chart, Column, Section, Table
from ..rows import (
    CURVE_METRICS,
    REPRODUCIBILITY_METRICS,
    TRAINING_METRICS,
    CellIndex,
    CellKey,
    distinct,
    has_several_seeds,
    is_job_problem,
    is_native,
    is_training,
    job_problem,
    ok_value,
)
from ..tables import key_cells, key_columns, metric_cell, problem_cell, text_cell
from .base import RunData, SectionSpec

Group = tuple[str, str, str]  # dataset, model, framework


def native_accuracy(rows: Sequence[Mapping[str, Any]]) -> dict[Group, dict[int | None, float]]:
    """(dataset, model, framework) -> seed -> test accuracy of the model evaluated in the framework that trained it."""
    out: dict[Group, dict[int | None, float]] = defaultdict(dict)
    for row in rows:
        if (row["metric"] == "accuracy" and row["status"] == "ok" and row["value"] is not None
                and row["target"] == row["framework"]):
            out[(row["dataset"], row["model"], row["framework"])][row["seed"]] = float(row["value"])
    return out


def _by_group(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[Group, list[float]]:
    out: dict[Group, list[float]] = defaultdict(list)
    for row in rows:
        if row["metric"] == metric and row["status"] == "ok" and row["value"] is not None:
            out[(row["dataset"], row["model"], row["framework"])].append(float(row["value"]))
    return out


def _pm(mean: float, std: float) -> str:
    if math.isnan(std):
        return percent(mean)
    return f"{percent(mean)} ± {percent(std)}"


def framework_accuracy_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Per dataset × model × framework: accuracy over seeds (mean ± sd, 95% CI), epoch time, memory, reproducibility."""
    accuracy = native_accuracy(rows)
    epoch = _by_group(rows, "train_time_per_epoch")
    memory = _by_group(rows, "train_peak_rss")
    reproducible = _by_group(rows, "bit_reproducible")
    drift = _by_group(rows, "reproduce_max_weight_diff")
    table = Table("framework-accuracy", "Accuracy per framework over seeds", [
        Column("dataset", "dataset"), Column("model", "model"), Column("framework", "framework"),
        Column("seeds", "seeds", numeric=True), Column("accuracy", "accuracy (mean ± sd)", numeric=True),
        Column("ci", "95% CI of the mean"), Column("epoch", "time / epoch (median)", numeric=True),
        Column("memory", "training peak RSS (max)", numeric=True),
        Column("reproducible", "bit-for-bit with a fixed seed"),
    ])
    for group in sorted(set(accuracy) | set(reproducible)):
        dataset, model, framework = group
        seeds = accuracy.get(group, {})
        summary = summarize(list(seeds.values()))
        row = {"dataset": text_cell(dataset), "model": text_cell(model),
               "framework": text_cell(display_name(framework)),
               "seeds": Cell(str(summary.n), summary.n),
               "accuracy": Cell(_pm(summary.mean, summary.std) if summary.n else MISSING,
                                summary.mean if summary.n else None),
               "ci": Cell(MISSING if math.isnan(summary.ci_low) else
                          f"{percent(summary.ci_low)} – {percent(summary.ci_high)}", summary.ci_low),
               "epoch": _stat_cell(epoch.get(group), np.median, "s", "train_time_per_epoch"),
               "memory": _stat_cell(memory.get(group), np.max, "bytes", "train_peak_rss")}
        flags = reproducible.get(group)
        if flags:
            same = all(v == 1.0 for v in flags)
            worst = max(drift.get(group, [0.0]))
            row["reproducible"] = Cell("yes" if same else f"no (max |Δw| {worst:.2g})", 1.0 if same else 0.0,
                                       status="" if same else "inconsistent")
        else:
            row["reproducible"] = Cell(MISSING)
        table.rows.append(row)
    return table


def _stat_cell(values: list[float] | None, fn: Any, unit: str, metric: str) -> Cell:
    if not values:
        return Cell(MISSING)
    value = float(fn(values))
    return Cell(format_value(value, unit, metric), value)


def framework_verdict_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Each pair of frameworks per dataset × model: is the accuracy gap beyond seed-to-seed variance?"""
    accuracy = native_accuracy(rows)
    table = Table("framework-verdicts", "Framework pairs: accuracy gap against seed variance", [
        Column("dataset", "dataset"), Column("model", "model"), Column("a", "framework A"),
        Column("b", "framework B"), Column("gap", "mean accuracy A − B", numeric=True),
        Column("p", "p-value", numeric=True), Column("verdict", "verdict"),
    ])
    by_model: dict[tuple[str, str], list[str]] = defaultdict(list)
    for dataset, model, framework in sorted(accuracy):
        by_model[(dataset, model)].append(framework)
    for (dataset, model), frameworks in sorted(by_model.items()):
        for a, b in itertools.combinations(frameworks, 2):
            xa = list(accuracy[(dataset, model, a)].values())
            xb = list(accuracy[(dataset, model, b)].values())
            verdict = compare_seeds(xa, xb)
            gap = float(np.mean(xa) - np.mean(xb))
            table.rows.append({
                "dataset": text_cell(dataset), "model": text_cell(model),
                "a": text_cell(display_name(a)), "b": text_cell(display_name(b)),
                "gap": Cell(f"{gap * 100:+.2f} pp", gap),
                "p": Cell(MISSING if math.isnan(verdict.p_value) else f"{verdict.p_value:.3g}", verdict.p_value),
                "verdict": Cell(verdict.text, verdict.text, status="inconsistent" if verdict.differs else "",
                                note=verdict.test),
            })
    return table


def training_verdict_answer(rows: Sequence[Mapping[str, Any]]) -> str:
    """One sentence on the pairwise verdicts, for the Training section's answer."""
    table = framework_verdict_table(rows)
    if not table.rows:
        return ""
    differs = [r for r in table.rows if r["verdict"].status == "inconsistent"]
    untestable = [r for r in table.rows if r["p"].text == MISSING]
    if len(untestable) == len(table.rows):
        return ("With one seed per framework, no accuracy gap can be told apart from seed-to-seed noise; "
                "run several seeds for a verdict.")
    if not differs:
        return f"No framework pair differs in accuracy beyond seed-to-seed variance ({len(table.rows)} pairs)."
    pairs = ", ".join(f"{r['a'].text} vs {r['b'].text} on {r['model'].text}" for r in differs[:4])
    return f"{len(differs)} of {len(table.rows)} framework pairs differ beyond seed variance: {pairs}."


def learning_curves_chart(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Mean training loss per epoch (over seeds), one line per model × framework."""
    curves: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["metric"] == "epoch_train_loss" and row["status"] == "ok" and row["value"] is not None:
            epoch = (row.get("method") or {}).get("epoch")
            if isinstance(epoch, int):
                curves[(row["dataset"], row["model"], row["framework"])][epoch].append(float(row["value"]))
    if not curves:
        return None
    several_datasets = len({k[0] for k in curves}) > 1
    data = []
    for (dataset, model, framework), points in sorted(curves.items()):
        epochs = sorted(points)
        name = f"{model} · {display_name(framework)}" + (f" · {dataset}" if several_datasets else "")
        data.append({"type": "scatter", "mode": "lines+markers", "name": charts.esc(name),
                     "x": epochs, "y": [float(np.mean(points[e])) for e in epochs]})
    layout = {"height": 420 + 20 * (len(data) // 6), "xaxis": {"title": {"text": "epoch"}, "dtick": 1},
              "yaxis": {"title": {"text": "mean training loss"}, "type": "log"},
              "margin": {"l": 64, "r": 16, "t": 24, "b": 48},
              "legend": {"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#fafafa"}
    return charts.figure_spec(data, layout)


def accuracy_chart(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Test accuracy of each natively trained model, mean over seeds with its 95% CI as error bars."""
    accuracy = native_accuracy(rows)
    if not accuracy:
        return None
    several_datasets = len({group[0] for group in accuracy}) > 1
    points = []
    for (dataset, model, framework), seeds in sorted(accuracy.items()):
        summary = summarize(list(seeds.values()))
        half = None if math.isnan(summary.ci_low) else (summary.ci_high - summary.mean) * 100
        text = percent(summary.mean) + (f" (95% CI {percent(summary.ci_low)} – {percent(summary.ci_high)}, "
                                        f"{summary.n} seeds)" if half is not None else f" ({summary.n} seed)")
        points.append(charts.Point(display_name(framework), f"{model} · {dataset}" if several_datasets else model,
                                   summary.mean * 100, text, error_minus=half, error_plus=half))
    with_ci = any(p.error_plus is not None for p in points)  # one seed: no interval to draw
    figure = charts.bar_figure(points, "test accuracy (%)", error_bars=with_ci, height=340)
    low = min(p.y - (p.error_minus or 0.0) for p in points)
    figure["layout"]["yaxis"].update(rangemode="normal", range=[max(0.0, math.floor(low / 5) * 5 - 5), 100.5])
    return figure


# -- the answer -------------------------------------------------------------------------------------


def _model_label(key: CellKey, with_seed: bool, several_datasets: bool) -> str:
    dataset, model, _framework, _target, _variant, seed = key
    label = model
    if several_datasets:
        label += f" on {dataset}"
    if with_seed and seed is not None:
        label += f" (seed {seed})"
    return label


def _problem_count(rows: Sequence[Mapping[str, Any]]) -> int:
    """How many distinct cells (by job and key) failed or were unavailable among the rows."""
    keys = {(r["job"], r["dataset"], r["model"], r["framework"], r["target"], r["variant"], r["seed"])
            for r in rows if r["status"] != "ok"}
    return len(keys)


def training_answer(rows: Sequence[Mapping[str, Any]]) -> str:
    train_rows = [r for r in rows if is_training(r)]
    if not train_rows:
        return ("No model was trained in this run. Name `frameworks` and `models` in the study config to "
                "train each model natively in each framework.")
    with_seed = has_several_seeds(rows)
    several_datasets = len(distinct(train_rows, "dataset")) > 1
    index = CellIndex.build([{**r, "target": "", "variant": ""} for r in train_rows], with_seed)
    frameworks = [display_name(str(f)) for f in distinct(train_rows, "framework")]
    timed = [(key, m) for key, m in index.items() if ok_value(m, "train_time") is not None]
    losses = [(key, m) for key, m in index.items() if ok_value(m, "final_train_loss") is not None]
    parts = [f"Trained {plural(len(index), 'model')} in {join_words(frameworks)}."]

    def label(key: CellKey) -> str:
        name = _model_label(key, with_seed, several_datasets)
        return f"{name} in {display_name(key[2])}" if len(frameworks) > 1 else name

    def seconds(metrics: Mapping[str, Mapping[str, Any]], metric: str) -> str:
        return format_value(ok_value(metrics, metric), metrics[metric]["unit"] or "s")

    if len(timed) == 1:
        key, m = timed[0]
        text = f"{label(key)} took {seconds(m, 'train_time')}"
        if ok_value(m, "train_time_per_epoch") is not None:
            text += f" ({seconds(m, 'train_time_per_epoch')} per epoch)"
        parts.append(text + ".")
    elif timed:
        slow = max(timed, key=lambda item: ok_value(item[1], "train_time") or 0)
        fast = min(timed, key=lambda item: ok_value(item[1], "train_time") or 0)
        text = f"{label(slow[0])} took longest ({seconds(slow[1], 'train_time')}"
        if ok_value(slow[1], "train_time_per_epoch") is not None:
            text += f", {seconds(slow[1], 'train_time_per_epoch')} per epoch"
        parts.append(text + f"); {label(fast[0])} was quickest ({seconds(fast[1], 'train_time')}).")

    def loss(item: tuple[CellKey, Mapping[str, Mapping[str, Any]]]) -> float:
        return ok_value(item[1], "final_train_loss") or 0.0

    if len(losses) == 1:
        parts.append(f"The final training loss was {significant(loss(losses[0]))}.")
    elif losses:
        low, high = min(losses, key=loss), max(losses, key=loss)
        parts.append(f"Final training loss ranged from {significant(loss(low))} ({label(low[0])}) "
                     f"to {significant(loss(high))} ({label(high[0])}).")
    failed = _problem_count(train_rows)
    if failed:
        parts.append(f"{plural(failed, 'training job')} did not finish (see Findings).")
    return " ".join(parts)


def training_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per trained dataset × model × framework (× seed); unknown training metrics get columns too.

    A training job that failed as a whole shows its status in every column.
    """
    train_rows = [row for row in rows if is_training(row)]
    with_seed = has_several_seeds(rows)
    index = CellIndex.build([{**row, "target": "", "variant": ""} for row in train_rows], with_seed)
    fields = ("dataset", "model", "framework", "seed") if with_seed else ("dataset", "model", "framework")
    present = {row["metric"] for row in train_rows if not is_job_problem(row)}
    known = [m for m in TRAINING_METRICS if m in present]
    extra = sorted(present - set(TRAINING_METRICS))
    labels = {"train_time": "train time", "train_time_per_epoch": "time / epoch",
              "final_train_loss": "final train loss", "val_accuracy": "val accuracy",
              "train_peak_rss": "peak RSS"}
    columns = [Column(m, labels.get(m) or m.replace("_", " "), numeric=True)
               for m in (*known, *extra)]
    table = Table("training", "Training", key_columns(fields) + columns)
    for key, metrics in index.items():
        row = key_cells(key, fields)
        problem = job_problem(metrics)
        for column in columns:
            row[column.key] = metric_cell(metrics.get(column.key), problem)
        if not columns and problem is not None:
            row["status"] = problem_cell(problem)
        table.rows.append(row)
    if not columns and any(job_problem(m) for _, m in index.items()):
        table.columns.append(Column("status", "status"))
    return table


def shows(row: Mapping[str, Any]) -> bool:
    """A row of this section: training, its curves and reproducibility, and the native model's evaluation."""
    return (is_training(row) or row["metric"] in CURVE_METRICS or row["metric"] in REPRODUCIBILITY_METRICS
            or (row["kind"] == "evaluate" and is_native(row["framework"], row["target"])))


def build(run: RunData) -> Section:
    """The training section: accuracy over seeds, verdicts, time, memory, curves."""
    rows = run.rows
    answer = " ".join(t for t in (training_answer(rows), training_verdict_answer(rows)) if t)
    found = [Chart(chart_id, title, figure) for chart_id, title, figure in (
        ("framework-accuracy", "Test accuracy per framework and model (mean over seeds, 95% CI bars)",
         accuracy_chart(rows)),
        ("learning-curves", "Learning curves (mean over seeds)", learning_curves_chart(rows))) if figure is not None]
    tables = [framework_accuracy_table(rows), framework_verdict_table(rows),
              training_table(rows) if any(is_training(r) for r in rows) else Table("training", "Training", [])]
    return Section(SPEC.id, SPEC.title, answer, tables=[t for t in tables if t.rows], charts=found)


SPEC = SectionSpec("training", "Training across frameworks", build, shows=shows)

__all__ = ["SPEC", "accuracy_chart", "build", "framework_accuracy_table", "framework_verdict_table",
           "learning_curves_chart", "native_accuracy", "shows", "training_answer", "training_table",
           "training_verdict_answer"]
