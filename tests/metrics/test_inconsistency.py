"""Inconsistency figures on hand-made logits whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.metrics.inconsistency import compare_logits


def test_identical_logits_agree_everywhere():
    x = np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32)
    r = compare_logits(x, x.copy())
    assert r.label_flips == 0 and r.top5_agreement == 1.0 and r.max_abs_logit_diff == 0.0
    assert r.min_atol == 0.0 and r.min_rtol == 0.0


def test_flips_tolerances_and_top5():
    source = np.array([[3.0, 2.0, 1.0, 0.5, 0.4, 0.1], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    target = source.copy()
    target[0, 1] = 3.5  # top-1 flips from 0 to 1; top-5 set unchanged
    target[1, 0] = 5.5  # class 0 enters the top 5 of image 1, class 1 leaves it
    r = compare_logits(source, target)
    assert r.label_flips == 1 and r.label_flip_rate == 0.5
    assert r.top5_agreement == 0.5
    assert r.max_abs_logit_diff == pytest.approx(4.5) and r.min_atol == pytest.approx(4.5)
    assert r.min_rtol == pytest.approx(4.5)  # |5.5 - 1| / |1|
    assert np.allclose(target, source, atol=r.min_atol, rtol=0)
    assert np.allclose(target, source, atol=0, rtol=r.min_rtol)


def test_nonfinite_targets_are_counted():
    source = np.zeros((3, 4))
    target = source.copy()
    target[1, 2] = np.nan
    r = compare_logits(source, target)
    assert r.nonfinite == 1 and r.max_abs_logit_diff == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        compare_logits(np.zeros((2, 10)), np.zeros((2, 9)))
