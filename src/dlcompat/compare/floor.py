"""The measured noise floor of a compared cell, as its localisation rows state it (issue 18).

A study localises every derived ONNX / `.tflite` artifact (study/jobs/localize.py): its `output_noise_ratio` row is
the output's error against the float64 reference over the source's measured floor, and its method holds the verdict
("exceeds noise" / "within noise": any layer, or the output, over k x its floor), k and the floor's statement. Every
cell that runs that artifact (the same dataset, model, framework, seed and converter chain, whichever runtime or
browser backend) carries those rows, so `compare` can judge a logit change against the floor both runs measured
instead of a fixed factor (`noise.MeasuredFloor`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlcompat.report.findings import LOCALISATION_METRIC
from dlcompat.report.targets import route_of

EXCEEDS, WITHIN = "exceeds noise", "within noise"
#: what each unit of the localisation's output ratio says about the floor that judged it
FLOOR_NAMES = {"rmse": "float32 floor", "rmse (float16 floor)": "float16 floor",
               "quantisation steps": "int8 floor, in quantisation steps"}

LocalisationKey = tuple[str, str, str, int | None, str]  # dataset, model, framework, seed, converter chain


def localisation_key(row: Mapping[str, Any], with_seed: bool) -> LocalisationKey:
    """Where a row's model came from: the artifact a localisation row judged, or the one a cell runs."""
    return (row["dataset"], row["model"], row["framework"], row["seed"] if with_seed else None,
            route_of(row["variant"]))


def localisation_rows(rows: Iterable[Mapping[str, Any]], with_seed: bool) -> dict[LocalisationKey, list[dict]]:
    """The judged localisation rows of a run, by the artifact they judged (several when seeds are pooled)."""
    out: dict[LocalisationKey, list[dict]] = {}
    for row in rows:
        if (row["metric"] == LOCALISATION_METRIC and row["status"] == "ok" and row["value"] is not None
                and (row["method"] or {}).get("verdict") in (EXCEEDS, WITHIN)):
            out.setdefault(localisation_key(row, with_seed), []).append(dict(row))
    return out


@dataclass(frozen=True)
class FloorState:
    """One run's localisation of an artifact: its verdict, its output's error over the floor, k, and the floor."""

    exceeds: bool
    ratio: float  # the output's error over its floor (the largest over pooled seeds)
    k: float
    floor: str  # which floor judged: float32, float16, int8 in quantisation steps
    statement: str  # how the floor was measured (the localize job's `floor`)

    @property
    def verdict(self) -> str:
        return EXCEEDS if self.exceeds else WITHIN

    @property
    def output_exceeds(self) -> bool:
        return not math.isfinite(self.ratio) or self.ratio > self.k


def floor_state(rows: Sequence[Mapping[str, Any]]) -> FloorState | None:
    """The state of an artifact's localisation rows (None without any): beyond noise when any row is."""
    if not rows:
        return None
    methods = [r["method"] for r in rows]
    ks = [float(m["k"]) for m in methods if isinstance(m.get("k"), int | float) and not isinstance(m.get("k"), bool)]
    units = {str(m.get("unit") or "rmse") for m in methods}
    floor = ", ".join(sorted(FLOOR_NAMES.get(unit, unit) for unit in units))
    statements = sorted({str(m.get("floor")) for m in methods if m.get("floor")})
    return FloorState(any(m.get("verdict") == EXCEEDS for m in methods), max(float(r["value"]) for r in rows),
                      min(ks) if ks else math.nan, floor, "; ".join(statements))


def changed(a: FloorState, b: FloorState) -> bool:
    """Beyond noise: the verdict changed (within <-> exceeds), or the output's error over its floor crossed k."""
    return a.exceeds != b.exceeds or a.output_exceeds != b.output_exceeds


__all__ = ["EXCEEDS", "FLOOR_NAMES", "WITHIN", "FloorState", "changed", "floor_state", "localisation_key",
           "localisation_rows"]
