"""Seed statistics: confidence intervals and the framework-pair verdict, on known numbers."""

from __future__ import annotations

import math

import pytest

from dlcompat.metrics.statistics import compare_seeds, summarize


def test_summary_of_known_values():
    s = summarize([0.90, 0.92, 0.94])
    assert s.n == 3 and s.mean == pytest.approx(0.92) and s.std == pytest.approx(0.02)
    # t(0.975, 2) = 4.303: half width 4.303 * 0.02 / sqrt(3)
    assert s.ci_high - s.mean == pytest.approx(4.3027 * 0.02 / math.sqrt(3), rel=1e-3)


def test_one_seed_has_no_interval():
    s = summarize([0.5])
    assert s.n == 1 and math.isnan(s.ci_low) and math.isnan(s.std)


def test_verdicts():
    assert compare_seeds([0.9], [0.8]).differs is None
    assert compare_seeds([0.90, 0.91, 0.90, 0.91], [0.70, 0.71, 0.70, 0.71]).differs is True
    assert compare_seeds([0.90, 0.93, 0.88, 0.92], [0.91, 0.89, 0.93, 0.90]).differs is False
    assert compare_seeds([0.9, 0.9], [0.9, 0.9]).text == "identical on every seed"
