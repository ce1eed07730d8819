"""Statistics over seeds: mean with a confidence interval, and whether two frameworks differ beyond noise.

Training is nondeterministic, so a framework's accuracy is a distribution over seeds. The verdict for
a pair of frameworks is Welch's t-test (unequal variances) on their per-seed accuracies: the gap is
called real when p < alpha. With fewer than two seeds on either side there is no variance to compare
against, and the verdict says so instead of guessing. SciPy is imported lazily (driver side only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeedSummary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); nan for one seed
    ci_low: float
    ci_high: float
    confidence: float


def summarize(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean, standard deviation and a Student-t confidence interval of the mean."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(data)
    if n == 0:
        nan = float("nan")
        return SeedSummary(0, nan, nan, nan, nan, confidence)
    mean = float(data.mean())
    if n == 1:
        return SeedSummary(1, mean, float("nan"), float("nan"), float("nan"), confidence)
    from scipy import stats

    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return SeedSummary(n, mean, std, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class Verdict:
    test: str
    statistic: float
    p_value: float
    differs: bool | None  # None: cannot tell
    text: str


def compare_seeds(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> Verdict:
    """Is the gap between two frameworks' per-seed values larger than seed-to-seed variance?"""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    test = f"Welch's t-test, alpha {alpha:g}"
    nan = float("nan")
    if len(x) < 2 or len(y) < 2:
        return Verdict(test, nan, nan, None, "needs at least 2 seeds per framework")
    if x.std(ddof=1) == 0 and y.std(ddof=1) == 0:
        same = bool(x.mean() == y.mean())
        return Verdict(test, nan, nan, None if same else True,
                       "identical on every seed" if same else "no seed-to-seed variance; means differ")
    from scipy import stats

    result = stats.ttest_ind(x, y, equal_var=False)
    p = float(result.pvalue)
    differs = p < alpha
    gap = float(x.mean() - y.mean())
    text = (f"differs beyond seed variance (Δ {gap:+.4f}, p = {p:.3g})" if differs
            else f"within seed variance (Δ {gap:+.4f}, p = {p:.3g})")
    return Verdict(test, float(result.statistic), p, differs, text)
