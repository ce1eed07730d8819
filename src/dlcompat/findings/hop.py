"""One hop, localised: a derived model against the float64 reference of its source, layer by layer, judged against
the source's measured noise floor, and the fault typed where it exceeds noise (issue 18).

`localise_hop` aligns the candidate artifact to the spec (`findings.align`), has the runtime that runs its format
hand back the aligned tensors (`Runner.intermediates`), judges each against the reference and the floor
(`findings.localise`) and, beyond noise, types the fault at the first divergent layer (`findings.diagnose`). The
graph formats are ONNX, LiteRT and ExecuTorch (`.pte`: its kernel calls and the nodes of its XNNPACK partitions,
`findings.pte_graph`; tensors from a tapped copy of the deployed program); TF.js graph models (`model.json`, in
headless Chromium) and onnx2tf's SavedModel (its traced function, in the onnx2tf environment) are aligned from their
TensorFlow graphs (`findings.tfjs_graph`), their fault typed from their weights read back in the canonical layout.
A runtime that cannot expose its intermediate tensors (`Unavailable`) is compared at its output only
(`Runner.infer`) against the logits' floor, and each layer says why it was not compared. The output is always
compared too (`HopResult.logits`), so a hop whose layers are within noise but whose output is not says so.

`localise_files` is the same for two model files and an images `.npz` (`dlcompat localize`): the reference file's
spec and canonical weights (`findings.model_files`), the floor measured with PyTorch on those weights
(`measure_floor`), and the candidate localised against them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.errors import ModelFileError
from dlcompat.findings.affine_weights import AFFINE_BITS
from dlcompat.findings.align import Alignment, LayerAlignment, Normalise, align_graph, execution_order
from dlcompat.findings.diagnose import diagnose
from dlcompat.findings.graph import Graph
from dlcompat.findings.images import check_shape, load_images
from dlcompat.findings.localise import (
    EXCEEDS,
    WITHIN,
    LayerError,
    Localisation,
    floor_unit,
    localise,
    precision_floor,
    read_tensors,
)
from dlcompat.findings.model_files import (
    ALIGNED_FORMATS,
    GRAPH_FORMATS,
    accounts_for,
    file_format,
    input_layout,
    read_graph,
    read_reference,
    unaccounted,
)
from dlcompat.findings.tfjs_graph import graph_def_graph, graph_parameters, tfjs_parameters
from dlcompat.frameworks.base import Unavailable
from dlcompat.metrics.noise import (
    INT8_FLOOR_STEPS,
    LOGITS,
    NoiseFloor,
    float16_floor,
    int8_judgement,
    measure_noise_floor,
    quantisation_steps,
    tensor_error,
)
from dlcompat.zoo.reference import forward
from dlcompat.zoo.spec import ModelSpec

#: the framework whose float32 re-executions make the floor of `localise_files`
FLOOR_FRAMEWORK = "pytorch"


@dataclass
class HopResult:
    """A candidate's localisation against its reference: the verdict, where, why, and each layer's figures."""

    candidate: str
    format: str
    model: str
    input_layout: str
    localisation: Localisation
    logits: dict[str, Any]  # the output against the reference's logits and the logits' floor
    floor: NoiseFloor
    fault_type: str | None = None
    evidence: list[str] = field(default_factory=list)
    diagnosis: dict[str, Any] = field(default_factory=dict)  # parameter / hyper-parameter diffs (graph formats)
    reference: str = ""
    images: int = 0
    seconds: float = 0.0

    @property
    def output_judged(self) -> bool:
        """Whether the localisation judged the spec's output layer itself, in the artifact's own units (a float16
        artifact against the float16 floor, an integer one in quantisation steps): then its verdict is the
        output's, and the float32 logits' comparison (`logits`) is kept beside it only."""
        last = self.localisation.layers[-1] if self.localisation.layers else None
        return last is not None and last.name != LOGITS and last.exceeds is not None

    @property
    def first_divergent_layer(self) -> str | None:
        first = self.localisation.first_divergent_layer
        if first is not None or self.output_judged or not self.logits.get("exceeds"):
            return first
        return LOGITS

    @property
    def output_ratio(self) -> float:
        """The output's error over its floor, in the units it was judged in."""
        last = self.localisation.layers[-1]
        return float(last.ratio) if self.output_judged and last.ratio is not None else float(self.logits["ratio"])

    @property
    def verdict(self) -> str:
        return EXCEEDS if self.first_divergent_layer is not None else WITHIN

    def layers(self) -> list[dict[str, Any]]:
        keys = ("name", "reference_tensor", "candidate_tensor", "max_abs", "rel_l2", "floor", "exceeds", "rmse",
                "ratio", "unit", "reason")
        return [{key: _json_number(getattr(e, key)) for key in keys} for e in self.localisation.layers]

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `dlcompat localize --json` (non-finite numbers as the strings "inf" / "nan")."""
        return {"verdict": self.verdict, "first_divergent_layer": self.first_divergent_layer,
                "fault_type": self.fault_type, "evidence": list(self.evidence), "layers": self.layers(),
                "logits": _json_number(self.logits),
                "floor": {"statement": floor_statement(self.floor), "k": self.floor.k, "metric": "rmse",
                          "method": self.floor.method},
                "reference": self.reference, "candidate": self.candidate, "format": self.format,
                "model": self.model, "input_layout": self.input_layout, "images": self.images,
                "precision": self.localisation.precision, "output_ratio": _json_number(self.output_ratio),
                "diagnosis": _json_number(self.diagnosis), "seconds": round(self.seconds, 3)}


def _json_number(value: Any) -> Any:
    """`value` with every non-finite float (nested in dicts, lists and tuples) as "inf", "-inf" or "nan"."""
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_number(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def floor_statement(floor: NoiseFloor) -> str:
    """How the floor was measured, in one line: "PyTorch 2.x fp32 re-executions, batch 32/1, threads 1/2, oneDNN
    off; k = 2.5"."""
    method = floor.method
    runs = list(method.get("executions", []))
    parts = [f"batch {method.get('images', '?')}/1" if "batch1" in runs else f"batch {method.get('images', '?')}"]
    threads = sorted({1, *(int(r.split("=")[1]) for r in runs if r.startswith("threads="))})
    parts.append(f"threads {'/'.join(map(str, threads))}")
    if "mkldnn-off" in runs:
        parts.append("oneDNN off")
    name = {"pytorch": "PyTorch", "tensorflow": "TensorFlow"}.get(method.get("framework", ""), method.get("framework"))
    return (f"{name} {method.get('framework_version', '')} fp32 re-executions against the fp64 reference, "
            f"{', '.join(parts)}; k = {floor.k:g}")


def measure_floor(spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray,
                  reference: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None) -> NoiseFloor:
    """The floor of the spec with `weights` on `x`: PyTorch float32 re-executions (batch N and 1, 1 and 2 threads,
    oneDNN on and off) against the float64 reference (`metrics.noise.measure_noise_floor`)."""
    from dlcompat.frameworks.registry import make_adapter

    adapter = make_adapter(FLOOR_FRAMEWORK, threads=1)
    model = adapter.build(spec, seed=0)
    adapter.set_weights(model, dict(weights))
    return measure_noise_floor(adapter, model, spec, weights, x, reference=reference)


def make_runner(path: Path, fmt: str, spec: ModelSpec, layout: str, threads: int = 1,
                framework: str = FLOOR_FRAMEWORK) -> Any:
    """The runner of this environment that runs `fmt` files: a framework's own file by its adapter, canonical
    weights in `framework`, a deployment format by the server / mobile runtime that accepts it."""
    from dlcompat.frameworks.registry import framework_names
    from dlcompat.runtimes.base import RUNTIMES, runner_class

    if fmt in framework_names() or fmt == "weights":
        name, options = ("native", {"framework": fmt}) if fmt != "weights" else ("weights", {"framework": framework})
        return runner_class(name)(path, input_layout="NHWC", threads=threads, spec=spec, **options)
    # a browser runtime only for TF.js (no server runtime runs it); onnx2tf's SavedModel in its own environment
    entry = next((e for e in RUNTIMES if e.accepts == fmt and (e.env == "main" or fmt == "savedmodel")
                  and (e.platform != "web" or fmt == "tfjs")), None)
    if entry is None:
        raise ModelFileError(f"{path}: no runtime of this environment runs {fmt} files")
    return runner_class(entry.name)(path, input_layout=layout, threads=threads)


def hop_alignment(path: Path, fmt: str, spec: ModelSpec, runner: Any) -> Alignment | str:
    """The candidate's alignment to `spec`, or why it has none; a graph that does not compute the spec's conv /
    dense layers is a mismatched architecture (`ModelFileError`)."""
    if fmt in ALIGNED_FORMATS:
        graph = read_graph(path, fmt, spec.input_shape)
        return _accounted(align_graph(graph, spec, str(path)), spec, graph, path)
    if fmt == "savedmodel" and hasattr(runner, "graph_nodes"):  # onnx2tf's traced function, read by its runner
        try:
            graph = graph_def_graph(*runner.graph_nodes(), fmt="savedmodel")
        except Unavailable as exc:
            return str(exc)
        return _accounted(align_graph(graph, spec, str(path)), spec, graph, path)
    if runner.name in ("native", "weights"):
        try:
            tapped = set(runner.tensor_names())
        except Unavailable as exc:
            return str(exc)
        layers = [LayerAlignment(layer.name, layer.name, Normalise("NCHW"), runner.name, (layer.name,))
                  if layer.name in tapped else LayerAlignment(layer.name, reason=f"{runner.name}: the adapter does "
                                                              "not tap this layer")
                  for layer in execution_order(spec.layers)]
        return Alignment(str(path), fmt, layers)
    return f"{runner.name}: {runner.no_intermediates}"


def _accounted(alignment: Alignment, spec: ModelSpec, graph: Graph, path: Path) -> Alignment:
    """`alignment`, where the graph computes the spec's conv / dense layers; else `ModelFileError`."""
    if not accounts_for(alignment, spec, graph, every_layer=False):
        why = next(iter(unaccounted(alignment)), "")
        raise ModelFileError(f"mismatched architectures: {path} does not compute the reference's {spec.name} "
                             f"layers ({why or 'another number of convolution / dense operators'})")
    return alignment


def localise_hop(spec: ModelSpec, weights: Mapping[str, np.ndarray], x_nhwc: np.ndarray, candidate_path: Path,
                 fmt: str, floor: NoiseFloor, *, input_layout: str, threads: int = 1,
                 reference: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None,
                 framework: str = FLOOR_FRAMEWORK, output_first: bool = False, strict: bool = True) -> HopResult:
    """The hop from the spec with `weights` (its fp64 `reference`, computed when not given) to the artifact at
    `candidate_path` of format `fmt`, on images `x_nhwc` (float32 NHWC in [0, 1]).

    With `output_first`, the layers are compared only when the output exceeds its floor (a study's cheap path);
    without `strict`, a graph that does not align to the spec is compared at its output, with the reason, instead
    of raising `ModelFileError` (mismatched architectures)."""
    start = time.perf_counter()
    x = np.ascontiguousarray(x_nhwc, dtype=np.float32)
    ref_logits, ref_layers = reference if reference is not None else forward(spec, weights, x)
    path = Path(candidate_path)
    with make_runner(path, fmt, spec, input_layout, threads, framework) as runner:
        logits = np.asarray(runner.infer(x), dtype=np.float64)
        if logits.shape != ref_logits.shape:
            raise ModelFileError(f"mismatched architectures: {path} outputs {logits.shape[1:]} per image, the "
                                 f"reference's {spec.name} {ref_logits.shape[1:]}")
        output = _output(logits, ref_logits, _output_floor(path, fmt, spec, weights, x, floor, runner,
                                                           (ref_logits, ref_layers)))
        if output_first and not output["exceeds"]:
            alignment, tensors = "", (f"the output is within noise ({output['ratio']:.3g}x its floor): layers not "
                                      "compared")
        else:
            alignment, tensors = _tensors(runner, path, fmt, spec, x, strict)
        candidate_weights = _candidate_weights(runner, path, fmt, spec, alignment)
    if isinstance(alignment, Alignment) and not isinstance(tensors, str):
        localisation = localise(spec, weights, x, tensors, alignment, floor, (ref_logits, ref_layers))
    else:
        localisation = _output_only(spec, path, fmt, floor, output, str(tensors))
        localisation.precision = _precision(path, fmt, spec)
    result = HopResult(str(path), fmt, spec.name, input_layout, localisation, output, floor, images=len(x))
    if isinstance(alignment, Alignment) and not isinstance(tensors, str):
        _diagnose(result, spec, weights, path, alignment, tensors, ref_layers, candidate_weights)
    elif result.verdict == EXCEEDS:
        result.evidence.append(f"the output exceeds noise ({output['ratio']:.3g}x its floor, {output['unit']}); "
                               f"{tensors}: not localised to a layer")
    result.seconds = time.perf_counter() - start
    return result


def _tensors(runner: Any, path: Path, fmt: str, spec: ModelSpec, x: np.ndarray,
             strict: bool) -> tuple[Alignment | str, Mapping[str, np.ndarray] | str]:
    """(the alignment, the aligned tensors as the runtime hands them back), or the reason in place of either."""
    try:
        alignment = hop_alignment(path, fmt, spec, runner)
    except ModelFileError as exc:
        if strict:
            raise
        return str(exc), str(exc)
    if not isinstance(alignment, Alignment):
        return alignment, alignment
    try:
        return alignment, read_tensors(runner, alignment, x)
    except (Unavailable, KeyError) as exc:  # the runtime cannot hand back these tensors: said, not guessed
        return alignment, str(exc).strip("'\"")


def _native_weights(runner: Any) -> dict[str, np.ndarray] | None:
    if runner.name not in ("native", "weights"):
        return None
    return {k: np.asarray(v) for k, v in runner.adapter.get_weights(runner.model).items()}


def _candidate_weights(runner: Any, path: Path, fmt: str, spec: ModelSpec,
                       alignment: Alignment | str) -> dict[str, np.ndarray] | None:
    """The candidate's canonical weights where the diagnosis reads them here: a framework's own, a TF.js archive's
    or onnx2tf's traced function's convolution / dense parameters in the canonical layout (`graph_parameters`)."""
    if runner.name in ("native", "weights"):
        return _native_weights(runner)
    if not isinstance(alignment, Alignment):
        return None
    if fmt == "tfjs":
        return tfjs_parameters(path, read_graph(path, "tfjs", spec.input_shape), alignment, spec)
    if fmt == "savedmodel" and hasattr(runner, "graph_nodes"):
        topology, values, source, outputs = runner.graph_nodes()
        return graph_parameters(values, graph_def_graph(topology, values, source, outputs, "savedmodel"), alignment,
                                spec)
    return None


#: the largest relative difference (to the layer's max |w|) of a weight stored at a precision, rounding only
_WEIGHT_TOLERANCE = {"float32": 1e-5, "float16": 1e-3, "uint8": 1.01 / 255, "uint16": 1.01 / 65535}


def _precision(path: Path, fmt: str, spec: ModelSpec) -> str:
    """How the artifact stores its numbers (`findings.graph.Graph.precision`); float32 for a file not read as a
    graph, or one that cannot be."""
    if fmt not in ALIGNED_FORMATS:
        return "float32"
    try:
        return read_graph(path, fmt, spec.input_shape).precision
    except ModelFileError:
        return "float32"


def _output_floor(path: Path, fmt: str, spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray,
                  floor: NoiseFloor, runner: Any, reference: tuple[np.ndarray, Mapping[str, np.ndarray]]
                  ) -> NoiseFloor | float:
    """What the output is judged against, in the artifact's units (as `localise` judges its layers): the float16
    floor for float16 storage; for integer logits, their quantisation scale (judged in steps against the int8
    floor); else the float32 floor."""
    precision = read_graph(path, fmt, spec.input_shape).precision if fmt in ALIGNED_FORMATS else "float32"
    quantised = getattr(runner, "output_quantization", None)
    if precision == "int8" and quantised is not None:
        return float(quantised.scale)
    if precision == "int8-dynamic" or precision in AFFINE_BITS:  # weights rounded as the file stores them
        alignment = align_graph(read_graph(path, fmt, spec.input_shape), spec, str(path))
        return precision_floor(floor, spec, weights, x, reference, alignment)
    return float16_floor(floor, spec, weights, x, reference) if precision == "float16" else floor


def _output(logits: np.ndarray, ref_logits: np.ndarray, floor: NoiseFloor | float) -> dict[str, Any]:
    """The output's error against the reference logits, judged against the logits' floor (a float: the integer
    logits' quantisation scale, judged in steps); top-1 flips beside."""
    err = tensor_error(logits, ref_logits)
    flips = int(np.sum(np.argmax(logits, axis=1) != np.argmax(ref_logits, axis=1)))
    out: dict[str, Any] = {"max_abs": err.max_abs, "rel_l2": err.rel_l2, "rmse": err.rmse, "top1_flips": flips,
                           "images": len(logits)}
    if isinstance(floor, NoiseFloor):
        unit = floor_unit(floor)
        return {**out, "floor": floor.floor(LOGITS), "ratio": floor.ratio(LOGITS, err),
                "exceeds": floor.exceeds(LOGITS, err), "unit": unit}
    ratio, exceeds = int8_judgement(quantisation_steps(logits, ref_logits, floor))
    return {**out, "floor": INT8_FLOOR_STEPS, "ratio": ratio, "exceeds": exceeds, "unit": "quantisation steps"}


def _output_only(spec: ModelSpec, path: Path, fmt: str, floor: NoiseFloor, output: dict[str, Any],
                 why: str) -> Localisation:
    """Each layer with the reason it was not compared, then the output (`logits`), compared against its floor."""
    order = execution_order(spec.layers)
    out = Localisation(str(path), fmt, k=floor.k)
    for layer in order:
        out.layers.append(LayerError(layer.name, layer.name, None, why if why.endswith("compared") else
                                     f"{why}: not compared"))
    out.layers.append(LayerError(LOGITS, order[-1].name, "the runtime's output (Runner.infer)",
                                 "compared at the output only, against the logits' floor", output["max_abs"],
                                 output["rel_l2"], output["rmse"], output["floor"], output["ratio"],
                                 output["exceeds"], output["unit"]))
    return out


def _diagnose(result: HopResult, spec: ModelSpec, weights: Mapping[str, np.ndarray], path: Path,
              alignment: Alignment, tensors: Mapping[str, np.ndarray], ref_layers: Mapping[str, np.ndarray],
              candidate_weights: Mapping[str, np.ndarray] | None) -> None:
    first = result.localisation.first_divergent_layer
    if first is None:
        if result.logits["exceeds"] and not result.output_judged:
            result.evidence.append(f"every aligned layer is within noise, the output is not (rmse "
                                   f"{result.logits['ratio']:.3g}x its floor): after the last aligned layer")
        return
    if result.format in GRAPH_FORMATS:
        found = diagnose(spec, weights, path, alignment, result.localisation, tensors, ref_layers)
        result.fault_type, result.evidence = found.fault_type, list(found.evidence)
        result.diagnosis = {"parameter_diffs": found.parameter_diffs,
                            "hyper_parameter_diffs": found.hyper_parameter_diffs}
        return
    members = alignment[first].group or (first,)  # a fused group's weighted layer
    diffs = {name: float(np.max(np.abs(np.asarray(candidate_weights[name], np.float64) - value)) /
                   (float(np.max(np.abs(value))) or 1.0))
             for name, value in weights.items() if candidate_weights
             and any(name.startswith(f"{member}.") for member in members)
             and np.shape(candidate_weights.get(name)) == np.shape(value)}
    result.diagnosis = {"parameter_diffs": {first: diffs}}
    tolerance = _WEIGHT_TOLERANCE.get(alignment.precision, 1e-5)
    if any(d > tolerance for d in diffs.values()):
        result.fault_type = "weights"
        result.evidence.append(f"{first}: its canonical weights differ from the reference's: {diffs}")
    else:
        result.fault_type = "operator semantics"
        result.evidence.append(f"{first}: the same canonical weights ({diffs or 'none'}), yet its output exceeds "
                               f"noise (ratio {result.localisation[first].ratio:.3g})")


def localise_files(reference: Path, candidate: Path, images: Path, *, layout: str | None = None,
                   candidate_layout: str | None = None, threads: int = 1) -> HopResult:
    """`dlcompat localize`: the candidate file against the reference file on the images of an `.npz`.
    `layout` is the candidate's input layout where its file does not say (`candidate_layout` beats it)."""
    pictures = load_images(images)
    ref = read_reference(Path(reference), pictures.shape, None)
    check_shape(pictures, ref.spec.input_shape, str(reference))
    fmt = file_format(Path(candidate))
    cand_layout = candidate_layout or input_layout(Path(candidate), fmt, pictures.shape, layout)
    ref_outputs = forward(ref.spec, ref.weights, pictures.x)
    floor = measure_floor(ref.spec, ref.weights, pictures.x, ref_outputs)
    result = localise_hop(ref.spec, ref.weights, pictures.x, Path(candidate), fmt, floor,
                          input_layout=cand_layout, threads=threads, reference=ref_outputs)
    result.reference = str(reference)
    return result


def describe_hop(result: HopResult, layers: bool = False) -> list[str]:
    """The human summary of `dlcompat localize`: verdict, where, the fault and its evidence; with `layers`, one
    line per layer (error / floor, or why it was not compared)."""
    first = result.first_divergent_layer
    out = [f"{result.candidate} ({result.format}) against {result.reference or 'the reference'} ({result.model}, "
           f"{result.images} images): {result.verdict}"]
    out.append(f"first divergent layer: {first or 'none'}"
               + (f"; fault type: {result.fault_type or 'not typed'}" if first else ""))
    out += [f"evidence: {line}" for line in result.evidence]
    o = result.logits
    out.append(f"output: max |Δlogit| {o['max_abs']:.3g}, rmse {o['rmse']:.3g}: {o['ratio']:.3g}x its floor "
               f"({o['unit']}), {o['top1_flips']} of {o['images']} top-1 labels changed")
    out.append(f"floor: {floor_statement(result.floor)}")
    if layers:
        out.append(f"{'layer':<14} {'tensor':<28} {'max_abs':>10} {'rel_l2':>10} {'err/floor':>11}  verdict")
        for e in result.localisation.layers:
            if e.exceeds is None or e.max_abs is None:
                out.append(f"{e.name:<14} {str(e.candidate_tensor or '-')[:28]:<28} {e.reason}")
                continue
            unit = "" if e.unit == "rmse" else f" ({e.unit})"
            out.append(f"{e.name:<14} {str(e.candidate_tensor)[:28]:<28} {e.max_abs:>10.3g} {e.rel_l2:>10.3g} "
                       f"{e.ratio:>11.3g}  {EXCEEDS if e.exceeds else WITHIN}{unit}")
    return out
