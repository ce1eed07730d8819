"""Job `compare`: a target's predictions against its source's, from their stored logits (NumPy only).

Every figure can be recomputed outside dlcompat: the rows' `artifact` is the target's logits and
`method.source_logits` the source's, both `.npy` files in the artifact store.
"""

from __future__ import annotations

import json
import re

import numpy as np

from dlcompat.metrics.accuracy import top1_accuracy
from dlcompat.metrics.inconsistency import compare_logits
from dlcompat.metrics.noise import LOGITS, NoiseFloor, tensor_error
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.check_floor import FLOAT16
from dlcompat.study.jobs.common import dataset_of, labelled


def run(ctx: JobContext) -> None:
    source_path = ctx.inputs["source"]["logits"]
    target_path = ctx.inputs["target"]["logits"]
    source = ctx.artifacts.get_array(source_path)
    target = ctx.artifacts.get_array(target_path)
    result = compare_logits(source, target)
    method = {"source_logits": source_path, "target_logits": target_path, "images": result.n,
              "flip": "argmax differs", "top5": "equal sets of the 5 largest logits",
              "tolerances": "smallest atol (rtol=0) and rtol (atol=0) for np.allclose(target, source)"}

    def measure(metric: str, value: float, unit: str = "") -> None:
        ctx.measure(metric, value, unit, artifact=target_path, method=method)

    measure("label_flips", result.label_flips, "count")
    measure("label_flip_rate", result.label_flip_rate, "fraction")
    measure("top5_agreement", result.top5_agreement, "fraction")
    measure("max_abs_logit_diff", result.max_abs_logit_diff)
    measure("mean_abs_logit_diff", result.mean_abs_logit_diff)
    measure("p99_abs_logit_diff", result.p99_abs_logit_diff)
    measure("min_atol", result.min_atol)
    measure("min_rtol", result.min_rtol)
    if "data" in ctx.inputs and labelled(ctx):
        labels = dataset_of(ctx).test.y
        source_acc, target_acc = top1_accuracy(source, labels), top1_accuracy(target, labels)
        measure("source_accuracy", source_acc, "fraction")
        measure("accuracy_change", target_acc - source_acc, "fraction")
    if "floor" in ctx.inputs:
        _judge(ctx, target, target_path)
    ctx.outputs.update(result.to_dict())


#: the last converter's variant of a route (`keras.onnx (tf2onnx) → onnx2tf.tflite (fp16) · wasm` -> `fp16`)
_LAST_VARIANT = re.compile(r"\(([^()]*)\)[^()]*$")
#: variants that store weights in float16, and those that quantise
FLOAT16_VARIANTS = ("fp16", "float16")
QUANTISED_VARIANTS = ("int8", "int8-dynamic", "int8-full", "int8-weights", "uint8", "uint16")


def route_precision(route: str) -> str:
    """`float32`, `float16` or `quantised`: what the last converter of a route stores its weights in."""
    found = _LAST_VARIANT.search(route.split(" · ")[0])
    variant = found.group(1) if found else ""
    return "float16" if variant in FLOAT16_VARIANTS else "quantised" if variant in QUANTISED_VARIANTS else "float32"


def _judge(ctx: JobContext, target: np.ndarray, target_path: str) -> None:
    """A check's verdict: the target's logits on the floor's images against the source's reference logits, in
    multiples of the source's measured floor (`jobs/check_floor.py`) for the route's precision: row
    `output_noise_ratio`, its method naming the floor, k and the verdict. A quantised route has no floor here (a
    model dlcompat did not build is not aligned layer by layer, where int8 is judged in quantisation steps): its
    ratio to the float32 floor is recorded, its verdict is "quantised: not judged"."""
    made = ctx.inputs["floor"]
    floor = NoiseFloor.from_dict(json.loads(ctx.artifacts.path(made["floor"]).read_text()))
    reference = ctx.artifacts.get_array(made["reference"])
    error = tensor_error(target[: len(reference)], reference)
    precision = route_precision(ctx.cell.get("variant", ""))
    layer = FLOAT16 if precision == "float16" and FLOAT16 in floor.floors else LOGITS
    ratio = floor.ratio(layer, error)
    if precision == "quantised":
        verdict = "quantised: not judged"
    else:
        verdict = "exceeds noise" if floor.exceeds(layer, error) else "within noise"
    ctx.measure("output_noise_ratio", ratio, "x floor", artifact=target_path,
                method={"verdict": verdict, "k": floor.k, "floor": layer, "floor_rmse": floor.floor(layer),
                        "rmse": error.rmse, "images": len(reference), "precision": precision,
                        "reference": floor.method["reference"], "floor_artifact": made["floor"],
                        "first_divergent_layer": LOGITS if verdict == "exceeds noise" else None,
                        "evidence": [f"logits rmse {error.rmse:.3g} against the reference, whose honest "
                                     f"re-executions differ by up to {floor.floor(layer):.3g} ({layer}); judged at "
                                     "the output only (a model dlcompat did not build is not aligned layer by layer)"]})
    ctx.outputs["verdict"] = verdict
