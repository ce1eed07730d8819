"""Prediction inconsistency of a target model against its source, computed from logits alone (NumPy)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Inconsistency:
    n: int
    label_flips: int  # top-1 labels that differ
    label_flip_rate: float
    top5_agreement: float  # fraction of images whose top-5 label sets are equal
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    p99_abs_logit_diff: float
    #: the smallest tolerances for which np.allclose(target, source, ...) passes: atol with rtol=0,
    #: and rtol with atol=0 (inf when a source logit is 0 and its target differs)
    min_atol: float
    min_rtol: float
    nonfinite: int  # rows of the target with NaN or inf

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _top_k_sets(logits: np.ndarray, k: int) -> np.ndarray:
    k = min(k, logits.shape[1])
    return np.sort(np.argsort(-logits, axis=1, kind="stable")[:, :k], axis=1)


def compare_logits(source: np.ndarray, target: np.ndarray) -> Inconsistency:
    if source.shape != target.shape:
        raise ValueError(f"logit shapes differ: source {source.shape}, target {target.shape}")
    source = source.astype(np.float64)
    target = target.astype(np.float64)
    n = len(source)
    flips = int((source.argmax(1) != target.argmax(1)).sum())
    diff = np.abs(source - target)
    finite = np.isfinite(diff)
    nan = float("nan")
    if finite.any():
        values = diff[finite]
        max_diff, mean_diff, p99 = float(values.max()), float(values.mean()), float(np.percentile(values, 99))
        scale = np.abs(source[finite])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(values == 0, 0.0, values / scale)
        min_rtol = float(ratio.max())
    else:
        max_diff = mean_diff = p99 = min_rtol = nan
    return Inconsistency(
        n=n,
        label_flips=flips,
        label_flip_rate=flips / n if n else 0.0,
        top5_agreement=float((_top_k_sets(source, 5) == _top_k_sets(target, 5)).all(axis=1).mean()) if n else nan,
        max_abs_logit_diff=max_diff,
        mean_abs_logit_diff=mean_diff,
        p99_abs_logit_diff=p99,
        min_atol=max_diff,
        min_rtol=min_rtol,
        nonfinite=int((~np.isfinite(target)).any(axis=1).sum()),
    )
