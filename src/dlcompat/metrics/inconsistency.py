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
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    nonfinite: int  # rows of the target with NaN or inf

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_logits(source: np.ndarray, target: np.ndarray) -> Inconsistency:
    if source.shape != target.shape:
        raise ValueError(f"logit shapes differ: source {source.shape}, target {target.shape}")
    source = source.astype(np.float64)
    target = target.astype(np.float64)
    flips = int((source.argmax(1) != target.argmax(1)).sum())
    diff = np.abs(source - target)
    finite = np.isfinite(diff)
    n = len(source)
    return Inconsistency(
        n=n,
        label_flips=flips,
        label_flip_rate=flips / n if n else 0.0,
        max_abs_logit_diff=float(diff[finite].max()) if finite.any() else float("nan"),
        mean_abs_logit_diff=float(diff[finite].mean()) if finite.any() else float("nan"),
        nonfinite=int((~np.isfinite(target)).any(axis=1).sum()),
    )
