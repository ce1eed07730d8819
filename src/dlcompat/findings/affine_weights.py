"""The floor of a hop that stores every weight affinely quantised to 8 or 16 bits and computes in float32 (TF.js's
``uint8`` / ``uint16`` weight quantisation, `findings.tfjs_graph.WEIGHT_QUANTISED`): the float32 floor widened by
the float64 reference re-executed on the *source's* weights rounded the way the converter rounds them (per tensor:
scale = (max - min) / (2^bits - 1), the minimum nudged so that 0 is on the grid, as tensorflowjs's
`quantization.quantize_weights` does). The artifact's own weights are never used for it: a weight the converter
got wrong stays beyond this floor.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dlcompat.metrics.noise import LOGITS, NoiseFloor, errors_against, largest_errors
from dlcompat.zoo.reference import forward
from dlcompat.zoo.spec import ModelSpec

#: precision -> bits of the affine grid
AFFINE_BITS = {"uint8": 8, "uint16": 16}


def affine_rounded(value: np.ndarray, bits: int) -> np.ndarray:
    """`value` (float64) rounded to a per-tensor affine grid of 2^bits levels over its range, 0 on the grid."""
    a = np.asarray(value, np.float64)
    low, high = min(float(a.min()), 0.0), max(float(a.max()), 0.0)
    if high == low:
        return a
    levels = 2**bits - 1
    scale = (high - low) / levels
    zero = round(-low / scale)
    nudged = -zero * scale
    return np.round((np.clip(a, nudged, nudged + levels * scale) - nudged) / scale) * scale + nudged


def affine_floor(base: NoiseFloor, spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray,
                 precision: str, reference: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None) -> NoiseFloor:
    """`base` widened by the float64 reference on every weight rounded to the `precision`'s affine grid."""
    if reference is None:
        reference = forward(spec, weights, x)
    bits = AFFINE_BITS[precision]
    layers = set(base.floors) - {LOGITS}
    rounded = {name: affine_rounded(v, bits) for name, v in weights.items()}
    logits, acts = forward(spec, rounded, x)
    executions = dict(base.executions)
    executions[f"weights-{precision}"] = errors_against(reference, logits,
                                                        {k: v for k, v in acts.items() if k in layers})
    method = dict(base.method, executions=list(executions), affine_weights=(
        f"float32 executions and the float64 reference re-executed on every weight rounded to a per-tensor {bits}-bit "
        "affine grid, as the converter stores them"))
    return NoiseFloor(floors=largest_errors(executions), method=method, executions=executions, k=base.k)
