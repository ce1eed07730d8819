"""JAX adapter: the zoo spec compiled into a Flax NNX module, trained with optax through a jit-compiled step.

The model is an `nnx.Module` (NNX, not Linen: a model is a plain Python object whose layers are
attributes, so every spec layer is addressable by its canonical name, ``model.layers["s1b1.conv1"]``,
and weights are set in place; Flax recommends NNX for new code). It computes in NHWC: convolution
kernels are HWIO, dense kernels (in, out), and a `Flatten` that feeds a dense layer flattens in NHWC
order, so that dense layer's kernel rows are permuted from the canonical channel-major order (any
other `Flatten` transposes to channel-major first). The rule and the translation are the shared NHWC
layout plan (`dlcompat.frameworks.common.layout`), applied only at the boundary: `get_weights`/
`set_weights` and `activations`.

Compute runs as pure functions of the model's state: `nnx.split` gives a static graph definition and
the arrays, and `jax.jit` compiles ``nnx.merge(graphdef, state)(x)`` once per structure and input shape
(the graph is traversed at trace time only, not on every call as with `nnx.jit`).

Differences from Flax's defaults, made to compute what PyTorch computes (``dlcompat.zoo.spec``):
- batch norm: `TorchBatchNorm`, an `nnx.BatchNorm` whose running variance takes the *unbiased* batch
  variance (torch), while normalising with the biased one, in torch's folded form
  ``x * a + (beta - mean * a)``, ``a = gamma / sqrt(var + eps)`` (same rounding: at ResNet-20 parity a
  ReLU input of -9e-7 took the wrong sign with Flax's ``(x - mean) * ...`` form); Flax momentum =
  1 - torch momentum;
- optimisers: coupled L2 weight decay on every parameter (`optax.add_decayed_weights` before the
  optimiser, as torch.optim's `weight_decay`), SGD momentum as `optax.trace` (v = m v + g), Adam eps
  added outside the square root (optax and torch agree);
- convolutions and matmuls request ``Precision.HIGHEST``: XLA:CPU computes float32 at every precision
  setting (checked: bit-identical results), so this only rules out TF32/bf16 passes elsewhere.

Runtime: JAX runs on the CPU. XLA reads its flags and sizes its intra-op thread pool once, when the
first JAX backend of the process starts; the first `FlaxAdapter` to start it decides, and `runtime()`
says what is in effect. The pool gets `threads` threads (XLA sizes it from the CPU affinity mask and
has no option for it: see `_start_backend`), and ``threads=1`` also passes
``--xla_cpu_multi_thread_eigen=false``. Without the pool sizing, XLA:CPU ran LeNet-5 training on two
busy threads on a 2-CPU machine despite that flag.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from dlcompat.data.batching import augment_batch
from dlcompat.errors import ModelFileError, one_line
from dlcompat.frameworks.base import FrameworkAdapter, Progress, TrainHistory, TrainSettings, Unavailable
from dlcompat.frameworks.common.layout import nhwc_layout
from dlcompat.frameworks.common.training import EpochLoop
from dlcompat.frameworks.common.weights import checked_weights
from dlcompat.frameworks.lr_schedule import epoch_learning_rate
from dlcompat.zoo import spec as zs

#: the XLA flag that makes convolutions and matmuls single-threaded
SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"
#: the `format` field of a file written by `FlaxAdapter.save`
FILE_FORMAT = "dlcompat/flax-nnx-state"

_RUNTIME: dict[str, Any] = {}


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without the (private) probe: assume the worst
        return True


def _pool_threads() -> int:
    """How many threads XLA's CPU intra-op pool has (its threads are named tf_XLAEigen)."""
    try:
        return sum(Path(f"/proc/self/task/{tid}/comm").read_text().strip() == "tf_XLAEigen"
                   for tid in os.listdir("/proc/self/task"))
    except OSError:
        return -1


def _start_backend(jax: Any, threads: int) -> None:
    """Start JAX's CPU backend with an intra-op pool of `threads` threads.

    XLA sizes that pool from the CPU affinity mask of the thread that creates the client, and has no
    option for it. So the calling thread is pinned to `threads` of its CPUs while the client starts, and
    then it and every thread the start created get the whole mask back: the pool has `threads` threads,
    free to run on any CPU.
    """
    pin = hasattr(os, "sched_setaffinity") and threads < len(os.sched_getaffinity(0))
    if not pin:
        jax.devices("cpu")
        return
    mask = os.sched_getaffinity(0)
    before = set(os.listdir("/proc/self/task"))
    os.sched_setaffinity(0, set(sorted(mask)[:threads]))
    try:
        jax.devices("cpu")
    finally:
        os.sched_setaffinity(0, mask)
        for tid in set(os.listdir("/proc/self/task")) - before:
            with contextlib.suppress(OSError):  # a thread that has ended since
                os.sched_setaffinity(int(tid), mask)


def _start(threads: int) -> dict[str, Any]:
    """Import JAX and start its CPU backend with the thread budget (once per process: XLA reads its
    flags and sizes its thread pool once, when the backend starts)."""
    if _RUNTIME:
        return _RUNTIME
    imported = "jax" in sys.modules
    import jax

    if imported and _backends_started():
        _RUNTIME.update(platform=jax.default_backend(), xla_flags=os.environ.get("XLA_FLAGS", ""),
                        threads_applied=None,
                        note="JAX was started before this adapter: its XLA flags, platform and pool are as found")
    else:
        jax.config.update("jax_platforms", "cpu")
        previous = os.environ.get("XLA_FLAGS")
        flags = previous or ""
        if threads == 1 and SINGLE_THREAD_FLAG not in flags:
            flags = f"{flags} {SINGLE_THREAD_FLAG}".strip()
        os.environ["XLA_FLAGS"] = flags
        try:
            _start_backend(jax, threads)  # parses XLA_FLAGS now and never again
        finally:  # do not leak the flag into child processes or into other frameworks' XLA
            if previous is None:
                os.environ.pop("XLA_FLAGS", None)
            else:
                os.environ["XLA_FLAGS"] = previous
        _RUNTIME.update(platform="cpu", xla_flags=flags, threads_applied=threads,
                        note="the first adapter of the process set these; XLA keeps them for the process's life")
    _RUNTIME["intra_op_pool_threads"] = _pool_threads()
    _RUNTIME["cpu"] = jax.devices("cpu")[0]
    return _RUNTIME


@functools.cache
def _flax() -> SimpleNamespace:
    """JAX, Flax and optax, imported on first use, and the NNX classes the adapter compiles specs into."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx, serialization

    batch_norm = _torch_batch_norm_class(jax, jnp, nnx)
    return SimpleNamespace(jax=jax, jnp=jnp, nnx=nnx, optax=optax, serialization=serialization,
                           SpecModel=_spec_model_class(jax, jnp, nnx, batch_norm), TorchBatchNorm=batch_norm)


def _torch_batch_norm_class(jax: Any, jnp: Any, nnx: Any) -> type:
    """`TorchBatchNorm`, defined once JAX and Flax are imported."""

    class TorchBatchNorm(nnx.BatchNorm):
        """`nnx.BatchNorm` (same variables, Flax momentum) with torch's running-variance update.

        Training normalises with the biased batch variance and folds the unbiased one, n/(n-1) times
        larger, into `var`, as torch.nn.BatchNorm2d does; Flax folds the biased one.
        """

        def __call__(self, x: Any, use_running_average: bool | None = None, *, mask: Any = None) -> Any:
            if mask is not None:
                raise NotImplementedError("TorchBatchNorm does not take a mask")
            if use_running_average is None:
                use_running_average = bool(self.use_running_average)
            axes = tuple(range(x.ndim - 1))
            if use_running_average:
                mean, var = self.mean[...], self.var[...]
            else:
                mean = x.mean(axes)
                var = jnp.square(x - mean).mean(axes)  # two-pass, biased: what torch normalises with
                n = x.size // x.shape[-1]
                unbiased = var * (n / max(n - 1, 1))
                m = self.momentum
                self.mean[...] = jax.lax.stop_gradient(m * self.mean[...] + (1 - m) * mean)
                self.var[...] = jax.lax.stop_gradient(m * self.var[...] + (1 - m) * unbiased)
            alpha = self.scale[...] * jax.lax.rsqrt(var + self.epsilon)  # torch's folded form, same rounding
            return x * alpha + (self.bias[...] - mean * alpha)

    return TorchBatchNorm


def _spec_model_class(jax: Any, jnp: Any, nnx: Any, batch_norm: type) -> type:
    """`SpecModel`, defined once JAX and Flax are imported; its batch norms are `batch_norm` (TorchBatchNorm)."""
    highest = jax.lax.Precision.HIGHEST
    activation = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}

    class SpecModel(nnx.Module):
        """Runs the spec's layers in order (NHWC); `layers` holds the ones with state, by canonical name."""

        def __init__(self, spec: zs.ModelSpec) -> None:
            self.spec = spec  # static: part of the graph definition
            rngs = nnx.Rngs(0)  # unused by the zero initialisers; the weights come from set_weights
            zeros = nnx.initializers.zeros
            shapes = spec.weight_shapes()
            mods: dict[str, Any] = {}
            for layer in spec.iter_layers():
                if isinstance(layer, zs.Conv2D):
                    out, cin, k, _ = shapes[f"{layer.name}.weight"]
                    p = layer.padding
                    mods[layer.name] = nnx.Conv(cin, out, (k, k), (layer.stride, layer.stride),
                                                padding=((p, p), (p, p)), use_bias=layer.bias, precision=highest,
                                                kernel_init=zeros, rngs=rngs)
                elif isinstance(layer, zs.BatchNorm):
                    mods[layer.name] = batch_norm(shapes[f"{layer.name}.gamma"][0], momentum=1.0 - layer.momentum,
                                                  epsilon=layer.eps, use_fast_variance=False, rngs=rngs)
                elif isinstance(layer, zs.Dense):
                    units, features = shapes[f"{layer.name}.weight"]
                    mods[layer.name] = nnx.Linear(features, units, use_bias=layer.bias, precision=highest,
                                                  kernel_init=zeros, rngs=rngs)
                elif isinstance(layer, zs.Dropout):
                    mods[layer.name] = nnx.Dropout(layer.rate)
            self.layers = nnx.Dict(mods)

        def __call__(self, x: Any, *, train: bool = False, dropout_key: Any = None,
                     taps: dict[str, Any] | None = None) -> Any:
            rngs = nnx.Rngs(dropout=dropout_key) if dropout_key is not None else None
            return self._run(self.spec.layers, x, train, rngs, taps)

        def _run(self, layers: tuple[zs.Layer, ...], x: Any, train: bool, rngs: Any, taps: Any) -> Any:
            for layer in layers:
                x = self._apply(layer, x, train, rngs, taps)
                if taps is not None:
                    taps[layer.name] = x
            return x

        def _apply(self, layer: zs.Layer, x: Any, train: bool, rngs: Any, taps: Any) -> Any:
            if isinstance(layer, (zs.Conv2D, zs.Dense)):
                return self.layers[layer.name](x)
            if isinstance(layer, zs.BatchNorm):
                return self.layers[layer.name](x, use_running_average=not train)
            if isinstance(layer, zs.Dropout):
                return self.layers[layer.name](x, deterministic=not train, rngs=rngs)
            if isinstance(layer, zs.Activation):
                return activation[layer.fn](x)
            if isinstance(layer, (zs.MaxPool, zs.AvgPool)):
                pool = nnx.max_pool if isinstance(layer, zs.MaxPool) else nnx.avg_pool
                stride = layer.stride or layer.size
                return pool(x, (layer.size, layer.size), strides=(stride, stride), padding="VALID")
            if isinstance(layer, zs.GlobalAvgPool):
                return x.mean(axis=(1, 2))
            if isinstance(layer, zs.Flatten):
                if x.ndim == 4 and not nhwc_layout(self.spec).flattens_nhwc(layer.name):
                    x = x.transpose(0, 3, 1, 2)  # channel-major for a consumer that is not a permuted dense
                return x.reshape(x.shape[0], -1)
            if isinstance(layer, zs.Residual):
                body = self._run(layer.body, x, train, rngs, taps)
                short = self._run(layer.shortcut, x, train, rngs, taps) if layer.shortcut else x
                return activation[layer.activation](body + short)
            raise Unavailable(f"jax adapter has no layer {type(layer).__name__}")

    return SpecModel


def _cross_entropy(logits: Any, labels: Any) -> Any:
    return _flax().optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _optimizer(settings: TrainSettings) -> Any:
    """optax with torch.optim's semantics; the learning rate is a hyper-parameter held in the optimizer state
    (`optax.inject_hyperparams`), so `train` sets each epoch's rate without compiling the step again."""
    optax = _flax().optax
    if settings.optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {settings.optimizer!r}: choose sgd or adam")

    def transform(learning_rate: Any) -> Any:
        chain = []
        if settings.weight_decay:  # torch.optim's weight_decay: L2 added to the gradient of every parameter
            chain.append(optax.add_decayed_weights(settings.weight_decay))
        if settings.optimizer == "adam":  # torch defaults: betas (0.9, 0.999), eps 1e-8 outside the sqrt
            chain.append(optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8))
        else:  # torch: v = m v + g; w -= lr v (no dampening, no Nesterov)
            chain.append(optax.sgd(learning_rate, momentum=settings.momentum or None))
        return optax.chain(*chain)

    return optax.inject_hyperparams(transform)(learning_rate=settings.lr)


def _bucket(n: int) -> int:
    """The size a batch of `n` rows is computed at: the next power of two, so a function jit-compiled per input
    shape compiles once per bucket (at most 8 up to 128 rows) however many sizes its callers ask for."""
    return 1 << max(0, n - 1).bit_length()


def _padded(x: np.ndarray, size: int) -> np.ndarray:
    """`x` with zero rows appended up to `size` rows (inference and input gradients treat rows independently)."""
    if len(x) >= size:
        return np.ascontiguousarray(x)
    return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])


class _Program:
    """The jit-compiled pure functions of one model structure, over flat lists of parameter and state arrays."""

    def __init__(self, graphdef: Any, params: Any, rest: Any) -> None:
        lib = _flax()
        jax = lib.jax
        self.graphdef = graphdef
        self.params_def = jax.tree.structure(params)
        self.rest_def = jax.tree.structure(rest)
        self.forward = jax.jit(self._forward)
        self.taps = jax.jit(self._taps)
        self.input_gradient = jax.jit(jax.grad(self._loss_of_input))
        self.class_gradient = jax.jit(jax.grad(self._picked_logits))
        #: (classes, N, *input): every class's logit differentiated at once (reverse mode, vmapped over classes)
        self.class_gradients = jax.jit(jax.jacrev(self._summed_logits))
        self._steps: dict[tuple[Any, ...], Callable[..., Any]] = {}

    def merge(self, params: list[Any], rest: list[Any]) -> Any:
        jax, nnx = _flax().jax, _flax().nnx
        return nnx.merge(self.graphdef, jax.tree.unflatten(self.params_def, params),
                         jax.tree.unflatten(self.rest_def, rest))

    def _forward(self, params: list[Any], rest: list[Any], x: Any) -> Any:
        return self.merge(params, rest)(x)

    def _taps(self, params: list[Any], rest: list[Any], x: Any) -> dict[str, Any]:
        taps: dict[str, Any] = {}
        self.merge(params, rest)(x, taps=taps)
        return taps

    def _loss_of_input(self, x: Any, params: list[Any], rest: list[Any], y: Any, weights: Any) -> Any:
        """The batch's mean cross-entropy as a weighted sum: 1/n for its n real rows, 0 for the rows padding it to
        its compiled size (`_bucket`), so a padded batch has the mean's gradient, row for row."""
        losses = _flax().optax.softmax_cross_entropy_with_integer_labels(self.merge(params, rest)(x), y)
        return (losses * weights).sum()

    def _picked_logits(self, x: Any, params: list[Any], rest: list[Any], labels: Any) -> Any:
        logits = self.merge(params, rest)(x)
        return logits[_flax().jnp.arange(logits.shape[0]), labels].sum()  # inputs are independent in eval mode

    def _summed_logits(self, x: Any, params: list[Any], rest: list[Any]) -> Any:
        return self.merge(params, rest)(x).sum(axis=0)  # (classes,): inputs are independent in eval mode

    def train_step(self, settings: TrainSettings) -> tuple[Any, Callable[..., Any]]:
        """The optimiser and its jitted step, one per optimiser configuration (the seed is an argument), so a
        process that trains the same structure again compiles nothing."""
        config = (settings.optimizer, settings.momentum, settings.weight_decay)  # lr: in the optimizer state
        if config not in self._steps:
            tx = _optimizer(settings)
            self._steps[config] = (tx, self._jit_step(tx))
        return self._steps[config]

    def _jit_step(self, tx: Any) -> Callable[..., Any]:
        """One optimiser step on the batch ``x_all[idx]``: (params, rest, opt_state, loss); buffers donated."""
        lib = _flax()
        jax, nnx, optax = lib.jax, lib.nnx, lib.optax

        def step(params: list[Any], rest: list[Any], opt_state: Any, x_all: Any, y_all: Any, idx: Any,
                 key: Any, count: Any) -> tuple[Any, Any, Any, Any]:
            xb, yb = x_all[idx], y_all[idx]

            def loss_fn(p: list[Any]) -> tuple[Any, list[Any]]:
                model = self.merge(p, rest)
                loss = _cross_entropy(model(xb, train=True, dropout_key=jax.random.fold_in(key, count)), yb)
                _, _, new_rest = nnx.split(model, nnx.Param, ...)  # batch norm updated its running stats
                return loss, jax.tree.leaves(new_rest)

            (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), new_rest, opt_state, loss

        return jax.jit(step, donate_argnums=(0, 1, 2))


_PROGRAMS: dict[Any, _Program] = {}


def _program(model: Any) -> tuple[_Program, list[Any], list[Any]]:
    """The compiled functions of `model`'s structure (shared by every model of that spec) and its arrays."""
    lib = _flax()
    graphdef, params, rest = lib.nnx.split(model, lib.nnx.Param, ...)
    program = _PROGRAMS.get(graphdef)
    if program is None:
        program = _PROGRAMS[graphdef] = _Program(graphdef, params, rest)
    return program, lib.jax.tree.leaves(params), lib.jax.tree.leaves(rest)


_ATTRIBUTE = {"weight": "kernel", "bias": "bias", "gamma": "scale", "beta": "bias", "mean": "mean", "var": "var"}


class _FlaxLoop(EpochLoop):
    """The jitted step of a `_Program` over the batches of the shared epoch loop, on copies of the model's arrays."""

    def __init__(self, adapter: FlaxAdapter, program: _Program, params: list[Any], rest: list[Any],
                 train: tuple[np.ndarray, np.ndarray], settings: TrainSettings) -> None:
        lib = _flax()
        jax, jnp = lib.jax, lib.jnp
        self.adapter, self.program, self.train, self.settings = adapter, program, train, settings
        self.params = [jnp.copy(p) for p in params]  # the step donates its inputs: the model's own arrays stay
        self.rest = [jnp.copy(r) for r in rest]
        tx, self.train_step = program.train_step(settings)
        # committed to the CPU device, as the step's outputs are: the first step compiles nothing a later one would not
        self.opt_state = jax.device_put(tx.init(self.params), adapter._cpu)
        self.x_all = adapter._put(np.ascontiguousarray(train[0], dtype=np.float32))
        self.y_all = adapter._put(np.asarray(train[1], dtype=np.int32))
        self.key = jax.random.key(settings.seed)
        self.count = 0  # steps taken: the dropout key of each step is folded from it

    def begin_epoch(self, epoch: int) -> None:
        self.opt_state.hyperparams["learning_rate"] = self.adapter._put(
            np.float32(epoch_learning_rate(self.settings, epoch)))

    def learning_rate(self) -> float:
        return float(self.opt_state.hyperparams["learning_rate"])

    def step(self, epoch: int, number: int, indices: np.ndarray) -> Any:
        settings, put = self.settings, self.adapter._put
        if settings.augmentation == "none":  # gathered on the device, inside the step
            xs, ys, at = self.x_all, self.y_all, indices.astype(np.int32)
        else:  # the batch augmented on the host, as in every framework; the step takes all of it
            xs = put(augment_batch(np.asarray(self.train[0][indices], dtype=np.float32), settings.augmentation,
                                   seed=settings.seed, epoch=epoch, batch=number))
            ys, at = put(np.asarray(self.train[1][indices], dtype=np.int32)), np.arange(len(indices), dtype=np.int32)
        self.params, self.rest, self.opt_state, loss = self.train_step(
            self.params, self.rest, self.opt_state, xs, ys, at, self.key, self.count)
        self.count += 1
        return loss  # a device scalar: read once per epoch, in `epoch_loss`

    def wait(self) -> None:
        _flax().jax.block_until_ready(self.params)

    def epoch_loss(self, losses: list[Any], sizes: list[int]) -> float:
        losses_host = np.asarray(_flax().jax.device_get(losses), dtype=np.float64)
        return float((losses_host * sizes).sum() / max(sum(sizes), 1))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.adapter._predict(self.program, self.params, self.rest, x, 256)


class FlaxAdapter(FrameworkAdapter):
    name = "jax"
    module = "flax"
    native_suffix = ".msgpack"
    predict_api = "jax.jit(nnx.merge(graphdef, state)(x)) on a CPU device array, .block_until_ready()"
    exports: ClassVar[dict[str, str]] = {}

    def __init__(self, threads: int = 1) -> None:
        super().__init__(threads)
        self._cpu = _start(threads)["cpu"]

    def version(self) -> str:
        lib = _flax()
        import flax

        return f"{flax.__version__} (jax {lib.jax.__version__}, optax {lib.optax.__version__})"

    def runtime(self) -> dict[str, Any]:
        """What this process's JAX runs with: platform, the XLA flags it started with, the threads they apply."""
        return {k: v for k, v in _RUNTIME.items() if k != "cpu"}

    def threads_in_effect(self) -> dict[str, Any]:
        """XLA:CPU runs each program on one intra-op pool (independent ops side by side included): its size."""
        pool = _RUNTIME.get("intra_op_pool_threads", -1)
        return {"intra_op_threads": pool if pool > 0 else None, "inter_op_threads": None,
                "xla_flags": _RUNTIME.get("xla_flags", "")}

    def _put(self, value: np.ndarray) -> Any:
        return _flax().jax.device_put(value, self._cpu)

    # --- building and weights -------------------------------------------------------------------
    def _module(self, spec: zs.ModelSpec) -> Any:
        return _flax().SpecModel(spec)

    def build(self, spec: zs.ModelSpec, seed: int) -> Any:
        model = self._module(spec)
        self.set_weights(model, zs.init_weights(spec, seed))
        return model

    @staticmethod
    def _variable(model: Any, name: str) -> Any:
        layer, param = name.rsplit(".", 1)
        return getattr(model.layers[layer], _ATTRIBUTE[param])

    def get_weights(self, model: Any) -> dict[str, np.ndarray]:
        layout = nhwc_layout(model.spec)
        return {name: np.array(layout.to_canonical(name, np.asarray(self._variable(model, name)[...])),
                               dtype=np.float32, order="C")
                for name in model.spec.weight_shapes()}

    def set_weights(self, model: Any, weights: dict[str, np.ndarray]) -> None:
        layout = nhwc_layout(model.spec)
        for name, value in checked_weights(model.spec, weights).items():
            self._variable(model, name)[...] = self._put(np.ascontiguousarray(layout.to_native(name, value)))

    # --- training ---------------------------------------------------------------------------------
    def train(
        self,
        model: Any,
        spec: zs.ModelSpec,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        settings: TrainSettings,
        progress: Progress | None = None,
    ) -> TrainHistory:
        """One jitted step per batch of `batch_order`, data resident on the device and gathered inside the step.

        The step compiles once for the full batch shape and once more for a partial last batch, then serves
        every epoch and every later `train` of the same structure and optimiser settings in this process;
        parameters, state and optimiser state are donated to each step.
        """
        lib = _flax()
        jax, nnx = lib.jax, lib.nnx
        program, params, rest = _program(model)
        loop = _FlaxLoop(self, program, params, rest, train, settings)
        history = loop.run(len(train[1]), val, settings, progress)
        nnx.update(model, jax.tree.unflatten(program.params_def, loop.params),
                   jax.tree.unflatten(program.rest_def, loop.rest))
        return history

    # --- inference and gradients ------------------------------------------------------------------
    def _predict(self, program: _Program, params: list[Any], rest: list[Any], x: np.ndarray,
                 batch_size: int) -> np.ndarray:
        n = len(x)
        x = np.asarray(x, dtype=np.float32)
        if n <= batch_size:  # padded to its bucket: ART's attacks ask for every size as their active sets shrink
            padded = _padded(x, min(_bucket(n), batch_size))
            return np.asarray(program.forward(params, rest, self._put(padded)), dtype=np.float32)[:n]
        out = []
        for i in range(0, n, batch_size):
            xb = _padded(x[i : i + batch_size], batch_size)  # the last batch padded: one compiled shape
            out.append(program.forward(params, rest, self._put(xb)))
        return np.concatenate([np.asarray(o) for o in out])[:n].astype(np.float32, copy=False)

    def predict(self, model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, model.spec.num_classes), np.float32)
        program, params, rest = _program(model)
        return self._predict(program, params, rest, x, batch_size)

    def predictor(self, model: Any, x: np.ndarray) -> Callable[[], Any]:
        program, params, rest = _program(model)
        xd = self._put(np.ascontiguousarray(x, dtype=np.float32))
        forward = program.forward

        def run() -> Any:  # the first call compiles (measure_latency reports it apart)
            return forward(params, rest, xd).block_until_ready()

        return run

    def loss_gradient(self, model: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """d(mean cross-entropy)/dx, computed at the batch's bucket size (`_bucket`): one compilation per bucket,
        not one per size (each took 1.3-1.6 s for LeNet-5 here, and DeepFool asks for dozens of sizes)."""
        program, params, rest = _program(model)
        n = len(x)
        if n == 0:
            return np.zeros_like(x, dtype=np.float32)
        size = _bucket(n)
        weights = np.zeros(size, np.float32)
        weights[:n] = np.float32(1.0) / np.float32(n)
        grad = program.input_gradient(self._put(_padded(np.asarray(x, dtype=np.float32), size)), params, rest,
                                      self._put(_padded(np.asarray(y, dtype=np.int32), size)), self._put(weights))
        return np.array(grad[:n], dtype=np.float32)

    def class_gradient(self, model: Any, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The gradient of each row's chosen logit (rows are independent in eval mode), at the bucket size."""
        program, params, rest = _program(model)
        n = len(x)
        size = _bucket(n)
        grad = program.class_gradient(self._put(_padded(np.asarray(x, dtype=np.float32), size)), params, rest,
                                      self._put(_padded(np.asarray(labels, dtype=np.int32), size)))
        return np.array(grad[:n], dtype=np.float32)

    def class_gradients(self, model: Any, x: np.ndarray, classes: int) -> np.ndarray:
        """Every class's gradient in one compiled call (`jax.jacrev`), at the bucket size."""
        program, params, rest = _program(model)
        n = len(x)
        if n == 0:
            return np.zeros((0, classes, *np.shape(x)[1:]), np.float32)
        grads = program.class_gradients(self._put(_padded(np.asarray(x, dtype=np.float32), _bucket(n))), params, rest)
        return np.ascontiguousarray(np.swapaxes(np.asarray(grads)[:, :n], 0, 1), dtype=np.float32)

    def activations(self, model: Any, x: np.ndarray, layers: list[str] | None = None) -> dict[str, np.ndarray]:
        program, params, rest = _program(model)
        taps = program.taps(params, rest, self._put(np.ascontiguousarray(x, dtype=np.float32)))
        layout = nhwc_layout(model.spec)
        wanted = layers if layers is not None else list(taps)
        return {name: np.ascontiguousarray(layout.activation_to_canonical(name, np.asarray(taps[name])),
                                           dtype=np.float32)
                for name in wanted}

    # --- persistence and export -------------------------------------------------------------------
    def save(self, model: Any, path: Path) -> None:
        """The model's NNX state (Flax layout) as msgpack, with a small header naming the format and model."""
        lib = _flax()
        state = lib.jax.device_get(lib.nnx.to_pure_dict(lib.nnx.state(model)))
        payload = {"format": FILE_FORMAT, "model": model.spec.name, "state": state}
        Path(path).write_bytes(lib.serialization.msgpack_serialize(payload))

    def load(self, spec: zs.ModelSpec, path: Path) -> Any:
        lib = _flax()
        jax, nnx = lib.jax, lib.nnx
        model = self._module(spec)
        try:
            payload = lib.serialization.msgpack_restore(Path(path).read_bytes())  # msgpack: no code, no pickle
            if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
                raise ValueError("no dlcompat Flax header")
            if payload.get("model") != spec.name:
                raise ValueError(f"it holds model {payload.get('model')!r}")
            state = nnx.state(model)
            expected = nnx.to_pure_dict(state)
            loaded = payload["state"]
            if jax.tree.structure(loaded) != jax.tree.structure(expected):
                raise ValueError("its variables are not this model's")
            for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(expected), strict=True):
                if not isinstance(got, np.ndarray) or got.shape != want.shape or got.dtype != np.float32:
                    raise ValueError("a variable has the wrong shape or type")
            nnx.replace_by_pure_dict(state, jax.tree.map(self._put, loaded))
            nnx.update(model, state)
        except Exception as exc:  # a foreign, corrupt or mismatched file
            raise ModelFileError(
                f"{path} is not a Flax model file of {spec.name} written by dlcompat "
                f"({type(exc).__name__}: {one_line(exc)}): "
                "pass a file written by the jax adapter's save"
            ) from exc
        return model

    def export(self, model: Any, spec: zs.ModelSpec, fmt: str, path: Path, variant: str = "") -> dict[str, Any]:
        raise Unavailable(
            f"jax adapter writes no {fmt!r} export itself: JAX models leave JAX through the converters "
            "(jax2tf to a TensorFlow SavedModel, then on to ONNX or LiteRT), not through the adapter"
        )
