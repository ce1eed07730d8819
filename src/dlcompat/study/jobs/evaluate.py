"""Job `evaluate`: run a model artifact in one runtime on the full test split; accuracy, size, load time, latency."""

from __future__ import annotations

import time

import numpy as np

from dlcompat.data.batching import to_float
from dlcompat.metrics.accuracy import top1_accuracy
from dlcompat.metrics.latency import LatencyMethod, measure_latency
from dlcompat.metrics.memory import peak_rss_bytes, reset_peak_rss
from dlcompat.metrics.size import artifact_size_bytes
from dlcompat.runtimes.base import runner_class
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of, spec_of


def run(ctx: JobContext) -> None:
    data = dataset_of(ctx)
    model = ctx.inputs["model"]
    artifact = model[ctx.params.get("artifact_key", "artifact")]  # "weights" for weight transfer
    path = ctx.artifacts.path(artifact)
    runtime = ctx.params["runtime"]
    # framework runtimes (native, weights) run the adapter of `params["adapter"]`: the cell's own framework,
    # or the migration target for weight transfer
    options = {"framework": ctx.params.get("adapter", ctx.cell["framework"]), "spec": spec_of(ctx)}
    runner = runner_class(runtime)(path, input_layout=model.get("input_layout", "NHWC"), threads=ctx.threads,
                                   **options)

    x_test = to_float(data.test.x)
    memory_reset = reset_peak_rss()
    start = time.perf_counter()
    runner.activate()
    load_time = time.perf_counter() - start
    try:
        logits = runner.infer(x_test)
        if not np.isfinite(logits).all():
            raise FloatingPointError(f"{int((~np.isfinite(logits)).sum())} non-finite logits on the test split")
        lat = ctx.params.get("latency", {})
        batch = int(lat.get("batch_size", 1))
        method = LatencyMethod(**{k: v for k, v in lat.items() if k in LatencyMethod.__dataclass_fields__})
        stats = measure_latency(runner.predictor(x_test[:batch]), method)
        info = runner.info()
    finally:
        runner.deactivate()
    peak = peak_rss_bytes()

    logits_path = ctx.artifacts.put_array(logits.astype(np.float32))
    ctx.outputs.update(logits=logits_path, runtime=info)
    ctx.measure("accuracy", top1_accuracy(logits, data.test.y), "fraction", artifact=logits_path,
                method={"images": len(data.test.y), "split": "test", **info})
    ctx.measure("model_size", artifact_size_bytes(path), "bytes", artifact=artifact)
    ctx.measure("load_time", load_time, "s", method=info)
    latency_method = {**method.to_dict(), **info, "batch_size": batch, "repeats": stats.repeats,
                      "converged": stats.converged, "clock": "time.perf_counter_ns"}
    for stat in ("p10", "p50", "p90", "p99", "mean", "std", "min"):
        ctx.measure(f"latency_{stat}", getattr(stats, stat), "ms", method=latency_method)
    ctx.measure("first_inference", stats.first_call_ms, "ms", method=latency_method)
    ctx.measure("peak_rss", peak, "bytes",
                method={"api": "VmHWM" if memory_reset else "ru_maxrss (not reset: process-wide)",
                        "scope": "load + full test split + latency loop"})
