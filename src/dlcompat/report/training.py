"""Training across frameworks: accuracy over seeds with its interval, pairwise verdicts, curves, reproducibility.

Answers the study's first question (does the same model, trained the same way, come out the same in
each framework?) from the tidy rows: the native `accuracy` of each seed's model, the `epoch_*`
curves of the train jobs, and the `bit_reproducible` rows of the reproduce jobs.
"""

from __future__ import annotations

import html
import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlcompat.metrics.statistics import compare_seeds, summarize

from . import charts, narrative
from .formatting import MISSING, display_name, format_value, percent
from .rows import is_training
from .tables import Cell, Column, Table, text_cell, training_table

Group = tuple[str, str, str]  # dataset, model, framework


def _native_accuracy(rows: Sequence[Mapping[str, Any]]) -> dict[Group, dict[int | None, float]]:
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
    accuracy = _native_accuracy(rows)
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
    accuracy = _native_accuracy(rows)
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
        data.append({"type": "scatter", "mode": "lines+markers", "name": html.escape(name, quote=False),
                     "x": epochs, "y": [float(np.mean(points[e])) for e in epochs]})
    layout = {"height": 420 + 20 * (len(data) // 6), "xaxis": {"title": {"text": "epoch"}, "dtick": 1},
              "yaxis": {"title": {"text": "mean training loss"}, "type": "log"},
              "margin": {"l": 64, "r": 16, "t": 24, "b": 48},
              "legend": {"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#fafafa"}
    return {"data": data, "layout": layout, "config": {"displaylogo": False, "responsive": True}}


def accuracy_chart(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Test accuracy of each natively trained model, mean over seeds with its 95% CI as error bars."""
    accuracy = _native_accuracy(rows)
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


def training_section(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The report's training section (a `document.Section`): accuracy over seeds, verdicts, time, memory, curves."""
    from .document import Chart, Section  # the document imports this module; its classes are needed at call time

    answer = " ".join(t for t in (narrative.training_answer(rows), training_verdict_answer(rows)) if t)
    found = [Chart(chart_id, title, figure) for chart_id, title, figure in (
        ("framework-accuracy", "Test accuracy per framework and model (mean over seeds, 95% CI bars)",
         accuracy_chart(rows)),
        ("learning-curves", "Learning curves (mean over seeds)", learning_curves_chart(rows))) if figure is not None]
    tables = [framework_accuracy_table(rows), framework_verdict_table(rows),
              training_table(rows) if any(is_training(r) for r in rows) else Table("training", "Training", [])]
    return Section("training", "Training across frameworks", answer, tables=[t for t in tables if t.rows],
                   charts=found)
