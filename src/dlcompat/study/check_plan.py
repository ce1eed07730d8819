"""The planner of a `dlcompat check`: a user's model file where a study trains, the user's images where it loads a
dataset, and from there the same deployment jobs a study plans (`plan.plan_deployments`).

The source model is evaluated in the runtime of its own format (a `.keras` or PyTorch file natively in its
framework, an `.onnx` in ONNX Runtime, a `.tflite` in LiteRT); every other runtime the converter graph reaches from
that format gets its converter chain (every variant), an evaluation on the images and a comparison against the
source; a runtime with no chain is an `unavailable` cell that says which hop has no tool. The `check_floor` job
measures the source's own noise floor, which every comparison's verdict is made against (`jobs/check_floor.py`).
"""

from __future__ import annotations

from typing import Any

from dlcompat.frameworks.registry import framework_entry
from dlcompat.runtimes.base import runtime_entry
from dlcompat.study.config import CheckSource, StudyConfig
from dlcompat.study.dag import Job, Plan
from dlcompat.study.plan import _cell, plan_deployments

#: the runtime that runs a model of each format as it is: the check's reference for everything derived from it
SOURCE_RUNTIMES = {"onnx": "onnxruntime", "tflite": "litert", "tensorflow": "native", "pytorch": "native"}
#: the images a check's floor is measured on (the first of the evaluated ones)
FLOOR_IMAGES = 32


def images_params(check: CheckSource, calibration_images: int) -> dict[str, Any]:
    """What the `images` job reads: the files by content hash (so a changed file is a new job), the model's input,
    and how many images go to calibration rather than evaluation."""
    return {"images": check.images, "sha256": check.images_sha256, "labels": check.labels, "resize": check.resize,
            "limit": check.limit, "scale": check.scale, "input_shape": list(check.input_shape),
            "num_classes": check.num_classes, "model": check.model_name, "format": check.format,
            "calibration_images": calibration_images}


def source_cell(check: CheckSource, dataset: str) -> dict[str, Any]:
    return _cell(dataset, check.model_name, check.format, 0, check.format)


def build_check_plan(config: StudyConfig) -> Plan:
    check = config.check
    if check is None:
        raise ValueError("build_check_plan needs a config with a check")
    plan = Plan(config)
    limits = {"timeout_s": config.timeout_s}
    dataset = "images"
    data = plan.add(Job("images", "main", images_params(check, config.calibration_images), {},
                        f"read images {check.images}", runtime=limits))
    native = source_cell(check, dataset)
    model = plan.add(Job("import", "main", {"cell": native, "path": check.model, "sha256": check.model_sha256,
                                            "kind": check.kind, "input_layout": check.input_layout,
                                            "input_shape": list(check.input_shape)},
                         {}, f"import {check.model}", runtime=limits))
    runtime = SOURCE_RUNTIMES[check.format]
    # a framework's file runs in its framework's environment; a deployment format in its runtime's
    env = framework_entry(check.format).env if runtime == "native" else runtime_entry(runtime).env
    params = {"cell": native, "runtime": runtime, "latency": config.latency.model_dump(), "threads": config.threads}
    source = plan.add(Job("evaluate", env, params, {"data": data, "model": model},
                          f"evaluate {check.model_name} in {runtime} (the source)", runtime=limits))
    floor = plan.add(Job("check_floor", env, {"cell": native, "runtime": runtime, "images": FLOOR_IMAGES},
                 {"data": data, "model": model}, f"noise floor of {check.model_name} in {runtime}", runtime=limits))
    plan_deployments(plan, native, data, model, source, limits, skip=runtime, localise=False, floor=floor)
    return plan
