"""Framework-neutral architecture specs: a model is declared once, as data, and compiled by every adapter.

A `ModelSpec` is a sequence of layers; a `Residual` layer holds two sub-sequences (body and shortcut)
whose outputs are added, then activated. Each layer with parameters has a unique `name`, and the
canonical weights of a model are a flat dict `"{layer}.{param}" -> np.ndarray` in the layout below.
Every adapter reads and writes exactly this layout, so one set of weights loads into every framework.

Canonical layout (the ONNX / PyTorch convention, chosen because ONNX is the interchange format):
- images enter as float32 in [0, 1]; the adapter chooses NCHW or NHWC internally;
- ``conv.weight``: (out_channels, in_channels, kh, kw); ``conv.bias``: (out_channels,);
- padding is explicit and symmetric (``padding=p`` adds p zeros on every side), never "same",
  because "same" with stride 2 pads asymmetrically in some frameworks and not in others;
- ``dense.weight``: (units, in_features); ``dense.bias``: (units,); a dense layer after `Flatten`
  sees its features in **channel-major (C, H, W)** order;
- ``bn.gamma``, ``bn.beta``, ``bn.mean``, ``bn.var``: (channels,); y = gamma (x - mean) / sqrt(var + eps) + beta;
  ``momentum`` is the weight of the *new* batch statistic in the running average (PyTorch semantics).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Conv2D:
    name: str
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    bias: bool = True


@dataclass(frozen=True)
class BatchNorm:
    name: str
    eps: float = 1e-5
    momentum: float = 0.1


@dataclass(frozen=True)
class Activation:
    name: str
    fn: str = "relu"  # relu | tanh | sigmoid


@dataclass(frozen=True)
class MaxPool:
    name: str
    size: int = 2
    stride: int | None = None  # None: same as size


@dataclass(frozen=True)
class AvgPool:
    name: str
    size: int = 2
    stride: int | None = None


@dataclass(frozen=True)
class GlobalAvgPool:
    name: str


@dataclass(frozen=True)
class Flatten:
    name: str


@dataclass(frozen=True)
class Dense:
    name: str
    units: int
    bias: bool = True


@dataclass(frozen=True)
class Dropout:
    name: str
    rate: float = 0.5


@dataclass(frozen=True)
class Residual:
    """out = activation(body(x) + shortcut(x)); an empty shortcut is the identity."""

    name: str
    body: tuple[Layer, ...]
    shortcut: tuple[Layer, ...] = ()
    activation: str = "relu"


Layer = Conv2D | BatchNorm | Activation | MaxPool | AvgPool | GlobalAvgPool | Flatten | Dense | Dropout | Residual

ACTIVATIONS = ("relu", "tanh", "sigmoid")


@dataclass(frozen=True)
class ModelSpec:
    """One architecture, declared once. `input_shape` is (H, W, C)."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    layers: tuple[Layer, ...]
    reference: str = ""
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def imported(self) -> bool:
        """A model dlcompat did not build (`imported_spec`): its file is the model, it has no layers here."""
        return IMPORTED in self.tags

    def iter_layers(self) -> Iterator[Layer]:
        """Every layer, depth first (residual blocks, then their body and shortcut layers)."""
        yield from _walk(self.layers)

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The canonical weight layout: name -> shape, in a fixed order."""
        return _infer(self)[0]

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """Output shape (C, H, W) or (features,) of every named layer, for one image."""
        return _infer(self)[1]

    def trainable_weight_names(self) -> list[str]:
        return [n for n in self.weight_shapes() if not n.endswith((".mean", ".var"))]

    def parameter_count(self, trainable_only: bool = True) -> int:
        shapes = self.weight_shapes()
        names = self.trainable_weight_names() if trainable_only else list(shapes)
        return int(sum(int(np.prod(shapes[n])) for n in names))


#: the tag of a spec that stands for a user's model file (`dlcompat check`)
IMPORTED = "imported"


def imported_spec(name: str, input_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    """The spec of a model file dlcompat did not build: only its name, input (H, W, C) and number of classes, which
    is what converters and runtimes need from a spec; adapters load such a model from its file as it is."""
    return ModelSpec(name, tuple(int(v) for v in input_shape), int(num_classes), layers=(),  # type: ignore[arg-type]
                     notes="a user's model file (dlcompat check)", tags=(IMPORTED,))


def _walk(layers: tuple[Layer, ...]) -> Iterator[Layer]:
    for layer in layers:
        yield layer
        if isinstance(layer, Residual):
            yield from _walk(layer.body)
            yield from _walk(layer.shortcut)


def pool_out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output length of a conv or pool window (floor mode, as every framework defaults to)."""
    return (size + 2 * padding - kernel) // stride + 1


def _infer(spec: ModelSpec) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    h, w, c = spec.input_shape
    weights: dict[str, tuple[int, ...]] = {}
    outputs: dict[str, tuple[int, ...]] = {}
    seen: set[str] = set()

    def run(layers: tuple[Layer, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in layers:
            if layer.name in seen:
                raise ValueError(f"model {spec.name!r}: layer name {layer.name!r} is used twice")
            seen.add(layer.name)
            shape = step(layer, shape)
            outputs[layer.name] = shape
        return shape

    def step(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
        if isinstance(layer, Conv2D):
            cin, hh, ww = shape
            k, s, p = layer.kernel, layer.stride, layer.padding
            weights[f"{layer.name}.weight"] = (layer.out_channels, cin, k, k)
            if layer.bias:
                weights[f"{layer.name}.bias"] = (layer.out_channels,)
            return (layer.out_channels, pool_out(hh, k, s, p), pool_out(ww, k, s, p))
        if isinstance(layer, BatchNorm):
            ch = shape[0]
            for p in ("gamma", "beta", "mean", "var"):
                weights[f"{layer.name}.{p}"] = (ch,)
            return shape
        if isinstance(layer, (MaxPool, AvgPool)):
            ch, hh, ww = shape
            s = layer.stride or layer.size
            return (ch, pool_out(hh, layer.size, s), pool_out(ww, layer.size, s))
        if isinstance(layer, GlobalAvgPool):
            return (shape[0],)
        if isinstance(layer, Flatten):
            return (int(np.prod(shape)),)
        if isinstance(layer, Dense):
            if len(shape) != 1:
                raise ValueError(f"model {spec.name!r}: dense layer {layer.name!r} needs a Flatten before it")
            weights[f"{layer.name}.weight"] = (layer.units, shape[0])
            if layer.bias:
                weights[f"{layer.name}.bias"] = (layer.units,)
            return (layer.units,)
        if isinstance(layer, Activation):
            if layer.fn not in ACTIVATIONS:
                raise ValueError(f"model {spec.name!r}: unknown activation {layer.fn!r}")
            return shape
        if isinstance(layer, Dropout):
            return shape
        if isinstance(layer, Residual):
            out_body = run(layer.body, shape)
            out_short = run(layer.shortcut, shape) if layer.shortcut else shape
            if out_body != out_short:
                raise ValueError(
                    f"model {spec.name!r}: residual {layer.name!r} adds shapes {out_body} and {out_short}"
                )
            return out_body
        raise TypeError(f"unknown layer type {type(layer).__name__}")

    final = run(spec.layers, (c, h, w))
    if spec.imported:  # a user's file: its layers are its own, not declared here
        return weights, outputs
    if final != (spec.num_classes,):
        raise ValueError(f"model {spec.name!r} ends with shape {final}, expected ({spec.num_classes},)")
    return weights, outputs


def init_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """A framework-neutral initialisation (He-uniform for conv/dense, zeros for biases, BN identity).

    Every adapter can start from these exact weights, so training differences are the framework's.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in spec.weight_shapes().items():
        param = name.rsplit(".", 1)[1]
        if param == "weight":
            fan_in = int(np.prod(shape[1:]))
            bound = float(np.sqrt(6.0 / fan_in))
            out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        elif param in ("gamma", "var"):
            out[name] = np.ones(shape, np.float32)
        else:
            out[name] = np.zeros(shape, np.float32)
    return out
