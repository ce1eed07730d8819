"""The adapter protocol every framework implements (Keras 3's habit: one surface, one shared test suite).

An adapter compiles a `ModelSpec` into the framework's own model and does everything the study asks
of a framework through that model. Arrays cross this boundary as NumPy: images as float32 NHWC in
[0, 1], labels as int64, logits as float32 (N, classes), weights in the canonical layout of
`dlcompat.zoo.spec`. The adapter imports its framework lazily (inside methods), so importing this
module, or listing adapters, never imports a framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlcompat.zoo.spec import ModelSpec

#: A progress callback: receives small dicts such as {"epoch": 3, "epochs": 10, "loss": 0.12}.
Progress = Callable[[dict[str, Any]], None]


class Unavailable(Exception):
    """The framework cannot do this (a layer, an export format): recorded as `unavailable` with the reason."""


@dataclass(frozen=True)
class TrainSettings:
    """The training configuration, identical for every framework (from the study config)."""

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    #: per-epoch learning-rate schedule (`dlcompat.frameworks.lr_schedule`): constant | step | cosine
    lr_schedule: str = "constant"
    lr_milestones: tuple[int, ...] = ()  # epochs at which "step" multiplies the rate by lr_gamma
    lr_gamma: float = 0.1
    #: training-batch augmentation (`dlcompat.data.batching.augment_batch`): none | crop-flip
    augmentation: str = "none"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "lr_milestones" in fields:  # a list once it has been through JSON
            fields["lr_milestones"] = tuple(int(m) for m in fields["lr_milestones"])
        return cls(**fields)


@dataclass
class TrainHistory:
    """Per-epoch curves of one training run."""

    epoch_time_s: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    #: the learning rate each epoch trained with, as the framework's own optimizer held it
    learning_rate: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record_epoch(self, *, seconds: float, loss: float, learning_rate: float,
                     val: tuple[np.ndarray, np.ndarray], predict: Callable[[np.ndarray], np.ndarray], epochs: int,
                     progress: Progress | None) -> None:
        """Append one epoch's figures and report them to `progress`. The validation accuracy comes from
        `predict` (the trained model's logits) on `val`, NaN when there is no validation split."""
        val_accuracy = float((predict(val[0]).argmax(1) == val[1]).mean()) if len(val[1]) else float("nan")
        self.epoch_time_s.append(seconds)
        self.train_loss.append(loss)
        self.learning_rate.append(learning_rate)
        self.val_accuracy.append(val_accuracy)
        if progress:
            progress({"epoch": len(self.epoch_time_s), "epochs": epochs, "loss": loss, "val_accuracy": val_accuracy})


class FrameworkAdapter(ABC):
    """One framework. Subclasses register with `dlcompat.frameworks.registry`."""

    #: registry name, e.g. "pytorch"
    name: ClassVar[str]
    #: the Python module whose version is the framework's version
    module: ClassVar[str]
    #: file suffix of the framework's own save format
    native_suffix: ClassVar[str]
    #: the API `predictor` times, named for the record (each framework's fastest idiom)
    predict_api: ClassVar[str]
    #: export formats this adapter writes itself, e.g. {"onnx": "torch.onnx (dynamo)"}
    exports: ClassVar[dict[str, str]] = {}

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    @abstractmethod
    def version(self) -> str: ...

    def threads_in_effect(self) -> dict[str, Any]:
        """Intra- and inter-op threads as the framework itself reports them (None where it cannot say; 0 is
        "the framework's default", about one per core)."""
        return {"intra_op_threads": None, "inter_op_threads": None}

    @abstractmethod
    def build(self, spec: ModelSpec, seed: int) -> Any:
        """A fresh native model of `spec`, initialised from `init_weights(spec, seed)`."""

    @abstractmethod
    def train(
        self,
        model: Any,
        spec: ModelSpec,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        settings: TrainSettings,
        progress: Progress | None = None,
    ) -> TrainHistory:
        """Train in place with the framework's own loop, in the order of `dlcompat.data.batching.batch_order`."""

    @abstractmethod
    def predict(self, model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits (float32) for float32 NHWC images."""

    @abstractmethod
    def predictor(self, model: Any, x: np.ndarray) -> Callable[[], Any]:
        """A zero-argument call that runs one forward pass on `x` with the framework's fastest idiom.

        The input is converted and placed once, here, so that timing the call times inference only.
        """

    @abstractmethod
    def loss_gradient(self, model: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """d(mean cross-entropy)/d(input), in the layout of `x` (NHWC)."""

    def class_gradient(self, model: Any, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """d logits[i, labels[i]] / d x[i] for each input, in the layout of `x` (NHWC); optional.

        The white-box attacks that follow a class's logit rather than the loss (C&W-L2, DeepFool, JSMA)
        need it; an adapter without it has those attacks recorded as `unavailable`.
        """
        raise Unavailable(f"the {self.name} adapter has no class_gradient (the gradient of one logit with "
                          "respect to the input), which C&W-L2, DeepFool and JSMA need")

    def class_gradients(self, model: Any, x: np.ndarray, classes: int) -> np.ndarray:
        """(N, classes, *input): d logits[i, c] / d x[i] for every class c, in the layout of `x` (NHWC).

        DeepFool asks for every class's gradient at each step. This default calls `class_gradient` once per
        class; an adapter whose framework differentiates every output at once (a batched backward pass)
        overrides it with that.
        """
        n = len(x)
        return np.stack([self.class_gradient(model, x, np.full(n, c, np.int64)) for c in range(classes)], axis=1)

    @abstractmethod
    def get_weights(self, model: Any) -> dict[str, np.ndarray]:
        """Canonical weights (see `dlcompat.zoo.spec`)."""

    @abstractmethod
    def set_weights(self, model: Any, weights: dict[str, np.ndarray]) -> None: ...

    @abstractmethod
    def activations(self, model: Any, x: np.ndarray, layers: list[str] | None = None) -> dict[str, np.ndarray]:
        """Output of each named layer (all when `layers` is None), in canonical layout: (N, C, H, W) or (N, F)."""

    @abstractmethod
    def save(self, model: Any, path: Path) -> None:
        """Write the model in the framework's own format."""

    @abstractmethod
    def load(self, spec: ModelSpec, path: Path) -> Any:
        """Read a model written by `save`, without unsafe deserialisation."""

    def export(self, model: Any, spec: ModelSpec, fmt: str, path: Path, variant: str = "") -> dict[str, Any]:
        """Write `model` as `fmt`; return facts about the export (tool, version, input layout)."""
        raise Unavailable(f"{self.name} cannot export to {fmt}")
