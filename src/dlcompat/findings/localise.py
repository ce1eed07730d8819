"""Localisation: per canonical layer, the aligned artifact tensor's error against the float64 reference, judged
against the source model's noise floor; the first layer beyond noise is where the derived model starts to differ.

`localise(spec, weights, x, runner_tensors, alignment, floor)` takes the artifact's tensors as a runtime read them
(`Runner.intermediates(x, list(alignment.tensors().values()))`, see `read_tensors`), normalises each with its
alignment (`align.Normalise`) and compares it with the reference output of the canonical layer it is aligned to
(a fused group's tensor with the group's last layer). A layer without a tensor keeps its alignment's reason and is
not judged. Errors: `metrics.noise.tensor_error`; the judgement: `NoiseFloor.exceeds` (rmse, k x the floor).

A quantised hop is judged in its own units (`metrics.noise`): an artifact that stores float16 weights
(`Alignment.precision == "float16"`) against the float16 floor (`float16_floor`: the float32 floor widened by the
float64 reference re-executed on float16-rounded weights), a dynamic-range int8 artifact (``int8-dynamic``)
against the int8-dynamic floor (`int8_dynamic_floor`), an artifact storing its weights on an affine 8 / 16-bit grid
(TF.js's ``uint8`` / ``uint16``) against the affine-weights floor (`findings.affine_weights`), an integer tensor of a
full-integer artifact in its quantisation steps (rmse / its scale) against the int8 floor (`int8_judgement`);
`LayerError.unit` says which (``rmse``, ``rmse (float16 floor)``, ``rmse (int8-dynamic floor)``,
``rmse (uint8-weights floor)``, ``quantisation steps``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dlcompat.findings.affine_weights import AFFINE_BITS, affine_floor
from dlcompat.findings.align import Alignment
from dlcompat.metrics.noise import (
    NoiseFloor,
    float16_floor,
    int8_dynamic_floor,
    int8_judgement,
    quantisation_steps,
    tensor_error,
)
from dlcompat.zoo.reference import forward
from dlcompat.zoo.spec import ModelSpec

EXCEEDS = "exceeds noise"
WITHIN = "within noise"


@dataclass(frozen=True)
class LayerError:
    """One canonical layer's comparison (errors are None where no tensor was aligned or no floor measured)."""

    name: str
    reference_tensor: str  # the canonical layer whose reference output is compared
    candidate_tensor: str | None  # the artifact's tensor, or None (then `reason` says why)
    reason: str = ""
    max_abs: float | None = None
    rel_l2: float | None = None
    rmse: float | None = None
    floor: float | None = None  # the layer's floor (rmse)
    ratio: float | None = None  # rmse / floor (an integer tensor: its steps / the int8 floor's)
    exceeds: bool | None = None
    unit: str = "rmse"  # what `floor` and `ratio` are in: rmse, rmse (float16 floor), quantisation steps
    steps: float | None = None  # an integer tensor's rmse in its quantisation steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Localisation:
    artifact: str
    format: str
    layers: list[LayerError] = field(default_factory=list)  # graph (execution) order
    k: float = 0.0
    metric: str = "rmse"
    precision: str = "float32"  # the artifact's storage (`Alignment.precision`): which floor judged it

    @property
    def first_divergent_layer(self) -> str | None:
        return next((e.name for e in self.layers if e.exceeds), None)

    @property
    def verdict(self) -> str:
        return EXCEEDS if self.first_divergent_layer is not None else WITHIN

    def __getitem__(self, name: str) -> LayerError:
        return next(e for e in self.layers if e.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "format": self.format, "k": self.k, "metric": self.metric,
                "precision": self.precision,
                "verdict": self.verdict, "first_divergent_layer": self.first_divergent_layer,
                "layers": [e.to_dict() for e in self.layers]}


def read_tensors(runner: Any, alignment: Alignment, x: np.ndarray) -> dict[str, np.ndarray]:
    """The aligned tensors, read by an active runner (`Runner.intermediates`) on images `x` (NHWC)."""
    names = list(dict.fromkeys(alignment.tensors().values()))
    return runner.intermediates(x, names) if names else {}


def localise(spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray,
             runner_tensors: Mapping[str, np.ndarray], alignment: Alignment, floor: NoiseFloor,
             reference: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None) -> Localisation:
    """Each aligned layer's error against `zoo.reference.forward(spec, weights, x)` (or `reference`, given), judged
    in the units of the artifact's precision (see the module's docstring)."""
    reference = reference if reference is not None else forward(spec, weights, x)
    ref_layers = reference[1]
    precision = getattr(alignment, "precision", "float32")
    floor = precision_floor(floor, spec, weights, x, reference, alignment)
    out = Localisation(alignment.artifact, alignment.format, k=floor.k, precision=precision)
    for entry in alignment.layers:
        if entry.tensor is None:
            out.layers.append(LayerError(entry.layer, entry.layer, None, entry.reason))
            continue
        if entry.tensor not in runner_tensors:
            out.layers.append(LayerError(entry.layer, entry.layer, entry.tensor,
                                         "the runtime did not hand this tensor back"))
            continue
        value = entry.normalise.apply(runner_tensors[entry.tensor]) if entry.normalise else runner_tensors[entry.tensor]
        quantisation = entry.normalise.quantisation if entry.normalise and precision == "int8" else None
        judged = _judge(entry.layer, entry.tensor, value, ref_layers[entry.layer], floor, quantisation)
        out.layers.append(_with_reason(judged, entry.reason) if entry.passthrough else judged)
    return out


def precision_floor(floor: NoiseFloor, spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray,
                    reference: tuple[np.ndarray, Mapping[str, np.ndarray]], alignment: Alignment) -> NoiseFloor:
    """The floor an artifact of the alignment's precision is judged against: the float16 floor for float16 storage,
    the int8-dynamic floor (weights rounded as the file stores them, inputs quantised per image) for dynamic-range
    int8, else `floor` (full-integer tensors are judged in their quantisation steps instead)."""
    precision = getattr(alignment, "precision", "float32")
    if precision == "float16":
        return float16_floor(floor, spec, weights, x, reference)
    if precision == "int8-dynamic":
        return int8_dynamic_floor(floor, spec, weights, x, alignment.weight_quantisation, reference)
    if precision in AFFINE_BITS:
        return affine_floor(floor, spec, weights, x, precision, reference)
    return floor


def floor_unit(floor: NoiseFloor) -> str:
    """What a judgement against `floor` is in: rmse, against the float32 floor or a widened one."""
    executions = floor.executions
    affine = next((p for p in AFFINE_BITS if f"weights-{p}" in executions), None)
    return ("rmse (float16 floor)" if "weights-fp16" in executions else
            "rmse (int8-dynamic floor)" if "weights-int8" in executions else
            f"rmse ({affine}-weights floor)" if affine else "rmse")


def _with_reason(error: LayerError, reason: str) -> LayerError:
    return LayerError(**{**asdict(error), "reason": reason})


def _judge(layer: str, tensor: str, value: np.ndarray, reference: np.ndarray, floor: NoiseFloor,
           quantisation: Mapping[str, Any] | None = None) -> LayerError:
    if np.shape(value) != np.shape(reference):
        return LayerError(layer, layer, tensor, f"shape {np.shape(value)} after normalisation, the reference's "
                                                f"{np.shape(reference)}: not compared", exceeds=True)
    err = tensor_error(value, reference)
    if quantisation:
        scale = np.asarray(quantisation["scale"], dtype=np.float64)
        if scale.size > 1 and np.ndim(value) > 1:
            scale = scale.reshape((1, -1) + (1,) * (np.ndim(value) - 2))
        steps = quantisation_steps(value, reference, scale)
        ratio, exceeds = int8_judgement(steps, floor.k)
        return LayerError(layer, layer, tensor, "", err.max_abs, err.rel_l2, err.rmse, err.rmse / ratio if ratio
                          else None, ratio if math.isfinite(ratio) else math.inf, exceeds, "quantisation steps",
                          steps)
    if layer not in floor.floors:
        return LayerError(layer, layer, tensor, "no noise floor measured for this layer: not judged",
                          err.max_abs, err.rel_l2, err.rmse)
    ratio = floor.ratio(layer, err)
    unit = floor_unit(floor)
    return LayerError(layer, layer, tensor, "", err.max_abs, err.rel_l2, err.rmse, floor.floor(layer),
                      ratio if math.isfinite(ratio) else math.inf, floor.exceeds(layer, err), unit)
