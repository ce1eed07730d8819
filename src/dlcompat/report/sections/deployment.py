"""Deployment: on a server, a phone and in a browser, what each variant costs in accuracy, agreement, time and memory.

Reads the rows of the deployment runtimes' cells (every runtime registered with platform "server",
"mobile" or "web": ONNX Runtime; LiteRT, ExecuTorch, Core ML; ONNX Runtime Web and TensorFlow.js):
`evaluate` (accuracy, model size, latency, load time, memory), `compare` (label flips and logit
differences against the source model) and the `convert` job that wrote the deployed file (its size, and
whether the conversion succeeded: a Core ML package converts everywhere but runs only on macOS). A
deployment is a converter chain ending in a precision, e.g. ``keras.tflite (int8-full)``, and in a
browser also a backend, ``torch.onnx (dynamo) · wasm``; its size ratio is to the ``fp32`` variant of the
same chain. `build(run)` is the whole section; its answer says what to configure when the
run deployed nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlcompat.study.routes import weight_transfer_step

from .. import charts
from ..formatting import (
    MISSING,
    display_name,
    error_summary,
    format_value,
    human_bytes,
    join_words,
    percent,
    plural,
    significant,
    slug,
)
from ..model import Cell, Chart, Column, Section, Table
from ..rows import LATENCY_METRICS, is_native
from ..tables import conversions_table, latency_table, text_cell
from ..targets import (
    BACKEND_SEPARATOR,
    CELL_KINDS,
    DEPLOYMENT_PLATFORMS,
    WEIGHT_TRANSFER,
    backend_of,
    is_deployment,
    platform_of,
    route_of,
)
from .base import RunData, SectionSpec
from .robustness import transfer_summary_table

Key = tuple[str, str, str, int | None, str, str]  # dataset, model, framework, seed, runtime, chain
_PRECISION = re.compile(r"\(([^()]*)\)\s*$")
#: the evaluate and compare figures the section shows
_FIGURES = ("accuracy", "model_size", "latency_p50", "latency_p50_per_image", "load_time", "model_download_time",
            "peak_rss", "label_flips", "label_flip_rate", "max_abs_logit_diff", "accuracy_change")


def deployment_runtimes() -> dict[str, str]:
    """Server, mobile and web runtime -> the format it runs (the runtime registry is data: nothing is imported)."""
    from dlcompat.runtimes.base import runtime_entry, runtime_names

    return {name: runtime_entry(name).accepts for name in runtime_names()
            if runtime_entry(name).platform in DEPLOYMENT_PLATFORMS}


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
    def route(self) -> str:
        """The converter chain without the browser backend."""
        return route_of(self.chain)

    @property
    def backend(self) -> str:
        return backend_of(self.chain)

    @property
    def platform(self) -> str:
        return platform_of(self.runtime)

    @property
    def precision(self) -> str:
        return precision_of(self.route)

    @property
    def label(self) -> str:
        """`ONNX Runtime Web · wasm · torch.onnx (dynamo)`: where and how it ran."""
        parts = [display_name(self.runtime), self.backend, self.route]
        return " · ".join(p for p in parts if p)

    def value(self, metric: str) -> float | None:
        row = self.figures.get(metric)
        if row is None or row["status"] != "ok" or row["value"] is None or not math.isfinite(row["value"]):
            return None
        return float(row["value"])

    @property
    def size(self) -> float | None:
        return self.value("model_size") if self.value("model_size") is not None else self.converted_size


def deployments(rows: Sequence[Mapping[str, Any]], runtimes: Mapping[str, str] | None = None) -> list[Deployment]:
    """The run's deployments, in a stable order, each with its figures or its problem.

    `runtimes` (runtime -> the format it runs) limits them to those runtimes; by default every target that is
    neither a framework nor a format (a runtime the registry does not know counts, on platform "other").
    """
    known = runtimes is not None
    runtimes = deployment_runtimes() if runtimes is None else runtimes
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
        if row["kind"] not in CELL_KINDS or not (row["target"] in runtimes if known else is_deployment(row)):
            continue
        key: Key = (*group, row["target"], row["variant"])
        deployment = found.setdefault(key, Deployment(key))
        if row["status"] != "ok" and row["metric"] in ("evaluate", "compare", "unavailable"):
            if deployment.problem is None or row["metric"] != "compare":  # the evaluation's reason wins
                deployment.problem = row
        elif row["metric"] in _FIGURES:
            deployment.figures[row["metric"]] = row
    for deployment in found.values():
        where = (*deployment.key[:4], deployment.route)
        size_row = converted.get(where)
        deployment.converted_size = None if size_row is None else size_row["value"]
        if deployment.problem is None and where in convert_problems:
            deployment.problem = convert_problems[where]
        if deployment.problem is not None and deployment.problem["metric"] == "compare" and deployment.figures:
            deployment.problem = None  # compare skipped or failed after a good evaluation: figures stand
    platforms = {name: i for i, name in enumerate(DEPLOYMENT_PLATFORMS)}
    return sorted(found.values(), key=lambda d: (d.key[0], d.key[1], d.key[2], d.key[3] if d.key[3] is not None
                                                 else -1, platforms.get(d.platform, 9), d.runtime,
                                                 fp32_chain(d.route), d.backend, _order(d.precision)))


def _order(precision: str) -> tuple[int, str]:
    ranks = {"fp32": 0, "portable": 1, "fp16": 2, "int8-dynamic": 3, "int8-weights": 4, "int8": 5, "int8-full": 6}
    return ranks.get(precision, 9), precision


def size_ratios(items: Sequence[Deployment]) -> dict[Key, float]:
    """Each deployment's size over its chain's fp32 variant's size (where both are known)."""
    sizes = {d.key: d.size for d in items}
    out = {}
    for d in items:
        variant = fp32_chain(d.route) + (f"{BACKEND_SEPARATOR}{d.backend}" if d.backend else "")
        reference = sizes.get((*d.key[:5], variant))
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


#: a route that starts by moving the model's weights into another framework (`study.routes`): `weights → pytorch → …`
_MOVED = re.compile("^" + re.escape(weight_transfer_step("")) + r"(?P<into>[\w-]+)")
_STEP = " → "


def route_hops(route: str) -> list[str]:
    """The route after each of its hops: `weights → pytorch → torch.onnx (dynamo) → onnx2tf (fp32)` has
    `weights → pytorch`, `… → torch.onnx (dynamo)` and the whole route (a weight transfer is one hop)."""
    moved = _MOVED.match(route)
    first = [moved.group(0)] if moved else []
    rest = route[moved.end():].removeprefix(_STEP) if moved else route
    steps = [*first, *(s for s in rest.split(_STEP) if s)]
    return [_STEP.join(steps[:depth]) for depth in range(1, len(steps) + 1)]


def hop_costs(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], tuple[str, str]]:
    """What a route had cost after each hop, against the trained model, from the cells that ran that much of it:
    (dataset, model, framework, seed, route so far) -> ("N label flips, max |Δ logit| X", where it was measured).
    The weight transfer a route starts with is the study's weight-transfer migration into that framework; a
    converter prefix is the deployment that ran its artifact outside a browser (ONNX Runtime for an ONNX file)."""
    found: dict[tuple[Any, ...], tuple[str, dict[str, Mapping[str, Any]]]] = {}
    for row in rows:
        if row["kind"] != "compare" or row["status"] != "ok" or row["value"] is None \
                or row["metric"] not in ("label_flips", "max_abs_logit_diff"):
            continue
        if row["variant"] == WEIGHT_TRANSFER:
            so_far, where = weight_transfer_step(row["target"]), "Migration"
        elif is_deployment(row) and not backend_of(row["variant"]):
            so_far, where = row["variant"], f"its {display_name(row['target'])} row"
        else:
            continue
        key = (row["dataset"], row["model"], row["framework"], row["seed"], so_far)
        found.setdefault(key, (where, {}))[1][row["metric"]] = row
    return {key: (_cost(metrics), where) for key, (where, metrics) in found.items()}


def _cost(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """"N label flips, max |Δ logit| X" from a cell's compare rows."""
    parts = []
    if "label_flips" in metrics:
        parts.append(f"{int(metrics['label_flips']['value']):,} label flips")
    if "max_abs_logit_diff" in metrics:
        m = metrics["max_abs_logit_diff"]
        parts.append(f"max |Δ logit| {format_value(m['value'], m['unit'], m['metric'])}")
    return ", ".join(parts)


def _hop_name(so_far: str) -> str:
    moved = _MOVED.fullmatch(so_far)
    return f"the weight transfer into {display_name(moved['into'])}" if moved else so_far.rsplit(_STEP, 1)[-1]


def _path(d: Deployment, costs: Mapping[tuple[Any, ...], tuple[str, str]]) -> Cell:
    """The route, and for one of several hops what it had cost after each hop before the last (this row's own)."""
    hops = route_hops(d.route)[:-1]
    if not hops:
        return text_cell(d.route)
    notes = []
    for so_far in hops:
        cost = costs.get((*d.key[:4], so_far))
        if cost is not None:
            notes.append(f"after {_hop_name(so_far)}: {cost[0]} ({cost[1]})")
        elif _MOVED.fullmatch(so_far):
            notes.append(f"after {_hop_name(so_far)}: not measured alone (add \"weights\" to the config's migration)")
        else:
            notes.append(f"after {_hop_name(so_far)}: not measured alone (no configured runtime runs that artifact)")
    return Cell(d.route, d.route, note="against the trained model, " + "; ".join(notes))


def deployment_table(items: Sequence[Deployment],
                     costs: Mapping[tuple[Any, ...], tuple[str, str]] | None = None) -> Table:
    """One row per deployment; `costs` (`hop_costs`) notes what a route of several hops had cost after each."""
    costs = costs or {}
    several_seeds = len({d.key[3] for d in items}) > 1
    several_datasets = len({d.key[0] for d in items}) > 1
    columns = [Column("platform", "platform"), Column("model", "model"), Column("framework", "framework"),
               Column("runtime", "runtime"), Column("backend", "backend"),
               Column("path", "converter path"), Column("precision", "precision"),
               *([Column("seed", "seed", numeric=True)] if several_seeds else []),
               Column("size", "size", numeric=True), Column("ratio", "size / fp32", numeric=True),
               Column("accuracy", "accuracy", numeric=True), Column("change", "accuracy change", numeric=True),
               Column("flips", "label flips", numeric=True),
               Column("latency", "latency / image (p50)", numeric=True), Column("status", "status"),
               # folded into each row's details in the HTML, so that the table fits the page
               Column("logits", "max |Δ logit|", numeric=True, detail=True),
               Column("load", "load time", numeric=True, detail=True),
               Column("download", "model download (web)", numeric=True, detail=True),
               Column("memory", "peak RSS", numeric=True, detail=True)]
    if not any("model_download_time" in d.figures for d in items):
        columns = [c for c in columns if c.key != "download"]
    if not any(d.backend for d in items):
        columns = [c for c in columns if c.key != "backend"]
    ratios = size_ratios(items)
    table = Table("deployment", "Deployments: size, accuracy, agreement, latency, load time and memory per variant",
                  columns)
    for d in items:
        dataset, model, framework, seed, runtime, _chain = d.key
        ratio = ratios.get(d.key)
        table.rows.append({
            "platform": text_cell(d.platform),
            "model": text_cell(f"{model} · {dataset}" if several_datasets else model),
            "framework": text_cell(display_name(framework)), "runtime": text_cell(display_name(runtime)),
            "backend": text_cell(d.backend), "path": _path(d, costs), "precision": text_cell(d.precision or "—"),
            "seed": text_cell(seed),
            "size": Cell(human_bytes(d.size), d.size) if d.size is not None else _figure(d, "model_size"),
            "ratio": Cell(f"{ratio:.2f}×", ratio) if ratio is not None else Cell(MISSING),
            "accuracy": _figure(d, "accuracy"), "change": _change(d), "flips": _flips(d),
            "logits": _figure(d, "max_abs_logit_diff"), "latency": _figure(d, "latency_p50_per_image"),
            "load": _figure(d, "load_time"), "download": _figure(d, "model_download_time"),
            "memory": _figure(d, "peak_rss"), "status": _status(d),
        })
    return table


def _change(d: Deployment) -> Cell:
    value = d.value("accuracy_change")
    if value is None:
        return _figure(d, "accuracy_change")
    return Cell(f"{value * 100:+.2f} pp", value, status="inconsistent" if value else "")


#: a marker shape per precision, so that points at nearly the same size stay apart without overlapping labels
_SYMBOLS = {"fp32": "circle", "portable": "circle-open", "fp16": "square", "int8-dynamic": "diamond",
            "int8-weights": "x", "int8": "triangle-down", "int8-full": "triangle-up"}
SYMBOL_LEGEND = "● fp32, ■ fp16, ◆ int8-dynamic, ▲ int8-full, ▼ int8, ✕ int8-weights, ○ portable"


def size_accuracy_chart(items: Sequence[Deployment], dataset: str, model: str) -> dict[str, Any] | None:
    """Size (kB) against accuracy (%) for one model: one trace per framework × runtime × path (× backend), a point
    per precision (its shape: ● fp32, ■ fp16, ◆ int8-dynamic, ▲ int8-full, ▼ int8, ✕ int8-weights, ○ portable),
    its label flips on hover."""
    traces: dict[tuple[str, str, str, str], list[Deployment]] = {}
    for d in items:
        if d.key[0] == dataset and d.key[1] == model and d.size is not None and d.value("accuracy") is not None:
            traces.setdefault((d.key[2], d.runtime, fp32_chain(d.route), d.backend), []).append(d)
    if not traces:
        return None
    data = []
    for (framework, runtime, chain, backend), points in traces.items():
        name = " · ".join(p for p in (display_name(framework), display_name(runtime), backend,
                                      chain.replace(" (fp32)", "")) if p)
        labels, hover = [], []
        for d in points:
            flips = d.value("label_flips")
            labels.append(d.precision)
            hover.append(charts.esc(f"{d.precision or d.route}: {human_bytes(d.size or 0)}, "
                              f"accuracy {percent(d.value('accuracy') or 0)}"
                              + (f", {int(flips):,} label flips" if flips is not None else "")))
        data.append({"type": "scatter", "mode": "lines+markers", "name": charts.esc(name),
                     "x": [(d.size or 0) / 1e3 for d in points],
                     "y": [(d.value("accuracy") or 0) * 100 for d in points],
                     "text": [charts.esc(t) for t in labels],  # the precision of each point (its marker's shape too)
                     "marker": {"size": 10, "symbol": [_SYMBOLS.get(t, "circle-open") for t in labels]},
                     "hovertext": hover, "hoverinfo": "text+name"})
    layout = {"height": 400 + 18 * max(len(data) - 4, 0), "margin": {"l": 64, "r": 16, "t": 24, "b": 48},
              "xaxis": {"title": {"text": "deployed file size (kB)"}, "type": "log", "automargin": True},
              "yaxis": {"title": {"text": "test accuracy (%)"}, "automargin": True},
              "legend": {"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
              "font": dict(charts.FONT),
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#fafafa"}
    return charts.figure_spec(data, layout)


def _platform_rows(rows: Sequence[Mapping[str, Any]], items: Sequence[Deployment], platform: str,
                   with_native: bool) -> list[Mapping[str, Any]]:
    """The rows of one platform's deployments (and, for the server, of the native models as the reference)."""
    keys = {(d.key[0], d.key[1], d.key[2], d.key[3], d.runtime, d.chain) for d in items if d.platform == platform}
    return [r for r in rows if (r["dataset"], r["model"], r["framework"], r["seed"], r["target"], r["variant"]) in keys
            or (with_native and r["kind"] == "evaluate" and is_native(r["framework"], r["target"]))]


def latency_charts(rows: Sequence[Mapping[str, Any]], items: Sequence[Deployment]) -> list[tuple[str, str, Any]]:
    """Per platform: p50 latency with p10–p90 bars, one bar per runtime, backend and variant, grouped by model."""
    out = []
    for platform in (*DEPLOYMENT_PLATFORMS, "other"):
        if not any(d.platform == platform for d in items):
            continue
        mine = [r for r in _platform_rows(rows, items, platform, platform == "server")
                if r["metric"] in LATENCY_METRICS]
        figure = charts.latency_chart(mine)
        if figure is not None:
            reference = " (the native frameworks for reference)" if platform == "server" else ""
            out.append((f"latency-{platform}", f"{platform.capitalize()}: latency p50 per image batch, "
                        f"p10–p90 bars, per runtime, backend and variant{reference}", figure))
    return out


def flips_charts(rows: Sequence[Mapping[str, Any]], items: Sequence[Deployment]) -> list[tuple[str, str, Any]]:
    """Per platform where some label changed: label flips against the source model per variant."""
    out = []
    for platform in (*DEPLOYMENT_PLATFORMS, "other"):
        figure = charts.label_flips_chart(_platform_rows(rows, items, platform, False))
        if figure is not None:
            out.append((f"label-flips-{platform}", f"{platform.capitalize()}: label flips against the source "
                        "framework per variant", figure))
    return out


def transfer_chart(rows: Sequence[Mapping[str, Any]], targets: set[str]) -> dict[str, Any] | None:
    """How often adversarial examples crafted on the source fool each deployed model: the deployed model's success
    rate per attack setting (bars), on hover the source's and how many adversarial labels agree."""
    cells: dict[tuple[str, str], dict[str, dict[str, Mapping[str, Any]]]] = {}
    for row in rows:
        if row["kind"] != "transfer" or row["target"] not in targets or row["status"] != "ok" or row["value"] is None:
            continue
        method = row["method"] or {}
        setting = str(method.get("attack_variant") or row["variant"].split(BACKEND_SEPARATOR, 1)[0])
        route = str(method.get("route", ""))
        deployed = " · ".join(p for p in (row["model"], display_name(row["framework"]), display_name(row["target"]),
                                          route) if p)
        cells.setdefault((setting, deployed), {}).setdefault("metrics", {})[row["metric"]] = row
    points = []
    for (setting, deployed), entry in cells.items():
        metrics = entry["metrics"]
        success = metrics.get("transfer_success_rate")
        if success is None:
            continue
        source = metrics.get("transfer_source_success_rate")
        agreement = metrics.get("adversarial_agreement")
        text = percent(success["value"])
        if source is not None:
            text += f" (source {percent(source['value'])})"
        if agreement is not None:
            text += f", same adversarial label {percent(agreement['value'])}"
        points.append(charts.Point(setting, deployed, success["value"] * 100, text))
    if not points:
        return None
    figure = charts.bar_figure(points, "attack success rate on the deployed model (%)",
                               height=380 + 12 * len({p.category for p in points}))
    for trace in figure["data"]:
        trace["textposition"] = "none"
    return figure


def deployment_answer(items: Sequence[Deployment]) -> str:
    if not items:
        return ("No model was deployed in this run: list runtimes in the study config (`runtimes = [\"onnxruntime\", "
                "\"litert\", \"executorch\", \"ortweb\", \"tfjs\"]`) to measure deployment on a server, a phone and "
                "in a browser.")
    parts = []
    for platform in (*DEPLOYMENT_PLATFORMS, "other"):
        mine = [d for d in items if d.platform == platform]
        if mine:
            parts.append(_platform_answer(platform, mine))
    return " ".join(parts)


def deployment_headline(items: Sequence[Deployment]) -> str:
    """One sentence per platform: how many deployments ran, and whether any changed a label against its source."""
    parts = []
    for platform in (*DEPLOYMENT_PLATFORMS, "other"):
        mine = [d for d in items if d.platform == platform]
        if not mine:
            continue
        ran = [d for d in mine if d.problem is None and d.value("accuracy") is not None]
        compared = [d for d in ran if d.value("label_flips") is not None]
        flipped = [d for d in compared if (d.value("label_flips") or 0) > 0]
        if flipped:
            agreement = f"{len(flipped)} of the {len(compared)} compared changed labels"
        else:
            agreement = "none changed a label" if compared else "none was compared with its source"
        parts.append(f"{platform.capitalize()}: {len(ran)} of {plural(len(mine), 'deployment')} ran; {agreement}.")
    return " ".join(parts)


def _latency(d: Deployment) -> float | None:
    """Median latency per image (per batch where the run recorded no per-image figure)."""
    per_image = d.value("latency_p50_per_image")
    return per_image if per_image is not None else d.value("latency_p50")


def _platform_answer(platform: str, items: Sequence[Deployment]) -> str:
    measured = [d for d in items if d.problem is None and d.value("accuracy") is not None]
    runtimes = sorted({display_name(d.runtime) for d in items})
    parts = [f"{platform.capitalize()} ({join_words(runtimes)}): {plural(len(items), 'planned deployment')}, "
             f"{len(measured)} run and compared with their source model."]
    ratios = size_ratios(items)
    smallest = min((d for d in measured if d.key in ratios and d.precision not in ("fp32", "")),
                   key=lambda d: ratios[d.key], default=None)
    if smallest is not None:
        flips = smallest.value("label_flips")
        parts.append(f"The smallest, {smallest.route} ({display_name(smallest.runtime)}, {smallest.key[1]} from "
                     f"{display_name(smallest.key[2])}), is {ratios[smallest.key]:.2f}× its fp32 size"
                     + (f" and flips {plural(int(flips), 'label')}." if flips is not None else "."))
    flipped = [d for d in measured if (d.value("label_flips") or 0) > 0]
    compared = [d for d in measured if d.value("label_flips") is not None]
    if compared and not flipped:
        parts.append(f"Every one of the {plural(len(compared), 'compared deployment')} predicted the same labels "
                     "as its source.")
    elif flipped:
        worst = max(flipped, key=lambda d: d.value("label_flip_rate") or d.value("label_flips") or 0.0)
        rate = worst.value("label_flip_rate")
        parts.append(f"{len(flipped)} of {len(compared)} changed labels, most of all {worst.label} "
                     f"({worst.key[1]} from {display_name(worst.key[2])}: "
                     f"{plural(int(worst.value('label_flips') or 0), 'image')}"
                     + (f", {percent(rate)})." if rate is not None else ")."))
    timed = [d for d in measured if _latency(d) is not None]
    if timed:
        fast, slow = min(timed, key=lambda d: _latency(d) or 0.0), max(timed, key=lambda d: _latency(d) or 0.0)
        unit = (fast.figures.get("latency_p50_per_image") or fast.figures["latency_p50"])["unit"]
        if len(timed) == 1 or _latency(fast) == _latency(slow):
            parts.append(f"Median latency per image was {format_value(_latency(fast), unit)}.")
        else:
            parts.append(f"Median latency per image ran from {format_value(_latency(fast), unit)} ({fast.label}, "
                         f"{fast.key[1]}) to {format_value(_latency(slow), unit)} ({slow.label}, {slow.key[1]}).")
    loads = [d.value("load_time") for d in measured if d.value("load_time") is not None]
    if loads:
        low, high = significant(min(loads)), significant(max(loads))
        parts.append(f"Loading took {low} s." if low == high else f"Loading took {low}–{high} s.")
    not_run = sorted({display_name(d.runtime) + (f" ({d.backend})" if d.backend else "") for d in items
                      if d.problem is not None and d.chain and d.problem["status"] == "unavailable"})
    no_path = sorted({f"{display_name(d.key[2])} → {display_name(d.runtime)}" for d in items
                      if d.problem is not None and not d.chain and d.problem["status"] == "unavailable"})
    failed = [d for d in items if d.problem is not None and d.problem["status"] == "failed"]
    if not_run:
        parts.append(f"Converted but not runnable here: {join_words(not_run)}.")
    if no_path:
        parts.append(f"No converter path: {join_words(no_path)}.")
    if failed:
        parts.append(f"{len(failed)} failed (see Findings).")
    return " ".join(parts)


def shows(row: Mapping[str, Any]) -> bool:
    """A row of this section: a model run on a deployment runtime, and every conversion."""
    return is_deployment(row) or row["kind"] == "convert"


def build(run: RunData) -> Section:
    """The deployment section; its answer says what to configure when the run deployed nothing."""
    rows = run.rows
    items = deployments(rows)
    if not items:
        return Section(SPEC.id, SPEC.title, deployment_answer(items))
    models = sorted({(d.key[0], d.key[1]) for d in items})
    several_datasets = len({m[0] for m in models}) > 1
    found = []
    for dataset, model in models:
        figure = size_accuracy_chart(items, dataset, model)
        if figure is not None:
            title = (f"{model}{f' on {dataset}' if several_datasets else ''}: size against accuracy per variant "
                     f"({SYMBOL_LEGEND})")
            found.append(Chart(f"deployment-{slug(dataset)}-{slug(model)}", title, figure))
    found += [Chart(*chart) for chart in (*latency_charts(rows, items), *flips_charts(rows, items))]
    targets = {d.runtime for d in items}
    transfer = transfer_chart(rows, targets)
    if transfer is not None:
        found.append(Chart("transfer-deployed", "Adversarial examples crafted on the source framework, run on each "
                           "deployed model: attack success rate per setting", transfer))
    deployed = {(d.key[0], d.key[1], d.key[2], d.key[3], d.runtime, d.chain) for d in items if d.problem is None}
    latency_rows = [r for r in rows if r["metric"] in LATENCY_METRICS and (
        (r["dataset"], r["model"], r["framework"], r["seed"], r["target"], r["variant"]) in deployed
        or is_native(r["framework"], r["target"]))]
    tables = [deployment_table(items, hop_costs(rows)), latency_table(latency_rows), conversions_table(rows),
              transfer_summary_table([r for r in rows if r["kind"] == "transfer" and r["target"] in targets],
                                     table_id="transfer-deployed",
                                     title="Transfer of adversarial examples to each deployed model")]
    return Section(SPEC.id, SPEC.title, deployment_answer(items),
                   tables=[t for t in tables if t.rows], charts=found, opening=deployment_headline(items))


SPEC = SectionSpec("deployment", "Deployment: server, mobile and web", build, shows=shows)

__all__ = ["SPEC", "SYMBOL_LEGEND", "build", "deployment_answer", "deployment_headline", "deployment_runtimes",
           "deployment_table", "deployments", "fp32_chain", "hop_costs", "latency_charts", "precision_of",
           "route_hops", "shows",
           "size_accuracy_chart", "size_ratios", "transfer_chart"]
