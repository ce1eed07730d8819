"""Deployment to mobile: per model, what each precision costs in accuracy and agreement, and saves in size.

Reads the rows of the mobile runtimes' cells (LiteRT, ExecuTorch, Core ML: the runtimes registered with
platform "mobile"): `evaluate` (accuracy, model size, latency, load time, memory), `compare` (label flips
and logit differences against the source model) and the `convert` job that wrote the deployed file
(its size, and whether the conversion succeeded: a Core ML package converts everywhere but runs only
on macOS). A deployment is a converter chain ending in a precision, e.g. ``keras.tflite (int8-full)``;
its size ratio is to the ``fp32`` variant of the same chain. Self-contained: `deployment_section(rows)`
is the whole section, None when the run deployed nothing to a phone's runtime.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .formatting import MISSING, error_summary, format_value, human_bytes, join_words, percent, plural
from .formatting import display_name as _display_name
from .tables import Cell, Column, Table, text_cell

Key = tuple[str, str, str, int | None, str, str]  # dataset, model, framework, seed, runtime, chain
_PRECISION = re.compile(r"\(([^()]*)\)\s*$")
#: the evaluate and compare figures the section shows
_FIGURES = ("accuracy", "model_size", "latency_p50_per_image", "load_time", "peak_rss", "label_flips",
            "label_flip_rate", "max_abs_logit_diff", "accuracy_change")


def display_name(name: str) -> str:
    """The report's name for a framework or runtime (Core ML, which the shared table lacks, included)."""
    return {"coreml": "Core ML", "pte": "ExecuTorch program"}.get(name) or _display_name(name)


def mobile_runtimes() -> dict[str, str]:
    """Mobile runtime -> the format it runs (from the runtime registry, which is data: nothing is imported)."""
    from dlcompat.runtimes.base import runtime_entry, runtime_names

    return {name: runtime_entry(name).accepts for name in runtime_names() if runtime_entry(name).platform == "mobile"}


def precision_of(chain: str) -> str:
    """The last converter's variant of a chain: `torch.onnx (dynamo) → onnx2tf.tflite (fp16)` -> `fp16`."""
    found = _PRECISION.search(chain)
    return found.group(1) if found else ""


def fp32_chain(chain: str) -> str:
    """The same chain with its last variant `fp32`: the reference of the size ratio."""
    return _PRECISION.sub("(fp32)", chain) if _PRECISION.search(chain) else chain


@dataclass
class Deployment:
    key: Key
    figures: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    converted_size: float | None = None
    problem: Mapping[str, Any] | None = None  # the failed or unavailable row of its convert or evaluate job

    @property
    def runtime(self) -> str:
        return self.key[4]

    @property
    def chain(self) -> str:
        return self.key[5]

    @property
    def precision(self) -> str:
        return precision_of(self.chain)

    def value(self, metric: str) -> float | None:
        row = self.figures.get(metric)
        if row is None or row["status"] != "ok" or row["value"] is None or not math.isfinite(row["value"]):
            return None
        return float(row["value"])

    @property
    def size(self) -> float | None:
        return self.value("model_size") if self.value("model_size") is not None else self.converted_size


def deployments(rows: Sequence[Mapping[str, Any]], runtimes: Mapping[str, str] | None = None) -> list[Deployment]:
    """The run's deployments to mobile runtimes, in a stable order, each with its figures or its problem."""
    runtimes = mobile_runtimes() if runtimes is None else runtimes
    formats = {fmt: runtime for runtime, fmt in runtimes.items()}
    found: dict[Key, Deployment] = {}
    converted: dict[tuple[str, str, str, int | None, str], Mapping[str, Any]] = {}
    convert_problems: dict[tuple[str, str, str, int | None, str], Mapping[str, Any]] = {}
    for row in rows:
        group = (row["dataset"], row["model"], row["framework"], row["seed"])
        if row["kind"] == "convert" and row["target"] in formats:
            where = (*group, row["variant"])
            if row["metric"] == "converted_size" and row["status"] == "ok":
                converted[where] = row
            elif row["status"] != "ok":
                convert_problems[where] = row
            continue
        if row["target"] not in runtimes or row["kind"] not in ("evaluate", "compare", "unavailable"):
            continue
        key: Key = (*group, row["target"], row["variant"])
        deployment = found.setdefault(key, Deployment(key))
        if row["status"] != "ok" and row["metric"] in ("evaluate", "compare", "unavailable"):
            if deployment.problem is None or row["metric"] != "compare":  # the evaluation's reason wins
                deployment.problem = row
        elif row["metric"] in _FIGURES:
            deployment.figures[row["metric"]] = row
    for deployment in found.values():
        where = (*deployment.key[:4], deployment.chain)
        size_row = converted.get(where)
        deployment.converted_size = None if size_row is None else size_row["value"]
        if deployment.problem is None and where in convert_problems:
            deployment.problem = convert_problems[where]
        if deployment.problem is not None and deployment.problem["metric"] == "compare" and deployment.figures:
            deployment.problem = None  # compare skipped or failed after a good evaluation: figures stand
    return sorted(found.values(), key=lambda d: (d.key[0], d.key[1], d.key[2], d.key[3] if d.key[3] is not None
                                                 else -1, d.runtime, fp32_chain(d.chain), _order(d.precision)))


def _order(precision: str) -> tuple[int, str]:
    ranks = {"fp32": 0, "portable": 1, "fp16": 2, "int8-dynamic": 3, "int8-weights": 4, "int8": 5, "int8-full": 6}
    return ranks.get(precision, 9), precision


def size_ratios(items: Sequence[Deployment]) -> dict[Key, float]:
    """Each deployment's size over its chain's fp32 variant's size (where both are known)."""
    sizes = {d.key: d.size for d in items}
    out = {}
    for d in items:
        reference = sizes.get((*d.key[:5], fp32_chain(d.chain)))
        if d.size is not None and reference:
            out[d.key] = d.size / reference
    return out


def _figure(d: Deployment, metric: str) -> Cell:
    row = d.figures.get(metric)
    if row is None:
        return Cell(d.problem["status"], None, status=d.problem["status"],
                    note=error_summary(d.problem["error"])) if d.problem is not None else Cell(MISSING)
    if row["status"] != "ok":
        return Cell(row["status"], None, status=row["status"], note=error_summary(row["error"]))
    return Cell(format_value(row["value"], row["unit"], row["metric"]), row["value"])


def _flips(d: Deployment) -> Cell:
    flips, rate = d.value("label_flips"), d.value("label_flip_rate")
    if flips is None:
        return _figure(d, "label_flips")
    return Cell(f"{int(flips):,} ({percent(rate)})" if rate is not None else f"{int(flips):,}", flips)


def _status(d: Deployment) -> Cell:
    if d.problem is None:
        return Cell("ok", "ok", status="")
    reason = error_summary(d.problem["error"])
    stage = {"convert": "conversion", "unavailable": "no path"}.get(d.problem["kind"], "run")
    return Cell(f"{d.problem['status']} ({stage})", d.problem["status"], status=d.problem["status"], note=reason)


def deployment_table(items: Sequence[Deployment]) -> Table:
    several_seeds = len({d.key[3] for d in items}) > 1
    columns = [Column("model", "model"), Column("framework", "framework"), Column("runtime", "runtime"),
               Column("path", "converter path"), Column("precision", "precision"),
               *([Column("seed", "seed", numeric=True)] if several_seeds else []),
               Column("size", "size", numeric=True), Column("ratio", "size / fp32", numeric=True),
               Column("accuracy", "accuracy", numeric=True), Column("change", "accuracy change", numeric=True),
               Column("flips", "label flips", numeric=True), Column("logits", "max |Δ logit|", numeric=True),
               Column("latency", "latency / image (p50)", numeric=True), Column("load", "load time", numeric=True),
               Column("memory", "peak RSS", numeric=True), Column("status", "status")]
    ratios = size_ratios(items)
    table = Table("deployment", "Mobile deployments: size, accuracy and agreement per precision", columns)
    for d in items:
        dataset, model, framework, seed, runtime, chain = d.key
        ratio = ratios.get(d.key)
        table.rows.append({
            "model": text_cell(model if len({x.key[0] for x in items}) == 1 else f"{model} · {dataset}"),
            "framework": text_cell(display_name(framework)), "runtime": text_cell(display_name(runtime)),
            "path": text_cell(chain), "precision": text_cell(d.precision or "—"),
            "seed": text_cell(seed),
            "size": Cell(human_bytes(d.size), d.size) if d.size is not None else _figure(d, "model_size"),
            "ratio": Cell(f"{ratio:.2f}×", ratio) if ratio is not None else Cell(MISSING),
            "accuracy": _figure(d, "accuracy"), "change": _figure(d, "accuracy_change"), "flips": _flips(d),
            "logits": _figure(d, "max_abs_logit_diff"), "latency": _figure(d, "latency_p50_per_image"),
            "load": _figure(d, "load_time"), "memory": _figure(d, "peak_rss"), "status": _status(d),
        })
    return table


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


#: a marker shape per precision, so that points at nearly the same size stay apart without overlapping labels
_SYMBOLS = {"fp32": "circle", "portable": "circle-open", "fp16": "square", "int8-dynamic": "diamond",
            "int8-weights": "x", "int8": "triangle-down", "int8-full": "triangle-up"}


def size_accuracy_chart(items: Sequence[Deployment], dataset: str, model: str) -> dict[str, Any] | None:
    """Size (kB) against accuracy (%) for one model: one trace per framework × runtime × path, a point per precision
    (its shape: ● fp32, ■ fp16, ◆ int8-dynamic, ▲ int8-full, ▼ int8, ✕ int8-weights, ○ portable)."""
    traces: dict[tuple[str, str, str], list[Deployment]] = {}
    for d in items:
        if d.key[0] == dataset and d.key[1] == model and d.size is not None and d.value("accuracy") is not None:
            traces.setdefault((d.key[2], d.runtime, fp32_chain(d.chain)), []).append(d)
    if not traces:
        return None
    data = []
    for (framework, runtime, chain), points in traces.items():
        name = f"{display_name(framework)} · {display_name(runtime)} · {chain.replace(' (fp32)', '')}"
        labels, hover = [], []
        for d in points:
            flips = d.value("label_flips")
            labels.append(d.precision)
            hover.append(f"{_esc(d.precision)}: {human_bytes(d.size)}, accuracy {percent(d.value('accuracy'))}"
                         + (f", {int(flips):,} label flips" if flips is not None else ""))
        data.append({"type": "scatter", "mode": "lines+markers", "name": _esc(name),
                     "x": [d.size / 1e3 for d in points], "y": [d.value("accuracy") * 100 for d in points],
                     "text": [_esc(t) for t in labels],  # the precision of each point (its marker's shape too)
                     "marker": {"size": 10, "symbol": [_SYMBOLS.get(t, "circle-open") for t in labels]},
                     "hovertext": hover, "hoverinfo": "text+name"})
    layout = {"height": 380, "margin": {"l": 64, "r": 16, "t": 24, "b": 48},
              "xaxis": {"title": {"text": "deployed file size (kB)"}, "type": "log", "automargin": True},
              "yaxis": {"title": {"text": "test accuracy (%)"}, "automargin": True},
              "legend": {"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
              "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#fafafa"}
    return {"data": data, "layout": layout, "config": {"displaylogo": False, "responsive": True, "showLink": False}}


def deployment_answer(items: Sequence[Deployment]) -> str:
    measured = [d for d in items if d.problem is None and d.value("accuracy") is not None]
    not_run = sorted({display_name(d.runtime) for d in items if d.problem is not None and d.chain
                      and d.problem["status"] == "unavailable"})
    no_path = sorted({f"{display_name(d.key[2])} → {display_name(d.runtime)}" for d in items
                      if d.problem is not None and not d.chain and d.problem["status"] == "unavailable"})
    failed = [d for d in items if d.problem is not None and d.problem["status"] == "failed"]
    parts = [f"{len(items)} mobile deployments, {len(measured)} run and compared with their source model."]
    ratios = size_ratios(items)
    smallest = min((d for d in measured if d.key in ratios and d.precision != "fp32"), key=lambda d: ratios[d.key],
                   default=None)
    if smallest is not None:
        flips = smallest.value("label_flips")
        parts.append(f"The smallest, {smallest.chain} ({display_name(smallest.runtime)}, {smallest.key[1]} from "
                     f"{display_name(smallest.key[2])}), is {ratios[smallest.key]:.2f}× its fp32 size"
                     + (f" and flips {plural(int(flips), 'label')}." if flips is not None else "."))
    worst = max((d for d in measured if d.value("label_flip_rate") is not None),
                key=lambda d: d.value("label_flip_rate") or 0.0, default=None)
    if worst is not None and (worst.value("label_flip_rate") or 0.0) > 0:
        parts.append(f"Most label flips: {worst.chain} in {display_name(worst.runtime)} "
                     f"({percent(worst.value('label_flip_rate'))}).")
    if not_run:
        parts.append(f"Converted but not runnable here (sizes and conversions recorded): {join_words(not_run)}.")
    if no_path:
        parts.append(f"No converter path: {join_words(no_path)}.")
    if failed:
        parts.append(f"{len(failed)} failed (see their status).")
    return " ".join(parts)


def deployment_section(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The report's deployment section (a `document.Section`), or None when nothing went to a mobile runtime."""
    from .document import Chart, Section  # the document imports this module; its classes are needed at call time

    items = deployments(rows)
    if not items:
        return None
    models = sorted({(d.key[0], d.key[1]) for d in items})
    several_datasets = len({m[0] for m in models}) > 1
    charts = []
    for dataset, model in models:
        figure = size_accuracy_chart(items, dataset, model)
        if figure is not None:
            title = (f"{model}{f' on {dataset}' if several_datasets else ''}: size against accuracy per precision "
                     "(● fp32, ■ fp16, ◆ int8-dynamic, ▲ int8-full, ▼ int8, ✕ int8-weights, ○ portable)")
            charts.append(Chart(f"deployment-{dataset}-{model}", title, figure))
    return Section("deployment", "Deployment (mobile)", deployment_answer(items),
                   tables=[deployment_table(items)], charts=charts)


__all__ = ["deployment_answer", "deployment_section", "deployment_table", "deployments", "fp32_chain",
           "precision_of", "size_accuracy_chart", "size_ratios"]
