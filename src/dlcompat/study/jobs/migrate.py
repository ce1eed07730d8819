"""Job `migrate`: a trained model moved into another framework by weight transfer and saved as that framework's own
file, the first hop of a route (`study.routes`) whose converters start from the other framework.

The canonical weights are the source's, unchanged: downstream jobs (localisation, attacks) that read `weights` read
the trained model's own file. Like a converter's step it records `conversion_time` (building the target model,
setting its weights and saving it) and `converted_size`, the method naming the step as the route writes it.
"""

from __future__ import annotations

import time

from dlcompat.metrics.size import artifact_size_bytes
from dlcompat.runtimes.weights import ModelFromWeights
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import spec_of


def run(ctx: JobContext) -> None:
    into = ctx.params["adapter"]
    weights = ctx.inputs["model"]["weights"]
    start = time.perf_counter()
    loaded = ModelFromWeights(into, spec_of(ctx), ctx.artifacts.path(weights), ctx.threads)()
    with ctx.artifacts.writing(loaded.adapter.native_suffix) as tmp:
        loaded.adapter.save(loaded.model, tmp)
        elapsed = time.perf_counter() - start
        size = artifact_size_bytes(tmp)
        artifact = ctx.artifacts.put_file(tmp, loaded.adapter.native_suffix)
    version = loaded.adapter.version()
    ctx.outputs.update(artifact=artifact, format=into, weights=weights, input_layout="NHWC",
                       framework_version=version)
    method = {"converter": ctx.cell["variant"], "tool": f"weight transfer into {into}", "tool_version": version,
              "from": ctx.cell["framework"], "path": [ctx.cell["variant"]]}
    ctx.measure("conversion_time", elapsed, "s", artifact=artifact, method={**method, "threads": ctx.threads})
    ctx.measure("converted_size", size, "bytes", artifact=artifact, method=method)
