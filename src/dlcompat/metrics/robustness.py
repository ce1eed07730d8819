"""Robustness figures from predicted classes and images alone (NumPy only, recomputable from an exported set).

An attack *succeeds* on an image when the model classified the clean image correctly and the
adversarial one wrongly; the success rate counts only the images the model got right (an image it
already misclassifies proves nothing). Robust accuracy is the accuracy on every adversarial image.
Perturbation norms are over the successful adversarial examples: how far an attack had to move an
image to fool the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _rate(hits: np.ndarray, among: np.ndarray) -> float | None:
    count = int(among.sum())
    return float((hits & among).sum()) / count if count else None


def _stat(values: np.ndarray, fn: str) -> float | None:
    return float(getattr(np, fn)(values)) if values.size else None


@dataclass(frozen=True)
class AttackFigures:
    images: int
    clean_correct: int
    successes: int
    clean_accuracy: float | None
    success_rate: float | None
    robust_accuracy: float | None
    l2_mean: float | None
    l2_max: float | None
    linf_mean: float | None
    linf_max: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def attack_figures(x: np.ndarray, x_adv: np.ndarray, labels: np.ndarray, clean_pred: np.ndarray,
                   adv_pred: np.ndarray) -> AttackFigures:
    """Success rate, robust accuracy and perturbation norms of one adversarial set on the model it attacked."""
    correct = clean_pred == labels
    fooled = adv_pred != labels
    success = correct & fooled
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    l2, linf = np.linalg.norm(delta, axis=1)[success], np.abs(delta).max(axis=1, initial=0.0)[success]
    n = len(labels)
    return AttackFigures(
        images=n, clean_correct=int(correct.sum()), successes=int(success.sum()),
        clean_accuracy=float(correct.mean()) if n else None, success_rate=_rate(fooled, correct),
        robust_accuracy=float((~fooled).mean()) if n else None,
        l2_mean=_stat(l2, "mean"), l2_max=_stat(l2, "max"), linf_mean=_stat(linf, "mean"), linf_max=_stat(linf, "max"),
    )


@dataclass(frozen=True)
class TransferFigures:
    images: int
    #: images both the source and the target classify correctly when clean: the success rates' common base
    both_correct: int
    source_success_rate: float | None
    target_success_rate: float | None
    #: of the examples that fool the source, on images both models get right when clean, the share that fool the target
    transfer_rate: float | None
    target_robust_accuracy: float | None
    target_clean_accuracy: float | None
    #: the target predicts the class the source predicts on the adversarial image
    adversarial_agreement: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def transfer_figures(labels: np.ndarray, source_clean: np.ndarray, source_adv: np.ndarray,
                     target_clean: np.ndarray, target_adv: np.ndarray) -> TransferFigures:
    """How an adversarial set made on the source model fares on a target model (predicted classes only)."""
    source_ok, target_ok = source_clean == labels, target_clean == labels
    source_fooled, target_fooled = source_adv != labels, target_adv != labels
    both = source_ok & target_ok
    n = len(labels)
    return TransferFigures(
        images=n, both_correct=int(both.sum()),
        source_success_rate=_rate(source_fooled, both), target_success_rate=_rate(target_fooled, both),
        transfer_rate=_rate(target_fooled, source_ok & source_fooled & target_ok),
        target_robust_accuracy=float((~target_fooled).mean()) if n else None,
        target_clean_accuracy=float(target_ok.mean()) if n else None,
        adversarial_agreement=float((source_adv == target_adv).mean()) if n else None,
    )
