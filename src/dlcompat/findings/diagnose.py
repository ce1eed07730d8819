"""Diagnosis of a hop beyond noise: at its first divergent layer, which fault, and the evidence that chose it.

The fault types are a small fixed set (`FAULT_TYPES`); this module decides among those the artifact's file and the
localisation can show, in this order, at the first divergent layer's operator (its fused group):

1. **operator semantics** (missing operator): no operator computes the layer (`LayerAlignment.passthrough`: the
   artifact carries the tensor before it on unchanged, e.g. a dropped ReLU);
2. when its parameters differ from the canonical ones (batch norm folded in where the converter folded it) beyond
   their storage's rounding (float32: 1e-5 of the largest weight; float16: 2^-10; integers: one quantisation
   step), the difference is explained if it can be:
   - **layout/transpose**: the weight equals an axis permutation of the canonical one (kh <-> kw, in <-> out), or,
     for a dense layer reading a flatten, the canonical one with its columns in the other flatten order
     ((C, H, W) <-> (H, W, C));
   - **hyper-parameter**: a folded batch norm's parameters equal the canonical folding with another epsilon (one
     epsilon, solved from the weights, refolds weight and bias within 10x their storage's rounding);
   - **quantisation**: float32-stored weights that are every one a float16 number within float16's rounding of the
     canonical ones (weights rounded to float16), or integer weights whose integers fit the canonical weights
     within their rounding at per-channel scales other than the stored ones (a wrong quantisation scale);
   - **weights** otherwise;
3. **hyper-parameter**: a convolution's or pool's pads, strides or window, a batch norm's epsilon, differ from the
   spec's (ONNX attributes; LiteRT's SAME / VALID padding and strides);
4. **input preprocessing**: an elementwise scaling by a constant (Mul / Div / Sub, graph kind ``scale``) lies between
   the model's input and the operator (a changed input normalisation); the same between the previous aligned
   tensor and the operator is **operator semantics** (an operator the spec does not have);
5. **quantisation**: same parameters up to their rounding, same hyper-parameters, and the parameters or the tensor
   are stored quantised (float16 / integer weights, an integer tensor judged in its quantisation steps);
6. **operator semantics**: same parameters, same hyper-parameters, float storage, a different output.

"crash" is in the set but not decided here (a crash has no tensors to localise).
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
from dlcompat.zoo.spec import AvgPool, BatchNorm, Conv2D, Flatten, MaxPool, ModelSpec

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
    graph = _read(Path(path), alignment.format, spec)
    params = _parameters(Path(path), alignment, graph)
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
    steps = localisation[entry.layer].steps if entry.tensor else None
    scalings = _scalings(graph, operator_of(node, {n.output: n for n in graph.nodes}), alignment) \
        if node is not None and not entry.passthrough else ([], False)
    out.fault_type = _decide(spec, weights, entry, node, params.get(entry.layer, {}), out,
                             steps if steps is not None else _steps(entry, node, runner_tensors, reference),
                             scalings)
    if graph.format == "pte" and not params.get(entry.layer):
        out.evidence.append(f"{entry.layer}: parameters not compared (an ExecuTorch program's portable kernels' "
                            "constants are not read back)")
    return out


def _parameters(path: Path, alignment: Alignment, graph: Graph) -> dict[str, dict[str, Constant]]:
    if graph.format == "pte":
        from dlcompat.findings.pte_parameters import pte_parameters

        return pte_parameters(path, alignment, graph.nodes)
    return layer_parameters(path, alignment, graph.nodes)


def _read(path: Path, fmt: str, spec: ModelSpec) -> Graph:
    if fmt == "pte":
        from dlcompat.findings.pte_graph import read_pte

        return read_pte(path)
    return read_onnx(path, spec.input_shape) if fmt == "onnx" else read_tflite(path)


def _decide(spec: ModelSpec, weights: Mapping[str, np.ndarray], entry: LayerAlignment, node: GraphNode | None,
            params: dict[str, Constant], out: Diagnosis, steps: float | None,
            scalings: tuple[list[GraphNode], bool]) -> str:
    layer = entry.layer
    group = ", ".join(entry.group)
    if entry.passthrough:
        out.evidence.append(f"{layer}: {entry.reason}; its output exceeds noise (ratio {_ratio(out, layer)})")
        return "operator semantics"
    expected = expected_parameters(spec, weights, entry)
    diffs = out.parameter_diffs.get(layer, {})
    beyond = {name: d for name, d in diffs.items() if d > _tolerance(params[name], expected.get(name))}
    if beyond:
        return _parameter_fault(spec, weights, entry, node, params, expected, beyond, out)
    if layer in out.hyper_parameter_diffs:
        out.evidence.append(f"{group}: hyper-parameters differ (artifact, spec): {out.hyper_parameter_diffs[layer]}")
        return "hyper-parameter"
    ops, from_input = scalings
    if ops:
        where = "the model's input" if from_input else "the previous layer's tensor"
        out.evidence.append(f"{group}: same parameters and hyper-parameters as the spec, but elementwise scalings by "
                            f"constants ({', '.join(f'{n.op}({n.constants})' for n in ops)}) lie between {where} "
                            f"and its operator")
        return "input preprocessing" if from_input else "operator semantics"
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


def _parameter_fault(spec: ModelSpec, weights: Mapping[str, np.ndarray], entry: LayerAlignment,
                     node: GraphNode | None, params: dict[str, Constant], expected: dict[str, np.ndarray],
                     beyond: dict[str, float], out: Diagnosis) -> str:
    """The type of a parameter difference beyond storage rounding: which explanation fits (module docstring)."""
    group, op = ", ".join(entry.group), node.op if node else ""
    if "weight" in beyond:
        tol = max(1e-3, _tolerance(params["weight"], expected["weight"]))
        perm = _permutation(params["weight"].value, expected["weight"], tol, _flatten_shapes(spec))
        if perm is not None:
            out.evidence.append(f"{op} of {group}: its weight is the canonical weight with {perm} (relative max diff "
                                f"{beyond['weight']:.3g} as stored)")
            return "layout/transpose"
    eps = folded_epsilon(spec, weights, entry, params)
    if eps is not None:
        spec_eps = next(layer.eps for layer in spec.iter_layers() if layer.name in entry.group
                        and isinstance(layer, BatchNorm))
        out.hyper_parameter_diffs.setdefault(entry.layer, {})["epsilon (folded)"] = (eps, spec_eps)
        out.evidence.append(f"{op} of {group}: its folded weight and bias are the canonical folding with a batch norm "
                            f"epsilon of {eps:.3g}, not the spec's {spec_eps:g}")
        return "hyper-parameter"
    weight = params.get("weight")
    if weight is not None and _float16_rounded(weight, expected.get("weight")):
        out.evidence.append(f"{op} of {group}: its weights, stored as {weight.stored}, are every one a float16 number "
                            f"within float16's rounding of the canonical ones (relative max diff "
                            f"{beyond.get('weight', 0.0):.3g}): weights rounded to float16")
        return "quantisation"
    fitted = _scale_fit(weight, expected.get("weight")) if weight is not None else None
    if fitted is not None:
        out.evidence.append(f"{op} of {group}: its stored integers fit the canonical weights within their rounding "
                            f"at scales {fitted[0]:.3g}x..{fitted[1]:.3g}x the stored ones: a wrong quantisation "
                            f"scale")
        return "quantisation"
    out.evidence.append(f"{group}: parameters differ from the canonical ones beyond their storage's rounding: {beyond}")
    return "weights"


def folded_epsilon(spec: ModelSpec, weights: Mapping[str, np.ndarray], entry: LayerAlignment,
                   params: Mapping[str, Constant]) -> float | None:
    """The batch-norm epsilon that, folded with the canonical parameters, gives the group's stored weight and bias
    (within 10x their storage's rounding), where it differs from the spec's; None where no single one does."""
    layers = {layer.name: layer for layer in spec.iter_layers()}
    bn = next((layers[n] for n in entry.group if isinstance(layers[n], BatchNorm)), None)
    conv = next((layers[n] for n in entry.group if isinstance(layers[n], Conv2D)), None)
    if bn is None or conv is None or "weight" not in params:
        return None
    got = params["weight"].value
    w = np.asarray(weights[f"{conv.name}.weight"], np.float64)
    if got.shape != w.shape:
        return None
    gamma, var = (np.asarray(weights[f"{bn.name}.{k}"], np.float64) for k in ("gamma", "var"))
    flat_got, flat_w = got.reshape(len(w), -1), w.reshape(len(w), -1)
    factor = (flat_got * flat_w).sum(1) / np.maximum((flat_w * flat_w).sum(1), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimates = (gamma / factor) ** 2 - var
    estimates = estimates[np.isfinite(estimates)]
    if estimates.size == 0:
        return None
    eps = float(np.median(estimates))
    if eps <= 0 or abs(eps - bn.eps) <= 1e-3 * bn.eps:
        return None
    refolded = expected_parameters(spec, weights, entry, eps={bn.name: eps})
    diffs = _relative_diffs(params, refolded)
    limit = {name: 10 * max(_tolerance(params[name], refolded.get(name)), 1e-6) for name in diffs}
    return eps if diffs and all(d <= limit[name] for name, d in diffs.items()) else None


def _float16_rounded(constant: Constant, want: np.ndarray | None) -> bool:
    """Float32-stored values that are each exactly a float16 number, within float16's rounding of `want`."""
    if constant.stored not in ("float32", "float64") or want is None or constant.value.shape != want.shape:
        return False
    value = constant.value
    if not np.array_equal(value.astype(np.float16).astype(np.float64), value):
        return False
    return float(np.abs(value - want).max()) <= ROUNDING["float16"] * (float(np.abs(want).max()) or 1.0)


def _scale_fit(constant: Constant, want: np.ndarray | None) -> tuple[float, float] | None:
    """For integer weights: (smallest, largest) ratio of per-channel least-squares scales to the stored ones, where
    the integers fit `want` within 0.75 of a step at the fitted scales but some stored scale is off by over 1 %."""
    q = constant.quantisation
    if not q or want is None or constant.value.shape != want.shape or constant.stored in ROUNDING:
        return None
    scale = np.asarray(q["scale"], np.float64)
    zero = np.asarray(q["zero_point"], np.float64)
    shape = (-1,) + (1,) * (want.ndim - 1) if scale.size > 1 else ()
    ints = np.rint(constant.value / scale.reshape(shape) + zero.reshape(shape)) - zero.reshape(shape)
    flat_q, flat_w = ints.reshape(len(ints), -1), want.reshape(len(want), -1)
    if scale.size == 1:
        flat_q, flat_w = flat_q.reshape(1, -1), flat_w.reshape(1, -1)
    fitted = (flat_q * flat_w).sum(1) / np.maximum((flat_q * flat_q).sum(1), 1e-300)
    residual = np.abs(flat_q * fitted[:, None] - flat_w).max(1)
    ratio = fitted / scale.reshape(-1)
    if np.all(residual <= 0.75 * np.abs(fitted) + 1e-12) and np.any(np.abs(ratio - 1) > 0.01):
        return float(ratio.min()), float(ratio.max())
    return None


def _flatten_shapes(spec: ModelSpec) -> list[tuple[int, int, int]]:
    """(C, H, W) of each flatten's input in the spec (a dense layer after it may hold its columns in that order)."""
    shapes = spec.output_shapes()
    out = []
    for before, layer in itertools.pairwise(spec.layers):
        if isinstance(layer, Flatten) and len(shapes.get(before.name, ())) == 3:
            out.append(tuple(shapes[before.name]))
    return out


def _scalings(graph: Graph, node: GraphNode, alignment: Alignment) -> tuple[list[GraphNode], bool]:
    """The ``scale`` operators on the path into `node` back to the model's input or the previous aligned tensor,
    and whether that path starts at the model's input."""
    aligned = set(alignment.tensors().values())
    found: list[GraphNode] = []
    tensor = node.inputs[0] if node.inputs else None
    while tensor is not None and tensor != graph.input and tensor not in aligned:
        producer = graph.producer(tensor)
        if producer is None or producer.kind not in ("neutral", "scale"):
            break
        if producer.kind == "scale":
            found.append(producer)
        tensor = producer.inputs[0] if producer.inputs else None
    return found[::-1], tensor == graph.input


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


def _permutation(got: np.ndarray, want: np.ndarray, tol: float = 1e-3,
                 flatten_shapes: list[tuple[int, int, int]] | None = None) -> str | None:
    """The axis permutation of `want` that `got` equals (or, for a 2-D weight, the flatten order its columns are in),
    if one does, within `tol` of the largest |want|."""
    limit = tol * (float(np.abs(want).max()) or 1.0)
    candidates = [(f"axes permuted {perm}", want.transpose(perm)) for perm in itertools.permutations(range(want.ndim))
                  if perm != tuple(range(want.ndim))]
    for c, h, w in flatten_shapes or []:
        if want.ndim == 2 and want.shape[1] == c * h * w:
            units = len(want)
            candidates.append((f"columns in (H, W, C) flatten order, not (C, H, W) ({c}, {h}, {w})",
                               want.reshape(units, c, h, w).transpose(0, 2, 3, 1).reshape(units, -1)))
            candidates.append((f"columns in the (C, H, W) flatten order of a (H, W, C) = ({h}, {w}, {c}) tensor",
                               want.reshape(units, h, w, c).transpose(0, 3, 1, 2).reshape(units, -1)))
    for what, candidate in candidates:
        if candidate.shape == got.shape and np.abs(candidate - got).max() <= limit:
            return what
    return None


def hyper_parameter_diffs(spec: ModelSpec, entry: LayerAlignment, node: GraphNode, graph: Graph) -> dict[str, Any]:
    """{name: (artifact's, spec's)} of the group's conv / pool / batch norm operator, where they differ."""
    layers = {layer.name: layer for layer in spec.iter_layers()}
    main = next((layers[n] for n in entry.group if isinstance(layers[n], (Conv2D, MaxPool, AvgPool, BatchNorm))),
                None)
    if main is None:
        return {}
    want = _wanted(main, spec, graph.format, node)
    defaults = _ONNX_DEFAULTS if graph.format in ("onnx", "pte") else {}
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
    if fmt in ("onnx", "pte"):  # an ExecuTorch program's attributes are read with ONNX's names
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
