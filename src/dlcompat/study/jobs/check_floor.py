"""Job `check_floor`: the noise floor of a check's source model, against which every derived model is judged.

The reference is the file executed in float64 where its framework can (`frameworks.floor_runs`: a `.keras` or
PyTorch file), as a zoo model's is its spec in float64. The floor of its logits is then the largest error, against
that reference, of honest float32 executions of the file in its own runtime: the evaluated idiom (all `images`
images in one call), the same images one at a time, a new session with two threads, and the runtime's or framework's
other kernels where it has the switch (`KERNEL_SWITCHES`, `frameworks.floor_runs.OTHER_KERNELS`). An `.onnx` or
`.tflite` file has no float64 execution here: its reference is its own batched float32 execution and the floor the
largest error of the other executions against it, which the floor's method says. A float16 route is judged against
the float16 floor: the error of the same model with its weights rounded to float16 (float64 execution; for ONNX, its
initializers rounded, in ONNX Runtime), or the float32 floor if larger. The floor and the reference logits are JSON
/ `.npy` artifacts the compare jobs read (`jobs/compare.py`); the job records a row per floor (`source_noise_floor`,
`source_noise_floor_float16`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from dlcompat.frameworks.floor_runs import OTHER_KERNELS, float64_logits, onnx_weights_rounded, other_kernels_logits
from dlcompat.metrics.noise import K_NOISE, LOGITS, NoiseFloor, TensorError, tensor_error
from dlcompat.runtimes.base import runner_class, to_layout
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of, model_inputs, spec_of

#: runtimes whose optimised kernels can be switched off (`kernels="reference"`): ONNX Runtime without graph
#: optimisations, LiteRT without its XNNPACK delegate
KERNEL_SWITCHES = {"onnxruntime": "graph optimisations off (ORT_DISABLE_ALL)",
                   "litert": "builtin kernels, no XNNPACK delegate"}
#: the floor a float16 route is judged against
FLOAT16 = "logits@float16"


def _logits(ctx: JobContext, x: np.ndarray, threads: int, one_at_a_time: bool = False,
            kernels: str = "") -> np.ndarray:
    model = ctx.inputs["model"]
    runner = runner_class(ctx.params["runtime"])(ctx.artifacts.path(model["artifact"]),
                                                 input_layout=model.get("input_layout", "NHWC"), threads=threads,
                                                 framework=ctx.cell["framework"], spec=spec_of(ctx), variant="",
                                                 kernels=kernels)
    with runner:
        if one_at_a_time:
            return np.concatenate([runner.infer(x[i:i + 1]) for i in range(len(x))])
        return runner.infer(x)


def _float32_executions(ctx: JobContext, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    runtime = ctx.params["runtime"]
    logits = {"batchN": _logits(ctx, x, ctx.threads), "batch1": _logits(ctx, x, ctx.threads, one_at_a_time=True),
              "threads=2": _logits(ctx, x, 2)}
    described = {"batchN": f"the evaluated idiom: {len(x)} images in one call, {ctx.threads} thread(s)",
                 "batch1": "the same images one at a time", "threads=2": "a new session with 2 threads"}
    if runtime in KERNEL_SWITCHES:
        logits["other-kernels"] = _logits(ctx, x, ctx.threads, kernels="reference")
        described["other-kernels"] = KERNEL_SWITCHES[runtime]
    model = ctx.inputs["model"]
    kind = str(model.get("kind", ""))
    if kind in OTHER_KERNELS:
        logits["other-kernels"] = other_kernels_logits(ctx.artifacts.path(model["artifact"]), kind, x,  # type: ignore[assignment]
                                                       str(model.get("input_layout", "NHWC")))
        described["other-kernels"] = OTHER_KERNELS[kind]
    return logits, described


def _worst(errors: list[TensorError]) -> TensorError:
    return TensorError(**{m: max(e.get(m) for e in errors) for m in ("max_abs", "rel_l2", "rmse")},
                       ref_rms=errors[0].ref_rms, n=errors[0].n)


def _float16_logits(ctx: JobContext, x: np.ndarray, kind: str, layout: str, has64: bool) -> np.ndarray | None:
    path = ctx.artifacts.path(ctx.inputs["model"]["artifact"])
    if has64:
        return float64_logits(path, kind, x, layout, rounded_to="float16")
    if ctx.params["runtime"] == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(onnx_weights_rounded(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {session.get_inputs()[0].name: to_layout(x, layout)})[0])
    return None


def run(ctx: JobContext) -> None:
    model = ctx.inputs["model"]
    kind, layout = str(model.get("kind", "")), str(model.get("input_layout", "NHWC"))
    x = model_inputs(ctx, dataset_of(ctx).test.x[: int(ctx.params["images"])])
    executions, described = _float32_executions(ctx, x)
    reference = float64_logits(ctx.artifacts.path(model["artifact"]), kind, x, layout)
    if reference is not None:
        said = f"the file executed in float64 ({kind}: frameworks.floor_runs)"
    else:
        reference = executions.pop("batchN")
        said = (f"the source's own float32 logits ({described.pop('batchN')}): a {kind} file has no float64 "
                "execution here")
    errors = {name: {LOGITS: tensor_error(logits, reference)} for name, logits in executions.items()}
    floors = {LOGITS: _worst([e[LOGITS] for e in errors.values()])}
    float16 = _float16_logits(ctx, x, kind, layout, said.startswith("the file"))
    if float16 is not None:
        errors["weights-fp16"] = {FLOAT16: tensor_error(float16, reference)}
        floors[FLOAT16] = _worst([floors[LOGITS], errors["weights-fp16"][FLOAT16]])
    method: dict[str, Any] = {"reference": said, "executions": described, "images": len(x), "k": K_NOISE,
                              "metric": "rmse of the logits",
                              "float16": "weights rounded to float16" if float16 is not None else "not measured"}
    floor = NoiseFloor(floors=floors, method=method, executions=errors)
    with ctx.artifacts.writing(".json") as tmp:
        tmp.write_text(json.dumps(floor.to_dict(), default=str))
        path = ctx.artifacts.put_file(tmp, ".json")
    ref_path = ctx.artifacts.put_array(np.asarray(reference, dtype=np.float64))
    ctx.outputs.update(floor=path, reference=ref_path, images=len(x))
    for name, metric in ((LOGITS, "source_noise_floor"), (FLOAT16, "source_noise_floor_float16")):
        if name in floors:
            ctx.measure(metric, floor.floor(name), "", artifact=path,
                        method={**method, "floor": name, "statistic": "largest rmse over the executions"})
