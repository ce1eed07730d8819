"""PyTensor adapter: the zoo spec compiled into a symbolic graph over shared variables, run by the C backend.

PyTensor is Theano's maintained successor, and the adapter uses it the Theano way: the parameters
live in shared variables (canonical layout; activations are NCHW), each task is one compiled
`pytensor.function` (forward, activations, input gradient, and a train step whose `updates` carry the
optimizer and the batch-norm running statistics), and the C VM linker runs it with OpenBLAS GEMM.
PyTensor 3 defaults to its Numba linker; the adapter asks for the C linker explicitly.

PyTensor 3 has no `nnet.conv2d` and no pooling op any more, so both are built from its own ops:

- convolution is Theano's CorrMM recipe, im2col + one GEMM. The column matrix is one row gather
  (`AdvancedSubtensor1`, C code) from the (C*H*W, N) input with a zero row appended for the padding;
  its gradient is declared (`OpFromGraph(pullback=...)`) as a second gather and a sum, because
  PyTensor differentiates a gather into a scatter-add that runs in Python (`np.add.at`, 20x slower
  than the gather). The alternative, k*k strided slices stacked, made ResNet-20's train step a graph
  of 1,748 nodes instead of 1,231 that took 31 s of CPU to compile instead of 21 s;
- max pooling is a reshape and a max, with a declared gradient that goes to the first maximum of each
  window as torch's does (PyTensor's own goes to every tied maximum, which changes training);
  average pooling is a reshape and a mean.

Configuration happens before the first import of pytensor (`_configure`): OpenBLAS for GEMM and
float32 as floatX are added to `PYTENSOR_FLAGS` unless the user set those flags. The compile cache
is PyTensor's default (``~/.pytensor``, or the user's `base_compiledir`): the first compile of an op
generates and builds C code, later processes reuse it. Compiled functions are cached on the model
object, one per task, for every batch size; a new model of a spec already compiled gets copies of
those functions over its own shared variables (`Function.copy(swap=...)`) instead of a new compile.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from dlcompat.data.batching import augment_batch
from dlcompat.frameworks.base import FrameworkAdapter, Progress, TrainHistory, TrainSettings, Unavailable
from dlcompat.frameworks.common import symbolic
from dlcompat.frameworks.common.symbolic import FLOAT, nchw, nhwc
from dlcompat.frameworks.common.training import EpochLoop
from dlcompat.frameworks.common.weights import checked_weights
from dlcompat.frameworks.common.weights_file import load_weights_file, save_weights_file
from dlcompat.frameworks.lr_schedule import epoch_learning_rate
from dlcompat.zoo import spec as zs

#: flags the adapter needs unless the user chose otherwise (PYTENSOR_FLAGS names, either spelling)
_DEFAULT_FLAGS = {"blas__ldflags": "-lopenblas", "floatX": "float32"}
#: the C VM linker (PyTensor 3 defaults to Numba) and the rewrites: fast_run ("o4") or fast_run without
#: the in-place rewrites ("o3"), which compiles faster and ran as fast here (see `_mode`)
_OPTIMIZER = "o3"
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


def _configure() -> None:
    """Add the BLAS and floatX flags to ``PYTENSOR_FLAGS`` before pytensor is first imported."""
    if "pytensor" in sys.modules:  # too late to change; the graph casts to float32 explicitly anyway
        return
    current = os.environ.get("PYTENSOR_FLAGS", "")
    chosen = {item.split("=", 1)[0].strip().replace(".", "__") for item in current.split(",") if "=" in item}
    extra = [f"{flag}={value}" for flag, value in _DEFAULT_FLAGS.items() if flag not in chosen]
    if extra:
        os.environ["PYTENSOR_FLAGS"] = ",".join(item for item in (current.strip(","), *extra) if item)


def _mode() -> Any:
    from pytensor.compile.mode import Mode

    return Mode(linker="cvm", optimizer=_OPTIMIZER)


def _pytensor() -> Any:
    _configure()
    import pytensor

    return pytensor


def _set_blas_threads(threads: int) -> None:
    """Limit the system OpenBLAS (the one PyTensor's C code links) to `threads`; a no-op without it."""
    name = ctypes.util.find_library("openblas")
    if not name:
        return
    try:
        lib = ctypes.CDLL(name)
        lib.openblas_set_num_threads(ctypes.c_int(int(threads)))
    except (OSError, AttributeError):
        return


@functools.lru_cache(maxsize=64)
def _im2col_indices(c: int, h: int, w: int, k: int, s: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """The gather that builds the column matrix, and its transpose as a gather too.

    `rows[q]` is the input pixel (row of the (C*H*W, N) input, C*H*W for a padding zero) that column
    entry q = ((c*k + i)*k + j)*Ho*Wo + ho*Wo + wo reads. `sources[f, r]` lists the column entries
    that read pixel r (padded with the index of an appended zero row), so the gradient of the gather
    is a gather and a sum over `f` instead of a scatter-add (which PyTensor runs in Python).
    """
    ho, wo = zs.pool_out(h, k, s, p), zs.pool_out(w, k, s, p)
    pixels = c * h * w
    ch, i, j, oh, ow = np.meshgrid(np.arange(c), np.arange(k), np.arange(k), np.arange(ho), np.arange(wo),
                                   indexing="ij")
    r, q = oh * s + i - p, ow * s + j - p
    inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
    rows = np.where(inside, (ch * h + r) * w + q, pixels).ravel().astype(np.int64)
    used = np.flatnonzero(rows < pixels)
    order = np.argsort(rows[used], kind="stable")
    target, entry = rows[used][order], used[order]
    rank = np.arange(len(target)) - np.searchsorted(target, target)  # position within each pixel's group
    fan_in = int(rank.max()) + 1 if len(rank) else 1
    sources = np.full((fan_in, pixels), len(rows), dtype=np.int64)
    sources[rank, target] = entry
    return rows, sources


@functools.lru_cache(maxsize=64)
def _im2col_op(c: int, h: int, w: int, k: int, s: int, p: int) -> Any:
    """im2col as one PyTensor op over a (C*H*W, N) matrix: a row gather with a gather as its gradient."""
    import pytensor.tensor as pt
    from pytensor.compile.builders import OpFromGraph

    rows, sources = _im2col_indices(c, h, w, k, s, p)
    fan_in, pixels = sources.shape

    # The zero row (1, N) comes in from outside, sized by the model input: a zeros() sized from an
    # inner tensor's shape would make PyTensor infer that shape through the whole graph (minutes).
    def pullback(inputs: list[Any], outputs: list[Any], grads: list[Any]) -> list[Any]:
        (g,), zero = grads, inputs[1]
        gathered = pt.join(0, g, zero)[sources.ravel()].reshape((fan_in, pixels, -1))
        return [gathered.sum(axis=0), pt.zeros_like(zero)]

    flat = pt.matrix("pixels", dtype=FLOAT, shape=(pixels, None))
    zero = pt.matrix("zero_row", dtype=FLOAT, shape=(1, None))
    return OpFromGraph([flat, zero], [pt.join(0, flat, zero)[rows]], inline=True, pullback=pullback,
                       name=f"im2col_{c}x{h}x{w}_k{k}s{s}p{p}")


def _pool_windows(pt: Any, x: Any, c: int, h: int, w: int, k: int, s: int) -> Any:
    """The k*k pooling windows of x (N, C, H, W), stacked first: (k*k, N, C, Ho, Wo), row-major in the window."""
    ho, wo = zs.pool_out(h, k, s), zs.pool_out(w, k, s)
    if s == k:  # non-overlapping: crop to whole windows, then a reshape and a transpose
        if (ho * k, wo * k) != (h, w):
            x = x[:, :, : ho * k, : wo * k]
        return x.reshape((-1, c, ho, k, wo, k)).dimshuffle(3, 5, 0, 1, 2, 4).reshape((k * k, -1, c, ho, wo))
    span_h, span_w = s * (ho - 1) + 1, s * (wo - 1) + 1
    return pt.stack([x[:, :, i : i + span_h : s, j : j + span_w : s] for i in range(k) for j in range(k)], axis=0)


@functools.lru_cache(maxsize=64)
def _max_pool_op(c: int, h: int, w: int, k: int, s: int) -> Any:
    """Max pooling whose gradient goes to the first maximum of each window, as torch's does.

    PyTensor's own gradient of `max` goes to every tied maximum, and ties are common: a ReLU of a
    constant background (MNIST's zeros plus a bias) fills whole windows with one value.
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.builders import OpFromGraph

    def pullback(inputs: list[Any], outputs: list[Any], grads: list[Any]) -> list[Any]:
        (maps,), (g,) = inputs, grads
        windows = _pool_windows(pt, maps, c, h, w, k, s)
        first = pt.eq(pt.arange(k * k).dimshuffle(0, "x", "x", "x", "x"),
                      pt.argmax(windows, axis=0).dimshuffle("x", 0, 1, 2, 3))
        routed = pt.cast(first, FLOAT) * g.dimshuffle("x", 0, 1, 2, 3)
        return [pytensor.grad(None, maps, known_grads={windows: routed})]

    maps = pt.tensor("maps", dtype=FLOAT, shape=(None, c, h, w))
    return OpFromGraph([maps], [_pool_windows(pt, maps, c, h, w, k, s).max(axis=0)], inline=True,
                       pullback=pullback, name=f"max_pool_{c}x{h}x{w}_k{k}s{s}")


class PyTensorModel:
    """The parameters as shared variables (canonical layout), the spec, and the compiled functions."""

    def __init__(self, spec: zs.ModelSpec, params: dict[str, Any]) -> None:
        self.spec = spec
        self.params = params  # canonical name -> SharedVariable, in `spec.weight_shapes()` order
        self.functions: dict[str, Any] = {}  # task -> compiled pytensor.function
        self.slots: dict[str, list[Any]] = {}  # task -> shared optimizer slots (zeroed by every `train` call)
        self.rngs: dict[str, list[Any]] = {}  # task -> shared random generators (dropout), seeded by `train`

    def __repr__(self) -> str:
        return f"PyTensorModel({self.spec.name}, {len(self.params)} tensors, compiled: {sorted(self.functions)})"


class _Template(NamedTuple):
    """A compiled function and the shared variables it was compiled over, to be copied for another model."""

    function: Any
    params: dict[str, Any]
    slots: list[Any]
    rngs: list[Any]


#: (spec, task) -> the last compiled function of that task; `Function.copy(swap=...)` gives a new model
#: of the same spec its functions without rewriting the graph again (ResNet-20's train step: 1.4 s of CPU, not 14 s)
_TEMPLATES: OrderedDict[tuple[zs.ModelSpec, str], _Template] = OrderedDict()
_TEMPLATES_KEPT = 8


# --- the spec as a symbolic graph ------------------------------------------------------------------
class _GraphBuilder:
    """Compiles the spec's layers into expressions over the model's shared variables (NCHW)."""

    def __init__(self, model: PyTensorModel, training: bool) -> None:
        import pytensor.tensor as pt

        self.pt = pt
        self.model = model
        self.training = training
        self.taps: dict[str, Any] = {}  # layer name -> output (NCHW or (N, F))
        self.bn_updates: list[tuple[Any, Any]] = []  # (running stat, new value), training only
        self.rngs: list[Any] = []  # one shared generator per dropout layer, training only
        self.rng_updates: list[tuple[Any, Any]] = []
        self.batch: Any = None  # the batch size, taken from the input so shape inference stays shallow
        self.zero_row: Any = None  # (1, N) zeros: the padding row of every im2col gather

    def forward(self, x: Any) -> Any:
        h, w, c = self.model.spec.input_shape
        self.batch = x.shape[0]
        self.zero_row = self.pt.zeros((1, self.batch), dtype=FLOAT)
        out, _ = self._run(self.model.spec.layers, x, (c, h, w))
        return out

    def _run(self, layers: tuple[zs.Layer, ...], x: Any, shape: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
        for layer in layers:
            x, shape = self._apply(layer, x, shape)
            self.taps[layer.name] = x
        return x, shape

    def _param(self, name: str) -> Any:
        return self.model.params.get(name)

    def _apply(self, layer: zs.Layer, x: Any, shape: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
        pt = self.pt
        if isinstance(layer, zs.Conv2D):
            return self._conv(layer, x, shape)
        if isinstance(layer, zs.BatchNorm):
            return self._batch_norm(layer, x, shape), shape
        if isinstance(layer, zs.Activation):
            return symbolic.activation(pt, layer.fn, x), shape
        if isinstance(layer, (zs.MaxPool, zs.AvgPool)):
            return self._pool(layer, x, shape)
        if isinstance(layer, zs.GlobalAvgPool):
            return x.mean(axis=(2, 3)), (shape[0],)
        if isinstance(layer, zs.Flatten):
            features = int(np.prod(shape))
            return x.reshape((self.batch, features)), (features,)  # NCHW -> channel-major, the canonical order
        if isinstance(layer, zs.Dense):
            out = pt.dot(x, self._param(f"{layer.name}.weight").T)
            if layer.bias:
                out = out + self._param(f"{layer.name}.bias").dimshuffle("x", 0)
            return out, (layer.units,)
        if isinstance(layer, zs.Dropout):
            return self._dropout(layer, x, shape), shape
        if isinstance(layer, zs.Residual):
            body, out_shape = self._run(layer.body, x, shape)
            short = self._run(layer.shortcut, x, shape)[0] if layer.shortcut else x
            return symbolic.activation(pt, layer.activation, body + short), out_shape
        raise Unavailable(f"pytensor adapter has no layer {type(layer).__name__}")

    def _conv(self, layer: zs.Conv2D, x: Any, shape: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
        pt = self.pt
        c, h, w = shape
        k, s, p, o = layer.kernel, layer.stride, layer.padding, layer.out_channels
        ho, wo = zs.pool_out(h, k, s, p), zs.pool_out(w, k, s, p)
        n = self.batch
        flat = x.dimshuffle(1, 2, 3, 0).reshape((c * h * w, n))  # one row per input pixel, one column per image
        cols = _im2col_op(c, h, w, k, s, p)(flat, self.zero_row).reshape((c * k * k, ho * wo * n))
        weight = self._param(f"{layer.name}.weight").reshape((o, c * k * k))
        out = pt.dot(weight, cols).reshape((o, ho, wo, n)).dimshuffle(3, 0, 1, 2)
        if layer.bias:
            out = out + self._param(f"{layer.name}.bias").dimshuffle("x", 0, "x", "x")
        return out, (o, ho, wo)

    def _batch_norm(self, layer: zs.BatchNorm, x: Any, shape: tuple[int, ...]) -> Any:
        pt = self.pt
        mean, var = self._param(f"{layer.name}.mean"), self._param(f"{layer.name}.var")
        weights = (self._param(f"{layer.name}.gamma"), self._param(f"{layer.name}.beta"), mean, var)
        out, batch_mean, batch_var = symbolic.batch_norm(pt, x, weights, layer.eps, self.training,
                                                         square=lambda centred: centred * centred)
        if self.training:  # torch's running statistics: the unbiased batch variance
            count = pt.cast(self.batch * int(np.prod(shape[1:])), FLOAT)
            unbiased = batch_var * count / pt.maximum(count - np.float32(1.0), np.float32(1.0))
            m = np.float32(layer.momentum)
            self.bn_updates += [(mean, (np.float32(1.0) - m) * mean + m * batch_mean),
                                (var, (np.float32(1.0) - m) * var + m * unbiased)]
        return out

    def _pool(self, layer: zs.MaxPool | zs.AvgPool, x: Any, shape: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
        c, h, w = shape
        k, s = layer.size, layer.stride or layer.size
        ho, wo = zs.pool_out(h, k, s), zs.pool_out(w, k, s)
        if isinstance(layer, zs.MaxPool):
            return _max_pool_op(c, h, w, k, s)(x), (c, ho, wo)
        return _pool_windows(self.pt, x, c, h, w, k, s).mean(axis=0), (c, ho, wo)

    def _dropout(self, layer: zs.Dropout, x: Any, shape: tuple[int, ...]) -> Any:
        if not self.training or layer.rate <= 0:
            return x
        import pytensor

        pt = self.pt
        keep = 1.0 - float(layer.rate)
        rng = pytensor.shared(np.random.default_rng(0), name=f"{layer.name}.rng")
        size = (self.batch, *shape)
        next_rng, draw = pt.random.uniform(0.0, 1.0, size=size, rng=rng, dtype=FLOAT, return_next_rng=True)
        self.rngs.append(rng)
        self.rng_updates.append((rng, next_rng))
        return x * pt.cast(draw < keep, FLOAT) / np.float32(keep)  # torch's inverted dropout


def _cross_entropy(logits: Any, y: Any, classes: int) -> Any:
    import pytensor.tensor as pt
    from pytensor.gradient import disconnected_grad

    return symbolic.mean_cross_entropy(pt, logits, y, classes, disconnected_grad)


def _inputs(pt: Any, spec: zs.ModelSpec) -> tuple[Any, Any]:
    h, w, c = spec.input_shape
    x = pt.tensor("x", dtype=FLOAT, shape=(None, c, h, w))
    y = pt.vector("y", dtype="int64")
    return x, y


class _PyTensorLoop(EpochLoop):
    """The compiled train step over the batches of the shared epoch loop; the rate is an input of the step."""

    def __init__(self, adapter: PyTensorAdapter, model: PyTensorModel, step: Any,
                 train: tuple[np.ndarray, np.ndarray], settings: TrainSettings) -> None:
        self.adapter, self.model, self.train_step, self.settings = adapter, model, step, settings
        self.x_all = nchw(train[0])
        self.y_all = np.asarray(train[1], dtype=np.int64)
        self.hyper = (np.float64(settings.lr), np.float64(settings.momentum), np.float64(settings.weight_decay))

    def begin_epoch(self, epoch: int) -> None:
        self.hyper = (np.float64(epoch_learning_rate(self.settings, epoch)), *self.hyper[1:])

    def learning_rate(self) -> float:
        return float(np.float32(self.hyper[0]))  # the step casts it to float32

    def step(self, epoch: int, number: int, indices: np.ndarray) -> float:
        settings = self.settings
        xb = augment_batch(self.x_all[indices], settings.augmentation, seed=settings.seed, epoch=epoch, batch=number,
                           layout="NCHW")
        return float(self.train_step(xb, self.y_all[indices], *self.hyper))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.predict(self.model, x)


# --- the adapter -------------------------------------------------------------------------------------
class PyTensorAdapter(FrameworkAdapter):
    name = "pytensor"
    module = "pytensor"
    native_suffix = ".npz"
    predict_api = "compiled pytensor.function (C VM linker, OpenBLAS) on an NCHW float32 array"
    exports: ClassVar[dict[str, str]] = {}

    def __init__(self, threads: int = 1) -> None:
        super().__init__(threads)
        _configure()  # before anything imports pytensor, this adapter or the caller
        _set_blas_threads(threads)

    def version(self) -> str:
        return str(_pytensor().__version__)

    # --- building and weights ---------------------------------------------------------------------
    def build(self, spec: zs.ModelSpec, seed: int) -> PyTensorModel:
        pytensor = _pytensor()
        weights = zs.init_weights(spec, seed)
        params = {name: pytensor.shared(value, name=name) for name, value in weights.items()}
        return PyTensorModel(spec, params)

    def get_weights(self, model: PyTensorModel) -> dict[str, np.ndarray]:
        return {name: np.array(var.get_value(borrow=True), dtype=np.float32, copy=True)
                for name, var in model.params.items()}

    def set_weights(self, model: PyTensorModel, weights: dict[str, np.ndarray]) -> None:
        for name, value in checked_weights(model.spec, weights).items():
            model.params[name].set_value(value, borrow=True)

    # --- compiled functions (one per task, cached on the model) -------------------------------------
    def _function(self, model: PyTensorModel, task: str) -> Any:
        """The compiled function of `task` for `model`: cached, else copied from a model of the same spec."""
        fn = model.functions.get(task)
        if fn is not None:
            return fn
        key = (model.spec, task)
        template = _TEMPLATES.get(key)
        if template is not None:
            fn = self._copy(template, model, task)
            _TEMPLATES.move_to_end(key)
        else:
            fn = self._compile(model, task)
            _TEMPLATES[key] = _Template(fn, dict(model.params), model.slots.get(task, []), model.rngs.get(task, []))
            while len(_TEMPLATES) > _TEMPLATES_KEPT:
                _TEMPLATES.popitem(last=False)
        model.functions[task] = fn
        return fn

    @staticmethod
    def _copy(template: _Template, model: PyTensorModel, task: str) -> Any:
        pytensor = _pytensor()
        swap = {template.params[name]: var for name, var in model.params.items()}
        model.slots[task] = [pytensor.shared(np.zeros_like(v.get_value(borrow=True)), name=v.name)
                             for v in template.slots]
        model.rngs[task] = [pytensor.shared(np.random.default_rng(0), name=v.name) for v in template.rngs]
        swap.update(zip(template.slots, model.slots[task], strict=True))
        swap.update(zip(template.rngs, model.rngs[task], strict=True))
        return template.function.copy(swap=swap, name=template.function.name)

    def _compile(self, model: PyTensorModel, task: str) -> Any:
        pytensor = _pytensor()
        pt = pytensor.tensor
        spec = model.spec
        x, y = _inputs(pt, spec)
        mode = _mode()
        if task == "forward":
            return pytensor.function([x], _GraphBuilder(model, training=False).forward(x), mode=mode,
                                     name=f"{spec.name}.forward")
        if task == "activations":
            graph = _GraphBuilder(model, training=False)
            graph.forward(x)
            outputs = [graph.taps[n] for n in spec.output_shapes()]  # the order `activations` zips with
            return pytensor.function([x], outputs, mode=mode, name=f"{spec.name}.activations")
        if task == "gradient":
            loss = _cross_entropy(_GraphBuilder(model, training=False).forward(x), y, spec.num_classes)
            return pytensor.function([x, y], pytensor.grad(loss, x), mode=mode, name=f"{spec.name}.gradient")
        if task == "class_gradient":  # y: the class whose logit is differentiated, per input
            picked = symbolic.picked_logits(pt, _GraphBuilder(model, training=False).forward(x), y, spec.num_classes)
            return pytensor.function([x, y], pytensor.grad(picked, x), mode=mode, name=f"{spec.name}.class_gradient")
        if task in ("train:sgd", "train:adam"):
            return self._compile_train_step(model, task, x, y)
        raise ValueError(f"unknown task {task!r}")

    def _compile_train_step(self, model: PyTensorModel, task: str, x: Any, y: Any) -> Any:
        """One step: forward in training mode, mean cross-entropy, gradients, torch.optim's update rule."""
        pytensor = _pytensor()
        pt = pytensor.tensor
        spec = model.spec
        graph = _GraphBuilder(model, training=True)
        loss = _cross_entropy(graph.forward(x), y, spec.num_classes)
        trainable = [model.params[n] for n in spec.trainable_weight_names()]
        grads = pytensor.grad(loss, trainable)
        lr, momentum, decay = pt.dscalar("lr"), pt.dscalar("momentum"), pt.dscalar("weight_decay")
        lr32, momentum32, decay32 = (pt.cast(v, FLOAT) for v in (lr, momentum, decay))
        updates: list[tuple[Any, Any]] = [*graph.bn_updates, *graph.rng_updates]
        slots: list[Any] = []

        def slot(param: Any, role: str) -> Any:
            var = pytensor.shared(np.zeros_like(param.get_value(borrow=True)), name=f"{param.name}.{role}")
            slots.append(var)
            return var

        if task == "train:sgd":
            buffers = [slot(param, "momentum_buffer") for param in trainable]
            updates += symbolic.sgd_updates(trainable, grads, buffers, lr32, momentum32, decay32)
        else:  # torch.optim.Adam (single-tensor CPU path): coupled L2 decay, eps outside the sqrt
            b1, b2 = _ADAM_BETAS
            step = pytensor.shared(np.float64(0.0), name="adam.step")
            slots.append(step)
            t = step + 1.0
            step_size = pt.cast(lr / (1.0 - np.float64(b1) ** t), FLOAT)  # bias corrections in float64
            correction2_sqrt = pt.cast(pt.sqrt(1.0 - np.float64(b2) ** t), FLOAT)
            updates.append((step, t))
            for param, grad in zip(trainable, grads, strict=True):
                m, v = slot(param, "exp_avg"), slot(param, "exp_avg_sq")
                g = grad + decay32 * param
                new_m = m + (g - m) * np.float32(1.0 - b1)  # torch: exp_avg.lerp_(grad, 1 - beta1)
                new_v = v * np.float32(b2) + g * g * np.float32(1.0 - b2)
                denom = pt.sqrt(new_v) / correction2_sqrt + np.float32(_ADAM_EPS)
                updates += [(m, new_m), (v, new_v), (param, param - step_size * (new_m / denom))]
        model.slots[task], model.rngs[task] = slots, graph.rngs
        return pytensor.function([x, y, lr, momentum, decay], loss, updates=updates, mode=_mode(),
                                 on_unused_input="ignore",  # Adam takes no momentum
                                 name=f"{spec.name}.{task.replace(':', '_')}")

    # --- training ---------------------------------------------------------------------------------
    def train(
        self,
        model: PyTensorModel,
        spec: zs.ModelSpec,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        settings: TrainSettings,
        progress: Progress | None = None,
    ) -> TrainHistory:
        if settings.optimizer not in ("sgd", "adam"):
            raise Unavailable(f"pytensor adapter has no optimizer {settings.optimizer!r} (sgd, adam)")
        task = f"train:{settings.optimizer}"
        step = self._function(model, task)
        for slot in model.slots[task]:  # a fresh optimizer per call, as torch.optim
            slot.set_value(np.zeros_like(slot.get_value(borrow=True)))
        for i, rng in enumerate(model.rngs[task]):  # dropout masks: a function of the seed alone
            rng.set_value(np.random.default_rng([settings.seed, i]))
        return _PyTensorLoop(self, model, step, train, settings).run(len(train[1]), val, settings, progress)

    # --- inference and gradients ------------------------------------------------------------------
    def predict(self, model: PyTensorModel, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, model.spec.num_classes), np.float32)
        forward = self._function(model, "forward")
        out = [forward(nchw(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    def predictor(self, model: PyTensorModel, x: np.ndarray) -> Callable[[], Any]:
        forward = self._function(model, "forward")
        xt = nchw(x)
        return lambda: forward(xt)

    def loss_gradient(self, model: PyTensorModel, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return nhwc(self._function(model, "gradient")(nchw(x), np.asarray(y, dtype=np.int64)))

    def class_gradient(self, model: PyTensorModel, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        return nhwc(self._function(model, "class_gradient")(nchw(x), labels))

    def activations(self, model: PyTensorModel, x: np.ndarray,
                    layers: list[str] | None = None) -> dict[str, np.ndarray]:
        names = list(model.spec.output_shapes())
        taps = dict(zip(names, self._function(model, "activations")(nchw(x)), strict=True))
        wanted = layers if layers is not None else names
        return {name: np.ascontiguousarray(taps[name], dtype=np.float32) for name in wanted}

    # --- persistence and export -------------------------------------------------------------------
    def save(self, model: PyTensorModel, path: Path) -> None:
        save_weights_file(self.get_weights(model), path)

    def load(self, spec: zs.ModelSpec, path: Path) -> PyTensorModel:
        model = self.build(spec, seed=0)
        self.set_weights(model, load_weights_file(spec, path, self.name))
        return model

    def export(self, model: Any, spec: zs.ModelSpec, fmt: str, path: Path, variant: str = "") -> dict[str, Any]:
        raise Unavailable(f"no converter exists from PyTensor to {fmt}")
