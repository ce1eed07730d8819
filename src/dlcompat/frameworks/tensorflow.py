"""TensorFlow adapter: the zoo spec compiled into a Keras 3 functional model, trained with `model.fit` on tf.data.

The model is what a Keras user writes: a functional `keras.Model` over standard layers, NHWC inside.
Explicit padding is a `ZeroPadding2D` before a "valid" `Conv2D` (never "same"), batch norm is
`BatchNormalization(momentum=1 - torch momentum)`, a residual block is `Add` then `Activation`, and a
`Flatten` that feeds a dense layer flattens in Keras' NHWC order (any other is a `Permute` to
channel-major first: the rule of `dlcompat.frameworks.common.layout`). Every spec layer is the Keras
layer of the same name (names are escaped reversibly, see `keras_name`); helper layers (padding, the
residual `Add`, that `Permute`) carry a ``--`` suffix that no escaped name contains. There is no custom
layer, so a saved `.keras` file loads anywhere with plain Keras and ``safe_mode=True``.

The layout is translated only at the boundary (`get_weights`/`set_weights`, `activations`), by the
shared NHWC layout plan: conv kernels HWIO <-> OIHW, dense kernels (in, out) <-> (out, in), and the
rows of a dense layer fed by an NHWC `Flatten` permuted to the canonical channel-major order (C, H, W).

Training is Keras' own loop, `model.fit` over a `tf.data` pipeline that yields exactly the batches of
`batch_order` for every epoch (no Keras shuffling), with torch.optim's semantics where Keras differs:
- weight decay is coupled L2 added to the gradient of every trainable variable (torch's
  ``weight_decay``), not Keras' decoupled ``weight_decay``;
- Adam adds epsilon to ``sqrt(v) / sqrt(1 - beta2^t)`` as torch does (Keras adds it to ``sqrt(v)``,
  before the bias correction: the paper's "epsilon hat"); SGD momentum is Keras' own (v = m v - lr g,
  w += v), which equals torch's (v = m v + g, w -= lr v) for a constant learning rate.
Both live in two small optimizer subclasses; `save` writes an uncompiled copy, so they never reach a file.

Known difference kept, because it is Keras' behaviour: `BatchNormalization` updates its moving variance
with the *biased* batch variance, torch with the unbiased one (the running mean matches exactly).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlcompat.data.archives import check_zip
from dlcompat.data.batching import augment_batch, batch_order
from dlcompat.errors import FrameworkUnavailableError, ModelFileError
from dlcompat.frameworks.base import FrameworkAdapter, Progress, TrainHistory, TrainSettings, Unavailable
from dlcompat.frameworks.common.layout import NHWCLayout, nhwc_layout
from dlcompat.frameworks.common.weights import checked_weights
from dlcompat.frameworks.lr_schedule import epoch_learning_rate
from dlcompat.zoo import spec as zs

#: characters a canonical layer name keeps in its Keras name; any other byte becomes ``-xx`` (hex)
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
#: suffix of the helper layers the adapter adds (an escaped name never contains ``--``)
_HELPER = "--"
_PARAMS = {  # canonical param -> Keras variable attribute
    "weight": "kernel",
    "bias": "bias",
    "gamma": "gamma",
    "beta": "beta",
    "mean": "moving_mean",
    "var": "moving_variance",
}
_BATCH = 256


def keras_name(name: str) -> str:
    """The Keras layer name of a canonical layer name: letters, digits, ``_`` and ``.`` stay, any other
    byte of its UTF-8 becomes ``-xx`` (Keras forbids ``/``; TensorFlow name scopes allow few characters)."""
    return "".join(ch if ch in _SAFE else "".join(f"-{b:02x}" for b in ch.encode()) for ch in name)


def canonical_name(key: str) -> str:
    """The inverse of `keras_name`."""
    out, i = bytearray(), 0
    while i < len(key):
        if key[i] == "-":
            out.append(int(key[i + 1 : i + 3], 16))
            i += 3
        else:
            out += key[i].encode()
            i += 1
    return out.decode()


def _runtime() -> tuple[Any, Any]:
    """(tensorflow, keras), imported on first use, with Keras on its TensorFlow backend."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines (oneDNN, CPU features)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise FrameworkUnavailableError(
            f"Keras runs on its {keras.backend.backend()!r} backend in this process: set KERAS_BACKEND=tensorflow "
            "before anything imports keras to use the tensorflow framework"
        )
    return tf, keras


# --- the plan: what the spec means in Keras, computed from the spec alone (NumPy only) ---------------------
@dataclass
class _Plan:
    """Per model: Keras names, the NHWC layout plan, and the compiled functions (made on first use)."""

    spec: zs.ModelSpec
    keys: dict[str, str]  # canonical layer name -> Keras layer name
    layout: NHWCLayout
    forward: Any = None
    gradient: Any = None
    class_gradient: Any = None
    class_gradients: Any = None
    taps: dict[tuple[str, ...], Any] = field(default_factory=dict)


def _plan(spec: zs.ModelSpec) -> _Plan:
    return _Plan(spec=spec, keys={layer.name: keras_name(layer.name) for layer in spec.iter_layers()},
                 layout=nhwc_layout(spec))


def _build_layers(plan: _Plan, keras: Any, inputs: Any) -> Any:
    """The spec's layers, as Keras layers called on `inputs`: the model's output tensor."""
    layers = keras.layers
    act_fn = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}

    def run(seq: tuple[zs.Layer, ...], x: Any) -> Any:
        for layer in seq:
            x = step(layer, x)
        return x

    def step(layer: zs.Layer, x: Any) -> Any:
        key = plan.keys[layer.name]
        if isinstance(layer, zs.Conv2D):
            if layer.padding:
                x = layers.ZeroPadding2D(layer.padding, name=key + _HELPER + "pad")(x)
            return layers.Conv2D(layer.out_channels, layer.kernel, strides=layer.stride, padding="valid",
                                 use_bias=layer.bias, name=key)(x)
        if isinstance(layer, zs.BatchNorm):
            return layers.BatchNormalization(momentum=1.0 - layer.momentum, epsilon=layer.eps, name=key)(x)
        if isinstance(layer, zs.Activation):
            return layers.Activation(act_fn[layer.fn], name=key)(x)
        if isinstance(layer, (zs.MaxPool, zs.AvgPool)):
            pool = layers.MaxPooling2D if isinstance(layer, zs.MaxPool) else layers.AveragePooling2D
            return pool(layer.size, strides=layer.stride or layer.size, padding="valid", name=key)(x)
        if isinstance(layer, zs.GlobalAvgPool):
            return layers.GlobalAveragePooling2D(name=key)(x)
        if isinstance(layer, zs.Flatten):
            if len(x.shape) == 4 and not plan.layout.flattens_nhwc(layer.name):  # channel-major for its consumer
                x = layers.Permute((3, 1, 2), name=key + _HELPER + "chw")(x)
            return layers.Flatten(name=key)(x)
        if isinstance(layer, zs.Dense):
            return layers.Dense(layer.units, use_bias=layer.bias, name=key)(x)
        if isinstance(layer, zs.Dropout):
            return layers.Dropout(layer.rate, name=key)(x)
        if isinstance(layer, zs.Residual):
            body = run(layer.body, x)
            short = run(layer.shortcut, x) if layer.shortcut else x
            x = layers.Add(name=key + _HELPER + "add")([body, short])
            return layers.Activation(act_fn[layer.activation], name=key)(x)
        raise Unavailable(f"tensorflow adapter has no layer {type(layer).__name__}")

    return run(plan.spec.layers, inputs)


def _plan_of(model: Any) -> _Plan:
    plan = getattr(model, "_dlcompat_plan", None)
    if plan is None:
        raise ValueError("this Keras model was not built or loaded by the tensorflow adapter: use build() or load()")
    return plan


def _attach(model: Any, plan: _Plan) -> Any:
    object.__setattr__(model, "_dlcompat_plan", plan)  # plain attribute: not tracked, never saved
    return model


# --- the compiled calls: module functions bound with functools.partial, so that TensorFlow keys its retracing
# statistics on each model's own function (a lambda here would share one code object across all models and
# make TensorFlow warn about "retracing" after a few models, though each function traces once) ------------
def _compiled(fn: Callable[..., Any], model: Any, signature: list[Any]) -> Any:
    """`fn(model, ...)` traced once into a graph; the concrete function skips tf.function's per-call dispatch
    (argument binding and signature matching: about half the time of a LeNet-5 batch-1 call here)."""
    tf, _ = _runtime()
    return tf.function(functools.partial(fn, model), input_signature=signature, autograph=False).get_concrete_function()


def _inference(model: Any, x: Any) -> Any:
    return model(x, training=False)


def _input_gradient(model: Any, x: Any, y: Any, count: Any) -> Any:
    """d(sum of cross-entropy / count)/dx: the gradient of the mean over all images, one batch at a time."""
    import tensorflow as tf  # already imported by the adapter that traces this

    with tf.GradientTape() as tape:
        tape.watch(x)
        per_image = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x, training=False))
        loss = tf.reduce_sum(per_image) / count
    return tape.gradient(loss, x)


def _class_gradient(model: Any, x: Any, labels: Any) -> Any:
    """d logits[i, labels[i]] / d x[i]: images are independent in inference mode, so one backward pass."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        picked = tf.gather(model(x, training=False), labels[:, None], batch_dims=1)
        total = tf.reduce_sum(picked)
    return tape.gradient(total, x)


def _class_gradients(model: Any, x: Any, classes: int) -> Any:
    """(N, classes, *input): every logit's gradient with respect to its own image: one forward pass, one backward
    pass per class from a persistent tape, in one graph (faster here than `tape.batch_jacobian`'s vectorised
    form, 291 against 457 ms for 128 LeNet-5 images, and the per-class loop's 388 ms)."""
    import tensorflow as tf

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits = model(x, training=False)
        picked = [tf.reduce_sum(logits[:, c]) for c in range(classes)]  # inputs are independent in inference mode
    return tf.stack([tape.gradient(total, x) for total in picked], axis=1)


# --- optimisers with torch.optim's semantics ----------------------------------------------------------------
_OPTIMIZERS: dict[str, type] = {}


def _optimizers() -> dict[str, type]:
    """Keras SGD and Adam with torch's coupled weight decay (and torch's Adam epsilon), defined on first use."""
    if _OPTIMIZERS:
        return _OPTIMIZERS
    _, keras = _runtime()
    ops = keras.ops

    @keras.saving.register_keras_serializable(package="dlcompat")
    class CoupledDecaySGD(keras.optimizers.SGD):
        """`keras.optimizers.SGD` stepping as torch.optim.SGD does: ``weight_decay`` added to the gradient before
        the momentum (g + wd * w), and the rate applied *after* it, ``v = m * v + g; w -= lr * v``.

        Keras' own SGD keeps ``m * v - lr * g`` instead: the same steps at a constant rate, but when a schedule
        changes the rate its velocity still carries the old one for a while, and torch's does not.
        """

        def __init__(self, coupled_weight_decay: float = 0.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.coupled_weight_decay = float(coupled_weight_decay)

        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
            dtype = variable.dtype
            step = ops.cast(gradient, dtype)
            if self.coupled_weight_decay:
                step = ops.add(step, ops.multiply(variable, ops.cast(self.coupled_weight_decay, dtype)))
            if self.momentum != 0:
                velocity = self.momentums[self._get_variable_index(variable)]
                step = ops.add(ops.multiply(velocity, ops.cast(self.momentum, dtype)), step)
                self.assign(velocity, step)
            self.assign_sub(variable, ops.multiply(step, ops.cast(learning_rate, dtype)))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "coupled_weight_decay": self.coupled_weight_decay}

    @keras.saving.register_keras_serializable(package="dlcompat")
    class TorchAdam(keras.optimizers.Adam):
        """`keras.optimizers.Adam` computing torch.optim.Adam's step: coupled weight decay, and epsilon added
        after the second-moment bias correction, ``w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``."""

        def __init__(self, coupled_weight_decay: float = 0.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.coupled_weight_decay = float(coupled_weight_decay)

        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
            dtype = variable.dtype
            lr = ops.cast(learning_rate, dtype)
            g = ops.cast(gradient, dtype)
            if self.coupled_weight_decay:
                g = ops.add(g, ops.multiply(variable, ops.cast(self.coupled_weight_decay, dtype)))
            step = ops.cast(self.iterations + 1, dtype)
            correction1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
            correction2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
            m = self._momentums[self._get_variable_index(variable)]
            v = self._velocities[self._get_variable_index(variable)]
            self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - self.beta_1))
            self.assign_add(v, ops.multiply(ops.subtract(ops.square(g), v), 1 - self.beta_2))
            denom = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction2)), ops.cast(self.epsilon, dtype))
            self.assign_sub(variable, ops.multiply(ops.divide(lr, correction1), ops.divide(m, denom)))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "coupled_weight_decay": self.coupled_weight_decay}

    _OPTIMIZERS.update(sgd=CoupledDecaySGD, adam=TorchAdam)
    return _OPTIMIZERS


def make_optimizer(settings: TrainSettings) -> Any:
    """The Keras optimizer that steps as torch.optim does for these settings (lr, momentum, weight decay)."""
    classes = _optimizers()
    if settings.optimizer == "adam":
        return classes["adam"](learning_rate=settings.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                               coupled_weight_decay=settings.weight_decay)
    if settings.optimizer == "sgd":
        return classes["sgd"](learning_rate=settings.lr, momentum=settings.momentum,
                              coupled_weight_decay=settings.weight_decay)
    raise Unavailable(f"tensorflow adapter has no optimizer {settings.optimizer!r} (sgd, adam)")


# --- the adapter --------------------------------------------------------------------------------------------
class KerasAdapter(FrameworkAdapter):
    name = "tensorflow"
    module = "tensorflow"
    native_suffix = ".keras"
    predict_api = "tf.function(model(x, training=False)) as a concrete function, called on a tf.Tensor"
    exports: ClassVar[dict[str, str]] = {"onnx": "keras Model.export(format='onnx')"}

    def __init__(self, threads: int = 1) -> None:
        super().__init__(threads)
        tf, _ = _runtime()
        # deterministic kernels in every job, not only from the first training on: the flag is process-wide, so a
        # job's figures (an attack's gradients) must not depend on whether its worker trained a model before
        tf.config.experimental.enable_op_determinism()
        threading = tf.config.threading
        if (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) != (threads, 1):
            try:
                threading.set_intra_op_parallelism_threads(threads)
                threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # TensorFlow already ran something in this process: its pools are fixed
                warnings.warn(
                    f"TensorFlow already started in this process with "
                    f"{threading.get_intra_op_parallelism_threads() or 'default'} intra-op threads; "
                    f"threads={threads} takes effect in a fresh process",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def version(self) -> str:
        tf, _ = _runtime()
        return str(tf.__version__)

    def threads_in_effect(self) -> dict[str, Any]:
        tf, _ = _runtime()
        return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}

    # --- building and weights ---------------------------------------------------------------------------
    def build(self, spec: zs.ModelSpec, seed: int) -> Any:
        _, keras = _runtime()
        plan = _plan(spec)
        keys = set(plan.keys.values())
        inputs = keras.Input(shape=spec.input_shape, name="images" if "images" not in keys else "images--input")
        outputs = _build_layers(plan, keras, inputs)
        model = _attach(keras.Model(inputs, outputs, name=keras_name(spec.name)), plan)
        self.set_weights(model, zs.init_weights(spec, seed))
        return model

    @staticmethod
    def _variable(model: Any, plan: _Plan, name: str) -> Any:
        layer, param = name.rsplit(".", 1)
        return getattr(model.get_layer(plan.keys[layer]), _PARAMS[param])

    def get_weights(self, model: Any) -> dict[str, np.ndarray]:
        plan = _plan_of(model)
        return {name: np.array(plan.layout.to_canonical(name, np.asarray(self._variable(model, plan, name).numpy(),
                                                                         dtype=np.float32)),
                               dtype=np.float32, copy=True, order="C")
                for name in plan.spec.weight_shapes()}

    def set_weights(self, model: Any, weights: dict[str, np.ndarray]) -> None:
        plan = _plan_of(model)
        for name, value in checked_weights(plan.spec, weights).items():
            self._variable(model, plan, name).assign(np.ascontiguousarray(plan.layout.to_native(name, value)))

    # --- training ----------------------------------------------------------------------------------------
    def train(
        self,
        model: Any,
        spec: zs.ModelSpec,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        settings: TrainSettings,
        progress: Progress | None = None,
    ) -> TrainHistory:
        tf, keras = _runtime()
        keras.utils.set_random_seed(settings.seed)
        tf.config.experimental.enable_op_determinism()
        self._reseed_dropout(model, settings.seed)
        x_all = tf.constant(np.asarray(train[0], dtype=np.float32))
        y_all = tf.constant(np.asarray(train[1], dtype=np.int64))
        n = int(x_all.shape[0])
        if n == 0:
            raise ValueError("train: no training images")
        history = TrainHistory()
        if settings.epochs == 0:
            return history
        epochs = [batch_order(n, settings.batch_size, epoch, settings.seed) for epoch in range(settings.epochs)]
        # One dataset of every epoch's batches, in order: fit with steps_per_epoch keeps one iterator across
        # epochs, so epoch e trains on exactly batch_order(n, batch_size, e, seed).
        batches = functools.reduce(lambda a, b: a.concatenate(b), [
            self._epoch_batches(x_all, y_all, train[0], order, epoch, settings) for epoch, order in enumerate(epochs)])
        options = tf.data.Options()
        options.threading.private_threadpool_size = self.threads
        options.threading.max_intra_op_parallelism = 1
        options.deterministic = True
        dataset = batches.prefetch(2).with_options(options)
        model.compile(optimizer=make_optimizer(settings),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        # the epoch's rate, set on the optimizer before the epoch's first step (fit calls it with 0-based epochs)
        schedule = keras.callbacks.LearningRateScheduler(lambda epoch, _lr: epoch_learning_rate(settings, epoch))
        adapter = self

        class Record(keras.callbacks.Callback):
            """Times each epoch (training batches only) and reports loss and validation accuracy."""

            def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                history.record_epoch(
                    seconds=time.perf_counter() - self.start, loss=float((logs or {})["loss"]),
                    learning_rate=float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)), val=val,
                    predict=lambda x: adapter.predict(model, x), epochs=settings.epochs, progress=progress)

        model.fit(dataset, epochs=settings.epochs, steps_per_epoch=len(epochs[0]), shuffle=False, verbose=0,
                  callbacks=[schedule, Record()])
        return history

    @staticmethod
    def _epoch_batches(x_all: Any, y_all: Any, x_host: np.ndarray, order: list[np.ndarray], epoch: int,
                       settings: TrainSettings) -> Any:
        """One epoch's (images, labels) batches: gathered from the resident tensors, or, with augmentation,
        gathered and augmented on the host by `augment_batch` (numbered batches, so the same in every framework)."""
        tf, _ = _runtime()
        indices = tf.data.Dataset.from_tensor_slices(np.concatenate(order)).batch(settings.batch_size)
        if settings.augmentation == "none":
            return indices.map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx)))

        def augmented(number: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return augment_batch(np.asarray(x_host[idx], dtype=np.float32), settings.augmentation,
                                 seed=settings.seed, epoch=epoch, batch=int(number))

        def pair(number: Any, idx: Any) -> tuple[Any, Any]:
            images = tf.numpy_function(augmented, [number, idx], tf.float32, stateful=False)
            images.set_shape((None, *x_host.shape[1:]))
            return images, tf.gather(y_all, idx)

        return indices.enumerate().map(pair)

    @staticmethod
    def _reseed_dropout(model: Any, seed: int) -> None:
        """Dropout masks follow the training seed (each Dropout layer gets its own stream)."""
        _, keras = _runtime()
        for i, layer in enumerate(model.layers):
            generator = getattr(layer, "seed_generator", None)
            if isinstance(layer, keras.layers.Dropout) and generator is not None:
                generator.state.assign(np.array([seed * 1009 + i, 0], dtype=generator.state.dtype))

    # --- inference and gradients -------------------------------------------------------------------------
    def _forward(self, model: Any) -> Any:
        plan = _plan_of(model)
        if plan.forward is None:
            tf, _ = _runtime()
            signature = [tf.TensorSpec((None, *plan.spec.input_shape), tf.float32)]
            plan.forward = _compiled(_inference, model, signature)
        return plan.forward

    def predict(self, model: Any, x: np.ndarray, batch_size: int = _BATCH) -> np.ndarray:
        tf, _ = _runtime()
        forward = self._forward(model)
        x = np.asarray(x, dtype=np.float32)
        out = [forward(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.output_shape[-1]), np.float32)

    def predictor(self, model: Any, x: np.ndarray) -> Callable[[], Any]:
        tf, _ = _runtime()
        forward = self._forward(model)
        xt = tf.constant(np.asarray(x, dtype=np.float32))
        return lambda: forward(xt)  # the first call allocates the graph's buffers: the method's first_inference

    def loss_gradient(self, model: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        tf, _ = _runtime()
        plan = _plan_of(model)
        if plan.gradient is None:
            signature = [tf.TensorSpec((None, *plan.spec.input_shape), tf.float32),
                         tf.TensorSpec((None,), tf.int64), tf.TensorSpec((), tf.float32)]

            plan.gradient = _compiled(_input_gradient, model, signature)
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        count = tf.constant(float(len(x)), tf.float32)
        parts = [plan.gradient(tf.constant(x[i : i + _BATCH]), tf.constant(y[i : i + _BATCH]), count).numpy()
                 for i in range(0, len(x), _BATCH)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros_like(x)

    def class_gradient(self, model: Any, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        tf, _ = _runtime()
        plan = _plan_of(model)
        if plan.class_gradient is None:
            signature = [tf.TensorSpec((None, *plan.spec.input_shape), tf.float32), tf.TensorSpec((None,), tf.int64)]
            plan.class_gradient = _compiled(_class_gradient, model, signature)
        x = np.asarray(x, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        parts = [plan.class_gradient(tf.constant(x[i : i + _BATCH]), tf.constant(labels[i : i + _BATCH])).numpy()
                 for i in range(0, len(x), _BATCH)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros_like(x)

    def class_gradients(self, model: Any, x: np.ndarray, classes: int) -> np.ndarray:
        tf, _ = _runtime()
        plan = _plan_of(model)
        if plan.class_gradients is None:
            signature = [tf.TensorSpec((None, *plan.spec.input_shape), tf.float32)]
            plan.class_gradients = _compiled(functools.partial(_class_gradients, classes=plan.spec.num_classes),
                                             model, signature)
        x = np.asarray(x, dtype=np.float32)
        parts = [plan.class_gradients(tf.constant(x[i : i + _BATCH])).numpy() for i in range(0, len(x), _BATCH)]
        return (np.concatenate(parts).astype(np.float32) if parts
                else np.zeros((0, classes, *x.shape[1:]), np.float32))

    def activations(self, model: Any, x: np.ndarray, layers: list[str] | None = None) -> dict[str, np.ndarray]:
        tf, keras = _runtime()
        plan = _plan_of(model)
        wanted = tuple(layers if layers is not None else plan.keys)
        unknown = [name for name in wanted if name not in plan.keys]
        if unknown:
            raise ValueError(f"model {plan.spec.name!r} has no layer {', '.join(unknown[:5])}")
        if wanted not in plan.taps:
            taps = keras.Model(model.inputs, [model.get_layer(plan.keys[name]).output for name in wanted])
            signature = [tf.TensorSpec((None, *plan.spec.input_shape), tf.float32)]
            plan.taps[wanted] = _compiled(_inference, taps, signature)
        run = plan.taps[wanted]
        x = np.asarray(x, dtype=np.float32)
        parts = [[t.numpy() for t in tf.nest.flatten(run(tf.constant(x[i : i + _BATCH])))]
                 for i in range(0, len(x), _BATCH)]
        out: dict[str, np.ndarray] = {}
        for j, name in enumerate(wanted):
            value = np.concatenate([p[j] for p in parts]) if parts else np.zeros((0,), np.float32)
            out[name] = np.ascontiguousarray(plan.layout.activation_to_canonical(name, value), dtype=np.float32)
        return out

    # --- persistence and export --------------------------------------------------------------------------
    def save(self, model: Any, path: Path) -> None:
        """A `.keras` file of the architecture and weights, without training state (loads with plain Keras)."""
        _, keras = _runtime()
        path = Path(path)
        clean = model
        if getattr(model, "optimizer", None) is not None:  # compiled by train(): save an uncompiled copy
            clean = keras.models.clone_model(model)
            clean.set_weights(model.get_weights())
        with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
            # Keras 3.15 reads TF variables with np.array(v), which NumPy 2 flags (harmless) on every save
            warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy",
                                    category=DeprecationWarning)
            if path.suffix == ".keras":
                clean.save(path)
            else:  # Keras insists on the suffix
                clean.save(Path(tmp) / "model.keras")
                shutil.move(Path(tmp) / "model.keras", path)

    def load(self, spec: zs.ModelSpec, path: Path) -> Any:
        _, keras = _runtime()
        path = Path(path)
        plan = _plan(spec)
        if spec.imported:  # a user's .keras file (dlcompat check): the file is the model, read under safe mode
            from dlcompat.frameworks.imported import load_keras

            return _attach(load_keras(path), plan)
        try:
            check_zip(path)  # a zip bomb is refused before Keras unpacks a member
            with tempfile.TemporaryDirectory() as tmp:
                source = path
                if path.suffix != ".keras":
                    source = Path(tmp) / "model.keras"
                    os.symlink(path.resolve(), source)
                model = keras.saving.load_model(source, compile=False, safe_mode=True)
            _attach(model, plan)
            for key in plan.keys.values():  # every spec layer, weighted or not, under its name
                model.get_layer(key)
            for name, canonical in spec.weight_shapes().items():
                got, shape = tuple(self._variable(model, plan, name).shape), plan.layout.native_shape(canonical)
                if got != shape:
                    raise ValueError(f"weight {name} has shape {got}, the spec says {shape}")
        except Exception as exc:  # a foreign, corrupt or unsafe file, or another architecture
            reason = " ".join(str(exc).split())[:200]
            raise ModelFileError(
                f"{path} is not a Keras model of {spec.name} ({type(exc).__name__}: {reason}): "
                "pass a .keras file written by dlcompat or keras.Model.save from the same spec"
            ) from exc
        return model

    def export(self, model: Any, spec: zs.ModelSpec, fmt: str, path: Path, variant: str = "keras") -> dict[str, Any]:
        if fmt != "onnx":
            raise Unavailable(f"tensorflow adapter exports only onnx, not {fmt}")
        if variant not in ("", "keras"):
            raise Unavailable(f"unknown Keras ONNX exporter variant {variant!r} (keras)")
        tf, keras = _runtime()
        try:
            import tf2onnx
        except ImportError as exc:
            raise Unavailable(f"Keras exports ONNX through tf2onnx, which is not installed ({exc})") from exc

        signature = [tf.TensorSpec((None, *spec.input_shape), tf.float32, name="input")]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes numpy 2's removed aliases
            model.export(str(path), format="onnx", input_signature=signature, verbose=False)
        return {"tool": "keras Model.export(format='onnx') (tf2onnx)", "tool_version": keras.__version__,
                "tf2onnx_version": tf2onnx.__version__, "input_layout": "NHWC"}
