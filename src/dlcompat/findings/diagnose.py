"""Diagnosis of a hop beyond noise: at its first divergent layer, which fault, and the evidence that chose it.

The fault types are a small fixed set (`FAULT_TYPES`); this module decides among those the artifact's file and the
localisation can show, in this order, at the first divergent layer's operator (its fused group):

1. **layout/transpose**: its weight differs from the canonical one but equals an axis permutation of it (kh <-> kw,
   in <-> out);
2. **weights**: its parameters differ from the canonical ones (batch norm folded in where the converter folded it)
   beyond their storage's rounding (float32: 1e-5 of the largest weight; float16: 2^-10; integers: one
   quantisation step);
3. **hyper-parameter**: a convolution's or pool's pads, strides or window, a batch norm's epsilon, differ from the
   spec's (ONNX attributes; LiteRT's SAME / VALID padding and strides);
4. **quantisation**: same parameters up to their rounding, same hyper-parameters, and the parameters or the tensor
   are stored quantised (float16 / integer weights, an integer tensor judged in its quantisation steps);
5. **operator semantics**: same parameters, same hyper-parameters, float storage, a different output.

"input preprocessing" and "crash" are in the set but not decided here (a crash has no tensors to localise; telling
input preprocessing from operator semantics at the first layer needs the runtime's input, not the file).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.findings.align import Alignment, LayerAlignment
from dlcompat.findings.graph import Graph, GraphNode, read_onnx, read_tflite
from dlcompat.findings.localise import Localisation
from dlcompat.findings.parameters import Constant, expected_parameters, layer_parameters, operator_of
from dlcompat.metrics.noise import quantisation_steps
from dlcompat.zoo.spec import AvgPool, BatchNorm, Conv2D, MaxPool, ModelSpec

FAULT_TYPES = ("weights", "layout/transpose", "hyper-parameter", "quantisation", "operator semantics",
               "input preprocessing", "crash")
#: largest relative difference (to the largest |weight|) a stored weight may have from the canonical one
#: ONNX's values of absent convolution / pool attributes
_ONNX_DEFAULTS = {"pads": [0, 0, 0, 0], "strides": [1, 1], "epsilon": 1e-5}
ROUNDING = {"float32": 1e-5, "float64": 1e-12, "float16": 2.0**-10}


@dataclass
class Diagnosis:
    first_divergent_layer: str | None
    fault_type: str | None
    evidence: list[str] = field(default_factory=list)
    profile: list[tuple[str, float | None]] = field(default_factory=list)  # (layer, error / floor) in graph order
    parameter_diffs: dict[str, dict[str, float]] = field(default_factory=dict)  # layer -> param -> rel. max diff
    hyper_parameter_diffs: dict[str, dict[str, Any]] = field(default_factory=dict)  # layer -> name -> (got, spec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(spec: ModelSpec, weights: Mapping[str, np.ndarray], path: Path, alignment: Alignment,
             localisation: Localisation, runner_tensors: Mapping[str, np.ndarray] | None = None,
             reference: Mapping[str, np.ndarray] | None = None) -> Diagnosis:
    """The fault at `localisation`'s first divergent layer. `runner_tensors` and `reference` (the fp64 layer outputs)
    let an integer tensor be judged in its quantisation steps."""
    graph = read_onnx(Path(path), spec.input_shape) if alignment.format == "onnx" else read_tflite(Path(path))
    params = layer_parameters(Path(path), alignment, graph.nodes)
    out = Diagnosis(localisation.first_divergent_layer, None,
                    profile=[(e.name, e.ratio) for e in localisation.layers])
    for entry in alignment.layers:
        if params.get(entry.layer):
            out.parameter_diffs[entry.layer] = _relative_diffs(params[entry.layer],
                                                               expected_parameters(spec, weights, entry))
        node = graph.producer(entry.tensor) if entry.tensor else None
        if node is not None:
            node = operator_of(node, {n.output: n for n in graph.nodes})
            hyper = hyper_parameter_diffs(spec, entry, node, graph)
            if hyper:
                out.hyper_parameter_diffs[entry.layer] = hyper
    if out.first_divergent_layer is None:
        out.evidence.append("every aligned layer is within noise: no fault to type")
        return out
    entry = alignment[out.first_divergent_layer]
    node = graph.producer(entry.tensor) if entry.tensor else None
    out.fault_type = _decide(spec, weights, entry, node, params.get(entry.layer, {}), out,
                             _steps(entry, node, runner_tensors, reference))
    return out


def _decide(spec: ModelSpec, weights: Mapping[str, np.ndarray], entry: LayerAlignment, node: GraphNode | None,
            params: dict[str, Constant], out: Diagnosis, steps: float | None) -> str:
    layer = entry.layer
    group = ", ".join(entry.group)
    expected = expected_parameters(spec, weights, entry)
    diffs = out.parameter_diffs.get(layer, {})
    beyond = {name: d for name, d in diffs.items() if d > _tolerance(params[name], expected.get(name))}
    if beyond:
        perm = _permutation(params["weight"].value, expected["weight"]) if "weight" in beyond else None
        if perm is not None:
            out.evidence.append(f"{node.op if node else ''} of {group}: its weight is the canonical weight with "
                                f"axes permuted {perm} (relative max diff {beyond['weight']:.3g} as stored)")
            return "layout/transpose"
        out.evidence.append(f"{group}: parameters differ from the canonical ones beyond their "
                            f"storage's rounding: {beyond}")
        return "weights"
    if layer in out.hyper_parameter_diffs:
        out.evidence.append(f"{group}: hyper-parameters differ (artifact, spec): {out.hyper_parameter_diffs[layer]}")
        return "hyper-parameter"
    stored = {p.stored for p in params.values()}
    if steps is not None or stored - {"float32", "float64"}:
        what = f"its tensor's rmse is {steps:.3g} quantisation steps" if steps is not None else \
            f"its parameters are stored as {sorted(stored)}"
        out.evidence.append(f"{group}: parameters equal up to their storage's rounding ({diffs}), hyper-parameters "
                            f"equal; {what}")
        return "quantisation"
    out.evidence.append(f"{group}: same parameters ({diffs or 'none'}) and hyper-parameters as the spec in float "
                        f"storage, yet the output exceeds noise (ratio {_ratio(out, layer)})")
    return "operator semantics"


def _tolerance(constant: Constant, expected: np.ndarray | None) -> float:
    """The relative difference a stored parameter may have: its float type's rounding, or one quantisation step
    (the largest scale, relative to the largest |expected| value) for an integer one."""
    if constant.stored in ROUNDING:
        return ROUNDING[constant.stored]
    if constant.quantisation and expected is not None:
        return max(constant.quantisation["scale"]) / (float(np.abs(expected).max()) or 1.0)
    return 0.0


def _ratio(out: Diagnosis, layer: str) -> str:
    value = dict(out.profile).get(layer)
    return "unknown" if value is None else f"{value:.3g}"


def _relative_diffs(got: Mapping[str, Constant], expected: Mapping[str, np.ndarray]) -> dict[str, float]:
    """{param: max |got - expected| / max |expected|} (inf where the shapes differ)."""
    out = {}
    for name, constant in got.items():
        if name not in expected:
            continue
        want = expected[name]
        if constant.value.shape != want.shape:
            out[name] = float("inf")
            continue
        scale = float(np.abs(want).max()) or 1.0
        out[name] = float(np.abs(constant.value - want).max()) / scale
    return out


def _permutation(got: np.ndarray, want: np.ndarray) -> tuple[int, ...] | None:
    """The axis permutation of `want` that `got` equals, if one does."""
    tol = 1e-3 * (float(np.abs(want).max()) or 1.0)
    for perm in itertools.permutations(range(want.ndim)):
        if perm != tuple(range(want.ndim)) and want.transpose(perm).shape == got.shape \
                and np.abs(want.transpose(perm) - got).max() <= tol:
            return perm
    return None


def hyper_parameter_diffs(spec: ModelSpec, entry: LayerAlignment, node: GraphNode, graph: Graph) -> dict[str, Any]:
    """{name: (artifact's, spec's)} of the group's conv / pool / batch norm operator, where they differ."""
    layers = {layer.name: layer for layer in spec.iter_layers()}
    main = next((layers[n] for n in entry.group if isinstance(layers[n], (Conv2D, MaxPool, AvgPool, BatchNorm))),
                None)
    if main is None:
        return {}
    want = _wanted(main, spec, graph.format, node)
    defaults = _ONNX_DEFAULTS if graph.format == "onnx" else {}
    got = {k: node.attributes.get(k, defaults.get(k)) for k in want}
    return {k: (got[k], v) for k, v in want.items() if _differs(got[k], v)}


def _wanted(layer: Any, spec: ModelSpec, fmt: str, node: GraphNode) -> dict[str, Any]:
    if isinstance(layer, BatchNorm):
        return {"epsilon": layer.eps} if fmt == "onnx" else {}
    size = layer.kernel if isinstance(layer, Conv2D) else layer.size
    stride = layer.stride if isinstance(layer, Conv2D) else (layer.stride or layer.size)
    pad = layer.padding if isinstance(layer, Conv2D) else 0
    want: dict[str, Any] = {"strides": [stride, stride]}
    if not isinstance(layer, Conv2D):
        want["kernel_shape"] = [size, size]
    if fmt == "onnx":
        want["pads"] = [pad] * 4
        if isinstance(layer, Conv2D):
            want["kernel_shape"] = [size, size]
    elif isinstance(layer, Conv2D) and node.kind == "conv":
        same = stride == 1 and 2 * pad == size - 1
        want["padding"] = "VALID" if pad == 0 else ("SAME" if same else "explicit (a PAD operator)")
    else:
        want["padding"] = "VALID"
    return want


def _differs(got: Any, want: Any) -> bool:
    if got is None:
        return False  # the operator's default (ONNX: zero pads, unit strides) or an attribute it lacks
    if isinstance(want, float):
        return abs(float(got) - want) > 1e-12
    return list(got) != list(want) if isinstance(want, list) else got != want


def _steps(entry: LayerAlignment, node: GraphNode | None, tensors: Mapping[str, np.ndarray] | None,
           reference: Mapping[str, np.ndarray] | None) -> float | None:
    """The first divergent tensor's rmse in its quantisation steps, where it is stored quantised."""
    if node is None or node.quantisation is None or not tensors or reference is None or entry.tensor not in tensors:
        return None
    value = entry.normalise.apply(tensors[entry.tensor]) if entry.normalise else tensors[entry.tensor]
    scale = np.asarray(node.quantisation["scale"], dtype=np.float64)
    if scale.size > 1:
        scale = scale.reshape((1, -1) + (1,) * (value.ndim - 2))
    return quantisation_steps(value, reference[entry.layer], scale)
