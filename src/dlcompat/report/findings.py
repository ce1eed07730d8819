"""What the report lists as a finding: every failed or unavailable cell, every inconsistent one, and every derived
model beyond its measured noise floor.

DESIGN.md: a conversion or a run that fails is a finding, recorded with its error text; a moved model
that predicts a different label than its source on some test image is one too (an inconsistency). A derived
artifact whose localisation (study/jobs/localize.py) says it exceeds its source's measured noise floor is one
(`diverged`), whether or not a label changed: it names the first divergent layer and the fault type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .formatting import as_int, count, display_name, percent, scientific, significant
from .layer_kinds import layer_kind
from .rows import CELL_METRICS, CellIndex, is_training, key_sort, ok_value

#: Findings are listed failures first, then unavailable cells, then any other status a job left
#: (say, skipped), then derived models beyond their noise floor, then inconsistencies.
STATUS_ORDER = {"failed": 0, "unavailable": 1, "diverged": 8, "inconsistent": 9}
#: the status of a derived artifact beyond its measured noise floor
DIVERGED = "diverged"


def comparison_total(metrics: Mapping[str, Mapping[str, Any]]) -> int | None:
    """How many test images a comparison covered: its method's `images`, else flips / rate."""
    row = metrics.get("label_flips")
    images = as_int(row["method"].get("images")) if row is not None else None
    if images:
        return images
    flips, rate = ok_value(metrics, "label_flips"), ok_value(metrics, "label_flip_rate")
    if flips is None or rate is None or rate <= 0:
        return None
    return round(flips / rate)


@dataclass(frozen=True)
class Finding:
    """A failed or unavailable cell (all its metrics that share one error), or an inconsistent one."""

    status: str
    kind: str
    dataset: str
    model: str
    framework: str
    target: str
    variant: str
    seed: int | None
    metrics: tuple[str, ...]
    error: str
    whole_job: bool = False  # the job failed as a whole (its one row's metric is its kind)
    job: str = ""
    #: what the finding's own rows recorded: their artifacts and the artifacts their methods name
    artifacts: tuple[str, ...] = ()
    #: the method of its rows, merged (versions of the tools involved live there)
    method: Mapping[str, Any] = field(default_factory=dict)


def findings(rows: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Every row whose status is not ok: failed, unavailable, or another (grouped when one job's error
    failed several metrics); every derived artifact beyond its measured noise floor (`divergences`); then every
    measured cell whose predictions changed (label flips > 0)."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    members: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["status"] == "ok":
            continue
        group = (row["status"], row["kind"], row["job"], row["dataset"], row["model"], row["framework"],
                 row["target"], row["variant"], row["seed"], row["error"])
        metrics = groups.setdefault(group, [])
        members.setdefault(group, []).append(row)
        if row["metric"] not in metrics:
            metrics.append(row["metric"])
    out = []
    for group, metrics in groups.items():
        status, kind, job, dataset, model, framework, target, variant, seed, error = group
        out.append(Finding(status, kind, dataset, model, framework, target, variant, seed, tuple(metrics),
                           error or "(no error text recorded)", whole_job=tuple(metrics) == (kind,), job=job,
                           artifacts=artifacts_of(members[group]), method=_merged_method(members[group])))
    comparison_rows = [row for row in rows if row["metric"] in CELL_METRICS and not is_training(row)]
    index = CellIndex.build(comparison_rows, with_seed=True)
    localised = localisations(rows)
    for key, metrics in index.items():
        flips = ok_value(metrics, "label_flips")
        if flips is None or flips <= 0:
            continue
        dataset, model, framework, target, variant, seed = key
        flips_row = metrics["label_flips"]
        # the hop of this cell itself (a check judges each runtime cell), else its artifact's (a study's localize job)
        hop = (localised.get((dataset, model, framework, seed, variant))
               or localised.get((dataset, model, framework, seed, variant.partition(" · ")[0])))
        if hop is not None and "int8" in variant and hop["method"].get("verdict") == "within noise":
            continue  # int8's expected flips: the hop is within its measured floor
        text = inconsistency_text(metrics, framework) + (localisation_text(hop) if hop is not None else "")
        out.append(Finding("inconsistent", flips_row["kind"], dataset, model, framework, target, variant, seed,
                           ("label_flips",), text, job=flips_row["job"],
                           artifacts=artifacts_of([flips_row, *([hop] if hop else [])]),
                           method=_merged_method(list(metrics.values()))))
    out += divergences(localised.values())
    out.sort(key=lambda f: (STATUS_ORDER.get(f.status, 5),
                            key_sort((f.dataset, f.model, f.framework, f.target, f.variant, f.seed))))
    return out


#: the row of a derived artifact's localisation (study/jobs/localize.py): its method holds the verdict against the
#: source's measured noise floor, the first divergent layer and the fault type
LOCALISATION_METRIC = "output_noise_ratio"


def localisations(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], Mapping[str, Any]]:
    """Each localised artifact's row, by (dataset, model, framework, seed, converter chain)."""
    return {(r["dataset"], r["model"], r["framework"], r["seed"], r["variant"]): r for r in rows
            if r["metric"] == LOCALISATION_METRIC and r["status"] == "ok" and r.get("method")}


def localisation_text(row: Mapping[str, Any]) -> str:
    """` Beyond noise from conv2 (weights).`, or ` Within the measured noise floor at its output.`"""
    method = row["method"]
    if method.get("verdict") == "within noise":
        return " Within the measured noise floor at its output."
    if method.get("verdict") != "exceeds noise":
        return ""  # not localised (the artifact did not load: its evaluation says why)
    fault = method.get("fault_type")
    return f" Beyond noise from {method.get('first_divergent_layer')}{f' ({fault})' if fault else ''}."


def divergences(rows: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """A `diverged` finding for each localisation row whose verdict is "exceeds noise", labels changed or not."""
    out = []
    for row in rows:
        if row["method"].get("verdict") != "exceeds noise":
            continue
        out.append(Finding(DIVERGED, row["kind"] or "localize", row["dataset"], row["model"], row["framework"],
                           row["target"], row["variant"], row["seed"], (row["metric"],), divergence_text(row),
                           job=row["job"], artifacts=artifacts_of([row]), method=dict(row["method"])))
    return out


def divergence_text(row: Mapping[str, Any]) -> str:
    """`Beyond its measured noise floor from conv2 (convolution), fault type weights; output 900x its floor
    (rmse, k = 2.5). Evidence: conv2: parameters differ from the canonical ones ...`"""
    method = row["method"]
    layer = method.get("first_divergent_layer")
    kind = layer_kind(row["model"], layer)
    where = f"{layer} ({kind})" if layer and kind not in (layer, "output") else (layer or "an unnamed layer")
    text = f"Beyond its measured noise floor from {where}, fault type {method.get('fault_type') or 'undetermined'}"
    value, k = row.get("value"), method.get("k")
    if isinstance(value, int | float):
        stated = f", k = {k:g}" if isinstance(k, int | float) else ""
        text += f"; output {significant(value)}x its floor ({method.get('unit') or 'rmse'}{stated})"
    evidence = [str(e) for e in method.get("evidence") or () if e]
    return text + "." + (f" Evidence: {evidence[0].rstrip('.')}." if evidence else "")


#: method fields that name artifacts (store/artifacts.py references): the localised model among them
ARTIFACT_FIELDS: tuple[str, ...] = ("artifact", "source_logits", "target_logits", "adversarial_set",
                                    "artifact_localised")


def artifacts_of(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The artifacts a finding's rows point at: their `artifact` column and the artifacts their methods name."""
    found: list[str] = []
    for row in rows:
        method = row.get("method") or {}
        for ref in (row.get("artifact"), *(method.get(name) for name in ARTIFACT_FIELDS)):
            if isinstance(ref, str) and ref and ref not in found:
                found.append(ref)
    return tuple(found)


def _merged_method(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for row in rows:
        for name, value in (row.get("method") or {}).items():
            merged.setdefault(name, value)
    return merged


def inconsistency_text(metrics: Mapping[str, Mapping[str, Any]], framework: str) -> str:
    """`3 of 360 test images (0.83 %) changed label against PyTorch; max |Δlogit| 2.4.`"""
    flips = ok_value(metrics, "label_flips") or 0
    rate = ok_value(metrics, "label_flip_rate")
    total = comparison_total(metrics)
    images = f"{count(flips)} of {total:,} test images" if total else f"{count(flips)} test images"
    text = f"{images}{f' ({percent(rate)})' if rate is not None else ''} changed label against " \
           f"{display_name(framework)}"
    max_diff = ok_value(metrics, "max_abs_logit_diff")
    if max_diff is not None:
        text += f"; max |Δlogit| {scientific(max_diff)}"
    return text + "."


__all__ = ["ARTIFACT_FIELDS", "DIVERGED", "LOCALISATION_METRIC", "STATUS_ORDER", "Finding", "artifacts_of",
           "comparison_total", "divergence_text", "divergences", "findings", "inconsistency_text", "localisation_text",
           "localisations"]
