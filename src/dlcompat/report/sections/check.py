"""Your model: for a `dlcompat check`, what each route to each runtime does to the user's model.

One row per route (converter chain and runtime backend) the check planned: whether it ran, its agreement with the
source model on the user's images (and the accuracy change when the images have labels), its logits against the
source's measured noise floor (`jobs/check_floor.py`: a multiple of the floor and the verdict at k), its latency and
size; a route that failed or has no tool says so. The answer counts the routes within noise, beyond it and failed,
and names the floor it judged by. Only a check's report has this section; it opens the report.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from ..formatting import display_name, error_summary, format_value, human_bytes, percent, plural, significant
from ..model import Cell, Column, Section, Table
from ..rows import CONVERSION_METRICS, CellIndex, is_ok
from ..tables import text_cell
from .base import RunData, SectionSpec


def check_source(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `[check]` table of the run's config, or None for a study."""
    try:
        return tomllib.loads(str(info.get("config_toml") or "")).get("check")
    except tomllib.TOMLDecodeError:
        return None


_COLUMNS = [Column("runtime", "Runtime"), Column("route", "Route"), Column("status", "Status"),
            Column("agreement", "Agreement", numeric=True), Column("accuracy", "Accuracy change", numeric=True),
            Column("noise", "Logits vs floor", numeric=True), Column("latency", "Latency p50", numeric=True),
            Column("size", "Size", numeric=True), Column("error", "Why", detail=True)]


def _value(metrics: Mapping[str, Mapping[str, Any]], metric: str) -> float | None:
    row = metrics.get(metric)
    return row["value"] if row is not None and is_ok(row) and row.get("value") is not None else None


def _problem(metrics: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((row for row in metrics.values() if row.get("status") not in ("ok", "", None)), None)


def _route_row(target: str, variant: str, metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Cell]:
    problem = _problem(metrics)
    agreement, change = _value(metrics, "label_flip_rate"), _value(metrics, "accuracy_change")
    ratio, latency = _value(metrics, "output_noise_ratio"), _value(metrics, "latency_p50")
    size = _value(metrics, "model_size")
    verdict = (metrics.get("output_noise_ratio") or {}).get("method", {}).get("verdict", "")
    row = {"runtime": text_cell(display_name(target)), "route": text_cell(variant or "no route"),
           "status": Cell(problem["status"] if problem else (verdict or "ok"),
                          status="bad" if problem or verdict == "exceeds noise" else "good")}
    if agreement is not None:
        row["agreement"] = Cell(percent(1.0 - agreement), 1.0 - agreement)
    if change is not None:
        row["accuracy"] = Cell(f"{change * 100:+.2f} pp", change)
    if ratio is not None:
        row["noise"] = Cell(f"{significant(ratio)}x", ratio, status="bad" if verdict == "exceeds noise" else "")
    if latency is not None:
        row["latency"] = Cell(format_value(latency, "ms"), latency)
    if size is not None:
        row["size"] = Cell(human_bytes(size), size)
    if problem:
        row["error"] = text_cell(error_summary(str(problem.get("error") or "")))
    return row


def routes_table(rows: Sequence[Mapping[str, Any]], source_format: str) -> tuple[Table, dict[str, list[str]]]:
    """The routes, and {outcome: [route]} for the answer (within / beyond noise, failed, unavailable)."""
    index = CellIndex.build(rows, with_seed=False)
    table = Table("check-routes", "Every route to every runtime", list(_COLUMNS))
    outcomes: dict[str, list[str]] = {}
    for (_, _, _, target, variant, _), metrics in index.items():
        if target == source_format and not variant:  # the file itself, in its own runtime: the first row
            row = _route_row(target, "the file as it is (the reference)", metrics)
            row["status"] = Cell("source", status="good")
            accuracy = _value(metrics, "accuracy")
            if accuracy is not None:
                row["accuracy"] = Cell(f"accuracy {percent(accuracy)}", accuracy)
            table.rows.insert(0, row)
            continue
        if set(metrics) <= set(CONVERSION_METRICS) and not _problem(metrics):
            continue  # a conversion that worked: the rows of the runtimes that ran its file show it
        row = _route_row(target, variant, metrics)
        table.rows.append(row)
        status = row["status"].text
        outcomes.setdefault(status, []).append(f"{display_name(target)} ({variant or 'no route'})")
    return table, outcomes


def check_answer(source: Mapping[str, Any], outcomes: Mapping[str, list[str]], floor: Mapping[str, Any] | None,
                 labelled: bool) -> str:
    name, kind = source.get("model_name", "the model"), source.get("kind", "")
    total = sum(len(v) for v in outcomes.values())
    counts = [(len(outcomes.get("within noise", [])), "within the source's noise floor"),
              (len(outcomes.get("exceeds noise", [])), "beyond it"),
              (len(outcomes.get("quantised: not judged", [])), "quantised (compared, not judged against a float "
                                                                "floor)"),
              (len(outcomes.get("failed", [])), "failed"),
              (len(outcomes.get("unavailable", [])), "with no tool or runtime here")]
    said = ", ".join(f"{n} {what}" for n, what in counts if n)
    parts = [f"{name} ({kind}) took {plural(total, 'route')}: {said or 'none ran'}."]
    beyond = outcomes.get("exceeds noise", [])
    if beyond:
        parts.append(f"Beyond noise: {', '.join(beyond[:6])}{' …' if len(beyond) > 6 else ''}.")
    if floor is not None:
        method = floor["method"]
        runs = ", ".join(str(v) for v in (method.get("executions") or {}).values())
        parts.append(f"The floor ({significant(floor['value'])} rmse of the logits) is the largest error of honest "
                     f"float32 executions of the file ({runs}) against {method.get('reference', 'a reference')}; "
                     f"a route exceeds it when its logits' rmse is over k = {method.get('k', 2.5):g} x the floor "
                     "(a float16 route: over k x the float16 floor, the weights rounded to float16).")
    scale = source.get("scale", "0-1")
    parts.append(f"Images scaled {scale} ({'given' if source.get('scale_from') == 'given' else 'the default'}); "
                 f"{'accuracy is against the given labels' if labelled else 'no labels: agreement with the source'}.")
    return " ".join(parts)


#: the rows this section shows itself (the others of a check are the routes' own, shown in the table too)
CHECK_METRICS = ("calibration_images", "source_noise_floor", "source_noise_floor_float16")


def facts_table(source: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Table:
    """The check's inputs and its floors: what the verdicts rest on."""
    by_metric = {r["metric"]: r for r in rows if r["metric"] in CHECK_METRICS and is_ok(r)}
    table = Table("check-facts", "The model, the images and the floors", [Column("field", "field"),
                                                                           Column("value", "value")])
    pairs = [("model", f"{source.get('model')} ({source.get('kind')}, {source.get('input_layout')} "
                       f"{'x'.join(map(str, source.get('input_shape', [])))}, {source.get('num_classes')} classes)"),
             ("images", f"{source.get('images')} (resized: {'yes' if source.get('resize') else 'no'}; scaled "
                        f"{source.get('scale')}, {source.get('scale_from')})")]
    calibration = by_metric.get("calibration_images")
    if calibration is not None:
        pairs.append(("int8 calibration", str(calibration["method"].get("statement", ""))))
    for metric, what in (("source_noise_floor", "float32 floor"), ("source_noise_floor_float16", "float16 floor")):
        if metric in by_metric:
            pairs.append((what, f"{significant(by_metric[metric]['value'])} rmse of the logits"))
    table.rows = [{"field": text_cell(k), "value": text_cell(v)} for k, v in pairs]
    return table


def build(run: RunData) -> Section | None:
    source = check_source(run.info)
    if source is None:
        return None
    table, outcomes = routes_table([r for r in run.rows if r["metric"] not in CHECK_METRICS],
                                   str(source.get("format", "")))
    floor = next((r for r in run.rows if r["metric"] == "source_noise_floor" and is_ok(r)), None)
    labelled = any(r["metric"] == "accuracy" for r in run.rows)
    calibration = next((r for r in run.rows if r["metric"] == "calibration_images" and is_ok(r)), None)
    answer = check_answer(source, outcomes, floor, labelled)
    if calibration is not None:
        answer += f" Int8 calibration: {calibration['method'].get('statement', '')}."
    return Section(SPEC.id, SPEC.title, answer, tables=[table, facts_table(source, run.rows)], headline_sentences=2)


SPEC = SectionSpec("check", "Your model on every runtime", build, always=False,
                   shows=lambda row: row["metric"] in CHECK_METRICS)

__all__ = ["CHECK_METRICS", "SPEC", "build", "check_answer", "check_source", "facts_table", "routes_table"]
