"""Theano adapter: the original Theano 1.0.5, in its own toolchain environment (numpy 1.23.5).

The spec is compiled into a symbolic Theano graph over shared variables that hold the canonical
weights as they are (NCHW is Theano's own layout): `nnet.conv2d` with explicit padding and
`filter_flip=False` (canonical kernels are cross-correlation kernels, like PyTorch's), `pool_2d`
with `ignore_border=True`, batch norm written out with the spec's eps and PyTorch's running-average
semantics, dropout from a seeded `MRG_RandomStreams`. Training is one compiled `theano.function`
whose `updates` carry the optimizer (torch.optim's SGD and Adam, step for step) and the batch-norm
running statistics. The native file is an `.npz` of canonical weights: Theano has no safe format of
its own (it pickles), and no converter exists from Theano to any other format.

Compiled functions are shape-generic (one serves every batch size) and cached per spec and kind
(predict, activations, gradient, class_gradient, train-sgd, train-adam): every model of a spec in a process (a loaded
file, a second training run) runs the same compiled functions, its weights swapped into their shared
variables by reference. C code is cached across processes by Theano itself, in its compile directory
(~/.theano unless THEANO_FLAGS says otherwise); `_keep_compiled_modules` fixes two cache keys of Theano
1.0.5 that made every new process recompile some modules.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
ADAM_EPS = 1e-8


def _theano() -> Any:
    import theano

    if theano.config.floatX != FLOAT:
        raise Unavailable(f"the theano adapter needs floatX={FLOAT} (THEANO_FLAGS=floatX=float32), "
                          f"not {theano.config.floatX}")
    _keep_compiled_modules(theano)
    return theano


def _keep_compiled_modules(theano: Any) -> None:
    """Let Theano 1.0.5's on-disk C-module cache serve every process, not only the one that compiled.

    Two of its cache keys are not stable, so every new worker recompiled some modules with g++ (seconds each):
    an op whose `__props__` is the empty tuple (Alloc, Dot22, Softmax, ...) counts as "unversioned" because
    cmodule_key_ appends `__props__` to the version and tests it for truth (known upstream: aesara#1101);
    and a COp's version is `hash()` of its C source, which Python randomises per process (PYTHONHASHSEED).
    The keys still hold the op, its types and its C version; only those two mistakes are corrected.
    """
    import hashlib

    from theano.gof import cc, op

    if getattr(cc.CLinker, "_dlcompat_stable_keys", False):
        return
    original_key = cc.CLinker.cmodule_key_

    def cmodule_key_(self: Any, fgraph: Any, *args: Any, **kwargs: Any) -> Any:
        key = original_key(self, fgraph, *args, **kwargs)
        if key is None or key[0]:
            return key
        version: list[Any] = []
        for node in self.schedule(fgraph):
            if hasattr(node.op, "c_code_cache_version_apply"):
                version.append(node.op.c_code_cache_version_apply(node))
            if getattr(node.op, "__props__", None):
                version.append(node.op.__props__)
            version += [v.type.c_code_cache_version() for v in (*node.inputs, *node.outputs)]
        return (tuple(version), key[1]) if version and all(version) else key

    def c_code_cache_version(self: Any) -> tuple[Any, ...]:
        digest = hashlib.sha256("\0".join(self.func_codes).encode()).hexdigest()
        version: tuple[Any, ...] = (int(digest[:15], 16),)
        if hasattr(self, "params_type"):
            version += (self.params_type.c_code_cache_version(),)
        return version

    cc.CLinker.cmodule_key_ = cmodule_key_
    op.COp.c_code_cache_version = c_code_cache_version
    cc.CLinker._dlcompat_stable_keys = True


# --- the graph --------------------------------------------------------------------------------------------


@dataclass
class _Trace:
    """What one symbolic pass over the spec collects: named outputs and batch-norm running-stat updates."""

    training: bool
    #: the graph will be differentiated: max pooling routes each window's gradient to its first maximum
    differentiable: bool = False
    rng: Any = None  # MRG_RandomStreams, only when training
    taps: dict[str, Any] = field(default_factory=dict)
    updates: list[tuple[Any, Any]] = field(default_factory=list)


def _layers(g: _SpecGraph, layers: tuple[zs.Layer, ...], x: Any, trace: _Trace) -> Any:
    for layer in layers:
        x = _layer(g, layer, x, trace)
        trace.taps[layer.name] = x
    return x


def _layer(g: _SpecGraph, layer: zs.Layer, x: Any, trace: _Trace) -> Any:
    theano = _theano()
    tensor = theano.tensor
    p = g.params
    if isinstance(layer, zs.Conv2D):
        out = tensor.nnet.conv2d(x, p[f"{layer.name}.weight"], border_mode=(layer.padding, layer.padding),
                                 subsample=(layer.stride, layer.stride), filter_flip=False)
        if layer.bias:
            out = out + p[f"{layer.name}.bias"].dimshuffle("x", 0, "x", "x")
        return out
    if isinstance(layer, zs.BatchNorm):
        return _batch_norm(g, layer, x, trace)
    if isinstance(layer, zs.Dense):
        out = tensor.dot(x, p[f"{layer.name}.weight"].T)
        if layer.bias:
            out = out + p[f"{layer.name}.bias"].dimshuffle("x", 0)
        return out
    if isinstance(layer, zs.Activation):
        return symbolic.activation(tensor, layer.fn, x)
    if isinstance(layer, (zs.MaxPool, zs.AvgPool)):
        from theano.tensor.signal.pool import pool_2d

        stride = layer.stride or layer.size
        if isinstance(layer, zs.MaxPool) and trace.differentiable:
            return _max_pool_first_max(x, layer.size, stride, g.output_shapes[layer.name])
        mode = "max" if isinstance(layer, zs.MaxPool) else "average_exc_pad"
        return pool_2d(x, ws=(layer.size, layer.size), stride=(stride, stride), ignore_border=True, mode=mode)
    if isinstance(layer, zs.GlobalAvgPool):
        return x.mean(axis=(2, 3))
    if isinstance(layer, zs.Flatten):
        return x.flatten(2)  # NCHW rows -> channel-major features, the canonical order
    if isinstance(layer, zs.Dropout):
        if not trace.training or layer.rate <= 0:
            return x
        keep = 1.0 - layer.rate
        mask = trace.rng.binomial(size=x.shape, p=keep, dtype=FLOAT)
        return x * mask / np.float32(keep)  # inverted dropout, as torch.nn.Dropout
    if isinstance(layer, zs.Residual):
        body = _layers(g, layer.body, x, trace)
        short = _layers(g, layer.shortcut, x, trace) if layer.shortcut else x
        return symbolic.activation(tensor, layer.activation, body + short)
    raise Unavailable(f"theano adapter has no layer {type(layer).__name__}")


#: window values this close to the maximum (relative; about 4 float32 ulps) count as tied with it
TIE_TOLERANCE = 2.0**-21


def _max_pool_first_max(x: Any, size: int, stride: int, out_shape: tuple[int, ...]) -> Any:
    """Max pooling whose gradient goes to the first maximum of each window (row-major), as PyTorch's does.

    Theano's own MaxPoolGrad gives the gradient to every element equal to the maximum. Ties are common
    (a uniform background under a conv bias, then ReLU), so its gradients and training would differ from
    every other framework's (by 60% of what one epoch of LeNet-5 moves the weights). And identical patches
    do not always convolve to identical values here: OpenBLAS rounds the edge tiles of its GEMM
    differently, so a tie PyTorch computes exactly can come out one ulp apart. So values within
    TIE_TOLERANCE of the window's maximum count as tied, and the first of them takes the gradient.
    The value is pool_2d's; only its gradient is replaced (an inlined OpFromGraph).
    """
    theano = _theano()
    from theano.tensor.signal.pool import pool_2d

    inner = theano.tensor.tensor4("pool_input", dtype=FLOAT)
    pooled = pool_2d(inner, ws=(size, size), stride=(stride, stride), ignore_border=True, mode="max")

    def gradient(inputs: list[Any], outputs: list[Any], output_grads: list[Any]) -> list[Any]:
        return [_first_max_gradient(inputs[0], outputs[0], output_grads[0], size, stride, out_shape)]

    op = theano.compile.builders.OpFromGraph([inner], [pooled], inline=True, lop_overrides=gradient)
    return op(x)


def _first_max_gradient(x: Any, top: Any, gz: Any, size: int, stride: int, out_shape: tuple[int, ...]) -> Any:
    """d(pool)/dx: each window's output gradient `gz` goes to its first (near-)maximum, zeros elsewhere.

    Window position (i, j) of every window at once is the strided view x[:, :, i::stride, j::stride]
    (no copy); positions are visited in row-major order, each taking the gradient where it is tied with
    the maximum `top` and no earlier position was, and added into place (overlapping windows add up).
    """
    tensor = _theano().tensor
    _, out_h, out_w = out_shape
    span_h, span_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    threshold = top - abs(top) * np.float32(TIE_TOLERANCE)
    grad = tensor.zeros_like(x)
    taken = None
    for i in range(size):
        for j in range(size):
            window = (slice(None), slice(None), slice(i, i + span_h, stride), slice(j, j + span_w, stride))
            tied = tensor.ge(x[window], threshold)
            first = tied if taken is None else tensor.and_(tied, tensor.invert(taken))
            taken = tied if taken is None else tensor.or_(taken, tied)
            grad = tensor.inc_subtensor(grad[window], tensor.switch(first, gz, np.float32(0)))
    return grad


def _batch_norm(g: _SpecGraph, layer: zs.BatchNorm, x: Any, trace: _Trace) -> Any:
    tensor = _theano().tensor
    mean, var = g.params[f"{layer.name}.mean"], g.params[f"{layer.name}.var"]
    weights = (g.params[f"{layer.name}.gamma"], g.params[f"{layer.name}.beta"], mean, var)
    out, batch_mean, batch_var = symbolic.batch_norm(tensor, x, weights, layer.eps, trace.training, square=tensor.sqr)
    if trace.training:
        count = tensor.cast(x.size // x.shape[1], FLOAT)
        m = np.float32(layer.momentum)
        trace.updates.append((mean, (np.float32(1) - m) * mean + m * batch_mean))
        # PyTorch keeps the unbiased batch variance in the running average
        trace.updates.append((var, (np.float32(1) - m) * var + m * batch_var * count / (count - 1)))
    return out


def _cross_entropy(logits: Any, y: Any, classes: int) -> Any:
    theano = _theano()
    return symbolic.mean_cross_entropy(theano.tensor, logits, y, classes, theano.gradient.zero_grad)


# --- the compiled graph of a spec, and the models that use it ------------------------------------------------


class _SpecGraph:
    """One spec's shared variables and the functions compiled over them, for every model of that spec.

    Compiling is the slow part of Theano (graph optimisation, then C code), so a process compiles each
    function once per spec; a model's weights are swapped into the shared variables (by reference, no
    copy) when that model runs (`TheanoModel.activate`). Compiled functions are shape-generic: one serves every
    batch size. The optimizer's slots live here too, set to zero at the start of every training run.
    """

    def __init__(self, spec: zs.ModelSpec) -> None:
        theano = _theano()
        self.spec = spec
        self.output_shapes = spec.output_shapes()
        self.params = {name: theano.shared(np.zeros(shape, np.float32), name=name)
                       for name, shape in spec.weight_shapes().items()}
        self.functions: dict[str, Any] = {}
        self.slots: dict[str, dict[str, list[Any]]] = {}  # optimizer -> slot kind -> one per trainable weight
        self.rngs: dict[str, Any] = {}  # optimizer -> MRG_RandomStreams of its training graph (dropout)
        self.owner: weakref.ref[TheanoModel] | None = None

    def trainable(self) -> list[Any]:
        return [self.params[n] for n in self.spec.trainable_weight_names()]

    def compiled(self, kind: str, make: Callable[[], Any]) -> Any:
        if kind not in self.functions:
            self.functions[kind] = make()
        return self.functions[kind]


_GRAPHS: dict[zs.ModelSpec, _SpecGraph] = {}


class TheanoModel:
    """A model of the theano adapter: its spec and its canonical weights (float32, canonical layout).

    While the model is the one whose weights its spec's graph holds, the graph's shared variables are
    the truth (training updates them); `weights()` reads them back.
    """

    def __init__(self, spec: zs.ModelSpec, weights: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self._weights = {name: np.array(weights[name], dtype=np.float32, order="C", copy=True)
                         for name in spec.weight_shapes()}
        self._graph: _SpecGraph | None = None

    def graph(self) -> _SpecGraph:
        if self._graph is None:  # looked up once: hashing a deep spec costs more than a forward pass of LeNet
            if self.spec not in _GRAPHS:
                _GRAPHS[self.spec] = _SpecGraph(self.spec)
            self._graph = _GRAPHS[self.spec]
        return self._graph

    def _active(self) -> bool:
        owner = self.graph().owner
        return owner is not None and owner() is self

    def activate(self) -> _SpecGraph:
        """The spec's graph, holding this model's weights."""
        g = self.graph()
        if not self._active():
            previous = g.owner() if g.owner is not None else None
            if previous is not None:
                previous._weights = {n: v.get_value(borrow=True) for n, v in g.params.items()}
            for name, var in g.params.items():
                var.set_value(self._weights[name], borrow=True)
            g.owner = weakref.ref(self)
        return g

    def weights(self) -> dict[str, np.ndarray]:
        """The current weights, by reference: copy before handing them out."""
        if self._active():
            self._weights = {n: v.get_value(borrow=True) for n, v in self.graph().params.items()}
        return self._weights

    def replace_weights(self, weights: dict[str, np.ndarray]) -> None:
        self._weights = weights
        if self._active():
            for name, var in self.graph().params.items():
                var.set_value(weights[name], borrow=True)


def _eval_graph(g: _SpecGraph, differentiable: bool = False) -> tuple[Any, _Trace]:
    x = _theano().tensor.tensor4("x", dtype=FLOAT)
    trace = _Trace(training=False, differentiable=differentiable)
    _layers(g, g.spec.layers, x, trace)
    return x, trace


def _predict_fn(model: TheanoModel) -> Any:
    """fn(x NCHW float32) -> [logits]; inputs are trusted (always `_nchw`'s contiguous float32)."""
    g = model.activate()

    def make() -> Any:
        theano = _theano()
        x, trace = _eval_graph(g)
        fn = theano.function([x], [trace.taps[g.spec.layers[-1].name]], name="predict")
        fn.trust_input = True
        return fn

    return g.compiled("predict", make)


def _activations_fn(model: TheanoModel) -> Any:
    """fn(x) -> [output of every layer of spec.iter_layers(), in that order]."""
    g = model.activate()

    def make() -> Any:
        theano = _theano()
        x, trace = _eval_graph(g)
        return theano.function([x], [trace.taps[layer.name] for layer in g.spec.iter_layers()], name="activations")

    return g.compiled("activations", make)


def _gradient_fn(model: TheanoModel) -> Any:
    """fn(x, y) -> [d(mean cross-entropy)/dx]."""
    g = model.activate()

    def make() -> Any:
        theano = _theano()
        x, trace = _eval_graph(g, differentiable=True)
        y = theano.tensor.lvector("y")
        loss = _cross_entropy(trace.taps[g.spec.layers[-1].name], y, g.spec.num_classes)
        return theano.function([x, y], [theano.grad(loss, x)], name="loss_gradient")

    return g.compiled("gradient", make)


def _class_gradient_fn(model: TheanoModel) -> Any:
    """fn(x, labels) -> [d logits[i, labels[i]] / dx[i] for every i]: one backward pass of the picked logits' sum.

    In evaluation mode the inputs are independent, so the gradient of the sum is each input's own.
    """
    g = model.activate()

    def make() -> Any:
        theano = _theano()
        x, trace = _eval_graph(g, differentiable=True)
        labels = theano.tensor.lvector("labels")
        picked = symbolic.picked_logits(theano.tensor, trace.taps[g.spec.layers[-1].name], labels, g.spec.num_classes)
        return theano.function([x, labels], [theano.grad(picked, x)], name="class_gradient")

    return g.compiled("class_gradient", make)


def _train_fn(model: TheanoModel, optimizer: str, seed: int) -> Any:
    """fn(x, y, *hyper) -> [mean loss], updating the weights, the optimizer state and the BN running stats.

    SGD hyper: lr, momentum, weight_decay. Adam hyper: lr, weight_decay, step_size, bias_correction2_sqrt
    (the bias corrections are computed in double precision outside, as torch.optim does). The optimizer
    state starts at zero, and dropout's random stream at `seed`, on every call: a fresh torch.optim.
    """
    theano = _theano()
    tensor = theano.tensor
    g = model.activate()
    kind = f"train-{optimizer}"

    def make() -> Any:
        from theano.sandbox.rng_mrg import MRG_RandomStreams

        params = g.trainable()
        kinds = ("m", "v") if optimizer == "adam" else ("buf",)
        slots = g.slots[optimizer] = {
            what: [theano.shared(np.zeros(g.spec.weight_shapes()[p.name], np.float32), name=f"{p.name}.{what}")
                   for p in params]
            for what in kinds
        }
        rng = g.rngs[optimizer] = MRG_RandomStreams(seed + 1)  # MRG's seed must be positive
        x = tensor.tensor4("x", dtype=FLOAT)
        y = tensor.lvector("y")
        trace = _Trace(training=True, differentiable=True, rng=rng)
        loss = _cross_entropy(_layers(g, g.spec.layers, x, trace), y, g.spec.num_classes)
        grads = theano.grad(loss, params)
        lr, wd = tensor.fscalar("lr"), tensor.fscalar("weight_decay")
        updates: list[tuple[Any, Any]] = []
        if optimizer == "adam":
            step_size, bc2_sqrt = tensor.fscalar("step_size"), tensor.fscalar("bias_correction2_sqrt")
            b1, b2 = (np.float32(b) for b in ADAM_BETAS)
            for p, grad, m, v in zip(params, grads, slots["m"], slots["v"], strict=True):
                grad = grad + wd * p  # coupled L2, as torch.optim.Adam(weight_decay=...)
                m_new = b1 * m + (np.float32(1) - b1) * grad
                v_new = b2 * v + (np.float32(1) - b2) * grad * grad
                denom = tensor.sqrt(v_new) / bc2_sqrt + np.float32(ADAM_EPS)
                updates += [(m, m_new), (v, v_new), (p, p - step_size * (m_new / denom))]
            hyper = [lr, wd, step_size, bc2_sqrt]
        else:
            momentum = tensor.fscalar("momentum")
            updates += symbolic.sgd_updates(params, grads, slots["buf"], lr, momentum, wd)
            hyper = [lr, momentum, wd]
        return theano.function([x, y, *hyper], [loss], updates=updates + trace.updates, name=kind,
                               on_unused_input="ignore")

    fn = g.compiled(kind, make)
    for group in g.slots[optimizer].values():
        for slot in group:
            slot.set_value(np.zeros_like(slot.get_value(borrow=True)), borrow=True)
    g.rngs[optimizer].seed(seed + 1)
    return fn


class _TheanoLoop(EpochLoop):
    """The compiled train step over the batches of the shared epoch loop; rate and Adam's bias corrections
    are inputs of the step, computed here in double precision as torch.optim does."""

    def __init__(self, adapter: TheanoAdapter, model: TheanoModel, fn: Any, train: tuple[np.ndarray, np.ndarray],
                 settings: TrainSettings) -> None:
        self.adapter, self.model, self.train_step, self.settings = adapter, model, fn, settings
        self.x_all = nchw(train[0])
        self.y_all = np.ascontiguousarray(train[1], dtype=np.int64)
        self.epoch_lr = settings.lr
        self.steps = 0

    def begin_epoch(self, epoch: int) -> None:
        self.epoch_lr = epoch_learning_rate(self.settings, epoch)

    def learning_rate(self) -> float:
        return float(np.float32(self.epoch_lr))

    def step(self, epoch: int, number: int, indices: np.ndarray) -> float:
        settings = self.settings
        xb = augment_batch(self.x_all[indices], settings.augmentation, seed=settings.seed, epoch=epoch, batch=number,
                           layout="NCHW")
        self.steps += 1
        lr, wd = np.float32(self.epoch_lr), np.float32(settings.weight_decay)
        if settings.optimizer == "adam":
            b1, b2 = ADAM_BETAS
            hyper = (lr, wd, np.float32(self.epoch_lr / (1 - b1**self.steps)),
                     np.float32((1 - b2**self.steps) ** 0.5))
        else:
            hyper = (lr, np.float32(settings.momentum), wd)
        (loss,) = self.train_step(xb, self.y_all[indices], *hyper)
        return float(loss)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.predict(self.model, x)


# --- the adapter ------------------------------------------------------------------------------------------


class TheanoAdapter(FrameworkAdapter):
    name = "theano"
    module = "theano"
    native_suffix = ".npz"
    predict_api = "compiled theano.function(x) (C backend, CorrMM + OpenBLAS), trust_input"
    exports: ClassVar[dict[str, str]] = {}

    def version(self) -> str:
        return str(_theano().__version__)

    # --- building and weights -------------------------------------------------------------------
    def build(self, spec: zs.ModelSpec, seed: int) -> TheanoModel:
        return TheanoModel(spec, zs.init_weights(spec, seed))

    def get_weights(self, model: TheanoModel) -> dict[str, np.ndarray]:
        return {name: np.array(value, dtype=np.float32, copy=True) for name, value in model.weights().items()}

    def set_weights(self, model: TheanoModel, weights: dict[str, np.ndarray]) -> None:
        model.replace_weights(checked_weights(model.spec, weights))

    # --- training ---------------------------------------------------------------------------------
    def train(
        self,
        model: TheanoModel,
        spec: zs.ModelSpec,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        settings: TrainSettings,
        progress: Progress | None = None,
    ) -> TrainHistory:
        if settings.optimizer not in ("sgd", "adam"):
            raise Unavailable(f"theano adapter has no optimizer {settings.optimizer!r} (sgd, adam)")
        fn = _train_fn(model, settings.optimizer, settings.seed)
        return _TheanoLoop(self, model, fn, train, settings).run(len(train[1]), val, settings, progress)

    # --- inference and gradients ------------------------------------------------------------------
    def predict(self, model: TheanoModel, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, model.spec.num_classes), np.float32)
        fn = _predict_fn(model)
        out = [np.asarray(fn(nchw(x[i : i + batch_size]))[0]) for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    def predictor(self, model: TheanoModel, x: np.ndarray) -> Callable[[], Any]:
        fn = _predict_fn(model)
        xt = nchw(x)

        def forward() -> Any:
            model.activate()  # another model of the spec may have run since: a pointer check, a swap if so
            return fn(xt)[0]

        return forward

    def loss_gradient(self, model: TheanoModel, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        fn = _gradient_fn(model)
        (grad,) = fn(nchw(x), np.asarray(y, dtype=np.int64))
        return nhwc(grad)

    def class_gradient(self, model: TheanoModel, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        fn = _class_gradient_fn(model)
        (grad,) = fn(nchw(x), np.asarray(labels, dtype=np.int64).reshape(-1))
        return nhwc(grad)

    def activations(self, model: TheanoModel, x: np.ndarray, layers: list[str] | None = None,
                    batch_size: int = 256) -> dict[str, np.ndarray]:
        names = [layer.name for layer in model.spec.iter_layers()]
        wanted = names if layers is None else list(layers)
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ValueError(f"{model.spec.name} has no layer {', '.join(unknown)}")
        fn = _activations_fn(model)
        chunks: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
        for i in range(0, len(x), batch_size):
            outs = dict(zip(names, fn(nchw(x[i : i + batch_size])), strict=True))
            for n in wanted:
                chunks[n].append(np.asarray(outs[n], dtype=np.float32))
        shapes = model.spec.output_shapes()
        return {n: np.concatenate(chunks[n]) if chunks[n] else np.zeros((0, *shapes[n]), np.float32)
                for n in wanted}

    # --- persistence and export -------------------------------------------------------------------
    def save(self, model: TheanoModel, path: Path) -> None:
        save_weights_file(self.get_weights(model), path)

    def load(self, spec: zs.ModelSpec, path: Path) -> TheanoModel:
        return TheanoModel(spec, load_weights_file(spec, path, self.name))

    def export(self, model: TheanoModel, spec: zs.ModelSpec, fmt: str, path: Path, variant: str = "") -> dict[str, Any]:
        raise Unavailable(f"theano cannot export to {fmt}: no converter exists from Theano 1.0.5 to any format; "
                          "move its weights to another framework by exact weight transfer instead")
