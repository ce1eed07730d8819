"""Job `noise_floor`: the measured noise floor of one trained model, once, for every hop derived from it.

The floor (`metrics.noise`) is the error, against the float64 reference of the model's spec on its canonical
weights, of honest PyTorch float32 re-executions of the same weights (batch N and 1, 1 and 2 threads, oneDNN on and
off: `findings.hop.measure_floor`), on the first `images` test images. It is stored as a JSON artifact
(`NoiseFloor.to_dict`) that each `localize` job of the model's derived artifacts reads; it records no measurement.
"""

from __future__ import annotations

import json

import numpy as np

from dlcompat.data.batching import to_float
from dlcompat.findings.hop import floor_statement, measure_floor
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of, spec_of


def trained_weights(ctx: JobContext) -> dict[str, np.ndarray]:
    """The canonical weights the `train` job (input `model`) stored."""
    with np.load(ctx.artifacts.path(ctx.inputs["model"]["weights"]), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def hop_images(ctx: JobContext) -> np.ndarray:
    """The first `params["images"]` test images, float32 NHWC in [0, 1]."""
    return to_float(dataset_of(ctx).test.x[: int(ctx.params["images"])])


def run(ctx: JobContext) -> None:
    floor = measure_floor(spec_of(ctx), trained_weights(ctx), hop_images(ctx))
    with ctx.artifacts.writing(".json") as tmp:
        tmp.write_text(json.dumps(floor.to_dict(), default=str))
        path = ctx.artifacts.put_file(tmp, ".json")
    ctx.outputs.update(floor=path, statement=floor_statement(floor), images=int(ctx.params["images"]))
