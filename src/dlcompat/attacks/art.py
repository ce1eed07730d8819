"""dlcompat's models as ART classifiers, so the Adversarial Robustness Toolbox attacks every framework.

Every framework is attacked through `AdapterClassifier`, ART's estimator interface over the adapter
protocol: `predict`, `loss_gradient`, `class_gradient` and `class_gradients` are the adapter's, so each
framework computes its own gradients with its own compiled functions (a `tf.function`, `jax.jit`, a
Theano/PyTensor function) and ART only does the attack arithmetic in NumPy.

ART's own classifiers for PyTorch (`PyTorchClassifier`, through a two-line module taking NHWC, the layout
of the adversarial sets) and Keras 3 (`TensorFlowV2Classifier`) are kept as the cross-check (`native=True`):
over the same model they produce the same adversarial images (to 1e-5, on 300 MNIST images through paper-mnist's
six attacks), but slower — ART's TensorFlow classifier runs every gradient eagerly (JSMA 17.9x, C&W-L2 13.6x,
BIM and PGD 4.6-4.8x, DeepFool 3-4x the adapter's time on LeNet-5), its PyTorch classifier pays per call (JSMA
5.9x, C&W-L2 4.3x, BIM and PGD 1.2-1.3x; DeepFool 0.96x): `benchmarks/attack_estimators.py`. A native
classifier is used only after its logits match the adapter's on a probe batch; otherwise (or when
building it fails) the adapter classifier takes over and the reason is recorded.

ART is imported by this module: it runs where ART is installed, the `main` environment and the
`theano` one (envs/theano.txt pins ART 1.20.1 beside numpy 1.23.5), so every framework's models are
attacked in their own environment. An environment without ART records its attack jobs `unavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from art.estimators.classification.classifier import ClassGradientsMixin, ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin

from dlcompat.frameworks.base import FrameworkAdapter, Unavailable
from dlcompat.registry import Registry
from dlcompat.zoo.spec import ModelSpec

#: images are float32 in [0, 1]; every adversarial example is clipped to that box
CLIP_VALUES = (0.0, 1.0)
#: a native ART classifier must reproduce the adapter's logits this closely (relative to the largest logit, at
#: least 1) on the probe batch
PROBE_TOLERANCE = 1e-4


def _labels(y: np.ndarray) -> np.ndarray:
    """ART passes labels one-hot (N, classes) or as indices (N,); the adapters take indices."""
    y = np.asarray(y)
    return (y.argmax(axis=1) if y.ndim == 2 else y).astype(np.int64)


class AdapterClassifier(ClassGradientsMixin, ClassifierMixin, LossGradientsMixin, BaseEstimator):
    """An ART classifier whose every forward and backward pass is the framework adapter's.

    Inputs are float32 NHWC in [0, 1], outputs logits. `class_gradient` needs the adapter's optional
    `class_gradient`; without it the attacks that need one raise `Unavailable`.
    """

    estimator_params = BaseEstimator.estimator_params + ClassifierMixin.estimator_params

    def __init__(self, adapter: FrameworkAdapter, model: Any, spec: ModelSpec, batch_size: int = 128) -> None:
        super().__init__(model=model, clip_values=CLIP_VALUES, preprocessing=None)
        self.adapter = adapter
        self.spec = spec
        self.batch_size = batch_size
        self.nb_classes = spec.num_classes
        self._input_shape = tuple(spec.input_shape)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    @property
    def has_class_gradient(self) -> bool:
        return type(self.adapter).class_gradient is not FrameworkAdapter.class_gradient

    def predict(self, x: np.ndarray, batch_size: int = 128, **kwargs: Any) -> np.ndarray:
        # a copy: ART's attacks write into the arrays an estimator returns (a view of a JAX array is read-only)
        return np.array(self.adapter.predict(self.model, np.asarray(x, dtype=np.float32), batch_size=batch_size),
                        dtype=np.float32)

    def fit(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> None:
        raise NotImplementedError("dlcompat trains models with the framework adapter, not through ART")

    def _batched(self, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray,
                 labels: np.ndarray, per_row: tuple[int, ...] = ()) -> np.ndarray:
        """`fn` over `batch_size` rows at a time; each row's result has shape (*per_row, *input)."""
        x = np.asarray(x, dtype=np.float32)
        parts = [fn(x[i : i + self.batch_size], labels[i : i + self.batch_size])
                 for i in range(0, len(x), self.batch_size)]
        return (np.concatenate(parts).astype(np.float32) if parts
                else np.zeros((0, *per_row, *x.shape[1:]), np.float32))

    def loss_gradient(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> np.ndarray:
        """d(mean cross-entropy)/dx, as the adapter computes it (ART's PyTorch classifier reduces by the mean too)."""
        return self._batched(lambda xb, yb: self.adapter.loss_gradient(self.model, xb, yb), x, _labels(y))

    def class_gradient(self, x: np.ndarray, label: int | list[int] | np.ndarray | None = None,
                       **kwargs: Any) -> np.ndarray:
        """(N, classes, *input) for label=None, else (N, 1, *input): the gradient of the chosen logit.

        An adapter without `class_gradient` raises `Unavailable` from its first call, saying so.
        """
        n = len(x)

        def one(labels: np.ndarray) -> np.ndarray:
            return self._batched(lambda xb, lb: self.adapter.class_gradient(self.model, xb, lb), x, labels)

        if label is None:  # every class: the adapter's all-class gradient, batch by batch
            return self._batched(lambda xb, _: self.adapter.class_gradients(self.model, xb, self.nb_classes), x,
                                 np.zeros(n, np.int64), per_row=(self.nb_classes,))
        if isinstance(label, int | np.integer):
            return one(np.full(n, int(label), np.int64))[:, None]
        labels = np.asarray(label, dtype=np.int64).reshape(-1)
        if len(labels) != n:
            raise ValueError(f"class_gradient: {len(labels)} labels for {n} inputs")
        return one(labels)[:, None]

    def compute_loss(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> np.ndarray:
        logits = self.predict(x).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -log_softmax[np.arange(len(x)), _labels(y)]


# -- ART's own classifiers, where they fit --------------------------------------------------------------

NativeBuilder = Callable[[FrameworkAdapter, Any, ModelSpec, int], Any]


@dataclass(frozen=True)
class NativeClassifier:
    """ART's own classifier for the framework `name`: how the record names it, and the function building it."""

    name: str
    description: str
    build: NativeBuilder


NATIVE_CLASSIFIERS: Registry[NativeClassifier] = Registry("native ART classifier")


def register_native(framework: str, description: str) -> Callable[[NativeBuilder], NativeBuilder]:
    def wrap(builder: NativeBuilder) -> NativeBuilder:
        NATIVE_CLASSIFIERS.register(NativeClassifier(framework, description, builder))
        return builder

    return wrap


@register_native("pytorch", "art.PyTorchClassifier")
def _pytorch_classifier(_adapter: FrameworkAdapter, model: Any, spec: ModelSpec, _batch_size: int) -> Any:
    import torch
    from art.estimators.classification import PyTorchClassifier

    class NHWC(torch.nn.Module):
        """The adapter's NCHW module, fed the NHWC images the adversarial sets are stored in."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner(x.permute(0, 3, 1, 2))

    return PyTorchClassifier(model=NHWC(model).eval(), loss=torch.nn.CrossEntropyLoss(),
                             input_shape=tuple(spec.input_shape), nb_classes=spec.num_classes,
                             clip_values=CLIP_VALUES, channels_first=False, device_type="cpu")


@register_native("tensorflow", "art.TensorFlowV2Classifier")
def _keras_classifier(_adapter: FrameworkAdapter, model: Any, spec: ModelSpec, _batch_size: int) -> Any:
    import keras
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier

    if not isinstance(model, keras.Model):
        raise TypeError(f"the tensorflow adapter's model is a {type(model).__name__}, not a keras.Model")
    return TensorFlowV2Classifier(model=model, nb_classes=spec.num_classes, input_shape=tuple(spec.input_shape),
                                  loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                  clip_values=CLIP_VALUES, channels_first=False)


def art_classifier(adapter: FrameworkAdapter, model: Any, spec: ModelSpec, probe: np.ndarray, *,
                   batch_size: int = 128, native: bool = False) -> tuple[Any, dict[str, Any]]:
    """The ART classifier to attack `model` with, and facts for the record (which estimator, and why).

    `native=True` asks for ART's own classifier where ART has one (the cross-check; the study uses the adapter
    classifier): `probe` (a few float32 NHWC images) checks that it computes the adapter's logits.
    """
    facts: dict[str, Any] = {}
    if native and adapter.name in NATIVE_CLASSIFIERS:
        entry = NATIVE_CLASSIFIERS.get(adapter.name)
        description = entry.description
        try:
            classifier = entry.build(adapter, model, spec, batch_size)
            expected = adapter.predict(model, probe)
            diff = float(np.max(np.abs(classifier.predict(probe) - expected)))
            if diff <= PROBE_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
                return classifier, {"estimator": description, "gradients": adapter.name,
                                    "class_gradient": True}
            facts["native_estimator_rejected"] = f"{description}: logits differ from the adapter's by {diff:.3g}"
        except Exception as exc:  # a model the native classifier cannot take: fall back, and say why
            facts["native_estimator_rejected"] = f"{description}: {type(exc).__name__}: {exc}"
    classifier = AdapterClassifier(adapter, model, spec, batch_size=batch_size)
    return classifier, {"estimator": "dlcompat.attacks.art.AdapterClassifier", "gradients": f"{adapter.name} adapter",
                        "class_gradient": classifier.has_class_gradient, **facts}


def require_class_gradient(classifier: Any, framework: str, attack: str) -> None:
    """Raise `Unavailable` before an attack that needs class gradients starts on a classifier without them."""
    if isinstance(classifier, AdapterClassifier) and not classifier.has_class_gradient:
        raise Unavailable(f"{attack} needs class gradients, and the {framework} adapter has no class_gradient "
                          "(FrameworkAdapter.class_gradient: d logit / d input)")
