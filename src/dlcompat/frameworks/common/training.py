"""The epoch loop every adapter without a loop of its own trains with: a template around a per-framework step.

Each epoch sets its learning rate, runs one optimiser step per batch of
`dlcompat.data.batching.batch_order` (the same batches, in the same order, in every framework), times
the epoch's steps, and records loss, learning rate and validation accuracy in the `TrainHistory`. A
framework writes the parts that are its own, as methods of an `EpochLoop`: setting and reading the rate,
one step, and, where its steps run asynchronously, waiting for them. NumPy only.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from dlcompat.data.batching import batch_order
from dlcompat.frameworks.base import Progress, TrainHistory, TrainSettings


class EpochLoop(ABC):
    """One training run of one framework; `run` is the loop, the subclass its steps."""

    @abstractmethod
    def begin_epoch(self, epoch: int) -> None:
        """Prepare epoch `epoch` (0-based): set its learning rate on the optimiser."""

    @abstractmethod
    def learning_rate(self) -> float:
        """The rate the epoch just ended trained with, as the framework's optimiser held it."""

    @abstractmethod
    def step(self, epoch: int, number: int, indices: np.ndarray) -> Any:
        """One optimiser step on batch `number` of the epoch, the training images at `indices`: its mean loss
        (a number, or the framework's scalar while `epoch_loss` reads it)."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits of the model as trained so far (for the validation accuracy)."""

    def wait(self) -> None:  # noqa: B027 (a hook: most frameworks' steps have finished when they return)
        """Block until the epoch's steps have run (a framework whose steps return before they finish)."""

    def epoch_loss(self, losses: list[Any], sizes: list[int]) -> float:
        """The epoch's mean loss over images: each batch's mean, weighted by its size, summed in order."""
        total = 0.0
        for loss, size in zip(losses, sizes, strict=True):
            total += float(loss) * size
        return total / max(sum(sizes), 1)

    def run(self, examples: int, val: tuple[np.ndarray, np.ndarray], settings: TrainSettings,
            progress: Progress | None = None) -> TrainHistory:
        """Train on `examples` images for `settings.epochs` epochs; the history of the run."""
        history = TrainHistory()
        for epoch in range(settings.epochs):
            self.begin_epoch(epoch)
            start = time.perf_counter()
            losses, sizes = [], []
            for number, indices in enumerate(batch_order(examples, settings.batch_size, epoch, settings.seed)):
                losses.append(self.step(epoch, number, indices))
                sizes.append(len(indices))
            self.wait()
            seconds = time.perf_counter() - start
            history.record_epoch(seconds=seconds, loss=self.epoch_loss(losses, sizes),
                                 learning_rate=self.learning_rate(),
                                 val=val, predict=self.predict, epochs=settings.epochs, progress=progress)
        return history
