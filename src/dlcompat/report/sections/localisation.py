"""Localisation: which derived models leave their source's measured noise floor, where they start to, and why.

Reads the `output_noise_ratio` rows of the study's `localize` jobs (study/jobs/localize.py: one per derived ONNX /
`.tflite` artifact; the method holds the verdict, the first divergent layer, the fault type and its evidence, the
floor's statement and k, and the stored localisation JSON with every layer's error over its floor). It opens with
its answer, leads with one table (artifact, verdict, first divergent layer, fault type, max error / floor) and folds
the per-layer error profile of each hop beyond noise (error / floor per layer in graph order, log y, the k line) and
the same figures as a table (Markdown has no charts). The profile is read from the localisation JSON under the run's
artifact root; where that is not on this machine the section says so and keeps the table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import charts
from ..findings import LOCALISATION_METRIC
from ..formatting import MISSING, display_name, plural, significant, slug
from ..layer_kinds import layer_kind
from ..model import Cell, Chart, Column, Section, Table
from ..rows import key_sort
from ..tables import text_cell
from .base import RunData, SectionSpec

EXCEEDS = "exceeds noise"


def shows(row: Mapping[str, Any]) -> bool:
    """A row of this section: a derived artifact's localisation against its measured floor."""
    return row["metric"] == LOCALISATION_METRIC


def accounts_for(row: Mapping[str, Any]) -> bool:
    """A row this section stands for: a localisation, or the time it took (kept out of "Other measurements")."""
    return row["metric"] in (LOCALISATION_METRIC, "localisation_time")


def _number(value: Any) -> float | None:
    """A stored figure as a float: JSON keeps non-finite numbers as "inf" / "nan"."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def profile(row: Mapping[str, Any], root: str) -> list[dict[str, Any]] | None:
    """The localisation's layers (graph order) from its stored JSON under the artifact root; None where the file is
    not on this machine (a URL root, or a report built away from its artifacts)."""
    ref = row["method"].get("localisation") or row.get("artifact")
    if not ref or not root or "://" in root:
        return None
    path = Path(root) / str(ref)
    try:
        layers = json.loads(path.read_text(encoding="utf-8")).get("layers")
    except (OSError, ValueError, AttributeError):
        return None
    return [layer for layer in layers if isinstance(layer, Mapping)] if isinstance(layers, list) else None


def artifact_label(row: Mapping[str, Any]) -> str:
    """`lenet5 · PyTorch → torch.tflite (int8-full) · seed 0`."""
    seed = f" · seed {row['seed']}" if row["seed"] is not None else ""
    return f"{row['model']} · {display_name(row['framework'])} → {row['variant'] or row['target']}{seed}"


def max_ratio(row: Mapping[str, Any], layers: Sequence[Mapping[str, Any]] | None) -> tuple[float | None, str]:
    """The largest error / floor of the hop (over its compared layers and its output), and where it is."""
    best, where = _number(row["value"]), "output"
    for layer in layers or ():
        ratio = _number(layer.get("ratio"))
        if ratio is not None and (best is None or ratio > best or math.isnan(best)):
            best, where = ratio, str(layer.get("name"))
    return best, where


def localisation_table(rows: Sequence[Mapping[str, Any]], profiles: Mapping[int, Any]) -> Table:
    """One row per localised artifact: verdict, first divergent layer (and its kind), fault type, max error/floor."""
    table = Table("localisation", "Each derived model against its source's measured noise floor", [
        Column("artifact", "artifact"), Column("verdict", "verdict"), Column("layer", "first divergent layer"),
        Column("fault", "fault type"), Column("ratio", "max error / floor", numeric=True),
        Column("evidence", "evidence", detail=True), Column("floor", "floor", detail=True)])
    for number, row in enumerate(rows):
        method = row["method"]
        verdict = str(method.get("verdict") or MISSING)
        layer = method.get("first_divergent_layer")
        ratio, where = max_ratio(row, profiles.get(number))
        unit = method.get("unit") or "rmse"
        ratio_text = MISSING if ratio is None else f"{significant(ratio)}x ({where}, {unit})"
        floor = str(method.get("floor") or method.get("reason") or "")
        table.rows.append({
            "artifact": text_cell(artifact_label(row)),
            "verdict": Cell(verdict, verdict, status="inconsistent" if verdict == EXCEEDS else ""),
            "layer": text_cell(f"{layer} ({layer_kind(row['model'], layer)})" if layer else ""),
            "fault": text_cell(method.get("fault_type") or ""),
            "ratio": Cell(ratio_text, ratio if ratio is None or math.isfinite(ratio) else 1e300),
            "evidence": text_cell("\n".join(str(e) for e in method.get("evidence") or ())),
            "floor": text_cell(f"{floor}; {method.get('images')} images" if method.get("images") else floor),
        })
    return table


def profile_chart(hops: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]], k: float
                  ) -> dict[str, Any] | None:
    """Error / floor per layer in graph order (log y), one line per hop, and the k line; None with nothing drawn."""
    data = []
    for row, layers in hops:
        points = [(str(layer.get("name")), _number(layer.get("ratio"))) for layer in layers]
        if not any(ratio is not None and ratio > 0 for _, ratio in points):
            continue
        data.append({"type": "scatter", "mode": "lines+markers", "name": charts.esc(artifact_label(row)),
                     "x": [charts.esc(name) for name, _ in points],
                     "y": [ratio if ratio is not None and 0 < ratio < math.inf else None for _, ratio in points],
                     "connectgaps": False,
                     "hovertemplate": "%{x}: %{y:.3g}x its floor<extra>%{fullData.name}</extra>"})
    if not data:
        return None
    layout = {"height": 360, "margin": {"l": 64, "r": 16, "t": 24, "b": 64}, "font": dict(charts.FONT),
              "legend": {"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0},
              "xaxis": {"type": "category", "title": {"text": "layer (graph order)"}, "automargin": True},
              "yaxis": {"type": "log", "title": {"text": "error / floor"}, "automargin": True},
              "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": k, "y1": k,
                          "line": {"dash": "dash", "width": 1.5, "color": "#b22222"}}],
              "annotations": [{"xref": "paper", "x": 1, "yref": "y", "y": math.log10(k), "text": f"k = {k:g}",
                               "showarrow": False, "xanchor": "right", "yanchor": "bottom"}],
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#fafafa"}
    return charts.figure_spec(data, layout)


def layers_table(hops: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]) -> Table:
    """The profile's figures (Markdown has no charts): each layer of each hop beyond noise, in graph order."""
    table = Table("localisation-layers", "Per-layer error over the floor of each derived model beyond noise", [
        Column("artifact", "artifact"), Column("layer", "layer"), Column("tensor", "candidate tensor"),
        Column("ratio", "error / floor", numeric=True), Column("unit", "unit"), Column("judged", "judged"),
        Column("reason", "why not compared", detail=True)])
    for row, layers in hops:
        for layer in layers:
            ratio, exceeds = _number(layer.get("ratio")), layer.get("exceeds")
            judged = MISSING if exceeds is None else (EXCEEDS if exceeds else "within noise")
            table.rows.append({
                "artifact": text_cell(artifact_label(row)), "layer": text_cell(layer.get("name")),
                "tensor": text_cell(layer.get("candidate_tensor") or ""),
                "ratio": Cell(MISSING if ratio is None else significant(ratio),
                              ratio if ratio is None or math.isfinite(ratio) else 1e300),
                "unit": text_cell(layer.get("unit") or ""),
                "judged": Cell(judged, judged, status="inconsistent" if exceeds else ""),
                "reason": text_cell(layer.get("reason") or "")})
    return table


def localisation_answer(rows: Sequence[Mapping[str, Any]], drawn: bool) -> tuple[str, str]:
    """(the opening, the answer): how many derived models are beyond their floor, where and why."""
    judged = [r for r in rows if r["method"].get("verdict") in (EXCEEDS, "within noise")]
    beyond = [r for r in judged if r["method"].get("verdict") == EXCEEDS]
    counted = f"{len(beyond)} of {plural(len(judged), 'derived model')} beyond their noise floor"
    opening = (f"{counted}: first divergent layer and fault type in the table." if beyond
               else f"{counted}: every one is within k× its source's measured floor.")
    parts = []
    for row in beyond[:3]:
        method = row["method"]
        parts.append(f"{artifact_label(row)}: from {method.get('first_divergent_layer')} "
                     f"({method.get('fault_type') or 'fault type undetermined'}).")
    if len(beyond) > 3:
        parts.append(f"{plural(len(beyond) - 3, 'more')} in the table.")
    ks = sorted({float(r["method"]["k"]) for r in judged if isinstance(r["method"].get("k"), int | float)})
    if ks:
        parts.append(f"A tensor exceeds noise when its error against the float64 reference is over k = "
                     f"{'/'.join(f'{k:g}' for k in ks)} times its floor: the source's own float32 re-executions, "
                     "the float16 floor for float16 artifacts, quantisation steps for int8 tensors.")
    if len(rows) > len(judged):
        parts.append(f"{plural(len(rows) - len(judged), 'artifact')} could not be localised (see Findings).")
    if beyond and not drawn:
        parts.append("The per-layer profiles are in the localisation files, which are not under this report's "
                     "artifact root.")
    return opening, " ".join(parts)


def build(run: RunData) -> Section | None:
    """The section, or None when the run localised nothing."""
    rows = sorted((r for r in run.rows if shows(r) and r["status"] == "ok"),
                  key=lambda r: key_sort((r["dataset"], r["model"], r["framework"], r["target"], r["variant"],
                                          r["seed"])))
    if not rows:
        return None
    root = str(run.info.get("artifacts") or "")
    profiles = {n: profile(row, root) for n, row in enumerate(rows)}
    hops = [(row, profiles[n]) for n, row in enumerate(rows)
            if row["method"].get("verdict") == EXCEEDS and profiles[n]]
    table = localisation_table(rows, profiles)
    ks = [float(r["method"]["k"]) for r, _ in hops if isinstance(r["method"].get("k"), int | float)]
    found = []
    for dataset, model in dict.fromkeys((r["dataset"], r["model"]) for r, _ in hops):
        figure = profile_chart([(r, p) for r, p in hops if (r["dataset"], r["model"]) == (dataset, model)],
                               max(ks, default=2.5))
        if figure is not None:
            found.append(Chart(f"localisation-{slug(dataset)}-{slug(model)}", f"{model} on {dataset}: error / floor "
                               "per layer of each derived model beyond noise (log scale; dashed: k)", figure))
    opening, answer = localisation_answer(rows, bool(found))
    tables = [table, *([layers_table(hops)] if hops else [])]
    return Section(SPEC.id, SPEC.title, answer, tables=tables, charts=found, lead_id=table.id, opening=opening)


SPEC = SectionSpec("localisation", "Localisation: where derived models leave their noise floor", build,
                   always=False, shows=accounts_for)

__all__ = ["SPEC", "accounts_for", "build", "localisation_answer", "localisation_table", "max_ratio", "profile",
           "profile_chart", "shows"]
