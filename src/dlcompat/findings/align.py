"""Per-layer alignment: each canonical layer of a spec, mapped to the artifact tensor that holds it (or why none does).

Alignment is structural, never by values: it follows the data edges of the artifact's graph (`findings.graph`) from
its input, matching the spec's layers in execution order (`zoo.reference.forward`'s order: a residual block's body,
its shortcut, then the block) by operator kind and per-image output shape after layout normalisation (and kernel
size for convolutions). A bias added by its own Add after a MatMul / Conv is part of that layer (the Add's output
is aligned). When one operator computes a fused group (conv + batch norm + ReLU: LiteRT's fused activations, batch
norm folded into the convolution by an exporter), its tensor is aligned to the group's *last* canonical layer and
the others get a reason. A layer several operators could compute gets a reason, never a guess. A layer no operator
computes, where the tensor before it already has the layer's shape (an activation, a dropout), is aligned to that
tensor as *passed on unchanged* (`LayerAlignment.passthrough`): the artifact computes the identity there, and its
tensor is judged against the layer's reference as such (a dropout is within noise, a dropped ReLU is not).
An activation a converter's optimiser moved after the max pool that follows it (TensorFlow's grappler, in TF.js
graph models) computes the same function: the pool is aligned to the activation's output and the activation says
it was swapped. Elementwise scalings by a constant (kind ``scale``: an input normalisation, a stray Mul) are walked
through like neutral operators; the diagnosis reads them back from the graph.

`Normalise` brings an artifact tensor to the canonical layout: NHWC -> NCHW, a flatten of an NHWC tensor (HWC order)
-> channel-major (CHW) order, integers dequantised with the tensor's scale and zero point.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.findings.graph import Graph, GraphNode, read_onnx, read_tflite
from dlcompat.zoo.spec import (
    Activation,
    AvgPool,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
    ModelSpec,
    Residual,
)


@dataclass(frozen=True)
class Normalise:
    """How an artifact tensor becomes the canonical layer's (N, C, H, W) or (N, features) array."""

    layout: str  # NCHW | NHWC | features
    flatten_order: str = ""  # for a flatten's features: CHW (canonical) or HWC (of an NHWC tensor)
    source_shape: tuple[int, ...] = ()  # canonical (C, H, W) of the flattened tensor
    quantisation: dict[str, Any] | None = None  # scale / zero point of an integer tensor

    def apply(self, array: np.ndarray) -> np.ndarray:
        a = np.asarray(array)
        if self.quantisation and np.issubdtype(a.dtype, np.integer):
            scale = np.asarray(self.quantisation["scale"], dtype=np.float64)
            zero = np.asarray(self.quantisation["zero_point"], dtype=np.float64)
            a = (a.astype(np.float64) - zero) * scale  # per-channel parameters are on the last (NHWC) axis
        if self.layout == "NHWC" and a.ndim == 4:
            a = a.transpose(0, 3, 1, 2)
        if self.flatten_order == "HWC":
            c, h, w = self.source_shape
            a = a.reshape(len(a), h, w, c).transpose(0, 3, 1, 2).reshape(len(a), -1)
        return a


@dataclass(frozen=True)
class LayerAlignment:
    """One canonical layer: the artifact tensor holding it and its normalisation, or the reason there is none."""

    layer: str
    tensor: str | None = None
    normalise: Normalise | None = None
    op: str = ""  # the operator that computes the tensor
    group: tuple[str, ...] = ()  # the canonical layers that operator computes (fused), ending with `layer`
    reason: str = ""
    passthrough: bool = False  # no operator computes the layer: `tensor` is what the artifact carries on unchanged

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Alignment:
    artifact: str
    format: str
    layers: list[LayerAlignment] = field(default_factory=list)  # in the spec's execution order
    precision: str = "float32"  # how the artifact stores its numbers (`findings.graph.Graph.precision`)
    #: {conv / dense layer: {"scale", "axis"}} of the weights the artifact stores as integers (int8-dynamic)
    weight_quantisation: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, layer: str) -> LayerAlignment:
        return next(entry for entry in self.layers if entry.layer == layer)

    def tensors(self) -> dict[str, str]:
        """{canonical layer: artifact tensor} for the aligned layers."""
        return {e.layer: e.tensor for e in self.layers if e.tensor is not None}

    def unaligned(self) -> dict[str, str]:
        return {e.layer: e.reason for e in self.layers if e.tensor is None}

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "format": self.format, "precision": self.precision,
                "weight_quantisation": self.weight_quantisation, "layers": [e.to_dict() for e in self.layers]}


def execution_order(layers: tuple[Layer, ...]) -> list[Layer]:
    """The spec's layers in the reference's execution order (a residual's body, shortcut, then itself)."""
    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Residual):
            out += execution_order(layer.body) + execution_order(layer.shortcut)
        out.append(layer)
    return out


def align_onnx(path: Path, spec: ModelSpec) -> Alignment:
    return align_graph(read_onnx(Path(path), spec.input_shape), spec, str(path))


def align_tflite(path: Path, spec: ModelSpec) -> Alignment:
    return align_graph(read_tflite(Path(path)), spec, str(path))


def align_pte(path: Path, spec: ModelSpec) -> Alignment:
    from dlcompat.findings.pte_graph import read_pte

    return align_graph(read_pte(Path(path)), spec, str(path))


def align_file(path: Path, spec: ModelSpec) -> Alignment:
    """By the file's suffix: .onnx, .tflite or .pte; other formats raise ValueError (no reader yet)."""
    suffix = Path(path).suffix
    readers = {".onnx": align_onnx, ".tflite": align_tflite, ".pte": align_pte}
    if suffix not in readers:
        raise ValueError(f"no per-layer alignment for {suffix or 'suffix-less'} files yet (ONNX, .tflite and .pte "
                         "only)")
    return readers[suffix](path, spec)


def align_graph(graph: Graph, spec: ModelSpec, artifact: str = "") -> Alignment:
    walker = _Walker(graph, spec)
    walker.sequence(spec.layers, graph.input)
    if graph.precision == "int8":
        _clipped_to_relu(walker.entries, execution_order(spec.layers))
    order = [layer.name for layer in execution_order(spec.layers)]
    return Alignment(artifact, graph.format, [walker.entries[name] for name in order], graph.precision,
                     walker.weight_quantisation)


#: the zero point of an int8 tensor whose range starts at 0 (its grid holds no negative value)
INT8_MIN = -128


def _clipped_to_relu(entries: dict[str, LayerAlignment], order: list[Layer]) -> None:
    """An integer tensor before a ReLU whose range the quantiser started at 0 (zero point -128: jax2tf's bias Add
    before its MAXIMUM) holds the ReLU's output, not the layer's: it is not judged, the ReLU's tensor is."""
    for before, after in itertools.pairwise(order):
        entry, following = entries.get(before.name), entries.get(after.name)
        q = entry.normalise.quantisation if entry is not None and entry.normalise is not None else None
        if not (isinstance(after, Activation) and after.fn == "relu" and q and entry.tensor and following
                and following.tensor and following.tensor != entry.tensor):
            continue
        if all(int(z) == INT8_MIN for z in q["zero_point"]):
            entries[before.name] = LayerAlignment(
                before.name, op=entry.op,
                reason=f"fused into {after.name!r} by the quantiser: {entry.tensor!r} has zero point {INT8_MIN} "
                       f"(no negative value), so it holds the ReLU's output, judged at {after.name!r}")


#: activations max pooling commutes with (non-decreasing functions)
_MONOTONE = ("relu", "relu6", "tanh", "sigmoid")
_KINDS = {Conv2D: "conv", Dense: "dense", MaxPool: "maxpool", AvgPool: "avgpool", GlobalAvgPool: "gap",
          Flatten: "flatten", BatchNorm: "bn", Dropout: "dropout"}


def expected_kind(layer: Layer) -> str:
    if isinstance(layer, Activation):
        return layer.fn
    return "add" if isinstance(layer, Residual) else _KINDS[type(layer)]


class _Walker:
    """Follows data edges from a tensor, one canonical layer at a time; records an entry per layer."""

    def __init__(self, graph: Graph, spec: ModelSpec) -> None:
        self.graph, self.spec = graph, spec
        self.shapes = spec.output_shapes()
        self.entries: dict[str, LayerAlignment] = {}
        self.owner: dict[str, str] = {}  # artifact tensor -> the canonical layer it is aligned to now
        self.pending_fused: dict[str, str] = {}  # tensor -> the activation its operator fused, not yet claimed
        self.weight_quantisation: dict[str, dict[str, Any]] = {}  # layer -> its integer weights' scales

    def sequence(self, layers: tuple[Layer, ...], tensor: str) -> str:
        swapped = False
        for layer, following in zip(layers, (*layers[1:], None), strict=True):
            if swapped:  # `layer` was aligned with the activation before it
                swapped = False
                continue
            after = self.swapped(layer, following, tensor)
            swapped = after is not None
            tensor = after if after is not None else self.step(layer, tensor)
        return tensor

    def swapped(self, layer: Layer, following: Layer | None, tensor: str) -> str | None:
        """An activation the converter's optimiser moved after the max pool that follows it (TensorFlow's grappler:
        f(maxpool(x)) == maxpool(f(x)) for a non-decreasing f): the pool is aligned to the activation's output, the
        activation says so. None where the graph computes the activation in its place (or fused it)."""
        if not (isinstance(layer, Activation) and layer.fn in _MONOTONE and isinstance(following, MaxPool)) \
                or self.pending_fused.get(tensor) == layer.fn \
                or any(n.kind == layer.fn for n in self._reachable(tensor)):
            return None
        pool, _ = self.next_node(tensor, "maxpool", following)
        acts = [n for n in self._reachable(pool.output) if n.kind == layer.fn] if pool is not None else []
        if pool is None or len(acts) != 1 or self.canonical_shape(acts[0]) not in (self.shapes[following.name], None):
            return None
        act = acts[0]
        self.entries[layer.name] = LayerAlignment(
            layer.name, op=act.op,
            reason=f"swapped by the converter's optimiser with {following.name!r}: {act.op} {act.output!r} computes "
                   f"{layer.fn}(maxpool(x)), the same function as maxpool({layer.fn}(x)), aligned to "
                   f"{following.name!r}")
        self.claim(following, act, (layer.name, following.name))
        return act.output

    def step(self, layer: Layer, tensor: str) -> str:
        if isinstance(layer, Residual):
            return self.residual(layer, tensor)
        if self.absorb(layer, tensor):
            return tensor
        found, why = self.next_node(tensor, expected_kind(layer), layer)
        if found is None:
            if why.startswith("not computed") and self.tensor_shape(tensor) == self.shapes[layer.name]:
                self.passthrough(layer, tensor)
                return tensor
            if isinstance(layer, Dropout):
                why = "dropout is the identity at inference: the exporter removed it, no operator computes it"
            self.entries[layer.name] = LayerAlignment(layer.name, reason=why)
            return tensor
        if found.weight_quantisation:
            self.weight_quantisation[layer.name] = found.weight_quantisation
        found = self.with_bias(found)
        self.claim(layer, found, (layer.name,))
        return found.output

    def tensor_shape(self, tensor: str) -> tuple[int, ...] | None:
        node = self.graph.producer(tensor)
        if node is not None:
            return self.canonical_shape(node)
        h, w, c = self.spec.input_shape
        return (c, h, w) if tensor == self.graph.input else None

    def passthrough(self, layer: Layer, tensor: str) -> None:
        """`layer` computed by no operator: aligned to the tensor the artifact carries on unchanged."""
        node = self.graph.producer(tensor)
        normalise = self.normalise(node) if node is not None else Normalise(self.graph.input_layout)
        owner = self.owner.get(tensor)
        if owner is not None and self.entries[owner].normalise is not None:
            normalise = self.entries[owner].normalise
        what = "dropout is the identity at inference and" if isinstance(layer, Dropout) else "no operator computes " \
            f"{expected_kind(layer)!r} here:"
        self.entries[layer.name] = LayerAlignment(
            layer.name, tensor, normalise, "", (layer.name,),
            f"{what} the artifact carries {tensor!r} on unchanged (judged as the identity)", passthrough=True)

    def with_bias(self, node: GraphNode) -> GraphNode:
        """A conv / dense operator's separate bias addition (tf2onnx's MatMul + Add, jax2tf's Add of a broadcast
        bias after a neutral reshape): the Add, where it is the only operator reading the product and adds a
        constant."""
        if node.kind not in ("conv", "dense"):
            return node
        readers = [n for n in self._reachable(node.output) if n.kind != "plumbing"]
        if len(readers) == 1 and readers[0].kind == "add" and len(readers[0].inputs) == 1 and readers[0].constants:
            return readers[0]
        return node

    def absorb(self, layer: Layer, tensor: str) -> bool:
        """A layer its predecessor's operator computed: a fused activation, or a batch norm folded into a conv."""
        owner = self.owner.get(tensor)
        if owner is None:
            return False
        node = self.graph.producer(tensor)
        fused = isinstance(layer, Activation) and self.pending_fused.get(tensor) == layer.fn
        folded = (isinstance(layer, BatchNorm) and node is not None and node.kind == "conv"
                  and not any(c.kind == "bn" for c in self._reachable(tensor)))
        if not (fused or folded) or node is None:
            return False
        if fused:
            del self.pending_fused[tensor]
        previous = self.entries[owner]
        how = "fused into" if fused else "folded by the converter into"
        self.entries[owner] = LayerAlignment(
            owner, reason=f"{how} the {node.op} operator whose output {tensor!r} is aligned to {layer.name!r}",
            op=node.op)
        self.entries[layer.name] = LayerAlignment(layer.name, tensor, previous.normalise, node.op,
                                                  (*previous.group, layer.name))
        self.owner[tensor] = layer.name
        return True

    def claim(self, layer: Layer, node: GraphNode, group: tuple[str, ...]) -> None:
        self.entries[layer.name] = LayerAlignment(layer.name, node.output, self.normalise(node), node.op, group)
        self.owner[node.output] = layer.name
        if node.fused:
            self.pending_fused[node.output] = node.fused

    def normalise(self, node: GraphNode) -> Normalise:
        if node.kind == "flatten":
            source = self.graph.producer(node.inputs[0]) if node.inputs else None
            before = source.layout if source is not None else self.graph.input_layout
            shape = source.shape if source is not None else None
            if before == "NHWC" and shape is not None:
                h, w, c = shape
                return Normalise("features", "HWC", (c, h, w), node.quantisation)
            return Normalise("features", "CHW", (), node.quantisation)
        return Normalise(node.layout or "features", quantisation=node.quantisation)

    def _reachable(self, tensor: str) -> list[GraphNode]:
        """Consumers of `tensor`, through neutral operators (their consumers in turn)."""
        out, frontier, seen = [], [tensor], set()
        while frontier:
            t = frontier.pop()
            for node in self.graph.consumers(t):
                if node.output in seen:
                    continue
                seen.add(node.output)
                if node.kind in ("neutral", "scale"):
                    frontier.append(node.output)
                else:
                    out.append(node)
        return out

    def canonical_shape(self, node: GraphNode) -> tuple[int, ...] | None:
        if node.shape is None:
            return None
        if len(node.shape) == 3 and node.layout == "NHWC":
            h, w, c = node.shape
            return (c, h, w)
        return node.shape

    def next_node(self, tensor: str, kind: str, layer: Layer) -> tuple[GraphNode | None, str]:
        consumers = self._reachable(tensor)
        matching = [n for n in consumers if n.kind == kind]
        expected = self.shapes[layer.name]
        fits = [n for n in matching if self.canonical_shape(n) in (expected, None)
                and (not isinstance(layer, Conv2D) or n.kernel in (layer.kernel, None))]
        if len(fits) == 1:
            return fits[0], ""
        seen = ", ".join(f"{n.op}{self.canonical_shape(n) or ''}" for n in consumers) or "none"
        if len(fits) > 1:
            return None, (f"ambiguous: {len(fits)} operators of kind {kind!r} with shape {expected} consume "
                          f"{tensor!r}: not aligned")
        return None, (f"not computed: no operator of kind {kind!r} with output shape {expected} consumes "
                      f"{tensor!r} (its consumers: {seen})")

    def residual(self, layer: Residual, tensor: str) -> str:
        body = self.sequence(layer.body, tensor)
        shortcut = self.sequence(layer.shortcut, tensor) if layer.shortcut else tensor
        adds = [n for n in self._reachable(body) if n.kind == "add" and n in self._reachable(shortcut)]
        if len(adds) != 1:
            self.entries[layer.name] = LayerAlignment(
                layer.name, reason=f"{'ambiguous' if adds else 'not computed'}: {len(adds)} Add operators "
                                   f"join {body!r} and {shortcut!r}: not aligned")
            return body
        add = adds[0]
        if add.fused == layer.activation:
            self.claim(layer, add, (layer.name,))
            self.pending_fused.pop(add.output, None)
            return add.output
        acts = [n for n in self._reachable(add.output) if n.kind == layer.activation]
        if len(acts) != 1:
            self.entries[layer.name] = LayerAlignment(
                layer.name, reason=f"not computed: no single {layer.activation} after the Add {add.output!r}")
            return add.output
        self.claim(layer, acts[0], (layer.name,))
        return acts[0].output
