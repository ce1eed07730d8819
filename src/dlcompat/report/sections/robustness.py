"""Adversarial robustness: robust accuracy against ε, success rates and perturbation norms, and transfer.

Reads the rows of the `attack` jobs (one per model, attack and budget, the setting in `variant`,
"fgsm eps=0.1") and of the `transfer` jobs (the same sets run on every model derived from the
attacked one). Self-contained: `robustness_section(rows)` is the whole section, `is_robustness(row)`
tells the other sections which rows are this one's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import charts
from ..formatting import MISSING, display_name, join_words, percent, significant
from ..model import Cell, Chart, Column, Section, Table
from ..rows import has_several_seeds, is_job_problem
from ..tables import metric_cell, text_cell
from .base import RunData, SectionSpec

ATTACK_KINDS = frozenset({"attack", "transfer"})
ATTACK_METRICS: tuple[str, ...] = (
    "attack_success_rate", "robust_accuracy", "perturbation_l2_mean", "perturbation_l2_max",
    "perturbation_linf_mean", "perturbation_linf_max", "attack_time", "attack_time_per_image",
)
TRANSFER_METRICS: tuple[str, ...] = (
    "transfer_success_rate", "transfer_source_success_rate", "transfer_rate", "transfer_robust_accuracy",
    "adversarial_agreement",
)
#: how the report names an attack (the catalog's titles, kept here so the report imports no attack code)
ATTACK_TITLES: dict[str, str] = {"fgsm": "FGSM", "bim": "BIM", "pgd": "PGD (L∞)", "cw-l2": "C&W-L2",
                                 "deepfool": "DeepFool", "jsma": "JSMA"}

Group = tuple[str, str, str, int | None]  # dataset, model, framework, seed (None: averaged over seeds)


def is_robustness(row: Mapping[str, Any]) -> bool:
    """A row of this section: any row of an attack or transfer job (its failures included), by its job's kind."""
    return row["kind"] in ATTACK_KINDS


def _attack_of(row: Mapping[str, Any]) -> str:
    method = row.get("method") or {}
    return str(method.get("attack") or row["variant"].split(" ", 1)[0])


def _title(attack: str) -> str:
    return ATTACK_TITLES.get(attack, attack)


def _epsilon(row: Mapping[str, Any]) -> float | None:
    value = (row.get("method") or {}).get("epsilon")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ok(row: Mapping[str, Any] | None) -> bool:
    return row is not None and row["status"] == "ok" and row["value"] is not None and math.isfinite(row["value"])


def _group_label(group: Group, several_datasets: bool, with_seed: bool) -> str:
    dataset, model, framework, seed = group
    parts = [model, display_name(framework)]
    if several_datasets:
        parts.append(dataset)
    if with_seed and seed is not None:
        parts.append(f"seed {seed}")
    return " · ".join(parts)


# -- robust accuracy against ε --------------------------------------------------------------------------


def epsilon_curves(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[tuple[str, str, str], dict[float, float]]]:
    """attack -> (dataset, model, framework) -> ε -> robust accuracy (mean over seeds); ε = 0 is clean accuracy."""
    points: dict[str, dict[tuple[str, str, str], dict[float, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    clean: dict[tuple[str, str, str, str], dict[Any, float]] = defaultdict(dict)
    for row in rows:
        if row["kind"] != "attack" or row["metric"] != "robust_accuracy" or not _ok(row):
            continue
        epsilon = _epsilon(row)
        if epsilon is None:
            continue
        attack, group = _attack_of(row), (row["dataset"], row["model"], row["framework"])
        points[attack][group][epsilon].append(float(row["value"]))
        accuracy = (row.get("method") or {}).get("clean_accuracy")
        if isinstance(accuracy, int | float) and not isinstance(accuracy, bool):
            clean[(attack, *group)][row["seed"]] = float(accuracy)
    out: dict[str, dict[tuple[str, str, str], dict[float, float]]] = {}
    for attack, groups in points.items():
        out[attack] = {}
        for group, by_eps in groups.items():
            curve = {eps: float(np.mean(values)) for eps, values in by_eps.items()}
            seeds = clean.get((attack, *group))
            if seeds:
                curve[0.0] = float(np.mean(list(seeds.values())))
            out[attack][group] = dict(sorted(curve.items()))
    return out


def epsilon_chart(attack: str, curves: Mapping[tuple[str, str, str], Mapping[float, float]]) -> dict[str, Any]:
    """Robust accuracy (%) against ε for one attack, one line per model × framework."""
    several_datasets = len({group[0] for group in curves}) > 1
    data = []
    for group, curve in sorted(curves.items()):
        name = _group_label((*group, None), several_datasets, False)
        data.append({"type": "scatter", "mode": "lines+markers", "name": charts.esc(name),
                     "x": list(curve), "y": [value * 100 for value in curve.values()],
                     "hovertemplate": "ε %{x}: %{y:.1f} %<extra>" + charts.esc(name) + "</extra>"})
    layout = {"height": 400, "margin": {"l": 64, "r": 16, "t": 24, "b": 48},
              "xaxis": {"title": {"text": "ε (L∞, images in [0, 1]); 0 = clean"}, "rangemode": "tozero"},
              "yaxis": {"title": {"text": "robust accuracy (%)"}, "range": [0, 100]},
              "legend": {"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0},
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#fafafa"}
    return charts.figure_spec(data, layout)


# -- tables ---------------------------------------------------------------------------------------------

_ATTACK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("attack_success_rate", "success rate"),
    ("robust_accuracy", "robust accuracy"),
    ("perturbation_l2_mean", "L2 mean"),
    ("perturbation_l2_max", "L2 max"),
    ("perturbation_linf_mean", "L∞ mean"),
    ("perturbation_linf_max", "L∞ max"),
    ("attack_time_per_image", "time / image"),
)


def _cells(rows: Sequence[Mapping[str, Any]], kind: str) -> dict[tuple[Any, ...], dict[str, Mapping[str, Any]]]:
    cells: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        if row["kind"] != kind:
            continue
        key = (row["dataset"], row["model"], row["framework"], row["seed"], row["target"], row["variant"])
        cells.setdefault(key, {})[row["metric"]] = row
    return cells


def _problem(metrics: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((row for row in metrics.values() if is_job_problem(row)), None)


def _sort_key(key: tuple[Any, ...], metrics: Mapping[str, Mapping[str, Any]]) -> tuple[Any, ...]:
    dataset, model, framework, seed, target, variant = key
    some = next(iter(metrics.values()))
    epsilon = _epsilon(some)
    return (dataset, model, framework, -1 if seed is None else seed, target, _attack_of(some),
            -1.0 if epsilon is None else epsilon, variant)


def attacks_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per model × attack × budget: success rate, robust accuracy, perturbation norms, time."""
    with_seed = has_several_seeds(rows)
    key_columns = [Column("dataset", "dataset"), Column("model", "model"), Column("framework", "framework")]
    if with_seed:
        key_columns.append(Column("seed", "seed", numeric=True))
    table = Table("attacks", "White-box attacks on each natively trained model", [
        *key_columns, Column("attack", "attack"), Column("variant", "setting"),
        Column("images", "images", numeric=True),
        *(Column(metric, label, numeric=True) for metric, label in _ATTACK_COLUMNS),
        Column("estimator", "ART estimator"),
    ])
    cells = _cells(rows, "attack")
    for key in sorted(cells, key=lambda k: _sort_key(k, cells[k])):
        metrics = cells[key]
        dataset, model, framework, seed, _target, variant = key
        problem = _problem(metrics)
        method = next((m["method"] for m in metrics.values() if m.get("method")), {})
        row = {"dataset": text_cell(dataset), "model": text_cell(model),
               "framework": text_cell(display_name(framework)),
               "attack": text_cell(_title(_attack_of(next(iter(metrics.values()))))), "variant": text_cell(variant),
               "images": Cell(str(method["images"]), method["images"]) if "images" in method else Cell(MISSING),
               "estimator": text_cell(method.get("estimator", "").removeprefix("dlcompat.attacks.art."))}
        if with_seed:
            row["seed"] = Cell(MISSING if seed is None else str(seed), seed)
        for metric, _label in _ATTACK_COLUMNS:
            row[metric] = metric_cell(metrics.get(metric), problem)
        table.rows.append(row)
    return table


def _differs(metrics: Mapping[str, Mapping[str, Any]]) -> bool:
    """A transferred set the derived model does not treat exactly as its source does (or that did not run)."""
    if _problem(metrics) is not None or any(row["status"] != "ok" for row in metrics.values()):
        return True
    agreement, source, target = (metrics.get(m) for m in ("adversarial_agreement", "transfer_source_success_rate",
                                                          "transfer_success_rate"))
    if _ok(agreement) and agreement["value"] < 1.0:  # type: ignore[index]
        return True
    return _ok(source) and _ok(target) and source["value"] != target["value"]  # type: ignore[index]


def _route(key: tuple[Any, ...], metrics: Mapping[str, Mapping[str, Any]]) -> tuple[str, str]:
    """(attack setting, derived model's route) of a transfer cell."""
    method = next((m["method"] for m in metrics.values() if m.get("method")), {})
    setting, _, route = key[5].partition(" · ")
    return str(method.get("attack_variant", setting)), str(method.get("route", route))


def transfer_summary_table(rows: Sequence[Mapping[str, Any]], table_id: str = "transfer",
                           title: str = "Transfer: each source model → the models derived from it") -> Table:
    """One row per source → derived model: over all its transferred sets, how alike the two models are fooled."""
    with_seed = has_several_seeds(rows)
    key_columns = [Column("dataset", "dataset"), Column("model", "model"), Column("source", "source")]
    if with_seed:
        key_columns.append(Column("seed", "seed", numeric=True))
    table = Table(table_id, title, [
        *key_columns, Column("target", "target"), Column("route", "route"),
        Column("sets", "adversarial sets", numeric=True),
        Column("differing", "sets treated differently", numeric=True),
        Column("transfer_rate", "transfer rate (lowest)", numeric=True),
        Column("adversarial_agreement", "same adversarial label (lowest)", numeric=True),
        Column("gap", "largest success-rate gap", numeric=True),
    ])
    groups: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], dict[str, Mapping[str, Any]]]]] = defaultdict(list)
    cells = _cells(rows, "transfer")
    for key, metrics in cells.items():
        dataset, model, framework, seed, target, _variant = key
        groups[(dataset, model, framework, seed, target, _route(key, metrics)[1])].append((key, metrics))
    for group in sorted(groups, key=lambda g: tuple("" if v is None else str(v) for v in g)):
        dataset, model, framework, seed, target, route = group
        members = groups[group]
        transferred = sum(_ok(m.get("transfer_success_rate")) for _, m in members)  # a failed job's row is no set
        row = {"dataset": text_cell(dataset), "model": text_cell(model), "source": text_cell(display_name(framework)),
               "target": text_cell(display_name(target)), "route": text_cell(route),
               "sets": Cell(str(transferred), transferred)}
        if with_seed:
            row["seed"] = Cell(MISSING if seed is None else str(seed), seed)
        differing = sum(_differs(metrics) for _, metrics in members)
        row["differing"] = Cell(str(differing), differing, status="inconsistent" if differing else "")
        for metric in ("transfer_rate", "adversarial_agreement"):
            values = [m[metric] for _, m in members if _ok(m.get(metric))]
            worst = min(values, key=lambda r: r["value"]) if values else None
            row[metric] = metric_cell(worst, next((_problem(m) for _, m in members if _problem(m)), None))
        gaps = [(abs(m["transfer_success_rate"]["value"] - m["transfer_source_success_rate"]["value"]),
                 _route(key, m)[0]) for key, m in members
                if _ok(m.get("transfer_success_rate")) and _ok(m.get("transfer_source_success_rate"))]
        if gaps:
            gap, setting = max(gaps)
            row["gap"] = Cell(f"{gap * 100:.2f} pp" + (f" ({setting})" if gap else ""), gap,
                              status="inconsistent" if gap else "")
        else:
            row["gap"] = Cell(MISSING)
        table.rows.append(row)
    return table


def transfer_table(rows: Sequence[Mapping[str, Any]], only_differing: bool = True) -> Table:
    """One row per adversarial set × derived model, the target's success rate next to the source's.

    By default only the sets a derived model treats differently from its source (or that could not
    run): a faithful derived model adds no row, and the summary table counts it.
    """
    with_seed = has_several_seeds(rows)
    key_columns = [Column("dataset", "dataset"), Column("model", "model"), Column("source", "source")]
    if with_seed:
        key_columns.append(Column("seed", "seed", numeric=True))
    title = ("Transferred sets a derived model treats differently from its source" if only_differing
             else "Transfer of each adversarial set to the models derived from its source")
    table = Table("transfer-sets", title, [
        *key_columns, Column("target", "target"), Column("route", "route"), Column("setting", "attack setting"),
        Column("transfer_source_success_rate", "source success rate", numeric=True),
        Column("transfer_success_rate", "target success rate", numeric=True),
        Column("transfer_rate", "transfer rate", numeric=True),
        Column("transfer_robust_accuracy", "target robust accuracy", numeric=True),
        Column("adversarial_agreement", "same adversarial label", numeric=True),
    ])
    cells = _cells(rows, "transfer")
    for key in sorted(cells, key=lambda k: _sort_key(k, cells[k])):
        metrics = cells[key]
        if only_differing and not _differs(metrics):
            continue
        dataset, model, framework, seed, target, _variant = key
        problem = _problem(metrics)
        setting, route = _route(key, metrics)
        row = {"dataset": text_cell(dataset), "model": text_cell(model), "source": text_cell(display_name(framework)),
               "target": text_cell(display_name(target)), "route": text_cell(route), "setting": text_cell(setting)}
        if with_seed:
            row["seed"] = Cell(MISSING if seed is None else str(seed), seed)
        for metric in TRANSFER_METRICS:
            row[metric] = metric_cell(metrics.get(metric), problem)
        agreement = metrics.get("adversarial_agreement")
        if _ok(agreement) and agreement["value"] < 1.0:  # type: ignore[index]
            row["adversarial_agreement"] = Cell(row["adversarial_agreement"].text, agreement["value"],  # type: ignore[index]
                                                status="inconsistent",
                                                note="the derived model labels some adversarial examples differently")
        table.rows.append(row)
    return table


# -- the answer -----------------------------------------------------------------------------------------


def robustness_answer(rows: Sequence[Mapping[str, Any]]) -> str:
    attack_rows = [row for row in rows if row["kind"] == "attack"]
    transfer_rows = [row for row in rows if row["kind"] == "transfer"]
    if not attack_rows:
        return ("No attack ran in this run: give the study config an [attacks] section with `methods` (e.g. "
                "`methods = [\"fgsm\", \"pgd\"]`) and `epsilons` to measure robust accuracy against ε.")
    sentences = []
    curves = epsilon_curves(rows)
    for attack, groups in curves.items():
        budgets = sorted({eps for curve in groups.values() for eps in curve if eps > 0})
        if not budgets:
            continue
        middle = budgets[(len(budgets) - 1) // 2]  # the lower middle budget: where models still differ
        at = {group: curve[middle] for group, curve in groups.items() if middle in curve}
        if not at:
            continue
        worst, best = min(at, key=at.get), max(at, key=at.get)  # type: ignore[arg-type]
        label = {group: f"{group[1]} in {display_name(group[2])}" for group in at}
        if worst == best:
            sentences.append(f"{_title(attack)} at ε = {middle:g} leaves {label[worst]} {percent(at[worst])} "
                             "robust accuracy.")
        else:
            sentences.append(f"{_title(attack)} at ε = {middle:g} leaves between {percent(at[worst])} "
                             f"({label[worst]}) and {percent(at[best])} ({label[best]}) robust accuracy.")
    minimal = [row for row in attack_rows if row["metric"] == "perturbation_l2_mean" and _ok(row)
               and _epsilon(row) is None]
    by_attack: dict[str, list[float]] = defaultdict(list)
    for row in minimal:
        by_attack[_attack_of(row)].append(float(row["value"]))
    if by_attack:
        parts = [f"{_title(a)} {significant(min(v))}–{significant(max(v))}" if len(v) > 1
                 else f"{_title(a)} {significant(v[0])}" for a, v in by_attack.items()]
        sentences.append(f"Mean L2 norm of the successful minimal-perturbation examples: {join_words(parts)}.")
    problems = [row for row in attack_rows if is_job_problem(row)]
    if problems:
        sentences.append(f"{len(problems)} attack(s) could not run (see the table and Findings).")
    failed_transfers = {row["job"] for row in transfer_rows if is_job_problem(row)}
    if failed_transfers:
        sentences.append(f"{len(failed_transfers)} transfer job(s) to derived models could not run (see Findings).")
    agreement = [row for row in transfer_rows if row["metric"] == "adversarial_agreement" and _ok(row)]
    if agreement:
        differing = [row for row in agreement if row["value"] < 1.0]
        if differing:
            worst = min(differing, key=lambda r: r["value"])
            sentences.append(f"{len(differing)} of {len(agreement)} transferred sets are labelled differently by a "
                             f"derived model than by its source (worst: {percent(worst['value'])} agreement, "
                             f"{display_name(worst['framework'])} → {display_name(worst['target'])}, "
                             f"{worst['variant']}).")
        else:
            sentences.append(f"Every derived model labels all {len(agreement)} transferred adversarial sets exactly "
                             "as its source does.")
    return " ".join(sentences) or "Attacks ran, but no figure was measured (see Findings)."


def robustness_section(rows: Sequence[Mapping[str, Any]]) -> Section | None:
    """The report's robustness section from the run's rows, or None when the run attacked nothing."""
    mine = [row for row in rows if is_robustness(row)]
    if not mine:
        return None
    found = [Chart(f"robust-accuracy-{attack}", f"Robust accuracy against ε: {_title(attack)}",
                   epsilon_chart(attack, curves))
             for attack, curves in epsilon_curves(mine).items() if curves]
    tables = [table for table in (attacks_table(mine), transfer_summary_table(mine), transfer_table(mine))
              if table.rows]
    return Section(SPEC.id, SPEC.title, robustness_answer(mine), tables=tables, charts=found)


def build(run: RunData) -> Section:
    """The robustness section; without attacks, its answer says what to configure."""
    return robustness_section(run.rows) or Section(SPEC.id, SPEC.title, robustness_answer(run.rows))


SPEC = SectionSpec("robustness", "Robustness across frameworks", build, shows=is_robustness)

__all__ = ["SPEC", "attacks_table", "build", "epsilon_chart", "epsilon_curves", "is_robustness", "robustness_answer",
           "robustness_section", "transfer_summary_table", "transfer_table"]
