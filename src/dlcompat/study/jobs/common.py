"""Helpers the job modules share: reading the dataset artifact, building the cell's spec, and the runner of the
job's model (loaded the same way by `evaluate` and `transfer`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcompat.data.batching import to_float
from dlcompat.data.registry import Dataset, load_npz
from dlcompat.data.scaling import scale_images
from dlcompat.runtimes.base import Runner, runner_class
from dlcompat.study.jobs.base import JobContext
from dlcompat.zoo.registry import build_spec
from dlcompat.zoo.spec import ModelSpec, imported_spec


def dataset_of(ctx: JobContext) -> Dataset:
    return load_npz(ctx.artifacts.path(ctx.inputs["data"]["data"]))


def spec_of(ctx: JobContext) -> ModelSpec:
    """The cell's zoo spec for the dataset's shape; for a check (whose images job names the `imported` model), the
    spec of the user's file, which holds only its input and output (`zoo.spec.imported_spec`)."""
    data: dict[str, Any] = ctx.inputs["data"]
    if data.get("imported"):
        return imported_spec(ctx.cell["model"], tuple(data["input_shape"]), int(data["num_classes"]))
    return build_spec(ctx.cell["model"], tuple(data["input_shape"]), int(data["num_classes"]))


def model_inputs(ctx: JobContext, x: np.ndarray) -> np.ndarray:
    """uint8 NHWC images as the job's model takes them: float32 in [0, 1], then a check's `--scale`
    (`data.scaling`); a study's own models take [0, 1]."""
    return scale_images(to_float(x), str(ctx.inputs["data"].get("input_scale", "0-1")))


def labelled(ctx: JobContext) -> bool:
    """Whether the dataset's test images have labels (a check's images may not: they carry -1)."""
    return bool(ctx.inputs["data"].get("labelled", True))


def model_runner(ctx: JobContext) -> tuple[Runner, str]:
    """The runner of the job's model, not yet active, and the key it is parked under between an evaluation and
    the transfer job that follows it (`runtimes/parking.py`): the artifact and every option of the runner."""
    model = ctx.inputs["model"]
    path = ctx.artifacts.path(model[ctx.params.get("artifact_key", "artifact")])  # "weights" for weight transfer
    runtime = ctx.params["runtime"]
    # framework runtimes (native, weights) run the adapter of `params["adapter"]`: the cell's own framework,
    # or the migration target for weight transfer; a browser runtime's variant is its backend
    framework, variant = ctx.params.get("adapter", ctx.cell["framework"]), ctx.params.get("runtime_variant", "")
    layout = model.get("input_layout", "NHWC")
    runner = runner_class(runtime)(path, input_layout=layout, threads=ctx.threads, framework=framework,
                                   spec=spec_of(ctx), variant=variant)
    return runner, "|".join((str(path), runtime, variant, framework, layout, str(ctx.threads)))
