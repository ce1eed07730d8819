"""Top-1 accuracy from logits."""

from __future__ import annotations

import numpy as np


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(1) == labels).mean())
