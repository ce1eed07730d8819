"""The one-paragraph answer at the top of each report section, written from the numbers.

Plain text (the renderers escape it). Each function takes the normalised rows (and the run's info
where it needs it) and never fails on a run that lacks what it describes: it says so instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .findings import comparison_total, findings
from .formatting import (
    as_int,
    count,
    display_name,
    error_summary,
    format_value,
    join_words,
    percent,
    plural,
    scientific,
    significant,
)
from .rows import (
    COMPARISON_METRICS,
    CONVERSION_METRICS,
    LATENCY_METRICS,
    CellIndex,
    CellKey,
    distinct,
    has_several_seeds,
    is_cell_metric,
    is_job_problem,
    is_native,
    is_training,
    ok_value,
)
from .tables import methods, seeds_of

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
    targets = sorted({display_name(r["target"]) for r in rows
                      if r["target"] and not is_native(r["framework"], r["target"])
                      and r["kind"] != "convert" and r["metric"] not in CONVERSION_METRICS})
    sentence = f"Run {name} covered {plural(len(models), 'model')}"
    if models:
        sentence += f" ({join_words(models)})"
    if datasets:
        sentence += f" on {join_words(datasets)}"
    if frameworks:
        sentence += f", built in {join_words(frameworks)}"
    if targets:
        sentence += f" and moved to {join_words(targets)}"
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
        return "No model was trained in this run."
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


# -- accuracy and inconsistency ---------------------------------------------------------------------


def accuracy_answer(rows: Sequence[Mapping[str, Any]]) -> str:
    def is_accuracy_row(r: Mapping[str, Any]) -> bool:
        return is_cell_metric(r) and r["metric"] not in LATENCY_METRICS

    cell_rows = [r for r in rows if is_accuracy_row(r)]
    failed = _problem_count(rows, lambda r: not is_training(r) and (is_job_problem(r) or is_accuracy_row(r)))
    failures = f"{plural(failed, 'cell')} could not be evaluated or compared (see Findings)." if failed else ""
    if not any(r["metric"] in ("accuracy", *COMPARISON_METRICS) for r in cell_rows):
        return f"No model was evaluated or compared in this run. {failures}".strip()
    with_seed = has_several_seeds(rows)
    several_datasets = len(distinct(cell_rows, "dataset")) > 1
    index = CellIndex.build(cell_rows, with_seed)
    parts: list[str] = []

    # Agreement with the source framework, per target (and variant).
    groups: dict[tuple[str, str, str], list[tuple[CellKey, Mapping[str, Mapping[str, Any]]]]] = {}
    for key, metrics in index.items():
        if any(ok_value(metrics, m) is not None for m in ("label_flips", "max_abs_logit_diff")):
            groups.setdefault((key[2], key[3], key[4]), []).append((key, metrics))
    for (framework, target, variant), cells in groups.items():
        parts.append(_agreement(framework, target, variant, cells, with_seed, several_datasets))

    # Accuracy against the native model.
    native = {(k[0], k[1], k[2], k[5]): ok_value(m, "accuracy") for k, m in index.items()
              if is_native(k[2], k[3]) and ok_value(m, "accuracy") is not None}
    deltas = []
    for key, metrics in index.items():
        acc = ok_value(metrics, "accuracy")
        base = native.get((key[0], key[1], key[2], key[5]))
        if acc is not None and base is not None and not is_native(key[2], key[3]):
            deltas.append((acc - base, key, base, acc))
    accuracies = [(ok_value(m, "accuracy"), key) for key, m in index.items()
                  if ok_value(m, "accuracy") is not None]
    if deltas:
        worst = max(deltas, key=lambda d: abs(d[0]))
        if abs(worst[0]) < 1e-12:
            parts.append(f"Accuracy was unchanged by every move ({plural(len(deltas), 'cell')}).")
        else:
            delta, key, base, acc = worst
            direction = "dropped" if delta < 0 else "rose"
            parts.append(f"The largest accuracy change: {_model_label(key, with_seed, several_datasets)} "
                         f"{direction} from {percent(base)} to {percent(acc)} on "
                         f"{_where(key[2], key[3], key[4])} ({abs(delta) * 100:.2f} points).")
    elif accuracies:
        low, high = min(accuracies, key=lambda a: a[0] or 0), max(accuracies, key=lambda a: a[0] or 0)
        if len(accuracies) == 1 or low[0] == high[0]:
            parts.append(f"Accuracy was {percent(high[0] or 0)}.")
        else:
            parts.append(f"Accuracy ranged from {percent(low[0] or 0)} "
                         f"({low[1][1]} on {_where(*low[1][2:5])}) to {percent(high[0] or 0)} "
                         f"({high[1][1]} on {_where(*high[1][2:5])}).")
    if failures:
        parts.append(failures)
    return " ".join(parts)


def _agreement(framework: str, target: str, variant: str,
               cells: list[tuple[CellKey, Mapping[str, Mapping[str, Any]]]],
               with_seed: bool, several_datasets: bool) -> str:
    where, source = _where(framework, target, variant), display_name(framework)
    labels = [_model_label(key, with_seed, several_datasets) for key, _ in cells]
    flipped = [(label, m) for label, (_, m) in zip(labels, cells, strict=True)
               if (ok_value(m, "label_flips") or 0) > 0]
    diffs = [ok_value(m, "max_abs_logit_diff") for _, m in cells]
    largest = max((d for d in diffs if d is not None), default=None)
    tail = f"; the largest logit difference was {scientific(largest)}." if largest is not None else "."
    if not flipped:
        if all(ok_value(m, "label_flips") is not None for _, m in cells):
            return f"{where} agreed with {source} on every test image for {_models_phrase(labels)}{tail}"
        return f"{where} was compared with {source} for {_models_phrase(labels)}{tail}"
    details = []
    for label, metrics in flipped:
        flips, total, rate = (ok_value(metrics, "label_flips") or 0, comparison_total(metrics),
                              ok_value(metrics, "label_flip_rate"))
        text = f"{label} changed {count(flips)}" + (f" of {total:,}" if total else "") + " labels"
        details.append(text + (f" ({percent(rate)})" if rate is not None else ""))
    agreed = [label for label, (_, m) in zip(labels, cells, strict=True)
              if ok_value(m, "label_flips") == 0]
    text = f"{where} disagreed with {source}: {join_words(details)}"
    if agreed:
        text += f", while {join_words(agreed)} agreed on every image"
    return text + tail


# -- latency ----------------------------------------------------------------------------------------


def latency_answer(rows: Sequence[Mapping[str, Any]]) -> str:
    latency_rows = [r for r in rows if r["metric"] in LATENCY_METRICS and not is_training(r)]
    if not latency_rows:
        return "No latency was measured in this run."
    with_seed = has_several_seeds(rows)
    several_datasets = len(distinct(latency_rows, "dataset")) > 1
    index = CellIndex.build(latency_rows, with_seed)
    measured = [(key, m) for key, m in index.items() if ok_value(m, "latency_p50") is not None]
    parts: list[str] = []
    if measured:
        def p50(item: tuple[CellKey, Mapping[str, Mapping[str, Any]]]) -> float:
            return ok_value(item[1], "latency_p50") or 0.0

        def where(item: tuple[CellKey, Mapping[str, Mapping[str, Any]]]) -> str:
            key = item[0]
            return f"{_model_label(key, with_seed, several_datasets)} on {_where(key[2], key[3], key[4])}"

        def shown(item: tuple[CellKey, Mapping[str, Mapping[str, Any]]]) -> str:
            return format_value(p50(item), item[1]["latency_p50"]["unit"])

        fast, slow = min(measured, key=p50), max(measured, key=p50)
        if len(measured) == 1:
            parts.append(f"Median latency was {shown(fast)} ({where(fast)}).")
        else:
            parts.append(f"Median latency ranged from {shown(fast)} ({where(fast)}) to {shown(slow)} "
                         f"({where(slow)}).")
        parts += _speedups(measured, with_seed, several_datasets)
    method = _latency_method_sentence(latency_rows)
    if method:
        parts.append(method)
    failed = _problem_count(rows, lambda r: r["metric"] in LATENCY_METRICS
                            or (is_job_problem(r) and r["kind"] in ("convert", "evaluate")))
    if failed:
        parts.append(f"{plural(failed, 'cell')} could not be timed (see Findings).")
    return " ".join(parts)


def _ratio(native: float, other: float) -> str:
    if other <= 0 or native <= 0:
        return ""
    ratio = native / other
    return f"{significant(ratio, 2)}× faster" if ratio >= 1 else f"{significant(1 / ratio, 2)}× slower"


def _speedups(measured: list[tuple[CellKey, Mapping[str, Mapping[str, Any]]]], with_seed: bool,
              several_datasets: bool) -> list[str]:
    native = {(k[0], k[1], k[2], k[5]): ok_value(m, "latency_p50")
              for k, m in measured if is_native(k[2], k[3])}
    groups: dict[tuple[str, str, str], list[tuple[str, float, float]]] = {}
    for key, metrics in measured:
        base = native.get((key[0], key[1], key[2], key[5]))
        value = ok_value(metrics, "latency_p50")
        if is_native(key[2], key[3]) or base is None or value is None or base <= 0 or value <= 0:
            continue
        groups.setdefault((key[2], key[3], key[4]), []).append(
            (_model_label(key, with_seed, several_datasets), base, value))
    sentences = []
    for (framework, target, variant), items in groups.items():
        where, source = _where(framework, target, variant), display_name(framework)
        if len(items) <= 2:
            details = [f"{_ratio(base, value)}" + (f" than {source}" if i == 0 else "") + f" for {label}"
                       for i, (label, base, value) in enumerate(items)]
            sentences.append(f"{where} ran {join_words(details)}.")
        else:
            ratios = sorted(base / value for _, base, value in items)
            low, high = ratios[0], ratios[-1]
            if low >= 1:
                span = f"{significant(low, 2)}–{significant(high, 2)}× faster than"
            elif high < 1:
                span = f"{significant(1 / high, 2)}–{significant(1 / low, 2)}× slower than"
            else:
                span = f"between {significant(1 / low, 2)}× slower and {significant(high, 2)}× faster than"
            sentences.append(f"{where} ran {span} {source} across {len(items)} models.")
    return sentences


def _latency_method_sentence(latency_rows: Sequence[Mapping[str, Any]]) -> str:
    fields = methods(latency_rows).get("latency", {})

    def single(name: str) -> str | None:
        values = fields.get(name, [])
        return values[0] if len(values) == 1 else None

    repeats, warmup, batch, threads = (single(n) for n in ("repeats", "warmup", "batch_size", "threads"))
    minimum = single("min_repeats")
    counts = sorted(n for n in (as_int(v) for v in fields.get("repeats", [])) if n is not None)
    if not fields.get("repeats") and batch is None:
        return ""
    text = "Each figure summarises"
    if repeats:
        text += f" {repeats} timed runs"
    elif counts:
        text += f" {counts[0]:,} to {counts[-1]:,} timed runs"
        if minimum:
            text += f" (at least {minimum})"
    else:
        text += " repeated timed runs"
    if batch:
        text += f" at batch size {batch}"
    if warmup:
        text += f" after {warmup} warm-up runs"
    if threads:
        text += f", {plural(int(threads), 'thread')}" if threads.isdigit() else f", threads {threads}"
    return text + "; the error bars span p10 to p90."


# -- findings ---------------------------------------------------------------------------------------


def findings_answer(rows: Sequence[Mapping[str, Any]], shown: int = 3) -> str:
    found = findings(rows)
    if not found:
        return "Nothing failed, nothing was unavailable, and no moved model changed a prediction."
    by_status: dict[str, int] = {}
    for finding in found:
        by_status[finding.status] = by_status.get(finding.status, 0) + 1
    nouns = {"failed": "failed", "unavailable": "unavailable", "inconsistent": "changed predictions"}
    counts = [f"{n} {nouns.get(status, status)}" for status, n in by_status.items()]
    parts = [f"{plural(len(found), 'finding')}: {join_words(counts)}."]
    for finding in found[:shown]:
        where = _where(finding.framework, finding.target, finding.variant)
        subject = f"{finding.model} on {where}" if finding.model else where
        if finding.status == "inconsistent":
            parts.append(f"{subject}: {finding.error}")
        else:
            job = f" ({finding.kind} job)" if finding.kind else ""
            summary = error_summary(finding.error)
            stop = "" if summary.endswith(".") else "."
            parts.append(f"{subject}{job} {finding.status}: {summary}{stop}")
    if len(found) > shown:
        parts.append(f"{len(found) - shown} more in the table below.")
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
    "accuracy_answer",
    "environment_answer",
    "findings_answer",
    "latency_answer",
    "summary_answer",
    "training_answer",
]
