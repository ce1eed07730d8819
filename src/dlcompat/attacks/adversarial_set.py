"""The adversarial set file: one attack at one budget on one model, as a `.npz` that NumPy alone reads.

Arrays (no pickle; `np.load(path)` is all a reader needs):

- `images`            float32 (N, H, W, C) in [0, 1]: the adversarial examples
- `labels`            int64 (N,): the true classes
- `source_predictions` int64 (N,): the attacked model's class for each adversarial example
- `clean_predictions` int64 (N,): the attacked model's class for each clean image
- `clean_images`      uint8 (N, H, W, C): the clean images as stored at rest (float = uint8 / 255)
- `indices`           int64 (N,): their positions in the dataset's test split
- `targets`           int64 (N,): the target classes of a targeted attack (JSMA), else -1
- `attack`, `variant`, `metadata`: the attack's name, the tidy row's variant, and a JSON text with
  everything else (ε, settings, seed, framework, model, dataset, ART version, estimator)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ARRAYS: tuple[str, ...] = ("images", "labels", "source_predictions", "clean_predictions", "clean_images", "indices",
                           "targets")


@dataclass
class AdversarialSet:
    images: np.ndarray
    labels: np.ndarray
    source_predictions: np.ndarray
    clean_predictions: np.ndarray
    clean_images: np.ndarray
    indices: np.ndarray
    targets: np.ndarray
    attack: str
    variant: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def clean_float(self) -> np.ndarray:
        return self.clean_images.astype(np.float32) / np.float32(255.0)

    def save(self, path: Path) -> None:
        """Write the set (compressed; the arrays exactly as held)."""
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh, images=self.images.astype(np.float32), labels=self.labels.astype(np.int64),
                source_predictions=self.source_predictions.astype(np.int64),
                clean_predictions=self.clean_predictions.astype(np.int64),
                clean_images=self.clean_images.astype(np.uint8), indices=self.indices.astype(np.int64),
                targets=self.targets.astype(np.int64), attack=np.array(self.attack), variant=np.array(self.variant),
                metadata=np.array(json.dumps(self.metadata, sort_keys=True, default=str)),
            )

    @classmethod
    def load(cls, path: Path) -> AdversarialSet:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in (*ARRAYS, "attack", "variant", "metadata") if name not in data.files]
            if missing:
                raise ValueError(f"{path} is not an adversarial set: it lacks {', '.join(missing)}")
            arrays = {name: data[name] for name in ARRAYS}
            return cls(**arrays, attack=str(data["attack"]), variant=str(data["variant"]),
                       metadata=json.loads(str(data["metadata"])))
