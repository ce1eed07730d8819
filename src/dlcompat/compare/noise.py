"""The noise of one measurement between two runs, and whether a change exceeds it.

`dlcompat compare` asks of every measurement both runs made: is the change larger than what the
measurement would show by chance? The answer depends on what was measured, so each metric has a
rule (a registry, `rule_for`), and each rule states its method in words, which the comparison
records beside every verdict:

- accuracy and other rates on n test images: a 95% two-proportion interval of the difference
  (Newcombe's hybrid score interval, from Wilson intervals); when both runs have several seeds, the
  seed-to-seed spread instead (Welch's t-test, `metrics.statistics.compare_seeds`);
- label flips and other counts: the exact binomial test of two counts (given their sum, is the split
  what the numbers of images predict?);
- the latency median: each run's own CI of the median (the `latency_median_ci_*` rows of the same
  cell, `metrics.latency.median_ci`: the order-statistic interval over the medians of up to 30
  contiguous blocks of calls, so that it follows the machine's drift within a run, widened by one
  clock tick on each side); a change exceeds noise when the intervals are disjoint;
- training time: the spread across seeds, else across epochs (Welch), else a stated tolerance;
- logit differences of a derived model, and its localisation's output error over the floor: the
  source's measured noise floor where both runs localised the artifact the cell runs (`floor.py`): the
  change exceeds noise when the verdict changed (within <-> exceeds) or the output's error over its
  floor crossed k; the text says which floor judged. Where a run measured no floor, a fixed factor of
  10 (equally good conversions differ by orders of magnitude), and the text says no floor was measured;
- everything else: the spread across seeds where both runs have several, else a stated relative
  (or absolute) tolerance; sizes and bit-reproducibility are exact.

Only `SciPy` is used (imported lazily); the Newcombe interval is a formula SciPy lacks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dlcompat.metrics.statistics import compare_seeds
from dlcompat.report.findings import LOCALISATION_METRIC
from dlcompat.report.formatting import format_value, percent, significant

from .floor import changed, floor_state

#: the level of every interval and test
CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE


@dataclass
class Side:
    """One run's measurement of one identity: its rows (one per seed, or several) and its cell's rows.

    `cell` holds every row of the same dataset × model × framework × target × variant (× seed), by
    metric: a rule reads the noise of a figure from its siblings (the latency CI, the epoch times).
    """

    rows: list[dict[str, Any]]
    cell: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the localisation rows of the artifact the cell runs (`floor.localisation_rows`): its measured noise floor
    localisation: list[dict[str, Any]] = field(default_factory=list)

    @property
    def measured(self) -> list[dict[str, Any]]:
        """The rows with a measured value."""
        return [r for r in self.rows if r["status"] == "ok" and r["value"] is not None]

    @property
    def values(self) -> list[float]:
        """The finite measured values, one per row (per seed)."""
        return [r["value"] for r in self.measured if math.isfinite(r["value"])]

    @property
    def value(self) -> float | None:
        """The measured value: the mean over seeds (or rows) when there are several."""
        values = [r["value"] for r in self.measured]
        return sum(values) / len(values) if values else None

    @property
    def unit(self) -> str:
        return next((r["unit"] for r in self.rows if r["unit"]), "")

    @property
    def metric(self) -> str:
        return self.rows[0]["metric"]

    def images(self) -> list[int] | None:
        """The number of images behind each measured value (its method's `images`), or None when any lacks it."""
        counts = []
        for row in self.measured:
            n = row["method"].get("images")
            if isinstance(n, bool) or not isinstance(n, int | float) or n <= 0:
                return None
            counts.append(int(n))
        return counts

    def siblings(self, metric: str) -> list[float]:
        return [r["value"] for r in self.cell.get(metric, ())
                if r["status"] == "ok" and r["value"] is not None and math.isfinite(r["value"])]


@dataclass(frozen=True)
class Noise:
    """The verdict on one change: whether it exceeds noise, the noise as shown, and the method's name."""

    exceeds: bool
    text: str
    method: str

    @property
    def label(self) -> str:
        return "exceeds noise" if self.exceeds else "within noise"


class NoiseRule(Protocol):
    #: the method in words, as the comparison's method table states it
    description: str

    def judge(self, a: Side, b: Side) -> Noise: ...


# -- the statistics ---------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval of a proportion (SciPy's `binomtest(...).proportion_ci`)."""
    from scipy import stats

    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def newcombe_interval(k_a: int, n_a: int, k_b: int, n_b: int,
                      confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p_b − p_a (method 10 of Newcombe, Stat. Med. 1998)."""
    p_a, p_b = k_a / n_a, k_b / n_b
    low_a, high_a = wilson_interval(k_a, n_a, confidence)
    low_b, high_b = wilson_interval(k_b, n_b, confidence)
    delta = p_b - p_a
    return (delta - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2),
            delta + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2))


def count_test_p(k_a: int, exposure_a: float, k_b: int, exposure_b: float) -> float:
    """Exact test of two counts: given k_a + k_b events, is k_b's share what the exposures predict?"""
    from scipy import stats

    total = k_a + k_b
    if total == 0:
        return 1.0
    return float(stats.binomtest(k_b, total, p=exposure_b / (exposure_a + exposure_b)).pvalue)


def welch(a: Sequence[float], b: Sequence[float], what: str) -> Noise:
    """The spread of `what` (seeds, epochs): Welch's t-test of the two runs' samples."""
    verdict = compare_seeds(a, b, alpha=ALPHA)
    method = f"Welch's t-test over {what}, alpha {ALPHA:g}"
    if math.isnan(verdict.p_value):
        text = f"{len(a)} vs {len(b)} {what}: {verdict.text}"
    else:
        text = f"{len(a)} vs {len(b)} {what}, p = {verdict.p_value:.3g}"
    return Noise(bool(verdict.differs), text, method)


def _several(a: Side, b: Side) -> bool:
    return len(a.values) >= 2 and len(b.values) >= 2


def _tolerance_text(relative: float, absolute: float, unit: str, metric: str) -> str:
    parts = []
    if relative:
        parts.append(f"±{percent(relative, 0)}")
    if absolute:
        fraction = unit.strip().lower() == "fraction" or (not unit and absolute < 1)
        parts.append(f"±{absolute * 100:.2f} pp" if fraction else f"±{format_value(absolute, unit, metric)}")
    return " or ".join(parts) if parts else "exact"


# -- the rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """The seeds' spread when both runs have several, else a stated relative (or absolute) tolerance."""

    relative: float = 0.10
    absolute: float = 0.0
    why: str = ""

    @property
    def description(self) -> str:
        bound = _tolerance_text(self.relative, self.absolute, "", "")
        reason = f" ({self.why})" if self.why else ""
        return f"Welch's t-test over seeds when both runs have several; else a tolerance of {bound}{reason}"

    def judge(self, a: Side, b: Side) -> Noise:
        if _several(a, b):
            return welch(a.values, b.values, "seeds")
        return self.fixed(a, b)

    def fixed(self, a: Side, b: Side) -> Noise:
        va, vb = a.value, b.value
        assert va is not None and vb is not None
        bound = max(self.relative * abs(va), self.absolute)
        text = _tolerance_text(self.relative, self.absolute, a.unit, a.metric)
        return Noise(abs(vb - va) > bound, text, f"stated tolerance {text}" + (f" ({self.why})" if self.why else ""))


@dataclass(frozen=True)
class Proportion:
    """A rate on n images: the seeds' spread (Welch) when both runs have several, else Newcombe's interval."""

    #: the tolerance when a row does not say how many images it covers
    fallback: Tolerance = Tolerance(relative=0.0, absolute=0.02, why="number of images not recorded")

    @property
    def description(self) -> str:
        return (f"Welch's t-test over seeds when both runs have several; else the {percent(CONFIDENCE, 0)} "
                "two-proportion interval of the difference on the images behind each rate (Newcombe's hybrid "
                "score interval): the change exceeds noise when the interval excludes 0")

    def judge(self, a: Side, b: Side) -> Noise:
        if _several(a, b):
            return welch(a.values, b.values, "seeds")
        n_a, n_b = a.images(), b.images()
        if n_a is None or n_b is None:
            return self.fallback.fixed(a, b)
        k_a = sum(round(r["value"] * n) for r, n in zip(a.measured, n_a, strict=True))
        k_b = sum(round(r["value"] * n) for r, n in zip(b.measured, n_b, strict=True))
        total_a, total_b = sum(n_a), sum(n_b)
        if not (0 <= k_a <= total_a and 0 <= k_b <= total_b):
            return self.fallback.fixed(a, b)
        low, high = newcombe_interval(k_a, total_a, k_b, total_b)
        text = (f"Δ {percent(CONFIDENCE, 0)} CI [{_pp(low)}, {_pp(high)}] on {total_a:,} vs {total_b:,} images")
        return Noise(low > 0 or high < 0, text,
                     f"two-proportion interval (Newcombe), {percent(CONFIDENCE, 0)}")


def _pp(fraction: float) -> str:
    """A difference of two fractions in percentage points: `+2.10 pp`."""
    return f"{fraction * 100:+.2f} pp"


@dataclass(frozen=True)
class Count:
    """A count of events among n images (label flips): the exact binomial test of the two counts."""

    @property
    def description(self) -> str:
        return ("Welch's t-test over seeds when both runs have several; else the exact binomial test of the two "
                f"counts given their sum, weighted by the images behind each (equal when not recorded), alpha "
                f"{ALPHA:g}")

    def judge(self, a: Side, b: Side) -> Noise:
        if _several(a, b):
            return welch(a.values, b.values, "seeds")
        n_a, n_b = a.images(), b.images()
        exposure_a = sum(n_a) if n_a and n_b else len(a.measured)
        exposure_b = sum(n_b) if n_a and n_b else len(b.measured)
        k_a, k_b = round(sum(a.values)), round(sum(b.values))
        p = count_test_p(k_a, exposure_a, k_b, exposure_b)
        return Noise(p < ALPHA, f"{k_a:,} vs {k_b:,}, p = {p:.3g}",
                     f"exact binomial test of two counts, alpha {ALPHA:g}")


@dataclass(frozen=True)
class MedianInterval:
    """The latency median: each run's own CI of the median; the change exceeds noise when they are disjoint.

    A run's interval is `metrics.latency.median_ci`'s: the distribution-free order-statistic CI over the
    medians of contiguous blocks of its calls (blocks of calls are nearly independent where single calls
    are not: they share the machine's slow drift), widened by one clock tick on each side (a quantized
    reading is off by up to a tick). With several seeds pooled, a run's interval is the envelope of its
    seeds' intervals. A per-image median is the per-call median divided by the batch size, and so is its
    interval.

    A CI covers the variation within one measurement, not between runs: two measurements of the same
    model in a row, in one process, differed by up to 24% on a VM (`benchmarks/repeatability.py`;
    most pairs by under 5%) while their intervals were a fraction of a percent wide. So a change must
    also exceed a stated run-to-run floor, `run_to_run` of the first run's median (asv's habit:
    statistics and a factor, 1.1 by default there too).
    """

    per_image: bool = False
    run_to_run: float = 0.10
    fallback: Tolerance = Tolerance(relative=0.10, why="the CI of the median was not recorded")

    @property
    def description(self) -> str:
        return ("each run's CI of the median (order statistics over the medians of contiguous blocks of calls, "
                "widened by a clock tick; the `latency_median_ci_low` and `_high` rows, at the level its method "
                "states): the change exceeds noise when the intervals are disjoint and the medians differ by "
                f"more than {percent(self.run_to_run, 0)}, the run-to-run floor")

    def _interval(self, side: Side) -> tuple[float, float] | None:
        lows, highs = side.siblings("latency_median_ci_low"), side.siblings("latency_median_ci_high")
        if not lows or not highs:
            return None
        low, high = min(lows), max(highs)
        if self.per_image:
            batches = {r["method"].get("batch_size") for r in side.measured}
            batch = batches.pop() if len(batches) == 1 else None
            if not isinstance(batch, int | float) or isinstance(batch, bool) or batch <= 0:
                return None
            low, high = low / batch, high / batch
        return low, high

    def judge(self, a: Side, b: Side) -> Noise:
        ia, ib = self._interval(a), self._interval(b)
        if ia is None or ib is None:
            return self.fallback.fixed(a, b)
        levels = {r["method"].get("ci_level") for r in (*a.rows, *b.rows)} - {None}
        level = percent(float(levels.pop()), 0) if len(levels) == 1 else "the methods'"
        unit = a.unit
        text = (f"{level} CIs [{significant(ia[0])}, {significant(ia[1])}] vs "
                f"[{significant(ib[0])}, {significant(ib[1])}] {unit}").rstrip()
        disjoint = ib[0] > ia[1] or ib[1] < ia[0]
        va, vb = a.value, b.value
        beyond_floor = va is None or vb is None or abs(vb - va) > self.run_to_run * abs(va)
        return Noise(disjoint and beyond_floor, text,
                     f"CI of the median of each run ({level}), disjoint, and a change over "
                     f"{percent(self.run_to_run, 0)} (run-to-run floor)")


@dataclass(frozen=True)
class EpochSpread:
    """Training time: the seeds' spread, else the spread across epochs (`epoch_time` rows), else a tolerance."""

    fallback: Tolerance = Tolerance(relative=0.10, why="one seed and one epoch: no spread recorded")

    @property
    def description(self) -> str:
        bound = _tolerance_text(self.fallback.relative, self.fallback.absolute, "", "")
        return ("Welch's t-test over seeds when both runs have several, else over the per-epoch times "
                f"(`epoch_time`) when both have several epochs; else a tolerance of {bound}")

    def judge(self, a: Side, b: Side) -> Noise:
        if _several(a, b):
            return welch(a.values, b.values, "seeds")
        epochs_a, epochs_b = a.siblings("epoch_time"), b.siblings("epoch_time")
        if len(epochs_a) >= 2 and len(epochs_b) >= 2:
            return welch(epochs_a, epochs_b, "epochs")
        return self.fallback.fixed(a, b)


@dataclass(frozen=True)
class Exact:
    """A deterministic figure (a file's size, bit-identity): any change is a change."""

    description: str = "exact: the figure is deterministic, any change exceeds noise"

    def judge(self, a: Side, b: Side) -> Noise:
        return Noise(a.value != b.value, "exact", "exact (deterministic figure)")


@dataclass(frozen=True)
class Ratio:
    """Round-off figures (logit differences): equally good conversions differ by small factors."""

    factor: float = 10.0

    @property
    def description(self) -> str:
        return (f"a factor of {self.factor:g}: round-off differences vary by small factors between equally good "
                "models, so only a change of an order of magnitude (or to or from exactly 0) exceeds noise")

    def judge(self, a: Side, b: Side) -> Noise:
        va, vb = abs(a.value or 0.0), abs(b.value or 0.0)
        # from or to exactly 0 (bit-identical) is a change; otherwise only an order of magnitude is
        exceeds = (va == 0) != (vb == 0) if va == 0 or vb == 0 else max(va, vb) / min(va, vb) > self.factor
        return Noise(exceeds, f"×{self.factor:g}", f"ratio tolerance ×{self.factor:g}")


@dataclass(frozen=True)
class MeasuredFloor:
    """A derived model's logit differences, judged by its artifact's localisation against the source's measured
    noise floor where both runs have one (`floor.py`); the fixed ratio only where a run measured no floor."""

    fallback: Ratio = Ratio()

    @property
    def description(self) -> str:
        return ("the artifact's localisation against its source's measured noise floor where both runs localised "
                "it: the change exceeds noise when the verdict changed (within ↔ exceeds) or the output's error "
                f"over its floor crossed k; where a run measured no floor, a factor of {self.fallback.factor:g}")

    def judge(self, a: Side, b: Side) -> Noise:
        state_a, state_b = floor_state(a.localisation), floor_state(b.localisation)
        if state_a is None or state_b is None:
            missing = " and ".join(run for run, s in (("run A", state_a), ("run B", state_b)) if s is None)
            fixed = self.fallback.judge(a, b)
            return Noise(fixed.exceeds, f"{fixed.text} (no noise floor measured in {missing})",
                         f"{fixed.method}: no noise floor measured")
        floors = state_a.floor if state_a.floor == state_b.floor else f"{state_a.floor} → {state_b.floor}"
        k = f"{state_a.k:g}" if state_a.k == state_b.k else f"{state_a.k:g} → {state_b.k:g}"
        text = (f"{state_a.verdict} → {state_b.verdict}, output {significant(state_a.ratio)}x → "
                f"{significant(state_b.ratio)}x its floor (k = {k}; {floors})")
        statement = state_b.statement or state_a.statement
        return Noise(changed(state_a, state_b), text,
                     f"measured noise floor ({floors}{f': {statement}' if statement else ''})")


PROPORTION = Proportion()
COUNT = Count()
EXACT = Exact()
ROUND_OFF = Ratio()
FLOOR = MeasuredFloor(ROUND_OFF)
TIMING = Tolerance(relative=0.25, why="a one-shot timing")
MEMORY = Tolerance(relative=0.05)
DEFAULT = Tolerance(relative=0.10)

#: metric -> its rule; a metric not listed gets a rule by its unit (`rule_for`)
RULES: dict[str, NoiseRule] = {
    **dict.fromkeys(("accuracy", "val_accuracy", "source_accuracy", "label_flip_rate", "top5_agreement",
                     "attack_success_rate", "robust_accuracy", "transfer_success_rate",
                     "transfer_source_success_rate", "transfer_rate", "transfer_robust_accuracy",
                     "adversarial_agreement"), PROPORTION),
    "accuracy_change": Tolerance(relative=0.0, absolute=0.01, why="a difference of two accuracies"),
    **dict.fromkeys(("label_flips", "reproduce_label_flips"), COUNT),
    "latency_p50": MedianInterval(),
    "latency_p50_per_image": MedianInterval(per_image=True),
    **dict.fromkeys(("latency_p10", "latency_p90", "latency_mean", "latency_min"), DEFAULT),
    **dict.fromkeys(("latency_p99", "latency_std"), Tolerance(relative=0.25, why="a tail statistic")),
    "first_inference": Tolerance(relative=0.5, why="a single call"),
    **dict.fromkeys(("train_time", "train_time_per_epoch"), EpochSpread()),
    **dict.fromkeys(("train_peak_rss", "peak_rss", "peak_rss_load", "peak_rss_inference"), MEMORY),
    **dict.fromkeys(("load_time", "conversion_time", "attack_time", "attack_time_per_image"), TIMING),
    **dict.fromkeys(("model_size", "converted_size", "bit_reproducible"), EXACT),
    **dict.fromkeys(("max_abs_logit_diff", "mean_abs_logit_diff", "p99_abs_logit_diff", "min_atol", "min_rtol",
                     LOCALISATION_METRIC), FLOOR),
    "reproduce_max_weight_diff": ROUND_OFF,
}

#: unit -> the rule of a metric `RULES` does not name
UNIT_RULES: dict[str, NoiseRule] = {"fraction": PROPORTION, "count": COUNT, "bytes": MEMORY, "s": TIMING,
                                    "ms": TIMING, "bool": EXACT}

#: metrics that are not compared themselves: the noise of another figure, or a curve shown by its last point
NOT_COMPARED: dict[str, str] = {
    "latency_median_ci_low": "the noise of latency_p50",
    "latency_median_ci_high": "the noise of latency_p50",
    "epoch_time": "the noise of train_time (its last epochs are in train_time_per_epoch)",
    "epoch_train_loss": "a learning curve: its last point is final_train_loss",
    "epoch_val_accuracy": "a learning curve: its last point is val_accuracy",
}


def rule_for(metric: str, unit: str = "") -> NoiseRule:
    """The noise rule of a metric: by name, else by unit, else a 10% tolerance."""
    return RULES.get(metric) or UNIT_RULES.get(unit.strip().lower()) or DEFAULT


def judge(a: Side, b: Side) -> Noise:
    """Whether b's value differs from a's beyond noise (both measured); non-finite values always do."""
    va, vb = a.value, b.value
    assert va is not None and vb is not None
    if not (math.isfinite(va) and math.isfinite(vb)):
        return Noise(va != vb, "non-finite value", "a non-finite value is compared exactly")
    return rule_for(a.metric, a.unit).judge(a, b)


__all__ = ["ALPHA", "CONFIDENCE", "FLOOR", "NOT_COMPARED", "RULES", "MeasuredFloor", "Noise", "NoiseRule", "Side",
           "count_test_p", "judge", "newcombe_interval", "rule_for", "welch", "wilson_interval"]
