"""Job `convert`: one edge of the format graph applied to an upstream artifact (e.g. a PyTorch file to ONNX)."""

from __future__ import annotations

import time
from typing import Any

from dlcompat.converters.graph import convert_file, converter
from dlcompat.data.calibration import calibration_images
from dlcompat.data.scaling import scale_images
from dlcompat.metrics.size import artifact_size_bytes
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of, spec_of


def _calibration(ctx: JobContext) -> dict[str, Any]:
    """`calibration=`: training images for a variant that calibrates (the plan's `calibration` parameter)."""
    wanted = ctx.params.get("calibration")
    if not wanted:
        return {}
    images = calibration_images(dataset_of(ctx), int(wanted["images"]), int(wanted.get("seed", 0)))
    return {"calibration": scale_images(images, str(ctx.inputs["data"].get("input_scale", "0-1")))}


def run(ctx: JobContext) -> None:
    edge = converter(ctx.params["converter"])
    variant = ctx.params.get("variant", "")
    source = ctx.artifacts.path(ctx.inputs["model"]["artifact"])
    extra = _calibration(ctx)  # drawn before the clock: conversion_time times the converter alone
    with ctx.artifacts.writing(edge.suffix) as tmp:
        start = time.perf_counter()
        facts = convert_file(edge, source, tmp, spec=spec_of(ctx), variant=variant, threads=ctx.threads, **extra)
        elapsed = time.perf_counter() - start
        size = artifact_size_bytes(tmp)
        artifact = ctx.artifacts.put_file(tmp, edge.suffix)
    ctx.outputs.update(artifact=artifact, format=edge.target, **facts)
    method = {"converter": edge.name, "tool": facts.get("tool", edge.tool),
              "tool_version": facts.get("tool_version", ""), "path": [edge.name]}
    ctx.measure("conversion_time", elapsed, "s", artifact=artifact, method=method)
    ctx.measure("converted_size", size, "bytes", artifact=artifact, method=method)
