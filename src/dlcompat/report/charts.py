"""The report's charts as plotly.js figure specs (plain dicts: data, layout, config).

Built as data, not through `plotly.graph_objects`, so that making a report costs no plotly import;
the tests validate the specs against plotly's schema. Every user-supplied string placed in a figure
is HTML-escaped, because plotly.js reads `<...>` in labels as its own markup and decodes entities.
A chart with nothing to draw is `None`: the section says so in words instead.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .formatting import count, display_name, format_value, percent
from .rows import (
    LATENCY_METRICS,
    CellIndex,
    CellKey,
    distinct,
    has_several_seeds,
    is_cell_metric,
    ok_value,
    target_label,
)

#: the one plotly.js config of every chart: no plotly logo, no link to edit the chart online, resizes with the page
CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True, "showLink": False}
#: the font of the charts that set one (the page's own)
FONT: dict[str, Any] = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


@dataclass(frozen=True)
class Point:
    """One bar: the trace it belongs to (`series`), its group on the x axis (`category`), its height and label."""

    series: str
    category: str
    y: float
    text: str
    error_minus: float | None = None
    error_plus: float | None = None


def esc(text: str) -> str:
    """A user-supplied string made safe for a figure: plotly.js reads `<...>` as its markup and decodes entities."""
    return html.escape(text, quote=False)


def figure_spec(data: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    """A plotly.js figure spec: its traces, its layout and the one `CONFIG`."""
    return {"data": data, "layout": layout, "config": dict(CONFIG)}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def category_of(key: CellKey, several_datasets: bool, several_frameworks: bool, with_seed: bool) -> str:
    """The x-axis label of a cell: its model, plus whatever else varies in the run."""
    dataset, model, framework, _target, _variant, seed = key
    parts = [model or "(unnamed model)"]
    if several_datasets:
        parts.append(dataset)
    if several_frameworks:
        parts.append(f"from {display_name(framework)}")
    if with_seed and seed is not None:
        parts.append(f"seed {seed}")
    return " · ".join(parts)


def bar_figure(points: Sequence[Point], y_title: str, *, error_bars: bool = False,
               height: int = 380) -> dict[str, Any]:
    """Grouped bars: one trace per series, one group per category, in first-seen order."""
    series: dict[str, list[Point]] = {}
    for point in points:
        series.setdefault(point.series, []).append(point)
    data = []
    for name, items in series.items():
        trace: dict[str, Any] = {
            "type": "bar",
            "name": esc(name),
            "x": [esc(p.category) for p in items],
            "y": [p.y for p in items],
            "text": [esc(p.text) for p in items],
            # Values on the bars, except where they would collide with the error bars.
            "textposition": "none" if error_bars else "outside",
            "cliponaxis": False,
            # The hover repeats the category, the series and the text from the trace's own data, not a copy of them.
            "hovertemplate": "%{x}<br>%{fullData.name}: %{text}<extra></extra>",
        }
        if error_bars:
            trace["error_y"] = {
                "type": "data",
                "symmetric": False,
                "array": [p.error_plus for p in items],
                "arrayminus": [p.error_minus for p in items],
                "visible": True,
                "thickness": 1.2,
                "width": 4,
            }
        data.append(trace)
    layout = {
        "barmode": "group",
        "height": height,
        "margin": {"l": 64, "r": 16, "t": 24, "b": 48},
        "font": dict(FONT),
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.16, "x": 0},
        "xaxis": {"type": "category", "automargin": True},
        "yaxis": {"title": {"text": esc(y_title)}, "rangemode": "tozero", "automargin": True},
        "uniformtext": {"mode": "hide", "minsize": 9},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "#fafafa",
    }
    return figure_spec(data, layout)


def _index(rows: Sequence[Mapping[str, Any]]) -> tuple[CellIndex, Callable[[CellKey], str]]:
    cell_rows = [row for row in rows if is_cell_metric(row)]
    with_seed = has_several_seeds(rows)
    several_datasets = len(distinct(cell_rows, "dataset")) > 1
    several_frameworks = len(distinct(cell_rows, "framework")) > 1

    def category(key: CellKey) -> str:
        return category_of(key, several_datasets, several_frameworks, with_seed)

    return CellIndex.build(cell_rows, with_seed), category


def label_flips_chart(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Test images whose predicted label changed against the source framework, per compared cell.

    None when no label changed anywhere: a chart of zeros says less than the section's sentence.
    """
    index, category = _index(rows)
    points = []
    for key, metrics in index.items():
        flips = ok_value(metrics, "label_flips")
        if not _finite(flips):
            continue
        rate = ok_value(metrics, "label_flip_rate")
        text = count(flips) + (f" ({percent(rate)})" if _finite(rate) else "")
        points.append(Point(target_label(key[2], key[3], key[4]), category(key), flips, text))
    if not any(point.y > 0 for point in points):
        return None
    return bar_figure(points, "label flips (test images)", height=320)


def latency_chart(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Median latency per cell, with p10–p90 error bars, one bar per target."""
    index, category = _index([row for row in rows if row["metric"] in LATENCY_METRICS])
    points = []
    units = set()
    for key, metrics in index.items():
        p50 = ok_value(metrics, "latency_p50")
        if not _finite(p50):
            continue
        p10, p90 = ok_value(metrics, "latency_p10"), ok_value(metrics, "latency_p90")
        unit = metrics["latency_p50"]["unit"]
        units.add(unit)
        points.append(Point(
            target_label(key[2], key[3], key[4]), category(key), p50, format_value(p50, unit),
            error_minus=max(p50 - p10, 0.0) if _finite(p10) else None,
            error_plus=max(p90 - p50, 0.0) if _finite(p90) else None,
        ))
    if not points:
        return None
    unit = units.pop() if len(units) == 1 else ""
    title = f"latency p50 ({unit})" if unit else "latency p50"
    return bar_figure(points, title, error_bars=True)


__all__ = ["CONFIG", "FONT", "Point", "bar_figure", "category_of", "esc", "figure_spec", "label_flips_chart",
           "latency_chart"]
