"""Run one attack on one ART classifier for every budget of the study (Foolbox 3's habit: a list of ε).

Every budget starts from the same seeded state (NumPy's global generator, which ART draws its
random starts from, and the framework's own), so a result depends on its settings and seed only,
never on which budgets ran before it: a re-run gives the same examples. A targeted attack (JSMA)
gets a random target class other than the true one, drawn from the seed and the labels alone, so
every framework is attacked towards the same targets.
"""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlcompat.attacks.catalog import AttackEntry, AttackSettings
from dlcompat.frameworks.registry import seed_loaded_frameworks
from dlcompat.registry import resolve


@dataclass
class AdversarialBatch:
    """The outcome of one attack at one budget."""

    variant: str
    epsilon: float | None
    kwargs: dict[str, Any]
    images: np.ndarray  # float32 NHWC in [0, 1]
    targets: np.ndarray  # the target classes of a targeted attack, else -1
    seconds: float


def seed_everything(seed: int) -> None:
    """Seed every generator an attack may draw from: Python's, NumPy's global one, and loaded frameworks'."""
    random.seed(seed)
    np.random.seed(seed)
    seed_loaded_frameworks(seed)


def random_targets(labels: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """A class other than the true one for each image, uniformly, from `seed` alone."""
    shift = np.random.default_rng([seed, 7]).integers(1, classes, size=len(labels))
    return ((labels.astype(np.int64) + shift) % classes).astype(np.int64)


def art_attack_class(entry: AttackEntry) -> type:
    return resolve(entry.art_class)


def generate_adversarial(classifier: Any, entry: AttackEntry, x: np.ndarray, labels: np.ndarray,
                         settings: AttackSettings, seed: int,
                         on_budget: Callable[[dict[str, Any]], None] | None = None) -> list[AdversarialBatch]:
    """One `AdversarialBatch` per budget of `entry` (each ε for FGSM/BIM/PGD; one for C&W, DeepFool, JSMA)."""
    attack_class = art_attack_class(entry)
    x = np.ascontiguousarray(x, dtype=np.float32)
    targets = (random_targets(labels, classifier.nb_classes, seed) if entry.targeted
               else np.full(len(labels), -1, np.int64))
    y = targets if entry.targeted else labels.astype(np.int64)
    out = []
    budgets = entry.budgets(settings)
    for number, epsilon in enumerate(budgets, start=1):
        kwargs = entry.kwargs(settings, epsilon)
        seed_everything(seed)
        quiet = {"verbose": False} if "verbose" in inspect.signature(attack_class.__init__).parameters else {}
        attack = attack_class(classifier, **kwargs, **quiet)
        start = time.perf_counter()
        images = attack.generate(x=x, y=y)
        seconds = time.perf_counter() - start
        images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
        out.append(AdversarialBatch(entry.variant(settings, epsilon), epsilon, kwargs, images, targets, seconds))
        if on_budget:
            on_budget({"attack": entry.name, "budget": number, "budgets": len(budgets), "seconds": seconds})
    return out
