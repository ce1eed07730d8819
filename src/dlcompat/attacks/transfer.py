"""Transfer: adversarial sets made on a source model, run on a model derived from it (NumPy and a runner only).

A derived model is anything the plan made from the source's trained model: its ONNX export in ONNX
Runtime, a conversion into another framework, the same weights loaded elsewhere. Each is run by its
runtime's runner (`dlcompat.runtimes`), so this module never imports a framework and loads in every
toolchain environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from dlcompat.attacks.adversarial_set import AdversarialSet
from dlcompat.metrics.robustness import TransferFigures, transfer_figures
from dlcompat.runtimes.base import Runner

#: joins an attack's setting and a derived model's route in a transfer row's `variant`
VARIANT_JOIN = " · "


def transfer_variant(attack_variant: str, route: str) -> str:
    """A transfer row's `variant`: the attack setting, then the derived model's route ("fgsm eps=0.1 · torch.onnx")."""
    return f"{attack_variant}{VARIANT_JOIN}{route}" if route else attack_variant


@dataclass(frozen=True)
class TransferResult:
    adversarial: AdversarialSet
    target_clean: np.ndarray  # the target's class for each clean image
    target_adversarial: np.ndarray  # ... and for each adversarial example
    figures: TransferFigures


def transfer(runner: Runner, sets: Iterable[AdversarialSet]) -> Iterator[TransferResult]:
    """Run each set's clean and adversarial images on an active runner; figures against the source's predictions.

    The clean predictions are computed once per distinct clean batch (every budget of an attack shares it).
    """
    clean_cache: dict[bytes, np.ndarray] = {}
    for adversarial in sets:
        key = adversarial.indices.tobytes() + adversarial.clean_images.tobytes()
        if key not in clean_cache:
            clean_cache[key] = runner.infer(adversarial.clean_float).argmax(axis=1)
        target_clean = clean_cache[key]
        target_adv = runner.infer(adversarial.images.astype(np.float32)).argmax(axis=1)
        figures = transfer_figures(adversarial.labels, adversarial.clean_predictions, adversarial.source_predictions,
                                   target_clean, target_adv)
        yield TransferResult(adversarial, target_clean, target_adv, figures)
