"""The learning-rate schedules, per epoch and framework-neutral: every adapter trains epoch e at `epoch_learning_rate`.

The rates are torch.optim.lr_scheduler's closed forms, so PyTorch runs its own schedulers
(`MultiStepLR`, `CosineAnnealingLR`, stepped once per epoch) and every other framework sets its
optimizer's rate from this module at the start of each epoch:

- ``constant``: ``lr``.
- ``step``: ``lr * gamma ** (number of milestones <= e)``, milestones in epochs (torch's ``MultiStepLR``).
- ``cosine``: ``lr * (1 + cos(pi * e / epochs)) / 2``, from ``lr`` at epoch 0 towards 0 after the last epoch
  (torch's ``CosineAnnealingLR`` with ``T_max = epochs`` and ``eta_min = 0``).

Standard library only: this module loads in every toolchain environment.
"""

from __future__ import annotations

import bisect
import math

from dlcompat.frameworks.base import TrainSettings

SCHEDULES = ("constant", "step", "cosine")


def epoch_learning_rate(settings: TrainSettings, epoch: int) -> float:
    """The learning rate of epoch `epoch` (0-based) of a training run with `settings`."""
    if settings.lr_schedule == "constant":
        return settings.lr
    if settings.lr_schedule == "step":
        return settings.lr * settings.lr_gamma ** bisect.bisect_right(sorted(settings.lr_milestones), epoch)
    if settings.lr_schedule == "cosine":
        return settings.lr * (1.0 + math.cos(math.pi * epoch / settings.epochs)) / 2.0
    raise ValueError(f"unknown learning-rate schedule {settings.lr_schedule!r}: choose {', '.join(SCHEDULES)}")


def learning_rates(settings: TrainSettings) -> list[float]:
    """The rate of every epoch, in order."""
    return [epoch_learning_rate(settings, epoch) for epoch in range(settings.epochs)]


def describe_schedule(settings: TrainSettings) -> str:
    """One line for the record, e.g. ``step: lr 0.1, x 0.1 at epochs 91, 136``."""
    if settings.lr_schedule == "step":
        at = ", ".join(str(m) for m in sorted(settings.lr_milestones))
        return f"step (torch MultiStepLR): lr {settings.lr:g}, x {settings.lr_gamma:g} at epochs {at}"
    if settings.lr_schedule == "cosine":
        return f"cosine (torch CosineAnnealingLR, T_max = {settings.epochs} epochs): lr {settings.lr:g} towards 0"
    epoch_learning_rate(settings, 0)  # an unknown name raises here
    return f"constant: lr {settings.lr:g}"
