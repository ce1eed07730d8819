"""The one-paragraph answer at the top of each report section, written from the numbers.

Plain text (the renderers escape it). Each function takes the normalised rows (and the run's info
where it needs it) and never fails on a run that lacks what it describes: it says so instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .finding_groups import FindingGroup
from .findings import STATUS_ORDER, findings
from .formatting import (
    as_int,
    display_name,
    error_summary,
    format_value,
    join_words,
    plural,
    significant,
)
from .rows import (
    CellIndex,
    CellKey,
    distinct,
    has_several_seeds,
    is_cell_metric,
    is_native,
    is_training,
    ok_value,
)
from .tables import seeds_of
from .targets import CELL_KINDS, is_deployment, is_migration

#: The package whose version stands for a framework or runtime, where the names differ.
PACKAGE_OF: dict[str, str] = {
    "pytorch": "torch",
    "litert": "ai-edge-litert",
    "tfjs": "tensorflowjs",
    "pytensor": "pytensor",
}


def _model_label(key: CellKey, with_seed: bool, several_datasets: bool) -> str:
    dataset, model, _framework, _target, _variant, seed = key
    label = model
    if several_datasets:
        label += f" on {dataset}"
    if with_seed and seed is not None:
        label += f" (seed {seed})"
    return label


def _where(framework: str, target: str, variant: str) -> str:
    name = display_name(framework) if is_native(framework, target) else display_name(target)
    return f"{name} [{variant}]" if variant else name


def _models_phrase(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    if len(labels) == 2:
        return f"both models ({join_words(labels)})"
    return f"all {len(labels)} models"


def _problem_count(rows: Sequence[Mapping[str, Any]], predicate: Any) -> int:
    """How many distinct cells (by job and key) failed or were unavailable among rows matching predicate."""
    keys = {(r["job"], r["dataset"], r["model"], r["framework"], r["target"], r["variant"], r["seed"])
            for r in rows if r["status"] != "ok" and predicate(r)}
    return len(keys)


# -- summary ----------------------------------------------------------------------------------------


def summary_answer(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    name = run.get("name") or run.get("id") or "This run"
    if not rows:
        return f"Run {name} recorded no measurements."
    models = [str(m) for m in distinct(rows, "model")]
    datasets = [str(d) for d in distinct(rows, "dataset")]
    frameworks = [display_name(str(f)) for f in distinct(rows, "framework")]
    # Where models were run (runtimes), not the formats conversions passed through on the way.
    moved = [r for r in rows if r["target"] and not is_native(r["framework"], r["target"])
             and r["kind"] in CELL_KINDS and r["status"] == "ok"]
    into = sorted({display_name(r["target"]) for r in moved if is_migration(r)})
    deployed = sorted({display_name(r["target"]) for r in moved if is_deployment(r)})
    sentence = f"Run {name} covered {plural(len(models), 'model')}"
    if models:
        sentence += f" ({join_words(models)})"
    if datasets:
        sentence += f" on {join_words(datasets)}"
    if frameworks:
        sentence += f", trained in {join_words(frameworks)}"
    if into:
        sentence += f", moved into {join_words(into)}"
    if deployed:
        sentence += f"{',' if into else ''} and deployed to {join_words(deployed)}"
    parts = [sentence + "."]
    jobs = run.get("jobs") or {}
    total = as_int(jobs.get("total")) if isinstance(jobs, Mapping) else None
    if isinstance(jobs, Mapping) and total:
        text = f"{jobs.get('ok', 0)} of {plural(total, 'job')} succeeded"
        labels = (("failed", "failed"), ("unavailable", "were unavailable"),
                  ("skipped", "were skipped after a failure upstream"), ("cached", "came from the cache"))
        extras = [f"{jobs[k]} {label}" for k, label in labels if jobs.get(k)]
        parts.append(text + (f"; {join_words(extras)}" if extras else "") + ".")
    parts.append(_agreement_sentence(rows))
    problems = [f for f in findings(rows) if f.status != "inconsistent"]
    if problems:
        parts.append(f"{plural(len(problems), 'cell')} failed or could not run; "
                     f"{'it is' if len(problems) == 1 else 'they are'} listed under Findings.")
    return " ".join(p for p in parts if p)


def _agreement_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    with_seed = has_several_seeds(rows)
    index = CellIndex.build([r for r in rows if is_cell_metric(r)], with_seed)
    compared = [(key, m) for key, m in index.items() if ok_value(m, "label_flips") is not None]
    if not compared:
        return ""
    flipped = [(key, m) for key, m in compared if (ok_value(m, "label_flips") or 0) > 0]
    if not flipped:
        noun = {1: "the one comparison", 2: "both comparisons"}.get(len(compared), f"all {len(compared)} comparisons")
        return f"Every moved model predicted the same label as its source on every test image ({noun})."
    key, metrics = max(flipped, key=lambda item: ok_value(item[1], "label_flips") or 0)
    images = plural(int(ok_value(metrics, "label_flips") or 0), "test image")
    where = f"{key[1]} on {_where(key[2], key[3], key[4])}"
    if len(flipped) == 1:
        return f"1 of {plural(len(compared), 'comparison')} changed predictions: {where} ({images})."
    return f"{len(flipped)} of {plural(len(compared), 'comparison')} changed predictions, most of all " \
           f"{where} ({images})."


# -- training ---------------------------------------------------------------------------------------


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
    failed = _problem_count(train_rows, lambda r: True)
    if failed:
        parts.append(f"{plural(failed, 'training job')} did not finish (see Findings).")
    return " ".join(parts)


# -- findings ---------------------------------------------------------------------------------------


def findings_answer(groups: Sequence[FindingGroup], shown: int = 1) -> str:
    """How many findings, in how many groups (same tool and error), the largest `shown` groups first (the table
    right after lists every group), and any layer or operator that more than one group names."""
    if not groups:
        return "Nothing failed, nothing was unavailable, and no moved or deployed model changed a prediction."
    cells = sum(len(g.members) for g in groups)
    by_status: dict[str, int] = {}
    for group in groups:
        by_status[group.status] = by_status.get(group.status, 0) + len(group.members)
    nouns = {"failed": "failed", "unavailable": "unavailable", "inconsistent": "changed predictions"}
    counts = [f"{n} {nouns.get(status, status)}" for status, n in by_status.items()]
    parts = [f"{plural(cells, 'finding')} in {plural(len(groups), 'group')} (same tool and same error, numbers "
             f"and names aside): {join_words(counts)}."]
    ranked = sorted(groups, key=lambda g: (STATUS_ORDER.get(g.status, 5), -len(g.members)))
    for group in ranked[:shown]:
        cells = plural(len(group.members), "cell")
        if group.status == "inconsistent":
            parts.append(f"{cells} changed predictions in {group.tool}.")
        else:
            summary = error_summary(group.error) if group.distinct_errors == 1 else group.pattern
            stop = "" if summary.endswith(".") else "."
            parts.append(f"{cells} {group.status} in {group.tool} — {summary}{stop}")
    if len(groups) > shown:
        more = len(groups) - shown
        parts.append(f"{plural(more, 'more group')} in the table below, each with its cells, the versions "
                     "involved and the artifacts to reproduce it.")
    tools_by_layer: dict[str, set[str]] = {}
    for group in groups:
        for layer in group.layers:
            tools_by_layer.setdefault(layer, set()).add(group.tool)
    shared = {layer: tools for layer, tools in tools_by_layer.items() if len(tools) > 1}
    for layer, tools in sorted(shared.items()):
        parts.append(f"{layer} appears in the errors of {join_words(sorted(tools))}.")
    return " ".join(parts)


# -- environment ------------------------------------------------------------------------------------


def environment_answer(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    environment = run.get("environment") or {}
    parts: list[str] = []
    if any(environment.get(k) for k in ("python", "platform", "cpu", "cpu_count")):
        text = "Measured"
        if environment.get("python"):
            text += f" with Python {environment['python']}"
        if environment.get("platform"):
            text += f" on {environment['platform']}"
        cpu = environment.get("cpu")
        cpus = as_int(environment.get("cpu_count"))
        if cpu or cpus:
            text += ", " + (str(cpu) if cpu else "a CPU") + (f" ({plural(cpus, 'CPU')})" if cpus else "")
        parts.append(text + ".")
    settings = []
    threads = as_int(run.get("threads"))
    if threads:
        settings.append(plural(threads, "thread"))
    elif run.get("threads"):
        settings.append(f"threads {run['threads']}")
    seeds = seeds_of(run, rows)
    if seeds:
        settings.append(("seed " if len(seeds) == 1 else "seeds ") + join_words([str(s) for s in seeds]))
    if settings:
        parts.append(f"The run used {join_words(settings)}.")
    packages = environment.get("packages") or {}
    if isinstance(packages, Mapping) and packages:
        names = [*distinct(rows, "framework"), *distinct(rows, "target")]
        versions = []
        for name in dict.fromkeys(str(n) for n in names):
            package = PACKAGE_OF.get(name, name)
            if package in packages:
                versions.append(f"{display_name(name)} {packages[package]}")
        if versions:
            parts.append(f"Versions: {join_words(versions)}.")
    if not parts:
        return "The run recorded no environment."
    if run.get("config_toml"):
        parts.append("The study configuration is reproduced below.")
    return " ".join(parts)


__all__ = [
    "environment_answer",
    "findings_answer",
    "summary_answer",
    "training_answer",
]
