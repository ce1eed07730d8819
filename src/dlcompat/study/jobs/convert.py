"""Job `convert`: one edge of the format graph applied to an upstream artifact (e.g. a PyTorch file to ONNX)."""

from __future__ import annotations

import time

from dlcompat.converters.graph import convert_file, converter
from dlcompat.metrics.size import artifact_size_bytes
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import spec_of


def run(ctx: JobContext) -> None:
    edge = converter(ctx.params["converter"])
    variant = ctx.params.get("variant", "")
    source = ctx.artifacts.path(ctx.inputs["model"]["artifact"])
    with ctx.artifacts.writing(edge.suffix) as tmp:
        start = time.perf_counter()
        facts = convert_file(edge, source, tmp, spec=spec_of(ctx), variant=variant, threads=ctx.threads)
        elapsed = time.perf_counter() - start
        size = artifact_size_bytes(tmp)
        artifact = ctx.artifacts.put_file(tmp, edge.suffix)
    ctx.outputs.update(artifact=artifact, format=edge.target, **facts)
    method = {"converter": edge.name, "tool": facts.get("tool", edge.tool),
              "tool_version": facts.get("tool_version", ""), "path": [edge.name]}
    ctx.measure("conversion_time", elapsed, "s", artifact=artifact, method=method)
    ctx.measure("converted_size", size, "bytes", artifact=artifact, method=method)
